"""CNI input: the `CNI_*` environment and the network configuration on stdin, checked and turned
into frozen values and into a pypasta command line.

Purpose: everything the CNI front end needs to know about a request, validated in one pass with one
error type (`cni.CniError`), without touching the system.

Theory of operation:
- `parse_env(environ)` reads the six `CNI_*` variables (plus skel's `CNI_NETNS_OVERRIDE`) and
  returns a `CniEnv`. Which variables are required depends on the command (`REQUIRED_ENV`, the
  spec's table); missing ones and invalid container ids, interface names, netns paths or `CNI_ARGS`
  pairs give code 4 naming the variable.
- `parse_netconf(stdin, command)` decodes stdin (code 6 if it is not a UTF-8 JSON object), checks
  `name` and `cniVersion` as skel does (codes 7 and 1), then reads our plugin keys,
  `runtimeConfig` (`portMappings`, `mac`), `prevResult` (via `cni.result.parse_result`) and, for
  GC, `cni.dev/valid-attachments`. The result is a `NetConf`.
- `pasta_args(conf, netns, ifname, pid_file)` is the pypasta command line for ADD: pypasta joins
  `netns`, creates the tap `ifname`, configures it (`--config-net`), forwards the port mappings and
  daemonizes once ready, which is exactly when ADD may print its result.
  `pasta.front.conf.parse_args(pasta_args(...))` gives the equivalent `pasta.plan.config.Config`.
- `result_dns(conf)` is the `dns` of the ADD result; `runtime_dir(conf, environ)`, `state_key(...)`
  and `stale_attachments(valid, existing)` are the pure parts of state keeping and GC.

Plugin keys (pasta's defaults: with no key at all the container gets copies of the host's
addresses, routes and gateway on a tap named CNI_IFNAME, MTU 65520, DNS forwarding on 169.254.1.1):
- `address` (IPv4, "A" or "A/N"), `prefixLen` (1-32), `gateway`: pasta `-a`, `-n`, `-g` for IPv4.
  Without `prefixLen` or "/N", pasta's classful default applies.
- `address6` ("A" or "A/64"; pasta always assigns /64), `gateway6`: `-a`, `-g` for IPv6.
- `mtu` (0 or 68-65521, default 65520): `-m`. `mac`: the container interface's MAC
  (`--ns-mac-addr`); `runtimeConfig.mac` (capability `mac`) overrides it.
- `dns`: `false` turns DNS forwarding off; `true` (default) or the well-known CNI object
  `{"nameservers", "domain", "search", "options"}` keeps it on, and the object's parts go into the
  result (its `nameservers` replace the forwarding addresses there).
- `dnsForward`: forwarding address(es), a string or an array with at most one per family
  (`--dns-forward`); default 169.254.1.1 (IPv4 only, as Podman).
- `ipv4`, `ipv6` (default true): `false` gives pasta's `-6` / `-4`.
- `outboundInterface`: host interface for addresses, routes and outbound traffic
  (`-i`, `--outbound-if4`, `--outbound-if6`).
- `mapGateway` (default true): `false` gives `--no-map-gw`.
- `runtimeDir`: absolute directory for per-attachment state (default from `runtime_dir()`).
- `logFile` (absolute path, `-l`) and `debug` (`-d`); otherwise pypasta runs with `-q`.
Well-known keys: `ipam` is refused (code 2: addresses come from the host or the keys above);
`capabilities`, `args`, `ipMasq` and unknown keys are ignored; `null` means "not given".

States and events (the `Command` decides what is fatal):
- `Command.ADD`, `Command.CHECK`, `Command.STATUS`, `Command.VERSION`: every problem is fatal.
- `Command.DEL`, `Command.GC`: lenient, because DEL must succeed when ADD never did: a bad plugin
  key is dropped to its default and its message lands in `NetConf.warnings`. Still fatal: stdin
  that is not a JSON object, `name`, `cniVersion`, `runtimeDir` and, for GC, the attachment list.
  A lenient `NetConf` may therefore hold contradictory keys: DEL and GC use only `name`,
  `runtime_dir`, `prev_result` and `valid_attachments`.

Invariants:
- Every error is a `CniError` with a one-line message naming the variable or key path; no other
  exception escapes `parse_env` or `parse_netconf`, whatever the input (a Hypothesis test checks).
- Values accepted here are accepted by `pasta.front.conf.parse_args` when rendered by `pasta_args`, and
  the address checks are pasta's (`-a`, `-g`, `--dns-forward` rejection rules).
- `NetConf.port_mappings` has no two entries with the same (protocol, hostIP, hostPort): exact
  duplicates are merged, conflicting ones refused; nor two of one protocol and host port whose
  host addresses overlap (no hostIP, or 0.0.0.0 / :: against an address of its family), which
  pasta 2026 refuses as a forwarding conflict.

Limits and not handled:
- `sctp` port mappings are refused with code 2 ("unsupported field": the reference reserves 3 for
  unknown containers); pypasta forwards TCP and UDP only.
- Capabilities `ips`, `dns`, `bandwidth`, `ipRanges` and the `CNI_ARGS` key `IP` are ignored;
  `CNI_ARGS` pairs are checked for form only (we define no keys).
- Container-to-host forwarding (`-T`/`-U`) is off (`none`), as Podman runs pasta; the host stays
  reachable through the gateway address (`mapGateway`).
- A missing `cni.dev/valid-attachments` (cnitool sends none) reads as `valid_attachments=None`,
  which means "nothing to compare": GC must then remove nothing.

Differences from skel: `CNI_PATH` is required only for GC (the spec's table); skel also demands it
for ADD, DEL, CHECK and STATUS although pypasta delegates to no other plugin. `CNI_NETNS` must be an
absolute path (pasta would read a bare name as /run/netns/NAME). `name` of a non-string type is
code 7 (skel: 6, from Go's decoder).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from cni import CniError, ErrorCode
from cni.result import (DNS, IPAny, JsonObject, Result, describe, is_int, parse_dns,
                        parse_result)
from cni.version import MISSING_VERSION, Command, check_version
from pasta.plan.config import IFNAMSIZ, MTU_DEFAULT
from pasta.plan.portspec import inet_pton, show

PATH_MAX = 4096
ETH_MIN_MTU = 68
ETH_MAX_MTU = 65521             # pasta 2026: a 65535-byte frame minus its Ethernet header
DNS_FORWARD_DEFAULT4 = ipaddress.IPv4Address("169.254.1.1")
RUNTIME_DIR_DEFAULT = "/run/pypasta-cni"
RUNTIME_SUBDIR = "pypasta-cni"        # under $XDG_RUNTIME_DIR (rootless Podman sets it)
STATE_KEY_MAX = 200                   # bytes; leaves room for a suffix within NAME_MAX (255)

ENV_VARS = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
_ADD_ENV = ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")
REQUIRED_ENV: Dict[Command, Tuple[str, ...]] = {
    Command.ADD: _ADD_ENV,
    Command.CHECK: _ADD_ENV,
    Command.DEL: ("CNI_CONTAINERID", "CNI_IFNAME"),
    Command.GC: ("CNI_PATH",),
    Command.STATUS: (),
    Command.VERSION: (),
}
LENIENT = frozenset({Command.DEL, Command.GC})
PROTOCOLS = ("tcp", "udp")

_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")       # container ids and network names
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_BCAST4 = ipaddress.IPv4Address("255.255.255.255")

E4 = ErrorCode.INVALID_ENVIRONMENT_VARIABLES
E6 = ErrorCode.DECODING_FAILURE
E7 = ErrorCode.INVALID_NETWORK_CONFIG


# --- values --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CniEnv:
    """The request's `CNI_*` variables; unrequired ones are kept as given ("" when unset)."""

    command: Command
    container_id: str = ""
    netns: str = ""                         # absolute path, checked for ADD and CHECK
    ifname: str = ""
    args: Tuple[Tuple[str, str], ...] = ()  # CNI_ARGS pairs, in order
    path: Tuple[str, ...] = ()              # CNI_PATH directories
    netns_override: bool = False            # CNI_NETNS_OVERRIDE=1|true (skel's own-netns check)

    def arg(self, key: str) -> Optional[str]:
        """The last value of `key` in CNI_ARGS, or None."""
        found = [v for k, v in self.args if k == key]
        return found[-1] if found else None


