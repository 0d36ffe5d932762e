"""Tests for cni.result and cni.version: result shapes per spec version, conversion, error,
STATUS/GC and VERSION replies.

Every JSON document the plugin writes is checked against the per-version JSON schemas in
`cni_schemas/` with `SchemaValidator`, a small recursive validator for the subset of JSON Schema
2020-12 those files use (jsonschema is not a test dependency of this project). The validator
refuses keywords it does not implement, so a schema can never be half-checked, and it has its
own tests below. Cross-field rules that JSON Schema cannot express (interface indexes, address
families) are checked by `semantic_problems`.
"""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given, settings, strategies as st

from cni import CniError, ErrorCode, one_line
from cni import result as R
from cni.result import (DNS, IPConfig, Interface, JsonObject, NsLink, Result, Route,
                        add_result, as_cni_error, convert_result, dumps, error_json, gc_error,
                        parse_cidr, parse_result, render_error, result_to_json, status_error)
from cni.version import (COMMAND_SINCE, CURRENT_VERSION, SUPPORTED_VERSIONS, Command,
                         check_version, command_allowed, parse_version, version_reply)
from pasta.util.errors import ConfigError, PastaError, SetupError

from helpers.cnischema import (RESULT_SCHEMA, SCHEMAS, SchemaValidator, assert_valid_error,
                               assert_valid_result, load_schema, semantic_problems)

IF = ipaddress.ip_interface
IP = ipaddress.ip_address


# --- the validator itself -------------------------------------------------------------------------

TOY = {
    "type": "object", "required": ["a"], "additionalProperties": False, "minProperties": 1,
    "properties": {
        "a": {"type": "integer", "minimum": 1, "maximum": 9},
        "b": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"$ref": "#/$defs/s"}},
        "c": {"enum": ["x", 1]},
        "d": {"const": True},
        "e": {"type": ["string", "null"], "minLength": 2, "maxLength": 3, "pattern": "^z"},
        "f": {"type": "string", "format": "cidr"},
        "g": {"type": "string", "format": "ip"},
        "h": {"type": "string", "format": "mac"},
        "i": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
    "$defs": {"s": {"type": "string"}},
}

VALIDATOR_CASES = [
    ({"a": 1}, []),
    ({"a": 5, "b": ["x"], "c": 1, "d": True, "e": "zz", "f": "10.0.0.1/8", "g": "::1",
      "h": "aa:bb:cc:dd:ee:ff", "i": {"k": False}}, []),
    ({"a": None, "e": None}, ["$.a: expected type integer"]),
    ({}, ["missing required 'a'"]),
    ({"a": True}, ["$.a: expected type integer"]),
    ({"a": 1.5}, ["$.a: expected type integer"]),
    ({"a": 0}, ["$.a: 0 below 1"]),
    ({"a": 10}, ["$.a: 10 above 9"]),
    ({"a": 1, "z": 0}, ["unexpected property 'z'"]),
    ({"a": 1, "b": []}, ["$.b: fewer than 1 items"]),
    ({"a": 1, "b": ["x", "y", "z"]}, ["$.b: more than 2 items"]),
    ({"a": 1, "b": [3]}, ["$.b[0]: expected type string"]),
    ({"a": 1, "c": True}, ["$.c: true not in"]),
    ({"a": 1, "c": "1"}, ['$.c: "1" not in']),
    ({"a": 1, "d": 1}, ["$.d: expected true, got 1"]),
    ({"a": 1, "e": "z"}, ["$.e: shorter than 2"]),
    ({"a": 1, "e": "zzzz"}, ["$.e: longer than 3"]),
    ({"a": 1, "e": "aa"}, ['$.e: "aa" does not match ^z']),
    ({"a": 1, "f": "10.0.0.1"}, ["is not a cidr"]),
    ({"a": 1, "f": "10.0.0.1/33"}, ["is not a cidr"]),
    ({"a": 1, "g": "10.0.0.1/8"}, ["is not a ip"]),
    ({"a": 1, "h": "AA:BB:CC:DD:EE:FF"}, ["is not a mac"]),
    ({"a": 1, "i": {"k": 1}}, ["$.i.k: expected type boolean"]),
    ([], ["$: expected type object"]),
]


