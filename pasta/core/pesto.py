"""The pesto control protocol, version 2 (passt 2026_07_16): codec and both ends' logic, sans-IO.

Purpose: the bytes that pass over pasta's `-c PATH` UNIX socket between the server (a pypasta
translator) and a client (`pypasta-pesto`, or the real `pesto`), as `pesto.h`, `conf.c`
(`conf_accept`, `conf_send_rules`, `conf_recv_rules`), `pesto.c` and `fwd_rule.c`
(`fwd_rule_read/write`, `fwd_rule_del`) define them (docs/pesto-protocol.md section 3). Nothing here
touches a socket: the shells feed bytes in and write the bytes given back.

Theory of operation:
- Records (all big-endian, no padding): hello `!8sIII` (20 bytes: magic `basil:s\\0`, version 2,
  pif name size 128, IFNAMSIZ 16), pif info `!128sII` (136: name, caps, count) and the rule
  `!16s16s16sHHHBB` (56: addr, taddr, ifname, first, last, to, proto, flags). `pack_rule` /
  `parse_rule` map a rule to and from `pasta.core.fwd_rule.FwdRule`: IPv4 addresses travel as
  `::ffff:a.b.c.d` and come back as `IPv4Address`; a taddr of `::` is None (no target: the
  namespace's own address), `::ffff:0.0.0.0` comes back as `IPv4Address("0.0.0.0")`, which
  `fwd_rule_fmt` also shows as no target and which re-encodes to the same bytes. The pif is not
  on the wire; the caller says which table a rule belongs to.
- Server side. On accept the shell writes `dump(table, caps, pifs)`: hello, then per pif with a
  table (ascending id) the pif id byte, its info and its rules, then the terminator 0. Bytes the
  client sends go into a `TransactionReader(pifs)`: `feed(data)` returns None while more is
  needed, or the complete `Transaction` (its `sections` in wire order: (pif, rules)), and raises
  `PestoError` with pasta's message for a pif without a table ("Received rules for non-existent
  table"), a count above 255 ("Received N rules (maximum 255)"), an ifname whose byte 15 is not
  0 ("Interface name was not NULL terminated"), or a transaction longer than `max_bytes`.
  `transaction_table(txn, caps)` then builds the new `FwdTable` with `fwd_rule_add` against the
  server's caps, all or nothing (PestoError with fwd_rule_add's message; `lines` has every line
  pasta logs): pifs the client did not send end up empty, a lone 0 empties every table. EOF before the terminator means no
  change (the shell just closes).
- Client side. `DumpReader().feed(data)` parses the server's dump incrementally with pesto's
  checks and messages ("Bad magic number from server", "Unknown server protocol version N > 2",
  "Unsupported experimental server protocol", "Server has unexpected pif name size (N not 128)",
  "Server has unexpected IFNAMSIZ (N not 16)", "passt has more pifs than pesto can manage (max
  3)", "Interface name was not NULL terminated", "Too many forwarding rules", "Received duplicate
  interface identifier" / "... name") and returns a `ServerConf` whose `tables` are `PifTable`s.
  Their rules are stored unvalidated, as `WireRule(rule, raw)`: the 56 bytes received are kept, so
  a delete compares byte for byte and the transaction re-sends exactly what came in.
  `PifTable.add/delete/clear` are pesto's edits (`fwd_rule_add`; `fwd_rule_del`'s exact match with
  "Specifier X conflicts with rule Y, but doesn't match it, can't delete" / "Couldn't find
  forwarding rule to delete: X"); `pack_transaction(tables)` encodes every table (u8 pif, u32
  count, rules) and the terminator. `eof_message()` is what pesto dies with if the server closes
  at that point; `debug` collects pesto's `-d` lines as parsing goes.

States and events:
- `TransactionReader`: reading a pif id, reading a count, reading rules; then done (feed returns
  the same Transaction and ignores further bytes) or failed (feed raises the same error again).
  Done and failed exclude each other.
- `DumpReader`: hello, pif id, pif info, rules; then done or failed, as above.

Invariants:
- `parse_rule(pack_rule(r)) == r` for every rule with `taddr` None or non-`::`, an ifname of at
  most 16 bytes, ports and proto/flags in range; `pack_rule(parse_rule(b)) == b` for every 56
  bytes whose ifname has nothing but NULs after its first NUL (or no NUL at all).
- A reader never buffers more than `max_bytes` plus one fed chunk, and never raises anything but
  `PestoError` (hypothesis-tested with random bytes).
- `dump()` of a table made by `fwd_rule_add` is at most `DUMP_MAX_BYTES` long.

Limits and not handled: only version 2 (the client requires exactly 2: a version-1 server is
refused with "Unsupported server protocol version 1 < 2"; pesto itself would misparse it);
pif names are decoded as UTF-8 with surrogateescape, ifnames too (bytes round-trip, text shows
them as they are); the server normalises ifname bytes after the first NUL to zeros.

Kernel assumptions: none (no I/O).

Differences from passt:
- `conf_recv_rules()` validates each rule as it arrives; here the structural checks run while
  reading and `fwd_rule_add` once the transaction is complete, so when a transaction has two
  problems the one logged may differ (the outcome, no change, is the same). A transaction
  longer than `TRANSACTION_MAX_BYTES` (64 KiB; a full valid one is at most about 31 KB) is
  refused; pasta reads any length, blocking its main loop.
- pesto's client reads rules into a table that never counted their sockets; `PifTable.add`
  counts them against the 327 680 listening-socket limit (only a server already at the limit
  notices).
- The client refuses protocol version 1 (pesto accepts and misparses it).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from pasta.util.errors import Malformed
from pasta.core.fwd_rule import (FWD_CAP_IFNAME, FWD_CAP_IPV4, FWD_CAP_IPV6, FWD_CAP_SCAN,
                                 FWD_CAP_TCP, FWD_CAP_UDP, MAX_FWD_RULES, PIF_HOST, PIF_NAMES,
                                 PIF_SPLICE, FwdRule, FwdRuleError, FwdTable, IPAny,
                                 fwd_rule_add, fwd_rule_conflicts, fwd_rule_fmt)
from pasta.core.flow import Pif

PESTO_SERVER_MAGIC = b"basil:s\0"
PESTO_PROTOCOL_VERSION = 2
PIF_NAME_SIZE = 128
IFNAMSIZ = 16
PIF_NONE = 0
MAX_PIFS = 3                            # pesto's table of pifs (pesto.c MAX_PIFS)

HELLO = struct.Struct("!8sIII")
PIF_INFO = struct.Struct("!128sII")
RULE = struct.Struct("!16s16s16sHHHBB")
U8 = struct.Struct("!B")
U32 = struct.Struct("!I")
HELLO_SIZE = HELLO.size                 # 20
PIF_INFO_SIZE = PIF_INFO.size           # 136
RULE_SIZE = RULE.size                   # 56

# The largest dump pesto can take (3 pifs of 255 rules), and the largest transaction a server
# reads before giving up: every pif once with 255 rules needs 28 571 bytes for two pifs; 64 KiB
# also leaves room for a client that sends a pif in several sections.
DUMP_MAX_BYTES = HELLO_SIZE + MAX_PIFS * (1 + PIF_INFO_SIZE + MAX_FWD_RULES * RULE_SIZE) + 1
TRANSACTION_MAX_BYTES = 65536

_V4MAPPED = bytes(10) + b"\xff\xff"
_ZERO16 = bytes(16)


class PestoError(Malformed):
    """The peer sent something the protocol refuses; the message is pasta's or pesto's.

    `lines` are every line pasta logs for it (fwd_rule_add() sometimes adds a hint line); the
    message (`str()`, `reason`) is the first."""

    def __init__(self, reason: str, *more: str):
        super().__init__(reason)
        self.lines: Tuple[str, ...] = (reason,) + more


# ------------------------------------------------------------------------------------ codec
class Hello(NamedTuple):
    magic: bytes
    version: int
    pif_name_size: int
    ifnamsiz: int


def pack_hello(version: int = PESTO_PROTOCOL_VERSION, pif_name_size: int = PIF_NAME_SIZE,
               ifnamsiz: int = IFNAMSIZ, magic: bytes = PESTO_SERVER_MAGIC) -> bytes:
    """The server's greeting (the defaults are what a version-2 server sends)."""
    return HELLO.pack(magic, version, pif_name_size, ifnamsiz)


