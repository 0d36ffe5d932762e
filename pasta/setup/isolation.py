"""Isolation (passt's isolation.c): every long-running pypasta process confines itself once its
set-up is done, as pasta does.

Purpose: the translator parses frames that untrusted containers and guests write. After set-up
it keeps only what the loop needs: no file system, no capability but CAP_NET_BIND_SERVICE
(where it was granted), no way to gain privileges, and a seccomp allow-list. pasta mode (spawn
and attach), the CNI plugin's daemons (pypasta in attach mode) and pypasta-slirp4netns all go
through `pasta.setup.supervisor`, which calls the stages below.

Theory of operation (the stages of isolation.c; the supervisor calls them in this order):
- `isolate_initial()`, before any thread exists: glibc's malloc limited to its main arena (a
  thread arena that shrinks reads a /proc file, refused once confined).
The next two come after the tap, the namespace configuration, the listeners, the /proc/net
files of `auto`, the log, pcap and PID files and any front end's sockets are open:
- `isolate_prefork(new_pid)`: `unshare(CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS`, plus
  `CLONE_NEWPID` when the process is about to daemonize: the daemon is then PID 1 of a PID
  namespace of its own); `/` made MS_UNBINDABLE|MS_REC (nothing propagates either way); an
  empty read-only tmpfs (`nr_inodes=2,nr_blocks=0`, nosuid, nodev, noexec) on `/tmp`;
  `chdir("/tmp")`, `pivot_root(".", ".")`, `umount2(".", MNT_DETACH)`: the root is an empty
  directory and nothing of the host's files is reachable by path. Needs a single thread
  (unshare(CLONE_NEWNS) would move only the calling thread).
- `isolate_postfork(netns_fd, ids, seccomp)`, in the process that runs the loop:
  1. `NsWorker(netns_fd)`: the one thread that stays in the target network namespace, entered
     now while setns is still allowed; sockets for splicing and `-T`/`-U` listeners added at
     run time are created there (`pasta.util.netns`). Hence no CAP_SYS_ADMIN, setns or clone
     afterwards: pasta keeps CAP_SYS_ADMIN for its setns, pypasta needs none.
  2. `ids` (uid, gid) given: started as real root without `--runas`, switch to nobody after
     set-up (pasta switches before, and as root on this kind of machine then fails to write
     its uid_map or to enter the namespaces). PR_SET_KEEPCAPS in each thread, setgroups([]),
     setresgid, setresuid (glibc applies them to every thread).
  3. In each thread (capabilities are per thread): every capability dropped from the bounding
     set and the ambient set, inheritable cleared, effective = permitted = {NET_BIND_SERVICE}
     if it was permitted, else nothing; plus CAP_KILL with `keep_kill` (spawn mode started as
     root: the command keeps uid 0 and only CAP_KILL in the user namespace they share lets
     the nobody translator end it, by kill() or through the command's PR_SET_PDEATHSIG, which
     the kernel checks against the exiting parent's credentials).
  4. PR_SET_DUMPABLE 0 (no core dumps, no ptrace by the same user), PR_SET_NO_NEW_PRIVS, and
     unless `seccomp` is False (`--no-seccomp`, debugging only) the filter below, synchronised
     to both threads (TSYNC) with SECCOMP_FILTER_FLAG_LOG.
- The filter (`build_filter`): wrong audit arch or the x32 ABI -> kill; -1 -> EPERM; a syscall in
  `ALLOWED_SYSCALLS` -> allow; anything else -> **EPERM**. A binary search over the sorted
  numbers (a JGE tree with leaves of up to four JEQ), about eight comparisons per syscall.
  pasta kills on anything unlisted; we return EPERM because the syscalls of CPython and glibc
  vary with their versions and with rare paths (a traceback reads source files, a failed
  import probes paths): a refused call is an OSError that costs the operation (one flow, one
  log line), not the networking of every container behind us, and an attacker gains nothing
  from a refused call either way. FLAG_LOG makes the kernel log every refusal (audit type
  1326, `code=0x50000`, in dmesg or the audit log), which is how the list was measured
  (`tests/tools/seccomp_refusals.py`) and how a missing entry shows up.
- `probe(netns_fd)`: debug hook (environment PYPASTA_ISOLATION_PROBE=1): after confinement,
  try what must fail (exec, opening a host file, listing /, setns, unshare) and what must work
  (a socket, a socket in the namespace), and log each outcome at level info.

The allow-list is what the loop was seen to need over the whole test suite and the benchmark,
with the filter logging refusals (x86_64; aarch64 takes the same names where it has them). It
does not contain exec*, open*, clone*, fork, setns, unshare, mount, pivot_root, prctl, ptrace,
seccomp, bpf, or anything that changes credentials.

Ordering and threads: prefork (single-threaded) -> fork when daemonizing -> postfork. No
thread may be started and no process forked after postfork (clone is refused; no_new_privs
and the filter would be inherited anyway).

Differences from pasta: EPERM instead of SECCOMP_RET_KILL_PROCESS (above); no CAP_SYS_ADMIN
kept (the namespace thread); started as root it switches to nobody after set-up instead of
before, and in spawn mode the command keeps uid 0 (pasta makes it nobody too), which costs
CAP_KILL in the translator's own user namespace; no user namespace of its own in attach mode
as root (as pasta: `--netns` without `--userns` leaves it alone), so that
CAP_NET_BIND_SERVICE keeps working for low ports.

pypasta-slirp4netns: `--enable-sandbox` and `--enable-seccomp` are accepted as slirp4netns's;
the confinement they ask for is always on (with an empty root where slirp4netns keeps /etc and
/run), and `--enable-seccomp` still prints slirp4netns's line naming the syscalls it blocks,
all of which the allow-list refuses (`blocked_message`).

Limits: x86_64 and aarch64 with a 64-bit interpreter only (SetupError otherwise). A root file
system that cannot be pivoted (an initramfs) makes the set-up fail ("Failed to sandbox
process"); pasta's `--chroot-fallback` is not built.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Iterable

from pasta.util import log, netns
from pasta.util.errors import SetupError
from pasta.util.lazyimport import submodule

# Imported now, not on first use: the empty root hides site-packages, and pyprctl's ffi runs
# ldconfig (an exec) when it is first imported.
_caps = submodule("pyprctl", "caps")
_misc = submodule("pyprctl", "misc")

NOBODY = 65534

# What the loop needs (measured: see the module docstring).
ALLOWED_SYSCALLS = (
    "read", "write", "readv", "writev", "pread64", "pwrite64", "close", "lseek", "fstat",
    "newfstatat", "mmap", "munmap", "mremap", "mprotect", "brk", "madvise", "futex",
    "sched_yield", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "kill",
    "tgkill", "tkill", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getpgrp", "getpgid", "getsid",
    "clock_gettime", "clock_getres", "gettimeofday", "clock_nanosleep", "nanosleep",
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "poll", "ppoll", "select",
    "pselect6", "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown", "sendto", "recvfrom",
    "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "splice", "pipe", "pipe2", "fcntl", "ioctl",
    "dup", "dup2", "dup3", "fallocate", "ftruncate", "fsync", "fdatasync", "wait4", "waitid",
    "exit", "exit_group", "restart_syscall", "getrandom", "prlimit64", "close_range", "uname",
)

# slirp4netns's deny list, in the order of the reference (slirp4netns-reference.md section 6):
# what `--enable-seccomp` names as blocked. None of them is in ALLOWED_SYSCALLS.
BLOCKED_SYSCALLS = (
    "execve", "lookup_dcookie", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
    "delete_module", "finit_module", "init_module", "chroot", "fsconfig", "fsmount", "fsopen",
    "fspick", "mount", "move_mount", "open_tree", "pivot_root", "umount", "umount2",
    "open_by_handle_at", "execveat", "pidfd_open", "pidfd_send_signal", "prctl", "setns",
    "unshare", "kexec_file_load", "kexec_load", "reboot", "name_to_handle_at",
)

# Syscall numbers: arch/x86/entry/syscalls/syscall_64.tbl (asm/unistd_64.h) and
# include/uapi/asm-generic/unistd.h (aarch64), for the names above and those this module calls.
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "read": 0, "write": 1, "readv": 19, "writev": 20, "pread64": 17, "pwrite64": 18,
        "close": 3, "lseek": 8, "fstat": 5, "newfstatat": 262, "mmap": 9, "munmap": 11,
        "mremap": 25, "mprotect": 10, "brk": 12, "madvise": 28, "futex": 202, "sched_yield": 24,
        "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15, "sigaltstack": 131,
        "kill": 62, "tgkill": 234, "tkill": 200, "getpid": 39, "gettid": 186, "getppid": 110,
        "getuid": 102, "geteuid": 107, "getgid": 104, "getegid": 108,
        "getpgrp": 111, "getpgid": 121, "getsid": 124, "clock_gettime": 228,
        "clock_getres": 229, "gettimeofday": 96, "clock_nanosleep": 230, "nanosleep": 35,
        "epoll_wait": 232, "epoll_pwait": 281, "epoll_pwait2": 441, "epoll_ctl": 233, "poll": 7,
        "ppoll": 271, "select": 23, "pselect6": 270, "socket": 41, "socketpair": 53, "bind": 49,
        "listen": 50, "accept": 43, "accept4": 288, "connect": 42, "getsockname": 51,
        "getpeername": 52, "getsockopt": 55, "setsockopt": 54, "shutdown": 48, "sendto": 44,
        "recvfrom": 45, "sendmsg": 46, "recvmsg": 47, "sendmmsg": 307, "recvmmsg": 299,
        "splice": 275, "pipe": 22, "pipe2": 293, "fcntl": 72, "ioctl": 16, "dup": 32, "dup2": 33,
        "dup3": 292, "fallocate": 285, "ftruncate": 77, "fsync": 74, "fdatasync": 75, "wait4": 61,
        "waitid": 247, "exit": 60, "exit_group": 231, "restart_syscall": 219, "getrandom": 318,
        "prlimit64": 302, "close_range": 436, "uname": 63, "execve": 59, "lookup_dcookie": 212,
        "pidfd_getfd": 438, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "delete_module": 176, "finit_module": 313, "init_module": 175, "chroot": 161,
        "fsconfig": 431, "fsmount": 432, "fsopen": 430, "fspick": 433, "mount": 165,
        "move_mount": 429, "open_tree": 428, "pivot_root": 155, "umount2": 166,
        "open_by_handle_at": 304, "execveat": 322, "pidfd_open": 434, "pidfd_send_signal": 424,
        "prctl": 157, "setns": 308, "unshare": 272, "kexec_file_load": 320, "kexec_load": 246,
        "reboot": 169, "name_to_handle_at": 303, "seccomp": 317, "openat": 257, "clone": 56,
        "clone3": 435, "fork": 57, "vfork": 58,
    },
    "aarch64": {
        "read": 63, "write": 64, "readv": 65, "writev": 66, "pread64": 67, "pwrite64": 68,
        "close": 57, "lseek": 62, "fstat": 80, "newfstatat": 79, "mmap": 222, "munmap": 215,
        "mremap": 216, "mprotect": 226, "brk": 214, "madvise": 233, "futex": 98,
        "sched_yield": 124, "rt_sigaction": 134, "rt_sigprocmask": 135, "rt_sigreturn": 139,
        "sigaltstack": 132, "kill": 129, "tgkill": 131, "tkill": 130, "getpid": 172, "gettid": 178,
        "getppid": 173, "getuid": 174, "geteuid": 175, "getgid": 176, "getegid": 177,
        "getpgid": 155, "getsid": 156,
        "clock_gettime": 113, "clock_getres": 114, "gettimeofday": 169, "clock_nanosleep": 115,
        "nanosleep": 101, "epoll_pwait": 22, "epoll_pwait2": 441, "epoll_ctl": 21, "ppoll": 73,
        "pselect6": 72, "socket": 198, "socketpair": 199, "bind": 200, "listen": 201,
        "accept": 202, "accept4": 242, "connect": 203, "getsockname": 204, "getpeername": 205,
        "getsockopt": 209, "setsockopt": 208, "shutdown": 210, "sendto": 206, "recvfrom": 207,
        "sendmsg": 211, "recvmsg": 212, "sendmmsg": 269, "recvmmsg": 243, "splice": 76,
        "pipe2": 59, "fcntl": 25, "ioctl": 29, "dup": 23, "dup3": 24, "fallocate": 47,
        "ftruncate": 46, "fsync": 82, "fdatasync": 83, "wait4": 260, "waitid": 95, "exit": 93,
        "exit_group": 94, "restart_syscall": 128, "getrandom": 278, "prlimit64": 261,
        "close_range": 436, "uname": 160, "execve": 221, "lookup_dcookie": 18, "pidfd_getfd": 438,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "delete_module": 106,
        "finit_module": 273, "init_module": 105, "chroot": 51, "fsconfig": 431, "fsmount": 432,
        "fsopen": 430, "fspick": 433, "mount": 40, "move_mount": 429, "open_tree": 428,
        "pivot_root": 41, "umount2": 39, "open_by_handle_at": 265, "execveat": 281,
        "pidfd_open": 434, "pidfd_send_signal": 424, "prctl": 167, "setns": 268, "unshare": 97,
        "kexec_file_load": 294, "kexec_load": 104, "reboot": 142, "name_to_handle_at": 264,
        "seccomp": 277, "openat": 56, "clone": 220, "clone3": 435,
    },
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}   # include/uapi/linux/audit.h
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_EPERM = SECCOMP_RET_ERRNO | errno.EPERM
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2

# Classic BPF (include/uapi/linux/filter.h); struct seccomp_data: int nr; __u32 arch; ...
BPF_LD_W_ABS = 0x20
BPF_JMP_JA = 0x05
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_RET_K = 0x06
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
_SOCK_FILTER = struct.Struct("=HBBI")
_LEAF = 4                       # numbers compared one by one at the bottom of the search tree

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_MOVE = 8192
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

_libc = ctypes.CDLL(None, use_errno=True)      # the process's own libc, as pasta.util.netns
_libc.syscall.restype = ctypes.c_long
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

_seccomp_installed = False


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def host_arch(what: str = "seccomp") -> str:
    """This process's syscall ABI: "x86_64" or "aarch64"; SetupError for anything else."""
    machine = os.uname().machine            # what platform.machine() returns, without platform
    if machine not in SYSCALL_NUMBERS:
        raise SetupError(f"{what}: unsupported architecture {machine} "
                         f"(supported: {', '.join(SYSCALL_NUMBERS)})")
    if struct.calcsize("P") != 8:           # a 32-bit interpreter on a 64-bit kernel
        raise SetupError(f"{what}: unsupported 32-bit interpreter on {machine}")
    return machine


