"""Tests for pasta.core.tcp, the sans-IO TCP core: numbers only, no sockets (pasta-reference.md 14).

Covered: the modulo-2**32 sequence helpers, `mss_for_mtu` (section 8), both handshakes, the
namespace -> host direction (`tap_data`/`written`, with a model namespace sending overlapping,
duplicated and reordered segments into a model socket that takes partial writes), the host ->
namespace direction (`send_budget`/`sent`/`tap_ack`/`rewind`, with a model of sends, ACKs and
rewinds), duplicate ACKs and fast retransmit, FINs, `done()`, and every timer as a function of
`now`. Sequence numbers are drawn near 2**32 as well, so every property also runs across the wrap.

The tests at the end were first written as strict xfails pinning bugs found in pasta/core/tcp.py
(ACKs beyond a rewind, zero windows, lost backoff, FIN counted as data, the handshake ACK as a
duplicate, float deadlines); the bugs are fixed and the tests now guard against regressions.
"""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings, strategies as st

from pasta.core.tcp import (ACK_TIMEOUT_S, DUP_ACKS, FIN_TIMEOUT_S, IDLE_TIMEOUT_S, KEEPALIVE_S,
                       MAX_RETRANS, MAX_WINDOW, MSS_DEFAULT, SNDBUF_BIG, SNDBUF_SMALL,
                       SYN_QUIET_S, SYN_RETRIES, SYN_RTO_S, WS_TO_TAP,
                       Fin, Rst, State, TcpConn, Timeout, mss_for_mtu, seq_add, seq_diff, seq_le,
                       seq_lt, sndbuf_usable, wnd_from_sndbuf)

FAST = settings(max_examples=100, deadline=None)
MODEL = settings(max_examples=150, deadline=None)

U32 = 0xFFFFFFFF
# Any 32-bit value, with extra weight just below the wrap so that offsets cross 2**32.
SEQ = st.one_of(st.integers(0, U32), st.integers(U32 - 70000, U32))
NOW = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
# Times on a 1/8 s grid: sums and differences are exact, for the tests that compare a deadline
# `last + T` with `now - last >= T` (see the float xfail at the end).
GRID = st.integers(0, 1 << 23).map(lambda n: n / 8)


def grid(lo: float, hi: float):
    return st.integers(int(lo * 8), int(hi * 8)).map(lambda n: n / 8)
WSCALE = st.one_of(st.none(), st.integers(0, 14))
W = 65535


def established_out(isn=1000, ns_isn=5000, now=0.0, window=W, mss=1460, wscale=None,
                    ack_window=None) -> TcpConn:
    """Outbound connection after SYN, SYN,ACK and the namespace's ACK (everything at `now`)."""
    c = TcpConn.from_tap_syn(isn, now, ns_isn, window, mss, wscale)
    c.syn_ack_sent(now)
    assert c.tap_ack(seq_add(isn, 1), window if ack_window is None else ack_window, False,
                     now) == 0
    assert c.state == State.ESTABLISHED
    return c


def established_in(isn=1000, ns_isn=5000, now=0.0, window=W, mss=1460, wscale=None) -> TcpConn:
    """Inbound connection after our SYN and the namespace's SYN,ACK."""
    c = TcpConn.to_tap_syn(isn, now)
    c.syn_sent(now)
    assert c.tap_syn_ack(ns_isn, seq_add(isn, 1), window, mss, wscale, now)
    return c


def data_base(c: TcpConn) -> int:
    """Sequence number of the first data byte we send to the namespace."""
    return seq_add(c.seq_init_to_tap, 1)


# ----------------------------------------------------------------------------- sequence helpers
@FAST
@given(SEQ, st.integers(-(1 << 31), (1 << 31) - 1))
def test_seq_diff_inverts_seq_add(a, n):
    assert seq_diff(seq_add(a, n), a) == n


@FAST
@given(SEQ, SEQ)
def test_seq_order_is_antisymmetric(a, b):
    if (a - b) & U32 == 1 << 31:
        return                          # exactly half the space apart: undefined (RFC 1982)
    assert seq_diff(a, b) == -seq_diff(b, a)
    if a == b:
        assert not seq_lt(a, b) and seq_le(a, b) and seq_le(b, a)
    else:
        assert seq_lt(a, b) != seq_lt(b, a)
        assert seq_le(a, b) == seq_lt(a, b)
        assert seq_le(a, b) != seq_le(b, a)


@FAST
@given(SEQ, st.integers(1, (1 << 31) - 1))
def test_seq_lt_holds_across_the_wrap(a, n):
    b = seq_add(a, n)
    assert seq_lt(a, b) and seq_le(a, b)
    assert not seq_lt(b, a) and not seq_le(b, a)


@pytest.mark.parametrize("a,b", [(U32, 0), (U32 - 10, 5), (0xFFFF0000, 0x00010000)])
def test_seq_wraparound_examples(a, b):
    assert seq_lt(a, b) and not seq_lt(b, a)
    assert seq_diff(b, a) == (b - a) % (1 << 32)


@FAST
@given(st.integers(-(1 << 40), 1 << 40), st.integers(-(1 << 40), 1 << 40))
def test_seq_add_is_modulo_2_32(a, n):
    r = seq_add(a, n)
    assert 0 <= r <= U32
    assert r == (a + n) % (1 << 32)


# ----------------------------------------------------------------------------- MSS
@pytest.mark.parametrize("mtu,v6,mss", [
    (65520, False, 61440),      # section 8: 65520 -> 65480 -> 61440
    (65520, True, 61440),       # 65460 -> 61440
    (1500, False, 1460),
    (1500, True, 1440),
    (4136, False, 4096),        # exactly one page: not rounded
    (4137, False, 4096),        # just above a page: rounded down
    (576, False, 536),
    (1280, True, 1220),
    (300, False, MSS_DEFAULT),  # never below 536
])
def test_mss_for_mtu(mtu, v6, mss):
    assert mss_for_mtu(mtu, v6) == mss


@FAST
@given(st.integers(68, 65535), st.booleans())
def test_mss_for_mtu_properties(mtu, v6):
    mss = mss_for_mtu(mtu, v6)
    raw = mtu - 20 - (40 if v6 else 20)
    assert mss >= MSS_DEFAULT
    if raw > 4096:
        assert mss % 4096 == 0 and raw - 4096 < mss <= raw
    else:
        assert mss == max(raw, MSS_DEFAULT)


# ----------------------------------------------------------------------------- outbound set-up
@FAST
@given(isn=SEQ, seq=SEQ, now=NOW, window=st.integers(0, W), mss=st.integers(1, 65535),
       wscale=st.integers(0, 14))
