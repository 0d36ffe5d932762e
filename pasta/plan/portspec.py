"""Port-forwarding specifications: the `-t/-u/-T/-U` grammar, parsed into data.

Purpose: turn the text of one or more `-t/-u/-T/-U` arguments into a frozen `PortForward`; turning
that into forwarding rules is `pasta.core.fwd_rule`'s job and binding sockets `pasta.shell.fwd_listen`'s
(pasta does all three at once in `conf_ports()`; we keep them apart).

Theory of operation: `pasta.front.conf` calls `accumulate(prev, text, ns_side)` once per occurrence of an
option, in command-line order, threading the result through (`parse_all()` does the loop). The first
call gets `prev=None`. The result goes into `Config.tcp_ports` (and friends);
`fwd_rule.fwd_rules_from_spec()` later makes the forwarding table's rules from it
(`PortRule.ports(ephemeral)`); `PortForward.port_map(ephemeral)` gives the static
{listening port: target port} map.

Grammar (pasta-reference.md 12.1):

    SPEC     := "none" | "auto" ("," "~" RANGE)* | LIST | ADDRPART "/" LIST
    ADDRPART := ADDR | ADDR "%" IFNAME | "%" IFNAME      # -t/-u only; ADDR may be [bracketed]
    LIST     := ITEM ("," ITEM)*
    ITEM     := RANGE [":" RANGE] | "~" RANGE
    RANGE    := PORT ["-" PORT]                           # decimal digits only, first <= last

States and events (`FwdMode`; exactly one per `PortForward`):
- `FwdMode.SPEC`: explicit rules (one `PortRule` per non-`~` item, in order; several arguments
  accumulate).
- `FwdMode.NONE`: forward nothing.
- `FwdMode.AUTO`: forward whatever is bound on the other side, found by scanning at run time
  (`pasta.shell.autofwd`); no rules, but `excluded` ranges (`auto,~22,~6000-6010`, a pypasta extension:
  pasta takes no exclusions with `auto`).
`NONE` or `AUTO` after any earlier argument for the same option is a conflict; a list after `NONE` or
`AUTO` is a conflict too (pasta's `mode_conflict` and "Specific ports ..." errors).

Invariants:
- Every `PortRule` has 1 <= first <= last <= 65535 and a target range of the same length inside
  1..65535, except an exclusion-only rule (`weak=True`), which spans 1..65535 with delta 0.
- `PortRule.excluded` holds the `~` ranges written in the *same argument* as the rule, sorted and
  non-overlapping; exclusions never apply across arguments (as in pasta, where the exclusion bitmap
  is local to one `conf_ports()` call).
- `ifname` is 1..15 characters (IFNAMSIZ - 1); `addr` is an `ipaddress` object or None.
- Only `PortSpecError` (a `ConfigError`) escapes the parser, whatever the input.

Limits and not handled:
- The ephemeral range is not read here (no I/O): exclusion-only lists keep it symbolic and the
  caller passes it to `port_map()` (`EPHEMERAL_DEFAULT` is RFC 6335's 49152-65535, pasta's fallback).
- `auto` is only a mode here: scanning `/proc/net/*` is `pasta.shell.autofwd`'s job.
- pasta's warning "Altering mapping of already mapped port number" is not produced; a later rule for
  the same port simply wins in `port_map()`, which is also what pasta ends up doing.

Differences from passt (`conf.c conf_ports`, `parse_port_range`):
- Port numbers must be plain decimal digits; pasta's `strtoul` also took leading blanks and signs.
- Port 0 is rejected in forwarded and target ranges (pasta would try to bind it); `~0` is accepted.
- An empty interface name (`%/80`, `ADDR%/80`) is rejected; pasta would bind to "" (no device).
- Control characters in the echoed spec are escaped (`show()`), so messages stay one line.
- Messages keep pasta's wording ("Invalid port specifier %s", "Overlapping excluded ranges %s",
  "Port forwarding mode '%s' conflicts with previous mode", "Specific ports cannot be specified
  together with all/none/auto", "'all' port forwarding is only allowed for passt").
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Optional, Tuple, Union

from pasta.util.errors import ConfigError

NUM_PORTS = 65536
IFNAMSIZ = 16
EPHEMERAL_DEFAULT = (49152, 65535)   # RFC 6335 section 6; pasta's fallback in fwd_probe_ephemeral()

IPAny = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_DIGITS = re.compile(r"[0-9]+")


class PortSpecError(ConfigError):
    """A `-t/-u/-T/-U` argument that does not parse, or conflicts with an earlier one."""


class FwdMode(enum.IntEnum):
    """Forwarding mode of one option (passt's `enum fwd_ports_mode`, without UNSET and ALL)."""

    SPEC = 1
    NONE = 2
    AUTO = 3


@dataclass(frozen=True)
class PortRule:
    """One forwarded range: listen on first..last, deliver to target_first..(target_first + n)."""

    addr: Optional[IPAny]
    ifname: Optional[str]
    first: int
    last: int
    target_first: int
    excluded: Tuple[Tuple[int, int], ...] = ()   # inclusive (first, last) '~' ranges, sorted
    weak: bool = False    # from an exclusion-only list: every non-ephemeral port; bind failures tolerated

    @property
    def target_last(self) -> int:
        return self.target_first + (self.last - self.first)

    @property
    def delta(self) -> int:
        """Target port minus listening port (pasta's per-port `delta`)."""
        return self.target_first - self.first

    def is_excluded(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.excluded)

    def ports(self, ephemeral: Tuple[int, int] = EPHEMERAL_DEFAULT) -> Iterator[Tuple[int, int]]:
        """Yield (listening port, target port) pairs; `ephemeral` only matters for weak rules."""
        eph_lo, eph_hi = ephemeral
        delta = self.delta
        for port in range(self.first, self.last + 1):
            if self.is_excluded(port):
                continue
            if self.weak and eph_lo <= port <= eph_hi:
                continue
            yield port, port + delta


@dataclass(frozen=True)
class PortForward:
    """The parsed, accumulated value of one of `-t`, `-u`, `-T`, `-U`."""

    mode: FwdMode
    rules: Tuple[PortRule, ...] = ()
    excluded: Tuple[Tuple[int, int], ...] = ()   # AUTO only: '~' ranges never forwarded

    def is_excluded(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.excluded)

    def port_map(self, ephemeral: Tuple[int, int] = EPHEMERAL_DEFAULT) -> Dict[int, int]:
        """Static {listening port: target port} map; empty for NONE and AUTO (AUTO is dynamic).

        `ephemeral` is the inclusive local port range (/proc/sys/net/ipv4/ip_local_port_range),
        skipped by exclusion-only lists. Later rules override earlier ones for the same port.
        """
        out: Dict[int, int] = {}
        if self.mode != FwdMode.SPEC:
            return out
        for rule in self.rules:
            for port, target in rule.ports(ephemeral):
                out[port] = target
        return out


NONE = PortForward(FwdMode.NONE)
AUTO = PortForward(FwdMode.AUTO)


def show(text: str) -> str:
    """User text made safe for a one-line message: control characters become escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def inet_pton(text: str) -> Optional[IPAny]:
    """Parse an address like inet_pton(): IPv4 dotted quad, else IPv6; no zones, no prefixes."""
    if not text or "%" in text or "/" in text or text != text.strip():
        return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _port(text: str, optarg: str, allow_zero: bool = False) -> int:
    if not _DIGITS.fullmatch(text):
        raise PortSpecError(f"Invalid port specifier {show(optarg)}")
    value = int(text)
    if value >= NUM_PORTS or (value == 0 and not allow_zero):
        raise PortSpecError(f"Invalid port specifier {show(optarg)}")
    return value


def _range(text: str, optarg: str, allow_zero: bool = False) -> Tuple[int, int]:
    first_s, dash, last_s = text.partition("-")
    first = _port(first_s, optarg, allow_zero)
    last = _port(last_s, optarg, allow_zero) if dash else first
    if last < first:
        raise PortSpecError(f"Invalid port specifier {show(optarg)}")
    return first, last


def _addr_part(part: str, optarg: str) -> Tuple[Optional[IPAny], Optional[str]]:
    """Parse ADDR, ADDR%IFNAME or %IFNAME (the text before the first '/')."""
    addr_s, pct, ifname = part.partition("%")
    if pct and not 0 < len(ifname) < IFNAMSIZ:
        raise PortSpecError(f"Invalid port specifier {show(optarg)}")
    if pct and not addr_s:
        return None, ifname
    # pasta allows square brackets around IPv4 addresses too, for convenience.
    if addr_s.startswith("[") and addr_s.endswith("]") and len(addr_s) >= 2:
        addr_s = addr_s[1:-1]
    addr = inet_pton(addr_s)
    if addr is None:
        raise PortSpecError(f"Invalid port specifier {show(optarg)}")
    return addr, (ifname if pct else None)


def _exclusions(items, optarg: str) -> Tuple[Tuple[int, int], ...]:
    """The sorted '~' ranges among `items`; overlapping ranges are an error (as pasta)."""
    excluded = sorted(_range(item[1:], optarg, allow_zero=True)
                      for item in items if item.startswith("~"))
    for (_, prev_last), (first, _) in zip(excluded, excluded[1:]):
        if first <= prev_last:
            raise PortSpecError(f"Overlapping excluded ranges {show(optarg)}")
    return tuple(excluded)


def _auto_exclusions(optarg: str) -> Tuple[Tuple[int, int], ...]:
    """`auto,~A,~B-C`: only exclusions may follow `auto`."""
    items = optarg.split(",")[1:]
    if not all(items):
        raise PortSpecError(f"Invalid port specifier {show(optarg)}")
    if not all(item.startswith("~") for item in items):
        raise PortSpecError("Specific ports cannot be specified together with all/none/auto")
    return _exclusions(items, optarg)


def _parse_list(optarg: str, ns_side: bool) -> Tuple[PortRule, ...]:
    addr: Optional[IPAny] = None
    ifname: Optional[str] = None
    spec = optarg
    if "/" in optarg:
        if ns_side:     # -T/-U listen on the namespace's loopback only
            raise PortSpecError(f"Invalid port specifier {show(optarg)}")
        part, _, spec = optarg.partition("/")
        addr, ifname = _addr_part(part, optarg)

    items = spec.split(",")

    # Exclusions first: they may appear anywhere in the list.
    excl = _exclusions(items, optarg)

    if all(item.startswith("~") for item in items):
        return (PortRule(addr, ifname, 1, NUM_PORTS - 1, 1, excl, weak=True),)

    rules = []
    for item in items:
        if item.startswith("~"):
            continue
        src, colon, dst = item.partition(":")
        first, last = _range(src, optarg)
        if colon:
            t_first, t_last = _range(dst, optarg)
            if t_last - t_first != last - first:
                raise PortSpecError(f"Invalid port specifier {show(optarg)}")
        else:
            t_first = first
        rules.append(PortRule(addr, ifname, first, last, t_first, excl))
    return tuple(rules)


def accumulate(prev: Optional[PortForward], optarg: str, ns_side: bool = False) -> PortForward:
    """Fold one more option argument into `prev` (None: first occurrence), with pasta's rules.

    `ns_side` is True for -T/-U, which take no address or interface part.
    """
    if optarg in ("none", "auto") or optarg.startswith("auto,"):
        if prev is not None:
            mode = optarg.partition(",")[0]
            raise PortSpecError(f"Port forwarding mode '{show(mode)}' conflicts with previous mode")
        if optarg == "none":
            return NONE
        return PortForward(FwdMode.AUTO, excluded=_auto_exclusions(optarg))
    if optarg == "all":
        if prev is not None:
            raise PortSpecError(f"Port forwarding mode '{optarg}' conflicts with previous mode")
        raise PortSpecError("'all' port forwarding is only allowed for passt")
    if prev is not None and prev.mode != FwdMode.SPEC:
        raise PortSpecError("Specific ports cannot be specified together with all/none/auto")
    rules = _parse_list(optarg, ns_side)
    return PortForward(FwdMode.SPEC, (prev.rules if prev else ()) + rules)


def parse(optarg: str, ns_side: bool = False) -> PortForward:
    """Parse a single option argument on its own."""
    return accumulate(None, optarg, ns_side)


def parse_all(optargs: Iterable[str], ns_side: bool = False) -> Optional[PortForward]:
    """Parse every argument given to one option, in order; None when there are none."""
    result: Optional[PortForward] = None
    for optarg in optargs:
        result = accumulate(result, optarg, ns_side)
    return result
