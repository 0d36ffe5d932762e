"""TCP through the tap, decided in plain code (sans-IO): the numbers of each connection
(`TcpConn`) and what to do on each tap segment, socket event and timer (`TcpCore`).

Purpose: decide every sequence number, acknowledgement, window and timeout of each connection
between the namespace (through the tap) and a host socket, and every action on that socket,
without doing any I/O (pasta-reference.md section 14). The I/O shell (`pasta.shell.tcp_buf`) owns the
sockets, the frame buffer and epoll, and only carries out what the core asks for.

Theory of operation, the split: `TcpCore` holds the flow table (`flows`, by tap tuple) and the
decisions of passt's tcp.c, under its names: `tap_handler` (a segment from the tap),
`conn_from_tap` (a SYN without a flow), `data_from_tap` (ACK, data and FIN of a segment),
`connect_finish` (the host's connect() completed), `conn_from_sock` (an accepted host connection: a
SYN to the namespace) and `conn_from_sock_finish` (the namespace's SYN,ACK), `sock_handler` (socket
events), `data_from_sock` (peek and send within the window), `revert_seq` (the tap refused a data
segment), `rewind_seq` (ACK timeout, go-back-N), `fast_retransmit` (NewReno), `update_seqack_wnd`
(window and ACK number of a segment), `send_flag`, `rst`, `rst_no_conn`, `timer_handler` (one
flow's deadline passed, from `sweep`), `defer_handler` (the ACKs due at the end of a batch) and
`tap_window_update` (a small window re-opened). It calls a narrow shell object `io`, typed by
`TcpIo` (peek into the frame buffer, send a segment or an RST, write, discard, set the peek offset,
shut down, close or reset, epoll interest, free room of the send buffer, new sockets, the clock and
deferred work), directly rather than through action records, so the hot path allocates nothing per
segment. Hard socket errors reach the core as OSError, which it turns into a reset of that flow
only; EAGAIN is a value (None or 0). `tests/unit/test_tcp_core.py` drives the core with a fake `io`
that records these calls.

The numbers (`TcpConn`; pasta's design: no data buffers in pypasta):
- Namespace -> host: `tap_data(seq, length, fin)` returns which part of a segment is new and in
  order (`(skip, take)`); `TcpCore` writes that part to the socket and reports how much the
  socket accepted with `written(n)`. Only written bytes are acknowledged to the namespace
  (`seq_from_tap` is the next byte expected); what the socket refused is simply not acknowledged
  and the namespace retransmits it.
- Host -> namespace: data stays in the socket's receive queue. `send_budget()` says how many bytes
  may be peeked and sent now (the namespace's window minus what is in flight); `sent(n)` advances
  `seq_to_tap`. `tap_ack(ack, window)` returns how many bytes the namespace newly acknowledged:
  `TcpCore` discards exactly that many from the socket. A third duplicate ACK, or an ACK timeout,
  rewinds `seq_to_tap` to the last acknowledged byte (`rewind()`): `TcpCore` re-peeks from there.
- Window to the namespace: given by `io.space` (free space in the socket's send buffer), scaled by
  `ws_to_tap`.
- Timers are one deadline, `timer_at`, compared with `now` by `on_timer(now)`:
  - handshake: while the host's connect() is in progress (SYN_RCVD), no reset: the host
    kernel's own SYN retries bound the connect, and no pypasta clock ever resets a connection
    the namespace still tries. Only a namespace that stopped retrying its SYN (no
    retransmission within `SYN_QUIET_S` of the first, then 2.5 times the last gap plus a
    second: a kernel's gaps at most double) is forgotten, silently (`Timeout.ABANDON`): its
    kernel has given up, or the SYN was never a real client's. Our SYN
    (inbound) and SYN,ACK (outbound) are retransmitted after 1 s, doubling, `SYN_RETRIES`
    times (the kernel's default tcp_syn_retries), then reset;
  - ACK timeout (2 s doubling, 7 retransmissions then reset);
  - FIN (60 s once both directions are shut: our FIN acknowledged, the host socket's write
    side shut; nothing can flow any more);
  - keepalive: after `KEEPALIVE_S` (30 s) without a segment from the namespace, a keepalive
    probe (an ACK one sequence number back, which the namespace must answer) every 30 s, as
    pasta 2026; a vanished endpoint answers with an RST. Idle (`IDLE_TIMEOUT_S`, 7200 s
    without any segment from the namespace, probes unanswered) resets. A live namespace
    answers every probe, so an idle ssh or database connection is never reset.
  Half-closed connections are kept alive the same way (pasta 2026 has no FIN timeout either).
- Zero window: while the namespace's window is zero and nothing is in flight, a persist timer
  (`ACK_TIMEOUT_S`, doubling up to 8x) asks for a probe. The namespace's window update is a
  bare ACK that nobody retransmits; if it is lost (the tap's queue overflows under load), only
  a probe's answer reopens the flow. Probes never reset a flow: a peer that answers is alive.
- Loss recovery (NewReno, RFC 6582): three duplicate ACKs retransmit the first unacknowledged
  segment only (`Timeout`-free `fast_retransmit_due()`, then `TcpCore.fast_retransmit`) and
  set the recovery point at the highest byte sent; while in recovery, an ACK that advances but
  stays below it (a partial ACK) retransmits the next hole at once
  (`partial_ack_due()`); the ACK timeout instead rewinds to the last acknowledged byte and
  re-sends everything (go-back-N).
- Window from the namespace (RFC 9293 3.10.7.4): taken from an ACK only if it is not older
  than the last one (SND.UNA <= SEG.ACK) and it is the newest segment (SND.WL1/SND.WL2), so
  reordered or old ACKs never shrink or grow it.
- RST from the namespace (RFC 5961 3.2, `tap_rst()`): accepted only at exactly the next
  expected sequence number; inside the window it gets a challenge ACK, outside it is ignored.
  A SYN on a synchronised flow gets a challenge ACK too (RFC 5961 4.2): a namespace that
  reuses the tuple answers it with an RST at the right sequence, and its next SYN opens a new
  flow.

- Acknowledgements to the namespace (`TcpCore.write`): at the end of the tap batch once two
  full segments or more are unacknowledged or the window left to the namespace is below a
  segment, else within ACK_INTERVAL_S (10 ms, pasta's ACK_TO_TAP_DUE) or on the next segment we
  send back. A window advertised below one segment is re-checked every ACK_INTERVAL_S
  (`tap_window_update`); after a short write, EPOLLOUT brings a window update and three
  duplicates of it, so the namespace retransmits at once.
- Flows live in the flow table (`pasta.core.flow`, type TCP, hashed by their tap side; at most
  MAX_FLOWS, a SYN beyond that gets an RST). Timers of all flows: the table's sweep timer
  calls `sweep`, which calls `timer_handler` for each flow whose `timer_at` passed.

States: `State.SYN_RCVD` (the namespace's SYN seen, host connect in progress),
`State.SYN_ACK_SENT` (connected, our SYN,ACK sent, waiting for the namespace's ACK),
`State.SYN_SENT` (inbound: our SYN sent to the namespace), `State.ESTABLISHED`, `State.CLOSED`.
Per flow, besides its `TcpConn`, `TcpFlow` records the core's
decisions about the socket: `partial` (a short write waits for EPOLLOUT), `wnd_low`,
`drained` (all queued data is in flight: an ACK need not peek), `rdhup`, `keepalive`,
`tap_retry`, `closed`; `events`, `registered` and `out_armed` are kept by the shell.
Orthogonal flags: `Fin.SOCK_FIN_RCVD` (host side EOF), `Fin.SOCK_FIN_SENT` (we shut the host
socket's write side), `Fin.TAP_FIN_RCVD`, `Fin.TAP_FIN_SENT`, `Fin.TAP_FIN_ACKED`. Timer
outcomes: `Timeout.NONE`, `Timeout.RETRANSMIT` (rewind and re-send), `Timeout.RESET`,
`Timeout.PROBE` (send a zero-window probe: an ACK one sequence number back, which the
namespace must answer with its current window), `Timeout.KEEPALIVE` (the same segment, after
`KEEPALIVE_S` of silence), `Timeout.RESEND_SYN` (our SYN or SYN,ACK again), `Timeout.ABANDON`
(forget a flow whose namespace stopped retrying its SYN, without an RST). `Rst.ACCEPT`,
`Rst.CHALLENGE`, `Rst.IGNORE`: what `tap_rst()` decides.

Invariants: all sequence arithmetic is modulo 2**32 (`seq_diff`, `seq_lt`...);
`seq_ack_from_tap <= seq_to_tap` (in sequence space); a byte is acknowledged to the namespace only
after the host socket accepted it; bytes are discarded from the host socket only after the
namespace acknowledged them, so nothing is lost if either side stalls. A flow is in `flows`
until `TcpCore.close`, which has the shell close its socket in the same step; the shell's
peek offset always equals `in_flight()` minus an unacknowledged FIN (`revert_seq` and
`fast_retransmit` restore it).

Limits and not handled: no SACK, no timestamps, no urgent data; out-of-order segments from the
namespace are dropped (a duplicate ACK asks for a retransmission), as pasta does.

Kernel assumptions: none here (see `pasta.shell.tcp_buf`); the epoll bits (EPOLLIN...) are Linux's
values, defined here because a core module may not import `select`.

Differences from passt: the ACK sent to the namespace covers everything the host socket accepted
(pasta's choice for local peers and small buffers); pasta can instead reflect the remote peer's
acknowledgements from TCP_INFO for far-away peers. passt's tcp.c functions take the
context and call the kernel themselves; here they are methods of `TcpCore` that call the shell
object, under the same names so that a reader of tcp.c finds them. The STYLE.md sketch of action
records (one list per segment) is not used: on the hot path (iperf3 at ~10 Gbit/s) it would
allocate per segment, and the calls say the same thing.
"""

