"""pasta.setup.isolation: the seccomp allow-list through a BPF interpreter, then the stages
against the kernel, always in forked children.

The pytest process itself never installs a filter, never unshares and never mounts: every kernel
test forks a child that does so and reports back through a pipe (one JSON line per report), or
dies, and the parent reads the wait status. Children are made non-dumpable with RLIMIT_CORE 0
first, so a SIGSYS leaves no core file behind. The confinement tests need root
(unshare(CLONE_NEWNS), pivot_root, a uid switch) and fail, never skip, without it; no test here
creates a network namespace (the namespace thread enters the child's own one).

The BPF interpreter below is written from the kernel's classic-BPF semantics, independently of
`build_filter`, and refuses any opcode it does not know, so the filter is never only tested
against itself. The syscall samples come from their own table (syscall_64.tbl and
asm-generic/unistd.h), and the live tests reach each refused syscall through glibc's own wrapper
where there is one, which checks the module's numbers against glibc's. The translator confined
end to end is tested in tests/integration/test_isolation.py.
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

from helpers import env
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

# Syscalls the loop makes all the time (aarch64 has no epoll_wait, only epoll_pwait).
ALLOWED_SAMPLE = {
    "x86_64": {"read": 0, "write": 1, "close": 3, "socket": 41, "connect": 42, "sendmsg": 46,
               "recvmsg": 47, "exit_group": 231, "epoll_wait": 232, "splice": 275,
               "epoll_pwait": 281, "accept4": 288, "getpid": 39, "futex": 202},
    "aarch64": {"read": 63, "write": 64, "close": 57, "socket": 198, "connect": 203,
                "sendmsg": 211, "recvmsg": 212, "exit_group": 94, "splice": 76,
                "epoll_pwait": 22, "accept4": 242, "getpid": 172, "futex": 98},
}
# What a confined translator must never do, whatever the measurement says (x86_64 numbers).
NEVER = {"execve": 59, "execveat": 322, "open": 2, "openat": 257, "openat2": 437, "clone": 56,
         "clone3": 435, "fork": 57, "vfork": 58, "setns": 308, "unshare": 272, "mount": 165,
         "pivot_root": 155, "chroot": 161, "prctl": 157, "ptrace": 101, "seccomp": 317,
         "bpf": 321, "setuid": 105, "setresuid": 117, "setgid": 106, "capset": 126,
         "getdents64": 217, "memfd_create": 319, "process_vm_writev": 311, "init_module": 175,
         "kexec_load": 246, "reboot": 169, "mknodat": 259, "unlinkat": 263, "renameat2": 316}
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_ARM = 0x40000028
KILL = sandbox.SECCOMP_RET_KILL_PROCESS
ALLOW = sandbox.SECCOMP_RET_ALLOW
EPERM = sandbox.SECCOMP_RET_ERRNO | errno.EPERM
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


def verdict(arch: str, nr: int, audit: int | None = None, action: int = EPERM) -> int:
    prog = sandbox.build_filter(arch, action)
    return run_bpf(prog, seccomp_data(nr, sandbox.AUDIT_ARCH[arch] if audit is None else audit))



def test_seccomp_blocked_list_is_the_reference_list():
    assert list(sandbox.BLOCKED_SYSCALLS) == REFERENCE_LIST


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_umount_is_the_only_unmapped_name(arch):
    assert sandbox.unmapped_blocked(arch) == ["umount"]
    table = sandbox.SYSCALL_NUMBERS[arch]
    assert len(set(table.values())) == len(table), "two names share a number"


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_allow_list_verdicts(arch):
    """Exactly the allow-list passes; every other number up to 600 gets EPERM."""
    allowed = set(sandbox.allowed_numbers(arch))
    assert len(allowed) > 60
    wrong = {nr: hex(verdict(arch, nr)) for nr in range(600)
             if verdict(arch, nr) != (ALLOW if nr in allowed else EPERM)}
    assert not wrong


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_samples_pass_and_slirp4netns_list_is_refused(arch):
    sample = ALLOWED_SAMPLE[arch]
    assert {name: verdict(arch, nr) for name, nr in sample.items()} == \
        {name: ALLOW for name in sample}
    table = sandbox.SYSCALL_NUMBERS[arch]
    blocked = [n for n in REFERENCE_LIST if n in table]
    assert {n: verdict(arch, table[n]) for n in blocked} == {n: EPERM for n in blocked}


def test_seccomp_never_allows_what_a_confined_translator_must_not_do():
    allowed = set(sandbox.allowed_numbers("x86_64"))
    assert not {name for name, nr in NEVER.items() if nr in allowed}
    assert not set(NEVER) & set(sandbox.ALLOWED_SYSCALLS)


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_filter_kills_foreign_arches(arch):
    other = next(a for a in ARCHES if a != arch)
    read_nr = ALLOWED_SAMPLE[arch]["read"]
    for audit in (AUDIT_ARCH_I386, AUDIT_ARCH_ARM, sandbox.AUDIT_ARCH[other], 0, 0xFFFFFFFF):
        assert verdict(arch, read_nr, audit) == KILL, hex(audit)
        assert verdict(arch, 59, audit) == KILL, hex(audit)


def test_seccomp_filter_kills_the_x32_abi():
    x32 = sandbox.X32_SYSCALL_BIT
    for nr in (x32, x32 + 1, x32 + 59, x32 + 520, x32 + 545, 0x7FFFFFFF, -2, -(1 << 31)):
        assert verdict("x86_64", nr) == KILL, hex(nr)
    # -1 is what a tracer writes to skip a call: refused like any unknown number.
    assert verdict("x86_64", -1) == EPERM
    assert verdict("aarch64", -1) == EPERM


@pytest.mark.parametrize("arch", ARCHES)
def test_seccomp_filter_default_action_is_a_parameter(arch):
    execve = sandbox.SYSCALL_NUMBERS[arch]["execve"]
    assert verdict(arch, execve, action=KILL) == KILL
    assert verdict(arch, execve) == EPERM
    assert verdict(arch, ALLOWED_SAMPLE[arch]["read"], action=KILL) == ALLOW


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
        env.PROBE_PIDS.append(pid)          # its refusals are deliberate (conftest's report)
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
        pytest.fail("tests/kernel/test_confinement.py needs root (isolation unshares a mount "
                    "namespace and calls pivot_root); the suite runs as root, as CI does",
                    pytrace=False)


# --- seccomp against the kernel ------------------------------------------------------------------

def test_seccomp_child_keeps_working():
    def child(end: ChildEnd) -> None:
        pid = os.getpid()
        sandbox.install_seccomp()
        a, b = socket.socketpair()
        a.sendall(b"ping")
        got = b.recv(16)
        end.send({"pid": os.getpid() == pid, "pair": got.decode()})
        end.wait_go()

    with Child(child) as c:
        report = c.recv()
        status = proc_status(c.pid)
        c.go()
        assert c.wait() == 0
    assert report == {"pid": True, "pair": "ping"}
    assert (status["Seccomp"], status["NoNewPrivs"]) == ("2", "1")


def _refused(end, fn, *args):
    sandbox.install_seccomp()
    try:
        fn(*args)
        end.send("ran")
    except OSError as e:
        end.send(errno.errorcode.get(e.errno, str(e.errno)))


@pytest.mark.parametrize("attempt", [
    (os.execv, "/bin/true", ["true"]), (os.open, "/etc/hostname", os.O_RDONLY),
    (netns.unshare, netns.CLONE_NEWNS), (os.listdir, "/"),
    (netns.mount, None, "/nonexistent-pypasta-probe", None, 32)],
    ids=["execv", "open", "unshare", "listdir", "mount"])
def test_seccomp_refused_call_fails_with_eperm_and_the_process_lives_on(attempt):
    status, reports = run_child(lambda end: _refused(end, *attempt))
    assert reports == ["EPERM"]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


def test_seccomp_a_new_thread_is_refused():
    def child(end: ChildEnd) -> None:
        sandbox.install_seccomp()
        try:
            threading.Thread(target=lambda: None).start()
            end.send("started")
        except RuntimeError as e:
            end.send(str(e))

    status, reports = run_child(child)
    assert reports == ["can't start new thread"]


@pytest.mark.parametrize("name", [n for n in REFERENCE_LIST if n != "umount"])
def test_seccomp_glibc_wrapper_is_refused(name):
    """Each of slirp4netns's blocked syscalls, through glibc's wrapper where glibc has one (so
    glibc's number is the one tested), else syscall(2) with our number; every argument is -1,
    which makes each of them fail harmlessly (EINVAL, EFAULT, EBADF...) should the filter let
    it through: only EPERM with the filter, and not without it, shows the filter refused it."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fn, args = getattr(libc, name), ()
    except AttributeError:
        fn, args = libc.syscall, (ctypes.c_long(sandbox.SYSCALL_NUMBERS[HOST_ARCH][name]),)
    bogus = (ctypes.c_long(-1),) * 6

    def child(end: ChildEnd) -> None:
        sandbox.install_seccomp()
        ctypes.set_errno(0)
        ret = fn(*args, *bogus)
        end.send({"ret": ret, "errno": errno.errorcode.get(ctypes.get_errno(), "?")})

    status, reports = run_child(child)
    assert reports == [{"ret": -1, "errno": "EPERM"}], name
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)


