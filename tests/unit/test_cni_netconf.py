"""Tests for cni.netconf: the CNI_* environment, the network configuration on stdin, and the
pypasta command line made from it.

Every accepted configuration is also rendered with `pasta_args` and parsed by the real
`pasta.front.conf.parse_args`, so the options used exist and mean what the plugin intends.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cni import CniError, ErrorCode
from cni.netconf import (ENV_VARS, REQUIRED_ENV, Attachment, CniEnv,
                         NetConf, PortMapping, decode, ifname_problem, parse_env,
                         parse_netconf, pasta_args, path_problem, port_specs, result_dns,
                         runtime_dir, stale_attachments, state_key)
from cni.result import DNS, IPConfig, Interface, Result, Route
from cni.version import SUPPORTED_VERSIONS, Command
from pasta.front.conf import parse_args
from pasta.plan.config import MTU_DEFAULT
from pasta.util.errors import ConfigError
from pasta.core.fwd_rule import FWD_DUAL_STACK_ANY, IPPROTO_TCP, IPPROTO_UDP, PIF_HOST

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
IF = ipaddress.ip_interface
NETNS = "/run/netns/t1"
CID = "f" * 64

E1 = ErrorCode.INCOMPATIBLE_CNI_VERSION
E2 = ErrorCode.UNSUPPORTED_FIELD
E4 = ErrorCode.INVALID_ENVIRONMENT_VARIABLES
E6 = ErrorCode.DECODING_FAILURE
E7 = ErrorCode.INVALID_NETWORK_CONFIG


def one_line(err: CniError) -> CniError:
    """Assert the STYLE.md B6 promise: a single printable line (msg and details)."""
    for text in (err.msg, err.details):
        assert text.isprintable(), repr(text)
    assert err.msg
    return err


def raises(code: int, fn, *args) -> CniError:
    with pytest.raises(CniError) as e:
        fn(*args)
    assert e.value.code == code, (e.value.code, e.value.msg, e.value.details)
    return one_line(e.value)


# --- environment ---------------------------------------------------------------------------------

def env(command: str, **extra) -> dict:
    """A complete libcni-style environment (libcni sets all six, empty where not applicable)."""
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": CID, "CNI_NETNS": NETNS,
            "CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
            "CNI_PATH": "/opt/cni/bin:/usr/lib/cni", "PATH": "/usr/bin", "HOME": "/root"}
    base.update(extra)
    return base


@pytest.mark.parametrize("command", [c.value for c in Command])
def test_env_complete_for_every_command(command):
    e = parse_env(env(command))
    assert e == CniEnv(Command(command), CID, NETNS, "eth0",
                       () if command == "VERSION" else
                       (("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
                       ("/opt/cni/bin", "/usr/lib/cni"), False)


# Minimal environments: only what the spec requires for each command.
MINIMAL = [
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/n", "CNI_IFNAME": "e"},
     CniEnv(Command.ADD, "c", "/n", "e")),
    ({"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "c", "CNI_NETNS": "/n", "CNI_IFNAME": "e"},
     CniEnv(Command.CHECK, "c", "/n", "e")),
    ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "e"},
     CniEnv(Command.DEL, "c", "", "e")),
    ({"CNI_COMMAND": "GC", "CNI_PATH": "/p"}, CniEnv(Command.GC, path=("/p",))),
    ({"CNI_COMMAND": "STATUS"}, CniEnv(Command.STATUS)),
    ({"CNI_COMMAND": "VERSION"}, CniEnv(Command.VERSION)),
    # podman's VERSION probe: dummies are not validated
    ({"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "", "CNI_NETNS": "dummy",
      "CNI_IFNAME": "dummy", "CNI_PATH": "dummy", "CNI_ARGS": "no pairs here"},
     CniEnv(Command.VERSION, "", "dummy", "dummy", (), ("dummy",))),
    # DEL: netns optional and, when given, not checked (best effort)
    ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "e", "CNI_NETNS": "gone"},
     CniEnv(Command.DEL, "c", "gone", "e")),
    # GC/STATUS: unrequired variables kept as given, not validated
    ({"CNI_COMMAND": "STATUS", "CNI_IFNAME": "not/valid", "CNI_CONTAINERID": "-x"},
     CniEnv(Command.STATUS, "-x", "", "not/valid")),
]


@pytest.mark.parametrize("environ,expected", MINIMAL)
def test_env_minimal_per_command(environ, expected):
    assert parse_env(environ) == expected


def test_env_required_table_is_the_spec_table():
    assert REQUIRED_ENV == {
        Command.ADD: ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        Command.CHECK: ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        Command.DEL: ("CNI_CONTAINERID", "CNI_IFNAME"),
        Command.GC: ("CNI_PATH",),
        Command.STATUS: (),
        Command.VERSION: ()}
    assert ENV_VARS == ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
                        "CNI_ARGS", "CNI_PATH")


MISSING = [
    ({}, "required env variables [CNI_COMMAND] missing"),
    ({"CNI_COMMAND": ""}, "required env variables [CNI_COMMAND] missing"),
    ({"CNI_COMMAND": "ADD"},
     "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"),
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "e", "CNI_NETNS": ""},
     "required env variables [CNI_NETNS] missing"),
    ({"CNI_COMMAND": "CHECK", "CNI_NETNS": "/n"},
     "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing"),
    ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c"}, "required env variables [CNI_IFNAME] missing"),
    ({"CNI_COMMAND": "DEL", "CNI_IFNAME": "e"}, "required env variables [CNI_CONTAINERID] missing"),
    ({"CNI_COMMAND": "GC"}, "required env variables [CNI_PATH] missing"),
    ({"CNI_COMMAND": "GC", "CNI_PATH": ""}, "required env variables [CNI_PATH] missing"),
]


@pytest.mark.parametrize("environ,message", MISSING)
def test_env_missing_variables_are_code_4_and_named(environ, message):
    err = raises(E4, parse_env, environ)
    assert err.msg == message
    if environ.get("CNI_COMMAND"):
        assert err.details.startswith(f"CNI_COMMAND={environ['CNI_COMMAND']} needs ")


@pytest.mark.parametrize("command", ["add", "Add", "DELETE", "INIT", " ADD", "ADD\n", "\x1b"])
def test_env_unknown_command_is_code_4(command):
    err = raises(E4, parse_env, env(command))
    assert err.msg.startswith("unknown CNI_COMMAND: ")
    assert "ADD, DEL, CHECK, STATUS, GC, VERSION" in err.details


@pytest.mark.parametrize("cid", ["a", "0", "A-b_c.d", CID, "cnitool-" + "ab" * 10, "x" * 1000])
def test_env_container_id_valid(cid):
    assert parse_env(env("ADD", CNI_CONTAINERID=cid)).container_id == cid


@pytest.mark.parametrize("cid", ["-a", "_a", ".a", "a b", "a/b", "a:b", "ä", "a\n", "a\x00b",
                                 "a;b", "١"])
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_env_container_id_invalid_is_code_4(cid, command):
    err = raises(E4, parse_env, env(command, CNI_CONTAINERID=cid))
    assert err.msg.startswith("invalid characters in CNI_CONTAINERID ")


@pytest.mark.parametrize("ifname", ["eth0", "e", "a" * 15, "net-1.2_x", "é" * 7, "tap@x"])
def test_env_ifname_valid(ifname):
    assert parse_env(env("ADD", CNI_IFNAME=ifname)).ifname == ifname


@pytest.mark.parametrize("ifname,problem", [
    ("a" * 16, "interface name is too long (at most 15 bytes)"),
    ("é" * 8, "interface name is too long (at most 15 bytes)"),
    (".", "interface name is . or .."),
    ("..", "interface name is . or .."),
    ("a/b", "interface name contains / or : or whitespace characters"),
    ("a:b", "interface name contains / or : or whitespace characters"),
    ("a b", "interface name contains / or : or whitespace characters"),
    ("a\tb", "interface name contains / or : or whitespace characters"),
    ("eth0\n", "interface name contains / or : or whitespace characters"),
    ("a\u00a0b", "interface name contains / or : or whitespace characters"),
])
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_env_ifname_invalid_is_code_4(ifname, problem, command):
    err = raises(E4, parse_env, env(command, CNI_IFNAME=ifname))
    assert err.msg.startswith("invalid CNI_IFNAME ")
    assert err.msg.endswith(problem)


def test_env_ifname_problem_empty():
    assert ifname_problem("") == "interface name is empty"


@pytest.mark.parametrize("netns,problem", [
    ("t1", "must be an absolute path"),
    ("run/netns/t1", "must be an absolute path"),
    ("dummy", "must be an absolute path"),
    ("/a\0b", "must not contain NUL"),
    ("/" + "a" * 4095, "must be shorter than 4096 bytes"),
])
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_env_netns_invalid_is_code_4(netns, problem, command):
    err = raises(E4, parse_env, env(command, CNI_NETNS=netns))
    assert err.msg.startswith("invalid CNI_NETNS ") and err.msg.endswith(problem)


def test_env_netns_paths_accepted():
    assert path_problem("/" + "a" * 4094) is None
    assert parse_env(env("ADD", CNI_NETNS="/run/user/1001/netns/netns-1")).netns == \
        "/run/user/1001/netns/netns-1"


@pytest.mark.parametrize("args,expected", [
    ("", ()),
    ("IgnoreUnknown=1", (("IgnoreUnknown", "1"),)),
    ("A=1;B=2", (("A", "1"), ("B", "2"))),
    ("A=1;;B=2;", (("A", "1"), ("B", "2"))),         # empty segments skipped
    ("A=", (("A", ""),)),
    ("A=b=c", (("A", "b=c"),)),
    ("A=1;A=2", (("A", "1"), ("A", "2"))),
])
def test_env_cni_args(args, expected):
    e = parse_env(env("ADD", CNI_ARGS=args))
    assert e.args == expected
    if expected:
        assert e.arg(expected[-1][0]) == expected[-1][1]
    assert e.arg("nope") is None


@pytest.mark.parametrize("args", ["A", "A=1;B", "=1", "A=1;=2", "no pairs"])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_env_cni_args_malformed_is_code_4(args, command):
    err = raises(E4, parse_env, env(command, CNI_ARGS=args))
    assert err.msg.startswith("invalid CNI_ARGS pair ")


@pytest.mark.parametrize("path,expected", [
    ("", ()), ("/a", ("/a",)), ("/a::/b:", ("/a", "/b")), (":", ())])
def test_env_cni_path(path, expected):
    assert parse_env(env("ADD", CNI_PATH=path)).path == expected


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("", False),
                                            ("0", False), ("yes", False), ("TRUE", False)])
def test_env_netns_override(value, expected):
    assert parse_env(env("ADD", CNI_NETNS_OVERRIDE=value)).netns_override is expected


def test_env_long_values_are_cut_in_messages():
    err = raises(E4, parse_env, env("ADD", CNI_CONTAINERID="-" + "x" * 10000))
    assert len(err.msg) < 120


ENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "CNI_COMMAND": st.sampled_from([c.value for c in Command]) | ENV_TEXT,
    "CNI_CONTAINERID": ENV_TEXT, "CNI_NETNS": ENV_TEXT, "CNI_IFNAME": ENV_TEXT,
    "CNI_ARGS": ENV_TEXT, "CNI_PATH": ENV_TEXT, "CNI_NETNS_OVERRIDE": ENV_TEXT}))
def test_env_any_environment_gives_env_or_code_4(environ):
    try:
        e = parse_env(environ)
    except CniError as err:
        assert err.code == E4
        one_line(err)
        return
    for var in REQUIRED_ENV[e.command]:
        assert environ[var]
    if e.command in (Command.ADD, Command.CHECK, Command.DEL):
        assert ifname_problem(e.ifname) is None


# --- stdin decoding (code 6) ---------------------------------------------------------------------

@pytest.mark.parametrize("stdin,details", [
    (b"", "stdin is not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"   ", "stdin is not JSON: Expecting value"),
    (b"{", "stdin is not JSON: Expecting property name"),
    (b'{"name": "n",}', "stdin is not JSON"),
    (b'{"name": "n"} x', "stdin is not JSON: Extra data"),
    (b"\xff{}", "stdin is not UTF-8 (bad byte at offset 0)"),
    (b'{"name": "\xc3"}', "stdin is not UTF-8 (bad byte at offset 10)"),
    (b"\xef\xbb\xbf{}", "stdin is not JSON"),                      # a BOM, as Go refuses
    (b'{"mtu": NaN}', "stdin is not JSON: NaN is not JSON"),
    (b'{"mtu": -Infinity}', "stdin is not JSON: -Infinity is not JSON"),
    (b"[" * 200000 + b"]" * 200000, "stdin JSON is nested too deeply"),
    (b"[]", "stdin must be a JSON object, got []"),
    (b"null", "stdin must be a JSON object, got null"),
    (b'"x"', 'stdin must be a JSON object, got "x"'),
    (b"5", "stdin must be a JSON object, got 5"),
])
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC", "STATUS"])
def test_netconf_undecodable_is_code_6(stdin, details, command):
    err = raises(E6, parse_netconf, stdin, Command(command))
    assert err.msg == "error unmarshall network config"
    assert err.details.startswith(details), err.details


def test_netconf_accepts_text_as_well_as_bytes():
    assert decode('{"a": 1}') == {"a": 1}
    assert parse_netconf(json.dumps(conf()), Command.ADD).name == "pypasta-net"


# --- name and version (codes 7 and 1) ------------------------------------------------------------

def conf(version: str = "1.1.0", **keys) -> dict:
    base = {"cniVersion": version, "name": "pypasta-net", "type": "pypasta"}
    base.update(keys)
    return base


def parse(obj, command=Command.ADD) -> NetConf:
    return parse_netconf(json.dumps(obj).encode(), command)


def fails(code, obj, command=Command.ADD) -> CniError:
    return raises(code, parse, obj, command)


@pytest.mark.parametrize("name,message", [
    (None, "missing network name"),
    ("", "missing network name"),
    (5, "name: expected a string, got 5"),
    (["n"], 'name: expected a string, got ["n"]'),
    ("a b", 'invalid characters found in network name "a b"'),
    ("-net", 'invalid characters found in network name "-net"'),
    ("net/1", 'invalid characters found in network name "net/1"'),
    ("net\n", 'invalid characters found in network name "net\\n"'),
])
@pytest.mark.parametrize("command", list(Command))
def test_netconf_bad_name_is_code_7(name, message, command):
    obj = conf()
    if name is None:
        del obj["name"]
    else:
        obj["name"] = name
    assert fails(E7, obj, command).msg == message


def test_netconf_name_checked_before_version():
    assert fails(E7, {"cniVersion": "0.2.0"}).msg == "missing network name"


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_netconf_every_supported_version_for_add_and_del(version):
    for command in (Command.ADD, Command.DEL):
        assert parse(conf(version), command).cni_version == version


@pytest.mark.parametrize("version,details", [
    (None, 'config is "0.1.0"'),            # missing: libcni's 0.1.0
    ("", 'config is "0.1.0"'),
    ("0.1.0", 'config is "0.1.0"'),
    ("0.2.0", 'config is "0.2.0"'),
    ("1.0", 'config is "1.0"'),
    ("1.2.0", 'config is "1.2.0"'),
    ("2.0.0", 'config is "2.0.0"'),
])
@pytest.mark.parametrize("command", [Command.ADD, Command.DEL])
def test_netconf_incompatible_version_is_code_1(version, details, command):
    obj = conf()
    if version is None:
        del obj["cniVersion"]
    else:
        obj["cniVersion"] = version
    err = fails(E1, obj, command)
    assert err.msg == "incompatible CNI versions"
    assert err.details == details + ', plugin supports ["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]'


def test_netconf_version_of_wrong_type_is_code_7():
    assert fails(E7, conf(1.0)).msg == "cniVersion: expected a string, got 1.0"


@pytest.mark.parametrize("version,command,ok", [
    ("0.3.0", Command.CHECK, False), ("0.3.1", Command.CHECK, False),
    ("0.4.0", Command.CHECK, True), ("1.0.0", Command.CHECK, True),
    ("1.0.0", Command.GC, False), ("1.1.0", Command.GC, True),
    ("1.0.0", Command.STATUS, False), ("1.1.0", Command.STATUS, True),
    ("0.4.0", Command.STATUS, False), ("0.3.1", Command.GC, False),
])
def test_netconf_command_needs_version(version, command, ok):
    obj = conf(version, prevResult={"cniVersion": version})
    if ok:
        assert parse(obj, command).cni_version == version
    else:
        err = fails(E1, obj, command)
        assert err.msg == f"config version does not allow {command.value}"


# --- plugin keys: accepted ------------------------------------------------------------------------

DEFAULTS = NetConf(cni_version="1.1.0", name="pypasta-net", type="pypasta")


def cfg_of(c: NetConf, **kw):
    """pasta's Config for this NetConf, through the real pasta command-line parser."""
    return parse_args(pasta_args(c, NETNS, "eth0", **kw))