@dataclass(frozen=True)
class PortMapping:
    """One `runtimeConfig.portMappings` entry: host `host_ip:host_port` -> container port."""

    host_port: int
    container_port: int
    protocol: str = "tcp"                   # "tcp" or "udp"
    host_ip: Optional[IPAny] = None         # None: every address of every enabled family


@dataclass(frozen=True)
class Attachment:
    """One entry of `cni.dev/valid-attachments` (GC)."""

    container_id: str
    ifname: str


@dataclass(frozen=True)
class NetConf:
    """The checked network configuration of one request."""

    cni_version: str
    name: str
    type: str = ""
    address: Optional[ipaddress.IPv4Address] = None
    prefix_len: Optional[int] = None
    gateway: Optional[ipaddress.IPv4Address] = None
    address6: Optional[ipaddress.IPv6Address] = None
    gateway6: Optional[ipaddress.IPv6Address] = None
    mtu: int = MTU_DEFAULT
    mac: Optional[str] = None               # lower case; runtimeConfig.mac already applied
    dns_forwarding: bool = True
    dns_forward: Tuple[IPAny, ...] = (DNS_FORWARD_DEFAULT4,)   # at most one per family
    dns: DNS = field(default_factory=DNS)   # the well-known `dns` object, for the result
    ipv4: bool = True
    ipv6: bool = True
    outbound_interface: Optional[str] = None
    map_gateway: bool = True
    runtime_dir: Optional[str] = None
    log_file: Optional[str] = None
    debug: bool = False
    port_mappings: Tuple[PortMapping, ...] = ()
    prev_result: Optional[Result] = None
    valid_attachments: Optional[Tuple[Attachment, ...]] = None  # GC only; None: key absent
    warnings: Tuple[str, ...] = ()          # DEL/GC: problems that were not fatal

    def forward_addresses(self) -> Tuple[IPAny, ...]:
        """The DNS forwarding addresses in effect (forwarding on, family enabled)."""
        if not self.dns_forwarding:
            return ()
        return tuple(a for a in self.dns_forward if (self.ipv4 if a.version == 4 else self.ipv6))


