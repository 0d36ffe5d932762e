"""Listening sockets of the four port options (-t, -u, -T, -U): one record, one set.

Purpose: every forwarded port is a listening socket registered with the engine that, when
readable, hands itself to its owner (TCP accept, UDP datagrams, spliced loopback accepts or
datagrams). `auto` forwarding adds and removes them at run time, and the slirp4netns API does
the same for its forwards, so adding, removing and listing must be one piece of code.

Theory of operation: a `Listener` records the socket, its fd, the family, the port it listens
on and the `target` port connections or datagrams go to on the other side (pasta's `PORT:TARGET`
mapping; `delta` = target - port) and, for a rule with a target address (`PORT:TADDR/TPORT`),
that address (`taddr`, packed; None: the namespace's own). A `Listeners` set owns its records: `add` registers the
socket with the engine (EPOLLIN, level-triggered) with the owner's handler, `remove`
unregisters and closes it, `ports` lists the listening ports (for `auto`, which must not
forward pypasta's own listeners back), `close` removes them all. `accept_failed` is for an
owner whose accept() failed for lack of fds or memory: the connection stays in the backlog, and
a level-triggered listener would wake the loop for it on every turn, so the listener is not
polled for `ACCEPT_PAUSE_S` (it is served again once fds are free; issue 13 item 6).

Invariants: a listener is registered with the engine exactly while it is in its set; its socket
is closed when it leaves the set. What depends on a listener (UDP flows replying through it,
spliced flows) is ended by the owner before it calls `remove`.
"""

from __future__ import annotations

import errno
import socket

from pasta.util import log
from pasta.shell.engine import EPOLLIN, FdKind

ACCEPT_PAUSE_S = 0.1
RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class Listener:
    __slots__ = ("sock", "fd", "v6", "port", "target", "taddr", "paused")

    def __init__(self, sock, v6: bool, port: int, target: int, taddr=None):
        self.sock, self.fd, self.v6 = sock, sock.fileno(), v6
        self.port, self.target = port, target
        self.taddr = taddr          # packed target address (-t PORT:TADDR/TPORT), or None
        self.paused = False

    @property
    def delta(self) -> int:
        return self.target - self.port


class Listeners:
    def __init__(self, engine):
        self.engine = engine
        self.items: list[Listener] = []

    def add(self, sock, v6: bool, port: int, target: int, on_readable,
            taddr=None) -> Listener:
        """Register `sock`, listening on `port` for `target` (at `taddr`, packed, if the rule
        names a target address); `on_readable(listener)`."""
        lst = Listener(sock, v6, port, target, taddr)
        self.items.append(lst)
        kind = FdKind.TCP_LISTEN if sock.type == socket.SOCK_STREAM else FdKind.UDP_LISTEN
        self.engine.add(lst.fd, EPOLLIN, lambda ev, l=lst: on_readable(l), kind)
        return lst

    def accept_each(self, lst: Listener, take, what: str, limit: int = 32) -> None:
        """accept() up to `limit` connections on `lst` and hand each to take(sock, peer);
        errors are logged as "WHAT: accept: ..." and go through `accept_failed`."""
        for _ in range(limit):
            try:
                sock, peer = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug(f"{what}: accept: {e.strerror}")
                if self.accept_failed(lst, e):
                    return
                continue
            take(sock, peer)

    def accept_failed(self, lst: Listener, err: OSError) -> bool:
        """accept() on `lst` raised `err`: pause the listener if we ran out of fds or memory
        (True: stop accepting for now); False for other errors (go on accepting)."""
        if err.errno not in RESOURCE_ERRNOS:
            return False
        if not lst.paused and lst in self.items:
            lst.paused = True
            self.engine.modify(lst.fd, 0)
            self.engine.call_later(ACCEPT_PAUSE_S, lambda: self._resume(lst))
        return True

    def _resume(self, lst: Listener) -> None:
        lst.paused = False
        if lst in self.items:
            self.engine.modify(lst.fd, EPOLLIN)

    def remove(self, lst: Listener) -> None:
        self.items.remove(lst)
        self.engine.remove(lst.fd)
        lst.sock.close()


    def close(self) -> None:
        for lst in list(self.items):
            self.remove(lst)

    def __iter__(self):
        return iter(list(self.items))

    def __len__(self) -> int:
        return len(self.items)