def allowed_numbers(arch: str) -> list[int]:
    """The sorted syscall numbers of ALLOWED_SYSCALLS on `arch` (names it lacks are skipped)."""
    table = SYSCALL_NUMBERS[arch]
    return sorted({table[n] for n in ALLOWED_SYSCALLS if n in table})


def unmapped_blocked(arch: str) -> list[str]:
    """BLOCKED_SYSCALLS that `arch` does not have (`umount`: only umount2 exists)."""
    return [n for n in BLOCKED_SYSCALLS if n not in SYSCALL_NUMBERS[arch]]


def _tree(nums: list[int]) -> list:
    """Search tree over sorted `nums`: instructions with labels "allow" and "deny"."""
    if len(nums) <= _LEAF:
        return [(BPF_JMP_JEQ_K, "allow", 0, n) for n in nums] + [(BPF_JMP_JA, 0, 0, "deny")]
    mid = len(nums) // 2
    left, right = _tree(nums[:mid]), _tree(nums[mid:])
    return [(BPF_JMP_JGE_K, len(left), 0, nums[mid])] + left + right


def build_filter(arch: str, default: int = SECCOMP_RET_EPERM) -> bytes:
    """The seccomp program for `arch`: allow ALLOWED_SYSCALLS, `default` for every other
    syscall, kill foreign ABIs (pure: returns 8-byte `struct sock_filter` entries)."""
    prog: list = [
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        (BPF_JMP_JEQ_K, 0, "kill", AUDIT_ARCH[arch]),
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
    ]
    if arch == "x86_64":
        prog += [(BPF_JMP_JEQ_K, "deny", 0, 0xFFFFFFFF),      # -1: a tracer skipping a call
                 (BPF_JMP_JGE_K, "kill", 0, X32_SYSCALL_BIT)]  # the x32 ABI
    prog += _tree(allowed_numbers(arch))
    labels = {"allow": len(prog), "deny": len(prog) + 1, "kill": len(prog) + 2}
    prog += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, default),
             (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS)]
    out = bytearray()
    for pc, (code, jt, jf, k) in enumerate(prog):
        if code == BPF_JMP_JA:
            k = labels[k] - pc - 1
        jt, jf = (labels[j] - pc - 1 if isinstance(j, str) else j for j in (jt, jf))
        assert 0 <= jt <= 255 and 0 <= jf <= 255, "BPF conditional jumps reach 255 at most"
        out += _SOCK_FILTER.pack(code, jt, jf, k)
    return bytes(out)


