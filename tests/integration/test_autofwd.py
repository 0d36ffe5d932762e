"""`auto` port forwarding, the default of -t/-u/-T/-U (issue 5; pasta-reference.md 12.3).

Covered, with no port options unless the test is about them: a server started later inside the
namespace (socat, bound to all addresses) becomes reachable from the host's 127.0.0.1 and ::1
(spliced) and from the peer (through the tap) within 2 s, and is refused again within 2 s of
closing; a server started on the host's 127.0.0.1 appears on the namespace's 127.0.0.1 the
same way; the same for UDP (udpecho.py servers); a namespace service bound only to its
127.0.0.1 stays private unless --host-lo-to-ns-lo; pypasta's own listeners are never forwarded
back (no loops); `auto,~PORT` exclusions; UDP mirroring of TCP listeners. Root and rootless.

The namespace runs `sleep`; servers and clients are started inside it with `nsenter -n` on
its PID 1 (found among pypasta's descendants). Latencies are measured by tests/helpers/probe.py,
which starts its clock once the server is known to be listening (or known to be dead).
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from helpers import env, wait_until
from helpers.proc import descendants

LIMIT_S = 2.0


class AutoNs:
    """A pypasta namespace running `sleep`, with helpers to act inside it."""

    def __init__(self, t, user: str, args=()):
        self.t = t
        self.py = env.python_for("root")
        self.probe_py = t.copy_helper("probe.py")
        self.udpecho = t.copy_helper("udpecho.py")
        ready = os.path.join(t.workdir, "auto-ready")
        self.log = os.path.join(t.workdir, "auto.log")
        self.p = t.pypasta(["--config-net", "-d", "-l", self.log, *args, "--", "sh", "-c",
                            f"touch {ready}; exec sleep 600"], user=user)
        wait_until(lambda: os.path.exists(ready) or self.p.poll() is not None, 15, "namespace")
        assert self.p.poll() is None, t.logs(self.p)
        mine = os.readlink(f"/proc/{self.p.pid}/ns/net")
        inside = [pid for pid in descendants([self.p.pid])
                  if _netns(pid) not in (None, mine)]
        assert inside, "no process inside the namespace"
        self.pid = str(min(inside))

    def enter(self, cmd: list) -> list:
        return ["nsenter", "-t", self.pid, "-n", *cmd]

    def popen(self, cmd: list, name: str):
        return self.t.host_popen(self.enter(cmd), name=name)

    def run(self, cmd: list, **kw):
        return self.t.host(self.enter(cmd), **kw)

    def wait_listening(self, port: int, proto: str = "tcp") -> None:
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        wait_until(lambda: self.run(["ss", flag, f"sport = :{port}"]).stdout.strip(), 10,
                   f"{proto} listener on {port} in the namespace")

    def probe(self, where: str, proto: str, addr: str, port: int, want: str,
              expect: str = "") -> float:
        """Seconds until `want` ("up"/"down") as seen from "host", "ns" or "peer"."""
        cmd = [self.py, self.probe_py, proto, addr, str(port), want, "--timeout", "10"]
        if expect:
            cmd += ["--expect", expect]
        if where == "ns":
            r = self.run(cmd, timeout=20, check=False)
        elif where == "host":
            r = self.t.host(cmd, timeout=20, check=False)
        else:
            r = self.t.peer(cmd, timeout=20, check=False)
        m = re.fullmatch(r"ok (\d+\.\d+)", r.stdout.strip())
        assert m, f"{where} {proto} {addr}:{port} {want}: {r.stdout}{r.stderr}"
        return float(m[1])

    def host_listeners(self, proto: str = "tcp") -> str:
        return self.t.host(["ss", "-Hltn" if proto == "tcp" else "-Hlun"]).stdout

    def ns_listeners(self, proto: str = "tcp") -> str:
        return self.run(["ss", "-Hltn" if proto == "tcp" else "-Hlun"]).stdout


def _netns(pid: int):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _stop(p) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)


def _ports(ss_output: str) -> set:
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in ss_output.splitlines()}


def test_tcp_servers_come_and_go_on_both_sides(topology, user):
    t = topology
    ns = AutoNs(t, user)
    # Namespace -> host: a dual-stack server bound to all addresses, started after pypasta.
    srv = ns.popen(["socat", "TCP6-LISTEN:9100,ipv6only=0,fork,reuseaddr",
                    "SYSTEM:echo ns-tcp"], name="ns-tcp")
    ns.wait_listening(9100)
    assert ns.probe("host", "tcp", "127.0.0.1", 9100, "up", "ns-tcp") < LIMIT_S
    ns.probe("host", "tcp", "::1", 9100, "up", "ns-tcp")
    ns.probe("peer", "tcp", t.host_ip4, 9100, "up", "ns-tcp")        # through the tap
    ns.probe("peer", "tcp", t.host_ip6, 9100, "up", "ns-tcp")
    _stop(srv)
    assert ns.probe("host", "tcp", "127.0.0.1", 9100, "down") < LIMIT_S
    ns.probe("host", "tcp", "::1", 9100, "down")
    assert 9100 not in _ports(ns.host_listeners())
    # Host -> namespace: a server on the host's 127.0.0.1 appears on the namespace's.
    hsrv = t.host_popen(["socat", "TCP4-LISTEN:9200,bind=127.0.0.1,fork,reuseaddr",
                         "SYSTEM:echo host-tcp"], name="host-tcp")
    t.wait_listening("host", 9200)
    assert ns.probe("ns", "tcp", "127.0.0.1", 9200, "up", "host-tcp") < LIMIT_S
    _stop(hsrv)
    assert ns.probe("ns", "tcp", "127.0.0.1", 9200, "down") < LIMIT_S
    assert 9200 not in _ports(ns.ns_listeners())


def test_udp_servers_come_and_go_on_both_sides(topology, user):
    t = topology
    ns = AutoNs(t, user)
    srv = ns.popen([ns.py, ns.udpecho, "server", "0.0.0.0", "9300"], name="ns-udp")
    ns.wait_listening(9300, "udp")
    assert ns.probe("host", "udp", "127.0.0.1", 9300, "up") < LIMIT_S
    ns.probe("peer", "udp", t.host_ip4, 9300, "up")                   # through the tap
    _stop(srv)
    assert ns.probe("host", "udp", "127.0.0.1", 9300, "down") < LIMIT_S
    hsrv = t.host_popen([ns.py, ns.udpecho, "server", "127.0.0.1", "9400"], name="host-udp")
    t.wait_listening("host", 9400, "udp")
    assert ns.probe("ns", "udp", "127.0.0.1", 9400, "up") < LIMIT_S
    _stop(hsrv)
    assert ns.probe("ns", "udp", "127.0.0.1", 9400, "down") < LIMIT_S
    assert 9400 not in _ports(ns.ns_listeners("udp"))


@pytest.mark.parametrize("lo", [False, True], ids=["private", "host-lo-to-ns-lo"])
def test_namespace_loopback_service_private_unless_host_lo_to_ns_lo(topology, lo):
    """As pasta: the port is forwarded (the bound address is ignored), but a host loopback
    client reaches the namespace's own address, where nothing listens."""
    t = topology
    ns = AutoNs(t, "root", ["--host-lo-to-ns-lo"] if lo else [])
    ns.popen(["socat", "TCP4-LISTEN:9500,bind=127.0.0.1,fork,reuseaddr", "SYSTEM:echo lo-only"],
             name="ns-lo")
    ns.wait_listening(9500)
    ns.popen([ns.py, ns.udpecho, "server", "127.0.0.1", "9501"], name="ns-lo-udp")
    ns.wait_listening(9501, "udp")
    wait_until(lambda: {9500, 9501} <= _ports(ns.host_listeners())
               | _ports(ns.host_listeners("udp")), 5, "host listeners for 9500 and 9501")
    if lo:
        ns.probe("host", "tcp", "127.0.0.1", 9500, "up", "lo-only")
        ns.probe("host", "udp", "127.0.0.1", 9501, "up")
    else:
        got = t.host("socat -t 2 - TCP4:127.0.0.1:9500 </dev/null 2>/dev/null; true").stdout
        assert got == ""
        got = t.host("echo x | socat -t 1 - UDP4:127.0.0.1:9501 2>/dev/null; true").stdout
        assert got == ""


