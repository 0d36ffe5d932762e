"""The pasta- and passt-compatible command line: argv -> `Config`, and the `pypasta` entry point.

Purpose: accept exactly what `pasta` accepts in its namespace mode (Podman, RootlessKit and people
type pasta command lines at us), and what `passt` accepts in its socket mode (QEMU and libvirt:
passt-mode.md sections 3 and 5), reject what each rejects with its wording, and produce a frozen
`pasta.plan.config.Config`. `main()` then hands that to `pasta.setup.supervisor.run`; the
`pypasta-passt` entry point (`pasta.front.passt`) uses `main_parse(argv, mode="passt")`.

Theory of operation:
- `parse_args(argv, ephemeral=None, mode="pasta")` (argv without the program name) is pure: it
  prints nothing, exits nothing and touches the system only to resolve `--runas` names (pwd/grp)
  and, unless its `ephemeral` argument is given, to read /proc/sys/net/ipv4/ip_local_port_range
  (pasta's fwd_probe_ephemeral(): a warning and 49152-65535 when unreadable). It raises
  `UsageError` for getopt-level errors (printed by `main` with the usage text),
  `ConfigError`/`PortSpecError` for bad values, and `ExitRequest` for `-h/--help`, `--version`
  and `--print-capabilities`.
- `_Getopt` is the GNU `getopt_long` of `pasta.front.getopt` (shared with the slirp4netns front
  end) for the optstring `+dqfel:hs:c:F:I:p:P:m:a:n:M:g:i:o:D:S:H:461t:u:T:U:` plus the
  long-option table `LONG_OPTIONS` (in pasta's order, which matters for the list printed for an
  ambiguous abbreviation), in both modes. It yields options lazily, so a problem is reported
  at the point pasta would report it: `-h` before a bad option wins, a bad option before `-h` wins.
- Like pasta's `conf()`, options are handled in passes over the same argv: pass 1 handles
  everything except `-t -u -T -U` (`-D` too, as in pasta 2026: `-D none` clears
  `--dns-forward`/`--dns-host` only if they came earlier); pass 2 every `-t -u -T -U` in argv order
  (pasta 2026's port loop): each argument goes through `fwd_rule.fwd_table_parse()` into one
  forwarding table, checked against the capabilities the options leave (IPV4 unless `-6`, IPV6
  unless `-4`, TCP unless `--no-tcp`, UDP unless `--no-udp`, SCAN, IFNAME), so conflicts and
  `-t 80 -t none` are fatal where pasta finds them. The PID/command/`--netns` checks follow, then
  each of `-t -T -u -U` not given at all adds `auto`, in that order (pasta's defaults).
  `Config.fwd_rules` holds the result. This reproduces pasta's error precedence.
- `main_parse(argv, mode)` prints what the program prints while parsing: `PROG: <message>` on
  stderr for every `PastaError` (plus the usage text after a `UsageError`), a traceback only when
  `-d/--debug/--trace` appeared, help and version on stdout, capabilities on stderr; it returns the
  `Config` or the exit status (KeyboardInterrupt: 130). PROG is `PROGS[mode]`: `pypasta` or
  `pypasta-passt`. `run_reporting(run, argv, mode)` reports what a run raises in the same way.
  `main()` is `pypasta`: `main_parse`, then the supervisor through `run_reporting`.

passt mode (`mode="passt"`, passt 2026's conf() with `c->mode == MODE_PASST`):
- The same getopt tables. `-s/--socket/--socket-path`, `-1/--one-off`, `--no-dhcp-dns`,
  `--no-dhcp-search` are accepted; `-F N` (0 or 3..INT_MAX: conf_tap_fd()) is the connected
  socket, implies `one_off` and clears `socket_path`, and a later `-s` clears `tap_fd`.
- Refused with passt's "... is for pasta mode only" (`PASTA_ONLY`): `-I -T -U`, `--userns`,
  `--netns`, `--netns-only`, `--ns-mac-addr`, `--dhcp-dns`, `--dhcp-search`, `--no-netns-quit`,
  `--config-net`, `--no-copy-routes`, `--no-copy-addrs`, `--host-lo-to-ns-lo`, and, after the
  loop, `--splice-only`. Any non-option argument: "Extra non-option argument: X" (after the
  ports, as passt).
- Defaults: `no_splice` forced on; DNS servers and the search list advertised (`dhcp_dns`,
  `dhcp_search` True); `-t/-u` rules go to the HOST table, without the SCAN capability (so
  `auto` is "'auto' port forwarding is only allowed for pasta") and nothing is added for an
  option not given. `Config.mode` is "passt"; `command`, `netns`, `userns` stay empty.
- `--vhost-user` is refused with `NotSupportedYet` (vhost-user is not implemented) where getopt
  meets it; passt's conf_mode() scans for it first and parses the rest in vhost-user mode.

States and events: none kept between calls; `ExitRequest` (code, text, stream) is the only
non-error way out besides returning a `Config`.

Invariants:
- Every option that was given is recorded by canonical long name in `Config.given`, including
  no-op and deprecated ones (`stderr`), so the supervisor can refuse what it does not implement.
- Messages are one line and use pasta's wording where the reference gives it; getopt messages use
  glibc's exact wording with the program name `pypasta` (Podman greps
  `unrecognized option '--map-guest-addr`).

Limits and not handled:
- `-i/--interface`, `--outbound-if4/6` and paths (`-l -p -P --userns --netns`) are checked for form
  only; whether the interface or file exists is found out later by the supervisor (pasta calls
  if_nametoindex() while parsing: "Invalid interface name eth9: No such device").
- `--vhost-user` (either mode) and so `--repair-path PATH`, `--migrate-exit`, `--migrate-no-linger`
  (vhost-user only in passt) are refused; `--repair-path none` is accepted and ignored.
- `Config.warnings` collects pasta's parse-time warnings ("--stderr will be dropped soon", ...) for
  the supervisor to log; nothing is printed while parsing.

Differences from pasta (`conf.c conf()`, `conf_ports()`, `conf_pasta_ns()`, `parse_mac()`):
- Numbers (`-m`, `--log-size`, `-F`, `-n` bits, `--runas` ids) must be entirely numeric (C `strtol`
  base 0: decimal, 0x hex, leading-0 octal); pasta ignores trailing garbage ("1500abc" -> 1500) and
  reads "" as 0. Empty `--runas` user or group parts are rejected (pasta reads them as 0 = root).
- `-M/--ns-mac-addr` octets must be exactly two hex digits (pasta's strtoul also took " f" and "+f").
- passt-only options (`-s/--socket/--socket-path`, `-1/--one-off`, `--vhost-user`,
  `--print-capabilities`, `--no-dhcp-dns`, `--no-dhcp-search`) are recognised and refused with
  "<option> is for passt mode only"; pasta's optstring simply lacks `-s` and `-1`.
- `--map-host-loopback none` / `--map-guest-addr none` work as documented (the reference tree falls
  through into the address check and dies); `none` also sets `no_map_gw` for `--map-host-loopback`.
- `-S none` empties the list, and later `-S` entries start a new one (pasta keeps writing after
  the zeroed slots). `--no-tcp`/`--no-udp` leave the TCP/UDP capability out, so `-t 80 --no-tcp`
  fails as in pasta 2026 ("Can't add TCP forwarding rule, TCP not enabled"; `-t none` is fine),
  but an option not given then gets no `auto` (pasta 2026 adds it anyway and dies: `pasta
  --no-tcp` alone cannot start). Port errors print their first line only (the reason);
  pasta's following "Unable to add rule R" is in `FwdRuleError.lines`.
- PID form: the single remaining argument is a PID when it is `[+-]?digits` (pasta: anything
  strtol consumes entirely, including ""); `Config.netns`/`Config.userns` are filled with the
  `/proc/PID/ns/{net,user}` paths (userns left None with `--netns-only`).
- `-n 0` (or `0.0.0.0`) leaves `prefix4` None: pasta treats prefix length 0 as "not given".
- User text echoed in messages has control characters escaped (`portspec.show`), so every
  message stays on one line; pasta prints it raw.
- `--config-net` sets `no_ra` (pasta does it right after parsing); `given` still shows only what
  was typed. Effective `-a`/`-g` "don't copy" per family is left to the planner (`addr4 is None`...).
- passt mode splits each `-S/--search` argument at spaces into several domains (QEMU 10.1's
  `-netdev passt` passes its list as one space-joined argument, passt-mode.md 5.2; passt would
  advertise "D1 D2" as one name). The limits apply per domain: "Cannot use DNS search domain D"
  names the domain that did not fit; an argument of spaces only is refused like an empty one.
- pypasta accepts `--no-seccomp` in both modes and lists it in both usage texts; pasta mode's
  usage says `-F` is a tap device (passt 2026 prints "pre-opened connected socket" in both).
- `-n 255.255.255.255` is /32; pasta 2026 refuses it ("Invalid prefix length": conf_ip4_prefix()
  shifts a 32-bit mask by 32, undefined in C, which x86 does as a shift by 0).
- passt `-F 0` closes its own stdout and stderr (close_open_files() closes fds 1 and up, the
  range above the --fd), so its messages are lost; pypasta-passt's are printed.
"""

