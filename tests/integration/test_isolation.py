"""Isolation of the running translator (issue 15; pasta/setup/isolation.py), read from outside.

- Spawn mode, as root and rootless: every thread of the translator has no_new_privs, seccomp
  mode 2, no capability but CAP_NET_BIND_SERVICE (never more than pasta keeps: pasta 2026's
  CAP_SYS_ADMIN|CAP_NET_BIND_SERVICE, and what Debian's pasta keeps, measured here), an empty
  root directory and a mount namespace of its own; started as root it runs as nobody (65534)
  while the command keeps uid 0, and keeps CAP_KILL in its own user namespace to end it.
- Attach mode as a daemon (how the CNI plugin runs it): the same, plus a PID namespace of its
  own (PID 1 there), and it still sees its netns file go away and exits.
- The debug probe (PYPASTA_ISOLATION_PROBE=1) in the running translator: exec, opening a host
  file, listing /, setns and unshare are refused with EPERM by the filter; sockets, in both
  namespaces, still work. With --no-seccomp the empty root still refuses the exec and the open
  (ENOENT).
The rest of the suite runs confined too: everything that must keep working afterwards (auto
scanning, splicing and -T listeners through the namespace thread, netns and PID watching,
SIGUSR2, --log-size rotation, a clean exit) is tested there, e.g. test_supervisor.py.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from helpers import env
from helpers.proc import wait_until

PASTA_2026_KEEPS = (1 << 21) | (1 << 10)        # CAP_SYS_ADMIN | CAP_NET_BIND_SERVICE
NBS = 1 << 10
CAP_KILL = 1 << 5


def _tasks(pid: int) -> list[dict]:
    out = []
    for tid in sorted(os.listdir(f"/proc/{pid}/task")):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            out.append(dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line))
    return out


def _read_pid(path: str) -> int:
    return wait_until(lambda: int(open(path).read().split()[0]) if os.path.exists(path)
                      and open(path).read().strip() else 0, 10, f"the PID file {path}")


def _start_spawn(t, user: str, tag: str, extra=(), extra_env=None):
    """pypasta in spawn mode whose command waits on a FIFO; returns (proc, pid, ready, fifo)."""
    w = t.workdir
    pidfile, ready, fifo = (os.path.join(w, f"{tag}.{x}") for x in ("pid", "ready", "fifo"))
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    script = f"id -u > {ready}; read x < {fifo}"
    proc = t.pypasta(["--config-net", "-P", pidfile, *extra, "--", "sh", "-c", script],
                     user=user, extra_env=extra_env)
    wait_until(lambda: (os.path.exists(ready) and open(ready).read().strip())
               or proc.poll() is not None, 20, "the namespace command")
    assert proc.poll() is None, t.logs(proc)
    return proc, _read_pid(pidfile), ready, fifo


def _release(proc, fifo: str) -> int:
    with open(fifo, "w") as f:
        f.write("go\n")
    return proc.wait(20)


def _assert_confined(pid: int, uid: int, extra_caps: int = 0) -> None:
    tasks = _tasks(pid)
    assert len(tasks) == 2, "the loop's thread and the namespace thread"
    for st in tasks:
        eff = int(st["CapEff"], 16)
        assert eff & ~(PASTA_2026_KEEPS | extra_caps) == 0, st["CapEff"]
        assert eff & ~(NBS | extra_caps) == 0, st["CapEff"]
        assert int(st["CapPrm"], 16) == eff and int(st["CapBnd"], 16) == 0
        assert (st["NoNewPrivs"], st["Seccomp"]) == ("1", "2")
        assert st["Uid"].split() == [str(uid)] * 4
    assert os.listdir(f"/proc/{pid}/root") == []
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    for kind in ("uts", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")


def test_spawn_translator_is_confined(topology, user):
    t = topology
    proc, pid, ready, fifo = _start_spawn(t, user, "spawn")
    uid = 65534 if user == "root" else env.pw_test_user().pw_uid
    # As root, CAP_KILL in its own user namespace: the command keeps uid 0 (pasta makes it
    # nobody), and a nobody translator can end it only so (pasta.setup.isolation).
    _assert_confined(pid, uid, CAP_KILL if user == "root" else 0)
    assert open(ready).read().strip() == "0", "the command keeps uid 0 in its namespace"
    if user == "root":
        with open(f"/proc/{pid}/uid_map") as f:
            assert f.read().split() == ["0", "0", "1", "65534", "65534", "1"]
    assert _release(proc, fifo) == 0, t.logs(proc)


@pytest.mark.parametrize("user", ["rootless"])
def test_capabilities_no_more_than_debian_pasta_keeps(topology, user):
    """Debian's pasta (2023), rootless in spawn mode, measured the same way."""
    t = topology
    w = t.workdir
    pidfile, fifo = os.path.join(w, "pasta.pid"), os.path.join(w, "pasta.fifo")
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    pasta = t.host_popen(["/usr/bin/pasta", "--config-net", "-P", pidfile, "--", "sh", "-c",
                          f"read x < {fifo}"], user=user, name="pasta")
    pasta_pid = _read_pid(pidfile)
    theirs = int(_tasks(pasta_pid)[0]["CapEff"], 16)
    _release(pasta, fifo)
    proc, pid, _ready, fifo2 = _start_spawn(t, user, "ours")
    ours = {int(st["CapEff"], 16) for st in _tasks(pid)}
    assert _release(proc, fifo2) == 0
    assert theirs == PASTA_2026_KEEPS, f"{theirs:#x}"
    assert ours == {NBS} and NBS & ~theirs == 0


