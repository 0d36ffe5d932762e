"""Tests for pasta.front.conf: pasta-compatible getopt_long, option validation and the entry point."""

import ipaddress
import pwd
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pasta.front.conf import (CANONICAL, LONG_OPTIONS, PASST_ONLY, USAGE_HIDDEN, ExitRequest, main, parse_args,
                       usage_text, version_text)
from pasta.plan.config import Config
from pasta.util.errors import ConfigError, SetupError, UsageError
from pasta.plan.portspec import PortSpecError
from pasta.core.fwd_rule import (ANY4, ANY6, FWD_DUAL_STACK_ANY, FWD_SCAN, FWD_WEAK, IPPROTO_TCP,
                                 IPPROTO_UDP, PIF_HOST, PIF_SPLICE, FwdRule, FwdRuleError,
                                 fwd_rule_fmt)

REPO = Path(__file__).resolve().parents[2]
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def config_error(argv, message):
    """Assert that argv is refused with exactly this one-line ConfigError message."""
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    assert not isinstance(e.value, UsageError)
    assert str(e.value) == message
    return e.value


def usage_error(argv, message):
    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert str(e.value) == message


EPH = (32768, 60999)                # an ephemeral port range, for results that depend on it
TCP, UDP, HOST, SPLICE = IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE
DUAL = FWD_DUAL_STACK_ANY
PORT_OPTS = {"t": "t", "u": "u", "T": "T", "U": "U", "tcp-ports": "t", "udp-ports": "u",
             "tcp-ns": "T", "udp-ns": "U"}


def only(opt, spec):
    """argv giving `spec` to one port option and `none` to the three others (no defaults)."""
    key = PORT_OPTS[opt.lstrip("-")]
    return [opt, spec] + [a for k in "tuTU" if k != key for a in (f"-{k}", "none")]


def rule_texts(cfg, pif=None, proto=None):
    return [fwd_rule_fmt(r) for r in cfg.fwd_rules
            if (pif is None or r.pif == pif) and (proto is None or r.proto == proto)]


def port_map(cfg, pif, proto):
    """{listening port: target port} of the static rules of one table and protocol."""
    return {p: r.target(p) for r in cfg.fwd_rules if (r.pif, r.proto) == (pif, proto)
            and not r.flags & FWD_SCAN for p in range(r.first, r.last + 1)}


# --- every option, long and short ----------------------------------------------------------------

SOME_USER = next(p for p in pwd.getpwall() if p.pw_uid != 0)

# (argv, Config attribute or None, expected value)
OPTION_CASES = [
    (["-d"], "debug", True),
    (["--debug"], "debug", True),
    (["--trace"], "trace", True),
    (["-q"], "quiet", True),
    (["--quiet"], "quiet", True),
    (["-f"], "foreground", True),
    (["--foreground"], "foreground", True),
    (["-e"], "warnings", ("--stderr will be dropped soon",)),
    (["--stderr"], "warnings", ("--stderr will be dropped soon",)),
    (["-l", "/tmp/p.log"], "log_file", "/tmp/p.log"),
    (["--log-file", "/tmp/p.log"], "log_file", "/tmp/p.log"),
    (["--log-size", "40960"], "log_size", 40960),
    (["--log-size", "0x100000"], "log_size", 1 << 20),
    (["--runas", "1000"], "runas", (1000, 1000)),
    (["--runas", "1000:100"], "runas", (1000, 100)),
    (["--runas", "0x10:010"], "runas", (16, 8)),
    (["--runas", SOME_USER.pw_name], "runas", (SOME_USER.pw_uid, SOME_USER.pw_gid)),
    (["--runas", f"{SOME_USER.pw_name}:root"], "runas", (SOME_USER.pw_uid, 0)),
    (["-p", "/tmp/c.pcap"], "pcap", "/tmp/c.pcap"),
    (["--pcap", "/tmp/c.pcap"], "pcap", "/tmp/c.pcap"),
    (["-P", "/tmp/p.pid"], "pid_file", "/tmp/p.pid"),
    (["--pid", "/tmp/p.pid"], "pid_file", "/tmp/p.pid"),
    (["-F", "5"], "tap_fd", 5),
    (["--fd", "5"], "tap_fd", 5),
    (["-I", "tap0"], "ns_ifname", "tap0"),
    (["--ns-ifname", "tap0"], "ns_ifname", "tap0"),
    (["-m", "1500"], "mtu", 1500),
    (["--mtu", "1500"], "mtu", 1500),
    (["-m", "0"], "mtu", 0),
    (["-m", "68"], "mtu", 68),
    (["-m", "65521"], "mtu", 65521),
    (["-m", "0x5dc"], "mtu", 1500),
    (["-a", "10.0.2.100"], "addr4", V4("10.0.2.100")),
    (["--address", "2001:db8::2"], "addr6", V6("2001:db8::2")),
    (["-n", "24"], "prefix4", 24),
    (["--netmask", "255.255.240.0"], "prefix4", 20),
    (["-n", "32"], "prefix4", 32),
    (["-n", "0"], "prefix4", None),
    (["-M", "02:00:00:00:00:01"], "our_mac", "02:00:00:00:00:01"),
    (["--mac-addr", "AA:BB:CC:DD:EE:FF"], "our_mac", "aa:bb:cc:dd:ee:ff"),
    (["-g", "10.0.2.2"], "gw4", V4("10.0.2.2")),
    (["--gateway", "fe80::1"], "gw6", V6("fe80::1")),
    (["-i", "eth0"], "template_if", "eth0"),
    (["--interface", "eth0"], "template_if", "eth0"),
    (["-o", "192.0.2.5"], "outbound4", V4("192.0.2.5")),
    (["-o", "127.0.0.1"], "outbound4", V4("127.0.0.1")),
    (["--outbound", "2001:db8::5"], "outbound6", V6("2001:db8::5")),
    (["--outbound-if4", "eth0"], "outbound_if4", "eth0"),
    (["--outbound-if6", "eth1"], "outbound_if6", "eth1"),
    (["-D", "1.1.1.1"], "dns", (V4("1.1.1.1"),)),
    (["--dns", "::1"], "dns", (V6("::1"),)),
    (["-D", "none"], "dns_none", True),
    (["-S", "example.com"], "search", ("example.com",)),
    (["--search", "a.example b.example"], "search", ("a.example b.example",)),
    (["-S", "none"], "search_none", True),
    (["--dhcp-dns"], "dhcp_dns", True),
    (["--dhcp-search"], "dhcp_search", True),
    (["--dns-forward", "169.254.1.1"], "dns_forward4", V4("169.254.1.1")),
    (["--dns-forward", "fd00::53"], "dns_forward6", V6("fd00::53")),
    (["--dns-host", "127.0.0.53"], "dns_host4", V4("127.0.0.53")),
    (["--dns-host", "::1"], "dns_host6", V6("::1")),
    (["--no-tcp"], "no_tcp", True),
    (["--no-udp"], "no_udp", True),
    (["--no-icmp"], "no_icmp", True),
    (["--no-dhcp"], "no_dhcp", True),
    (["--no-ndp"], "no_ndp", True),
    (["--no-dhcpv6"], "no_dhcpv6", True),
    (["--no-ra"], "no_ra", True),
    (["--freebind"], "freebind", True),
    (["--map-host-loopback", "10.0.2.2"], "map_host_loopback4", V4("10.0.2.2")),
    (["--map-host-loopback", "fd00::2"], "map_host_loopback6", V6("fd00::2")),
    (["--map-host-loopback", "none"], "map_host_loopback_none", True),
    (["--no-map-gw"], "no_map_gw", True),
    (["--map-guest-addr", "169.254.1.2"], "map_guest_addr4", V4("169.254.1.2")),
    (["--map-guest-addr", "fd00::3"], "map_guest_addr6", V6("fd00::3")),
    (["--no-splice"], "no_splice", True),
    (["--no-seccomp"], "no_seccomp", True),
    (["--host-lo-to-ns-lo"], "host_lo_to_ns_lo", True),
    (["-4"], "ipv6", False),
    (["--ipv4-only"], "ipv6", False),
    (["-6"], "ipv4", False),
    (["--ipv6-only"], "ipv4", False),
    (only("-t", "80"), "fwd_rules", (FwdRule(HOST, TCP, 80, 80, 80, ANY6, flags=DUAL),)),
    (only("--tcp-ports", "none"), "fwd_rules", ()),
    (only("-u", "53:5353"), "fwd_rules", (FwdRule(HOST, UDP, 53, 53, 5353, ANY6, flags=DUAL),)),
    (only("--udp-ports", "53,auto"), "fwd_rules",
     (FwdRule(HOST, UDP, 53, 53, 53, ANY6, flags=DUAL | FWD_SCAN),)),
    (only("-T", "8081"), "fwd_rules",
     (FwdRule(SPLICE, TCP, 8081, 8081, 8081, ANY6, ifname="lo", flags=DUAL),)),
    (only("--tcp-ns", "none"), "fwd_rules", ()),
    (only("-U", "5000-5001"), "fwd_rules",
     (FwdRule(SPLICE, UDP, 5000, 5001, 5000, ANY6, ifname="lo", flags=DUAL),)),
    (only("--udp-ns", "none"), "fwd_rules", ()),
    (["--userns", "/proc/1/ns/user", "--netns", "/proc/1/ns/net"], "userns", "/proc/1/ns/user"),
    (["--netns", "/run/user/1000/netns/x"], "netns", "/run/user/1000/netns/x"),
    (["--netns", "ns1"], "netns", "/run/netns/ns1"),
    (["--netns-only", "--netns", "ns1"], "netns_only", True),
    (["--no-netns-quit"], "no_netns_quit", True),
    (["--config-net"], "config_net", True),
    (["--config-net", "--no-copy-routes"], "no_copy_routes", True),
    (["--config-net", "--no-copy-addrs"], "no_copy_addrs", True),
    (["--ns-mac-addr", "02:00:00:00:00:02"], "ns_mac", "02:00:00:00:00:02"),
    (["-a", "10.0.2.100/24"], "prefix4", 24),
    (["-a", "2001:db8::2/80"], "prefix6", 80),
    (["-c", "/run/p/pasta.sock"], "conf_path", "/run/p/pasta.sock"),
    (["--conf-path", "/run/p/pasta.sock"], "conf_path", "/run/p/pasta.sock"),
    (["-H", "box"], "hostname", "box"),
    (["--hostname", "box.example"], "hostname", "box.example"),
    (["--fqdn", "box.example.org"], "fqdn", "box.example.org"),
    (["-f", "--stats", "5"], "stats", 5),
    (["-f", "--stats", "0x10garbage"], "stats", 16),
    (["--splice-only"], "splice_only", True),
    (["--chroot-fallback"], "chroot_fallback", True),
    (["--repair-path", "none"], "given", frozenset({"repair-path"})),
]


