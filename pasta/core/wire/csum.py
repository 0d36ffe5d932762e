"""Internet checksum (RFC 1071) for control-plane frames, and the offload helpers.

Purpose: compute the 16-bit one's complement checksum over a buffer without a per-byte Python loop,
and fill L4 checksum fields either completely (software) or with the pseudo-header sum only, for a
frame the kernel finishes (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, see `pasta.core.wire.l2`).

Theory of operation:
- `csum_partial(data, init)` reads the whole buffer as one big-endian integer (`int.from_bytes`,
  C speed) and reduces it modulo 0xffff. Because 2**16 == 1 (mod 0xffff), that integer is congruent
  to the sum of its 16-bit words, which is exactly what end-around-carry addition computes; the one
  ambiguity of the modulus (0 versus 0xffff, the two one's complement zeros) is resolved the way
  RFC 1071's loop does: a non-zero input never sums to 0x0000. An odd-length buffer is padded with a
  zero byte by shifting the integer left by 8 bits (no copy).
- Sums returned by `csum_partial`, `csum_fold` and the pseudo-header helpers of `pasta.core.wire.ip` are
  *folded but not inverted* 16-bit values (Linux's `csum_fold()` before the final `~`); they can be
  added together and folded again, as long as every block but the last starts at an even offset of
  the checksummed region (odd-offset blocks would need a byte swap; no caller needs that).
- `csum_finish(sum)` turns a sum into the value stored in a header (`~sum & 0xffff`).
- `fill_csum()` writes a complete L4 checksum (software path); `fill_csum_partial()` writes the
  folded pseudo-header sum only (offload path: the kernel adds the L4 header and payload, starting
  from the value in the field, and stores the inverted result; kernel-facts.md).

States and events: none; every function is pure over its arguments (the `fill_*` helpers write
only the two bytes of the checksum field).

Invariants:
- `csum_partial()` and `csum_fold()` return values in 0..0xffff, and 0 only for all-zero input.
- Verifying a buffer that contains a correct checksum gives `csum(buf) == 0`.
- `fill_csum(..., udp=True)` never stores 0: an all-ones result is sent as 0xffff (RFC 768; an IPv6
  UDP checksum of zero is forbidden, RFC 8200 section 8.1).

Limits and not handled:
- This is for control-plane packets (ARP/DHCP/NDP/DHCPv6/ICMP replies): about 140 us for 64 KiB,
  too slow for bulk data, which uses checksum offload instead (STYLE.md B8).
- No incremental update (RFC 1624); frames are built whole.

Kernel assumptions:
- The tap driver honours `VIRTIO_NET_HDR_F_NEEDS_CSUM` with csum_start/csum_offset and a folded,
  non-inverted pseudo-header sum in the checksum field (checked by
  tests/kernel/test_tap_vnet.py::test_tap_write_with_needs_csum_is_completed_by_kernel).

Differences from passt (`checksum.c`):
- passt sums with `sum_16b()`/`csum_unfolded()` (AVX2 in `csum_avx2()`) and folds with
  `csum_fold()`; we use one big-integer modulus instead of a word loop.
- passt always writes complete checksums (`csum_udp4()`, `csum_udp6()`, `csum_icmp4()`,
  `csum_icmp6()`, `tcp_update_csum()`); we also offer the partial-checksum path, which passt's tap
  code does not use (pasta opens the tap without IFF_VNET_HDR).
"""

from __future__ import annotations

import struct

_U16 = struct.Struct("!H")
_from_bytes = int.from_bytes


def csum_fold(s: int) -> int:
    """Fold a non-negative running sum to 16 bits (one's complement), without inverting it."""
    if not s:
        return 0
    return s % 0xFFFF or 0xFFFF


def csum_partial(data, init: int = 0) -> int:
    """Folded, non-inverted one's complement sum of `data` (bytes-like) plus `init`."""
    v = _from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    v += init
    if not v:
        return 0
    return v % 0xFFFF or 0xFFFF


def csum_finish(s: int) -> int:
    """The checksum value to store in a header for the running sum `s`."""
    return ~csum_fold(s) & 0xFFFF


def csum(data, init: int = 0) -> int:
    """Internet checksum of `data` plus the partial sum `init`: the value to store (0 if valid)."""
    return ~csum_partial(data, init) & 0xFFFF


def fill_csum(buf, start: int, end: int, field_off: int, init: int = 0, udp: bool = False) -> int:
    """Compute the checksum of buf[start:end] plus `init` and store it at `field_off`.

    The field (inside [start, end)) is zeroed first. `udp` maps a result of 0 to 0xffff (RFC 768).
    Returns the value stored.
    """
    if field_off < start or field_off + 2 > end or end > len(buf):
        raise ValueError("checksum field outside the checksummed region")
    buf[field_off] = 0
    buf[field_off + 1] = 0
    value = ~csum_partial(memoryview(buf)[start:end], init) & 0xFFFF
    if udp and not value:
        value = 0xFFFF
    _U16.pack_into(buf, field_off, value)
    return value


def fill_csum_partial(buf, field_off: int, pseudo: int) -> int:
    """Store the folded pseudo-header sum at `field_off`, for NEEDS_CSUM offload; returns it."""
    value = csum_fold(pseudo)
    _U16.pack_into(buf, field_off, value)
    return value
