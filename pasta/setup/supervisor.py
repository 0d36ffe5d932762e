"""Supervisor: create or join the namespaces, set up the tap, run the command or daemonize, and
exit when the command or the namespace goes away.

Theory of operation:
- Spawn mode (`pypasta [OPTIONS] [COMMAND]`, pasta-reference.md 4.1). While still single-threaded,
  pypasta switches to the final uid/gid (`--runas`), creates a user namespace mapping that uid/gid
  to 0 (`0 <uid> 1`), and unshares a PID namespace for its children. The forked child becomes PID 1
  there, unshares net, mount, uts and ipc, mounts a fresh /proc, allows ping sockets for gid 0,
  sets the hostname (`-H NAME`, else `pasta-<host>`), reports "namespaces ready" on a pipe and blocks on a second
  pipe. The parent opens the child's netns, creates and configures the tap through `ns_call`
  threads, writes the PID file, and only then releases the child, which execs the command (or
  `$SHELL` as a login shell). pypasta's exit status is the command's (128+N for signal N). The
  child has PR_SET_PDEATHSIG(SIGKILL), so it never outlives pypasta; SIGINT, SIGHUP and SIGTERM to
  pypasta kill the namespace's PID 1 (its init ignores signals it has no handler for) and exit.
- Attach modes (PID, `--netns PATH|NAME`, `--userns PATH`, `--netns-only`, 4.2): join the user
  namespace if there is one to join, open the netns, set up the tap, and unless `-f`, fork: the
  foreground process writes the daemon's PID to `--pid` and exits 0 only after everything is
  configured; the daemon calls setsid() and puts /dev/null on stdin/stdout/stderr (Podman reads
  the pipes to EOF). The daemon exits 0 on SIGTERM/SIGQUIT, when the netns file is deleted or
  unmounted, or when the target PID exits (`nswatch`).
- Confinement (`pasta.setup.isolation`, as pasta's isolate_prefork/isolate_postfork): once
  everything is open (tap, listeners, /proc/net files, log, pcap and PID files, a front end's
  sockets through `on_ready`), the process detaches IPC, UTS and mount namespaces (and PID when
  it daemonizes), pivots to an empty root, and in the process that runs the loop drops every
  capability but CAP_NET_BIND_SERVICE, sets no_new_privs and non-dumpable and installs the
  seccomp allow-list (`--no-seccomp` leaves the filter out, for debugging). Spawn mode confines
  before it releases the command, so no frame is handled unconfined.
- Started as real root without `--runas`: the set-up runs as root (the new user namespace maps
  root to root, and nobody to nobody; /dev/net/tun may be 0600 as on some machines), then the
  translator switches to nobody (65534) as it confines itself; the command keeps uid 0. In
  spawn mode it keeps CAP_KILL in that user namespace, the only way a nobody process can end
  a root command (SIGTERM handling and the command's PR_SET_PDEATHSIG both need it). pasta
  switches before its set-up, which fails on this kind of machine ("Could not open
  /proc/self/uid_map"), and makes the command nobody too. `--runas` drops privileges first,
  as in pasta.
- Options whose behaviour belongs to a part of the translator not built yet are refused up front by
  `check_supported()` with "not supported yet: OPTION".

Invariants: user namespaces are created or joined before any thread exists; every thread used for
namespace work has ended before fork(); nothing persists after exit (the tap is not persistent,
the PID namespace dies with its PID 1, no temporary files).
"""

from __future__ import annotations

import os
import pwd
import resource
import signal
import socket

# Everything is imported up front: after --runas drops privileges the installation (e.g. a
# site-packages under /root) may no longer be readable.
from pasta.plan import netplan
from pasta.setup import isolation, netlink, tapdev
from pasta.util import log, netns
from pasta.shell.engine import Engine, child_exit_status
from pasta.util.errors import NotSupportedYet, SetupError
from pasta.util.lazyimport import submodule
from pasta.setup.nswatch import NsWatch
from pasta.shell import control
from pasta.shell.link import PasstTap
from pasta.shell.translator import Translator, read_resolv_conf