def test_netconf_defaults_copy_the_host():
    c = parse(conf())
    assert c == DEFAULTS
    assert c.mtu == MTU_DEFAULT == 65520
    assert pasta_args(c, NETNS, "eth0") == [
        "--config-net", f"--netns={NETNS}", "--ns-ifname=eth0", "--mtu=65520", "--quiet",
        "--dns-forward=169.254.1.1", "--tcp-ports=none", "--udp-ports=none", "--tcp-ns=none",
        "--udp-ns=none"]
    cfg = cfg_of(c)
    assert (cfg.config_net, cfg.netns, cfg.netns_only, cfg.ns_ifname, cfg.mtu) == \
        (True, NETNS, True, "eth0", 65520)
    assert (cfg.addr4, cfg.prefix4, cfg.gw4, cfg.addr6, cfg.gw6) == (None,) * 5
    assert (cfg.ipv4, cfg.ipv6, cfg.no_map_gw, cfg.quiet, cfg.debug) == \
        (True, True, False, True, False)
    assert cfg.dns_forward4 == V4("169.254.1.1") and cfg.dns_forward6 is None
    assert cfg.fwd_rules == ()          # every port option is `none`: no default `auto`
    assert not cfg.spawn and cfg.command == () and cfg.pid_target is None


# (extra keys, expected NetConf fields, expected pasta Config fields)
ACCEPTED = [
    ({"address": "10.0.2.100"}, {"address": V4("10.0.2.100")},
     {"addr4": V4("10.0.2.100"), "prefix4": None}),
    ({"address": "10.0.2.100/24"}, {"address": V4("10.0.2.100"), "prefix_len": 24},
     {"addr4": V4("10.0.2.100"), "prefix4": 24}),
    ({"address": "10.0.2.100/24", "prefixLen": 24},
     {"address": V4("10.0.2.100"), "prefix_len": 24}, {"prefix4": 24}),
    ({"address": "10.0.2.100/32"}, {"address": V4("10.0.2.100"), "prefix_len": 32},
     {"prefix4": 32}),
    ({"prefixLen": 16}, {"prefix_len": 16, "address": None}, {"prefix4": 16, "addr4": None}),
    ({"prefixLen": 1}, {"prefix_len": 1}, {"prefix4": 1}),
    ({"gateway": "10.0.2.2"}, {"gateway": V4("10.0.2.2")}, {"gw4": V4("10.0.2.2")}),
    ({"address": "192.0.2.200", "gateway": "198.51.100.1"},
     {"address": V4("192.0.2.200"), "gateway": V4("198.51.100.1")},
     {"addr4": V4("192.0.2.200"), "gw4": V4("198.51.100.1")}),
    ({"address6": "2001:db8::2"}, {"address6": V6("2001:db8::2")}, {"addr6": V6("2001:db8::2")}),
    ({"address6": "2001:db8::2/64"}, {"address6": V6("2001:db8::2")},
     {"addr6": V6("2001:db8::2")}),
    ({"address6": "fe80::5"}, {"address6": V6("fe80::5")}, {"addr6": V6("fe80::5")}),
    ({"gateway6": "fe80::1"}, {"gateway6": V6("fe80::1")}, {"gw6": V6("fe80::1")}),
    ({"address": "10.0.2.100/24", "gateway": "10.0.2.2", "address6": "fd00::100",
      "gateway6": "fd00::2"},
     {"address": V4("10.0.2.100"), "prefix_len": 24, "gateway": V4("10.0.2.2"),
      "address6": V6("fd00::100"), "gateway6": V6("fd00::2")},
     {"addr4": V4("10.0.2.100"), "prefix4": 24, "gw4": V4("10.0.2.2"),
      "addr6": V6("fd00::100"), "gw6": V6("fd00::2")}),
    ({"mtu": 1500}, {"mtu": 1500}, {"mtu": 1500}),
    ({"mtu": 0}, {"mtu": 0}, {"mtu": 0}),
    ({"mtu": 68}, {"mtu": 68}, {"mtu": 68}),
    ({"mtu": 65521}, {"mtu": 65521}, {"mtu": 65521}),
    ({"mac": "AA:bb:CC:00:11:22"}, {"mac": "aa:bb:cc:00:11:22"}, {"ns_mac": "aa:bb:cc:00:11:22"}),
    ({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "c2:11:22:33:44:55"}},
     {"mac": "c2:11:22:33:44:55"}, {"ns_mac": "c2:11:22:33:44:55"}),
    ({"runtimeConfig": {"mac": "c2:11:22:33:44:55"}}, {"mac": "c2:11:22:33:44:55"},
     {"ns_mac": "c2:11:22:33:44:55"}),
    ({"dns": False}, {"dns_forwarding": False}, {"dns_forward4": None, "dns_forward6": None}),
    ({"dns": True}, {"dns_forwarding": True}, {"dns_forward4": V4("169.254.1.1")}),
    ({"dns": {"nameservers": ["192.0.2.53"], "search": ["example.org"], "domain": "ex",
              "options": ["ndots:1"], "unknown": 1}},
     {"dns_forwarding": True,
      "dns": DNS(("192.0.2.53",), "ex", ("example.org",), ("ndots:1",))},
     {"dns_forward4": V4("169.254.1.1")}),
    ({"dns": {}}, {"dns": DNS()}, {"dns_forward4": V4("169.254.1.1")}),
    ({"dnsForward": "10.0.2.3"}, {"dns_forward": (V4("10.0.2.3"),)},
     {"dns_forward4": V4("10.0.2.3"), "dns_forward6": None}),
    ({"dnsForward": "fd00::3"}, {"dns_forward": (V6("fd00::3"),)},
     {"dns_forward4": None, "dns_forward6": V6("fd00::3")}),
    ({"dnsForward": ["fd00::3", "10.0.2.3"]}, {"dns_forward": (V4("10.0.2.3"), V6("fd00::3"))},
     {"dns_forward4": V4("10.0.2.3"), "dns_forward6": V6("fd00::3")}),
    ({"ipv4": False}, {"ipv4": False}, {"ipv4": False, "ipv6": True, "dns_forward4": None}),
    ({"ipv6": False}, {"ipv6": False}, {"ipv4": True, "ipv6": False}),
    ({"ipv4": True, "ipv6": True}, {}, {"ipv4": True, "ipv6": True}),
    ({"ipv4": False, "address6": "fd00::5", "dnsForward": "fd00::3"},
     {"ipv4": False, "address6": V6("fd00::5"), "dns_forward": (V6("fd00::3"),)},
     {"ipv4": False, "addr6": V6("fd00::5"), "dns_forward6": V6("fd00::3")}),
    ({"outboundInterface": "eth1"}, {"outbound_interface": "eth1"},
     {"template_if": "eth1", "outbound_if4": "eth1", "outbound_if6": "eth1"}),
    ({"outboundInterface": "eth1", "ipv6": False}, {"outbound_interface": "eth1", "ipv6": False},
     {"template_if": "eth1", "outbound_if4": "eth1", "outbound_if6": None}),
    ({"outboundInterface": "eth1", "ipv4": False}, {"outbound_interface": "eth1", "ipv4": False},
     {"template_if": "eth1", "outbound_if4": None, "outbound_if6": "eth1"}),
    ({"mapGateway": False}, {"map_gateway": False}, {"no_map_gw": True}),
    ({"mapGateway": True}, {"map_gateway": True}, {"no_map_gw": False}),
    ({"runtimeDir": "/run/user/1001/pypasta"}, {"runtime_dir": "/run/user/1001/pypasta"}, {}),
    ({"logFile": "/var/log/pypasta.log"}, {"log_file": "/var/log/pypasta.log"},
     {"log_file": "/var/log/pypasta.log", "quiet": False, "debug": False}),
    ({"debug": True}, {"debug": True}, {"debug": True, "quiet": False}),
    ({"debug": True, "logFile": "/l"}, {"debug": True, "log_file": "/l"},
     {"debug": True, "log_file": "/l"}),
    ({"debug": False}, {"debug": False}, {"quiet": True}),
    # ignored: unknown keys, well-known keys we do not use, nulls
    ({"capabilities": {"portMappings": True}, "args": {"cni": {"labels": []}}, "ipMasq": True,
      "somethingElse": [1, 2], "cni.dev/valid-attachments": "not checked outside GC",
      "disableCheck": "true"}, {}, {}),
    ({"address": None, "mtu": None, "mac": None, "dns": None, "dnsForward": None, "ipv4": None,
      "runtimeConfig": None, "prevResult": None, "ipam": None, "type": "pypasta"}, {}, {}),
    ({"runtimeConfig": {"portMappings": None, "bandwidth": {"ingressRate": 1}}}, {}, {}),
    ({"runtimeConfig": {"portMappings": []}}, {"port_mappings": ()}, {}),
]


