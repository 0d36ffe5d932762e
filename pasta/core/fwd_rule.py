"""Forwarding rules: one table of `fwd_rule`s for -t/-u/-T/-U, `auto` and the slirp4netns API.

Purpose: every decision about which listening sockets exist, in the shape of pasta 2026's
`struct fwd_rule` / `struct fwd_table` (fwd_rule.h), so that the start-up options, the `auto`
scan, the slirp4netns API and (next) the pesto control socket all build and edit the same thing.
Opening and closing the sockets is `pasta.shell.fwd_listen`'s job; nothing here does I/O.

Theory of operation:
- A `FwdRule` is one pesto record (pesto-protocol.md 3.4): listening `addr` (or `::` with
  `FWD_DUAL_STACK_ANY` for every address of both families), `ifname`, ports `first..last`,
  target port `to` for `first` (port n goes to `to + n - first`), target address `taddr` (None:
  the namespace's own address), `proto` (6, 17) and `flags` (`FWD_DUAL_STACK_ANY`, `FWD_WEAK`:
  bind failures are not fatal, `FWD_SCAN`: listen only on ports the scan found bound on the
  other side, `auto`). Unlike pasta's per-pif tables, the rule carries its `pif`: `PIF_HOST`
  (-t/-u, listening on the host, forwarding into the namespace) or `PIF_SPLICE` (-T/-U,
  listening on the namespace's loopback, forwarding to the host's). `rules_of(pif)` gives
  pasta's per-pif table, in order.
- Building (`fwd_rules_from_spec`): a parsed `portspec.PortForward` becomes rules as
  `fwd_rule_parse()` makes them: each item's ports minus its `~` exclusions (and, for an
  exclusion-only list, minus the ephemeral range) as one rule per contiguous run; no address and
  both families give `::` DUAL, one family `0.0.0.0` or `::`; `auto` gives WEAK|SCAN runs over
  1..65535 minus the exclusions. -T/-U rules listen on 127.0.0.1 and ::1 (one rule per enabled
  family: pasta's form without the IFNAME capability, and what pypasta binds).
- Validating (`fwd_rule_add`): pasta's checks and messages, including the conflict rule: same pif
  and protocol, overlapping ports and matching addresses (DUAL matches everything, `0.0.0.0`
  every IPv4 address, `::` every IPv6 address) is "Forwarding configuration conflict: A versus
  B"; exact duplicates conflict too.
- Listening sockets (`fwd_listen_wanted`): a table and the scan state (`{(pif, proto): ports}`)
  give the wanted sockets, each a `Sock` (pif, proto, family, address, interface, port) mapped to
  the rule it serves; `fwd_listen_diff(wanted, opened)` says which to open, which to close and
  which stay open but now lead to another target port (`retarget`). `replace()` in the shell
  opens first, so a failure can leave the old table untouched.
- Auto scan (`fwd_scan_wanted`): the ports one (pif, proto) forwards are those bound on the
  scanned side minus pypasta's own listeners there (never forwarded back); UDP also takes the TCP
  listeners (pasta's mirroring for iperf3 and friends). Exclusions are already out of the rules.
- Text (`fwd_rule_fmt`): pasta's rule text, `TCP [*]:22  =>  22 ` (pesto-protocol.md 6.3).

States and events: none; `FwdTable` is a frozen value and every function is pure.

Invariants:
- In a `FwdTable` built by `fwd_rule_add`: 1 <= first <= last, `to + last - first` <= 65535,
  flags within the three known bits, DUAL only with `::` and both families, every address of an
  enabled family, no two rules of one pif conflict, at most `MAX_FWD_RULES` rules and
  `MAX_LISTEN_SOCKS` port slots per pif.
- Therefore a `Sock` belongs to exactly one rule of a table.
- Addresses are `ipaddress` objects; IPv4 rules hold `IPv4Address` (pasta's `::ffff:a.b.c.d`).

Limits and not handled: `taddr` is carried and checked but no front end sets it yet (the
-t/-u grammar has no target address), and the listeners cannot honour it, nor -T/-U rules
off the namespace's loopback: `fwd_rule_unsupported()` says so; `all` is passt's only. The wire encoding of a rule is the
control socket's (next issue).

Kernel assumptions: none.

Differences from passt (`fwd_rule.c`, `fwd.c`):
- The pif is a field of the rule rather than the index of the table that holds it.
- `auto` covers the ephemeral range too (pypasta's auto always did), and takes exclusions.
- Start-up failures keep pypasta's messages ("Failed to bind port P (E) for option '-t'",
  "Failed to bind any port for '-t' (E)"); the "any port" check applies to the best-effort rules
  of -t/-u only, grouped by protocol, address and interface (one exclusion-only argument).
- A run-time `replace()` is all or nothing (pasta closes everything, then reopens, with no
  rollback); a port kept with a new target keeps its socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

from pasta.util.errors import ConfigError
from pasta.core.flow import Pif
from pasta.plan.portspec import EPHEMERAL_DEFAULT, FwdMode, NUM_PORTS, PortForward

IPAny = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

PIF_HOST = Pif.HOST             # passt's pif ids (pif.h), as the flow table names them
PIF_SPLICE = Pif.SPLICE
PIF_NAMES = {PIF_HOST: "HOST", PIF_SPLICE: "SPLICE"}

IPPROTO_TCP = 6
IPPROTO_UDP = 17
PROTO_NAMES = {IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP"}

FWD_DUAL_STACK_ANY = 1 << 0
FWD_WEAK = 1 << 1
FWD_SCAN = 1 << 2
FWD_FLAGS = FWD_DUAL_STACK_ANY | FWD_WEAK | FWD_SCAN

FWD_CAP_IPV4 = 1 << 0
FWD_CAP_IPV6 = 1 << 1
FWD_CAP_TCP = 1 << 2
FWD_CAP_UDP = 1 << 3
FWD_CAP_SCAN = 1 << 4
FWD_CAP_IFNAME = 1 << 5
FWD_CAP_ALL = 0x3F

MAX_FWD_RULES = 255
MAX_LISTEN_SOCKS = NUM_PORTS * 5

ANY4 = ipaddress.IPv4Address("0.0.0.0")
ANY6 = ipaddress.IPv6Address("::")
LOOPBACK4 = ipaddress.IPv4Address("127.0.0.1")
LOOPBACK6 = ipaddress.IPv6Address("::1")

# The option each (pif, proto) comes from, for messages.
OPTION = {(PIF_HOST, IPPROTO_TCP): "-t", (PIF_HOST, IPPROTO_UDP): "-u",
          (PIF_SPLICE, IPPROTO_TCP): "-T", (PIF_SPLICE, IPPROTO_UDP): "-U"}


class FwdRuleError(ConfigError):
    """A rule that fails validation or conflicts with one already in the table."""


@dataclass(frozen=True)
class FwdRule:
    """One `struct fwd_rule`, plus the pif whose table holds it."""

    pif: int
    proto: int
    first: int
    last: int
    to: int
    addr: IPAny = ANY6
    taddr: Optional[IPAny] = None
    ifname: str = ""
    flags: int = 0

    def target(self, port: int) -> int:
        return self.to + (port - self.first)

    @property
    def option(self) -> str:
        return OPTION.get((self.pif, self.proto), "?")

    def families(self) -> Tuple[bool, ...]:
        """The families it listens on, as `v6` booleans."""
        if self.flags & FWD_DUAL_STACK_ANY:
            return (False, True)
        return (self.addr.version == 6,)

    def bind_addr(self) -> Optional[IPAny]:
        """The address to bind, None for the unspecified address of the family."""
        return None if self.addr.is_unspecified else self.addr


class Sock(NamedTuple):
    """One listening socket a table wants: what identifies it to the kernel."""

    pif: int
    proto: int
    v6: bool
    addr: Optional[IPAny]           # None: every address of the family
    ifname: str
    port: int


@dataclass(frozen=True)
class FwdTable:
    """The forwarding rules of both pifs, in order, and the capabilities they were checked for."""

    caps: int = FWD_CAP_ALL
    rules: Tuple[FwdRule, ...] = ()

    def rules_of(self, pif: int) -> Tuple[FwdRule, ...]:
        return tuple(r for r in self.rules if r.pif == pif)

    def without(self, rule: FwdRule) -> "FwdTable":
        """The table minus `rule` (an exact match; KeyError if it is not there)."""
        if rule not in self.rules:
            raise KeyError(rule)
        return FwdTable(self.caps, tuple(r for r in self.rules if r != rule))

    def has_scan(self) -> bool:
        return any(r.flags & FWD_SCAN for r in self.rules)


# ------------------------------------------------------------------------------------ text
def fwd_rule_fmt(rule: FwdRule) -> str:
    """pasta's rule text: `PROTO [ADDR]%IF:FIRST[-LAST]  =>  [TADDR:]TO[-TOLAST] ` + flags."""
    addr = "*" if rule.flags & FWD_DUAL_STACK_ANY else str(rule.addr)
    pct = f"%{rule.ifname}" if rule.ifname else ""
    taddr = f"{rule.taddr}:" if rule.taddr is not None and not rule.taddr.is_unspecified else ""
    proto = PROTO_NAMES.get(rule.proto, str(rule.proto))
    if rule.first == rule.last:
        ports, tports = f"{rule.first}", f"{rule.to}"
    else:
        ports, tports = f"{rule.first}-{rule.last}", f"{rule.to}-{rule.target(rule.last)}"
    weak = " (best effort)" if rule.flags & FWD_WEAK else ""
    scan = " (auto-scan)" if rule.flags & FWD_SCAN else ""
    return f"{proto} [{addr}]{pct}:{ports}  =>  {taddr}{tports} {weak}{scan}"


