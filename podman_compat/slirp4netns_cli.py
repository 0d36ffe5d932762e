"""The slirp4netns-compatible command line: argv -> `SlirpOptions`, as slirp4netns 1.2.0 reads it.

Purpose: Podman and RootlessKit start "slirp4netns" with an argv, grep its `--help` for features
and show its `--version`. This module accepts exactly what slirp4netns 1.2.0 (Debian 12's build,
libslirp 4.7.0) accepts, rejects what it rejects with the same stderr text, usage text and exit
code, and produces a frozen `SlirpOptions` for the code that sets the network up.

Theory of operation:
- `parse(argv, prog)` (argv without the program name) is pure: it prints nothing and exits
  nothing. It returns `SlirpOptions`, or an `InfoRequest` for `-h/--help` and `-v/--version`, or
  raises `SlirpError`. Two lookups that slirp4netns makes while parsing are injected:
  `path_error(path)` (its `access(F_OK)` checks of `--userns-path` and of the `--netns-type=path`
  target; the default `stat_path_error` is a single `os.stat`) and `interface_addr(name, family)`
  (its `getifaddrs()` fallback for `--outbound-addr[6]`; no default, see Limits).
- `main_parse(argv, prog)` is the thin printing wrapper for the entry point: it writes what
  slirp4netns writes (warnings and usage on stdout, errors on stderr) and returns either the
  options or the exit code; it reads POSIXLY_CORRECT from the environment as glibc does.
- `pasta.front.getopt.Getopt` is glibc's `getopt_long` (shared with pasta's CLI), here for the optstring `ce:r:m:a:6hv` and the long-option table
  `LONG_OPTIONS` (in slirp4netns's order, which is the order of the "possibilities" glibc lists
  for an ambiguous abbreviation). Without `posixly_correct` non-options are permuted to the end
  as glibc does; `--` ends the options; unique abbreviations of long options are accepted;
  `--opt=value`, `--opt value`, `-e3`, `-e 3` and clusters like `-c6` all work. It yields options
  lazily, so each problem surfaces where slirp4netns meets it: `-h` before a bad option wins, a
  bad option before `-h` wins, `--userns-path` is checked when it is seen.
- The checks then follow slirp4netns's two stages. `parse_args()` (errors are followed by the
  usage text on stdout): `--macaddress` needs `-c`; `--target-type=bess` wants exactly one
  positional (the socket path) and refuses `-c`, `--netns-type` and `--userns-path`; any other
  target type than `netns`/`bess` is refused; netns mode wants `PID TAPNAME` (pid mode, the
  default and `--netns-type=pid`) or `PATH TAPNAME` (any other `--netns-type` value, the path must
  exist); extra positionals only print `WARNING: too many arguments`.
  `slirp4netns_config_from_options()` (no usage text): `--cidr`, `--outbound-addr`,
  `--outbound-addr6`, `--macaddress`, in that order.

States and events: none kept between calls. `parse` has three ways out: `SlirpOptions`,
`InfoRequest` ("help" or "version", exit code 0) and `SlirpError` (exit code 1).

Invariants:
- `SlirpError.stderr` is the exact text slirp4netns writes on stderr (two of its messages have no
  trailing newline, and the MAC error is two lines); `str(error)` is always one line (for usage-only
  errors, where slirp4netns prints nothing on stderr, a short description).
- `SlirpError.stdout_before`, `InfoRequest.stdout` and `SlirpOptions.warnings` hold the
  `WARNING: ...` lines slirp4netns prints on stdout while parsing, in order and repeated as often
  as the options were, so the caller can reproduce its stdout exactly.
- Derived addressing follows `slirp4netns_config_from_cidr()`: for network N (default
  10.0.2.0/24, prefix 1..25 because N+100 must fit) gateway = N+2, DNS = N+3, DHCP N+15..N+30,
  recommended guest = N+100; with `-6` libslirp's fixed fd00::/64, gateway fd00::2, DNS fd00::3.
- Numbers are read as slirp4netns reads them, C `strtol` base 10 with its quirks: leading
  whitespace and a sign are accepted, "" reads as 0 (so `--exit-fd=` is fd 0), and the long result
  is stored into an `int` (fds, PID: 4294967296 wraps to 0) or an `unsigned int` (MTU).
- `--macaddress` is read as slirp4netns's `sscanf("%x")` loop reads it: each octet may carry
  blanks, a sign, a `0x` prefix and trailing junk; fewer than six octets are accepted and padded
  with zeros ("aa:bb" -> aa:bb:00:00:00:00); a seventh is "too long".
- Deprecated aliases behave as in slirp4netns: `--no-host-loopback` = `--disable-host-loopback`
  and `--create-sandbox` = `--enable-sandbox`, each after printing its deprecation WARNING.
  `--disable-dns` is accepted (SLIRP_CONFIG_VERSION_MAX >= 3).

Limits and not handled:
- Interface names for `--outbound-addr[6]` are resolved only through the injected
  `interface_addr`; without one, any value that is not an address literal is refused with
  slirp4netns's message, as if no interface had that name.
- `--api-socket` and the BESS socket path are checked for length here (see Differences); whether
  they can be bound, the netns and userns can be joined, the tap opened, is found out later.

Kernel assumptions: none (`sun_path` is 108 bytes on Linux, `SUN_PATH_MAX`).

Differences from slirp4netns 1.2.0 (`main.c parse_args()`, `slirp4netns_config_from_options()`):
- The API and BESS socket path lengths are checked at the end of `parse` with slirp4netns's
  message and exit code 1 (`api_bindlisten()`/`child_bess()` check them only after the tap
  was created).
- `--outbound-addr6=IFNAME` looks up IFNAME; slirp4netns looks up the value of `--outbound-addr`
  instead (a bug: `--outbound-addr6=eth0` alone always fails there). The error text, typo
  ("iterface") included, is the same.
- `--netns-type=tapfd` (added after 1.2.0, in slirp4netns HEAD) is a path, as in 1.2.0, whose
  `--help` lists only `[path|pid]`.
- `--version` prints our own version in slirp4netns's machine-parsable shape
  (`version_text`): `slirp4netns version 1.2.0+pypasta-X`, `commit: unknown`,
  `libslirp: none (pypasta X)`, `SLIRP_CONFIG_VERSION_MAX: 4` (no `libseccomp:` line: none is
  linked).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Callable, Optional, Sequence, TextIO, Tuple, Union

from pasta import __version__ as PYPASTA_VERSION
from pasta.util.errors import ConfigError
from pasta.front.getopt import Getopt, GetoptError, LongOpt

# --- constants (main.c) -------------------------------------------------------------------------

COMPAT_VERSION = "1.2.0"                 # the slirp4netns release whose behaviour is copied
SLIRP_CONFIG_VERSION_MAX = 4             # what slirp4netns 1.2.0 with libslirp 4.7.0 reports
DEFAULT_MTU = 1500
MTU_MAX = 65521
DEFAULT_CIDR = "10.0.2.0/24"
DEFAULT_NETNS_TYPE = "pid"
DEFAULT_TARGET_TYPE = "netns"
VHOST_OFFSET = 2                         # gateway, also the host's 127.0.0.1 unless disabled
VNAMESERVER_OFFSET = 3
VDHCPSTART_OFFSET = 15
NB_BOOTP_CLIENTS = 16                    # libslirp's fixed DHCP pool size
RECOMMENDED_VGUEST_OFFSET = 100
NETWORK_PREFIX_MIN = 1
NETWORK_PREFIX_MAX = 25                  # >= 26 cannot hold N+100
SUN_PATH_MAX = 108                       # sizeof(struct sockaddr_un.sun_path)
IPV6_PREFIX = IPv6Network("fd00::/64")   # libslirp defaults, not affected by --cidr
IPV6_GATEWAY = IPv6Address("fd00::2")
IPV6_DNS = IPv6Address("fd00::3")

SHORT_OPTIONS = "ce:r:m:a:6hv"

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_ULONG_MAX = (1 << 64) - 1
_C_SPACE = " \t\n\v\f\r"                 # isspace() in the C locale
_HEX = "0123456789abcdefABCDEF"


LONG_OPTIONS: Tuple[LongOpt, ...] = (
    LongOpt("configure", False, "c"),
    LongOpt("exit-fd", True, "e"),
    LongOpt("ready-fd", True, "r"),
    LongOpt("mtu", True, "m"),
    LongOpt("cidr", True, "cidr"),
    LongOpt("disable-host-loopback", False, "disable-host-loopback"),
    LongOpt("no-host-loopback", False, "no-host-loopback"),
    LongOpt("netns-type", True, "netns-type"),
    LongOpt("userns-path", True, "userns-path"),
    LongOpt("api-socket", True, "a"),
    LongOpt("enable-ipv6", False, "6"),
    LongOpt("enable-sandbox", False, "enable-sandbox"),
    LongOpt("create-sandbox", False, "create-sandbox"),
    LongOpt("enable-seccomp", False, "enable-seccomp"),
    LongOpt("help", False, "h"),
    LongOpt("version", False, "v"),
    LongOpt("outbound-addr", True, "outbound-addr"),
    LongOpt("outbound-addr6", True, "outbound-addr6"),
    LongOpt("disable-dns", False, "disable-dns"),
    LongOpt("macaddress", True, "macaddress"),
    LongOpt("target-type", True, "target-type"),
)

_LONG_NAME_OF_KEY = {o.key: o.name for o in LONG_OPTIONS}

_USAGE = (
    "Usage: {prog} [OPTION]... PID|PATH [TAPNAME]\n"
    "User-mode networking for unprivileged network namespaces.\n"
    "\n"
    "-c, --configure          bring up the interface\n"
    "-e, --exit-fd=FD         specify the FD for terminating slirp4netns\n"
    "-r, --ready-fd=FD        specify the FD to write to when the network is configured\n"
    "-m, --mtu=MTU            specify MTU (default=1500, max=65521)\n"
    "-6, --enable-ipv6        enable IPv6 (experimental)\n"
    "-a, --api-socket=PATH    specify API socket path\n"
    "--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)\n"
    "--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace\n"
    "--netns-type=TYPE \t specify network namespace type ([path|pid], default=pid)\n"
    "--userns-path=PATH\t specify user namespace path\n"
    "--enable-sandbox         create a new mount namespace (and drop all caps except "
    "CAP_NET_BIND_SERVICE if running as the root)\n"
    "--enable-seccomp         enable seccomp to limit syscalls (experimental)\n"
    "--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)\n"
    "--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)\n"
    "--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns "
    "redirect (experimental)\n"
    "--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)\n"
    "--target-type=TYPE       specify the target type ([netns|bess], default=netns)\n"
    "-h, --help               show this help and exit\n"
    "-v, --version            show version and exit\n"
)

MAC_HINT = ("macaddress has to be a valid MAC address (hex string, 6 bytes, each byte separated "
            "by a ':').")


def usage_text(prog: str = "slirp4netns") -> str:
    """slirp4netns's `usage(argv[0])` text (stdout for `--help` and after parse errors)."""
    return _USAGE.format(prog=prog)


