"""TCP through the tap: the I/O shell around `pasta.tcp` (pasta-reference.md section 14).

Purpose: every TCP connection between the namespace and the outside world, in either direction,
carried between tap segments and ordinary host sockets, with no data buffered in Python.

Theory of operation:
- Outbound: a SYN from the namespace (no flow yet) starts a non-blocking `connect()` to the
  translated target (`fwd.from_tap`, so the gateway reaches the host's loopback and
  `--dns-forward` works over TCP), bound to `-o`/`--outbound-ifN`. The SYN,ACK goes to the
  namespace only when the connect succeeded; a refused or failed connect becomes an RST at once.
- Inbound (`-t` listeners bound at start-up): an accepted connection sends a SYN to the
  namespace from the client's real address and port (`fwd.to_tap_src`); the namespace's SYN,ACK
  establishes the flow, an RST closes the host socket.
- Host -> namespace: data is *peeked* (`MSG_PEEK` with `SO_PEEK_OFF`, so each peek continues
  where the last one stopped) straight into a frame buffer behind the headers, up to the
  namespace's window and MSS, and written to the tap; it is discarded from the socket
  (`MSG_TRUNC`, no copy) only when the namespace acknowledges it. Retransmission rewinds the peek
  offset to zero (the first unacknowledged byte). Socket events are edge-triggered (peeked
  bytes stay queued, so level-triggered EPOLLIN would fire on every loop) and EPOLLIN is only
  requested while the window is open; work left at the per-wake-up cap is deferred to the end
  of the batch. A stalled flow costs nothing. (A stale event for a closed flow's fd cannot reach
  a new socket reusing the number: the engine skips events of fds removed during the batch.)
- SO_PEEK_OFF is probed at start-up; without it (older kernels) TCP cannot work this way and
  pypasta refuses to start, suggesting `--no-tcp`. A connect that fails for lack of our own
  resources (ports, fds, memory) drops the SYN (the namespace retries) instead of resetting.
- Namespace -> host: the in-order part of each segment is written with `send()`; only what the
  socket accepted is acknowledged: at the end of the tap batch once two full segments or more
  are unacknowledged or the window left to the namespace is below a segment, else within
  ACK_INTERVAL_S (10 ms, pasta's ACK_TO_TAP_DUE) or on the next
  segment we send back, so a request/response exchange costs one tap write per direction. The window
  advertised to the namespace is the free space of the socket's send buffer (SO_SNDBUF minus
  SIOCOUTQ; for an autotuned buffer, SO_MEMINFO as pasta 2026, see `_space_auto`), so the
  namespace rarely sends what cannot be written; when it does, the unwritten
  part is not acknowledged, and once the socket drains (EPOLLOUT after the short write) a
  window update plus duplicate ACKs make the namespace retransmit at once. A window advertised
  below one segment is re-checked every 10 ms (pasta's ACK_INTERVAL) and updated once the
  socket has room: EPOLLOUT would never come, as no send hit EAGAIN. (An autotuned send buffer
  over two thirds full is polled for EPOLLOUT: that flags it SOCK_NOSPACE, without which the
  kernel never grows it, and reports its room once the peer's ACKs free some.)
- FIN from the namespace -> `shutdown(SHUT_WR)`; EOF on the socket -> FIN to the namespace after
  the data. RST from the namespace -> the host socket is closed with SO_LINGER 0 (an RST for the
  peer); an error or reset on the host socket -> RST to the namespace.
- Timers: one sweep every `SWEEP_S` while flows exist applies `TcpConn.on_timer()`
  (retransmission, handshake and FIN timeouts, zero-window probes).

States and events: those of `pasta.tcp.TcpConn`; a flow is in `flows` (by tap tuple) and `by_fd`
until `_close()`, which unregisters and closes its socket in the same step.

Invariants: no per-connection data buffers (one shared frame buffer, one discard buffer); every
socket registered with the engine belongs to exactly one flow or listener.

Limits and not handled: the loopback bypass (issue 5) - loopback `-t` clients go through the tap
as with `--no-splice`; no SACK or timestamps; ACKs reflect what the host socket accepted, not
what the remote peer acknowledged (pasta's TCP_INFO reflection is a later optimisation).

Kernel assumptions: SO_PEEK_OFF works on TCP sockets (kernel-facts.md); `recv(MSG_TRUNC)` on TCP
discards without copying.

Differences from passt: random initial sequence numbers (pasta hashes the tuple and the clock);
window from SIOCOUTQ rather than TCP_INFO.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import termios

from pasta import fwd, log
from pasta.engine import EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP
from pasta.errors import SetupError
from pasta.listeners import Listener, Listeners
from pasta.udp import set_freebind
from pasta.tcp import (Fin, Rst, State, TcpConn, Timeout, mss_for_mtu, seq_add, seq_diff,
                       wnd_from_sndbuf)
from pasta.wire import pack_tcp_hdrs_into, tcp_hdrs_len
from pasta.wire.l4 import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN

SO_PEEK_OFF = 42
SO_MEMINFO = 55
SK_MEMINFO_SNDBUF, SK_MEMINFO_WMEM_QUEUED = 3, 5
SWEEP_S = 0.25
ACK_INTERVAL_S = 0.01
MAX_FLOWS = 16384
SOCK_BUF = 4 << 20
SEGMENTS_PER_WAKEUP = 16
IPPROTO_TCP = 6
_LINGER0 = struct.pack("ii", 1, 0)


def _read_ints(path: str) -> list[int]:
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def buffer_locks(sock_buf: int = SOCK_BUF) -> tuple[bool, bool]:
    """(SO_SNDBUF, SO_RCVBUF): whether setting the buffer (which turns the kernel's
    autotuning off for it) gives at least what autotuning could reach.

    The kernel doubles the value and caps it at net.core.[wr]mem_max; autotuning grows up to
    net.ipv4.tcp_[wr]mem's maximum (per network namespace; read here, where flow sockets
    live). With the kernel's defaults (wmem_max 212992) a lock caps a long-RTT connection at a
    few hundred KiB in flight, so autotuning is left on; where the maxima allow 4 MiB, as pasta
    finds with its probe, the large fixed buffers are kept."""
    locks = []
    for core, tcp in (("wmem_max", "tcp_wmem"), ("rmem_max", "tcp_rmem")):
        cap = _read_ints(f"/proc/sys/net/core/{core}")
        auto = _read_ints(f"/proc/sys/net/ipv4/{tcp}")
        if not cap or len(auto) != 3:
            locks.append(True)
            continue
        locks.append(2 * min(sock_buf, cap[0]) >= auto[2])
    return locks[0], locks[1]


def _probe_peek_off() -> None:
    """Refuse to start without SO_PEEK_OFF on TCP: every peek would start at byte 0."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
    except OSError as e:
        raise SetupError(f"TCP translation needs SO_PEEK_OFF on TCP sockets ({e.strerror}); "
                         "this kernel lacks it: use --no-tcp") from None
    finally:
        s.close()