from __future__ import annotations

import enum
import errno
from typing import Optional, Protocol

from pasta.core import fwd
from pasta.core.flow import Flow, FlowSide, FlowTab, FlowType, Pif
from pasta.core.wire.l4 import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN

SEQ_MOD = 1 << 32
SYN_RTO_S = 1.0
SYN_RETRIES = 6
SYN_QUIET_S = 3.0               # a first SYN retransmission comes after 1 s (3 s: RFC 1122)
ACK_TIMEOUT_S = 2.0
FIN_TIMEOUT_S = 60.0
KEEPALIVE_S = 30.0
IDLE_TIMEOUT_S = 7200.0
MAX_RETRANS = 7
MAX_WINDOW = 1 << 24
WS_TO_TAP = 8
MSS_DEFAULT = 536
DUP_ACKS = 3


class State(enum.IntEnum):
    SYN_RCVD = 1
    SYN_ACK_SENT = 2
    SYN_SENT = 3
    ESTABLISHED = 4
    CLOSED = 5


class Fin(enum.IntFlag):
    SOCK_FIN_RCVD = 1
    SOCK_FIN_SENT = 2
    TAP_FIN_RCVD = 4
    TAP_FIN_SENT = 8
    TAP_FIN_ACKED = 16


class Timeout(enum.IntEnum):
    """What `on_timer()` asks `TcpCore.timer_handler` to do."""

    NONE = 0
    RETRANSMIT = 1
    RESET = 2
    PROBE = 3
    KEEPALIVE = 4
    RESEND_SYN = 5
    ABANDON = 6


class Rst(enum.IntEnum):
    """What to do with an RST from the namespace (RFC 5961 3.2)."""

    IGNORE = 0
    ACCEPT = 1
    CHALLENGE = 2


def seq_diff(a: int, b: int) -> int:
    """a - b in sequence space, as a signed 32-bit value."""
    d = (a - b) & 0xFFFFFFFF
    return d - SEQ_MOD if d & 0x80000000 else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_add(a: int, n: int) -> int:
    return (a + n) & 0xFFFFFFFF


def mss_for_mtu(mtu: int, v6: bool, page: int = 4096) -> int:
    """MSS we advertise to the namespace (section 8): MTU minus headers, page-rounded if large."""
    mss = mtu - 20 - (40 if v6 else 20)
    if mss > page:
        mss -= mss % page
    return max(mss, MSS_DEFAULT)

SNDBUF_SMALL, SNDBUF_BIG = 128 << 10, 4 << 20


def sndbuf_usable(sndbuf: int) -> int:
    """How much of a send buffer the window may fill: all of it below 128 KiB, 75 % above
    4 MiB, linearly in between (pasta 2026's clamped_scale(sndbuf, sndbuf, SNDBUF_SMALL,
    SNDBUF_BIG, 75))."""
    if sndbuf < SNDBUF_SMALL:
        return sndbuf
    if sndbuf > SNDBUF_BIG:
        return sndbuf * 3 // 4
    return sndbuf - sndbuf * (sndbuf - SNDBUF_SMALL) // (SNDBUF_BIG - SNDBUF_SMALL) // 4


def wnd_from_sndbuf(sndbuf: int, wmemq: int, sendq: int, mss: int) -> int:
    """Window to offer the namespace from an autotuned send buffer (pasta 2026's
    tcp_wnd_from_sndbuf): `sndbuf` and `wmemq` (memory queued, with per-skb overhead) from
    SO_MEMINFO, `sendq` (payload queued) from SIOCOUTQ. With nothing queued, the usable part
    of the buffer (`sndbuf_usable`); else its free memory counted in whole segments, each
    costing `mss` plus the overhead seen on the queued ones (as pasta, the whole buffer). Below
    one segment the window is zero while data is queued (RFC 813: no silly window; the queue
    draining reopens it)."""
    if wmemq >= sndbuf:
        return 0
    if not sendq or not mss or wmemq <= sendq:
        free = max(0, sndbuf_usable(sndbuf) - wmemq)
    else:
        overhead = (wmemq - sendq) // max(sendq // mss, 1)
        free = (sndbuf - wmemq) // (mss + overhead) * mss
    if free < mss and sendq:
        return 0
    return free


