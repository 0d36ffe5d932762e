"""Network namespaces for the tests: a lone `Netns`, and the host ↔ peer `Topology`.

```
 host ns (pypasta runs here)                    peer ns ("the internet")
 eth0  198.51.100.2/24  2001:db8::2/64  <-veth->  ppt-<id>-p  198.51.100.1/24  2001:db8::1/64
   default      via 198.51.100.1                    lo: 198.18.0.1/32        2001:db8:ffff::1/128
   198.19.0.0/16 via 198.51.100.1                       198.19.0.1/32        2001:db8:1::1/128
   ::/0          via gw6 (2001:db8::1, or the peer's link-local fe80::c6ff:fe33:6401)
   2001:db8:1::/64 via gw6
```
`peer_inet4`/`peer_inet6` (198.18.0.1, 2001:db8:ffff::1) are reached over the *default* routes only;
`extra_dst4`/`extra_dst6` (198.19.0.1, 2001:db8:1::1) over the extra, non-default routes, so a
test can tell whether a namespace got the default route, the extra ones, or both.

Both namespaces: lo up, DAD off (`accept_dad=0`, plus `nodad` on every address), EUI-64 link-local
addresses from fixed MACs, `net.ipv4.ping_group_range = 0 2147483647`. These sysctls are set
inside the test namespaces only; the machine's own interfaces are never touched (the veth is
created directly inside the two namespaces).

Every name starts with `ppt-<8 hex>` so concurrent sessions never collide. Cleanup kills every
tracked process and its descendants, then whatever is still in the namespaces (`ip netns pids`),
then deletes them, and raises if anything survived.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

from . import env
from .proc import TERM_GRACE_S, CommandError, WaitTimeout, kill_all, run, wait_until

Cmd = Union[str, Sequence[str]]

SETUP_TIMEOUT_S = 5.0
PASST_MODULE = "pasta.front.passt"      # pypasta-passt (`python -m`)
NS_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.default.addr_gen_mode=0",
    "net.ipv4.ping_group_range=0 2147483647",
)
LOG_TAIL_BYTES = 4000


def unique_id() -> str:
    """`ppt-<8 hex>`: the prefix of every namespace and interface a test creates."""
    return f"ppt-{secrets.token_hex(4)}"


def eui64_link_local(mac: str) -> str:
    """The link-local address the kernel derives from `mac` (addr_gen_mode 0)."""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    iid = bytes([b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))


def ip_json(*args: str, netns: Optional[str] = None) -> list:
    """`ip -j [-n NS] ARGS` parsed."""
    argv = ["ip", "-j"] + (["-n", netns] if netns else []) + list(args)
    out = run(argv, timeout=5).stdout
    return json.loads(out) if out.strip() else []


def netns_names() -> list[str]:
    """Names in `ip netns list`."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines()
            if line.strip()]


OWNER_FILE = "owner.pid"
_ID_RE = re.compile(r"^(ppt-[0-9a-f]{8})-")


def make_workdir(test_id: str) -> str:
    """`/tmp/<id>-XXXX`, mode 1777 (rootless processes write there too), with the owner's pid."""
    d = tempfile.mkdtemp(prefix=f"{test_id}-")
    os.chmod(d, 0o1777)
    Path(d, OWNER_FILE).write_text(f"{os.getpid()}\n")
    return d


def reap_stale() -> list[str]:
    """Delete `ppt-<id>-*` namespaces whose test session died (owner pid gone); return them.

    Only namespaces with a workdir naming a dead owner are touched, so concurrent sessions and
    namespaces made by hand are left alone.
    """
    reaped = []
    for name in netns_names():
        m = _ID_RE.match(name)
        if not m:
            continue
        owners = list(Path(tempfile.gettempdir()).glob(f"{m.group(1)}-*/{OWNER_FILE}"))
        try:
            if not owners or any(os.path.exists(f"/proc/{int(o.read_text())}") for o in owners):
                continue
        except (OSError, ValueError):
            continue
        ns = Netns(name, "/")
        ns.created = True
        ns.stop_processes()
        if not ns.delete():
            reaped.append(name)
        for o in owners:
            shutil.rmtree(o.parent, ignore_errors=True)
    return reaped