# ------------------------------------------------------------------------------ validation
def _matches(a: FwdRule, b: FwdRule) -> bool:
    """pasta's inany_matches() on fwd_rule_addr(): do the listening addresses overlap?"""
    if a.flags & FWD_DUAL_STACK_ANY or b.flags & FWD_DUAL_STACK_ANY:
        return True
    if a.addr.version != b.addr.version:
        return False
    return a.addr.is_unspecified or b.addr.is_unspecified or a.addr == b.addr


def fwd_rule_conflicts(a: FwdRule, b: FwdRule) -> bool:
    return (a.pif == b.pif and a.proto == b.proto and _matches(a, b)
            and not (a.last < b.first or b.last < a.first))


def _check(caps: int, new: FwdRule) -> None:
    """fwd_rule_add()'s checks of one rule on its own, with pasta's messages."""
    if new.first > new.last:
        raise FwdRuleError(f"Rule has invalid port range {new.first}-{new.last}")
    if not new.first:
        raise FwdRuleError("Forwarding rule attempts to map from port 0")
    if not new.to or new.target(new.last) >= NUM_PORTS or new.last >= NUM_PORTS:
        raise FwdRuleError("Forwarding rule attempts to map to port 0")
    if new.flags & ~FWD_FLAGS:
        raise FwdRuleError(f"Rule has invalid flags 0x{new.flags & ~FWD_FLAGS:x}")
    if new.pif not in PIF_NAMES:
        raise FwdRuleError("Received rules for non-existent table")
    if len(new.ifname) >= 16:
        raise FwdRuleError("Interface name was not NULL terminated")
    if new.ifname and not caps & FWD_CAP_IFNAME:
        raise FwdRuleError(f"Device binding for '{new.option} {new.ifname}' unsupported")
    if new.flags & FWD_DUAL_STACK_ANY:
        if new.addr != ANY6:
            raise FwdRuleError(f"Dual stack rule has non-wildcard address {new.addr}")
        if not caps & FWD_CAP_IPV4:
            raise FwdRuleError("Dual stack forward, but IPv4 not enabled")
        if not caps & FWD_CAP_IPV6:
            raise FwdRuleError("Dual stack forward, but IPv6 not enabled")
    elif new.addr.version == 4 and not caps & FWD_CAP_IPV4:
        raise FwdRuleError("IPv4 forward, but IPv4 not enabled")
    elif new.addr.version == 6 and not caps & FWD_CAP_IPV6:
        raise FwdRuleError("IPv6 forward, but IPv6 not enabled")
    if new.proto == IPPROTO_TCP:
        if not caps & FWD_CAP_TCP:
            raise FwdRuleError("Can't add TCP forwarding rule, TCP not enabled")
    elif new.proto == IPPROTO_UDP:
        if not caps & FWD_CAP_UDP:
            raise FwdRuleError("Can't add UDP forwarding rule, UDP not enabled")
    else:
        raise FwdRuleError(f"Unsupported protocol 0x{new.proto:x} for forwarding rule")
    if new.flags & FWD_SCAN and not caps & FWD_CAP_SCAN:
        raise FwdRuleError("'auto' port forwarding is only allowed for pasta")
    t = new.taddr
    if t is not None and not t.is_unspecified:
        if t.is_multicast:
            raise FwdRuleError(f"Forwarding to multicast address {t} unsupported")
        if new.flags & FWD_DUAL_STACK_ANY:
            raise FwdRuleError(f"Dual stack forward to IPv{t.version} address {t} unsupported")
        if t.version != new.addr.version:
            raise FwdRuleError(f"Forwarding from IPv{new.addr.version} to IPv{t.version} "
                               "address unsupported")


