"""podman_compat.api: slirp4netns's API-socket protocol, request bytes -> exact reply bytes.

A small in-test backend stands in for the engine's host listeners; it records calls and refuses
what a real bind would refuse (a (proto, addr, port) already listening, ports marked busy).
The reply strings are cross-checked against the text inside the installed slirp4netns binary.
"""

from __future__ import annotations

import json
import shutil
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podman_compat import api
from podman_compat.api import (FIRST_ID, MAX_REQUEST_SIZE, AddHostFwd, ApiError, HostFwd,
                               HostFwdRefused, HostFwdTable, ListHostFwd, RemoveHostFwd,
                               handle_request, parse_request, request_complete)
from pasta.util.errors import SetupError

GUEST = IPv4Address("10.0.2.100")


class FakeBackend:
    """Host listeners as a dict; refuses duplicates and `busy` ports like bind(2) would."""

    def __init__(self, busy=(), fail_remove=False, error=HostFwdRefused):
        self.listening = {}
        self.calls = []
        self.busy = set(busy)
        self.fail_remove = fail_remove
        self.error = error

    def add_hostfwd(self, proto, host_addr, host_port, guest_addr, guest_port):
        self.calls.append(("add", proto, str(host_addr), host_port, str(guest_addr), guest_port))
        key = (proto, host_addr, host_port)
        if key in self.listening or host_port in self.busy:
            raise self.error("Address already in use")
        self.listening[key] = (guest_addr, guest_port)

    def remove_hostfwd(self, proto, host_addr, host_port):
        self.calls.append(("remove", proto, str(host_addr), host_port))
        if self.fail_remove:
            raise self.error("no such listener")
        del self.listening[(proto, host_addr, host_port)]


def req(execute=None, **arguments) -> bytes:
    body = {} if execute is None else {"execute": execute}
    if arguments:
        body["arguments"] = arguments
    return json.dumps(body).encode()


def add(proto="tcp", host_addr="0.0.0.0", host_port=8080, guest_addr="", guest_port=80, **kw):
    args = dict(proto=proto, host_addr=host_addr, host_port=host_port, guest_addr=guest_addr,
                guest_port=guest_port, **kw)
    return req("add_hostfwd", **{k: v for k, v in args.items() if v is not MISSING})


MISSING = object()


def err(desc: str) -> bytes:
    return b'{"error":{"desc":"bad request: ' + desc.encode() + b'"}}'


def serve(*requests, backend=None, table=None):
    backend = FakeBackend() if backend is None else backend
    table = HostFwdTable(GUEST) if table is None else table
    return [handle_request(r, backend, table) for r in requests], backend, table


# --- the clients' own traffic (real-clients.md 1.4, 2) -----------------------------------------

def test_api_podman_add_hostfwd():
    lines = [
        b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1",'
        b'"host_port":18183,"guest_addr":"","guest_port":83}}\n',
        b'{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1",'
        b'"host_port":18182,"guest_addr":"","guest_port":53}}\n',
        b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0",'
        b'"host_port":18181,"guest_addr":"","guest_port":80}}\n',
    ]
    replies, backend, _ = serve(*lines)
    assert replies == [b'{"return":{"id":1}}', b'{"return":{"id":2}}', b'{"return":{"id":3}}']
    assert backend.calls == [("add", "tcp", "127.0.0.1", 18183, "10.0.2.100", 83),
                             ("add", "udp", "127.0.0.1", 18182, "10.0.2.100", 53),
                             ("add", "tcp", "0.0.0.0", 18181, "10.0.2.100", 80)]


def test_api_podman_sees_busy_port_error():
    replies, _, table = serve(add(host_port=18181), backend=FakeBackend(busy={18181}))
    assert replies == [b'{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}']
    assert "error" in json.loads(replies[0]) and len(table) == 0


def test_api_rootlesskit_add_and_remove():
    replies, backend, table = serve(
        b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1",'
        b'"host_port":34315,"guest_addr":"10.0.2.100","guest_port":80}}',
        b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1",'
        b'"host_port":34316,"guest_addr":"10.0.2.100","guest_port":81}}',
        b'{"execute":"remove_hostfwd","arguments":{"id":2}}')
    assert replies == [b'{"return":{"id":1}}', b'{"return":{"id":2}}', b'{"return":{}}']
    assert backend.calls[-1] == ("remove", "tcp", "127.0.0.1", 34316)
    assert [f.id for f in table] == [1]


# --- add_hostfwd arguments ----------------------------------------------------------------------

