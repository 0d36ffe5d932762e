"""pasta.setup.isolation: the seccomp program through a BPF interpreter, then both halves against
the kernel, always in forked children.

The pytest process itself never installs a filter, never unshares and never mounts: every kernel
test forks a child that does so and reports back through a pipe (one JSON line per report), or
dies, and the parent reads the wait status. Children are made non-dumpable with RLIMIT_CORE 0
first, so a SIGSYS leaves no core file behind. The sandbox tests need root (unshare(CLONE_NEWNS),
pivot_root) and fail, never skip, without it; no test here creates a network namespace.

The BPF interpreter below is written from the kernel's classic-BPF semantics, independently of
`build_filter`, and refuses any opcode it does not know, so the filter is never only tested
against itself. The allowed-syscall samples come from their own table (syscall_64.tbl and
asm-generic/unistd.h), and the live tests reach each blocked syscall through glibc's own wrapper
where there is one, which checks the module's numbers against glibc's.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import struct
import threading
import time
import traceback

import pytest

from pasta.util import netns
from pasta.util.errors import SetupError
from pasta.util.lazyimport import submodule
from pasta.setup import isolation as sandbox

prctl_misc = submodule("pyprctl", "misc")

# slirp4netns-reference.md section 6, in its order.
REFERENCE_LIST = (
    "execve lookup_dcookie pidfd_getfd ptrace process_vm_readv process_vm_writev delete_module "
    "finit_module init_module chroot fsconfig fsmount fsopen fspick mount move_mount open_tree "
    "pivot_root umount umount2 open_by_handle_at execveat pidfd_open pidfd_send_signal prctl "
    "setns unshare kexec_file_load kexec_load reboot name_to_handle_at").split()

# Syscalls a network helper makes all the time (aarch64 has no epoll_wait, only epoll_pwait).
ALLOWED_SAMPLE = {
    "x86_64": {"read": 0, "write": 1, "close": 3, "socket": 41, "connect": 42, "sendmsg": 46,
               "recvmsg": 47, "exit_group": 231, "epoll_wait": 232, "openat": 257,
               "splice": 275, "epoll_pwait": 281, "accept4": 288, "getpid": 39},
    "aarch64": {"read": 63, "write": 64, "close": 57, "socket": 198, "connect": 203,
                "sendmsg": 211, "recvmsg": 212, "exit_group": 94, "openat": 56, "splice": 76,
                "epoll_pwait": 22, "accept4": 242, "getpid": 172},
}
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_ARM = 0x40000028
KILL = sandbox.SECCOMP_RET_KILL_PROCESS
ALLOW = sandbox.SECCOMP_RET_ALLOW
ARCHES = ("x86_64", "aarch64")
HOST_ARCH = os.uname().machine
CHILD_TIMEOUT_S = 20.0


# --- a classic-BPF interpreter for seccomp programs ----------------------------------------------

def seccomp_data(nr: int, arch: int) -> bytes:
    """struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]."""
    return struct.pack("=iIQ6Q", nr, arch, 0x1000, *range(6))


def run_bpf(prog: bytes, data: bytes) -> int:
    """The verdict of a seccomp classic-BPF program (the opcodes build_filter may use)."""
    assert prog and len(prog) % 8 == 0, "a program is a whole number of 8-byte instructions"
    insns = [struct.unpack_from("=HBBI", prog, off) for off in range(0, len(prog), 8)]
    assert len(insns) <= 4096, "BPF_MAXINSNS"
    acc, pc = 0, 0
    while True:
        assert 0 <= pc < len(insns), f"pc {pc} runs off the program"
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:                                    # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data), f"load at {k} outside seccomp_data"
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x15:                                  # BPF_JMP | BPF_JEQ | BPF_K
            pc += jt if acc == k else jf
        elif code == 0x35:                                  # BPF_JMP | BPF_JGE | BPF_K
            pc += jt if acc >= k else jf
        elif code == 0x25:                                  # BPF_JMP | BPF_JGT | BPF_K
            pc += jt if acc > k else jf
        elif code == 0x45:                                  # BPF_JMP | BPF_JSET | BPF_K
            pc += jt if acc & k else jf
        elif code == 0x05:                                  # BPF_JMP | BPF_JA
            pc += k
        elif code == 0x06:                                  # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"opcode {code:#06x} at {pc - 1} is not understood")


def verdict(arch: str, nr: int, audit: int | None = None, action: int = KILL) -> int:
    prog = sandbox.build_filter(arch, action)
    return run_bpf(prog, seccomp_data(nr, sandbox.AUDIT_ARCH[arch] if audit is None else audit))


def test_seccomp_blocked_list_is_the_reference_list():
    assert list(sandbox.BLOCKED_SYSCALLS) == REFERENCE_LIST


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_resolve_reports_umount_as_unmapped(arch):
    found, missing = sandbox.resolve_syscalls(arch)
    assert missing == ["umount"]
    assert list(found) == [n for n in REFERENCE_LIST if n != "umount"]
    assert len(set(found.values())) == len(found), "two names share a number"


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_filter_kills_every_blocked_syscall(arch):
    found, _ = sandbox.resolve_syscalls(arch)
    wrong = {name: hex(verdict(arch, nr)) for name, nr in found.items()
             if verdict(arch, nr) != KILL}
    assert not wrong


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_filter_allows_ordinary_syscalls(arch):
    sample = ALLOWED_SAMPLE[arch]
    assert not set(sample.values()) & set(sandbox.resolve_syscalls(arch)[0].values())
    wrong = {name: hex(verdict(arch, nr)) for name, nr in sample.items()
             if verdict(arch, nr) != ALLOW}
    assert not wrong
    # Everything not blocked is allowed: default allow, as slirp4netns's filter.
    blocked = set(sandbox.resolve_syscalls(arch)[0].values())
    assert all(verdict(arch, nr) == ALLOW for nr in range(600) if nr not in blocked)


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_filter_kills_foreign_arches(arch):
    other = next(a for a in ARCHES if a != arch)
    read_nr = ALLOWED_SAMPLE[arch]["read"]
    for audit in (AUDIT_ARCH_I386, AUDIT_ARCH_ARM, sandbox.AUDIT_ARCH[other], 0, 0xFFFFFFFF):
        assert verdict(arch, read_nr, audit) == KILL, hex(audit)
        assert verdict(arch, 3, audit) == KILL, hex(audit)


def test_seccomp_filter_kills_the_x32_abi():
    x32 = sandbox.X32_SYSCALL_BIT
    for nr in (x32, x32 + 1, x32 + 59, x32 + 520, x32 + 545, 0x7FFFFFFF, -2, -(1 << 31)):
        assert verdict("x86_64", nr) == KILL, hex(nr)
    # -1 is what a tracer writes to skip a call: it runs nothing and returns ENOSYS.
    assert verdict("x86_64", -1) == ALLOW
    assert verdict("aarch64", -1) == ALLOW


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_filter_kill_thread_action(arch):
    execve = sandbox.SYSCALL_NUMBERS[arch]["execve"]
    thread = sandbox.SECCOMP_RET_KILL_THREAD
    assert verdict(arch, execve, action=thread) == thread
    assert verdict(arch, execve, AUDIT_ARCH_I386, action=thread) == thread
    assert verdict(arch, ALLOWED_SAMPLE[arch]["read"], action=thread) == ALLOW


def test_seccomp_interpreter_refuses_what_it_does_not_know():
    with pytest.raises(AssertionError, match="not understood"):
        run_bpf(struct.pack("=HBBI", 0x07, 0, 0, 0), seccomp_data(0, 0))      # BPF_MISC TAX
    with pytest.raises(AssertionError, match="runs off"):
        run_bpf(struct.pack("=HBBI", 0x15, 5, 5, 0), seccomp_data(0, 0))
    with pytest.raises(AssertionError, match="outside seccomp_data"):
        run_bpf(struct.pack("=HBBI", 0x20, 0, 0, 64), seccomp_data(0, 0))


def test_seccomp_messages_match_slirp4netns():
    assert sandbox.blocked_message(["execve", "ptrace"]) == \
        "seccomp: The following syscalls are blocked: execve ptrace"
    assert sandbox.blocked_message([]) == "seccomp: The following syscalls are blocked:"
    assert sandbox.unmapped_message(["umount"]) == (
        "seccomp: WARNING: the following syscalls are not defined in libseccomp and cannot be "
        "blocked: umount")


def test_seccomp_host_arch(monkeypatch):
    assert sandbox.host_arch() == HOST_ARCH, "the suite runs on x86_64 or aarch64"

    class Uname:
        machine = "riscv64"
    monkeypatch.setattr(sandbox.os, "uname", lambda: Uname)
    with pytest.raises(SetupError) as info:
        sandbox.install_seccomp()
    assert str(info.value) == \
        "seccomp: unsupported architecture riscv64 (supported: x86_64, aarch64)"


# --- forked children -----------------------------------------------------------------------------

class ChildEnd:
    """The child's side of the pipes: send JSON reports up, wait for the parent's go-ahead."""

    def __init__(self, up: int, down: int):
        self.up, self.down = up, down

    def send(self, obj) -> None:
        os.write(self.up, (json.dumps(obj) + "\n").encode())

    def wait_go(self) -> None:
        if os.read(self.down, 1) != b"g":
            os._exit(3)             # the parent went away


class Child:
    """fn(ChildEnd) in a forked child; a context manager that always reaps (or kills) it."""

    def __init__(self, fn):
        up_r, up_w = os.pipe()
        down_r, down_w = os.pipe()
        pid = os.fork()
        if pid == 0:        # the child: never return into pytest
            code = 1
            try:
                os.close(up_r)
                os.close(down_w)
                resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
                prctl_misc.set_dumpable(False)     # no core file from SIGSYS
                fn(ChildEnd(up_w, down_r))
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                try:
                    kind = "setup_error" if isinstance(e, SetupError) else "error"
                    os.write(up_w, (json.dumps({kind: str(e) if kind == "setup_error"
                                                else traceback.format_exc()}) + "\n").encode())
                except BaseException:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        os.close(up_w)
        os.close(down_r)
        self.pid, self.up, self.down = pid, up_r, down_w
        self.buf = b""
        self.status: int | None = None

    def recv(self, timeout: float = CHILD_TIMEOUT_S):
        """The next report; fails the test on a child traceback, None on EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.up], [], [], left)[0]:
                pytest.fail(f"child {self.pid} sent nothing in {timeout} s", pytrace=False)
            chunk = os.read(self.up, 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if isinstance(msg, dict) and "error" in msg:
            pytest.fail(f"child {self.pid} failed:\n{msg['error']}", pytrace=False)
        return msg

    def go(self) -> None:
        os.write(self.down, b"g")

    def wait(self, timeout: float = CHILD_TIMEOUT_S) -> int:
        """The wait status (as os.waitpid gives it)."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
            elif time.monotonic() > deadline:
                pytest.fail(f"child {self.pid} did not exit in {timeout} s", pytrace=False)
            else:
                time.sleep(0.005)
        return self.status

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.status = os.waitpid(self.pid, 0)[1]
        os.close(self.up)
        os.close(self.down)


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with {os.WEXITSTATUS(status)}"


def assert_killed_by_sigsys(status: int) -> None:
    assert signal.SIGSYS == 31
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, describe(status)


def run_child(fn) -> tuple[int, list]:
    """Run fn(ChildEnd) to the end: (wait status, every report it sent)."""
    with Child(fn) as child:
        reports = []
        while (msg := child.recv()) is not None:
            reports.append(msg)
        return child.wait(), reports


def proc_status(pid: int | str) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mountinfo(pid: int | str = "self") -> list[dict]:
    """/proc/PID/mountinfo as dicts: point, options, fstype, source, super, line."""
    out = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            fields, rfields = left.split(), right.split()
            out.append({"point": _unescape(fields[4]), "options": fields[5].split(","),
                        "fstype": rfields[0], "source": rfields[1],
                        "super": rfields[2].split(",") if len(rfields) > 2 else [],
                        "line": line})
    return out


def host_mounts() -> list[str]:
    """This process's mount table, less what parallel integration tests churn (ip netns)."""
    return [m["line"] for m in mountinfo()
            if m["fstype"] != "nsfs" and not m["point"].startswith("/run/netns")]


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.fail("tests/kernel/test_sandbox.py needs root (the sandbox unshares a mount "
                    "namespace and calls pivot_root); the suite runs as root, as CI does",
                    pytrace=False)


# --- seccomp against the kernel ------------------------------------------------------------------

def test_seccomp_child_keeps_working():
    def child(end: ChildEnd) -> None:
        pid = os.getpid()
        missing = sandbox.install_seccomp()
        a, b = socket.socketpair()
        a.sendall(b"ping")
        got = b.recv(16)
        status = proc_status("self")
        end.send({"missing": missing, "pid": os.getpid() == pid, "pair": got.decode(),
                  "seccomp": status["Seccomp"], "nnp": status["NoNewPrivs"]})

    status, reports = run_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert reports == [{"missing": ["umount"], "pid": True, "pair": "ping", "seccomp": "2",
                        "nnp": "1"}]


def _execv(end):
    sandbox.install_seccomp()
    os.execv("/bin/true", ["true"])


def _unshare(end):
    sandbox.install_seccomp()
    netns.unshare(netns.CLONE_NEWNS)


def _mount(end):
    sandbox.install_seccomp()
    netns.mount(None, "/nonexistent-pypasta-probe", None, sandbox.MS_REMOUNT)   # ENOENT if run


def _prctl(end):
    sandbox.install_seccomp()
    prctl_misc.get_dumpable()


@pytest.mark.parametrize("attempt", [_execv, _unshare, _mount, _prctl],
                         ids=["execv", "unshare", "mount", "prctl"])
def test_seccomp_blocked_call_kills_with_sigsys(attempt):
    status, reports = run_child(attempt)
    assert reports == []
    assert_killed_by_sigsys(status)


@pytest.mark.parametrize("name", list(sandbox.resolve_syscalls(HOST_ARCH)[0])
                         if HOST_ARCH in sandbox.SYSCALL_NUMBERS else ["unsupported-arch"])
def test_seccomp_glibc_wrapper_is_killed(name):
    """Each blocked syscall, through glibc's wrapper where glibc has one (so glibc's number is
    the one tested), else syscall(2) with our number; every argument is -1, which makes each of
    them fail harmlessly (EINVAL, EFAULT, EBADF...) should the filter let it through."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fn, args = getattr(libc, name), ()
    except AttributeError:
        fn, args = libc.syscall, (ctypes.c_long(sandbox.SYSCALL_NUMBERS[HOST_ARCH][name]),)
    bogus = (ctypes.c_long(-1),) * 6

    def child(end: ChildEnd) -> None:
        sandbox.install_seccomp()
        end.send({"via": "glibc" if args == () else "syscall"})
        ret = fn(*args, *bogus)
        end.send({"survived": ret, "errno": errno.errorcode.get(ctypes.get_errno(), "?")})

    status, reports = run_child(child)
    assert reports[1:] == [], f"{name} ran: {reports[1:]}"
    assert_killed_by_sigsys(status)


def test_seccomp_filter_reaches_threads_started_before():
    """TSYNC puts the filter on a thread that already runs; KILL_PROCESS then kills them all."""
    def child(end: ChildEnd) -> None:
        start, done = threading.Event(), threading.Event()

        def other() -> None:
            start.wait()
            netns.unshare(netns.CLONE_NEWNS)
            done.set()

        t = threading.Thread(target=other)
        t.start()
        sandbox.install_seccomp()
        start.set()
        done.wait(5)
        end.send({"survived": True})

    status, reports = run_child(child)
    assert reports == []
    assert_killed_by_sigsys(status)


def test_seccomp_second_install_and_late_sandbox_are_refused():
    def child(end: ChildEnd) -> None:
        sandbox.install_seccomp()
        for fn in (sandbox.install_seccomp, sandbox.enter_sandbox):
            try:
                fn()
            except SetupError as e:
                end.send(str(e))

    status, reports = run_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert reports == [
        "seccomp: the filter is already installed",
        "sandbox: must be entered before the seccomp filter is installed (the filter kills "
        "unshare and mount)"]


# --- the sandbox against the kernel --------------------------------------------------------------

def _expected_root(keep: tuple[str, ...]) -> tuple[list[str], str | None]:
    """Top-level names of the sandbox's root, and the resolv.conf bound on its own (or None)."""
    real = os.path.realpath(sandbox.RESOLV_CONF)
    alone = None if any(real == k or real.startswith(k + "/") for k in keep) else real
    tops = {k.split("/")[1] for k in keep} | ({alone.split("/")[1]} if alone else set())
    return sorted(tops), alone


def test_sandbox_view_and_privileges(root):
    before = host_mounts()
    with open("/etc/hostname") as f:
        hostname = f.read()
    expected_root, _ = _expected_root(sandbox.KEEP_PATHS_DEFAULT)

    def child(end: ChildEnd) -> None:
        sandbox.enter_sandbox()
        report = {"root": sorted(os.listdir("/")), "cwd": os.getcwd()}
        with open("/etc/hostname") as f:
            report["hostname"] = f.read()
        for what, fn in (("write_etc", lambda: open("/etc/pypasta-sandbox-probe", "w")),
                         ("write_run", lambda: open("/run/pypasta-sandbox-probe", "w")),
                         ("mkdir_root", lambda: os.mkdir("/pypasta-sandbox-probe")),
                         ("proc", lambda: open("/proc/self/status"))):
            try:
                fn()
                report[what] = "succeeded"
            except OSError as e:
                report[what] = errno.errorcode[e.errno]
        end.send(report)
        end.wait_go()

    with Child(child) as c:
        report = c.recv()
        status = proc_status(c.pid)
        mounts = mountinfo(c.pid)
        c.go()
        assert c.wait() == 0
    assert report == {"root": expected_root, "cwd": "/", "hostname": hostname,
                      "write_etc": "EROFS", "write_run": "EROFS", "mkdir_root": "EROFS",
                      "proc": "ENOENT"}
    nbs = f"{1 << 10:016x}"     # CAP_NET_BIND_SERVICE only
    assert {k: status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                   "NoNewPrivs")} == \
        {"CapInh": nbs, "CapPrm": nbs, "CapEff": nbs, "CapBnd": nbs, "CapAmb": "0" * 16,
         "NoNewPrivs": "1"}
    by_point = {m["point"]: m for m in mounts}
    assert by_point["/"]["fstype"] == "tmpfs" and "ro" in by_point["/"]["options"]
    assert any(o.startswith("size=") for o in by_point["/"]["super"]), "size limit lost"
    for point in ("/", "/etc", "/run"):
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(by_point[point]["options"]), point
    assert all(p == "/" or any(p == k or p.startswith(k + "/") for k in ("/etc", "/run"))
               for p in by_point), sorted(by_point)
    assert host_mounts() == before, "the caller's mount table changed"


