"""CNI output: ADD results in every supported spec version, error and status replies, and typed
reading of JSON input (shared with `cni.netconf`).

Purpose: keep one version-independent model of a CNI result (`Result` with `Interface`,
`IPConfig`, `Route`, `DNS`) and translate it to and from the JSON shape of each spec version, so
the rest of the plugin never looks at version differences.

Theory of operation:
- ADD: the shell describes what pypasta set up in an `NsLink` (interface name, MAC, MTU, sandbox,
  addresses, gateways, DNS); `add_result(link, version, prev)` returns a `Result` (appended to a
  chained `prevResult` when there is one) and `result_to_json(result)` the dict to print with
  `dumps()`.
- CHECK/DEL: `cni.netconf` reads `prevResult` with `parse_result(obj, version)`; any version's shape
  is accepted. `convert_result(obj, from_version, to_version)` re-emits a stored result in another
  version (parse, then emit).
- Errors: every failure is a `cni.CniError`; `as_cni_error(exc)` maps anything else to one
  (`ConfigError` -> 7, `SetupError` -> 100, `OSError` -> 5, other exceptions -> 999), and
  `error_json(err, version)` / `render_error(exc, version)` give the stdout text. STATUS failures
  come from `status_error(problems)` (50/51), GC's collected failures from `gc_error(failures)`.
  STATUS, GC, CHECK and DEL print nothing on success.
- `JsonObject` wraps one decoded JSON object and reads typed keys, raising `CniError` (code 7 unless
  told otherwise) whose one-line message names the key path, e.g.
  `runtimeConfig.portMappings[1].hostPort: expected an integer 1-65535, got "80"`.

Version shapes (SPEC.md section 5, libcni `pkg/types/100`, `pkg/types/040`):
- 1.1.0: `interfaces[]` {name, mac, mtu, sandbox, socketPath, pciID}; `ips[]` {address, gateway,
  interface}; `routes[]` {dst, gw, mtu, advmss, priority, table, scope}; `dns`.
- 1.0.0: as 1.1.0 without the fields 1.1.0 added (interface mtu/socketPath/pciID, route
  mtu/advmss/priority/table/scope).
- 0.3.0, 0.3.1, 0.4.0: as 1.0.0 plus the required `ips[].version` ("4" or "6").
Empty values are omitted as libcni's `omitempty` does (`table`/`scope` are pointers in Go, so 0
is written when set); `dns` is omitted when all its parts are empty.

Invariants:
- Emitted JSON only uses keys the target version defines (tests validate against per-version JSON
  schemas with `additionalProperties: false`).
- `ips[].interface` indexes `interfaces`; `parse_result` refuses an index out of range.
- Addresses are `ipaddress` objects inside the model, strings only in JSON; CIDRs keep their host
  bits (`ip_interface`), as libcni's `types.ParseCIDR` does.

Limits and not handled: the 0.1.0/0.2.0 shape (`ip4`/`ip6`) is neither read nor written (code 1);
`prevResult` keys outside the spec are dropped when it is re-emitted.

Differences from libcni: libcni 1.1.2 wrote `"dns": {}` for an empty DNS and writes 1.1.0-only
fields into 1.0.0 results (one Go type serves both); we follow the spec text for each version.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

from cni import CniError, ErrorCode, one_line
from cni.version import CURRENT_VERSION, SUPPORTED_VERSIONS, is_supported
from pasta.util.errors import ConfigError, SetupError
from pasta.plan.portspec import inet_pton

IPAny = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPIface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

INT_MAX = 2**31 - 1
U32_MAX = 2**32 - 1
VALUE_SHOWN_MAX = 60          # characters of an offending value quoted in a message


# --- the version-independent model -------------------------------------------------------------

@dataclass(frozen=True)
class Interface:
    """One entry of `interfaces`: `sandbox` is the netns path, "" for host-side interfaces."""

    name: str
    mac: str = ""
    mtu: int = 0              # 1.1.0 and later only; 0: not reported
    sandbox: str = ""
    socket_path: str = ""     # 1.1.0 and later only
    pci_id: str = ""          # 1.1.0 and later only


@dataclass(frozen=True)
class IPConfig:
    """One entry of `ips`: `interface` indexes `Result.interfaces` (None in IPAM results)."""

    address: IPIface
    gateway: Optional[IPAny] = None
    interface: Optional[int] = None


@dataclass(frozen=True)
class Route:
    """One entry of `routes`; everything but `dst` and `gw` exists from 1.1.0 on."""

    dst: IPIface
    gw: Optional[IPAny] = None
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: Optional[int] = None
    scope: Optional[int] = None


@dataclass(frozen=True)
class DNS:
    """The `dns` object of a result (and the well-known `dns` key of a network config)."""

    nameservers: Tuple[str, ...] = ()
    domain: str = ""
    search: Tuple[str, ...] = ()
    options: Tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


@dataclass(frozen=True)
class Result:
    """A CNI result in no particular version; `cni_version`: the version it came or goes in."""

    cni_version: str
    interfaces: Tuple[Interface, ...] = ()
    ips: Tuple[IPConfig, ...] = ()
    routes: Tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)


@dataclass(frozen=True)
class NsLink:
    """What ADD set up in the container, as the shell observed it (input of `add_result`)."""

    ifname: str
    sandbox: str                                # CNI_NETNS
    mac: str = ""
    mtu: int = 0
    addresses: Tuple[IPIface, ...] = ()         # each with its prefix length
    gateway4: Optional[ipaddress.IPv4Address] = None
    gateway6: Optional[ipaddress.IPv6Address] = None
    routes: Tuple[Route, ...] = ()              # besides the default routes via the gateways
    dns: DNS = field(default_factory=DNS)


DEFAULT4 = ipaddress.ip_interface("0.0.0.0/0")
DEFAULT6 = ipaddress.ip_interface("::/0")


def add_result(link: NsLink, version: str, prev: Optional[Result] = None) -> Result:
    """The ADD result: `prev` (a chained prevResult) with our interface, addresses and routes added.

    Each address gets the gateway of its family; a default route per family with a gateway and an
    address. DNS parts that `prev` leaves empty are filled from `link.dns`.
    """
    _require_version(version)
    interfaces = tuple(prev.interfaces) if prev else ()
    if any(i.name == link.ifname and i.sandbox == link.sandbox for i in interfaces):
        raise CniError(ErrorCode.INVALID_NETWORK_CONFIG,
                       f"prevResult already has interface {describe(link.ifname)} in the "
                       f"container", "ADD must not create an interface that exists")
    index = len(interfaces)
    interfaces += (Interface(link.ifname, mac=link.mac, mtu=link.mtu, sandbox=link.sandbox),)
    gateways = {4: link.gateway4, 6: link.gateway6}
    ips = tuple(IPConfig(a, gateways[a.version], index) for a in link.addresses)
    families = {a.version for a in link.addresses}
    routes = tuple(Route(dst, gateways[v]) for v, dst in ((4, DEFAULT4), (6, DEFAULT6))
                   if gateways[v] is not None and v in families)
    dns = link.dns
    if prev is not None:
        ips = prev.ips + ips
        routes = prev.routes + routes
        old = prev.dns
        dns = DNS(old.nameservers or dns.nameservers, old.domain or dns.domain,
                  old.search or dns.search, old.options or dns.options)
    return Result(version, interfaces, ips, routes + link.routes, dns)


# --- model -> JSON -------------------------------------------------------------------------------

def _shape(version: str) -> str:
    """"1.1", "1.0" or "0.4" (0.3.0, 0.3.1 and 0.4.0 share libcni's 040 types)."""
    _require_version(version)
    if version == "1.1.0":
        return "1.1"
    return "1.0" if version == "1.0.0" else "0.4"


def _require_version(version: str) -> None:
    if not is_supported(version):
        supported = ",".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
        raise CniError(ErrorCode.INCOMPATIBLE_CNI_VERSION, "incompatible CNI versions",
                       f"cannot write a result in version {describe(version)}, "
                       f"plugin supports [{supported}]")


def _put(out: dict, key: str, value: Any) -> None:
    """Set `key` unless `value` is empty (Go's omitempty)."""
    if value not in (None, "", 0, (), [], {}):
        out[key] = value


def result_to_json(result: Result, version: Optional[str] = None) -> dict:
    """The result as a JSON-ready dict in `version` (default: `result.cni_version`)."""
    version = version or result.cni_version
    shape = _shape(version)
    out: dict = {"cniVersion": version}
    ifaces = []
    for i in result.interfaces:
        d = {"name": i.name}
        _put(d, "mac", i.mac)
        if shape == "1.1":
            _put(d, "mtu", i.mtu)
        _put(d, "sandbox", i.sandbox)
        if shape == "1.1":
            _put(d, "socketPath", i.socket_path)
            _put(d, "pciID", i.pci_id)
        ifaces.append(d)
    ips = []
    for ip in result.ips:
        d = {}
        if shape == "0.4":
            d["version"] = str(ip.address.version)
        d["address"] = str(ip.address)
        if ip.gateway is not None:
            d["gateway"] = str(ip.gateway)
        if ip.interface is not None:
            d["interface"] = ip.interface
        ips.append(d)
    routes = []
    for r in result.routes:
        d = {"dst": str(r.dst)}
        if r.gw is not None:
            d["gw"] = str(r.gw)
        if shape == "1.1":
            _put(d, "mtu", r.mtu)
            _put(d, "advmss", r.advmss)
            _put(d, "priority", r.priority)
            for key, value in (("table", r.table), ("scope", r.scope)):
                if value is not None:
                    d[key] = value
        routes.append(d)
    _put(out, "interfaces", ifaces)
    _put(out, "ips", ips)
    _put(out, "routes", routes)
    dns: dict = {}
    _put(dns, "nameservers", list(result.dns.nameservers))
    _put(dns, "domain", result.dns.domain)
    _put(dns, "search", list(result.dns.search))
    _put(dns, "options", list(result.dns.options))
    _put(out, "dns", dns)
    return out


def convert_result(obj: Any, from_version: str, to_version: str) -> dict:
    """Re-emit a result given as JSON in `from_version` in `to_version` (both supported)."""
    _require_version(to_version)
    return result_to_json(parse_result(obj, from_version), to_version)


def dumps(obj: Any) -> str:
    """The text to print: JSON indented by 4 as libcni's PrintResult, ASCII only, newline-ended."""
    return json.dumps(obj, indent=4, ensure_ascii=True) + "\n"


# --- errors and replies --------------------------------------------------------------------------

def error_json(err: CniError, version: Optional[str] = None) -> dict:
    """The error object; `cniVersion` is the request's when supported, else `CURRENT_VERSION`."""
    out = {"cniVersion": version if version and is_supported(version) else CURRENT_VERSION,
           "code": err.code, "msg": err.msg}
    if err.details:
        out["details"] = err.details
    return out


def as_cni_error(exc: BaseException) -> CniError:
    """Any exception as the CniError to report: typed ones keep their meaning, bugs become 999."""
    if isinstance(exc, CniError):
        return exc
    if isinstance(exc, SetupError):
        return CniError(ErrorCode.SETUP_FAILED, str(exc))
    if isinstance(exc, ConfigError):
        return CniError(ErrorCode.INVALID_NETWORK_CONFIG, str(exc))
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        return CniError(ErrorCode.IO_FAILURE, f"I/O error{where}: {what}")
    text = str(exc)
    return CniError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}"
                    + (f": {text}" if text else ""))