def blocked_message(names: Iterable[str]) -> str:
    """slirp4netns's stdout line; `names` are the syscalls actually blocked."""
    return "seccomp: The following syscalls are blocked:" + "".join(f" {n}" for n in names)


def unmapped_message(names: Iterable[str]) -> str:
    """slirp4netns's stderr warning for names it could not block (libseccomp's wording)."""
    return ("seccomp: WARNING: the following syscalls are not defined in libseccomp and cannot "
            "be blocked:" + "".join(f" {n}" for n in names))


def _seccomp(arch: str, op: int, flags: int, arg) -> int:
    return _libc.syscall(ctypes.c_long(SYSCALL_NUMBERS[arch]["seccomp"]), ctypes.c_long(op),
                         ctypes.c_long(flags), ctypes.byref(arg))


def install_seccomp(default: int = SECCOMP_RET_EPERM) -> None:
    """PR_SET_NO_NEW_PRIVS, then the filter on every thread of this process (TSYNC), with
    refusals logged by the kernel where it can (Linux 4.14+)."""
    global _seccomp_installed
    if _seccomp_installed:
        raise SetupError("seccomp: the filter is already installed")
    arch = host_arch("seccomp")
    prog = build_filter(arch, default)
    _step("seccomp", "PR_SET_NO_NEW_PRIVS", _misc.set_no_new_privs)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // _SOCK_FILTER.size, ctypes.addressof(buf))
    flags = SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG
    ret = _seccomp(arch, SECCOMP_SET_MODE_FILTER, flags, fprog)
    if ret < 0 and ctypes.get_errno() == errno.EINVAL:
        flags = SECCOMP_FILTER_FLAG_TSYNC                    # a kernel without FLAG_LOG
        ret = _seccomp(arch, SECCOMP_SET_MODE_FILTER, flags, fprog)
    if ret < 0:
        raise SetupError(f"seccomp: install filter: {os.strerror(ctypes.get_errno())}")
    if ret > 0:     # TSYNC: the id of a thread whose filters are not an ancestor of ours
        raise SetupError(f"seccomp: install filter: thread {ret} has a seccomp filter of its own")
    _seccomp_installed = True