def version_text(pypasta_version: str = PYPASTA_VERSION) -> str:
    """`--version` output in slirp4netns's runc-style shape (Podman shows it in `podman info`)."""
    return (f"slirp4netns version {COMPAT_VERSION}+pypasta-{pypasta_version}\n"
            "commit: unknown\n"
            f"libslirp: none (pypasta {pypasta_version})\n"
            f"SLIRP_CONFIG_VERSION_MAX: {SLIRP_CONFIG_VERSION_MAX}\n")


# --- results ------------------------------------------------------------------------------------

class SlirpError(ConfigError):
    """A command line slirp4netns refuses: what it prints and the code it exits with.

    `stderr` is its exact stderr text (may be "" or two lines), `show_usage` says whether the usage
    text follows on stdout, `stdout_before` holds the warnings it printed before failing.
    """

    def __init__(self, message: str, *, stderr: str, show_usage: bool,
                 stdout_before: str = "", exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.stderr = stderr
        self.show_usage = show_usage
        self.stdout_before = stdout_before
        self.exit_code = exit_code


@dataclass(frozen=True)
class InfoRequest:
    """`--help` or `--version`: print `stdout` (warnings seen so far included) and exit."""

    kind: str                # "help" or "version"
    stdout: str
    exit_code: int = 0


@dataclass(frozen=True)
class SlirpOptions:
    """A command line slirp4netns accepts, with its defaults filled in.

    Exactly one target is set: `target_pid` (pid mode), `netns_path` (path mode) or `bess_socket`
    (`target_type == "bess"`); `tapname` is set in both netns modes.
    """

    target_type: str = DEFAULT_TARGET_TYPE     # "netns" or "bess"
    netns_type: Optional[str] = None           # as given; None means the default "pid"
    target_pid: Optional[int] = None
    netns_path: Optional[str] = None
    tapname: Optional[str] = None
    bess_socket: Optional[str] = None
    extra_args: Tuple[str, ...] = ()           # positionals past the used ones (ignored)
    configure: bool = False
    exit_fd: Optional[int] = None
    ready_fd: Optional[int] = None
    mtu: int = DEFAULT_MTU
    enable_ipv6: bool = False
    api_socket: Optional[str] = None
    cidr: str = DEFAULT_CIDR                   # as given
    network: IPv4Network = IPv4Network(DEFAULT_CIDR)
    disable_host_loopback: bool = False
    userns_path: Optional[str] = None
    enable_sandbox: bool = False
    enable_seccomp: bool = False
    outbound_addr: Optional[IPv4Address] = None
    outbound_addr_spec: Optional[str] = None   # as given: an address or an interface name
    outbound_addr6: Optional[IPv6Address] = None
    outbound_addr6_spec: Optional[str] = None
    disable_dns: bool = False
    macaddress: Optional[str] = None           # "xx:xx:xx:xx:xx:xx", zero-padded as slirp4netns
    given: frozenset = field(default_factory=frozenset)   # long names of the options that appeared
    warnings: Tuple[str, ...] = ()             # stdout lines printed while parsing, in order

    @property
    def netns_mode(self) -> Optional[str]:
        """"pid" or "path" in netns mode, None in BESS mode."""
        if self.target_type != "netns":
            return None
        return "pid" if self.netns_type in (None, DEFAULT_NETNS_TYPE) else "path"

    def _offset(self, n: int) -> IPv4Address:
        return self.network.network_address + n

    @property
    def netmask(self) -> IPv4Address:
        return self.network.netmask

    @property
    def gateway(self) -> IPv4Address:
        """libslirp's vhost (N+2): the host as seen from the namespace."""
        return self._offset(VHOST_OFFSET)

    @property
    def dns(self) -> IPv4Address:
        """libslirp's DNS forwarder (N+3)."""
        return self._offset(VNAMESERVER_OFFSET)

    @property
    def dhcp_start(self) -> IPv4Address:
        return self._offset(VDHCPSTART_OFFSET)

    @property
    def dhcp_end(self) -> IPv4Address:
        return self._offset(VDHCPSTART_OFFSET + NB_BOOTP_CLIENTS - 1)

    @property
    def guest_addr(self) -> IPv4Address:
        """The recommended guest address (N+100): `-c` assigns it, the API defaults to it."""
        return self._offset(RECOMMENDED_VGUEST_OFFSET)

    @property
    def ipv6_prefix(self) -> Optional[IPv6Network]:
        return IPV6_PREFIX if self.enable_ipv6 else None

    @property
    def gateway6(self) -> Optional[IPv6Address]:
        return IPV6_GATEWAY if self.enable_ipv6 else None

    @property
    def dns6(self) -> Optional[IPv6Address]:
        return IPV6_DNS if self.enable_ipv6 else None

    def namespace_paths(self) -> Tuple[Optional[str], Optional[str]]:
        """(userns, netns) to join, as slirp4netns's `nsenter()` picks them.

        Pid mode: `--userns-path` or /proc/PID/ns/user, and /proc/PID/ns/net. Path mode: the given
        `--userns-path` (None: stay in the current user namespace) and PATH. BESS: (None, None).
        """
        mode = self.netns_mode
        if mode == "pid":
            return (self.userns_path or f"/proc/{self.target_pid}/ns/user",
                    f"/proc/{self.target_pid}/ns/net")
        if mode == "path":
            return self.userns_path, self.netns_path
        return None, None

    def banner(self) -> str:
        """The "Starting slirp" block slirp4netns prints on stdout once it has the tap."""
        lines = ["Starting slirp",
                 f"* MTU:             {self.mtu}",
                 f"* Network:         {self.network.network_address}",
                 f"* Netmask:         {self.netmask}",
                 f"* Gateway:         {self.gateway}",
                 f"* DNS:             {self.dns}",
                 f"* DHCP begin:      {self.dhcp_start}",
                 f"* DHCP end:        {self.dhcp_end}",
                 f"* Recommended IP:  {self.guest_addr}"]
        if self.api_socket is not None:
            lines.append(f"* API Socket:      {self.api_socket}")
        if self.outbound_addr is not None:
            lines.append(f"* Outbound IPv4:    {self.outbound_addr}")
        if self.outbound_addr6 is not None:
            lines.append(f"* Outbound IPv6:    {ntop6(self.outbound_addr6)}")
        if self.macaddress is not None:
            lines.append(f"* MAC address:     {self.macaddress}")
        if not self.disable_host_loopback:
            lines.append(f"WARNING: 127.0.0.1:* on the host is accessible as {self.gateway} "
                         "(set --disable-host-loopback to prohibit connecting to 127.0.0.1:*)")
        return "".join(line + "\n" for line in lines)


# --- C library behaviour ------------------------------------------------------------------------

def c_strtol(text: str) -> Tuple[int, bool]:
    """glibc `strtol(text, &end, 10)`: (value, ok), ok meaning errno == 0 and `*end == '\\0'`.

    Leading whitespace and one sign are skipped; no digits gives 0 with `end = text` (so "" is ok
    and " " is not); overflow clamps to LONG_MIN/LONG_MAX with ERANGE.
    """
    i, n = 0, len(text)
    while i < n and text[i] in _C_SPACE:
        i += 1
    neg = False
    if i < n and text[i] in "+-":
        neg = text[i] == "-"
        i += 1
    start = i
    while i < n and "0" <= text[i] <= "9":
        i += 1
    if i == start:                           # no conversion: end points at the start of text
        return 0, text == ""
    value = int(text[start:i])
    value = -value if neg else value
    if not _LONG_MIN <= value <= _LONG_MAX:
        return (_LONG_MIN if neg else _LONG_MAX), False
    return value, i == n


def _c_int(value: int) -> int:
    """A long stored into a 32-bit `int` (two's complement wrap, as gcc does)."""
    return (value - _INT_MIN) % (1 << 32) + _INT_MIN


def _c_uint(value: int) -> int:
    """A long stored into a 32-bit `unsigned int`."""
    return value % (1 << 32)


def inet_pton4(text: str) -> Optional[IPv4Address]:
    """glibc `inet_pton(AF_INET)`: four decimal octets, no leading zeros, nothing else."""
    octets = 0
    saw_digit = False
    cur = 0
    out = []
    for ch in text:
        if "0" <= ch <= "9":
            new = cur * 10 + (ord(ch) - 48)
            if saw_digit and cur == 0:
                return None
            if new > 255:
                return None
            cur = new
            if not saw_digit:
                octets += 1
                if octets > 4:
                    return None
                saw_digit = True
        elif ch == "." and saw_digit:
            if octets == 4:
                return None
            out.append(cur)
            cur = 0
            saw_digit = False
        else:
            return None
    if octets < 4:
        return None
    out.append(cur)
    return IPv4Address(bytes(out))


def inet_pton6(text: str) -> Optional[IPv6Address]:
    """glibc `inet_pton(AF_INET6)` (no zone ids, at most 4 hex digits a group, dotted tail)."""
    tmp = bytearray(16)
    tp, endp, colonp = 0, 16, None
    src, end = 0, len(text)
    if src == end:
        return None
    if text[src] == ":":
        src += 1
        if src == end or text[src] != ":":
            return None
    curtok = src
    xdigits = 0
    val = 0
    while src < end:
        ch = text[src]
        src += 1
        if ch in _HEX:
            if xdigits == 4:
                return None
            val = (val << 4) | int(ch, 16)
            xdigits += 1
            continue
        if ch == ":":
            curtok = src
            if xdigits == 0:
                if colonp is not None:
                    return None
                colonp = tp
                continue
            if src == end:
                return None
            if tp + 2 > endp:
                return None
            tmp[tp:tp + 2] = val.to_bytes(2, "big")
            tp += 2
            xdigits = 0
            val = 0
            continue
        if ch == "." and tp + 4 <= endp:
            v4 = inet_pton4(text[curtok:])
            if v4 is not None:
                tmp[tp:tp + 4] = v4.packed
                tp += 4
                xdigits = 0
                break
        return None
    if xdigits > 0:
        if tp + 2 > endp:
            return None
        tmp[tp:tp + 2] = val.to_bytes(2, "big")
        tp += 2
    if colonp is not None:
        if tp == endp:
            return None
        n = tp - colonp
        tmp[endp - n:endp] = tmp[colonp:tp]
        tmp[colonp:endp - n] = bytes(endp - n - colonp)
        tp = endp
    if tp != endp:
        return None
    return IPv6Address(bytes(tmp))


def ntop6(addr: IPv6Address) -> str:
    """glibc `inet_ntop(AF_INET6)`: like str(), but ::a.b.c.d and ::ffff:a.b.c.d stay dotted."""
    b = addr.packed
    dotted = ".".join(str(x) for x in b[12:])
    if b[:12] == bytes(12) and b[12:14] != bytes(2):
        return "::" + dotted
    if b[:10] == bytes(10) and b[10:12] == b"\xff\xff":
        return "::ffff:" + dotted
    return str(addr)


def _sscanf_hex(text: str) -> Optional[int]:
    """glibc `sscanf(text, "%x", &int_var)`: the int stored, or None when it does not return 1."""
    i, n = 0, len(text)
    while i < n and text[i] in _C_SPACE:
        i += 1
    if i == n:
        return None                          # EOF before any conversion
    buf = ""
    if text[i] in "+-":
        buf += text[i]
        i += 1
    if i < n and text[i] == "0":             # a leading "0x" is consumed even without digits after
        buf += "0"
        i += 1
        if i < n and text[i] in "xX":
            i += 1
    while i < n and text[i] in _HEX:
        buf += text[i]
        i += 1
    digits = buf.lstrip("+-")
    if not digits:
        return None
    mag = int(digits, 16)
    if mag > _ULONG_MAX:                     # strtoul overflow: ULONG_MAX whatever the sign
        ul = _ULONG_MAX
    else:
        ul = (-mag if buf[0] == "-" else mag) % (1 << 64)
    return _c_int(ul % (1 << 32))            # stored through an unsigned int *, read as int


def parse_mac(text: str) -> Union[bytes, str]:
    """slirp4netns's `slirp4netns_macaddr_hexstring_to_data()`: 6 bytes, or its error line."""
    data = []
    pos: Optional[int] = 0
    while pos is not None and len(data) < 6:
        if pos != 0:
            pos += 1                         # step over the ':'
        value = _sscanf_hex(text[pos:])
        if value is None or value < 0 or value > 255:
            return f'"{text}" is an invalid MAC address.'
        data.append(value)
        found = text.find(":", pos)
        pos = None if found < 0 else found
    if pos is not None:
        return f'"{text}" is an invalid MAC address.  Is it too long?'
    return bytes(data + [0] * (6 - len(data)))


_CIDR_RE = re.compile(r"(([0-9]{1,3}\.){3}[0-9]{1,3})/([0-9]{1,2})")


def parse_cidr(text: str) -> Union[IPv4Network, str]:
    """slirp4netns's `parse_cidr()`: the network, or its error line."""
    m = _CIDR_RE.fullmatch(text)
    if m is None:
        return f"invalid CIDR: {text}"
    addr = inet_pton4(m.group(1))
    if addr is None:
        return f"invalid network address: {m.group(1)}"
    prefix = int(m.group(3))
    if not NETWORK_PREFIX_MIN <= prefix <= NETWORK_PREFIX_MAX:
        return f"prefix length needs to be {NETWORK_PREFIX_MIN}-{NETWORK_PREFIX_MAX}"
    net = IPv4Network(f"{addr}/{prefix}", strict=False)
    if net.network_address != addr:
        return ("CIDR needs to be a network address like 10.0.2.0/24, "
                "not like 10.0.2.100/24")
    return net


def _one_line(text: str) -> str:
    """`text` with control characters (a newline in an argument) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def stat_path_error(path: str) -> Optional[str]:
    """Default `path_error`: None if `path` exists, else the strerror text (like access(F_OK))."""
    try:
        os.stat(path)
    except OSError as e:
        return e.strerror or str(e)
    except ValueError:                       # embedded NUL: cannot come from a real argv
        return "Invalid argument"
    return None


# --- getopt_long --------------------------------------------------------------------------------

# --- parse ----------------------------------------------------------------------------------------

PathError = Callable[[str], Optional[str]]
InterfaceAddr = Callable[[str, int], Union[str, IPv4Address, IPv6Address, None]]


def parse(argv: Sequence[str], prog: str = "slirp4netns", *,
          path_error: PathError = stat_path_error,
          interface_addr: Optional[InterfaceAddr] = None,
          posixly_correct: bool = False,
          pypasta_version: str = PYPASTA_VERSION) -> Union[SlirpOptions, InfoRequest]:
    """slirp4netns's `parse_args()` + `slirp4netns_config_from_options()` (argv without argv[0]).

    `prog` is argv[0] as slirp4netns uses it in messages and the usage line. `path_error(path)`
    returns None when the path exists, else the strerror text. `interface_addr(name, family)`
    (family 4 or 6) returns the interface's first address of that family, or None.
    `posixly_correct` mirrors the POSIXLY_CORRECT environment variable (options end at the first
    non-option).
    """
    warnings: list = []
    kw: dict = {}
    given: set = set()
    cidr_text = DEFAULT_CIDR
    mac_text: Optional[str] = None
    outbound4: Optional[str] = None
    outbound6: Optional[str] = None

    def stdout_so_far() -> str:
        return "".join(w + "\n" for w in warnings)

    def fail(message: str, stderr: Optional[str] = None, usage: bool = True) -> SlirpError:
        # stderr is slirp4netns's text to the byte (an argument is printed as given); the
        # message, our one-line error, shows control characters escaped.
        return SlirpError(_one_line(message),
                          stderr=message + "\n" if stderr is None else stderr,
                          show_usage=usage, stdout_before=stdout_so_far())

    def fd_value(text: str, what: str) -> int:
        value, ok = c_strtol(text)
        value = _c_int(value)
        if not ok or value < 0:
            raise fail(f"{what} must be a non-negative integer")
        return value

    getopt = Getopt(argv, SHORT_OPTIONS, LONG_OPTIONS, posixly_correct)
    try:
        for key, optarg, _ in getopt:
            given.add(_LONG_NAME_OF_KEY[key])
            if key == "c":
                kw["configure"] = True
            elif key == "e":
                kw["exit_fd"] = fd_value(optarg, "exit-fd")
            elif key == "r":
                kw["ready_fd"] = fd_value(optarg, "ready-fd")
            elif key == "m":
                value, ok = c_strtol(optarg)
                value = _c_uint(value)
                if not ok or value == 0 or value > MTU_MAX:
                    raise fail("MTU must be a positive integer (< 65522)")
                kw["mtu"] = value
            elif key == "cidr":
                cidr_text = optarg
            elif key in ("no-host-loopback", "disable-host-loopback"):
                if key == "no-host-loopback":
                    warnings.append("WARNING: --no-host-loopback is deprecated and will be "
                                    "removed in future releases, please use "
                                    "--disable-host-loopback instead.")
                kw["disable_host_loopback"] = True
            elif key in ("create-sandbox", "enable-sandbox"):
                if key == "create-sandbox":
                    warnings.append("WARNING: --create-sandbox is deprecated and will be "
                                    "removed in future releases, please use "
                                    "--enable-sandbox instead.")
                kw["enable_sandbox"] = True
            elif key == "enable-seccomp":
                warnings.append("WARNING: Support for seccomp is experimental")
                kw["enable_seccomp"] = True
            elif key == "netns-type":
                kw["netns_type"] = optarg
            elif key == "userns-path":
                if path_error(optarg) is not None:
                    raise fail(f"userns path doesn't exist: {optarg}")
                kw["userns_path"] = optarg
            elif key == "a":
                kw["api_socket"] = optarg
            elif key == "6":
                kw["enable_ipv6"] = True
                warnings.append("WARNING: Support for IPv6 is experimental")
            elif key == "h":
                return InfoRequest("help", stdout_so_far() + usage_text(prog))
            elif key == "v":
                return InfoRequest("version", stdout_so_far() + version_text(pypasta_version))
            elif key == "outbound-addr":
                warnings.append("WARNING: Support for --outbound-addr is experimental")
                outbound4 = optarg
            elif key == "outbound-addr6":
                warnings.append("WARNING: Support for --outbound-addr6 is experimental")
                outbound6 = optarg
            elif key == "disable-dns":
                kw["disable_dns"] = True
            elif key == "macaddress":
                mac_text = optarg
            elif key == "target-type":
                kw["target_type"] = optarg
            else:                                            # pragma: no cover - table bug
                raise AssertionError(f"unhandled option key {key!r}")
    except GetoptError as e:
        text = f"{prog}: {e}\n"
        raise fail(text.rstrip("\n"), stderr=text) from None

    # parse_args(), after the loop: errors print the usage text too.
    if mac_text is not None and not kw.get("configure"):
        raise fail("--macaddr cannot be specified when --configure or -c is not specified")
    pos = getopt.positionals
    target_type = kw.get("target_type")
    if target_type == "bess":
        if len(pos) < 1:
            raise fail("missing BESS socket path", stderr="")
        if len(pos) > 1:
            raise fail("too many arguments")
        if kw.get("configure"):
            raise fail("--configure conflicts with --target-type=bess")
        if "netns_type" in kw:
            raise fail("--netns-type conflicts with --target-type=bess")
        if "userns_path" in kw:
            raise fail("--userns-path conflicts with --target-type=bess")
        warnings.append("WARNING: BESS mode is experimental")
        kw["bess_socket"] = pos[0]
    else:
        if target_type is not None and target_type != DEFAULT_TARGET_TYPE:
            raise fail('--target-type must be either "netns" or "bess"')
        if len(pos) < 2:
            raise fail("missing arguments: PID|PATH TAPNAME", stderr="")
        if len(pos) > 2:
            # slirp4netns: "not an error, for preventing potential compatibility issue"
            warnings.append("WARNING: too many arguments")
            kw["extra_args"] = tuple(pos[2:])
        netns_type = kw.get("netns_type")
        if netns_type is None or netns_type == DEFAULT_NETNS_TYPE:
            value, ok = c_strtol(pos[0])
            value = _c_int(value)
            if not ok or value <= 0:
                raise fail("PID must be a positive integer")
            kw["target_pid"] = value
        else:
            err = path_error(pos[0])
            if err is not None:
                raise fail(f"existing path expected when --netns-type=path: {err}")
            kw["netns_path"] = pos[0]
        kw["tapname"] = pos[1]

    # slirp4netns_config_from_options(): errors print no usage text.
    net = parse_cidr(cidr_text)
    if isinstance(net, str):
        raise fail(net, usage=False)
    kw["cidr"] = cidr_text
    kw["network"] = net
    if outbound4 is not None:
        kw["outbound_addr_spec"] = outbound4
        addr = inet_pton4(outbound4)
        if addr is None:
            addr = _lookup(interface_addr, outbound4, 4)
        if addr is None:
            msg = "outbound-addr has to be valid ipv4 address or interface name."
            raise fail(msg, stderr=msg, usage=False)
        kw["outbound_addr"] = addr
    if outbound6 is not None:
        kw["outbound_addr6_spec"] = outbound6
        addr6 = inet_pton6(outbound6)
        if addr6 is None:
            addr6 = _lookup(interface_addr, outbound6, 6)
        if addr6 is None:
            msg = "outbound-addr has to be valid ipv4 address or iterface name."
            raise fail(msg, stderr=msg, usage=False)
        kw["outbound_addr6"] = addr6
    if mac_text is not None:
        mac = parse_mac(mac_text)
        if isinstance(mac, str):
            raise fail(mac, stderr=mac + "\n" + MAC_HINT, usage=False)
        kw["macaddress"] = ":".join(f"{b:02x}" for b in mac)

    # Checked later by slirp4netns (api_bindlisten(), child_bess()); same message and exit code.
    for what, path in (("API", kw.get("api_socket")), ("BESS", kw.get("bess_socket"))):
        if path is not None and len(os.fsencode(path)) >= SUN_PATH_MAX:
            raise fail(f"the specified {what} socket path is too long (>= {SUN_PATH_MAX})",
                       usage=False)

    return SlirpOptions(given=frozenset(given), warnings=tuple(warnings), **kw)


def _lookup(interface_addr: Optional[InterfaceAddr], name: str, family: int):
    """The first address of `name` in `family` via the injected lookup, as an ipaddress object."""
    if interface_addr is None:
        return None
    found = interface_addr(name, family)
    if found is None:
        return None
    return IPv4Address(str(found)) if family == 4 else IPv6Address(str(found))


def main_parse(argv: Sequence[str], prog: str = "slirp4netns", *,
               stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None,
               **kwargs) -> Union[SlirpOptions, int]:
    """Parse and print what slirp4netns prints while parsing; options, or the exit code.

    On success the parse-time warnings are written to stdout before returning the options.
    Keyword arguments go to `parse`; `posixly_correct` defaults to whether POSIXLY_CORRECT is set.
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    kwargs.setdefault("posixly_correct", "POSIXLY_CORRECT" in os.environ)   # as glibc reads it
    try:
        result = parse(argv, prog, **kwargs)
    except SlirpError as e:
        out.write(e.stdout_before)
        out.flush()
        err.write(e.stderr)
        err.flush()
        if e.show_usage:
            out.write(usage_text(prog))
            out.flush()
        return e.exit_code
    if isinstance(result, InfoRequest):
        out.write(result.stdout)
        out.flush()
        return result.exit_code
    out.write("".join(w + "\n" for w in result.warnings))
    out.flush()
    return result
