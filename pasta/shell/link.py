"""The link: where frames from the namespace or guest come from and where ours go (passt's tap.c,
both of its back ends).

Purpose: one interface for frame I/O, so that nothing above it (dispatch, the translator, the
supervisor) touches a tap fd or knows whether frames travel over a tap device or a stream socket.
Two implementations:
- `pasta.setup.tapdev.Tap`: the tap device (pasta mode), one frame per read()/writev(), with a
  virtio-net header when the device has one (checksum and segmentation offloads).
- `StreamLink`: a connected AF_UNIX stream socket with passt's framing (passt mode: QEMU's
  `-netdev stream`, libvirt's passt back end): each frame preceded by its length as a 4-byte
  big-endian integer, both ways; no virtio-net header, so every checksum is complete.

The interface (`Link`):
- `name`, `vnet_hdr` (frames carry a virtio-net header; the offloads in `caps`), `batch_max`
  (the most frames one `read_batch` returns);
- `read_batch(limit)`: the frames available now, as memoryviews valid until the next call (no
  copy); raises EOFError when the other end hung up (or, on a stream, broke the framing);
- `write(pieces)`: one frame given as buffers (header templates and payload views, vnet header
  first when there is one); True if taken, False if not taken at all (the caller counts a drop;
  TCP keeps its sequence and retries). Never half a frame. OSError for a fatal error;
- `register(engine, handler, on_connect=None)` / `unregister(engine)`: readiness of the link in
  the engine (the handler gets the epoll events); `on_connect()` runs each time the other end
  is there (at once for a tap or a connected stream; per accepted client in passt mode);
  `close()`;
- `hangup(reason)`: the reader saw the other end go (EOF, a broken stream, an error). False: the
  link is gone for good and the caller stops pypasta (the tap device, pasta's "EOF on tap
  device, exiting"). True: the link handled it (passt mode: wait for the next client, or
  exit 0 with `--one-off`).

`PasstTap` is passt mode's link (passt's tap_listen_handler(), tap_sock_reset(),
tap_backend_init()): a listening UNIX socket, or one inherited connected socket (`--fd`), and at
most one client at a time as a `StreamLink`. While a client is connected, further connections
are accepted and closed at once ("discarding connection from PID n"); that client sees EOF.
Without a client, frames are not taken (counted as dropped, as passt drops them). A client that
goes ("Client connection closed"): with `one_off` (or `--fd`) pypasta exits 0, otherwise the
next one is awaited; flows, listeners and the guest MAC stay. Each accepted socket gets large
buffers (SO_RCVBUF/SO_SNDBUF INT_MAX/2, capped by the kernel's rmem_max/wmem_max as in passt),
and `on_connect()` (the translator's initial ARP request and neighbour solicitation) runs.

StreamLink, theory of operation (pasta-reference section on passt mode, passt-mode.md 2):
- Reading is a byte stream: one recv() can end inside the length word or inside a frame. The
  receive buffer holds several maximum-size frames; `read_batch` first moves the incomplete
  tail of the last read to the front (the frames it returned are no longer referenced), then
  fills the buffer with recv_into until EAGAIN or full, and cuts complete frames out of it.
- A length outside 14..65535 (passt's L2_MAX_LEN_PASST) means the stream is out of step: as
  passt ("Bad frame size from guest, resetting connection"), the connection is given up
  (EOFError).
- Writing: a frame goes out with one non-blocking sendmsg of [length, pieces...]. Nothing
  taken: not taken (False), as passt drops frames it could not send. Part taken: the rest of
  that frame (a copy, at most one frame) is queued and finished on EPOLLOUT; until it is, new
  frames are not taken, so two frames never interleave. passt finishes the frame with blocking
  writes instead; waiting for EPOLLOUT keeps the loop serving everything else.

Invariants: the stream never carries a partial frame followed by another frame's bytes; the
receive buffer never holds more than one incomplete frame after `read_batch`.

Limits: one connection per StreamLink (PasstTap makes a new one per client).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Protocol

from pasta.shell.engine import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, FdKind
from pasta.util import log

ETH_HLEN = 14
L2_MAX_LEN_PASST = 65535
_LEN = struct.Struct(">I")
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL

# A write that finds the link busy (or gone for a moment) drops the frame instead of failing.
WRITE_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.EINTR, errno.ENOBUFS, errno.ENOSPC,
                               errno.EIO, errno.ENETDOWN, errno.ENXIO})


class Link(Protocol):
    name: str
    vnet_hdr: bool
    batch_max: int

    def read_batch(self, limit: int | None = None) -> list: ...

    def write(self, pieces) -> bool: ...

    def register(self, engine, handler, on_connect=None) -> None: ...

    def unregister(self, engine) -> None: ...

    def hangup(self, reason: str) -> bool: ...

    def close(self) -> None: ...


class StreamLink:
    """A connected stream socket carrying frames with passt's 4-byte big-endian lengths."""

    vnet_hdr = False

    def __init__(self, sock: socket.socket, name: str = "passt", batch_max: int = 64,
                 rbuf_frames: int = 8):
        sock.setblocking(False)
        self.sock = sock
        self.name = name
        self.batch_max = batch_max
        self.rbuf = bytearray(rbuf_frames * (L2_MAX_LEN_PASST + _LEN.size))
        self.rview = memoryview(self.rbuf)
        self.start = 0                  # first byte not yet returned as (part of) a frame
        self.end = 0                    # end of the bytes received
        self.pending = None             # the unsent rest of a frame (memoryview) or None
        self.broken = False             # a write failed for good: frames are not taken
        self._engine = None
        self._handler = None
        self._events = 0

    # ----------------------------------------------------------------- input
    def read_batch(self, limit: int | None = None) -> list:
        """Every complete frame received (`limit` does not apply: frames left in the buffer
        would wait for an EPOLLIN that may never come)."""
        rbuf, view = self.rbuf, self.rview
        if self.start:
            tail = self.end - self.start        # an incomplete frame: to the front
            rbuf[:tail] = bytes(view[self.start:self.end])     # (copied: they may overlap)
            self.start, self.end = 0, tail
        eof = False
        while self.end < len(rbuf):
            try:
                got = self.sock.recv_into(view[self.end:])
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno in (errno.ECONNRESET, errno.EPIPE):
                    eof = True
                    break
                raise
            if got == 0:
                eof = True
                break
            self.end += got
        frames = []
        pos, end = self.start, self.end
        while end - pos >= _LEN.size:
            n = _LEN.unpack_from(rbuf, pos)[0]
            if not ETH_HLEN <= n <= L2_MAX_LEN_PASST:
                raise EOFError(f"bad frame size {n} from guest, resetting connection")
            if end - pos - _LEN.size < n:
                break
            frames.append(view[pos + _LEN.size:pos + _LEN.size + n])
            pos += _LEN.size + n
        self.start = pos
        if (eof or self.broken) and not frames:
            raise EOFError("peer closed the connection")
        return frames

    # ----------------------------------------------------------------- output
    def write(self, pieces) -> bool:
        if self.broken:
            return False
        if self.pending is not None:
            self._flush()
            if self.pending is not None:
                return False            # still finishing the last frame: not taken
        length = sum(len(p) for p in pieces)
        try:
            sent = self.sock.sendmsg([_LEN.pack(length), *pieces], [], _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            if e.errno in WRITE_DROP_ERRNOS:
                return False
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                self.broken = True      # the client is gone: its read side reports it
                return False
            raise
        if sent < length + _LEN.size:
            whole = _LEN.pack(length) + b"".join(bytes(p) for p in pieces)
            self.pending = memoryview(whole)[sent:]
            self._want(EPOLLIN | EPOLLOUT)
        return True

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self.pending, _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # The peer is gone: nothing more will be written; the next read reports it.
            self.pending = self.pending[:0]
            self.broken = True
            return
        self.pending = self.pending[sent:] if sent < len(self.pending) else None
        if self.pending is None:
            self._want(EPOLLIN)

    # ----------------------------------------------------------------- events
    def register(self, engine, handler, on_connect=None) -> None:
        self._engine, self._handler = engine, handler
        self._events = EPOLLIN
        engine.add(self.sock.fileno(), EPOLLIN, self._event, FdKind.TAP_PASST)
        if on_connect is not None:
            on_connect()

    def unregister(self, engine) -> None:
        engine.remove(self.sock.fileno())
        self._engine = None

    def _want(self, events: int) -> None:
        if self._engine is not None and events != self._events:
            self._events = events
            self._engine.modify(self.sock.fileno(), events)

    def _event(self, events: int) -> None:
        if events & EPOLLOUT and self.pending is not None:
            self._flush()
        if events & ~EPOLLOUT or self.broken:
            self._handler((events & ~EPOLLOUT) | (EPOLLIN if self.broken else 0))

    def hangup(self, reason: str) -> bool:
        return False

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.sock.close()


_BUF_MAX = (1 << 31) // 2 - 1           # INT_MAX / 2, as passt asks for
_UCRED = struct.Struct("iII")


def _peer_pid(sock: socket.socket) -> int:
    try:
        return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                             _UCRED.size))[0]
    except OSError:
        return 0