@pytest.mark.parametrize("argv,attr,expected", OPTION_CASES, ids=lambda v: repr(v)[:40])
def test_cli_option_sets_config_field(argv, attr, expected):
    cfg = parse_args(argv)
    assert getattr(cfg, attr) == expected


@pytest.mark.parametrize("argv,attr,expected", OPTION_CASES, ids=lambda v: repr(v)[:40])
def test_cli_option_recorded_in_given(argv, attr, expected):
    cfg = parse_args(argv)
    for arg in argv:
        if arg.startswith("--"):
            assert arg[2:] in cfg.given
        elif arg.startswith("-") and len(arg) == 2:
            assert CANONICAL[arg[1]] in cfg.given


def test_cli_option_cases_cover_every_option():
    """Every long name and short letter of pasta mode appears in OPTION_CASES or is tested apart."""
    spelled = {a for argv, _, _ in OPTION_CASES for a in argv if a.startswith("-")}
    apart = {"--help", "-h", "--version"}
    for o in LONG_OPTIONS:
        if o.key in PASST_ONLY or o.key in ("vhost-user", "print-capabilities"):
            continue
        assert f"--{o.name}" in spelled | apart, o.name
        if len(o.key) == 1:
            assert f"-{o.key}" in spelled | apart, o.key


def test_cli_usage_lists_every_pasta_option():
    text = usage_text()
    for o in LONG_OPTIONS:
        if o.key in PASST_ONLY or o.name in USAGE_HIDDEN:
            assert f"--{o.name}" not in text or o.key == "s", o.name
            continue
        assert f"--{o.name}" in text, o.name
        if len(o.key) == 1:
            assert f"-{o.key}, --{o.name}" in text, o.key
    assert text.startswith("Usage: pypasta [OPTION]...")


def test_cli_defaults_when_no_options():
    cfg = parse_args([], ephemeral=EPH)
    assert cfg == Config(command=(), fwd_rules=cfg.fwd_rules)
    assert cfg.spawn and cfg.given == frozenset()
    # every port option defaults to `auto`, added in pasta's order: -t, -T, -u, -U
    assert rule_texts(cfg) == [
        "TCP [*]:1-32767  =>  1-32767  (best effort) (auto-scan)",
        "TCP [*]:61000-65535  =>  61000-65535  (best effort) (auto-scan)",
        "TCP [*]%lo:1-32767  =>  1-32767  (best effort) (auto-scan)",
        "TCP [*]%lo:61000-65535  =>  61000-65535  (best effort) (auto-scan)",
        "UDP [*]:1-32767  =>  1-32767  (best effort) (auto-scan)",
        "UDP [*]:61000-65535  =>  61000-65535  (best effort) (auto-scan)",
        "UDP [*]%lo:1-32767  =>  1-32767  (best effort) (auto-scan)",
        "UDP [*]%lo:61000-65535  =>  61000-65535  (best effort) (auto-scan)"]


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["--he"], ["-4h"], ["-h", "--bogus"],
                                  ["-h", "-t", "70000"]])
def test_cli_help_requests_usage_on_stdout_exit_0(argv):
    with pytest.raises(ExitRequest) as e:
        parse_args(argv)
    assert (e.value.code, e.value.stream, e.value.text) == (0, "stdout", usage_text())