@pytest.mark.parametrize("extra,fields,cfg_fields", ACCEPTED)
def test_netconf_plugin_keys_accepted(extra, fields, cfg_fields):
    c = parse(conf(**extra))
    assert c == dataclasses.replace(DEFAULTS, **fields)     # and nothing else changed
    cfg = cfg_of(c)
    for name, value in cfg_fields.items():
        assert getattr(cfg, name) == value, name


@pytest.mark.parametrize("command", [Command.CHECK, Command.STATUS])
def test_netconf_plugin_keys_same_for_other_commands(command):
    extra = {"address": "10.0.2.100/24", "mtu": 1500, "prevResult": {"cniVersion": "1.1.0"}}
    c = parse(conf(**extra), command)
    assert (c.address, c.prefix_len, c.mtu) == (V4("10.0.2.100"), 24, 1500)
    assert c.warnings == ()


# --- plugin keys: refused -------------------------------------------------------------------------

REFUSED = [
    # type
    ({"type": None}, E7, "type: missing"),
    ({"type": ""}, E7, 'type: expected a non-empty string, got ""'),
    ({"type": 5}, E7, "type: expected a non-empty string, got 5"),
    # ipam: a well-known key we cannot honour
    ({"ipam": {"type": "host-local"}}, E2, 'unsupported field: ipam {"type": "host-local"}'),
    ({"ipam": {}}, E2, "unsupported field: ipam {}"),
    # address
    ({"address": 10}, E7, "address: expected an IP address, got 10"),
    ({"address": "10.0.2"}, E7, 'address: expected an IP address, got "10.0.2"'),
    ({"address": "010.0.2.1"}, E7, 'address: expected an IP address, got "010.0.2.1"'),
    ({"address": " 10.0.2.1"}, E7, "address: expected an IP address"),
    ({"address": "fd00::1"}, E7,
     'address: expected an IPv4 address (use "address6" for IPv6), got "fd00::1"'),
    ({"address": "fd00::1/64"}, E7, 'address: expected an IPv4 address (use "address6"'),
    ({"address": "10.0.2.1/33"}, E7, 'address: expected a prefix length 1-32, got "10.0.2.1/33"'),
    ({"address": "10.0.2.1/0"}, E7, "address: expected a prefix length 1-32"),
    ({"address": "10.0.2.1/"}, E7, "address: expected an IPv4 address, optionally /PREFIX"),
    ({"address": "10.0.2.1/024"}, E7, "address: expected an IPv4 address, optionally /PREFIX"),
    ({"address": "10.0.2.1/2x"}, E7, "address: expected an IPv4 address, optionally /PREFIX"),
    ({"address": "10.0.2.1/1/2"}, E7, "address: expected an IPv4 address, optionally /PREFIX"),
    ({"address": "x/24"}, E7, "address: expected an IPv4 address, optionally /PREFIX"),
    ({"address": "0.0.0.0"}, E7, "address: expected an address that is not unspecified, "
                                 "broadcast, loopback, multicast, got \"0.0.0.0\""),
    ({"address": "127.0.0.2"}, E7, "address: expected an address that is not"),
    ({"address": "224.0.0.5"}, E7, "address: expected an address that is not"),
    ({"address": "255.255.255.255"}, E7, "address: expected an address that is not"),
    ({"address": "10.0.2.100/24", "prefixLen": 16}, E7,
     'prefixLen: 16 contradicts address "10.0.2.100/24"'),
    ({"prefixLen": 0}, E7, "prefixLen: expected an integer 1-32, got 0"),
    ({"prefixLen": 33}, E7, "prefixLen: expected an integer 1-32, got 33"),
    ({"prefixLen": "24"}, E7, 'prefixLen: expected an integer 1-32, got "24"'),
    ({"prefixLen": 24.0}, E7, "prefixLen: expected an integer 1-32, got 24.0"),
    ({"prefixLen": True}, E7, "prefixLen: expected an integer 1-32, got true"),
    # gateway
    ({"gateway": "fe80::1"}, E7, 'gateway: expected an IPv4 address (use "gateway6" for IPv6)'),
    ({"gateway": "10.0.2.2/24"}, E7, 'gateway: expected an IP address, got "10.0.2.2/24"'),
    ({"gateway": "127.0.0.1"}, E7, "gateway: expected an address that is not unspecified, "
                                   "broadcast, loopback, got"),
    ({"gateway": "0.0.0.0"}, E7, "gateway: expected an address that is not"),
    ({"gateway": False}, E7, "gateway: expected an IP address, got false"),
    # address6 / gateway6
    ({"address6": "10.0.2.1"}, E7, 'address6: expected an IPv6 address (use "address" for IPv4)'),
    ({"address6": "fd00::1/48"}, E2, 'unsupported field: address6 "fd00::1/48"'),
    ({"address6": "fd00::1/128"}, E2, 'unsupported field: address6 "fd00::1/128"'),
    ({"address6": "fd00::1/129"}, E7, "address6: expected a prefix length of 64"),
    ({"address6": "fd00::1%eth0"}, E7, "address6: expected an IP address"),
    ({"address6": "::"}, E7, "address6: expected an address that is not unspecified, "
                             "loopback, IPv4-mapped, IPv4-compatible, multicast"),
    ({"address6": "::1"}, E7, "address6: expected an address that is not"),
    ({"address6": "::ffff:10.0.0.1"}, E7, "address6: expected an address that is not"),
    ({"address6": "::10.0.0.1"}, E7, "address6: expected an address that is not"),
    ({"address6": "ff02::1"}, E7, "address6: expected an address that is not"),
    ({"gateway6": "10.0.2.2"}, E7, 'gateway6: expected an IPv6 address (use "gateway" for IPv4)'),
    ({"gateway6": "::1"}, E7, "gateway6: expected an address that is not unspecified, loopback"),
    ({"gateway6": "::"}, E7, "gateway6: expected an address that is not"),
    # mtu
    ({"mtu": 67}, E7, "mtu: expected 0 or an integer 68-65521, got 67"),
    ({"mtu": 65522}, E7, "mtu: expected 0 or an integer 68-65521, got 65522"),
    ({"mtu": -1}, E7, "mtu: expected 0 or an integer 68-65521, got -1"),
    ({"mtu": "1500"}, E7, 'mtu: expected 0 or an integer 68-65521, got "1500"'),
    ({"mtu": 1500.0}, E7, "mtu: expected 0 or an integer 68-65521, got 1500.0"),
    ({"mtu": True}, E7, "mtu: expected 0 or an integer 68-65521, got true"),
    # mac
    ({"mac": "aa:bb:cc:dd:ee"}, E7, 'mac: expected a MAC address xx:xx:xx:xx:xx:xx, got "aa:bb'),
    ({"mac": "aa-bb-cc-dd-ee-ff"}, E7, "mac: expected a MAC address"),
    ({"mac": "a:bb:cc:dd:ee:ff"}, E7, "mac: expected a MAC address"),
    ({"mac": "aa:bb:cc:dd:ee:fg"}, E7, "mac: expected a MAC address"),
    ({"mac": "01:00:5e:00:00:01"}, E7, 'mac: expected a unicast, non-zero MAC address, got "01'),
    ({"mac": "ff:ff:ff:ff:ff:ff"}, E7, "mac: expected a unicast, non-zero MAC address"),
    ({"mac": "00:00:00:00:00:00"}, E7, "mac: expected a unicast, non-zero MAC address"),
    ({"mac": 1}, E7, "mac: expected a string, got 1"),
    ({"runtimeConfig": {"mac": "x"}}, E7, 'runtimeConfig.mac: expected a MAC address'),
    # dns
    ({"dns": "on"}, E7, 'dns: expected true, false or an object {nameservers, domain, search, '
                        'options}, got "on"'),
    ({"dns": 1}, E7, "dns: expected true, false or an object"),
    ({"dns": ["1.1.1.1"]}, E7, "dns: expected true, false or an object"),
    ({"dns": {"nameservers": "1.1.1.1"}}, E7, 'dns.nameservers: expected an array, got "1.1.1.1"'),
    ({"dns": {"nameservers": ["ns.example"]}}, E7,
     'dns.nameservers[0]: expected an IP address, got "ns.example"'),
    ({"dns": {"search": "a b"}}, E7, 'dns.search: expected an array, got "a b"'),
    ({"dns": {"domain": 1}}, E7, "dns.domain: expected a string, got 1"),
    ({"dns": {"options": [None]}}, E7, "dns.options[0]: expected a string, got null"),
    ({"dnsForward": 1}, E7, "dnsForward: expected an IP address or an array of them, got 1"),
    ({"dnsForward": []}, E7, "dnsForward: expected an IP address or an array of them, got []"),
    ({"dnsForward": {}}, E7, "dnsForward: expected an IP address or an array of them, got {}"),
    ({"dnsForward": "dns"}, E7, 'dnsForward: expected an IP address, got "dns"'),
    ({"dnsForward": ["10.0.2.3", 5]}, E7, "dnsForward[1]: expected an IP address, got 5"),
    ({"dnsForward": "127.0.0.53"}, E7, "dnsForward: expected an address that is not unspecified, "
                                       "broadcast, loopback, got \"127.0.0.53\""),
    ({"dnsForward": ["::1"]}, E7, "dnsForward[0]: expected an address that is not unspecified, "
                                  "loopback, got \"::1\""),
    ({"dnsForward": ["10.0.2.3", "10.0.2.4"]}, E7,
     "dnsForward: more than one IPv4 address (10.0.2.3, 10.0.2.4)"),
    ({"dns": False, "dnsForward": "10.0.2.3"}, E7, "dnsForward is set but dns is false"),
    ({"ipv4": False, "dnsForward": "10.0.2.3"}, E7,
     "dnsForward 10.0.2.3 is IPv4 but ipv4 is false"),
    ({"ipv6": False, "dnsForward": ["fd00::3"]}, E7,
     "dnsForward fd00::3 is IPv6 but ipv6 is false"),
    # switches
    ({"ipv4": "false"}, E7, 'ipv4: expected true or false, got "false"'),
    ({"ipv6": 0}, E7, "ipv6: expected true or false, got 0"),
    ({"mapGateway": "no"}, E7, 'mapGateway: expected true or false, got "no"'),
    ({"debug": 1}, E7, "debug: expected true or false, got 1"),
    ({"ipv4": False, "ipv6": False}, E7, "ipv4 and ipv6 are both false: nothing to configure"),
    ({"ipv4": False, "address": "10.0.2.1"}, E7, "address is set but ipv4 is false"),
    ({"ipv4": False, "prefixLen": 8}, E7, "prefixLen is set but ipv4 is false"),
    ({"ipv4": False, "gateway": "10.0.2.2"}, E7, "gateway is set but ipv4 is false"),
    ({"ipv6": False, "address6": "fd00::1"}, E7, "address6 is set but ipv6 is false"),
    ({"ipv6": False, "gateway6": "fd00::1"}, E7, "gateway6 is set but ipv6 is false"),
    # outboundInterface
    ({"outboundInterface": ""}, E7, 'outboundInterface: interface name is empty, got ""'),
    ({"outboundInterface": "a" * 16}, E7, "outboundInterface: interface name is too long"),
    ({"outboundInterface": "a/b"}, E7, "outboundInterface: interface name contains / or :"),
    ({"outboundInterface": ".."}, E7, "outboundInterface: interface name is . or .."),
    ({"outboundInterface": ["eth0"]}, E7, 'outboundInterface: expected a string, got ["eth0"]'),
    # paths
    ({"runtimeDir": "run/pypasta"}, E7,
     'runtimeDir: must be an absolute path, got "run/pypasta"'),
    ({"runtimeDir": "/a\u0000b"}, E7, "runtimeDir: must not contain NUL"),
    ({"runtimeDir": "/" + "d" * 5000}, E7, "runtimeDir: must be shorter than 4096 bytes"),
    ({"runtimeDir": 1}, E7, "runtimeDir: expected a string, got 1"),
    ({"logFile": "log.txt"}, E7, 'logFile: must be an absolute path, got "log.txt"'),
    ({"logFile": ""}, E7, 'logFile: must be an absolute path, got ""'),
    ({"logFile": True}, E7, "logFile: expected a string, got true"),
    # runtimeConfig
    ({"runtimeConfig": []}, E7, "runtimeConfig: expected an object, got []"),
    ({"runtimeConfig": {"portMappings": {}}}, E7,
     "runtimeConfig.portMappings: expected an array, got {}"),
]