class TcpConn:
    """Numbers and states of one connection (module docstring)."""

    __slots__ = ("state", "fin", "seq_to_tap", "seq_ack_from_tap", "seq_from_tap",
                 "seq_ack_to_tap", "seq_init_to_tap", "wnd_from_tap", "ws_from_tap", "ws_to_tap",
                 "mss_to_tap", "retrans", "dup_acks", "last_ack_seen", "timer_at", "last_activity",
                 "fin_seq_to_tap", "_wnd_raw", "recover", "seq_max", "probes", "wl1", "wl2",
                 "wnd_to_tap", "partial_ack", "fast_recovery", "syn_at")

    def __init__(self, isn: int, now: float):
        self.state = State.SYN_RCVD
        self.fin = Fin(0)
        self.seq_init_to_tap = isn & 0xFFFFFFFF
        self.seq_to_tap = self.seq_init_to_tap        # next sequence number we send
        self.seq_ack_from_tap = self.seq_init_to_tap  # highest ACK from the namespace
        self.seq_from_tap = 0                         # next byte expected from the namespace
        self.seq_ack_to_tap = 0                       # last ACK number we sent
        self.wnd_from_tap = 65535
        self._wnd_raw = 65535
        self.ws_from_tap = 0
        self.ws_to_tap = 0
        self.mss_to_tap = MSS_DEFAULT
        self.retrans = 0
        self.dup_acks = 0
        self.last_ack_seen = None
        # SYN_RCVD: the namespace must retry its SYN by then (tap_syn_again); SYN_SENT: set
        # by syn_sent()
        self.timer_at = now + SYN_QUIET_S
        self.syn_at = now               # the namespace's last SYN (SYN_RCVD)
        self.last_activity = now
        self.fin_seq_to_tap = None
        self.recover = None             # in recovery: duplicate ACKs ignored until acked
        self.partial_ack = False        # a partial ACK in recovery: retransmit the next hole
        self.fast_recovery = False      # recovery entered by duplicate ACKs (not by timeout)
        self.seq_max = self.seq_init_to_tap           # highest sequence number ever sent + 1
        self.probes = 0                 # zero-window probes sent since the window closed
        self.wl1 = 0                    # SND.WL1, SND.WL2: the segment of the last window
        self.wl2 = 0                    # update (RFC 9293)
        self.wnd_to_tap = 65535         # the window we last advertised, in bytes

    # ----------------------------------------------------------------- set-up
    @classmethod
    def from_tap_syn(cls, isn: int, now: float, seq: int, window: int, mss, wscale) -> "TcpConn":
        """A connection opened by the namespace's SYN (options as parsed; None if absent)."""
        c = cls(isn, now)
        c.seq_from_tap = seq_add(seq, 1)
        c.seq_ack_to_tap = c.seq_from_tap
        c.wl1 = seq
        c._peer_options(window, mss, wscale)
        return c

    @classmethod
    def to_tap_syn(cls, isn: int, now: float) -> "TcpConn":
        """A connection we open towards the namespace (inbound -t); send SYN next."""
        c = cls(isn, now)
        c.state = State.SYN_SENT
        c.ws_to_tap = WS_TO_TAP
        return c

    def _peer_options(self, window: int, mss, wscale) -> None:
        self.mss_to_tap = mss if mss else MSS_DEFAULT
        if wscale is not None:
            self.ws_from_tap = min(wscale, 14)
            self.ws_to_tap = WS_TO_TAP
        else:
            self.ws_from_tap = self.ws_to_tap = 0
        self._wnd_raw = window
        self.wnd_from_tap = window                    # SYN windows are never scaled

    def tap_syn_again(self, now: float) -> None:
        """SYN_RCVD: the namespace retransmitted its SYN while the host still connects: it is
        alive; wait for its next one (its gaps at most double)."""
        gap = now - self.syn_at
        self.syn_at = now
        self.timer_at = now + max(SYN_QUIET_S, 2.5 * gap + 1.0)

    def syn_ack_sent(self, now: float) -> None:
        """Outbound: host connected, we sent SYN,ACK (it uses seq_to_tap, then +1)."""
        self.seq_to_tap = self.seq_max = seq_add(self.seq_init_to_tap, 1)
        self.seq_ack_from_tap = self.seq_init_to_tap
        self.state = State.SYN_ACK_SENT
        self.retrans = 0
        self.timer_at = now + SYN_RTO_S

    def syn_sent(self, now: float) -> None:
        """Inbound: our SYN went to the namespace."""
        self.seq_to_tap = self.seq_max = seq_add(self.seq_init_to_tap, 1)
        self.retrans = 0
        self.timer_at = now + SYN_RTO_S

    def tap_syn_ack(self, seq: int, ack: int, window: int, mss, wscale, now: float) -> bool:
        """Inbound: the namespace's SYN,ACK. False if it does not acknowledge our SYN."""
        if self.state != State.SYN_SENT or ack != self.seq_to_tap:
            return False
        self._peer_options(window, mss, wscale)
        self.seq_from_tap = seq_add(seq, 1)
        self.seq_ack_to_tap = self.seq_from_tap
        self.seq_ack_from_tap = ack
        self.last_ack_seen = ack
        self.wl1, self.wl2 = seq, ack
        self.state = State.ESTABLISHED
        self.last_activity = now
        self._progress(now)
        return True

    # ----------------------------------------------------------------- RST and SYN from the namespace
    def tap_rst(self, seq: int, ack: int | None) -> Rst:
        """An RST from the namespace (`ack` None without the ACK flag): RFC 5961 3.2."""
        if self.state == State.SYN_SENT:
            # RFC 9293 3.10.7.3: in SYN-SENT only an RST acknowledging our SYN counts
            return Rst.ACCEPT if ack is not None and ack == self.seq_to_tap else Rst.IGNORE
        if seq == self.seq_from_tap:
            return Rst.ACCEPT
        if self.state == State.SYN_RCVD:
            return Rst.IGNORE                         # nothing sent yet: nothing to challenge
        off = seq_diff(seq, self.seq_from_tap)
        if 0 < off < max(self.wnd_to_tap, 1):
            return Rst.CHALLENGE
        return Rst.IGNORE

    # ----------------------------------------------------------------- ACKs from the namespace
    def tap_ack(self, ack: int, window: int, has_data: bool, now: float,
                seq: int | None = None) -> int:
        """Apply an ACK from the namespace; returns the number of bytes newly acknowledged.

        The SYN (and a FIN) we sent take one sequence number each but no socket data: they are
        not counted in the result. `seq` is the segment's sequence number, for the window
        update rule (None: the window is taken from any ACK that is not old).
        """
        self.last_activity = now
        if self.state == State.SYN_ACK_SENT:
            if ack != self.seq_to_tap:
                return 0
            self.state = State.ESTABLISHED
            self.seq_ack_from_tap = ack
            self.last_ack_seen = ack
            self._set_window(window)
            if seq is not None:
                self.wl1, self.wl2 = seq, ack
            self._progress(now)
            return 0
        if seq_lt(self.seq_max, ack):
            return 0                                  # acknowledges data never sent: ignore
        acked = seq_diff(ack, self.seq_ack_from_tap)
        if acked < 0:
            return 0                                  # old: neither data nor window (RFC 9293)
        if seq is not None:
            if not (seq_lt(self.wl1, seq) or (self.wl1 == seq and seq_le(self.wl2, ack))):
                window = self._wnd_raw                # an older segment's window: keep ours
            else:
                self.wl1, self.wl2 = seq, ack
        same_window = window == self._wnd_raw
        if acked == 0:
            self._set_window(window)
            if self._zero_window():
                if self.timer_at > now + ACK_TIMEOUT_S:
                    self.timer_at = now + ACK_TIMEOUT_S       # start probing
            else:
                self.probes = 0
            # RFC 5681 duplicate ACK: nothing new acknowledged, no data, same window, and data
            # outstanding.
            if (acked == 0 and not has_data and same_window and self.in_flight()
                    and self.last_ack_seen == ack and self.recover is None):
                self.dup_acks += 1
            self.last_ack_seen = ack
            return 0
        self.last_ack_seen = ack
        self.dup_acks = 0
        self.seq_ack_from_tap = ack
        self._set_window(window)
        if self.recover is not None:
            if seq_le(self.recover, ack):
                self.recover = None                   # full ACK: recovery is over
                self.fast_recovery = False
            elif self.fast_recovery and seq_lt(ack, self.seq_to_tap):
                self.partial_ack = True               # the next hole: retransmit it now
        if seq_lt(self.seq_to_tap, ack):
            self.seq_to_tap = ack                     # acknowledged beyond a rewind
        data = acked
        if (self.fin_seq_to_tap is not None and seq_lt(self.fin_seq_to_tap, ack)
                and not self.fin & Fin.TAP_FIN_ACKED):
            self.fin |= Fin.TAP_FIN_ACKED | Fin.TAP_FIN_SENT
            data -= 1                                 # the FIN's sequence number
        self._progress(now)
        return max(data, 0)

    def _set_window(self, window: int) -> None:
        self._wnd_raw = window
        wnd = min(window << self.ws_from_tap, MAX_WINDOW)
        if wnd == 0 and self.seq_to_tap != self.seq_ack_from_tap:
            return                  # pasta: a window shrinking to zero with data in flight
        self.wnd_from_tap = wnd

    def fast_retransmit_due(self) -> bool:
        """Three duplicate ACKs: enter recovery; `TcpCore.fast_retransmit` re-sends
        the first segment."""
        if self.dup_acks >= DUP_ACKS:
            self.dup_acks = 0
            self.recover = self.seq_max
            self.fast_recovery = True
            return True
        return False

    def partial_ack_due(self) -> bool:
        """In recovery, an ACK advanced to the next hole: `TcpCore.fast_retransmit` re-sends
        it."""
        if self.partial_ack:
            self.partial_ack = False
            return self.in_flight() > 0
        return False

    def first_unacked(self) -> tuple[int, int]:
        """(sequence number, data bytes in flight) of the first unacknowledged segment: what a
        fast retransmission re-sends from the socket's queue head (offset 0)."""
        n = self.in_flight()
        if self.fin & Fin.TAP_FIN_SENT and not self.fin & Fin.TAP_FIN_ACKED:
            n -= 1
        return self.seq_ack_from_tap, max(n, 0)

    def _zero_window(self) -> bool:
        """The namespace's window is closed with nothing in flight: only probes can tell us
        when it reopens."""
        return (self.wnd_from_tap == 0 and self.state == State.ESTABLISHED
                and not self.in_flight() and not self.fin & Fin.TAP_FIN_SENT)

    def _progress(self, now: float) -> None:
        self.retrans = 0
        self.probes = 0
        if self.in_flight() or self._zero_window():
            self.timer_at = now + ACK_TIMEOUT_S
        elif self.fin & Fin.SOCK_FIN_SENT and self.fin & Fin.TAP_FIN_ACKED:
            self.timer_at = now + FIN_TIMEOUT_S
        else:
            self.timer_at = self.last_activity + KEEPALIVE_S

    # ----------------------------------------------------------------- host -> namespace
    def in_flight(self) -> int:
        return seq_diff(self.seq_to_tap, self.seq_ack_from_tap)

    def send_budget(self) -> int:
        """Bytes that may be sent to the namespace now (its window minus what is in flight)."""
        if self.state != State.ESTABLISHED or self.fin & Fin.TAP_FIN_SENT:
            return 0
        return max(0, self.wnd_from_tap - self.in_flight())

    def sent(self, n: int, now: float) -> None:
        if n and not self.in_flight() and not self.retrans:
            self.timer_at = now + ACK_TIMEOUT_S       # (a retransmission keeps its backoff)
        self.seq_to_tap = seq_add(self.seq_to_tap, n)
        if seq_lt(self.seq_max, self.seq_to_tap):
            self.seq_max = self.seq_to_tap

    def fin_to_tap(self, now: float) -> int:
        """We send FIN to the namespace (host EOF and all data sent); returns its sequence."""
        self.fin |= Fin.TAP_FIN_SENT
        self.fin_seq_to_tap = self.seq_to_tap
        seq = self.seq_to_tap
        self.seq_to_tap = seq_add(seq, 1)
        if seq_lt(self.seq_max, self.seq_to_tap):
            self.seq_max = self.seq_to_tap
        if not self.retrans:
            self.timer_at = now + ACK_TIMEOUT_S
        return seq

    def rewind(self) -> int:
        """Go back to the last acknowledged byte; returns how many bytes to re-send."""
        unacked = self.in_flight()
        self.recover = self.seq_to_tap
        self.partial_ack = self.fast_recovery = False
        self.seq_to_tap = self.seq_ack_from_tap
        if self.fin & Fin.TAP_FIN_SENT and not self.fin & Fin.TAP_FIN_ACKED:
            # The FIN goes again after the data; its sequence number stays known, so an ACK
            # that covers it before it is re-sent still marks it acknowledged.
            self.fin &= ~Fin.TAP_FIN_SENT
            unacked -= 1                             # (its sequence number is not data)
        return max(unacked, 0)

    # ----------------------------------------------------------------- namespace -> host
    def tap_data(self, seq: int, length: int) -> tuple[int, int]:
        """(bytes to skip at the start of the payload, bytes to write): the new, in-order part.

        (0, 0) for a duplicate; (-1, 0) for an out-of-order segment (a gap: ask again).
        """
        off = seq_diff(self.seq_from_tap, seq)
        if off < 0:
            return -1, 0
        if off >= length:
            return 0, 0
        return off, length - off

    def written(self, n: int) -> None:
        self.seq_from_tap = seq_add(self.seq_from_tap, n)

    def tap_fin(self, seq_after_data: int) -> bool:
        """The namespace's FIN at `seq_after_data`: accepted once all data before it arrived."""
        if seq_after_data != self.seq_from_tap or self.fin & Fin.TAP_FIN_RCVD:
            return False
        self.fin |= Fin.TAP_FIN_RCVD
        self.seq_from_tap = seq_add(self.seq_from_tap, 1)
        return True

    def ack_due(self) -> bool:
        return self.seq_ack_to_tap != self.seq_from_tap

    def window_to_tap(self, space: int) -> int:
        """Window field for a segment to the namespace, from the host socket's free space."""
        field = min(min(max(space, 0), MAX_WINDOW) >> self.ws_to_tap, 65535)
        self.wnd_to_tap = field << self.ws_to_tap
        return field

    def keepalive_from_tap(self, seq: int, length: int, flags_ok: bool) -> bool:
        """A keepalive probe from the namespace: no SYN/FIN/RST (`flags_ok`), at most one
        byte, one sequence number before the next expected one (RFC 9293 3.8.4)."""
        return flags_ok and length <= 1 and seq_add(seq, 1) == self.seq_from_tap

    # ----------------------------------------------------------------- timers
    def on_timer(self, now: float) -> Timeout:
        """What to do when the deadline `timer_at` has passed."""
        if now < self.timer_at:
            return Timeout.NONE
        if self.state == State.SYN_RCVD:
            return Timeout.ABANDON                    # the namespace stopped retrying its SYN
        if self.state in (State.SYN_ACK_SENT, State.SYN_SENT):
            self.retrans += 1
            if self.retrans > SYN_RETRIES:
                return Timeout.RESET
            self.timer_at = now + SYN_RTO_S * (1 << self.retrans)
            return Timeout.RESEND_SYN
        if self.fin & Fin.SOCK_FIN_SENT and self.fin & Fin.TAP_FIN_ACKED:
            return Timeout.RESET
        if self.in_flight():
            self.retrans += 1
            if self.retrans > MAX_RETRANS:
                return Timeout.RESET
            self.timer_at = now + ACK_TIMEOUT_S * (1 << min(self.retrans, 4))
            return Timeout.RETRANSMIT
        if self._zero_window():
            self.probes += 1
            self.timer_at = now + ACK_TIMEOUT_S * (1 << min(self.probes, 3))
            return Timeout.PROBE
        # (deadlines compared as computed: `now - last >= T` can differ from `now >= last + T`
        # in floating point, and the timer must never be re-armed at a time already passed)
        if now >= self.last_activity + IDLE_TIMEOUT_S:
            return Timeout.RESET                      # probes unanswered for two hours
        keepalive = self.last_activity + KEEPALIVE_S
        if now >= keepalive:
            self.timer_at = now + KEEPALIVE_S
            return Timeout.KEEPALIVE
        self.timer_at = keepalive
        return Timeout.NONE

    def done(self) -> bool:
        """Both directions finished and our FIN acknowledged: the flow can go. (Our FIN goes
        to the namespace only after the host's EOF, so its acknowledgement stands for that EOF
        too: a rewind forgets SOCK_FIN_RCVD until a re-peek finds it again, and a flow whose
        data is all acknowledged may never peek again.)"""
        f = self.fin
        return bool(f & Fin.TAP_FIN_RCVD and f & Fin.TAP_FIN_ACKED and f & Fin.SOCK_FIN_SENT)


