"""Namespace primitives: unshare/setns through libc, identity maps, and calls inside a netns.

Purpose: the small set of namespace operations the supervisor needs, with errors turned into
one-line `SetupError`s.

Theory of operation:
- `unshare()` and `setns()` call libc through ctypes (Python 3.11 has neither `os.unshare` nor
  `os.setns`). Creating or joining a *user* namespace only works while the process has one thread;
  `assert_single_threaded()` checks that before we try, so the failure is ours and clear instead of
  the kernel's EINVAL. A Python thread that was joined is not gone yet: `Thread.join()` returns
  when the thread's Python state is released, and the kernel task leaves the thread group (and
  /proc/self/task) a moment later, on a busy machine much later. So the check waits, bounded by
  `THREAD_EXIT_WAIT_S`, for threads that Python no longer runs to finish exiting; only a thread
  that is still alive (or does not exit in time) makes it fail.
- `ns_call(netns_fd, fn, *args)` is the analogue of pasta's NS_CALL: it runs `fn` in a short-lived
  thread that first enters the target network namespace (network namespaces are per thread on
  Linux). Threads share the fd table, so sockets, netlink handles and the tap fd created there stay
  usable by every thread and keep their namespace binding. The main thread never leaves the
  namespace pypasta started in, which matters when running unprivileged: re-entering the original
  netns needs CAP_SYS_ADMIN over it, which a rootless process does not have.
- `NsWorker(netns_fd)`: one long-lived thread that entered the netns once, while the process
  still had the privilege to (setns needs CAP_SYS_ADMIN over the namespace's owner). Isolation
  starts it just before dropping capabilities and installing the seccomp filter: from then on
  `ns_call` on that netns runs in it (sockets are created in the namespace of the thread that
  creates them; no privilege is needed for that), so a confined process never needs setns,
  clone or a capability to open a socket in the namespace. Calls are synchronous and
  serialised; a call that does not come back within `WORKER_CALL_TIMEOUT_S` raises
  RuntimeError (that flow fails, never the process). No fork() may follow its start.
- `write_id_maps()` maps one uid and gid to 0 in a user namespace we just created (pasta's
  `0 <uid> 1` maps, no newuidmap); `unshare_userns()` has them written from outside when they
  also map nobody (real root: the translator switches to it after set-up).

Kernel assumptions: setns(CLONE_NEWNET) from a non-main thread affects only that thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import threading
import time

from pasta.util.errors import SetupError

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19

_libc = ctypes.CDLL(None, use_errno=True)      # the process's own libc; no ldconfig run
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _oserror(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def unshare(flags: int) -> None:
    """unshare(2); raises OSError."""
    if _libc.unshare(flags) != 0:
        raise _oserror("unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) on an open namespace fd; raises OSError."""
    if _libc.setns(fd, nstype) != 0:
        raise _oserror("setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError."""
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise _oserror(f"mount {target}")


def sethostname(name: str) -> None:
    b = name.encode()
    if _libc.sethostname(b, len(b)) != 0:
        raise _oserror("sethostname")


def thread_count() -> int:
    """Kernel-level threads of this process (ctypes or C extensions may start some too)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


THREAD_EXIT_WAIT_S = 5.0


def wait_single_threaded(timeout: float = THREAD_EXIT_WAIT_S) -> int:
    """Wait until the kernel lists only this thread; returns the thread count at the end (1 on
    success). Returns at once while another Python thread is alive: it will not go away."""
    deadline = time.monotonic() + timeout
    delay = 0.0001
    while True:
        n = thread_count()
        if n == 1 or threading.active_count() > 1 or time.monotonic() >= deadline:
            return n
        time.sleep(delay)       # exiting threads need CPU time; no event tells us when done
        delay = min(delay * 2, 0.01)


def assert_single_threaded(what: str) -> None:
    n = wait_single_threaded()
    if n != 1:
        raise SetupError(f"internal error: {what} needs a single-threaded process, found {n} threads")


def in_init_userns() -> bool:
    """True when this process is in the initial user namespace (full 0..2^32-1 uid map)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def write_id_maps(uid: int, gid: int, pid: str = "self", also=None) -> list[str]:
    """Map `uid`/`gid` to 0 in the user namespace of `pid`; returns warnings (pasta only warns).

    `also` = (uid, gid) adds an identity line for them (nobody, for a translator started as
    real root that switches to it after set-up): only a writer privileged in the parent user
    namespace may. setgroups is denied either way: a command that sets groups it cannot map
    (dhcpcd dropping to its own user) then gets the EPERM it copes with, not EINVAL."""
    warnings = []
    umap, gmap = f"0 {uid} 1", f"0 {gid} 1"
    if also is not None:
        umap, gmap = f"{umap}\n{also[0]} {also[0]} 1", f"{gmap}\n{also[1]} {also[1]} 1"
    steps = [("uid_map", umap), ("setgroups", "deny"), ("gid_map", gmap)]
    for name, data in steps:
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(data)
        except OSError as e:
            if name == "setgroups" and e.errno == errno.ENOENT:
                continue
            warnings.append(f"Couldn't configure user mappings ({name}: {e.strerror})")
    return warnings


def unshare_userns(uid: int, gid: int, also=None) -> list[str]:
    """unshare(CLONE_NEWUSER) with `uid`/`gid` mapped to 0 (write_id_maps); returns warnings.

    With `also` the maps have two lines, which only a writer privileged in the parent user
    namespace may write: not this process once it is inside the new one. A child forked
    before, still outside, writes them (as newuidmap would). Raises OSError from unshare."""
    if also is None:
        unshare(CLONE_NEWUSER)
        return write_id_maps(uid, gid)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        try:
            os.close(go_w)
            os.close(out_r)
            if os.read(go_r, 1) == b"U":
                text = "\n".join(write_id_maps(uid, gid, str(os.getppid()), also))
                os.write(out_w, text.encode())
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(out_w)
    try:
        unshare(CLONE_NEWUSER)
        os.write(go_w, b"U")
    finally:
        os.close(go_w)
        out = b""
        while True:
            chunk = os.read(out_r, 4096)
            if not chunk:
                break
            out += chunk
        os.close(out_r)
        os.waitpid(child, 0)
    return [w for w in out.decode(errors="replace").split("\n") if w]


def is_own_ns(path: str, kind: str = "net") -> bool:
    """True if the namespace file `path` is this process's own `kind` namespace."""
    try:
        a, b = os.stat(path), os.stat(f"/proc/self/ns/{kind}")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_ns(path: str, what: str = "network namespace") -> int:
    """Open a namespace file O_RDONLY|O_CLOEXEC with a one-line error on failure."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SetupError(f"Couldn't open {what} {path}: {e.strerror}") from None


def join_userns(path: str) -> None:
    """Join the user namespace at `path` (process must be single-threaded)."""
    assert_single_threaded("joining a user namespace")
    fd = open_ns(path, "user namespace")
    try:
        setns(fd, CLONE_NEWUSER)
    except OSError as e:
        raise SetupError(f"Couldn't switch to user namespace {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _in_thread(name: str, fn, *args, **kwargs):
    """Run fn in a fresh thread and return its result or re-raise its exception here.

    The thread ends before this returns, so the process is single-threaded again afterwards
    (relevant before fork() and before joining a user namespace).
    """
    res: dict = {}

    def body():
        try:
            res["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            res["exc"] = e

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join()
    if "exc" in res:
        raise res["exc"]
    return res.get("value")


WORKER_CALL_TIMEOUT_S = 10.0
_workers: dict = {}             # netns fd -> NsWorker


class NsWorker:
    """A thread living in the netns `netns_fd`, running `ns_call`s for it (see the module)."""

    def __init__(self, netns_fd: int):
        self.netns_fd = netns_fd
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.error: OSError | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), name="ns_worker",
                                       daemon=True)
        self.thread.start()
        if not started.wait(WORKER_CALL_TIMEOUT_S):
            raise SetupError("internal error: the namespace worker thread did not start")
        if self.error is not None:
            raise SetupError(f"Couldn't switch to pasta namespaces: {self.error.strerror}")
        _workers[netns_fd] = self

    def _run(self, started: threading.Event) -> None:
        try:
            setns(self.netns_fd, CLONE_NEWNET)
        except OSError as e:
            self.error = e
            started.set()
            return
        started.set()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fn, args, kwargs, res, done = job
            try:
                res.append(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                res.append(e)
                res.append(None)
            done.set()

    def call(self, fn, *args, **kwargs):
        res: list = []
        done = threading.Event()
        self.jobs.put((fn, args, kwargs, res, done))
        if not done.wait(WORKER_CALL_TIMEOUT_S):
            raise RuntimeError("the namespace worker thread did not answer")
        if len(res) == 2:
            raise res[0]
        return res[0]

    def stop(self) -> None:
        """End the thread (tests; a confined process keeps it until exit)."""
        if _workers.get(self.netns_fd) is self:
            del _workers[self.netns_fd]
        self.jobs.put(None)
        self.thread.join(WORKER_CALL_TIMEOUT_S)


def ns_call(netns_fd: int, fn, *args, **kwargs):
    """Run fn(*args, **kwargs) inside the netns `netns_fd` and return its result: in the
    netns's `NsWorker` if one runs, else in a fresh thread that ends before this returns.

    Exceptions raised by fn propagate to the caller; failing to enter the netns is a SetupError.
    """
    worker = _workers.get(netns_fd)
    if worker is not None:
        return worker.call(fn, *args, **kwargs)

    def body():
        try:
            setns(netns_fd, CLONE_NEWNET)
        except OSError as e:
            raise SetupError(f"Couldn't switch to pasta namespaces: {e.strerror}") from None
        return fn(*args, **kwargs)

    return _in_thread("ns_call", body)


def setns_check(netns_fd: int) -> None:
    """Enter the netns from a throw-away thread, raising the OSError if that fails."""
    _in_thread("setns_check", setns, netns_fd, CLONE_NEWNET)


def same_ns(fd: int, path: str, dir_fd: int | None = None) -> bool:
    """True while `path` (relative to `dir_fd` if given) still refers to the namespace behind
    `fd` (same nsfs inode)."""
    try:
        st = os.stat(path, dir_fd=dir_fd)
    except PermissionError:
        return True            # pasta treats EACCES as "still exists"
    except OSError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)