@pytest.mark.parametrize("argv", [["--version"], ["--vers"], ["-q", "--version"]])
def test_cli_version_requests_version_on_stdout(argv):
    with pytest.raises(ExitRequest) as e:
        parse_args(argv)
    assert e.value.code == 0 and e.value.stream == "stdout"
    assert e.value.text == version_text()
    lines = version_text().split("\n")
    assert lines[0] == "pypasta 0.1.0" and "General Public License" in lines[1]
    assert version_text().endswith("\n\n")


@pytest.mark.parametrize("argv,message", [
    (["-s", "/tmp/s"], "-s is for passt / vhost-user mode only"),
    (["--socket", "/tmp/s"], "-s is for passt / vhost-user mode only"),
    (["--socket-path", "/tmp/s"], "-s is for passt / vhost-user mode only"),
    (["--so", "x"], "-s is for passt / vhost-user mode only"),
    (["-1"], "--one-off is for passt mode only"),
    (["--one-off"], "--one-off is for passt mode only"),
    (["--no-dhcp-dns"], "--no-dhcp-dns is for passt mode only"),
    (["--no-dhcp-search"], "--no-dhcp-search is for passt mode only"),
    (["--migrate-exit"], "--migrate-exit is for vhost-user mode only"),
    (["--migrate-no-linger"], "--migrate-no-linger is for vhost-user mode only"),
    (["--repair-path", "/x"], "--repair-path is for vhost-user mode only"),
    (["--vhost-user"], "not supported yet: --vhost-user (vhost-user passt mode)"),
])
def test_cli_passt_only_options_refused(argv, message):
    """pasta 2026's wording (checked against the reference binary's output)."""
    config_error(argv, message)


@pytest.mark.parametrize("argv,message", [
    (["-m", "65522"], "MTU 65522 too large (max 65521)"),
    (["-m", "1500x"], "Invalid MTU: 1500x"),
    (["--stats", "1"], "Can't display statistics if not running in foreground"),
    (["--stats", "1", "-f"], "Can't display statistics if not running in foreground"),
    (["-a", "10.0.0.1/24", "-n", "16"], "Redundant prefix length specification"),
    (["-n", "16", "-a", "10.0.0.1/24"], "Redundant prefix length specification"),
    (["-a", "10.0.0.1/33"], "Invalid prefix length: 10.0.0.1/33"),
    (["-a", "fe80::/200"], "Invalid prefix length: fe80::/200"),
    (["-a", "127.0.0.1"], "Invalid guest address: 127.0.0.1"),
    (["-a", "10.0.0.1/x"], "Invalid guest address: 10.0.0.1/x"),
    (["-c", "x" * 108], "Invalid configuration path: " + "x" * 108),
    (["-c", ""], "Invalid configuration path: "),
    (["-H", "x" * 254], "Invalid hostname: " + "x" * 254),
    (["--fqdn", "x" * 254], "Invalid FQDN: " + "x" * 254),
    (["--splice-only", "--no-splice"], "--splice-only is incompatible with --no-splice"),
    (["--host-lo-to-ns-lo", "--no-splice"],
     "--host-lo-to-ns-lo is incompatible with --no-splice"),
])
def test_cli_2026_option_errors(argv, message):
    """pasta 2026's checks and wording (each checked against the reference binary)."""
    config_error(argv, message)


def test_cli_print_capabilities_prints_and_exits_0_in_any_mode():
    with pytest.raises(ExitRequest) as e:
        parse_args(["-t", "80", "--print-capabilities", "--bogus"])
    assert (e.value.code, e.value.stream) == (0, "stderr")
    assert e.value.text == '{\n  "type": "net"\n}\n'


def test_cli_2026_implied_options():
    """--splice-only implies --host-lo-to-ns-lo, --no-icmp, no DNS and no search list;
    --no-icmp implies --no-ndp; small MTUs only warn."""
    cfg = parse_args(["--splice-only"])
    assert cfg.host_lo_to_ns_lo and cfg.no_icmp and cfg.no_ndp and cfg.dns_none
    assert cfg.search_none
    assert parse_args(["--no-icmp"]).no_ndp
    cfg = parse_args(["-m", "60"])
    assert cfg.mtu == 60 and cfg.warnings == (
        "MTU 60 is too small for IPv4 (minimum 68)",
        "MTU 60 is too small for IPv6 (minimum 1280)")
    assert parse_args(["-4", "-m", "1000"]).warnings == ()


# --- logging switches: order matters -------------------------------------------------------------

def test_cli_quiet_and_debug_last_one_wins():
    cfg = parse_args(["-d", "-q"])
    assert (cfg.debug, cfg.trace, cfg.quiet) == (False, False, True)
    cfg = parse_args(["-q", "--trace"])
    assert (cfg.debug, cfg.trace, cfg.quiet) == (True, True, False)
    cfg = parse_args(["--trace", "-q", "-d"])
    assert (cfg.debug, cfg.trace, cfg.quiet) == (True, False, False)


def test_cli_ipv4_ipv6_only_last_wins():
    cfg = parse_args(["-4", "-6"])
    assert (cfg.ipv4, cfg.ipv6) == (False, True)
    cfg = parse_args(["--ipv6-only", "--ipv4-only"])
    assert (cfg.ipv4, cfg.ipv6) == (True, False)


def test_cli_stderr_is_a_recorded_noop():
    cfg = parse_args(["-e"])
    assert cfg == Config(given=frozenset({"stderr"}), warnings=cfg.warnings,
                         fwd_rules=cfg.fwd_rules)


# --- getopt behaviour ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["-m1500"], ["-m", "1500"], ["--mtu=1500"], ["--mtu", "1500"], ["--mt", "1500"],
    ["--mt=1500"], ["-4fm1500"], ["-4fm", "1500"],
])
def test_cli_getopt_value_forms(argv):
    assert parse_args(argv).mtu == 1500


def test_cli_getopt_clustered_flags():
    cfg = parse_args(["-4fqe"])
    assert (cfg.ipv6, cfg.foreground, cfg.quiet) == (False, True, True)
    assert cfg.given == {"ipv4-only", "foreground", "quiet", "stderr"}


def test_cli_getopt_value_may_start_with_dash():
    assert parse_args(["--netns", "-x"]).netns == "/run/netns/-x"
    assert parse_args(["-I", "-y"]).ns_ifname == "-y"
    config_error(["-m", "-1"], "Invalid MTU: -1")


def test_cli_getopt_empty_value_with_equals():
    config_error(["--mtu="], "Invalid MTU: ")


def test_cli_getopt_unique_prefix_abbreviations():
    assert parse_args(["--config"]).config_net
    assert parse_args(["--map-g", "169.254.1.2"]).map_guest_addr4 == V4("169.254.1.2")
    assert parse_args(["--ipv4"]).ipv6 is False
    assert parse_args(["--fr"]).freebind