def render_error(exc: BaseException, version: Optional[str] = None) -> str:
    """The complete stdout text for a failure (the caller then exits 1)."""
    return dumps(error_json(as_cni_error(exc), version))


def status_error(problems: Sequence[str], limited: bool = False) -> CniError:
    """STATUS failure: 50 (cannot ADD now) or 51 (and existing attachments may be impaired)."""
    code = ErrorCode.LIMITED_CONNECTIVITY if limited else ErrorCode.PLUGIN_NOT_AVAILABLE
    first = problems[0] if problems else "unknown reason"
    return CniError(code, f"plugin not available: {first}", "; ".join(problems[1:]))


def gc_error(failures: Sequence[str]) -> Optional[CniError]:
    """GC goes on after failures and reports them all at the end; None when there were none."""
    if not failures:
        return None
    return CniError(ErrorCode.CLEANUP_FAILED,
                    f"GC could not clean up {len(failures)} attachment(s): {failures[0]}",
                    "; ".join(failures[1:]))


# --- typed reading of JSON -----------------------------------------------------------------------

def describe(value: Any) -> str:
    """A JSON value for a one-line message, cut to `VALUE_SHOWN_MAX` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > VALUE_SHOWN_MAX:
        text = text[:VALUE_SHOWN_MAX - 3] + "..."
    return one_line(text)


def is_int(value: Any) -> bool:
    """True for JSON integers (Python bools are ints, JSON booleans are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


class JsonObject:
    """Typed access to the keys of one decoded JSON object.

    `null` reads as absent (Go unmarshals it to the zero value). Every problem raises `CniError`
    with `code` (default 7) and a one-line message naming the full key path.
    """

    def __init__(self, obj: Any, path: str = "", code: int = ErrorCode.INVALID_NETWORK_CONFIG):
        self.path = path
        self.code = code
        if not isinstance(obj, dict):
            raise self.error(path or "config", "an object", obj)
        self.obj = obj

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, path: str, expected: str, value: Any) -> CniError:
        return CniError(self.code, f"{path}: expected {expected}, got {describe(value)}")

    def has(self, name: str) -> bool:
        return self.obj.get(name) is not None

    def raw(self, name: str) -> Any:
        return self.obj.get(name)

    def missing(self, name: str) -> CniError:
        return CniError(self.code, f"{self.key(name)}: missing")

    def _get(self, name: str, ok, expected: str, required: bool) -> Any:
        value = self.obj.get(name)
        if value is None:
            if required:
                raise self.missing(name)
            return None
        if not ok(value):
            raise self.error(self.key(name), expected, value)
        return value

    def string(self, name: str, required: bool = False, nonempty: bool = False) -> Optional[str]:
        expected = "a non-empty string" if nonempty else "a string"
        return self._get(name, lambda v: isinstance(v, str) and (v or not nonempty),
                         expected, required)

    def boolean(self, name: str, required: bool = False) -> Optional[bool]:
        return self._get(name, lambda v: isinstance(v, bool), "true or false", required)

    def integer(self, name: str, lo: int = 0, hi: int = INT_MAX,
                required: bool = False) -> Optional[int]:
        return self._get(name, lambda v: is_int(v) and lo <= v <= hi,
                         f"an integer {lo}-{hi}", required)

    def array(self, name: str, required: bool = False) -> Optional[list]:
        return self._get(name, lambda v: isinstance(v, list), "an array", required)

    def strings(self, name: str) -> Tuple[str, ...]:
        """An optional array of strings, as a tuple (empty when absent)."""
        items = self.array(name) or []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error(f"{self.key(name)}[{i}]", "a string", item)
        return tuple(items)

    def object(self, name: str, required: bool = False) -> Optional["JsonObject"]:
        value = self._get(name, lambda v: isinstance(v, dict), "an object", required)
        return None if value is None else JsonObject(value, self.key(name), self.code)

    def objects(self, name: str) -> List["JsonObject"]:
        """An optional array of objects (empty when absent)."""
        key = self.key(name)
        return [JsonObject(item, f"{key}[{i}]", self.code)
                for i, item in enumerate(self.array(name) or [])]

    def ip(self, name: str, required: bool = False) -> Optional[IPAny]:
        value = self._get(name, lambda v: isinstance(v, str) and inet_pton(v) is not None,
                          "an IP address", required)
        return None if value is None else inet_pton(value)

    def cidr(self, name: str, required: bool = False) -> Optional[IPIface]:
        value = self._get(name, lambda v: parse_cidr(v) is not None,
                          "an address in CIDR form (ADDR/PREFIX)", required)
        return None if value is None else parse_cidr(value)