def test_seccomp_filter_reaches_threads_started_before():
    """TSYNC puts the filter on a thread that already runs."""
    def child(end: ChildEnd) -> None:
        start, done = threading.Event(), threading.Event()
        out = {}

        def other() -> None:
            start.wait()
            try:
                netns.unshare(netns.CLONE_NEWNS)
                out["other"] = "ran"
            except OSError as e:
                out["other"] = errno.errorcode[e.errno]
            done.set()

        t = threading.Thread(target=other)
        t.start()
        sandbox.install_seccomp()
        start.set()
        done.wait(5)
        end.send(out)

    status, reports = run_child(child)
    assert reports == [{"other": "EPERM"}]


def test_seccomp_second_install_is_refused():
    def child(end: ChildEnd) -> None:
        sandbox.install_seccomp()
        try:
            sandbox.install_seccomp()
        except SetupError as e:
            end.send(str(e))

    status, reports = run_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, describe(status)
    assert reports == ["seccomp: the filter is already installed"]


# --- the stages against the kernel ---------------------------------------------------------------

CAPS_NBS = f"{1 << 10:016x}"            # CAP_NET_BIND_SERVICE only
CAPS_NONE = "0" * 16


def _confined(end: ChildEnd, ids=None, seccomp=True) -> None:
    """isolate_prefork + isolate_postfork with a namespace thread in our own netns, then what
    still works and what no longer does."""
    netns_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    sandbox.isolate_prefork(new_pid=False)
    sandbox.isolate_postfork(netns_fd, ids, seccomp=seccomp)
    report = {"root": os.listdir("/") if not seccomp else None,
              "cwd": os.getcwd() if not seccomp else None}
    for what, fn in (("open_host_file", lambda: os.open("/etc/hostname", os.O_RDONLY)),
                     ("mkdir_root", lambda: os.mkdir("/pypasta-probe")),
                     ("thread", lambda: threading.Thread(target=lambda: None).start())):
        try:
            fn()
            report[what] = "succeeded"
        except OSError as e:
            report[what] = errno.errorcode[e.errno]
        except RuntimeError:
            report[what] = "RuntimeError"
    sock = netns.ns_call(netns_fd, socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    report["ns_socket"] = sock.getsockname()[0]
    sock.close()
    end.send(report)
    end.wait_go()


def _task_status(pid: int) -> list[dict]:
    return [proc_status(f"{pid}/task/{tid}") for tid in sorted(os.listdir(f"/proc/{pid}/task"))]


def test_confined_root_switches_to_nobody_with_an_empty_root(root):
    before = host_mounts()
    with Child(lambda end: _confined(end, (65534, 65534))) as c:
        report = c.recv()
        tasks = _task_status(c.pid)
        root_dir = os.listdir(f"/proc/{c.pid}/root")
        ns = {kind: os.readlink(f"/proc/{c.pid}/ns/{kind}") for kind in ("mnt", "uts", "ipc")}
        mounts = mountinfo(c.pid)
        c.go()
        assert c.wait() == 0
    assert report == {"root": None, "cwd": None, "open_host_file": "EPERM", "mkdir_root": "EPERM",
                      "thread": "RuntimeError", "ns_socket": "127.0.0.1"}
    assert len(tasks) == 2, "the main thread and the namespace thread"
    for st in tasks:        # capabilities, no_new_privs and the filter are per thread
        assert {k: st[k] for k in ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd",
                                   "CapAmb", "NoNewPrivs", "Seccomp")} == \
            {"Uid": "65534\t65534\t65534\t65534", "Gid": "65534\t65534\t65534\t65534",
             "CapInh": CAPS_NONE, "CapPrm": CAPS_NBS, "CapEff": CAPS_NBS, "CapBnd": CAPS_NONE,
             "CapAmb": CAPS_NONE, "NoNewPrivs": "1", "Seccomp": "2"}
        assert st["Groups"].strip() == ""
    assert root_dir == []
    for kind, link in ns.items():
        assert link != os.readlink(f"/proc/self/ns/{kind}"), kind
    [top] = mounts
    assert top["point"] == "/" and top["fstype"] == "tmpfs"
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(top["options"])
    assert host_mounts() == before, "the caller's mount table changed"


