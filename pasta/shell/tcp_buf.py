"""TCP through the tap: the I/O shell that carries out `pasta.core.tcp.TcpCore`'s decisions
(pasta-reference.md section 14).

Purpose: the sockets, frames and epoll registrations of every TCP connection between the
namespace and the outside world, in either direction, with no data buffered in Python. What to do
on each tap segment, socket event and timer is decided in `pasta.core.tcp` (sans-IO); `TcpFlows` is
the `io` object it calls, and the public face the rest of pypasta uses (`from_tap`, the core's
`tap_handler` itself; `bind_listener`, `remove_listener`, `close`, `splice`,
`flows`, `by_fd`, `ack_pending`).

Theory of operation:
- Outbound: `TcpCore.conn_from_tap` asks `open()` for a socket (bound to `-o`/`--outbound-ifN`,
  tuned by `_tune`) and `connect()` starts a non-blocking connect; `connect_error()` reads
  SO_ERROR when the socket reports.
- Inbound (`-t` listeners, `bind_listener`): `_accept` hands loopback clients to `splice` and
  the others to `TcpCore.conn_from_sock`, which `adopt()`s the socket as a flow.
- Host -> namespace: `peek()` reads with `MSG_PEEK` (with `SO_PEEK_OFF`, so each peek continues
  where the last one stopped) straight into the one frame buffer behind the headers, and `send()`
  packs the headers in front and writes the frame to the link; `discard()` drops acknowledged
  bytes (`MSG_TRUNC`, no copy); `set_peek_off()` moves the offset back for retransmissions.
  Socket events are edge-triggered (`want()` always adds EPOLLET: peeked bytes stay queued, so
  level-triggered EPOLLIN would fire on every loop); `park()` takes a socket whose both
  directions are shut out of the epoll set. (A stale event for a closed flow's fd cannot reach
  a new socket reusing the number: the engine skips events of fds removed during the batch.)
- SO_PEEK_OFF is probed at start-up; without it (older kernels) TCP cannot work this way and
  pypasta refuses to start, suggesting `--no-tcp`.
- Namespace -> host: `write()` is one non-blocking `send()`; the core acknowledges what it took.
- Window: `space()` is the free room of the socket's send buffer: a lower bound from the bytes
  written since the last SIOCOUTQ while that leaves half the buffer free (no syscall per
  segment), SO_SNDBUF minus SIOCOUTQ otherwise; for an autotuned buffer SO_MEMINFO as pasta
  2026 (`_space_auto`, `pasta.core.tcp.wnd_from_sndbuf`). (An autotuned send buffer over two thirds
  full is polled for EPOLLOUT, `out_armed`: that flags it SOCK_NOSPACE, without which the kernel
  never grows it, and reports its room once the peer's ACKs free some.)
- `sock_close()` with `reset` sets SO_LINGER 0, so the host peer gets an RST.

States: none of its own: those of `pasta.core.tcp` (`TcpConn`, `TcpFlow`); `SockFlow` adds the
socket, its fd and the send-buffer bookkeeping (`sndbuf`, `outq`).

Invariants: no per-connection data buffers (one shared frame buffer, one discard buffer); every
socket registered with the engine belongs to exactly one flow or listener; a flow is in `by_fd`
exactly while its socket is open; nothing here decides a sequence number, window or state.

Limits and not handled: the loopback bypass (issue 5) - loopback `-t` clients go through the tap
as with `--no-splice`; no SACK or timestamps; ACKs reflect what the host socket accepted, not
what the remote peer acknowledged (pasta's TCP_INFO reflection is a later optimisation).

Kernel assumptions: SO_PEEK_OFF works on TCP sockets (kernel-facts.md); `recv(MSG_TRUNC)` on TCP
discards without copying.

Differences from passt: random initial sequence numbers (pasta hashes the tuple and the clock);
window from SIOCOUTQ rather than TCP_INFO; passt's tcp_buf.c batches frames per flow before one
write, here each segment is one `link.send`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

from pasta.core import fwd
from pasta.util import log
from pasta.shell.engine import EPOLLET, EPOLLOUT, FdKind
from pasta.util.errors import SetupError
from pasta.shell.listeners import Listener, Listeners
from pasta.core.flow import FlowTab
from pasta.util.sock import Proto, sock_l4
from pasta.core.tcp import SOCK_BUF, TcpConn, TcpCore, TcpFlow, wnd_from_sndbuf
from pasta.core.wire import pack_tcp_hdrs_into, tcp_hdrs_len
from pasta.core.wire.l4 import TCP_ACK, TCP_RST

SO_PEEK_OFF = 42
SO_MEMINFO = 55
SK_MEMINFO_SNDBUF, SK_MEMINFO_WMEM_QUEUED = 3, 5
_LINGER0 = struct.pack("ii", 1, 0)
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_SEND = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL


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
    s = sock_l4(False, Proto.TCP)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
    except OSError as e:
        raise SetupError(f"TCP translation needs SO_PEEK_OFF on TCP sockets ({e.strerror}); "
                         "this kernel lacks it: use --no-tcp") from None
    finally:
        s.close()



class SockFlow(TcpFlow):
    """A `pasta.core.tcp.TcpFlow` with its host socket."""

    __slots__ = ("sock", "fd", "sndbuf", "outq")

    def __init__(self, key, sock, conn: TcpConn, sndbuf=None):
        super().__init__(key, conn)
        self.sock = sock
        self.fd = sock.fileno()
        # Payload capacity of the send buffer: where _tune locks it (no autotuning), read once
        # instead of on every segment, and once per process where the caller knows it (every
        # flow socket gets the same setting). Autotuned: 0 until _space_auto measures it.
        self.sndbuf = sndbuf if sndbuf is not None else \
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        # Upper bound of the bytes queued in the send buffer: SIOCOUTQ when last read, plus
        # what we wrote since (the queue only shrinks by the peer's ACKs meanwhile).
        self.outq = 0


class TcpFlows:
    """The shell: sockets, frames and epoll for `pasta.core.tcp.TcpCore` (module docstring). The
    methods under "io" are the interface the core calls; `from_tap` is the core's
    `tap_handler` itself (no extra call per segment)."""

    def __init__(self, engine, link, rules: fwd.Rules, mtu: int,
                 flowtab: FlowTab | None = None, splice=None):
        self.engine = engine
        self.link = link
        self.rules = rules
        self.by_fd: dict = {}
        self.listeners = Listeners(engine)
        self._sndbuf = None                 # SO_SNDBUF payload room of flow sockets, once read
        self._isn = memoryview(b"")         # os.urandom() pool: 1 syscall per 1024 ISNs
        self.stats = engine.stats
        self.hdr4 = tcp_hdrs_len(False, link.vnet)
        self.hdr6 = tcp_hdrs_len(True, link.vnet)
        self.buf = bytearray(tcp_hdrs_len(True, link.vnet, True) + 65535)
        self.view = memoryview(self.buf)
        self.scratch = memoryview(bytearray(1 << 20))
        self.splice = splice            # loopback clients of -t: to pasta.shell.tcp_splice
        # Buffers autotune where a lock would be below what autotuning reaches. An autotuned
        # send buffer is measured on every window (_space_auto) and watched with EPOLLOUT
        # once the queue fills it, which is also what lets the kernel grow it.
        self.lock_sndbuf, self.lock_rcvbuf = buffer_locks()
        if not self.lock_sndbuf:
            self._sndbuf = 0
        self.defer = engine.defer
        self.call_later = engine.call_later
        self.core = TcpCore(self, link, rules, mtu, 65535 - self.hdr4, 65535 - self.hdr6,
                            self.stats, flowtab if flowtab is not None else
                            FlowTab.for_engine(engine))
        self.from_tap = self.core.tap_handler
        _probe_peek_off()

    # The core's tables, under the names the rest of pypasta (and the tests) read
    flows = property(lambda self: self.core.flows)
    ack_pending = property(lambda self: self.core.ack_pending)
    now = property(lambda self: self.engine.now)

    # ----------------------------------------------------------------- io: frames to the namespace
    def send(self, f: SockFlow, flags: int, seq: int, ack: int, window: int, plen: int,
             mss=None, wscale=None) -> bool:
        """One segment (payload already at self.buf[hdr:]); False if the tap did not take it."""
        link = self.link
        n = pack_tcp_hdrs_into(self.buf, f.v6, link.vnet, link.csum_offload, link.guest_mac,
                               link.src_mac(f.peer_addr), f.peer_addr, f.ns_addr, f.peer_port,
                               f.ns_port,
                               seq, ack, flags, window, plen, mss=mss, wscale=wscale)
        return link.send((self.view[:n],), n)

    def send_rst(self, key, seq: int, ack: int | None) -> None:
        v6, ns_addr, ns_port, peer_addr, peer_port = key
        link = self.link
        flags = TCP_RST | (TCP_ACK if ack is not None else 0)
        n = pack_tcp_hdrs_into(self.buf, v6, link.vnet, link.csum_offload, link.guest_mac,
                               link.src_mac(peer_addr), peer_addr, ns_addr, peer_port, ns_port, seq,
                               ack or 0, flags, 0, 0)
        link.send((self.view[:n],), n)

    # ----------------------------------------------------------------- io: the socket
    def space(self, f: SockFlow, fresh: bool = False) -> int:
        return self._space(f, fresh)

    def _space(self, f: SockFlow, fresh: bool = False) -> int:
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

    def _space_auto(self, f: SockFlow) -> int:
        """`_space` for an autotuned send buffer (pasta 2026's tcp_wnd_from_sndbuf): its size
        and queued memory from SO_MEMINFO, with the queue's per-segment overhead taken out,
        and at most 75 % of a large buffer used (scaled from 100 % at 128 KiB).

        The kernel grows the buffer only for a socket flagged SOCK_NOSPACE, which a send that
        hit the limit sets, or a poll that found the socket unwritable (over two thirds
        queued). A namespace that respects this window never hits the limit, so once the
        queue passes two thirds the socket is polled for EPOLLOUT (epoll_ctl polls it): the
        flag is set, the peer's ACKs grow the buffer, and EPOLLOUT reports the room
        (`TcpCore.sock_handler` then updates the window)."""
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
                self.stats.tcp_sndbuf_waits += 1
        f.outq, f.sndbuf = sendq, sendq + room
        return room

    def peek(self, f: SockFlow, n: int) -> int | None:
        """Peek `n` bytes at the peek offset into the frame buffer behind the headers; None
        if nothing is queued beyond what is in flight."""
        hdr = self.hdr6 if f.v6 else self.hdr4
        try:
            return f.sock.recv_into(self.view[hdr:hdr + n], n, _PEEK)
        except (BlockingIOError, InterruptedError):
            return None

    def write(self, f: SockFlow, data) -> int:
        try:
            n = f.sock.send(data, _SEND)
        except (BlockingIOError, InterruptedError):
            n = 0
        f.outq += n
        return n

    def discard(self, f: SockFlow, n: int) -> None:
        """Drop `n` acknowledged bytes from the socket's queue (MSG_TRUNC: no copy)."""
        mv = self.scratch
        while n > 0:
            try:
                got = f.sock.recv_into(mv, min(n, len(mv)), socket.MSG_TRUNC | socket.MSG_DONTWAIT)
            except OSError:
                break
            if got <= 0:
                break
            n -= got

    def set_peek_off(self, f: SockFlow, offset: int) -> None:
        f.sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, offset)

    def shutdown_wr(self, f: SockFlow) -> None:
        try:
            f.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def keepalive(self, f: SockFlow) -> None:
        try:
            f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:
            pass

    def connect(self, f: SockFlow, sockaddr) -> int:
        return f.sock.connect_ex(sockaddr)

    def connect_error(self, f: SockFlow, out: int) -> int | None:
        """SO_ERROR of a connecting socket; None if it is not connected yet (no EPOLLOUT,
        `out`, and no peer: a stale event)."""
        err = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not err and not out:
            try:
                f.sock.getpeername()
            except OSError:
                return None
        return err

    def sock_close(self, f: SockFlow, reset: bool) -> None:
        if f.registered:
            self.engine.forget(f.fd)            # the close below leaves the epoll set
        if reset:
            try:
                f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
            except OSError:
                pass
        f.sock.close()               # (the engine drops this batch's stale events for the fd)
        self.by_fd.pop(f.fd, None)

    # ----------------------------------------------------------------- io: epoll
    def add(self, f: SockFlow, events: int) -> bool:
        """Register a new flow's socket; False (socket closed) if epoll refused it."""
        f.events = events
        try:
            self.engine.add(f.fd, events | EPOLLET if events else 0,
                            lambda ev, fl=f: self.core.sock_handler(fl, ev), FdKind.TCP)
        except OSError as e:
            log.debug(f"TCP: epoll: {e.strerror}")
            f.sock.close()
            return False
        self.by_fd[f.fd] = f
        return True

    def want(self, f: SockFlow, events: int) -> None:
        """Socket events we wait for, always edge-triggered: EPOLLIN means *new* data (bytes
        already peeked stay queued until acknowledged, so level-triggered EPOLLIN would fire
        on every loop), EPOLLOUT new room."""
        if f.closed or (events == f.events and f.registered):
            return
        f.events = events
        mask = events | EPOLLET if events else 0
        if not f.registered:
            f.registered = True
            self.engine.add(f.fd, mask, lambda ev, fl=f: self.core.sock_handler(fl, ev),
                            FdKind.TCP)
        else:
            self.engine.modify(f.fd, mask)

    def park(self, f: SockFlow) -> None:
        """Out of the epoll set until `want` asks for events again."""
        self.engine.remove(f.fd)
        f.registered = False

    # ----------------------------------------------------------------- io: new flows
    def new_isn(self) -> int:
        if len(self._isn) < 4:
            self._isn = memoryview(os.urandom(4096))
        isn = int.from_bytes(self._isn[:4], "little")
        self._isn = self._isn[4:]
        return isn

    def open(self, key, conn: TcpConn, bind_addr, ifname) -> SockFlow:
        """A socket for an outbound flow, bound as `-o`/`--outbound-if` say."""
        sock = sock_l4(key[0], Proto.TCP, ifname=ifname,
                       bind=(fwd.text(bind_addr), 0) if bind_addr is not None else None)
        try:
            self._tune(sock)
        except OSError:
            sock.close()
            raise
        f = SockFlow(key, sock, conn, self._sndbuf)
        if self.lock_sndbuf:
            self._sndbuf = f.sndbuf
        return f

    def adopt(self, key, sock, conn: TcpConn) -> SockFlow | None:
        """An accepted socket as a flow; None (socket closed) if that failed."""
        try:
            sock.setblocking(False)
            self._tune(sock)
        except OSError:
            pass
        try:
            return SockFlow(key, sock, conn, self._sndbuf)
        except OSError:
            sock.close()
            return None

    def refuse(self, sock) -> None:
        sock.close()

    def debug(self, msg: str) -> None:
        log.debug(msg)

    def trace(self, msg: str) -> None:
        log.trace(msg)

    def _tune(self, sock) -> None:
        if self.lock_sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUF)
        if self.lock_rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCK_BUF)
        sock.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ----------------------------------------------------------------- -t listeners
    def bind_listener(self, v6: bool, addr, ifname, port: int, delta: int,
                      freebind: bool = False, taddr: bytes | None = None) -> None:
        """One -t listening socket (`pasta.shell.fwd_listen` opens these for the rule table);
        `taddr` (packed): deliver to that address instead of the namespace's own."""
        sock = sock_l4(v6, Proto.TCP, reuse=True, freebind=freebind, ifname=ifname,
                       bind=(str(addr) if addr is not None else ("::" if v6 else "0.0.0.0"),
                             port), listen=128)
        return self.listeners.add(sock, v6, port, port + delta, self._accept, taddr)

    def remove_listener(self, lst: Listener) -> None:
        """Stop listening (`auto`: the port went away); accepted connections carry on."""
        self.listeners.remove(lst)

    def _accept(self, lst: Listener) -> None:
        v6, target, taddr = lst.v6, lst.target, lst.taddr

        def take(sock, peer):
            # A rule with a target address is never spliced (pasta's fwd_nat_from_host()).
            if self.splice is not None and taddr is None and fwd.is_loopback_host(peer[0]):
                self.splice(sock, v6, peer, target)
            else:
                paddr = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET,
                                         peer[0].split("%", 1)[0])
                self.core.conn_from_sock(v6, paddr, peer[1], target, sock, taddr)
        self.listeners.accept_each(lst, take, "TCP")

    def close(self) -> None:
        self.core.close_all()
        self.listeners.close()