class PasstTap:
    """passt mode's link: a listening socket (or an inherited connected one) and one client."""

    vnet_hdr = False
    name = "passt"

    def __init__(self, listen_sock: socket.socket | None = None,
                 conn_sock: socket.socket | None = None, one_off: bool = False,
                 batch_max: int = 64):
        if (listen_sock is None) == (conn_sock is None):
            raise ValueError("one of listen_sock and conn_sock")
        self.listen_sock = listen_sock
        self.one_off = one_off or conn_sock is not None     # --fd implies --one-off
        self.batch_max = batch_max
        self.client = StreamLink(conn_sock, batch_max=batch_max) if conn_sock else None
        self._engine = None
        self._handler = None
        self._on_connect = None

    # ----------------------------------------------------------------- frames
    def read_batch(self, limit: int | None = None) -> list:
        return self.client.read_batch(limit) if self.client is not None else []

    def write(self, pieces) -> bool:
        return self.client is not None and self.client.write(pieces)

    # ----------------------------------------------------------------- clients
    def register(self, engine, handler, on_connect=None) -> None:
        self._engine, self._handler, self._on_connect = engine, handler, on_connect
        if self.listen_sock is not None:
            self.listen_sock.setblocking(False)
            engine.add(self.listen_sock.fileno(), EPOLLIN, self._accept, FdKind.TAP_LISTEN)
        if self.client is not None:
            self._start(self.client)

    def _accept(self, events: int) -> None:
        if events & (EPOLLERR | EPOLLHUP):
            log.err("Error on listening Unix socket, exiting")
            self._engine.stop(1)
            return
        try:
            sock, _ = self.listen_sock.accept()
        except OSError as e:
            if not isinstance(e, (BlockingIOError, InterruptedError)):
                log.warn(f"Error accepting tap client: {e.strerror}")
            return
        if self.client is not None:
            log.info(f"discarding connection from PID {_peer_pid(sock)}")
            sock.close()
            return
        log.info(f"accepted connection from PID {_peer_pid(sock)}")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, _BUF_MAX)
            except OSError:
                pass
        self.client = StreamLink(sock, batch_max=self.batch_max)
        self._start(self.client)

    def _start(self, client: StreamLink) -> None:
        client.register(self._engine, self._handler, self._on_connect)

    def hangup(self, reason: str) -> bool:
        """The client went (or broke the framing): exit with --one-off, else wait for the next."""
        if reason.startswith("bad frame size"):
            log.err("Bad frame size from guest, resetting connection")
        log.info("Client connection closed" + (", exiting" if self.one_off else ""))
        if self.one_off:
            self._engine.stop(0)
            return True
        self._drop_client()
        return True

    def _drop_client(self) -> None:
        if self.client is not None:
            if self._engine is not None:
                self.client.unregister(self._engine)
            self.client.close()
            self.client = None

    def unregister(self, engine) -> None:
        if self.client is not None:
            self.client.unregister(engine)
        if self.listen_sock is not None and self._engine is not None:
            engine.remove(self.listen_sock.fileno())
        self._engine = None

    def close(self) -> None:
        self._drop_client()
        if self.listen_sock is not None:
            self.listen_sock.close()