def test_sandbox_binds_resolv_conf_outside_kept_paths(root):
    """With /etc/resolv.conf's real file outside the kept paths, that file alone is bound."""
    real = os.path.realpath(sandbox.RESOLV_CONF)
    assert os.path.isfile(real), "this machine needs an /etc/resolv.conf for the test"
    keep = ("/run",) if not real.startswith("/run/") else ("/etc",)
    expected_root, alone = _expected_root(keep)
    assert alone == real
    with open(real) as f:
        content = f.read()
    before = host_mounts()

    def child(end: ChildEnd) -> None:
        sandbox.enter_sandbox(keep)
        with open(real) as f:
            got = f.read()
        try:
            open(real, "a")
            write = "succeeded"
        except OSError as e:
            write = errno.errorcode[e.errno]
        end.send({"root": sorted(os.listdir("/")), "dir": os.listdir(os.path.dirname(real)),
                  "content": got, "write": write})

    status, reports = run_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert reports == [{"root": expected_root, "dir": [os.path.basename(real)],
                        "content": content, "write": "EROFS"}]
    assert host_mounts() == before


def test_sandbox_error_is_one_line_when_unprivileged(root):
    def child(end: ChildEnd) -> None:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        sandbox.enter_sandbox()

    status, reports = run_child(child)
    assert reports == [{"setup_error": "sandbox: unshare(CLONE_NEWNS): Operation not permitted"}]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1


