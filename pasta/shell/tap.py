"""The tap side of the translator: frame input dispatch, link state tracking and frame output.

Purpose: pasta's tap.c (pasta-reference.md sections 7, 9.4 and 17). Every frame the namespace
sends is read here, classified, and handed to the protocol that owns it; every frame pypasta
sends to the namespace leaves through `TapLink.send()`.

Theory of operation:
- Two objects, so that construction needs no wiring afterwards: `TapLink` holds the link
  state and writes frames (the protocol handlers are built with it), and `TapHandler` (built
  last, with the protocol handlers as arguments) reads and dispatches frames, passt's
  tap_handler().
- `TapHandler.on_readable()` (the tap fd's epoll handler) reads a batch of frames into the tap's
  preallocated slots and calls `_frame()` on each. `_frame()` parses with
  `pasta.core.wire.parse_frame()`; a `Malformed` frame is dropped and counted under
  `drop:<reason>`, so a storm of garbage costs one exception per frame and nothing else.
- Link state followed from well-formed frames, as pasta does: the guest MAC (the source MAC of
  the namespace's frames, the destination of ours), `addr_seen4`/`addr_seen6` (the namespace's
  last unicast source addresses, where inbound flows are delivered) and `addr_ll_seen6` (its
  link-local address). A new guest MAC makes a new `LinkCtx` for the responders.
- Dispatch: ARP -> `pasta.core.arp`; IPv4 UDP to port 67 -> `pasta.core.dhcp`; ICMPv6 NDP types ->
  `pasta.core.ndp`; IPv6 UDP to port 547 on a multicast destination -> `pasta.core.dhcpv6`; ICMP/ICMPv6
  echo requests -> the `icmp` handler; other UDP -> the `udp` handler; TCP -> the `tcp`
  handler (`pasta.shell.tcp_buf`). Fragments, loopback addresses and other
  protocols are dropped and counted (pasta drops them too).
- Output: `send(pieces, length)` writes one frame through the link (`pasta.shell.link`: the tap
  device, or a stream socket in passt's framing); the pcap capture, if any, records it without
  its virtio-net header. A frame the link does not take ("the interface is down or its queue is
  full": EAGAIN, ENOBUFS, ENOSPC, EIO, ...; a stream still finishing a frame) is dropped and
  counted, as pasta does; any other write error stops pypasta ("Error on tap device,
  exiting"). A socket error raised while a
  frame is handled (EMFILE, an epoll registration failure) belongs to that frame's flow: the
  frame is dropped and counted under `drop:flow error: ERRNO`, and only a read error on the tap
  itself stops pypasta.
- Periodic unsolicited router advertisements are scheduled on the engine's timer heap.

States and events: none beyond the tracked link state; the engine calls `on_readable(events)`.

Invariants: a frame is either handed to exactly one protocol handler or counted in exactly one
`drop:` counter; protocol handlers receive memoryviews that are valid only during the call.

Limits and not handled: one guest MAC, no neighbour table (as pasta); no ICMP errors are
generated towards the namespace; IPv4 fragments from the namespace are dropped (a warning every
10 s, as pasta), IPv6 fragments too (counted, no warning).

Kernel assumptions: frames read carry the virtio-net header when the tap has IFF_VNET_HDR; the
kernel validated (or will complete) the checksums of frames its own stack sent, so input
checksums are not verified (pasta does not verify them either).

Differences from passt: passt sorts frames into per-family pools and batches them by 5-tuple;
here each frame is dispatched as it is read, and the UDP handler batches per flow itself.
"""

from __future__ import annotations

import errno
import random

from pasta.core import arp, dhcp, dhcpv6, fwd, ndp
from pasta.util import log
from pasta.util.errors import Malformed
from pasta.core.wire import (build_arp_frame, build_icmp4_frame, build_icmp6_frame, build_udp4_frame, build_udp6_frame,
                        parse_frame)
from pasta.core.wire.ip import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from pasta.core.wire.l2 import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, VNET_HDR_LEN
from pasta.core.wire.l4 import (ICMP_ECHO, ICMPV6_ECHO_REQUEST, ND_REDIRECT, ND_ROUTER_SOLICIT,
                           parse_icmp, parse_icmp6, parse_icmp6_echo, parse_tcp,
                           parse_udp)