pyprctl = submodule("pyprctl", "misc")         # prctl() wrappers; not the capability API

# Options that request behaviour of translator parts not built yet (canonical long names).
_NOT_YET: dict = {}


def check_supported(cfg) -> None:
    """Refuse options whose behaviour is not built yet, naming the first one."""
    for name in sorted(cfg.given):
        if name in _NOT_YET:
            raise NotSupportedYet(f"--{name}", _NOT_YET[name])


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _close_inherited(keep: set[int]) -> None:
    """Close every fd above 2 except `keep` (pasta never uses inherited fds)."""
    lo = 3
    for fd in sorted(keep | {1 << 20}):
        if fd >= lo:
            os.closerange(lo, min(fd, 1 << 20))
            lo = fd + 1


def _ids(cfg) -> tuple[int, int]:
    return cfg.runas if cfg.runas else (os.geteuid(), os.getegid())


def _nobody(cfg):
    """(uid, gid) of nobody if the translator must switch to it after set-up (started as real
    root, in the initial user namespace, without --runas), else None."""
    if cfg.runas or os.geteuid() != 0 or not netns.in_init_userns():
        return None
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return isolation.NOBODY, isolation.NOBODY


def _switch_target(nobody):
    """Where a translator started as root goes once it joined a user namespace: nobody if
    that namespace maps 65534, else the namespace's root if it is not the host's root (the
    unprivileged owner of a rootless container's namespace), else None (stays as it is).
    Read from /proc/self/uid_map, so before the root goes away."""
    if nobody is None or netns.in_init_userns():
        return nobody
    try:
        with open("/proc/self/uid_map") as f:
            umap = [tuple(map(int, line.split())) for line in f if line.strip()]
        with open("/proc/self/gid_map") as f:
            gmap = [tuple(map(int, line.split())) for line in f if line.strip()]
    except (OSError, ValueError):
        return None

    def inside(m, ident):
        return any(first <= ident < first + count for first, _, count in m)

    if inside(umap, isolation.NOBODY) and inside(gmap, isolation.NOBODY):
        return isolation.NOBODY, isolation.NOBODY
    root_out = next((out for first, out, _ in umap if first == 0), 0)
    if root_out != 0 and inside(gmap, 0):
        return 0, 0
    return None


def _confine(cfg, netns_fd, nobody, keep_kill: bool = False) -> None:
    """isolation.isolate_postfork() with the options; the debug probe's output goes to the log."""
    isolation.isolate_postfork(netns_fd, nobody, seccomp=not cfg.no_seccomp, keep_kill=keep_kill)


def _switch_ids(uid: int, gid: int) -> None:
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.setgroups([])
    except PermissionError:
        pass
    try:
        os.setgid(gid)
        os.setuid(uid)
    except OSError as e:
        raise SetupError(f"Can't set user and group to {uid}:{gid}: {e.strerror}") from None
    # A credential change clears the dumpable flag, which makes /proc/self/{uid,gid}_map owned
    # by root: we could not write our own new user namespace's maps.
    pyprctl.set_dumpable(True)