# --- environment ---------------------------------------------------------------------------------

def _q(text: str) -> str:
    """A user string quoted for a message, escaped and cut short."""
    return describe(text)


def ifname_problem(name: str) -> Optional[str]:
    """Why `name` cannot be a Linux interface name (libcni's ValidateInterfaceName), or None."""
    if not name:
        return "interface name is empty"
    if len(name.encode("utf-8", "surrogateescape")) >= IFNAMSIZ:
        return f"interface name is too long (at most {IFNAMSIZ - 1} bytes)"
    if name in (".", ".."):
        return "interface name is . or .."
    if any(c in "/:" or c.isspace() for c in name):
        return "interface name contains / or : or whitespace characters"
    return None


def path_problem(path: str) -> Optional[str]:
    """Why `path` is not a usable absolute path, or None."""
    if not path.startswith("/"):
        return "must be an absolute path"
    if "\0" in path:
        return "must not contain NUL"
    if len(path.encode("utf-8", "surrogateescape")) >= PATH_MAX:
        return f"must be shorter than {PATH_MAX} bytes"
    return None


def parse_env(environ: Mapping[str, str]) -> CniEnv:
    """Check the `CNI_*` variables for the command they name; code 4 on any problem."""
    cmd = environ.get("CNI_COMMAND", "")
    if not cmd:
        raise CniError(E4, "required env variables [CNI_COMMAND] missing",
                       "CNI_COMMAND must be one of " + ", ".join(c.value for c in Command))
    try:
        command = Command(cmd)
    except ValueError:
        raise CniError(E4, f"unknown CNI_COMMAND: {show(cmd)[:40]}",
                       "expected one of " + ", ".join(c.value for c in Command)) from None
    required = REQUIRED_ENV[command]
    missing = [v for v in required if not environ.get(v)]
    if missing:
        raise CniError(E4, f"required env variables [{','.join(missing)}] missing",
                       f"CNI_COMMAND={command.value} needs {', '.join(required)}")
    container_id = environ.get("CNI_CONTAINERID", "")
    netns = environ.get("CNI_NETNS", "")
    ifname = environ.get("CNI_IFNAME", "")
    if "CNI_CONTAINERID" in required and not _ID.fullmatch(container_id):
        raise CniError(E4, f"invalid characters in CNI_CONTAINERID {_q(container_id)}",
                       "a container id starts with a letter or digit and has only letters, "
                       "digits, '_', '.' and '-'")
    if "CNI_IFNAME" in required:
        problem = ifname_problem(ifname)
        if problem:
            raise CniError(E4, f"invalid CNI_IFNAME {_q(ifname)}: {problem}")
    if "CNI_NETNS" in required:
        problem = path_problem(netns)
        if problem:
            raise CniError(E4, f"invalid CNI_NETNS {_q(netns)}: {problem}")
    args: List[Tuple[str, str]] = []
    if command != Command.VERSION:
        for pair in environ.get("CNI_ARGS", "").split(";"):
            if not pair:
                continue
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise CniError(E4, f"invalid CNI_ARGS pair {_q(pair)}",
                               "CNI_ARGS is KEY=VALUE pairs separated by ';'")
            args.append((key, value))
    path = tuple(p for p in environ.get("CNI_PATH", "").split(":") if p)
    override = environ.get("CNI_NETNS_OVERRIDE", "") in ("1", "true")
    return CniEnv(command, container_id, netns, ifname, tuple(args), path, override)


