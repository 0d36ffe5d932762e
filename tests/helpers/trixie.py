"""Debian 13's Podman 5.4 and RootlessKit 2.0.2 on the hermetic topology, with pypasta as pasta.

Debian 12 has neither (Podman 4.3 has no pasta support), so `tests/install-deps.sh` caches a
Debian 13 root file system under TREE (mmdebstrap; podman5.md section 5.1). `Trixie(topo)`
enters it the way podman5.md section 5.3 describes:

- `ip netns exec HOST unshare --mount --pid --fork --kill-child=SIGKILL --propagation private
  sh INIT_SH ...`: the tree runs in the topology's host namespace, in a mount and a PID namespace
  of its own. INIT_SH (the machine's sh and mount, before the pivot) makes `/` private,
  bind-mounts the tree on itself **read-only** (the cache is never written: everything writable
  below is a tmpfs or a bind of the test's workdir), mounts proc, a read-only sysfs with a
  cgroup v1 view (crun refuses this machine's hybrid layout), a private /dev (mknod'ed nodes,
  /dev/net/tun 0666, devpts, shm, mqueue), tmpfs on /run, /tmp, /var/tmp and the test user's
  home, then binds in: the topology's workdir at its own path (logs, the image tar, the record
  of pasta runs), this checkout's packages at SRC (`env.rootless_src()`: pypasta is not in the
  tree), the test's resolv.conf and a copy of the tree's /etc/containers with the test's
  containers.conf. It pivots into the tree, makes `/` shared (Podman wants it), creates
  /run/user/UID and execs INIT_PY: a PID 1 that reaps orphans (pasta daemons and conmon end up
  there) and prints `ready` (the readiness signal, read with a deadline).
- Commands: `nsenter -t INIT -m -n -p [setpriv --reuid U --regid G --init-groups] env -i ...`
  with a clean environment (HOME, PATH, XDG_RUNTIME_DIR=/run/user/UID,
  PODMAN_IGNORE_CGROUPSV1_WARNING=1). `user="rootless"` (the default) is the test user, whose
  name, uid and gid the tree shares with the machine's; it has its own subuid range there.
- Podman's `pasta` and `pesto`: BIN/pypasta and BIN/pypasta-pesto stand in for pypasta's
  console scripts (the tree has no pypasta installed, and the machine's console scripts run an
  interpreter under /root that the test user cannot execute). They run the tree's venv python
  with PYTHONPATH=SRC; BIN/pypasta also records each run's argv (NUL-separated, in
  CALLS/<pid>.argv; `--version`/`--help` probes are not runs). `contrib/podman/
  install-helpers.sh --bindir BIN --conf /etc/containers/containers.conf.d/50-pypasta.conf
  HELPERS` then makes HELPERS/pasta and HELPERS/pesto and the containers.conf drop-in, exactly
  as a user would.
- The image IMAGE is imported from a tar made inside the tree: busybox-static with its applet
  links, socat and iputils ping (as /usr/bin/iping) with their libraries, a web root.
- pypasta processes are found through the private PID namespace: processes whose
  /proc/PID/ns/pid is the init's or nested in it (a daemonized pypasta is PID 1 of a namespace of
  its own) and whose cmdline is the venv python `-m pasta ARGV`
  (`pasta_procs()`), so nothing outside these tests is ever looked at or signalled.
- `close()`: `podman rm -af` (if Podman was used), then a bounded wait until no pypasta is left
  (a pypasta that outlives every container is reported), then SIGKILL to the init (the kernel
  kills the rest of the PID namespace, and the mount namespace with all its mounts goes with
  it), and checks that no process of the namespace and no mount of the tree is left.

`peer_services(topo)` gives the peer what podman5.md section 5.2 lists: HTTP (busybox httpd,
IPv4 and IPv6), UDP echo (udpecho.py) on PEER4/PEER6, a DNS server answering for DOMAIN, and, in
the host namespace, a second resolver on 127.0.0.53 that forwards to it (systemd-resolved's
stub: Podman drops loopback resolvers, so containers resolve through pasta's --dns-forward).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional, Sequence

from . import env
from .proc import CommandError, alive, kill_all, wait_until

TREE = "/var/cache/pypasta-test/trixie"
TREE_PYTHON = "/opt/pypasta-venv/bin/python3"      # inside the tree
RUN_DIR = "/run/pypasta"
SRC = f"{RUN_DIR}/src"
BIN = f"{RUN_DIR}/bin"
HELPERS = f"{RUN_DIR}/helpers"
IMAGE = "localhost/pypasta-busybox"
INDEX = "pypasta busybox httpd\n"
TREE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_HELPERS = env.REPO_ROOT / "contrib" / "podman" / "install-helpers.sh"
READY_TIMEOUT_S = 20.0
NS_GET_PARENT = 0xB702              # _IO(0xb7, 0x2), linux/nsfs.h
MAX_PIDNS_DEPTH = 32                # the kernel's limit
EXIT_TIMEOUT_S = 10.0

# Podman's own settings; install-helpers.sh adds helper_binaries_dir and the network command as a
# drop-in (containers.conf.d/50-pypasta.conf).
CONTAINERS_CONF = """\
[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

INIT_SH = r"""
set -eu
T=$1 W=$2 SRCDIR=$3 U=$4 G=$5 H=$6
mount --make-rprivate /
mount --bind "$T" "$T"
mount -o remount,bind,ro "$T"
mount -t proc -o nosuid,nodev,noexec proc "$T/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$T/sys"
mount -t tmpfs -o mode=0755,nosuid,nodev,noexec cgroup "$T/sys/fs/cgroup"
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
    mkdir "$T/sys/fs/cgroup/$c"
    mount -t cgroup -o ro,nosuid,nodev,noexec,$c cgroup "$T/sys/fs/cgroup/$c"
done
mkdir "$T/sys/fs/cgroup/systemd"
mount -t cgroup -o ro,nosuid,nodev,noexec,none,name=systemd cgroup "$T/sys/fs/cgroup/systemd"
mount -o remount,ro,bind "$T/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid dev "$T/dev"
mknod -m 0666 "$T/dev/null" c 1 3
mknod -m 0666 "$T/dev/zero" c 1 5
mknod -m 0666 "$T/dev/full" c 1 7
mknod -m 0666 "$T/dev/random" c 1 8
mknod -m 0666 "$T/dev/urandom" c 1 9
mknod -m 0666 "$T/dev/tty" c 5 0
mknod -m 0666 "$T/dev/fuse" c 10 229
mkdir -m 0755 "$T/dev/net" "$T/dev/pts" "$T/dev/mqueue"
mknod -m 0666 "$T/dev/net/tun" c 10 200
mkdir -m 1777 "$T/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$T/dev/pts"
ln -s pts/ptmx "$T/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$T/dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$T/dev/mqueue"
ln -s /proc/self/fd "$T/dev/fd"
ln -s /proc/self/fd/0 "$T/dev/stdin"
ln -s /proc/self/fd/1 "$T/dev/stdout"
ln -s /proc/self/fd/2 "$T/dev/stderr"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$T/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$T/tmp"
mount -t tmpfs -o mode=1777,nosuid,nodev vartmp "$T/var/tmp"
mount -t tmpfs -o "mode=0700,uid=$U,gid=$G,nosuid,nodev" home "$T$H"
mkdir -p "$T$W" "$T/run/pypasta/src" "$T/run/pypasta/bin" "$T/run/.oldroot"
mount --bind "$W" "$T$W"
mount --bind "$SRCDIR" "$T/run/pypasta/src"
mount --bind "$W/resolv.conf" "$T/etc/resolv.conf"
mount --bind "$W/etc-containers" "$T/etc/containers"
mkdir -m 0700 -p "$T/run/user/$U"
chown "$U:$G" "$T/run/user/$U"
cd "$T"
pivot_root . run/.oldroot
cd /
umount -l /run/.oldroot
rmdir /run/.oldroot
mount --make-rshared /
exec /usr/bin/env -i /usr/bin/python3 -c "$INIT_PY"
"""

# PID 1 of the tree's PID namespace: reap every orphan, ignore every signal it can (PID 1 of a
# namespace gets no signal it has no handler for anyway; SIGKILL from outside ends it).
INIT_PY = r"""
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
print("ready", flush=True)
null = os.open("/dev/null", os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.sigwaitinfo({signal.SIGCHLD})
"""

# Stand in for pypasta's console scripts inside the tree (see the module docstring).
PYPASTA_STANDIN = """\
#!/bin/sh
# pypasta, run from the checkout's sources bound in at {src}; every run's argv is recorded.
case "${{1-}}" in
    --version|--help|-h) ;;
    *) printf '%s\\0' "$@" >"{calls}/$$.argv" ;;
esac
PYTHONPATH={src} PYTHONDONTWRITEBYTECODE=1 exec {python} -m pasta "$@"
"""
PESTO_STANDIN = """\
#!/bin/sh
# pypasta-pesto, run from the checkout's sources bound in at {src}.
PYTHONPATH={src} PYTHONDONTWRITEBYTECODE=1 exec {python} -c \\
    'import sys; from pasta.front.pesto import main
sys.exit(main(sys.argv[2:], prog=sys.argv[1]))' "$0" "$@"
"""

# Runs as root inside the tree: the image's root file system as a tar.
IMAGE_SH = r"""
set -eu
out=$1 index=$2
d=$(mktemp -d /tmp/image.XXXXXX)
mkdir -p "$d/bin" "$d/usr/bin" "$d/etc" "$d/tmp" "$d/proc" "$d/sys" "$d/dev" "$d/run" \
         "$d/var/www" "$d/root"
cp /usr/bin/busybox "$d/bin/busybox"
for a in $(/usr/bin/busybox --list); do
    [ -e "$d/bin/$a" ] || ln -s busybox "$d/bin/$a"
done
cp -L /usr/bin/socat "$d/usr/bin/socat"
cp /usr/bin/ping "$d/usr/bin/iping"
for b in /usr/bin/socat /usr/bin/ping; do
    for lib in $(ldd "$b" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) { print $i; next } }')
    do
        mkdir -p "$d$(dirname "$lib")"
        [ -e "$d$lib" ] || cp -L "$lib" "$d$lib"
    done
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$d/etc/passwd"
echo 'root:x:0:' >"$d/etc/group"
printf '%s' "$index" >"$d/var/www/index.html"
chmod 1777 "$d/tmp"
tar -C "$d" -cf "$out" .
chmod 0644 "$out"
rm -rf "$d"
"""


def problems() -> list[str]:
    """What is missing for these tests, one line each (empty when all is well)."""
    found = []
    for path in ("usr/bin/podman", "usr/bin/rootlesskit", "usr/bin/setpriv", "usr/bin/busybox",
                 TREE_PYTHON.lstrip("/")):
        if not os.access(os.path.join(TREE, path), os.X_OK):
            found.append(f"{TREE}/{path} missing (the Debian 13 tree)")
    try:
        pw = env.pw_test_user()
        line = next((ln for ln in Path(TREE, "etc/passwd").read_text().splitlines()
                     if ln.startswith(pw.pw_name + ":")), "")
        if line.split(":")[2:4] != [str(pw.pw_uid), str(pw.pw_gid)]:
            found.append(f"{env.TEST_USER} in {TREE}/etc/passwd does not have the machine's "
                         f"uid and gid")
    except (KeyError, OSError):
        found.append(f"user {env.TEST_USER} missing on the machine or in {TREE}")
    for tool in ("unshare", "nsenter", "mknod", "pivot_root"):
        if env.which(tool) is None:
            found.append(f"tool `{tool}` not found (Debian package util-linux/coreutils)")
    return found


def check_setup() -> None:
    """Fail (never skip) with what is missing and how to fix it."""
    env.require_setup("the Debian 13 tree for the Podman 5 / RootlessKit 2 tests", problems())


@dataclasses.dataclass(frozen=True)
class ProcRef:
    """A process seen from the machine's PID namespace: pid plus start time (no pid reuse)."""
    pid: int
    start: int
    argv: tuple

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start and alive(self.pid)


def _start_time(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2:].split()[19])