def test_from_tap_syn_with_options(isn, seq, now, window, mss, wscale):
    c = TcpConn.from_tap_syn(isn, now, seq, window, mss, wscale)
    assert c.state == State.SYN_RCVD and c.fin == Fin(0)
    assert c.seq_from_tap == (seq + 1) % (1 << 32) == c.seq_ack_to_tap
    assert not c.ack_due()
    assert c.mss_to_tap == mss
    assert c.ws_from_tap == wscale and c.ws_to_tap == WS_TO_TAP
    assert c.wnd_from_tap == window                  # a SYN's window is never scaled
    assert c.seq_to_tap == c.seq_ack_from_tap == isn == c.seq_init_to_tap
    assert c.send_budget() == 0
    assert c.timer_at == now + SYN_QUIET_S           # the namespace must retry its SYN by then


@FAST
@given(isn=SEQ, seq=SEQ, window=st.integers(0, W))
def test_from_tap_syn_without_options(isn, seq, window):
    c = TcpConn.from_tap_syn(isn, 0.0, seq, window, None, None)
    assert c.mss_to_tap == MSS_DEFAULT
    assert c.ws_from_tap == 0 and c.ws_to_tap == 0   # no scaling offered: none used either way
    assert c.wnd_from_tap == window
    assert c.window_to_tap(100000) == W              # unscaled window field, capped


@FAST
@given(isn=SEQ, now=NOW)
def test_syn_ack_sent(isn, now):
    c = TcpConn.from_tap_syn(isn, 0.0, 1, W, 1460, 7)
    c.syn_ack_sent(now)
    assert c.state == State.SYN_ACK_SENT
    assert c.seq_to_tap == seq_add(isn, 1) and c.seq_ack_from_tap == isn
    assert c.in_flight() == 1                         # the SYN
    assert c.send_budget() == 0
    assert c.timer_at == now + SYN_RTO_S


@FAST
@given(isn=SEQ, ack=SEQ, has_data=st.booleans())
def test_handshake_ack_must_acknowledge_our_syn(isn, ack, has_data):
    c = TcpConn.from_tap_syn(isn, 0.0, 77, W, 1460, None)
    c.syn_ack_sent(0.0)
    assert c.tap_ack(ack, W, has_data, 1.0) == 0     # never data: the SYN is not a byte
    if ack == seq_add(isn, 1):
        assert c.state == State.ESTABLISHED
        assert c.seq_ack_from_tap == c.seq_to_tap == ack and c.in_flight() == 0
        assert c.timer_at == 1.0 + KEEPALIVE_S
    else:
        assert c.state == State.SYN_ACK_SENT
        assert c.seq_ack_from_tap == isn and c.seq_to_tap == seq_add(isn, 1)


@FAST
@given(syn_window=st.integers(1, W), ack_window=st.integers(0, W), wscale=st.integers(0, 14),
       later=st.integers(0, W))
def test_window_scaling_applies_after_the_handshake_only(syn_window, ack_window, wscale, later):
    c = TcpConn.from_tap_syn(1, 0.0, 2, syn_window, 1460, wscale)
    assert c.wnd_from_tap == syn_window
    c.syn_ack_sent(0.0)
    c.tap_ack(2, ack_window, False, 0.0)
    assert c.wnd_from_tap == min(ack_window << wscale, MAX_WINDOW)
    c.tap_ack(2, later, False, 1.0)
    assert c.wnd_from_tap == min(later << wscale, MAX_WINDOW)
    assert c.send_budget() == c.wnd_from_tap


def test_window_is_capped_at_max_window():
    c = established_out(wscale=14)
    assert c.wnd_from_tap == MAX_WINDOW == 1 << 24


@pytest.mark.parametrize("ws_to_tap,space,field", [
    (0, 1000, 1000), (0, 1 << 20, W), (0, -5, 0),
    (8, 1 << 16, 256), (8, 1 << 24, W), (8, 1 << 30, W), (8, 255, 0),
])
def test_window_to_tap(ws_to_tap, space, field):
    c = established_out(wscale=None if ws_to_tap == 0 else 7)
    assert c.ws_to_tap == ws_to_tap
    assert c.window_to_tap(space) == field


# ----------------------------------------------------------------------------- inbound set-up
@FAST
@given(isn=SEQ, now=NOW)
def test_to_tap_syn_and_syn_sent(isn, now):
    c = TcpConn.to_tap_syn(isn, now)
    assert c.state == State.SYN_SENT and c.ws_to_tap == WS_TO_TAP
    c.syn_sent(now + 1)
    assert c.seq_to_tap == seq_add(isn, 1)
    assert c.timer_at == now + 1 + SYN_RTO_S
    assert c.send_budget() == 0


@FAST
@given(isn=SEQ, ns_isn=SEQ, ack=SEQ, window=st.integers(0, W), mss=st.one_of(st.none(),
       st.integers(1, 65535)), wscale=WSCALE)
def test_tap_syn_ack_accepts_only_our_isn_plus_one(isn, ns_isn, ack, window, mss, wscale):
    c = TcpConn.to_tap_syn(isn, 0.0)
    c.syn_sent(0.0)
    ok = c.tap_syn_ack(ns_isn, ack, window, mss, wscale, 3.0)
    assert ok == (ack == seq_add(isn, 1))
    if not ok:
        assert c.state == State.SYN_SENT and c.ws_to_tap == WS_TO_TAP
        return
    assert c.state == State.ESTABLISHED
    assert c.seq_from_tap == seq_add(ns_isn, 1) == c.seq_ack_to_tap
    assert c.seq_ack_from_tap == c.seq_to_tap == ack and c.in_flight() == 0
    assert c.wnd_from_tap == window                  # SYN,ACK window: not scaled
    assert c.mss_to_tap == (mss or MSS_DEFAULT)
    assert c.ws_from_tap == (wscale or 0)
    assert c.ws_to_tap == (0 if wscale is None else WS_TO_TAP)
    # A zero window arms the zero-window probe; otherwise the idle timer runs.
    assert c.timer_at == 3.0 + (ACK_TIMEOUT_S if window == 0 else KEEPALIVE_S)
    # A second SYN,ACK (retransmitted) changes nothing.
    assert not c.tap_syn_ack(ns_isn, ack, 1, None, None, 4.0)
    assert c.wnd_from_tap == window


def test_tap_syn_ack_then_scaled_windows():
    c = established_in(window=1000, wscale=4)
    assert c.wnd_from_tap == 1000
    c.tap_ack(c.seq_to_tap, 1000, False, 1.0)
    assert c.wnd_from_tap == 16000


# ----------------------------------------------------------------------------- namespace -> host
@FAST
@given(ns_isn=SEQ, got=st.integers(0, 100000), rel=st.integers(-5000, 5000),
       length=st.integers(0, 3000))
