"""Tests for pasta.front.conf in passt mode (`parse_args(argv, mode="passt")`, `main_parse`).

First pure unit tests: every option passt mode accepts sets its `Config` field, the passt-mode
defaults, the pasta-only options refused with passt's messages, QEMU's and libvirt's command lines.

Then a differential check against the reference passt 2026 (/opt/passt-2026/passt, built by
tests/install-deps.sh step 7): each command line is given to the real binary with a trailing
non-option argument, SENTINEL, which passt refuses ("Extra non-option argument: SENTINEL") after
every other parse-time check and before it opens a file, binds a socket or forks, so the binary
never starts a daemon. Its stderr (AVX2 and "Started as root" lines left out) is compared with
what `main_parse(argv, mode="passt")` prints, modulo the program name. Command lines that end in
an option missing its argument get no sentinel: getopt refuses them first. `--help`,
`--version` and `--print-capabilities` are compared the same way. A missing reference binary is
a failure, never a skip.
"""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from helpers.env import PASST2026_DIR
from tools.portspec_oracle import NOISE
from test_cli import OPTION_CASES, V4, V6

from pasta.core.fwd_rule import (ANY6, FWD_DUAL_STACK_ANY, IPPROTO_TCP, IPPROTO_UDP, PIF_HOST,
                                 FwdRule, fwd_rule_fmt)
from pasta.front.conf import (CANONICAL, LONG_OPTIONS, PASTA_ONLY, PROGS, USAGE_PYPASTA,
                              ExitRequest, main_parse, parse_args, run_reporting, usage_text,
                              version_text)
from pasta.plan.config import Config
from pasta.util.errors import ConfigError, NotSupportedYet, SetupError

PASST = os.path.join(PASST2026_DIR, "passt")
PROG = PROGS["passt"]
EPH = (32768, 60999)
TCP, UDP, HOST, DUAL = IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, FWD_DUAL_STACK_ANY
SENTINEL = "SENTINEL"
SENTINEL_LINE = f"Extra non-option argument: {SENTINEL}"


def passt(argv):
    return parse_args(argv, ephemeral=EPH, mode="passt")


def passt_error(argv, message, kind=ConfigError):
    with pytest.raises(kind) as e:
        passt(argv)
    assert str(e.value) == message
    return e.value


# --- every option passt mode accepts -----------------------------------------------------------

def key_of(arg):
    """The option key of an option word (`--tcp-ports` and `-t`: "t")."""
    if arg.startswith("--"):
        return next(o.key for o in LONG_OPTIONS if o.name == arg[2:])
    return arg[1]


# The pasta-mode cases whose options passt mode accepts too, with the same result; the port
# options (pasta's cases give -T/-U none) and -S (split in passt mode) are covered below.
SHARED_CASES = [(argv, attr, expected) for argv, attr, expected in OPTION_CASES
                if not any(key_of(a) in PASTA_ONLY or key_of(a) in ("t", "u", "S", "splice-only")
                           for a in argv if a.startswith("-"))]

PASST_CASES = [
    (["-s", "/tmp/p.socket"], "socket_path", "/tmp/p.socket"),
    (["--socket", "/tmp/p.socket"], "socket_path", "/tmp/p.socket"),
    (["--socket-path", "/tmp/p.socket"], "socket_path", "/tmp/p.socket"),
    (["-s", "x" * 107], "socket_path", "x" * 107),
    (["-1"], "one_off", True),
    (["--one-off"], "one_off", True),
    (["-F", "0"], "tap_fd", 0),
    (["--fd", "3"], "one_off", True),
    (["-F", "0x10"], "tap_fd", 16),
    (["-F", "2147483647"], "tap_fd", 2147483647),
    (["-F", "5", "-s", "/tmp/p.socket"], "tap_fd", None),
    (["-F", "5", "-s", "/tmp/p.socket"], "one_off", True),
    (["-s", "/tmp/p.socket", "-F", "5"], "socket_path", None),
    (["--no-dhcp-dns"], "dhcp_dns", False),
    (["--no-dhcp-search"], "dhcp_search", False),
    (["--no-dhcp-dns"], "dhcp_search", True),
    (["-S", "example.com"], "search", ("example.com",)),
    (["--search", "a.example b.example"], "search", ("a.example", "b.example")),
    (["-S", " a  b ", "-S", "c"], "search", ("a", "b", "c")),
    (["-S", "a b", "-S", "none", "-S", "c"], "search", ("c",)),
    (["-S", "none"], "search_none", True),
    (["-t", "80"], "fwd_rules", (FwdRule(HOST, TCP, 80, 80, 80, ANY6, flags=DUAL),)),
    (["--tcp-ports", "none"], "fwd_rules", ()),
    (["-u", "53:5353"], "fwd_rules", (FwdRule(HOST, UDP, 53, 53, 5353, ANY6, flags=DUAL),)),
    (["--udp-ports", "none"], "fwd_rules", ()),
    (["--no-splice"], "no_splice", True),
    (["--repair-path", "none"], "given", frozenset({"repair-path"})),
    (["-n", "[255.255.0.0]"], "prefix4", 16),
]