@pytest.mark.parametrize("doc,expected", VALIDATOR_CASES)
def test_schema_validator_reports_each_violation(doc, expected):
    errors = SchemaValidator(TOY).errors(doc)
    if not expected:
        assert errors == []
    for want in expected:
        assert any(want in e for e in errors), (want, errors)


@pytest.mark.parametrize("schema", [{"oneOf": []}, {"$ref": "other.json#/x"},
                                    {"type": "string", "format": "uri"}])
def test_schema_validator_refuses_what_it_does_not_implement(schema):
    with pytest.raises(ValueError):
        SchemaValidator(schema).errors("x")


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMAS.glob("*.json")))
def test_schema_files_use_only_implemented_keywords(name):
    schema = json.loads((SCHEMAS / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node):
        if isinstance(node, dict):
            unknown = set(node) - SchemaValidator.KEYWORDS - SchemaValidator.ANNOTATIONS
            # property names are data, not keywords
            for key, value in node.items():
                if key in ("properties", "$defs"):
                    for sub in value.values():
                        walk(sub)
                elif key in ("items", "additionalProperties") and isinstance(value, dict):
                    walk(value)
            assert not unknown, f"{name}: {unknown}"
    walk(schema)


def test_schema_files_cover_every_supported_version():
    assert set(RESULT_SCHEMA) == set(SUPPORTED_VERSIONS)
    for name in set(RESULT_SCHEMA.values()) | {"error.json", "version.json"}:
        assert (SCHEMAS / name).is_file()


# --- results per version -----------------------------------------------------------------------

LINK_DUAL = NsLink(
    ifname="eth0", sandbox="/run/netns/t1", mac="9a:55:9a:55:9a:56", mtu=65520,
    addresses=(IF("192.0.2.10/24"), IF("2001:db8::10/64")),
    gateway4=IP("192.0.2.1"), gateway6=IP("fe80::1"),
    dns=DNS(("169.254.1.1",)))
LINK_V4 = NsLink("eth0", "/run/netns/t1", "02:00:00:00:00:01", 1500,
                 (IF("10.0.2.100/24"),), IP("10.0.2.2"))
LINK_V6 = NsLink("net1", "/run/netns/t1", addresses=(IF("2001:db8::5/64"),),
                 gateway6=IP("2001:db8::1"), dns=DNS(("fd00::3",), "example.org",
                                                     ("example.org",), ("ndots:2",)))
LINK_BARE = NsLink("eth0", "/run/netns/t1")             # nothing known but the name
LINK_NO_GW = NsLink("eth0", "/run/netns/t1", addresses=(IF("192.0.2.10/24"),),
                    gateway6=IP("fe80::1"))            # v6 gateway but no v6 address
LINKS = {"dual": LINK_DUAL, "v4": LINK_V4, "v6": LINK_V6, "bare": LINK_BARE, "nogw": LINK_NO_GW}

PREV_1_1 = Result("1.1.0",
                  interfaces=(Interface("veth0", "aa:aa:aa:aa:aa:01", 9000, "", "/s.sock",
                                        "0000:01"),
                              Interface("eth1", "aa:aa:aa:aa:aa:02", 0, "/run/netns/t1")),
                  ips=(IPConfig(IF("10.99.0.2/24"), IP("10.99.0.1"), 1),
                       IPConfig(IF("10.98.0.2/24"))),
                  routes=(Route(IF("10.0.0.0/8"), IP("10.99.0.1"), 1400, 1360, 10, 0, 253),),
                  dns=DNS((), "", ("corp.example",), ()))


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("link", sorted(LINKS))
def test_result_add_matches_the_version_schema(version, link):
    doc = result_to_json(add_result(LINKS[link], version))
    assert_valid_result(doc, version)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("link", sorted(LINKS))
def test_result_add_chained_on_prev_result_matches_the_version_schema(version, link):
    doc = result_to_json(add_result(LINKS[link], version, prev=PREV_1_1))
    assert_valid_result(doc, version)
    ours = len(PREV_1_1.interfaces)
    assert doc["interfaces"][ours]["name"] == LINKS[link].ifname
    assert all(ip.get("interface") == ours for ip in doc.get("ips", [])[len(PREV_1_1.ips):])


def test_result_add_exact_1_1_0():
    assert result_to_json(add_result(LINK_DUAL, "1.1.0")) == {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "9a:55:9a:55:9a:56", "mtu": 65520,
                        "sandbox": "/run/netns/t1"}],
        "ips": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1", "interface": 0},
                {"address": "2001:db8::10/64", "gateway": "fe80::1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "192.0.2.1"}, {"dst": "::/0", "gw": "fe80::1"}],
        "dns": {"nameservers": ["169.254.1.1"]},
    }