# --- network configuration -----------------------------------------------------------------------

def decode(stdin: Union[bytes, str]) -> dict:
    """stdin as a JSON object (Go's decoder rules: strict UTF-8, no NaN/Infinity); code 6."""
    if isinstance(stdin, bytes):
        try:
            stdin = stdin.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CniError(E6, "error unmarshall network config",
                           f"stdin is not UTF-8 (bad byte at offset {e.start})") from None

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        # Integers too long for any field read as floats (inf), hence "wrong type" later,
        # instead of tripping Python's int-conversion digit limit.
        obj = json.loads(stdin, parse_constant=no_constant,
                         parse_int=lambda s: int(s) if len(s) <= 40 else float(s))
    except RecursionError:
        raise CniError(E6, "error unmarshall network config",
                       "stdin JSON is nested too deeply") from None
    except ValueError as e:
        raise CniError(E6, "error unmarshall network config", f"stdin is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise CniError(E6, "error unmarshall network config",
                       f"stdin must be a JSON object, got {describe(obj)}")
    return obj


def parse_netconf(stdin: Union[bytes, str], command: Command) -> NetConf:
    """Check the network configuration for `command` (see the module docstring for the keys)."""
    command = Command(command)
    top = JsonObject(decode(stdin))
    name = top.raw("name")
    if name is None or name == "":
        raise CniError(E7, "missing network name")
    if not isinstance(name, str):
        raise top.error("name", "a string", name)
    if not _ID.fullmatch(name):
        raise CniError(E7, f"invalid characters found in network name {_q(name)}",
                       "a network name starts with a letter or digit and has only letters, "
                       "digits, '_', '.' and '-'")
    version = top.string("cniVersion") or MISSING_VERSION
    check_version(version, command)

    ctx = _Ctx(top, command, version)
    kw: Dict[str, Any] = {}
    for step, essential in _STEPS:
        ctx.run(lambda: kw.update(step(ctx)), command in essential)
    ctx.run(lambda: _cross_check(kw), False)
    if ctx.warnings:
        kw["warnings"] = tuple(ctx.warnings)
    return NetConf(cni_version=version, name=name, **kw)


class _Ctx:
    """Parsing state: the top object, the command, and the warnings collected in lenient mode."""

    def __init__(self, top: JsonObject, command: Command, version: str):
        self.top = top
        self.command = command
        self.version = version
        self.warnings: List[str] = []

    def run(self, fn: Callable[[], None], essential: bool) -> None:
        try:
            fn()
        except CniError as e:
            if essential or self.command not in LENIENT:
                raise
            self.warnings.append(str(e))


def _fail(msg: str, details: str = "", code: int = E7) -> CniError:
    return CniError(code, msg, details)


def _check_addr(top: JsonObject, key: str, a: IPAny, rejects: Tuple[str, ...]) -> IPAny:
    """pasta's address checks (`pasta.front.conf._check_addr`), refusing the kinds in `rejects`."""
    bad = (("unspec" in rejects and a.is_unspecified)
           or ("loopback" in rejects and a.is_loopback)
           or ("multicast" in rejects and a.is_multicast)
           or ("bcast" in rejects and a == _BCAST4)
           or ("mapped" in rejects and a.version == 6 and a.ipv4_mapped is not None)
           or ("compat" in rejects and a.version == 6 and int(a) >> 32 == 0 and int(a) > 1))
    if bad:
        kinds = {"unspec": "unspecified", "loopback": "loopback", "multicast": "multicast",
                 "bcast": "broadcast", "mapped": "IPv4-mapped", "compat": "IPv4-compatible"}
        raise top.error(top.key(key), "an address that is not " +
                        ", ".join(kinds[r] for r in rejects), str(a))
    return a


_ADDR4_REJECT = ("unspec", "bcast", "loopback", "multicast")              # pasta -a, IPv4
_ADDR6_REJECT = ("unspec", "loopback", "mapped", "compat", "multicast")   # pasta -a, IPv6
_GW4_REJECT = ("unspec", "bcast", "loopback")                             # -g, --dns-forward
_GW6_REJECT = ("unspec", "loopback")


def _ip_of(top: JsonObject, key: str, version: int, hint: str = "") -> Optional[IPAny]:
    a = top.ip(key)
    if a is not None and a.version != version:
        raise top.error(top.key(key), f"an IPv{version} address{hint}", str(a))
    return a