class Netns:
    """One named network namespace: lo up, test sysctls, commands run in it, cleanup.

    `run()`/`popen()` take `cmd` as an argv list, or a string run by `sh -c`; `user` is "root" or
    "rootless" (the unprivileged `pypasta-test` via setpriv, with a clean environment). Commands
    run with cwd = `workdir` unless told otherwise. Popen output goes to log files in `workdir`
    unless stdout/stderr are given; `logs(proc)` reads them.
    """

    def __init__(self, name: str, workdir: str, sysctls: Sequence[str] = NS_SYSCTLS):
        self.name = name
        self.path = f"/run/netns/{name}"
        self.workdir = workdir
        self.sysctls = tuple(sysctls)
        self.procs: list[subprocess.Popen] = []
        self.created = False

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    # --- lifecycle ---------------------------------------------------------------------------------

    def create(self, lo_up: bool = True) -> "Netns":
        """`ip netns add` (from our own mount namespace, so the name stays usable), sysctls, lo."""
        run(["ip", "netns", "add", self.name])
        self.created = True
        if self.sysctls:
            run(["ip", "netns", "exec", self.name, "sysctl", "-qw", *self.sysctls])
        if lo_up:
            run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        return self

    def pids(self) -> list[int]:
        """Pids of the live processes in this namespace."""
        res = run(["ip", "netns", "pids", self.name], check=False)
        return [int(p) for p in res.stdout.split()]

    def stop_processes(self) -> list[str]:
        """Kill tracked processes and everything left in the ns; return what survived."""
        left = kill_all(self.procs, self.pids() if self.created else ())
        if self.created:
            stray = self.pids()
            if stray:
                left += kill_all((), stray, term_grace=0.5)
        return [f"pid {pid} survived SIGKILL in {self.name}" for pid in left]

    def delete(self) -> list[str]:
        """Delete the namespace; return problems."""
        if not self.created:
            return []
        res = run(["ip", "netns", "del", self.name], check=False)
        if os.path.exists(self.path):
            return [f"`ip netns del {self.name}` failed: {res.stderr.strip()}"]
        self.created = False
        return []

    # --- commands ----------------------------------------------------------------------------------

    def argv(self, cmd: Cmd, user: str = "root") -> list[str]:
        """The full argv that runs `cmd` in this namespace as `user`."""
        env.check_user(user)
        cmd = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        drop = env.setpriv_prefix() if user == "rootless" else []
        return ["ip", "netns", "exec", self.name, *drop, *cmd]

    def _env(self, user: str, kw: dict) -> dict:
        extra = kw.pop("extra_env", None)
        if "env" in kw:
            base = dict(kw.pop("env"))
            base.update(extra or {})
            return base
        if user == "rootless":
            return env.rootless_env(env.rootless_src(), extra)
        return env.root_env(extra)

    def run(self, cmd: Cmd, *, user: str = "root", timeout: float = 10.0, check: bool = True,
            **kw) -> subprocess.CompletedProcess:
        """Run `cmd` here and wait (subprocess.run: text, captured, timeout, check)."""
        __tracebackhide__ = True
        kw["env"] = self._env(user, kw)
        kw.setdefault("cwd", self.workdir)
        return run(self.argv(cmd, user), timeout=timeout, check=check, **kw)

    def popen(self, cmd: Cmd, *, user: str = "root", name: Optional[str] = None,
              **kw) -> subprocess.Popen:
        """Start `cmd` here, tracked: it is killed (with its descendants) at cleanup.

        stdin defaults to /dev/null, stdout/stderr to `workdir/<ns>-<n>-<name>.out|.err`
        (`logs(proc)`), and the process gets its own session.
        """
        kw["env"] = self._env(user, kw)
        kw.setdefault("cwd", self.workdir)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        argv = self.argv(cmd, user)
        prog = Path("sh" if isinstance(cmd, str) else cmd[0]).name
        label = f"{self.name}-{len(self.procs)}-{name or prog}"
        log_paths, files = {}, []
        try:
            for stream in ("stdout", "stderr"):
                if stream not in kw:
                    log_paths[stream] = os.path.join(self.workdir, f"{label}.{stream[3:]}")
                    files.append(open(log_paths[stream], "wb"))
                    kw[stream] = files[-1]
            proc = subprocess.Popen(argv, **kw)
        finally:
            for f in files:
                f.close()
        proc.log_paths = log_paths  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc


def logs(proc: subprocess.Popen) -> tuple[str, str]:
    """(stdout, stderr) that a tracked Popen wrote to its log files so far ("" if not logged)."""
    out = []
    for s in ("stdout", "stderr"):
        path = getattr(proc, "log_paths", {}).get(s)
        out.append(Path(path).read_text(errors="replace") if path and os.path.exists(path)
                   else "")
    return out[0], out[1]


class Topology:
    """host ns ↔ veth ↔ peer ns; see the module docstring for the picture. Use as a context
    manager or call setup()/cleanup(); the `topology` fixture does that for you."""

    host_ifname = "eth0"
    host_mac = "02:00:c6:33:64:02"
    peer_mac = "02:00:c6:33:64:01"
    host_ll6 = eui64_link_local(host_mac)          # fe80::c6ff:fe33:6402
    peer_ll6 = eui64_link_local(peer_mac)          # fe80::c6ff:fe33:6401

    host_ip4, peer_ip4, prefix4, net4 = "198.51.100.2", "198.51.100.1", 24, "198.51.100.0/24"
    host_ip6, peer_ip6, prefix6, net6 = "2001:db8::2", "2001:db8::1", 64, "2001:db8::/64"
    gw4 = "198.51.100.1"
    peer_inet4, peer_inet6 = "198.18.0.1", "2001:db8:ffff::1"      # via default routes only
    extra_route4, extra_route6 = "198.19.0.0/16", "2001:db8:1::/64"
    extra_dst4, extra_dst6 = "198.19.0.1", "2001:db8:1::1"          # via the extra routes

    def __init__(self, *, gw6_link_local: bool = False, mtu: int = 1500):
        self.id = unique_id()
        self.mtu = mtu
        self.gw6 = self.peer_ll6 if gw6_link_local else self.peer_ip6
        self.host_ns = f"{self.id}-host"
        self.peer_ns = f"{self.id}-peer"
        self.host_ns_path = f"/run/netns/{self.host_ns}"
        self.peer_ns_path = f"/run/netns/{self.peer_ns}"
        self.peer_ifname = f"{self.id}-p"                 # 14 characters, IFNAMSIZ allows 15
        self.workdir = make_workdir(self.id)             # pid files, logs, pcaps...
        self.hostns = Netns(self.host_ns, self.workdir)
        self.peerns = Netns(self.peer_ns, self.workdir)
        self.extra_ns: list[Netns] = []
        self.term_grace = TERM_GRACE_S                  # SIGTERM → SIGKILL at cleanup
        self._cleaned = False

    def __repr__(self) -> str:
        return f"Topology({self.id})"

    def __enter__(self) -> "Topology":
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # --- setup -------------------------------------------------------------------------------------

    def setup(self) -> "Topology":
        try:
            self._setup()
        except BaseException:
            self.cleanup(raise_problems=False)
            raise
        return self

    def _setup(self) -> None:
        h, p = self.host_ns, self.peer_ns
        self.hostns.create()
        self.peerns.create()
        run(["ip", "link", "add", self.host_ifname, "netns", h, "address", self.host_mac,
             "mtu", str(self.mtu), "type", "veth", "peer", "name", self.peer_ifname,
             "netns", p, "address", self.peer_mac, "mtu", str(self.mtu)])
        pif = self.peer_ifname
        run(["ip", "-n", p, "-batch", "-"], input="\n".join([
            f"link set {pif} up",
            f"addr add {self.peer_ip4}/{self.prefix4} dev {pif}",
            f"addr add {self.peer_ip6}/{self.prefix6} dev {pif} nodad",
            f"addr add {self.peer_inet4}/32 dev lo",
            f"addr add {self.extra_dst4}/32 dev lo",
            f"addr add {self.peer_inet6}/128 dev lo nodad",
            f"addr add {self.extra_dst6}/128 dev lo nodad",
        ]) + "\n")
        eth = self.host_ifname
        run(["ip", "-n", h, "-batch", "-"], input="\n".join([
            f"link set {eth} up",
            f"addr add {self.host_ip4}/{self.prefix4} dev {eth}",
            f"addr add {self.host_ip6}/{self.prefix6} dev {eth} nodad",
            f"route add default via {self.gw4} dev {eth}",
            f"route add {self.extra_route4} via {self.gw4} dev {eth}",
            f"route add ::/0 via {self.gw6} dev {eth}",
            f"route add {self.extra_route6} via {self.gw6} dev {eth}",
        ]) + "\n")
        wait_until(self._ready, SETUP_TIMEOUT_S,
                   f"{self.id}: carrier on both veth ends, link-local addresses present and "
                   f"no tentative address")

    def _ready(self) -> bool:
        for ns, ifname, ll in ((self.host_ns, self.host_ifname, self.host_ll6),
                               (self.peer_ns, self.peer_ifname, self.peer_ll6)):
            links = {link["ifname"]: link for link in ip_json("addr", "show", netns=ns)}
            link = links.get(ifname)
            if link is None or "LOWER_UP" not in link.get("flags", ()):
                return False
            addrs = [a for lk in links.values() for a in lk.get("addr_info", ())]
            if any(a.get("tentative") for a in addrs):
                return False
            if ll not in {a.get("local") for a in link.get("addr_info", ())}:
                return False
        return True

    # --- commands ----------------------------------------------------------------------------------

    def host(self, cmd: Cmd, **kw) -> subprocess.CompletedProcess:
        """Run `cmd` in the host ns and wait; see Netns.run (user=, timeout=10, check=True)."""
        __tracebackhide__ = True
        return self.hostns.run(cmd, **kw)

    def peer(self, cmd: Cmd, **kw) -> subprocess.CompletedProcess:
        """Run `cmd` in the peer ns and wait; see Netns.run."""
        __tracebackhide__ = True
        return self.peerns.run(cmd, **kw)

    def host_popen(self, cmd: Cmd, **kw) -> subprocess.Popen:
        """Start `cmd` in the host ns, tracked and killed at cleanup; see Netns.popen."""
        return self.hostns.popen(cmd, **kw)

    def peer_popen(self, cmd: Cmd, **kw) -> subprocess.Popen:
        """Start `cmd` in the peer ns, tracked and killed at cleanup; see Netns.popen."""
        return self.peerns.popen(cmd, **kw)

    def add_netns(self, suffix: str, configure: bool = False) -> Netns:
        """One more namespace `<id>-<suffix>` (e.g. a target for `pypasta --netns`), deleted at
        cleanup. Bare by default, like Podman's (lo down, kernel defaults); `configure=True`
        gives it lo up and the test sysctls.

        Use this rather than `topo.host(["ip", "netns", "add", ...])`: `ip netns exec` runs its
        command in a private mount namespace, so a namespace added from there is never bound
        under /run/netns for anyone else (setns on the leftover file fails with EINVAL).
        """
        ns = Netns(f"{self.id}-{suffix}", self.workdir, NS_SYSCTLS if configure else ())
        self.extra_ns.append(ns)
        return ns.create(lo_up=configure)

    @staticmethod
    def pypasta_argv(args: Sequence[str], user: str = "root", module: str = "pasta") -> list[str]:
        """`PYTHON -m MODULE ARGS` with the interpreter for `user` (no namespace or setpriv):
        pypasta, or pypasta-passt with `module="pasta.front.passt"`."""
        return [env.python_for(user), "-m", module, *map(str, args)]

    def pypasta(self, args: Sequence[str], user: str = "root", **popen_kw) -> subprocess.Popen:
        """Start `python -m pasta ARGS` in the host ns as `user` ("root" or "rootless")."""
        popen_kw.setdefault("name", "pypasta")
        return self.hostns.popen(self.pypasta_argv(args, user), user=user, **popen_kw)

    def pypasta_run(self, args: Sequence[str], user: str = "root", timeout: float = 30.0,
                    check: bool = False, **kw) -> subprocess.CompletedProcess:
        """Run `python -m pasta ARGS` in the host ns as `user` and wait for it to exit."""
        __tracebackhide__ = True
        return self.hostns.run(self.pypasta_argv(args, user), user=user, timeout=timeout,
                               check=check, **kw)

    @staticmethod
    def passt_argv(args: Sequence[str], user: str = "root") -> list[str]:
        return Topology.pypasta_argv(args, user, PASST_MODULE)

    def passt(self, args: Sequence[str], user: str = "root", **popen_kw) -> subprocess.Popen:
        """Start pypasta-passt ARGS in the host ns as `user` (tracked, as `pypasta()`)."""
        popen_kw.setdefault("name", "pypasta-passt")
        return self.hostns.popen(self.passt_argv(args, user), user=user, **popen_kw)

    def passt_daemon(self, args: Sequence[str], user: str = "root", **popen_kw) -> int:
        """Start pypasta-passt ARGS in daemon mode with a PID file; once the parent exited 0
        (what QEMU 10.1 and newer libvirt wait for), return the daemon's PID from the file.
        The daemon is in the host namespace, so cleanup ends it whatever the test did."""
        pidf = os.path.join(self.workdir, f"passt-{secrets.token_hex(4)}.pid")
        p = self.passt([*args, "-P", pidf], user=user, **popen_kw)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pypasta-passt's parent still runs after 20 s: {logs(p)}")
        assert rc == 0, f"pypasta-passt exited {rc}: {logs(p)}"
        pid = int(Path(pidf).read_text())
        assert pid > 0, pidf
        return pid

    def host_python(self, code: str, user: str = "root", **kw) -> subprocess.CompletedProcess:
        """Run `python -c CODE` in the host ns with the interpreter and PYTHONPATH pypasta gets."""
        __tracebackhide__ = True
        return self.hostns.run([env.python_for(user), "-c", code], user=user, **kw)

    logs = staticmethod(logs)

    def copy_helper(self, name: str) -> str:
        """Copy the script tests/helpers/NAME into the workdir, readable by the rootless user
        (the checkout may not be); returns the copy's path."""
        dst = os.path.join(self.workdir, name)
        if not os.path.exists(dst):
            shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), dst)
            os.chmod(dst, 0o644)
        return dst

    def wait_listening(self, which: str, port: int, proto: str = "tcp",
                       timeout: float = 10.0) -> None:
        """Wait (bounded) until a `proto` socket is bound to `port` in namespace `which`."""
        ns = self.ns(which)
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        wait_until(lambda: ns.run(f"ss {flag} 'sport = :{port}'", check=False).stdout.strip(),
                   timeout, f"{proto} listener on {port} in {which}")

    # --- inspection --------------------------------------------------------------------------------

    def ns(self, which: str) -> Netns:
        """"host", "peer", or the name or suffix of a namespace from add_netns()."""
        if which == "host":
            return self.hostns
        if which == "peer":
            return self.peerns
        for ns in self.extra_ns:
            if which in (ns.name, ns.name[len(self.id) + 1:]):
                return ns
        raise KeyError(which)

    def addrs(self, which: str = "host", ifname: Optional[str] = None) -> list[dict]:
        """`ip -j addr` entries (addr_info items plus "ifname") in the host or peer ns."""
        args = ["addr", "show"] + (["dev", ifname] if ifname else [])
        return [dict(a, ifname=link["ifname"])
                for link in ip_json(*args, netns=self.ns(which).name)
                for a in link.get("addr_info", ())]

    def routes(self, which: str = "host", family: int = 4) -> list[dict]:
        """`ip -j -4|-6 route` of the main table in the host or peer ns."""
        return ip_json(f"-{family}", "route", "show", netns=self.ns(which).name)

    def wait_addr(self, addr: str, which: str = "host", timeout: float = 5.0) -> dict:
        """Wait until `addr` is present and not tentative in the host or peer ns."""
        def present():
            for a in self.addrs(which):
                if a.get("local") == addr and not a.get("tentative"):
                    return a
            return None
        return wait_until(present, timeout, f"address {addr} in {self.ns(which).name}")

    # --- cleanup -----------------------------------------------------------------------------------

    def cleanup(self, raise_problems: bool = True) -> None:
        """Kill tracked and stray processes, delete both namespaces and the workdir."""
        if self._cleaned:
            return
        self._cleaned = True
        problems: list[str] = []
        # Tracked processes of both namespaces in one pass, so the grace periods overlap.
        tracked = [p for ns in (self.hostns, self.peerns, *self.extra_ns) for p in ns.procs]
        left = kill_all(tracked, term_grace=self.term_grace)
        problems += [f"tracked pid {pid} survived SIGKILL" for pid in left]
        self._print_logs()
        # Namespaces a test made itself under this topology's prefix (`<id>-tgt`...) go too.
        extra = list(self.extra_ns)
        try:
            known = {ns.name for ns in (self.hostns, self.peerns, *extra)}
            for name in netns_names():
                if name.startswith(self.id + "-") and name not in known:
                    extra.append(Netns(name, self.workdir))
                    extra[-1].created = True
        except Exception as exc:  # noqa: BLE001 - keep cleaning up
            problems.append(f"listing namespaces: {exc!r}")
        for ns in (self.hostns, self.peerns, *extra):
            try:
                problems += ns.stop_processes()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                problems.append(f"stopping processes in {ns.name}: {exc!r}")
        for ns in (*extra, self.hostns, self.peerns):
            try:
                problems += ns.delete()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"deleting {ns.name}: {exc!r}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        if problems and raise_problems:
            raise RuntimeError(f"{self.id} cleanup: " + "; ".join(problems))

    def _print_logs(self) -> None:
        """Print the tail of each tracked process's logs: pytest shows it when a test fails."""
        for proc in [p for ns in (self.hostns, self.peerns, *self.extra_ns) for p in ns.procs]:
            for stream, path in getattr(proc, "log_paths", {}).items():
                try:
                    size = os.path.getsize(path)
                    with open(path, "rb") as f:
                        f.seek(max(0, size - LOG_TAIL_BYTES))
                        data = f.read().decode("utf-8", "replace")
                except OSError:
                    continue
                if data.strip():
                    print(f"--- {Path(path).name} (pid {proc.pid}, rc {proc.poll()}) ---\n{data}",
                          file=sys.stdout)


__all__ = ["Netns", "Topology", "CommandError", "WaitTimeout", "eui64_link_local", "ip_json",
           "logs", "make_workdir", "netns_names", "reap_stale", "unique_id"]


def read_stats(log_path: str) -> dict:
    """pypasta's counters from the last "state: k=v, ..." line of its log (SIGUSR2 dump)."""
    lines = [line for line in open(log_path).read().splitlines() if "state: " in line]
    assert lines, "no state dump in the log"
    out = {}
    for item in lines[-1].split("state: ", 1)[1].split(", "):
        k, _, v = item.rpartition("=")
        out[k] = int(v)
    return out


def dump_stats(pid: int, log_path: str, timeout: float = 5.0) -> dict:
    """Ask pypasta (`pid`) for a state dump with SIGUSR2 and return it once it is in the log
    (a fresh one: the dumps are counted before the signal)."""
    def dumps() -> int:
        return open(log_path).read().count("state: ")
    n = dumps()
    os.kill(pid, signal.SIGUSR2)
    wait_until(lambda: dumps() > n, timeout, "the state dump")
    return read_stats(log_path)


def fd_count(pid: int) -> int:
    """How many fds process `pid` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