def test_result_add_exact_1_0_0_drops_interface_mtu():
    doc = result_to_json(add_result(LINK_DUAL, "1.0.0"))
    assert doc["cniVersion"] == "1.0.0"
    assert doc["interfaces"] == [{"name": "eth0", "mac": "9a:55:9a:55:9a:56",
                                  "sandbox": "/run/netns/t1"}]
    assert doc["ips"][0] == {"address": "192.0.2.10/24", "gateway": "192.0.2.1", "interface": 0}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_result_add_exact_0_x_has_ip_versions(version):
    doc = result_to_json(add_result(LINK_DUAL, version))
    assert doc["ips"] == [
        {"version": "4", "address": "192.0.2.10/24", "gateway": "192.0.2.1", "interface": 0},
        {"version": "6", "address": "2001:db8::10/64", "gateway": "fe80::1", "interface": 0}]
    assert doc["interfaces"] == [{"name": "eth0", "mac": "9a:55:9a:55:9a:56",
                                  "sandbox": "/run/netns/t1"}]


def test_result_add_omits_empty_parts():
    assert result_to_json(add_result(LINK_BARE, "1.1.0")) == {
        "cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/t1"}]}
    assert result_to_json(Result("1.0.0")) == {"cniVersion": "1.0.0"}


def test_result_add_default_route_only_for_families_with_address_and_gateway():
    doc = result_to_json(add_result(LINK_NO_GW, "1.1.0"))
    assert "routes" not in doc                       # v4 has no gateway, v6 has no address
    assert doc["ips"] == [{"address": "192.0.2.10/24", "interface": 0}]
    doc = result_to_json(add_result(LINK_V6, "1.1.0"))
    assert doc["routes"] == [{"dst": "::/0", "gw": "2001:db8::1"}]
    assert doc["dns"] == {"nameservers": ["fd00::3"], "domain": "example.org",
                          "search": ["example.org"], "options": ["ndots:2"]}


def test_result_add_extra_routes_follow_the_default_routes():
    link = NsLink("eth0", "/n", addresses=(IF("192.0.2.10/24"),), gateway4=IP("192.0.2.1"),
                  routes=(Route(IF("198.51.100.0/24"), IP("192.0.2.254")),))
    doc = result_to_json(add_result(link, "1.1.0"))
    assert doc["routes"] == [{"dst": "0.0.0.0/0", "gw": "192.0.2.1"},
                             {"dst": "198.51.100.0/24", "gw": "192.0.2.254"}]


def test_result_add_chained_keeps_prev_and_fills_dns():
    res = add_result(LINK_DUAL, "1.1.0", prev=PREV_1_1)
    assert res.interfaces[:2] == PREV_1_1.interfaces
    assert res.ips[:2] == PREV_1_1.ips
    assert res.routes[0] == PREV_1_1.routes[0]
    assert res.dns == DNS(("169.254.1.1",), "", ("corp.example",), ())


def test_result_add_refuses_an_interface_that_exists():
    prev = Result("1.0.0", interfaces=(Interface("eth0", sandbox="/run/netns/t1"),))
    with pytest.raises(CniError) as e:
        add_result(LINK_DUAL, "1.0.0", prev=prev)
    assert e.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert '"eth0"' in e.value.msg
    # same name on the host side is another interface
    add_result(LINK_DUAL, "1.0.0", prev=Result("1.0.0", interfaces=(Interface("eth0"),)))