def _open_pidfile(cfg) -> int:
    if not cfg.pid_file:
        return -1
    try:
        return os.open(cfg.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise SetupError(f"Couldn't open PID file {cfg.pid_file}: {e.strerror}") from None


def _write_pidfile(fd: int, pid: int) -> None:
    if fd < 0:
        return
    try:
        os.write(fd, f"{pid}\n".encode())
        os.close(fd)
    except OSError as e:
        raise SetupError(f"Failed to write PID file: {e.strerror}") from None


def _startup(cfg, keep_fds: set) -> None:
    """What every run does first, single-threaded: malloc's arena limit, inherited fds other
    than `keep_fds` and `--fd` closed, logging, parse-time warnings, options not built yet
    refused, the fd limit raised, SIGPIPE ignored (a client or stderr gone is an EPIPE)."""
    isolation.isolate_initial()
    _close_inherited(keep_fds | ({cfg.tap_fd} if cfg.tap_fd is not None else set()))
    log.setup(cfg)
    for w in cfg.warnings:
        log.warn(w)
    check_supported(cfg)
    _raise_nofile()
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def run(cfg, on_ready=None, on_confined=None, keep_fds=()) -> int:
    """Entry point from the CLI: returns the exit status.

    Front ends, attach mode only: `on_ready(engine, translator)` runs once the tap is set up
    and the translator exists, before confinement and daemonizing (the slirp4netns front end
    binds its API socket and adds its exit fd there); `on_confined()` runs in the process that
    runs the loop, once it is confined, just before the loop (it signals its ready fd);
    `keep_fds` are the inherited fds it needs (all others are closed)."""
    _startup(cfg, set(keep_fds))
    plan = netplan.plan(cfg, netlink.host_snapshot())
    for note in plan.notes:
        log.info(note)
    resolv_conf = read_resolv_conf()           # once, before any privilege change (as pasta)
    nobody = _nobody(cfg)
    if nobody is not None:
        log.debug("Started as root: the translator will change to nobody after set-up")
    # -c: bound now, as the starting user and with the filesystem still there (pasta binds it
    # while parsing options); listened on once the translator exists.
    conf_sock = control.sock_unix(cfg.conf_path) if cfg.conf_path else None
    if cfg.spawn:
        return _spawn(cfg, plan, resolv_conf, nobody, conf_sock)
    return _attach(cfg, plan, resolv_conf, nobody, on_ready, on_confined, conf_sock)


# --------------------------------------------------------------------------- shared set-up

def _setup_tap(cfg, plan, netns_fd: int):
    """Create (or adopt) the tap inside the netns and configure it; returns (tap, info)
    (no tap with --splice-only: loopback up only)."""
    if cfg.splice_only:
        return None, netns.ns_call(netns_fd, netlink.configure_ns, plan, cfg, None)
    if cfg.tap_fd is not None:
        tap = tapdev.attach_tap(cfg.tap_fd)
    else:
        tap = netns.ns_call(netns_fd, tapdev.open_tap, plan.ns_ifname, True)
    info = netns.ns_call(netns_fd, netlink.configure_ns, plan, cfg, tap.name)
    log.debug(f"tap {tap.name} ifindex {info['ifindex']} MAC {info['mac']}"
              f" vnet_hdr {tap.vnet_hdr}")
    return tap, info


def _print_summary(cfg, plan, quiet: bool) -> None:
    """Configuration summary (unless quiet) once set-up succeeded."""
    if not quiet:
        if cfg.conf_path:
            log.info(f"Configuration socket: {cfg.conf_path}")
        for line in plan.summary(namespace=cfg.mode != "passt"):
            log.info(line)


def _serve(engine: Engine, translator: Translator) -> int:
    """Run the loop with the translator's tap reader armed; SIGUSR2 logs the counters."""
    translator.start()
    engine.on_signal(signal.SIGUSR2, translator.dump_state)
    try:
        return engine.run()
    finally:
        translator.close()
        if translator.tap is not None:
            translator.tap.close()
        engine.close()


# --------------------------------------------------------------------------- spawn mode

def _spawn(cfg, plan, resolv_conf: str, nobody, conf_sock=None) -> int:
    if not (cfg.debug or cfg.trace):
        log.stderr_level = log.WARN     # as pasta: info goes to syslog/the log file only
    uid, gid = _ids(cfg)
    pidfile = _open_pidfile(cfg)
    _switch_ids(uid, gid)
    netns.assert_single_threaded("creating a user namespace")
    if nobody is not None:
        os.setgroups([])        # setgroups is denied in the new user namespace: drop them now
    try:
        warnings = netns.unshare_userns(uid, gid, also=nobody)
    except OSError as e:
        raise SetupError(f"Couldn't create user namespace: {e.strerror}"
                         " (are unprivileged user namespaces enabled?)") from None
    for w in warnings:
        log.warn(w)
    # A thread cannot be created once pid_for_children differs from the caller's own PID
    # namespace, and threads are how we work inside the netns. So an intermediate child unshares
    # the PID namespace and forks the namespace's PID 1, then exits; as a child subreaper we
    # inherit PID 1 and reap it like our own child.
    pyprctl.set_child_subreaper(True)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    mid = os.fork()
    if mid == 0:
        os.close(ready_r)
        os.close(go_w)
        _intermediate(cfg, ready_w, go_r)       # never returns
    os.close(ready_w)
    os.close(go_r)
    pid = 0
    try:
        os.waitpid(mid, 0)
        # Lines "P<pid>" (intermediate), "R" or "E<reason>" (PID 1), in either order: each is
        # one write() below PIPE_BUF, so they never interleave.
        lines = _read_all(ready_r).decode(errors="replace").splitlines()
        pid = next((int(l[1:]) for l in lines if l.startswith("P")), 0)
        errs = [l[1:] for l in lines if l.startswith("E")]
        if errs or "R" not in lines or not pid:
            text = errs[0] if errs else "namespace set-up process died"
            raise SetupError(f"Failed to set up namespaces: {text}")
        netns_fd = netns.open_ns(f"/proc/{pid}/ns/net")
        tap, info = _setup_tap(cfg, plan, netns_fd)
        engine = Engine()
        translator = Translator(cfg, plan, engine, tap, info["mac"], resolv_conf,
                                guest_ll6=info.get("ll"), netns_fd=netns_fd,
                                conf_sock=conf_sock)
    except BaseException:
        if pid:
            _kill_and_reap(pid)
        raise
    _write_pidfile(pidfile, os.getpid())
    _print_summary(cfg, plan, quiet=not (cfg.debug or cfg.trace))
    state = {"done": False}

    def check_child(_sig: int = 0) -> None:
        if state["done"]:
            return
        while True:                      # as a subreaper we may also inherit orphans
            try:
                wpid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                state["done"] = True
                engine.stop(1)
                return
            if wpid == 0:
                return
            if wpid == pid:
                state["done"] = True
                engine.stop(child_exit_status(status))
                return

    def on_term(signum: int) -> None:
        _kill_and_reap(pid)
        state["done"] = True
        engine.stop(0 if signum in (signal.SIGTERM, signal.SIGQUIT) else 128 + signum)

    engine.on_signal(signal.SIGCHLD, check_child)
    for s in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGHUP):
        engine.on_signal(s, on_term)
    engine.defer(check_child)
    tty = _give_terminal(cfg, pid)
    try:
        log.connect_syslog()
        isolation.isolate_prefork(new_pid=False, chroot_fallback=cfg.chroot_fallback)
        # As nobody, the translator can end the command (root) only with CAP_KILL in the user
        # namespace they share: kill() on SIGTERM, and PR_SET_PDEATHSIG, which the kernel
        # checks against the exiting parent's credentials.
        _confine(cfg, netns_fd, nobody, keep_kill=nobody is not None)
    except BaseException:
        _kill_and_reap(pid)
        raise
    if not cfg.debug:
        log.to_stderr = False
    os.write(go_w, b"G")
    os.close(go_w)
    try:
        return _serve(engine, translator)
    finally:
        if not state["done"]:
            _kill_and_reap(pid)
        if tty is not None:
            _take_terminal_back(tty)
        os.close(netns_fd)