@pytest.mark.parametrize("argv,attr,expected", SHARED_CASES + PASST_CASES,
                         ids=lambda v: repr(v)[:40])
def test_conf_passt_option_sets_config_field(argv, attr, expected):
    cfg = passt(argv)
    assert getattr(cfg, attr) == expected
    assert cfg.mode == "passt"
    for arg in argv:            # recorded by canonical name in `given`
        if arg.startswith("-") and arg != "-":
            assert CANONICAL[key_of(arg)] in cfg.given


def test_conf_passt_cases_cover_every_option():
    """Every long name and short letter is accepted above, refused below, or tested apart."""
    spelled = {a for argv, _, _ in SHARED_CASES + PASST_CASES for a in argv if a.startswith("-")}
    apart = {"--help", "-h", "--version", "--vhost-user", "--print-capabilities",
             "--splice-only", "--migrate-exit", "--migrate-no-linger"}
    for o in LONG_OPTIONS:
        if o.key in PASTA_ONLY:
            continue
        assert f"--{o.name}" in spelled | apart, o.name
        if len(o.key) == 1:
            assert f"-{o.key}" in spelled | apart, o.key


def test_conf_passt_defaults():
    """No auto forwarding, no splice, DNS and search list advertised, no namespace."""
    cfg = passt([])
    assert cfg == Config(mode="passt", no_splice=True, dhcp_dns=True, dhcp_search=True)
    assert cfg.fwd_rules == () and cfg.given == frozenset()
    assert not cfg.spawn and cfg.command == () and cfg.netns is None and cfg.userns is None
    assert cfg.socket_path is None and cfg.tap_fd is None and not cfg.one_off
    assert parse_args([], ephemeral=EPH).mode == "pasta"


def test_conf_passt_port_rules_go_to_the_host_table_only():
    cfg = passt(["-t", "22,8080:80", "-u", "10.0.0.1/53", "-t", "~1-1000,~1011-65535"])
    assert {r.pif for r in cfg.fwd_rules} == {HOST}
    assert [fwd_rule_fmt(r) for r in cfg.fwd_rules] == [
        "TCP [*]:22  =>  22 ", "TCP [*]:8080  =>  80 ", "UDP [10.0.0.1]:53  =>  53 ",
        "TCP [*]:1001-1010  =>  1001-1010  (best effort)"]


def test_conf_passt_mac_addr_is_our_mac():
    """libvirt 9.0 passes the guest's MAC to --mac-addr: passt (and we) use it as our own."""
    cfg = passt(["--mac-addr", "52:54:00:12:34:56"])
    assert cfg.our_mac == "52:54:00:12:34:56" and cfg.ns_mac is None


@pytest.mark.parametrize("key", sorted(PASTA_ONLY))
def test_conf_passt_pasta_only_options_refused(key):
    opt = next(o for o in LONG_OPTIONS if o.key == key)
    spellings = [f"--{opt.name}"] + ([f"-{key}"] if len(key) == 1 else [])
    for spelled in spellings:
        argv = [spelled] + (["x"] if opt.has_arg else [])
        passt_error(argv, PASTA_ONLY[key])


