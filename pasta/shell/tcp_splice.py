"""Loopback bypass for TCP: two sockets joined with splice(2), no tap, no Python-level copy.

Purpose: pasta's tcp_splice.c (pasta-reference.md section 13.1). Used when a host loopback client
connects to a `-t` port (unless `--no-splice`) and for every `-T` connection (a namespace loopback
client to a host loopback port).

Theory of operation:
- `TcpSplice.join(accepted, target, sockaddr)` takes the accepted client socket and a fresh
  socket on the other side (created in the right network namespace by the caller), starts a
  non-blocking connect and, once it succeeds, moves bytes in both directions through one pipe
  per direction: `splice(src -> pipe)` then `splice(pipe -> dst)`, both non-blocking. The bytes
  never enter Python. A failed connect closes the client with an RST (as pasta: the client saw an
  established connection first).
- Back-pressure: bytes still in a pipe (the destination's send buffer is full) stop reading from
  the source until EPOLLOUT on the destination drains them, so a pipe never holds more than one
  read and nothing is lost.
- Half-close: EOF from one side, once everything read from it was written, becomes
  `shutdown(SHUT_WR)` on the other; when both directions are shut, or on a reset or error, the
  pair is closed (an error or reset on one side closes the other with SO_LINGER 0, so the reset
  is carried across).

- A side with nothing to wait for (its read direction blocked behind a full pipe or finished, and
  nothing to write into it) is taken out of the epoll set and put back when that changes:
  EPOLLHUP and EPOLLERR cannot be masked, and a side whose FIN has arrived behind bytes we cannot
  read yet would otherwise wake every poll until the other direction drains (a busy loop that
  took a CPU away from a loaded machine).
- Flows: each pair is a TCP_SPLICE flow in the flow table (`pasta.core.flow`), its initiating side
  on pif HOST (a host loopback client of `-t`) or SPLICE (a namespace client of `-T`).
- Limit: at most `max_pairs` pairs at once (`MAX_PAIRS`, fewer if RLIMIT_NOFILE cannot hold
  `FDS_PER_PAIR` descriptors per pair plus `FD_RESERVE` for everything else); a connection beyond
  that is closed with an RST at once, counted in `splice_refused`.
- Fault isolation: an error that belongs to one pair (EMFILE or ENFILE making a pipe, an epoll
  registration failing, a setsockopt or splice error) closes that pair with an RST, counted in
  `splice_errors`; every fd the pair had taken is closed. Any other exception (a bug) closes the
  pair the same way and is re-raised for the engine to log and count as an internal error.
  `refuse(sock)` closes a client the caller could not hand over (with an RST, so the client's
  pending writes fail at once rather than look delivered).

States: connecting -> joined -> closed (per pair; per direction: reading, eof, shut).

Invariants: a pair owns two sockets and up to two pipes, all closed together (also when the second
pipe cannot be made); `pending[d]` is exactly the number of bytes in pipe d; a closed pair has no
fd registered with the engine.

Limits: pipes are made per connection (pasta keeps a pool); no SO_RCVLOWAT batching.

Kernel assumptions: splice(2) between TCP sockets and pipes; F_SETPIPE_SZ up to
/proc/sys/fs/pipe-max-size (1 MiB by default for unprivileged users).

Differences from passt: pasta takes pre-opened sockets and pipes from pools; here they are
created on demand. pasta closes a pair on EPOLLHUP; here EPOLLHUP is read as end of file, so bytes
still in a pipe for the other side are delivered first. pairs live in the one flow table (`pasta.core.flow`,
type TCP_SPLICE), under its global limit as in pasta, and under their own (`max_pairs`), which
pasta does not have: each pair costs six descriptors here.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import socket
import struct

from pasta.util import log
from pasta.core.flow import Flow, FlowSide, FlowTab, FlowType, Pif
from pasta.shell.engine import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP, FdKind

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
MAX_PAIRS = 4096                # spliced connections at once
FDS_PER_PAIR = 6                # two sockets, two pipes
FD_RESERVE = 64                 # descriptors kept for the tap path, listeners, namespace calls
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_LINGER0 = struct.pack("ii", 1, 0)


def default_max_pairs() -> int:
    """MAX_PAIRS, or fewer if the fd limit cannot hold that many pairs (never below 1)."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return MAX_PAIRS
    if soft == resource.RLIM_INFINITY:
        return MAX_PAIRS
    return max(1, min(MAX_PAIRS, (soft - FD_RESERVE) // FDS_PER_PAIR))


def _rst_close(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
    except OSError:
        pass
    sock.close()


class Pair(Flow):
    __slots__ = ("socks", "fds", "pipes", "pending", "eof", "shut", "joined", "closed", "masks",
                 "handlers")

    def __init__(self, a, b):
        super().__init__()
        self.socks = (a, b)
        self.fds = (a.fileno(), b.fileno())
        self.pipes: list = []           # (read fd, write fd) per direction, once joined
        self.pending = [0, 0]           # bytes in pipe d (d = 0: a -> b, 1: b -> a)
        self.eof = [False, False]
        self.shut = [False, False]
        self.joined = False
        self.closed = False
        self.masks = [None, None]       # None: not registered with the engine
        self.handlers = (None, None)


class TcpSplice:
    def __init__(self, engine, max_pairs: int | None = None, flowtab: FlowTab | None = None):
        self.engine = engine
        self.flowtab = flowtab if flowtab is not None else FlowTab.for_engine(engine)
        self.max_pairs = default_max_pairs() if max_pairs is None else max_pairs
        self.flowtab.limit(FlowType.TCP_SPLICE, self.max_pairs)
        # host loopback clients of -t (pif HOST), namespace loopback clients of -T (SPLICE)
        self._tables = (self.flowtab.bucket(FlowType.TCP_SPLICE, Pif.HOST),
                        self.flowtab.bucket(FlowType.TCP_SPLICE, Pif.SPLICE))
        self.stats = engine.stats

    @property
    def pairs(self) -> list:
        return [*self._tables[0].values(), *self._tables[1].values()]

    def _count(self) -> int:
        return len(self._tables[0]) + len(self._tables[1])

    def refuse(self, sock: socket.socket) -> None:
        """Close a client that cannot be spliced, with an RST."""
        self.stats.splice_refused += 1
        _rst_close(sock)

    def join(self, accepted: socket.socket, target: socket.socket, sockaddr,
             pif: Pif = Pif.HOST) -> None:
        """Join `accepted` (a client on `pif`: HOST for -t, SPLICE for -T) to `target`, which
        connects to `sockaddr` on the other side."""
        p = Pair(accepted, target)
        tgt_pif = Pif.SPLICE if pif == Pif.HOST else Pif.HOST
        if not self.flowtab.new(p, FlowType.TCP_SPLICE, pif, p.fds[0], self, self.engine.now,
                                (pif, tgt_pif), (FlowSide(), FlowSide(None, sockaddr[1]))):
            log.debug(f"splice: {self._count()} connections, the limit: refused")
            target.close()
            self.refuse(accepted)
            return
        self.stats.splice_opened += 1
        self.stats.splice_conns = self._count()
        self._guarded(p, self._connect, p, sockaddr)

    def _connect(self, p: Pair, sockaddr) -> None:
        for s in p.socks:
            s.setblocking(False)
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        err = p.socks[1].connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS):
            log.debug(f"{p.prefix()}splice: connect {sockaddr}: {errno.errorcode.get(err, err)}")
            self._close(p, reset=True)
            return
        p.masks[1] = EPOLLOUT           # set first: a failed add is still removed on close
        self.engine.add(p.fds[1], EPOLLOUT, lambda ev, pr=p: self._guarded(pr, self._connected,
                                                                          pr, ev),
                        FdKind.TCP_SPLICE)

    def _guarded(self, p: Pair, fn, *args) -> None:
        """fn(*args); an exception costs pair p only (module docstring: fault isolation)."""
        try:
            fn(*args)
        except OSError as e:
            log.debug(f"{p.prefix()}splice: {fn.__name__}: {e.strerror or e}")
            self.stats.splice_errors += 1
            self._close(p, reset=True)
        except Exception:
            self.stats.splice_errors += 1
            self._close(p, reset=True)
            raise

    def _connected(self, p: Pair, ev: int) -> None:
        if p.closed:
            return
        err = p.socks[1].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not err:
            try:
                p.socks[1].getpeername()
            except OSError:
                return                                   # not connected yet
        if err:
            log.debug(f"{p.prefix()}splice: connect failed: {errno.errorcode.get(err, err)}")
            self._close(p, reset=True)
            return
        for _ in range(2):
            p.pipes.append(self._pipe())                 # an OSError here: _guarded closes all
        p.joined = True
        self.engine.remove(p.fds[1])
        p.masks = [None, None]
        p.handlers = tuple((lambda ev, side=i: self._guarded(p, self._event, p, side, ev))
                           for i in (0, 1))
        self._update(p)
        for d in (0, 1):
            self._pump(p, d)

    @staticmethod
    def _pipe():
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass                        # the default 64 KiB pipe still works
        return r, w

    def _event(self, p: Pair, side: int, ev: int) -> None:
        if p.closed:
            return
        if ev & EPOLLERR:
            self._close(p, reset=True)
            return
        if ev & EPOLLOUT:
            self._pump(p, 1 - side)          # the direction writing into this side
        if ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP) and not p.closed:
            self._pump(p, side)              # the direction reading from this side

    def _pump(self, p: Pair, d: int) -> None:
        if p.closed:
            return
        src, dst = p.fds[d], p.fds[1 - d]
        r, w = p.pipes[d]
        while True:
            if p.pending[d]:
                try:
                    m = os.splice(r, dst, p.pending[d], flags=_FLAGS)
                except BlockingIOError:
                    break
                except OSError as e:
                    log.trace(f"{p.prefix()}splice: write: {e.strerror}")
                    self._close(p, reset=True)
                    return
                p.pending[d] -= m
                if p.pending[d]:
                    break
            if p.eof[d]:
                break
            try:
                n = os.splice(src, w, PIPE_SIZE, flags=_FLAGS)
            except BlockingIOError:
                break
            except OSError as e:
                log.trace(f"{p.prefix()}splice: read: {e.strerror}")
                self._close(p, reset=True)
                return
            if n == 0:
                p.eof[d] = True
            else:
                p.pending[d] += n
        if p.eof[d] and not p.pending[d] and not p.shut[d]:
            p.shut[d] = True
            try:
                p.socks[1 - d].shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if p.shut[0] and p.shut[1]:
            self._close(p)
            return
        self._update(p)

    def _update(self, p: Pair) -> None:
        for side in (0, 1):
            d_in, d_out = side, 1 - side               # reading from side, writing into side
            mask = 0
            if not p.eof[d_in] and not p.pending[d_in]:
                mask |= EPOLLIN | EPOLLRDHUP
            if p.pending[d_out]:
                mask |= EPOLLOUT
            old = p.masks[side]
            if mask == old or (not mask and old is None):
                continue
            fd = p.fds[side]
            if not mask:
                p.masks[side] = None                   # nothing to wait for: out of the set
                self.engine.remove(fd)
            elif old is None:
                p.masks[side] = mask                   # set first: a failed add is removed
                self.engine.add(fd, mask, p.handlers[side], FdKind.TCP_SPLICE)
            else:
                p.masks[side] = mask
                self.engine.modify(fd, mask)

    def _close(self, p: Pair, reset: bool = False) -> None:
        if p.closed:
            return
        p.closed = True
        for i, s in enumerate(p.socks):
            if p.masks[i] is not None:
                self.engine.remove(p.fds[i])
                p.masks[i] = None
            if reset:
                _rst_close(s)
            else:
                s.close()
        for fds in p.pipes:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        p.pipes = []
        self.flowtab.free(p)
        self.stats.splice_closed += 1
        self.stats.splice_conns = self._count()

    def flow_close(self, p: Pair, evicted: bool) -> None:
        """The flow table closes `p` (shutdown; pairs never expire or get evicted)."""
        self._close(p)

    def close(self) -> None:
        for p in self.pairs:
            self._close(p)