ARP_REPLY = 2
DHCP_SERVER_PORT, DHCP_CLIENT_PORT = 67, 68
DHCP6_SERVER_PORT, DHCP6_CLIENT_PORT = 547, 546
FRAG_WARN_INTERVAL_S = 10.0
MLD_TYPES = frozenset((130, 131, 132, 143))   # MLD queries, reports and done; MLDv2 reports


ICMP_ERR_RATE = 1000        # ICMP errors we send per second at most (token bucket)...
ICMP_ERR_BURST = 50         # ...and at once
READ_GROW = 8               # full tap reads in a row before the read limit doubles


class TapLink:
    """The tap side's state and output: frames to the namespace (module docstring)."""

    def __init__(self, engine, tap, ctx, pcap=None, csum_offload: bool = True,
                 addr_ll_seen6: bytes | None = None):
        self.engine = engine
        self.tap = tap
        self.pcap = pcap
        self.vnet = tap.vnet_hdr
        self.csum_offload = csum_offload and tap.vnet_hdr
        self.hdr = VNET_HDR_LEN if tap.vnet_hdr else 0
        self.stats = engine.stats
        self.guest_mac = bytes(ctx.guest_mac)
        self.our_mac = bytes(ctx.our_mac)
        self.addr_seen4 = ctx.v4.addr
        self.addr_seen6 = ctx.v6.addr
        self.addr_ll_seen6 = addr_ll_seen6
        self.neigh = None               # pasta.core.neigh.NeighTable, once the notifier runs

    def src_mac(self, addr) -> bytes:
        """Ethernet source of a frame sent for the remote host the namespace sees at `addr`:
        its real MAC (or the gateway's) from the host's neighbour table, else ours."""
        t = self.neigh
        if t is None or not len(t):
            return self.our_mac
        return t.mac_for(addr) or self.our_mac

    # ----------------------------------------------------------------- counters
    def drop(self, reason: str, count: int = 1) -> None:
        self.stats.drop(reason, count)

    # ----------------------------------------------------------------- output
    def send(self, pieces, length: int) -> bool:
        """Write one frame (virtio-net header first when the tap has one); False if dropped."""
        try:
            if not self.tap.write(pieces):
                self.stats.tap_write_dropped += 1
                return False
        except OSError as e:
            log.err(f"Error on tap device, exiting ({e.strerror})")
            self.engine.stop(1)
            return False
        self.stats.tap_frames_out += 1
        if self.pcap is not None:
            self._capture(pieces, length)
        return True

    def send_bytes(self, frame: bytes) -> bool:
        return self.send((frame,), len(frame))

    def _capture(self, pieces, length: int) -> None:
        hdr = self.hdr
        if not hdr:
            self.pcap.record(pieces, length)
            return
        out = []
        for p in pieces:
            mv = memoryview(p)
            if hdr >= len(mv):
                hdr -= len(mv)
                continue
            out.append(mv[hdr:])
            hdr = 0
        self.pcap.record(out, length - self.hdr)

    def send_udp(self, v6: bool, src: bytes, dst: bytes, sport: int, dport: int, payload) -> bool:
        """A UDP datagram to the namespace from a small payload (control plane)."""
        build = build_udp6_frame if v6 else build_udp4_frame
        return self.send_bytes(build(self.guest_mac, self.our_mac, src, dst, sport, dport,
                                     payload, vnet=self.vnet))