class Trixie:
    """The Debian 13 tree, entered in the topology's host namespace; see the module docstring."""

    def __init__(self, topo, resolv: str = "nameserver 127.0.0.53\n"):
        check_setup()
        self.t = topo
        self.w = topo.workdir
        pw = env.pw_test_user()
        self.uid, self.gid, self.user = pw.pw_uid, pw.pw_gid, pw.pw_name
        self.home = next(ln.split(":")[5] for ln in Path(TREE, "etc/passwd").read_text()
                         .splitlines() if ln.startswith(self.user + ":"))
        self.xdg = f"/run/user/{self.uid}"
        self.calls_dir = os.path.join(self.w, "pasta-calls")
        self.image_tar = os.path.join(self.w, "image.tar")
        self.procs: list[subprocess.Popen] = []
        self.init: Optional[ProcRef] = None
        self.unshare: Optional[subprocess.Popen] = None
        self._pidns: Optional[int] = None
        self._level = 0
        self._used_podman = False
        self._closed = False
        self._prepare_files(resolv)
        try:
            self._enter()
            self._install_pypasta()
        except BaseException:
            self.close(check=False)
            raise

    # --- set-up ----------------------------------------------------------------------------------

    def _prepare_files(self, resolv: str) -> None:
        Path(self.w, "resolv.conf").write_text(resolv)
        os.chmod(os.path.join(self.w, "resolv.conf"), 0o644)
        etc = os.path.join(self.w, "etc-containers")
        shutil.copytree(os.path.join(TREE, "etc/containers"), etc, symlinks=True)
        Path(etc, "containers.conf").write_text(CONTAINERS_CONF)
        for top, dirs, files in os.walk(etc):
            os.chmod(top, 0o755)
            for f in files:
                if not os.path.islink(os.path.join(top, f)):
                    os.chmod(os.path.join(top, f), 0o644)
        os.makedirs(self.calls_dir, mode=0o1777)
        os.chmod(self.calls_dir, 0o1777)
        shutil.copy(INSTALL_HELPERS, os.path.join(self.w, "install-helpers.sh"))
        shutil.copy(INSTALL_HELPERS.with_name("pypasta.conf"), os.path.join(self.w, "pypasta.conf"))
        Path(self.w, "init.sh").write_text(INIT_SH)
        Path(self.w, "image.sh").write_text(IMAGE_SH)

    def _enter(self) -> None:
        argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL",
                "--propagation", "private", "sh", os.path.join(self.w, "init.sh"),
                TREE, self.w, env.rootless_src(), str(self.uid), str(self.gid), self.home]
        self.unshare = self.t.host_popen(argv, name="trixie-init", stdout=subprocess.PIPE,
                                         extra_env={"INIT_PY": INIT_PY})
        line = self._read_ready(self.unshare)
        if line != b"ready\n":
            raise AssertionError(f"the tree's init did not start (got {line!r}): "
                                 f"{self.t.logs(self.unshare)[1]}")
        # `ip netns exec` execs unshare, whose only child is the tree's PID 1.
        kids = wait_until(lambda: _children(self.unshare.pid), 5, "the tree's PID 1")
        pid = kids[0]
        self.init = ProcRef(pid, _start_time(pid), ())
        self._pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino
        self._level = len(_nspid(pid)) - 1          # the tree's depth in NSpid lists

    @staticmethod
    def _read_ready(proc: subprocess.Popen) -> bytes:
        deadline = time.monotonic() + READY_TIMEOUT_S
        fd = proc.stdout.fileno()
        buf = b""
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                break
            chunk = os.read(fd, 64)
            if not chunk:
                break
            buf += chunk
        proc.stdout.close()
        return buf

    def _install_pypasta(self) -> None:
        """BIN/pypasta (the stand-in) and HELPERS through contrib/podman/install-helpers.sh."""
        fill = dict(src=SRC, calls=self.calls_dir, python=TREE_PYTHON)
        Path(self.w, "pypasta").write_text(PYPASTA_STANDIN.format(**fill))
        Path(self.w, "pypasta-pesto").write_text(PESTO_STANDIN.format(**fill))
        conf_d = "/etc/containers/containers.conf.d/50-pypasta.conf"
        self.run(["sh", "-euc",
                  f"install -m 0755 {self.w}/pypasta {self.w}/pypasta-pesto {BIN}/; "
                  # pypasta's sources, byte-compiled for the tree's python (they are read-only
                  # for the test user, as an installation's would be).
                  f"{TREE_PYTHON} -m compileall -q {SRC} >/dev/null; "
                  f"sh {self.w}/install-helpers.sh --bindir {BIN} --conf {conf_d} {HELPERS} "
                  f"2>/dev/null"], user="root", timeout=60)

    # --- commands ---------------------------------------------------------------------------------

    def argv(self, cmd: Sequence[str], user: str = "rootless") -> list[str]:
        env.check_user(user)
        envs = [f"PATH={TREE_PATH}", "LANG=C.UTF-8", "PODMAN_IGNORE_CGROUPSV1_WARNING=1"]
        drop: list[str] = []
        if user == "rootless":
            drop = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]
            envs += [f"HOME={self.home}", f"USER={self.user}", f"LOGNAME={self.user}",
                     f"XDG_RUNTIME_DIR={self.xdg}"]
        else:
            envs += ["HOME=/root"]
        return ["nsenter", "-t", str(self.init.pid), "-m", "-n", "-p", *drop, "env", "-i", *envs,
                *map(str, cmd)]

    def run(self, cmd: Sequence[str], user: str = "rootless", timeout: float = 60.0,
            check: bool = True, input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run `cmd` in the tree as `user` and wait (text, captured, bounded)."""
        __tracebackhide__ = True
        r = subprocess.run(self.argv(cmd, user), capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           env={"PATH": env.TOOL_PATH}, cwd="/")
        if check and r.returncode != 0:
            raise CommandError(r.returncode, list(cmd), r.stdout, r.stderr)
        return r

    def popen(self, cmd: Sequence[str], user: str = "rootless", name: str = "cmd",
              stdin=subprocess.DEVNULL) -> subprocess.Popen:
        """Start `cmd` in the tree; output to workdir/trixie-<n>-<name>.out|.err; killed at
        close() (with the PID namespace at the latest). `stdin=subprocess.PIPE` gives the
        command a pipe whose closing it can wait for (a readiness-free way to stop it)."""
        label = os.path.join(self.w, f"trixie-{len(self.procs)}-{name}")
        with open(label + ".out", "wb") as out, open(label + ".err", "wb") as err:
            p = subprocess.Popen(self.argv(cmd, user), stdin=stdin, stdout=out,
                                 stderr=err, env={"PATH": env.TOOL_PATH}, cwd="/",
                                 start_new_session=True)
        p.log_paths = {"stdout": label + ".out", "stderr": label + ".err"}  # type: ignore
        self.procs.append(p)
        return p

    def podman(self, *args: str, timeout: float = 60.0, check: bool = True
               ) -> subprocess.CompletedProcess:
        __tracebackhide__ = True
        self._used_podman = True
        return self.run(["podman", *args], timeout=timeout, check=check)

    def import_image(self) -> str:
        """Build the image tar inside the tree and `podman import` it; returns IMAGE."""
        self.run(["sh", os.path.join(self.w, "image.sh"), self.image_tar, INDEX], user="root")
        self.podman("import", "--change", 'CMD ["/bin/sh"]', "--change",
                    "ENV PATH=/bin:/usr/bin", self.image_tar, IMAGE, timeout=120)
        return IMAGE

    def read(self, path: str) -> str:
        """A file as the tree's processes see it (through the init's root)."""
        return Path(f"/proc/{self.init.pid}/root{path}").read_text()

    # --- pypasta processes -----------------------------------------------------------------------

    def calls(self) -> list[list[str]]:
        """argv of every pypasta run so far (probes excluded), oldest first."""
        files = sorted(Path(self.calls_dir).glob("*.argv"), key=lambda p: p.stat().st_mtime_ns)
        return [[a.decode() for a in f.read_bytes().split(b"\0")[:-1]] for f in files]

    def ns_pids(self) -> list[int]:
        """Pids (in the machine's numbering) of the processes in the tree's PID namespace or in
        one nested in it (a daemonized pypasta is PID 1 of a namespace of its own)."""
        return [int(n) for n in os.listdir("/proc") if n.isdigit() and self._in_tree(int(n))]

    def _in_tree(self, pid: int) -> bool:
        try:
            fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            for _ in range(MAX_PIDNS_DEPTH):
                if os.fstat(fd).st_ino == self._pidns:
                    return True
                try:
                    parent = fcntl.ioctl(fd, NS_GET_PARENT)
                except OSError:             # EPERM: above the machine's, i.e. not below ours
                    return False
                os.close(fd)
                fd = parent
            return False
        finally:
            os.close(fd)

    def pasta_procs(self, argv: Optional[Sequence[str]] = None) -> list[ProcRef]:
        """Live pypasta processes in the tree (all, or those run with exactly `argv`)."""
        head = [TREE_PYTHON, "-m", "pasta"]
        found = []
        for pid in self.ns_pids():
            try:
                cmd = [a.decode() for a in
                       Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
            except OSError:
                continue
            if cmd[:3] != head or (argv is not None and cmd[3:] != list(argv)):
                continue
            ref = ProcRef(pid, _start_time(pid), tuple(cmd[3:]))
            if ref.start is not None and ref.alive():
                found.append(ref)
        return found

    def ns_pid(self, inner: int) -> Optional[int]:
        """The machine's pid of the process the tree knows as `inner`."""
        for pid in self.ns_pids():
            ids = _nspid(pid)
            if len(ids) > self._level and ids[self._level] == inner:
                return pid
        return None

    def wait_gone(self, refs: Sequence[ProcRef], what: str,
                  timeout: float = EXIT_TIMEOUT_S) -> None:
        __tracebackhide__ = True
        wait_until(lambda: not any(r.alive() for r in refs), timeout, what)

    # --- teardown --------------------------------------------------------------------------------

    def close(self, check: bool = True) -> None:
        """podman rm -af, a bounded wait for pypasta to go, then the whole PID namespace."""
        if self._closed:
            return
        self._closed = True
        problems = []
        if self.init is not None and self.init.alive():
            try:
                if self._used_podman:
                    r = self.podman("rm", "-af", "-t", "0", timeout=60, check=False)
                    if r.returncode != 0:
                        problems.append(f"podman rm -af: rc {r.returncode}: {r.stderr.strip()}")
                left = self.pasta_procs()
                try:
                    self.wait_gone(left, "pypasta to exit after podman rm -af")
                except AssertionError:
                    problems.append("pypasta still running after `podman rm -af`: " + "; ".join(
                        f"pid {p.pid} argv {' '.join(p.argv)}" for p in left if p.alive()))
            except Exception as exc:  # noqa: BLE001 - tear down all the same
                problems.append(f"podman rm -af: {exc!r}")
        kill_all(self.procs, term_grace=1.0)
        if self.init is not None and self.init.alive():
            os.kill(self.init.pid, signal.SIGKILL)
        if self.unshare is not None:
            try:
                self.unshare.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                problems.append(f"unshare (pid {self.unshare.pid}) still running")
        if self._pidns is not None:
            try:
                wait_until(lambda: not self.ns_pids(), EXIT_TIMEOUT_S,
                           "the tree's PID namespace to empty")
            except AssertionError as exc:
                problems.append(str(exc))
        with open("/proc/self/mountinfo") as f:
            leaked = [ln for ln in f if f" {TREE}" in ln]
        if leaked:
            problems.append(f"mounts of the tree left in the machine's mount table: {leaked[:3]}")
        if problems and check:
            raise AssertionError("; ".join(problems))


def _nspid(pid: int) -> list[int]:
    """The NSpid line of /proc/PID/status: the pid in each PID namespace, outermost first."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --- the peer's services (podman5.md section 5.2) ------------------------------------------------

DOMAIN = "example.test"
HTTP_PORT = 8080
UDP_PORT = 7007


@dataclasses.dataclass(frozen=True)
class PeerServices:
    peer4: str            # HTTP, UDP echo and DNS on these (the peer's "internet" addresses)
    peer6: str
    name4: str            # what DOMAIN resolves to (also the peer's: same HTTP server)
    name6: str
    blob_sha256: str      # of /blob on the HTTP server (1 MiB)
    http_port: int = HTTP_PORT
    udp_port: int = UDP_PORT
    domain: str = DOMAIN


def peer_services(t) -> PeerServices:
    """Start HTTP, UDP echo and DNS on the peer, and a 127.0.0.53 stub resolver on the host ns."""
    www = os.path.join(t.workdir, "www")
    os.makedirs(www, exist_ok=True)
    Path(www, "index.html").write_text(INDEX)
    blob = os.urandom(1 << 20)
    Path(www, "blob").write_bytes(blob)
    for f in ("index.html", "blob"):
        os.chmod(os.path.join(www, f), 0o644)
    os.chmod(www, 0o755)
    p4, p6 = t.peer_inet4, t.peer_inet6
    # busybox httpd binds [::] (both families) and serves the peer's every address.
    t.peer_popen(["busybox", "httpd", "-f", "-p", str(HTTP_PORT), "-h", www], name="httpd")
    echo = t.copy_helper("udpecho.py")
    for addr in (p4, p6):
        t.peer_popen([env.python_for("root"), echo, "server", addr, str(UDP_PORT)],
                     name="udpecho")
    dnsmasq = ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-hosts", "--user=root",
               "--pid-file=", "--bind-interfaces", "--port=53", "--log-facility=-",
               "--log-queries"]
    t.peer_popen([*dnsmasq, "--no-resolv", f"--listen-address={p4},{p6}",
                  f"--address=/{DOMAIN}/{t.extra_dst4}", f"--address=/{DOMAIN}/{t.extra_dst6}"],
                 name="dns-peer")
    t.host_popen([*dnsmasq, "--no-resolv", "--listen-address=127.0.0.53", f"--server={p4}"],
                 name="dns-stub")
    t.wait_listening("peer", HTTP_PORT)
    _wait_sockets(t, "peer", "udp", UDP_PORT, 2, "the peer's UDP echo on both addresses")
    _wait_sockets(t, "peer", "udp", 53, 2, "the peer's DNS server on both addresses")
    _wait_sockets(t, "host", "udp", 53, 1, "the stub resolver on the host's 127.0.0.53")
    return PeerServices(p4, p6, t.extra_dst4, t.extra_dst6, hashlib.sha256(blob).hexdigest())


def _wait_sockets(t, which: str, proto: str, port: int, n: int, what: str) -> None:
    flag = "-Hltn" if proto == "tcp" else "-Hlun"
    wait_until(lambda: len(t.ns(which).run(f"ss {flag} 'sport = :{port}'", check=False)
                           .stdout.splitlines()) >= n, 10, what)


__all__ = ["DOMAIN", "IMAGE", "INDEX", "PeerServices", "ProcRef", "Trixie", "check_setup",
           "peer_services", "problems"]
