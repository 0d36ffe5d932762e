"""Tests for pasta.plan.portspec: the -t/-u/-T/-U grammar (pasta-reference.md 12.1)."""

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from pasta.util.errors import ConfigError
from pasta.plan.portspec import (AUTO, EPHEMERAL_DEFAULT, NONE, FwdMode, PortForward, PortRule,
                            PortSpecError, accumulate, parse, parse_all)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def R(first, last=None, target=None, addr=None, ifname=None, excluded=(), weak=False):
    last = first if last is None else last
    target = first if target is None else target
    return PortRule(addr, ifname, first, last, target, tuple(excluded), weak)


def spec(*rules):
    return PortForward(FwdMode.SPEC, tuple(rules))


# --- table tests -----------------------------------------------------------------------------

VALID = [
    ("none", NONE),
    ("auto", AUTO),
    ("22", spec(R(22))),
    ("22:23", spec(R(22, 22, 23))),
    ("22,25", spec(R(22), R(25))),
    ("22-80", spec(R(22, 80))),
    ("22-80:32-90", spec(R(22, 80, 32))),
    ("80-80:80-80", spec(R(80))),
    ("080", spec(R(80))),
    ("1,65535", spec(R(1), R(65535))),
    ("192.0.2.1/22", spec(R(22, addr=V4("192.0.2.1")))),
    ("192.0.2.1%eth0/22", spec(R(22, addr=V4("192.0.2.1"), ifname="eth0"))),
    ("%eth0/22", spec(R(22, ifname="eth0"))),
    ("%abcdefghijklmno/22", spec(R(22, ifname="abcdefghijklmno"))),
    ("::1/80-80:80-80", spec(R(80, addr=V6("::1")))),
    ("2001:db8::5/8080-8081:80-81", spec(R(8080, 8081, 80, addr=V6("2001:db8::5")))),
    ("[::1]/80", spec(R(80, addr=V6("::1")))),
    ("[192.0.2.1]/80", spec(R(80, addr=V4("192.0.2.1")))),
    ("fe80::1%eth0/80", spec(R(80, addr=V6("fe80::1"), ifname="eth0"))),
    ("[fe80::1]%eth0/80", spec(R(80, addr=V6("fe80::1"), ifname="eth0"))),
    ("2000-5000,~3000-3010", spec(R(2000, 5000, excluded=[(3000, 3010)]))),
    ("~10,5-25", spec(R(5, 25, excluded=[(10, 10)]))),
    ("192.0.2.1/20-30,~25", spec(R(20, 30, addr=V4("192.0.2.1"), excluded=[(25, 25)]))),
    ("~20000-20010", spec(R(1, 65535, excluded=[(20000, 20010)], weak=True))),
    ("~30-40,~25", spec(R(1, 65535, excluded=[(25, 25), (30, 40)], weak=True))),
    ("~0-1023", spec(R(1, 65535, excluded=[(0, 1023)], weak=True))),
    ("%lo/~25", spec(R(1, 65535, ifname="lo", excluded=[(25, 25)], weak=True))),
]


@pytest.mark.parametrize("text,expected", VALID)
def test_portspec_parse_valid_table(text, expected):
    assert parse(text) == expected


INVALID = [
    "70000", "65536", "0", "0-10", "80:0", "80-70", "80-90:100", "80-90:100-111", "80:65536",
    "80,", ",80", "", "80 ", " 80", "+80", "80-", "-80", "a", "80:90:100", "80-90-100", "~",
    "~a", "80,~", "1.2.3.4", "1.2.3.4/", "/80", "%/80", "1.2.3.4%/80", "%abcdefghijklmnop/80",
    "::1/auto", "::1/none", "[::1/80", "localhost/80", "1.2.3.4/5/6", "fe80::1%/80", "~70000",
    "~5-1", "NONE", "Auto", "none,80", "80:~90",
]


@pytest.mark.parametrize("text", INVALID)
def test_portspec_parse_invalid_raises_one_line_error(text):
    with pytest.raises(PortSpecError) as e:
        parse(text)
    assert isinstance(e.value, ConfigError)
    assert "\n" not in str(e.value)


def test_portspec_error_message_names_the_spec():
    with pytest.raises(PortSpecError, match=r"^Invalid port specifier 70000$"):
        parse("70000")
    with pytest.raises(PortSpecError, match=r"^Invalid port specifier 192\.0\.2\.1/80-79$"):
        parse("192.0.2.1/80-79")


def test_portspec_overlapping_exclusions_rejected():
    for text in ("~1-10,~5", "~5,~5", "80,~1-10,~10-20"):
        with pytest.raises(PortSpecError, match=r"^Overlapping excluded ranges "):
            parse(text)