from __future__ import annotations

import grp
import ipaddress
import pwd
import re
import sys
import traceback
from typing import Callable, Dict, List, Optional, Sequence, TextIO, Tuple, Union

from pasta import __version__
from pasta.plan.config import IFNAMSIZ, LOG_SIZE_MIN, Config
from pasta.util.errors import ConfigError, NotSupportedYet, PastaError, UsageError
from pasta.front.getopt import Getopt, GetoptError, LongOpt, short_table
from pasta.plan import portspec
from pasta.plan.portspec import EPHEMERAL_DEFAULT, show
from pasta.core.fwd_rule import (FWD_CAP_TCP, FWD_CAP_UDP, IPPROTO_TCP, IPPROTO_UDP, PIF_HOST,
                                 PIF_SPLICE, FwdTable, fwd_caps, fwd_parse_ephemeral,
                                 fwd_table_parse)

PROG = "pypasta"
PATH_MAX = 4096
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
UID_MAX = 2**32 - 1
ETH_MIN_MTU = 68
ETH_MAX_MTU = 65535
MAXNS = 3                 # nameservers per family; pasta's arrays hold MAXNS + 1 (22.1 in the reference)
MAXDNSRCH = 6             # search domains given with -S
NS_MAXDNAME = 1025        # sizeof(struct fqdn) in pasta 2026: longest search domain + NUL
NETNS_RUN_DIR = "/run/netns"

SHORT_OPTIONS = "+dqfel:hs:c:F:I:p:P:m:a:n:M:g:i:o:D:S:H:461t:u:T:U:"


class ExitRequest(Exception):
    """Not an error: `--help` or `--version` asked to print `text` on `stream` and exit with `code`."""

    def __init__(self, code: int, text: str, stream: str = "stdout"):
        super().__init__(text)
        self.code = code
        self.text = text
        self.stream = stream     # "stdout" or "stderr"


def _long_options(spec: str) -> Tuple[LongOpt, ...]:
    """Words `NAME[=][/KEY]`: "=" when the option takes an argument, KEY its short option
    (the long name itself when there is none)."""
    out = []
    for word in spec.split():
        name, _, short = word.partition("/")
        out.append(LongOpt(name.rstrip("="), name.endswith("="), short or name.rstrip("=")))
    return tuple(out)


# pasta's `options[]` order (conf.c): glibc lists ambiguous candidates in table order.
LONG_OPTIONS: Tuple[LongOpt, ...] = _long_options("""
    debug/d quiet/q foreground/f stderr/e log-file=/l help/h socket=/s fd=/F ns-ifname=/I
    pcap=/p pid=/P mtu=/m address=/a netmask=/n mac-addr=/M gateway=/g interface=/i outbound=/o
    dns=/D search=/S hostname=/H no-tcp no-udp no-icmp no-dhcp no-dhcpv6 no-ndp no-ra no-splice
    splice-only freebind no-map-gw ipv4-only/4 ipv6-only/6 one-off/1 tcp-ports=/t udp-ports=/u tcp-ns=/T udp-ns=/U
    userns= netns= ns-mac-addr= dhcp-dns no-dhcp-dns dhcp-search no-dhcp-search dns-forward=
    no-netns-quit trace runas= log-size= version outbound-if4= outbound-if6= config-net
    no-copy-routes no-copy-addrs netns-only map-host-loopback= map-guest-addr= host-lo-to-ns-lo
    dns-host= vhost-user print-capabilities socket-path=/s fqdn= repair-path= migrate-exit
    migrate-no-linger stats= conf-path=/c chroot-fallback no-seccomp
""")