def test_result_1_1_0_fields_only_in_1_1_0():
    doc = result_to_json(PREV_1_1, "1.1.0")
    assert doc["interfaces"][0] == {"name": "veth0", "mac": "aa:aa:aa:aa:aa:01", "mtu": 9000,
                                    "socketPath": "/s.sock", "pciID": "0000:01"}
    assert doc["routes"][0] == {"dst": "10.0.0.0/8", "gw": "10.99.0.1", "mtu": 1400,
                                "advmss": 1360, "priority": 10, "table": 0, "scope": 253}
    for version in ("0.3.0", "0.3.1", "0.4.0", "1.0.0"):
        doc = result_to_json(PREV_1_1, version)
        assert_valid_result(doc, version)
        assert doc["interfaces"][0] == {"name": "veth0", "mac": "aa:aa:aa:aa:aa:01"}
        assert doc["routes"][0] == {"dst": "10.0.0.0/8", "gw": "10.99.0.1"}


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "1.2.0", "1.0", "", "x"])
def test_result_unsupported_version_is_code_1(version):
    with pytest.raises(CniError) as e:
        result_to_json(add_result(LINK_DUAL, "1.1.0"), version or "bogus")
    assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION
    with pytest.raises(CniError) as e:
        add_result(LINK_DUAL, version or "bogus")
    assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION
    with pytest.raises(CniError) as e:
        R.with_version(PREV_1_1, version or "bogus")
    assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION


# --- reading results (prevResult) and converting ------------------------------------------------

