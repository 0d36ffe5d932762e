"""Supervisor end to end: spawn and attach modes, --config-net, lifecycle, as root and rootless.

Each test runs pypasta inside the hermetic topology's host namespace (eth0 198.51.100.2/24,
2001:db8::2/64, default routes via the peer, one extra route per family) and checks what the
namespace it serves really looks like with `ip -j`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from helpers import env, run, wait_until
from helpers.proc import alive
from helpers.topology import Topology

MARK = "----8<----"


def _sections(stdout: str) -> list[str]:
    return [s.strip() for s in stdout.split(MARK)]


def _addrs(link_json: list, ifname: str) -> dict:
    link = next(l for l in link_json if l["ifname"] == ifname)
    return link, {(a["local"], a["prefixlen"]) for a in link.get("addr_info", ())}


def _pids_running(*argv: str) -> list[int]:
    """PIDs whose command line is exactly `argv` (not pypasta's own, which merely contains it)."""
    want = ("\0".join(argv) + "\0").encode()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if f.read() == want:
                        out.append(int(d))
            except OSError:
                pass
    return out


def _gone(pid: int) -> bool:
    """Exited (possibly a zombie: PID 1 of these machines does not reap orphans)."""
    return not alive(pid)


def test_spawn_config_net_copies_host_interface(topology, user):
    t = topology
    script = (f"ip -j addr show; echo '{MARK}'; ip -j -4 route show; echo '{MARK}'; "
              f"ip -j -6 route show; exit 42")
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user)
    assert r.returncode == 42, r.stderr
    addr_j, r4_j, r6_j = (json.loads(s) for s in _sections(r.stdout))
    link, addrs = _addrs(addr_j, "eth0")
    assert link["mtu"] == 65520
    assert "UP" in link["flags"]
    assert (t.host_ip4, 24) in addrs and (t.host_ip6, 64) in addrs
    lo = next(l for l in addr_j if l["ifname"] == "lo")
    assert "UP" in lo["flags"]
    assert {"dst": "default", "gateway": t.gw4, "dev": "eth0"}.items() <= r4_j[0].items() or \
        any(r.get("dst") == "default" and r.get("gateway") == t.gw4 and r["dev"] == "eth0"
            for r in r4_j)
    assert any(r.get("dst") == t.extra_route4 and r.get("gateway") == t.gw4 for r in r4_j)
    assert any(r.get("dst") == "default" and r.get("gateway") == t.gw6 and r["dev"] == "eth0"
               for r in r6_j)
    assert any(r.get("dst") == t.extra_route6 and r.get("gateway") == t.gw6 for r in r6_j)
    # nothing tentative: addresses were added with NODAD and the link-local DAD was dodged
    assert not any(a.get("tentative") for a in link["addr_info"])


def test_spawn_namespaces_and_identity(topology, user):
    script = ("echo pid=$$; echo uid=$(id -u); hostname; cat /proc/sys/net/ipv4/ping_group_range;"
              " ls /proc | grep -c '^[0-9]'")
    r = topology.pypasta_run(["--config-net", "sh", "-c", script], user=user)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "pid=1"                  # PID 1 of a fresh PID namespace
    assert lines[1] == "uid=0"                  # the invoking user mapped to root
    assert lines[2].startswith("pasta-")
    assert lines[3].split() == ["0", "0"]
    assert int(lines[4]) <= 3                   # fresh /proc: sh, ls, grep at most


def test_spawn_exit_status_and_signals(topology, user):
    marker = os.path.join(topology.workdir, f"sig-{user}")
    p = topology.pypasta(["--", "sh", "-c", f"touch {marker}; exec sleep 999"], user=user)
    wait_until(lambda: os.path.exists(marker), 10, "spawned command running")
    sleeper = wait_until(lambda: _pids_running("sleep", "999"), 5, "sleep 999 visible")
    os.kill(int(sleeper[0]), signal.SIGKILL)     # PID 1 of its namespace: only an ancestor can
    assert p.wait(timeout=5) == 128 + signal.SIGKILL
    r = topology.pypasta_run(["/nonexistent/cmd"], user=user)
    assert r.returncode == 1
    assert "Failed to start command or shell" in r.stderr


