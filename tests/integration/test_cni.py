"""`pypasta-cni` called exactly as libcni calls plugins (issue 8).

Environment (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`),
the network configuration on stdin with `name` and `cniVersion` injected, `prevResult` for CHECK
and DEL, VERSION first, DEL twice, DEL after the netns is gone, GC with valid attachments; every
result and error checked against the spec's schema. The plugin runs in the topology's host
namespace; rootless, it runs as libcni runs it under rootless Podman: uid 0 inside a user
namespace of the test user, in the caller's (host) network namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from helpers import env
from helpers.cnischema import assert_valid_error, assert_valid_result
from helpers.proc import alive, wait_until

PEER4 = "198.18.0.1"
CID = "0123456789abcdef" * 4


class Container:
    """A container network namespace as a runtime makes one, and libcni-style plugin calls."""

    def __init__(self, t, user: str):
        self.t, self.user = t, user
        self.state = os.path.join(t.workdir, f"cni-state-{user}")
        if user == "root":
            self.name = f"{t.id}-ctr"
            subprocess.run(["ip", "netns", "add", self.name], check=True)
            self.netns = f"/run/netns/{self.name}"
            self.userns_pid = None
        else:
            # Rootless: the runtime's user namespace (kept by a process, as Podman's pause
            # process does) owns the container's network namespace.
            self.keeper = t.hostns.popen(["unshare", "--user", "--map-root-user", "sleep",
                                          "100000"], user="rootless", name="userns")
            own = os.readlink("/proc/self/ns/user")
            wait_until(lambda: _userns(self.keeper.pid) not in (None, own) and
                       open(f"/proc/{self.keeper.pid}/uid_map").read().strip(), 10, "userns")
            self.userns_pid = self.keeper.pid
            self.ctr = t.hostns.popen(["nsenter", "-t", str(self.keeper.pid), "-U",
                                       "--preserve-credentials", "unshare", "--net", "sleep",
                                       "100000"], user="rootless", name="ctr-netns")
            host_net = os.readlink(f"/proc/{self.keeper.pid}/ns/net")
            wait_until(lambda: _netns(self.ctr.pid) not in (None, host_net), 10, "ctr netns")
            self.netns = f"/proc/{self.ctr.pid}/ns/net"

    def remove_netns(self) -> None:
        if self.user == "root":
            if os.path.exists(self.netns):
                subprocess.run(["ip", "netns", "del", self.name], check=True)
        elif self.ctr.poll() is None:
            self.ctr.kill()
            self.ctr.wait()

    def plugin(self, command: str, conf: dict, ifname: str = "eth0", cid: str = CID,
               netns=None, extra_env=None, argv=None):
        """(exit status, parsed stdout or None) of one plugin call."""
        e = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid,
             "CNI_NETNS": self.netns if netns is None else netns, "CNI_IFNAME": ifname,
             "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=test", "CNI_PATH": self.t.workdir,
             "PATH": env.TOOL_PATH}
        if self.user == "rootless":
            e["PYTHONPATH"] = env.rootless_src()
        e.update(extra_env or {})
        cmd = argv or [env.python_for(self.user), "-m", "cni.plugin"]
        envs = [f"{k}={v}" for k, v in e.items()]
        pre = ["env", "-i", *envs]
        if self.user == "rootless":
            pre = ["nsenter", "-t", str(self.userns_pid), "-U", "--preserve-credentials", *pre]
        r = self.t.hostns.run(pre + cmd, user=self.user, input=json.dumps(conf), check=False,
                              timeout=60)
        out = json.loads(r.stdout) if r.stdout.strip() else None
        if r.returncode != 0:
            assert out is not None, f"no error JSON: {r.stderr}"
            assert_valid_error(out)
        assert "Traceback" not in r.stderr, r.stderr
        return r.returncode, out

    def ns(self, cmd, **kw):
        pre = ["nsenter", f"--net={self.netns}"]
        return subprocess.run(pre + cmd, capture_output=True, text=True, timeout=20,
                              env=env.root_env(), **kw)


def _userns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


def _netns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _conf(state: str, version: str = "1.1.0", **extra) -> dict:
    return {"cniVersion": version, "name": "pypasta-net", "type": "pypasta-cni",
            "runtimeDir": state, **extra}


def _states(state: str) -> list[dict]:
    return [json.load(open(os.path.join(state, n))) for n in sorted(os.listdir(state))
            if n.endswith(".json")] if os.path.isdir(state) else []


def _daemons(state: str) -> list[int]:
    pids = []
    for name in os.listdir(state) if os.path.isdir(state) else []:
        if name.endswith(".json"):
            pids.append(json.load(open(os.path.join(state, name)))["pid"])
    return pids


@pytest.fixture
def ctr(topology, user):
    c = Container(topology, user)
    yield c
    for pid in _daemons(c.state):
        if alive(pid):
            os.kill(pid, 9)
    c.remove_netns()


@pytest.mark.parametrize("version", ["1.1.0", "1.0.0", "0.4.0", "0.3.1"])
def test_add_check_del_lifecycle(ctr, version):
    """VERSION first (as Podman's libcni), then ADD: a spec-correct result for the requested
    version whose interface, addresses and gateway are really there, outbound traffic and a
    published port work; CHECK with prevResult; DEL twice; no translator left."""
    c, t = ctr, ctr.t
    rc, v = c.plugin("VERSION", {"cniVersion": version})
    assert rc == 0 and version in v["supportedVersions"] and v["cniVersion"] == version
    t.peer_popen(["socat", f"TCP4-LISTEN:7120,bind={PEER4},fork,reuseaddr", "SYSTEM:echo peer"],
                 name="peer-tcp")
    t.wait_listening("peer", 7120)
    conf = _conf(c.state, version, capabilities={"portMappings": True},
                 runtimeConfig={"portMappings": [{"hostPort": 7121, "containerPort": 80,
                                                  "protocol": "tcp"}]})
    rc, result = c.plugin("ADD", conf)
    assert rc == 0, result
    assert_valid_result(result, version)
    iface = result["interfaces"][0]
    assert iface["name"] == "eth0" and iface["sandbox"] == c.netns
    link = json.loads(c.ns(["ip", "-j", "addr", "show", "eth0"]).stdout)[0]
    assert link["address"] == iface["mac"]
    addrs = {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]}
    assert {ip["address"] for ip in result["ips"]} <= addrs
    assert f"{t.host_ip4}/24" in addrs                    # the host's address, copied
    assert any(ip.get("gateway") == t.gw4 for ip in result["ips"])
    assert c.ns(["socat", "-T", "5", "-", f"TCP4:{PEER4}:7120"]).stdout == "peer\n"
    srv = subprocess.Popen(["nsenter", f"--net={c.netns}", "socat", "TCP4-LISTEN:80,reuseaddr",
                            "SYSTEM:echo container"], env=env.root_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: ":80 " in c.ns(["ss", "-Hltn"]).stdout, 10, "server in container")
        got = t.peer(["socat", "-T", "5", "-", f"TCP4:{t.host_ip4}:7121"]).stdout
        assert got == "container\n"
    finally:
        srv.kill()
        srv.wait()
    daemons = _daemons(c.state)
    assert len(daemons) == 1 and alive(daemons[0])
    # The daemon confined itself (pasta.setup.isolation): as real root it runs as nobody.
    def status_of(pid):
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    # (ADD returns when the foreground process exits; the daemon confines itself right after)
    status = wait_until(lambda: (lambda st: st if st["Seccomp"] == "2" else None)(
        status_of(daemons[0])), 10, "the daemon to confine itself")
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
    assert int(status["CapEff"], 16) & ~(1 << 10) == 0, status["CapEff"]
    if c.user == "root":
        assert status["Uid"].split()[0] == "65534"
    (st,) = _states(c.state)
    # As real root published ports are NAT rules to pypasta (the runtime holds the host port);
    # rootless, pypasta listens on it.
    assert bool(st["rules"]) == (c.user == "root")
    if version != "0.3.1":                               # CHECK exists from 0.4.0
        rc, out = c.plugin("CHECK", {**conf, "prevResult": result})
        assert rc == 0 and out is None
    else:
        rc, out = c.plugin("CHECK", {**conf, "prevResult": result})
        assert rc == 1 and out["code"] == 1
    rc, out = c.plugin("ADD", conf)                       # the same attachment again
    assert rc == 1 and out["msg"]
    for _ in range(2):                                    # DEL, and DEL again
        rc, out = c.plugin("DEL", {**conf, "prevResult": result})
        assert rc == 0 and out is None
    wait_until(lambda: not alive(daemons[0]), 10, "translator stopped by DEL")
    assert _daemons(c.state) == []
    if c.user == "root":
        assert "pypasta-cni" not in t.host(["iptables", "-w", "-t", "nat", "-S"]).stdout
    if version != "0.3.1":
        rc, out = c.plugin("CHECK", {**conf, "prevResult": result})
        assert rc == 1 and out["code"] == 3                   # no such attachment any more


def test_explicit_addressing_dns_in_result_and_del_after_netns_gone(ctr):
    c = ctr
    conf = _conf(c.state, address="10.88.0.2", prefixLen=24, gateway="10.88.0.1",
                 dnsForward="10.88.0.3", mtu=1500)
    rc, result = c.plugin("ADD", conf)
    assert rc == 0, result
    assert_valid_result(result, "1.1.0")
    assert [ip["address"] for ip in result["ips"] if "." in ip["address"]] == ["10.88.0.2/24"]
    assert result["dns"]["nameservers"] == ["10.88.0.3"]
    assert result["interfaces"][0].get("mtu") == 1500
    route = json.loads(c.ns(["ip", "-j", "-4", "route", "show", "default"]).stdout)
    assert route[0]["gateway"] == "10.88.0.1"
    daemon = _daemons(c.state)[0]
    c.remove_netns()                                      # the runtime tore the netns down
    rc, out = c.plugin("DEL", conf)
    assert rc == 0 and out is None
    wait_until(lambda: not alive(daemon), 10, "translator gone with its netns")
    rc, out = c.plugin("DEL", conf, netns="")             # libcni may omit CNI_NETNS on DEL
    assert rc == 0


def test_gc_stops_attachments_not_listed(ctr):
    c = ctr
    conf = _conf(c.state)
    rc, r1 = c.plugin("ADD", conf, ifname="eth0", cid="keep")
    assert rc == 0, r1
    rc, r2 = c.plugin("ADD", conf, ifname="eth1", cid="drop")
    assert rc == 0, r2
    by_cid = {st["container_id"]: st["pid"] for st in _states(c.state)}
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    rc, out = c.plugin("GC", gc)
    assert rc == 0 and out is None
    assert [st["container_id"] for st in _states(c.state)] == ["keep"]
    assert alive(by_cid["keep"])
    wait_until(lambda: not alive(by_cid["drop"]), 10, "the unlisted attachment's translator")
    rc, out = c.plugin("STATUS", conf)
    assert rc == 0 and out is None
    rc, out = c.plugin("GC", {**conf, "cni.dev/valid-attachments": []})
    assert rc == 0 and _daemons(c.state) == []


def test_errors_are_spec_codes(ctr):
    """Reserved codes, as JSON on stdout with exit status 1, never a traceback."""
    c = ctr
    rc, out = c.plugin("ADD", _conf(c.state, "9.9.9"))
    assert rc == 1 and out["code"] == 1                   # incompatible version
    rc, out = c.plugin("ADD", _conf(c.state), extra_env={"CNI_IFNAME": ""})
    assert rc == 1 and out["code"] == 4                   # invalid environment
    rc, out = c.plugin("ADD", _conf(c.state, mtu="big"))
    assert rc == 1 and out["code"] == 7                   # invalid network config
    rc, out = c.plugin("ADD", _conf(c.state), netns="/nonexistent/netns")
    assert rc == 1 and out["code"] in (4, 100)
    rc, out = c.plugin("GC", _conf(c.state, "1.0.0"))
    assert rc == 1 and out["code"] == 1                   # GC needs 1.1.0
    if c.user == "root":                                  # the plugin's own netns: code 8
        rc, out = c.plugin("ADD", _conf(c.state), netns=c.t.host_ns_path)
        assert rc == 1 and out["code"] == 8
    rc, out = c.plugin("BOGUS", _conf(c.state))
    assert rc == 1 and out["code"] == 4


@pytest.mark.parametrize("user", ["root"])
def test_plugin_copied_into_a_cni_path_directory(ctr, user):
    """The console script works when copied into a CNI_PATH directory (how runtimes find it)."""
    c = ctr
    plugin_dir = os.path.join(c.t.workdir, "cni-bin")
    os.makedirs(plugin_dir, exist_ok=True)
    shutil.copy2(shutil.which("pypasta-cni"), os.path.join(plugin_dir, "pypasta-cni"))
    rc, out = c.plugin("VERSION", {"cniVersion": "1.0.0"},
                       argv=[os.path.join(plugin_dir, "pypasta-cni")])
    assert rc == 0 and out["supportedVersions"]
    rc, result = c.plugin("ADD", _conf(c.state, "1.0.0"),
                          argv=[os.path.join(plugin_dir, "pypasta-cni")])
    assert rc == 0, result
    assert_valid_result(result, "1.0.0")
    rc, _ = c.plugin("DEL", _conf(c.state, "1.0.0"), argv=[os.path.join(plugin_dir, "pypasta-cni")])
    assert rc == 0 and _daemons(c.state) == []


def test_failed_add_leaves_nothing_behind(ctr):
    """pypasta refuses (no such outbound interface): the error is code 100 with pypasta's
    reason, and no state, pid file or translator remains; a DEL after it succeeds."""
    c = ctr
    conf = _conf(c.state, outboundInterface="nonexistent0")
    rc, out = c.plugin("ADD", conf)
    assert rc == 1 and out["code"] == 100 and out["details"]
    leftovers = [n for n in os.listdir(c.state) if n != "lock"] if os.path.isdir(c.state) else []
    assert leftovers == []
    r = subprocess.run(["pgrep", "-f", f"--pid={c.state}"], capture_output=True, text=True)
    assert r.stdout.strip() == ""
    rc, out = c.plugin("DEL", conf)
    assert rc == 0


def test_parallel_adds_of_different_attachments(ctr):
    """Runtimes start containers concurrently: ADDs of different attachments run side by side
    (each holds only its own lock) and all succeed; GC then clears them."""
    from concurrent.futures import ThreadPoolExecutor
    c = ctr
    conf = _conf(c.state)
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda i: c.plugin("ADD", conf, ifname=f"eth{i}", cid=f"par{i}"),
                            range(3)))
    assert [rc for rc, _ in got] == [0, 0, 0], got
    assert sorted(st["container_id"] for st in _states(c.state)) == ["par0", "par1", "par2"]
    rc, _ = c.plugin("GC", {**conf, "cni.dev/valid-attachments": []})
    assert rc == 0 and _states(c.state) == []


@pytest.mark.parametrize("user", ["root"])
def test_gc_removes_rules_whose_state_was_lost(ctr, user):
    """As root published ports are iptables rules: GC removes this network's rules of
    attachments it does not know any more (state file lost), and keeps listed ones."""
    c = ctr
    conf = _conf(c.state, capabilities={"portMappings": True},
                 runtimeConfig={"portMappings": [{"hostPort": 7150, "containerPort": 80,
                                                  "protocol": "tcp"}]})
    rc, out = c.plugin("ADD", conf, cid="lost")
    assert rc == 0, out
    (st,) = _states(c.state)
    os.kill(st["pid"], 9)
    for name in os.listdir(c.state):
        if name != "lock":
            os.unlink(os.path.join(c.state, name))        # the state is gone, the rules not
    nat = lambda: c.t.host(["iptables", "-w", "-t", "nat", "-S"]).stdout
    assert "pypasta-cni pypasta-net:lost:eth0" in nat()
    rc, out = c.plugin("GC", {**conf, "cni.dev/valid-attachments": [
        {"containerID": "other", "ifname": "eth0"}]})
    assert rc == 0, out
    assert "pypasta-cni" not in nat()
    assert "pypasta-cni" not in c.t.host(["iptables", "-w", "-t", "filter", "-S"]).stdout
