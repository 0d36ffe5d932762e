"""podman_compat.slirp4netns_cli: argv -> SlirpOptions, against slirp4netns 1.2.0 itself.

The real `slirp4netns` binary (Debian's 1.2.0, installed by tests/install-deps.sh) is run only
with command lines that it refuses while parsing, or with --help/--version: every such case is
first run through our parser, and the binary is started only if ours refuses it too (or prints
help). As a second safety net every PID target is 2147483647 (above any pid_max) and every path
target does not exist, so even a binary that accepted a case could not act on anything.
"""

from __future__ import annotations

import ast
import ctypes
import ctypes.util
import io
import os
import shutil
import socket
import subprocess
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podman_compat import slirp4netns_cli as cli
from podman_compat.slirp4netns_cli import (InfoRequest, SlirpError, SlirpOptions, c_strtol,
                                           inet_pton4, inet_pton6, main_parse, parse, parse_cidr,
                                           parse_mac, usage_text, version_text)

PID = "2147483647"          # parses as a PID, never exists
NOPATH = "/nonexistent-pypasta/ns"
ROOT = Path(__file__).resolve().parents[2]


def real_binary() -> str:
    path = shutil.which("slirp4netns")
    if path is None:
        pytest.fail("slirp4netns is not installed: run tests/install-deps.sh", pytrace=False)
    return path


def run_real(argv, cwd, posixly_correct=False):
    real_binary()
    env = {k: v for k, v in os.environ.items() if k != "POSIXLY_CORRECT"}
    env["LC_ALL"] = "C"
    if posixly_correct:
        env["POSIXLY_CORRECT"] = "1"
    r = subprocess.run(["slirp4netns", *argv], capture_output=True, text=True, timeout=20,
                       cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def run_ours(argv, posixly_correct=False):
    out, err = io.StringIO(), io.StringIO()
    res = main_parse(argv, "slirp4netns", stdout=out, stderr=err,
                     posixly_correct=posixly_correct)
    return res, out.getvalue(), err.getvalue()


def refused(argv, **kw) -> SlirpError:
    with pytest.raises(SlirpError) as info:
        parse(argv, **kw)
    return info.value


# --- accepted command lines -----------------------------------------------------------------

PODMAN_ROOTFUL = ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp",
                  "--enable-ipv6", "-c", "-e", "3", "-r", "4", "--netns-type=path", "/", "tap0"]

