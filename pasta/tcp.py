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
- Timers are one deadline, `timer_at`, compared with `now` by `on_timer(now)`: SYN (10 s), ACK
  timeout (2 s doubling, 7 retransmissions then reset), FIN (60 s once our FIN is acknowledged
  and the host socket is shut, as pasta) and idle (7200 s).
- Zero window: while the namespace's window is zero and nothing is in flight, a persist timer
  (`ACK_TIMEOUT_S`, doubling up to 8x) asks for a probe. The namespace's window update is a
  bare ACK that nobody retransmits; if it is lost (the tap's queue overflows under load), only
  a probe's answer reopens the flow. Probes never reset a flow: a peer that answers is alive.

States: `State.SYN_RCVD` (the namespace's SYN seen, host connect in progress),
`State.SYN_ACK_SENT` (connected, our SYN,ACK sent, waiting for the namespace's ACK),
`State.SYN_SENT` (inbound: our SYN sent to the namespace), `State.ESTABLISHED`, `State.CLOSED`.
Orthogonal flags: `Fin.SOCK_FIN_RCVD` (host side EOF), `Fin.SOCK_FIN_SENT` (we shut the host
socket's write side), `Fin.TAP_FIN_RCVD`, `Fin.TAP_FIN_SENT`, `Fin.TAP_FIN_ACKED`. Timer
outcomes: `Timeout.NONE`, `Timeout.RETRANSMIT` (rewind and re-send), `Timeout.RESET`,
`Timeout.PROBE` (send a zero-window probe: an ACK one sequence number back, which the
namespace must answer with its current window).

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
SYN_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 2.0
FIN_TIMEOUT_S = 60.0
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


class TcpConn:
    """Numbers and states of one connection (module docstring)."""

    __slots__ = ("state", "fin", "seq_to_tap", "seq_ack_from_tap", "seq_from_tap",
                 "seq_ack_to_tap", "seq_init_to_tap", "wnd_from_tap", "ws_from_tap", "ws_to_tap",
                 "mss_to_tap", "retrans", "dup_acks", "last_ack_seen", "timer_at", "last_activity",
                 "fin_seq_to_tap", "_wnd_raw", "recover", "seq_max", "probes")

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
        self.timer_at = now + SYN_TIMEOUT_S
        self.last_activity = now
        self.fin_seq_to_tap = None
        self.recover = None             # after a rewind: duplicate ACKs ignored until acked
        self.seq_max = self.seq_init_to_tap           # highest sequence number ever sent + 1
        self.probes = 0                 # zero-window probes sent since the window closed

    # ----------------------------------------------------------------- set-up
    @classmethod
    def from_tap_syn(cls, isn: int, now: float, seq: int, window: int, mss, wscale) -> "TcpConn":
        """A connection opened by the namespace's SYN (options as parsed; None if absent)."""
        c = cls(isn, now)
        c.seq_from_tap = seq_add(seq, 1)
        c.seq_ack_to_tap = c.seq_from_tap
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

    def syn_ack_sent(self, now: float) -> None:
        """Outbound: host connected, we sent SYN,ACK (it uses seq_to_tap, then +1)."""
        self.seq_to_tap = self.seq_max = seq_add(self.seq_init_to_tap, 1)
        self.seq_ack_from_tap = self.seq_init_to_tap
        self.state = State.SYN_ACK_SENT
        self.timer_at = now + SYN_TIMEOUT_S

    def syn_sent(self, now: float) -> None:
        """Inbound: our SYN went to the namespace."""
        self.seq_to_tap = self.seq_max = seq_add(self.seq_init_to_tap, 1)
        self.timer_at = now + SYN_TIMEOUT_S

    def tap_syn_ack(self, seq: int, ack: int, window: int, mss, wscale, now: float) -> bool:
        """Inbound: the namespace's SYN,ACK. False if it does not acknowledge our SYN."""
        if self.state != State.SYN_SENT or ack != self.seq_to_tap:
            return False
        self._peer_options(window, mss, wscale)
        self.seq_from_tap = seq_add(seq, 1)
        self.seq_ack_to_tap = self.seq_from_tap
        self.seq_ack_from_tap = ack
        self.last_ack_seen = ack
        self.state = State.ESTABLISHED
        self._progress(now)
        return True

    # ----------------------------------------------------------------- ACKs from the namespace
    def tap_ack(self, ack: int, window: int, has_data: bool, now: float) -> int:
        """Apply an ACK from the namespace; returns the number of bytes newly acknowledged.

        The SYN (and a FIN) we sent take one sequence number each but no socket data: they are
        not counted in the result.
        """
        self.last_activity = now
        if self.state == State.SYN_ACK_SENT:
            if ack != self.seq_to_tap:
                return 0
            self.state = State.ESTABLISHED
            self.seq_ack_from_tap = ack
            self.last_ack_seen = ack
            self._set_window(window)
            self._progress(now)
            return 0
        if seq_lt(self.seq_max, ack):
            return 0                                  # acknowledges data never sent: ignore
        same_window = window == self._wnd_raw
        acked = seq_diff(ack, self.seq_ack_from_tap)
        if acked <= 0:
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
        if self.recover is not None and seq_le(self.recover, ack):
            self.recover = None
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
        if self.dup_acks >= DUP_ACKS:
            self.dup_acks = 0
            return True
        return False

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
            self.timer_at = now + IDLE_TIMEOUT_S

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
        return min(min(max(space, 0), MAX_WINDOW) >> self.ws_to_tap, 65535)

    # ----------------------------------------------------------------- timers
    def on_timer(self, now: float) -> Timeout:
        """What to do when the deadline `timer_at` has passed."""
        if now < self.timer_at:
            return Timeout.NONE
        if self.state in (State.SYN_RCVD, State.SYN_ACK_SENT, State.SYN_SENT):
            return Timeout.RESET
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
        limit = (FIN_TIMEOUT_S if self.fin & (Fin.SOCK_FIN_SENT | Fin.TAP_FIN_SENT)
                 else IDLE_TIMEOUT_S)
        deadline = self.last_activity + limit
        if now >= deadline:
            return Timeout.RESET
        self.timer_at = deadline
        return Timeout.NONE

    def done(self) -> bool:
        """Both directions finished and our FIN acknowledged: the flow can go."""
        f = self.fin
        return bool(f & Fin.TAP_FIN_RCVD and f & Fin.SOCK_FIN_RCVD and f & Fin.TAP_FIN_ACKED
                    and f & Fin.SOCK_FIN_SENT)