def _step(prefix: str, what: str, fn, *args) -> None:
    """Run one step; an OSError becomes SetupError("<prefix>: <what>: <strerror>")."""
    try:
        fn(*args)
    except OSError as e:
        # pasta.util.netns puts its own prefix in e.strerror: rebuild the message from errno.
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise SetupError(f"{prefix}: {what}: {reason}") from None


def _pivot_root(arch: str, new_root: str, put_old: str) -> None:
    if _libc.syscall(ctypes.c_long(SYSCALL_NUMBERS[arch]["pivot_root"]),
                     ctypes.c_char_p(new_root.encode()), ctypes.c_char_p(put_old.encode())) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _umount2(target: str, flags: int) -> None:
    if _libc.umount2(target.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


SANDBOX_FAILED = "Failed to sandbox process, exiting"
M_ARENA_MAX = -8


def isolate_initial() -> None:
    """First thing, before any thread: glibc's malloc keeps to its main arena. A thread arena
    (the namespace thread's) that shrinks makes glibc read /proc/sys/vm/overcommit_memory,
    which a confined process cannot open; one arena also keeps memory flat."""
    _libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(1))


def isolate_prefork(new_pid: bool, chroot_fallback: bool = False) -> None:
    """Detach IPC, UTS and mount namespaces (and PID for a daemon's children) and pivot to an
    empty read-only root (isolation.c isolate_prefork). Single-threaded only.
    `chroot_fallback` (--chroot-fallback): where pivot_root() fails (an initramfs or tmpfs
    root gives EINVAL), move the empty tmpfs onto / and chroot() into it instead."""
    arch = host_arch("sandbox")
    threads = netns.wait_single_threaded()
    if threads != 1:
        raise SetupError(f"internal error: isolation needs a single-threaded process, found "
                         f"{threads} threads")
    flags = netns.CLONE_NEWIPC | netns.CLONE_NEWUTS | netns.CLONE_NEWNS
    if new_pid:
        flags |= netns.CLONE_NEWPID
    p = SANDBOX_FAILED + ": "
    _step(p + "detach namespaces", "unshare", netns.unshare, flags)
    _step(p + "mount", "make / unbindable", netns.mount, None, "/", None,
          MS_UNBINDABLE | MS_REC)
    _step(p + "mount", "tmpfs on /tmp", netns.mount, "", "/tmp", "tmpfs",
          MS_NODEV | MS_NOEXEC | MS_NOSUID | MS_RDONLY, "nr_inodes=2,nr_blocks=0")
    _step(p + "chdir", "/tmp", os.chdir, "/tmp")
    try:
        _pivot_root(arch, ".", ".")
    except OSError:
        if not chroot_fallback:
            _step(p + "pivot_root", "into an empty tmpfs", _pivot_root, arch, ".", ".")
        log.info("Failed to pivot_root(), fallback to chroot()...")
        _step(p + "mount", "move root into empty tmpfs", netns.mount, "/tmp", "/", None,
              MS_MOVE)
        _step(p + "chroot", "into empty tmpfs", os.chroot, ".")
        _step(p + "chdir", "into new root", os.chdir, "/")
        return
    _step(p + "umount", "the old root", _umount2, ".", MNT_DETACH | UMOUNT_NOFOLLOW)


