"""A real Linux guest under QEMU for the passt-mode tests, driven over a serial command channel.

Purpose: boot Debian 12's kernel with a busybox initramfs under Debian 12's QEMU 7.2 and run
shell commands in it, so tests can check pypasta's passt mode against a real guest network stack
(DHCP, NDP, TCP, UDP) rather than only against frames they build themselves.

Set-up: `tests/install-deps.sh` step 8 builds GUEST_DIR once: `vmlinuz` (linux-image-6.1.0-N-amd64,
never installed) and `vmlinux` (the same kernel unpacked: an ELF with a PVH entry, which QEMU starts
without the 3 s TCG takes to decompress vmlinuz), `initramfs.cpio` (static busybox, the
virtio-net modules, guest_init.sh as /init, guest_udhcpc.sh as udhcpc's script, guestnet.c
built static with guest_udhcpc6.sh as its DHCPv6 script) and `sources.sha256` (the checkout
files it was built from).
`check_setup()` fails, never skips, when QEMU or an asset is missing or the initramfs was built
from other versions of those files, and says to run that script.

Theory of operation
-------------------
`Guest(workdir, netdev_args, popen_prefix, pass_fds)` builds the QEMU command line:

    qemu-system-x86_64 -nodefaults -display none -no-reboot -machine pc,accel=tcg -cpu max
        -m 256 -smp 1 -kernel vmlinux -initrd initramfs.cpio -append 'console=ttyS0 panic=-1 quiet'
        -serial file:WORKDIR/guest-N-console.log                       ttyS0: console, kernel log
        -chardev socket,id=pypasta-cmd,fd=FD -serial chardev:pypasta-cmd   ttyS1: command channel
        NETDEV_ARGS  (default `-nic none`)

TCG, because /dev/kvm on these machines may be kvm_pvm, which boots no stock kernel
(passt-mode.md section 8): KVM (`accel=kvm`) is used only when /dev/kvm is usable and
/sys/module/kvm_pvm is absent; PYPASTA_GUEST_ACCEL=tcg|kvm overrides. `panic=-1` with
`-no-reboot` turns a guest panic into a QEMU exit, which every wait notices.

The command channel is one end of a socketpair, given to QEMU as an already connected socket
chardev (the other end stays here). Nothing the guest writes is lost before we read it (no
listening socket to connect to in time, no path), and the end of QEMU is an end of file. start()
runs QEMU through `popen_prefix`: an argv prefix such as `Netns.argv([])`'s
`["ip", "netns", "exec", NAME]` (run with subprocess.Popen, own session), or a callable that
starts a process the way `Topology.host_popen`/`Netns.popen` do, called as
`popen(argv, stdin=..., stdout=..., stderr=..., pass_fds=...)` (bind `user=` or `name=` with
functools.partial). Extra fds for the network (`-netdev socket,fd=N`) go in `pass_fds`.

The protocol (guest_init.sh has the guest side): the guest prints `__PYPASTA_GUEST_READY__ UPTIME`
once the channel is ready (wait_ready() reads it: the readiness signal, no sleep). run() sends
`ID LIMIT BASE64(cmd)` on one line, ID fresh random hex; the guest runs `sh` on the command under
`timeout -s KILL LIMIT` and replies `__OUT__ ID NBYTES`, exactly NBYTES of output (stdout and
stderr together), `__END__ ID RC`. The length framing and the fresh ID mean no output can pass for a
marker, and a reply left over from a command that timed out is skipped. Commands run one at a
time with stdin /dev/null; `server >LOG 2>&1 &` returns at once and leaves the server running.

Every wait is bounded: reads use the socket timeout in slices of POLL_S, checking between them
that QEMU still runs. A reply that never comes marks the channel broken (later calls fail at
once); a command that the guest killed at its limit (rc 137 after LIMIT seconds) raises
GuestTimeout and the channel stays usable. Failures quote the console tail and QEMU's stderr.
poweroff() runs `poweroff -f` and waits for QEMU to exit 0 with "reboot: Power down" on the
console; kill() (and leaving the `with` block) kills QEMU and its descendants whatever the state,
printing the console tail if an exception is on its way out.

Limits and not handled
----------------------
- One command at a time; not thread-safe. A command line (base64) is at most MAX_LINE_BYTES:
  the guest reads it through a tty whose buffers drop what overflows them. Move larger data over
  the network.
- Output is collected in guest RAM (256 MiB in all) and crosses a 16550 UART at roughly 350 KB/s
  under TCG: checksum large data in the guest rather than returning it.
- Boot to the banner takes about 2 s under TCG on an idle 2-core machine (5.5 s from vmlinuz),
  more under load: BOOT_TIMEOUT_S is generous.
- Guest tools: busybox 1.35's applets (udhcpc, TCP-only nc with -l, ping/ping6, nslookup,
  httpd, wget (may crash: static glibc, no NSS), md5sum/sha256sum, ip; no udhcpc6) and
  `guestnet` (guestnet.c: `dhcp6 IFNAME`, `udp-echo ADDR PORT`, `udp-ping ADDR PORT COUNT SIZE`).
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from . import env
from .proc import WaitTimeout, kill_all

GUEST_DIR = "/var/cache/pypasta-test/guest"
KERNEL = f"{GUEST_DIR}/vmlinux"             # PVH entry; `kernel=KERNEL_BZIMAGE` boots vmlinuz
KERNEL_BZIMAGE = f"{GUEST_DIR}/vmlinuz"
INITRAMFS = f"{GUEST_DIR}/initramfs.cpio"
SOURCES = f"{GUEST_DIR}/sources.sha256"      # "sha256  tests/helpers/FILE" per line
QEMU = "qemu-system-x86_64"
APPEND = "console=ttyS0 panic=-1 quiet"
MEMORY_MIB = 256

READY_MARKER = b"__PYPASTA_GUEST_READY__"
OUT_MARKER = b"__OUT__"
END_MARKER = b"__END__"
BOOT_TIMEOUT_S = 90.0           # TCG on a loaded 2-core machine; about 2 s when idle
REPLY_GRACE_S = 10.0            # beyond a command's limit: the kill, the reply's first bytes
OUTPUT_RATE_BPS = 100_000       # a pessimistic UART rate, to bound the transfer of NBYTES
POWEROFF_TIMEOUT_S = 30.0
POLL_S = 0.5                    # a socket-timeout slice between checks that QEMU still runs
MAX_LINE_BYTES = 16384
KILLED_RC = 128 + 9             # `timeout -s KILL` in the guest
TAIL_BYTES = 4000

Popen = Callable[..., subprocess.Popen]


class GuestError(AssertionError):
    """The guest or QEMU failed; the message ends with the console tail and QEMU's stderr."""


