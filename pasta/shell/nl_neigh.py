"""The host's neighbour table, followed live: real MACs for the namespace (pasta 2026).

Purpose: the I/O half of `pasta.core.neigh` (pasta's netlink.c nl_neigh_notify_init(),
nl_neigh_sync() and nl_neigh_notify_handler()): a NETLINK_ROUTE socket subscribed to
RTMGRP_NEIGH in the host's network namespace, an initial dump of the ARP and NDP tables, and the
announcements (gratuitous ARP, unsolicited NA) of new neighbours to the namespace.

Theory of operation:
- `NlNeigh(engine, link, table, rules, ctx_of, announce)` opens the notifier first (so nothing
  is missed between the dump and the first notification), then dumps both families on a second,
  blocking socket with a bounded wait (`DUMP_TIMEOUT_S`), feeding every entry to the table.
  Both happen at set-up, before confinement; afterwards only `recv_into` is used.
- Notifications (`FdKind.NL_NEIGH`): every message goes through `neigh.iter_neigh_events` and
  `table.on_neigh_event(ev, nat)`, where `nat` is pasta's nat_inbound() with the namespace's
  current address of that family (`link.addr_seen4/6`). A new entry is announced when
  `announce` is true (the tap is configured: `--config-net`, as pasta's tap_is_ready()).
- The link asks `table.mac_for(addr)` for the Ethernet source of frames it sends on behalf of
  a remote host (`TapLink.src_mac`), and ARP/NDP replies carry the neighbour's MAC.

States and events: open (notifier registered) -> closed.

Invariants: the notifier is read only here; a malformed message is dropped and counted
("neigh: malformed netlink message"), never fatal.

Limits: a notification lost to a full socket buffer (ENOBUFS) is not recovered by a new dump
(pasta does not either); entries of the namespace's own neighbours are not followed.

Kernel assumptions: RTM_NEWNEIGH / RTM_DELNEIGH multicast to RTMGRP_NEIGH (every Linux).

Differences from passt: none intended.
"""

from __future__ import annotations

import socket
import time

from pasta.core import neigh
from pasta.shell.engine import EPOLLIN, FdKind
from pasta.util import log
from pasta.util.errors import Malformed

RTMGRP_NEIGH = 4
DUMP_TIMEOUT_S = 2.0
RCVBUF = 1 << 20


def _netlink(groups: int) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                      socket.NETLINK_ROUTE)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.bind((0, groups))
    except BaseException:
        s.close()
        raise
    return s


class NlNeigh:
    def __init__(self, engine, link, table: "neigh.NeighTable", rules, ctx_of,
                 announce: bool):
        self.engine = engine
        self.link = link
        self.table = table
        self.rules = rules
        self.ctx_of = ctx_of                # () -> the tap's current LinkCtx (guest MAC)
        self.announce = announce
        self.buf = bytearray(65536)
        self.view = memoryview(self.buf)
        self.sock = _netlink(RTMGRP_NEIGH)
        try:
            self.sock.setblocking(False)
            self._dump()
            engine.add(self.sock.fileno(), EPOLLIN, self._readable, FdKind.NL_NEIGH)
        except BaseException:
            self.sock.close()
            raise

    def _nat(self, addr: bytes):
        seen = self.link.addr_seen4 if len(addr) == 4 else self.link.addr_seen6
        return neigh.nat_inbound(self.rules, addr, seen)

    def _dump(self) -> None:
        """The host's ARP and NDP tables now (pasta's nl_neigh_sync()); no announcements."""
        s = _netlink(0)
        try:
            s.settimeout(DUMP_TIMEOUT_S)
            for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
                s.send(neigh.neigh_dump_request(family, seq))
                end = time.monotonic() + DUMP_TIMEOUT_S
                done = False
                while not done and time.monotonic() < end:
                    n = s.recv_into(self.buf)
                    try:
                        for ev in neigh.iter_neigh_events(self.buf, 0, n):
                            if ev.msg in (neigh.NeighMsg.DONE, neigh.NeighMsg.ERROR):
                                done = True
                            else:
                                self.table.on_neigh_event(ev, self._nat)
                    except Malformed:
                        self.link.drop("neigh: malformed netlink message")
        except OSError as e:
            log.warn(f"Couldn't dump the host's neighbour table: {e.strerror or e}")
        finally:
            s.close()
        log.debug(f"neighbour table: {len(self.table)} entries")

    def _readable(self, _events: int) -> None:
        for _ in range(16):
            try:
                n = self.sock.recv_into(self.buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:                # ENOBUFS: notifications were lost
                log.debug(f"neighbour notifier: {e.strerror}")
                continue
            try:
                for ev in neigh.iter_neigh_events(self.buf, 0, n):
                    self._event(ev)
            except Malformed:
                self.link.drop("neigh: malformed netlink message")

    def _event(self, ev) -> None:
        if ev.msg not in (neigh.NeighMsg.NEWNEIGH, neigh.NeighMsg.DELNEIGH):
            return
        upd = self.table.on_neigh_event(ev, self._nat)
        op = upd.op
        if op in (neigh.NeighOp.ADDED, neigh.NeighOp.CHANGED):
            log.trace(f"neighbour notifier update: {_text(upd.addr)} / {upd.mac.hex(':')}")
        elif op == neigh.NeighOp.REMOVED:
            log.trace(f"neighbour notifier delete: {_text(upd.addr)}")
        elif op == neigh.NeighOp.NO_LLADDR:
            log.warn(f"RTM_NEWNEIGH {_text(upd.addr)}: missing link layer address")
        elif op == neigh.NeighOp.FULL:
            log.debug("Failed to allocate neighbour table entry")
        if upd.announce and self.announce:
            frame = neigh.announce_frame(self.ctx_of(), upd.addr, upd.mac, self.link.vnet)
            if frame is not None:
                self.link.send_bytes(frame)

    def close(self) -> None:
        self.engine.remove(self.sock.fileno())
        self.sock.close()


def _text(addr) -> str:
    if addr is None:
        return "?"
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, bytes(addr))