def test_own_listeners_are_never_forwarded_back(topology):
    t = topology
    # A host service on 127.0.0.1:9610 only, before pypasta: -T auto puts our listeners on the
    # namespace's lo (0.0.0.0%lo:9610 and [::]%lo:9610, pasta 2026), which -t auto must not
    # take for a namespace
    # service (it would bind the host's free [::]:9610). And -u 9600 (explicit) is our own
    # host listener, which -U auto must not mirror into the namespace.
    t.host_popen(["socat", "TCP4-LISTEN:9610,bind=127.0.0.1,fork,reuseaddr",
                  "SYSTEM:echo host-9610"], name="host-9610")
    t.wait_listening("host", 9610)
    ns = AutoNs(t, "root", ["-u", "9600"])
    ns.probe("ns", "tcp", "127.0.0.1", 9610, "up", "host-9610")
    assert "[::]%lo:9610" in ns.ns_listeners()     # ours too (it leads to the host's ::1)
    # A marker service proves that later scans ran before we look.
    ns.popen(["socat", "TCP4-LISTEN:9620,fork,reuseaddr", "SYSTEM:echo marker"], name="marker")
    ns.wait_listening(9620)
    ns.probe("host", "tcp", "127.0.0.1", 9620, "up", "marker")
    ns.probe("host", "tcp", "127.0.0.1", 9620, "up", "marker")
    host_lines = [line for line in ns.host_listeners().splitlines() if ":9610 " in line]
    assert len(host_lines) == 1 and "127.0.0.1:9610" in host_lines[0], host_lines
    assert 9600 in _ports(ns.host_listeners("udp"))
    assert 9600 not in _ports(ns.ns_listeners("udp")), ns.ns_listeners("udp")


def test_exclusions_and_udp_mirroring(topology):
    t = topology
    ns = AutoNs(t, "root", ["-t", "auto,~9801", "-u", "auto"])
    for port in (9800, 9801):
        ns.popen(["socat", f"TCP4-LISTEN:{port},fork,reuseaddr", f"SYSTEM:echo p{port}"],
                 name=f"ns-{port}")
        ns.wait_listening(port)
    ns.probe("host", "tcp", "127.0.0.1", 9800, "up", "p9800")
    ns.probe("host", "tcp", "127.0.0.1", 9801, "down")
    assert 9801 not in _ports(ns.host_listeners())
    # UDP listeners on the same numbers as the namespace's TCP listeners (pasta's mirroring,
    # for iperf3 and friends); -u has no exclusion here.
    wait_until(lambda: {9800, 9801} <= _ports(ns.host_listeners("udp")), 5, "UDP mirrors")