ADD_OK = [
    # request, backend call (proto, host, hport, guest, gport)
    (add(), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(proto="udp"), ("udp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(host_addr=MISSING), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(host_addr=""), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(host_addr=123), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),     # not a string: missing
    (add(host_addr=None), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(host_addr="\u0000127.0.0.1"), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(host_addr="127.0.0.1\u0000junk"), ("tcp", "127.0.0.1", 8080, "10.0.2.100", 80)),
    (add(host_addr="192.0.2.1"), ("tcp", "192.0.2.1", 8080, "10.0.2.100", 80)),
    (add(guest_addr=MISSING), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(guest_addr=[]), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(guest_addr="10.0.2.50"), ("tcp", "0.0.0.0", 8080, "10.0.2.50", 80)),
    (add(host_port=80.9, guest_port=1.5), ("tcp", "0.0.0.0", 80, "10.0.2.100", 1)),
    (add(host_port=65535, guest_port=1), ("tcp", "0.0.0.0", 65535, "10.0.2.100", 1)),
    (b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8e1,"guest_port":2E1}}',
     ("tcp", "0.0.0.0", 80, "10.0.2.100", 20)),
    (add(proto="tcp\u0000x"), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
    (add(extra="ignored"), ("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)),
]


@pytest.mark.parametrize("request_bytes,call", ADD_OK, ids=[r.decode() for r, _ in ADD_OK])
def test_api_add_hostfwd_accepts(request_bytes, call):
    replies, backend, table = serve(request_bytes)
    assert replies == [b'{"return":{"id":1}}']
    assert backend.calls == [("add",) + call]
    (fwd,) = table.entries()
    assert (fwd.proto, str(fwd.host_addr), fwd.host_port, str(fwd.guest_addr),
            fwd.guest_port) == call


ADD_BAD = [
    (add(proto="TCP"), "add_hostfwd: bad arguments.proto"),
    (add(proto="sctp"), "add_hostfwd: bad arguments.proto"),
    (add(proto=""), "add_hostfwd: bad arguments.proto"),
    (add(proto=MISSING), "add_hostfwd: bad arguments.proto"),    # slirp4netns itself crashes
    (add(proto=6), "add_hostfwd: bad arguments.proto"),
    (req("add_hostfwd"), "add_hostfwd: bad arguments.proto"),
    (b'{"execute":"add_hostfwd","arguments":"tcp"}', "add_hostfwd: bad arguments.proto"),
    (add(host_addr="::1"), "add_hostfwd: bad arguments.host_addr"),
    (add(host_addr="localhost"), "add_hostfwd: bad arguments.host_addr"),
    (add(host_addr="1.2.3"), "add_hostfwd: bad arguments.host_addr"),
    (add(host_addr="01.2.3.4"), "add_hostfwd: bad arguments.host_addr"),
    (add(host_addr=" 1.2.3.4"), "add_hostfwd: bad arguments.host_addr"),
    (add(host_addr="1.2.3.4 "), "add_hostfwd: bad arguments.host_addr"),
    (add(host_port=MISSING), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=0), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=0.5), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=-0.5), "add_hostfwd: bad arguments.host_port"),
    (add(host_port="8080"), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=True), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=-1), "add_hostfwd: bad arguments.host_port"),       # we refuse: see docstring
    (add(host_port=65536), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=70000), "add_hostfwd: bad arguments.host_port"),
    (add(host_port=1e300), "add_hostfwd: bad arguments.host_port"),
    (add(guest_addr="10.0.2.256"), "add_hostfwd: bad arguments.guest_addr"),
    (add(guest_addr="fd00::100"), "add_hostfwd: bad arguments.guest_addr"),
    (add(guest_port=MISSING), "add_hostfwd: bad arguments.guest_port"),
    (add(guest_port=0), "add_hostfwd: bad arguments.guest_port"),
    (add(guest_port=65536), "add_hostfwd: bad arguments.guest_port"),
    (add(guest_port=None), "add_hostfwd: bad arguments.guest_port"),
    # checked in slirp4netns's order: proto, host_addr, host_port, guest_addr, guest_port
    (add(proto="x", host_addr="x", host_port=0, guest_addr="x", guest_port=0),
     "add_hostfwd: bad arguments.proto"),
    (add(host_addr="x", host_port=0, guest_addr="x", guest_port=0),
     "add_hostfwd: bad arguments.host_addr"),
    (add(host_port=0, guest_addr="x", guest_port=0), "add_hostfwd: bad arguments.host_port"),
    (add(guest_addr="x", guest_port=0), "add_hostfwd: bad arguments.guest_addr"),
]