class GuestTimeout(GuestError, WaitTimeout):
    """A bounded wait on the guest ran out."""


class GuestCommandError(GuestError):
    """check(): a command exited non-zero."""

    def __init__(self, message: str, rc: int, output: str):
        super().__init__(message)
        self.rc = rc
        self.output = output


def problems() -> list[str]:
    """What is missing for a guest, one line each (empty when all is well)."""
    found = []
    if env.which(QEMU) is None:
        found.append(f"{QEMU} not found (Debian package qemu-system-x86)")
    for path in (KERNEL, KERNEL_BZIMAGE, INITRAMFS, SOURCES):
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            found.append(f"{path} missing (the test guest)")
    if os.path.isfile(SOURCES):
        for line in Path(SOURCES).read_text().splitlines():
            digest, _, rel = line.partition("  ")
            try:
                now = hashlib.sha256((env.REPO_ROOT / rel).read_bytes()).hexdigest()
            except OSError:
                now = "(unreadable)"
            if now != digest:
                found.append(f"{INITRAMFS} was built from another {rel} than this checkout's")
    return found


def check_setup() -> None:
    """Fail (never skip) with what is missing and how to fix it."""
    env.require_setup("the QEMU test guest", problems())


def accel_args() -> list[str]:
    """`-machine`/`-cpu` for this machine: KVM only if it can boot a stock kernel, else TCG."""
    choice = os.environ.get("PYPASTA_GUEST_ACCEL", "")
    if not choice:
        kvm_ok = (not os.path.exists("/sys/module/kvm_pvm")
                  and os.access("/dev/kvm", os.R_OK | os.W_OK))
        choice = "kvm" if kvm_ok else "tcg"
    if choice not in ("kvm", "tcg"):
        raise ValueError(f"PYPASTA_GUEST_ACCEL must be kvm or tcg, not {choice!r}")
    return ["-machine", f"pc,accel={choice}", "-cpu", "max"]