# ===================================================================== the decisions of tcp.c
# Linux's epoll bits (the values of select.EPOLL*, which a core module may not import): the
# socket events `TcpCore.sock_handler` reads and the interest it asks `TcpIo.want` for.
EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP = 0x001, 0x004, 0x008, 0x010, 0x2000
IPPROTO_TCP = 6

ACK_INTERVAL_S = 0.01
MAX_FLOWS = 16384
SOCK_BUF = 4 << 20
SEGMENTS_PER_WAKEUP = 16
# A connect() or socket() failing with these is our own shortage (ports, fds, memory): the SYN
# is dropped, the namespace retries, instead of an RST.
LOCAL_ERRNOS = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE, errno.ENOBUFS, errno.EMFILE,
                          errno.ENFILE, errno.ENOMEM})


class TcpIo(Protocol):
    """What `TcpCore` asks of its shell (`pasta.shell.tcp_buf.TcpFlows`; a fake in the unit tests).
    Hard socket errors are raised as OSError; EAGAIN is a value."""

    now: float

    def send(self, f: "TcpFlow", flags: int, seq: int, ack: int, window: int, plen: int,
             mss: int | None = None, wscale: int | None = None) -> bool:
        """A segment to the tap (payload: the last `peek`); False if the tap refused it."""

    def send_rst(self, key, seq: int, ack: int | None) -> None:
        """An RST (with ACK unless `ack` is None) for a tuple, flow or not."""

    def peek(self, f: "TcpFlow", n: int) -> int | None:
        """Up to `n` bytes at the peek offset; 0 at EOF, None if nothing more is queued."""

    def write(self, f: "TcpFlow", data) -> int:
        """Bytes the socket took (0 if none)."""

    def discard(self, f: "TcpFlow", n: int) -> None:
        """Drop `n` acknowledged bytes from the head of the receive queue."""

    def set_peek_off(self, f: "TcpFlow", offset: int) -> None: ...

    def shutdown_wr(self, f: "TcpFlow") -> None: ...

    def keepalive(self, f: "TcpFlow") -> None:
        """Turn SO_KEEPALIVE on."""

    def sock_close(self, f: "TcpFlow", reset: bool) -> None:
        """Close the socket (unregistered first); `reset`: SO_LINGER 0, an RST to the peer."""

    def space(self, f: "TcpFlow", fresh: bool = False) -> int:
        """Free room of the send buffer (`fresh`: measured now, not estimated)."""

    def want(self, f: "TcpFlow", events: int) -> None:
        """Epoll interest (edge-triggered); re-registers a parked socket."""

    def park(self, f: "TcpFlow") -> None:
        """Out of the epoll set until `want` asks again."""

    def add(self, f: "TcpFlow", events: int) -> bool:
        """Register a new flow's socket; False (socket closed) if epoll refused it."""

    def open(self, key, conn: TcpConn, bind_addr, ifname) -> "TcpFlow":
        """A flow with a new socket for an outbound connection."""

    def connect(self, f: "TcpFlow", sockaddr) -> int:
        """Start a non-blocking connect; its errno (0, EINPROGRESS...)."""

    def connect_error(self, f: "TcpFlow", out: int) -> int | None:
        """SO_ERROR once connected or failed; None while still connecting."""

    def adopt(self, key, handle, conn: TcpConn) -> "TcpFlow | None":
        """A flow for an accepted socket; None (socket closed) on failure."""

    def refuse(self, handle) -> None: ...

    def new_isn(self) -> int: ...

    def defer(self, fn) -> None:
        """Run `fn` at the end of the batch."""

    def call_later(self, delay: float, fn):
        """Run `fn` after `delay` seconds; returns a handle with cancel()."""

    def debug(self, msg: str) -> None: ...

    def trace(self, msg: str) -> None: ...