def test_cli_getopt_exact_match_beats_prefix():
    cfg = parse_args(["--netns", "x"])          # also a prefix of --netns-only
    assert cfg.netns == "/run/netns/x" and cfg.given == {"netns"}
    assert parse_args(["--dns", "1.1.1.1"]).dns == (V4("1.1.1.1"),)   # --dns-forward, --dns-host
    assert parse_args(["--no-dhcp"]).given == {"no-dhcp"}            # --no-dhcpv6, --no-dhcp-dns...
    assert parse_args(["--pid", "/tmp/x"]).pid_file == "/tmp/x"


def test_cli_getopt_ambiguous_prefix_lists_possibilities_in_table_order():
    usage_error(["--no"], "option '--no' is ambiguous; possibilities: '--no-tcp' '--no-udp' "
                "'--no-icmp' '--no-dhcp' '--no-dhcpv6' '--no-ndp' '--no-ra' '--no-splice' "
                "'--no-map-gw' '--no-dhcp-dns' '--no-dhcp-search' '--no-netns-quit' "
                "'--no-copy-routes' '--no-copy-addrs' '--no-seccomp'")
    usage_error(["--dns-"], "option '--dns-' is ambiguous; possibilities: '--dns-forward' "
                "'--dns-host'")
    usage_error(["--map=x"], "option '--map=x' is ambiguous; possibilities: "
                "'--map-host-loopback' '--map-guest-addr'")


def test_cli_getopt_double_dash_ends_options():
    cfg = parse_args(["-f", "--", "-4", "--bogus"])
    assert cfg.command == ("-4", "--bogus") and cfg.ipv6 and cfg.foreground


def test_cli_getopt_stops_at_first_non_option():
    cfg = parse_args(["-f", "sh", "-4", "--bogus"])
    assert cfg.command == ("sh", "-4", "--bogus") and cfg.ipv4 and cfg.ipv6


def test_cli_getopt_lone_dash_is_an_argument():
    assert parse_args(["-", "x"]).command == ("-", "x")


@pytest.mark.parametrize("argv,message", [
    (["--foo"], "unrecognized option '--foo'"),
    (["--foo=bar"], "unrecognized option '--foo=bar'"),
    (["--map-guest-address", "x"], "unrecognized option '--map-guest-address'"),
    (["--hostnam", "h", "--fq"], "option '--fqdn' requires an argument"),
    (["-x"], "invalid option -- 'x'"),
    (["-4x"], "invalid option -- 'x'"),
    (["-Z", "h"], "invalid option -- 'Z'"),
    (["-m"], "option requires an argument -- 'm'"),
    (["-4m"], "option requires an argument -- 'm'"),
    (["--mtu"], "option '--mtu' requires an argument"),
    (["--mt"], "option '--mtu' requires an argument"),
    (["--debug=1"], "option '--debug' doesn't allow an argument"),
    (["--deb=1"], "option '--debug' doesn't allow an argument"),
    (["--bogus", "-h"], "unrecognized option '--bogus'"),
])
def test_cli_getopt_errors_use_glibc_wording(argv, message):
    usage_error(argv, message)


def test_cli_errors_reported_in_pass_order():
    # pass 1 stops at the first bad option; -t/-u/-T/-U wait for pass 2 (in argv order, before
    # the namespace arguments, as pasta 2026's port loop).
    config_error(["-m", "10x", "-a", "127.0.0.1"], "Invalid MTU: 10x")
    config_error(["-t", "70000", "-m", "70000"], "MTU 70000 too large (max 65521)")
    config_error(["-T", "70000", "-t", "80000"], "Invalid port specifier '70000'")
    config_error(["-T", "70000", "--netns", "x", "cmd"], "Invalid port specifier '70000'")
    config_error(["-t", "80", "--netns", "x", "cmd"], "Both --netns and PID or command given")


# --- values: bad input gives one-line errors ---------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["-m", "70000"], "MTU 70000 too large (max 65521)"),
    (["-m", "65536"], "MTU 65536 too large (max 65521)"),
    (["-m", "1500abc"], "Invalid MTU: 1500abc"),
    (["-m", ""], "Invalid MTU: "),
    (["-a", "127.0.0.1"], "Invalid guest address: 127.0.0.1"),
    (["-a", "0.0.0.0"], "Invalid guest address: 0.0.0.0"),
    (["-a", "224.0.0.1"], "Invalid guest address: 224.0.0.1"),
    (["-a", "255.255.255.255"], "Invalid guest address: 255.255.255.255"),
    (["-a", "::"], "Invalid guest address: ::"),
    (["-a", "::1"], "Invalid guest address: ::1"),
    (["-a", "ff02::1"], "Invalid guest address: ff02::1"),
    (["-a", "::ffff:10.0.0.1"], "Invalid guest address: ::ffff:10.0.0.1"),
    (["-a", "::10.0.0.1"], "Invalid guest address: ::10.0.0.1"),
    (["-a", "fe80::1%eth0"], "Invalid guest address: fe80::1%eth0"),
    (["-a", "010.0.0.1"], "Invalid guest address: 010.0.0.1"),
    (["-a", "host"], "Invalid guest address: host"),
    (["-n", "255.0.255.0"], "Invalid prefix length: 255.0.255.0"),
    (["-n", "33"], "Invalid prefix length: 33"),
    (["-n", "24x"], "Invalid prefix length: 24x"),
    (["-n", "/24"], "Invalid prefix length: /24"),
    (["-M", "9a:55:9a:55:9a"], "Invalid MAC address: 9a:55:9a:55:9a"),
    (["-M", "9a-55-9a-55-9a-55"], "Invalid MAC address: 9a-55-9a-55-9a-55"),
    (["-M", "9a:55:9a:55:9a:5g"], "Invalid MAC address: 9a:55:9a:55:9a:5g"),
    (["-M", "9a:55:9a:55:9a:555"], "Invalid MAC address: 9a:55:9a:55:9a:555"),
    (["-M", " a:55:9a:55:9a:55"], "Invalid MAC address:  a:55:9a:55:9a:55"),
    (["--ns-mac-addr", "00:11:22:33:44"], "Invalid MAC address: 00:11:22:33:44"),
    (["-g", "127.0.0.1"], "Invalid gateway address: 127.0.0.1"),
    (["-g", "255.255.255.255"], "Invalid gateway address: 255.255.255.255"),
    (["-g", "::1"], "Invalid gateway address: ::1"),
    (["-g", "::"], "Invalid gateway address: ::"),
    (["-o", "::1"], "Invalid or redundant outbound address: ::1"),
    (["-o", "224.0.0.1"], "Invalid or redundant outbound address: 224.0.0.1"),
    (["-I", "abcdefghijklmnop"], "Invalid interface name: abcdefghijklmnop"),
    (["-I", ""], "Invalid interface name: "),
    (["-i", "abcdefghijklmnop"], "Invalid interface name: abcdefghijklmnop"),
    (["--outbound-if4", ""], "Invalid interface name: "),
    (["--log-size", "40959"], "Invalid --log-size: 40959"),
    (["--log-size", "big"], "Invalid --log-size: big"),
    (["-F", "2"], "Invalid --fd: 2"),
    (["-F", "x"], "Invalid --fd: x"),
    (["--fd", "2147483648"], "Invalid --fd: 2147483648"),
    (["--runas", "root"], "Invalid --runas option: root"),
    (["--runas", "no-such-user-pypasta"], "Invalid --runas option: no-such-user-pypasta"),
    (["--runas", "1000:no-such-group-pypasta"], "Invalid --runas option: 1000:no-such-group-pypasta"),
    (["--runas", ""], "Invalid --runas option: "),
    (["--runas", "1000:"], "Invalid --runas option: 1000:"),
    (["-D", "dns.example"], "Cannot use DNS address dns.example"),
    (["-S", ""], "Cannot use DNS search domain "),
    (["-S", "x" * 1025], "Cannot use DNS search domain " + "x" * 1025),
    (["--dns-forward", "127.0.0.1"], "Invalid DNS forwarding address: 127.0.0.1"),
    (["--dns-forward", "0.0.0.0"], "Invalid DNS forwarding address: 0.0.0.0"),
    (["--dns-host", "255.255.255.255"], "Invalid host nameserver address: 255.255.255.255"),
    (["--dns-host", "::"], "Invalid host nameserver address: ::"),
    (["--map-host-loopback", "127.0.0.1"], "Invalid address to remap to host: 127.0.0.1"),
    (["--map-guest-addr", "224.0.0.1"], "Invalid address to remap to host: 224.0.0.1"),
    (["--map-guest-addr", "::1"], "Invalid address to remap to host: ::1"),
    (["-p", ""], "Invalid pcap path: "),
    (["-P", ""], "Invalid PID file: "),
    (["--netns", ""], "Invalid netns: "),
    (["--netns", "/" + "x" * 4096], "Network namespace name/path /" + "x" * 4096 + " too long"),
    (["-t", "70000"], "Invalid port specifier '70000'"),
    (["-u", "80-70"], "Invalid port specifier '80-70'"),
    (["-t", "192.0.2.1/x"], "Invalid port specifier 'x'"),
    (["-T", "127.0.0.1/80"], "Listening address not allowed for -T 127.0.0.1/80"),
    (["-t", "%./80"], "Invalid interface name: ."),
    (["-t", "80", "-t", "80"],
     "Forwarding configuration conflict: TCP [*]:80  =>  80  versus TCP [*]:80  =>  80 "),
    (["-t", "80", "-t", "none"], "-t none conflicts with previous options"),
    (["-u", "53,auto", "-u", "53"],
     "Forwarding configuration conflict: UDP [*]:53  =>  53  versus UDP [*]:53  =>  53  (auto-scan)"),
    (["-t", "8080:10.0.0.1"], "Dual stack forward to IPv4 address 10.0.0.1 unsupported"),
    (["-a", "a\nb"], "Invalid guest address: a\\nb"),
])
def test_cli_bad_values_give_one_line_config_errors(argv, message):
    err = config_error(argv, message)
    assert "\n" not in str(err)