# name -> a result document in the shape of its cniVersion
CANONICAL = {
    "1.1.0": result_to_json(PREV_1_1, "1.1.0"),
    "1.0.0": {"cniVersion": "1.0.0",
              "interfaces": [{"name": "veth9", "mac": "aa:bb:cc:dd:ee:ff"},
                             {"name": "eth0", "mac": "aa:bb:cc:dd:ee:01",
                              "sandbox": "/run/netns/x"}],
              "ips": [{"interface": 1, "address": "10.99.0.2/24", "gateway": "10.99.0.1"}],
              "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.99.0.1"]}},
    "0.4.0": {"cniVersion": "0.4.0",
              "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
              "ips": [{"version": "4", "address": "10.1.2.3/16", "interface": 0},
                      {"version": "6", "address": "fd00::3/64", "gateway": "fd00::1"}],
              "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
    "0.3.1": {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.2.3/16"}]},
    "1.1.0-big": {"cniVersion": "1.1.0", "routes": [
        {"dst": "10.0.0.0/8", "table": 4294967295, "priority": 4294967295, "scope": 255}]},
    "0.3.0": {"cniVersion": "0.3.0", "dns": {"search": ["a"], "options": ["b"], "domain": "c"}},
}


@pytest.mark.parametrize("version", sorted(CANONICAL))
def test_result_parse_then_write_round_trips(version):
    doc = CANONICAL[version]
    version = doc["cniVersion"]
    assert_valid_result(doc, version)
    assert result_to_json(parse_result(doc, version)) == _canon(doc)


def _canon(doc):
    """Key order does not matter in JSON; compare through a normal form."""
    return json.loads(json.dumps(doc, sort_keys=True))


@pytest.mark.parametrize("src", sorted(CANONICAL))
@pytest.mark.parametrize("dst", SUPPORTED_VERSIONS)
def test_result_convert_between_every_pair_of_versions(src, dst):
    src_doc = CANONICAL[src]
    src = src_doc["cniVersion"]
    doc = convert_result(src_doc, src, dst)
    assert_valid_result(doc, dst)
    # what both versions can express survives
    assert [i["address"] for i in doc.get("ips", [])] == \
        [i["address"] for i in src_doc.get("ips", [])]
    assert [r["dst"] for r in doc.get("routes", [])] == \
        [r["dst"] for r in src_doc.get("routes", [])]
    assert doc.get("dns") == src_doc.get("dns")
    # and a second conversion back changes nothing further
    again = convert_result(doc, dst, src)
    assert convert_result(again, src, dst) == doc


def test_result_convert_to_unsupported_version_is_code_1():
    with pytest.raises(CniError) as e:
        convert_result(CANONICAL["1.0.0"], "1.0.0", "0.2.0")
    assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION


def test_result_parse_tolerates_unknown_keys_and_nulls():
    doc = {"cniVersion": "1.0.0", "interfaces": None, "ips": [
        {"address": "10.0.0.2/8", "gateway": None, "interface": None, "x-extra": 1}],
        "routes": None, "dns": None, "something": {"else": True}}
    res = parse_result(doc, "1.0.0")
    assert res == Result("1.0.0", ips=(IPConfig(IF("10.0.0.2/8")),))


PARSE_ERRORS = [
    ([], "prevResult: expected an object, got []"),
    ({"cniVersion": 1}, "prevResult.cniVersion: expected a string, got 1"),
    ({"interfaces": {}}, "prevResult.interfaces: expected an array, got {}"),
    ({"interfaces": ["eth0"]}, 'prevResult.interfaces[0]: expected an object, got "eth0"'),
    ({"interfaces": [{}]}, "prevResult.interfaces[0].name: missing"),
    ({"interfaces": [{"name": "e", "mtu": -1}]},
     "prevResult.interfaces[0].mtu: expected an integer 0-2147483647, got -1"),
    ({"interfaces": [{"name": "e", "mac": 5}]},
     "prevResult.interfaces[0].mac: expected a string, got 5"),
    ({"ips": [{}]}, "prevResult.ips[0].address: missing"),
    ({"ips": [{"address": "10.0.0.1"}]},
     'prevResult.ips[0].address: expected an address in CIDR form (ADDR/PREFIX), got "10.0.0.1"'),
    ({"ips": [{"address": "10.0.0.1/33"}]}, "prevResult.ips[0].address: expected an address"),
    ({"ips": [{"address": "10.0.0.1/08"}]}, "prevResult.ips[0].address: expected an address"),
    ({"ips": [{"address": "10.0.0.1/8", "version": "6"}]},
     'prevResult.ips[0].version: expected "4" for address 10.0.0.1/8, got "6"'),
    ({"ips": [{"address": "10.0.0.1/8", "gateway": "fd00::1"}]},
     'prevResult.ips[0].gateway: expected an IPv4 address, got "fd00::1"'),
    ({"ips": [{"address": "10.0.0.1/8", "gateway": "10.0.0.256"}]},
     'prevResult.ips[0].gateway: expected an IP address, got "10.0.0.256"'),
    ({"ips": [{"address": "10.0.0.1/8", "interface": 0}]},
     "prevResult.ips[0].interface: expected no index (there are no interfaces), got 0"),
    ({"interfaces": [{"name": "a"}], "ips": [{"address": "10.0.0.1/8", "interface": 1}]},
     "prevResult.ips[0].interface: expected an index into interfaces (0-0), got 1"),
    ({"ips": [{"address": "10.0.0.1/8", "interface": True}]},
     "prevResult.ips[0].interface: expected an integer 0-2147483647, got true"),
    ({"routes": [{"gw": "10.0.0.1"}]}, "prevResult.routes[0].dst: missing"),
    ({"routes": [{"dst": "::/0", "gw": "10.0.0.1"}]},
     'prevResult.routes[0].gw: expected an IPv6 address, got "10.0.0.1"'),
    ({"routes": [{"dst": "::/0", "table": "main"}]},
     'prevResult.routes[0].table: expected an integer 0-4294967295, got "main"'),
    ({"routes": [{"dst": "::/0", "scope": 256}]},
     "prevResult.routes[0].scope: expected an integer 0-255, got 256"),
    ({"routes": [{"dst": "::/0", "table": 2**32}]},
     "prevResult.routes[0].table: expected an integer 0-4294967295, got 4294967296"),
    ({"dns": []}, "prevResult.dns: expected an object, got []"),
    ({"dns": {"nameservers": "1.1.1.1"}},
     'prevResult.dns.nameservers: expected an array, got "1.1.1.1"'),
    ({"dns": {"nameservers": ["dns.example"]}},
     'prevResult.dns.nameservers[0]: expected an IP address, got "dns.example"'),
    ({"dns": {"search": [1]}}, "prevResult.dns.search[0]: expected a string, got 1"),
    ({"dns": {"domain": ["a"]}}, 'prevResult.dns.domain: expected a string, got ["a"]'),
]


@pytest.mark.parametrize("doc,message", PARSE_ERRORS)
def test_result_parse_errors_are_code_7_naming_the_key(doc, message):
    with pytest.raises(CniError) as e:
        parse_result(doc, "1.0.0")
    assert e.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert e.value.msg.startswith(message), e.value.msg
    assert one_line(e.value.msg) == e.value.msg


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.sampled_from(["cniVersion", "interfaces", "ips",
                                                       "routes", "dns", "name", "address",
                                                       "gateway", "interface", "version", "dst",
                                                       "gw", "nameservers", "mtu"]), kids,
                                      max_size=4),
                    max_leaves=12))
