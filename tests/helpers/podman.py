"""Podman 4.3 on the hermetic topology, with pypasta-slirp4netns as its network helper.

- Podman runs in the topology's host namespace, as root or as the test user, in one mount
  namespace per Podman object: a holder process started through `ip netns exec` (a private
  mount namespace) mounts a cgroup v1 view there (crun 1.8 refuses this machine's hybrid layout,
  where cgroup v2 holds hugetlb; real-clients.md section 5), and every podman command enters
  its mount and network namespaces. One mount namespace for all of them matters: Podman's
  bind mounts of container netns files, made by one command, must be seen by the next (the
  teardown that runs the network helpers' DEL). The machine's own mounts are never touched.
- `CONTAINERS_CONF` points at a file of the test's own (it replaces every other
  containers.conf): cgroupfs, rlimits within this machine's hard limits (root), and
  `network_cmd_path` = a wrapper that runs pypasta-slirp4netns from the sources the user can
  read and appends its PID to a file, so tests can check no helper outlives its container.
- The image `localhost/pypasta-busybox` is built from Debian's busybox-static plus socat (with
  its libraries) and an httpd document, then `podman import`ed once per user and session (no
  registry is reachable).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from typing import Optional

from helpers import env
from helpers.proc import alive, wait_until

IMAGE = "localhost/pypasta-busybox"
INDEX = "pypasta busybox httpd\n"
CGROUP_V1 = ("mount -t tmpfs cgroup /sys/fs/cgroup && "
             "for c in cpu cpuacct cpuset memory devices freezer blkio pids; do "
             "mkdir /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done && "
             "mkdir /sys/fs/cgroup/systemd && "
             "mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd")

_imported: set = set()
_image_tar: Optional[str] = None


def _libs(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                paths.append(p)
                break
    return paths


def image_tar() -> str:
    """The image's root filesystem as a tar (made once per session, world-readable)."""
    global _image_tar
    if _image_tar is not None:
        return _image_tar
    root = tempfile.mkdtemp(prefix="pypasta-image-")
    os.chmod(root, 0o755)
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "run", "var/www", "usr/bin"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(env.which("busybox"), os.path.join(root, "bin/busybox"))
    applets = subprocess.run([os.path.join(root, "bin/busybox"), "--list"], capture_output=True,
                             text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox" and not os.path.exists(os.path.join(root, "bin", a)):
            os.symlink("busybox", os.path.join(root, "bin", a))
    socat = env.which("socat")
    shutil.copy2(socat, os.path.join(root, "usr/bin/socat"))
    for lib in _libs(socat):
        dst = os.path.join(root, lib.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dst)
    with open(os.path.join(root, "var/www/index.html"), "w") as f:
        f.write(INDEX)
    fd, tar = tempfile.mkstemp(prefix="pypasta-image-", suffix=".tar")
    os.close(fd)
    with tarfile.open(tar, "w") as tf:
        tf.add(root, arcname=".")
    os.chmod(tar, 0o644)
    shutil.rmtree(root, ignore_errors=True)
    _image_tar = tar
    return tar


class Podman:
    """`podman` for one user in one topology's host namespace."""

    def __init__(self, t, user: str, cni: bool = False):
        """`cni`: the CNI backend, with one network "pypasta" whose conflist uses pypasta-cni
        (installed as runtimes find plugins: an executable in `cni_plugin_dirs`)."""
        self.t, self.user = t, user
        self.pids = os.path.join(t.workdir, f"helper-pids-{user}")
        self.wrapper = os.path.join(t.workdir, f"pypasta-slirp4netns-{user}")
        src = env.rootless_src() if user == "rootless" else str(env.REPO_ROOT)
        with open(self.wrapper, "w") as f:
            # Probes (--help, --version) are not helpers: only real runs are recorded.
            f.write(f"#!/bin/sh\ncase \"$1\" in --help|--version) ;; *) echo $$ >> {self.pids};;"
                    f" esac\nexport PYTHONPATH={src}\n"
                    f"exec {env.python_for(user)} -m podman_compat.slirp4netns \"$@\"\n")
        os.chmod(self.wrapper, 0o755)
        self.netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        self.holder = t.hostns.popen(["sh", "-c", f"{CGROUP_V1} && exec sleep 100000"],
                                     name=f"podman-mntns-{user}")
        wait_until(lambda: self._holder_ready(), 10, "podman mount namespace")
        self.conf = os.path.join(t.workdir, f"containers-{user}.conf")
        limits = ('default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                  if user == "root" else "")
        network = ""
        if cni:
            network = self._cni_files(src)
        with open(self.conf, "w") as f:
            f.write(f"[containers]\n{limits}[engine]\ncgroup_manager = \"cgroupfs\"\n"
                    f"network_cmd_path = \"{self.wrapper}\"\n{network}")
        os.chmod(self.conf, 0o644)
        if user not in _imported:
            self.run(["import", image_tar(), IMAGE], timeout=120)
            _imported.add(user)

    def _cni_files(self, src: str) -> str:
        """The plugin directory, the conflist and the runtime state directory; returns the
        containers.conf [network] section."""
        w = self.t.workdir
        bin_dir = os.path.join(w, f"cni-bin-{self.user}")
        net_dir = os.path.join(w, f"cni-net-{self.user}")
        self.cni_state = os.path.join(w, f"cni-state-{self.user}")
        for d in (bin_dir, net_dir):
            os.makedirs(d, exist_ok=True)
        plugin = os.path.join(bin_dir, "pypasta-cni")
        with open(plugin, "w") as f:
            f.write(f"#!/bin/sh\nexport PYTHONPATH={src}\n"
                    f"exec {env.python_for(self.user)} -m cni.plugin \"$@\"\n")
        os.chmod(plugin, 0o755)
        with open(os.path.join(net_dir, "pypasta.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": "pypasta", "plugins": [
                {"type": "pypasta-cni", "runtimeDir": self.cni_state,
                 "capabilities": {"portMappings": True}}]}, f)
        if self.user == "rootless":
            pw = env.pw_test_user()
            for d in (bin_dir, net_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(net_dir, 0o755)
        return (f"[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{bin_dir}\"]\n"
                f"network_config_dir = \"{net_dir}\"\n")

    def _holder_ready(self) -> bool:
        if self.holder.poll() is not None:
            raise AssertionError(f"podman mount namespace holder died: {self.t.logs(self.holder)}")
        try:
            with open(f"/proc/{self.holder.pid}/comm") as f:
                if f.read().strip() != "sleep":
                    return False
            with open(f"/proc/{self.holder.pid}/mounts") as f:
                return " /sys/fs/cgroup/systemd " in f.read()
        except OSError:
            return False

    def argv(self, args: list[str]) -> list[str]:
        envs = [f"CONTAINERS_CONF={self.conf}", f"PATH={env.TOOL_PATH}"]
        pre = []
        if self.user == "rootless":
            pw = env.pw_test_user()
            pre = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]
            envs += [f"HOME={pw.pw_dir}", f"XDG_RUNTIME_DIR=/run/user/{pw.pw_uid}"]
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *pre, "env", "-i", *envs,
                "podman", *args]

    def run(self, args: list[str], timeout: float = 90, check: bool = True,
            **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(self.argv(args), capture_output=True, text=True, timeout=timeout,
                           cwd=self.t.workdir, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: rc {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def helpers(self) -> list[int]:
        """PIDs of every pypasta-slirp4netns this Podman started."""
        try:
            with open(self.pids) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def live_helpers(self) -> list[int]:
        return [p for p in self.helpers() if alive(p)]

    def cleanup(self) -> None:
        self.run(["rm", "-f", "-a", "-t", "0"], check=False, timeout=60)
        self.run(["network", "prune", "-f"], check=False, timeout=60)
        if self.user == "root":
            # Rootful Podman bind-mounts its container netns files under /run/netns inside the
            # private mount namespace of `ip netns exec`; its teardown runs in another one and
            # leaves the (unmounted) files behind: remove the ones this Podman made.
            for name in set(os.listdir("/run/netns")) - self.netns_before:
                if name.startswith("netns-"):
                    subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if self.user == "rootless":
            # Podman's rootless pause process keeps the user namespace for later calls.
            pause = f"/run/user/{env.pw_test_user().pw_uid}/libpod/tmp/pause.pid"
            try:
                pid = int(open(pause).read())
                os.kill(pid, 9)
            except (OSError, ValueError):
                pass