def test_cli_port_errors_are_portspec_errors():
    with pytest.raises(PortSpecError):
        parse_args(["-t", "70000"])
    with pytest.raises(FwdRuleError) as e:         # pasta's lines, the reason first
        parse_args(["-t", "80", "-u", "80", "-t", "79-81"])
    assert e.value.lines == (
        "Forwarding configuration conflict: TCP [*]:79-81  =>  79-81  versus TCP [*]:80  =>  80 ",
        "Unable to add rule TCP [*]:79-81  =>  79-81 ")


def test_cli_main_prints_the_reason_of_a_port_error(capsys):
    assert main(["-t", "80", "-t", "80"]) == 1
    assert capsys.readouterr().err == ("pypasta: Forwarding configuration conflict: "
                                       "TCP [*]:80  =>  80  versus TCP [*]:80  =>  80 \n")


def test_cli_port_options_share_one_table_in_argv_order():
    cfg = parse_args(["-t", "none", "-t", "127.0.0.1/80", "-T", "80", "-u", "0.0.0.0/80",
                      "-t", "[::1]/80", "-U", "~53"], ephemeral=EPH)
    assert rule_texts(cfg) == [
        "TCP [127.0.0.1]:80  =>  80 ", "TCP [*]%lo:80  =>  80 ", "UDP [0.0.0.0]:80  =>  80 ",
        "TCP [::1]:80  =>  80 ", "UDP [*]%lo:1-52  =>  1-52  (best effort)",
        "UDP [*]%lo:54-32767  =>  54-32767  (best effort)",
        "UDP [*]%lo:61000-65535  =>  61000-65535  (best effort)"]
    assert cfg.fwd_rules[0] == FwdRule(HOST, TCP, 80, 80, 80, V4("127.0.0.1"))


def test_cli_port_options_2026_grammar():
    cfg = parse_args(only("-t", "all") + ["-4"], ephemeral=EPH)
    assert rule_texts(cfg) == ["TCP [0.0.0.0]:1-32767  =>  1-32767  (best effort)",
                               "TCP [0.0.0.0]:61000-65535  =>  61000-65535  (best effort)"]
    cfg = parse_args(only("-t", "*%eth0/80,8000-8001:9000-9001"), ephemeral=EPH)
    assert rule_texts(cfg) == ["TCP [*]%eth0:80  =>  80 ", "TCP [*]%eth0:8000-8001  =>  9000-9001 "]
    cfg = parse_args(only("-t", "0.0.0.0/8080:10.89.0.2/80"), ephemeral=EPH)
    assert cfg.fwd_rules == (FwdRule(HOST, TCP, 8080, 8080, 80, ANY4, taddr=V4("10.89.0.2")),)
    cfg = parse_args(only("-U", "53") + ["-6"], ephemeral=EPH)
    assert cfg.fwd_rules == (FwdRule(SPLICE, UDP, 53, 53, 53, ANY6, ifname="lo"),)
    cfg = parse_args(only("-u", "127.0.0.1/auto"), ephemeral=(1024, 65535))
    assert cfg.fwd_rules == (FwdRule(HOST, UDP, 1, 1023, 1, V4("127.0.0.1"),
                                     flags=FWD_WEAK | FWD_SCAN),)


def test_cli_ephemeral_range_is_read_as_pasta_reads_it(tmp_path, monkeypatch):
    from pasta.front import conf
    f = tmp_path / "range"
    f.write_text("1024\t65000\n")
    monkeypatch.setattr(conf, "PORT_RANGE_SYSCTL", str(f))
    cfg = parse_args(only("-t", "all"))
    assert [(r.first, r.last) for r in cfg.fwd_rules] == [(1, 1023), (65001, 65535)]
    assert cfg.warnings == ()
    f.write_text("1024 65000\n")
    cfg = parse_args(only("-t", "all"))
    assert [(r.first, r.last) for r in cfg.fwd_rules] == [(1, 49151)]        # RFC 6335's
    assert cfg.warnings == (f"Unable to parse {f}",)
    monkeypatch.setattr(conf, "PORT_RANGE_SYSCTL", str(tmp_path / "missing"))
    cfg = parse_args(only("-t", "all"))
    assert cfg.warnings == (f"Unable to open {tmp_path / 'missing'}: No such file or directory",)