def fwd_rule_add(table: FwdTable, new: FwdRule) -> FwdTable:
    """`table` with `new` appended, after pasta's validation (FwdRuleError if refused)."""
    _check(table.caps, new)
    same = table.rules_of(new.pif)
    for old in same:
        if fwd_rule_conflicts(new, old):
            raise FwdRuleError(f"Forwarding configuration conflict: {fwd_rule_fmt(new)} "
                               f"versus {fwd_rule_fmt(old)}")
    if len(same) >= MAX_FWD_RULES:
        raise FwdRuleError(f"Too many rules (maximum {MAX_FWD_RULES})")
    if sum(r.last - r.first + 1 for r in same) + new.last - new.first + 1 > MAX_LISTEN_SOCKS:
        raise FwdRuleError("Rules require too many listening sockets")
    return FwdTable(table.caps, table.rules + (new,))


def fwd_rule_unsupported(rule: FwdRule) -> Optional[str]:
    """Why pypasta cannot listen for a valid rule yet, or None: a target address (the
    listeners deliver to the namespace's own address), or a -T/-U rule on anything but the
    namespace's loopback (127.0.0.1, ::1, or every address of interface `lo`)."""
    if rule.taddr is not None and not rule.taddr.is_unspecified:
        return f"target addresses are not supported: {fwd_rule_fmt(rule)}"
    if rule.pif == PIF_SPLICE and not (rule.addr.is_loopback and not rule.ifname
                                       or rule.addr.is_unspecified and rule.ifname == "lo"):
        return f"-T/-U listen on the namespace's loopback only: {fwd_rule_fmt(rule)}"
    return None