def test_sandbox_refuses_a_multithreaded_process(root):
    def child(end: ChildEnd) -> None:
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            sandbox.enter_sandbox()
        finally:
            stop.set()
            t.join()

    status, reports = run_child(child)
    assert reports == [{"setup_error": "sandbox: needs a single-threaded process, found 2 "
                        "threads (unshare(CLONE_NEWNS) would move only the calling thread)"}]


def test_sandbox_refuses_bad_keep_paths():
    def child(end: ChildEnd) -> None:
        for keep in (("etc",), ("/",), ("/tmp/x",), ("/etc/",), ("/run/../etc",)):
            try:
                sandbox.enter_sandbox(keep)
            except ValueError as e:
                end.send(str(e))

    status, reports = run_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert len(reports) == 5 and all(r.startswith("sandbox: a kept path must be") for r in reports)


def test_sandbox_kernel_unshare_newns_moves_only_the_calling_thread(root):
    """The kernel rule behind the single-thread check: unshare(CLONE_NEWNS) succeeds with other
    threads around (it unshares CLONE_FS for the caller) and leaves them where they were."""
    def child(end: ChildEnd) -> None:
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            before = os.readlink("/proc/self/ns/mnt")
            netns.unshare(netns.CLONE_NEWNS)
            end.send({"before": before,
                      "caller": os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/mnt"),
                      "other": os.readlink(f"/proc/self/task/{t.native_id}/ns/mnt")})
        finally:
            stop.set()
            t.join()

    status, reports = run_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    [r] = reports
    assert r["caller"] != r["before"] and r["other"] == r["before"]