def test_cli_search_domain_limit():
    domains = [f"d{i}.example" for i in range(6)]
    argv = [a for d in domains for a in ("-S", d)]
    assert parse_args(argv).search == tuple(domains)
    config_error(argv + ["-S", "d6.example"], "Cannot use DNS search domain d6.example")
    cfg = parse_args(argv + ["-S", "none", "-S", "again.example"])
    assert cfg.search == ("again.example",) and not cfg.search_none
    # pasta 2026's struct fqdn holds NS_MAXDNAME (1025) bytes; one domain stays one argument
    assert parse_args(["-S", "x" * 1024]).search == ("x" * 1024,)
    assert parse_args(["-S", "a b"]).search == ("a b",)
    long = "\u00e9" * 512 + "x"           # 1025 bytes
    config_error(["-S", long], "Cannot use DNS search domain " + long)


def test_cli_dns_keeps_order_and_pasta_limit_per_family():
    argv = []
    for i in range(1, 6):
        argv += ["-D", f"10.0.0.{i}", "-D", f"fd00::{i}"]
    cfg = parse_args(argv)
    assert cfg.dns[:2] == (V4("10.0.0.1"), V6("fd00::1"))
    assert sum(1 for a in cfg.dns if a.version == 4) == 4     # MAXNS + 1, as pasta's arrays
    assert sum(1 for a in cfg.dns if a.version == 6) == 4


def test_cli_dns_none_clears_only_earlier_forward_and_host():
    """pasta 2026 handles -D in the first pass (ea239bf): order matters."""
    cfg = parse_args(["-D", "none", "--dns-forward", "10.0.2.3", "--dns-host", "1.1.1.1"])
    assert cfg.dns_none and cfg.dns == ()
    assert (cfg.dns_forward4, cfg.dns_host4) == (V4("10.0.2.3"), V4("1.1.1.1"))
    cfg = parse_args(["--dns-forward", "10.0.2.3", "--dns-host", "1.1.1.1", "-D", "none"])
    assert (cfg.dns_forward4, cfg.dns_host4) == (None, None)
    cfg = parse_args(["-D", "none", "-D", "1.1.1.1", "--dns-forward", "10.0.2.3"])
    assert not cfg.dns_none and cfg.dns == (V4("1.1.1.1"),)
    assert cfg.dns_forward4 == V4("10.0.2.3")
    config_error(["-D", "x", "--bogus"], "Cannot use DNS address x")     # before --bogus
    cfg = parse_args(["-D", "1.1.1.1", "-D", "none"])
    assert cfg.dns_none and cfg.dns == ()


def test_cli_map_host_loopback_none_implies_no_map_gw():
    cfg = parse_args(["--map-host-loopback", "10.0.2.2", "--map-host-loopback", "none"])
    assert cfg.map_host_loopback4 is None and cfg.map_host_loopback_none and cfg.no_map_gw
    assert "no-map-gw" not in cfg.given


def test_cli_map_guest_addr_none_clears_both_families():
    cfg = parse_args(["--map-guest-addr", "169.254.1.2", "--map-guest-addr", "fd00::2",
                      "--map-guest-addr", "none"])
    assert (cfg.map_guest_addr4, cfg.map_guest_addr6) == (None, None)


def test_cli_addresses_one_per_family_last_wins():
    cfg = parse_args(["-a", "10.0.0.2", "-a", "2001:db8::2", "-a", "10.0.0.3"])
    assert (cfg.addr4, cfg.addr6) == (V4("10.0.0.3"), V6("2001:db8::2"))


def test_cli_config_net_implies_no_ra():
    cfg = parse_args(["--config-net"])
    assert cfg.no_ra and cfg.given == {"config-net"}


@pytest.mark.parametrize("opt", ["--no-copy-routes", "--no-copy-addrs"])
def test_cli_no_copy_needs_config_net(opt):
    config_error([opt], f"{opt} needs --config-net")
    cfg = parse_args(["--config-net", opt])
    assert f"{opt} will be dropped soon" in cfg.warnings


@pytest.mark.parametrize("argv,message", [
    (["--no-tcp", "-t", "80"], "Unable to add rule TCP [*]:80  =>  80 "),
    (["-T", "80", "--no-tcp"], "Unable to add rule TCP [*]%lo:80  =>  80 "),
    (["--no-tcp", "-t", "22,auto"], "Unable to add rule TCP [*]:22  =>  22  (auto-scan)"),
    (["--no-udp", "-u", "53"], "Unable to add rule UDP [*]:53  =>  53 "),
    (["--no-udp", "-U", "53"], "Unable to add rule UDP [*]%lo:53  =>  53 "),
])
def test_cli_disabled_protocol_refuses_forwarding(argv, message):
    proto = "TCP" if "--no-tcp" in argv else "UDP"
    err = config_error(argv, f"Can't add {proto} forwarding rule, {proto} not enabled")
    assert err.lines[-1] == message


def test_cli_disabled_protocol_accepts_none():
    cfg = parse_args(["--no-tcp", "--no-udp", "-t", "none", "-u", "none", "-T", "none",
                      "-U", "none"])
    assert cfg.no_tcp and cfg.fwd_rules == ()
    # a disabled protocol gets no default `auto` (pasta 2026 would add it and die)
    cfg = parse_args(["--no-tcp"], ephemeral=EPH)
    assert cfg.fwd_rules and {r.proto for r in cfg.fwd_rules} == {UDP}


def test_cli_port_options_accumulate():
    cfg = parse_args(["-t", "80-80:60-60", "--tcp-ports", "100-100:100-100"], ephemeral=EPH)
    assert port_map(cfg, HOST, TCP) == {80: 60, 100: 100}
    assert all(r.flags & FWD_SCAN for r in cfg.fwd_rules if (r.pif, r.proto) != (HOST, TCP))


# --- namespaces: PID, command, --netns -----------------------------------------------------------

def test_cli_pid_form_attaches_to_pid_namespaces():
    cfg = parse_args(["--config-net", "1234"])
    assert cfg.pid_target == 1234 and not cfg.spawn and cfg.command == ()
    assert cfg.netns == "/proc/1234/ns/net" and cfg.userns == "/proc/1234/ns/user"
    assert not cfg.netns_only


def test_cli_pid_form_with_userns_and_netns_only():
    cfg = parse_args(["--userns", "/tmp/u", "1234"])
    assert cfg.userns == "/tmp/u" and cfg.netns == "/proc/1234/ns/net"
    cfg = parse_args(["--netns-only", "1234"])
    assert cfg.userns is None and cfg.netns_only


def test_cli_two_numbers_are_a_command():
    cfg = parse_args(["1234", "5678"])
    assert cfg.pid_target is None and cfg.command == ("1234", "5678") and cfg.spawn


def test_cli_command_form_spawns():
    cfg = parse_args(["--config-net", "sh", "-c", "exit 3"])
    assert cfg.spawn and cfg.command == ("sh", "-c", "exit 3") and cfg.netns is None


