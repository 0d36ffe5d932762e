"""Isolation (passt's isolation.c): the one confinement module every front end uses; today
slirp4netns's `--enable-sandbox` and `--enable-seccomp` for pypasta-slirp4netns.

Purpose: confine the helper once its sockets and tap exist, as slirp4netns's `create_sandbox()`
(sandbox.c) and `enable_seccomp()` (seccompfilter.c) do: a mount namespace whose root holds only
`/etc` and `/run` (read-only), no capability but CAP_NET_BIND_SERVICE, and a seccomp filter that
kills the process on the syscalls a network helper never needs (exec, mounts, namespaces,
ptrace, modules, kexec, reboot, prctl).

Theory of operation:
- `enter_sandbox(keep_paths)` runs in the helper process itself and changes only that process:
  1. `unshare(CLONE_NEWNS)`, then `/` and everything below it become *slave* mounts
     (MS_REC|MS_SLAVE): from here on no mount change of ours can reach the caller's namespace.
  2. A tmpfs (`size=1k`, nosuid,nodev,noexec) on `/tmp` (of the new namespace only).
  3. Each kept path (`/etc`, `/run`): the source is made a slave mount if it is a mount point
     (EINVAL, "not a mount point", is ignored as slirp4netns does), bound recursively to the same
     path under `/tmp`, the copy made a recursive slave, then remounted
     MS_BIND|MS_REMOUNT|MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC (a bind mount takes new per-mount
     flags only through MS_REMOUNT|MS_BIND; plain MS_BIND ignores MS_RDONLY).
  4. If `realpath(/etc/resolv.conf)` lies outside the kept paths (e.g. `/var/run/...` on a
     system without the /var/run -> /run link, or `/usr/lib/systemd/resolv.conf`), that one file
     is bound read-only to the same path under `/tmp`, onto an empty file created there, so the
     DNS forwarder keeps reading the host's resolver list.
  5. `chdir("/tmp")`, `pivot_root(".", "old")` (through `syscall(2)` as slirp4netns does:
     no header declares a wrapper; SYS_pivot_root is 155 on x86_64, 41 on aarch64), `chdir("/")`,
     `umount2("/old", MNT_DETACH)`, `rmdir("/old")`, and `/` remounted read-only (a failure
     there is ignored, as in slirp4netns).
  6. PR_SET_NO_NEW_PRIVS, ambient capabilities cleared, every capability dropped from the
     bounding set except CAP_NET_BIND_SERVICE, and effective = permitted = inheritable =
     {CAP_NET_BIND_SERVICE}, all through pyprctl.
  Each failing step raises `SetupError("sandbox: <step>: <strerror>")`; what was done before
  stays done (the process is expected to exit).
- `install_seccomp()` asks the kernel whether SECCOMP_RET_KILL_PROCESS exists (seccomp(2)
  SECCOMP_GET_ACTION_AVAIL, Linux 4.14; otherwise SECCOMP_RET_KILL_THREAD, what libseccomp
  calls SCMP_ACT_KILL), sets PR_SET_NO_NEW_PRIVS (pyprctl) and installs `build_filter()` for
  this architecture with seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC). It returns
  the names of `BLOCKED_SYSCALLS` this architecture does not have (`umount` on both: x86_64 and
  aarch64 only have umount2), which the caller prints as warnings.
- `build_filter(arch, action)` is pure and returns the classic-BPF program as bytes (8-byte
  `struct sock_filter` entries): check `seccomp_data.arch` (anything else -> kill), load the
  number, on x86_64 let -1 through and kill the x32 range (nr >= 0x40000000), then one JEQ per
  blocked number -> kill, otherwise allow. About 35 instructions, a linear scan: nanoseconds per
  syscall, negligible next to the syscall itself.
- `blocked_message(names)` and `unmapped_message(names)` give slirp4netns's stdout line and
  stderr warning. The caller passes the names that *are* blocked:
      missing = install_seccomp()
      print(blocked_message(n for n in BLOCKED_SYSCALLS if n not in missing), flush=True)
      if missing: print(unmapped_message(missing), file=sys.stderr)

Ordering: sandbox first, then seccomp (as slirp4netns's do_slirp). The filter kills `unshare`,
`mount`, `pivot_root`, `umount2` and `prctl`, which the sandbox (and pyprctl) need.
`enter_sandbox()` after `install_seccomp()` raises SetupError instead of dying of SIGSYS, and
`install_seccomp()` refuses a second call (its PR_SET_NO_NEW_PRIVS would be killed).

Threads: call `enter_sandbox()` while the process has a single thread (it checks, and raises
SetupError otherwise). The kernel rule found in kernel/fork.c `ksys_unshare()`: CLONE_NEWNS
implies CLONE_FS, and `unshare_fs()` then *copies* the fs_struct if other threads share it, so
unshare(CLONE_NEWNS) does not fail in a multi-threaded process: it moves only the calling thread
into the new namespace with its own root and cwd, and the other threads stay outside the
sandbox (setns(CLONE_NEWNS), in contrast, fails with EINVAL when fs_struct is shared).
Capabilities and no_new_privs are per thread as well. The seccomp filter is synchronised to all
threads (TSYNC), so that part alone would cover stray threads.

After the sandbox: the process sees only `/etc`, `/run` (and a resolv.conf outside them): no
`/proc`, no `/usr`, no Python standard library or site-packages. Every module the helper will
need must be imported *before* `enter_sandbox()` (including ones imported lazily on first use,
e.g. `encodings.idna` for str host names, `json`), and nothing may read `/proc` afterwards.
After seccomp: no exec (so no `subprocess`, no `ctypes.util.find_library`, which runs ldconfig:
pyprctl is imported by this module for that reason), no `os.pidfd_open`, `setns`, `unshare`
(so no `ns_call`), no `prctl` (pyprctl, and Python >= 3.14's `threading.Thread.start()`, which
names the new thread with pthread_setname_np = prctl(PR_SET_NAME): start no thread afterwards).

Why a hand-written filter instead of libseccomp: the one binding maintained by libseccomp
itself is a Cython extension; Debian ships it (python3-seccomp) for its own /usr/bin/python3
only, and upstream publishes nothing on PyPI, where the choices are third-party rebuilds or a
ctypes wrapper (pyseccomp) last released in 2021. Each would add a C library and a binding to a
dependency list that is pure Python (pyroute2, pyprctl, netaddr) for a default-allow deny list
that is ~35 BPF instructions and ~60 lines here, checked instruction by instruction by a BPF
interpreter in the tests and end to end against the kernel.

Limits and not handled:
- Only x86_64 and aarch64, with a 64-bit interpreter: anything else raises SetupError (the
  syscall numbers and AUDIT_ARCH values are per architecture).
- The read-only remount applies to the top mount of each kept path, as in slirp4netns: mounts
  below `/run` (e.g. /run/user/UID, /run/netns) keep their own flags.
- Compat syscalls are killed wholesale (i386 `int 0x80` on x86_64, AArch32 on aarch64, x32),
  whatever the number: a CPython process never makes them.

Kernel assumptions (tests/kernel/test_sandbox.py):
- unshare(CLONE_NEWNS) in a multi-threaded process moves only the caller:
  `test_sandbox_kernel_unshare_newns_moves_only_the_calling_thread`.
- A slave copy receives the unmounts and mounts of its master and sends none back:
  `test_sandbox_follows_unmounts_and_mounts_of_the_parent_namespace`.
- The filter kills the whole process with SIGSYS on a blocked syscall, and glibc's wrappers
  use the numbers of our tables: `test_seccomp_glibc_wrapper_is_killed`.
- TSYNC puts the filter on threads that already run:
  `test_seccomp_filter_reaches_threads_started_before`.

Differences from slirp4netns (create_sandbox, enable_seccomp):
- `/` becomes MS_REC|MS_SLAVE, where slirp4netns makes only the root mount MS_PRIVATE. Running
  as real root (same user namespace as the mount namespace) its other copies stay *shared*
  peers of the host's mounts, so its tmpfs on `/tmp` propagates back to the host whenever `/tmp`
  is a shared mount point (systemd's tmp.mount). In its usual rootless use the kernel already
  turns every shared copy into a slave (copy_mnt_ns: CL_SHARED_TO_SLAVE when the user namespace
  differs), so MS_REC|MS_SLAVE is what slirp4netns gets there, made explicit for root too.
  MS_REC|MS_PRIVATE would also protect the host, but then a mount the host unmounts later
  without removing its mount point (a /run/user/UID tmpfs at logout, a bind-mounted netns file
  that is only unmounted) stays alive in the sandbox until the helper exits; a slave follows.
- `/` is remounted read-only with nosuid,nodev,noexec and keeps `size=1k` (slirp4netns passes
  only MS_RDONLY and "size=0k", which clears those flags and lifts the size limit).
- Refuses a multi-threaded process (slirp4netns is single-threaded by construction).
- Seccomp: i386/x32 (and AArch32) syscalls are all killed instead of getting the same deny list
  (libseccomp's extra arches); the filter is synchronised to all threads (libseccomp's default
  is the calling thread); on x86_64 syscall number -1 (what a tracer writes to skip a syscall)
  is allowed, as in slirp4netns's filter (where it falls through the x32 block). libseccomp
  resolves `umount` to a pseudo-syscall and lists it among the blocked ones; here it is
  reported by `install_seccomp()` as not mapped (the i386 umount is killed with all of i386).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterable

from pasta.util import netns
from pasta.util.errors import SetupError
from pasta.util.lazyimport import submodule

# Imported now, not on first use: the sandbox hides site-packages, and pyprctl's ffi runs
# ldconfig (an exec, killed by the filter) when it is first imported.
_caps = submodule("pyprctl", "caps")
_misc = submodule("pyprctl", "misc")

KEEP_PATHS_DEFAULT = ("/etc", "/run")
RESOLV_CONF = "/etc/resolv.conf"
TMPFS_OPTIONS = "size=1k"

# slirp4netns's deny list, in the order of the reference (slirp4netns-reference.md section 6).
BLOCKED_SYSCALLS = (
    "execve", "lookup_dcookie", "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev",
    "delete_module", "finit_module", "init_module", "chroot", "fsconfig", "fsmount", "fsopen",
    "fspick", "mount", "move_mount", "open_tree", "pivot_root", "umount", "umount2",
    "open_by_handle_at", "execveat", "pidfd_open", "pidfd_send_signal", "prctl", "setns",
    "unshare", "kexec_file_load", "kexec_load", "reboot", "name_to_handle_at",
)

# Syscall numbers: arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h
# (aarch64). `seccomp` and `pivot_root` are what this module calls itself.
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "execve": 59, "lookup_dcookie": 212, "pidfd_getfd": 438, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "delete_module": 176,
        "finit_module": 313, "init_module": 175, "chroot": 161, "fsconfig": 431, "fsmount": 432,
        "fsopen": 430, "fspick": 433, "mount": 165, "move_mount": 429, "open_tree": 428,
        "pivot_root": 155, "umount2": 166, "open_by_handle_at": 304, "execveat": 322,
        "pidfd_open": 434, "pidfd_send_signal": 424, "prctl": 157, "setns": 308, "unshare": 272,
        "kexec_file_load": 320, "kexec_load": 246, "reboot": 169, "name_to_handle_at": 303,
        "seccomp": 317,
    },
    "aarch64": {
        "execve": 221, "lookup_dcookie": 18, "pidfd_getfd": 438, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "delete_module": 106,
        "finit_module": 273, "init_module": 105, "chroot": 51, "fsconfig": 431, "fsmount": 432,
        "fsopen": 430, "fspick": 433, "mount": 40, "move_mount": 429, "open_tree": 428,
        "pivot_root": 41, "umount2": 39, "open_by_handle_at": 265, "execveat": 281,
        "pidfd_open": 434, "pidfd_send_signal": 424, "prctl": 167, "setns": 268, "unshare": 97,
        "kexec_file_load": 294, "kexec_load": 104, "reboot": 142, "name_to_handle_at": 264,
        "seccomp": 277,
    },
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}   # include/uapi/linux/audit.h
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_FILTER_FLAG_TSYNC = 1

# Classic BPF (include/uapi/linux/filter.h); struct seccomp_data: int nr; __u32 arch; ...
BPF_LD_W_ABS = 0x20
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_RET_K = 0x06
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
_SOCK_FILTER = struct.Struct("=HBBI")

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)      # the process's own libc, as pasta.util.netns
_libc.syscall.restype = ctypes.c_long
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

_seccomp_installed = False


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def host_arch(what: str = "sandbox") -> str:
    """This process's syscall ABI: "x86_64" or "aarch64"; SetupError for anything else."""
    machine = os.uname().machine            # what platform.machine() returns, without platform
    if machine not in SYSCALL_NUMBERS:
        raise SetupError(f"{what}: unsupported architecture {machine} "
                         f"(supported: {', '.join(SYSCALL_NUMBERS)})")
    if struct.calcsize("P") != 8:           # a 32-bit interpreter on a 64-bit kernel
        raise SetupError(f"{what}: unsupported 32-bit interpreter on {machine}")
    return machine