def test_sandbox_follows_unmounts_and_mounts_of_the_parent_namespace(root):
    """The sandbox's copies are slaves: what the parent namespace unmounts (without removing the
    mount point) or mounts later under a kept path follows into the sandbox, and nothing of the
    sandbox flows back. The "parent" is itself a child in a private mount namespace with a
    shared tmpfs on /run, so the real host is never touched."""
    def parent_ns(end: ChildEnd) -> None:
        netns.unshare(netns.CLONE_NEWNS)
        netns.mount(None, "/", None, netns.MS_REC | netns.MS_PRIVATE)
        netns.mount("pypasta-run", "/run", "tmpfs", 0, "size=64k")
        netns.mount(None, "/run", None, 1 << 20)                     # MS_SHARED
        os.mkdir("/run/sub")
        netns.mount("pypasta-sub", "/run/sub", "tmpfs", 0, "size=4k")
        mine = [m["line"] for m in mountinfo()]

        def sandboxed(inner: ChildEnd) -> None:
            sandbox.enter_sandbox()
            inner.send("in")
            inner.wait_go()

        with Child(sandboxed) as box:
            assert box.recv() == "in"
            points = lambda: sorted(m["point"] for m in mountinfo(box.pid))  # noqa: E731
            seen = {"start": points()}
            sandboxed_mounts = mountinfo(box.pid)
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.umount2(b"/run/sub", 0) == 0, os.strerror(ctypes.get_errno())
            seen["after_umount"] = points()
            os.mkdir("/run/sub2")
            netns.mount("pypasta-sub2", "/run/sub2", "tmpfs", 0, "size=4k")
            seen["after_mount"] = points()
            sub2 = [m for m in mountinfo(box.pid) if m["point"] == "/run/sub2"]
            seen["sub2_ro"] = "ro" in sub2[0]["options"] if sub2 else None
            seen["run_ro"] = "ro" in next(m for m in sandboxed_mounts
                                          if m["point"] == "/run")["options"]
            box.go()
            seen["box"] = describe(box.wait())
        seen["unchanged"] = [m["line"] for m in mountinfo()
                             if m["point"] != "/run/sub2"] == [l for l in mine
                                                               if " /run/sub " not in l]
        end.send(seen)

    status, reports = run_child(parent_ns)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    [seen] = reports
    assert "/run/sub" in seen["start"]
    assert "/run/sub" not in seen["after_umount"], "the sandbox pins an unmounted mount"
    assert "/run/sub2" in seen["after_mount"]
    assert seen["run_ro"] and not seen["sub2_ro"]   # a received mount keeps its own flags
    assert seen["box"] == "exited with 0"
    assert seen["unchanged"], "the sandbox's mounts flowed back into the parent namespace"
