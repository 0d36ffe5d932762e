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
- `register(engine, handler)` / `unregister(engine)`: readiness of the link in the engine (the
  handler gets the epoll events); `close()`.

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

Limits: one connection per link (passt mode's listener makes a new StreamLink per client).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Protocol

from pasta.shell.engine import EPOLLIN, EPOLLOUT, FdKind

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

    def register(self, engine, handler) -> None: ...

    def unregister(self, engine) -> None: ...

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
    def register(self, engine, handler) -> None:
        self._engine, self._handler = engine, handler
        self._events = EPOLLIN
        engine.add(self.sock.fileno(), EPOLLIN, self._event, FdKind.TAP_PASST)

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

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.sock.close()