def parse_hello(buf: bytes, off: int = 0) -> Hello:
    """The four fields of a greeting, unchecked (`check_hello` applies pesto's checks)."""
    return Hello(*HELLO.unpack_from(buf, off))


def check_hello(hello: Hello) -> None:
    """pesto's checks of the greeting, in its order, with its messages."""
    if hello.magic != PESTO_SERVER_MAGIC:
        raise PestoError("Bad magic number from server")
    if hello.version > PESTO_PROTOCOL_VERSION:
        raise PestoError(f"Unknown server protocol version {hello.version} > "
                         f"{PESTO_PROTOCOL_VERSION}")
    if hello.version == 0:
        raise PestoError("Unsupported experimental server protocol")
    if hello.version != PESTO_PROTOCOL_VERSION:
        # pesto goes on here and misreads every rule (pesto-protocol.md section 1)
        raise PestoError(f"Unsupported server protocol version {hello.version} < "
                         f"{PESTO_PROTOCOL_VERSION}")
    if hello.pif_name_size != PIF_NAME_SIZE:
        raise PestoError(f"Server has unexpected pif name size ({hello.pif_name_size} "
                         f"not {PIF_NAME_SIZE})")
    if hello.ifnamsiz != IFNAMSIZ:
        raise PestoError(f"Server has unexpected IFNAMSIZ ({hello.ifnamsiz} not {IFNAMSIZ})")