@pytest.mark.parametrize("argv,message", [
    (["-T", "80"], "-T is for pasta mode only"),
    (["--tcp-ns", "80"], "-T is for pasta mode only"),
    (["--udp-ns", "none"], "-U is for pasta mode only"),
    (["--ns-ifname", "x"], "-I is for pasta mode only"),
    (["--userns", "/proc/1/ns/user"], "--userns is for pasta mode only"),
    (["--netns", "ns1"], "--netns is for pasta mode only"),
    (["--dhcp-dns"], "--dhcp-dns is for pasta mode only"),
    (["--splice-only"], "--splice-only is for pasta mode only"),
    (["--splice-only", "--no-splice"], "--splice-only is for pasta mode only"),
    (["--splice-only", "-T", "1"], "-T is for pasta mode only"),
    (["--repair-path", "/x"], "--repair-path is for vhost-user mode only"),
    (["--migrate-exit"], "--migrate-exit is for vhost-user mode only"),
    (["--migrate-no-linger"], "--migrate-no-linger is for vhost-user mode only"),
    (["x"], "Extra non-option argument: x"),
    (["-1", "--", "qemu"], "Extra non-option argument: qemu"),
    (["1234"], "Extra non-option argument: 1234"),
    (["-t", "auto"], "'auto' port forwarding is only allowed for pasta"),
    (["-u", "53,auto"], "'auto' port forwarding is only allowed for pasta"),
    (["-t", "70000", "x"], "Invalid port specifier '70000'"),
    (["-F", "1"], "Invalid --fd: 1"),
    (["-F", "2"], "Invalid --fd: 2"),
    (["-F", "-3"], "Invalid --fd: -3"),
    (["-F", "2147483648"], "Invalid --fd: 2147483648"),
    (["-s", ""], "Invalid socket path: "),
    (["-s", "x" * 108], "Invalid socket path: " + "x" * 108),
    (["-s", "\u00e9" * 54], "Invalid socket path: " + "\u00e9" * 54),     # 108 bytes
    (["-S", ""], "Cannot use DNS search domain "),
    (["-S", "   "], "Cannot use DNS search domain "),
    (["-S", "a b c d e f g"], "Cannot use DNS search domain g"),
    (["-S", "a", "-S", "b c d e f g"], "Cannot use DNS search domain g"),
    (["-S", "ok " + "x" * 1025], "Cannot use DNS search domain " + "x" * 1025),
])
def test_conf_passt_refusals(argv, message):
    passt_error(argv, message)


def test_conf_passt_vhost_user_not_supported_yet():
    e = passt_error(["--vhost-user", "-s", "/tmp/vu"], "not supported yet: --vhost-user ("
                    "pypasta-passt has no vhost-user mode; use its stream socket, -s PATH or "
                    "--fd N (QEMU -netdev stream, or -netdev passt with vhost-user=off))",
                    NotSupportedYet)
    assert e.option == "--vhost-user"


def test_conf_passt_help_version_and_capabilities():
    with pytest.raises(ExitRequest) as e:
        passt(["-t", "80", "--help", "--bogus"])
    assert (e.value.code, e.value.stream, e.value.text) == (0, "stdout", usage_text("passt"))
    assert usage_text("passt").startswith(f"Usage: {PROG} [OPTION]...\n\n")
    assert "-T, --tcp-ns" not in usage_text("passt") and "default: none" in usage_text("passt")
    with pytest.raises(ExitRequest) as e:
        passt(["--version"])
    assert e.value.text == version_text("passt") and e.value.text.startswith(f"{PROG} ")
    with pytest.raises(ExitRequest) as e:
        passt(["--print-capabilities"])
    assert (e.value.code, e.value.stream, e.value.text) == (0, "stderr",
                                                            '{\n  "type": "net"\n}\n')


def test_conf_passt_main_parse_prints_with_the_passt_program_name():
    out, err = io.StringIO(), io.StringIO()
    assert main_parse(["-T", "1"], "passt", stdout=out, stderr=err) == 1
    assert (out.getvalue(), err.getvalue()) == ("", f"{PROG}: -T is for pasta mode only\n")
    err = io.StringIO()
    assert main_parse(["--bogus"], "passt", stderr=err) == 1
    assert err.getvalue() == f"{PROG}: unrecognized option '--bogus'\n" + usage_text("passt")
    cfg = main_parse(["-1"], "passt", stdout=out, stderr=err, ephemeral=EPH)
    assert isinstance(cfg, Config) and cfg.one_off