def test_confined_without_seccomp_still_has_an_empty_root_and_no_privileges(root):
    with Child(lambda end: _confined(end, None, seccomp=False)) as c:
        report = c.recv()
        tasks = _task_status(c.pid)
        c.go()
        assert c.wait() == 0
    # The empty root answers ENOENT/EROFS where the filter answers EPERM; threads can start.
    assert report == {"root": [], "cwd": "/", "open_host_file": "ENOENT", "mkdir_root": "EROFS",
                      "thread": "succeeded", "ns_socket": "127.0.0.1"}
    for st in tasks[:2]:
        assert (st["Uid"].split()[0], st["CapEff"], st["NoNewPrivs"], st["Seccomp"]) == \
            ("0", CAPS_NBS, "1", "0")


def test_confined_without_the_capability_keeps_none(root):
    def child(end: ChildEnd) -> None:
        caps = submodule("pyprctl", "caps")
        state = caps.CapState.get_current()
        keep = state.permitted - {caps.Cap.NET_BIND_SERVICE}
        caps.CapState(effective=keep, permitted=keep, inheritable=set()).set_current()
        _confined(end)

    with Child(child) as c:
        c.recv()
        tasks = _task_status(c.pid)
        c.go()
        assert c.wait() == 0
    assert {(st["CapPrm"], st["CapEff"]) for st in tasks} == {(CAPS_NONE, CAPS_NONE)}