def test_spawn_sigterm_kills_namespace_and_exits_0(topology, user):
    marker = os.path.join(topology.workdir, f"ready-{user}")
    p = topology.pypasta(["--", "sh", "-c", f"touch {marker}; exec sleep 1000"], user=user)
    wait_until(lambda: os.path.exists(marker), 10, "spawned command running")
    pids = wait_until(lambda: _pids_running("sleep", "1000"), 5, "sleep 1000 visible")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 0
    wait_until(lambda: all(_gone(x) for x in pids), 2, "namespace processes gone")


def test_spawn_command_not_started_before_network_ready(topology, user):
    # The command sees the configured interface at its first instruction.
    r = topology.pypasta_run(["--config-net", "ip", "-j", "-4", "addr", "show", "dev", "eth0"],
                             user=user)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["addr_info"][0]["local"] == topology.host_ip4


def test_spawn_overrides_address_gateway_mtu_name_mac(topology, user):
    args = ["--config-net", "-a", "198.51.100.77", "-n", "25", "-g", "198.51.100.1",
            "-a", "2001:db8::77", "-I", "ppt0", "-m", "9000", "--ns-mac-addr", "02:11:22:33:44:55",
            "--", "sh", "-c", f"ip -j addr show; echo '{MARK}'; ip -j -4 route show"]
    r = topology.pypasta_run(args, user=user)
    assert r.returncode == 0, r.stderr
    addr_j, r4_j = (json.loads(s) for s in _sections(r.stdout))
    link, addrs = _addrs(addr_j, "ppt0")
    assert link["mtu"] == 9000 and link["address"] == "02:11:22:33:44:55"
    assert ("198.51.100.77", 25) in addrs and ("2001:db8::77", 64) in addrs
    assert (topology.host_ip4, 24) not in addrs
    # -g: only the default route, no copied routes
    assert [r.get("dst") for r in r4_j if r.get("gateway")] == ["default"]


def test_spawn_mtu_zero_leaves_kernel_default(topology):
    r = topology.pypasta_run(["--config-net", "-m", "0", "ip", "-j", "link", "show", "eth0"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["mtu"] == 1500


def test_spawn_without_config_net_leaves_tap_down(topology, user):
    r = topology.pypasta_run(["ip", "-j", "addr", "show"], user=user)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    link, addrs = _addrs(j, "eth0")
    assert "UP" not in link["flags"] and not {a for a in addrs if ":" not in a[0]}
    assert "UP" in next(l for l in j if l["ifname"] == "lo")["flags"]


def test_spawn_local_mode_without_routes(netns):
    argv = ["--config-net", "--", "sh", "-c", f"ip -j addr; echo '{MARK}'; ip -j -4 route"]
    from helpers.topology import Topology
    r = netns.run(Topology.pypasta_argv(argv), check=False, timeout=30)
    assert r.returncode == 0, r.stderr
    addr_j, r4_j = (json.loads(s) for s in _sections(r.stdout))
    link, addrs = _addrs(addr_j, "tap0")
    assert ("169.254.2.1", 16) in addrs
    assert any(r.get("dst") == "default" and r.get("gateway") == "169.254.2.2" for r in r4_j)


# ----------------------------------------------------------------------------- attach modes

@pytest.fixture
def target_netns(topology):
    """A named netns (its path), made from this (the initial) mount namespace so its bind mount is
    visible everywhere (`ip netns exec`'s own mount namespace would keep it private); deleted after
    the test unless the test deleted it."""
    name = f"{topology.id}-tgt"
    run(["ip", "netns", "add", name])
    yield f"/run/netns/{name}"
    run(["ip", "netns", "del", name], check=False)


def test_attach_netns_daemonizes_when_ready_and_exits_on_delete(topology, target_netns):
    path = target_netns
    pidf = os.path.join(topology.workdir, "pasta.pid")
    r = topology.pypasta_run(["--config-net", "--netns", path, "--pid", pidf], timeout=20)
    assert r.returncode == 0, r.stderr
    # Ready when the foreground process returned: no waiting here.
    pid = int(open(pidf).read())
    assert alive(pid)
    j = json.loads(topology.host(["ip", "-n", os.path.basename(path), "-j", "addr"]).stdout)
    link, addrs = _addrs(j, "eth0")
    assert (topology.host_ip4, 24) in addrs and link["mtu"] == 65520
    # the daemon left the caller's pipes (pypasta_run returned at EOF) and its session
    assert os.getsid(pid) == pid
    t0 = time.monotonic()
    run(["ip", "netns", "del", os.path.basename(path)])
    wait_until(lambda: _gone(pid), 1.0, "daemon exit within 1 s of netns deletion")
    assert time.monotonic() - t0 < 1.0


def test_attach_netns_foreground_sigterm_exits_0(topology, target_netns):
    path = target_netns
    pidf = os.path.join(topology.workdir, "fg.pid")
    p = topology.pypasta(["-f", "--config-net", "--netns", path, "-P", pidf])
    wait_until(lambda: os.path.exists(pidf) and os.path.getsize(pidf) > 0, 10, "pid file")
    assert int(open(pidf).read()) == p.pid   # `ip netns exec` execs: the Popen pid is pypasta's own
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 0


def test_attach_daemon_sigterm_exits(topology, target_netns):
    path = target_netns
    pidf = os.path.join(topology.workdir, "d.pid")
    r = topology.pypasta_run(["--config-net", "--netns", path, "--pid", pidf], timeout=20)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidf).read())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: _gone(pid), 1.0, "daemon exit on SIGTERM")
    # tap gone with it: the namespace has only lo left
    j = json.loads(topology.host(["ip", "-n", os.path.basename(path), "-j", "link"]).stdout)
    assert [l["ifname"] for l in j] == ["lo"]