class TcpFlow(Flow):
    """One tap-side connection: its tuple, its `TcpConn`, and what the core decided about its
    socket; a TCP flow of the flow table (`pasta.core.flow`). The shell subclasses it to add the
    socket itself."""

    __slots__ = ("key", "v6", "ns_addr", "ns_port", "peer_addr", "peer_port", "conn", "events",
                 "partial", "closed", "registered", "wnd_low", "drained", "keepalive",
                 "tap_retry", "out_armed", "rdhup")

    def __init__(self, key, conn: TcpConn):
        super().__init__()
        self.key = key
        self.v6, self.ns_addr, self.ns_port, self.peer_addr, self.peer_port = key
        self.conn = conn
        self.events = 0                 # the epoll interest asked for (set by the shell)
        self.registered = True          # in the epoll set (the shell parks and re-adds it)
        self.partial = False            # a write to the socket was short: update when drained
        self.closed = False
        self.wnd_low = False            # we advertised a small window: update when drained
        # The last data_from_sock ended with the socket's queue all in flight (EAGAIN or a
        # short peek): new data comes with an EPOLLIN edge, so an ACK from the tap need not peek.
        self.drained = False
        self.rdhup = False              # the socket reported EOF (EPOLLRDHUP/EPOLLHUP)
        self.keepalive = False          # SO_KEEPALIVE set (the namespace sends keepalives)
        self.tap_retry = False          # a segment could not be written: push again soon
        self.out_armed = False          # polled for EPOLLOUT: the send buffer was full (shell)