_LOCAL_ERRNOS = {errno.EADDRNOTAVAIL, errno.EADDRINUSE, errno.ENOBUFS, errno.EMFILE,
                 errno.ENFILE, errno.ENOMEM}


class TcpFlow:
    __slots__ = ("key", "v6", "ns_addr", "ns_port", "peer_addr", "peer_port", "sock", "fd",
                 "conn", "events", "partial", "closed", "registered", "wnd_low", "sndbuf",
                 "outq", "rdhup", "drained", "keepalive", "tap_retry", "out_armed")

    def __init__(self, key, sock, conn, sndbuf=None):
        self.key = key
        self.v6, self.ns_addr, self.ns_port, self.peer_addr, self.peer_port = key
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = conn
        self.events = 0
        self.partial = False            # a write to the socket was short: update when drained
        self.closed = False
        self.registered = True
        self.wnd_low = False            # we advertised a small window: update when drained
        # The last _push ended with the socket's queue all in flight (EAGAIN or a short
        # peek): new data comes with an EPOLLIN edge, so an ACK from the tap need not peek.
        self.drained = False
        # Payload capacity of the send buffer: where _tune locks it (no autotuning), read once
        # instead of on every segment, and once per process where the caller knows it (every
        # flow socket gets the same setting). Autotuned: 0 until _space_auto measures it.
        self.sndbuf = sndbuf if sndbuf is not None else \
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        # Upper bound of the bytes queued in the send buffer: SIOCOUTQ when last read, plus
        # what we wrote since (the queue only shrinks by the peer's ACKs meanwhile).
        self.outq = 0
        self.rdhup = False              # the socket reported EOF (EPOLLRDHUP/EPOLLHUP)
        self.keepalive = False          # SO_KEEPALIVE set (the namespace sends keepalives)
        self.tap_retry = False          # a segment could not be written: push again soon
        self.out_armed = False          # polled for EPOLLOUT: the send buffer was full