@pytest.mark.parametrize("form", ["pid", "paths"])
def test_attach_rootless_userns_holder(topology, form):
    """An unprivileged user's own user+net namespace (as rootless Podman or RootlessKit make
    them), joined by PID or by --netns/--userns paths."""
    holder = topology.host_popen(["unshare", "-Urn", "sleep", "1000"], user="rootless")
    wait_until(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") !=
               os.readlink("/proc/self/ns/net") and
               os.readlink(f"/proc/{holder.pid}/ns/user") != os.readlink("/proc/self/ns/user"),
               5, "holder in its own namespaces")
    pidf = os.path.join(topology.workdir, f"{form}.pid")
    target = [str(holder.pid)] if form == "pid" else \
        ["--netns", f"/proc/{holder.pid}/ns/net", "--userns", f"/proc/{holder.pid}/ns/user"]
    r = topology.pypasta_run(["--config-net", "-P", pidf, *target], user="rootless", timeout=20)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidf).read())
    out = topology.host(["nsenter", "-t", str(holder.pid), "-n", "ip", "-j", "addr"]).stdout
    link, addrs = _addrs(json.loads(out), "eth0")
    assert (topology.host_ip4, 24) in addrs and (topology.host_ip6, 64) in addrs
    holder.kill()
    holder.wait(timeout=5)
    if form == "pid":
        wait_until(lambda: _gone(pid), 1.0, "daemon exit within 1 s of the target PID's exit")
    else:
        # /proc/PID/ns/net stops resolving once the holder is gone
        wait_until(lambda: _gone(pid), 1.0, "daemon exit within 1 s of the netns path vanishing")


def test_attach_netns_name_and_missing_target(topology):
    r = topology.pypasta_run(["--config-net", "--netns", f"{topology.id}-nonexistent"])
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"pypasta: Couldn't open network namespace /run/netns/{topology.id}-nonexistent: "
        "No such file or directory"]
    r = topology.pypasta_run(["--config-net", "999999999"])
    assert r.returncode == 1 and "PID" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- logging and errors

def test_log_file_has_header_and_entries(topology, user):
    log = os.path.join(topology.workdir, f"pasta-{user}.log")
    r = topology.pypasta_run(["-d", "-l", log, "--config-net", "true"], user=user)
    assert r.returncode == 0, r.stderr
    lines = open(log).read().splitlines()
    assert lines[0].startswith("pypasta ") and f"({lines[0].rsplit('(', 1)[1]}" in lines[0]
    assert any("Namespace interface: eth0" in l for l in lines[1:])
    for l in lines[1:]:
        secs, _, rest = l.partition(": ")
        assert float(secs) >= 0 and len(secs.split(".")[1]) == 4


