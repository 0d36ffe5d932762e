"""Port-forwarding specifications: the pieces of pasta 2026's -t/-u/-T/-U grammar, parsed into data.

Purpose: the lexical half of pasta's `fwd_rule_parse()`: the composable primitives of `parse.c` and
the two grammar pieces of `fwd_rule.c` that make no rule (`parse_port_chunk()`,
`parse_addrifname()`). Turning a whole argument into forwarding rules is
`pasta.core.fwd_rule.fwd_rule_parse()`'s job, which drives these; binding sockets is
`pasta.shell.fwd_listen`'s.

Theory of operation: every parser follows parse.c's conventions, with a cursor made of the text
and an index: `parse_X(text, pos, ...)` returns None when it does not match (nothing consumed),
else a tuple whose last item is the index just after what it consumed. Grammar (pesto-protocol.md
6.1, shared by pasta's options and pesto):

    SPEC     := "none" | [ADDRSPEC "/"] CHUNK ("," CHUNK)*
    ADDRSPEC := ADDR ["%" IFNAME] | ["*"] ["%" IFNAME]      # parse_addrifname()
    CHUNK    := "all" [":" TADDR] | "auto" | "~" RANGE
              | RANGE [":" TADDR "/" RANGE | ":" TADDR | ":" RANGE]    # parse_port_chunk()
    RANGE    := PORT ["-" PORT]                              # parse_port_range()

- `parse_unsigned`: C `strtoul(..., 10)`: leading blanks, an optional sign (a minus negates
  modulo 2**64, so it only survives as `-0`), decimal digits; overflow fails.
- `parse_port_range`: `first <= last <= 65535`; port 0 parses (pasta's `fwd_rule_add()` refuses
  it later: "Forwarding rule attempts to map from port 0").
- `parse_inany`: IPv6 first, then IPv4, each either `[`bracketed`]` (anything up to `]`) or bare:
  the longest run of `[0-9a-fA-F:.]` (IPv6) or `[0-9.]` (IPv4), checked like glibc's
  `inet_pton()`. So `::1/8087` parses, and a bare IPv6 address swallows what looks like a port:
  `8080:fd00::2/80` is the listening address 8080:fd00::2, port 80. IPv4-mapped IPv6 addresses
  come back as `IPv4Address` (pasta's `inany` makes them IPv4).
- `parse_ifspec`: `%` and 1..15 bytes up to `/` or a blank; no `%`: the empty name.
- `parse_port_chunk`: one `Chunk` of kind `ChunkKind.ALL` (`all`, optional target address),
  `ChunkKind.AUTO`, `ChunkKind.EXCLUDE` (`~RANGE`) or `ChunkKind.INCLUDE` (a listening range,
  optional target address and/or target range; the target range defaults to the listening
  one). A target part that does not parse is left unconsumed (the caller then finds garbage).
- `parse_addrifname`: `ADDR[%IF]/` or `[*][%IF]/` (so `/80`, `*/80`, `%lo/80` too); the address
  is None for `*` or none.

States and events: none; every function is pure.

Invariants:
- A parser that fails consumes nothing; one that succeeds returns an index > `pos` except
  `parse_ifspec` without `%` (it consumes nothing and succeeds).
- Only `PortSpecError` (a `ConfigError`) is raised by this package's port parsing, whatever the
  input (the parsers here raise nothing at all).
- Addresses are `ipaddress` objects; `ifname` is at most 15 bytes (IFNAMSIZ - 1) in UTF-8 with
  surrogateescape (argv's encoding).

Limits and not handled: the ephemeral range is not read here (no I/O); `EPHEMERAL_DEFAULT` is RFC
6335's 49152-65535, pasta's fallback. Text after a NUL is ignored by the caller (C strings).

Differences from passt (`parse.c`, `fwd_rule.c`): none in what parses; `show()` escapes control
characters in user text echoed by messages, which pasta prints raw.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from pasta.util.errors import ConfigError

NUM_PORTS = 65536
IFNAMSIZ = 16
EPHEMERAL_DEFAULT = (49152, 65535)   # RFC 6335 section 6; pasta's fallback in fwd_probe_ephemeral()
ULONG_MAX = 2**64 - 1
INET_ADDRSTRLEN = 16
INET6_ADDRSTRLEN = 46

IPAny = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_C_SPACE = " \t\n\v\f\r"                        # isspace() in the C locale
_DIGITS = "0123456789"
_V4_CHARS = frozenset("0123456789.")
_V6_CHARS = frozenset("0123456789aAbBcCdDeEfF:.")
_IFNAME_END = frozenset("/ \f\n\r\t\v")


class PortSpecError(ConfigError):
    """A `-t/-u/-T/-U` argument that does not parse, or is not allowed where it is given."""


class ChunkKind(enum.IntEnum):
    """What one comma-separated piece is (fwd_rule.c's `enum fwd_port_chunk_kind`)."""

    ALL = 0
    AUTO = 1
    EXCLUDE = 2
    INCLUDE = 3


@dataclass(frozen=True)
class PortRange:
    """`struct port_range`: first..last inclusive, first <= last."""

    first: int
    last: int


@dataclass(frozen=True)
class Chunk:
    """One parsed chunk: `lrange` for INCLUDE and EXCLUDE, `taddr` (None: none, `::`) for
    INCLUDE and ALL, `trange` (the target ports) for INCLUDE."""

    kind: ChunkKind
    lrange: Optional[PortRange] = None
    taddr: Optional[IPAny] = None
    trange: Optional[PortRange] = None


def show(text: str) -> str:
    """User text made safe for a one-line message: control characters become escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def c_strlen(text: str) -> int:
    """Length in bytes of `text` as a C string (argv's UTF-8 with surrogateescape)."""
    return len(text.encode("utf-8", "surrogateescape"))


# ------------------------------------------------------------------------------ addresses
def inet_pton4(text: str) -> Optional[ipaddress.IPv4Address]:
    """glibc's inet_pton(AF_INET): exactly four decimal octets, no leading zeros."""
    if not text or not set(text) <= _V4_CHARS:
        return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def inet_pton6(text: str) -> Optional[ipaddress.IPv6Address]:
    """glibc's inet_pton(AF_INET6): hex groups, one `::`, an optional dotted IPv4 tail."""
    if not text or not set(text) <= _V6_CHARS:
        return None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def inet_pton(text: str) -> Optional[IPAny]:
    """Parse an address like inet_pton(): IPv4 dotted quad, else IPv6; no zones, no prefixes."""
    return inet_pton4(text) or inet_pton6(text)


def inany(addr: IPAny) -> IPAny:
    """pasta's `union inany_addr` view: an IPv4-mapped IPv6 address is IPv4."""
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# -------------------------------------------------------------------------- primitives
def parse_literal(text: str, pos: int, lit: str) -> Optional[int]:
    """`lit` at `pos`: the index after it, else None."""
    return pos + len(lit) if text.startswith(lit, pos) else None


def parse_eoi(text: str, pos: int) -> bool:
    """End of input."""
    return pos >= len(text)


def parse_unsigned(text: str, pos: int) -> Optional[Tuple[int, int]]:
    """C `strtoul(text + pos, &end, 10)` that must consume something and not overflow."""
    p = pos
    n = len(text)
    while p < n and text[p] in _C_SPACE:
        p += 1
    neg = False
    if p < n and text[p] in "+-":
        neg = text[p] == "-"
        p += 1
    start = p
    while p < n and text[p] in _DIGITS:
        p += 1
    if p == start:
        return None                       # no digits: strtoul consumes nothing
    val = int(text[start:p])
    if val > ULONG_MAX:
        return None                       # ERANGE
    if neg:
        val = (-val) & ULONG_MAX
    return val, p


def parse_port_range(text: str, pos: int) -> Optional[Tuple[PortRange, int]]:
    """`FIRST[-LAST]` with first <= last < 65536."""
    r = parse_unsigned(text, pos)
    if r is None:
        return None
    first, p = r
    last = first
    q = parse_literal(text, p, "-")
    if q is not None:
        r = parse_unsigned(text, q)
        if r is None:
            return None
        last, p = r
    if last < first or last >= NUM_PORTS:
        return None
    return PortRange(first, last), p


def _parse_addr(text: str, pos: int, chars: frozenset, size: int, pton):
    p = pos
    bracket = parse_literal(text, p, "[")
    if bracket is not None:
        p = bracket
        end = text.find("]", p)
        end = len(text) if end < 0 else end
    else:
        end = p
        while end < len(text) and text[end] in chars:
            end += 1
    buf = text[p:end]
    if c_strlen(buf) >= size:
        return None
    addr = pton(buf)
    if addr is None:
        return None
    p = end
    if bracket is not None:
        p = parse_literal(text, p, "]")
        if p is None:
            return None
    return addr, p


def parse_ipv4(text: str, pos: int) -> Optional[Tuple[ipaddress.IPv4Address, int]]:
    """An IPv4 address, bare or in brackets."""
    return _parse_addr(text, pos, _V4_CHARS, INET_ADDRSTRLEN, inet_pton4)


def parse_ipv6(text: str, pos: int) -> Optional[Tuple[ipaddress.IPv6Address, int]]:
    """An IPv6 address, bare (longest run of hex digits, ':' and '.') or in brackets."""
    return _parse_addr(text, pos, _V6_CHARS, INET6_ADDRSTRLEN, inet_pton6)


def parse_inany(text: str, pos: int) -> Optional[Tuple[IPAny, int]]:
    """IPv6, else IPv4 (parse_inany_()); IPv4-mapped results are IPv4."""
    r = parse_ipv6(text, pos)
    if r is not None:
        return inany(r[0]), r[1]
    return parse_ipv4(text, pos)


def parse_ifspec(text: str, pos: int) -> Optional[Tuple[str, int]]:
    """`%IFNAME` (1..15 bytes, anything but '/' and blanks), or nothing at all ("")."""
    p = parse_literal(text, pos, "%")
    if p is None:
        return "", pos
    end = p
    while end < len(text) and text[end] not in _IFNAME_END:
        end += 1
    name = text[p:end]
    if not name or c_strlen(name) >= IFNAMSIZ:
        return None
    return name, end


# ------------------------------------------------------------------------------ grammar
def parse_port_chunk(text: str, pos: int) -> Optional[Tuple[Chunk, int]]:
    """One CHUNK (fwd_rule.c parse_port_chunk())."""
    p = parse_literal(text, pos, "all")
    if p is not None:
        taddr = None
        q = parse_literal(text, p, ":")
        r = parse_inany(text, q) if q is not None else None
        if r is not None:
            taddr, p = r
        return Chunk(ChunkKind.ALL, taddr=_taddr(taddr)), p
    p = parse_literal(text, pos, "auto")
    if p is not None:
        return Chunk(ChunkKind.AUTO), p
    p = parse_literal(text, pos, "~")
    if p is not None:
        r = parse_port_range(text, p)
        if r is None:
            return None
        return Chunk(ChunkKind.EXCLUDE, lrange=r[0]), r[1]
    r = parse_port_range(text, pos)
    if r is None:
        return None
    lr, p = r
    q = parse_literal(text, p, ":")
    if q is not None:
        a = parse_inany(text, q)
        if a is not None:
            taddr, after = a
            s = parse_literal(text, after, "/")
            t = parse_port_range(text, s) if s is not None else None
            if t is not None:                          # target address and range
                return Chunk(ChunkKind.INCLUDE, lr, _taddr(taddr), t[0]), t[1]
            return Chunk(ChunkKind.INCLUDE, lr, _taddr(taddr), lr), after   # address only
        t = parse_port_range(text, q)
        if t is not None:                              # target range only
            return Chunk(ChunkKind.INCLUDE, lr, None, t[0]), t[1]
    return Chunk(ChunkKind.INCLUDE, lr, None, lr), p     # no target specification


def _taddr(addr: Optional[IPAny]) -> Optional[IPAny]:
    """A target address as a rule holds it: `::` (pasta's "none") is None; `0.0.0.0` stays
    (`::ffff:0.0.0.0` on the wire: no target either, but other bytes)."""
    if addr is None or (addr.version == 6 and addr.is_unspecified):
        return None
    return addr


def parse_addrifname(text: str, pos: int) -> Optional[Tuple[Optional[IPAny], str, int]]:
    """`ADDR[%IF]/` or `[*][%IF]/`: (address or None, interface name or "", index after '/')."""
    r = parse_inany(text, pos)
    if r is not None:
        addr, p = r
        i = parse_ifspec(text, p)
        if i is not None:
            q = parse_literal(text, i[1], "/")
            if q is not None:
                return addr, i[0], q
    p = pos
    star = parse_literal(text, p, "*")
    if star is not None:
        p = star
    i = parse_ifspec(text, p)
    if i is not None:
        q = parse_literal(text, i[1], "/")
        if q is not None:
            return None, i[0], q
    return None