# Options that take one address: (message, IPv6 classes refused, IPv4 classes refused, the
# Config field without its family digit), as pasta's conf() checks each.
_ADDR_OPTIONS = {
    "g": ("Invalid gateway address", ("unspec", "loopback"), ("unspec", "bcast", "loopback"),
          "gw"),
    "o": ("Invalid or redundant outbound address",
          ("unspec", "loopback", "mapped", "compat", "multicast"), ("unspec", "bcast", "multicast"),
          "outbound"),
    "dns-forward": ("Invalid DNS forwarding address", ("unspec", "loopback"),
                    ("unspec", "bcast", "loopback"), "dns_forward"),
    "dns-host": ("Invalid host nameserver address", ("unspec",), ("unspec", "bcast"),
                 "dns_host"),
}

# key -> canonical long name (first table entry wins: "s" -> "socket").
CANONICAL: Dict[str, str] = {o.key: o.name for o in reversed(LONG_OPTIONS)}

# Options pasta 2026 refuses in pasta mode, with its message.
PASST_ONLY = {"s": "-s is for passt / vhost-user mode only",
              "1": "--one-off is for passt mode only",
              "no-dhcp-dns": "--no-dhcp-dns is for passt mode only",
              "no-dhcp-search": "--no-dhcp-search is for passt mode only",
              "migrate-exit": "--migrate-exit is for vhost-user mode only",
              "migrate-no-linger": "--migrate-no-linger is for vhost-user mode only"}
# Options passt 2026 refuses in passt mode, with its message (`--splice-only` is refused after
# the loop, `--repair-path` unless it is `none`).
PASTA_ONLY = {"I": "-I is for pasta mode only",
              "T": "-T is for pasta mode only",
              "U": "-U is for pasta mode only",
              **{name: f"--{name} is for pasta mode only" for name in (
                  "userns", "netns", "ns-mac-addr", "dhcp-dns", "dhcp-search", "no-netns-quit",
                  "config-net", "no-copy-routes", "no-copy-addrs", "netns-only",
                  "host-lo-to-ns-lo")},
              "migrate-exit": PASST_ONLY["migrate-exit"],
              "migrate-no-linger": PASST_ONLY["migrate-no-linger"]}
MODES = ("pasta", "passt")
REFUSED = {"pasta": PASST_ONLY, "passt": PASTA_ONLY}
PROGS = {"pasta": PROG, "passt": "pypasta-passt"}      # program names, for messages and texts
VHOST_USER_REFUSAL = {
    "pasta": "vhost-user passt mode",
    "passt": "pypasta-passt has no vhost-user mode; use its stream socket, -s PATH or --fd N "
             "(QEMU -netdev stream, or -netdev passt with vhost-user=off)"}
PASST_MAXDNAME = 254        # hostname and FQDN buffers: 253 characters + NUL
UNIX_PATH_MAX = 108         # sizeof(sun_path)
IP_MAX_MTU = 65535 - 14     # pasta's largest -m: a 65535-byte frame minus the Ethernet header
IPV4_MIN_MTU = 68
IPV6_MIN_MTU = 1280
CAPABILITIES_TEXT = '{\n  "type": "net"\n}\n'     # --print-capabilities (vhost-user's)


def _usage_errors(g: Getopt):
    """The options of `g`, with glibc's diagnostics raised as UsageError."""
    try:
        yield from g
    except GetoptError as e:
        raise UsageError(str(e)) from None


def _Getopt(argv: Sequence[str]) -> Getopt:
    """pasta's getopt_long: stops at the first non-option ('+'); errors are UsageError."""
    return Getopt(argv, SHORT_OPTIONS, LONG_OPTIONS, quote=show)


# --- value parsers -----------------------------------------------------------------------------

_C_LONG = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def c_strtol(text: str) -> Optional[int]:
    """C `strtol(text, &end, 0)` that must consume everything; None if it would not."""
    m = _C_LONG.fullmatch(text)
    if not m:
        return None
    sign, digits = m.groups()
    if digits[:2] in ("0x", "0X"):
        value = int(digits, 16)
    elif digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits, 10)
    return -value if sign == "-" else value


# A text is never both a valid IPv4 and a valid IPv6 address, so the order in which pasta tries
# inet_pton() families does not matter.
_addr = portspec.inet_pton


def _v6_v4compat(a: ipaddress.IPv6Address) -> bool:
    # IN6_IS_ADDR_V4COMPAT: ::a.b.c.d with the last word > 1
    return int(a) >> 32 == 0 and int(a) > 1


_BCAST4 = ipaddress.IPv4Address("255.255.255.255")


def _check_addr(text: str, message: str, *, v6_reject: Tuple[str, ...],
                v4_reject: Tuple[str, ...]) -> portspec.IPAny:
    """Parse and validate an address; rejection names: unspec, loopback, multicast, bcast,
    mapped, compat."""
    a = _addr(text)
    if a is None:
        raise ConfigError(f"{message}: {show(text)}")
    rejects = v6_reject if a.version == 6 else v4_reject
    bad = (("unspec" in rejects and a.is_unspecified)
           or ("loopback" in rejects and a.is_loopback)
           or ("multicast" in rejects and a.is_multicast)
           or ("bcast" in rejects and a == _BCAST4)
           or ("mapped" in rejects and a.version == 6 and a.ipv4_mapped is not None)
           or ("compat" in rejects and a.version == 6 and _v6_v4compat(a)))
    if bad:
        raise ConfigError(f"{message}: {show(text)}")
    return a


_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def parse_mac(text: str) -> str:
    """Strict xx:xx:xx:xx:xx:xx, returned lower-case."""
    if not _MAC.fullmatch(text):
        raise ConfigError(f"Invalid MAC address: {show(text)}")
    return text.lower()