def _address_with_prefix(top: JsonObject, key: str, version: int,
                         hint: str) -> Tuple[Optional[IPAny], Optional[int]]:
    """`"A"` or `"A/N"`, of the given family."""
    value = top.raw(key)
    if value is None:
        return None, None
    if isinstance(value, str) and "/" in value:
        addr_s, _, plen_s = value.partition("/")
        a = inet_pton(addr_s)
        if a is None or not plen_s.isascii() or not plen_s.isdigit() or \
                (len(plen_s) > 1 and plen_s[0] == "0"):
            raise top.error(top.key(key), f"an IPv{version} address, optionally /PREFIX", value)
        plen = int(plen_s)
    else:
        a = top.ip(key)
        plen = None
    if a.version != version:
        raise top.error(top.key(key), f"an IPv{version} address{hint}", value)
    return a, plen


def _addressing(ctx: _Ctx) -> dict:
    top = ctx.top
    addr4, plen = _address_with_prefix(top, "address", 4, ' (use "address6" for IPv6)')
    if addr4 is not None:
        _check_addr(top, "address", addr4, _ADDR4_REJECT)
        if plen is not None and not 1 <= plen <= 32:
            raise top.error("address", "a prefix length 1-32", top.raw("address"))
    prefix = top.integer("prefixLen", 1, 32)
    if prefix is not None and plen is not None and prefix != plen:
        raise _fail(f"prefixLen: {prefix} contradicts address {_q(top.raw('address'))}")
    gw4 = _ip_of(top, "gateway", 4, ' (use "gateway6" for IPv6)')
    if gw4 is not None:
        _check_addr(top, "gateway", gw4, _GW4_REJECT)
    addr6, plen6 = _address_with_prefix(top, "address6", 6, ' (use "address" for IPv4)')
    if addr6 is not None:
        _check_addr(top, "address6", addr6, _ADDR6_REJECT)
        if plen6 is not None and plen6 > 128:
            raise top.error("address6", "a prefix length of 64", top.raw("address6"))
        if plen6 is not None and plen6 != 64:
            raise _fail(f"unsupported field: address6 {_q(top.raw('address6'))}",
                        "pypasta assigns IPv6 addresses with prefix length 64 only",
                        ErrorCode.UNSUPPORTED_FIELD)
    gw6 = _ip_of(top, "gateway6", 6, ' (use "gateway" for IPv4)')
    if gw6 is not None:
        _check_addr(top, "gateway6", gw6, _GW6_REJECT)
    return {"address": addr4, "prefix_len": prefix if prefix is not None else plen,
            "gateway": gw4, "address6": addr6, "gateway6": gw6}


def _type(ctx: _Ctx) -> dict:
    return {"type": ctx.top.string("type", required=True, nonempty=True)}


def _mtu(ctx: _Ctx) -> dict:
    top = ctx.top
    mtu = top.raw("mtu")
    if mtu is None:
        return {}
    if not is_int(mtu) or not (mtu == 0 or ETH_MIN_MTU <= mtu <= ETH_MAX_MTU):
        raise top.error("mtu", f"0 or an integer {ETH_MIN_MTU}-{ETH_MAX_MTU}", mtu)
    return {"mtu": mtu}


def _mac_of(obj: JsonObject, key: str) -> Optional[str]:
    mac = obj.string(key)
    if mac is None:
        return None
    if not _MAC.fullmatch(mac):
        raise obj.error(obj.key(key), "a MAC address xx:xx:xx:xx:xx:xx", mac)
    first = int(mac[:2], 16)
    if first & 1 or mac.replace(":", "").strip("0") == "":
        raise obj.error(obj.key(key), "a unicast, non-zero MAC address", mac)
    return mac.lower()


def _dns(ctx: _Ctx) -> dict:
    top = ctx.top
    out: Dict[str, Any] = {}
    dns = top.raw("dns")
    if isinstance(dns, bool):
        out["dns_forwarding"] = dns
    elif dns is not None:
        if not isinstance(dns, dict):
            raise top.error("dns", "true, false or an object {nameservers, domain, search, "
                                   "options}", dns)
        out["dns"] = parse_dns(top.object("dns"))
    fwd = top.raw("dnsForward")
    if fwd is not None:
        items = [fwd] if isinstance(fwd, str) else fwd
        if not isinstance(items, list) or not items:
            raise top.error("dnsForward", "an IP address or an array of them", fwd)
        seen: Dict[int, IPAny] = {}
        for i, item in enumerate(items):
            key = "dnsForward" if isinstance(fwd, str) else f"dnsForward[{i}]"
            a = inet_pton(item) if isinstance(item, str) else None
            if a is None:
                raise top.error(key, "an IP address", item)
            _check_addr(top, key, a, _GW4_REJECT if a.version == 4 else _GW6_REJECT)
            if a.version in seen:
                raise _fail(f"dnsForward: more than one IPv{a.version} address "
                            f"({seen[a.version]}, {a})", "pasta forwards one address per family")
            seen[a.version] = a
        out["dns_forward"] = tuple(seen[v] for v in sorted(seen))
        out["_dns_forward_given"] = True
    return out


