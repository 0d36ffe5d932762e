"""Internet checksum (RFC 1071) in software, and the offload helpers.

Purpose: compute the 16-bit one's complement checksum over a buffer without a per-byte Python loop,
and fill L4 checksum fields either completely (software) or with the pseudo-header sum only, for a
frame the kernel finishes (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, see `pasta.core.wire.l2`).

Theory of operation:
- `csum_partial(data, init)` reads the whole buffer as one big-endian integer `v`
  (`int.from_bytes`, C speed, no per-word Python loop) and reduces it modulo 0xffff. Because
  2**16 == 1 (mod 0xffff), `v` is congruent to the sum of its 16-bit words, which is what
  end-around-carry addition computes. CPython's `v % 0xffff` costs one hardware division per
  30-bit digit (about 1.1 ns a byte, twice `from_bytes`), so above 1 KiB `v` is first halved with
  folds `v = (v >> k) + (v & (2**k - 1))`, k a power of two from the largest below the buffer's
  width in bits down to 2,048: 2**k == 1 (mod 0xffff) for every k that is a multiple of 16, so
  each fold keeps the value congruent, and a shift, a mask and an addition cost a fraction of a
  division per digit; the modulus is then taken of a value of about 2,050 bits (masks cached per
  k, one per power of two: in all less than twice the largest buffer's size). The modulus's one
  ambiguity (0 versus 0xffff, the two one's complement zeros) is resolved the way RFC 1071's loop
  does: a fold leaves a non-zero value non-zero, and a non-zero input never sums to 0x0000
  (`% 0xffff or 0xffff`).
- An odd-length buffer is summed as if padded with a zero byte without padding it or shifting `v`:
  read unpadded, `v` is the padded integer divided by 2**8, and multiplying a folded 16-bit sum by
  2**8 modulo 0xffff is swapping its two bytes (RFC 1071 section 2(B)), done once at the end.
- `init` is added to the folded 16-bit sum, not to `v` (an addition to a 64 KiB integer copies it);
  both are congruent, and the result is folded once more.
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
- `csum_partial()` and `csum_fold()` return values in 0..0xffff, and 0 only for all-zero input
  (and `init` 0); `init` is a non-negative sum (a pseudo-header's, or an earlier block's).
- Verifying a buffer that contains a correct checksum gives `csum(buf) == 0`.
- `fill_csum(..., udp=True)` never stores 0: an all-ones result is sent as 0xffff (RFC 768; an IPv6
  UDP checksum of zero is forbidden, RFC 8200 section 8.1).

Limits and not handled:
- Software speed (`python3 tests/bench/csum_bench.py --clock cpu`, 2-CPU VM, Python 3.11,
  medians): 0.22 us for 64 bytes, 2.4 us for 1,500 (5.0 Gbit/s), 11.6 us for 9,000 and 63 us for
  65,480 (8.4 Gbit/s), against 0.23, 2.9, 16.6 and 122 us for a plain `% 0xffff`, and 0.5 to
  10 us for a compiled loop called through ctypes. Half of the 64 KiB figure is
  `int.from_bytes` itself, the floor of a pure-Python sum. Enough for control-plane frames and
  for passt mode, where every checksum is computed here; pasta mode's bulk data uses checksum
  offload instead (STYLE.md B8).
- No incremental update (RFC 1624); frames are built whole.

Kernel assumptions:
- The tap driver honours `VIRTIO_NET_HDR_F_NEEDS_CSUM` with csum_start/csum_offset and a folded,
  non-inverted pseudo-header sum in the checksum field (checked by
  tests/kernel/test_tap_vnet.py::test_tap_write_with_needs_csum_is_completed_by_kernel).

Differences from passt (`checksum.c`):
- passt sums with `sum_16b()`/`csum_unfolded()` (AVX2 in `csum_avx2()`) and folds with
  `csum_fold()`; we fold one big integer (halving folds, then a modulus) instead of a word loop.
- passt always writes complete checksums (`csum_udp4()`, `csum_udp6()`, `csum_icmp4()`,
  `csum_icmp6()`, `tcp_update_csum()`); we also offer the partial-checksum path, which passt's tap
  code does not use (pasta opens the tap without IFF_VNET_HDR).
"""

from __future__ import annotations

import struct

_U16 = struct.Struct("!H")
_from_bytes = int.from_bytes
_HALVE_ABOVE = 1024         # bytes: a shorter buffer goes straight to the modulus
_HALVE_DOWN_TO = 2048       # bits: the smallest fold width
_MASKS: dict[int, int] = {}     # k -> 2**k - 1, for the powers of two k of the halving folds


def csum_fold(s: int) -> int:
    """Fold a non-negative running sum to 16 bits (one's complement), without inverting it."""
    if not s:
        return 0
    return s % 0xFFFF or 0xFFFF


def csum_partial(data, init: int = 0) -> int:
    """Folded, non-inverted one's complement sum of `data` (bytes-like) plus `init` (>= 0)."""
    n = len(data)
    v = _from_bytes(data, "big")
    if n > _HALVE_ABOVE:
        k = 1 << ((n << 3) - 1).bit_length() - 1       # the largest power of two below 8 * n
        while k >= _HALVE_DOWN_TO:
            mask = _MASKS.get(k)
            if mask is None:
                mask = _MASKS[k] = (1 << k) - 1
            v = (v >> k) + (v & mask)                  # 2**k == 1 (mod 0xffff): congruent
            k >>= 1
    if v:
        v = v % 0xFFFF or 0xFFFF
        if n & 1:
            v = (v & 0xFF) << 8 | v >> 8               # * 2**8 (mod 0xffff): the zero pad
    if init:
        v += init
        return v % 0xFFFF or 0xFFFF
    return v


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
