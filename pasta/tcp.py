"""TCP flow state machine: the numbers of a tap-side TCP connection, as plain code (sans-IO).

Purpose: decide every sequence number, acknowledgement, window and timeout of one connection
between the namespace (through the tap) and a host socket, without doing any I/O
(pasta-reference.md section 14). The I/O shell (`pasta.tcpio`) moves bytes and calls in here.

Theory of operation (pasta's design: no data buffers in pypasta):
- Namespace -> host: `tap_data(seq, length, fin)` returns which part of a segment is new and in
  order (`(skip, take)`); the shell writes that part to the socket and reports how much the
  socket accepted with `written(n)`. Only written bytes are acknowledged to the namespace
  (`seq_from_tap` is the next byte expected); what the socket refused is simply not acknowledged
  and the namespace retransmits it.
- Host -> namespace: data stays in the socket's receive queue. `send_budget()` says how many bytes
  may be peeked and sent now (the namespace's window minus what is in flight); `sent(n)` advances
  `seq_to_tap`. `tap_ack(ack, window)` returns how many bytes the namespace newly acknowledged:
  the shell discards exactly that many from the socket. A third duplicate ACK, or an ACK timeout,
  rewinds `seq_to_tap` to the last acknowledged byte (`rewind()`): the shell re-peeks from there.
- Window to the namespace: given by the shell (free space in the socket's send buffer), scaled by
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
  segment only (`Timeout`-free `fast_retransmit_due()`, then `retransmit_first()` in the
  shell) and set the recovery point at the highest byte sent; while in recovery, an ACK that
  advances but stays below it (a partial ACK) retransmits the next hole at once
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

States: `State.SYN_RCVD` (the namespace's SYN seen, host connect in progress),
`State.SYN_ACK_SENT` (connected, our SYN,ACK sent, waiting for the namespace's ACK),
`State.SYN_SENT` (inbound: our SYN sent to the namespace), `State.ESTABLISHED`, `State.CLOSED`.
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
namespace acknowledged them, so nothing is lost if either side stalls.

Limits and not handled: no SACK, no timestamps, no urgent data; out-of-order segments from the
namespace are dropped (a duplicate ACK asks for a retransmission), as pasta does.

Kernel assumptions: none here (see `pasta.tcpio`).

Differences from passt: the ACK sent to the namespace covers everything the host socket accepted
(pasta's choice for local peers and small buffers); pasta can instead reflect the remote peer's
acknowledgements from TCP_INFO for far-away peers.
"""

from __future__ import annotations

import enum

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
    """What `on_timer()` asks the shell to do."""

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
        """Three duplicate ACKs: enter recovery; the shell retransmits the first segment."""
        if self.dup_acks >= DUP_ACKS:
            self.dup_acks = 0
            self.recover = self.seq_max
            self.fast_recovery = True
            return True
        return False

    def partial_ack_due(self) -> bool:
        """In recovery, an ACK advanced to the next hole: the shell retransmits it."""
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
        """Both directions finished and our FIN acknowledged: the flow can go."""
        f = self.fin
        return bool(f & Fin.TAP_FIN_RCVD and f & Fin.SOCK_FIN_RCVD and f & Fin.TAP_FIN_ACKED
                    and f & Fin.SOCK_FIN_SENT)