class TapHandler:
    """Frames from the namespace: read, classify, hand to their protocol (module docstring);
    the periodic router advertisements."""

    def __init__(self, engine, link: TapLink, ctx, rules: fwd.Rules, udp=None, icmp=None,
                 tcp=None):
        self.engine = engine
        self.link = link
        self.ctx = ctx
        self.rules = rules
        self.udp = udp                  # pasta.shell.udp.UdpFlows
        self.icmp = icmp                # pasta.shell.icmp.EchoFlows
        self.tcp = tcp                  # pasta.shell.tcp_buf.TcpFlows
        self.stats = engine.stats
        self.filtered = rules.filtered
        self.unreachable_net4 = rules.unreachable_net4
        # Front ends' unreachable or black-hole destinations: usually none, one test per frame
        self.filtering = bool(rules.filtered) or rules.unreachable_net4 is not None
        self._icmp_tokens = float(ICMP_ERR_BURST)
        self._icmp_last = 0.0
        self._frag_dropped = 0
        # Adaptive tap reads: a read that finds the queue empty (EAGAIN) costs a syscall for
        # nothing, and with request/response or connection traffic it is every other read.
        # So read as many frames as the last wake-up found (the level-triggered epoll says
        # when more are queued); after READ_GROW wake-ups that all filled their limit, allow
        # twice as many, up to the tap's slots.
        self._read_limit = link.tap.batch_max
        self._read_streak = 0
        self._frag_warned = -FRAG_WARN_INTERVAL_S
        self._rng = random.Random()
        self._ra_timer = None


    # ----------------------------------------------------------------- router advertisements
    def start(self) -> None:
        """Arm the periodic unsolicited RA (if NDP and RA are on)."""
        if ndp.unsolicited_ra(self.ctx) is not None:
            # As pasta: none at start (see pasta.core.ndp, "Why no RA at start"); the namespace's
            # Router Solicitation is answered at once.
            self._ra_timer = self.engine.call_at(ndp.first_deadline(self.engine.now, self._rng),
                                                 self._unsolicited_ra)

    def _unsolicited_ra(self) -> None:
        out = ndp.unsolicited_ra(self.ctx)
        if out is None:
            return
        self._send_icmp6(*out)
        self._ra_timer = self.engine.call_at(ndp.next_deadline(self.engine.now, self._rng),
                                             self._unsolicited_ra)

    def _send_icmp6(self, msg: bytes, src: bytes, dst: bytes) -> None:
        link = self.link
        link.send_bytes(build_icmp6_frame(link.guest_mac, link.our_mac, src, dst, msg[0], msg[1],
                                          msg[4:], vnet=link.vnet))

    # ----------------------------------------------------------------- input
    def on_readable(self, events: int) -> None:
        limit = self._read_limit
        batch = self.link.tap.read_batch(limit)
        got = len(batch)
        if got < limit:                     # the queue ran dry
            self._read_limit, self._read_streak = max(1, got), 0
        else:
            self._read_streak += 1
            if self._read_streak >= READ_GROW:
                self._read_limit = min(2 * limit, self.link.tap.batch_max)
                self._read_streak = 0
        if not batch:
            return
        self.stats.tap_frames_in += len(batch)
        frame = self._frame
        udp = self.udp if len(batch) > 1 else None
        if udp is not None:
            udp.batching = True         # datagrams wait for flush(): one send per flow run
        try:
            for mv in batch:
                n = len(mv)
                if self.link.pcap is not None:
                    self.link.pcap.record((mv[self.link.hdr:],), n - self.link.hdr)
                try:
                    frame(mv, n)
                except Malformed as e:
                    self.link.drop(str(e))
                except OSError as e:
                    # A socket error that belongs to one flow (EMFILE, ENOBUFS, an epoll
                    # registration failure): that frame is lost, the namespace retries; the
                    # tap and every other flow carry on (issue 13 item 6).
                    log.debug(f"frame dropped: {e.strerror or e}")
                    self.link.drop(f"flow error: {errno.errorcode.get(e.errno, e.errno)}")
        finally:
            if udp is not None:
                udp.flush()             # before the next read reuses the slots

    def _frame(self, buf, n: int) -> None:
        f = parse_frame(buf, self.link.vnet, 0, n)
        eth = f.eth_off
        src_mac = bytes(buf[eth + 6:eth + 12])
        if src_mac != self.link.guest_mac and not src_mac[0] & 1 and any(src_mac):
            self._set_guest_mac(src_mac)
        et = f.ethertype
        if et == ETH_P_ARP:
            self._arp(buf, f)
        elif et == ETH_P_IP:
            if self.ctx.v4.enabled:
                self._ipv4(buf, f)
            else:
                self.link.drop("ipv4 disabled")
        elif et == ETH_P_IPV6:
            if self.ctx.v6.enabled:
                self._ipv6(buf, f)
            else:
                self.link.drop("ipv6 disabled")

    def _set_guest_mac(self, mac: bytes) -> None:
        log.debug(f"guest MAC now {mac.hex(':')}")
        self.link.guest_mac = mac
        self.ctx = self.ctx.with_guest_mac(mac)

    def _arp(self, buf, f) -> None:
        t = self.link.neigh
        out = arp.reply(self.ctx, bytes(buf[f.l3_off:f.end]),
                        mac_for=t.mac_for if t is not None else None)
        if out is None:
            self.link.drop("arp: not answered")
            return
        # ARP_HDR layout: ... op(2) sha(6) spa(4) tha(6) tpa(4): we answer to the sender.
        tha, tpa = out[18:24], out[24:28]
        link = self.link
        link.send_bytes(build_arp_frame(tha, link.our_mac, ARP_REPLY, out[8:14], out[14:18],
                                        tha, tpa, vnet=link.vnet))

    def _ipv4(self, buf, f) -> None:
        if f.frag:
            self._fragment()
            return
        src, dst = f.src, f.dst
        if src[0] == 127 or dst[0] == 127:
            self.link.drop("loopback address")
            return
        if src != self.link.addr_seen4 and fwd.is_unicast(src):
            self.link.addr_seen4 = src
        if self.filtering and self._filter4(buf, f, dst):
            return
        proto = f.proto
        if proto == IPPROTO_UDP:
            u = parse_udp(buf, f.l4_off, f.end)
            if u.dport == DHCP_SERVER_PORT:
                self._dhcp(buf, u)
            elif self.udp is not None:
                self.udp.from_tap(False, src, dst, u.sport, u.dport, buf[u.payload_off:u.end])
            else:
                self.link.drop("udp disabled")
        elif proto == IPPROTO_ICMP:
            h = parse_icmp(buf, f.l4_off, f.end)
            if h.type != ICMP_ECHO:
                self.link.drop("icmp: not an echo request")
            elif self.icmp is None:
                self.link.drop("icmp disabled")
            else:
                self.icmp.from_tap(False, src, dst, h.ident, h.seq, buf[f.l4_off:f.end])
        elif proto == IPPROTO_TCP:
            if self.tcp is None:
                self.link.drop("tcp disabled")
            else:
                self.tcp.from_tap(False, src, dst, parse_tcp(buf, f.l4_off, f.end), buf)
        else:
            self.link.drop("ipv4: unsupported protocol")

    def _filter4(self, buf, f, dst: bytes) -> bool:
        """IPv4: a filtered address, or one of the unreachable network (but our own and the
        DNS address); True if the frame was dropped or answered."""
        if dst in self.filtered:
            return self._filtered(buf, f, False)
        if self.unreachable_net4 is not None and fwd.in_net4(dst, self.unreachable_net4) \
                and dst not in (self.ctx.v4.addr, self.rules.dns_match4):
            return self._filtered(buf, f, False, True)
        return False

    def _filtered(self, buf, f, v6: bool, by_net: bool = False) -> bool:
        """A frame to a destination the configuration makes unreachable or a black hole:
        dropped or answered (True), unless it belongs to a flow that exists already (False):
        replies to a forwarded port's client that the namespace sees as the gateway, and the
        control plane (DHCP, NDP), which the responders answer as for any address.

        An echo request is answered here, as libslirp answers pings to its gateway and DNS
        addresses whatever the other flags; ICMP errors go only to unicast frames, at most
        ICMP_ERR_BURST at once and ICMP_ERR_RATE a second (RFC 1122 3.2.2, RFC 4443 2.4)."""
        if f.proto == IPPROTO_UDP:
            u = parse_udp(buf, f.l4_off, f.end)
            if u.dport == DHCP_SERVER_PORT:
                return False
            if self.udp is not None and \
                    self.udp.table.get((v6, f.src, u.sport, f.dst, u.dport)) is not None:
                return False
        elif v6 and f.proto == IPPROTO_ICMPV6 and f.l4_off < f.end and \
                ND_ROUTER_SOLICIT <= buf[f.l4_off] <= ND_REDIRECT:
            return False
        elif f.proto == IPPROTO_TCP and self.tcp is not None:
            t = parse_tcp(buf, f.l4_off, f.end)
            if (v6, f.src, t.sport, f.dst, t.dport) in self.tcp.flows:
                return False
        if f.l4_off < f.end and (
                (not v6 and f.proto == IPPROTO_ICMP and buf[f.l4_off] == ICMP_ECHO) or
                (v6 and f.proto == IPPROTO_ICMPV6 and buf[f.l4_off] == ICMPV6_ECHO_REQUEST)):
            self._echo_reply(buf, f, v6)
            return True
        action = fwd.FILTER_UNREACHABLE if by_net else self.filtered[f.dst]
        if action == fwd.FILTER_DROP:
            self.link.drop("filtered destination")
            return True
        eth = f.eth_off
        if buf[eth] & 1:
            self.link.drop("filtered destination")   # link-layer multicast or broadcast
            return True
        now = self.engine.now
        self._icmp_tokens = min(ICMP_ERR_BURST,
                                self._icmp_tokens + (now - self._icmp_last) * ICMP_ERR_RATE)
        self._icmp_last = now
        if self._icmp_tokens < 1:
            self.link.drop("icmp error rate limit")
            return True
        self._icmp_tokens -= 1
        icmp_error = f.l4_off < f.end and (
            (not v6 and f.proto == IPPROTO_ICMP and buf[f.l4_off] != ICMP_ECHO) or
            (v6 and f.proto == IPPROTO_ICMPV6 and buf[f.l4_off] < 128))
        if not fwd.is_unicast(f.src) or icmp_error:
            self.link.drop("filtered destination")   # no ICMP errors about errors (RFC 1122)
            return True
        # RFC 792 / RFC 4443: "network unreachable" quoting the offending packet's IP header
        # and the start of its payload (8 bytes for IPv4; as much as fits 1280 bytes for IPv6).
        quote = bytes(buf[f.l3_off:min(f.end, f.l4_off + 8 if not v6 else f.l3_off + 1232)])
        if v6:
            frame = build_icmp6_frame(self.link.guest_mac, self.link.our_mac, f.dst, f.src, 1, 0,
                                      bytes(4) + quote, vnet=self.link.vnet)
        else:
            frame = build_icmp4_frame(self.link.guest_mac, self.link.our_mac, f.dst, f.src, 3, 0,
                                      bytes(4) + quote, vnet=self.link.vnet)
        self.stats.icmp_unreachable_sent += 1
        self.link.send_bytes(frame)
        return True

    def _echo_reply(self, buf, f, v6: bool) -> None:
        """Answer an echo request for one of the filtered addresses ourselves."""
        body = bytes(buf[f.l4_off + 4:f.end])            # identifier, sequence, data
        link = self.link
        if v6:
            frame = build_icmp6_frame(link.guest_mac, link.our_mac, f.dst, f.src, 129, 0, body,
                                      vnet=link.vnet)
        else:
            frame = build_icmp4_frame(link.guest_mac, link.our_mac, f.dst, f.src, 0, 0, body,
                                      vnet=link.vnet)
        link.send_bytes(frame)

    def _dhcp(self, buf, u) -> None:
        req = bytes(buf[u.payload_off:u.end])
        out = dhcp.reply(self.ctx, req)
        if out is None:
            self.link.drop("dhcp: ignored")
            return
        payload, dst = out
        self.link.send_udp(False, self.ctx.v4.gw, dst, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, payload)
        log.info(_dhcp_line(req, payload))
        log.info(f"    from {req[28:34].hex(':')}")

    def _ipv6(self, buf, f) -> None:
        if f.frag:
            self.link.drop("ipv6 fragment")
            return
        src, dst = f.src, f.dst
        if src == fwd.LOOPBACK6 or dst == fwd.LOOPBACK6:
            self.link.drop("loopback address")
            return
        if fwd.is_unicast(src):
            if fwd.is_link_local6(src):
                if src != self.link.addr_ll_seen6:
                    self.link.addr_ll_seen6 = src
                if self.link.addr_seen6 is None:
                    self.link.addr_seen6 = src          # as pasta, until a global one is seen
            elif src != self.link.addr_seen6:
                self.link.addr_seen6 = src
        if self.filtering and dst in self.filtered and self._filtered(buf, f, True):
            return
        proto = f.proto
        if proto == IPPROTO_UDP:
            u = parse_udp(buf, f.l4_off, f.end)
            if u.dport == DHCP6_SERVER_PORT and dst[0] == 0xFF:
                self._dhcpv6(buf, u, src, dst)
            elif self.udp is not None:
                self.udp.from_tap(True, src, dst, u.sport, u.dport, buf[u.payload_off:u.end])
            else:
                self.link.drop("udp disabled")
        elif proto == IPPROTO_ICMPV6:
            h = parse_icmp6(buf, f.l4_off, f.end)
            if ND_ROUTER_SOLICIT <= h.type <= ND_REDIRECT:
                t = self.link.neigh
                out = ndp.reply(self.ctx, bytes(buf[f.l4_off:f.end]), src, dst,
                                mac_for=t.mac_for if t is not None else None)
                if out is None:
                    self.link.drop("ndp: not answered")
                else:
                    self._send_icmp6(*out)
                    if h.type == ND_ROUTER_SOLICIT:
                        log.info("NDP: received RS, sending RA")
                    else:
                        log.debug("NDP: received NS, sending NA")
            elif h.type == ICMPV6_ECHO_REQUEST:
                if self.icmp is None:
                    self.link.drop("icmp disabled")
                    return
                e = parse_icmp6_echo(buf, f.l4_off, f.end)
                self.icmp.from_tap(True, src, dst, e.ident, e.seq, buf[f.l4_off:f.end])
            elif h.type in MLD_TYPES:
                self.link.drop("icmpv6: mld (ignored)")      # no multicast routing here, as pasta
            else:
                self.link.drop("icmpv6: unsupported type")
        elif proto == IPPROTO_TCP:
            if self.tcp is None:
                self.link.drop("tcp disabled")
            else:
                self.tcp.from_tap(True, src, dst, parse_tcp(buf, f.l4_off, f.end), buf)
        else:
            self.link.drop("ipv6: unsupported protocol")

    def _dhcpv6(self, buf, u, src: bytes, dst: bytes) -> None:
        out = dhcpv6.reply(self.ctx, bytes(buf[u.payload_off:u.end]), src, dst)
        if out is None:
            self.link.drop("dhcpv6: ignored")
            return
        payload, to = out
        if self.ctx.v6.addr is not None:
            self.link.addr_seen6 = self.ctx.v6.addr
        self.link.send_udp(True, self.ctx.v6.our_ll, to, DHCP6_SERVER_PORT, DHCP6_CLIENT_PORT,
                           payload)
        log.info(f"DHCPv6: received {_name(dhcpv6.Dhcp6Msg, buf[u.payload_off])}, sending "
                 f"{_name(dhcpv6.Dhcp6Msg, payload[0])}")

    def _fragment(self) -> None:
        self.link.drop("ipv4 fragment")
        self._frag_dropped += 1
        now = self.engine.now
        if now - self._frag_warned >= FRAG_WARN_INTERVAL_S:
            log.warn(f"Can't process IPv4 fragments ({self._frag_dropped} dropped)")
            self._frag_warned = now
            self._frag_dropped = 0

    def close(self) -> None:
        if self._ra_timer is not None:
            self._ra_timer.cancel()


def _name(enum_cls, value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return str(value)


def _dhcp_line(req: bytes, reply: bytes) -> str:
    """pasta's info line for a DHCP answer (dhcp.c)."""
    rq = dhcp.parse_options(req).get(dhcp.DhcpOpt.MSG_TYPE)
    rp = dhcp.parse_options(reply).get(dhcp.DhcpOpt.MSG_TYPE)
    rq = rq[0] if rq else None
    rp = rp[0] if rp else None
    if rp == dhcp.DhcpMsg.OFFER:
        return "DHCP: offer to discover"
    if rq == dhcp.DhcpMsg.DISCOVER:
        return "DHCP: ack to discover (Rapid Commit)"
    if rq == dhcp.DhcpMsg.INFORM:
        return "DHCP: ack to inform"
    if rq is None:
        return "BOOTP: ack to request"
    return "DHCP: ack to request"