_SHELLS = {"sh", "ash", "bash", "dash", "zsh", "ksh", "mksh", "fish", "busybox", "tcsh", "csh"}


def _give_terminal(cfg, pid: int):
    """Give a shell the foreground of our terminal in a process group of its own.

    A job-control shell restores the terminal's original foreground process group when it
    exits; ours is not visible from its PID namespace, so dash fails there ("Cannot set tty
    process group") and exits 2 instead of the user's status. In its own group, the original
    group is its own. Only for shells: any other command stays in our group, so that Ctrl-C
    reaches pypasta, which ends the namespace (its PID 1 ignores signals it has no handler for).
    Returns the terminal fd to restore later, or None.
    """
    argv0 = os.path.basename(cfg.command[0]) if cfg.command else "sh"
    if argv0 not in _SHELLS or (cfg.command and len(cfg.command) > 1 and
                                cfg.command[1] in ("-c",)):
        return None
    try:
        if not os.isatty(0) or os.tcgetpgrp(0) != os.getpgrp():
            return None
        os.setpgid(pid, pid)
        os.tcsetpgrp(0, pid)
        return 0
    except OSError:
        return None


def _take_terminal_back(fd: int) -> None:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
    try:
        os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        out += chunk
    os.close(fd)
    return out


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        # Confined as nobody while the command runs as root: it cannot be signalled from
        # here, and it dies with us (PR_SET_PDEATHSIG), which comes at once.
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _intermediate(cfg, ready_w: int, go_r: int) -> None:
    """Unshare the PID namespace, fork its PID 1, report "P<pid>" and exit.

    PID 1 reports "R" when its namespaces are ready, or "E<reason>"; EOF ends the report.
    """
    try:
        try:
            netns.unshare(netns.CLONE_NEWPID)
        except OSError as e:
            os.write(ready_w, f"E{e.strerror} (unshare PID namespace)\n".encode())
            os._exit(1)
        pid = os.fork()
        if pid == 0:
            _child(cfg, ready_w, go_r)
        os.write(ready_w, f"P{pid}\n".encode())
    except BaseException as e:  # noqa: BLE001 - nothing may escape a forked child
        try:
            os.write(ready_w, f"E{type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(1)
    os._exit(0)


def _child(cfg, ready_w: int, go_r: int) -> None:
    """PID 1 of the new PID namespace: finish the namespaces, wait for the go, exec."""
    code = 1
    try:
        try:
            netns.unshare(netns.CLONE_NEWNET | netns.CLONE_NEWNS | netns.CLONE_NEWUTS |
                          netns.CLONE_NEWIPC)
        except OSError as e:
            os.write(ready_w, f"E{e.strerror} (unshare)\n".encode())
            os._exit(1)
        try:
            netns.mount(None, "/", None, netns.MS_REC | netns.MS_SLAVE)
            netns.mount("proc", "/proc", "proc", netns.MS_NOSUID | netns.MS_NODEV | netns.MS_NOEXEC)
        except OSError as e:
            log.warn(f"Couldn't mount /proc in the new PID namespace: {e.strerror}")
        try:
            with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
                f.write("0 0")
        except OSError as e:
            log.warn(f"Couldn't enable ping sockets in namespace: {e.strerror}")
        if cfg.hostname:                # -H: the namespace's UTS name too (pasta 2026)
            try:
                socket.sethostname(cfg.hostname)
            except OSError:
                log.warn("Unable to set configured hostname")
        else:
            try:
                socket.sethostname(("pasta-" + socket.gethostname())[:64])
            except OSError:
                log.warn("Unable to set pasta-prefixed hostname")
        os.write(ready_w, b"R\n")
        os.close(ready_w)
        if os.read(go_r, 1) != b"G":
            os._exit(1)                  # parent failed or died: never run without networking
        os.close(go_r)
        # Only now is pypasta our parent (we were reparented to it, a child subreaper).
        try:
            pyprctl.set_pdeathsig(signal.SIGKILL)
        except Exception as e:  # noqa: BLE001
            log.warn(f"Couldn't set parent death signal: {e}")
        for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT,
                  signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR2):
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if cfg.command:
            argv = list(cfg.command)
            path = argv[0]
        else:
            path = os.environ.get("SHELL") or "/bin/sh"
            argv = ["-" + os.path.basename(path)]
        try:
            os.execvp(path, argv)
        except OSError as e:
            os.write(2, f"pypasta: Failed to start command or shell: {e.strerror}\n".encode())
    except BaseException as e:  # noqa: BLE001 - nothing may escape a forked child
        try:
            os.write(ready_w, f"E{type(e).__name__}: {e}\n".encode())
        except OSError:
            pass
    os._exit(code)