def test_tap_data_skip_take(ns_isn, got, rel, length):
    """rel: where the segment starts relative to the next byte expected."""
    c = TcpConn.from_tap_syn(1, 0.0, ns_isn, W, None, None)
    c.written(got)
    expect = seq_add(ns_isn, 1 + got)
    assert c.seq_from_tap == expect
    skip, take = c.tap_data(seq_add(expect, rel), length)
    if rel > 0:
        assert (skip, take) == (-1, 0)              # a gap: out of order
    elif rel + length <= 0:
        assert (skip, take) == (0, 0)               # all old: duplicate (or keep-alive)
    else:
        assert (skip, take) == (-rel, length + rel)  # new part, possibly after an old prefix
    assert c.seq_from_tap == expect                 # tap_data() alone acknowledges nothing


@pytest.mark.parametrize("seq_off,length,result", [
    (0, 100, (0, 100)),         # new, in order
    (-40, 100, (40, 60)),       # overlapping: the first 40 bytes were written already
    (-100, 100, (0, 0)),        # duplicate
    (-150, 100, (0, 0)),        # older duplicate
    (-1, 1, (0, 0)),            # keep-alive probe
    (1, 100, (-1, 0)),          # out of order
    (0, 0, (0, 0)),             # pure ACK
])
def test_tap_data_examples_across_the_wrap(seq_off, length, result):
    c = TcpConn.from_tap_syn(1, 0.0, U32 - 50, W, None, None)   # data starts at 2**32 - 50
    c.written(50)
    assert c.seq_from_tap == 0
    assert c.tap_data(seq_add(0, seq_off), length) == result


def test_written_partial_then_rest():
    c = TcpConn.from_tap_syn(1, 0.0, 999, W, None, None)
    assert c.tap_data(1000, 500) == (0, 500)
    c.written(200)                                  # the socket took 200 of 500
    assert c.ack_due() and c.seq_from_tap == 1200
    assert c.tap_data(1000, 500) == (200, 300)      # the namespace retransmits it all
    c.written(300)
    assert c.seq_from_tap == 1500
    assert c.tap_data(1000, 500) == (0, 0)


@MODEL
@given(ns_isn=SEQ, size=st.integers(0, 4000), data=st.data())
def test_written_bytes_are_exactly_the_stream(ns_isn, size, data):
    """Model namespace: random overlapping, duplicated, reordered segments of one byte stream.
    Model socket: accepts a random part of what it is given. Bytes are distinct positions, so a
    byte written twice or out of place cannot hide."""
    stream = list(range(size))
    c = TcpConn.from_tap_syn(7, 0.0, ns_isn, W, 1460, 7)
    base = seq_add(ns_isn, 1)
    out: list[int] = []
    for _ in range(data.draw(st.integers(0, 40), label="segments")):
        got = len(out)
        start = data.draw(st.integers(max(0, got - 500), min(size, got + 300)), label="start")
        seg = stream[start:start + data.draw(st.integers(0, 800), label="length")]
        skip, take = c.tap_data(seq_add(base, start), len(seg))
        if start > got:
            assert (skip, take) == (-1, 0)
            continue
        assert skip >= 0 and skip + take <= len(seg)
        if take:
            assert start + skip == got                # the new part starts exactly here
        else:
            assert start + len(seg) <= got             # nothing new in it
        n = data.draw(st.integers(0, take), label="accepted")
        out += seg[skip:skip + n]
        c.written(n)
        assert out == stream[:len(out)]
        assert seq_diff(c.seq_from_tap, base) == len(out)
    while len(out) < size:                             # then in order, the socket takes all
        seg = stream[len(out):len(out) + 1460]
        skip, take = c.tap_data(seq_add(base, len(out)), len(seg))
        assert (skip, take) == (0, len(seg))
        out += seg
        c.written(take)
    assert out == stream
    assert c.tap_fin(seq_add(base, size))
    assert c.seq_from_tap == seq_add(base, size + 1)


# ----------------------------------------------------------------------------- tap_fin
@FAST
@given(ns_isn=SEQ, got=st.integers(0, 10000), rel=st.integers(-3000, 3000))
def test_tap_fin_only_at_the_expected_sequence(ns_isn, got, rel):
    c = TcpConn.from_tap_syn(1, 0.0, ns_isn, W, None, None)
    c.written(got)
    expect = c.seq_from_tap
    assert c.tap_fin(seq_add(expect, rel)) == (rel == 0)
    if rel:
        assert not c.fin & Fin.TAP_FIN_RCVD and c.seq_from_tap == expect
        return
    assert c.fin & Fin.TAP_FIN_RCVD
    assert c.seq_from_tap == seq_add(expect, 1)        # the FIN takes one sequence number
    assert not c.tap_fin(expect) and not c.tap_fin(c.seq_from_tap)    # once only
    assert c.seq_from_tap == seq_add(expect, 1)
    assert c.tap_data(seq_add(expect, -10), 10) == (0, 0)   # retransmitted data: duplicate


def test_tap_fin_waits_for_unwritten_data():
    c = TcpConn.from_tap_syn(1, 0.0, 99, W, None, None)
    assert c.tap_data(100, 50) == (0, 50)
    c.written(20)                                      # partial write: the FIN must wait
    assert not c.tap_fin(150)
    assert c.tap_data(100, 50) == (20, 30)
    c.written(30)
    assert c.tap_fin(150)


# ----------------------------------------------------------------------------- host -> namespace
def test_send_budget_window_and_in_flight():
    c = established_out(window=10000)
    base = data_base(c)
    assert c.send_budget() == 10000
    c.sent(4000, 1.0)
    assert c.in_flight() == 4000 and c.send_budget() == 6000
    c.sent(6000, 1.0)
    assert c.send_budget() == 0
    assert c.tap_ack(seq_add(base, 1000), 10000, False, 2.0) == 1000
    assert c.in_flight() == 9000 and c.send_budget() == 1000
    assert c.tap_ack(seq_add(base, 10000), 2000, False, 2.0) == 9000
    assert c.send_budget() == 2000
    assert c.tap_ack(seq_add(base, 10000), 0, False, 3.0) == 0   # zero window, nothing in flight
    assert c.send_budget() == 0


def test_zero_window_with_data_in_flight_is_ignored():
    c = established_out(window=10000)
    c.sent(4000, 1.0)
    c.tap_ack(seq_add(data_base(c), 1000), 0, False, 2.0)   # 3000 still in flight
    assert c.wnd_from_tap == 10000                    # pasta's workaround (section 14.3)


def test_send_budget_zero_unless_established_or_after_fin():
    c = TcpConn.from_tap_syn(1, 0.0, 2, W, None, None)
    assert c.send_budget() == 0
    c.syn_ack_sent(0.0)
    assert c.send_budget() == 0
    c.tap_ack(2, W, False, 0.0)
    assert c.send_budget() == W
    c.fin_to_tap(1.0)
    assert c.send_budget() == 0


@FAST
@given(isn=SEQ, n=st.integers(0, W), k=st.integers(1, (1 << 31) - 1 - W),
       window=st.integers(0, W))
