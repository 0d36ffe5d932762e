"""Deferred work runs in the loop turn that queued it, even when queued by deferred work.

Issue 13 item 7: work deferred from deferred work used to wait for the next poll (up to the next
timer, or the next event when no timer was pending). Each test arms a guard timer that stops the
engine with another code, so a regression shows as the wrong exit code, never as a hang.
"""

from __future__ import annotations

import socket

from pasta.shell.engine import DEFER_ROUNDS, EPOLLIN, Engine

GUARD_S = 5.0


def _engine_with_guard():
    engine = Engine()
    engine.call_later(GUARD_S, lambda: engine.stop(99))
    return engine


def test_work_deferred_by_deferred_work_runs_in_the_same_turn():
    engine = _engine_with_guard()
    a, b = socket.socketpair()
    b.send(b"x")
    seen = []

    def second():
        seen.append(("second", engine.now))
        engine.stop(0)

    def first():
        seen.append(("first", engine.now))
        engine.defer(second)

    def on_readable(_ev):
        a.recv(16)
        engine.remove(a.fileno())
        engine.defer(first)

    engine.add(a.fileno(), EPOLLIN, on_readable)
    try:
        assert engine.run() == 0
    finally:
        engine.close()
        a.close()
        b.close()
    assert [name for name, _ in seen] == ["first", "second"]
    assert seen[0][1] == seen[1][1]          # same batch timestamp: the same loop turn


def test_work_deferred_before_the_loop_runs_without_waiting_for_an_event():
    engine = _engine_with_guard()
    engine.defer(lambda: engine.stop(0))
    try:
        assert engine.run() == 0
    finally:
        engine.close()


def test_work_that_always_defers_more_does_not_starve_events():
    engine = _engine_with_guard()
    a, b = socket.socketpair()
    rounds = []

    def again():
        rounds.append(engine.now)
        engine.defer(again)

    def on_readable(_ev):
        engine.stop(0)

    engine.add(a.fileno(), EPOLLIN, on_readable)
    engine.defer(again)
    b.send(b"x")
    try:
        assert engine.run() == 0
    finally:
        engine.close()
        a.close()
        b.close()
    # The first turn ran DEFER_ROUNDS rounds and then polled (without blocking) for the event.
    assert len(rounds) >= DEFER_ROUNDS
    assert rounds.count(rounds[0]) == DEFER_ROUNDS