@pytest.mark.parametrize("request_bytes,desc", ADD_BAD, ids=[r.decode() for r, _ in ADD_BAD])
def test_api_add_hostfwd_refuses(request_bytes, desc):
    replies, backend, table = serve(request_bytes)
    assert replies == [err(desc)]
    assert backend.calls == [] and len(table) == 0 and table.next_id == FIRST_ID


def test_api_add_failure_does_not_consume_an_id():
    backend = FakeBackend(busy={9000})
    replies, _, table = serve(add(host_port=9000), add(host_port=9001), add(host_port=9001),
                              add(host_port=9002), backend=backend)
    failed = err("add_hostfwd: slirp_add_hostfwd failed")
    assert replies == [failed, b'{"return":{"id":1}}', failed, b'{"return":{"id":2}}']
    assert [f.host_port for f in table] == [9001, 9002]


@pytest.mark.parametrize("error", [HostFwdRefused, SetupError, OSError, PermissionError])
def test_api_backend_refusals_become_error_replies(error):
    replies, _, _ = serve(add(), backend=FakeBackend(busy={8080}, error=error))
    assert replies == [err("add_hostfwd: slirp_add_hostfwd failed")]


def test_api_backend_bugs_propagate():
    with pytest.raises(ZeroDivisionError):
        serve(add(), backend=FakeBackend(busy={8080}, error=ZeroDivisionError))


# --- list_hostfwd and remove_hostfwd ------------------------------------------------------------

def test_api_list_hostfwd_shape():
    replies, _, _ = serve(req("list_hostfwd"),
                          add(host_port=18080), add(proto="udp", host_addr="127.0.0.1",
                                                    host_port=5353, guest_addr="10.0.2.7",
                                                    guest_port=53),
                          req("list_hostfwd"), req("list_hostfwd", ignored=1))
    assert replies[0] == b'{"entries":[]}'
    expected = (b'{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":18080,'
                b'"guest_addr":"10.0.2.100","guest_port":80},{"id":2,"proto":"udp",'
                b'"host_addr":"127.0.0.1","host_port":5353,"guest_addr":"10.0.2.7",'
                b'"guest_port":53}]}')
    assert replies[3] == replies[4] == expected


def test_api_list_hostfwd_with_return_wrapper():
    table = HostFwdTable("10.0.3.100", list_with_return=True)
    replies, _, _ = serve(req("list_hostfwd"), add(), req("list_hostfwd"), table=table)
    assert replies[0] == b'{"entries":[],"return":{"entries":[]}}'
    body = json.loads(replies[2])
    assert body["entries"] == body["return"]["entries"] == [
        {"id": 1, "proto": "tcp", "host_addr": "0.0.0.0", "host_port": 8080,
         "guest_addr": "10.0.3.100", "guest_port": 80}]


def test_api_remove_hostfwd():
    replies, backend, table = serve(
        add(host_port=1), add(host_port=2), add(host_port=3),
        req("remove_hostfwd", id=2), req("remove_hostfwd", id=2), req("list_hostfwd"),
        add(host_port=2))
    assert replies[3] == b'{"return":{}}'
    assert replies[4] == err("remove_hostfwd: bad arguments.id")
    assert [e["id"] for e in json.loads(replies[5])["entries"]] == [1, 3]
    assert replies[6] == b'{"return":{"id":4}}'                  # ids are never reused
    assert ("tcp", IPv4Address("0.0.0.0"), 2) in backend.listening


REMOVE_BAD = [
    req("remove_hostfwd"),
    req("remove_hostfwd", id=0),
    req("remove_hostfwd", id=99),
    req("remove_hostfwd", id="1"),
    req("remove_hostfwd", id=-1),
    req("remove_hostfwd", id=True),
    b'{"execute":"remove_hostfwd","arguments":[1]}',
]


@pytest.mark.parametrize("request_bytes", REMOVE_BAD, ids=[r.decode() for r in REMOVE_BAD])
def test_api_remove_hostfwd_unknown_id(request_bytes):
    replies, _, table = serve(add(), request_bytes)
    assert replies[1] == err("remove_hostfwd: bad arguments.id")
    assert len(table) == 1


def test_api_remove_hostfwd_truncates_the_id():
    replies, _, table = serve(add(), req("remove_hostfwd", id=1.9))
    assert replies[1] == b'{"return":{}}' and len(table) == 0


def test_api_remove_failure_keeps_the_entry():
    backend = FakeBackend(fail_remove=True)
    replies, _, table = serve(add(), req("remove_hostfwd", id=1), backend=backend)
    assert replies[1] == err("remove_hostfwd: slirp_remove_hostfwd failed")
    assert [f.id for f in table] == [1]


# --- framing and JSON as slirp4netns (parson) reads it ------------------------------------------