def test_tap_ack_ignores_acks_for_data_never_sent(isn, n, k, window):
    c = established_out(isn=isn)
    c.sent(n, 1.0)
    before = (c.seq_ack_from_tap, c.seq_to_tap, c.retrans)
    assert c.tap_ack(seq_add(c.seq_to_tap, k), window, False, 2.0) == 0
    assert (c.seq_ack_from_tap, c.seq_to_tap, c.retrans) == before


@FAST
@given(isn=SEQ, n=st.integers(1, W), a=st.integers(0, W), b=st.integers(0, W))
def test_tap_ack_returns_newly_acked_bytes(isn, n, a, b):
    c = established_out(isn=isn)
    base = data_base(c)
    c.sent(n, 1.0)
    a, b = min(a, n), min(b, n)
    assert c.tap_ack(seq_add(base, a), W, False, 2.0) == a
    assert c.tap_ack(seq_add(base, b), W, False, 3.0) == max(b - a, 0)   # old ACKs: nothing
    assert seq_diff(c.seq_ack_from_tap, base) == max(a, b)


@MODEL
@given(isn=SEQ, wscale=WSCALE, data=st.data())
def test_model_sends_acks_rewinds(isn, wscale, data):
    """Random sends, ACKs (old, current, new, bogus, with random windows) and rewinds: what the
    shell discards (the sum of tap_ack results) is exactly what the namespace acknowledged, never
    more than was sent; rewind() goes back to the last ACK and reports what was in flight."""
    c = established_out(isn=isn, wscale=wscale)
    base = data_base(c)
    max_sent = discarded = 0
    now, last_window, fast_retransmits = 0.0, W, 0
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        now += 0.25
        op = data.draw(st.sampled_from(["send", "send", "ack", "ack", "dup", "rewind"]),
                       label="op")
        acked = seq_diff(c.seq_ack_from_tap, base)
        if op == "send":
            budget = c.send_budget()
            assert budget == max(0, c.wnd_from_tap - c.in_flight())
            n = data.draw(st.integers(0, min(budget, 30000)), label="sent")
            c.sent(n, now)
            max_sent = max(max_sent, seq_diff(c.seq_to_tap, base))
        elif op in ("ack", "dup"):
            if op == "ack":
                acks = [data.draw(st.integers(acked - 2000, max_sent + 2000), label="ack")]
                last_window = data.draw(st.integers(0, W), label="window")
                has_data = data.draw(st.booleans(), label="has_data")
            else:                                     # a run of pure duplicates
                acks = [acked] * data.draw(st.integers(1, DUP_ACKS + 1), label="dups")
                has_data = False
            for a in acks:
                before = seq_diff(c.seq_ack_from_tap, base)
                got = c.tap_ack(seq_add(base, a), last_window, has_data, now)
                assert got >= 0
                if got:
                    assert got == a - before and c.seq_ack_from_tap == seq_add(base, a)
                    assert c.retrans == 0
                else:
                    assert seq_diff(c.seq_ack_from_tap, base) == before
                if a > max_sent:
                    assert got == 0                   # never sent: ignored
                discarded += got
                if c.fast_retransmit_due():           # what the shell does
                    fast_retransmits += 1
                    c.rewind()
        else:
            flight = c.in_flight()
            assert c.rewind() == flight
            assert c.seq_to_tap == c.seq_ack_from_tap and c.in_flight() == 0
        assert discarded == seq_diff(c.seq_ack_from_tap, base) <= max_sent
        assert seq_le(c.seq_ack_from_tap, c.seq_to_tap)
        assert 0 <= c.in_flight() <= max_sent - discarded
    event(f"fast retransmits: {min(fast_retransmits, 2)}")
    # Wind down: send what is left, FIN, and one ACK covering all of it.
    c.sent(max_sent - seq_diff(c.seq_to_tap, base), now)
    fin_seq = c.fin_to_tap(now)
    assert fin_seq == seq_add(base, max_sent)
    assert c.tap_ack(seq_add(fin_seq, 1), W, False, now + 1) == max_sent - discarded
    assert c.fin & Fin.TAP_FIN_ACKED and c.in_flight() == 0


@FAST
@given(isn=SEQ, n=st.integers(0, W), k=st.integers(0, W))
def test_fin_to_tap_and_its_ack(isn, n, k):
    c = established_out(isn=isn)
    base = data_base(c)
    c.sent(n, 1.0)
    k = min(k, n)
    assert c.tap_ack(seq_add(base, k), W, False, 1.5) == k
    seq = c.fin_to_tap(2.0)
    assert seq == seq_add(base, n) and c.fin & Fin.TAP_FIN_SENT
    assert c.in_flight() == n - k + 1 and c.timer_at == 2.0 + ACK_TIMEOUT_S
    assert c.tap_ack(seq_add(seq, 2), W, False, 2.5) == 0           # beyond the FIN: ignored
    assert c.tap_ack(seq, W, False, 3.0) == n - k                    # data, not the FIN
    assert not c.fin & Fin.TAP_FIN_ACKED
    assert c.tap_ack(seq_add(seq, 1), W, False, 4.0) == 0            # the FIN alone: no bytes
    assert c.fin & Fin.TAP_FIN_ACKED and c.in_flight() == 0


def test_fin_acked_together_with_data():
    c = established_out()
    c.sent(100, 1.0)
    seq = c.fin_to_tap(1.0)
    assert c.tap_ack(seq_add(seq, 1), W, False, 2.0) == 100
    assert c.fin & Fin.TAP_FIN_ACKED


@FAST
@given(isn=SEQ, n=st.integers(1, W), k=st.integers(0, W))
def test_rewind_goes_back_to_the_last_ack(isn, n, k):
    c = established_out(isn=isn)
    base = data_base(c)
    c.sent(n, 1.0)
    k = min(k, n)
    c.tap_ack(seq_add(base, k), W, False, 2.0)
    assert c.rewind() == n - k
    assert c.seq_to_tap == c.seq_ack_from_tap == seq_add(base, k)
    assert c.send_budget() == W
    assert c.rewind() == 0                             # idempotent


def test_rewind_unsends_an_unacked_fin():
    c = established_out()
    c.sent(100, 1.0)
    c.fin_to_tap(1.0)
    c.rewind()
    assert not c.fin & Fin.TAP_FIN_SENT
    assert c.fin_seq_to_tap == seq_add(data_base(c), 100)     # remembered across the rewind
    assert c.seq_to_tap == data_base(c)
    c.sent(100, 2.0)
    assert c.fin_to_tap(2.0) == seq_add(data_base(c), 100)      # the FIN goes again, same seq


