"""Test helpers for pypasta: namespaces, the host ↔ peer topology, processes, bounded waits.

Set-up: `bash tests/install-deps.sh` as root (Debian tools, `pip install -e '.[test]'`, the user
`pypasta-test`, /dev/net/tun 0666, the venv /opt/pypasta-venv). Integration tests run as root; a
missing tool or a machine not set up is a *failure* naming that script, never a skip.

Fixtures (tests/conftest.py)
----------------------------
- `topology` (function): a set-up `Topology`, torn down after the test (teardown raises if a
  process or namespace survives). `make_topology(**kw)` builds more, or other shapes
  (`gw6_link_local=True`, `mtu=...`).
- `netns` (function): one bare `Netns` (lo up, DAD off, ping sockets allowed) for kernel tests.
- `user` (function, params "root" and "rootless"; the rootless one carries the `rootless` mark):
  a test that takes `user` runs once per user. Narrow it per test with
  `@pytest.mark.parametrize("user", ["rootless"])` (a direct parametrize overrides the fixture).
  Pass it on: `topology.pypasta(args, user=user)`.
- `integration_env` (session): the machine check, pulled in by the fixtures above; `require_root`.

Topology (helpers.topology; picture in its docstring)
----------------------------------------------------
Names: `topo.id` = `ppt-<8 hex>`; namespaces `topo.host_ns` = `<id>-host`, `topo.peer_ns` =
`<id>-peer`, paths `topo.host_ns_path`, `topo.peer_ns_path` (/run/netns/NAME); interfaces
`topo.host_ifname` = "eth0" (in the host ns), `topo.peer_ifname` = `<id>-p` (in the peer ns).
`topo.workdir`: a per-topology directory (mode 1777, removed at cleanup) for pid files, logs...

Addresses (strings): host_ip4 198.51.100.2, peer_ip4 = gw4 198.51.100.1, prefix4 24, net4;
host_ip6 2001:db8::2, peer_ip6 2001:db8::1, prefix6 64, net6; gw6 = 2001:db8::1 (or peer_ll6 with
gw6_link_local=True); host_mac/peer_mac 02:00:c6:33:64:02/01, host_ll6/peer_ll6 their EUI-64
link-locals; peer_inet4 198.18.0.1 and peer_inet6 2001:db8:ffff::1 on the peer's lo (reached via
the default routes); extra_route4 198.19.0.0/16 and extra_route6 2001:db8:1::/64 (non-default
routes in the host ns via the gateways) with extra_dst4 198.19.0.1 / extra_dst6 2001:db8:1::1 on
the peer's lo; mtu 1500.

Commands: `cmd` is an argv list, or a string run with `sh -c`. `user` is "root" or "rootless".
- `topo.host(cmd, user="root", timeout=10, check=True, **run_kw) -> CompletedProcess` (text,
  captured; a failure raises CommandError showing stdout/stderr); `topo.peer(...)` likewise.
- `topo.host_popen(cmd, user="root", name=None, **popen_kw) -> Popen`; `topo.peer_popen(...)`.
  stdin /dev/null, stdout/stderr to log files unless given (`topo.logs(proc) -> (out, err)`),
  own session; tracked, killed with its descendants at cleanup, log tails printed then.
- `topo.pypasta(args, user="root", **popen_kw) -> Popen`: `python -m pasta ARGS` in the host ns.
- `topo.pypasta_run(args, user="root", timeout=30, check=False, **run_kw) -> CompletedProcess`.
- `topo.host_python(code, user="root", **run_kw)`: `python -c CODE` with pypasta's interpreter.
- `extra_env={...}` adds to the environment of any of these; `env=` replaces it.
- `topo.add_netns(suffix, configure=False) -> Netns`: one more namespace `<id>-<suffix>` (a target
  for `--netns`; bare like Podman's unless `configure=True`), deleted at cleanup with its
  processes. Do NOT create namespaces with `topo.host(["ip", "netns", "add", ...])`: `ip netns
  exec` gives its command a private mount namespace, the bind mount under /run/netns never
  reaches anyone else, and setns on the leftover file fails with EINVAL. (Any namespace named
  `<id>-*` is removed at cleanup all the same.)
- Inspection: `topo.addrs(which="host", ifname=None)`, `topo.routes(which="host", family=4)`
  (`ip -j` dicts), `topo.wait_addr(addr, which="host", timeout=5)`; `which` is "host", "peer"
  or an add_netns suffix; `topo.ns(which) -> Netns`, `topo.hostns`, `topo.peerns`.
- Cleanup: `topo.term_grace` (3 s) between SIGTERM and SIGKILL. Namespaces of sessions that
  were killed are reaped at the next session start (`reap_stale()`, owner pid in the workdir).
- Gotcha: `*_run` waits for EOF on stdout/stderr, so a daemon that keeps them open makes it
  wait until `timeout`. Use the popen forms, or have the daemon detach its stdio (pasta does).

Netns (a bare namespace; the `netns` fixture, `topo.add_netns`, `topo.hostns`...)
--------------------------------------------------------------------------------------
`ns.name`, `ns.path`, `ns.workdir`, `ns.run(cmd, user=, timeout=, check=, **kw)`,
`ns.popen(cmd, user=, name=, **kw)`, `ns.pids()`, `ns.argv(cmd, user)`.

How pypasta runs
----------------
- root: `ip netns exec HOST sys.executable -m pasta ARGS`, PYTHONPATH = this checkout, the
  runner's environment otherwise, cwd = topo.workdir.
- rootless: `ip netns exec HOST setpriv --reuid=U --regid=G --init-groups
  /opt/pypasta-venv/bin/python -m pasta ARGS` as `pypasta-test` (no capabilities), with a clean
  environment (PATH, HOME, USER, LANG, XDG_RUNTIME_DIR=/run/user/UID, PYTHONDONTWRITEBYTECODE=1)
  and PYTHONPATH = a world-readable copy of pasta/, cni/, podman_compat/ made once per session
  under /var/tmp/pypasta-test-src-<pid>-*/ (`helpers.env.rootless_src()`), since the checkout
  may live under /root.

Podman 5 and RootlessKit 2 (helpers.trixie)
-------------------------------------------
`Trixie(topo)`: Debian 13's Podman 5.4 and RootlessKit 2.0.2 from the cached tree
/var/cache/pypasta-test/trixie (install-deps.sh step 6), entered read-only in private mount and
PID namespaces inside the topology's host namespace, with pypasta as their `pasta` (made by
contrib/podman/install-helpers.sh). `tx.podman(*args)`, `tx.run(cmd, user="rootless"|"root")`,
`tx.popen(...)`, `tx.import_image()`, `tx.calls()` (argv of every pypasta run),
`tx.pasta_procs(argv=None)` (live pypasta processes as `ProcRef`s), `tx.wait_gone(refs, what)`,
`tx.close()` (checks that nothing is left). `peer_services(topo)`: HTTP, UDP echo and DNS on the
peer, a stub resolver on the host's 127.0.0.53. Details in the module docstring.

passt mode (helpers.guest, helpers.passt_client)
------------------------------------------------
- `topo.passt(args, user="root", **popen_kw) -> Popen`: pypasta-passt (`python -m
  pasta.front.passt ARGS`) in the host ns; `topo.passt_daemon(args, user)`: the same with a PID
  file, waits for the parent's exit 0 and returns the daemon's PID; `topo.passt_argv(...)`.
- `Guest(workdir, netdev_args, popen_prefix=topo.host_popen, pass_fds=())`: Debian 12's kernel
  with a busybox initramfs under QEMU 7.2 (TCG), built by install-deps.sh step 8; `start()`,
  `wait_ready()`, `run(cmd, timeout) -> (rc, output)`, `check(cmd)`, `poweroff()`, `kill()`;
  guest tools: busybox (udhcpc, nc, ping, nslookup, httpd...) and `guestnet` (dhcp6, udp-echo,
  udp-ping). `guest.check_setup()` fails, never skips, when the guest is not built.
- `FrameClient.connect(path)` / `FrameClient(sock)`: passt's framing from the test process
  (`send(frame)`, `recv_frames()`, `wait_frame(pred)`, `at_eof()`).

Other helpers
-------------
- `wait_until(predicate, timeout=5, what="...", interval=0.005, max_interval=0.1, ignore=())`:
  bounded polling; returns the predicate's truthy value or raises WaitTimeout (an
  AssertionError) naming `what`.
- `proc.run(argv, timeout=10, check=True, ...)`, `proc.kill_all(procs, pids)`,
  `proc.descendants(pids)`, `proc.alive(pid)`, `proc.cmdline_has(pid, bytes)`.
"""

from .proc import CommandError, WaitTimeout, kill_all, run, wait_until
from .topology import (Netns, Topology, dump_stats, fd_count, logs, netns_names, read_stats,
                       sha256_file, unique_id)

__all__ = ["dump_stats", "fd_count", "read_stats", "sha256_file", "CommandError", "Netns", "Topology", "WaitTimeout", "kill_all", "logs",
           "netns_names", "run", "unique_id", "wait_until"]