def resolve_syscalls(arch: str) -> tuple[dict[str, int], list[str]]:
    """(name -> number for the BLOCKED_SYSCALLS this arch has, names it does not have)."""
    table = SYSCALL_NUMBERS[arch]
    found = {name: table[name] for name in BLOCKED_SYSCALLS if name in table}
    return found, [name for name in BLOCKED_SYSCALLS if name not in table]


def build_filter(arch: str, action: int = SECCOMP_RET_KILL_PROCESS) -> bytes:
    """The seccomp program for `arch`: `action` for the blocked syscalls and foreign ABIs."""
    numbers = sorted(set(resolve_syscalls(arch)[0].values()))
    # (code, jt, jf, k); jt/jf are 0 (next instruction) or a label resolved below.
    prog: list[tuple[int, int | str, int | str, int]] = [
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        (BPF_JMP_JEQ_K, 0, "kill", AUDIT_ARCH[arch]),
        (BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
    ]
    if arch == "x86_64":
        prog += [(BPF_JMP_JEQ_K, "allow", 0, 0xFFFFFFFF),      # -1: a tracer skipping a call
                 (BPF_JMP_JGE_K, "kill", 0, X32_SYSCALL_BIT)]  # the x32 ABI
    prog += [(BPF_JMP_JEQ_K, "kill", 0, nr) for nr in numbers]
    labels = {"allow": len(prog), "kill": len(prog) + 1}
    prog += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, action)]
    out = bytearray()
    for pc, (code, jt, jf, k) in enumerate(prog):
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