def test_ack_covering_a_rewound_fin_marks_it_acknowledged():
    """An ACK for data + FIN arriving after a rewind, before the FIN is re-sent."""
    c = established_out()
    c.sent(100, 1.0)
    fin = c.fin_to_tap(1.0)
    c.rewind()
    c.sent(100, 2.0)                                  # data re-sent, FIN not yet
    assert c.tap_ack(seq_add(fin, 1), W, False, 3.0) == 100
    assert c.fin & Fin.TAP_FIN_ACKED


def test_rewind_keeps_an_acked_fin():
    c = established_out()
    seq = c.fin_to_tap(1.0)
    c.tap_ack(seq_add(seq, 1), W, False, 2.0)
    assert c.rewind() == 0
    assert c.fin & Fin.TAP_FIN_SENT and c.fin & Fin.TAP_FIN_ACKED


# ----------------------------------------------------------------------------- duplicate ACKs
def with_data_in_flight():
    """Established, 5000 bytes sent, the first 1000 acknowledged (so an ACK has been seen)."""
    c = established_out()
    base = data_base(c)
    c.sent(5000, 1.0)
    assert c.tap_ack(seq_add(base, 1000), W, False, 1.0) == 1000
    return c, seq_add(base, 1000)


def test_three_duplicate_acks_fast_retransmit_once():
    c, ack = with_data_in_flight()
    for _ in range(DUP_ACKS - 1):
        assert c.tap_ack(ack, W, False, 2.0) == 0
        assert not c.fast_retransmit_due()
    c.tap_ack(ack, W, False, 2.0)
    assert c.fast_retransmit_due()
    assert not c.fast_retransmit_due()                # once


@pytest.mark.parametrize("odd", ["window", "data"])
def test_window_change_or_data_is_not_a_duplicate(odd):
    c, ack = with_data_in_flight()
    for _ in range(DUP_ACKS - 1):
        c.tap_ack(ack, W, False, 2.0)
    c.tap_ack(ack, W - 1 if odd == "window" else W, odd == "data", 2.0)
    assert not c.fast_retransmit_due()


@FAST
@given(st.integers(0, 20))
def test_acks_with_data_never_trigger_fast_retransmit(count):
    c, ack = with_data_in_flight()
    for _ in range(count):
        c.tap_ack(ack, W, True, 2.0)
    assert not c.fast_retransmit_due()


def test_no_duplicate_acks_without_data_in_flight():
    c = established_out()
    for _ in range(10):
        c.tap_ack(data_base(c), W, False, 1.0)
    assert not c.fast_retransmit_due()


def test_new_ack_resets_the_duplicate_count():
    c, ack = with_data_in_flight()
    for _ in range(DUP_ACKS - 1):
        c.tap_ack(ack, W, False, 2.0)
    c.tap_ack(seq_add(ack, 10), W, False, 2.0)
    c.tap_ack(seq_add(ack, 10), W, False, 2.0)
    assert not c.fast_retransmit_due()


def test_duplicate_acks_ignored_after_rewind_until_recovery_point():
    c, ack = with_data_in_flight()
    recover = c.seq_to_tap                            # data_base + 5000
    assert c.rewind() == 4000
    c.sent(4000, 2.0)                                 # everything goes again
    for _ in range(2 * DUP_ACKS):
        c.tap_ack(ack, W, False, 2.5)
    assert not c.fast_retransmit_due()
    mid = seq_add(ack, 1000)
    assert c.tap_ack(mid, W, False, 3.0) == 1000      # progress, but short of the recovery point
    for _ in range(2 * DUP_ACKS):
        c.tap_ack(mid, W, False, 3.0)
    assert not c.fast_retransmit_due()
    assert c.tap_ack(recover, W, False, 4.0) == 3000  # recovery point reached
    c.sent(1000, 4.0)
    for _ in range(DUP_ACKS):
        c.tap_ack(recover, W, False, 4.5)
    assert c.fast_retransmit_due()


# ----------------------------------------------------------------------------- timers
@FAST
@given(now=GRID, linear=st.integers(0, 4), retries=st.integers(1, 12))
def test_no_timer_of_ours_while_the_namespace_retries_its_syn(now, linear, retries):
    """SYN_RCVD: the host's connect() is in progress and the namespace's kernel retries its
    SYN (after 1 s; `linear` more at 1 s as with tcp_syn_linear_timeouts, then doubling): no
    pypasta clock ends the flow, whatever the kernel's tcp_syn_retries."""
    c = TcpConn.from_tap_syn(1, now, 2, W, None, None)
    t, gap = now, 1.0
    for k in range(retries):
        t += gap
        assert c.on_timer(min(t, c.timer_at - 0.001)) == Timeout.NONE
        assert t < c.timer_at                        # its SYN comes before our deadline
        c.tap_syn_again(t)
        if k >= linear:
            gap *= 2
    assert c.state == State.SYN_RCVD


@FAST
@given(now=GRID, retried=st.integers(0, 3))
def test_a_namespace_that_stopped_retrying_its_syn_is_forgotten_silently(now, retried):
    """No SYN for more than 2.5 gaps (3 s after a lone SYN): the namespace's kernel gave up
    (or it was never a client): ABANDON, which the shell carries out without an RST."""
    c = TcpConn.from_tap_syn(1, now, 2, W, None, None)
    t, gap = now, 1.0
    for _ in range(retried):
        t += gap
        c.tap_syn_again(t)
        gap *= 2
    assert c.timer_at - t == (SYN_QUIET_S if not retried else max(SYN_QUIET_S,
                                                                  2.5 * gap / 2 + 1.0))
    assert c.on_timer(c.timer_at) == Timeout.ABANDON


@FAST
@given(now=NOW, later=st.floats(0, 5, allow_nan=False), inbound=st.booleans())
def test_our_syn_and_syn_ack_are_resent_with_backoff_then_reset(now, later, inbound):
    if inbound:
        c = TcpConn.to_tap_syn(1, now)
        c.syn_sent(now + later)                                  # SYN_SENT
    else:
        c = TcpConn.from_tap_syn(1, now, 2, W, None, None)
        c.syn_ack_sent(now + later)                              # SYN_ACK_SENT
    deadline = now + later + SYN_RTO_S
    assert c.timer_at == deadline
    for k in range(1, SYN_RETRIES + 1):
        assert c.on_timer(deadline - 0.01) == Timeout.NONE
        assert c.on_timer(deadline) == Timeout.RESEND_SYN
        deadline += SYN_RTO_S * (1 << k)
        assert c.timer_at == pytest.approx(deadline)
    assert c.on_timer(c.timer_at) == Timeout.RESET
    # 1 + 2 + ... + 64 s: the kernel's own default for a SYN (tcp_syn_retries = 6)
    assert c.timer_at - (now + later) == pytest.approx(127.0)