@pytest.mark.parametrize("args,needle", [
    (["-m", "70000"], "MTU"),
    (["-a", "127.0.0.1"], "127.0.0.1"),
    (["-t", "70000"], "70000"),
    (["--log-size", "100"], "log-size"),
])
def test_bad_values_one_line_error(topology, args, needle):
    r = topology.pypasta_run([*args, "true"])
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pypasta: ") and needle in lines[0]


def test_attach_with_preopened_tap_fd(topology, target_netns):
    """-F: the caller opens the tap inside the target netns and hands pypasta the fd."""
    path = target_netns
    name = os.path.basename(path)
    opener = (
        "import fcntl, os, struct, sys\n"
        "fd = os.open('/dev/net/tun', os.O_RDWR)\n"
        "fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH22x', b'given0', 0x0002 | 0x1000))\n"
        "os.set_inheritable(fd, True)\n"
        "argv = ['ip', 'netns', 'exec', sys.argv[1], *sys.argv[2:], '-F', str(fd)]\n"
        "os.execvp(argv[0], argv)\n")
    pidf = os.path.join(topology.workdir, "F.pid")
    r = run(["ip", "netns", "exec", name, sys.executable, "-c", opener, topology.host_ns,
             *Topology.pypasta_argv(["--config-net", "--netns", path, "-P", pidf])],
            env=env.root_env(), check=False, timeout=20)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidf).read())
    j = json.loads(run(["ip", "-n", name, "-j", "addr"]).stdout)
    link, addrs = _addrs(j, "given0")
    assert (topology.host_ip4, 24) in addrs and link["mtu"] == 65520
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: _gone(pid), 1.0, "daemon exit on SIGTERM")
    # the tap was never persistent: it went away with the last fd
    j = json.loads(run(["ip", "-n", name, "-j", "link"]).stdout)
    assert [l["ifname"] for l in j] == ["lo"]


def test_spawn_runas_drops_to_that_user_first(topology):
    uid = env.pw_test_user().pw_uid
    r = topology.pypasta_run(["--runas", env.TEST_USER, "--config-net", "cat", "/proc/self/uid_map"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", str(uid), "1"]




def test_spawn_config_net_copies_route_attributes(make_topology, user):
    """Multipath (IPv4 and IPv6), metrics, priority and preference survive the copy, as with
    pasta's nl_route_dup(): each is one netlink attribute that our rtnetlink code must encode."""
    t = make_topology()
    t.hostns.run(["ip", "-batch", "-"], check=True, input="\n".join([
        f"route add 198.18.4.0/24 via {t.gw4} dev eth0 metric 50 mtu 1400",
        f"route add 198.18.5.0/24 nexthop via {t.gw4} dev eth0 weight 2 "
        f"nexthop via 198.51.100.3 dev eth0 weight 1",
        f"route add 2001:db8:3::/64 via {t.gw6} dev eth0 metric 77 pref high",
        f"route add 2001:db8:4::/64 nexthop via {t.gw6} dev eth0 weight 1 "
        f"nexthop via 2001:db8::3 dev eth0 weight 3",
    ]) + "\n", text=True)
    script = f"ip -j -d -4 route show; echo '{MARK}'; ip -j -d -6 route show"
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user)
    assert r.returncode == 0, r.stderr
    r4, r6 = ({x["dst"]: x for x in json.loads(s)} for s in _sections(r.stdout))
    assert r4["198.18.4.0/24"]["metric"] == 50
    assert r4["198.18.4.0/24"]["metrics"] == [{"mtu": 1400}]
    hops = {(h["gateway"], h["weight"]) for h in r4["198.18.5.0/24"]["nexthops"]}
    assert hops == {(t.gw4, 2), ("198.51.100.3", 1)}
    assert r6["2001:db8:3::/64"]["metric"] == 77 and r6["2001:db8:3::/64"]["pref"] == "high"
    # The kernel lists IPv6 multipath routes as one route per nexthop in JSON.
    six = [x for x in json.loads(_sections(r.stdout)[1]) if x["dst"] == "2001:db8:4::/64"]
    gws = {h["gateway"] for x in six for h in x.get("nexthops", [x])}
    assert gws == {t.gw6, "2001:db8::3"}