@pytest.mark.parametrize("extra,code,message", REFUSED)
def test_netconf_plugin_keys_refused(extra, code, message):
    err = fails(code, conf(**extra))
    assert err.msg.startswith(message), err.msg
    if code == E2:
        assert err.msg.startswith("unsupported field: ") and err.details


def test_netconf_huge_number_is_a_wrong_type_not_a_crash():
    err = raises(E7, parse_netconf, b'{"cniVersion":"1.1.0","name":"n","type":"p","mtu":1e400}',
                 Command.ADD)
    assert err.msg == "mtu: expected 0 or an integer 68-65521, got Infinity"
    err = raises(E7, parse_netconf, b'{"cniVersion":"1.1.0","name":"n","type":"p","mtu":' +
                 b"9" * 5000 + b"}", Command.ADD)
    assert err.msg == "mtu: expected 0 or an integer 68-65521, got Infinity"
    err = raises(E7, parse_netconf, b'{"cniVersion":"1.1.0","name":"n","type":"p","mtu":' +
                 b"9" * 39 + b"}", Command.ADD)
    assert err.msg == "mtu: expected 0 or an integer 68-65521, got " + "9" * 39


def test_netconf_messages_quote_long_values_briefly():
    err = fails(E7, conf(mtu="x" * 10000))
    assert len(err.msg) < 120 and err.msg.endswith('xxx...')