FRAMING = [
    (b"", "cannot parse JSON"),
    (b" \n", "cannot parse JSON"),
    (b"{", "cannot parse JSON"),
    (b"hello", "cannot parse JSON"),
    (b"\xff\xfe{}", "cannot parse JSON"),
    (b'{"execute":"list_hostfwd",}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","x":NaN}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","x":-Infinity}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","x":1e999}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","x":01}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","execute":"list_hostfwd"}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","x":"\\ud800"}', "cannot parse JSON"),
    (b'{"execute":"list_hostfwd","x":"\xc3"}', "cannot parse JSON"),
    (b'{"exec\x00ute":"list_hostfwd"}', "cannot parse JSON"),
    (b"[" * 2000 + b"]" * 2000, "cannot parse JSON"),       # deeper than we recurse
    (b"[]", "json_object() failed"),
    (b"1", "json_object() failed"),
    (b'"add_hostfwd"', "json_object() failed"),
    (b"null", "json_object() failed"),
    (b"{}", "no execute found"),
    (b'{"arguments":{}}', "no execute found"),
    (b'{"execute":1}', "no execute found"),
    (b'{"execute":null}', "no execute found"),
    (b'{"execute":["list_hostfwd"]}', "no execute found"),
    (b'{"Execute":"list_hostfwd"}', "no execute found"),
    (b'{"execute":""}', "unknown execute"),
    (b'{"execute":"LIST_HOSTFWD"}', "unknown execute"),
    (b'{"execute":"list_hostfwd "}', "unknown execute"),
    (b'{"execute":"quit"}', "unknown execute"),
    (b"x" * MAX_REQUEST_SIZE, "too large message"),
    (b'{"execute":"list_hostfwd"}' + b" " * (MAX_REQUEST_SIZE - 26), "too large message"),
]


@pytest.mark.parametrize("request_bytes,desc", FRAMING,
                         ids=[repr(r[:40]) for r, _ in FRAMING])
def test_api_framing_errors(request_bytes, desc):
    replies, backend, _ = serve(request_bytes)
    assert replies == [err(desc)] and backend.calls == []


LIST_OK = [
    b'{"execute":"list_hostfwd"}',
    b'{"execute":"list_hostfwd"}\n',                                   # Podman's newline
    b' \t\r\n\x0b\x0c{"execute":"list_hostfwd"}',                      # C isspace() skipped
    b'\xef\xbb\xbf{"execute":"list_hostfwd"}',                         # UTF-8 BOM
    b'{"execute":"list_hostfwd"} trailing garbage }}}',                 # only the first value
    b'{"execute":"list_hostfwd"}{"execute":"quit"}',
    b'{"execute":"list_hostfwd"}\x00{"execute":"quit"}',               # a C string ends at NUL
    b'{"execute":"list_hostfwd\\u0000zzz"}',                            # strcmp stops at NUL
    b'{"execute":"list_hostfwd","arguments":{"x":[1,2,{"y":null}],"z":"\x01"}}',
    b'{"execute":"list_hostfwd","x":"caf\xc3\xa9 \\ud83d\\ude00"}',
    b'{"execute":"list_hostfwd"}' + b" " * (MAX_REQUEST_SIZE - 27),    # 4095 bytes: fits
]


@pytest.mark.parametrize("request_bytes", LIST_OK, ids=[repr(r[:40]) for r in LIST_OK])
def test_api_framing_accepts(request_bytes):
    replies, _, _ = serve(request_bytes)
    assert replies == [b'{"entries":[]}']


def test_api_replies_are_compact_without_newline():
    replies, _, _ = serve(add(), req("list_hostfwd"), req("remove_hostfwd", id=1), b"{")
    for reply in replies:
        body = json.loads(reply)
        assert isinstance(body, dict)
        assert reply == json.dumps(body, separators=(",", ":")).encode()   # no blanks, no newline


def test_api_replies_are_slirp4netns_own_strings():
    """Every fixed reply we send is a string constant inside the real binary."""
    path = shutil.which("slirp4netns")
    if path is None:
        pytest.fail("slirp4netns is not installed: run tests/install-deps.sh", pytrace=False)
    blob = Path(path).read_bytes()
    descs = [api.TOO_LARGE, api.CANNOT_PARSE, api.NOT_OBJECT, api.NO_EXECUTE,
             api.UNKNOWN_EXECUTE, api.ADD_FAILED, api.REMOVE_BAD_ID, api.REMOVE_FAILED] + [
        api._add_bad(a) for a in ("proto", "host_addr", "host_port", "guest_addr", "guest_port")]
    for desc in descs:
        assert ApiError(desc).reply in blob, desc
    assert b'{"return":{"id":%d}}' in blob and b'{"return":{}}' in blob
    assert MAX_REQUEST_SIZE == 4096                     # api.c: ctx->buflen