def test_result_parse_any_json_gives_result_or_cni_error(doc):
    try:
        res = parse_result(doc, "1.1.0")
    except CniError as e:
        # 7 for a malformed result, 1 for one of a version (or 0.1/0.2 shape) we cannot read
        assert e.code in (ErrorCode.INVALID_NETWORK_CONFIG, ErrorCode.INCOMPATIBLE_CNI_VERSION)
        assert one_line(e.msg) == e.msg
        return
    # Pass-through values (MACs, names) are not validated, as in libcni, so only the structure
    # and the cross-field rules are checked here; the schemas judge our own output above.
    for version in SUPPORTED_VERSIONS:
        out = result_to_json(res, version)
        assert out["cniVersion"] == version
        assert not semantic_problems(out)


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.1/8", "10.0.0.1/8"), ("0.0.0.0/0", "0.0.0.0/0"), ("fd00::1/128", "fd00::1/128"),
    ("10.0.0.1", None), ("10.0.0.1/", None), ("10.0.0.1/-1", None), ("10.0.0.1/+8", None),
    ("10.0.0.1/ 8", None), ("10.0.0.1/8 ", None), ("::/129", None), ("x/8", None),
    ("10.0.0.1/008", None), ("10.0.0.1/٣", None), (5, None)])
def test_result_parse_cidr(text, expected):
    got = parse_cidr(text)
    assert (str(got) if got is not None else None) == expected


def test_result_interfaces_in_sandbox():
    assert [i for i, _ in R.interfaces_in(PREV_1_1, "/run/netns/t1")] == [1]
    assert R.with_version(PREV_1_1, "0.4.0").cni_version == "0.4.0"


# --- errors --------------------------------------------------------------------------------------

def test_error_codes_are_the_reserved_ones():
    assert {c.name: int(c) for c in ErrorCode} == {
        "INCOMPATIBLE_CNI_VERSION": 1, "UNSUPPORTED_FIELD": 2, "UNKNOWN_CONTAINER": 3,
        "INVALID_ENVIRONMENT_VARIABLES": 4, "IO_FAILURE": 5, "DECODING_FAILURE": 6,
        "INVALID_NETWORK_CONFIG": 7, "INVALID_NETNS": 8, "TRY_AGAIN_LATER": 11,
        "PLUGIN_NOT_AVAILABLE": 50, "LIMITED_CONNECTIVITY": 51, "SETUP_FAILED": 100,
        "CLEANUP_FAILED": 101, "INTERNAL": 999}


@pytest.mark.parametrize("code", list(ErrorCode))
@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_error_json_for_every_code_and_version(code, version):
    doc = error_json(CniError(code, "something failed", "more"), version)
    assert doc == {"cniVersion": version, "code": int(code), "msg": "something failed",
                   "details": "more"}
    assert_valid_error(doc)


@pytest.mark.parametrize("version", [None, "", "0.2.0", "9.9.9", "1.0"])
def test_error_json_unsupported_request_version_reports_current(version):
    doc = error_json(CniError(1, "incompatible CNI versions"), version)
    assert doc == {"cniVersion": CURRENT_VERSION, "code": 1, "msg": "incompatible CNI versions"}
    assert_valid_error(doc)