def test_portspec_all_is_passt_only():
    with pytest.raises(PortSpecError, match=r"^'all' port forwarding is only allowed for passt$"):
        parse("all")


@pytest.mark.parametrize("text", ["192.0.2.1/80", "%lo/80", "[::1]/80", "::1/80", "/80"])
def test_portspec_ns_side_rejects_address_part(text):
    with pytest.raises(PortSpecError, match=r"^Invalid port specifier "):
        parse(text, ns_side=True)


def test_portspec_ns_side_accepts_plain_lists():
    assert parse("80,~81,82-90:92-100", ns_side=True) == spec(
        R(80, excluded=[(81, 81)]), R(82, 90, 92, excluded=[(81, 81)]))
    assert parse("none", ns_side=True) == NONE
    assert parse("auto", ns_side=True) == AUTO


# --- accumulation and mode conflicts -------------------------------------------------------------

def test_portspec_lists_accumulate_in_order():
    fwd = parse_all(["80-80:60-60", "100-100:100-100", "::1/22"])
    assert fwd == spec(R(80, 80, 60), R(100), R(22, addr=V6("::1")))


def test_portspec_exclusions_stay_local_to_their_argument():
    fwd = parse_all(["80-90", "~85"])
    assert fwd.rules[0].excluded == ()
    assert fwd.rules[1].weak
    assert fwd.port_map()[85] == 85


def test_portspec_parse_all_of_nothing_is_none():
    assert parse_all([]) is None


@pytest.mark.parametrize("first,second", [
    ("80", "none"), ("80", "auto"), ("none", "none"), ("none", "auto"), ("auto", "auto"),
    ("auto", "none"),
])
def test_portspec_mode_after_any_mode_conflicts(first, second):
    with pytest.raises(PortSpecError,
                       match=rf"^Port forwarding mode '{second}' conflicts with previous mode$"):
        parse_all([first, second])


@pytest.mark.parametrize("first", ["none", "auto"])
def test_portspec_list_after_none_or_auto_conflicts(first):
    with pytest.raises(PortSpecError,
                       match=r"^Specific ports cannot be specified together with all/none/auto$"):
        parse_all([first, "80"])


def test_portspec_all_after_list_is_a_mode_conflict():
    with pytest.raises(PortSpecError, match=r"^Port forwarding mode 'all' conflicts"):
        accumulate(parse("80"), "all")


# --- expansion -----------------------------------------------------------------------------------

def test_portspec_port_map_ranges_and_targets():
    assert parse("22-24:32-34,80").port_map() == {22: 32, 23: 33, 24: 34, 80: 80}


def test_portspec_port_map_skips_exclusions():
    assert parse("5-25,~10-20").port_map() == {p: p for p in [5, 6, 7, 8, 9, 21, 22, 23, 24, 25]}


def test_portspec_port_map_exclusion_only_skips_ephemeral_and_excluded():
    m = parse("~1-48999").port_map()       # default ephemeral 49152-65535
    assert sorted(m) == list(range(49000, EPHEMERAL_DEFAULT[0]))
    m = parse("~2-65000").port_map(ephemeral=(65001, 65535))
    assert m == {1: 1}


def test_portspec_port_map_none_and_auto_are_empty():
    assert NONE.port_map() == {}
    assert AUTO.port_map() == {}


def test_portspec_port_map_later_rule_wins():
    assert parse_all(["80:8080", "80:9090"]).port_map() == {80: 9090}


def test_portspec_rule_target_last_and_delta():
    r = parse("22-80:32-90").rules[0]
    assert (r.target_last, r.delta) == (90, 10)


# --- Hypothesis: model of the grammar ------------------------------------------------------------

IFNAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=15)


@st.composite
def addr_parts(draw):
    """(text before '/', addr, ifname) or None for no address part."""
    kind = draw(st.sampled_from(["none", "v4", "v4b", "v6", "v6b", "if", "v4if", "v6if"]))
    if kind == "none":
        return None
    ifname = draw(IFNAME) if kind.endswith("if") else None
    if kind == "if":
        return f"%{ifname}", None, ifname
    addr = draw(st.ip_addresses(v=4 if kind.startswith("v4") else 6))
    text = f"[{addr}]" if kind.endswith("b") else str(addr)
    if ifname:
        text += f"%{ifname}"
    return text, addr, ifname


@st.composite
def exclusions(draw):
    """Disjoint inclusive ranges within 0..65535, in random order."""
    bounds = sorted(draw(st.sets(st.integers(0, 65535), max_size=8)))
    ranges, i = [], 0
    while i < len(bounds):
        if i + 1 < len(bounds) and draw(st.booleans()):
            ranges.append((bounds[i], bounds[i + 1]))
            i += 2
        else:
            ranges.append((bounds[i], bounds[i]))
            i += 1
    return draw(st.permutations(ranges))