def _clear_ambient() -> None:
    try:
        _caps.cap_ambient_clear_all()
    except OSError as e:
        if e.errno != errno.EINVAL:     # EINVAL: no ambient capabilities (Linux < 4.3)
            raise


def _bounding_clear() -> None:
    try:
        _caps.capbset.limit()
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EPERM):      # as pasta's clamp_caps
            raise


def _keepcaps(on: bool) -> None:
    _misc.set_keepcaps(on)


def _drop_caps(keep_nbs: bool, keep_kill: bool = False) -> None:
    """This thread: nothing in the bounding, ambient and inheritable sets; effective =
    permitted = {NET_BIND_SERVICE} if `keep_nbs` (and KILL if `keep_kill`), else empty."""
    keep = {_caps.Cap.NET_BIND_SERVICE} if keep_nbs else set()
    if keep_kill:
        keep.add(_caps.Cap.KILL)
    p = SANDBOX_FAILED + ": capabilities"
    # A uid switch cleared the effective set: CAP_SETPCAP must be effective to drop the
    # bounding set.
    now = _caps.CapState.get_current()
    _step(p, "raise effective", _caps.CapState(effective=now.permitted, permitted=now.permitted,
                                               inheritable=now.inheritable).set_current)
    _step(p, "clear ambient", _clear_ambient)
    _step(p, "clear bounding set", _bounding_clear)
    _step(p, "capset", _caps.CapState(effective=keep, permitted=keep, inheritable=set())
          .set_current)