def test_resent_syn_ack_then_the_ack_establishes():
    c = TcpConn.from_tap_syn(1, 0.0, 2, W, None, None)
    c.syn_ack_sent(0.0)
    assert c.on_timer(SYN_RTO_S) == Timeout.RESEND_SYN
    assert c.tap_ack(2, W, False, 1.5) == 0
    assert c.state == State.ESTABLISHED and c.retrans == 0


@FAST
@given(t0=NOW, dt=st.floats(0, 100, allow_nan=False), n=st.integers(1, W))
def test_ack_timeout_retransmits_with_backoff_then_resets(t0, dt, n):
    c = established_out(now=t0)
    t1 = t0 + dt
    c.sent(n, t1)
    deadline = t1 + ACK_TIMEOUT_S
    assert c.timer_at == deadline
    for k in range(1, MAX_RETRANS + 1):
        assert c.on_timer(deadline - 0.01) == Timeout.NONE
        assert c.on_timer(deadline) == Timeout.RETRANSMIT
        assert c.retrans == k
        deadline = deadline + ACK_TIMEOUT_S * (1 << min(k, 4))
        assert c.timer_at == pytest.approx(deadline)
    assert c.on_timer(c.timer_at) == Timeout.RESET


def test_ack_timeout_covers_an_unacked_fin():
    c = established_out()
    c.fin_to_tap(5.0)
    assert c.on_timer(5.0 + ACK_TIMEOUT_S) == Timeout.RETRANSMIT


@FAST
@given(retries=st.integers(1, MAX_RETRANS), part=st.booleans())
def test_progress_resets_the_retry_counter(retries, part):
    c = established_out()
    base = data_base(c)
    c.sent(2000, 0.0)
    for _ in range(retries):
        assert c.on_timer(c.timer_at) == Timeout.RETRANSMIT
    now = c.timer_at - 0.5
    assert c.tap_ack(seq_add(base, 1000 if part else 2000), W, False, now) > 0
    assert c.retrans == 0
    assert c.timer_at == now + (ACK_TIMEOUT_S if part else KEEPALIVE_S)
    if part:                                           # a full set of retries again
        for _ in range(MAX_RETRANS):
            assert c.on_timer(c.timer_at) == Timeout.RETRANSMIT
        assert c.on_timer(c.timer_at) == Timeout.RESET


def test_duplicate_ack_is_not_progress():
    c, ack = with_data_in_flight()
    assert c.on_timer(c.timer_at) == Timeout.RETRANSMIT
    timer = c.timer_at
    c.tap_ack(ack, W, False, timer - 1)
    assert c.retrans == 1 and c.timer_at == timer


@FAST
@given(t0=GRID)
def test_fin_timeout_once_both_directions_are_shut(t0):
    """Our FIN acknowledged and the host socket shut (SOCK_FIN_SENT + TAP_FIN_ACKED): nothing
    can flow any more; the flow goes FIN_TIMEOUT_S after the last progress."""
    c = established_out(now=t0)
    assert c.tap_fin(c.seq_from_tap)
    c.fin |= Fin.SOCK_FIN_SENT                         # the shell shut the socket's write side
    seq = c.fin_to_tap(t0 + 1)
    c.tap_ack(seq_add(seq, 1), W, False, t0 + 2)
    assert c.fin & Fin.TAP_FIN_ACKED and c.done()       # finished: closed at once
    # (If it lingered, the FIN timeout would end it FIN_TIMEOUT_S after the last progress.)
    assert c.timer_at == t0 + 2 + FIN_TIMEOUT_S
    assert c.on_timer(c.timer_at - 0.01) == Timeout.NONE
    assert c.on_timer(c.timer_at) == Timeout.RESET


@FAST
@given(t0=GRID, ours=st.booleans(), hours=st.integers(1, 48))
def test_half_closed_flows_are_kept_alive_like_open_ones(t0, ours, hours):
    """One direction shut (our FIN acknowledged, or the namespace's FIN delivered): the other
    may still carry data for hours. Keepalive probes every 30 s, never a reset while the
    namespace answers them (pasta 2026 has no FIN timeout)."""
    c = established_out(now=t0)
    if ours:
        seq = c.fin_to_tap(t0)
        c.tap_ack(seq_add(seq, 1), W, False, t0)
    else:
        assert c.tap_fin(c.seq_from_tap)
        c.fin |= Fin.SOCK_FIN_SENT
    t = t0
    end = t0 + hours * 3600
    while t < end:
        t = c.timer_at
        what = c.on_timer(t)
        assert what in (Timeout.NONE, Timeout.KEEPALIVE)
        if what == Timeout.KEEPALIVE:
            c.tap_ack(c.seq_to_tap, W, False, t + 0.001)      # the namespace answers


@FAST
@given(t0=GRID, active=grid(1, 29), inbound=st.booleans())
def test_keepalive_after_30_s_of_silence_from_the_namespace(t0, active, inbound):
    c = established_in(now=t0) if inbound else established_out(now=t0)
    assert c.timer_at == t0 + KEEPALIVE_S
    # Activity (an ACK with nothing new) pushes the keepalive out.
    c.tap_ack(c.seq_to_tap, W, False, t0 + active)
    assert c.on_timer(t0 + KEEPALIVE_S) == Timeout.NONE
    assert c.timer_at == t0 + active + KEEPALIVE_S
    assert c.on_timer(t0 + active + KEEPALIVE_S) == Timeout.KEEPALIVE
    assert c.timer_at == t0 + active + 2 * KEEPALIVE_S       # every 30 s while silent
    assert c.on_timer(c.timer_at) == Timeout.KEEPALIVE
    assert c.state == State.ESTABLISHED


@FAST
@given(t0=GRID, answered=st.booleans())
def test_idle_connection_lives_while_the_namespace_answers_probes(t0, answered):
    """Two hours of silence from the namespace (probes unanswered) reset; a namespace that
    answers each probe keeps the connection forever (an idle ssh or database session)."""
    c = established_out(now=t0)
    t = t0
    resets = 0
    while t < t0 + 3 * IDLE_TIMEOUT_S:
        t = c.timer_at
        what = c.on_timer(t)
        if what == Timeout.RESET:
            resets += 1
            break
        if what == Timeout.KEEPALIVE and answered:
            c.tap_ack(c.seq_to_tap, W, False, t)
    assert resets == (0 if answered else 1)
    if not answered:
        assert t - t0 >= IDLE_TIMEOUT_S


def conn_in_state(kind: str, now: float) -> TcpConn:
    if kind == "syn_rcvd":
        return TcpConn.from_tap_syn(1, now, 2, W, None, None)
    if kind == "syn_sent":
        c = TcpConn.to_tap_syn(1, now)
        c.syn_sent(now)
        return c
    if kind == "idle":
        return established_out(now=now)
    c = established_out(now=now)
    c.sent(1000, now)
    if kind == "fin":
        c.fin_to_tap(now)
    return c