# --- port mappings -------------------------------------------------------------------------------

def pm(host, cont, proto="tcp", ip=""):
    d = {"hostPort": host, "containerPort": cont, "protocol": proto}
    if ip is not None:
        d["hostIP"] = ip
    return d


def with_ports(*mappings, **extra):
    return conf(runtimeConfig={"portMappings": list(mappings)}, **extra)


# (mappings, expected --tcp-ports args, expected --udp-ports args, expected tcp/udp port maps,
# the map listing address-bound rules last)
PORTS = [
    ([pm(8080, 80)], ["8080:80"], ["none"], {8080: 80}, {}),
    ([pm(8080, 80, ip=None)], ["8080:80"], ["none"], {8080: 80}, {}),
    ([pm(80, 80)], ["80"], ["none"], {80: 80}, {}),
    ([pm(53, 53, "udp")], ["none"], ["53"], {}, {53: 53}),
    ([pm(53, 53, "UDP"), pm(53, 53, "Tcp")], ["53"], ["53"], {53: 53}, {53: 53}),
    ([{"hostPort": 8080, "containerPort": 80}], ["8080:80"], ["none"], {8080: 80}, {}),
    # podman: one entry per port, ranges expanded -> merged back into ranges
    ([pm(8080 + i, 80 + i, ip="127.0.0.1") for i in range(10)],
     ["127.0.0.1/8080-8089:80-89"], ["none"], {8080 + i: 80 + i for i in range(10)}, {}),
    ([pm(9000 + i, 9000 + i) for i in (3, 1, 2, 7)], ["9001-9003,9007"], ["none"],
     {9001: 9001, 9002: 9002, 9003: 9003, 9007: 9007}, {}),
    ([pm(8080, 80), pm(8081, 82)], ["8080:80,8081:82"], ["none"], {8080: 80, 8081: 82}, {}),
    ([pm(8081, 81), pm(8080, 80), pm(8082, 83)], ["8080-8081:80-81,8082:83"], ["none"],
     {8080: 80, 8081: 81, 8082: 83}, {}),
    # exact duplicates are merged
    ([pm(8080, 80), pm(8080, 80)], ["8080:80"], ["none"], {8080: 80}, {}),
    # per host address, unspecified first, then IPv4, then IPv6
    ([pm(443, 8443, ip="::1"), pm(80, 8080, ip="127.0.0.1"), pm(22, 2222),
      pm(80, 8080, ip="192.0.2.1")],
     ["22:2222", "127.0.0.1/80:8080", "192.0.2.1/80:8080", "::1/443:8443"], ["none"],
     {22: 2222, 80: 8080, 443: 8443}, {}),
    ([pm(8080, 80, ip="0.0.0.0"), pm(8080, 80, ip="::")], ["0.0.0.0/8080:80", "::/8080:80"],
     ["none"], {8080: 80}, {}),
    ([pm(1, 65535), pm(65535, 1)], ["1:65535,65535:1"], ["none"], {1: 65535, 65535: 1}, {}),
    # same host port, different protocols or addresses that do not overlap: no conflict
    ([pm(53, 5353, "udp"), pm(53, 54, "tcp", "127.0.0.1"), pm(53, 54, "tcp", "127.0.0.2"),
      pm(53, 54, "tcp", "::1")],
     ["127.0.0.1/53:54", "127.0.0.2/53:54", "::1/53:54"], ["53:5353"], {53: 54}, {53: 5353}),
]