def _cstr(raw: bytes) -> str:
    """A NUL-terminated (or full) C string field as text; bytes survive (surrogateescape)."""
    end = raw.find(0)
    return (raw if end < 0 else raw[:end]).decode("utf-8", "surrogateescape")


def pack_pif_info(name: str, caps: int, count: int) -> bytes:
    """One `struct pesto_pif_info`: the name NUL-padded to 128 bytes."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) >= PIF_NAME_SIZE or 0 in raw:
        raise ValueError(f"pif name {name!r} does not fit")
    return PIF_INFO.pack(raw, caps, count)


def parse_pif_info(buf: bytes, off: int = 0) -> Tuple[str, int, int, bool]:
    """(name, caps, count, terminated): `terminated` is False if byte 127 of the name is not 0."""
    raw, caps, count = PIF_INFO.unpack_from(buf, off)
    return _cstr(raw), caps, count, raw[-1] == 0


def _pack_addr(addr: IPAny) -> bytes:
    if addr.version == 4:
        return _V4MAPPED + addr.packed
    return addr.packed


def _parse_addr(raw: bytes) -> IPAny:
    if raw[:12] == _V4MAPPED:
        return ipaddress.IPv4Address(raw[12:])
    return ipaddress.IPv6Address(raw)


def pack_rule(rule: FwdRule) -> bytes:
    """The 56 bytes of `struct fwd_rule` as `fwd_rule_write()` sends them."""
    taddr = _ZERO16 if rule.taddr is None else _pack_addr(rule.taddr)
    ifname = rule.ifname.encode("utf-8", "surrogateescape")
    if len(ifname) > IFNAMSIZ:      # 16 bytes travel (unterminated: the server refuses them)
        raise ValueError(f"interface name {rule.ifname!r} does not fit IFNAMSIZ")
    try:
        return RULE.pack(_pack_addr(rule.addr), taddr, ifname, rule.first, rule.last, rule.to,
                         rule.proto, rule.flags)
    except struct.error as e:
        raise ValueError(f"rule out of range: {e}") from None


def parse_rule(buf: bytes, off: int = 0, pif: int = PIF_HOST) -> FwdRule:
    """A rule as received, unvalidated, for the table of `pif` (any 56 bytes decode)."""
    addr, taddr, ifname, first, last, to, proto, flags = RULE.unpack_from(buf, off)
    return FwdRule(pif=_pif(pif), proto=proto, first=first, last=last, to=to,
                   addr=_parse_addr(addr), taddr=None if taddr == _ZERO16 else _parse_addr(taddr),
                   ifname=_cstr(ifname), flags=flags)


def rule_ifname_terminated(buf: bytes, off: int = 0) -> bool:
    """pasta's check of a received rule: byte 15 of its ifname is 0."""
    return buf[off + 47] == 0


def _pif(pif: int) -> int:
    try:
        return Pif(pif)
    except ValueError:
        return pif