@st.composite
def forwards(draw):
    """(item text, first, last, target_first)."""
    first = draw(st.integers(1, 65535))
    n = draw(st.integers(0, min(65535 - first, 300)))
    last = first + n
    mapped = draw(st.booleans())
    target = draw(st.integers(1, 65535 - n)) if mapped else first
    short = n == 0 and draw(st.booleans())
    src = f"{first}" if short else f"{first}-{last}"
    if mapped:
        src += f":{target}" if short else f":{target}-{target + n}"
    return src, first, last, target


@st.composite
def specs_with_model(draw):
    ap = draw(addr_parts())
    excl = draw(exclusions())
    fwds = draw(st.lists(forwards(), max_size=6, min_size=0 if excl else 1))
    items = [("x", r) for r in excl] + [("f", f) for f in fwds]
    items = draw(st.permutations(items))
    texts = []
    for kind, it in items:
        texts.append(f"~{it[0]}" if kind == "x" and it[0] == it[1]
                     else f"~{it[0]}-{it[1]}" if kind == "x" else it[0])
    text = ",".join(texts)
    addr = ifname = None
    if ap:
        prefix, addr, ifname = ap
        text = f"{prefix}/{text}"
    excluded = tuple(sorted(excl))
    fwd_in_order = [it for kind, it in items if kind == "f"]
    if fwd_in_order:
        rules = tuple(PortRule(addr, ifname, f, l, t, excluded) for _, f, l, t in fwd_in_order)
    else:
        rules = (PortRule(addr, ifname, 1, 65535, 1, excluded, weak=True),)
    return text, PortForward(FwdMode.SPEC, rules)


@settings(max_examples=300, deadline=None)
@given(specs_with_model())
def test_portspec_model_generated_specs_parse_to_model(case):
    text, model = case
    assert parse(text) == model


@settings(max_examples=100, deadline=None)
@given(st.lists(specs_with_model(), min_size=1, max_size=4))
def test_portspec_model_lists_accumulate_to_concatenation(cases):
    fwd = parse_all(text for text, _ in cases)
    assert fwd.rules == tuple(r for _, model in cases for r in model.rules)


GRAMMAR_TEXT = st.text(alphabet="0123456789-,:~/%[]abcdefnoultx.: ", max_size=30)


@settings(max_examples=500, deadline=None)
@given(st.one_of(GRAMMAR_TEXT, st.text(max_size=30)), st.booleans())
def test_portspec_arbitrary_text_parses_or_raises_portspecerror(text, ns_side):
    try:
        fwd = parse(text, ns_side=ns_side)
    except PortSpecError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(fwd, PortForward)
    for r in fwd.rules:
        assert 1 <= r.first <= r.last <= 65535
        assert 1 <= r.target_first <= r.target_last <= 65535
        if ns_side:
            assert r.addr is None and r.ifname is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(GRAMMAR_TEXT, st.sampled_from(["none", "auto", "all", "80"])),
                max_size=4))
def test_portspec_arbitrary_sequences_accumulate_or_raise_portspecerror(texts):
    try:
        parse_all(texts)
    except PortSpecError:
        pass


# ----------------------------------------------------------- auto with exclusions (extension)
def test_auto_takes_exclusions():
    spec = parse("auto,~22,~6000-6010")
    assert spec.mode is FwdMode.AUTO and spec.excluded == ((22, 22), (6000, 6010))
    assert spec.is_excluded(22) and spec.is_excluded(6005) and not spec.is_excluded(23)
    assert parse("auto", ns_side=True).excluded == ()
    assert parse("auto,~53", ns_side=True).excluded == ((53, 53),)


@pytest.mark.parametrize("text, message", [
    ("auto,80", r"^Specific ports cannot be specified together with all/none/auto$"),
    ("auto,~80,81", r"^Specific ports cannot be specified together with all/none/auto$"),
    ("auto,", r"^Invalid port specifier auto,$"),
    ("auto,~", r"^Invalid port specifier auto,~$"),
    ("auto,~10-20,~15", r"^Overlapping excluded ranges auto,~10-20,~15$"),
    ("auto,~70000", r"^Invalid port specifier auto,~70000$"),
])
def test_auto_exclusions_errors(text, message):
    with pytest.raises(PortSpecError, match=message):
        parse(text)


def test_auto_with_exclusions_conflicts_like_auto():
    with pytest.raises(PortSpecError, match=r"^Port forwarding mode 'auto' conflicts"):
        parse_all(["80", "auto,~22"])
    with pytest.raises(PortSpecError, match=r"^Specific ports cannot"):
        parse_all(["auto,~22", "80"])