ACCEPTED = [
    # (argv, expected fields)
    ([PID, "tap0"], dict(target_pid=2147483647, tapname="tap0", mtu=1500, configure=False,
                          exit_fd=None, ready_fd=None, cidr="10.0.2.0/24", netns_type=None,
                          target_type="netns", enable_ipv6=False, warnings=())),
    (PODMAN_ROOTFUL, dict(netns_path="/", netns_type="path", target_pid=None, tapname="tap0",
                          mtu=65520, configure=True, exit_fd=3, ready_fd=4,
                          disable_host_loopback=True, enable_sandbox=True, enable_seccomp=True,
                          enable_ipv6=True,
                          warnings=("WARNING: Support for seccomp is experimental",
                                    "WARNING: Support for IPv6 is experimental"))),
    # Podman with --api-socket (space-separated), cidr and no ipv6
    (["--disable-host-loopback", "--mtu=1500", "--cidr=10.0.3.0/24", "-c", "-e", "3", "-r", "4",
      "--api-socket", "/run/x.net", "--netns-type=path", "/", "tap0"],
     dict(api_socket="/run/x.net", cidr="10.0.3.0/24", network=IPv4Network("10.0.3.0/24"),
          mtu=1500)),
    # RootlessKit: space-separated values, PID target
    (["--mtu", "65520", "-r", "3", "--disable-host-loopback", "--api-socket", "/s/.s4nn.sock",
      "--enable-sandbox", "--enable-seccomp", "12345", "tap0"],
     dict(target_pid=12345, mtu=65520, ready_fd=3, api_socket="/s/.s4nn.sock")),
    (["--mtu", "1500", "-r", "3", "--cidr", "10.0.5.0/24", "--enable-ipv6", "12345", "tap0"],
     dict(network=IPv4Network("10.0.5.0/24"), enable_ipv6=True)),
    # short forms, clusters, attached arguments
    (["-c6", "-e3", "-r4", "-m9000", "-a/tmp/api", "7", "tap1"],
     dict(configure=True, enable_ipv6=True, exit_fd=3, ready_fd=4, mtu=9000,
          api_socket="/tmp/api", target_pid=7, tapname="tap1")),
    (["-ce", "5", "7", "tap1"], dict(configure=True, exit_fd=5)),
    # permutation: options after positionals; "--" ends options
    ([PID, "--mtu=1400", "tap0", "-c"], dict(mtu=1400, configure=True, tapname="tap0")),
    (["--", PID, "tap0"], dict(target_pid=2147483647)),
    (["-c", "--", PID, "-c"], dict(configure=True, tapname="-c")),
    # unique abbreviations
    (["--conf", "--mt=1280", "--ci", "10.1.0.0/16", "--disable-h", "--disable-d", "--enable-i",
      "--enable-sa", "--enable-se", "--netns=pid", "--targ=netns", PID, "tap0"],
     dict(configure=True, mtu=1280, network=IPv4Network("10.1.0.0/16"),
          disable_host_loopback=True, disable_dns=True, enable_ipv6=True, enable_sandbox=True,
          enable_seccomp=True, netns_type="pid", target_type="netns")),
    # an exact name wins over a longer one it prefixes
    (["--outbound-addr=10.9.8.7", PID, "tap0"],
     dict(outbound_addr=IPv4Address("10.9.8.7"), outbound_addr_spec="10.9.8.7",
          warnings=("WARNING: Support for --outbound-addr is experimental",))),
    (["--outbound-addr6=fd01::5", "-6", PID, "tap0"],
     dict(outbound_addr6=IPv6Address("fd01::5"))),
    # deprecated aliases: same effect, plus their warnings
    (["--no-host-loopback", "--create-sandbox", PID, "tap0"],
     dict(disable_host_loopback=True, enable_sandbox=True,
          warnings=("WARNING: --no-host-loopback is deprecated and will be removed in future "
                    "releases, please use --disable-host-loopback instead.",
                    "WARNING: --create-sandbox is deprecated and will be removed in future "
                    "releases, please use --enable-sandbox instead."),
          given=frozenset({"no-host-loopback", "create-sandbox"}))),
    # the last occurrence wins; warnings repeat
    (["-m", "1000", "--mtu=2000", "-6", "-6", PID, "tap0"],
     dict(mtu=2000, warnings=("WARNING: Support for IPv6 is experimental",) * 2)),
    # too many positionals: only a warning
    ([PID, "tap0", "extra", "more"],
     dict(extra_args=("extra", "more"), warnings=("WARNING: too many arguments",))),
    # C strtol quirks, copied: "" is 0, blanks and signs, int wraparound, unsigned MTU
    (["--exit-fd=", "--ready-fd= +7", PID, "tap0"], dict(exit_fd=0, ready_fd=7)),
    (["--exit-fd=4294967296", PID, "tap0"], dict(exit_fd=0)),
    (["--mtu=4294968796", PID, "tap0"], dict(mtu=1500)),
    (["--mtu=1", PID, "tap0"], dict(mtu=1)),
    (["--mtu=65521", PID, "tap0"], dict(mtu=65521)),
    (["+5", "tap0"], dict(target_pid=5)),
    (["4294967297", "tap0"], dict(target_pid=1)),
    # --netns-type: only "pid" is special; anything else is a path
    (["--netns-type=pid", PID, "tap0"], dict(target_pid=2147483647, netns_type="pid")),
    (["--netns-type=tapfd", "/", "tap0"], dict(netns_path="/", netns_type="tapfd")),
    (["--netns-type=", "/", "tap0"], dict(netns_path="/", netns_type="")),
    (["--userns-path=/", PID, "tap0"], dict(userns_path="/")),
    # MAC addresses, as slirp4netns's sscanf loop reads them
    (["-c", "--macaddress=02:00:0A:00:02:64", PID, "tap0"],
     dict(macaddress="02:00:0a:00:02:64")),
    (["-c", "--macaddress=aa:bb", PID, "tap0"], dict(macaddress="aa:bb:00:00:00:00")),
    (["--target-type=bess", "/tmp/bess.sock"],
     dict(target_type="bess", bess_socket="/tmp/bess.sock", tapname=None, target_pid=None,
          warnings=("WARNING: BESS mode is experimental",))),
    (["--target-type=netns", PID, "tap0"], dict(target_type="netns")),
    (["--disable-dns", PID, "tap0"], dict(disable_dns=True)),
]


@pytest.mark.parametrize("argv,expected", ACCEPTED, ids=[" ".join(a) for a, _ in ACCEPTED])
def test_parse_accepts(argv, expected):
    opts = parse(argv)
    assert isinstance(opts, SlirpOptions)
    for name, value in expected.items():
        assert getattr(opts, name) == value, name


def test_parse_records_given_options_by_long_name():
    opts = parse(PODMAN_ROOTFUL)
    assert opts.given == {"disable-host-loopback", "mtu", "enable-sandbox", "enable-seccomp",
                          "enable-ipv6", "configure", "exit-fd", "ready-fd", "netns-type"}


def test_parse_options_are_frozen():
    opts = parse([PID, "tap0"])
    with pytest.raises(AttributeError):
        opts.mtu = 1           # type: ignore[misc]


ADDRESSING = [
    # cidr, network, netmask, gateway, dns, dhcp start, dhcp end, guest
    ("10.0.2.0/24", "10.0.2.0", "255.255.255.0", "10.0.2.2", "10.0.2.3", "10.0.2.15",
     "10.0.2.30", "10.0.2.100"),
    ("10.0.3.0/24", "10.0.3.0", "255.255.255.0", "10.0.3.2", "10.0.3.3", "10.0.3.15",
     "10.0.3.30", "10.0.3.100"),
    ("10.0.135.128/25", "10.0.135.128", "255.255.255.128", "10.0.135.130", "10.0.135.131",
     "10.0.135.143", "10.0.135.158", "10.0.135.228"),
    ("172.16.0.0/12", "172.16.0.0", "255.240.0.0", "172.16.0.2", "172.16.0.3", "172.16.0.15",
     "172.16.0.30", "172.16.0.100"),
    ("128.0.0.0/1", "128.0.0.0", "128.0.0.0", "128.0.0.2", "128.0.0.3", "128.0.0.15",
     "128.0.0.30", "128.0.0.100"),
]