def test_error_message_is_one_line():
    err = CniError(7, "bad\nthing\x00\x1b[31m", "line1\r\nline2")
    assert err.msg == "bad\\nthing\\x00\\x1b[31m"
    assert err.details == "line1\\r\\nline2"
    assert str(err) == f"{err.msg}; {err.details}"
    assert repr(err).startswith("CniError(7, ")
    assert_valid_error(error_json(err, "1.1.0"))
    assert str(CniError(3, "gone")) == "gone"
    assert isinstance(err, PastaError)                   # STYLE.md B6
    assert err.exit_code == 1


class _Boom(Exception):
    pass


AS_CNI = [
    (CniError(11, "busy", "retry"), 11, "busy"),
    (ConfigError("Invalid MTU: 5"), 7, "Invalid MTU: 5"),
    (SetupError("Failed to open /dev/net/tun"), 100, "Failed to open /dev/net/tun"),
    (FileNotFoundError(2, "No such file or directory", "/run/x.pid"), 5,
     "I/O error: /run/x.pid: No such file or directory"),
    (OSError("short read"), 5, "I/O error: short read"),
    (OSError(), 5, "I/O error: OSError"),
    (_Boom("kaput\nnow"), 999, "internal error: _Boom: kaput\\nnow"),
    (KeyError(), 999, "internal error: KeyError"),
]


@pytest.mark.parametrize("exc,code,msg", AS_CNI)
def test_error_from_any_exception(exc, code, msg):
    err = as_cni_error(exc)
    assert (err.code, err.msg) == (code, msg)
    text = render_error(exc, "1.0.0")
    assert text.endswith("}\n")
    doc = json.loads(text)
    assert_valid_error(doc)
    assert doc["code"] == code and doc["cniVersion"] == "1.0.0"


def test_status_and_gc_replies():
    err = status_error(["/dev/net/tun is missing", "no user namespaces"])
    assert (err.code, err.msg, err.details) == (
        50, "plugin not available: /dev/net/tun is missing", "no user namespaces")
    assert status_error(["x"], limited=True).code == 51
    assert status_error([]).msg == "plugin not available: unknown reason"
    assert gc_error([]) is None
    err = gc_error(["a:eth0: kill failed", "b:eth0: EPERM"])
    assert (err.code, err.msg, err.details) == (
        101, "GC could not clean up 2 attachment(s): a:eth0: kill failed", "b:eth0: EPERM")
    for e in (status_error(["x"]), status_error(["x"], True), gc_error(["y"])):
        assert_valid_error(error_json(e, "1.1.0"))


def test_dumps_is_indented_ascii_and_newline_terminated():
    text = dumps({"msg": "é\u2028", "n": [1]})
    assert text == '{\n    "msg": "\\u00e9\\u2028",\n    "n": [\n        1\n    ]\n}\n'
    assert text.isascii()


def test_describe_cuts_long_values():
    assert R.describe("x" * 500) == '"' + "x" * 56 + "..."
    assert R.describe({"a": 1}) == '{"a": 1}'
    assert R.describe(object()).startswith("<object")


def test_json_object_reader():
    o = JsonObject({"s": "", "b": False, "n": None, "i": 5, "a": ["x"]}, "root")
    assert o.string("s") == "" and o.boolean("b") is False and o.raw("n") is None
    assert o.has("b") and not o.has("n") and not o.has("zz")
    assert o.strings("a") == ("x",) and o.strings("zz") == ()
    assert o.objects("zz") == [] and o.object("zz") is None
    with pytest.raises(CniError, match=r"root\.s: expected a non-empty string, got \"\""):
        o.string("s", nonempty=True)
    with pytest.raises(CniError, match=r"root\.zz: missing"):
        o.integer("zz", required=True)
    with pytest.raises(CniError) as e:
        JsonObject([], "x", code=ErrorCode.DECODING_FAILURE)
    assert e.value.code == 6


# --- versions ------------------------------------------------------------------------------------

def test_version_constants():
    assert SUPPORTED_VERSIONS == ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
    assert SUPPORTED_VERSIONS[-1] == CURRENT_VERSION
    assert [parse_version(v) for v in SUPPORTED_VERSIONS] == \
        sorted(parse_version(v) for v in SUPPORTED_VERSIONS)
    assert set(COMMAND_SINCE) == set(Command)