def _switch_ids(uid: int, gid: int) -> None:
    p = SANDBOX_FAILED + f": switch to {uid}:{gid}"
    try:
        os.setgroups([])
    except PermissionError:
        pass                            # setgroups denied in this user namespace: keep going
    _step(p, "setresgid", os.setresgid, gid, gid, gid)
    _step(p, "setresuid", os.setresuid, uid, uid, uid)


def isolate_postfork(netns_fd: int | None, ids: tuple[int, int] | None = None,
                     seccomp: bool = True, keep_kill: bool = False) -> None:
    """Confine the process that runs the loop (see the module docstring, steps 1-4)."""
    worker = netns.NsWorker(netns_fd) if netns_fd is not None else None
    keep_nbs = _caps.Cap.NET_BIND_SERVICE in _caps.CapState.get_current().permitted

    def in_each_thread(fn, *args) -> None:
        fn(*args)
        if worker is not None:
            worker.call(fn, *args)

    if ids is not None:
        in_each_thread(_step, SANDBOX_FAILED, "PR_SET_KEEPCAPS", _keepcaps, True)
        _switch_ids(*ids)
        in_each_thread(_step, SANDBOX_FAILED, "PR_SET_KEEPCAPS", _keepcaps, False)
    in_each_thread(_drop_caps, keep_nbs, keep_kill)
    _step(SANDBOX_FAILED, "PR_SET_DUMPABLE", _misc.set_dumpable, False)
    if seccomp:
        install_seccomp()
    else:
        _step(SANDBOX_FAILED, "PR_SET_NO_NEW_PRIVS", _misc.set_no_new_privs)
        if worker is not None:
            worker.call(_step, SANDBOX_FAILED, "PR_SET_NO_NEW_PRIVS", _misc.set_no_new_privs)
    if os.environ.get("PYPASTA_ISOLATION_PROBE") == "1":
        probe(netns_fd)


