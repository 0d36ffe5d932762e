"""slirp4netns's JSON API-socket protocol (`--api-socket`), sans-IO: request bytes -> reply bytes.

Purpose: serve `add_hostfwd`, `list_hostfwd` and `remove_hostfwd` exactly as slirp4netns 1.2.0's
`api.c` does, so Podman (`port_handler=slirp4netns`) and RootlessKit
(`--port-driver=slirp4netns`) can publish ports through pypasta.

Theory of operation:
- The socket shell (the engine, which owns the listening Unix socket as one more fd kind) accepts
  a connection, reads the request, calls `handle_request(data, backend, table)`, writes the bytes
  it returns, shuts the connection down and closes it: one request per connection, as
  slirp4netns. slirp4netns does a single `read()` of `MAX_REQUEST_SIZE` bytes; the shell may do
  the same, or read until EOF (clients `shutdown(SHUT_WR)` after writing), until
  `request_complete(data)` is true, or until `MAX_REQUEST_SIZE` bytes have arrived. A read that
  fills `MAX_REQUEST_SIZE` is refused as "too large message", so requests can be 4095 bytes.
- `parse_request(data)` turns the bytes into one of the action records `AddHostFwd`,
  `ListHostFwd`, `RemoveHostFwd`, or raises `ApiError` whose `reply` is slirp4netns's error
  reply. Validation follows `api_handle_req()` and its handlers, in their order.
- `HostFwdTable.execute(request, backend)` applies an action: it owns the forward ids (the first
  is `FIRST_ID` = 1, then +1 per successful add, never reused), the entries in insertion order,
  and the default guest address (the recommended guest, cidr base + 100), and calls the injected
  `HostFwdBackend` to really open or close the host listener. A backend refuses by raising
  `HostFwdRefused` (or any `PastaError` or `OSError`, e.g. EADDRINUSE from bind); the reply then
  is slirp4netns's "slirp_add_hostfwd failed" / "slirp_remove_hostfwd failed", the id is not
  consumed, and the table is unchanged. Other exceptions are bugs and propagate to the engine.

States and events: the table's state is `next_id` and the ordered entries; events are the three
actions. A failed add or remove changes nothing.

Invariants:
- Replies are compact JSON without a trailing newline: `{"return":{"id":N}}`, `{"return":{}}`,
  `{"entries":[...]}` (no "return" wrapper, as slirp4netns 1.2.0 really answers; with
  `list_with_return=True` both keys are sent, `{"entries":[...],"return":{"entries":[...]}}`, for
  clients that follow the man page), `{"error":{"desc":"bad request: ..."}}`.
- Entries are listed as `{"id","proto","host_addr","host_port","guest_addr","guest_port"}` in
  that key order, numbers as JSON integers, addresses dotted.
- An entry is in the table exactly while the backend holds its listener.

Request reading, as slirp4netns + its vendored parson read it:
- The request is a C string: it ends at the first NUL byte; a UTF-8 BOM and leading whitespace
  are skipped; anything after the first complete JSON value is ignored (Podman's trailing
  newline). Not JSON, invalid UTF-8, NaN/Infinity, numbers that overflow a double, duplicate
  keys, lone UTF-16 surrogates -> "cannot parse JSON"; JSON that is not an object ->
  "json_object() failed"; no string "execute" -> "no execute found".
- Argument values of the wrong JSON type count as missing (parson's typed getters return
  NULL/0): a missing or non-string `host_addr` or `guest_addr` means "0.0.0.0" and the default
  guest, as does ""; a non-number port or id is 0. Strings compare as C strings (up to a NUL).
- Numbers are doubles truncated toward zero ("80.9" is port 80, 0.5 is 0 and refused).

Limits and not handled: IPv6 forwards (slirp4netns has none: an IPv6 `host_addr` is "bad
arguments.host_addr"); SCTP; the `api_handler: got request: ...` log line is the shell's.

Kernel assumptions: none.

Differences from slirp4netns 1.2.0 (`api.c`):
- A missing or non-string `proto` gets "bad arguments.proto"; slirp4netns passes NULL to strcmp
  and crashes (`api_handle_req_add_hostfwd()`).
- Ports outside 1..65535 are refused with the "bad arguments.host_port"/"guest_port" reply;
  slirp4netns refuses only 0 and hands anything else to libslirp, which truncates it to 16 bits
  (70000 listens on 4464, 65536 on a random port).
- Nesting deeper than Python's recursion limit (about 1000 levels, parson allows 2048) is
  "cannot parse JSON"; parson's other leniencies (vertical tab and form feed as whitespace
  between tokens) are not copied.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Dict, Iterator, Optional, Protocol, Tuple, Union

from pasta.util.errors import ConfigError, PastaError, SetupError

from .slirp4netns_cli import inet_pton4

MAX_REQUEST_SIZE = 4096      # slirp4netns's read buffer; a read that fills it is "too large"
FIRST_ID = 1                 # ids start here and grow by one per successful add_hostfwd
PROTOS = ("tcp", "udp")
ALL_ADDRS = IPv4Address("0.0.0.0")

_C_SPACE = " \t\n\v\f\r"


def _error_reply(desc: str) -> bytes:
    return b'{"error":{"desc":"' + desc.encode() + b'"}}'


class ApiError(ConfigError):
    """A request slirp4netns refuses; `reply` is the exact error reply it sends."""

    def __init__(self, desc: str):
        super().__init__(desc)
        self.desc = desc
        self.reply = _error_reply(desc)


class HostFwdRefused(SetupError):
    """Raised by a backend that cannot open (or close) a forward; the message is for the log."""


TOO_LARGE = "bad request: too large message"
CANNOT_PARSE = "bad request: cannot parse JSON"
NOT_OBJECT = "bad request: json_object() failed"
NO_EXECUTE = "bad request: no execute found"
UNKNOWN_EXECUTE = "bad request: unknown execute"
ADD_FAILED = "bad request: add_hostfwd: slirp_add_hostfwd failed"
REMOVE_BAD_ID = "bad request: remove_hostfwd: bad arguments.id"
REMOVE_FAILED = "bad request: remove_hostfwd: slirp_remove_hostfwd failed"


def _add_bad(arg: str) -> str:
    return f"bad request: add_hostfwd: bad arguments.{arg}"


# --- actions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AddHostFwd:
    """`add_hostfwd`; `guest_addr` None means the table's default guest address."""

    proto: str
    host_addr: IPv4Address
    host_port: int
    guest_addr: Optional[IPv4Address]
    guest_port: int