def c_strtol_prefix(text: str) -> int:
    """C `strtol(text, NULL, 0)`: the longest leading number, 0 if there is none."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if not m:
        return 0
    return c_strtol(m.group(0)) or 0


_ADDR_A = ("Invalid guest address", ("unspec", "loopback", "mapped", "compat", "multicast"),
           ("unspec", "bcast", "loopback", "multicast"))


def _conf_addr(kw: dict, text: str, opt_n: int) -> bool:
    """`-a ADDR[/PREFIX]` (pasta 2026's conf_addr()); True if a prefix length was given.
    An IPv6 prefix length is checked but not kept (pasta still assigns a /64)."""
    addr_s, slash, plen_s = text.partition("/")
    what, v6_reject, v4_reject = _ADDR_A
    if slash and not _DECIMAL.fullmatch(plen_s):
        raise ConfigError(f"{what}: {show(text)}")
    if slash and opt_n:
        raise ConfigError("Redundant prefix length specification")
    if addr_s.startswith("[") and addr_s.endswith("]"):
        addr_s = addr_s[1:-1]
    a = _check_addr(addr_s, what, v6_reject=v6_reject, v4_reject=v4_reject) \
        if _addr(addr_s) is not None else None
    if a is None:
        raise ConfigError(f"{what}: {show(text)}")
    if slash and int(plen_s) > (32 if a.version == 4 else 128):
        raise ConfigError(f"Invalid prefix length: {show(text)}")
    kw[f"addr{a.version}"] = a
    if slash:
        kw[f"prefix{a.version}"] = int(plen_s)
    return bool(slash)


_DECIMAL = re.compile(r"[0-9]+")


def parse_prefix4(text: str) -> int:
    """`-n`: dotted contiguous netmask (brackets allowed, as parse_ipv4()) or prefix length
    0..32 (pasta 2026's conf_ip4_prefix)."""
    bad = ConfigError(f"Invalid prefix length: {show(text)}")
    dotted = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    a = portspec.inet_pton(dotted)
    if a is not None and a.version == 4:
        mask = int(a)
        length = bin(mask).count("1")
        if (mask << length) & 0xFFFFFFFF:
            raise bad
        return length
    value = c_strtol(text)
    if value is None or not 0 <= value <= 32:
        raise bad
    return value


def _nbytes(text: str) -> int:
    """Length in bytes of a command-line argument (as C's snprintf() counts it)."""
    return len(text.encode(errors="surrogateescape"))


def _ifname(text: str) -> str:
    if not 0 < _nbytes(text) < IFNAMSIZ:
        raise ConfigError(f"Invalid interface name: {show(text)}")
    return text


def _path(text: str, what: str) -> str:
    if not 0 < _nbytes(text) < PATH_MAX:
        raise ConfigError(f"Invalid {what}: {show(text)}")
    return text


def resolve_runas(text: str) -> Tuple[int, int]:
    """`--runas UID[:GID]` or `LOGIN[:GROUP]` -> (uid, gid), as pasta's conf_runas()."""
    bad = ConfigError(f"Invalid --runas option: {show(text)}")
    user, sep, group = text.partition(":")
    if not user or (sep and not group):
        raise bad
    uid = c_strtol(user)
    if uid is not None:
        if not 0 <= uid <= UID_MAX:
            raise bad
        gid = uid
    else:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise bad from None
        if pw.pw_uid == 0:      # pasta refuses a login name that maps to root
            raise bad
        uid, gid = pw.pw_uid, pw.pw_gid
    if sep:
        g = c_strtol(group)
        if g is not None:
            if not 0 <= g <= UID_MAX:
                raise bad
            gid = g
        else:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise bad from None
    return uid, gid


# --- the passes --------------------------------------------------------------------------------

_PASS2 = frozenset("tu")
_PASS3 = frozenset("TU")


def parse_args(argv: Sequence[str], ephemeral: Optional[Tuple[int, int]] = None,
               mode: str = "pasta") -> Config:
    """Parse a pasta (or, with `mode="passt"`, a passt) command line without argv[0] into a
    `Config`; `ephemeral` is the host's ephemeral port range (None: read it as pasta does)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    passt = mode == "passt"
    refused = REFUSED[mode]
    argv = list(argv)
    # passt mode advertises DNS servers and the search list unless told not to
    kw: dict = {"mode": mode, "dhcp_dns": passt, "dhcp_search": passt}
    given: set = set()
    warnings: List[str] = []
    deferred: List[Tuple[str, str]] = []
    runas: Optional[str] = None
    userns: Optional[str] = None
    netns: Optional[str] = None
    netns_only = False
    v4_only = v6_only = False
    copy_routes_opt = copy_addrs_opt = False
    dns: List[portspec.IPAny] = []
    opt_a_is_prefix = False
    opt_n = 0

    g = _Getopt(argv)
    for key, val, spelled in _usage_errors(g):
        given.add(CANONICAL[key])
        if key in refused:
            raise ConfigError(refused[key])
        if key == "print-capabilities":     # any mode, at once (pasta prints it with info())
            raise ExitRequest(0, CAPABILITIES_TEXT, "stderr")
        if key == "vhost-user":
            raise NotSupportedYet("--vhost-user", VHOST_USER_REFUSAL[mode])
        if key in _PASS2 or key in _PASS3:
            deferred.append((key, val))
            continue
        if key == "D":          # pasta 2026: in the first pass, so order matters
            if val == "none":   # clears --dns-forward/--dns-host only if they came earlier
                kw["dns_none"] = True
                dns = []
                for f in ("dns_forward4", "dns_forward6", "dns_host4", "dns_host6"):
                    kw[f] = None
                continue
            kw["dns_none"] = False
            a = _addr(val)
            if a is None:
                raise ConfigError(f"Cannot use DNS address {show(val)}")
            if sum(1 for d in dns if d.version == a.version) <= MAXNS:
                dns.append(a)       # pasta's arrays silently drop the rest
            continue
        if key == "h":
            raise ExitRequest(0, usage_text(mode), "stdout")
        if key == "version":
            raise ExitRequest(0, version_text(mode), "stdout")
        if key == "d":
            kw["debug"] = True
            kw["quiet"] = False
        elif key == "trace":
            kw["trace"] = kw["debug"] = True
            kw["quiet"] = False
        elif key == "q":
            kw["quiet"] = True
            kw["debug"] = kw["trace"] = False
        elif key == "f":
            kw["foreground"] = True
        elif key == "e":
            warnings.append("--stderr will be dropped soon")
        elif key == "l":
            kw["log_file"] = _path(val, "log file")
        elif key == "log-size":
            size = c_strtol(val)
            if size is None or size < LOG_SIZE_MIN or size > LONG_MAX:
                raise ConfigError(f"Invalid --log-size: {show(val)}")
            kw["log_size"] = size
        elif key == "runas":
            runas = val
        elif key == "F":
            fd = c_strtol(val)
            # passt's conf_tap_fd() also takes 0 (a socket on stdin)
            if fd is None or fd < 0 or (fd <= 2 and not (passt and fd == 0)) or fd > INT_MAX:
                raise ConfigError(f"Invalid --fd: {show(val)}")
            kw["tap_fd"] = fd
            if passt:           # a connected socket: no listening socket, exit with it
                kw.update(one_off=True, socket_path=None)
        elif key == "s":        # passt mode only (refused above in pasta mode)
            if not 0 < _nbytes(val) < UNIX_PATH_MAX:
                raise ConfigError(f"Invalid socket path: {show(val)}")
            kw.update(socket_path=val, tap_fd=None)
        elif key == "1":
            kw["one_off"] = True
        elif key == "I":
            kw["ns_ifname"] = _ifname(val)
        elif key == "p":
            kw["pcap"] = _path(val, "pcap path")
        elif key == "P":
            kw["pid_file"] = _path(val, "PID file")
        elif key == "m":
            mtu = c_strtol(val)
            if mtu is None or mtu < 0 or mtu > LONG_MAX * 2 + 1:
                raise ConfigError(f"Invalid MTU: {show(val)}")
            if mtu > IP_MAX_MTU:
                raise ConfigError(f"MTU {mtu} too large (max {IP_MAX_MTU})")
            kw["mtu"] = mtu
        elif key == "a":
            opt_a_is_prefix = _conf_addr(kw, val, opt_n)
        elif key == "n":
            if opt_a_is_prefix:
                raise ConfigError("Redundant prefix length specification")
            plen = parse_prefix4(val)
            kw["prefix4"] = plen or None     # 0 means "not given" to pasta
            opt_n = plen
        elif key == "c":
            if not 0 < _nbytes(val) < UNIX_PATH_MAX:
                raise ConfigError(f"Invalid configuration path: {show(val)}")
            kw["conf_path"] = val
        elif key == "H":
            if _nbytes(val) >= PASST_MAXDNAME:
                raise ConfigError(f"Invalid hostname: {show(val)}")
            kw["hostname"] = val
        elif key == "fqdn":
            if _nbytes(val) >= PASST_MAXDNAME:
                raise ConfigError(f"Invalid FQDN: {show(val)}")
            kw["fqdn"] = val
        elif key == "stats":
            if not kw.get("foreground"):
                raise ConfigError("Can't display statistics if not running in foreground")
            kw["stats"] = c_strtol_prefix(val)
        elif key == "repair-path":
            if val != "none":
                raise ConfigError("--repair-path is for vhost-user mode only")
        elif key == "splice-only":
            kw["splice_only"] = True
        elif key == "chroot-fallback":
            kw["chroot_fallback"] = True
        elif key in _ADDR_OPTIONS:
            what, v6_reject, v4_reject, field = _ADDR_OPTIONS[key]
            a = _check_addr(val, what, v6_reject=v6_reject, v4_reject=v4_reject)
            kw[f"{field}{a.version}"] = a
        elif key == "M":
            kw["our_mac"] = parse_mac(val)
        elif key == "i":
            kw["template_if"] = _ifname(val)
        elif key == "outbound-if4":
            kw["outbound_if4"] = _ifname(val)
        elif key == "outbound-if6":
            kw["outbound_if6"] = _ifname(val)
        elif key == "S":
            if val == "none":
                kw["search_none"] = True
                kw["search"] = ()
            else:
                kw["search_none"] = False
                # passt mode: QEMU 10.1 passes its list as one space-joined argument
                domains = ([d for d in val.split(" ") if d] or [""]) if passt else [val]
                for domain in domains:
                    search = kw.get("search", ())
                    if len(search) >= MAXDNSRCH or not 0 < _nbytes(domain) < NS_MAXDNAME:
                        raise ConfigError(f"Cannot use DNS search domain {show(domain)}")
                    kw["search"] = search + (domain,)
        elif key in ("no-dhcp-dns", "no-dhcp-search"):     # passt mode only
            kw[key[3:].replace("-", "_")] = False
        elif key in ("no-tcp", "no-udp", "no-icmp", "no-dhcp", "no-dhcpv6", "no-ndp", "no-ra",
                     "no-splice", "freebind", "no-map-gw", "dhcp-dns", "dhcp-search",
                     "no-netns-quit", "config-net", "host-lo-to-ns-lo", "no-seccomp"):
            kw[key.replace("-", "_")] = True
        elif key == "4":
            v4_only, v6_only = True, False
        elif key == "6":
            v4_only, v6_only = False, True
        elif key == "userns":
            userns = _path(val, "userns")
            netns_only = False
        elif key == "netns":
            if not val:
                raise ConfigError(f"Invalid netns: {show(val)}")
            path = val if "/" in val else f"{NETNS_RUN_DIR}/{val}"
            if len(path) >= PATH_MAX:
                raise ConfigError(f"Network namespace name/path {show(val)} too long")
            netns = path
        elif key == "netns-only":
            netns_only = True
            userns = None
        elif key == "ns-mac-addr":
            kw["ns_mac"] = parse_mac(val)
        elif key in ("map-host-loopback", "map-guest-addr"):
            name = key.replace("-", "_")
            if val == "none":
                kw[name + "4"] = kw[name + "6"] = None
                if key == "map-host-loopback":
                    kw["map_host_loopback_none"] = kw["no_map_gw"] = True
            else:
                a = _check_addr(val, "Invalid address to remap to host",
                                v6_reject=("unspec", "loopback", "multicast"),
                                v4_reject=("unspec", "loopback", "multicast"))
                kw[name + ("6" if a.version == 6 else "4")] = a
        elif key == "no-copy-routes":
            warnings.append("--no-copy-routes will be dropped soon")
            kw["no_copy_routes"] = copy_routes_opt = True
        elif key == "no-copy-addrs":
            warnings.append("--no-copy-addrs will be dropped soon")
            kw["no_copy_addrs"] = copy_addrs_opt = True
        else:   # pragma: no cover - every table entry is handled above
            raise AssertionError(f"unhandled option {spelled}")

    if passt:
        kw["no_splice"] = True      # no loopback bypass: every connection goes through L2
        if kw.get("splice_only"):
            raise ConfigError("--splice-only is for pasta mode only")
    if kw.get("splice_only"):
        if kw.get("no_splice"):
            raise ConfigError("--splice-only is incompatible with --no-splice")
        kw.update(host_lo_to_ns_lo=True, no_icmp=True, dns_none=True, search_none=True,
                  search=())
        dns = []
    if kw.get("no_icmp"):
        kw["no_ndp"] = True         # pasta 2026: --no-icmp implies --no-ndp
    mtu = kw.get("mtu")
    if mtu is not None:
        if not v6_only and mtu < IPV4_MIN_MTU:
            warnings.append(f"MTU {mtu} is too small for IPv4 (minimum {IPV4_MIN_MTU})")
        if not v4_only and mtu < IPV6_MIN_MTU:
            warnings.append(f"MTU {mtu} is too small for IPv6 (minimum {IPV6_MIN_MTU})")
    if kw.get("no_splice") and kw.get("host_lo_to_ns_lo"):
        raise ConfigError("--host-lo-to-ns-lo is incompatible with --no-splice")
    if not kw.get("config_net"):
        if copy_routes_opt:
            raise ConfigError("--no-copy-routes needs --config-net")
        if copy_addrs_opt:
            raise ConfigError("--no-copy-addrs needs --config-net")
    else:
        kw["no_ra"] = True      # pasta: --config-net implies --no-ra
    if runas is not None:
        kw["runas"] = resolve_runas(runas)
    kw["ipv4"] = not v6_only
    kw["ipv6"] = not v4_only

    kw["dns"] = tuple(dns)

    # Pass 2: ports (after addresses in pasta).
    if ephemeral is None:
        ephemeral = _probe_ephemeral(warnings)
    fwd = FwdTable(fwd_caps(v4=not v6_only, v6=not v4_only, tcp=not kw.get("no_tcp"),
                            udp=not kw.get("no_udp"), scan=not passt, ifname=True))
    for key, val in deferred:
        if key in _PORT_OPTIONS:
            fwd = fwd_table_parse(fwd, val, *_PORT_OPTIONS[key], ephemeral)

    rest = argv[g.optind:]
    if passt:
        if rest:
            raise ConfigError(f"Extra non-option argument: {show(rest[0])}")
        kw.update(fwd_rules=fwd.rules, given=frozenset(given), warnings=tuple(warnings))
        return Config(**kw)

    # Namespace arguments (pasta's conf_pasta_ns()).
    if netns is not None and rest:
        raise ConfigError("Both --netns and PID or command given")
    if len(rest) == 1 and re.fullmatch(r"[ \t\n\v\f\r]*[+-]?[0-9]+", rest[0]):
        pid = int(rest[0])
        if pid < 0 or pid > INT_MAX:
            raise ConfigError(f"Invalid PID {show(rest[0])}")
        kw["pid_target"] = pid
        netns = f"/proc/{pid}/ns/net"
        if userns is None and not netns_only:
            userns = f"/proc/{pid}/ns/user"
    else:
        kw["command"] = tuple(rest)
    if netns is not None and userns is None:
        netns_only = True

    # Port options not given: `auto` (after the namespace exists in pasta), where the
    # protocol is enabled (pasta 2026 adds it anyway and dies: see the module docstring).
    ports_given = {key for key, _ in deferred}
    for key in "tTuU":
        pif, proto = _PORT_OPTIONS[key]
        if key not in ports_given and fwd.caps & _PROTO_CAP[proto]:
            fwd = fwd_table_parse(fwd, "auto", pif, proto, ephemeral)

    kw.update(fwd_rules=fwd.rules,
              userns=userns, netns=netns, netns_only=netns_only,
              given=frozenset(given), warnings=tuple(warnings))
    return Config(**kw)


# -t/-u/-T/-U: (pif, protocol) of the table and rules each one makes.
_PORT_OPTIONS = {"t": (PIF_HOST, IPPROTO_TCP), "u": (PIF_HOST, IPPROTO_UDP),
                 "T": (PIF_SPLICE, IPPROTO_TCP), "U": (PIF_SPLICE, IPPROTO_UDP)}
_PROTO_CAP = {IPPROTO_TCP: FWD_CAP_TCP, IPPROTO_UDP: FWD_CAP_UDP}
PORT_RANGE_SYSCTL = "/proc/sys/net/ipv4/ip_local_port_range"


def _probe_ephemeral(warnings: List[str]) -> Tuple[int, int]:
    """pasta's fwd_probe_ephemeral(): the host's ephemeral port range, else RFC 6335's."""
    try:
        with open(PORT_RANGE_SYSCTL, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError as e:
        warnings.append(f"Unable to open {PORT_RANGE_SYSCTL}: {e.strerror}")
        return EPHEMERAL_DEFAULT
    found = fwd_parse_ephemeral(text)
    if found is None:
        warnings.append(f"Unable to parse {PORT_RANGE_SYSCTL}")
        return EPHEMERAL_DEFAULT
    return found


# --- texts ---------------------------------------------------------------------------------------

# usage() of conf.c in pieces: {g} is the guest word ("namespace" or "guest"), {d} the -t/-u
# default ("auto" or "none"), {p} the program name.
_USAGE_HEAD = {"pasta": """\
Usage: {p} [OPTION]... [COMMAND] [ARGS]...
       {p} [OPTION]... PID
       {p} [OPTION]... --netns [PATH|NAME]

Without PID or --netns, run the given command or a
default shell in a new network and user namespace, and
connect it via {p}.
""", "passt": """\
Usage: {p} [OPTION]...
"""}

_USAGE_LOG = """
  -d, --debug		Be verbose
      --trace		Be extra verbose, implies --debug
  --stats DELAY  	Display events statistics
    minimum DELAY seconds between updates
  -q, --quiet		Don't print informational messages
  -f, --foreground	Don't run in background
    default: run in background
  -l, --log-file PATH	Log (only) to given file
  --log-size BYTES	Maximum size of log file
    default: 1 MiB
  --runas UID|UID:GID 	Run as given UID, GID, which can be
    numeric, or login and group names
    default: drop to user "nobody"
  -c, --conf-path PATH	Configuration socket path
  -h, --help		Display this help message and exit
  --version		Show version and exit
"""

_USAGE_MODE = {"pasta": """\
  -I, --ns-ifname NAME	namespace interface name
    default: same interface name as external one
  -F, --fd FD		Use FD as pre-opened tap device
""", "passt": """\
  -s, --socket, --socket-path PATH	UNIX domain socket path
    default: probe free path starting from /tmp/passt_1.socket
  --vhost-user		Enable vhost-user mode
    UNIX domain socket is provided by -s option
  --print-capabilities	print back-end capabilities in JSON format,
    only meaningful for vhost-user mode
  --repair-path PATH	path for passt-repair(1)
    default: append '.repair' to UNIX domain path
  --migrate-exit	DEPRECATED:
			source quits after migration
    default: source keeps running after migration
  --migrate-no-linger	DEPRECATED:
			close sockets on migration
    default: keep sockets open, ignore events
  -F, --fd FD		Use FD as pre-opened connected socket
"""}

_USAGE_ADDR = """\
  -p, --pcap FILE	Log tap-facing traffic to pcap file
  -P, --pid FILE	Write own PID to the given file
  -m, --mtu MTU	Assign MTU via DHCP/NDP
    a zero value disables assignment
    default: 65520: maximum 802.3 MTU minus 802.3 header
                    length, rounded to 32 bits (IPv4 words)
  -a, --address ADDR	Assign IPv4 or IPv6 address ADDR[/PREFIXLEN]
    can be specified zero to two times (for IPv4 and IPv6)
    default: use addresses from interface with default route
  -n, --netmask MASK	Assign IPv4 MASK, dot-decimal or bits
    default: netmask from matching address on the host
  -M, --mac-addr ADDR	Use source MAC address ADDR
    default: 9a:55:9a:55:9a:55 (locally administered)
  -g, --gateway ADDR	Pass IPv4 or IPv6 address as gateway
    default: gateway from interface with default route
  -i, --interface NAME	Interface for addresses and routes
    default: from --outbound-if4 and --outbound-if6, if any
             otherwise interface with first default route
  -o, --outbound ADDR	Bind to address as outbound source
    can be specified zero to two times (for IPv4 and IPv6)
    default: use source address from routing tables
  --outbound-if4 NAME	Bind to outbound interface for IPv4
    default: use interface from default route
  --outbound-if6 NAME	Bind to outbound interface for IPv6
    default: use interface from default route
  -D, --dns ADDR	Use IPv4 or IPv6 address as DNS
    can be specified multiple times
    a single, empty option disables DNS information
    default: {dns_default}
  -S, --search LIST	Space-separated list, search domains
    a single, empty option disables the DNS search list
  -H, --hostname NAME 	Hostname to configure client with
  --fqdn NAME		FQDN to configure client with
    default: {search_default}
{dhcp_options}\
  --map-host-loopback ADDR	Translate ADDR to refer to host
    can be specified zero to two times (for IPv4 and IPv6)
    default: gateway address
  --map-guest-addr ADDR	Translate ADDR to guest's address
    can be specified zero to two times (for IPv4 and IPv6)
    default: none
  --dns-forward ADDR	Forward DNS queries sent to ADDR
    can be specified zero to two times (for IPv4 and IPv6)
    default: don't forward DNS queries
  --dns-host ADDR	Host nameserver to direct queries to
    can be specified zero to two times (for IPv4 and IPv6)
    default: first nameserver from host's /etc/resolv.conf
  --no-tcp		Disable TCP protocol handler
  --no-udp		Disable UDP protocol handler
  --no-icmp		Disable ICMP/ICMPv6 protocol handler
  --no-dhcp		Disable DHCP server
  --no-ndp		Disable NDP responses
  --no-dhcpv6		Disable DHCPv6 server
  --no-ra		Disable router advertisements
  --freebind		Bind to any address for forwarding
  --no-map-gw		Don't map gateway address to host
  --chroot-fallback	Use chroot() if pivot_root() fails
  -4, --ipv4-only	Enable IPv4 operation only
  -6, --ipv6-only	Enable IPv6 operation only
"""

_USAGE_DNS = {
    "pasta": {"dns_default": "don't use any addresses",
              "search_default": "don't use any search list",
              "dhcp_options": "  --dhcp-dns		Pass DNS list via DHCP/DHCPv6/NDP\n"
                              "  --dhcp-search	Pass list via DHCP/DHCPv6/NDP\n"},
    "passt": {"dns_default": "use addresses from /etc/resolv.conf",
              "search_default": "use search list from /etc/resolv.conf",
              "dhcp_options": "  --no-dhcp-dns	No DNS list in DHCP/DHCPv6/NDP\n"
                              "  --no-dhcp-search	No list in DHCP/DHCPv6/NDP\n"},
}

_USAGE_PORTS = """\
  -t, --tcp-ports SPEC	TCP port forwarding to {g}
    can be specified multiple times
    SPEC can be:
      'none': don't forward any ports
      [ADDR[%IFACE]/]PORTS: forward specific ports
        PORTS is a comma-separated list of ports or port
         ranges.  'all' indicates all unbound non-ephemeral
         ports.  Ranges can be reduced by excluding ports or
         ranges prefixed by '~'.
{auto_keyword}\
        Examples:
        -t all		Forward all ports
        -t ::1/all	Forward all ports from local address ::1
        -t 22		Forward local port 22 to 22 on {g}
        -t 22:23	Forward local port 22 to 23 on {g}
        -t 22,25	Forward ports 22, 25 to ports 22, 25
        -t 22-80  	Forward ports 22 to 80
        -t 22-80:32-90	Forward ports 22 to 80 to
			corresponding port numbers plus 10
        -t 192.0.2.1/5	Bind port 5 of 192.0.2.1 to {g}
        -t 5-25,~10-20	Forward ports 5 to 9, and 21 to 25
        -t ~25		Forward all ports except for 25
{auto_examples}\
    default: {d}
  -u, --udp-ports SPEC	UDP port forwarding to {g}
    SPEC is as described for TCP above
    default: {d}
"""

_USAGE_AUTO = {
    "pasta": {"g": "namespace", "d": "auto",
              "auto_keyword": "        The 'auto' keyword may be given to only forward\n"
                              "        ports which are bound in the target namespace\n",
              "auto_examples": """\
        -t auto		Forward all ports bound in namespace
        -t ::1/auto	Forward ports from ::1 if they are
        		bound in the namespace
        -t 80-82,auto	Forward ports 80-82 if they are bound
        		in the namespace
"""},
    "passt": {"g": "guest", "d": "none", "auto_keyword": "", "auto_examples": ""},
}

_USAGE_TAIL = {"pasta": """\
  -T, --tcp-ns SPEC	TCP port forwarding to init namespace
    SPEC is as described above
    default: auto
  -U, --udp-ns SPEC	UDP port forwarding to init namespace
    SPEC is as described above
    default: auto
  --host-lo-to-ns-lo	Translate host-loopback forwards to
			namespace loopback
  --userns NSPATH 	Target user namespace to join
  --netns PATH|NAME	Target network namespace to join
  --netns-only		Don't join existing user namespace
    implied if PATH or NAME are given without --userns
  --no-netns-quit	Don't quit if filesystem-bound target
  			network namespace is deleted
  --config-net		Configure tap interface in namespace
  --no-copy-routes	DEPRECATED:
			Don't copy all routes to namespace
  --no-copy-addrs	DEPRECATED:
			Don't copy all addresses to namespace
  --ns-mac-addr ADDR	Set MAC address on tap interface
  --no-splice		Disable inbound socket splicing
  --splice-only	Only enable loopback forwarding
""", "passt": """\
  -1, --one-off	Quit after handling one single client
"""}

# pypasta's own option, in either mode's usage text
USAGE_PYPASTA = """\
  --no-seccomp		Debugging only: don't install the seccomp
			filter after set-up (the rest of the
			confinement stays)
"""


# Accepted in pasta mode but not in pasta 2026's usage text (deprecated or another mode's).
USAGE_HIDDEN = frozenset({"stderr", "vhost-user", "print-capabilities", "repair-path"})


def usage_text(mode: str = "pasta") -> str:
    """passt 2026's usage text for `mode` (conf.c usage()), with pypasta's program name and its
    --no-seccomp; pasta mode's -F line says "tap device" (pasta's says "connected socket")."""
    return (_USAGE_HEAD[mode] + _USAGE_LOG + _USAGE_MODE[mode]
            + _USAGE_ADDR.format(**_USAGE_DNS[mode]) + _USAGE_PORTS.format(**_USAGE_AUTO[mode])
            + _USAGE_TAIL[mode] + USAGE_PYPASTA).format(p=PROGS[mode])


def version_text(mode: str = "pasta") -> str:
    """`--version` output: name and version, one licence line, a blank line."""
    return (f"{PROGS[mode]} {__version__}\n"
            "GNU General Public License, version 2 or later; "
            "there is NO WARRANTY, to the extent permitted by law.\n\n")


# --- entry point ---------------------------------------------------------------------------------

def _wants_traceback(argv: Sequence[str]) -> bool:
    """True if -d/--debug/--trace appears among the options (a cheap scan, no validation)."""
    short = short_table(SHORT_OPTIONS)
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--" or not arg.startswith("-") or arg == "-":
            return False
        if arg.startswith("--"):
            name = arg[2:].partition("=")[0]
            if name in ("debug", "trace"):
                return True
            opt = next((o for o in LONG_OPTIONS if o.name == name), None)
            skip = bool(opt and opt.has_arg and "=" not in arg)
            continue
        for i, c in enumerate(arg[1:], 1):
            if c == "d":
                return True
            if short.get(c):
                skip = i == len(arg) - 1
                break
    return False


def _error(msg: object, debug: bool, prog: str = PROG, stream: Optional[TextIO] = None) -> None:
    stream = sys.stderr if stream is None else stream
    if debug:
        traceback.print_exc(file=stream)
    print(f"{prog}: {msg}", file=stream)


def main_parse(argv: Sequence[str], mode: str = "pasta", *, stdout: Optional[TextIO] = None,
               stderr: Optional[TextIO] = None,
               ephemeral: Optional[Tuple[int, int]] = None) -> Union[Config, int]:
    """Parse as the `pypasta` (or, `mode="passt"`, `pypasta-passt`) command does: the `Config`,
    or the exit status after printing what the program prints (`PROG: message` on stderr, the
    usage text after a getopt error, help, version, capabilities). Streams default to sys's."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    prog = PROGS[mode]
    debug = _wants_traceback(argv)
    try:
        return parse_args(argv, ephemeral, mode)
    except ExitRequest as req:
        stream = out if req.stream == "stdout" else err
        stream.write(req.text)
        stream.flush()
        return req.code
    except UsageError as e:
        _error(e, debug, prog, err)
        err.write(usage_text(mode))
        return e.exit_code
    except PastaError as e:
        _error(e, debug, prog, err)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def run_reporting(run: Callable[[], int], argv: Sequence[str], mode: str = "pasta") -> int:
    """`run()`'s exit status, reporting a `PastaError` in one line and a bug in one line unless
    -d/--debug/--trace is in `argv` (then the traceback; with it an unexpected exception
    propagates), both with the program name of `mode`; KeyboardInterrupt gives 130."""
    debug = _wants_traceback(argv)
    prog = PROGS[mode]
    try:
        return run()
    except PastaError as e:
        _error(e, debug, prog)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line unless --debug
        if debug:
            raise
        _error(f"internal error: {type(e).__name__}: {e} (run with --debug for details)", debug,
               prog)
        return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console-script entry: parse, then run the supervisor; returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    cfg = main_parse(argv)
    if isinstance(cfg, int):
        return cfg

    def supervise() -> int:
        from pasta.setup.supervisor import run
        return run(cfg)
    return run_reporting(supervise, argv)