def test_conf_passt_run_reporting_uses_the_passt_name(capsys):
    def fail():
        raise SetupError("no tap")

    def bug():
        raise ValueError("x")
    assert run_reporting(fail, [], "passt") == 1
    assert run_reporting(bug, ["-1"], "passt") == 1
    assert run_reporting(lambda: 0, [], "passt") == 0
    assert capsys.readouterr().err == (f"{PROG}: no tap\n{PROG}: internal error: ValueError: x "
                                       "(run with --debug for details)\n")
    with pytest.raises(ValueError):
        run_reporting(bug, ["-d"], "passt")


# --- what QEMU and libvirt pass (passt-mode.md section 5) ----------------------------------------

QEMU_10_1 = ["--quiet", "--mtu", "1500", "--address", "10.0.2.15", "--netmask", "255.255.255.0",
             "--mac-addr", "52:54:00:12:34:56", "--gateway", "10.0.2.2", "--outbound",
             "192.0.2.7", "--dns", "10.0.2.3", "--fqdn", "vm.example.org", "--no-dhcp-search",
             "--map-host-loopback", "10.0.2.2", "--map-guest-addr", "10.0.2.4", "--dns-forward",
             "10.0.2.3", "--dns-host", "127.0.0.53", "--no-icmp", "--freebind", "--ipv4-only",
             "--search", "a.example b.example", "--tcp-ports", "2222:22,8080",
             "--udp-ports", "5353", "--pid", "/tmp/passt-XYZ.pid", "--fd", "3"]
LIBVIRT_9_0 = ["--one-off", "--socket", "/run/user/1000/libvirt/qemu/run/passt/1-vm-net0.socket",
               "--mac-addr", "52:54:00:12:34:56", "--mtu", "9000", "--address", "10.0.2.15",
               "--netmask", "24", "--tcp-ports", "18080,18081", "--udp-ports", "18082"]
LIBVIRT_NEW = ["--one-off", "--socket", "/run/libvirt/qemu/passt/1-vm-net0.socket", "--pid",
               "/run/libvirt/qemu/passt/1-vm-net0-passt.pid", "--hostname", "vm", "--fqdn",
               "vm.example.org", "--address", "2001:db8::15", "--tcp-ports",
               "192.0.2.1%lo/2222:22", "--udp-ports", "~1-1000"]


def test_conf_passt_qemu_10_1_argv():
    cfg = passt(QEMU_10_1)
    assert cfg.quiet and cfg.mtu == 1500 and cfg.prefix4 == 24 and cfg.tap_fd == 3
    assert cfg.one_off and cfg.socket_path is None and cfg.pid_file == "/tmp/passt-XYZ.pid"
    assert cfg.search == ("a.example", "b.example") and cfg.dhcp_dns and not cfg.dhcp_search
    assert cfg.our_mac == "52:54:00:12:34:56" and cfg.fqdn == "vm.example.org"
    assert cfg.dns == (V4("10.0.2.3"),) and cfg.dns_host4 == V4("127.0.0.53")
    assert not cfg.ipv6 and cfg.no_icmp and cfg.no_ndp
    assert [fwd_rule_fmt(r) for r in cfg.fwd_rules] == [
        "TCP [0.0.0.0]:2222  =>  22 ", "TCP [0.0.0.0]:8080  =>  8080 ",
        "UDP [0.0.0.0]:5353  =>  5353 "]


def test_conf_passt_libvirt_argvs():
    cfg = passt(LIBVIRT_9_0)
    assert cfg.one_off and cfg.socket_path.endswith("1-vm-net0.socket") and cfg.mtu == 9000
    assert cfg.addr4 == V4("10.0.2.15") and len(cfg.fwd_rules) == 3
    cfg = passt(LIBVIRT_NEW)
    assert cfg.hostname == "vm" and cfg.addr6 == V6("2001:db8::15")
    assert [fwd_rule_fmt(r) for r in cfg.fwd_rules] == [
        "TCP [192.0.2.1]%lo:2222  =>  22 ",
        "UDP [*]:1001-32767  =>  1001-32767  (best effort)",
        "UDP [*]:61000-65535  =>  61000-65535  (best effort)"]


# --- differential check against the real passt 2026 ----------------------------------------------