def kill_action(arch: str) -> int:
    """SECCOMP_RET_KILL_PROCESS if this kernel has it (4.14+), else SECCOMP_RET_KILL_THREAD."""
    action = ctypes.c_uint32(SECCOMP_RET_KILL_PROCESS)
    if _seccomp(arch, SECCOMP_GET_ACTION_AVAIL, 0, action) == 0:
        return SECCOMP_RET_KILL_PROCESS
    return SECCOMP_RET_KILL_THREAD


def install_seccomp() -> list[str]:
    """Install the filter on every thread of this process; returns the names not mapped here."""
    global _seccomp_installed
    if _seccomp_installed:
        raise SetupError("seccomp: the filter is already installed")
    arch = host_arch("seccomp")
    missing = resolve_syscalls(arch)[1]
    prog = build_filter(arch, kill_action(arch))
    _step("seccomp", "PR_SET_NO_NEW_PRIVS", _misc.set_no_new_privs)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // _SOCK_FILTER.size, ctypes.addressof(buf))
    ret = _seccomp(arch, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, fprog)
    if ret < 0:
        raise SetupError(f"seccomp: install filter: {os.strerror(ctypes.get_errno())}")
    if ret > 0:     # TSYNC: the id of a thread whose filters are not an ancestor of ours
        raise SetupError(f"seccomp: install filter: thread {ret} has a seccomp filter of its own")
    _seccomp_installed = True
    return missing