def _switches(ctx: _Ctx) -> dict:
    top = ctx.top
    out = {}
    for key, attr in (("ipv4", "ipv4"), ("ipv6", "ipv6"), ("mapGateway", "map_gateway"),
                      ("debug", "debug")):
        value = top.boolean(key)
        if value is not None:
            out[attr] = value
    return out


def _outbound(ctx: _Ctx) -> dict:
    top = ctx.top
    name = top.string("outboundInterface")
    if name is None:
        return {}
    problem = ifname_problem(name)
    if problem:
        raise _fail(f"outboundInterface: {problem}, got {_q(name)}")
    return {"outbound_interface": name}


def _path_key(top: JsonObject, key: str) -> Optional[str]:
    path = top.string(key)
    if path is None:
        return None
    problem = path_problem(path)
    if problem:
        raise _fail(f"{key}: {problem}, got {_q(path)}")
    return path


def _runtime_dir(ctx: _Ctx) -> dict:
    return {"runtime_dir": _path_key(ctx.top, "runtimeDir")}


def _log(ctx: _Ctx) -> dict:
    return {"log_file": _path_key(ctx.top, "logFile")}


def _ipam(ctx: _Ctx) -> dict:
    if ctx.top.has("ipam"):
        raise _fail(f"unsupported field: ipam {describe(ctx.top.raw('ipam'))}",
                    'pypasta takes addresses from the host or from "address"/"address6"; '
                    'remove "ipam"', ErrorCode.UNSUPPORTED_FIELD)
    return {}


def _port_mapping(o: JsonObject) -> PortMapping:
    host_port = o.integer("hostPort", 1, 65535, required=True)
    container_port = o.integer("containerPort", 1, 65535, required=True)
    proto = o.string("protocol")
    proto = "tcp" if proto is None else proto.lower()
    if proto == "sctp":
        raise _fail(f'unsupported field: {o.key("protocol")} "sctp"',
                    "pypasta forwards tcp and udp only", ErrorCode.UNSUPPORTED_FIELD)
    if proto not in PROTOCOLS:
        raise o.error(o.key("protocol"), '"tcp" or "udp"', o.raw("protocol"))
    host_ip = None
    text = o.string("hostIP")
    if text:
        host_ip = inet_pton(text)
        if host_ip is None:
            raise o.error(o.key("hostIP"), "an IP address", text)
        if host_ip.is_multicast or host_ip == _BCAST4:
            raise o.error(o.key("hostIP"), "a unicast address", text)
    return PortMapping(host_port, container_port, proto, host_ip)


def _host_ips_overlap(a: Optional[IPAny], b: Optional[IPAny]) -> bool:
    """pasta's conflict rule for listening addresses (fwd_rule.c, inany_matches()): no address
    listens on both families, an unspecified one on its whole family; IPv4-mapped is IPv4."""
    if a is None or b is None:
        return True
    a, b = (x.ipv4_mapped or x if x.version == 6 else x for x in (a, b))
    if a.version != b.version:
        return False
    return a.is_unspecified or b.is_unspecified or a == b


def _runtime_config(ctx: _Ctx) -> dict:
    rc = ctx.top.object("runtimeConfig")
    if rc is None:
        return {}
    out: Dict[str, Any] = {}
    mappings: List[PortMapping] = []
    where: Dict[Tuple[str, Optional[IPAny], int], Tuple[int, int]] = {}
    kept: List[Tuple[int, PortMapping]] = []
    for i, o in enumerate(rc.objects("portMappings")):
        m = _port_mapping(o)
        key = (m.protocol, m.host_ip, m.host_port)
        host = f"{m.host_ip}:" if m.host_ip else ""
        if key in where:
            j, target = where[key]
            if target != m.container_port:
                raise _fail(f"{o.path}: {m.protocol} host port {host}{m.host_port} is already "
                            f"mapped to container port {target} by portMappings[{j}]")
            continue
        for j, n in kept:
            if (n.protocol, n.host_port) == (m.protocol, m.host_port) and \
                    _host_ips_overlap(n.host_ip, m.host_ip):
                other = f"{n.host_ip}:" if n.host_ip else ""
                raise _fail(f"{o.path}: {m.protocol} host port {host}{m.host_port} overlaps "
                            f"{other}{n.host_port} of portMappings[{j}]",
                            "pasta refuses overlapping forwards (\"Forwarding configuration "
                            "conflict\"): no address matches every address, 0.0.0.0 every "
                            "IPv4 one, :: every IPv6 one")
        where[key] = (i, m.container_port)
        kept.append((i, m))
        mappings.append(m)
    if mappings:
        out["port_mappings"] = tuple(mappings)
    mac = _mac_of(rc, "mac")
    if mac is not None:
        out["_runtime_mac"] = mac
    return out