# ------------------------------------------------------------------------------ server side
def dump(table: FwdTable, caps: int, pifs: Iterable[int]) -> bytes:
    """What the server sends on accept: hello, each pif's info and rules (ascending id), 0."""
    out = [pack_hello()]
    for pif in sorted(set(pifs)):
        rules = table.rules_of(pif)
        if len(rules) > MAX_FWD_RULES:
            raise ValueError(f"{len(rules)} rules for pif {pif}")
        out.append(U8.pack(pif))
        out.append(pack_pif_info(PIF_NAMES[pif], caps, len(rules)))
        out.extend(pack_rule(r) for r in rules)
    out.append(U8.pack(PIF_NONE))
    return b"".join(out)


@dataclass(frozen=True)
class Transaction:
    """A complete client transaction: (pif, rules) sections in wire order, and its length."""

    sections: Tuple[Tuple[int, Tuple[FwdRule, ...]], ...]
    size: int                               # bytes up to and including the terminator

    @property
    def tables(self) -> Dict[int, List[FwdRule]]:
        """{pif: rules}; a pif sent in several sections has its rules in order."""
        out: Dict[int, List[FwdRule]] = {}
        for pif, rules in self.sections:
            out.setdefault(pif, []).extend(rules)
        return out


class _Buffer:
    """Bytes received and not yet parsed."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.total = 0              # bytes parsed so far

    def push(self, data: bytes) -> None:
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def avail(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int) -> Optional[bytes]:
        if self.avail() < n:
            return None
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        self.total += n
        return out


class _Reader:
    """What both readers share: bytes fed in any pieces, parsed as far as they go, bounded by
    `max_bytes`, and a done or failed end that further feeds repeat. Subclasses set
    `_in`, `_done`, `_error`, `max_bytes` and `_TOO_LONG`, and implement `_parse()`."""

    _TOO_LONG = ""

    def feed(self, data: bytes):
        """None: more is needed; else the parsed result. PestoError: refused."""
        if self._error is not None:
            raise self._error
        if self._done is not None:
            return self._done
        self._in.push(data)
        try:
            self._parse()
        except PestoError as e:
            self._error = e
            raise
        if self._done is None and self._in.total + self._in.avail() > self.max_bytes:
            self._error = PestoError(f"{self._TOO_LONG} longer than {self.max_bytes} bytes")
            raise self._error
        return self._done

    def _parse(self) -> None:
        raise NotImplementedError


class TransactionReader(_Reader):
    """conf_recv_rules() as a parser: feed it what the client sends, in any pieces."""

    _TOO_LONG = "Transaction"

    def __init__(self, pifs: Iterable[int], max_bytes: int = TRANSACTION_MAX_BYTES):
        self.pifs = frozenset(pifs)
        self.max_bytes = max_bytes
        self._in = _Buffer()
        self._sections: List[Tuple[int, Tuple[FwdRule, ...]]] = []
        self._pif: Optional[int] = None         # section being read
        self._left = 0                          # rules still to read in it
        self._rules: List[FwdRule] = []
        self._count_next = False
        self._done: Optional[Transaction] = None
        self._error: Optional[PestoError] = None

    @property
    def started(self) -> bool:
        """True once any byte arrived (EOF before that is a show-only client)."""
        return self._in.total > 0 or self._in.avail() > 0

    def _parse(self) -> None:
        take = self._in.take
        while True:
            if self._left:
                raw = take(RULE_SIZE)
                if raw is None:
                    return
                if not rule_ifname_terminated(raw):
                    raise PestoError("Interface name was not NULL terminated")
                self._rules.append(parse_rule(raw, 0, self._pif))
                self._left -= 1
                if not self._left:
                    self._end_section()
            elif self._count_next:
                raw = take(U32.size)
                if raw is None:
                    return
                (count,) = U32.unpack(raw)
                if count > MAX_FWD_RULES:
                    raise PestoError(f"Received {count} rules (maximum {MAX_FWD_RULES})")
                self._count_next = False
                self._left = count
                if not count:
                    self._end_section()
            else:
                raw = take(1)
                if raw is None:
                    return
                pif = raw[0]
                if pif == PIF_NONE:
                    self._done = Transaction(tuple(self._sections), self._in.total)
                    return
                if pif not in self.pifs:
                    raise PestoError("Received rules for non-existent table")
                self._pif = _pif(pif)
                self._count_next = True

    def _end_section(self) -> None:
        self._sections.append((self._pif, tuple(self._rules)))
        self._rules = []


def transaction_table(txn: Transaction, caps: int) -> FwdTable:
    """The new table of a complete transaction, checked rule by rule with `fwd_rule_add`
    against the server's caps; PestoError (fwd_rule_add's message) refuses it all."""
    table = FwdTable(caps)
    for _pif_id, rules in txn.sections:
        for rule in rules:
            try:
                table = fwd_rule_add(table, rule)
            except FwdRuleError as e:
                raise PestoError(*(getattr(e, "lines", None) or (str(e),))) from e
    return table


# ------------------------------------------------------------------------------ client side
class WireRule(NamedTuple):
    """A rule on the client: decoded, and the 56 bytes it travels as."""

    rule: FwdRule
    raw: bytes

    @classmethod
    def of(cls, rule: FwdRule) -> "WireRule":
        return cls(rule, pack_rule(rule))


@dataclass
class PifTable:
    """pesto's `struct pif_configuration`: one pif's name, caps and rules (mutable)."""

    pif: int
    name: str
    caps: int
    rules: List[WireRule] = field(default_factory=list)

    def fwd_rules(self) -> Tuple[FwdRule, ...]:
        return tuple(w.rule for w in self.rules)

    def clear(self) -> None:
        """fwd_rule_clear()."""
        self.rules.clear()

    def has_proto(self, proto: int) -> bool:
        """Whether a rule of `proto` is present (`-t none` conflicts with it)."""
        return any(w.rule.proto == proto for w in self.rules)

    def _own(self, rule: FwdRule) -> FwdRule:
        return rule if rule.pif == self.pif else replace(rule, pif=self.pif)

    def add(self, rule: FwdRule) -> None:
        """fwd_rule_add() against this table's caps; FwdRuleError with pasta's message."""
        rule = self._own(rule)
        fwd_rule_add(FwdTable(self.caps, self.fwd_rules()), rule)
        self.rules.append(WireRule.of(rule))

    def delete(self, rule: FwdRule) -> None:
        """fwd_rule_del(): the rule must equal an existing one byte for byte."""
        rule = self._own(rule)
        raw = pack_rule(rule)
        for i, old in enumerate(self.rules):
            if old.raw == raw:
                del self.rules[i]
                return
            if fwd_rule_conflicts(rule, old.rule):
                raise FwdRuleError(f"Specifier {fwd_rule_fmt(rule)} conflicts with rule "
                                   f"{fwd_rule_fmt(old.rule)}, but doesn't match it, "
                                   "can't delete")
        raise FwdRuleError(f"Couldn't find forwarding rule to delete: {fwd_rule_fmt(rule)}")


@dataclass
class ServerConf:
    """What a server announced: its greeting and its tables, in the order received."""

    hello: Hello
    tables: List[PifTable]

    def by_name(self, name: str) -> Optional[PifTable]:
        return next((t for t in self.tables if t.name == name), None)

    def by_pif(self, pif: int) -> Optional[PifTable]:
        return next((t for t in self.tables if t.pif == pif), None)


_CAP_NAMES = ((FWD_CAP_IPV4, " IPv4"), (FWD_CAP_IPV6, " IPv6"), (FWD_CAP_TCP, " TCP"),
              (FWD_CAP_UDP, " UDP"), (FWD_CAP_SCAN, " scan"), (FWD_CAP_IFNAME, " ifname"))


class DumpReader(_Reader):
    """pesto's reading of the greeting and the tables, as a parser fed in any pieces
    (`feed()` returns the `ServerConf` once complete)."""

    _TOO_LONG = "Server dump"

    def __init__(self, max_bytes: int = DUMP_MAX_BYTES):
        self.max_bytes = max_bytes
        self.debug: List[str] = []          # pesto's -d lines, as parsing gets there
        self._in = _Buffer()
        self._hello: Optional[Hello] = None
        self._tables: List[PifTable] = []
        self._pif: Optional[int] = None     # pif id read, info not yet
        self._cur: Optional[PifTable] = None
        self._left = 0
        self._done: Optional[ServerConf] = None
        self._error: Optional[PestoError] = None

    @property
    def greeted(self) -> bool:
        """True once the whole greeting arrived."""
        return self._hello is not None

    def eof_message(self) -> str:
        """What pesto dies with if the server closes now (before the dump is complete)."""
        if self._hello is None:
            return "Couldn't read server greeting: No data available"
        return "Error reading from control socket"

    def _parse(self) -> None:
        take = self._in.take
        if self._hello is None:
            raw = take(HELLO_SIZE)
            if raw is None:
                return
            self._hello = parse_hello(raw)
            check_hello(self._hello)
        while True:
            if self._cur is not None:
                raw = take(RULE_SIZE)
                if raw is None:
                    return
                self._cur.rules.append(WireRule(parse_rule(raw, 0, self._cur.pif), raw))
                self._left -= 1
                if not self._left:
                    self._cur = None
            elif self._pif is not None:
                raw = take(PIF_INFO_SIZE)
                if raw is None:
                    return
                self._pif_info(raw)
            else:
                raw = take(1)
                if raw is None:
                    return
                if raw[0] == PIF_NONE:
                    self._done = ServerConf(self._hello, self._tables)
                    return
                self.debug.append(f"Receiving config for PIF {raw[0]}")
                if len(self._tables) >= MAX_PIFS:
                    raise PestoError(f"passt has more pifs than pesto can manage (max {MAX_PIFS})")
                self._pif = _pif(raw[0])

    def _pif_info(self, raw: bytes) -> None:
        name, caps, count, terminated = parse_pif_info(raw)
        pif, self._pif = self._pif, None
        if not terminated:
            raise PestoError("Interface name was not NULL terminated")
        if count > MAX_FWD_RULES:
            raise PestoError("Too many forwarding rules")
        self.debug.append(f"PIF {int(pif)}: {name}, {count} rules, capabilities 0x{caps:x}:"
                          + "".join(text for bit, text in _CAP_NAMES if caps & bit))
        if any(t.pif == pif for t in self._tables):
            raise PestoError("Received duplicate interface identifier")
        if any(t.name == name for t in self._tables):
            raise PestoError("Received duplicate interface name")
        table = PifTable(pif, name, caps)
        self._tables.append(table)
        if count:
            self._cur, self._left = table, count


def pack_transaction(tables: Sequence[PifTable]) -> bytes:
    """pesto's send_conf(): every table (u8 pif, u32 count, rules as held), then 0."""
    out = []
    for t in tables:
        out.append(U8.pack(t.pif))
        out.append(U32.pack(len(t.rules)))
        out.extend(w.raw for w in t.rules)
    out.append(U8.pack(PIF_NONE))
    return b"".join(out)