@pytest.mark.parametrize("text,expected", [
    ("1.1.0", (1, 1, 0)), ("0.3.1", (0, 3, 1)), ("10.20.30", (10, 20, 30)),
    ("1.0", None), ("1.0.0.0", None), ("01.0.0", None), ("1.0.0-rc1", None), ("v1.0.0", None),
    (" 1.0.0", None), ("1.0.0\n", None), ("", None), (None, None), (1.0, None), ("١.٠.٠", None)])
def test_version_parse(text, expected):
    assert parse_version(text) == expected


# Which command each version allows (SPEC.md: CHECK from 0.4.0, STATUS and GC from 1.1.0).
ALLOWED = {
    "0.3.0": {"ADD", "DEL", "VERSION"},
    "0.3.1": {"ADD", "DEL", "VERSION"},
    "0.4.0": {"ADD", "DEL", "VERSION", "CHECK"},
    "1.0.0": {"ADD", "DEL", "VERSION", "CHECK"},
    "1.1.0": {"ADD", "DEL", "VERSION", "CHECK", "STATUS", "GC"},
}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("command", list(Command))
def test_version_command_matrix(version, command):
    allowed = command.value in ALLOWED[version]
    assert command_allowed(command, version) is allowed
    if allowed:
        check_version(version, command)
    else:
        with pytest.raises(CniError) as e:
            check_version(version, command)
        assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION
        assert e.value.msg == f"config version does not allow {command.value}"
        assert_valid_error(error_json(e.value, version))


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "1.0", "1.0.0 ", "",
                                     "1.1.0-rc1"])
def test_version_incompatible_is_code_1_with_skel_details(version):
    with pytest.raises(CniError) as e:
        check_version(version, Command.ADD)
    assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION
    assert e.value.msg == "incompatible CNI versions"
    assert e.value.details == (f'config is "{version}", plugin supports '
                               '["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]')


@pytest.mark.parametrize("stdin,version", [
    (b'{"cniVersion":"1.0.0"}', "1.0.0"),       # podman 4.3.1's probe
    (b'{"cniVersion":"1.1.0"}', "1.1.0"),
    (b'{"cniVersion":"0.2.0"}', "0.2.0"),       # echoed even if unsupported (spec)
    (b'{"cniVersion":"9.9.9"}', "9.9.9"),
    (b'{"cniVersion":"1.0"}', CURRENT_VERSION),
    (b'{"cniVersion":1}', CURRENT_VERSION),
    (b'{}', CURRENT_VERSION),
    (b'', CURRENT_VERSION),
    (b'not json', CURRENT_VERSION),
    (b'[1]', CURRENT_VERSION),
    (b'\xff\xfe', CURRENT_VERSION),
    (b'[' * 100000, CURRENT_VERSION),
])
def test_version_reply(stdin, version):
    doc = version_reply(stdin)
    assert doc == {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
    errors = load_schema("version.json").errors(doc)
    assert not errors, errors


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_version_reply_never_fails(stdin):
    doc = version_reply(stdin)
    assert not load_schema("version.json").errors(doc)


def test_version_docstrings_name_every_enum_member():
    """STYLE.md B5 for the cni package (tests/unit/test_docstrings.py walks pasta only)."""
    import enum
    import importlib
    for name in ("cni", "cni.version", "cni.netconf", "cni.result"):
        module = importlib.import_module(name)
        assert module.__doc__, name
        for attr, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, enum.Enum) \
                    and obj.__module__ == name and not attr.startswith("_"):
                missing = [m.name for m in obj if f"{attr}.{m.name}" not in module.__doc__]
                assert not missing, f"{name} docstring does not mention {attr}.{missing}"


@pytest.mark.parametrize("prev", [
    {"cniVersion": "9.9.9", "interfaces": [], "ips": []},
    {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}},
])
def test_parse_result_refuses_results_of_versions_it_cannot_read(prev):
    """A prevResult of an unknown version, or in the 0.1/0.2 shape, is code 1: read as an
    empty result it would make ADD drop the earlier plugins' addresses and CHECK pass."""
    with pytest.raises(CniError) as e:
        R.parse_result(prev, "1.0.0")
    assert e.value.code == ErrorCode.INCOMPATIBLE_CNI_VERSION
