"""The `-c` control socket (`pasta.shell.control.ConfSock`) against real clients and the kernel.

The server runs in this process's epoll loop (a real `Engine`, a real `FwdListen` whose
listener operations only record what they are asked to open and close), on a UNIX socket in a
temporary directory: no namespace is needed. Clients are the reference `pesto` 2026 binary
(built by tests/install-deps.sh), pypasta's own `pypasta-pesto`, and raw sockets for byte-exact
transcripts (docs: pesto-protocol.md sections 3 and 4).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import env
from pasta.core import pesto
from pasta.core.fwd_rule import (FWD_CAP_ALL, FWD_DUAL_STACK_ANY, IPPROTO_TCP, IPPROTO_UDP,
                                 PIF_HOST, PIF_SPLICE, FwdRule, fwd_table)
from pasta.shell import control
from pasta.shell.engine import EPOLLIN, Engine
from pasta.shell.fwd_listen import FwdListen

PESTO = "/opt/passt-2026/pesto"
DEADLINE_S = 10.0


class Rec:
    """What a recorded listener looks like to FwdListen (it may set a new `target`/`taddr`)."""

    def __init__(self, sock, target, taddr):
        self.sock, self.target, self.taddr = sock, target, taddr

    def __iter__(self):
        return iter((self.sock, self.target, self.taddr))


class Ops:
    """Listener operations that record instead of binding."""

    def __init__(self):
        self.open = set()

    def ops(self):
        def add(sock, target, taddr=None):
            lst = Rec(sock, target, taddr)
            self.open.add(lst)
            return lst

        def remove(lst):
            self.open.discard(lst)
        return {(pif, proto): (add, remove) for pif in (PIF_HOST, PIF_SPLICE)
                for proto in (IPPROTO_TCP, IPPROTO_UDP)}


def rule(port, proto=IPPROTO_TCP, pif=PIF_HOST, **kw):
    kw.setdefault("flags", FWD_DUAL_STACK_ANY)
    return FwdRule(pif, proto, port, port, port, **kw)


@pytest.fixture
def server(tmp_path):
    """(engine, conf, fwd, ops, path): a control socket over an initial table with TCP 8080."""
    path = str(tmp_path / "pasta.sock")
    engine = Engine()
    ops = Ops()
    fwd = FwdListen(engine, fwd_table(FWD_CAP_ALL, [rule(8080)]), ops.ops())
    conf = control.ConfSock(engine, control.sock_unix(path), fwd, (PIF_HOST, PIF_SPLICE))
    conf.start()
    yield engine, conf, fwd, ops, path
    conf.close()
    fwd.close()
    engine.close()


def run_until(engine, done, timeout=DEADLINE_S):
    """Run the loop until done() is true (checked every 10 ms); fail after `timeout`."""
    end = time.monotonic() + timeout

    def tick():
        if done():
            engine.stop(0)
        elif time.monotonic() > end:
            engine.stop(1)
        else:
            engine.call_later(0.01, tick)
    engine.exit_code = None
    engine.call_later(0, tick)
    assert engine.run() == 0, "timed out"


def run_client(engine, argv):
    """Run a client process to completion while the loop serves it; (rc, stdout, stderr)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_until(engine, lambda: p.poll() is not None)
        out, err = p.communicate(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err


def pypasta_pesto():
    return [sys.executable, "-m", "pasta.front.pesto"]


def test_reference_pesto_shows_the_table(server):
    engine, _conf, fwd, _ops, path = server
    assert os.path.exists(PESTO), env.FIX
    rc, out, err = run_client(engine, [PESTO, path])
    assert (rc, err) == (0, "")
    assert out == (f"passt/pasta configuration ({path})\n  HOST\n    TCP [*]:8080  =>  8080 \n"
                   "  SPLICE\n")
    assert fwd.table.rules == (rule(8080),)


@pytest.mark.parametrize("client", ["pesto", "pypasta-pesto"])
def test_clients_add_and_delete_rules(server, client):
    engine, conf, fwd, ops, path = server
    argv = [PESTO] if client == "pesto" else pypasta_pesto()
    rc, _out, err = run_client(engine, argv + ["-A", "-t", "0.0.0.0/9090:10.89.0.2/80",
                                               "-u", "53", path])
    assert (rc, err) == (0, "")
    run_until(engine, lambda: conf.client is None and len(fwd.table.rules) == 3)
    t = FwdRule(PIF_HOST, IPPROTO_TCP, 9090, 9090, 80, ipaddress.IPv4Address("0.0.0.0"),
                ipaddress.IPv4Address("10.89.0.2"), flags=0)
    assert fwd.table.rules == (rule(8080), t, rule(53, IPPROTO_UDP))
    opened = {(s.proto, s.port, target, taddr) for s, target, taddr in ops.open}
    assert (IPPROTO_TCP, 9090, 80, bytes((10, 89, 0, 2))) in opened
    assert (IPPROTO_UDP, 53, 53, None) in opened
    rc, _out, err = run_client(engine, argv + ["-D", "-t", "8080", path])
    assert (rc, err) == (0, "")
    run_until(engine, lambda: conf.client is None and len(fwd.table.rules) == 2)
    assert {(s.proto, s.port) for s, _, _ in ops.open} == {(IPPROTO_TCP, 9090),
                                                            (IPPROTO_UDP, 53)}


def test_transcript_is_byte_exact_and_a_lone_terminator_empties_the_tables(server):
    """pesto-protocol.md 3.5: the 351-byte dump of one dual-stack TCP 8080 rule."""
    engine, conf, fwd, _ops, path = server
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.setblocking(False)
    got = bytearray()

    def read():
        try:
            got.extend(c.recv(4096))
        except BlockingIOError:
            pass
        return len(got) >= 351
    run_until(engine, read)
    expected = (b"basil:s\0" + bytes.fromhex("00000002 00000080 00000010") + b"\x01"
                + b"HOST".ljust(128, b"\0") + bytes.fromhex("0000003f 00000001")
                + bytes(48) + bytes.fromhex("1f90 1f90 1f90 06 01")
                + b"\x03" + b"SPLICE".ljust(128, b"\0") + bytes.fromhex("0000003f 00000000")
                + b"\x00")
    assert bytes(got) == expected and len(expected) == 351
    c.sendall(b"\x00")
    c.shutdown(socket.SHUT_RDWR)
    run_until(engine, lambda: conf.client is None and fwd.table.rules == ())
    c.close()


def test_rejected_update_changes_nothing(server):
    """Exact duplicates conflict: the whole transaction is refused, the table stays."""
    engine, conf, fwd, ops, path = server
    before = (fwd.table, set(ops.open))
    dup = pesto.pack_rule(rule(9000))
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.sendall(b"\x01" + (2).to_bytes(4, "big") + dup + dup + b"\x00")
    c.shutdown(socket.SHUT_WR)
    run_until(engine, lambda: conf.client is None and conf.reader is None and _drained(c))
    c.close()
    assert (fwd.table, set(ops.open)) == before


def _drained(c) -> bool:
    c.setblocking(False)
    try:
        while c.recv(65536):
            pass
        return True                 # EOF: the server closed it
    except BlockingIOError:
        return False


def test_stalled_client_does_not_block_traffic_or_the_next_client(server, monkeypatch):
    """A client that sends half a rule and stops: the loop keeps serving other fds, and once the
    client times out the next client (waiting in the backlog) is served."""
    monkeypatch.setattr(control, "CONF_TIMEOUT_S", 0.5)
    engine, conf, fwd, _ops, path = server
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.connect(path)
    run_until(engine, lambda: conf.client is not None)
    stalled.sendall(b"\x01" + (1).to_bytes(4, "big") + bytes(20))
    a, b = socket.socketpair()
    echoed = []

    def echo(_ev):
        echoed.append(a.recv(100))
    engine.add(a.fileno(), EPOLLIN, echo)
    b.send(b"ping")
    run_until(engine, lambda: echoed == [b"ping"], timeout=2)
    assert conf.client is not None                  # still stalled, and traffic went on
    p = subprocess.Popen([PESTO, "-A", "-t", "7000", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        run_until(engine, lambda: p.poll() is not None and conf.client is None
                  and len(fwd.table.rules) == 2)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    assert p.returncode == 0
    assert fwd.table.rules == (rule(8080), rule(7000))
    engine.remove(a.fileno())
    a.close()
    b.close()
    stalled.close()


def test_socket_path_in_use_and_stale_file(tmp_path):
    path = str(tmp_path / "s")
    first = control.sock_unix(path)
    first.listen(0)
    with pytest.raises(control.SetupError, match=f"Socket path {path} already in use"):
        control.sock_unix(path)
    first.close()                       # the file stays: the next instance replaces it
    assert os.path.exists(path)
    control.sock_unix(path).close()
