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

States: connecting -> joined -> closed (per pair; per direction: reading, eof, shut).

Invariants: a pair owns two sockets and two pipes, all closed together; `pending[d]` is exactly
the number of bytes in pipe d.

Limits: pipes are made per connection (pasta keeps a pool); no SO_RCVLOWAT batching.

Kernel assumptions: splice(2) between TCP sockets and pipes; F_SETPIPE_SZ up to
/proc/sys/fs/pipe-max-size (1 MiB by default for unprivileged users).

Differences from passt: pasta takes pre-opened sockets and pipes from pools; here they are
created on demand.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

from pasta import log
from pasta.engine import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_LINGER0 = struct.pack("ii", 1, 0)


class Pair:
    __slots__ = ("socks", "fds", "pipes", "pending", "eof", "shut", "joined", "closed", "masks")

    def __init__(self, a, b):
        self.socks = (a, b)
        self.fds = (a.fileno(), b.fileno())
        self.pipes = None
        self.pending = [0, 0]          # bytes in pipe d (d = 0: a -> b, 1: b -> a)
        self.eof = [False, False]
        self.shut = [False, False]
        self.joined = False
        self.closed = False
        self.masks = [None, None]


class TcpSplice:
    def __init__(self, engine):
        self.engine = engine
        self.pairs: set = set()
        self.stats = engine.stats
        for k in ("splice_conns", "splice_opened", "splice_closed"):
            self.stats.setdefault(k, 0)

    def join(self, accepted: socket.socket, target: socket.socket, sockaddr) -> None:
        accepted.setblocking(False)
        target.setblocking(False)
        for s in (accepted, target):
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        p = Pair(accepted, target)
        self.pairs.add(p)
        self.stats["splice_opened"] += 1
        self.stats["splice_conns"] = len(self.pairs)
        err = target.connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS):
            log.debug(f"splice: connect {sockaddr}: {errno.errorcode.get(err, err)}")
            self._close(p, reset=True)
            return
        self.engine.add(p.fds[1], EPOLLOUT, lambda ev, pr=p: self._connected(pr, ev))
        p.masks[1] = EPOLLOUT

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
            log.debug(f"splice: connect failed: {errno.errorcode.get(err, err)}")
            self._close(p, reset=True)
            return
        try:
            p.pipes = (self._pipe(), self._pipe())
        except OSError as e:
            log.debug(f"splice: pipe: {e.strerror}")
            self._close(p, reset=True)
            return
        p.joined = True
        self.engine.remove(p.fds[1])
        p.masks = [None, None]
        for i in (0, 1):
            self.engine.add(p.fds[i], 0, lambda ev, pr=p, side=i: self._event(pr, side, ev))
            p.masks[i] = 0
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
                    log.trace(f"splice: write: {e.strerror}")
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
                log.trace(f"splice: read: {e.strerror}")
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
            if mask != p.masks[side]:
                p.masks[side] = mask
                self.engine.modify(p.fds[side], mask)

    def _close(self, p: Pair, reset: bool = False) -> None:
        if p.closed:
            return
        p.closed = True
        for i, s in enumerate(p.socks):
            if p.masks[i] is not None:
                self.engine.remove(p.fds[i])
            if reset:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
                except OSError:
                    pass
            s.close()
        if p.pipes:
            for r, w in p.pipes:
                os.close(r)
                os.close(w)
        self.pairs.discard(p)
        self.stats["splice_closed"] += 1
        self.stats["splice_conns"] = len(self.pairs)

    def close(self) -> None:
        for p in list(self.pairs):
            self._close(p)