def _mac(ctx: _Ctx) -> dict:
    mac = _mac_of(ctx.top, "mac")
    return {} if mac is None else {"mac": mac}


def _prev_result(ctx: _Ctx) -> dict:
    prev = ctx.top.raw("prevResult")
    if prev is None:
        if ctx.command == Command.CHECK:
            raise _fail("prevResult: missing", "CHECK needs the result of ADD")
        return {}
    return {"prev_result": parse_result(prev, ctx.version)}


def _attachments(ctx: _Ctx) -> dict:
    if ctx.command != Command.GC:
        return {}
    top = ctx.top
    key = "cni.dev/valid-attachments"
    if not top.has(key) and top.has("cni.dev/attachments"):
        key = "cni.dev/attachments"       # libcni sends both (spec typo, CNI issue #1101)
    if not top.has(key):
        return {}
    found = []
    for o in top.objects(key):
        found.append(Attachment(o.string("containerID", required=True),
                                o.string("ifname", required=True)))
    return {"valid_attachments": tuple(found)}


# (parser, commands for which its failure is fatal even in lenient mode)
_STEPS: Tuple[Tuple[Callable[[_Ctx], dict], Tuple[Command, ...]], ...] = (
    (_type, ()),
    (_ipam, ()),
    (_addressing, ()),
    (_mtu, ()),
    (_mac, ()),
    (_dns, ()),
    (_switches, ()),
    (_outbound, ()),
    (_runtime_dir, (Command.DEL, Command.GC)),
    (_log, ()),
    (_runtime_config, ()),
    (_prev_result, ()),
    (_attachments, (Command.GC,)),
)


def _cross_check(kw: Dict[str, Any]) -> None:
    """Contradictions between keys; private `_` entries are consumed here."""
    runtime_mac = kw.pop("_runtime_mac", None)
    if runtime_mac is not None:
        kw["mac"] = runtime_mac
    fwd_given = kw.pop("_dns_forward_given", False)
    ipv4, ipv6 = kw.get("ipv4", True), kw.get("ipv6", True)
    if not ipv4 and not ipv6:
        raise _fail("ipv4 and ipv6 are both false: nothing to configure")
    for family_on, flag, keys in ((ipv4, "ipv4", (("address", "address"),
                                                  ("prefix_len", "prefixLen"),
                                                  ("gateway", "gateway"))),
                                  (ipv6, "ipv6", (("address6", "address6"),
                                                  ("gateway6", "gateway6")))):
        for attr, key in keys:
            if not family_on and kw.get(attr) is not None:
                raise _fail(f"{key} is set but {flag} is false")
    if fwd_given:
        if not kw.get("dns_forwarding", True):
            raise _fail("dnsForward is set but dns is false")
        for a in kw["dns_forward"]:
            if not (ipv4 if a.version == 4 else ipv6):
                raise _fail(f"dnsForward {a} is IPv{a.version} but ipv{a.version} is false")
    for m in kw.get("port_mappings", ()):
        if m.host_ip is not None and not (ipv4 if m.host_ip.version == 4 else ipv6):
            raise _fail(f"runtimeConfig.portMappings: hostIP {m.host_ip} is IPv"
                        f"{m.host_ip.version} but ipv{m.host_ip.version} is false")


# --- outputs -------------------------------------------------------------------------------------

def _port_items(pairs: Sequence[Tuple[int, int]]) -> List[str]:
    """Sorted (host, container) pairs merged into pasta items: `8080-8089:80-89`, `22`."""
    items: List[str] = []
    runs: List[List[int]] = []          # [host_first, host_last, container_first]
    for hp, cp in sorted(pairs):
        if runs and hp == runs[-1][1] + 1 and cp == runs[-1][2] + (hp - runs[-1][0]):
            runs[-1][1] = hp
        else:
            runs.append([hp, hp, cp])
    for first, last, target in runs:
        host = f"{first}" if first == last else f"{first}-{last}"
        tlast = target + (last - first)
        cont = f"{target}" if target == tlast else f"{target}-{tlast}"
        items.append(host if first == target else f"{host}:{cont}")
    return items