def fwd_table(caps: int, rules: Iterable[FwdRule]) -> FwdTable:
    """A table of `rules`, each added (and so checked) in order."""
    table = FwdTable(caps)
    for rule in rules:
        table = fwd_rule_add(table, rule)
    return table


# -------------------------------------------------------------------------------- building
def _runs(ports: Iterable[int]) -> Iterator[Tuple[int, int]]:
    """Contiguous (first, last) runs of an ascending port sequence."""
    first = last = None
    for port in ports:
        if last is not None and port == last + 1:
            last = port
            continue
        if first is not None:
            yield first, last
        first = last = port
    if first is not None:
        yield first, last


def _listen_addrs(pif: int, caps: int, addr: Optional[IPAny]) -> List[Tuple[IPAny, int]]:
    """(address, flags) of the rules one item makes: pasta's dual-stack choice."""
    v4, v6 = bool(caps & FWD_CAP_IPV4), bool(caps & FWD_CAP_IPV6)
    if pif == PIF_SPLICE:
        return [(LOOPBACK4, 0)] * v4 + [(LOOPBACK6, 0)] * v6
    if addr is not None:
        return [(addr, 0)]
    if v4 and v6:
        return [(ANY6, FWD_DUAL_STACK_ANY)]
    return [(ANY4, 0)] * v4 + [(ANY6, 0)] * v6


def fwd_rules_from_spec(spec: Optional[PortForward], pif: int, proto: int, caps: int,
                        ephemeral: Tuple[int, int] = EPHEMERAL_DEFAULT) -> List[FwdRule]:
    """The rules of one option's parsed value (None: not given, which means `auto`)."""
    rules: List[FwdRule] = []
    if spec is None or spec.mode is FwdMode.AUTO:
        if not caps & FWD_CAP_SCAN:
            return rules
        ports = (p for p in range(1, NUM_PORTS) if spec is None or not spec.is_excluded(p))
        for first, last in _runs(ports):
            for addr, flags in _listen_addrs(pif, caps, None):
                rules.append(FwdRule(pif, proto, first, last, first, addr,
                                     flags=flags | FWD_WEAK | FWD_SCAN))
        return rules
    if spec.mode is not FwdMode.SPEC:
        return rules
    for item in spec.rules:
        weak = FWD_WEAK if item.weak else 0
        addrs = _listen_addrs(pif, caps, item.addr)
        for first, last in _runs(port for port, _ in item.ports(ephemeral)):
            for addr, flags in addrs:
                rules.append(FwdRule(pif, proto, first, last, first + item.delta, addr,
                                     ifname=item.ifname or "", flags=flags | weak))
    return rules


def fwd_caps(v4: bool, v6: bool, tcp: bool, udp: bool, scan: bool,
             ifname: bool = True) -> int:
    """The capability bits of pasta's fwd_rule_init()."""
    return (FWD_CAP_IPV4 * v4 | FWD_CAP_IPV6 * v6 | FWD_CAP_TCP * tcp | FWD_CAP_UDP * udp
            | FWD_CAP_SCAN * scan | FWD_CAP_IFNAME * ifname)