@FAST
@given(kind=st.sampled_from(["syn_rcvd", "syn_sent", "idle", "in_flight", "fin"]), t0=NOW,
       before=st.floats(0.001, 1.0, allow_nan=False))
def test_on_timer_before_the_deadline_does_nothing(kind, t0, before):
    c = conn_in_state(kind, t0)
    snapshot = (c.state, c.fin, c.timer_at, c.retrans, c.seq_to_tap, c.seq_ack_from_tap)
    assert c.on_timer(c.timer_at - before) == Timeout.NONE
    assert (c.state, c.fin, c.timer_at, c.retrans, c.seq_to_tap, c.seq_ack_from_tap) == snapshot


# ----------------------------------------------------------------------------- done()
@pytest.mark.parametrize("bits", range(32))
def test_done_needs_the_namespaces_fin_delivered_and_ours_acknowledged(bits):
    """SOCK_FIN_RCVD is not needed: our FIN goes out only after the host's EOF, so its
    acknowledgement stands for it (a rewind clears SOCK_FIN_RCVD until a re-peek)."""
    c = established_out()
    c.fin = Fin(bits)
    need = Fin.TAP_FIN_RCVD | Fin.TAP_FIN_ACKED | Fin.SOCK_FIN_SENT
    assert c.done() == (c.fin & need == need)


# ----------------------------------------------------------------------------- known bugs
def test_ack_for_data_sent_before_rewind_is_accepted():
    c = established_out()
    base = data_base(c)
    c.sent(3000, 1.0)
    c.rewind()
    assert c.tap_ack(seq_add(base, 3000), W, False, 2.0) == 3000
    assert c.seq_to_tap == c.seq_ack_from_tap == seq_add(base, 3000)


def test_zero_window_on_an_ack_of_everything_closes_the_window():
    c = established_out(window=10000)
    c.sent(1000, 1.0)
    assert c.tap_ack(seq_add(data_base(c), 1000), 0, False, 2.0) == 1000
    assert c.send_budget() == 0


def test_backoff_survives_the_retransmission_itself():
    c = established_out()
    c.sent(1000, 0.0)
    assert c.on_timer(2.0) == Timeout.RETRANSMIT
    backoff = c.timer_at
    assert backoff == 2.0 + 2 * ACK_TIMEOUT_S
    c.rewind()
    c.sent(1000, 2.0)                                  # what TcpCore.rewind_seq() does
    assert c.timer_at == backoff


def test_rewind_counts_data_bytes_only():
    c = established_out()
    c.sent(100, 1.0)
    c.fin_to_tap(1.0)
    assert c.rewind() == 100


def test_three_duplicates_of_the_handshake_ack_fast_retransmit():
    c = established_out()
    c.sent(3000, 1.0)
    for _ in range(DUP_ACKS):
        c.tap_ack(data_base(c), W, False, 2.0)
    assert c.fast_retransmit_due()


@pytest.mark.parametrize("kind", ["idle", "fin"])
def test_timeout_fires_exactly_at_the_deadline(kind):
    """Deadlines with values that are not exact in binary floating point: the timer fires at
    the time it was armed for, never re-arms itself at that same time (an endless loop)."""
    if kind == "idle":
        c = established_out(now=992.3)
    else:
        c = established_out(now=942.3)
        seq = c.fin_to_tap(942.3)
        c.tap_ack(seq_add(seq, 1), W, False, 942.3)
        c.tap_ack(seq_add(seq, 1), W, False, 8132.3)      # activity 10 s before the deadline
        assert c.on_timer(c.timer_at) == Timeout.NONE
        assert c.timer_at == 8132.3 + KEEPALIVE_S
    assert c.on_timer(c.timer_at) == Timeout.KEEPALIVE
    last = c.last_activity
    t = c.timer_at
    while t < last + IDLE_TIMEOUT_S:
        assert c.on_timer(t) == Timeout.KEEPALIVE
        t = c.timer_at
    assert c.on_timer(last + IDLE_TIMEOUT_S) == Timeout.RESET


# --------------------------------------------------------------------- zero-window probes
# The namespace's window update after a zero window is a bare ACK nobody retransmits; when the
# tap's queue drops it, only a probe reopens the flow (seen as 1 of 1000 flows stalled forever).

@FAST
@given(isn=SEQ, t0=GRID, acked_with_zero=st.booleans())
def test_zero_window_with_nothing_in_flight_arms_probes(isn, t0, acked_with_zero):
    c = established_out(isn=isn, now=t0)
    base = data_base(c)
    if acked_with_zero:            # the ACK of everything closes the window
        c.sent(1000, t0)
        assert c.tap_ack(seq_add(base, 1000), 0, False, t0 + 1) == 1000
    else:                          # a window update alone closes it
        assert c.tap_ack(base, 0, False, t0 + 1) == 0
    assert c.send_budget() == 0
    assert c.timer_at == t0 + 1 + ACK_TIMEOUT_S
    waits = []
    for _ in range(6):
        at = c.timer_at
        assert c.on_timer(at - 0.01) == Timeout.NONE
        assert c.on_timer(at) == Timeout.PROBE          # never a reset while zero
        waits.append(c.timer_at - at)
    assert waits == [ACK_TIMEOUT_S * m for m in (2, 4, 8, 8, 8, 8)]


def test_probe_answer_with_an_open_window_ends_probing():
    c = established_out()
    base = data_base(c)
    assert c.tap_ack(base, 0, False, 1.0) == 0
    assert c.on_timer(c.timer_at) == Timeout.PROBE
    assert c.tap_ack(base, 4000, False, 10.0) == 0     # the answer: window open again
    assert c.send_budget() == 4000 and c.probes == 0
    # No more probes: the next deadline is the keepalive one.
    assert c.on_timer(c.timer_at) == Timeout.NONE
    assert c.timer_at == 10.0 + KEEPALIVE_S


def test_zero_window_answer_keeps_probing_without_reset():
    c = established_out()
    base = data_base(c)
    assert c.tap_ack(base, 0, False, 1.0) == 0
    for i in range(MAX_RETRANS + 5):
        now = c.timer_at
        assert c.on_timer(now) == Timeout.PROBE
        assert c.tap_ack(base, 0, False, now + 0.001) == 0   # still closed: keep probing
        assert c.timer_at > now


def test_no_probe_after_our_fin_or_while_data_is_in_flight():
    c = established_out()
    base = data_base(c)
    c.sent(500, 0.0)
    c.tap_ack(base, 0, False, 0.5)      # zero with data in flight: the window is kept (pasta)
    assert c.on_timer(c.timer_at) == Timeout.RETRANSMIT
    d = established_out()
    d.fin_to_tap(1.0)
    d.tap_ack(seq_add(data_base(d), 1), 0, False, 1.5)
    assert d.on_timer(d.timer_at) != Timeout.PROBE