def parse_cidr(text: Any) -> Optional[IPIface]:
    """`"192.0.2.5/24"` -> IPv4Interface (host bits kept); None if not ADDR/PREFIX."""
    if not isinstance(text, str):
        return None
    addr_s, slash, plen_s = text.partition("/")
    addr = inet_pton(addr_s)
    if not slash or addr is None or not plen_s.isascii() or not plen_s.isdigit() \
            or (len(plen_s) > 1 and plen_s[0] == "0"):
        return None
    plen = int(plen_s)
    if plen > addr.max_prefixlen:
        return None
    return ipaddress.ip_interface(f"{addr}/{plen}")


# --- JSON -> model -------------------------------------------------------------------------------

def parse_result(obj: Any, version: str, path: str = "prevResult") -> Result:
    """Read a result in the shape of any supported version (0.x `ips[].version` is checked)."""
    top = JsonObject(obj, path)
    own = top.string("cniVersion")
    if own and not is_supported(own):
        raise CniError(ErrorCode.INCOMPATIBLE_CNI_VERSION, f"{path}: unsupported cniVersion "
                       f"{describe(own)}", "results of 0.3.0 to 1.1.0 can be read")
    if top.has("ip4") or top.has("ip6"):
        raise CniError(ErrorCode.INCOMPATIBLE_CNI_VERSION,
                       f"{path}: a 0.1/0.2 result (ip4/ip6)", "results of 0.3.0 to 1.1.0 can "
                       "be read")
    interfaces = tuple(
        Interface(name=o.string("name", required=True), mac=o.string("mac") or "",
                  mtu=o.integer("mtu") or 0, sandbox=o.string("sandbox") or "",
                  socket_path=o.string("socketPath") or "", pci_id=o.string("pciID") or "")
        for o in top.objects("interfaces"))
    ips = []
    for o in top.objects("ips"):
        address = o.cidr("address", required=True)
        ver = o.string("version")
        if ver is not None and ver != str(address.version):
            raise o.error(o.key("version"), f'"{address.version}" for address {address}', ver)
        gateway = o.ip("gateway")
        if gateway is not None and gateway.version != address.version:
            raise o.error(o.key("gateway"), f"an IPv{address.version} address", str(gateway))
        index = o.integer("interface")
        if index is not None and index >= len(interfaces):
            raise o.error(o.key("interface"), f"an index into interfaces (0-{len(interfaces) - 1})"
                          if interfaces else "no index (there are no interfaces)", index)
        ips.append(IPConfig(address, gateway, index))
    routes = []
    for o in top.objects("routes"):
        dst = o.cidr("dst", required=True)
        gw = o.ip("gw")
        if gw is not None and gw.version != dst.version:
            raise o.error(o.key("gw"), f"an IPv{dst.version} address", str(gw))
        # Linux: priority and table are u32, scope a u8 (rtnetlink(7))
        routes.append(Route(dst, gw, o.integer("mtu") or 0, o.integer("advmss") or 0,
                            o.integer("priority", 0, U32_MAX) or 0,
                            o.integer("table", 0, U32_MAX), o.integer("scope", 0, 255)))
    dns = parse_dns(top.object("dns"))
    return Result(version, interfaces, tuple(ips), tuple(routes), dns)


def parse_dns(o: Optional[JsonObject]) -> DNS:
    """The `dns` object of a result or config: nameservers must be IP addresses."""
    if o is None:
        return DNS()
    nameservers = o.strings("nameservers")
    for i, ns in enumerate(nameservers):
        if inet_pton(ns) is None:
            raise o.error(f"{o.key('nameservers')}[{i}]", "an IP address", ns)
    return DNS(nameservers, o.string("domain") or "", o.strings("search"), o.strings("options"))


def with_version(result: Result, version: str) -> Result:
    """The same result labelled for another (supported) version."""
    _require_version(version)
    return replace(result, cni_version=version)


def interfaces_in(result: Result, sandbox: str) -> Iterable[Tuple[int, Interface]]:
    """(index, interface) pairs of the interfaces inside the container `sandbox`."""
    return ((i, itf) for i, itf in enumerate(result.interfaces) if itf.sandbox == sandbox)
