"""The epoll loop: fd registry, timer heap, deferred work and signals, for the whole translator.

Theory of operation: one `Engine` per process. Handlers register an fd with `add(fd, events,
handler)`; `handler(events)` is called from the loop. Timers are (deadline, seq, callback) entries
in a heap; `call_at()` returns a `Timer` whose `cancel()` marks it stale, and stale entries are
dropped lazily when they reach the top (cheaper than one timerfd per flow). The earliest deadline
becomes the epoll timeout. Work queued with `defer()` runs once after the current batch of events
(passt's post-handler/deferred free); work that deferred work queues runs in the same loop turn
(rounds until the queue is empty, at most `DEFER_ROUNDS`; anything left then makes the next poll
return at once), and work deferred outside the loop makes the first poll return at once. Signals arrive through `signal.set_wakeup_fd` on a
non-blocking socketpair, so they are handled as ordinary events in the loop, never inside a Python
signal handler.

Fd kinds (passt's EPOLL_TYPE_*, listed once in `FdKind`): every registration names its kind:
`FdKind.NONE` (unnamed), `FdKind.TAP_PASTA` (the tap device), `FdKind.TAP_PASST` (a stream
link), `FdKind.TCP`, `FdKind.TCP_SPLICE`, `FdKind.TCP_LISTEN`, `FdKind.UDP`,
`FdKind.UDP_LISTEN`, `FdKind.PING` (flow and listening sockets), `FdKind.TAP_LISTEN` (passt
mode's listening socket), `FdKind.NSQUIT_PIDFD`,
`FdKind.NSQUIT_INOTIFY` (what ends the process), `FdKind.SIGNAL`, `FdKind.CONTROL_LISTEN`,
`FdKind.CONTROL` (API and control sockets), `FdKind.EXIT` (an exit-fd) and `FdKind.NL_NEIGH`
(the host's neighbour notifier).

States: running -> stopped (after `stop(code)`; `run()` returns the code once the current batch
and its deferred work are finished).

Invariants: an fd is unregistered (`remove`) before it is closed, and may be closed at once: the
rest of the current batch skips events for fds removed during it, so a stale event can never reach
a new socket that reused the number (and registered it again) in the same batch. A handler that
raises is a bug:
it is logged with a traceback, counted in `stats.internal_errors`, and the loop carries on.

`--stats DELAY` (`stats_delay`): events are counted by kind, in pasta's columns
(`EPOLL_TYPE_STR`), and after a batch at least DELAY seconds after the last print the table
goes to stderr as pasta prints it (`stats_text`).

Limits: `now` is read once per batch (`self.now`), so handlers in one batch share a timestamp.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import os
import select
import signal
import socket
import time
import traceback

from pasta.util import log
from pasta.util.stats import Stats

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
EPOLLET = select.EPOLLET
DEFER_ROUNDS = 64       # deferred work that keeps deferring more yields to events after this


class FdKind(enum.IntEnum):
    """What an fd in the epoll set is: passt's EPOLL_TYPE_* list, in one place. Dispatch is
    by the handler registered with the fd (Python's switch); the kind names it for the state
    dump, `pypasta status` and debugging (`Engine.fds_by_kind()`)."""

    NONE = 0
    TAP_PASTA = 1           # the tap device
    TAP_PASST = 2           # a passt-style stream link (a VM's UNIX socket)
    TCP = 3                 # a tap TCP flow's host socket
    TCP_SPLICE = 4          # one side of a spliced TCP pair
    TCP_LISTEN = 5          # a -t or -T listening socket
    UDP = 6                 # a UDP flow's socket (tap flows, spliced reply sockets)
    UDP_LISTEN = 7          # a -u or -U listening socket
    PING = 8                # an ICMP echo flow's ping socket
    NSQUIT_PIDFD = 9        # the spawned command's pidfd
    NSQUIT_INOTIFY = 10     # the namespace file being watched
    SIGNAL = 11             # the signal wake-up socket
    CONTROL_LISTEN = 12     # an API or control socket listening
    CONTROL = 13            # an API or control connection
    EXIT = 14               # an exit-fd (slirp4netns --exit-fd)
    NL_NEIGH = 15           # the host's neighbour notifier (netlink)
    TAP_LISTEN = 16         # passt mode's listening UNIX socket (QEMU connects to it)


# pasta's epoll_type_str[] (passt.c), in its order: the columns of `--stats`.
EPOLL_TYPE_STR = (
    "connected TCP socket", "connected spliced TCP socket", "listening TCP socket", "TCP timer",
    "listening UDP socket", "UDP flow socket", "ICMP/ICMPv6 ping socket",
    "namespace inotify watch", "namespace timer watch", "/dev/net/tun device",
    "connected qemu socket", "listening qemu socket", "vhost-user command socket",
    "vhost-user kick socket", "TCP_REPAIR helper listening socket", "TCP_REPAIR helper socket",
    "netlink neighbour notifier socket", "configuration listening socket",
    "configuration socket")
# Our kinds in those columns (0-based); the pidfd that ends the process stands in for pasta's
# namespace timer watch. Kinds pasta has no column for (signals, exit-fd) are not shown.
_STATS_COLUMN = {FdKind.TCP: 0, FdKind.TCP_SPLICE: 1, FdKind.TCP_LISTEN: 2,
                 FdKind.UDP_LISTEN: 4, FdKind.UDP: 5, FdKind.PING: 6,
                 FdKind.NSQUIT_INOTIFY: 7, FdKind.NSQUIT_PIDFD: 8, FdKind.TAP_PASTA: 9,
                 FdKind.TAP_PASST: 10, FdKind.TAP_LISTEN: 11, FdKind.NL_NEIGH: 16, FdKind.CONTROL_LISTEN: 17,
                 FdKind.CONTROL: 18}


def stats_text(counts, lines_printed: int) -> str:
    """pasta's print_stats(): a staircase header every 20 lines, then one line of counts."""
    out = []
    if not lines_printed % 20:
        for i, name in enumerate(EPOLL_TYPE_STR, 1):
            out.append("".join("|" if j and not j % 7 else " " for j in range(i * 7)) + name)
    out.append(" " + "".join(f" {n:6d}" for n in counts))
    return "\n".join(out) + "\n"


class Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback):
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Engine:
    def __init__(self):
        self.ep = select.epoll()
        self.handlers: dict[int, object] = {}
        self.kinds: dict[int, FdKind] = {}
        self.timers: list = []
        self._seq = itertools.count()
        self.deferred: list = []
        self.signal_handlers: dict[int, object] = {}
        self.exit_code: int | None = None
        self.now = time.monotonic()
        self.stats = Stats()
        self._sig_r = self._sig_w = None
        self._gone: set = set()          # fds removed during the current batch
        self.stats_delay = 0             # --stats DELAY: print event counts to stderr
        self.kind_events = [0] * len(EPOLL_TYPE_STR)
        self._stats_before = float("-inf")
        self._stats_lines = 0

    # --- registry
    def add(self, fd: int, events: int, handler, kind: FdKind = FdKind.NONE) -> None:
        """Register `fd` of `kind`; an OSError from epoll (ENOMEM, ENOSPC) leaves nothing
        behind."""
        self.ep.register(fd, events)
        self.handlers[fd] = handler
        self.kinds[fd] = kind

    def fds_by_kind(self) -> dict:
        """{FdKind: number of registered fds}."""
        out: dict = {}
        for kind in self.kinds.values():
            out[kind] = out.get(kind, 0) + 1
        return out

    def modify(self, fd: int, events: int) -> None:
        self.ep.modify(fd, events)

    def forget(self, fd: int) -> None:
        """Drop `fd` from the registry only: for an fd about to be closed (and never
        duplicated), whose close removes it from the epoll set anyway: one syscall less."""
        if self.handlers.pop(fd, None) is not None:
            self.kinds.pop(fd, None)
            self._gone.add(fd)

    def remove(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.kinds.pop(fd, None)
            self._gone.add(fd)
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    # --- timers and deferred work
    def call_at(self, deadline: float, callback) -> Timer:
        t = Timer(deadline, callback)
        heapq.heappush(self.timers, (deadline, next(self._seq), t))
        return t

    def call_later(self, delay: float, callback) -> Timer:
        return self.call_at(time.monotonic() + delay, callback)

    def defer(self, callback) -> None:
        self.deferred.append(callback)

    # --- signals
    def on_signal(self, signum: int, handler) -> None:
        """Handle `signum` inside the loop: handler(signum) runs as a normal event."""
        if self._sig_r is None:
            self._sig_r, self._sig_w = socket.socketpair()
            self._sig_r.setblocking(False)
            self._sig_w.setblocking(False)
            signal.set_wakeup_fd(self._sig_w.fileno(), warn_on_full_buffer=False)
            self.add(self._sig_r.fileno(), EPOLLIN, self._handle_signals, FdKind.SIGNAL)
        self.signal_handlers[signum] = handler
        signal.signal(signum, lambda *_: None)

    def _handle_signals(self, events: int) -> None:
        try:
            data = self._sig_r.recv(512)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):          # dedupe, keep order
            h = self.signal_handlers.get(signum)
            if h is not None:
                h(signum)

    # --- loop
    def stop(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code

    def _run_guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a handler bug must not kill the translator
            self.stats.internal_errors += 1
            log.err("internal error in event handler:\n" + traceback.format_exc().rstrip())

    def run(self) -> int:
        while self.exit_code is None:
            timeout = -1.0
            while self.timers and self.timers[0][2].cancelled:
                heapq.heappop(self.timers)
            if self.deferred:
                timeout = 0.0
            elif self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            try:
                events = self.ep.poll(timeout)
            except InterruptedError:
                events = []
            self.now = now = time.monotonic()
            gone = self._gone
            gone.clear()
            if self.stats_delay:
                self._count_events(events)
            for fd, ev in events:
                h = self.handlers.get(fd)
                if h is not None and fd not in gone:
                    self._run_guarded(h, ev)
            while self.timers and (self.timers[0][0] <= now or self.timers[0][2].cancelled):
                _, _, t = heapq.heappop(self.timers)
                if not t.cancelled:
                    self._run_guarded(t.callback)
            self.run_deferred()
        return self.exit_code

    def _count_events(self, events) -> None:
        """--stats: count this batch's events by kind; print once DELAY seconds passed."""
        counts, kinds = self.kind_events, self.kinds
        for fd, _ev in events:
            col = _STATS_COLUMN.get(kinds.get(fd))
            if col is not None:
                counts[col] += 1
        if events and self.now - self._stats_before >= self.stats_delay:
            self._stats_before = self.now
            try:
                os.write(2, stats_text(counts, self._stats_lines).encode())
            except OSError:
                pass
            self._stats_lines += 1

    def run_deferred(self) -> None:
        """Run deferred work, and the work it defers in turn, up to DEFER_ROUNDS rounds."""
        for _ in range(DEFER_ROUNDS):
            if not self.deferred:
                return
            work, self.deferred = self.deferred, []
            for fn in work:
                self._run_guarded(fn)

    def close(self) -> None:
        if self._sig_r is not None:
            signal.set_wakeup_fd(-1)
            self._sig_r.close()
            self._sig_w.close()
        self.ep.close()


def child_exit_status(status: int) -> int:
    """Map a waitpid() status to a shell-style exit code (128+N for a signal)."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 1