@pytest.mark.parametrize("argv", [["--", "-5"], ["99999999999"], ["2147483648"]])
def test_cli_invalid_pid(argv):
    config_error(argv, f"Invalid PID {argv[-1]}")


@pytest.mark.parametrize("argv", [["--netns", "x", "1234"], ["--netns", "x", "sh"],
                                  ["--netns", "x", "--", "sh"]])
def test_cli_netns_with_pid_or_command_refused(argv):
    config_error(argv, "Both --netns and PID or command given")


def test_cli_netns_without_userns_is_netns_only():
    cfg = parse_args(["--netns", "x"])
    assert cfg.netns == "/run/netns/x" and cfg.netns_only and cfg.userns is None
    assert not cfg.spawn and cfg.pid_target is None
    cfg = parse_args(["--netns", "/run/x", "--userns", "/proc/1/ns/user"])
    assert not cfg.netns_only


def test_cli_userns_and_netns_only_last_wins():
    cfg = parse_args(["--userns", "/u", "--netns-only", "--netns", "x"])
    assert cfg.userns is None and cfg.netns_only
    cfg = parse_args(["--netns-only", "--userns", "/u", "--netns", "x"])
    assert cfg.userns == "/u" and not cfg.netns_only


# --- real clients --------------------------------------------------------------------------------

DF = ["--dns-forward", "169.254.1.1"]
MG = ["--map-guest-addr", "169.254.1.2"]
TAIL = ["--no-map-gw", "--quiet", "--netns", "netns123"]

# podman-integration.md 2.7; row 7 (sctp) makes Podman fail before any argv exists, row 9 repeats 8.
PODMAN_ROWS = {
    1: ["--config-net", *DF, "-t", "none", "-u", "none", "-T", "none", "-U", "none", *TAIL, *MG],
    2: ["--config-net", "-t", "80-80:80-80", *DF, "-u", "none", "-T", "none", "-U", "none",
        *TAIL, *MG],
    3: ["--config-net", "-t", "80-82:80-82", *DF, "-u", "none", "-T", "none", "-U", "none",
        *TAIL, *MG],
    4: ["--config-net", "-t", "80-80:60-60", *DF, "-u", "none", "-T", "none", "-U", "none",
        *TAIL, *MG],
    5: ["--config-net", "-t", "80-80:60-60", "-u", "100-100:100-100", *DF, "-T", "none",
        "-U", "none", *TAIL, *MG],
    6: ["--config-net", "-t", "80-80:60-60", "-t", "100-100:100-100", *DF, "-u", "none",
        "-T", "none", "-U", "none", *TAIL, *MG],
    8: ["--config-net", "-i", "eth0", "-n", "24", *DF, "-t", "none", "-u", "none", "-T", "none",
        "-U", "none", *TAIL, *MG],
    9: ["--config-net", "-i", "eth0", "-n", "24", *DF, "-t", "none", "-u", "none", "-T", "none",
        "-U", "none", *TAIL, *MG],
    10: ["--config-net", "-T", "80", *DF, "-t", "none", "-u", "none", "-U", "none", *TAIL, *MG],
    11: ["--config-net", "--tcp-ns", "80", *DF, "-t", "none", "-u", "none", "-U", "none",
         *TAIL, *MG],
    12: ["--config-net", *DF, "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--quiet",
         "--netns", "netns123", *MG],
    13: ["--config-net", "-T", "80", *DF, "-t", "none", "-u", "none", "-U", "none", "--quiet",
         "--netns", "netns123", *MG],
    14: ["--config-net", "-T", "80", *DF, "-t", "none", "-u", "none", "-U", "none", "--quiet",
         "--netns", "netns123", *MG],
    15: ["--config-net", "--dns-forward", "192.168.255.255", "-t", "none", "-u", "none",
         "-T", "none", "-U", "none", *TAIL, *MG],
    16: ["--config-net", "--dns-forward", "192.168.255.255", "--dns-forward", "::1", "-t", "none",
         "-u", "none", "-T", "none", "-U", "none", *TAIL, *MG],
    17: ["--config-net", "-i", "eth0", "-t", "80-80:80-80", *DF, "-u", "none", "-T", "none",
         "-U", "none", *TAIL, *MG],
    18: ["--config-net", "--log-file=/tmp/log", "--trace", "--debug", *DF, "-t", "none",
         "-u", "none", "-T", "none", "-U", "none", "--no-map-gw", "--netns", "netns123", *MG],
    19: ["--config-net", "--map-guest-addr", "192.168.255.255", *DF, "-t", "none", "-u", "none",
         "-T", "none", "-U", "none", *TAIL],
    20: ["--config-net", "--map-guest-addr", "192.168.255.255", "--map-guest-addr", "::1", *DF,
         "-t", "none", "-u", "none", "-T", "none", "-U", "none", *TAIL],
}

# Rows 16 and 20 only test Podman's argv construction: real pasta refuses ::1 for --dns-forward
# ("Invalid DNS forwarding address") and for --map-guest-addr (conf_nat(): "Invalid address to
# remap to host"), because a loopback address cannot be matched on the tap. We refuse them too.
PODMAN_REJECTED = {
    16: "Invalid DNS forwarding address: ::1",
    20: "Invalid address to remap to host: ::1",
}


@pytest.mark.parametrize("row", sorted(PODMAN_ROWS))
def test_cli_podman_argv_rows_parse(row):
    argv = PODMAN_ROWS[row]
    if row in PODMAN_REJECTED:
        config_error(argv, PODMAN_REJECTED[row])
        return
    cfg = parse_args(argv)
    assert cfg.config_net and cfg.netns == "/run/netns/netns123" and cfg.netns_only
    assert not cfg.spawn and cfg.userns is None and not cfg.foreground
    assert cfg.quiet == (row != 18)
    assert cfg.no_map_gw == (row not in (12, 13, 14))
    assert cfg.dns_forward4 == V4("192.168.255.255" if row == 15 else "169.254.1.1")
    assert cfg.map_guest_addr4 == V4("192.168.255.255" if row == 19 else "169.254.1.2")
    assert {"tcp-ports", "udp-ports", "tcp-ns", "udp-ns"} <= cfg.given    # no defaults
    assert not any(r.flags & FWD_SCAN for r in cfg.fwd_rules)


def test_cli_podman_port_rows_map_ports():
    assert port_map(parse_args(PODMAN_ROWS[3]), HOST, TCP) == {80: 80, 81: 81, 82: 82}
    cfg = parse_args(PODMAN_ROWS[5])
    assert port_map(cfg, HOST, TCP) == {80: 60} and port_map(cfg, HOST, UDP) == {100: 100}
    assert port_map(parse_args(PODMAN_ROWS[6]), HOST, TCP) == {80: 60, 100: 100}
    cfg = parse_args(PODMAN_ROWS[10])
    assert rule_texts(cfg) == ["TCP [*]%lo:80  =>  80 "]
    cfg = parse_args(PODMAN_ROWS[8])
    assert (cfg.template_if, cfg.prefix4) == ("eth0", 24)
    cfg = parse_args(PODMAN_ROWS[18])
    assert cfg.log_file == "/tmp/log" and cfg.trace and cfg.debug


