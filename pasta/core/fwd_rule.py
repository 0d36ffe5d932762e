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
- Parsing (`fwd_rule_parse`, `fwd_table_parse`): pasta 2026's fwd_rule_parse() on one -t/-u/-T/-U
  (or pesto) argument, with the grammar pieces of `pasta.plan.portspec`. `none` makes nothing
  (refused after a rule of the same pif and protocol: "-t none conflicts with previous
  options"). An address part (`ADDR[%IF]/`, `[*][%IF]/`; -t/-u only: "Listening address not
  allowed for -T ...") then the chunks in two passes: `auto` (SCAN flag on every rule of the
  argument; needs the SCAN cap) and `~` exclusions first, then each include as one rule per
  run of its ports not excluded, in order. With no include (`all`, `auto`, exclusions only):
  ports 1..65535 minus the ephemeral range and the exclusions, WEAK, one rule per run, target
  `all:TADDR` if given. No address: `::` DUAL with both IPV4 and IPV6 caps, else `0.0.0.0` or
  `::`. -T/-U: interface `lo` with the IFNAME cap, else one rule set on 127.0.0.1 and one on ::1
  (with a warning). Rules are added one by one with `fwd_rule_add`, so the first failure is
  pasta's: the reason, then "Unable to add rule R" (`FwdRuleError.lines`). `fwd_rule_parse`
  parses into an empty table and returns the rules; `fwd_table_parse` adds to a table (the
  command line's: conflicts with earlier arguments show up where pasta finds them).
- Run-time capabilities (`fwd_rules_for_caps`): rules parsed for two families become
  single-family ones when a family turns out disabled, as if parsed with that cap missing.
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

Limits and not handled: `taddr` is parsed and checked but the listeners cannot honour it yet,
nor -T/-U rules off the namespace's loopback: `fwd_rule_unsupported()` says so. The wire
encoding of a rule is `pasta.core.pesto`'s.

Kernel assumptions: none.

Differences from passt (`fwd_rule.c`, `fwd.c`):
- The pif is a field of the rule rather than the index of the table that holds it.
- `fwd_rule_parse()` raises instead of dying; `FwdRuleError.lines` keeps pasta's lines, and
  the -T/-U warning goes to a list instead of the log.
- `fwd_rules_for_caps()` has no pasta counterpart: pasta knows its families before parsing.
- Start-up failures keep pypasta's messages ("Failed to bind port P (E) for option '-t'",
  "Failed to bind any port for '-t' (E)"); the "any port" check applies to the best-effort rules
  of -t/-u only, grouped by protocol, address and interface (one exclusion-only argument).
- A run-time `replace()` is all or nothing (pasta closes everything, then reopens, with no
  rollback); a port kept with a new target keeps its socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

from pasta.util.errors import ConfigError
from pasta.core.flow import Pif
from pasta.plan.portspec import (EPHEMERAL_DEFAULT, IFNAMSIZ, NUM_PORTS, Chunk, ChunkKind,
                                 PortSpecError, c_strlen, parse_addrifname, parse_eoi,
                                 parse_literal, parse_port_chunk, parse_unsigned, show)

IPAny = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

PIF_HOST = Pif.HOST             # passt's pif ids (pif.h), as the flow table names them
PIF_SPLICE = Pif.SPLICE
PIF_NAMES = {PIF_HOST: "HOST", PIF_SPLICE: "SPLICE"}

