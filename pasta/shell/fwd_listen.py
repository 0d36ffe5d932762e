"""Listening sockets of the forwarding table: opened, closed and replaced to match it.

Purpose: the I/O half of `pasta.core.fwd_rule` (pasta's `fwd_listen_sync()`, `fwd_listen_switch()`
and `fwd_scan_ports_timer()`): carry out the socket changes the pure table decides, through the
listener entry points of the protocol parts, for start-up options, `auto` and the slirp4netns
API alike (the pesto control socket will call `replace()` too).

Theory of operation:
- The owner gives one `(open, close)` pair per (pif, proto) it supports: `open(sock, target[,
  taddr])` returns a `pasta.shell.listeners.Listener` for a `fwd_rule.Sock` delivering to port
  `target` (at the packed address `taddr`, passed only when the rule has a target address), or
  raises `OSError` (or a `PastaError`); `close(listener)` stops it (TCP connections accepted
  through it carry on; UDP flows replying through it end with it).
- `replace(table)`: the wanted sockets of the new table (with the current scan state) are
  compared with the open ones (`fwd_listen_diff`). New sockets are opened first; a failure of
  a non-WEAK one, or of every socket of a best-effort -t/-u group, closes what was just opened
  and raises `FwdListenError`, leaving the old table and its sockets as they were. Otherwise
  the sockets no longer wanted are closed, kept ones get their new target port, and the new
  table is current.
- `scan()` (every `SCAN_S` while the table has SCAN rules, and once from the owner at start):
  reads /proc/net on the side each SCAN (pif, proto) watches (an `autofwd.ProcNet` from the
  owner's `open_procnet(in_ns)`, both opened at construction when the table may scan: a
  confined process opens no files), computes the new scan state from
  one snapshot (`fwd_scan_wanted`, minus pypasta's own sockets there), then opens and closes the
  SCAN rules' sockets to match. A socket that cannot be opened is logged once (debug) and
  retried on the next scan.

States and events: `table` (current `FwdTable`), `scan_state` ({(pif, proto): ports}),
`opened` ({Sock: (Listener, rule)}), `failed` (scan ports already reported); events are
`replace()`, `scan()` and the timer.

Invariants: `opened` holds exactly the sockets open for `table`: every one is in
`fwd_listen_wanted(table, scan_state)` except SCAN ones that failed to open; a socket is closed
only here; the scan runs in the engine's thread.

Limits: best-effort (WEAK) rules open at most half the fd limit's worth of listeners in all
(`max_listeners`; `-t all` covers some 37,000 ports, two sockets each): the ports beyond are
skipped with a warning naming the rule, and the rest of the fds stay for flows. A port bound on
the scanned side is noticed within one scan interval; a kept socket
whose target changes serves new connections and datagrams at the new target, flows already set
up keep theirs.

Kernel assumptions: see `pasta.shell.autofwd` (/proc/net files keep their namespace).

Differences from passt: `replace()` opens before it closes and rolls back on failure (pasta's
`fwd_listen_switch()` closes everything first and does not roll back); a port in both tables
keeps its socket instead of being closed and reopened.
"""

from __future__ import annotations

import resource

from pasta.util import log
from pasta.util.errors import PastaError, SetupError
from pasta.core.fwd_rule import (FWD_CAP_SCAN, FWD_SCAN, FWD_WEAK, PIF_HOST, PIF_SPLICE, PROTO_NAMES, FwdTable,
                            IPPROTO_TCP, IPPROTO_UDP, fwd_listen_diff, fwd_listen_ports,
                            fwd_listen_wanted, fwd_scan_keys, fwd_scan_side, fwd_scan_wanted,
                            fwd_rule_fmt, fwd_rule_unsupported, fwd_weak_unbound)

SCAN_S = 1.0


def fwd_rule_taddr(rule) -> "bytes | None":
    """The rule's target address, packed, or None when it has none (`::`, `0.0.0.0`)."""
    t = rule.taddr
    return None if t is None or t.is_unspecified else t.packed


class FwdListenError(SetupError):
    """A listener of a new table could not be opened; the old table stays current."""