@pytest.mark.parametrize("row", ADDRESSING, ids=[r[0] for r in ADDRESSING])
def test_parse_derives_addresses_from_cidr(row):
    cidr, network, netmask, gw, dns, dstart, dend, guest = row
    opts = parse([f"--cidr={cidr}", PID, "tap0"])
    assert str(opts.network.network_address) == network
    assert str(opts.netmask) == netmask
    assert (str(opts.gateway), str(opts.dns)) == (gw, dns)
    assert (str(opts.dhcp_start), str(opts.dhcp_end)) == (dstart, dend)
    assert str(opts.guest_addr) == guest


def test_parse_ipv6_addressing_is_fixed():
    plain = parse([PID, "tap0"])
    assert (plain.ipv6_prefix, plain.gateway6, plain.dns6) == (None, None, None)
    v6 = parse(["-6", "--cidr=10.0.3.0/24", PID, "tap0"])
    assert str(v6.ipv6_prefix) == "fd00::/64"
    assert (str(v6.gateway6), str(v6.dns6)) == ("fd00::2", "fd00::3")


def test_parse_namespace_paths():
    assert parse(["42", "tap0"]).namespace_paths() == ("/proc/42/ns/user", "/proc/42/ns/net")
    assert parse(["--userns-path=/", "42", "tap0"]).namespace_paths() == ("/", "/proc/42/ns/net")
    assert parse(["--netns-type=path", "/", "tap0"]).namespace_paths() == (None, "/")
    assert parse(["--netns-type=path", "--userns-path=/", "/", "t"]).namespace_paths() == ("/", "/")
    assert parse(["--target-type=bess", "/x"]).namespace_paths() == (None, None)
    assert parse(["42", "t"]).netns_mode == "pid"
    assert parse(["--netns-type=path", "/", "t"]).netns_mode == "path"
    assert parse(["--target-type=bess", "/x"]).netns_mode is None


def test_parse_banner_matches_slirp4netns_layout():
    opts = parse(["-c", "--mtu=65520", "--api-socket=/run/a.net", "--macaddress=2:0:0:0:0:1",
                  "--outbound-addr=10.1.2.3", "--outbound-addr6=::ffff:1.2.3.4", PID, "tap0"])
    assert opts.banner() == (
        "Starting slirp\n"
        "* MTU:             65520\n"
        "* Network:         10.0.2.0\n"
        "* Netmask:         255.255.255.0\n"
        "* Gateway:         10.0.2.2\n"
        "* DNS:             10.0.2.3\n"
        "* DHCP begin:      10.0.2.15\n"
        "* DHCP end:        10.0.2.30\n"
        "* Recommended IP:  10.0.2.100\n"
        "* API Socket:      /run/a.net\n"
        "* Outbound IPv4:    10.1.2.3\n"
        "* Outbound IPv6:    ::ffff:1.2.3.4\n"
        "* MAC address:     02:00:00:00:00:01\n"
        "WARNING: 127.0.0.1:* on the host is accessible as 10.0.2.2 (set --disable-host-loopback "
        "to prohibit connecting to 127.0.0.1:*)\n")
    quiet = parse(["--disable-host-loopback", PID, "tap0"]).banner()
    assert "WARNING" not in quiet and quiet.endswith("* Recommended IP:  10.0.2.100\n")


# --- injected lookups -------------------------------------------------------------------------

def test_parse_outbound_interface_names_use_the_injected_lookup():
    calls = []

    def lookup(name, family):
        calls.append((name, family))
        return {("eth0", 4): "192.0.2.7", ("eth0", 6): IPv6Address("2001:db8::7")}.get(
            (name, family))

    opts = parse(["--outbound-addr=eth0", "--outbound-addr6=eth0", PID, "tap0"],
                 interface_addr=lookup)
    assert opts.outbound_addr == IPv4Address("192.0.2.7")
    assert opts.outbound_addr6 == IPv6Address("2001:db8::7")
    assert (opts.outbound_addr_spec, opts.outbound_addr6_spec) == ("eth0", "eth0")
    assert calls == [("eth0", 4), ("eth0", 6)]
    # literals never reach the lookup; the v6 lookup uses the v6 value (slirp4netns's bug fixed)
    calls.clear()
    opts = parse(["--outbound-addr=1.2.3.4", "--outbound-addr6=eth0", PID, "t"],
                 interface_addr=lookup)
    assert calls == [("eth0", 6)] and opts.outbound_addr6 == IPv6Address("2001:db8::7")
    err = refused(["--outbound-addr=eth9", PID, "t"], interface_addr=lookup)
    assert err.stderr == "outbound-addr has to be valid ipv4 address or interface name."
    err = refused(["--outbound-addr6=eth9", PID, "t"], interface_addr=lookup)
    assert err.stderr == "outbound-addr has to be valid ipv4 address or iterface name."


def test_parse_without_lookup_refuses_interface_names():
    err = refused(["--outbound-addr=eth0", PID, "tap0"])
    assert not err.show_usage and err.exit_code == 1
    assert err.stdout_before == "WARNING: Support for --outbound-addr is experimental\n"


def test_parse_path_checks_use_the_injected_lookup():
    seen = []

    def path_error(path):
        seen.append(path)
        return None if path.startswith("/ok") else "Permission denied"

    opts = parse(["--userns-path=/ok/u", "--netns-type=path", "/ok/n", "tap0"],
                 path_error=path_error)
    assert (opts.userns_path, opts.netns_path) == ("/ok/u", "/ok/n") and seen == ["/ok/u", "/ok/n"]
    err = refused(["--netns-type=path", "/no", "tap0"], path_error=path_error)
    assert err.stderr == "existing path expected when --netns-type=path: Permission denied\n"
    err = refused(["--userns-path=/no", PID, "tap0"], path_error=path_error)
    assert err.stderr == "userns path doesn't exist: /no\n" and err.show_usage


