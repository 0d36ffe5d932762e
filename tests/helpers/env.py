"""The test machine: what must be installed, who runs pypasta, and with which interpreter.

`tests/install-deps.sh` sets all of this up; `problems()` says what is missing, for the session
check in conftest.py (which fails, never skips).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
FIX = "run `bash tests/install-deps.sh` as root"

TEST_USER = "pypasta-test"
VENV_PYTHON = "/opt/pypasta-venv/bin/python"
TUN = "/dev/net/tun"
SRC_PACKAGES = ("pasta", "cni", "podman_compat")     # copied for rootless runs (those that exist)
SRC_PARENT = "/var/tmp"
SRC_PREFIX = "pypasta-test-src-"

# Tools the integration tests drive, with the Debian package that ships each.
REQUIRED_TOOLS = {
    "ip": "iproute2", "busybox": "busybox-static", "socat": "socat", "ping": "iputils-ping",
    "dhclient": "isc-dhcp-client", "tcpdump": "tcpdump", "tmux": "tmux", "iperf3": "iperf3",
    "curl": "curl", "dnsmasq": "dnsmasq-base", "ps": "procps", "killall": "psmisc",
    "passt": "passt", "pasta": "passt", "slirp4netns": "slirp4netns",
    "setpriv": "util-linux", "nsenter": "util-linux",
    "podman": "podman", "crun": "crun", "conmon": "conmon", "newuidmap": "uidmap",
    "rootlesskit": "rootlesskit", "rootlessctl": "rootlesskit", "iptables": "iptables",
    "dhcpcd": "dhcpcd-base",
}
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The reference passt release 2026_07_16 (pesto protocol 2), built by install-deps.sh step 7 with
# ../shared/tools/build-passt.sh; not on PATH, so Debian's older passt/pasta stay the default.
PASST2026_DIR = "/opt/passt-2026"
PASST2026_TOOLS = ("passt", "pasta", "pesto")

USERS = ("root", "rootless")

# pids of pypasta runs whose seccomp refusals are deliberate (the isolation probe): left out of
# the suite's report of refusals (conftest.py).
PROBE_PIDS: list[int] = []


def require_setup(what: str, problems: list) -> None:
    """Fail (never skip) naming `what` is not set up, each problem, and how to fix it."""
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise AssertionError(f"{what} is not set up:\n{lines}\nfix: {FIX}")


def which(tool: str) -> Optional[str]:
    """Path of `tool`, looking in the sbin directories too."""
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":" + TOOL_PATH)


def pw_test_user() -> pwd.struct_passwd:
    """The passwd entry of the unprivileged test user (KeyError if missing)."""
    return pwd.getpwnam(TEST_USER)


def runtime_dir(uid: int) -> str:
    """$XDG_RUNTIME_DIR for `uid`, created (0700, owned by it) if missing, as logind would."""
    path = f"/run/user/{uid}"
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, pwd.getpwuid(uid).pw_gid)
        os.chmod(path, 0o700)
    return path


def setpriv_prefix() -> list[str]:
    """argv prefix that drops to the test user: all capabilities go with the uid change."""
    pw = pw_test_user()
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups"]


def rootless_env(src_dir: str, extra: Optional[dict] = None) -> dict:
    """A clean login-like environment for the test user, with PYTHONPATH at the source copy."""
    pw = pw_test_user()
    env = {
        "PATH": TOOL_PATH, "HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
        "SHELL": "/bin/sh", "LANG": "C.UTF-8", "PYTHONPATH": src_dir,
        "PYTHONDONTWRITEBYTECODE": "1", "XDG_RUNTIME_DIR": runtime_dir(pw.pw_uid),
    }
    env.update(extra or {})
    return env


def root_env(extra: Optional[dict] = None) -> dict:
    """The runner's environment with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PATH"] = env.get("PATH", "") + ":" + TOOL_PATH
    env.update(extra or {})
    return env


def python_for(user: str) -> str:
    """The interpreter pypasta runs under for `user` ("root" or "rootless")."""
    check_user(user)
    return sys.executable if user == "root" else VENV_PYTHON