# --------------------------------------------------------------------- RFC 5961, RFC 9293 window
@FAST
@given(off=st.integers(-(1 << 31), (1 << 31) - 1), ws=st.integers(0, 14))
def test_rst_accepted_only_at_rcv_nxt_challenged_inside_the_window(off, ws):
    c = established_out(wscale=ws)
    c.window_to_tap(1 << 20)                       # we advertised this window
    wnd = c.wnd_to_tap
    got = c.tap_rst(seq_add(c.seq_from_tap, off), None)
    if off == 0:
        assert got == Rst.ACCEPT
    elif 0 < off < wnd:
        assert got == Rst.CHALLENGE
    else:
        assert got == Rst.IGNORE


@FAST
@given(ack=SEQ, with_ack=st.booleans())
def test_rst_in_syn_sent_must_acknowledge_our_syn(ack, with_ack):
    c = TcpConn.to_tap_syn(1000, 0.0)
    c.syn_sent(0.0)
    got = c.tap_rst(12345, ack if with_ack else None)
    assert got == (Rst.ACCEPT if with_ack and ack == 1001 else Rst.IGNORE)


def test_rst_while_the_host_connects_is_never_challenged():
    c = TcpConn.from_tap_syn(1, 0.0, 5000, W, 1460, None)
    assert c.tap_rst(5001, None) == Rst.ACCEPT
    assert c.tap_rst(5002, None) == Rst.IGNORE


@FAST
@given(older=st.integers(1, 5000), window=st.integers(0, W))
def test_old_acks_change_neither_data_nor_window(older, window):
    c = established_out()
    base = data_base(c)
    c.sent(10000, 1.0)
    assert c.tap_ack(seq_add(base, 8000), 30000, False, 2.0, seq=5001) == 8000
    assert c.tap_ack(seq_add(base, 8000 - older), window, False, 3.0, seq=5001) == 0
    assert c.wnd_from_tap == 30000 and c.seq_ack_from_tap == seq_add(base, 8000)


def test_window_only_from_the_newest_segment():
    """SND.WL1/SND.WL2: a reordered segment with an older sequence number (same ACK) does not
    set the window; a newer one does."""
    c = established_out()
    base = data_base(c)
    c.sent(1000, 1.0)
    assert c.tap_ack(seq_add(base, 1000), 20000, True, 2.0, seq=6000) == 1000
    c.tap_ack(seq_add(base, 1000), 500, True, 2.1, seq=5500)       # older segment
    assert c.wnd_from_tap == 20000
    c.tap_ack(seq_add(base, 1000), 700, False, 2.2, seq=6000)      # same segment seq, ACK >=
    assert c.wnd_from_tap == 700
    c.tap_ack(seq_add(base, 1000), 900, False, 2.3, seq=7000)      # newer
    assert c.wnd_from_tap == 900


@pytest.mark.parametrize("length,flags_ok,expect", [(0, True, True), (1, True, True),
                                                    (2, True, False), (0, False, False)])
def test_keepalive_from_the_namespace(length, flags_ok, expect):
    c = established_out()
    assert c.keepalive_from_tap(seq_add(c.seq_from_tap, -1), length, flags_ok) == expect
    assert not c.keepalive_from_tap(c.seq_from_tap, 0, True)


def test_newreno_first_segment_then_each_partial_ack_then_done():
    c = established_out()
    base = data_base(c)
    c.sent(10000, 1.0)
    for _ in range(DUP_ACKS):
        c.tap_ack(base, W, False, 2.0)
    assert c.fast_retransmit_due()
    assert c.first_unacked() == (base, 10000)
    assert c.seq_to_tap == seq_add(base, 10000)     # no going back N
    assert c.tap_ack(seq_add(base, 3000), W, False, 2.1) == 3000
    assert c.partial_ack_due() and not c.partial_ack_due()        # once per partial ACK
    assert c.first_unacked() == (seq_add(base, 3000), 7000)
    assert c.tap_ack(seq_add(base, 10000), W, False, 2.2) == 7000
    assert not c.partial_ack_due() and c.recover is None


def test_partial_acks_after_a_timeout_rewind_resend_nothing_extra():
    """Go-back-N after an ACK timeout re-sends everything anyway: partial ACKs there are not
    holes to repair."""
    c = established_out()
    base = data_base(c)
    c.sent(10000, 1.0)
    assert c.on_timer(c.timer_at) == Timeout.RETRANSMIT
    c.rewind()
    c.sent(4000, 4.0)
    c.tap_ack(seq_add(base, 2000), W, False, 4.1)
    assert not c.partial_ack_due()


def test_first_unacked_leaves_out_our_fin():
    c = established_out()
    base = data_base(c)
    c.sent(100, 1.0)
    c.fin_to_tap(1.0)
    assert c.first_unacked() == (base, 100)


# ------------------------------------------------------------ window from an autotuned buffer
def test_sndbuf_usable_scales_from_all_at_128_kib_to_three_quarters_at_4_mib():
    assert sndbuf_usable(100_000) == 100_000
    assert sndbuf_usable(SNDBUF_SMALL) == SNDBUF_SMALL
    assert sndbuf_usable(SNDBUF_BIG) == SNDBUF_BIG * 3 // 4
    assert sndbuf_usable(16 << 20) == 12 << 20
    mid = (SNDBUF_SMALL + SNDBUF_BIG) // 2          # halfway: 87.5 %
    assert abs(sndbuf_usable(mid) - mid * 7 // 8) <= 1


def test_window_from_an_empty_autotuned_buffer_is_its_usable_part():
    assert wnd_from_sndbuf(87040, 0, 0, 1460) == 87040
    assert wnd_from_sndbuf(8 << 20, 0, 0, 65000) == 6 << 20


def test_window_counts_whole_segments_with_the_queue_overhead():
    # 10 segments of 1000 bytes queued, costing 1500 each: 500 bytes of overhead per segment;
    # 85000 free bytes hold 56 more segments (1500 each).
    assert wnd_from_sndbuf(100_000, 15_000, 10_000, 1000) == 56 * 1000


def test_window_below_one_segment_is_zero_while_data_is_queued():
    assert wnd_from_sndbuf(100_000, 99_000, 66_000, 1000) == 0      # 1000 left, 1500 a segment
    assert wnd_from_sndbuf(100_000, 100_001, 66_000, 1000) == 0     # over the limit
    assert wnd_from_sndbuf(1000, 500, 0, 1460) == 500               # nothing queued: offered


@given(st.integers(0, 1 << 26), st.integers(0, 1 << 26), st.integers(0, 1 << 26),
       st.integers(1, 65495))
def test_window_never_exceeds_the_buffer_free_memory(sndbuf, wmemq, sendq, mss):
    w = wnd_from_sndbuf(sndbuf, wmemq, sendq, mss)
    assert 0 <= w <= max(0, sndbuf - wmemq)
    assert w == 0 or w >= mss or not sendq