class TcpCore:
    """Every decision of TCP through the tap, after passt's tcp.c (module docstring).

    `io` is the shell (`TcpIo`); `link` gives the addresses seen
    in the namespace and counts drops; `plen4`/`plen6` are the largest payloads a frame buffer
    holds behind the IPv4/IPv6 headers."""

    def __init__(self, io: TcpIo, link, rules, mtu: int, plen4: int, plen6: int,
                 stats, flowtab: FlowTab):
        self.io = io
        self.flowtab = flowtab
        flowtab.limit(FlowType.TCP, MAX_FLOWS)
        flowtab.on_timer(self.sweep)
        self.link = link
        self.rules = rules
        self.mss4 = mss_for_mtu(mtu or 65520, False)
        self.mss6 = mss_for_mtu(mtu or 65520, True)
        self.plen4, self.plen6 = plen4, plen6
        self.flows = flowtab.bucket(FlowType.TCP, Pif.TAP)      # by tap tuple
        self.ack_pending: dict = {}         # ACKs sent at the end of the batch
        self._ack_deferred = False
        self.ack_delayed: dict = {}         # flows with a small amount of data to acknowledge
        self._delack_timer = None
        self.low_window: set = set()        # flows waiting to advertise a reopened window
        self._wnd_timer = None
        self.tap_retry: set = set()         # flows whose last segment the tap did not take
        self._retry_timer = None
        self.stats = stats

    # ----------------------------------------------------------------- segments to the namespace
    def update_seqack_wnd(self, f: TcpFlow, flags: int, syn: bool = False,
                          dup: bool = False) -> int:
        """The window field of a segment to the namespace, and the ACK number it carries
        recorded (passt's tcp_update_seqack_wnd). `dup`: a duplicate ACK keeps the window of
        the ACK before it (a namespace counts an ACK that changes the window as an update, not
        a duplicate)."""
        c = f.conn
        if syn:
            window = 65535
        elif dup:
            window = c.wnd_to_tap >> c.ws_to_tap
        else:
            window = c.window_to_tap(self.io.space(f)) if flags & TCP_ACK else 0
        if flags & TCP_ACK:
            c.seq_ack_to_tap = c.seq_from_tap
            if not syn and window << c.ws_to_tap < c.mss_to_tap and not f.wnd_low \
                    and not c.fin & Fin.SOCK_FIN_SENT:
                # Update the window once the socket has room again. Not on EPOLLOUT: that only
                # fires after a send hit EAGAIN (SOCK_NOSPACE), and a namespace respecting our
                # small window never makes us hit it; pasta polls at ACK_INTERVAL too.
                f.wnd_low = True
                self.low_window.add(f)
                if self._wnd_timer is None:
                    self._wnd_timer = self.io.call_later(ACK_INTERVAL_S, self.tap_window_update)
        return window

    def segment(self, f: TcpFlow, flags: int, seq: int, plen: int = 0, syn: bool = False,
                dup: bool = False) -> bool:
        """One segment to the namespace (a payload of `plen` bytes is already in the shell's
        frame buffer, where `io.peek` put it); False if the tap did not take it."""
        window = self.update_seqack_wnd(f, flags, syn, dup)
        c = f.conn
        if syn:
            return self.io.send(f, flags, seq, c.seq_from_tap if flags & TCP_ACK else 0, window,
                                0, self.mss6 if f.v6 else self.mss4, c.ws_to_tap or None)
        return self.io.send(f, flags, seq, c.seq_from_tap if flags & TCP_ACK else 0, window,
                            plen)

    def send_flag(self, f: TcpFlow, flags: int) -> bool:
        """A segment without data at the next sequence number (passt's tcp_send_flag)."""
        return self.segment(f, flags, f.conn.seq_to_tap)

    def send_syn(self, f: TcpFlow) -> bool:
        """Our SYN (inbound) or SYN,ACK (outbound), with the MSS and window scale options."""
        flags = TCP_SYN if f.conn.state == State.SYN_SENT else TCP_SYN | TCP_ACK
        return self.segment(f, flags, f.conn.seq_init_to_tap, syn=True)

    def rst_no_conn(self, key, seq: int, ack: int | None) -> None:
        """An RST for a segment that has no flow, or for a flow we give up (passt's
        tcp_rst_no_conn)."""
        self.io.send_rst(key, seq, ack)
        self.stats.tcp_resets_to_ns += 1

    def rst(self, f: TcpFlow, why: str = "") -> None:
        """Reset both sides of a flow (passt's tcp_rst): an RST to the namespace, the host
        socket closed with SO_LINGER 0."""
        c = f.conn
        self.io.debug(f"{f.prefix()}TCP: reset {fwd.text(f.ns_addr)}:{f.ns_port} <-> "
                      f"{fwd.text(f.peer_addr)}:{f.peer_port} in {c.state.name}: {why}")
        self.rst_no_conn(f.key, c.seq_to_tap, c.seq_from_tap)
        self.close(f, reset=True)

    def close(self, f: TcpFlow, reset: bool = False) -> None:
        """End a flow; `reset`: the host peer gets an RST."""
        if f.closed:
            return
        if not reset and (f.key in self.ack_pending or f.key in self.ack_delayed):
            # The ACK of the namespace's FIN (or of its last data) is still due: without it
            # the namespace retransmits the FIN into a closed flow and gets an RST.
            self.send_flag(f, TCP_ACK)
        f.closed = True
        f.conn.state = State.CLOSED
        self.io.sock_close(f, reset)
        self.flowtab.free(f)
        self.ack_pending.pop(f.key, None)
        self.ack_delayed.pop(f.key, None)
        self.stats.tcp_closed += 1
        self.stats.tcp_flows = len(self.flows)

    def close_all(self) -> None:
        for f in list(self.flows.values()):
            self.close(f)
        for t in (self._wnd_timer, self._delack_timer, self._retry_timer):
            if t is not None:
                t.cancel()

    def add(self, f: TcpFlow, pifs: tuple, sides: tuple, events: int = 0) -> bool:
        """A new flow in the flow table, hashed by its tap side (`pifs`, `sides`: ini and
        tgt); False (socket closed, flow gone) if epoll or the table refused it."""
        if not self.io.add(f, events):
            self.stats.tcp_flow_errors += 1
            f.closed = True
            return False
        if not self.flowtab.new(f, FlowType.TCP, Pif.TAP, f.key, self, self.io.now, pifs,
                                sides):
            self.io.sock_close(f, True)
            self.stats.tcp_flow_errors += 1
            f.closed = True
            return False
        self.stats.tcp_opened += 1
        self.stats.tcp_flows = len(self.flows)
        return True

    def flow_close(self, f: TcpFlow, evicted: bool) -> None:
        """The flow table closes `f` (at exit: TCP flows never expire or get evicted)."""
        self.close(f)

    # ----------------------------------------------------------------- segments from the namespace
    def tap_handler(self, v6: bool, src: bytes, dst: bytes, h, buf) -> None:
        """One TCP segment from the namespace (`h`: pasta.core.wire.l4.TcpHdr; payload in buf)."""
        key = (v6, src, h.sport, dst, h.dport)
        f = self.flows.get(key)
        flags = h.flags
        if f is None:
            if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN:
                self.conn_from_tap(key, h)
            elif flags & TCP_RST or not fwd.is_unicast(src) or not fwd.is_unicast(dst):
                self.link.drop("tcp: no flow")
            else:
                # RFC 9293 3.10.7.1, as pasta: a segment for no connection gets an RST, so a
                # namespace that missed ours (or outlived a flow) stops retransmitting at once.
                self.stats.tcp_no_flow_resets += 1
                if flags & TCP_ACK:
                    self.rst_no_conn(key, h.ack, None)
                else:
                    end = h.end - h.payload_off + (1 if flags & (TCP_SYN | TCP_FIN) else 0)
                    self.rst_no_conn(key, 0, seq_add(h.seq, end))
            return
        c = f.conn
        if flags & TCP_RST:
            what = c.tap_rst(h.seq, h.ack if flags & TCP_ACK else None)
            if what == Rst.ACCEPT:
                self.close(f, reset=True)
            elif what == Rst.CHALLENGE:
                self.challenge_ack(f)
            else:
                self.link.drop("tcp: rst out of window")
            return
        if c.state == State.SYN_SENT:
            if flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) and \
                    c.tap_syn_ack(h.seq, h.ack, h.window, h.mss, h.wscale, self.io.now):
                self.conn_from_sock_finish(f)
            return
        if flags & TCP_SYN:
            if c.state == State.SYN_ACK_SENT:           # our SYN,ACK was lost
                self.send_syn(f)
            elif c.state == State.ESTABLISHED:
                # RFC 5961 4.2: a namespace reusing the tuple answers with an RST at our ACK
                # number, which closes this flow; its next SYN then opens a new one.
                self.challenge_ack(f)
            elif c.state == State.SYN_RCVD:
                c.tap_syn_again(self.io.now)            # still trying: keep connecting
            return
        if c.state == State.SYN_RCVD:
            return                                      # still connecting on the host side
        self.data_from_tap(f, h, buf)

    def challenge_ack(self, f: TcpFlow) -> None:
        self.stats.tcp_challenge_acks += 1
        self.send_flag(f, TCP_ACK)

    def data_from_tap(self, f: TcpFlow, h, buf) -> None:
        """ACK, data and FIN of a segment on a synchronised flow: only what the socket takes is
        acknowledged, only what the namespace acknowledged is discarded from the socket."""
        c = f.conn
        flags = h.flags
        plen = h.end - h.payload_off
        if flags & TCP_ACK:
            was = c.state
            acked = c.tap_ack(h.ack, h.window, plen > 0, self.io.now, h.seq)
            if was == State.SYN_ACK_SENT and c.state == State.ESTABLISHED:
                self.io.want(f, EPOLLIN | EPOLLRDHUP)
            if acked:
                self.io.discard(f, acked)
            if c.fast_retransmit_due() or c.partial_ack_due():
                self.fast_retransmit(f)
            if not f.keepalive and c.keepalive_from_tap(h.seq, plen, not flags & TCP_FIN):
                # The namespace keeps this connection alive: so does the host socket (pasta
                # 2026), with the host's keepalive timings.
                self.io.keepalive(f)
                f.keepalive = True
        if plen:
            skip, take = c.tap_data(h.seq, plen)
            if skip < 0:
                self.segment(f, TCP_ACK, c.seq_to_tap, dup=True)     # gap: duplicate ACK
            elif take:
                self.write(f, buf[h.payload_off + skip:h.payload_off + skip + take])
            else:
                self.ack_later(f)                           # duplicate or keep-alive
        elif not flags & (TCP_FIN | TCP_SYN) and h.seq != c.seq_from_tap:
            self.ack_later(f)                   # window probe or keep-alive: answer it
        if flags & TCP_FIN:
            if c.tap_fin(seq_add(h.seq, plen)):
                self.io.shutdown_wr(f)
                c.fin |= Fin.SOCK_FIN_SENT
            self.ack_later(f)
        if c.done():
            self.close(f)
        elif not f.drained and c.send_budget() and c.state == State.ESTABLISHED:
            self.data_from_sock(f)      # the window held data back: this ACK may release it

    def write(self, f: TcpFlow, data) -> None:
        """Data from the namespace to the socket; the ACK for it now, soon or at once."""
        try:
            n = self.io.write(f, data)
        except OSError as e:
            self.rst(f, f"send: {e.strerror}")
            return
        c = f.conn
        c.written(n)
        if n < len(data):
            f.partial = True
            self.stats.tcp_short_writes += 1
            self.io.want(f, f.events | EPOLLOUT)
            self.ack_later(f)
            return
        pending = seq_diff(c.seq_from_tap, c.seq_ack_to_tap)
        mss = self.mss6 if f.v6 else self.mss4
        if pending < 2 * mss and c.wnd_to_tap - pending >= mss:
            # Less than two full segments to acknowledge, and the window we offered still
            # leaves the namespace a segment's room: within ACK_INTERVAL_S, or sooner on the
            # data we send back (request/response traffic: one tap write instead of two).
            # pasta's ACK_TO_TAP_DUE timer, the same 10 ms.
            self.ack_delayed[f.key] = f
            if self._delack_timer is None:
                self._delack_timer = self.io.call_later(ACK_INTERVAL_S, self.delayed_acks)
            return
        self.ack_later(f)

    def delayed_acks(self) -> None:
        self._delack_timer = None
        delayed, self.ack_delayed = self.ack_delayed, {}
        for f in delayed.values():
            if not f.closed and f.conn.ack_due():
                self.send_flag(f, TCP_ACK)

    def ack_later(self, f: TcpFlow) -> None:
        """An ACK at the end of the batch (one per flow however many segments came)."""
        self.ack_pending[f.key] = f
        if not self._ack_deferred:
            self._ack_deferred = True
            self.io.defer(self.defer_handler)

    def defer_handler(self) -> None:
        """The end of a batch: the ACKs due (passt's tcp_defer_handler)."""
        self._ack_deferred = False
        pending, self.ack_pending = self.ack_pending, {}
        for f in pending.values():
            if not f.closed:
                self.send_flag(f, TCP_ACK)

    # ----------------------------------------------------------------- set-up
    def conn_from_tap(self, key, h) -> None:
        """A SYN from the namespace without a flow: connect to the translated target."""
        v6, src, sport, dst, dport = key
        io = self.io
        if not sport or not dport or not fwd.is_unicast(src) or not fwd.is_unicast(dst):
            self.link.drop("tcp: not unicast or port 0")
            return
        if self.flowtab.full(FlowType.TCP):
            self.rst_no_conn(key, 0, seq_add(h.seq, 1))
            return
        target = fwd.from_tap(self.rules, v6, IPPROTO_TCP, dst, dport)
        bind_addr, ifname = fwd.host_bind(self.rules, v6, target)
        conn = TcpConn.from_tap_syn(io.new_isn(), io.now, h.seq, h.window, h.mss, h.wscale)
        try:
            f = io.open(key, conn, bind_addr, ifname)
        except OSError as e:
            io.debug(f"TCP: socket: {e.strerror}")
            if e.errno in LOCAL_ERRNOS:
                self.link.drop("tcp: local resources")
            else:
                self.rst_no_conn(key, 0, seq_add(h.seq, 1))
            return
        err = io.connect(f, fwd.sockaddr(self.rules, v6, target, dport))
        if not self.add(f, (Pif.TAP, Pif.HOST), (FlowSide(src, sport, dst, dport),
                                                  FlowSide(target, dport, bind_addr, 0)),
                        EPOLLOUT):
            self.link.drop("tcp: local resources")      # the namespace retries its SYN
            return
        if err in LOCAL_ERRNOS:
            # Our own shortage (ports, fds, memory): drop the SYN, the namespace retries.
            io.debug(f"{f.prefix()}TCP: connect: {errno.errorcode.get(err)}; SYN dropped")
            self.link.drop("tcp: local resources")
            self.close(f)
            return
        if err not in (0, errno.EINPROGRESS):
            self.rst(f, f"connect: {errno.errorcode.get(err)}")
            return
        io.trace(f"{f.prefix()}TCP: connecting {fwd.text(src)}:{sport} -> {fwd.text(dst)}:{dport}"
                 f" (host {fwd.text(target)}:{dport})")

    def connect_finish(self, f: TcpFlow, ev: int) -> None:
        """SYN_RCVD: the host's connect() completed (or failed): SYN,ACK or RST."""
        err = self.io.connect_error(f, ev & EPOLLOUT)
        if err is None:
            return                               # not connected yet (a stale event): wait
        if err == errno.ETIMEDOUT:
            # The host's SYN retries ran out: no RST, the namespace's kernel times its
            # own connect out (a later SYN from it starts a new attempt).
            self.io.debug(f"{f.prefix()}TCP: connect: ETIMEDOUT; flow dropped without a reset")
            self.close(f)
            return
        if err:
            self.rst(f, f"connect: {errno.errorcode.get(err, err)} events {ev:#x}")
            return
        c = f.conn
        self.segment(f, TCP_SYN | TCP_ACK, c.seq_init_to_tap, syn=True)
        c.syn_ack_sent(self.io.now)         # (a SYN,ACK the tap refused is resent in 1 s)
        self.io.want(f, 0)

    def conn_from_sock(self, v6: bool, paddr: bytes, pport: int, target_port: int,
                       handle, taddr: Optional[bytes] = None) -> None:
        """An accepted host connection (`handle`: its socket, opaque here): a SYN to the
        namespace from the client's address as the namespace sees it (passt's
        tcp_tap_conn_from_sock); to `taddr` (packed) if the rule names a target address,
        else to the namespace's own address."""
        link = self.link
        seen = fwd.to_tap_src(self.rules, v6, paddr, link.addr_seen6 if v6 else
                              link.addr_seen4)
        if taddr is not None:
            ns_addr = taddr
        elif v6:
            ns_addr = link.addr_ll_seen6 if seen and fwd.is_link_local6(seen) else \
                link.addr_seen6
        else:
            ns_addr = link.addr_seen4
        if seen is None or ns_addr is None or self.flowtab.full(FlowType.TCP):
            self.io.refuse(handle)
            link.drop("tcp: inbound refused")
            return
        key = (v6, ns_addr, target_port, seen, pport)
        old = self.flows.get(key)
        if old is not None:
            self.close(old, reset=True)
        conn = TcpConn.to_tap_syn(self.io.new_isn(), self.io.now)
        f = self.io.adopt(key, handle, conn)
        if f is None:
            self.stats.tcp_flow_errors += 1
            return
        if not self.add(f, (Pif.HOST, Pif.TAP), (FlowSide(paddr, pport, None, 0),
                                                  FlowSide(ns_addr, target_port, seen, pport))):
            return
        self.send_syn(f)
        conn.syn_sent(self.io.now)
        self.io.trace(f"{f.prefix()}TCP: inbound {fwd.text(paddr)}:{pport} -> namespace port "
                      f"{target_port}")

    def conn_from_sock_finish(self, f: TcpFlow) -> None:
        """Inbound: the namespace's SYN,ACK established the flow: ACK it, start reading."""
        self.send_flag(f, TCP_ACK)
        self.io.want(f, EPOLLIN | EPOLLRDHUP)
        self.data_from_sock(f)

    # ----------------------------------------------------------------- host -> namespace
    def sock_handler(self, f: TcpFlow, ev: int) -> None:
        """Events of a flow's socket; an OSError costs this flow only (issue 13 item 6)."""
        try:
            self._sock_events(f, ev)
        except OSError as e:
            self.stats.tcp_flow_errors += 1
            if not f.closed:
                self.rst(f, f"socket event: {e.strerror}")

    def _sock_events(self, f: TcpFlow, ev: int) -> None:
        if f.closed:
            return
        c = f.conn
        if c.state == State.SYN_RCVD:
            self.connect_finish(f, ev)
            return
        if ev & EPOLLERR or (ev & EPOLLHUP and c.state != State.ESTABLISHED):
            self.rst(f, f"socket events {ev:#x}")
            return
        if ev & EPOLLOUT and f.out_armed:
            # The peer's ACKs made room in (and perhaps grew) an autotuned send buffer: a
            # window update (after a short write, the one below, with its duplicates).
            f.out_armed = False
            if not f.partial:
                self.io.want(f, f.events & ~EPOLLOUT)
                if c.state == State.ESTABLISHED and not c.fin & Fin.SOCK_FIN_SENT:
                    self.send_flag(f, TCP_ACK)
        if ev & EPOLLOUT and f.partial:
            f.partial = False
            self.io.want(f, f.events & ~EPOLLOUT)
            # A window update and duplicates of it, so the namespace retransmits what the
            # socket refused at once instead of after its timeout.
            for i in range(4):
                self.segment(f, TCP_ACK, c.seq_to_tap, dup=i > 0)
        if ev & (EPOLLRDHUP | EPOLLHUP):
            f.rdhup = True
        if ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP):
            self.data_from_sock(f)
        if ev & EPOLLHUP and not f.closed and not f.events & (EPOLLIN | EPOLLOUT):
            # Both directions shut: EPOLLHUP would fire on every loop while we wait for the
            # namespace; park the socket until we want something from it again.
            self.io.park(f)

    def data_from_sock(self, f: TcpFlow) -> None:
        """Peek and send what the namespace's window allows; FIN after the data at EOF."""
        c = f.conn
        if f.closed or c.state != State.ESTABLISHED:
            return
        io = self.io
        plen_max = self.plen6 if f.v6 else self.plen4
        now = io.now
        drained = False
        for _ in range(SEGMENTS_PER_WAKEUP):
            budget = c.send_budget()
            if budget <= 0:
                break
            n = min(budget, c.mss_to_tap, plen_max)
            try:
                got = io.peek(f, n)
            except OSError as e:
                self.rst(f, f"peek: {e.strerror}")
                return
            if got is None:
                drained = True                   # all queued data is in flight already
                break
            if got == 0:
                if not c.fin & Fin.SOCK_FIN_RCVD:
                    c.fin |= Fin.SOCK_FIN_RCVD
                if not c.fin & (Fin.TAP_FIN_SENT | Fin.TAP_FIN_ACKED):
                    if self.send_flag(f, TCP_FIN | TCP_ACK):
                        c.fin_to_tap(now)
                    else:
                        self.tap_not_taken(f)
                break
            if not self.segment(f, TCP_ACK | TCP_PSH, c.seq_to_tap, got):
                self.revert_seq(f)
                drained = False
                break
            c.sent(got, now)
            if got < n and not f.rdhup:
                # Short: the queue is drained (for now). Edge-triggered EPOLLIN reports every
                # later arrival, so no second peek to see EAGAIN. (After EOF was reported, peek
                # on: the EOF itself comes with no further event.)
                drained = True
                break
        f.drained = drained
        want = f.events & EPOLLOUT
        if c.send_budget() > 0 and not c.fin & Fin.SOCK_FIN_RCVD:
            want |= EPOLLIN | EPOLLRDHUP
            if not drained and not f.closed and not f.tap_retry:
                io.defer(lambda: self.data_from_sock(f))    # per-wake-up cap, data left
                # (not when the tap refused a segment: the retry timer comes back; pushing
                # again in the same turn would spin while the tap's queue is full)
        io.want(f, want)
        if c.done():
            self.close(f)

    def revert_seq(self, f: TcpFlow) -> None:
        """The tap did not take a data segment (passt's tcp_revert_seq): the sequence stays,
        and the peek offset goes back with it, so the same bytes are peeked next time."""
        self.set_peek_offset(f, f.conn.first_unacked()[1])
        self.tap_not_taken(f)

    def tap_not_taken(self, f: TcpFlow) -> None:
        """The tap refused a segment (its queue is full or the link is down): push this flow
        again after ACK_INTERVAL_S rather than wait for an event that may not come."""
        self.stats.tcp_tap_reverts += 1
        if not f.tap_retry:
            f.tap_retry = True
            self.tap_retry.add(f)
        if self._retry_timer is None:
            self._retry_timer = self.io.call_later(ACK_INTERVAL_S, self.tap_retry_handler)

    def tap_retry_handler(self) -> None:
        self._retry_timer = None
        flows, self.tap_retry = self.tap_retry, set()
        for f in flows:
            f.tap_retry = False
            if not f.closed:
                self.data_from_sock(f)

    def tap_window_update(self) -> None:
        """Every ACK_INTERVAL_S while some flow advertised a small window: send the update
        once its socket has room for a segment (a threshold, so updates do not ping-pong)."""
        self._wnd_timer = None
        for f in list(self.low_window):
            if f.closed:
                self.low_window.discard(f)
            elif self.io.space(f, True) >= min(f.conn.mss_to_tap, SOCK_BUF // 4):
                self.low_window.discard(f)
                f.wnd_low = False
                self.send_flag(f, TCP_ACK)
        if self.low_window and self._wnd_timer is None:
            self._wnd_timer = self.io.call_later(ACK_INTERVAL_S, self.tap_window_update)

    def set_peek_offset(self, f: TcpFlow, offset: int) -> bool:
        try:
            self.io.set_peek_off(f, offset)
        except OSError as e:
            self.rst(f, f"SO_PEEK_OFF: {e.strerror}")
            return False
        return True

    def fast_retransmit(self, f: TcpFlow) -> None:
        """NewReno: the first unacknowledged segment only, peeked from the head of the
        socket's queue; the peek offset then goes back to the end of what is in flight."""
        c = f.conn
        self.stats.tcp_fast_retransmits += 1
        seq, data = c.first_unacked()
        if not data:
            if c.fin & Fin.TAP_FIN_SENT and not c.fin & Fin.TAP_FIN_ACKED:
                self.segment(f, TCP_FIN | TCP_ACK, c.fin_seq_to_tap)
            return
        n = min(data, c.mss_to_tap, self.plen6 if f.v6 else self.plen4)
        if not self.set_peek_offset(f, 0):
            return
        try:
            got = self.io.peek(f, n) or 0
        except OSError as e:
            self.rst(f, f"peek: {e.strerror}")
            return
        if self.set_peek_offset(f, data) and got:
            self.segment(f, TCP_ACK | TCP_PSH, seq, got)

    def rewind_seq(self, f: TcpFlow) -> None:
        """ACK timeout: go back to the last acknowledged byte and send everything again
        (passt's tcp_rewind_seq, go-back-N)."""
        c = f.conn
        c.rewind()
        try:
            self.io.set_peek_off(f, 0)
        except OSError:
            pass
        self.stats.tcp_retransmits += 1
        c.fin &= ~Fin.SOCK_FIN_RCVD           # re-peek finds the EOF again after the data
        self.data_from_sock(f)

    # ----------------------------------------------------------------- timers
    def sweep(self, now: float) -> None:
        """The flow table's sweep (every `pasta.core.flow.SWEEP_S` while flows exist): the timers
        that expired."""
        for f in list(self.flows.values()):
            if not f.closed and now >= f.conn.timer_at:
                self.timer_handler(f, now)

    def timer_handler(self, f: TcpFlow, now: float) -> None:
        """A flow's deadline passed: what `TcpConn.on_timer` says, carried out."""
        what = f.conn.on_timer(now)
        if what == Timeout.RESET:
            self.rst(f, "timeout")
        elif what == Timeout.RETRANSMIT:
            self.rewind_seq(f)
        elif what == Timeout.ABANDON:
            self.io.debug(f"{f.prefix()}TCP: the namespace stopped retrying its SYN; flow dropped")
            self.stats.tcp_abandoned += 1
            self.close(f)
        elif what == Timeout.RESEND_SYN:
            self.stats.tcp_retransmits += 1
            self.send_syn(f)
        elif what == Timeout.KEEPALIVE:
            # pasta 2026 (tcp_keepalive): after 30 s without a segment from the namespace,
            # the same segment as a window probe; its answer is activity, an RST ends the flow.
            self.stats.tcp_keepalives_to_ns += 1
            self.segment(f, TCP_ACK, seq_add(f.conn.seq_to_tap, -1))
        elif what == Timeout.PROBE:
            # One sequence number back, no data: out of window for the namespace, which
            # answers with a duplicate ACK carrying its current window.
            self.stats.tcp_window_probes += 1
            self.segment(f, TCP_ACK, seq_add(f.conn.seq_to_tap, -1))