def check_user(user: str) -> None:
    if user not in USERS:
        raise ValueError(f"user must be one of {USERS}, not {user!r}")


# --- the world-readable copy of the sources for rootless runs ---------------------------------------

_src_dir: Optional[str] = None


def _remove_stale_copies() -> None:
    """Remove copies left by test sessions that died (their pid is in the name)."""
    for entry in Path(SRC_PARENT).glob(SRC_PREFIX + "*"):
        try:
            pid = int(entry.name[len(SRC_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(entry, ignore_errors=True)


def rootless_src() -> str:
    """A world-readable copy of this checkout's packages, made once per test session (process).

    The checkout may live under /root, which the test user cannot read. Each session gets its own
    directory (several sessions may run at once), removed when the session ends.
    """
    global _src_dir
    if _src_dir is None:
        _remove_stale_copies()
        _src_dir = copy_sources(REPO_ROOT)
    return _src_dir


def copy_sources(root: Path) -> str:
    """A world-readable, byte-compiled copy of the packages of the source tree `root` (this
    checkout, or another one the benchmark compares with), removed at exit."""
    d = tempfile.mkdtemp(prefix=f"{SRC_PREFIX}{os.getpid()}-", dir=SRC_PARENT)
    atexit.register(shutil.rmtree, d, True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in SRC_PACKAGES:
        if (Path(root) / pkg).is_dir():
            shutil.copytree(Path(root) / pkg, Path(d) / pkg, ignore=ignore)
    # Byte-compiled as an installation would be (the tests' environment forbids writing
    # .pyc files at run time): otherwise every rootless start compiles every module.
    if os.access(VENV_PYTHON, os.X_OK):
        subprocess.run([VENV_PYTHON, "-m", "compileall", "-q", d], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for top, dirs, files in os.walk(d):
        os.chmod(top, 0o755)
        for f in files:
            os.chmod(os.path.join(top, f), 0o644)
    return d


# --- the session check -------------------------------------------------------------------------------

def problems() -> list[str]:
    """Everything missing for the integration tests, one line each (empty when all is well)."""
    found = []
    if os.geteuid() != 0:
        found.append("not running as root: the integration tests create network namespaces")
    for tool, pkg in REQUIRED_TOOLS.items():
        if which(tool) is None:
            found.append(f"tool `{tool}` not found (Debian package {pkg})")
    for tool in PASST2026_TOOLS:
        if not os.access(os.path.join(PASST2026_DIR, tool), os.X_OK):
            found.append(f"{PASST2026_DIR}/{tool} missing (the reference passt 2026, built by "
                         "install-deps.sh with ../shared/tools/build-passt.sh)")
    try:
        pw_test_user()
        have_user = True
    except KeyError:
        have_user = False
        found.append(f"user `{TEST_USER}` does not exist")
    try:
        mode = stat.S_IMODE(os.stat(TUN).st_mode)
        if mode & 0o666 != 0o666:
            found.append(f"{TUN} has mode {mode:04o}, rootless pypasta needs 0666")
    except OSError as exc:
        found.append(f"{TUN}: {exc.strerror}")
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            found.append("user namespaces disabled (user.max_user_namespaces = 0)")
        clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
        if clone.exists() and clone.read_text().strip() != "1":
            found.append("unprivileged user namespaces disabled "
                         "(kernel.unprivileged_userns_clone = 0)")
    except OSError:
        pass
    if not os.access(VENV_PYTHON, os.X_OK):
        found.append(f"{VENV_PYTHON} missing (the venv for rootless runs)")
    elif have_user and which("setpriv") and os.geteuid() == 0:
        res = subprocess.run(
            setpriv_prefix() + [VENV_PYTHON, "-c", "import pyroute2, pyprctl, netaddr"],
            env=rootless_env("/nonexistent"), cwd="/", capture_output=True, text=True,
            timeout=30, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            found.append(f"{VENV_PYTHON} cannot import pyroute2, pyprctl, netaddr as "
                         f"{TEST_USER}: {res.stderr.strip().splitlines()[-1:]}")
    return found


def problems_message(found: list[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in found)
    return (f"the test machine is not set up for pypasta's integration tests:\n{lines}\n"
            f"fix: {FIX}")
