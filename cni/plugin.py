"""`pypasta-cni`: the CNI plugin's I/O shell (execution model: cni-reference.md sections 1-4).

Theory of operation:
- One process per request, as libcni runs plugins: `CNI_*` from the environment, the network
  configuration on stdin, a result or an error as JSON on stdout, exit status 0 or 1. Parsing
  and results are pure (`cni.netconf`, `cni.result`, `cni.version`); this module only acts.
- ADD starts a pypasta translator attached to `CNI_NETNS` (attach mode, `--netns PATH`, the tap
  named `CNI_IFNAME`), with the command line `netconf.pasta_args` builds, as the calling user.
  pypasta daemonizes once the tap is configured and its foreground process exits 0 only then;
  the daemon has /dev/null for stdio, so it never holds the runtime's pipe open, and it confines
  itself after set-up like any pypasta (pasta.setup.isolation; as real root it runs as
  nobody). The plugin then
  reads the interface back from the namespace (netlink, in a thread inside it): name, MAC, MTU,
  global addresses and the default gateways, which is what the result reports, whatever the
  addressing came from (the host's, copied, or the configuration's).
- State: one JSON file per (network, container id, ifname) under the runtime directory
  (`runtimeDir`, else `$XDG_RUNTIME_DIR/pypasta-cni`, else /run/pypasta-cni), holding the
  daemon's PID, the netns path, the container id, the ifname and the result. ADD, DEL and CHECK
  hold the directory's `lock` shared and their attachment's own lock exclusively, so different
  containers are set up in parallel; GC holds the directory lock exclusively.
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
import stat
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
    coexist. So, as portmap does, published ports are NAT rules from the host port to a free
    local port that pypasta forwards into the container (clients keep their address):
    - hostIP loopback: REDIRECT (locally generated packets are rewritten to 127.0.0.1/::1),
      pypasta listening there;
    - hostIP a specific address: DNAT to that address's internal port, pypasta bound to it;
    - no hostIP (both families) or an unspecified one (that family): REDIRECT, pypasta on the
      wildcard address, and an INPUT rule rejecting the internal port unless it was reached
      through the NAT rule, so that it is not a second way in.

    Returns (the NetConf with the internal ports, the rules as plain data for the state)."""
    mappings, rules = [], []
    for m in conf.port_mappings:
        if m.host_ip is None:
            families = [f for f, on in ((4, conf.ipv4), (6, conf.ipv6)) if on]
        else:
            families = [m.host_ip.version]
        internal = _free_port(m.protocol, families == [6])
        if m.host_ip is not None and m.host_ip.is_loopback:
            bind, mode = ipaddress.ip_address("::1" if m.host_ip.version == 6
                                              else "127.0.0.1"), "redirect"
        elif m.host_ip is not None and not m.host_ip.is_unspecified:
            bind, mode = m.host_ip, "dnat"
        else:
            bind, mode = (m.host_ip if m.host_ip is not None else None), "redirect"
        mappings.append(dataclasses.replace(m, host_port=internal, host_ip=bind))
        dst = None if m.host_ip is None or m.host_ip.is_unspecified else str(m.host_ip)
        for fam in families:
            rules.append({"family": fam, "proto": m.protocol, "dst": dst, "port": m.host_port,
                          "to": internal, "mode": mode, "guard": bind is None or
                          bind.is_unspecified, "tag": tag})
    return dataclasses.replace(conf, port_mappings=tuple(mappings)), rules


def _rule_argvs(rule: dict) -> list:
    """The iptables commands (without the -A/-D and chain) of one stored rule."""
    tool = "ip6tables" if rule.get("family") == 6 else "iptables"
    proto = "udp" if rule.get("proto") == "udp" else "tcp"
    port, to = int(rule["port"]), int(rule["to"])
    dst = ["-d", str(ipaddress.ip_address(rule["dst"]))] if rule.get("dst") else []
    tag = ["-m", "comment", "--comment", f"pypasta-cni {rule.get('tag', '')}"[:250]]
    if rule.get("mode") == "dnat":
        target = ["-j", "DNAT", "--to-destination",
                  (f"[{rule['dst']}]:{to}" if rule.get("family") == 6 else f"{rule['dst']}:{to}")]
    else:
        target = ["-j", "REDIRECT", "--to-ports", str(to)]
    out = [(tool, "nat", chain, ["-p", proto, *dst, "--dport", str(port), "-m", "addrtype",
                                 "--dst-type", "LOCAL", *tag, *target])
           for chain in ("OUTPUT", "PREROUTING")]
    if rule.get("guard"):
        out.append((tool, "filter", "INPUT", ["-p", proto, "--dport", str(to), "-m", "conntrack",
                                              "!", "--ctstate", "DNAT", *tag, "-j", "DROP"]))
    return out