def _step(prefix: str, what: str, fn, *args) -> None:
    """Run one step; an OSError becomes SetupError("<prefix>: <what>: <strerror>")."""
    try:
        fn(*args)
    except OSError as e:
        # pasta.util.netns puts its own prefix in e.strerror: rebuild the message from errno.
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise SetupError(f"{prefix}: {what}: {reason}") from None


def _check_keep_paths(keep_paths: Iterable[str]) -> tuple[str, ...]:
    keep = tuple(keep_paths)
    for path in keep:
        if not path.startswith("/") or os.path.normpath(path) != path or path in ("/", "/tmp") \
                or path.startswith("/tmp/"):
            raise ValueError(f"sandbox: a kept path must be absolute, normal, not / or under "
                             f"/tmp: {path!r}")
    return keep


def _inside(path: str, dirs: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in dirs)


def _resolv_conf_extra(keep: tuple[str, ...]) -> tuple[str, ...]:
    """realpath(/etc/resolv.conf) if it must be bound on its own, else ()."""
    try:
        real = os.path.realpath(RESOLV_CONF, strict=True)
    except OSError:
        return ()           # no resolv.conf (or a dangling link): nothing to keep
    return () if _inside(real, keep) else (real,)


def _make_target(src: str, dst: str) -> None:
    """A directory or an empty file at `dst` to mount `src` onto, with its parents."""
    if os.path.isdir(src):
        os.makedirs(dst, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _make_slave_if_mounted(path: str) -> None:
    try:
        netns.mount(None, path, None, netns.MS_SLAVE | netns.MS_REC)
    except OSError as e:
        if e.errno != errno.EINVAL:     # EINVAL: not a mount point, nothing to change
            raise


def _bind_read_only(src: str) -> None:
    """add_mount() of sandbox.c: `src` onto /tmp`src`, recursive, slave, read-only."""
    dst = "/tmp" + src
    _step("sandbox", f"keep {src}", os.stat, src)
    _step("sandbox", f"create mount point for {src}", _make_target, src, dst)
    # The source here is the new namespace's copy: this changes nothing outside.
    _step("sandbox", f"make {src} a slave mount", _make_slave_if_mounted, src)
    _step("sandbox", f"bind {src}", netns.mount, src, dst, None, MS_BIND | netns.MS_REC)
    _step("sandbox", f"make {src} a slave mount", netns.mount, None, dst, None,
          netns.MS_SLAVE | netns.MS_REC)
    _step("sandbox", f"remount {src} read-only", netns.mount, None, dst, None,
          MS_REMOUNT | MS_BIND | MS_RDONLY | netns.MS_NOSUID | netns.MS_NODEV | netns.MS_NOEXEC)


def _pivot_root(arch: str, new_root: str, put_old: str) -> None:
    if _libc.syscall(ctypes.c_long(SYSCALL_NUMBERS[arch]["pivot_root"]),
                     ctypes.c_char_p(new_root.encode()), ctypes.c_char_p(put_old.encode())) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _umount2(target: str, flags: int) -> None:
    if _libc.umount2(target.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _clear_ambient() -> None:
    try:
        _caps.cap_ambient_clear_all()
    except OSError as e:
        if e.errno != errno.EINVAL:     # EINVAL: no ambient capabilities (Linux < 4.3)
            raise


def _drop_privileges() -> None:
    nbs = _caps.Cap.NET_BIND_SERVICE
    _step("sandbox", "PR_SET_NO_NEW_PRIVS", _misc.set_no_new_privs)
    _step("sandbox", "clear ambient capabilities", _clear_ambient)
    # limit(): PR_CAPBSET_DROP for every capability pyprctl knows and those the kernel has beyond.
    _step("sandbox", "drop bounding capabilities", _caps.capbset.limit, nbs)
    _step("sandbox", "capset", _caps.CapState(effective={nbs}, permitted={nbs},
                                              inheritable={nbs}).set_current)


def enter_sandbox(keep_paths: Iterable[str] = KEEP_PATHS_DEFAULT) -> None:
    """Confine this (single-threaded) process as slirp4netns's create_sandbox() does.

    Needs CAP_SYS_ADMIN over the current mount namespace (root, or root in the user namespace
    joined before, as slirp4netns does for rootless runs). Must come before install_seccomp().
    """
    keep = _check_keep_paths(keep_paths)
    if _seccomp_installed:
        raise SetupError("sandbox: must be entered before the seccomp filter is installed "
                         "(the filter kills unshare and mount)")
    arch = host_arch("sandbox")
    threads = netns.wait_single_threaded()
    if threads != 1:
        raise SetupError(f"sandbox: needs a single-threaded process, found {threads} threads "
                         "(unshare(CLONE_NEWNS) would move only the calling thread)")
    extra = _resolv_conf_extra(keep)

    _step("sandbox", "unshare(CLONE_NEWNS)", netns.unshare, netns.CLONE_NEWNS)
    # Before anything is mounted: from here no mount event of ours reaches the caller's mounts.
    _step("sandbox", "make / a slave mount", netns.mount, None, "/", None,
          netns.MS_REC | netns.MS_SLAVE)
    _step("sandbox", "mount tmpfs on /tmp", netns.mount, "tmpfs", "/tmp", "tmpfs",
          netns.MS_NOSUID | netns.MS_NODEV | netns.MS_NOEXEC, TMPFS_OPTIONS)
    _step("sandbox", "mkdir /tmp/old", os.mkdir, "/tmp/old", 0o755)
    for src in keep + extra:
        _bind_read_only(src)
    _step("sandbox", "chdir /tmp", os.chdir, "/tmp")
    _step("sandbox", "pivot_root", _pivot_root, arch, ".", "old")
    _step("sandbox", "chdir /", os.chdir, "/")
    _step("sandbox", "umount /old", _umount2, "/old", MNT_DETACH)
    _step("sandbox", "rmdir /old", os.rmdir, "/old")
    try:
        netns.mount(None, "/", None, MS_REMOUNT | MS_RDONLY | netns.MS_NOSUID | netns.MS_NODEV
                    | netns.MS_NOEXEC)
    except OSError:
        pass        # as slirp4netns: the root is a 1 KiB tmpfs holding only mount points
    _drop_privileges()