@dataclass(frozen=True)
class ListHostFwd:
    """`list_hostfwd` (its arguments, if any, are ignored)."""


@dataclass(frozen=True)
class RemoveHostFwd:
    """`remove_hostfwd`; `id` 0 when missing or not a number (never a valid id)."""

    id: int


Request = Union[AddHostFwd, ListHostFwd, RemoveHostFwd]


@dataclass(frozen=True)
class HostFwd:
    """One forward in the table."""

    id: int
    proto: str
    host_addr: IPv4Address
    host_port: int
    guest_addr: IPv4Address
    guest_port: int

    def entry(self) -> Dict[str, object]:
        """The entry object of a `list_hostfwd` reply, in slirp4netns's key order."""
        return {"id": self.id, "proto": self.proto, "host_addr": str(self.host_addr),
                "host_port": self.host_port, "guest_addr": str(self.guest_addr),
                "guest_port": self.guest_port}


class HostFwdBackend(Protocol):
    """What the table needs from the shell: open and close host listeners.

    Both raise `HostFwdRefused` (or any `PastaError`/`OSError`) to refuse; nothing else is
    expected to escape.
    """

    def add_hostfwd(self, proto: str, host_addr: IPv4Address, host_port: int,
                    guest_addr: IPv4Address, guest_port: int) -> None:
        """Listen on host_addr:host_port (proto "tcp" or "udp"), forward to the guest."""

    def remove_hostfwd(self, proto: str, host_addr: IPv4Address, host_port: int) -> None:
        """Close the listener opened for host_addr:host_port."""


# --- JSON as parson reads it --------------------------------------------------------------------

def _number(text: str) -> float:
    value = float(text)
    if math.isinf(value):                    # parson: strtod ERANGE overflow -> parse error
        raise ValueError("number out of range")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"not JSON: {name}")


def _object(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out or "\0" in key:        # parson: json_object_add() fails on a duplicate
            raise ValueError("duplicate or NUL-containing key")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_float=_number, parse_int=_number,
                            parse_constant=_reject_constant, strict=False)


def _has_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if any("\ud800" <= ch <= "\udfff" for ch in v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _c_text(data: bytes) -> bytes:
    """What parson sees: up to the first NUL, without a UTF-8 BOM."""
    data = data.split(b"\0", 1)[0]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data


def parse_json(data: bytes) -> object:
    """`json_parse_string()` on the request: the first JSON value; ApiError if there is none."""
    try:
        text = _c_text(data).decode("utf-8").lstrip(_C_SPACE)
        value, _end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):     # JSONDecodeError and UnicodeDecodeError included
        raise ApiError(CANNOT_PARSE) from None
    if _has_surrogate(value):
        raise ApiError(CANNOT_PARSE)
    return value


def request_complete(data: bytes) -> bool:
    """True when no further bytes can change the reply: a full JSON value, or a full buffer."""
    if len(data) >= MAX_REQUEST_SIZE or b"\0" in data:
        return True
    try:
        parse_json(data)
    except ApiError:
        return False
    return True


def _cstr(value: object) -> Optional[str]:
    """A parson string getter: the string up to its first NUL, or None for any other type."""
    if not isinstance(value, str):
        return None
    return value.split("\0", 1)[0]


def _num(value: object) -> int:
    """`(int)json_object_dotget_number(...)`: 0 for a non-number, else truncated toward zero."""
    if type(value) is not float:             # bool is not a number to parson
        return 0
    return int(value)


# --- requests -----------------------------------------------------------------------------------