def _iptables(rule: dict, op: str, check: bool = True) -> None:
    for tool, table, chain, rest in _rule_argvs(rule):
        if shutil.which(tool) is None:
            if check:
                raise CniError(ErrorCode.SETUP_FAILED, f"published ports need {tool} as root")
            continue
        try:
            r = subprocess.run([tool, "-w", "5", "-t", table, op, chain, *rest],
                               capture_output=True, text=True, timeout=30)
        except (subprocess.SubprocessError, OSError) as e:
            if check:
                raise CniError(ErrorCode.TRY_AGAIN_LATER, f"{tool} did not answer: {e}")
            continue
        if r.returncode != 0 and check:
            raise CniError(ErrorCode.SETUP_FAILED, f"{tool} {op} {chain} failed",
                           (r.stderr.strip().splitlines() or [""])[-1])


# --------------------------------------------------------------------------- the namespace side

def _observe(netns: str, ifname: str):
    """(HostLink, addresses, gateway4, gateway6) of `ifname` inside `netns`, or None."""
    from pasta.setup import netlink
    from pasta.util import netns as NS
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
    from pasta.setup import netlink
    from pasta.util import netns as NS
    fd = NS.open_ns(netns)
    try:
        snap = NS.ns_call(fd, netlink.host_snapshot)
    finally:
        os.close(fd)
    return any(lk.name == ifname for lk in snap.links)


# --------------------------------------------------------------------------- state