def _try(what: str, fn, *args) -> None:
    try:
        out = fn(*args)
    except OSError as e:
        log.info(f"isolation probe: {what}: refused: {errno.errorcode.get(e.errno, e.errno)} "
                 f"({e.strerror})")
        return
    except Exception as e:  # noqa: BLE001 - a probe reports, it never fails
        log.info(f"isolation probe: {what}: refused: {type(e).__name__}: {e}")
        return
    log.info(f"isolation probe: {what}: allowed: {out!r}")


def _socket_closed(in_ns: bool, netns_fd) -> str:
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.close()
        return "a TCP socket"
    return netns.ns_call(netns_fd, make) if in_ns else make()


def probe(netns_fd: int | None) -> None:
    """Debug hook: log what the confined process may and may not do (module docstring)."""
    _try("execve /bin/true", os.execv, "/bin/true", ["true"])
    _try("open /etc/passwd", os.open, "/etc/passwd", os.O_RDONLY)
    _try("list /", os.listdir, "/")
    if netns_fd is not None:
        _try("setns to the target namespace", netns.setns, netns_fd, netns.CLONE_NEWNET)
    _try("unshare a user namespace", netns.unshare, netns.CLONE_NEWUSER)
    _try("socket", _socket_closed, False, netns_fd)
    if netns_fd is not None:
        _try("socket in the target namespace", _socket_closed, True, netns_fd)