# ------------------------------------------------------------------------ listening sockets
def fwd_rule_socks(rule: FwdRule, ports: Optional[Iterable[int]] = None) -> Iterator[Sock]:
    """The sockets of `rule`: every port, or (SCAN) those of `ports` inside its range."""
    if ports is None:
        span: Iterable[int] = range(rule.first, rule.last + 1)
    else:
        span = sorted(p for p in ports if rule.first <= p <= rule.last)
    addr = rule.bind_addr()
    for port in span:
        for v6 in rule.families():
            yield Sock(rule.pif, rule.proto, v6, addr, rule.ifname, port)


ScanState = Mapping[Tuple[int, int], Iterable[int]]     # (pif, proto) -> ports found bound


def fwd_listen_wanted(table: FwdTable, scan: ScanState,
                      scan_only: bool = False) -> Dict[Sock, FwdRule]:
    """Every socket the table wants given the scan state, mapped to its rule
    (`scan_only`: the SCAN rules' sockets alone, for a rescan)."""
    wanted: Dict[Sock, FwdRule] = {}
    for rule in table.rules:
        if rule.flags & FWD_SCAN:
            ports = scan.get((rule.pif, rule.proto), ())
        elif scan_only:
            continue
        else:
            ports = None
        for sock in fwd_rule_socks(rule, ports):
            wanted[sock] = rule
    return wanted


@dataclass(frozen=True)
class FwdDiff:
    """What turns the opened sockets into the wanted ones."""

    open: Tuple[Tuple[Sock, FwdRule], ...]
    close: Tuple[Sock, ...]
    keep: Tuple[Tuple[Sock, FwdRule], ...]      # open already; the rule (and target) may change

    def retarget(self, opened: Mapping[Sock, FwdRule]) -> List[Tuple[Sock, int]]:
        """Kept sockets whose target port changes: (socket, new target)."""
        return [(s, r.target(s.port)) for s, r in self.keep
                if opened[s].target(s.port) != r.target(s.port)]


def fwd_listen_diff(wanted: Mapping[Sock, FwdRule], opened: Mapping[Sock, FwdRule]) -> FwdDiff:
    """Sockets to open (wanted, not open), to close (open, not wanted) and to keep."""
    return FwdDiff(open=tuple((s, r) for s, r in wanted.items() if s not in opened),
                   close=tuple(s for s in opened if s not in wanted),
                   keep=tuple((s, r) for s, r in wanted.items() if s in opened))


def fwd_weak_unbound(wanted: Mapping[Sock, FwdRule], bound: Iterable[Sock]) -> List[FwdRule]:
    """Best-effort -t/-u rule groups (protocol, address, interface) of which no socket could
    be bound: one rule of each, for pypasta's "Failed to bind any port" start-up check."""
    groups: Dict[tuple, FwdRule] = {}
    ok = set()
    bound = set(bound)
    for sock, rule in wanted.items():
        if rule.pif != PIF_HOST or rule.flags & (FWD_SCAN | FWD_WEAK) != FWD_WEAK:
            continue
        key = (rule.proto, rule.addr, rule.ifname)
        groups.setdefault(key, rule)
        if sock in bound:
            ok.add(key)
    return [rule for key, rule in groups.items() if key not in ok]


# ------------------------------------------------------------------------------- auto scan
def fwd_scan_side(pif: int) -> bool:
    """True if the SCAN rules of `pif` scan the namespace (-t/-u), False the host (-T/-U)."""
    return pif == PIF_HOST


def fwd_scan_wanted(proto: int, scan_tcp: set, scan_udp: set, ours_tcp: set,
                    ours_udp: set) -> set:
    """Ports a (pif, proto) with SCAN rules forwards: bound by others on the scanned side.

    `ours_*` are the ports pypasta listens on there (never forwarded back); for UDP the TCP
    listeners count too (pasta's mirroring: iperf3's TCP control port, UDP data on the same).
    """
    want = set(scan_tcp) - set(ours_tcp)
    if proto == IPPROTO_UDP:
        want |= set(scan_udp) - set(ours_udp)
    return want


def fwd_scan_keys(table: FwdTable) -> List[Tuple[int, int]]:
    """The (pif, proto) pairs that have SCAN rules, in a fixed order."""
    keys = {(r.pif, r.proto) for r in table.rules if r.flags & FWD_SCAN}
    return sorted(keys)


def fwd_listen_ports(opened: Iterable[Sock]) -> Dict[Tuple[int, int], set]:
    """{(pif, proto): ports} pypasta listens on (its own, never to be forwarded back)."""
    ports: Dict[Tuple[int, int], set] = {(pif, proto): set() for pif in PIF_NAMES
                                         for proto in PROTO_NAMES}
    for s in opened:
        ports[(s.pif, s.proto)].add(s.port)
    return ports