class State:
    """The runtime directory: a lock and one JSON file per attachment.

    As real root the directory is always /run/pypasta-cni (an inherited XDG_RUNTIME_DIR may be
    another user's, and ADD and DEL may run with different environments); it must belong to
    us and not be writable by others, because DEL acts on what the files name."""

    def __init__(self, conf: N.NetConf, environ, create: bool = True,
                 exclusive: bool = False):
        directory = N.runtime_dir(conf, {} if _initial_root() else environ)
        self.dir = directory
        self.ok = True
        try:
            if create:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            st = os.lstat(directory)
        except FileNotFoundError:
            self.ok = False                 # DEL, CHECK, GC: nothing was ever here
            return
        except OSError as e:
            raise CniError(ErrorCode.IO_FAILURE, f"state directory {directory}: {e.strerror}")
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise CniError(ErrorCode.IO_FAILURE, f"state directory {directory} is not ours",
                           "it must be a directory owned by us and writable by nobody else")
        try:
            self._lock = os.open(os.path.join(directory, "lock"),
                                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as e:
            raise CniError(ErrorCode.IO_FAILURE, f"state directory {directory}: {e.strerror}")

    def path(self, network: str, container_id: str, ifname: str) -> str:
        """The attachment's state file, its own lock held from here on: operations on
        different attachments run in parallel (runtimes start containers concurrently; the
        spec rules out concurrent calls for one attachment), GC excludes them all."""
        path = os.path.join(self.dir, N.state_key(network, container_id, ifname) + ".json")
        if self.ok:
            try:
                fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                             | os.O_NOFOLLOW, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                raise CniError(ErrorCode.IO_FAILURE, f"cannot lock {path}: {e.strerror}")
            self._held = fd
        return path

    def read(self, path: str):
        if not self.ok:
            return None
        try:
            with open(path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}                       # unreadable: treated as stale

    def write(self, path: str, data: dict) -> None:
        tmp = path + ".tmp"
        try:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as e:
            raise CniError(ErrorCode.IO_FAILURE, f"cannot write state {path}: {e.strerror}")

    def entries(self, network: str):
        """(path, state) of this network's attachments."""
        if not self.ok:
            return []
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


def _is_our_daemon(pid, path: str) -> bool:
    """The live pypasta of the attachment whose state is `path`: its command line carries that
    attachment's own --pid file, so a recycled PID (another attachment's translator included)
    is never taken for it."""
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
    return f"--pid={path}.pid".encode() in argv


def _stop(pid, path: str) -> bool:
    """Stop the attachment's daemon; False if it is still running afterwards."""
    if not _is_our_daemon(pid, path):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return True
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _is_our_daemon(pid, path):
            return True
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return True
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if not _is_our_daemon(pid, path):
            return True
        time.sleep(0.01)
    return False


def _pid_from_file(path: str):
    try:
        with open(path + ".pid") as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _remove(path: str, st: dict) -> bool:
    """Undo an attachment (rules, daemon, files); False if its daemon would not stop."""
    for rule in (st.get("rules") or []) if st else []:
        if isinstance(rule, dict):
            try:
                _iptables(rule, "-D", check=False)
            except (KeyError, TypeError, ValueError):
                pass                        # a damaged state entry: nothing it names is safe
    pid = (st.get("pid") if st else None) or _pid_from_file(path)
    stopped = _stop(pid, path)
    for f in (path, path + ".pid", path + ".tmp", path + ".lock"):
        try:
            os.unlink(f)
        except OSError:
            pass
    return stopped


# --------------------------------------------------------------------------- operations

def cmd_add(env: N.CniEnv, conf: N.NetConf, environ) -> dict:
    from pasta.util import netns as NS
    if NS.is_own_ns(env.netns) and not env.netns_override:
        raise CniError(ErrorCode.INVALID_NETNS,
                       "netns is the same as the plugin's own (host) namespace",
                       "set CNI_NETNS_OVERRIDE=1 to attach to it anyway")
    state = State(conf, environ)
    path = state.path(conf.name, env.container_id, env.ifname)
    old = state.read(path)
    if old is not None:
        if _is_our_daemon(old.get("pid") or _pid_from_file(path), path):
            raise CniError(ErrorCode.SETUP_FAILED, f"container {env.container_id} already has "
                           f"{env.ifname} on network {conf.name}", "DEL it before a new ADD")
        _remove(path, old)                  # a stale attachment: its rules too
    if _interface_exists(env.netns, env.ifname):
        raise CniError(ErrorCode.SETUP_FAILED,
                       f"interface {env.ifname} already exists in {env.netns}")
    rules = []
    if conf.port_mappings and _initial_root():
        conf, rules = _redirects(conf, os.path.basename(path)[:-len(".json")])
    base = {"network": conf.name, "container_id": env.container_id, "ifname": env.ifname,
            "netns": env.netns}
    # Written before anything exists: an ADD killed half-way (libcni's timeout) still leaves
    # DEL what it needs (the daemon through its pid file, the rules added so far).
    state.write(path, {**base, "pending": True, "pid": None, "rules": []})
    try:
        r = _pypasta(N.pasta_args(conf, env.netns, env.ifname, path + ".pid"))
        pid = _pid_from_file(path)
        if r.returncode != 0 or not pid:
            lines = [x for x in (r.stderr or "").splitlines() if x.strip()]
            raise CniError(ErrorCode.SETUP_FAILED, "pypasta failed to attach",
                           lines[-1] if lines else f"exit status {r.returncode}")
        state.write(path, {**base, "pending": True, "pid": pid, "rules": []})
        seen = _observe(env.netns, env.ifname)
        if seen is None:
            raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} missing after set-up")
        link, addrs, gw4, gw6 = seen
        ns_link = R.NsLink(ifname=env.ifname, sandbox=env.netns, mac=link.mac, mtu=link.mtu,
                           addresses=addrs, gateway4=gw4, gateway6=gw6,
                           dns=N.result_dns(conf))
        result = R.result_to_json(R.add_result(ns_link, conf.cni_version, conf.prev_result))
        added = []
        for rule in rules:
            state.write(path, {**base, "pending": True, "pid": pid, "rules": added + [rule]})
            _iptables(rule, "-A")
            added.append(rule)
        state.write(path, {**base, "pid": pid, "result": result, "rules": added})
    except BaseException:
        _remove(path, state.read(path) or {})
        raise
    return result