# --- the pure pieces on their own ---------------------------------------------------------------

def test_api_parse_request_actions():
    assert parse_request(add()) == AddHostFwd("tcp", IPv4Address("0.0.0.0"), 8080, None, 80)
    assert parse_request(add(guest_addr="10.0.2.9")).guest_addr == IPv4Address("10.0.2.9")
    assert parse_request(req("list_hostfwd")) == ListHostFwd()
    assert parse_request(req("remove_hostfwd", id=3)) == RemoveHostFwd(3)
    assert parse_request(req("remove_hostfwd")) == RemoveHostFwd(0)
    with pytest.raises(ApiError) as info:
        parse_request(b"[]")
    assert info.value.desc == "bad request: json_object() failed"
    assert info.value.reply == err("json_object() failed") and "\n" not in str(info.value)


def test_api_table_direct_use():
    backend = FakeBackend()
    table = HostFwdTable(GUEST)
    assert table.next_id == FIRST_ID == 1
    fwd = table.add(backend, "udp", IPv4Address("127.0.0.1"), 53, None, 5353)
    assert fwd == HostFwd(1, "udp", IPv4Address("127.0.0.1"), 53, GUEST, 5353)
    assert table.get(1) is fwd and table.get(2) is None and table.next_id == 2
    assert fwd.entry() == {"id": 1, "proto": "udp", "host_addr": "127.0.0.1", "host_port": 53,
                           "guest_addr": "10.0.2.100", "guest_port": 5353}
    with pytest.raises(HostFwdRefused):
        table.add(backend, "udp", IPv4Address("127.0.0.1"), 53, None, 1)
    assert table.next_id == 2 and len(table) == 1
    assert table.remove(backend, 1) is fwd and len(table) == 0
    with pytest.raises(KeyError):
        table.remove(backend, 1)
    with pytest.raises(TypeError):
        table.execute("list_hostfwd", backend)          # type: ignore[arg-type]


@pytest.mark.parametrize("data,complete", [
    (b"", False),
    (b'{"execute":"add_hostfwd","argu', False),
    (b'{"execute":"list_hostfwd"}', True),
    (b'{"execute":"list_hostfwd"}\n', True),
    (b"[]", True),
    (b"{\x00", True),                                  # nothing after a NUL can matter
    (b" " * MAX_REQUEST_SIZE, True),
    (b" " * (MAX_REQUEST_SIZE - 1), False),
])
def test_api_request_complete(data, complete):
    assert request_complete(data) is complete


@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.floats() | st.integers()
                              | st.text(max_size=8),
                              lambda c: st.lists(c, max_size=4)
                              | st.dictionaries(st.sampled_from(
                                  ["execute", "arguments", "proto", "host_addr", "host_port",
                                   "guest_addr", "guest_port", "id", "x"]), c, max_size=5),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
@settings(max_examples=500, deadline=None)
def test_api_any_request_gets_one_json_reply(data):
    reply = handle_request(data, FakeBackend(), HostFwdTable(GUEST))
    body = json.loads(reply)
    assert isinstance(body, dict) and len(set(body) & {"return", "error", "entries"}) == 1
    if "error" in body:
        assert body["error"]["desc"].startswith("bad request: ")


@given(st.dictionaries(st.sampled_from(["proto", "host_addr", "host_port", "guest_addr",
                                        "guest_port"]),
                       st.one_of(st.sampled_from(["tcp", "udp", "", "127.0.0.1", "10.0.2.5"]),
                                 st.integers(-70000, 70000), st.floats(allow_nan=False,
                                                                       allow_infinity=False),
                                 st.none(), st.booleans())))
@settings(max_examples=500, deadline=None)
def test_api_add_either_succeeds_with_valid_values_or_changes_nothing(arguments):
    backend = FakeBackend()
    table = HostFwdTable(GUEST)
    reply = handle_request(json.dumps({"execute": "add_hostfwd", "arguments": arguments}).encode(),
                           backend, table)
    if reply == b'{"return":{"id":1}}':
        (fwd,) = table.entries()
        assert fwd.proto in ("tcp", "udp")
        assert 1 <= fwd.host_port <= 65535 and 1 <= fwd.guest_port <= 65535
        assert list(backend.listening) == [(fwd.proto, fwd.host_addr, fwd.host_port)]
    else:
        assert json.loads(reply)["error"] and len(table) == 0 and not backend.listening