def real_passt() -> str:
    if not os.access(PASST, os.X_OK):
        pytest.fail(f"{PASST} is missing: run tests/install-deps.sh as root (step 7 builds the "
                    "reference passt 2026)", pytrace=False)
    return PASST


def run_real(argv, cwd) -> tuple:
    """(exit status, stdout, stderr lines without passt's start-up noise) of the real passt."""
    r = subprocess.run([real_passt(), *argv], capture_output=True, text=True, timeout=20,
                       cwd=cwd, stdin=subprocess.DEVNULL, env={"LC_ALL": "C"})
    err = [line for line in r.stderr.splitlines() if not any(n in line for n in NOISE)]
    return r.returncode, r.stdout.replace(PASST, PROG), [line.replace(PASST, PROG) for line in err]


def run_ours(argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    res = main_parse(argv, "passt", stdout=out, stderr=err)
    code = res if isinstance(res, int) else 0
    text = err.getvalue().replace(USAGE_PYPASTA, "")      # our own option's usage lines
    return code, out.getvalue().replace(USAGE_PYPASTA, ""), text.splitlines()


LONG = "x" * 254            # too long for -H and --fqdn, not for -S (1024 bytes)

# Command lines passt refuses while parsing; each gets SENTINEL appended unless it ends in an
# option that lacks its argument (NOSENTINEL).
REFUSED = [
    ["-T", "80"], ["--tcp-ns", "80"], ["-U", "none"], ["--udp-ns=1"], ["-I", "eth0"],
    ["--ns-ifname", "tap0"], ["--userns", "/proc/1/ns/user"], ["--netns", "ns1"],
    ["--netns-only"], ["--ns-mac-addr", "02:00:00:00:00:02"], ["--dhcp-dns"], ["--dhcp-search"],
    ["--no-netns-quit"], ["--config-net"], ["--no-copy-routes"], ["--no-copy-addrs"],
    ["--host-lo-to-ns-lo"], ["--splice-only"], ["--splice-only", "-t", "70000"],
    ["-t", "80", "--splice-only", "-T", "5"], ["--repair-path", "/tmp/r"], ["--migrate-exit"],
    ["--migrate-no-linger"], ["extra"], ["-t", "80", "extra"], ["--", "extra"], ["-1", "4242"],
    ["-t", "70000", "extra"],
    ["-F", "1"], ["-F", "2"], ["--fd", "-1"], ["-F", "x"], ["-F", "2147483648"], ["-F", ""],
    ["-s", ""], ["--socket", "x" * 108], ["--socket-path", ""], ["-s", "/tmp/s", "-F", "1"],
    ["-t", "auto"], ["-u", "auto"], ["-t", "80,auto"], ["-t", "::1/auto"], ["-t", "70000"],
    ["-t", "80", "-t", "80"], ["-t", "80", "-u", "80", "-t", "79-81"], ["--no-tcp", "-t", "80"],
    ["-u", "53", "--no-udp"], ["-t", "~"], ["-t", "x"], ["-4", "-t", "::1/80"],
    ["-6", "-u", "127.0.0.1/53"], ["-t", "80:90-91"], ["-t", "1-5:10"],
    ["-m", "65522"], ["-m", "x"], ["-a", "127.0.0.1"], ["-a", "10.0.0.1/33"], ["-n", "33"],
    ["-a", "10.0.0.1/8", "-n", "8"], ["-M", "00:11"], ["--mac-addr", "zz:zz:zz:zz:zz:zz"],
    ["-g", "0.0.0.0"], ["-o", "::1"], ["-D", "x"], ["-S", ""], ["-S", "x" * 1025],
    ["--dns-forward", "127.0.0.1"], ["--dns-host", "0.0.0.0"], ["--map-host-loopback", "::1"],
    ["--map-guest-addr", "224.0.0.1"], ["--log-size", "1"], ["-p", ""], ["-P", ""],
    ["--runas", "no-such-user-pypasta"], ["--stats", "1"], ["-c", ""], ["-H", LONG],
    ["--fqdn", LONG], ["--outbound-if4", ""], ["--outbound-if6", "x" * 16],
    ["-S", "a", "-S", "b", "-S", "c", "-S", "d", "-S", "e", "-S", "f", "-S", "g"],
    # getopt
    ["--bogus"], ["-Z"], ["--one-off=1"], ["--no-dhcp-dns=x"], ["--no-d", "x"], ["--ipv", "1"],
    ["-4", "-x", "-t", "80"],
]
NOSENTINEL = [["-s"], ["--fd"], ["--netmask"], ["-t", "80", "-u"], ["--socket-path"]]

# Command lines passt accepts: with SENTINEL both must get as far as the extra argument.
ACCEPTED = [QEMU_10_1, LIBVIRT_9_0, LIBVIRT_NEW, ["-1", "-s", "/tmp/x.socket", "-P", "/tmp/x"],
            ["--fd=7", "-s", "/tmp/x.socket"], ["--so", "/tmp/x.socket"], ["-S", LONG],
            ["--no-dhcp-dns", "--no-dhcp-search", "-S", "none", "-D", "none"],
            ["-t", "all", "-u", "~53"], ["-t", "none", "-u", "none"], ["--no-splice"],
            ["--repair-path", "none"], ["-f", "--stats", "5"], ["-c", "/tmp/x.conf"],
            ["-H", "vm", "--fqdn", "vm.example"], ["-e", "-m", "60"], ["-n", "[255.255.0.0]"]]


def ids(v):
    return " ".join(v)[:50]


@pytest.mark.parametrize("argv", [a + [SENTINEL] for a in REFUSED] + NOSENTINEL, ids=ids)
def test_conf_passt_refusals_match_the_real_passt(argv, tmp_path):
    real_code, real_out, real_err = run_real(argv, tmp_path)
    code, out, err = run_ours(argv)
    assert err and err[0] != f"{PROG}: {SENTINEL_LINE}", "our parser accepted it"
    assert (code, out) == (real_code, real_out) == (1, "")
    # passt follows a refused rule with "Unable to add rule R", which we keep in FwdRuleError
    real_err = [line for line in real_err if not line.startswith("Unable to add rule ")]
    if real_err and not real_err[0].startswith(f"{PROG}: "):     # die(): no program name
        real_err[0] = f"{PROG}: {real_err[0]}"
    assert err == real_err


@pytest.mark.parametrize("argv", ACCEPTED, ids=ids)
def test_conf_passt_accepted_lines_match_the_real_passt(argv, tmp_path):
    cfg = passt(argv)
    real_code, real_out, real_err = run_real(argv + [SENTINEL], tmp_path)
    assert (real_code, real_out) == (1, "")
    assert real_err == list(cfg.warnings) + [SENTINEL_LINE]
    code, _, err = run_ours(argv + [SENTINEL])
    assert (code, err) == (1, [f"{PROG}: {SENTINEL_LINE}"])


def test_conf_passt_fd_0_is_accepted_like_the_real_passt(tmp_path):
    """passt takes -F 0, but its close_open_files() then closes fds 1.. (the range above the
    --fd), its stderr included: the sentinel's message is lost, only the status is left."""
    assert passt(["-F", "0"]).tap_fd == 0
    assert run_real(["-F", "0", SENTINEL], tmp_path) == (1, "", [])
    assert run_ours(["-F", "0", SENTINEL]) == (1, "", [f"{PROG}: {SENTINEL_LINE}"])


def test_conf_passt_help_matches_the_real_passt(tmp_path):
    real = run_real(["--help"], tmp_path)
    assert run_ours(["--help"]) == real
    assert real[0] == 0 and real[1].startswith(f"Usage: {PROG} [OPTION]...\n")
    assert run_ours(["-t", "80", "-h", "--bogus"]) == run_real(["-t", "80", "-h", "--bogus"],
                                                               tmp_path)


def test_conf_passt_print_capabilities_matches_the_real_passt(tmp_path):
    real = run_real(["--print-capabilities"], tmp_path)
    assert run_ours(["--print-capabilities"]) == real == (0, "", ["{", '  "type": "net"', "}"])


def test_conf_passt_version_names_the_program_like_the_real_passt(tmp_path):
    code, out, err = run_real(["--version"], tmp_path)
    ours = run_ours(["--version"])
    assert (code, err) == (ours[0], ours[2]) == (0, [])
    assert out.split()[0] == "passt" and ours[1].split()[0] == PROG
    assert "General Public License, version 2 or later" in out
    assert "General Public License, version 2 or later" in ours[1]