def test_attach_daemon_is_confined_in_its_own_pid_namespace_and_still_watches(topology):
    t = topology
    target = t.add_netns("tgt")
    pidfile = os.path.join(t.workdir, "attach.pid")
    r = t.pypasta_run(["--config-net", "--netns", target.path, "-P", pidfile], timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    pid = _read_pid(pidfile)
    # (the PID file comes from the foreground process: the daemon confines itself right after)
    wait_until(lambda: _tasks(pid)[0]["Seccomp"] == "2", 10, "the daemon to confine itself")
    _assert_confined(pid, 65534)
    st = _tasks(pid)[0]
    assert st["NSpid"].split() == [str(pid), "1"], "PID 1 of a PID namespace of its own"
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    t.host(["ip", "netns", "del", target.name])
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10, "the daemon to exit")


def _probe(t, extra=()) -> dict:
    log = os.path.join(t.workdir, f"probe{len(extra)}.log")
    pidfile = os.path.join(t.workdir, f"probe{len(extra)}.pid")
    r = t.pypasta_run(["--config-net", "-l", log, "-P", pidfile, *extra, "--", "true"],
                      extra_env={"PYPASTA_ISOLATION_PROBE": "1"}, timeout=20)
    env.PROBE_PIDS.append(int(open(pidfile).read()))
    assert r.returncode == 0, r.stdout + r.stderr
    found = dict(re.findall(r"isolation probe: ([^:]+): (.*)$", open(log).read(), re.M))
    assert len(found) == 7, found
    return found


def test_probe_forbidden_syscalls_are_refused_inside_the_running_translator(topology):
    found = _probe(topology)
    for what in ("execve /bin/true", "open /etc/passwd", "list /",
                 "setns to the target namespace", "unshare a user namespace"):
        assert found[what].startswith("refused: EPERM"), (what, found[what])
    assert found["socket"] == "allowed: 'a TCP socket'"
    assert found["socket in the target namespace"] == "allowed: 'a TCP socket'"


def test_no_seccomp_leaves_the_empty_root(topology):
    found = _probe(topology, ["--no-seccomp"])
    assert found["execve /bin/true"].startswith("refused: ENOENT")
    assert found["open /etc/passwd"].startswith("refused: ENOENT")
    assert found["list /"] == "allowed: []"
    assert found["setns to the target namespace"].startswith("refused: EPERM")
    assert found["socket in the target namespace"] == "allowed: 'a TCP socket'"


def test_sigterm_still_ends_a_confined_translator_cleanly(topology):
    t = topology
    proc, pid, _ready, _fifo = _start_spawn(t, "root", "term")
    os.kill(pid, signal.SIGTERM)
    assert proc.wait(10) == 0, t.logs(proc)


def test_sigusr2_and_log_rotation_work_while_confined(topology):
    """SIGUSR2 dumps the counters into the log file; --log-size rotates it in place (pread and
    ftruncate on the open fd: the confined process cannot open the file again)."""
    t = topology
    logf = os.path.join(t.workdir, "rot.log")
    proc, pid, _ready, fifo = _start_spawn(t, "root", "rot", ["-l", logf, "--log-size", "40960"])
    wait_until(lambda: _tasks(pid)[0]["Seccomp"] == "2", 10, "confinement")
    for i in range(200):
        before = os.path.getsize(logf)
        os.kill(pid, signal.SIGUSR2)
        wait_until(lambda: os.path.getsize(logf) != before, 5, f"state line {i}")
        if "log truncated" in open(logf).readline():
            break
    text = open(logf).read()
    assert " - log truncated at " in text.splitlines()[0]
    assert len(text.encode()) <= 40960
    assert "info:    state: " in text.rstrip("\n").splitlines()[-1]
    assert _release(proc, fifo) == 0, t.logs(proc)