def _why(e: BaseException) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def fwd_listen_init(engine, table: FwdTable, ops: dict, open_procnet=None) -> "FwdListen":
    """The start-up listeners of `table`: a failure is fatal, with pypasta's message."""
    try:
        return FwdListen(engine, table, ops, open_procnet)
    except FwdListenError as e:
        raise SetupError(f"{e}, exiting") from None


class FwdListen:
    """The current forwarding table and the sockets open for it."""

    def __init__(self, engine, table: FwdTable, ops: dict, open_procnet=None):
        self.engine = engine
        self.table = FwdTable(table.caps)       # empty until the first replace()
        self.ops = ops                          # (pif, proto) -> (open, close)
        self.open_procnet = open_procnet       # open_procnet(in_ns) -> autofwd.ProcNet
        self.scan_state: dict = {}
        self.opened: dict = {}                  # Sock -> (Listener, FwdRule)
        self.failed: set = set()
        self.procnet: dict = {}                 # True (namespace) / False (host) -> ProcNet
        self._timer = None
        self._started = False
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]     # read once, before confinement
        self.max_listeners = max(64, (soft if soft != resource.RLIM_INFINITY else 1 << 20) // 2)
        if open_procnet is not None and table.caps & FWD_CAP_SCAN:
            # Both sides now, whatever the rules: a confined process cannot open files, and
            # a rule added at run time may ask for a scan (pasta opens them at set-up too).
            for in_ns in (False, True):
                self._procnet(in_ns)
        self.replace(table)

    # ---------------------------------------------------------------- replace (all or nothing)
    def replace(self, new: FwdTable) -> None:
        """Make `new` the current table, or raise `FwdListenError` and change nothing."""
        for rule in new.rules:
            if (rule.pif, rule.proto) not in self.ops:
                raise FwdListenError(f"No {PROTO_NAMES.get(rule.proto)} forwarding for "
                                     f"option '{rule.option}'")
            why = fwd_rule_unsupported(rule)
            if why is not None:
                raise FwdListenError(f"Not supported yet: {why}")
        wanted = fwd_listen_wanted(new, self.scan_state)
        before = {s: r for s, (_, r) in self.opened.items()}
        diff = fwd_listen_diff(wanted, before)
        fresh: dict = {}
        last_err: dict = {}
        skipped: dict = {}
        # Best-effort rules (`all`, exclusion lists) may cover more ports than the fd limit
        # allows: they take at most half of it, the rest stays for flows.
        budget = self.max_listeners - len(self.opened) - sum(
            1 for _, r in diff.open if not r.flags & FWD_WEAK)
        try:
            for sock, rule in diff.open:
                if rule.flags & FWD_WEAK and not rule.flags & FWD_SCAN:
                    if budget <= 0:
                        skipped[rule] = skipped.get(rule, 0) + 1
                        continue
                    budget -= 1
                try:
                    fresh[sock] = (self._open(sock, rule), rule)
                except (OSError, PastaError) as e:
                    if rule.flags & FWD_SCAN:
                        continue
                    if not rule.flags & FWD_WEAK:
                        raise FwdListenError(f"Failed to bind port {sock.port} ({_why(e)}) "
                                             f"for option '{rule.option}'") from None
                    last_err[(rule.proto, rule.addr, rule.ifname)] = e
            for rule in fwd_weak_unbound(wanted, fresh.keys() | before.keys()):
                e = last_err.get((rule.proto, rule.addr, rule.ifname))
                why = f" ({_why(e)})" if e is not None else ""
                raise FwdListenError(f"Failed to bind any port for '{rule.option}'{why}")
        except BaseException:
            for sock, (lst, _) in fresh.items():
                self._close(sock, lst)
            raise
        for sock in diff.close:
            lst, _ = self.opened.pop(sock)
            self._close(sock, lst)
        for sock, target in diff.retarget(before):
            self.opened[sock][0].target = target
        for sock, rule in diff.keep:
            lst = self.opened[sock][0]
            lst.taddr = fwd_rule_taddr(rule)
            self.opened[sock] = (lst, rule)
        self.opened.update(fresh)
        self.table = new
        for rule, n in skipped.items():
            log.warn(f"File descriptor limit: {n} ports of best-effort rule "
                     f"'{fwd_rule_fmt(rule).rstrip()}' not listened on")
        if self._started:
            self._arm()

    def _open(self, sock, rule):
        taddr = fwd_rule_taddr(rule)
        open_ = self.ops[(sock.pif, sock.proto)][0]
        if taddr is None:
            return open_(sock, rule.target(sock.port))
        return open_(sock, rule.target(sock.port), taddr)

    def _close(self, sock, lst) -> None:
        self.ops[(sock.pif, sock.proto)][1](lst)

    # ---------------------------------------------------------------------------- auto scan
    def _procnet(self, in_ns: bool):
        procnet = self.procnet.get(in_ns)
        if procnet is None:
            procnet = self.open_procnet(in_ns)
            self.procnet[in_ns] = procnet
        return procnet

    def scan(self) -> None:
        """One scan of both sides, then the SCAN rules' sockets to match (fwd_scan_ports)."""
        keys = fwd_scan_keys(self.table)
        if not keys and not self.scan_state:
            return
        ours = fwd_listen_ports(self.opened)
        found: dict = {}
        state: dict = {}
        for pif, proto in keys:
            in_ns = fwd_scan_side(pif)
            other = PIF_SPLICE if pif == PIF_HOST else PIF_HOST
            tcp = self._found(found, in_ns, False)
            udp = self._found(found, in_ns, True) if proto == IPPROTO_UDP else set()
            state[(pif, proto)] = frozenset(fwd_scan_wanted(
                proto, tcp, udp, ours[(other, IPPROTO_TCP)], ours[(other, IPPROTO_UDP)]))
        self.scan_state = state
        self.listen_sync()

    def _found(self, found: dict, in_ns: bool, udp: bool) -> set:
        """Ports bound on one side for one protocol, read at most once per scan."""
        if (in_ns, udp) not in found:
            found[(in_ns, udp)] = self._procnet(in_ns).ports(udp)
        return found[(in_ns, udp)]

    def listen_sync(self) -> None:
        """Open and close the SCAN rules' sockets to match the scan state (fwd_listen_sync)."""
        wanted = fwd_listen_wanted(self.table, self.scan_state, scan_only=True)
        before = {s: r for s, (_, r) in self.opened.items() if r.flags & FWD_SCAN}
        diff = fwd_listen_diff(wanted, before)
        gone = set()
        for sock in diff.close:
            lst, rule = self.opened.pop(sock)
            self._close(sock, lst)
            gone.add((rule, sock.port))
        for rule, port in sorted(gone, key=lambda x: x[1]):
            log.debug(f"auto {rule.option}: {PROTO_NAMES[rule.proto]} port {port} no longer "
                      "forwarded")
        self.failed &= {(s.pif, s.proto, s.port) for s in wanted}
        added: dict = {}
        for sock, rule in diff.open:
            try:
                self.opened[sock] = (self._open(sock, rule), rule)
            except (OSError, PastaError) as e:
                added.setdefault((rule, sock.port), e)
                continue
            added[(rule, sock.port)] = None
        for (rule, port), err in sorted(added.items(), key=lambda x: x[0][1]):
            key = (rule.pif, rule.proto, port)
            proto = PROTO_NAMES[rule.proto]
            if err is None:
                self.failed.discard(key)
                where = "namespace to host" if rule.pif == PIF_HOST else "host to namespace"
                log.debug(f"auto {rule.option}: forwarding {proto} port {port} ({where})")
            elif key not in self.failed:
                self.failed.add(key)
                log.debug(f"auto {rule.option}: can't listen on {proto} port {port}: "
                          f"{_why(err)}")

    def start(self) -> None:
        self._started = True
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and self.table.has_scan():
            self._timer = self.engine.call_later(SCAN_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.scan()
        self._arm()

    def close(self) -> None:
        """Stop scanning and close every socket (the owners' parts close after this)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for procnet in self.procnet.values():
            procnet.close()
        self.procnet = {}
        for sock, (lst, _) in list(self.opened.items()):
            self._close(sock, lst)
        self.opened = {}