def test_parse_posixly_correct_stops_at_the_first_non_option():
    assert parse([PID, "tap0", "--mtu=0"], posixly_correct=True).extra_args == ("--mtu=0",)
    assert refused([PID, "tap0", "--mtu=0"]).stderr.startswith("MTU must be")


# --- refused command lines, checked against the real binary ---------------------------------

# Every case must be refused while parsing (or be help). Expected: (exit code, usage shown,
# stderr); the comparison with the binary then checks all of stdout too.
MAC_HINT = cli.MAC_HINT
REFUSED = [
    # getopt level: glibc's wording, then the usage text
    (["--foo"], 1, True, "slirp4netns: unrecognized option '--foo'\n"),
    (["--foo=bar", PID, "tap0"], 1, True, "slirp4netns: unrecognized option '--foo=bar'\n"),
    (["--dis"], 1, True, "slirp4netns: option '--dis' is ambiguous; possibilities: "
                         "'--disable-host-loopback' '--disable-dns'\n"),
    (["--dis=1"], 1, True, "slirp4netns: option '--dis=1' is ambiguous; possibilities: "
                           "'--disable-host-loopback' '--disable-dns'\n"),
    (["--enable-s"], 1, True, "slirp4netns: option '--enable-s' is ambiguous; possibilities: "
                              "'--enable-sandbox' '--enable-seccomp'\n"),
    (["--outbound-add=1"], 1, True, "slirp4netns: option '--outbound-add=1' is ambiguous; "
                                    "possibilities: '--outbound-addr' '--outbound-addr6'\n"),
    (["--=x"], 1, True, "slirp4netns: option '--=x' is ambiguous; possibilities:"
     + "".join(f" '--{o.name}'" for o in cli.LONG_OPTIONS) + "\n"),
    (["--configure=1"], 1, True, "slirp4netns: option '--configure' doesn't allow an argument\n"),
    (["--conf=1"], 1, True, "slirp4netns: option '--configure' doesn't allow an argument\n"),
    (["--help="], 1, True, "slirp4netns: option '--help' doesn't allow an argument\n"),
    (["--cidr"], 1, True, "slirp4netns: option '--cidr' requires an argument\n"),
    (["--ci"], 1, True, "slirp4netns: option '--cidr' requires an argument\n"),
    (["-x"], 1, True, "slirp4netns: invalid option -- 'x'\n"),
    (["-:"], 1, True, "slirp4netns: invalid option -- ':'\n"),
    (["-c6x", PID, "tap0"], 1, True, "slirp4netns: invalid option -- 'x'\n"),
    (["-e"], 1, True, "slirp4netns: option requires an argument -- 'e'\n"),
    (["-ce"], 1, True, "slirp4netns: option requires an argument -- 'e'\n"),
    (["-6", "-a"], 1, True, "slirp4netns: option requires an argument -- 'a'\n"),
    (["--bogus", "-h"], 1, True, "slirp4netns: unrecognized option '--bogus'\n"),
    # numbers
    (["-m", "0", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=65522", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=abc", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=-1", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=1500 ", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=99999999999999999999", PID, "tap0"], 1, True,
     "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=4294968796", "--cidr=bogus", PID, "tap0"], 1, False, "invalid CIDR: bogus\n"),
    (["-e", "-1", PID, "tap0"], 1, True, "exit-fd must be a non-negative integer\n"),
    (["-e", "abc", PID, "tap0"], 1, True, "exit-fd must be a non-negative integer\n"),
    (["-e", " ", PID, "tap0"], 1, True, "exit-fd must be a non-negative integer\n"),
    (["--exit-fd=2147483648", PID, "tap0"], 1, True, "exit-fd must be a non-negative integer\n"),
    (["--exit-fd=", "--mtu=0", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--exit-fd=4294967296", "--mtu=0", PID, "tap0"], 1, True,
     "MTU must be a positive integer (< 65522)\n"),
    (["--exit-fd= +7", "--mtu=0", PID, "tap0"], 1, True,
     "MTU must be a positive integer (< 65522)\n"),
    (["-r", "0x3", PID, "tap0"], 1, True, "ready-fd must be a non-negative integer\n"),
    (["--ready-fd=-2", PID, "tap0"], 1, True, "ready-fd must be a non-negative integer\n"),
    # positionals
    ([], 1, True, ""),
    ([PID], 1, True, ""),
    (["-"], 1, True, ""),
    (["--", "--help"], 1, True, ""),
    (["abc", "tap0"], 1, True, "PID must be a positive integer\n"),
    (["0", "tap0"], 1, True, "PID must be a positive integer\n"),
    (["--", "-1", "tap0"], 1, True, "PID must be a positive integer\n"),
    (["", "tap0"], 1, True, "PID must be a positive integer\n"),
    (["4294967296", "tap0"], 1, True, "PID must be a positive integer\n"),
    (["abc", "tap0", "extra"], 1, True, "PID must be a positive integer\n"),
    (["--netns-type=pid", "/", "tap0"], 1, True, "PID must be a positive integer\n"),
    (["--netns-type=path", NOPATH, "tap0"], 1, True,
     "existing path expected when --netns-type=path: No such file or directory\n"),
    (["--netns-type=path", "/etc/passwd/x", "tap0"], 1, True,
     "existing path expected when --netns-type=path: Not a directory\n"),
    (["--netns-type=tapfd", "5", "tap0"], 1, True,
     "existing path expected when --netns-type=path: No such file or directory\n"),
    (["--netns-type=PID", PID, "tap0"], 1, True,
     "existing path expected when --netns-type=path: No such file or directory\n"),
    (["--userns-path=/nonexistent", PID, "tap0"], 1, True,
     "userns path doesn't exist: /nonexistent\n"),
    (["--mtu=0", "--userns-path=/nonexistent", PID, "tap0"], 1, True,
     "MTU must be a positive integer (< 65522)\n"),
    (["--userns-path=/nonexistent", "--mtu=0", PID, "tap0"], 1, True,
     "userns path doesn't exist: /nonexistent\n"),
    # cidr (no usage text: slirp4netns_config_from_options())
    (["--cidr=bogus", PID, "tap0"], 1, False, "invalid CIDR: bogus\n"),
    (["--cidr=10.0.2.0", PID, "tap0"], 1, False, "invalid CIDR: 10.0.2.0\n"),
    (["--cidr=10.0.2.0/24 ", PID, "tap0"], 1, False, "invalid CIDR: 10.0.2.0/24 \n"),
    (["--cidr=10.0.2.0/124", PID, "tap0"], 1, False, "invalid CIDR: 10.0.2.0/124\n"),
    (["--cidr=1000.0.2.0/24", PID, "tap0"], 1, False, "invalid CIDR: 1000.0.2.0/24\n"),
    (["--cidr=10.0.2.0/26", PID, "tap0"], 1, False, "prefix length needs to be 1-25\n"),
    (["--cidr=10.0.2.0/0", PID, "tap0"], 1, False, "prefix length needs to be 1-25\n"),
    (["--cidr=0.0.0.0/00", PID, "tap0"], 1, False, "prefix length needs to be 1-25\n"),
    (["--cidr=10.0.2.1/24", PID, "tap0"], 1, False,
     "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24\n"),
    (["--cidr=10.0.2.128/24", PID, "tap0"], 1, False,
     "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24\n"),
    (["--cidr=999.0.0.0/8", PID, "tap0"], 1, False, "invalid network address: 999.0.0.0\n"),
    (["--cidr=010.0.2.0/24", PID, "tap0"], 1, False, "invalid network address: 010.0.2.0\n"),
    # outbound addresses (no usage, no trailing newline); cidr is checked first
    (["--outbound-addr=nonexistentif0", PID, "tap0"], 1, False,
     "outbound-addr has to be valid ipv4 address or interface name."),
    (["--outbound-addr=1.2.3", PID, "tap0"], 1, False,
     "outbound-addr has to be valid ipv4 address or interface name."),
    (["--outbound-addr6=nonexistentif0", PID, "tap0"], 1, False,
     "outbound-addr has to be valid ipv4 address or iterface name."),
    (["--outbound-addr6=fe80::1%lo", PID, "tap0"], 1, False,
     "outbound-addr has to be valid ipv4 address or iterface name."),
    (["--outbound-addr=nonexistentif0", "--cidr=bogus", PID, "tap0"], 1, False,
     "invalid CIDR: bogus\n"),
    (["--outbound-addr=nonexistentif0", "-c", "--macaddress=zz", PID, "tap0"], 1, False,
     "outbound-addr has to be valid ipv4 address or interface name."),
    # MAC addresses
    (["--macaddress=zz", PID, "tap0"], 1, True,
     "--macaddr cannot be specified when --configure or -c is not specified\n"),
    (["--macaddress=x", "--target-type=foo"], 1, True,
     "--macaddr cannot be specified when --configure or -c is not specified\n"),
    (["-c", "--macaddress=zz", PID, "tap0"], 1, False,
     '"zz" is an invalid MAC address.\n' + MAC_HINT),
    (["-c", "--macaddress=", PID, "tap0"], 1, False, '"" is an invalid MAC address.\n' + MAC_HINT),
    (["-c", "--macaddress=aa:bb:cc:dd:ee:ff:00", PID, "tap0"], 1, False,
     '"aa:bb:cc:dd:ee:ff:00" is an invalid MAC address.  Is it too long?\n' + MAC_HINT),
    (["-c", "--macaddress=aa:bb:cc:dd:ee:ff:", PID, "tap0"], 1, False,
     '"aa:bb:cc:dd:ee:ff:" is an invalid MAC address.  Is it too long?\n' + MAC_HINT),
    (["-c", "--macaddress=aa:100:cc", PID, "tap0"], 1, False,
     '"aa:100:cc" is an invalid MAC address.\n' + MAC_HINT),
    (["-c", "--macaddress=aa:-1:cc", PID, "tap0"], 1, False,
     '"aa:-1:cc" is an invalid MAC address.\n' + MAC_HINT),
    (["-c", "--macaddress=aa::cc", PID, "tap0"], 1, False,
     '"aa::cc" is an invalid MAC address.\n' + MAC_HINT),
    (["-c", "--macaddress=zz", "--cidr=bogus", PID, "tap0"], 1, False, "invalid CIDR: bogus\n"),
    # target types (BESS cases carry --cidr=bogus: refused before anything starts either way)
    (["--target-type=foo", PID, "tap0"], 1, True,
     '--target-type must be either "netns" or "bess"\n'),
    (["--target-type=foo"], 1, True, '--target-type must be either "netns" or "bess"\n'),
    (["--target-type=BESS"], 1, True, '--target-type must be either "netns" or "bess"\n'),
    (["--target-type=bess"], 1, True, ""),
    (["--target-type=bess", "-c"], 1, True, ""),
    (["--target-type=bess", "--cidr=bogus", "a", "b"], 1, True, "too many arguments\n"),
    (["--target-type=bess", "-c", "--netns-type=x", "--cidr=bogus", "a", "b"], 1, True,
     "too many arguments\n"),
    (["--target-type=bess", "-c", "--cidr=bogus", "sock"], 1, True,
     "--configure conflicts with --target-type=bess\n"),
    (["--target-type=bess", "--netns-type=pid", "--cidr=bogus", "sock"], 1, True,
     "--netns-type conflicts with --target-type=bess\n"),
    (["--target-type=bess", "--netns-type=x", "--userns-path=/", "--cidr=bogus", "a"], 1, True,
     "--netns-type conflicts with --target-type=bess\n"),
    (["--target-type=bess", "--userns-path=/", "--cidr=bogus", "sock"], 1, True,
     "--userns-path conflicts with --target-type=bess\n"),
    (["--target-type=bess", "--cidr=bogus", "sock"], 1, False, "invalid CIDR: bogus\n"),
    (["--target-type=bess", "--macaddress=1", "--cidr=bogus", "a"], 1, True,
     "--macaddr cannot be specified when --configure or -c is not specified\n"),
    # warnings printed before the error stay on stdout
    (["-6", "--mtu=0", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--no", "--mtu=0", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--create-sandbox", "--enable-seccomp", "--outbound-addr=x", "--outbound-addr6=y",
      "--mtu=0", PID, "tap0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    # permutation: an option after the positionals is still an option
    ([PID, "tap0", "--mtu=0"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    (["--mtu=0", "-h"], 1, True, "MTU must be a positive integer (< 65522)\n"),
    # help
    (["-h"], 0, False, ""),
    (["--he"], 0, False, ""),
    (["-6", "-h"], 0, False, ""),
    (["-c6h"], 0, False, ""),
    ([PID, "tap0", "--help"], 0, False, ""),
    (["-h", "--mtu=0"], 0, False, ""),
    (["-h", "--bogus"], 0, False, ""),
]


@pytest.mark.parametrize("argv,code,usage,stderr", REFUSED,
                         ids=[" ".join(c[0]) or "<none>" for c in REFUSED])
def test_parse_refuses_like_slirp4netns(argv, code, usage, stderr):
    res, out, err = run_ours(argv)
    assert res == code
    assert err == stderr
    if code == 0:
        assert out.endswith(usage_text("slirp4netns"))
    else:
        assert out.endswith(usage_text("slirp4netns")) == usage
        e = refused(argv)
        assert "\n" not in str(e) and str(e)           # always a one-line message


@pytest.mark.parametrize("argv,code,usage,stderr", REFUSED,
                         ids=[" ".join(c[0]) or "<none>" for c in REFUSED])
def test_parse_matches_real_binary(argv, code, usage, stderr, tmp_path):
    res, out, err = run_ours(argv)
    # Safety: the binary only ever sees what we refuse or answer with help.
    assert isinstance(res, int), f"case is accepted by us, refusing to run the binary: {argv}"
    assert run_real(argv, tmp_path) == (res, out, err)


def test_parse_matches_real_binary_posixly_correct(tmp_path):
    argv = ["abc", "tap0", "--mtu=0"]
    res, out, err = run_ours(argv, posixly_correct=True)
    assert (res, err) == (1, "PID must be a positive integer\n")
    assert run_real(argv, tmp_path, posixly_correct=True) == (res, out, err)


def test_parse_help_text_is_slirp4netns_text(tmp_path):
    res = parse(["--help"])
    assert isinstance(res, InfoRequest) and res.kind == "help" and res.exit_code == 0
    code, out, err = run_real(["--help"], tmp_path)
    assert (code, err) == (0, "")
    assert res.stdout == out == usage_text()
    assert usage_text("/usr/bin/slirp4netns").startswith(
        "Usage: /usr/bin/slirp4netns [OPTION]... PID|PATH [TAPNAME]\n")


@pytest.mark.parametrize("probe", [
    # Podman 4.x checkSlirpFlags, RootlessKit's feature detection (real-clients.md 1.1, 2)
    "--disable-host-loopback", "--mtu", "--enable-sandbox", "--enable-seccomp", "--cidr",
    "--outbound-addr", "--enable-ipv6", "--netns-type", "--api-socket",
])
def test_parse_help_mentions_probed_feature(probe):
    assert probe in parse(["-h"]).stdout


def test_parse_help_lists_every_documented_option():
    text = usage_text()
    for opt in cli.LONG_OPTIONS:
        if opt.name not in ("no-host-loopback", "create-sandbox"):   # deprecated, undocumented
            assert f"--{opt.name}" in text


def test_parse_version_has_slirp4netns_shape(tmp_path):
    res = parse(["--vers"], pypasta_version="9.8.7")
    assert isinstance(res, InfoRequest) and res.kind == "version" and res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "slirp4netns version 1.2.0+pypasta-9.8.7"
    assert "SLIRP_CONFIG_VERSION_MAX: 4" in lines
    code, out, err = run_real(["-v"], tmp_path)
    real = out.splitlines()
    assert code == 0 and real[0].startswith("slirp4netns version ")
    # same keys in the same order (libseccomp: only where a libseccomp is linked)
    keys = [line.split(":")[0] for line in lines[1:]]
    assert keys == [line.split(":")[0] for line in real[1:] if not line.startswith("libseccomp")]
    assert version_text("1.0") == res.stdout.replace("9.8.7", "1.0")


def test_parse_version_after_warnings_keeps_them():
    res = parse(["-6", "-v"])
    assert res.stdout.startswith("WARNING: Support for IPv6 is experimental\nslirp4netns version")


# --- our own checks (the binary fails these only later) ----------------------------------------

def test_parse_refuses_too_long_socket_paths():
    long = "/" + "x" * 107                     # 108 bytes
    err = refused(["-a", long, PID, "tap0"])
    assert err.stderr == "the specified API socket path is too long (>= 108)\n"
    assert not err.show_usage and err.exit_code == 1
    assert parse(["-a", long[:-1], PID, "tap0"]).api_socket == long[:-1]
    err = refused(["--target-type=bess", long])
    assert err.stderr == "the specified BESS socket path is too long (>= 108)\n"
    assert err.stdout_before == "WARNING: BESS mode is experimental\n"


def test_parse_error_carries_everything_main_prints():
    err = refused(["-6", "--enable-seccomp", "abc", "tap0", "x"])
    assert err.stdout_before == ("WARNING: Support for IPv6 is experimental\n"
                                 "WARNING: Support for seccomp is experimental\n"
                                 "WARNING: too many arguments\n")
    assert err.stderr == "PID must be a positive integer\n" and err.show_usage
    assert str(err) == err.message == "PID must be a positive integer"
    usage_only = refused([PID])
    assert usage_only.stderr == "" and str(usage_only) == "missing arguments: PID|PATH TAPNAME"
    mac = refused(["-c", "--macaddress=q", PID, "t"])
    assert str(mac) == '"q" is an invalid MAC address.'


def test_main_parse_prints_warnings_on_success():
    res, out, err = run_ours(["-6", PID, "tap0"])
    assert isinstance(res, SlirpOptions)
    assert (out, err) == ("WARNING: Support for IPv6 is experimental\n", "")


def test_main_parse_uses_prog_in_messages_and_usage():
    out, err = io.StringIO(), io.StringIO()
    assert main_parse(["--x"], "/usr/bin/slirp4netns", stdout=out, stderr=err) == 1
    assert err.getvalue() == "/usr/bin/slirp4netns: unrecognized option '--x'\n"
    assert out.getvalue() == usage_text("/usr/bin/slirp4netns")


# --- the C library emulations, against glibc --------------------------------------------------

LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
LIBC.strtol.restype = ctypes.c_long
LIBC.strtol.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]


def glibc_strtol(text: str):
    raw = text.encode()
    buf = ctypes.create_string_buffer(raw)
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    value = LIBC.strtol(buf, ctypes.byref(end), 10)
    errno = ctypes.get_errno()
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf)
    return value, errno == 0 and consumed == len(raw)


def glibc_sscanf_hex(text: str):
    out = ctypes.c_int(0x5A5A)
    n = LIBC.sscanf(text.encode(), b"%x", ctypes.byref(out))
    return out.value if n == 1 else None


NUMERIC = st.text(alphabet=" \t\n+-0123456789xXabcdefABCDEFg:.", max_size=24)


@given(NUMERIC)
@settings(max_examples=400, deadline=None)
def test_c_strtol_matches_glibc(text):
    assert c_strtol(text) == glibc_strtol(text)


@pytest.mark.parametrize("text", ["", " ", "+", "-", "0", "-0", " 42", "42 ", "+7", "-7",
                                  "9223372036854775807", "9223372036854775808",
                                  "-9223372036854775808", "-9223372036854775809", "0x10", "1e3"])
def test_c_strtol_edges_match_glibc(text):
    assert c_strtol(text) == glibc_strtol(text)


@given(NUMERIC)
@settings(max_examples=400, deadline=None)
def test_sscanf_hex_matches_glibc(text):
    assert cli._sscanf_hex(text) == glibc_sscanf_hex(text)


@pytest.mark.parametrize("text", ["", " ", "0x", "0xg", "-0x", "+", "-", "-1", "-0", "ff",
                                  "FF", "100", "0x1f", " \t1f:", "fffffffff", "ffffffff",
                                  "80000000", "-80000000", "7fffffff", "ffffffffffffffffff",
                                  "-ffffffffffffffffff", "+0Xa", "0X", "00000000000000000001"])
def test_sscanf_hex_edges_match_glibc(text):
    assert cli._sscanf_hex(text) == glibc_sscanf_hex(text)


ADDR_TEXT = st.text(alphabet="0123456789abcdefABCDEF:.% x", max_size=45)


def glibc_pton(family, text):
    try:
        return socket.inet_pton(family, text)
    except (OSError, UnicodeEncodeError):
        return None


@given(ADDR_TEXT)
@settings(max_examples=500, deadline=None)
def test_inet_pton_matches_glibc(text):
    v4, v6 = inet_pton4(text), inet_pton6(text)
    assert (v4.packed if v4 else None) == glibc_pton(socket.AF_INET, text)
    assert (v6.packed if v6 else None) == glibc_pton(socket.AF_INET6, text)


@pytest.mark.parametrize("text", [
    "1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.",
    "1.2.3.4.5", ".1.2.3", "1..2.3", "", " 1.2.3.4", "::", "::1", "1::", ":1::", "1:::2",
    "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::", "::ffff:1.2.3.4", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4", "::01.2.3.4", "12345::", "fe80::1%lo", "1:2:3:4:5:6::1.2.3.4",
    "::1.2.3.4:5", "1:", ":", "1.2.3.4::",
])
def test_inet_pton_edges_match_glibc(text):
    v4, v6 = inet_pton4(text), inet_pton6(text)
    assert (v4.packed if v4 else None) == glibc_pton(socket.AF_INET, text)
    assert (v6.packed if v6 else None) == glibc_pton(socket.AF_INET6, text)


@given(st.binary(min_size=16, max_size=16))
@settings(max_examples=300, deadline=None)
def test_ntop6_matches_glibc(packed):
    assert cli.ntop6(IPv6Address(packed)) == socket.inet_ntop(socket.AF_INET6, packed)


MACS = [
    ("02:00:0a:00:02:64", bytes.fromhex("02000a000264")),
    ("2:0:A:0:2:64", bytes.fromhex("02000a000264")),
    (" 2: +0:0x0a:0X0:2g:64", bytes.fromhex("02000a000264")),     # sscanf leniencies
    ("aa", bytes.fromhex("aa0000000000")),                          # short: zero-padded
    ("aa:bb", bytes.fromhex("aabb00000000")),
    ("-0:1:2:3:4:5", bytes.fromhex("000102030405")),
    ("0x:1:2:3:4:5", bytes.fromhex("000102030405")),
    ("aa-bb-cc-dd-ee-ff", bytes.fromhex("aa0000000000")),           # read as one octet "aa"
    ("zz", '"zz" is an invalid MAC address.'),
    ("", '"" is an invalid MAC address.'),
    ("aa:", '"aa:" is an invalid MAC address.'),
    (":aa", '":aa" is an invalid MAC address.'),
    ("100:0:0:0:0:0", '"100:0:0:0:0:0" is an invalid MAC address.'),
    ("-1:0:0:0:0:0", '"-1:0:0:0:0:0" is an invalid MAC address.'),
    ("1:2:3:4:5:6:7", '"1:2:3:4:5:6:7" is an invalid MAC address.  Is it too long?'),
    ("1:2:3:4:5:6:", '"1:2:3:4:5:6:" is an invalid MAC address.  Is it too long?'),
    ("1:2:3:4:5:zz", '"1:2:3:4:5:zz" is an invalid MAC address.'),
]


@pytest.mark.parametrize("text,expected", MACS, ids=[m[0] or "<empty>" for m in MACS])
def test_parse_mac_table(text, expected):
    assert parse_mac(text) == expected


CIDRS = [
    ("10.0.2.0/24", IPv4Network("10.0.2.0/24")),
    ("10.0.2.0/08", "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24"),
    ("10.0.0.0/08", IPv4Network("10.0.0.0/8")),
    ("192.168.1.128/25", IPv4Network("192.168.1.128/25")),
    ("10.0.2.0/25", IPv4Network("10.0.2.0/25")),
    ("10.0.2.0/26", "prefix length needs to be 1-25"),
    ("10.0.2.0/32", "prefix length needs to be 1-25"),
    ("10.0.2.0/", "invalid CIDR: 10.0.2.0/"),
    ("10.0.2/24", "invalid CIDR: 10.0.2/24"),
    ("10.0.2.0/24\n", "invalid CIDR: 10.0.2.0/24\n"),
    ("1.2.3.256/24", "invalid network address: 1.2.3.256"),
    ("\u0661.0.0.0/8", "invalid CIDR: \u0661.0.0.0/8"),                # ASCII digits only
]


@pytest.mark.parametrize("text,expected", CIDRS, ids=[c[0] for c in CIDRS])
def test_parse_cidr_table(text, expected):
    assert parse_cidr(text) == expected


# --- robustness: any argv ends in options, help/version, or a one-line SlirpError ---------------

ARGS = st.lists(st.one_of(
    st.sampled_from(["-c", "-6", "-h", "-v", "-e", "-r", "-m", "-a", "--", "-", "--mtu",
                     "--cidr", "--netns-type=path", "--target-type=bess", "--macaddress",
                     "--userns-path", "--outbound-addr", "--outbound-addr6", "--dis", "--e",
                     "--enable-ipv6", "--no", "1", "tap0", "/", "0", "abc", "10.0.2.0/24",
                     "aa:bb", "-ce", "-c6m1500", "--=", "--mtu=", "::1", "1.2.3.4"]),
    st.text(max_size=12)), max_size=8)


@given(ARGS)
@settings(max_examples=500, deadline=None)
def test_parse_never_raises_anything_else(argv):
    try:
        res = parse(argv, path_error=lambda p: None if p == "/" else "No such file or directory")
    except SlirpError as e:
        assert e.exit_code == 1 and "\n" not in str(e) and str(e)
        return
    assert isinstance(res, (SlirpOptions, InfoRequest))


# --- the package stays sans-IO and documented ---------------------------------------------------

FORBIDDEN = {"socket", "select", "selectors", "pyroute2", "subprocess", "fcntl", "ctypes",
             "asyncio"}


@pytest.mark.parametrize("name", ["__init__", "slirp4netns_cli", "api"])
def test_podman_compat_module_is_sans_io_and_documented(name):
    path = ROOT / "podman_compat" / f"{name}.py"
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc.splitlines()) > 5, f"{path} needs a design docstring (STYLE.md B5)"
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