@pytest.mark.parametrize("mappings,tcp,udp,tcp_map,udp_map", PORTS)
def test_netconf_port_mappings(mappings, tcp, udp, tcp_map, udp_map):
    c = parse(with_ports(*mappings))
    assert port_specs(c.port_mappings, "tcp") == tcp
    assert port_specs(c.port_mappings, "udp") == udp
    args = pasta_args(c, NETNS, "eth0")
    assert [a for a in args if a.startswith("--tcp-ports=")] == [f"--tcp-ports={s}" for s in tcp]
    assert [a for a in args if a.startswith("--udp-ports=")] == [f"--udp-ports={s}" for s in udp]
    cfg = parse_args(args)
    assert all(rule.pif == PIF_HOST for rule in cfg.fwd_rules)      # -T/-U none, no `auto`
    for proto, num, port_map in (("tcp", IPPROTO_TCP, tcp_map), ("udp", IPPROTO_UDP, udp_map)):
        # what pasta will forward: (host address, host port, container port), from its own parse
        got = {(None if rule.flags & FWD_DUAL_STACK_ANY else rule.addr, p, rule.target(p))
               for rule in cfg.fwd_rules if rule.proto == num
               for p in range(rule.first, rule.last + 1)}
        want = {(ipaddress.ip_address(m["hostIP"]) if m.get("hostIP") else None,
                 m["hostPort"], m["containerPort"])
                for m in mappings if m.get("protocol", "tcp").lower() == proto}
        assert got == want
        assert {p: t for _, p, t in sorted(got, key=lambda x: x[0] is not None)} == port_map


def test_netconf_port_mapping_values():
    c = parse(with_ports(pm(8080, 80, "TCP", "127.0.0.1"), pm(53, 53, "udp", "fd00::1"),
                         pm(22, 22, "tcp", "")))
    assert c.port_mappings == (PortMapping(8080, 80, "tcp", V4("127.0.0.1")),
                               PortMapping(53, 53, "udp", V6("fd00::1")),
                               PortMapping(22, 22, "tcp", None))


def test_netconf_port_mapping_podman_shape():
    """Exactly what podman 4.3.1 sends (real-clients.md 3.3)."""
    c = parse(conf("1.0.0", runtimeConfig={"portMappings": [
        {"containerPort": 80, "hostIP": "127.0.0.1", "hostPort": 41234, "protocol": "tcp"}]},
        capabilities={"portMappings": True}))
    assert pasta_args(c, NETNS, "eth0")[-4] == "--tcp-ports=127.0.0.1/41234:80"


PORT_ERRORS = [
    ([pm(8080, 80, "sctp")], E2,
     'unsupported field: runtimeConfig.portMappings[0].protocol "sctp"'),
    ([pm(1, 1), pm(8080, 80, "SCTP")], E2,
     'unsupported field: runtimeConfig.portMappings[1].protocol "sctp"'),
    ([pm(8080, 80, "icmp")], E7,
     'runtimeConfig.portMappings[0].protocol: expected "tcp" or "udp", got "icmp"'),
    ([pm(8080, 80, "")], E7, 'runtimeConfig.portMappings[0].protocol: expected "tcp" or "udp"'),
    ([pm(8080, 80, 6)], E7, "runtimeConfig.portMappings[0].protocol: expected a string, got 6"),
    ([{"containerPort": 80}], E7, "runtimeConfig.portMappings[0].hostPort: missing"),
    ([{"hostPort": 80}], E7, "runtimeConfig.portMappings[0].containerPort: missing"),
    ([pm(0, 80)], E7, "runtimeConfig.portMappings[0].hostPort: expected an integer 1-65535, got 0"),
    ([pm(65536, 80)], E7, "runtimeConfig.portMappings[0].hostPort: expected an integer 1-65535"),
    ([pm("8080", 80)], E7, 'runtimeConfig.portMappings[0].hostPort: expected an integer 1-65535, '
                           'got "8080"'),
    ([pm(8080.0, 80)], E7, "runtimeConfig.portMappings[0].hostPort: expected an integer"),
    ([pm(True, 80)], E7, "runtimeConfig.portMappings[0].hostPort: expected an integer"),
    ([pm(8080, 0)], E7, "runtimeConfig.portMappings[0].containerPort: expected an integer 1-65535"),
    ([pm(8080, -80)], E7, "runtimeConfig.portMappings[0].containerPort: expected an integer"),
    ([pm(8080, 80, ip="localhost")], E7,
     'runtimeConfig.portMappings[0].hostIP: expected an IP address, got "localhost"'),
    ([pm(8080, 80, ip="127.0.0.1/8")], E7, "runtimeConfig.portMappings[0].hostIP: expected an IP"),
    ([pm(8080, 80, ip="[::1]")], E7, "runtimeConfig.portMappings[0].hostIP: expected an IP"),
    ([pm(8080, 80, ip="fe80::1%eth0")], E7, "runtimeConfig.portMappings[0].hostIP: expected an IP"),
    ([pm(8080, 80, ip="224.0.0.1")], E7,
     'runtimeConfig.portMappings[0].hostIP: expected a unicast address, got "224.0.0.1"'),
    ([pm(8080, 80, ip="ff02::1")], E7, "runtimeConfig.portMappings[0].hostIP: expected a unicast"),
    ([pm(8080, 80, ip="255.255.255.255")], E7,
     "runtimeConfig.portMappings[0].hostIP: expected a unicast"),
    ([pm(8080, 80, ip=1)], E7, "runtimeConfig.portMappings[0].hostIP: expected a string, got 1"),
    (["8080:80"], E7, 'runtimeConfig.portMappings[0]: expected an object, got "8080:80"'),
    ([pm(8080, 80), pm(8080, 81)], E7, "runtimeConfig.portMappings[1]: tcp host port 8080 is "
                                       "already mapped to container port 80 by portMappings[0]"),
    ([pm(53, 53, "udp", "127.0.0.1"), pm(53, 54, "udp", "127.0.0.1")], E7,
     "runtimeConfig.portMappings[1]: udp host port 127.0.0.1:53 is already mapped"),
    # overlapping host addresses: pasta 2026 refuses them ("Forwarding configuration conflict")
    ([pm(53, 53), pm(53, 54, ip="127.0.0.1")], E7,
     "runtimeConfig.portMappings[1]: tcp host port 127.0.0.1:53 overlaps 53 of portMappings[0]"),
    ([pm(80, 80, ip="::1"), pm(80, 80, ip="")], E7,
     "runtimeConfig.portMappings[1]: tcp host port 80 overlaps ::1:80 of portMappings[0]"),
    ([pm(80, 80, ip="0.0.0.0"), pm(80, 81, ip="127.0.0.1")], E7,
     "runtimeConfig.portMappings[1]: tcp host port 127.0.0.1:80 overlaps 0.0.0.0:80"),
    ([pm(80, 80, ip="::"), pm(80, 81, ip="fd00::1")], E7,
     "runtimeConfig.portMappings[1]: tcp host port fd00::1:80 overlaps :::80"),
    ([pm(80, 80, ip="10.0.0.1"), pm(80, 81, ip="::ffff:10.0.0.1")], E7,
     f"runtimeConfig.portMappings[1]: tcp host port {V6('::ffff:10.0.0.1')}:80 overlaps "
     "10.0.0.1:80"),
]


@pytest.mark.parametrize("mappings,code,message", PORT_ERRORS)
def test_netconf_port_mapping_errors(mappings, code, message):
    err = fails(code, with_ports(*mappings))
    assert err.msg.startswith(message), err.msg


@pytest.mark.parametrize("flag,ip", [("ipv6", "::1"), ("ipv4", "127.0.0.1")])
def test_netconf_port_mapping_host_ip_of_disabled_family(flag, ip):
    err = fails(E7, with_ports(pm(8080, 80, ip=ip), **{flag: False}))
    assert err.msg == (f"runtimeConfig.portMappings: hostIP {ip} is IPv{flag[-1]} "
                       f"but {flag} is false")