def port_specs(mappings: Iterable[PortMapping], protocol: str) -> List[str]:
    """The `-t`/`-u` arguments for one protocol: one per host address, `["none"]` if no ports."""
    groups: Dict[Optional[IPAny], List[Tuple[int, int]]] = {}
    for m in mappings:
        if m.protocol == protocol:
            groups.setdefault(m.host_ip, []).append((m.host_port, m.container_port))
    if not groups:
        return ["none"]
    order = sorted(groups, key=lambda a: (0, 0, 0) if a is None else (1, a.version, int(a)))
    return [(f"{a}/" if a is not None else "") + ",".join(_port_items(groups[a]))
            for a in order]


def pasta_args(conf: NetConf, netns: str, ifname: str,
               pid_file: Optional[str] = None) -> List[str]:
    """The pypasta command line (without argv[0]) that attaches `conf` to `netns` as `ifname`."""
    if not netns:
        raise CniError(E4, "required env variables [CNI_NETNS] missing")
    if not ifname:
        raise CniError(E4, "required env variables [CNI_IFNAME] missing")
    args = ["--config-net", f"--netns={netns}", f"--ns-ifname={ifname}", f"--mtu={conf.mtu}"]
    if conf.debug:
        args.append("--debug")
    elif conf.log_file is None:
        args.append("--quiet")
    if conf.log_file is not None:
        args.append(f"--log-file={conf.log_file}")
    if pid_file is not None:
        args.append(f"--pid={pid_file}")
    if not conf.ipv4:
        args.append("--ipv6-only")
    if not conf.ipv6:
        args.append("--ipv4-only")
    for value, opt in ((conf.address, "address"), (conf.prefix_len, "netmask"),
                       (conf.gateway, "gateway"), (conf.address6, "address"),
                       (conf.gateway6, "gateway"), (conf.mac, "ns-mac-addr")):
        if value is not None:
            args.append(f"--{opt}={value}")
    if conf.outbound_interface is not None:
        args.append(f"--interface={conf.outbound_interface}")
        if conf.ipv4:
            args.append(f"--outbound-if4={conf.outbound_interface}")
        if conf.ipv6:
            args.append(f"--outbound-if6={conf.outbound_interface}")
    args += [f"--dns-forward={a}" for a in conf.forward_addresses()]
    if not conf.map_gateway:
        args.append("--no-map-gw")
    args += [f"--tcp-ports={s}" for s in port_specs(conf.port_mappings, "tcp")]
    args += [f"--udp-ports={s}" for s in port_specs(conf.port_mappings, "udp")]
    args += ["--tcp-ns=none", "--udp-ns=none"]
    return args


def result_dns(conf: NetConf) -> DNS:
    """The ADD result's `dns`: the configured object, nameservers defaulting to the forwarders."""
    nameservers = conf.dns.nameservers or tuple(str(a) for a in conf.forward_addresses())
    return DNS(nameservers, conf.dns.domain, conf.dns.search, conf.dns.options)


def runtime_dir(conf: NetConf, environ: Mapping[str, str]) -> str:
    """Where state lives: `runtimeDir`, else $XDG_RUNTIME_DIR/pypasta-cni, else /run/pypasta-cni."""
    if conf.runtime_dir:
        return conf.runtime_dir
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    if xdg and path_problem(xdg) is None:
        return f"{xdg.rstrip('/') or ''}/{RUNTIME_SUBDIR}"
    return RUNTIME_DIR_DEFAULT


def state_key(network: str, container_id: str, ifname: str) -> str:
    """A file name (without suffix) unique to one attachment of one network.

    ':' cannot appear in any part (names and ids: `_ID`; ifnames: `ifname_problem`), so the
    short form is unambiguous; long ones are hashed. The state file itself must record the
    container id and ifname: GC reads them from there, not from the name.
    """
    key = f"{network}:{container_id}:{ifname}"
    if len(key.encode("utf-8", "surrogateescape")) <= STATE_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{network[:64]}:{digest}"


def stale_attachments(valid: Optional[Iterable[Attachment]],
                      existing: Iterable[Attachment]) -> List[Attachment]:
    """GC: the existing attachments not in `valid`; none at all when `valid` is None (absent)."""
    if valid is None:
        return []
    keep = {(a.container_id, a.ifname) for a in valid}
    return [a for a in existing if (a.container_id, a.ifname) not in keep]
