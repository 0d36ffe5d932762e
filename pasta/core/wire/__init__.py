"""Packet codecs: pure functions over bytes, from the virtio-net header to ICMP.

Purpose: the tap dispatch's first look at a frame (`parse_frame()`), and complete frames for the
control-plane responders (`build_udp4_frame()`, `build_udp6_frame()`, `build_icmp4_frame()`,
`build_icmp6_frame()`, `build_arp_frame()`). The per-header codecs live in the submodules:
`l2` (virtio-net header, Ethernet, ARP), `ip` (IPv4, IPv6, extension headers, pseudo-header sums),
`l4` (TCP and options, UDP, ICMP, ICMPv6) and `csum` (Internet checksum, offload helpers).

Theory of operation:
- In: the engine hands each frame read from the tap (a memoryview of a read slot, or the slot
  plus `end=` length) to `parse_frame(buf, vnet)`. It returns a `Frame`: the virtio-net header (or
  None), where the Ethernet, L3 and L4 headers start, the ethertype, the upper-layer protocol, the
  L3 addresses as bytes, the end of the L3 packet and the fragment flag. The dispatcher switches on
  `ethertype` and `proto` and calls `l4.parse_tcp()` / `parse_udp()` / `parse_icmp*()` or
  `l2.parse_arp()` with `(buf, l4_off, end)` for details; nothing is parsed twice except ARP.
- Out: `build_*_frame()` return the bytes of a whole frame (virtio-net header first when
  `vnet`, all zeros), ready for `Link.write()`, always with complete checksums: pypasta
  composes these frames, and a raw socket or tcpdump in the namespace must see valid ones.
  `pack_udp_hdrs_into()` and `pack_tcp_hdrs_into()` write the headers in front of socket data;
  with `vnet`, `csum_offload` and a payload the virtio-net header carries
  `VIRTIO_NET_HDR_F_NEEDS_CSUM`, `csum_start` (the L4 header, counted from the Ethernet header)
  and `csum_offset` (6 for UDP, 16 for TCP), and the L4 checksum field holds only the folded
  pseudo-header sum: the kernel finishes it. A segment or datagram without payload is checksummed
  in software. The IPv4 header checksum is always computed in software. TTL and hop limit are
  255 (NDP requires 255, RFC 4861 section 6.1).

States and events: none (stateless codecs).

Invariants:
- `parse_frame()` raises only `Malformed`, whatever the bytes (a Hypothesis test checks this).
- It returns only frames with ethertype `ETH_P_ARP`, `ETH_P_IP` or `ETH_P_IPV6`; anything else is
  `Malformed("unsupported ethertype")`, 802.1Q/802.1ad tagged frames are
  `Malformed("vlan tagged frame")` (see `pasta.core.wire.l2`).
- `eth_off <= l3_off <= l4_off <= end <= len(buf)`; for ARP `proto == -1`, `l4_off == l3_off`,
  `src`/`dst` are the sender and target protocol addresses.
- Fragments are reported (`frag=True`), not dropped here; `l4_off` then points at the fragment
  data and `proto` is the fragment's upper-layer protocol. The caller drops them, counted.
- GSO frames (virtio-net gso_type != NONE): an IP length field of 0 means "up to `end`"; see
  `pasta.core.wire.ip`.
- Builders raise `ValueError` for wrong-sized addresses or an oversized payload (a bug of the
  caller, not of a peer).

Limits and not handled:
- No L4 validation in `parse_frame()` (that is the protocol handlers' first step).
- Frames are not padded to the Ethernet minimum of 60 bytes (a tap does not need it).
- Builders cover UDP, ICMP and ARP; TCP frames are written into templates by the TCP path with
  `l4.pack_tcp_into()` and the checksum helpers.

Kernel assumptions: those of `pasta.core.wire.l2` (virtio-net header layout and offload semantics).

Differences from passt (`tap.c tap_handler_pasta()`, `tap_add_packet()`, `tap4_handler()`,
`tap6_handler()`, `tap_udp4_send()`, `tap_udp6_send()`, `tap_icmp4_send()`, `tap_icmp6_send()`):
- passt sorts frames into per-family pools and batches TCP/UDP by 5-tuple in the same functions;
  here parsing is separate and returns offsets, and batching is the dispatcher's job.
- passt's senders always checksum in software; ours can offload to the kernel.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pasta.util.errors import Malformed
from pasta.core.wire.csum import fill_csum, fill_csum_partial
from pasta.core.wire.ip import (IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN,
                           pack_ipv4_into, pack_ipv6_into, parse_ipv4, parse_ipv6,
                           pseudo_sum_ipv4, pseudo_sum_ipv6)
from pasta.core.wire.l2 import (ARP_LEN, ETH_HLEN, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, VLAN_ETHERTYPES,
                           VNET_HDR_LEN, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
                           VnetHdr, pack_arp_into, pack_eth_into, pack_vnet_into, parse_arp,
                           parse_vnet)
from pasta.core.wire.ip import IPPROTO_TCP
from pasta.core.wire.l4 import ICMP_CSUM_OFF, TCP_HLEN, UDP_HLEN, pack_tcp_into, pack_udp_into

__all__ = ["Frame", "parse_frame", "build_udp4_frame", "build_udp6_frame", "build_icmp4_frame",
           "build_icmp6_frame", "build_arp_frame", "udp_hdrs_len", "pack_udp_hdrs_into", "tcp_hdrs_len",
           "pack_tcp_hdrs_into"]

_U16 = struct.Struct("!H")
_UDP_CSUM_OFF = 6


class Frame(NamedTuple):
    vnet: VnetHdr | None            # None when the tap has no virtio-net header
    eth_off: int
    ethertype: int                  # ETH_P_ARP, ETH_P_IP or ETH_P_IPV6
    l3_off: int
    proto: int                      # upper-layer IPPROTO_*, -1 for ARP
    l4_off: int
    end: int                        # end of the L3 packet (ARP: of the 28-byte ARP body)
    src: bytes                      # 4 or 16 bytes
    dst: bytes
    frag: bool


def parse_frame(buf, vnet: bool, off: int = 0, end: int | None = None) -> Frame:
    """Locate the headers of one tap frame in buf[off:end] (buf is borrowed until return)."""
    if end is None or end > len(buf):
        end = len(buf)
    if vnet:
        vh = parse_vnet(buf, off)
        eoff = off + VNET_HDR_LEN
        gso = bool(vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN)
    else:
        vh = None
        eoff = off
        gso = False
    if end - eoff < ETH_HLEN:
        raise Malformed("short ethernet header")
    try:
        ethertype = _U16.unpack_from(buf, eoff + 12)[0]
    except (struct.error, TypeError, ValueError):
        raise Malformed("short ethernet header") from None
    l3 = eoff + ETH_HLEN
    if ethertype == ETH_P_IP:
        h = parse_ipv4(buf, l3, end, gso)
        return Frame(vh, eoff, ethertype, l3, h.proto, h.l4_off, h.end, h.src, h.dst, h.frag)
    if ethertype == ETH_P_IPV6:
        h = parse_ipv6(buf, l3, end, gso)
        return Frame(vh, eoff, ethertype, l3, h.proto, h.l4_off, h.end, h.src, h.dst, h.frag)
    if ethertype == ETH_P_ARP:
        a = parse_arp(buf, l3, end)
        return Frame(vh, eoff, ethertype, l3, -1, l3, l3 + ARP_LEN, a.spa, a.tpa, False)
    if ethertype in VLAN_ETHERTYPES:
        raise Malformed("vlan tagged frame")
    raise Malformed("unsupported ethertype")


# --- builders for control-plane replies -------------------------------------------------------

def _check_len(name: str, value, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")


def _ip_frame(v6: bool, dst_mac, src_mac, src_ip, dst_ip, proto: int, l4_msg: bytes,
              csum_field: int, use_pseudo: bool, udp: bool, vnet: bool, flow: int = 0) -> bytes:
    """Ethernet + IP around an L4 message whose checksum field (at `csum_field`) is zero.

    The checksum is always complete: these frames are composed here, and a raw socket or
    tcpdump in the namespace must see what a real network would give it (offload would leave
    the pseudo-header sum in the field; issue 13 item 2).
    """
    _check_len("dst_mac", dst_mac, 6)
    _check_len("src_mac", src_mac, 6)
    alen = 16 if v6 else 4
    _check_len("src_ip", src_ip, alen)
    _check_len("dst_ip", dst_ip, alen)
    l4_len = len(l4_msg)
    if l4_len + (0 if v6 else IPV4_HLEN) > 0xFFFF:
        raise ValueError("payload too large for one IP packet")
    vh = VNET_HDR_LEN if vnet else 0
    l4 = vh + ETH_HLEN + (IPV6_HLEN if v6 else IPV4_HLEN)
    end = l4 + l4_len
    buf = bytearray(end)
    _, psum = _ip_into(buf, v6, vnet, dst_mac, src_mac, src_ip, dst_ip, proto, l4_len, flow,
                       pseudo=use_pseudo)
    buf[l4:end] = l4_msg
    _l4_csum_into(buf, vnet, False, l4, end, csum_field, l4 - vh + csum_field + 2, psum, udp)
    return bytes(buf)


def _ip_into(buf, v6: bool, vnet: bool, dst_mac, src_mac, src_ip, dst_ip, proto: int,
             l4_len: int, flow: int = 0, pseudo: bool = True) -> tuple[int, int]:
    """Ethernet + IP headers after the (optional) virtio-net header; returns the L4 offset and
    the pseudo-header sum (0 without `pseudo`: ICMPv4 has none)."""
    vh = VNET_HDR_LEN if vnet else 0
    l3 = vh + ETH_HLEN
    if v6:
        pack_eth_into(buf, vh, dst_mac, src_mac, ETH_P_IPV6)
        l4 = pack_ipv6_into(buf, l3, src_ip, dst_ip, proto, l4_len, flow=flow)
        return l4, pseudo_sum_ipv6(src_ip, dst_ip, proto, l4_len)
    pack_eth_into(buf, vh, dst_mac, src_mac, ETH_P_IP)
    l4 = pack_ipv4_into(buf, l3, src_ip, dst_ip, proto, IPV4_HLEN + l4_len)
    return l4, pseudo_sum_ipv4(src_ip, dst_ip, proto, l4_len) if pseudo else 0


def _l4_csum_into(buf, vnet: bool, offload: bool, l4: int, end: int, field: int, hdr_len: int,
                  psum: int, udp: bool) -> None:
    """The L4 checksum: left to the kernel (NEEDS_CSUM, pseudo-header sum in the field) with a
    virtio-net header and offload, else computed here over buf[l4:end]."""
    vh = VNET_HDR_LEN if vnet else 0
    if vnet and offload:
        pack_vnet_into(buf, 0, flags=VIRTIO_NET_HDR_F_NEEDS_CSUM, hdr_len=hdr_len,
                       csum_start=l4 - vh, csum_offset=field)
        fill_csum_partial(buf, l4 + field, psum)
        return
    if vnet:
        pack_vnet_into(buf, 0)
    fill_csum(buf, l4, end, l4 + field, psum, udp=udp)


def _udp_msg(sport: int, dport: int, payload) -> bytearray:
    msg = bytearray(UDP_HLEN + len(payload))
    pack_udp_into(msg, 0, sport, dport, len(msg))
    msg[UDP_HLEN:] = payload
    return msg


def build_udp4_frame(dst_mac: bytes, src_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int,
                     dport: int, payload, vnet: bool = True) -> bytes:
    """A whole Ethernet/IPv4/UDP frame (with a virtio-net header first if `vnet`)."""
    return _ip_frame(False, dst_mac, src_mac, src_ip, dst_ip, IPPROTO_UDP,
                     _udp_msg(sport, dport, payload), _UDP_CSUM_OFF, True, True, vnet)


def build_udp6_frame(dst_mac: bytes, src_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int,
                     dport: int, payload, vnet: bool = True, flow: int = 0) -> bytes:
    """A whole Ethernet/IPv6/UDP frame (with a virtio-net header first if `vnet`)."""
    return _ip_frame(True, dst_mac, src_mac, src_ip, dst_ip, IPPROTO_UDP,
                     _udp_msg(sport, dport, payload), _UDP_CSUM_OFF, True, True, vnet, flow)


def _icmp_msg(type: int, code: int, body) -> bytes:
    return bytes((type, code, 0, 0)) + bytes(body)


def build_icmp4_frame(dst_mac: bytes, src_mac: bytes, src_ip: bytes, dst_ip: bytes, type: int,
                      code: int, body, vnet: bool = True) -> bytes:
    """A whole Ethernet/IPv4/ICMP frame; `body` is everything after type, code and checksum.

    For an echo reply, body = ident and sequence (2 bytes each, network order) + data.
    """
    return _ip_frame(False, dst_mac, src_mac, src_ip, dst_ip, IPPROTO_ICMP,
                     _icmp_msg(type, code, body), ICMP_CSUM_OFF, False, False, vnet)


def build_icmp6_frame(dst_mac: bytes, src_mac: bytes, src_ip: bytes, dst_ip: bytes, type: int,
                      code: int, body, vnet: bool = True, flow: int = 0) -> bytes:
    """A whole Ethernet/IPv6/ICMPv6 frame (NDP, echo reply); `body` follows the checksum."""
    return _ip_frame(True, dst_mac, src_mac, src_ip, dst_ip, IPPROTO_ICMPV6,
                     _icmp_msg(type, code, body), ICMP_CSUM_OFF, True, False, vnet, flow)


def udp_hdrs_len(v6: bool, vnet: bool) -> int:
    """Bytes of virtio-net + Ethernet + IP + UDP headers in front of a UDP payload."""
    return ((VNET_HDR_LEN if vnet else 0) + ETH_HLEN + (IPV6_HLEN if v6 else IPV4_HLEN)
            + UDP_HLEN)


def pack_udp_hdrs_into(buf, v6: bool, vnet: bool, csum_offload: bool, dst_mac: bytes,
                       src_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int, dport: int,
                       plen: int) -> int:
    """Write every header of a UDP frame in front of a payload already at buf[H:H + plen].

    H is `udp_hdrs_len(v6, vnet)`; the data path receives datagrams straight into a buffer at
    that offset, so the payload is never copied. Returns the frame length H + plen. With `vnet`,
    `csum_offload` and a payload the kernel completes the UDP checksum; otherwise it is computed
    here (an empty datagram is all header: nothing to gain from offload).
    """
    vh = VNET_HDR_LEN if vnet else 0
    ulen = UDP_HLEN + plen
    if not v6 and IPV4_HLEN + ulen > 0xFFFF:
        raise ValueError("payload too large for one IPv4 packet")
    l4, psum = _ip_into(buf, v6, vnet, dst_mac, src_mac, src_ip, dst_ip, IPPROTO_UDP, ulen)
    pack_udp_into(buf, l4, sport, dport, ulen)
    end = l4 + ulen
    _l4_csum_into(buf, vnet, csum_offload and plen > 0, l4, end, _UDP_CSUM_OFF, l4 + UDP_HLEN - vh,
                  psum, True)
    return end


_TCP_CSUM_OFF = 16


def tcp_hdrs_len(v6: bool, vnet: bool, opts: bool = False) -> int:
    """Bytes of virtio-net + Ethernet + IP + TCP headers (with MSS and window scale if `opts`)."""
    return ((VNET_HDR_LEN if vnet else 0) + ETH_HLEN + (IPV6_HLEN if v6 else IPV4_HLEN)
            + TCP_HLEN + (8 if opts else 0))


def pack_tcp_hdrs_into(buf, v6: bool, vnet: bool, csum_offload: bool, dst_mac: bytes,
                       src_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int, dport: int,
                       seq: int, ack: int, flags: int, window: int, plen: int,
                       mss: int | None = None, wscale: int | None = None, flow: int = 0) -> int:
    """Write every header of a TCP segment in front of a payload at buf[H:H + plen].

    H is `tcp_hdrs_len(v6, vnet)` plus 4 for the MSS option and 4 for NOP + window scale (the
    only options pypasta sends, on SYN and SYN,ACK; window scale only with MSS). Returns the frame
    length. With `vnet`, `csum_offload` and a payload the kernel completes the TCP checksum;
    otherwise it is computed here: a segment without data (SYN, ACK, FIN, RST, probe) is composed
    by pypasta, so it carries a complete checksum, as on a real network (issue 13 item 2).
    """
    vh = VNET_HDR_LEN if vnet else 0
    if mss is None:
        wscale = None
    thlen = TCP_HLEN + (4 if mss is not None else 0) + (4 if wscale is not None else 0)
    tlen = thlen + plen
    l4, psum = _ip_into(buf, v6, vnet, dst_mac, src_mac, src_ip, dst_ip, IPPROTO_TCP, tlen, flow)
    pack_tcp_into(buf, l4, sport, dport, seq, ack, flags, window, mss=mss, wscale=wscale)
    end = l4 + tlen
    _l4_csum_into(buf, vnet, csum_offload and plen > 0, l4, end, _TCP_CSUM_OFF, l4 + thlen - vh,
                  psum, False)
    return end


def build_arp_frame(dst_mac: bytes, src_mac: bytes, op: int, sha: bytes, spa: bytes, tha: bytes,
                    tpa: bytes, vnet: bool = True) -> bytes:
    """A whole Ethernet/ARP frame (a virtio-net header of zeros first if `vnet`)."""
    for name, value, size in (("dst_mac", dst_mac, 6), ("src_mac", src_mac, 6), ("sha", sha, 6),
                              ("spa", spa, 4), ("tha", tha, 6), ("tpa", tpa, 4)):
        _check_len(name, value, size)
    vh = VNET_HDR_LEN if vnet else 0
    buf = bytearray(vh + ETH_HLEN + ARP_LEN)
    pack_arp_into(buf, pack_eth_into(buf, vh, dst_mac, src_mac, ETH_P_ARP), op, sha, spa, tha,
                  tpa)
    return bytes(buf)