def test_netconf_port_mappings_without_other_keys_in_runtime_config():
    c = parse(conf(runtimeConfig={"unknownCapability": {"x": 1}}))
    assert c.port_mappings == () and c.mac is None


# --- prevResult -----------------------------------------------------------------------------------

PREV_040 = {"cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mac": "9a:55:9a:55:9a:56", "sandbox": NETNS}],
            "ips": [{"version": "4", "address": "192.0.2.10/24", "gateway": "192.0.2.1",
                     "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "192.0.2.1"}],
            "dns": {"nameservers": ["169.254.1.1"]}}
PREV_MODEL = Result("0.4.0", (Interface("eth0", "9a:55:9a:55:9a:56", 0, NETNS),),
                    (IPConfig(IF("192.0.2.10/24"), ipaddress.ip_address("192.0.2.1"), 0),),
                    (Route(IF("0.0.0.0/0"), ipaddress.ip_address("192.0.2.1")),),
                    DNS(("169.254.1.1",)))


@pytest.mark.parametrize("command", [Command.CHECK, Command.DEL, Command.ADD])
def test_netconf_prev_result_parsed(command):
    c = parse(conf("0.4.0", prevResult=PREV_040), command)
    assert c.prev_result == PREV_MODEL


def test_netconf_prev_result_in_1_x_shape():
    prev = dict(PREV_040, cniVersion="1.1.0")
    prev["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in prev["ips"]]
    c = parse(conf("1.1.0", prevResult=prev), Command.CHECK)
    assert c.prev_result.ips == PREV_MODEL.ips and c.prev_result.cni_version == "1.1.0"


def test_netconf_check_needs_prev_result():
    err = fails(E7, conf("1.0.0"), Command.CHECK)
    assert (err.msg, err.details) == ("prevResult: missing", "CHECK needs the result of ADD")
    assert parse(conf("1.0.0"), Command.DEL).prev_result is None      # second DEL: no cache
    assert parse(conf("1.0.0"), Command.ADD).prev_result is None      # first in the chain


@pytest.mark.parametrize("command", [Command.CHECK, Command.ADD])
def test_netconf_bad_prev_result_is_code_7(command):
    err = fails(E7, conf(prevResult={"ips": [{"address": "nope"}]}), command)
    assert err.msg.startswith('prevResult.ips[0].address: expected an address in CIDR form')


# --- lenient DEL and GC ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [Command.DEL, Command.GC])
def test_netconf_del_and_gc_survive_bad_plugin_keys(command):
    obj = conf(mtu="big", address="fd00::1", ipam={"type": "host-local"}, type=None,
               runtimeConfig={"portMappings": [pm(1, 1, "sctp")]},
               prevResult={"ips": 5}, ipv4=False, ipv6=False, runtimeDir="/run/x")
    c = parse(obj, command)
    assert c.runtime_dir == "/run/x" and c.name == "pypasta-net"
    assert c.mtu == MTU_DEFAULT and c.address is None and c.port_mappings == ()
    assert c.prev_result is None
    assert c.warnings == (
        "type: missing",
        'unsupported field: ipam {"type": "host-local"}; pypasta takes addresses from the host '
        'or from "address"/"address6"; remove "ipam"',
        'address: expected an IPv4 address (use "address6" for IPv6), got "fd00::1"',
        'mtu: expected 0 or an integer 68-65521, got "big"',
        'unsupported field: runtimeConfig.portMappings[0].protocol "sctp"; pypasta forwards '
        'tcp and udp only',
        "prevResult.ips: expected an array, got 5",
        "ipv4 and ipv6 are both false: nothing to configure")
    for w in c.warnings:
        assert w.isprintable()


@pytest.mark.parametrize("command", [Command.DEL, Command.GC])
@pytest.mark.parametrize("extra,code,message", [
    ({"runtimeDir": "relative"}, E7, 'runtimeDir: must be an absolute path, got "relative"'),
    ({"runtimeDir": 5}, E7, "runtimeDir: expected a string, got 5"),
    ({"name": "a b"}, E7, 'invalid characters found in network name "a b"'),
    ({"cniVersion": "0.2.0"}, E1, "incompatible CNI versions"),
])
def test_netconf_del_and_gc_still_need_the_essentials(command, extra, code, message):
    obj = conf(**extra)
    assert fails(code, obj, command).msg == message


@pytest.mark.parametrize("command", [Command.ADD, Command.CHECK, Command.STATUS])
def test_netconf_strict_commands_have_no_warnings(command):
    obj = conf(mtu="big", prevResult={"cniVersion": "1.1.0"})
    fails(E7, obj, command)
    assert parse(conf(prevResult={"cniVersion": "1.1.0"}), command).warnings == ()


# --- GC attachments -------------------------------------------------------------------------------

VALID = [{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]
VALID_MODEL = (Attachment("c1", "eth0"), Attachment("c2", "net1"))


@pytest.mark.parametrize("keys,expected", [
    ({"cni.dev/valid-attachments": VALID}, VALID_MODEL),
    ({"cni.dev/attachments": VALID}, VALID_MODEL),                 # the legacy spelling
    ({"cni.dev/valid-attachments": VALID, "cni.dev/attachments": VALID[:1]}, VALID_MODEL),
    ({"cni.dev/valid-attachments": []}, ()),                      # nothing is valid
    ({}, None),                                                   # cnitool gc: nothing to compare
    ({"cni.dev/valid-attachments": None}, None),
    ({"cni.dev/valid-attachments": [dict(VALID[0], extra=1)]}, VALID_MODEL[:1]),
])
def test_netconf_gc_attachments(keys, expected):
    assert parse(conf(**keys), Command.GC).valid_attachments == expected


@pytest.mark.parametrize("value,message", [
    ({}, "cni.dev/valid-attachments: expected an array, got {}"),
    ("c1", 'cni.dev/valid-attachments: expected an array, got "c1"'),
    (["c1"], 'cni.dev/valid-attachments[0]: expected an object, got "c1"'),
    ([{"ifname": "eth0"}], "cni.dev/valid-attachments[0].containerID: missing"),
    ([{"containerID": "c"}], "cni.dev/valid-attachments[0].ifname: missing"),
    ([{"containerID": 1, "ifname": "e"}],
     "cni.dev/valid-attachments[0].containerID: expected a string, got 1"),
])
def test_netconf_gc_bad_attachments_are_fatal(value, message):
    assert fails(E7, conf(**{"cni.dev/valid-attachments": value}), Command.GC).msg == message


def test_netconf_attachments_only_read_for_gc():
    obj = conf(**{"cni.dev/valid-attachments": VALID})
    assert parse(obj, Command.ADD).valid_attachments is None
    assert parse(obj, Command.DEL).valid_attachments is None


@pytest.mark.parametrize("valid,existing,stale", [
    (VALID_MODEL, VALID_MODEL + (Attachment("c3", "eth0"), Attachment("c1", "net1")),
     [Attachment("c3", "eth0"), Attachment("c1", "net1")]),
    ((), VALID_MODEL, list(VALID_MODEL)),
    (None, VALID_MODEL, []),
    (VALID_MODEL, (), []),
])
def test_netconf_stale_attachments(valid, existing, stale):
    assert stale_attachments(valid, existing) == stale


# --- outputs: pasta_args, dns, state --------------------------------------------------------------

def test_pasta_args_everything():
    c = parse(with_ports(pm(8080, 80, ip="127.0.0.1"), pm(53, 53, "udp"),
                         address="10.0.2.100/24", gateway="10.0.2.2", address6="fd00::100",
                         gateway6="fd00::2", mtu=1500, mac="02:00:00:00:00:01",
                         dnsForward=["10.0.2.3", "fd00::3"], outboundInterface="eth1",
                         mapGateway=False, logFile="/var/log/p.log", debug=True))
    args = pasta_args(c, "/run/user/1001/netns/netns-1", "net1", pid_file="/run/p/x.pid")
    assert args == [
        "--config-net", "--netns=/run/user/1001/netns/netns-1", "--ns-ifname=net1", "--mtu=1500",
        "--debug", "--log-file=/var/log/p.log", "--pid=/run/p/x.pid",
        "--address=10.0.2.100", "--netmask=24", "--gateway=10.0.2.2", "--address=fd00::100",
        "--gateway=fd00::2", "--ns-mac-addr=02:00:00:00:00:01", "--interface=eth1",
        "--outbound-if4=eth1", "--outbound-if6=eth1", "--dns-forward=10.0.2.3",
        "--dns-forward=fd00::3", "--no-map-gw", "--tcp-ports=127.0.0.1/8080:80",
        "--udp-ports=53", "--tcp-ns=none", "--udp-ns=none"]
    cfg = parse_args(args)
    assert cfg.pid_file == "/run/p/x.pid" and cfg.ns_ifname == "net1"
    assert cfg.given >= {"config-net", "netns", "ns-ifname", "pid", "tcp-ns", "udp-ns"}
    assert cfg.warnings == ()


def test_pasta_args_ipv6_only_and_ipv4_only():
    assert "--ipv6-only" in pasta_args(parse(conf(ipv4=False)), NETNS, "eth0")
    assert "--ipv4-only" in pasta_args(parse(conf(ipv6=False)), NETNS, "eth0")


@pytest.mark.parametrize("netns,ifname,missing", [("", "eth0", "CNI_NETNS"),
                                                  (NETNS, "", "CNI_IFNAME")])
def test_pasta_args_needs_netns_and_ifname(netns, ifname, missing):
    err = raises(E4, pasta_args, DEFAULTS, netns, ifname)
    assert err.msg == f"required env variables [{missing}] missing"


def test_pasta_args_odd_but_valid_names_survive_getopt():
    """Values starting with '-' or holding '=' stay values with the --opt=value form."""
    c = parse(conf(outboundInterface="-x=y", logFile="/-l"))
    cfg = parse_args(pasta_args(c, "/run/netns/-d", "-q=1"))
    assert (cfg.ns_ifname, cfg.netns, cfg.template_if, cfg.log_file) == \
        ("-q=1", "/run/netns/-d", "-x=y", "/-l")


@pytest.mark.parametrize("extra,dns", [
    ({}, DNS(("169.254.1.1",))),
    ({"dns": False}, DNS()),
    ({"dnsForward": ["10.0.2.3", "fd00::3"]}, DNS(("10.0.2.3", "fd00::3"))),
    ({"dnsForward": ["10.0.2.3", "fd00::3"], "ipv4": False}, None),   # refused: v4 forwarder
    ({"ipv4": False}, DNS()),                           # default forwarder is IPv4 only
    ({"dns": {"search": ["example.org"]}}, DNS(("169.254.1.1",), "", ("example.org",))),
    ({"dns": {"nameservers": ["192.0.2.53"], "options": ["rotate"]}},
     DNS(("192.0.2.53",), "", (), ("rotate",))),
])
def test_result_dns(extra, dns):
    if dns is None:
        fails(E7, conf(**extra))
        return
    assert result_dns(parse(conf(**extra))) == dns


@pytest.mark.parametrize("runtime,environ,expected", [
    ("/srv/p", {"XDG_RUNTIME_DIR": "/run/user/1001"}, "/srv/p"),
    (None, {"XDG_RUNTIME_DIR": "/run/user/1001"}, "/run/user/1001/pypasta-cni"),
    (None, {"XDG_RUNTIME_DIR": "/run/user/1001/"}, "/run/user/1001/pypasta-cni"),
    (None, {"XDG_RUNTIME_DIR": "relative"}, "/run/pypasta-cni"),
    (None, {"XDG_RUNTIME_DIR": ""}, "/run/pypasta-cni"),
    (None, {}, "/run/pypasta-cni"),
])
def test_runtime_dir(runtime, environ, expected):
    c = parse(conf(runtimeDir=runtime))
    assert runtime_dir(c, environ) == expected


def test_state_key():
    assert state_key("net", CID, "eth0") == f"net:{CID}:eth0"
    long_key = state_key("n" * 100, "c" * 300, "eth0")
    assert len(long_key.encode()) <= 200 and long_key.startswith("n" * 64 + ":")
    assert long_key != state_key("n" * 100, "c" * 300, "eth1")
    assert "/" not in state_key("net", "c", "é\udcff")          # surrogate-escaped env bytes


# --- properties -----------------------------------------------------------------------------------

KEYS = ["cniVersion", "name", "type", "address", "prefixLen", "gateway", "address6", "gateway6",
        "mtu", "mac", "dns", "dnsForward", "ipv4", "ipv6", "outboundInterface", "mapGateway",
        "runtimeDir", "logFile", "debug", "runtimeConfig", "prevResult", "ipam",
        "cni.dev/valid-attachments", "portMappings", "hostPort", "containerPort", "protocol",
        "hostIP", "nameservers", "ips", "interfaces", "containerID", "ifname"]
SCALARS = (st.none() | st.booleans() | st.integers(-2, 70000)
           | st.sampled_from(["1.1.0", "1.0.0", "0.4.0", "n", "tcp", "udp", "sctp", "10.0.2.1",
                              "10.0.2.1/24", "fd00::1", "fd00::1/64", "::1", "127.0.0.1",
                              "aa:bb:cc:dd:ee:02", "eth0", "/run/x", ""])
           | st.text(max_size=6) | st.floats(allow_nan=False, allow_infinity=False))
JSONISH = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3)
                       | st.dictionaries(st.sampled_from(KEYS), kids, max_size=4), max_leaves=10)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=8),
       st.sampled_from(list(Command)))
