"""The test foundation itself: the host ↔ peer topology, its cleanup, and rootless runs."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import env
from helpers.proc import CommandError, WaitTimeout, alive, run, wait_until
from helpers.topology import Topology, make_workdir, netns_names, reap_stale, unique_id


def ping(topo: Topology, addr: str, **kw) -> None:
    topo.host(["ping", "-n", "-c", "1", "-W", "2", addr], **kw)


def test_topology_host_pings_peer(topology):
    for addr in (topology.peer_ip4, topology.peer_inet4, topology.peer_ip6,
                 topology.peer_inet6, topology.extra_dst4, topology.extra_dst6):
        ping(topology, addr)


def test_topology_rootless_user_can_ping(topology):
    # ping_group_range is open in the host ns, so ping sockets work without privileges.
    ping(topology, topology.peer_inet4, user="rootless")
    ping(topology, topology.peer_inet6, user="rootless")


def test_topology_host_addresses(topology):
    addrs = {(a["local"], a["prefixlen"]) for a in topology.addrs("host", "eth0")}
    assert addrs == {(topology.host_ip4, 24), (topology.host_ip6, 64), (topology.host_ll6, 64)}
    assert not [a for a in topology.addrs("host") + topology.addrs("peer") if a.get("tentative")]
    peer_lo = {a["local"] for a in topology.addrs("peer", "lo")}
    assert {topology.peer_inet4, topology.peer_inet6, topology.extra_dst4,
            topology.extra_dst6} <= peer_lo


def test_topology_host_routes(topology):
    r4 = {(r["dst"], r.get("gateway"), r.get("dev")) for r in topology.routes("host", 4)}
    assert r4 == {
        ("default", "198.51.100.1", "eth0"),
        ("198.19.0.0/16", "198.51.100.1", "eth0"),
        ("198.51.100.0/24", None, "eth0"),
    }
    r6 = {(r["dst"], r.get("gateway"), r.get("dev")) for r in topology.routes("host", 6)}
    assert r6 == {
        ("default", "2001:db8::1", "eth0"),
        ("2001:db8:1::/64", "2001:db8::1", "eth0"),
        ("2001:db8::/64", None, "eth0"),
        ("fe80::/64", None, "eth0"),
    }
    # The "internet" addresses are reached through the default routes, not the extra ones.
    assert topology.host(["ip", "route", "get", topology.peer_inet4]).stdout.startswith(
        f"{topology.peer_inet4} via {topology.gw4} dev eth0")
    assert topology.gw4 == topology.peer_ip4 and topology.gw6 == topology.peer_ip6


def test_topology_link_local_gateway(make_topology):
    topo = make_topology(gw6_link_local=True)
    assert topo.gw6 == topo.peer_ll6 == "fe80::c6ff:fe33:6401"
    r6 = {(r["dst"], r.get("gateway")) for r in topo.routes("host", 6)}
    assert ("default", topo.peer_ll6) in r6 and ("2001:db8:1::/64", topo.peer_ll6) in r6
    ping(topo, topo.peer_inet6)
    ping(topo, topo.extra_dst6)


def test_topology_tcp_between_namespaces(topology):
    topology.peer_popen(["socat", "TCP6-LISTEN:5001,ipv6only=0,reuseaddr,fork", "EXEC:cat"],
                        name="echo")
    wait_until(lambda: topology.peer(["ss", "-Hltn", "sport = :5001"]).stdout.strip(),
               5, "socat listening on port 5001 in the peer ns")
    for dst in (topology.peer_inet4, f"[{topology.peer_inet6}]"):
        res = topology.host(["socat", "-", f"TCP:{dst}:5001"], input="hello\n")
        assert res.stdout == "hello\n"


def test_topology_command_error_shows_output(topology):
    with pytest.raises(CommandError) as info:
        topology.host("echo to-stdout; echo to-stderr >&2; exit 3")
    assert info.value.returncode == 3
    assert "to-stdout" in str(info.value) and "to-stderr" in str(info.value)


def test_topology_cleanup_leaves_nothing(integration_env, require_root):
    topo = Topology().setup()
    topo.term_grace = 0.3
    try:
        tracked = topo.host_popen(["sleep", "1000"])
        stubborn = topo.peer_popen(["sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"])
        # A stray daemon, not tracked: only `ip netns pids` can find it.
        topo.host("setsid -f sleep 1001 </dev/null >/dev/null 2>&1")
        stray = wait_until(lambda: [p for p in topo.hostns.pids() if p != tracked.pid],
                           5, "the stray sleeper in the host ns")
        wait_until(lambda: "ready" in topo.logs(stubborn)[0], 5, "the stubborn shell's trap")
        assert {topo.host_ns, topo.peer_ns} <= set(netns_names())
    finally:
        topo.cleanup()
    assert tracked.returncode is not None and stubborn.returncode is not None
    assert not [p for p in stray if alive(p)]
    assert topo.host_ns not in netns_names() and topo.peer_ns not in netns_names()
    assert not os.path.exists(topo.host_ns_path) and not os.path.exists(topo.peer_ns_path)
    assert not os.path.exists(topo.workdir)
    topo.cleanup()      # idempotent


def test_topology_cleanup_takes_namespaces_under_its_prefix(integration_env, require_root):
    topo = Topology().setup()
    try:
        tgt = topo.add_netns("tgt")
        assert tgt.name == f"{topo.id}-tgt" and tgt.name in netns_names()
        assert "UP" not in run(["ip", "-n", tgt.name, "-br", "link", "show", "lo"]).stdout
        # Visible from the host ns too (unlike one made with `ip netns add` inside topo.host).
        assert "lo" in topo.host(["ip", "-n", tgt.name, "-br", "link"]).stdout
        tgt.run("setsid -f sleep 1002 </dev/null >/dev/null 2>&1")
        tracked = tgt.popen(["sleep", "1003"])
        # Made by hand under the prefix, not through add_netns: taken all the same.
        run(["ip", "netns", "add", f"{topo.id}-byhand"])
    finally:
        topo.cleanup()
    assert not [n for n in netns_names() if n.startswith(topo.id)]
    assert tracked.returncode is not None


def test_topology_reap_stale_takes_only_dead_sessions(integration_env, require_root):
    dead = subprocess.Popen(["true"])
    dead.wait()
    ids = [unique_id(), unique_id()]
    dirs = [make_workdir(i) for i in ids]
    Path(dirs[0], "owner.pid").write_text(f"{dead.pid}\n")         # a session that died
    try:
        for i in ids:
            run(["ip", "netns", "add", f"{i}-host"])
        reaped = reap_stale()
        assert reaped == [f"{ids[0]}-host"]
        assert not os.path.exists(dirs[0])
        assert f"{ids[1]}-host" in netns_names()                      # ours: alive owner
    finally:
        for i in ids:
            run(["ip", "netns", "del", f"{i}-host"], check=False)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_netns_fixture(netns):
    assert netns.name.startswith("ppt-") and os.path.exists(netns.path)
    assert netns.run(["cat", "/proc/sys/net/ipv4/ping_group_range"]).stdout.split() == \
        ["0", "2147483647"]
    assert "UP" in netns.run(["ip", "-br", "link", "show", "lo"]).stdout
    netns.popen(["sleep", "1000"])


def test_topology_setup_is_fast(make_topology):
    t0 = time.monotonic()
    make_topology()
    assert time.monotonic() - t0 < 1.0


def test_topology_rootless_venv_imports(topology):
    uid = pwd.getpwnam(env.TEST_USER).pw_uid
    res = topology.host(["/opt/pypasta-venv/bin/python", "-c",
                         "import pyroute2, pyprctl, netaddr, os; print(os.getuid())"],
                        user="rootless", timeout=30)
    assert res.stdout.strip() == str(uid)


def test_topology_python_runs_as_user_in_host_ns(topology, user):
    res = topology.host_python(
        "import os, pasta\n"
        "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]\n"
        "print(os.getuid(), os.stat('/proc/self/ns/net').st_ino, int(caps, 16))\n"
        "print(pasta.__file__)",
        user=user, timeout=30)
    ids, pasta_file = res.stdout.splitlines()
    uid, netns_ino, caps = map(int, ids.split())
    assert netns_ino == os.stat(topology.host_ns_path).st_ino
    if user == "root":
        assert uid == 0
        assert pasta_file == str(env.REPO_ROOT / "pasta" / "__init__.py")
    else:
        assert uid == pwd.getpwnam(env.TEST_USER).pw_uid
        assert caps == 0
        assert pasta_file == os.path.join(env.rootless_src(), "pasta", "__init__.py")
        assert not pasta_file.startswith(str(env.REPO_ROOT))


def test_topology_popen_logs_and_user(topology, user):
    proc = topology.host_popen("id -u; echo oops >&2", user=user)
    assert proc.wait(timeout=10) == 0
    out, err = topology.logs(proc)
    expected = 0 if user == "root" else pwd.getpwnam(env.TEST_USER).pw_uid
    assert out.strip() == str(expected) and err.strip() == "oops"


def test_machine_is_set_up():
    problems = env.problems()
    assert problems == [], env.problems_message(problems)
    assert "tests/install-deps.sh" in env.problems_message(["x"])


def test_wait_until_returns_value_and_times_out():
    calls = []
    assert wait_until(lambda: calls.append(1) or len(calls) >= 3 and "done", 1, "three calls") \
        == "done"
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout, match="waiting for the impossible"):
        wait_until(lambda: False, 0.2, "the impossible")
    assert 0.2 <= time.monotonic() - t0 < 0.5
    with pytest.raises(WaitTimeout, match="FileNotFoundError"):
        wait_until(lambda: open("/nonexistent/x"), 0.05, "a file", ignore=(OSError,))