IPPROTO_TCP = 6
IPPROTO_UDP = 17
PROTO_NAMES = {IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP"}
IPPROTO_NAMES = {1: "ICMP", IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP", 58: "ICMPv6"}   # ipproto_name()

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
BCAST4 = ipaddress.IPv4Address("255.255.255.255")

# The option each (pif, proto) comes from, for messages.
OPTION = {(PIF_HOST, IPPROTO_TCP): "-t", (PIF_HOST, IPPROTO_UDP): "-u",
          (PIF_SPLICE, IPPROTO_TCP): "-T", (PIF_SPLICE, IPPROTO_UDP): "-U"}


class FwdRuleError(ConfigError):
    """A rule that fails validation or conflicts with one already in the table.

    `lines` are every line pasta prints for it, in order (its warn()s, then the die() of
    fwd_rule_parse(): "Unable to add rule ..."); the message is the first, the reason."""

    def __init__(self, *lines: str):
        super().__init__(lines[0])
        self.lines = lines


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
def inany_ntop(addr: IPAny) -> str:
    """pasta's inany_ntop(): dotted IPv4, else glibc's inet_ntop(AF_INET6), which writes an
    address whose first 96 bits are zero and next 16 are not as `::a.b.c.d`."""
    if addr.version == 6:
        b = addr.packed
        if b[:12] == bytes(12) and b[12:14] != bytes(2):
            return f"::{ipaddress.IPv4Address(b[12:])}"
    return str(addr)


def fwd_rule_fmt(rule: FwdRule) -> str:
    """pasta's rule text: `PROTO [ADDR]%IF:FIRST[-LAST]  =>  [TADDR:]TO[-TOLAST] ` + flags."""
    addr = "*" if rule.flags & FWD_DUAL_STACK_ANY else inany_ntop(rule.addr)
    pct = f"%{rule.ifname}" if rule.ifname else ""
    t = rule.taddr
    taddr = f"{inany_ntop(t)}:" if t is not None and not t.is_unspecified else ""
    proto = IPPROTO_NAMES.get(rule.proto, "<unknown protocol>")
    if rule.first == rule.last:
        ports, tports = f"{rule.first}", f"{rule.to}"
    else:
        # pasta's in_port_t arithmetic: a target range from a server may wrap at 65536.
        ports, tports = (f"{rule.first}-{rule.last}",
                         f"{rule.to}-{rule.target(rule.last) & 0xFFFF}")
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


def _is_multicast(a: IPAny) -> bool:
    """inany_is_multicast(): IPv6 or IPv4 multicast, or the IPv4 broadcast address."""
    return a.is_multicast or (a.version == 4 and a == BCAST4)


def _check(caps: int, new: FwdRule) -> None:
    """fwd_rule_add()'s checks of one rule on its own, in its order and with its messages."""
    if new.first > new.last:
        raise FwdRuleError(f"Rule has invalid port range {new.first}-{new.last}")
    if not new.first:
        raise FwdRuleError("Forwarding rule attempts to map from port 0")
    if not new.to or new.target(new.last) >= NUM_PORTS or new.last >= NUM_PORTS:
        raise FwdRuleError("Forwarding rule attempts to map to port 0")
    if new.flags & ~FWD_FLAGS:
        raise FwdRuleError(f"Rule has invalid flags 0x{new.flags & ~FWD_FLAGS:x}")
    # Not fwd_rule_add()'s: what pasta's tables and conf_recv_rules() check elsewhere.
    if new.pif not in PIF_NAMES:
        raise FwdRuleError("Received rules for non-existent table")
    if c_strlen(new.ifname) >= IFNAMSIZ:
        raise FwdRuleError("Interface name was not NULL terminated")
    if new.flags & FWD_DUAL_STACK_ANY:
        if new.addr != ANY6:
            raise FwdRuleError(f"Dual stack rule has non-wildcard address {inany_ntop(new.addr)}")
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
        name = IPPROTO_NAMES.get(new.proto, "<unknown protocol>")
        raise FwdRuleError(f"Unsupported protocol 0x{new.proto & 0xFF:x} ({name}) "
                           "for forwarding rule")
    t = new.taddr
    if t is not None and not t.is_unspecified:
        ts = inany_ntop(t)
        if _is_multicast(t):
            raise FwdRuleError(f"Multicast target address {ts} for forwarding rule")
        if new.flags & FWD_DUAL_STACK_ANY:
            raise FwdRuleError(f"Dual stack forward to IPv{t.version} address {ts} unsupported",
                               "Did you mean %s/... instead?"
                               % ("0.0.0.0" if t.version == 4 else "[::]"))
        if t.version != new.addr.version:
            raise FwdRuleError(f"Forward from IPv{new.addr.version} ({inany_ntop(new.addr)}) "
                               f"to IPv{t.version} ({ts}) unsupported")


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
        raise FwdRuleError("Rules require too many listening sockets "
                           f"(maximum {MAX_LISTEN_SOCKS})")
    return FwdTable(table.caps, table.rules + (new,))


def fwd_rule_unsupported(rule: FwdRule) -> Optional[str]:
    """Why pypasta cannot listen for a valid rule yet, or None: a -T/-U rule with a target
    address (pasta's outbound rules deliver to the host's loopback), or on anything but the
    namespace's loopback (127.0.0.1, ::1, or every address of interface `lo`)."""
    if rule.pif == PIF_SPLICE and rule.taddr is not None and not rule.taddr.is_unspecified:
        return f"-T/-U target addresses are not supported: {fwd_rule_fmt(rule)}"
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


# ------------------------------------------------------------------------------- parsing
def fwd_parse_ephemeral(text: str) -> Optional[Tuple[int, int]]:
    """The ephemeral range from the text of ip_local_port_range (`MIN<tab>MAX`), or None where
    pasta's fwd_probe_ephemeral() says "Unable to parse" and keeps `EPHEMERAL_DEFAULT`."""
    line = text.split("\n", 1)[0]
    r = parse_unsigned(line, 0)
    if r is None:
        return None
    lo, p = r
    p = parse_literal(line, p, "\t")
    r = parse_unsigned(line, p) if p is not None else None
    if r is None or not parse_eoi(line, r[1]) or lo >= NUM_PORTS or r[0] >= NUM_PORTS:
        return None
    return lo, r[0]


class _Parse:
    """One fwd_rule_parse() call: the table grows rule by rule, as pasta's does, so that the
    first error is the one pasta reports."""

    def __init__(self, table: FwdTable, pif: int, proto: int, caps: int,
                 ephemeral: Tuple[int, int], warnings: Optional[List[str]]):
        self.table = table
        self.pif, self.proto, self.caps = pif, proto, caps
        self.ephemeral = ephemeral
        self.warnings = warnings
        self.added: List[FwdRule] = []

    def add(self, rule: FwdRule) -> None:
        """fwd_rule_add(), and die("Unable to add rule ...") as fwd_rule_range_except()."""
        try:
            self.table = fwd_rule_add(self.table, rule)
        except FwdRuleError as e:
            raise FwdRuleError(*e.lines, f"Unable to add rule {fwd_rule_fmt(rule)}") from None
        self.added.append(rule)

    def range_except(self, addr: Optional[IPAny], ifname: str, first: int, last: int,
                     exclude: bytearray, taddr: Optional[IPAny], tgt_first: int,
                     flags: int) -> None:
        """fwd_rule_range_except(): one rule per run of first..last not in `exclude`."""
        if addr is None:
            addr, flags = ANY6, flags | FWD_DUAL_STACK_ANY
        delta = tgt_first - first
        base = first
        while base <= last:
            base = exclude.find(0, base, last + 1)          # next port not excluded
            if base < 0:
                break
            end = exclude.find(1, base, last + 1)           # next excluded one
            end = last + 1 if end < 0 else end
            self.add(FwdRule(self.pif, self.proto, base, end - 1, (base + delta) & 0xFFFF,
                             addr, taddr, ifname, flags))
            base = end

    def ports(self, addr: Optional[IPAny], ifname: str, spec: str) -> None:
        """fwd_rule_parse_ports(): the chunks after the address part, in two passes."""
        exclude = bytearray(NUM_PORTS)
        flags = 0
        chunks: List[Chunk] = []
        p = 0
        while True:             # first pass: `auto` and exclusions
            r = parse_port_chunk(spec, p)
            if r is None:
                raise PortSpecError(f"Invalid port specifier '{show(spec)}'")
            chunk, p = r
            if chunk.kind is ChunkKind.AUTO:
                if not self.caps & FWD_CAP_SCAN:
                    raise PortSpecError("'auto' port forwarding is only allowed for pasta")
                flags |= FWD_SCAN
            elif chunk.kind is ChunkKind.EXCLUDE:
                lr = chunk.lrange
                exclude[lr.first:lr.last + 1] = b"\1" * (lr.last - lr.first + 1)
            chunks.append(chunk)
            q = parse_literal(spec, p, ",")
            if q is None:
                break
            p = q
        all_taddr: Optional[IPAny] = None
        exclude_only = True
        for chunk in chunks:    # second pass: includes (the same chunks: parsing is pure)
            if chunk.kind is ChunkKind.ALL:
                all_taddr = chunk.taddr
            elif chunk.kind is ChunkKind.INCLUDE:
                exclude_only = False
                lr, tr = chunk.lrange, chunk.trange
                if tr.last - tr.first != lr.last - lr.first:
                    raise PortSpecError(f"Invalid port specifier '{show(spec)}'")
                self.range_except(addr, ifname, lr.first, lr.last, exclude, chunk.taddr,
                                  tr.first, flags)
        if not parse_eoi(spec, p):
            raise PortSpecError(f"Invalid port specifier '{show(spec)}'")     # trailing garbage
        if exclude_only:        # `all`, `auto`, exclusions: every non-ephemeral port
            lo, hi = self.ephemeral
            if lo <= hi:
                exclude[lo:hi + 1] = b"\1" * (hi - lo + 1)
            self.range_except(addr, ifname, 1, NUM_PORTS - 1, exclude, all_taddr, 1,
                              flags | FWD_WEAK)

    def parse(self, optarg: str) -> bool:
        """fwd_rule_parse() for one argument; False for `none`."""
        optname = OPTION[(self.pif, self.proto)]
        caps = self.caps
        if optarg == "none":
            if any(r.proto == self.proto for r in self.table.rules_of(self.pif)):
                raise PortSpecError(f"{optname} none conflicts with previous options")
            return False
        splice = self.pif == PIF_SPLICE
        r = parse_addrifname(optarg, 0)
        if r is not None:
            addr, ifname, p = r
            if splice:
                raise PortSpecError(f"Listening address not allowed for {optname} {show(optarg)}")
            if ifname in (".", ".."):
                raise PortSpecError(f"Invalid interface name: {show(ifname)}")
        else:
            addr, ifname, p = None, "", 0
        spec = optarg[p:]
        if splice:
            if not caps & FWD_CAP_IFNAME:
                if self.warnings is not None:
                    self.warnings.append("SO_BINDTODEVICE unavailable, forwarding only "
                                         f"127.0.0.1 and ::1 for '{optname} {show(optarg)}'")
                if caps & FWD_CAP_IPV4:
                    self.ports(LOOPBACK4, "", spec)
                if caps & FWD_CAP_IPV6:
                    self.ports(LOOPBACK6, "", spec)
                return True
            ifname = "lo"
        # No need for dual stack with one IP version
        if addr is None and not caps & FWD_CAP_IPV4:
            addr = ANY6
        elif addr is None and not caps & FWD_CAP_IPV6:
            addr = ANY4
        if ifname and not caps & FWD_CAP_IFNAME:
            raise PortSpecError(f"Device binding for '{optname} {show(optarg)}' unsupported "
                                "(requires kernel 5.7+)")
        self.ports(addr, ifname, spec)
        return True


def fwd_table_parse(table: FwdTable, optarg: str, pif: int, proto: int,
                    ephemeral: Tuple[int, int] = EPHEMERAL_DEFAULT,
                    warnings: Optional[List[str]] = None) -> FwdTable:
    """`table` plus the rules of one -t/-u (PIF_HOST) or -T/-U (PIF_SPLICE) argument, checked
    against `table.caps` and added one by one as pasta's fwd_rule_parse() does, so the error
    (PortSpecError or FwdRuleError, both ConfigError) is the one pasta reports; `none` changes
    nothing but is refused after a rule of the same pif and protocol. Non-fatal warnings
    (SO_BINDTODEVICE missing for -T/-U) are appended to `warnings`."""
    job = _Parse(table, pif, proto, table.caps, ephemeral, warnings)
    job.parse(optarg.split("\0", 1)[0])          # a C string ends at its first NUL
    return job.table


def fwd_rule_parse(optarg: str, pif: int, proto: int, caps: int, ephemeral: Tuple[int, int],
                   *, warnings: Optional[List[str]] = None) -> Optional[List[FwdRule]]:
    """The rules one -t/-u/-T/-U argument makes on its own (None for `none`), in pasta's
    order, each valid for `caps` and free of conflicts with the others: pasta 2026's
    fwd_rule_parse() into an empty table. Raises PortSpecError or FwdRuleError."""
    job = _Parse(FwdTable(caps), pif, proto, caps, ephemeral, warnings)
    if not job.parse(optarg.split("\0", 1)[0]):
        return None
    return job.added


def fwd_rules_for_caps(rules: Iterable[FwdRule], caps: int) -> List[FwdRule]:
    """Rules parsed for both families (and the scan) adapted to the capabilities found at run
    time: a DUAL rule becomes one on the unspecified address of the family that is left (what
    fwd_rule_parse() makes with one family: `0.0.0.0` or `::`, interface kept), and SCAN rules
    go when nothing can scan. Rules of a missing family are kept, for `fwd_rule_add()` to refuse
    ("IPv6 forward, but IPv6 not enabled") as pasta refuses them when parsing."""
    v4, v6 = bool(caps & FWD_CAP_IPV4), bool(caps & FWD_CAP_IPV6)
    out: List[FwdRule] = []
    for rule in rules:
        if rule.flags & FWD_SCAN and not caps & FWD_CAP_SCAN:
            continue
        if rule.flags & FWD_DUAL_STACK_ANY and v4 != v6:
            rule = replace(rule, addr=ANY4 if v4 else ANY6,
                           flags=rule.flags & ~FWD_DUAL_STACK_ANY)
        out.append(rule)
    return out


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