def test_netconf_any_object_gives_netconf_or_cni_error(obj, command):
    obj.setdefault("name", "n")
    obj.setdefault("cniVersion", "1.1.0")
    try:
        c = parse(obj, command)
    except CniError as err:
        one_line(err)
        assert err.code in (E1, E2, E7)
        return
    if command in (Command.DEL, Command.GC):
        return                                         # lenient: may be inconsistent
    cfg = parse_args(pasta_args(c, NETNS, "eth0"))     # pasta accepts what we accept
    assert cfg.mtu == c.mtu and cfg.ipv4 == c.ipv4 and cfg.ipv6 == c.ipv6


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_netconf_any_bytes_give_netconf_or_cni_error(stdin):
    try:
        parse_netconf(stdin, Command.ADD)
    except CniError as err:
        one_line(err)


ADDRS = (st.ip_addresses().map(str)
         | st.sampled_from(["0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.1", "::",
                            "::1", "::ffff:1.2.3.4", "::1.2.3.4", "::2", "ff02::1", "fe80::1",
                            "169.254.1.1", "10.0.0.1"]))


def _pasta_accepts(option: str, value: str) -> bool:
    try:
        parse_args([f"--{option}={value}"])
    except ConfigError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(ADDRS, st.sampled_from([("address", "address", 4), ("address6", "address", 6),
                               ("gateway", "gateway", 4), ("gateway6", "gateway", 6),
                               ("dnsForward", "dns-forward", 0)]))
def test_netconf_address_checks_match_pasta(addr, key_opt):
    """We refuse exactly what pasta's -a/-g/--dns-forward refuse (per family)."""
    key, option, family = key_opt
    version = ipaddress.ip_address(addr).version
    try:
        parse(conf(**{key: addr}))
        ours = True
    except CniError as err:
        assert err.code == E7
        ours = False
    if family and version != family:
        assert not ours                   # the other family's key
        return
    assert ours == _pasta_accepts(option, addr), (key, addr)


# --- layering -------------------------------------------------------------------------------------

def test_cni_modules_are_pure():
    """STYLE.md B1 for cni/: no I/O machinery, and not even os/sys/io (inputs are values)."""
    from test_layering import PKG_ROOT, FORBIDDEN, forbidden_chains, imports_of
    strict = FORBIDDEN | {"os", "sys", "io", "pathlib", "shutil", "tempfile", "signal",
                          "pwd", "grp"}
    for mod in ("cni", "cni.version", "cni.netconf", "cni.result"):
        path = PKG_ROOT.joinpath(*mod.split(".")).with_suffix(".py")
        if mod == "cni":
            path = PKG_ROOT / "cni" / "__init__.py"
        assert not forbidden_chains(mod), mod
        direct = {i.split(".")[0] for i in imports_of(mod, path)}
        assert not direct & strict, (mod, direct & strict)
        assert not {i for i in imports_of(mod, path) if i.startswith("pasta.")} - {
            "pasta.util.errors", "pasta.util.errors.PastaError", "pasta.util.errors.ConfigError",
            "pasta.util.errors.SetupError", "pasta.plan.portspec", "pasta.plan.portspec.show",
            "pasta.plan.portspec.inet_pton", "pasta.plan.config", "pasta.plan.config.IFNAMSIZ",
            "pasta.plan.config.MTU_DEFAULT"}, mod
    assert Path(PKG_ROOT / "cni" / "__init__.py").is_file()
