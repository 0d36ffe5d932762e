"""`pypasta-cni`: the CNI plugin's I/O shell (execution model: cni-reference.md sections 1-4).

Theory of operation:
- One process per request, as libcni runs plugins: `CNI_*` from the environment, the network
  configuration on stdin, a result or an error as JSON on stdout, exit status 0 or 1. Parsing
  and results are pure (`cni.netconf`, `cni.result`, `cni.version`); this module only acts.
- ADD starts a pypasta translator attached to `CNI_NETNS` (attach mode, `--netns PATH`, the tap
  named `CNI_IFNAME`), with the command line `netconf.pasta_args` builds, as the calling user.
  pypasta daemonizes once the tap is configured and its foreground process exits 0 only then;
  the daemon has /dev/null for stdio, so it never holds the runtime's pipe open. The plugin then
  reads the interface back from the namespace (netlink, in a thread inside it): name, MAC, MTU,
  global addresses and the default gateways, which is what the result reports, whatever the
  addressing came from (the host's, copied, or the configuration's).
- State: one JSON file per (network, container id, ifname) under the runtime directory
  (`runtimeDir`, else `$XDG_RUNTIME_DIR/pypasta-cni`, else /run/pypasta-cni), holding the
  daemon's PID, the netns path, the container id, the ifname and the result. Every operation
  holds an exclusive lock on the directory's `lock` file.
- DEL stops the daemon (SIGTERM, then SIGKILL after 5 s) if the state names a live pypasta
  and removes the state; it succeeds when anything is already gone. CHECK wants the state, a
  live daemon and the interface of `prevResult` (name, MAC, addresses) in the namespace. GC runs
  DEL for every attachment of this network that `cni.dev/valid-attachments` does not list.
  STATUS checks /dev/net/tun (code 50 when pypasta could not work).
- Published ports as real root: rootful runtimes reserve the host ports themselves, so they are
  iptables REDIRECT rules (OUTPUT and PREROUTING, like the portmap plugin's DNAT) to free local
  ports that pypasta forwards; the rules are kept in the state and deleted by DEL and GC.
  Rootless, pypasta listens on the host ports directly (in the rootless-netns).

Invariants: no daemon without a state file once ADD returned (a failed ADD stops what it
started); errors are CNI error JSON on stdout, one line each, never a traceback.
"""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from cni import CniError, ErrorCode
from cni import netconf as N
from cni import result as R
from cni.version import Command, version_reply