def _opt_path(path: str) -> str:
    """A path as a QEMU option value (commas doubled)."""
    return path.replace(",", ",,")


def _tail(path: str, nbytes: int = TAIL_BYTES) -> str:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"({path}: {exc.strerror})"


class Guest:
    """One QEMU guest and its command channel; see the module docstring. Use as a context
    manager, or call start() and kill() yourself."""

    _count = 0
    # Test seam: a pause halfway through each command line, so that the guest's reader waits
    # for the rest of a line (test_guest_boot.py checks the reader survives signals there).
    send_pause_s = 0.0

    def __init__(self, workdir: str, netdev_args: Sequence[str] = (),
                 popen_prefix: Union[Sequence[str], Popen] = (), pass_fds: Sequence[int] = (),
                 append: str = "", memory_mib: int = MEMORY_MIB, kernel: Optional[str] = None):
        Guest._count += 1
        self.workdir = workdir
        self.netdev_args = list(netdev_args)
        self.popen_prefix = popen_prefix
        self.pass_fds = tuple(pass_fds)
        self.append = f"{APPEND} {append}".strip()
        self.memory_mib = memory_mib
        self.kernel = kernel
        label = f"guest-{os.getpid()}-{Guest._count}"
        self.console_log = os.path.join(workdir, f"{label}-console.log")
        self.qemu_log = os.path.join(workdir, f"{label}-qemu.log")
        self.proc: Optional[subprocess.Popen] = None
        self.boot_s: Optional[float] = None          # QEMU start → banner, seen from here
        self.ready_uptime_s: Optional[float] = None  # the guest's uptime in the banner
        self._sock: Optional[socket.socket] = None
        self._buf = b""
        self._broken: Optional[str] = None
        self._started_at = 0.0

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"Guest(pid={pid}, console={self.console_log!r})"

    def __enter__(self) -> "Guest":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # A GuestError carries these logs already.
        if exc_type is not None and not issubclass(exc_type, GuestError) and self.proc is not None:
            print(f"--- {self.console_log} (tail) ---\n{self.console_tail()}\n"
                  f"--- {self.qemu_log} (tail) ---\n{_tail(self.qemu_log)}", file=sys.stdout)
        self.kill()

    # --- lifecycle ---------------------------------------------------------------------------------

    def argv(self, chan_fd: int) -> list[str]:
        """The QEMU command line, with the command channel on `chan_fd`."""
        return [QEMU, "-nodefaults", "-display", "none", "-no-reboot", *accel_args(),
                "-m", str(self.memory_mib), "-smp", "1",
                "-kernel", self.kernel or KERNEL, "-initrd", INITRAMFS, "-append", self.append,
                "-serial", f"file:{_opt_path(self.console_log)}",
                "-chardev", f"socket,id=pypasta-cmd,fd={chan_fd}",
                "-serial", "chardev:pypasta-cmd",
                *(self.netdev_args or ["-nic", "none"])]

    def start(self) -> "Guest":
        """Start QEMU (returns at once; wait_ready() waits for the guest)."""
        if self.proc is not None:
            raise RuntimeError("this guest was already started")
        check_setup()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        kw = dict(stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                  pass_fds=(theirs.fileno(), *self.pass_fds))
        try:
            argv = self.argv(theirs.fileno())
            with open(self.qemu_log, "wb") as log:
                kw["stdout"] = log
                self._started_at = time.monotonic()
                if callable(self.popen_prefix):
                    self.proc = self.popen_prefix(argv, **kw)
                else:
                    self.proc = subprocess.Popen([*self.popen_prefix, *argv],
                                                 start_new_session=True, **kw)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        return self

    def wait_ready(self, timeout: float = BOOT_TIMEOUT_S) -> float:
        """Wait for the guest's banner; return the seconds from QEMU's start to it."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        line = self._read_until(lambda: self._take_line(READY_MARKER), deadline,
                                "the guest's command channel banner")
        self.boot_s = time.monotonic() - self._started_at
        try:
            self.ready_uptime_s = float(line.split()[1])
        except (IndexError, ValueError):
            self.ready_uptime_s = None
        return self.boot_s

    def poweroff(self, timeout: float = POWEROFF_TIMEOUT_S) -> int:
        """Power the guest off (`poweroff -f`) and wait for QEMU to exit 0; return its status."""
        __tracebackhide__ = True
        self._send(secrets.token_hex(8), 1, "sync; poweroff -f")
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GuestTimeout(self._with_logs(
                f"QEMU still runs {timeout:g} s after `poweroff -f`")) from None
        if rc != 0 or "reboot: Power down" not in self.console_tail():
            raise GuestError(self._with_logs(
                f"QEMU exited with status {rc} after `poweroff -f`"
                + ("" if rc != 0 else ", but the console shows no 'reboot: Power down'")))
        self.kill()
        return rc

    def kill(self) -> list[int]:
        """Kill QEMU and its descendants (whatever the state) and close the channel; return
        the pids that survived SIGKILL (normally none)."""
        left: list[int] = []
        if self.proc is not None:
            left = kill_all([self.proc], term_grace=0.5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._broken = self._broken or "the guest was killed"
        return left

    # --- commands ----------------------------------------------------------------------------------

    def run(self, cmd: str, timeout: float = 30.0) -> tuple[int, str]:
        """Run the shell command `cmd` in the guest; return (exit status, stdout+stderr).

        The guest kills the command after `timeout` seconds (rounded up), which raises
        GuestTimeout; output is decoded as UTF-8 with replacement.
        """
        __tracebackhide__ = True
        rc, out = self.run_bytes(cmd, timeout)
        return rc, out.decode("utf-8", "replace")

    def run_bytes(self, cmd: str, timeout: float = 30.0) -> tuple[int, bytes]:
        """run(), with the output as bytes, exactly as the guest wrote them."""
        __tracebackhide__ = True
        limit = max(1, math.ceil(timeout))
        cmd_id = secrets.token_hex(8)
        sent = time.monotonic()
        self._send(cmd_id, limit, cmd)
        header = OUT_MARKER + b" " + cmd_id.encode() + b" "
        what = f"the reply to {cmd!r}"
        try:
            line = self._read_until(lambda: self._take_line(header), sent + limit + REPLY_GRACE_S,
                                    what)
            nbytes = int(line.split()[2])
            deadline = time.monotonic() + REPLY_GRACE_S + nbytes / OUTPUT_RATE_BPS
            out = self._read_until(lambda: self._take_bytes(nbytes), deadline, what)
            end = self._read_until(lambda: self._take_line(END_MARKER), deadline, what)
        except GuestTimeout:
            self._broken = f"no reply to {cmd!r} within {limit} s + {REPLY_GRACE_S:g} s"
            raise
        parts = end.split()
        if len(parts) != 3 or parts[1] != cmd_id.encode() or not parts[2].isdigit():
            self._broken = f"a malformed end of reply to {cmd!r}: {end!r}"
            raise GuestError(self._with_logs(self._broken))
        rc = int(parts[2])
        if rc == KILLED_RC and time.monotonic() - sent >= limit:
            tail = out[-2000:].decode("utf-8", "replace")
            raise GuestTimeout(self._with_logs(
                f"the guest killed {cmd!r} after its limit of {limit} s; output tail:\n{tail}"))
        return rc, out

    def check(self, cmd: str, timeout: float = 30.0) -> str:
        """run(), raising GuestCommandError (with the console tail) unless it exits 0."""
        __tracebackhide__ = True
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestCommandError(self._with_logs(
                f"guest command {cmd!r} exited with status {rc}; output:\n{out[-4000:]}"),
                rc, out)
        return out

    def console_tail(self, nbytes: int = TAIL_BYTES) -> str:
        """The last `nbytes` of the guest's console (kernel messages and /init's)."""
        return _tail(self.console_log, nbytes)

    # --- the channel -------------------------------------------------------------------------------

    def _with_logs(self, message: str) -> str:
        state = "not started" if self.proc is None else (
            "running" if self.proc.poll() is None else f"exited with status {self.proc.returncode}")
        return (f"{message}\n(QEMU pid {self.proc.pid if self.proc else '-'}, {state})\n"
                f"--- console tail ({self.console_log}) ---\n{self.console_tail()}\n"
                f"--- QEMU's output ({self.qemu_log}) ---\n{_tail(self.qemu_log, 2000)}")

    def _send(self, cmd_id: str, limit: int, cmd: str) -> None:
        __tracebackhide__ = True
        if self._broken:
            raise GuestError(self._with_logs(f"the command channel is unusable: {self._broken}"))
        if self._sock is None:
            raise RuntimeError("the guest is not started")
        line = f"{cmd_id} {limit} {base64.b64encode(cmd.encode()).decode()}\n".encode()
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"command too long for the channel: {len(line)} bytes encoded, "
                             f"at most {MAX_LINE_BYTES}")
        self._sock.settimeout(REPLY_GRACE_S)
        try:
            if self.send_pause_s:
                self._sock.sendall(line[:len(line) // 2])
                time.sleep(self.send_pause_s)
                line = line[len(line) // 2:]
            self._sock.sendall(line)
        except OSError as exc:
            self._broken = f"sending a command failed: {exc!r}"
            raise GuestError(self._with_logs(self._broken)) from None

    def _take_line(self, prefix: bytes) -> Optional[bytes]:
        """The first complete line of the buffer that starts with `prefix` (consumed, with all
        before it), or None."""
        start = 0
        while True:
            at = self._buf.find(prefix, start)
            if at < 0:
                return None
            if at == 0 or self._buf[at - 1:at] == b"\n":
                end = self._buf.find(b"\n", at)
                if end < 0:
                    return None
                line = self._buf[at:end]
                self._buf = self._buf[end + 1:]
                return line
            start = at + 1

    def _take_bytes(self, nbytes: int) -> Optional[bytes]:
        if len(self._buf) < nbytes:
            return None
        out, self._buf = self._buf[:nbytes], self._buf[nbytes:]
        return out

    def _read_until(self, take: Callable[[], Optional[bytes]], deadline: float, what: str) -> bytes:
        """Read the channel until take() returns something, QEMU ends, or the deadline passes."""
        __tracebackhide__ = True
        if self._sock is None or self.proc is None:
            raise RuntimeError("the guest is not started")
        while True:
            got = take()
            if got is not None:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestTimeout(self._with_logs(f"timed out waiting for {what}"))
            self._sock.settimeout(min(left, POLL_S))
            try:
                data = self._sock.recv(1 << 16)
            except socket.timeout:
                data = None
            if data == b"" or (data is None and self.proc.poll() is not None):
                self._broken = "QEMU ended"
                self.proc.poll()
                raise GuestError(self._with_logs(f"QEMU ended while waiting for {what}"))
            if data:
                self._buf += data