def test_cli_podman_4_4_argv_parses():
    argv = ["--config-net", "-t", "192.0.2.10/8080-8080:80-80", "-t", "::1/8443-8443:443-443",
            "--dns-forward", "169.254.0.1", "-u", "none", "-T", "none", "-U", "none",
            "--no-map-gw", "--quiet", "--netns",
            "/run/user/1000/netns/netns-3f1c2a4e-8b7d-4c1e-9a2b-1234567890ab"]
    cfg = parse_args(argv)
    assert cfg.netns.startswith("/run/user/1000/netns/netns-") and cfg.netns_only
    assert cfg.fwd_rules == (
        FwdRule(HOST, TCP, 8080, 8080, 80, V4("192.0.2.10")),
        FwdRule(HOST, TCP, 8443, 8443, 443, V6("::1")),
    )
    assert cfg.dns_forward4 == V4("169.254.0.1") and cfg.quiet and cfg.no_map_gw


ROOTLESSKIT_OPTS = ["--stderr", "--ns-ifname=tap0", "--mtu=65520", "--config-net",
                    "--address=10.0.2.100", "--netmask=24", "--gateway=10.0.2.2",
                    "--dns-forward=10.0.2.3", "--no-map-gw", "--ipv4-only",
                    "--tcp-ports=none", "--udp-ports=none"]


def test_cli_rootlesskit2_pid_argv_parses():
    cfg = parse_args(ROOTLESSKIT_OPTS + ["4242"])
    assert cfg.pid_target == 4242 and cfg.netns == "/proc/4242/ns/net"
    assert cfg.userns == "/proc/4242/ns/user" and not cfg.netns_only
    assert (cfg.ns_ifname, cfg.mtu, cfg.addr4, cfg.prefix4, cfg.gw4) == (
        "tap0", 65520, V4("10.0.2.100"), 24, V4("10.0.2.2"))
    assert cfg.dns_forward4 == V4("10.0.2.3") and cfg.no_map_gw
    assert (cfg.ipv4, cfg.ipv6) == (True, False)
    # -t/-u none; -T/-U not given: `auto`, IPv4 only (--ipv4-only), on interface lo
    assert cfg.fwd_rules and all(r.pif == SPLICE and r.flags == FWD_WEAK | FWD_SCAN
                                 and (r.addr, r.ifname) == (ANY4, "lo") for r in cfg.fwd_rules)
    assert "stderr" in cfg.given


def test_cli_rootlesskit2_userns_netns_argv_parses():
    cfg = parse_args(ROOTLESSKIT_OPTS + ["--userns=/proc/4242/ns/user",
                                         "--netns=/proc/4242/ns/net"])
    assert cfg.userns == "/proc/4242/ns/user" and cfg.netns == "/proc/4242/ns/net"
    assert not cfg.netns_only and cfg.pid_target is None


def test_cli_standalone_spawn_argv_parses():
    cfg = parse_args(["--config-net", "-t", "127.0.0.1/8080:80", "-u", "none", "-T", "8081",
                      "-U", "none", "-q", "-f", "--", "sh", "-c", "exit 3"])
    assert cfg.spawn and cfg.command == ("sh", "-c", "exit 3")
    assert cfg.fwd_rules == (FwdRule(HOST, TCP, 8080, 8080, 80, V4("127.0.0.1")),
                             FwdRule(SPLICE, TCP, 8081, 8081, 8081, ANY6, ifname="lo", flags=DUAL))


# --- main() --------------------------------------------------------------------------------------

def test_cli_main_usage_error_prints_glibc_line_then_usage(capsys):
    assert main(["--bogus"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "pypasta: unrecognized option '--bogus'\n" + usage_text()


def test_cli_main_config_error_is_one_line_without_traceback(capsys):
    assert main(["-m", "70000"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "pypasta: MTU 70000 too large (max 65521)\n")


@pytest.mark.parametrize("argv", [["-d", "-m", "70000"], ["-qd", "-m", "70000"], ["--debug", "-m", "70000"],
                                  ["--trace", "-m", "70000"]])
def test_cli_main_debug_adds_traceback(capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("pypasta: MTU 70000 too large (max 65521)\n")


def test_cli_main_debug_scan_skips_option_values(capsys):
    assert main(["-I", "-d", "-m", "70000"]) == 1      # "-d" is -I's value here
    assert "Traceback" not in capsys.readouterr().err


def test_cli_main_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert capsys.readouterr() == (usage_text(), "")
    assert main(["--version"]) == 0
    assert capsys.readouterr() == (version_text(), "")


@pytest.fixture
def fake_supervisor(monkeypatch):
    mod = types.ModuleType("pasta.setup.supervisor")
    calls = []

    def run(cfg):
        calls.append(cfg)
        return mod.result(cfg)

    mod.run = run
    mod.calls = calls
    mod.result = lambda cfg: 7
    monkeypatch.setitem(sys.modules, "pasta.setup.supervisor", mod)
    return mod


def test_cli_main_hands_config_to_supervisor(fake_supervisor):
    assert main(["--config-net", "-f", "true"]) == 7
    (cfg,) = fake_supervisor.calls
    assert cfg.command == ("true",) and cfg.config_net


def test_cli_main_prints_supervisor_errors(fake_supervisor, capsys):
    def fail(cfg):
        raise SetupError("Couldn't open network namespace /run/netns/x: No such file")
    fake_supervisor.result = fail
    assert main(["--netns", "x"]) == 1
    assert capsys.readouterr().err == \
        "pypasta: Couldn't open network namespace /run/netns/x: No such file\n"


def test_cli_main_keyboard_interrupt_exits_130_quietly(fake_supervisor, capsys):
    def interrupt(cfg):
        raise KeyboardInterrupt
    fake_supervisor.result = interrupt
    assert main(["true"]) == 130
    assert capsys.readouterr() == ("", "")


def test_cli_main_reads_sys_argv(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["pypasta", "--version"])
    assert main() == 0
    assert capsys.readouterr().out == version_text()


# --- python3 -m pasta ----------------------------------------------------------------------------

def run_module(*args):
    return subprocess.run([sys.executable, "-m", "pasta", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=30)


def test_cli_module_unknown_option_exact_line_and_status():
    p = run_module("--bogus")
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == "pypasta: unrecognized option '--bogus'"
    assert "Usage: pypasta" in p.stderr and p.stdout == ""


def test_cli_module_podman_fallback_grep_matches():
    # Podman retries without its default --map-guest-addr when old pasta prints this.
    p = run_module("--map-guest-addrx", "169.254.1.2")
    assert p.returncode == 1 and "unrecognized option '--map-guest-addr" in p.stderr


def test_cli_module_help_exits_0_with_usage_on_stdout():
    p = run_module("--help")
    assert p.returncode == 0 and p.stdout == usage_text() and p.stderr == ""


def test_cli_module_version_prints_version():
    p = run_module("--version")
    assert p.returncode == 0 and p.stdout == version_text()
    assert p.stdout.startswith("pypasta 0.1.0\n")