class TcpFlows:
    def __init__(self, engine, link, rules: fwd.Rules, mtu: int):
        self.engine = engine
        self.link = link
        self.rules = rules
        self.mss4 = mss_for_mtu(mtu or 65520, False)
        self.mss6 = mss_for_mtu(mtu or 65520, True)
        self.flows: dict = {}
        self.by_fd: dict = {}
        self.listeners = Listeners(engine)
        self.ack_pending: dict = {}
        self._ack_deferred = False
        self.ack_delayed: dict = {}         # flows with a small amount of data to acknowledge
        self._delack_timer = None
        self._sweeper = None
        self._sndbuf = None                 # SO_SNDBUF payload room of flow sockets, once read
        self._isn = memoryview(b"")         # os.urandom() pool: 1 syscall per 1024 ISNs
        self.stats = engine.stats
        for k in ("tcp_flows", "tcp_opened", "tcp_closed", "tcp_resets_to_ns",
                  "tcp_retransmits"):
            self.stats.setdefault(k, 0)
        self.hdr4 = tcp_hdrs_len(False, link.vnet)
        self.hdr6 = tcp_hdrs_len(True, link.vnet)
        self.buf = bytearray(tcp_hdrs_len(True, link.vnet, True) + 65535)
        self.view = memoryview(self.buf)
        self.scratch = bytearray(1 << 20)
        self.splice = None              # set by the translator: loopback clients of -t
        self.low_window: set = set()       # flows waiting to advertise a reopened window
        self._wnd_timer = None
        self.tap_retry: set = set()        # flows whose last segment the tap did not take
        self._retry_timer = None
        # Buffers autotune where a lock would be below what autotuning reaches. An autotuned
        # send buffer is measured on every window (_space_auto) and watched with EPOLLOUT
        # once the queue fills it, which is also what lets the kernel grow it.
        self.lock_sndbuf, self.lock_rcvbuf = buffer_locks()
        if not self.lock_sndbuf:
            self._sndbuf = 0
        for k in ("tcp_challenge_acks", "tcp_keepalives_to_ns", "tcp_tap_reverts",
                  "tcp_fast_retransmits", "tcp_flow_errors", "tcp_sndbuf_waits",
                  "tcp_short_writes"):
            self.stats.setdefault(k, 0)
        _probe_peek_off()

    # ----------------------------------------------------------------- frames to the namespace
    def _segment(self, f: TcpFlow, flags: int, seq: int, plen: int = 0, syn_opts=False,
                 dup=False) -> bool:
        """Write one segment to the namespace (payload already at self.buf[hdr:]); False if
        the tap did not take it. `dup`: a duplicate ACK, with the window of the ACK before it
        (a namespace counts an ACK that changes the window as an update, not a duplicate)."""
        link, c = self.link, f.conn
        if syn_opts:
            mss, ws = (self.mss6 if f.v6 else self.mss4), (c.ws_to_tap or None)
            window = 65535
        elif dup:
            mss = ws = None
            window = c.wnd_to_tap >> c.ws_to_tap
        else:
            mss = ws = None
            window = c.window_to_tap(self._space(f)) if flags & TCP_ACK else 0
        if flags & TCP_ACK:
            c.seq_ack_to_tap = c.seq_from_tap
            if not syn_opts and window << c.ws_to_tap < c.mss_to_tap and not f.wnd_low \
                    and not c.fin & Fin.SOCK_FIN_SENT:
                # Update the window once the socket has room again. Not on EPOLLOUT: that only
                # fires after a send hit EAGAIN (SOCK_NOSPACE), and a namespace respecting our
                # small window never makes us hit it; pasta polls at ACK_INTERVAL too.
                f.wnd_low = True
                self.low_window.add(f)
                if self._wnd_timer is None:
                    self._wnd_timer = self.engine.call_later(ACK_INTERVAL_S, self._wnd_check)
        n = pack_tcp_hdrs_into(self.buf, f.v6, link.vnet, link.csum_offload, link.guest_mac,
                               link.our_mac, f.peer_addr, f.ns_addr, f.peer_port, f.ns_port,
                               seq, c.seq_from_tap if flags & TCP_ACK else 0, flags, window,
                               plen, mss=mss, wscale=ws)
        return link.send((self.view[:n],), n)

    def _rst_to_ns(self, key, seq: int, ack: int | None) -> None:
        """An RST for a segment that has no flow (or a flow we give up)."""
        v6, ns_addr, ns_port, peer_addr, peer_port = key
        link = self.link
        flags = TCP_RST | (TCP_ACK if ack is not None else 0)
        n = pack_tcp_hdrs_into(self.buf, v6, link.vnet, link.csum_offload, link.guest_mac,
                               link.our_mac, peer_addr, ns_addr, peer_port, ns_port, seq,
                               ack or 0, flags, 0, 0)
        link.send((self.view[:n],), n)
        self.stats["tcp_resets_to_ns"] += 1

    def _space(self, f: TcpFlow, fresh: bool = False) -> int:
        """Free space in the host socket's send buffer (what we can accept from the namespace).

        A lower bound from `f.outq` while that leaves half the buffer free (no syscall per
        segment when little is queued, as in request/response traffic); SIOCOUTQ otherwise.
        The bound only errs low, so the advertised window never exceeds the real room and its
        right edge never moves left (what we write is what the bound grows by)."""
        if not fresh and f.outq <= f.sndbuf >> 1 and f.sndbuf:
            return f.sndbuf - f.outq
        if not self.lock_sndbuf:
            return self._space_auto(f)
        try:
            f.outq = struct.unpack("i", fcntl.ioctl(f.fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return 0
        return max(0, f.sndbuf - f.outq)

    def _space_auto(self, f: TcpFlow) -> int:
        """`_space` for an autotuned send buffer (pasta 2026's tcp_wnd_from_sndbuf): its size
        and queued memory from SO_MEMINFO, with the queue's per-segment overhead taken out,
        and at most 75 % of a large buffer used (scaled from 100 % at 128 KiB).

        The kernel grows the buffer only for a socket flagged SOCK_NOSPACE, which a send that
        hit the limit sets, or a poll that found the socket unwritable (over two thirds
        queued). A namespace that respects this window never hits the limit, so once the
        queue passes two thirds the socket is polled for EPOLLOUT (epoll_ctl polls it): the
        flag is set, the peer's ACKs grow the buffer, and EPOLLOUT reports the room
        (`_sock_event_flow` then updates the window)."""
        try:
            mem = struct.unpack_from("9I", f.sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))
            sendq = struct.unpack("i", fcntl.ioctl(f.fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, struct.error):
            return 0
        sndbuf, wmemq = mem[SK_MEMINFO_SNDBUF], mem[SK_MEMINFO_WMEM_QUEUED]
        room = wnd_from_sndbuf(sndbuf, wmemq, sendq, f.conn.mss_to_tap)
        if sndbuf - wmemq < wmemq >> 1 and not f.out_armed and f.registered and not f.closed:
            # Unwritable by the kernel's measure: poll it for EPOLLOUT (sets SOCK_NOSPACE).
            try:
                self.engine.modify(f.fd, f.events | EPOLLOUT | EPOLLET)
            except OSError:
                pass                            # (the 10 ms window check still runs)
            else:
                f.out_armed = True
                f.events |= EPOLLOUT
                self.stats["tcp_sndbuf_waits"] += 1
        f.outq, f.sndbuf = sendq, sendq + room
        return room

    # ----------------------------------------------------------------- segments from the tap
    def from_tap(self, v6: bool, src: bytes, dst: bytes, h, buf) -> None:
        """One TCP segment from the namespace (`h`: pasta.wire.l4.TcpHdr; payload in buf)."""
        key = (v6, src, h.sport, dst, h.dport)
        f = self.flows.get(key)
        flags = h.flags
        if f is None:
            if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN:
                self._connect(key, h)
            elif flags & TCP_RST or not fwd.is_unicast(src) or not fwd.is_unicast(dst):
                self.link.drop("tcp: no flow")
            else:
                # RFC 9293 3.10.7.1, as pasta: a segment for no connection gets an RST, so a
                # namespace that missed ours (or outlived a flow) stops retransmitting at once.
                self.stats["tcp_no_flow_resets"] = self.stats.get("tcp_no_flow_resets", 0) + 1
                if flags & TCP_ACK:
                    self._rst_to_ns(key, h.ack, None)
                else:
                    end = h.end - h.payload_off + (1 if flags & (TCP_SYN | TCP_FIN) else 0)
                    self._rst_to_ns(key, 0, seq_add(h.seq, end))
            return
        c = f.conn
        now = self.engine.now
        if flags & TCP_RST:
            what = c.tap_rst(h.seq, h.ack if flags & TCP_ACK else None)
            if what == Rst.ACCEPT:
                self._close(f, reset_host=True)
            elif what == Rst.CHALLENGE:
                self._challenge_ack(f)
            else:
                self.link.drop("tcp: rst out of window")
            return
        if c.state == State.SYN_SENT:
            if flags & (TCP_SYN | TCP_ACK) == (TCP_SYN | TCP_ACK) and \
                    c.tap_syn_ack(h.seq, h.ack, h.window, h.mss, h.wscale, now):
                self._segment(f, TCP_ACK, c.seq_to_tap)
                self._want(f, EPOLLIN | EPOLLRDHUP)
                self._push(f)
            return
        if flags & TCP_SYN:
            if c.state == State.SYN_ACK_SENT:           # our SYN,ACK was lost
                self._segment(f, TCP_SYN | TCP_ACK, c.seq_init_to_tap, syn_opts=True)
            elif c.state == State.ESTABLISHED:
                # RFC 5961 4.2: a namespace reusing the tuple answers with an RST at our ACK
                # number, which closes this flow; its next SYN then opens a new one.
                self._challenge_ack(f)
            elif c.state == State.SYN_RCVD:
                c.tap_syn_again(now)                    # still trying: keep connecting
            return
        if c.state == State.SYN_RCVD:
            return                                      # still connecting on the host side
        plen = h.end - h.payload_off
        if flags & TCP_ACK:
            was = c.state
            acked = c.tap_ack(h.ack, h.window, plen > 0, now, h.seq)
            if was == State.SYN_ACK_SENT and c.state == State.ESTABLISHED:
                self._want(f, EPOLLIN | EPOLLRDHUP)
            if acked:
                self._discard(f, acked)
            if c.fast_retransmit_due() or c.partial_ack_due():
                self._retransmit_first(f)
            if not f.keepalive and c.keepalive_from_tap(h.seq, plen, not flags & TCP_FIN):
                # The namespace keeps this connection alive: so does the host socket (pasta
                # 2026), with the host's keepalive timings.
                try:
                    f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                except OSError:
                    pass
                f.keepalive = True
        if plen:
            skip, take = c.tap_data(h.seq, plen)
            if skip < 0:
                self._segment(f, TCP_ACK, c.seq_to_tap, dup=True)    # gap: duplicate ACK
            elif take:
                self._write(f, buf[h.payload_off + skip:h.payload_off + skip + take])
            else:
                self._ack_later(f)                           # duplicate or keep-alive
        elif not flags & (TCP_FIN | TCP_SYN) and h.seq != c.seq_from_tap:
            self._ack_later(f)                  # window probe or keep-alive: answer it
        if flags & TCP_FIN:
            if c.tap_fin(seq_add(h.seq, plen)):
                try:
                    f.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                c.fin |= Fin.SOCK_FIN_SENT
            self._ack_later(f)
        if c.done():
            self._close(f)
        elif not f.drained and c.send_budget() and c.state == State.ESTABLISHED:
            self._push(f)               # the window held data back: this ACK may release it

    def _write(self, f: TcpFlow, data) -> None:
        try:
            n = f.sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            self._reset(f, f"send: {e.strerror}")
            return
        c = f.conn
        c.written(n)
        f.outq += n
        if n < len(data):
            f.partial = True
            self.stats["tcp_short_writes"] += 1
            self._want(f, f.events | EPOLLOUT)
            self._ack_later(f)
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
                self._delack_timer = self.engine.call_later(ACK_INTERVAL_S, self._delayed_acks)
            return
        self._ack_later(f)

    def _delayed_acks(self) -> None:
        self._delack_timer = None
        delayed, self.ack_delayed = self.ack_delayed, {}
        for f in delayed.values():
            if not f.closed and f.conn.ack_due():
                self._segment(f, TCP_ACK, f.conn.seq_to_tap)

    def _ack_later(self, f: TcpFlow) -> None:
        self.ack_pending[f.key] = f
        if not self._ack_deferred:
            self._ack_deferred = True
            self.engine.defer(self._flush_acks)

    def _flush_acks(self) -> None:
        self._ack_deferred = False
        pending, self.ack_pending = self.ack_pending, {}
        for f in pending.values():
            if not f.closed:
                self._segment(f, TCP_ACK, f.conn.seq_to_tap)

    def _discard(self, f: TcpFlow, n: int) -> None:
        mv = memoryview(self.scratch)
        while n > 0:
            try:
                got = f.sock.recv_into(mv, min(n, len(mv)), socket.MSG_TRUNC | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if got <= 0:
                break
            n -= got

    # ----------------------------------------------------------------- outbound set-up
    def _connect(self, key, h) -> None:
        v6, src, sport, dst, dport = key
        if not sport or not dport or not fwd.is_unicast(src) or not fwd.is_unicast(dst):
            self.link.drop("tcp: not unicast or port 0")
            return
        if len(self.flows) >= MAX_FLOWS:
            self._rst_to_ns(key, 0, seq_add(h.seq, 1))
            return
        target = fwd.from_tap(self.rules, v6, IPPROTO_TCP, dst, dport)
        bind_addr, ifname = fwd.host_bind(self.rules, v6, target)
        try:
            sock = self._socket(v6, ifname)
            if bind_addr is not None:
                sock.bind((fwd.text(bind_addr), 0))
        except OSError as e:
            log.debug(f"TCP: socket: {e.strerror}")
            if e.errno in _LOCAL_ERRNOS:
                self.link.drop("tcp: local resources")
            else:
                self._rst_to_ns(key, 0, seq_add(h.seq, 1))
            return
        conn = TcpConn.from_tap_syn(self._new_isn(), self.engine.now, h.seq, h.window,
                                    h.mss, h.wscale)
        f = TcpFlow(key, sock, conn, self._sndbuf)
        if self.lock_sndbuf:
            self._sndbuf = f.sndbuf
        err = sock.connect_ex(fwd.sockaddr(self.rules, v6, target, dport))
        if not self._add(f, EPOLLOUT):
            self.link.drop("tcp: local resources")      # the namespace retries its SYN
            return
        if err in _LOCAL_ERRNOS:
            # Our own shortage (ports, fds, memory): drop the SYN, the namespace retries.
            log.debug(f"TCP: connect: {errno.errorcode.get(err)}; SYN dropped")
            self.link.drop("tcp: local resources")
            self._close(f)
            return
        if err not in (0, errno.EINPROGRESS):
            self._reset(f, f"connect: {errno.errorcode.get(err)}")
            return
        log.trace(f"TCP: connecting {fwd.text(src)}:{sport} -> {fwd.text(dst)}:{dport}"
                  f" (host {fwd.text(target)}:{dport})")

    def _new_isn(self) -> int:
        if len(self._isn) < 4:
            self._isn = memoryview(os.urandom(4096))
        isn = int.from_bytes(self._isn[:4], "little")
        self._isn = self._isn[4:]
        return isn

    def _socket(self, v6: bool, ifname) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                             socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            self._tune(sock)
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if ifname:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        except OSError:
            sock.close()
            raise
        return sock

    def _tune(self, sock) -> None:
        if self.lock_sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)
        if self.lock_rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)
        sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _add(self, f: TcpFlow, events: int = 0) -> bool:
        """Register a new flow; False (socket closed, flow gone) if epoll refused it."""
        f.events = events
        try:
            self.engine.add(f.fd, events | EPOLLET if events else 0,
                            lambda ev, fl=f: self._sock_event(fl, ev))
        except OSError as e:
            log.debug(f"TCP: epoll: {e.strerror}")
            self.stats["tcp_flow_errors"] += 1
            f.closed = True
            f.sock.close()
            return False
        self.flows[f.key] = f
        self.by_fd[f.fd] = f
        self.stats["tcp_opened"] += 1
        self.stats["tcp_flows"] = len(self.flows)
        if self._sweeper is None:
            self._sweeper = self.engine.call_later(SWEEP_S, self._sweep)
        return True

    def _want(self, f: TcpFlow, events: int) -> None:
        """Socket events we wait for, always edge-triggered: EPOLLIN means *new* data (bytes
        already peeked stay queued until acknowledged, so level-triggered EPOLLIN would fire
        on every loop), EPOLLOUT new room. Work left at the per-wake-up cap is deferred."""
        if f.closed or (events == f.events and f.registered):
            return
        f.events = events
        mask = events | EPOLLET if events else 0
        if not f.registered:
            f.registered = True
            self.engine.add(f.fd, mask, lambda ev, fl=f: self._sock_event(fl, ev))
        else:
            self.engine.modify(f.fd, mask)

    # ----------------------------------------------------------------- socket events
    def _sock_event(self, f: TcpFlow, ev: int) -> None:
        """A socket event; an OSError costs this flow only (issue 13 item 6)."""
        try:
            self._sock_event_flow(f, ev)
        except OSError as e:
            self.stats["tcp_flow_errors"] += 1
            if not f.closed:
                self._reset(f, f"socket event: {e.strerror}")

    def _sock_event_flow(self, f: TcpFlow, ev: int) -> None:
        if f.closed:
            return
        c = f.conn
        if c.state == State.SYN_RCVD:
            err = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not err and not ev & EPOLLOUT:
                try:
                    f.sock.getpeername()
                except OSError:
                    return                       # not connected yet (a stale event): wait
            if err == errno.ETIMEDOUT:
                # The host's SYN retries ran out: no RST, the namespace's kernel times its
                # own connect out (a later SYN from it starts a new attempt).
                log.debug("TCP: connect: ETIMEDOUT; flow dropped without a reset")
                self._close(f)
                return
            if err:
                self._reset(f, f"connect: {errno.errorcode.get(err, err)} events {ev:#x}")
                return
            self._segment(f, TCP_SYN | TCP_ACK, c.seq_init_to_tap, syn_opts=True)
            c.syn_ack_sent(self.engine.now)     # (a SYN,ACK the tap refused is resent in 1 s)
            self._want(f, 0)
            return
        if ev & EPOLLERR or (ev & EPOLLHUP and c.state != State.ESTABLISHED):
            self._reset(f, f"socket events {ev:#x}")
            return
        if ev & EPOLLOUT and f.out_armed:
            # The peer's ACKs made room in (and perhaps grew) an autotuned send buffer: a
            # window update (after a short write, the one below, with its duplicates).
            f.out_armed = False
            if not f.partial:
                self._want(f, f.events & ~EPOLLOUT)
                if c.state == State.ESTABLISHED and not c.fin & Fin.SOCK_FIN_SENT:
                    self._segment(f, TCP_ACK, c.seq_to_tap)
        if ev & EPOLLOUT and f.partial:
            f.partial = False
            self._want(f, f.events & ~EPOLLOUT)
            # A window update and duplicates of it, so the namespace retransmits what the
            # socket refused at once instead of after its timeout.
            for i in range(4):
                self._segment(f, TCP_ACK, c.seq_to_tap, dup=i > 0)
        if ev & (EPOLLRDHUP | EPOLLHUP):
            f.rdhup = True
        if ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP):
            self._push(f)
        if ev & EPOLLHUP and not f.closed and not f.events & (EPOLLIN | EPOLLOUT):
            # Both directions shut: EPOLLHUP would fire on every loop while we wait for the
            # namespace; park the socket until we want something from it again.
            self.engine.remove(f.fd)
            f.registered = False

    def _push(self, f: TcpFlow) -> None:
        """Peek and send what the namespace's window allows; FIN after the data at EOF."""
        c = f.conn
        if f.closed or c.state != State.ESTABLISHED:
            return
        hdr = self.hdr6 if f.v6 else self.hdr4
        sock, view = f.sock, self.view
        now = self.engine.now
        drained = False
        for _ in range(SEGMENTS_PER_WAKEUP):
            budget = c.send_budget()
            if budget <= 0:
                break
            n = min(budget, c.mss_to_tap, 65535 - hdr)
            try:
                got = sock.recv_into(view[hdr:hdr + n], n, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                drained = True                   # all queued data is in flight already
                break
            except OSError as e:
                self._reset(f, f"peek: {e.strerror}")
                return
            if got == 0:
                if not c.fin & Fin.SOCK_FIN_RCVD:
                    c.fin |= Fin.SOCK_FIN_RCVD
                if not c.fin & (Fin.TAP_FIN_SENT | Fin.TAP_FIN_ACKED):
                    if self._segment(f, TCP_FIN | TCP_ACK, c.seq_to_tap):
                        c.fin_to_tap(now)
                    else:
                        self._tap_not_taken(f)
                break
            if not self._segment(f, TCP_ACK | TCP_PSH, c.seq_to_tap, got):
                # Not written: the sequence stays (passt's tcp_revert_seq), and the peek
                # offset goes back with it, so the same bytes are peeked next time.
                self._peek_at(f, c.first_unacked()[1])
                self._tap_not_taken(f)
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
                self._push_later(f)              # per-wake-up cap reached, data left
                # (not when the tap refused a segment: the retry timer comes back; pushing
                # again in the same turn would spin while the tap's queue is full)
        self._want(f, want)
        if c.done():
            self._close(f)

    def _wnd_check(self) -> None:
        """Every ACK_INTERVAL_S while some flow advertised a small window: send the update
        once its socket has room for a segment (a threshold, so updates do not ping-pong)."""
        self._wnd_timer = None
        for f in list(self.low_window):
            if f.closed:
                self.low_window.discard(f)
            elif self._space(f, fresh=True) >= min(f.conn.mss_to_tap, SOCK_BUF // 4):
                self.low_window.discard(f)
                f.wnd_low = False
                self._segment(f, TCP_ACK, f.conn.seq_to_tap)
        if self.low_window and self._wnd_timer is None:
            self._wnd_timer = self.engine.call_later(ACK_INTERVAL_S, self._wnd_check)

    def _push_later(self, f: TcpFlow) -> None:
        self.engine.defer(lambda: self._push(f))

    def _tap_not_taken(self, f: TcpFlow) -> None:
        """The tap refused a segment (its queue is full or the link is down): push this flow
        again after ACK_INTERVAL_S rather than wait for an event that may not come."""
        self.stats["tcp_tap_reverts"] += 1
        if not f.tap_retry:
            f.tap_retry = True
            self.tap_retry.add(f)
        if self._retry_timer is None:
            self._retry_timer = self.engine.call_later(ACK_INTERVAL_S, self._tap_retry)

    def _tap_retry(self) -> None:
        self._retry_timer = None
        flows, self.tap_retry = self.tap_retry, set()
        for f in flows:
            f.tap_retry = False
            if not f.closed:
                self._push(f)

    def _peek_at(self, f: TcpFlow, offset: int) -> bool:
        try:
            f.sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, offset)
        except OSError as e:
            self._reset(f, f"SO_PEEK_OFF: {e.strerror}")
            return False
        return True

    def _retransmit_first(self, f: TcpFlow) -> None:
        """Fast retransmission (NewReno): the first unacknowledged segment only, peeked from
        the head of the socket's queue; the peek offset then goes back to the end of what is
        in flight."""
        c = f.conn
        self.stats["tcp_fast_retransmits"] += 1
        seq, data = c.first_unacked()
        if not data:
            if c.fin & Fin.TAP_FIN_SENT and not c.fin & Fin.TAP_FIN_ACKED:
                self._segment(f, TCP_FIN | TCP_ACK, c.fin_seq_to_tap)
            return
        hdr = self.hdr6 if f.v6 else self.hdr4
        n = min(data, c.mss_to_tap, 65535 - hdr)
        if not self._peek_at(f, 0):
            return
        try:
            got = f.sock.recv_into(self.view[hdr:hdr + n], n,
                                   socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            got = 0
        except OSError as e:
            self._reset(f, f"peek: {e.strerror}")
            return
        if self._peek_at(f, data) and got:
            self._segment(f, TCP_ACK | TCP_PSH, seq, got)

    def _challenge_ack(self, f: TcpFlow) -> None:
        self.stats["tcp_challenge_acks"] += 1
        self._segment(f, TCP_ACK, f.conn.seq_to_tap)

    def _retransmit(self, f: TcpFlow) -> None:
        c = f.conn
        c.rewind()
        try:
            f.sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
        except OSError:
            pass
        self.stats["tcp_retransmits"] += 1
        c.fin &= ~Fin.SOCK_FIN_RCVD           # re-peek finds the EOF again after the data
        self._push(f)

    # ----------------------------------------------------------------- teardown and timers
    def _reset(self, f: TcpFlow, why: str = "") -> None:
        c = f.conn
        log.debug(f"TCP: reset {fwd.text(f.ns_addr)}:{f.ns_port} <-> "
                  f"{fwd.text(f.peer_addr)}:{f.peer_port} in {c.state.name}: {why}")
        self._rst_to_ns(f.key, c.seq_to_tap, c.seq_from_tap)
        self._close(f, reset_host=True)

    def _close(self, f: TcpFlow, reset_host: bool = False) -> None:
        if f.closed:
            return
        if not reset_host and (f.key in self.ack_pending or f.key in self.ack_delayed):
            # The ACK of the namespace's FIN (or of its last data) is still due: without it
            # the namespace retransmits the FIN into a closed flow and gets an RST.
            self._segment(f, TCP_ACK, f.conn.seq_to_tap)
        f.closed = True
        f.conn.state = State.CLOSED
        if f.registered:
            self.engine.forget(f.fd)            # the close below leaves the epoll set
        if reset_host:
            try:
                f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            except OSError:
                pass
        f.sock.close()               # (the engine drops this batch's stale events for the fd)
        self.flows.pop(f.key, None)
        self.by_fd.pop(f.fd, None)
        self.ack_pending.pop(f.key, None)
        self.ack_delayed.pop(f.key, None)
        self.stats["tcp_closed"] += 1
        self.stats["tcp_flows"] = len(self.flows)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.engine.now
        for f in list(self.flows.values()):
            if f.closed or now < f.conn.timer_at:
                continue
            what = f.conn.on_timer(now)
            if what == Timeout.RESET:
                self._reset(f, "timeout")
            elif what == Timeout.RETRANSMIT:
                self._retransmit(f)
            elif what == Timeout.ABANDON:
                log.debug("TCP: the namespace stopped retrying its SYN; flow dropped")
                self.stats["tcp_abandoned"] = self.stats.get("tcp_abandoned", 0) + 1
                self._close(f)
            elif what == Timeout.RESEND_SYN:
                self.stats["tcp_retransmits"] += 1
                syn = TCP_SYN if f.conn.state == State.SYN_SENT else TCP_SYN | TCP_ACK
                self._segment(f, syn, f.conn.seq_init_to_tap, syn_opts=True)
            elif what == Timeout.KEEPALIVE:
                # pasta 2026: after 30 s without a segment from the namespace, the same
                # segment as a window probe; its answer is activity, an RST ends the flow.
                self.stats["tcp_keepalives_to_ns"] += 1
                self._segment(f, TCP_ACK, seq_add(f.conn.seq_to_tap, -1))
            elif what == Timeout.PROBE:
                # One sequence number back, no data: out of window for the namespace, which
                # answers with a duplicate ACK carrying its current window.
                self.stats["tcp_window_probes"] = self.stats.get("tcp_window_probes", 0) + 1
                self._segment(f, TCP_ACK, seq_add(f.conn.seq_to_tap, -1))
        if self.flows:
            self._sweeper = self.engine.call_later(SWEEP_S, self._sweep)

    # ----------------------------------------------------------------- -t listeners
    def bind_listener(self, v6: bool, addr, ifname, port: int, delta: int,
                      freebind: bool = False) -> None:
        """One -t listening socket (`portspec.apply` calls this for every port and family)."""
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                             socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if freebind:
                set_freebind(sock, v6)
            if ifname:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            sock.bind((str(addr) if addr is not None else ("::" if v6 else "0.0.0.0"), port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        return self.listeners.add(sock, v6, port, port + delta, self._accept)

    def remove_listener(self, lst: Listener) -> None:
        """Stop listening (`auto`: the port went away); accepted connections carry on."""
        self.listeners.remove(lst)

    def listen_ports(self) -> set:
        return self.listeners.ports()

    def _accept(self, lst: Listener) -> None:
        v6, target = lst.v6, lst.target

        def take(sock, peer):
            if self.splice is not None and fwd.is_loopback_host(peer[0]):
                self.splice(sock, v6, peer, target)
            else:
                self._inbound(sock, v6, peer, target)
        self.listeners.accept_each(lst, take, "TCP")

    def _inbound(self, sock, v6: bool, peer, target_port: int) -> None:
        link = self.link
        paddr = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET,
                                 peer[0].split("%", 1)[0])
        seen = fwd.to_tap_src(self.rules, v6, paddr, link.addr_seen6 if v6 else
                              link.addr_seen4)
        if v6:
            ns_addr = link.addr_ll_seen6 if seen and fwd.is_link_local6(seen) else \
                link.addr_seen6
        else:
            ns_addr = link.addr_seen4
        if seen is None or ns_addr is None or len(self.flows) >= MAX_FLOWS:
            sock.close()
            self.link.drop("tcp: inbound refused")
            return
        key = (v6, ns_addr, target_port, seen, peer[1])
        old = self.flows.get(key)
        if old is not None:
            self._close(old, reset_host=True)
        try:
            sock.setblocking(False)
            self._tune(sock)
        except OSError:
            pass
        conn = TcpConn.to_tap_syn(self._new_isn(), self.engine.now)
        try:
            f = TcpFlow(key, sock, conn, self._sndbuf)
        except OSError:
            sock.close()
            self.stats["tcp_flow_errors"] += 1
            return
        if not self._add(f):
            return
        self._segment(f, TCP_SYN, conn.seq_init_to_tap, syn_opts=True)
        conn.syn_sent(self.engine.now)
        log.trace(f"TCP: inbound {peer[0]}:{peer[1]} -> namespace port {target_port}")

    def close(self) -> None:
        for f in list(self.flows.values()):
            self._close(f)
        self.listeners.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._wnd_timer is not None:
            self._wnd_timer.cancel()
        if self._delack_timer is not None:
            self._delack_timer.cancel()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