def test_prefork_error_is_one_line_when_unprivileged(root):
    def child(end: ChildEnd) -> None:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        sandbox.isolate_prefork(new_pid=False)

    status, reports = run_child(child)
    assert reports == [{"setup_error": "Failed to sandbox process, exiting: detach namespaces: "
                        "unshare: Operation not permitted"}]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1


def test_prefork_refuses_a_multithreaded_process(root):
    def child(end: ChildEnd) -> None:
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            sandbox.isolate_prefork(new_pid=False)
        finally:
            stop.set()
            t.join()

    status, reports = run_child(child)
    assert reports == [{"setup_error": "internal error: isolation needs a single-threaded "
                        "process, found 2 threads"}]


def test_kernel_unshare_newns_moves_only_the_calling_thread(root):
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


def test_prefork_new_pid_makes_the_next_child_pid_1(root):
    def child(end: ChildEnd) -> None:
        sandbox.isolate_prefork(new_pid=True)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, str(os.getpid()).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        end.send({"grandchild_sees_itself_as": int(os.read(r, 16)), "seen_from_here": pid > 1})

    status, reports = run_child(child)
    assert reports == [{"grandchild_sees_itself_as": 1, "seen_from_here": True}]


def test_chroot_fallback_when_pivot_root_fails(root):
    """--chroot-fallback (pasta 2026): where pivot_root() fails, as on an initramfs or tmpfs
    root (EINVAL; simulated here by a pivot_root that refuses), the empty tmpfs is moved onto
    / and chroot()ed into: the same empty, read-only root. Without the option the failure is
    pasta's one-line error."""
    def child(end: ChildEnd, fallback: bool) -> None:
        def refuse(*_args):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        sandbox._pivot_root = refuse
        sandbox.isolate_prefork(new_pid=False, chroot_fallback=fallback)
        try:
            os.mkdir("/probe")
            mkdir = "succeeded"
        except OSError as e:
            mkdir = errno.errorcode[e.errno]
        end.send({"root": os.listdir("/"), "cwd": os.getcwd(), "mkdir": mkdir})

    status, reports = run_child(lambda end: child(end, True))
    assert reports == [{"root": [], "cwd": "/", "mkdir": "EROFS"}]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    status, reports = run_child(lambda end: child(end, False))
    assert reports == [{"setup_error": "Failed to sandbox process, exiting: pivot_root: into an "
                        "empty tmpfs: Invalid argument"}]