# --------------------------------------------------------------------------- attach modes

def _detach(cfg, engine: Engine, pidfile: int) -> None:
    """SIGTERM/SIGQUIT (and SIGINT in the foreground) end the loop; syslog and the sandbox's
    first stage while still single-threaded; then, unless `-f`, fork: the parent writes the
    daemon's PID to the PID file and exits 0, the daemon calls setsid() and puts /dev/null on
    stdin, stdout and stderr. With `-f` the PID file gets our own PID."""
    # Handlers before the PID file says we are there (a SIGTERM may follow at once).
    for s in (signal.SIGTERM, signal.SIGQUIT):
        engine.on_signal(s, lambda _s: engine.stop(0))
    if cfg.foreground:
        engine.on_signal(signal.SIGINT, lambda _s: engine.stop(0))
    log.connect_syslog()
    devnull = -1 if cfg.foreground else os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    isolation.isolate_prefork(new_pid=not cfg.foreground, chroot_fallback=cfg.chroot_fallback)
    if cfg.foreground:
        _write_pidfile(pidfile, os.getpid())
        return
    child = os.fork()
    if child:
        _write_pidfile(pidfile, child)
        os._exit(0)
    if pidfile >= 0:
        os.close(pidfile)
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    log.to_stderr = False


def _attach(cfg, plan, resolv_conf: str, nobody, on_ready=None, on_confined=None,
            conf_sock=None) -> int:
    pid = cfg.pid_target
    if pid is not None:
        netns_path = f"/proc/{pid}/ns/net"
        userns = cfg.userns or (None if cfg.netns_only else f"/proc/{pid}/ns/user")
        if not os.path.exists(f"/proc/{pid}"):
            raise SetupError(f"Couldn't open network namespace of PID {pid}: No such process")
    else:
        netns_path = cfg.netns
        userns = None if cfg.netns_only else cfg.userns
    pidfile = _open_pidfile(cfg)
    _switch_ids(*_ids(cfg))
    if userns and not netns.is_own_ns(userns, "user"):
        netns.join_userns(userns)
        nobody = _switch_target(nobody)
    netns_fd = netns.open_ns(netns_path)
    try:
        netns.setns_check(netns_fd)
    except OSError as e:
        why = "not a network namespace" if e.errno == 22 else e.strerror
        raise SetupError(f"Couldn't switch to network namespace {netns_path}: {why}") from None
    tap, info = _setup_tap(cfg, plan, netns_fd)
    engine = Engine()
    translator = Translator(cfg, plan, engine, tap, info["mac"], resolv_conf,
                            guest_ll6=info.get("ll"), netns_fd=netns_fd, conf_sock=conf_sock)
    _print_summary(cfg, plan, quiet=cfg.quiet)

    def gone(reason: str) -> None:
        log.info(f"Namespace {netns_path} is gone ({reason}), exiting")
        engine.stop(0)

    # Everything the loop will use is opened before the root goes away: the watch's pidfd
    # (also before a PID namespace of our own hides the target), its directory fd, syslog,
    # /dev/null for a daemon's stdio, and the front end's sockets.
    watch = None
    if not cfg.no_netns_quit:
        watch = NsWatch(engine, netns_fd, None if pid is not None else netns_path, pid, gone)
    if on_ready is not None:
        on_ready(engine, translator)
    _detach(cfg, engine, pidfile)
    _confine(cfg, netns_fd, nobody)
    if on_confined is not None:
        on_confined()
    try:
        return _serve(engine, translator)
    finally:
        if watch is not None:
            watch.close()
        os.close(netns_fd)