def encode_transaction(sections: Iterable[Tuple[int, Sequence[FwdRule]]]) -> bytes:
    """A transaction of (pif, rules) sections, for tests and other clients."""
    out = []
    for pif, rules in sections:
        out.append(U8.pack(pif) + U32.pack(len(rules)))
        out.extend(pack_rule(r) for r in rules)
    out.append(U8.pack(PIF_NONE))
    return b"".join(out)


def show_lines(tables: Sequence[PifTable]) -> List[str]:
    """pesto's show_conf(): two spaces + table name, four spaces + each rule."""
    lines = []
    for t in tables:
        lines.append(f"  {t.name}")
        lines.extend(f"    {fwd_rule_fmt(w.rule)}" for w in t.rules)
    return lines


__all__ = [
    "DUMP_MAX_BYTES", "HELLO_SIZE", "IFNAMSIZ", "MAX_PIFS", "PESTO_PROTOCOL_VERSION",
    "PESTO_SERVER_MAGIC", "PIF_HOST", "PIF_INFO_SIZE", "PIF_NAME_SIZE", "PIF_NONE", "PIF_SPLICE",
    "RULE_SIZE", "TRANSACTION_MAX_BYTES", "DumpReader", "Hello", "PestoError", "PifTable",
    "ServerConf", "Transaction", "TransactionReader", "WireRule", "check_hello", "dump",
    "encode_transaction", "pack_hello", "pack_pif_info", "pack_rule", "pack_transaction",
    "parse_hello", "parse_pif_info", "parse_rule", "rule_ifname_terminated", "show_lines",
    "transaction_table",
]