def cmd_del(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    state = State(conf, environ, create=False)
    path = state.path(conf.name, env.container_id, env.ifname) if state.ok else ""
    st = state.read(path) if state.ok else None
    if st is not None and not _remove(path, st):
        raise CniError(ErrorCode.CLEANUP_FAILED, f"the pypasta of {env.ifname} would not stop")


def cmd_check(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    state = State(conf, environ, create=False)
    path = state.path(conf.name, env.container_id, env.ifname) if state.ok else ""
    st = state.read(path) if state.ok else None
    if st is None:
        raise CniError(ErrorCode.UNKNOWN_CONTAINER,
                       f"no attachment of {env.container_id} ({env.ifname}) on {conf.name}")
    if not st or st.get("pending"):
        raise CniError(ErrorCode.SETUP_FAILED, f"the attachment of {env.ifname} is incomplete")
    if st.get("netns") != env.netns:
        raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} was attached to {st.get('netns')}")
    if not _is_our_daemon(st.get("pid"), path):
        raise CniError(ErrorCode.SETUP_FAILED, f"the pypasta of {env.ifname} is not running")
    seen = _observe(env.netns, env.ifname)
    if seen is None:
        raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} is gone from {env.netns}")
    link, addrs, _, _ = seen
    prev = conf.prev_result
    if prev is not None:
        index = next((i for i, itf in enumerate(prev.interfaces)
                      if itf.name == env.ifname and itf.sandbox), None)
        if index is None:
            raise CniError(ErrorCode.SETUP_FAILED,
                           f"prevResult does not list {env.ifname}, which this plugin made")
        mine = prev.interfaces[index]
        if mine.mac and mine.mac.lower() != link.mac.lower():
            raise CniError(ErrorCode.SETUP_FAILED, f"{env.ifname} has MAC {link.mac}, "
                           f"prevResult says {mine.mac}")
        missing = [str(ip.address) for ip in prev.ips
                   if ip.interface == index and ip.address not in addrs]
        if missing:
            raise CniError(ErrorCode.SETUP_FAILED,
                           f"{env.ifname} lacks address(es) {', '.join(missing)}")


def cmd_gc(env: N.CniEnv, conf: N.NetConf, environ) -> None:
    state = State(conf, environ, create=False, exclusive=True)
    entries = state.entries(conf.name)
    existing = [N.Attachment(st.get("container_id", ""), st.get("ifname", ""))
                for _, st in entries]
    stale = {(a.container_id, a.ifname) for a in N.stale_attachments(conf.valid_attachments,
                                                                       existing)}
    failures = []
    for path, st in entries:
        if (st.get("container_id", ""), st.get("ifname", "")) in stale:
            try:
                if not _remove(path, st):
                    failures.append(f"{path}: the daemon would not stop")
            except OSError as e:
                failures.append(f"{path}: {e.strerror}")
    if conf.valid_attachments is not None and _initial_root():
        keep = {N.state_key(conf.name, a.container_id, a.ifname)
                for a in conf.valid_attachments}
        keep |= {os.path.basename(p)[:-len(".json")] for p, st in entries
                 if (st.get("container_id", ""), st.get("ifname", "")) not in stale}
        failures += _sweep_rules(conf.name, keep)
    err = R.gc_error(failures)
    if err is not None:
        raise err


def _sweep_rules(network: str, keep: set) -> list:
    """GC: delete this network's NAT/guard rules whose attachment is neither listed nor known
    (their state file was lost, e.g. with a runtime directory on a tmpfs that was emptied)."""
    import shlex
    failures = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("nat", "filter"):
            try:
                r = subprocess.run([tool, "-w", "5", "-t", table, "-S"], capture_output=True,
                                   text=True, timeout=30)
            except (subprocess.SubprocessError, OSError) as e:
                failures.append(f"{tool} -t {table} -S: {e}")
                continue
            for line in r.stdout.splitlines():
                try:
                    words = shlex.split(line)
                except ValueError:
                    continue
                if len(words) < 3 or words[0] != "-A" or "--comment" not in words:
                    continue
                comment = words[words.index("--comment") + 1]
                if not comment.startswith("pypasta-cni "):
                    continue
                key = comment[len("pypasta-cni "):]
                if not key.startswith(f"{network[:64]}:") or key in keep:
                    continue
                d = subprocess.run([tool, "-w", "5", "-t", table, "-D", *words[1:]],
                                   capture_output=True, text=True, timeout=30)
                if d.returncode != 0:
                    failures.append(f"{tool} -D {' '.join(words[1:3])}: {d.stderr.strip()}")
    return failures


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