# --------------------------------------------------------------------------- passt mode

GUEST_MAC_UNKNOWN = "ff:ff:ff:ff:ff:ff"     # frames go to broadcast until the guest speaks


def run_passt(cfg, listen_sock=None) -> int:
    """passt mode (`pypasta-passt`, passt.c main() for MODE_PASST): serve a virtual machine over
    a UNIX stream socket. `listen_sock` is the listening socket the front end bound and listened
    on before its heavy imports (None with `--fd`: `cfg.tap_fd` is the connected socket).

    Order, as passt: PID file opened as the starting user; the translator built (listeners
    bound, so a bind failure is a start-up error); a user namespace of its own unless started
    as root (which switches to nobody instead); confinement; then, unless `-f`, fork: the
    parent writes the daemon's PID to `--pid` and exits 0, so its exit means "listening and
    the PID file names the daemon" (QEMU 10.1 and newer libvirt wait for exactly that). The
    daemon calls setsid() and puts /dev/null on stdin/stdout/stderr (libvirt 9.0 closes the
    stderr pipe early; SIGPIPE is ignored and log writes to a dead stderr are dropped)."""
    _startup(cfg, {listen_sock.fileno()} if listen_sock is not None else set())
    if listen_sock is not None:
        log.info(f"UNIX domain socket bound at {cfg.socket_path}")
    plan = netplan.plan(cfg, netlink.host_snapshot())
    for note in plan.notes:
        log.info(note)
    resolv_conf = read_resolv_conf()
    nobody = _nobody(cfg)
    if nobody is not None:
        log.warn("Started as root, will change to nobody.")
    conf_sock = control.sock_unix(cfg.conf_path) if cfg.conf_path else None
    pidfile = _open_pidfile(cfg)
    _switch_ids(*_ids(cfg))
    if listen_sock is not None:
        tap = PasstTap(listen_sock=listen_sock, one_off=cfg.one_off)
    else:
        tap = PasstTap(conn_sock=_adopt_stream(cfg.tap_fd))
    engine = Engine()
    translator = Translator(cfg, plan, engine, tap, GUEST_MAC_UNKNOWN, resolv_conf,
                            conf_sock=conf_sock)
    _print_summary(cfg, plan, quiet=cfg.quiet)
    if listen_sock is not None:
        log.info("")
        log.info("You can now start qemu (>= 7.2, with commit 13c6be96618c):")
        log.info("    kvm ... -device virtio-net-pci,netdev=s -netdev stream,id=s,server=off,"
                 f"addr.type=unix,addr.path={cfg.socket_path}")
        log.info("or qrap, for earlier qemu versions:")
        log.info("    ./qrap 5 kvm ... -net socket,fd=5 -net nic,model=virtio")
    if os.geteuid() != 0:
        # As passt's isolate_user(): a user namespace of our own, for the namespaces and the
        # empty root of the sandbox (pasta mode has the one it created or joined).
        netns.assert_single_threaded("creating a user namespace")
        try:
            for w in netns.unshare_userns(*_ids(cfg)):
                log.warn(w)
        except OSError as e:
            raise SetupError(f"Couldn't create user namespace: {e.strerror}") from None
    _detach(cfg, engine, pidfile)
    _confine(cfg, None, nobody)
    return _serve(engine, translator)


def _adopt_stream(fd: int) -> socket.socket:
    """`--fd N`: a connected UNIX stream socket (QEMU 10.1's socketpair end, qrap's). fd 0 is
    moved above 2 first: a daemon puts /dev/null on its stdin."""
    if fd <= 2:
        try:
            fd = os.dup(fd)
        except OSError as e:
            raise SetupError(f"Invalid --fd {fd}: {e.strerror}") from None
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise SetupError(f"Invalid --fd {fd}: {e.strerror}") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise SetupError(f"--fd {fd} is not a UNIX domain stream socket")
    sock.set_inheritable(False)
    return sock
