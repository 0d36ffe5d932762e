"""Link-layer codecs: Ethernet, ARP (IPv4 over Ethernet) and the virtio-net header.

Purpose: parse and write the headers that precede IP on the tap: the 12-byte virtio-net header
(IFF_VNET_HDR), the Ethernet header, and ARP requests and replies.

Theory of operation: the tap dispatch calls `pasta.core.wire.parse_frame()`, which uses `parse_vnet()`
and `parse_eth()` from here; the ARP responder calls `parse_arp()` on the frame and builds its
reply with `pasta.core.wire.build_arp_frame()` (which uses `pack_vnet_into()`, `pack_eth_into()` and
`pack_arp_into()`). Every `parse_*(buf, off)` takes any bytes-like object and an offset and returns
a small NamedTuple; every `pack_*_into(buf, off, ...)` writes into a preallocated bytearray or
writable memoryview and returns the end offset.

States and events: none (stateless codecs).

Invariants:
- `parse_*` raise only `Malformed`; a buffer too short for the header is "short <hdr> header".
- MAC addresses are 6-byte `bytes`, IPv4 addresses 4-byte `bytes`; nothing here builds
  `ipaddress` objects.
- `VnetHdr` fields are the host-endian (little-endian) values of `struct virtio_net_hdr_v1`:
  flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers. `csum_start` counts from
  the start of the Ethernet header, not from the start of the virtio-net header.

Limits and not handled:
- 802.1Q / 802.1ad tags are not stripped: `parse_eth()` reports the tag's TPID as the ethertype
  (`ETH_P_8021Q`, `ETH_P_8021AD`, `ETH_P_QINQ`) and `parse_frame()` drops such frames as
  `Malformed("vlan tagged frame")`. A tag can only appear if someone stacks a VLAN device on the tap
  inside the namespace; pasta has nowhere to forward it, and passt drops it too.
- ARP: only Ethernet hardware (htype 1, hlen 6) and IPv4 protocol (ptype 0x0800, plen 4); anything
  else is `Malformed("unsupported arp")`. The operation code is not checked here (the responder
  answers requests only).
- The frame check sequence is never present on a tap, so it is not handled.

Kernel assumptions:
- The tun driver uses a little-endian virtio-net header on little-endian hosts (virtio 1.0, or the
  legacy native-endian layout, which is the same there); big-endian hosts are not supported.
  `num_buffers` is ignored by tun on write and written as 0 on read.
- gso_type values: NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5, plus the ECN bit 0x80
  (linux/virtio_net.h). The header layout and NEEDS_CSUM on read are checked by
  tests/kernel/test_tap_vnet.py; GSO types are not measured yet (they need the TCP translator).

Differences from passt (`tap.c tap_add_packet`, `tap_handler_pasta`; `arp.c arp()`):
- pasta opens its tap without IFF_VNET_HDR, so it has no virtio-net header code at all.
- passt's `arp()` checks the same htype/ptype/hlen/plen fields but silently ignores what it does
  not like; here that is a `Malformed` with a reason, counted by the caller.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pasta.util.errors import Malformed

# --- Ethernet ---------------------------------------------------------------------------------

ETH_ALEN = 6
ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_QINQ = 0x9100                 # pre-standard 802.1ad TPID, still seen in the wild
VLAN_ETHERTYPES = frozenset((ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ))

ETH = struct.Struct("!6s6sH")


class EthHdr(NamedTuple):
    dst: bytes
    src: bytes
    ethertype: int
    l3_off: int                     # first byte after the Ethernet header


def parse_eth(buf, off: int) -> EthHdr:
    """Parse the Ethernet header at `off`; the ethertype is reported untouched (tags included)."""
    if len(buf) - off < ETH_HLEN:
        raise Malformed("short ethernet header")
    try:
        dst, src, ethertype = ETH.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short ethernet header") from None
    return EthHdr(dst, src, ethertype, off + ETH_HLEN)


def pack_eth_into(buf, off: int, dst: bytes, src: bytes, ethertype: int) -> int:
    """Write an Ethernet header at `off`; returns the offset of the L3 header."""
    ETH.pack_into(buf, off, dst, src, ethertype)
    return off + ETH_HLEN


# --- ARP (RFC 826), IPv4 over Ethernet only ---------------------------------------------------

ARPHRD_ETHER = 1
ARPOP_REQUEST, ARPOP_REPLY = 1, 2
ARP_LEN = 28

ARP = struct.Struct("!HHBBH6s4s6s4s")


class ArpHdr(NamedTuple):
    op: int
    sha: bytes                      # sender hardware (MAC) address
    spa: bytes                      # sender protocol (IPv4) address
    tha: bytes
    tpa: bytes


def parse_arp(buf, off: int, end: int | None = None) -> ArpHdr:
    """Parse an Ethernet/IPv4 ARP packet at `off` (bytes after `end` are ignored)."""
    if end is None or end > len(buf):
        end = len(buf)
    if end - off < ARP_LEN:
        raise Malformed("short arp packet")
    try:
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = ARP.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short arp packet") from None
    if htype != ARPHRD_ETHER or ptype != ETH_P_IP or hlen != ETH_ALEN or plen != 4:
        raise Malformed("unsupported arp")
    return ArpHdr(op, sha, spa, tha, tpa)


def pack_arp_into(buf, off: int, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> int:
    """Write an Ethernet/IPv4 ARP packet at `off`; returns its end."""
    ARP.pack_into(buf, off, ARPHRD_ETHER, ETH_P_IP, ETH_ALEN, 4, op, sha, spa, tha, tpa)
    return off + ARP_LEN


# --- virtio-net header (struct virtio_net_hdr_v1, 12 bytes with num_buffers) -----------------

VNET_HDR_LEN = 12
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1     # csum_start/csum_offset valid; L4 field holds the pseudo sum
VIRTIO_NET_HDR_F_DATA_VALID = 2     # checksum already verified (read side only; see kernel-facts)
VIRTIO_NET_HDR_F_RSC_INFO = 4
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

VNET = struct.Struct("<BBHHHHH")


class VnetHdr(NamedTuple):
    flags: int
    gso_type: int
    hdr_len: int
    gso_size: int
    csum_start: int                 # from the start of the Ethernet header
    csum_offset: int                # from csum_start to the checksum field
    num_buffers: int


def parse_vnet(buf, off: int) -> VnetHdr:
    """Parse the 12-byte virtio-net header at `off`."""
    if len(buf) - off < VNET_HDR_LEN:
        raise Malformed("short vnet header")
    try:
        return VnetHdr._make(VNET.unpack_from(buf, off))
    except (struct.error, TypeError, ValueError):
        raise Malformed("short vnet header") from None


def pack_vnet_into(buf, off: int, flags: int = 0, gso_type: int = VIRTIO_NET_HDR_GSO_NONE,
                   hdr_len: int = 0, gso_size: int = 0, csum_start: int = 0,
                   csum_offset: int = 0, num_buffers: int = 0) -> int:
    """Write a virtio-net header at `off`; returns the offset of the Ethernet header."""
    VNET.pack_into(buf, off, flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
                   num_buffers)
    return off + VNET_HDR_LEN
