"""Process helpers for the tests: bounded waiting, commands with useful errors, sure-fire killing.

Nothing here sleeps for a fixed time: waits poll with short, growing intervals up to a deadline and
fail with a message that names what was awaited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable, Iterable, Optional, TypeVar

T = TypeVar("T")

TERM_GRACE_S = 3.0          # SIGTERM → SIGKILL
KILL_GRACE_S = 2.0          # SIGKILL → give up (process stuck in D state)


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and what was last seen."""


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str = "condition",
               interval: float = 0.005, max_interval: float = 0.1,
               ignore: tuple = ()) -> T:
    """Poll `predicate` until it returns something truthy, and return that value.

    Intervals start at `interval` seconds and double up to `max_interval`. Exceptions of the
    types in `ignore` count as "not yet" (the last one is quoted on timeout); others propagate.
    Raises WaitTimeout naming `what` after `timeout` seconds.
    """
    __tracebackhide__ = True            # pytest: show the caller's line, not this loop
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    last_val = None
    while True:
        try:
            last_val = predicate()
            if last_val:
                return last_val
        except ignore as exc:           # noqa: PERF203 - polling loop
            last_exc = exc
        now = time.monotonic()
        if now >= deadline:
            detail = f"; last error: {last_exc!r}" if last_exc is not None else \
                f"; last value: {last_val!r}"
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(min(interval, deadline - now))
        interval = min(interval * 2, max_interval)


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message carries the command's output (pytest shows str())."""

    def __str__(self) -> str:
        def tail(data) -> str:
            if data is None:
                return "(not captured)"
            if isinstance(data, bytes):
                data = data.decode("utf-8", "replace")
            data = data.strip()
            return data[-2000:] if data else "(empty)"
        return (f"{super().__str__()}\n--- stdout ---\n{tail(self.stdout)}"
                f"\n--- stderr ---\n{tail(self.stderr)}")


def run(argv, *, timeout: float = 10.0, check: bool = True, capture: bool = True,
        text: bool = True, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with a timeout, captured text output and an error that shows the output."""
    __tracebackhide__ = True            # pytest: no frame dump of kw (it holds the environment)
    if capture and "stdout" not in kw and "stderr" not in kw:
        kw["capture_output"] = True
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    res = subprocess.run(argv, timeout=timeout, text=text, **kw)
    if check and res.returncode != 0:
        raise CommandError(res.returncode, res.args, res.stdout, res.stderr)
    return res


# --- process trees ---------------------------------------------------------------------------------

def _ppid_map() -> dict[int, int]:
    """pid → ppid for every process we can see."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: fields after the last ')' are fixed.
        fields = stat[stat.rfind(b")") + 2:].split()
        out[int(name)] = int(fields[1])
    return out


def descendants(pids: Iterable[int]) -> set[int]:
    """All live descendants of `pids` (not including them)."""
    roots = set(pids)
    children: dict[int, list[int]] = {}
    for pid, ppid in _ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found and child not in roots:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] != b"Z"


def cmdline_has(pid: int, what: bytes) -> bool:
    """True if `pid`'s command line contains `what` (False once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return what in f.read()
    except OSError:
        return False


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_all(procs: Iterable[subprocess.Popen] = (), pids: Iterable[int] = (),
             term_grace: float = TERM_GRACE_S) -> list[int]:
    """Stop `procs` (our children), `pids` and all their descendants: SIGTERM, then SIGKILL.

    Waits at most `term_grace` + KILL_GRACE_S seconds in all, reaps our own children, and returns
    the pids still alive afterwards (normally none).
    """
    procs = list(procs)
    targets = {p.pid for p in procs if p.poll() is None} | {p for p in pids if alive(p)}
    targets |= descendants(targets | {p.pid for p in procs})
    if targets:
        _signal(targets, signal.SIGTERM)
    for sig, grace in ((signal.SIGKILL, term_grace), (None, KILL_GRACE_S)):
        deadline = time.monotonic() + grace
        while True:
            for p in procs:
                p.poll()                  # reap, so a dead child is not counted as alive
            left = {pid for pid in targets if alive(pid)}
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if not left:
            break
        if sig is not None:
            left |= descendants(left)     # children forked during the grace period
            targets |= left
            _signal(left, sig)
    for p in procs:
        try:
            p.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    return sorted(pid for pid in targets if alive(pid))