def parse_request(data: bytes) -> Request:
    """One request's bytes -> an action, or ApiError carrying slirp4netns's error reply."""
    if len(data) >= MAX_REQUEST_SIZE:
        raise ApiError(TOO_LARGE)
    value = parse_json(data)
    if not isinstance(value, dict):
        raise ApiError(NOT_OBJECT)
    execute = _cstr(value.get("execute"))
    if execute is None:
        raise ApiError(NO_EXECUTE)
    args = value.get("arguments")
    if not isinstance(args, dict):           # json_object_dotget_*("arguments.x") finds nothing
        args = {}
    if execute == "add_hostfwd":
        return _parse_add(args)
    if execute == "list_hostfwd":
        return ListHostFwd()
    if execute == "remove_hostfwd":
        return RemoveHostFwd(_num(args.get("id")))
    raise ApiError(UNKNOWN_EXECUTE)


def _port(args: dict, name: str) -> int:
    port = _num(args.get(name))
    if not 1 <= port <= 0xFFFF:              # slirp4netns checks only != 0 (see Differences)
        raise ApiError(_add_bad(name))
    return port


def _parse_add(args: dict) -> AddHostFwd:
    proto = _cstr(args.get("proto"))
    if proto not in PROTOS:
        raise ApiError(_add_bad("proto"))
    host_text = _cstr(args.get("host_addr"))
    host_addr = ALL_ADDRS if not host_text else inet_pton4(host_text)
    if host_addr is None:
        raise ApiError(_add_bad("host_addr"))
    host_port = _port(args, "host_port")
    guest_text = _cstr(args.get("guest_addr"))
    guest_addr = None
    if guest_text:
        guest_addr = inet_pton4(guest_text)
        if guest_addr is None:
            raise ApiError(_add_bad("guest_addr"))
    guest_port = _port(args, "guest_port")
    return AddHostFwd(proto, host_addr, host_port, guest_addr, guest_port)


class HostFwdTable:
    """slirp4netns's `struct api_ctx`: forward ids and entries, applied through a backend."""

    def __init__(self, guest_addr: Union[IPv4Address, str], *, list_with_return: bool = False):
        self.guest_addr = IPv4Address(str(guest_addr))
        self.list_with_return = list_with_return
        self._next_id = FIRST_ID
        self._fwds: Dict[int, HostFwd] = {}

    @property
    def next_id(self) -> int:
        return self._next_id

    def __iter__(self) -> Iterator[HostFwd]:
        return iter(list(self._fwds.values()))

    def __len__(self) -> int:
        return len(self._fwds)

    def entries(self) -> Tuple[HostFwd, ...]:
        return tuple(self._fwds.values())

    def get(self, fwd_id: int) -> Optional[HostFwd]:
        return self._fwds.get(fwd_id)

    def add(self, backend: HostFwdBackend, proto: str, host_addr: IPv4Address, host_port: int,
            guest_addr: Optional[IPv4Address], guest_port: int) -> HostFwd:
        """Open the forward through the backend, then record it; backend errors propagate."""
        guest = self.guest_addr if guest_addr is None else guest_addr
        backend.add_hostfwd(proto, host_addr, host_port, guest, guest_port)
        fwd = HostFwd(self._next_id, proto, host_addr, host_port, guest, guest_port)
        self._next_id += 1
        self._fwds[fwd.id] = fwd
        return fwd

    def remove(self, backend: HostFwdBackend, fwd_id: int) -> HostFwd:
        """Close the forward through the backend, then forget it; KeyError for an unknown id."""
        fwd = self._fwds[fwd_id]
        backend.remove_hostfwd(fwd.proto, fwd.host_addr, fwd.host_port)
        del self._fwds[fwd_id]
        return fwd

    def list_reply(self) -> bytes:
        entries = [f.entry() for f in self._fwds.values()]
        body: Dict[str, object] = {"entries": entries}
        if self.list_with_return:
            body["return"] = {"entries": entries}
        return json.dumps(body, separators=(",", ":")).encode()

    def execute(self, request: Request, backend: HostFwdBackend) -> bytes:
        """Apply one action and return slirp4netns's reply to it."""
        if isinstance(request, AddHostFwd):
            try:
                fwd = self.add(backend, request.proto, request.host_addr, request.host_port,
                               request.guest_addr, request.guest_port)
            except (PastaError, OSError):
                return _error_reply(ADD_FAILED)
            return b'{"return":{"id":%d}}' % fwd.id
        if isinstance(request, ListHostFwd):
            return self.list_reply()
        if isinstance(request, RemoveHostFwd):
            if request.id not in self._fwds:
                return _error_reply(REMOVE_BAD_ID)
            try:
                self.remove(backend, request.id)
            except (PastaError, OSError):
                return _error_reply(REMOVE_FAILED)
            return b'{"return":{}}'
        raise TypeError(f"not an API request: {request!r}")


def handle_request(data: bytes, backend: HostFwdBackend, table: HostFwdTable) -> bytes:
    """The whole of one API connection: request bytes -> the exact reply bytes."""
    try:
        request = parse_request(data)
    except ApiError as e:
        return e.reply
    return table.execute(request, backend)