PYPASTA_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pypasta(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH"))
                                        if p)
    try:
        return subprocess.run([sys.executable, "-m", "pasta", *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=PYPASTA_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise CniError(ErrorCode.SETUP_FAILED, "pypasta did not finish its set-up",
                       f"no answer within {PYPASTA_TIMEOUT_S:g} s") from None
    except OSError as e:
        raise CniError(ErrorCode.SETUP_FAILED, f"cannot run pypasta: {e.strerror}") from None


# --------------------------------------------------------------------------- rootful port mappings

def _initial_root() -> bool:
    """Real root: uid 0 in the initial user namespace (not uid 0 of a rootless runtime)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def _free_port(proto: str, v6: bool) -> int:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind) as s:
        s.bind(("::1" if v6 else "127.0.0.1", 0))
        return s.getsockname()[1]


def _redirects(conf: N.NetConf, tag: str):
    """Rootful runtimes (Podman 4, CRI-O) reserve every published host port by binding it
    themselves, expecting an iptables plugin (portmap): a pypasta listener on that port cannot
    coexist. So, as portmap does, published ports are NAT rules: REDIRECT from the host port to
    a free local port that pypasta forwards into the container (clients keep their address).

    Returns (the NetConf with the internal ports, the iptables rules as argument lists)."""
    mappings, rules = [], []
    for m in conf.port_mappings:
        v6 = m.host_ip is not None and m.host_ip.version == 6
        loopback = m.host_ip is not None and m.host_ip.is_loopback
        internal = _free_port(m.protocol, v6)
        mappings.append(dataclasses.replace(m, host_port=internal,
                                            host_ip=m.host_ip if loopback else None))
        tool = "ip6tables" if v6 else "iptables"
        dst = ["-d", str(m.host_ip)] if m.host_ip is not None else []
        for chain in ("OUTPUT", "PREROUTING"):
            rules.append([tool, "-t", "nat", chain, "-p", m.protocol, *dst,
                          "--dport", str(m.host_port), "-m", "addrtype", "--dst-type", "LOCAL",
                          "-m", "comment", "--comment", f"pypasta-cni {tag}"[:250],
                          "-j", "REDIRECT", "--to-ports", str(internal)])
    return dataclasses.replace(conf, port_mappings=tuple(mappings)), rules


def _iptables(rule: list, op: str, check: bool = True) -> None:
    tool, table, nat, chain, *rest = rule
    if shutil.which(tool) is None:
        if check:
            raise CniError(ErrorCode.SETUP_FAILED, f"published ports need {tool} as root")
        return
    r = subprocess.run([tool, "-w", table, nat, op, chain, *rest], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0 and check:
        raise CniError(ErrorCode.SETUP_FAILED, f"{tool} {op} {chain} failed",
                       (r.stderr.strip().splitlines() or [""])[-1])


# --------------------------------------------------------------------------- the namespace side

def _observe(netns: str, ifname: str):
    """(HostLink, addresses, gateway4, gateway6) of `ifname` inside `netns`, or None."""
    from pasta import netlink, netns as NS
    fd = NS.open_ns(netns)
    try:
        snap = NS.ns_call(fd, netlink.host_snapshot)
    finally:
        os.close(fd)
    link = next((lk for lk in snap.links if lk.name == ifname), None)
    if link is None:
        return None
    addrs = tuple(ipaddress.ip_interface(f"{a.address}/{a.prefixlen}") for a in snap.addrs
                  if a.index == link.index and a.scope == 0)
    gws = {}
    for r in snap.routes:
        if r.dst_len == 0 and r.gateway and (r.oif == link.index or r.multipath):
            gws.setdefault(r.family, ipaddress.ip_address(r.gateway.split("%")[0]))
    return link, addrs, gws.get(2), gws.get(10)


def _interface_exists(netns: str, ifname: str) -> bool:
    from pasta import netlink, netns as NS
    fd = NS.open_ns(netns)
    try:
        snap = NS.ns_call(fd, netlink.host_snapshot)
    finally:
        os.close(fd)
    return any(lk.name == ifname for lk in snap.links)


# --------------------------------------------------------------------------- state

class State:
    """The runtime directory: a lock and one JSON file per attachment."""

    def __init__(self, directory: str):
        self.dir = directory
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self._lock = os.open(os.path.join(directory, "lock"),
                                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        except OSError as e:
            raise CniError(ErrorCode.IO_FAILURE, f"state directory {directory}: {e.strerror}")

    def path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self.dir, N.state_key(network, container_id, ifname) + ".json")

    def read(self, path: str):
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}                       # unreadable: treated as stale

    def write(self, path: str, data: dict) -> None:
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as e:
            raise CniError(ErrorCode.IO_FAILURE, f"cannot write state {path}: {e.strerror}")

    def entries(self, network: str):
        """(path, state) of this network's attachments."""
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return []
        out = []
        for name in names:
            if name.endswith(".json"):
                p = os.path.join(self.dir, name)
                st = self.read(p)
                if st is not None and st.get("network", network) == network:
                    out.append((p, st))
        return out


def _is_our_daemon(pid) -> bool:
    """A live pypasta (not a recycled PID): its command line names the pasta module."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return b"pasta" in argv or any(a.endswith(b"/pypasta") for a in argv)


def _stop(pid) -> None:
    if not _is_our_daemon(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _is_our_daemon(pid):
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _remove(path: str, st: dict) -> None:
    for rule in (st.get("rules") or []) if st else []:
        if isinstance(rule, list) and len(rule) > 4:
            _iptables(rule, "-D", check=False)
    _stop(st.get("pid") if st else None)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- operations

def cmd_add(env: N.CniEnv, conf: N.NetConf, environ) -> dict:
    state = State(N.runtime_dir(conf, environ))
    path = state.path(conf.name, env.container_id, env.ifname)
    old = state.read(path)
    if old is not None and _is_our_daemon(old.get("pid")):
        raise CniError(ErrorCode.SETUP_FAILED, f"container {env.container_id} already has "
                       f"{env.ifname} on network {conf.name}", "DEL it before a new ADD")
    if _interface_exists(env.netns, env.ifname):
        raise CniError(ErrorCode.SETUP_FAILED,
                       f"interface {env.ifname} already exists in {env.netns}")
    pid_file = path + ".pid"
    rules = []
    if conf.port_mappings and _initial_root():
        conf, rules = _redirects(conf, os.path.basename(path)[:-len(".json")])
    r = _pypasta(N.pasta_args(conf, env.netns, env.ifname, pid_file))
    pid = None
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        pass
    finally:
        try:
            os.unlink(pid_file)
        except OSError:
            pass
    if r.returncode != 0 or not pid:
        _stop(pid)
        lines = [x for x in (r.stderr or "").splitlines() if x.strip()]
        raise CniError(ErrorCode.SETUP_FAILED, "pypasta failed to attach",
                       lines[-1] if lines else f"exit status {r.returncode}")
    try:
        seen = _observe(env.netns, env.ifname)
        if seen is None:
            raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} missing after set-up")
        link, addrs, gw4, gw6 = seen
        ns_link = R.NsLink(ifname=env.ifname, sandbox=env.netns, mac=link.mac, mtu=link.mtu,
                           addresses=addrs, gateway4=gw4, gateway6=gw6,
                           dns=N.result_dns(conf))
        result = R.result_to_json(R.add_result(ns_link, conf.cni_version, conf.prev_result))
        added = []
        try:
            for rule in rules:
                _iptables(rule, "-A")
                added.append(rule)
        finally:
            state_data = {"pid": pid, "network": conf.name, "container_id": env.container_id,
                          "ifname": env.ifname, "netns": env.netns, "result": result,
                          "rules": added}
        state.write(path, state_data)
        if len(added) != len(rules):
            raise CniError(ErrorCode.SETUP_FAILED, "published ports could not be set up")
    except BaseException:
        _stop(pid)
        if "state_data" in locals():
            _remove(path, state_data)
        raise
    return result


def cmd_del(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    state = State(N.runtime_dir(conf, environ))
    path = state.path(conf.name, env.container_id, env.ifname)
    st = state.read(path)
    if st is not None:
        _remove(path, st)


def cmd_check(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    state = State(N.runtime_dir(conf, environ))
    st = state.read(state.path(conf.name, env.container_id, env.ifname))
    if not st:
        raise CniError(ErrorCode.UNKNOWN_CONTAINER,
                       f"no attachment of {env.container_id} ({env.ifname}) on {conf.name}")
    if not _is_our_daemon(st.get("pid")):
        raise CniError(ErrorCode.SETUP_FAILED, f"the pypasta of {env.ifname} is not running")
    seen = _observe(env.netns, env.ifname)
    if seen is None:
        raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} is gone from {env.netns}")
    link, addrs, _, _ = seen
    prev = conf.prev_result
    if prev is not None:
        mine = [i for i in prev.interfaces if i.name == env.ifname and i.sandbox]
        if mine and mine[0].mac and mine[0].mac.lower() != link.mac.lower():
            raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} has MAC {link.mac}, "
                           f"prevResult says {mine[0].mac}")
        missing = [str(ip.address) for ip in prev.ips if ip.address not in addrs]
        if mine and missing:
            raise CniError(ErrorCode.SETUP_FAILED,
                           f"{env.ifname} lacks address(es) {', '.join(missing)}")


def cmd_gc(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    state = State(N.runtime_dir(conf, environ))
    entries = state.entries(conf.name)
    existing = [N.Attachment(st.get("container_id", ""), st.get("ifname", ""))
                for _, st in entries]
    stale = {(a.container_id, a.ifname) for a in N.stale_attachments(conf.valid_attachments,
                                                                       existing)}
    failures = []
    for path, st in entries:
        if (st.get("container_id", ""), st.get("ifname", "")) in stale:
            try:
                _remove(path, st)
            except OSError as e:
                failures.append(f"{path}: {e.strerror}")
    err = R.gc_error(failures)
    if err is not None:
        raise err


def cmd_status(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    problems = []
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        problems.append("/dev/net/tun is not usable")
    if problems:
        raise R.status_error(problems)


_COMMANDS = {Command.ADD: cmd_add, Command.DEL: cmd_del, Command.CHECK: cmd_check,
             Command.GC: cmd_gc, Command.STATUS: cmd_status}


def run(environ, stdin: bytes) -> tuple[int, str]:
    """One request: (exit status, stdout text)."""
    version = None
    try:
        try:
            version = json.loads(stdin).get("cniVersion")
        except Exception:                   # noqa: BLE001 - reported by parse_netconf below
            pass
        env = N.parse_env(environ)
        if env.command == Command.VERSION:
            return 0, R.dumps(version_reply(stdin))
        conf = N.parse_netconf(stdin, env.command)
        out = _COMMANDS[env.command](env, conf, environ)
        if out is None:
            return 0, ""
        return 0, R.dumps(out)
    except Exception as e:                  # noqa: BLE001 - every failure is CNI error JSON
        return 1, R.render_error(e, version if isinstance(version, str) else None)


def main() -> int:
    try:
        stdin = sys.stdin.buffer.read()
    except OSError:
        stdin = b""
    code, out = run(os.environ, stdin)
    sys.stdout.write(out)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
