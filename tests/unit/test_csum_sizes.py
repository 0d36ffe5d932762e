"""pasta.core.wire.csum against scapy's checksum at every size a frame can have (0 to 65,535 bytes).

test_wire_csum.py covers short buffers; csum_partial takes another path above 1 KiB (halving
folds before the modulus, issue 17), so these tests cover both paths and the edges between:
odd and even lengths, all-zero, all-0xff, mostly-zero buffers, `init` values, and fill_csum on
regions as large as a 64 KiB TCP segment.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st
from scapy.utils import checksum as scapy_checksum

from pasta.core.wire.csum import csum, csum_partial, fill_csum

FAST = settings(max_examples=60, deadline=None)
LENGTHS = (0, 1, 2, 3, 63, 64, 255, 256, 1023, 1024, 1025, 1026, 1499, 1500, 1501, 2048, 2049,
           4095, 4096, 4097, 8999, 9000, 32768, 32769, 65479, 65480, 65534, 65535)


def fold(s: int) -> int:
    """End-around carry to 16 bits (RFC 1071)."""
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def scapy_sum(data: bytes) -> int:
    """scapy's checksum as a folded, non-inverted sum: 0 for all-zero data, 0xffff for a
    non-zero sum of 0 (as RFC 1071's loop gives them)."""
    return ~scapy_checksum(data) & 0xFFFF


def kinds(n: int, rng: random.Random) -> list[bytes]:
    """Random, all-0xff, all-zero, and zeros with one non-zero byte at each end (the folds must
    not depend on the integer's width being the buffer's)."""
    out = [rng.randbytes(n), b"\xff" * n, bytes(n)]
    if n:
        out += [b"\x01" + bytes(n - 1), bytes(n - 1) + b"\x80"]
    return out


@pytest.mark.parametrize("n", LENGTHS)
def test_csum_equals_scapy_at_every_size(n):
    rng = random.Random(n)
    for data in kinds(n, rng):
        expect = scapy_checksum(data)
        assert csum(data) == expect
        assert csum(bytearray(data)) == expect
        assert csum(memoryview(b"\x00" + data)[1:]) == expect       # a view at an odd address
        assert csum_partial(data) == scapy_sum(data)


@pytest.mark.parametrize("n", LENGTHS)
def test_csum_partial_adds_init_at_every_size(n):
    rng = random.Random(-n)
    for data in kinds(n, rng):
        for init in (0, 1, 0xFFFE, 0xFFFF, 0x10000, rng.getrandbits(20), rng.getrandbits(40)):
            assert csum_partial(data, init) == fold(scapy_sum(data) + init)


@FAST
@given(st.integers(min_value=0, max_value=65535), st.integers(min_value=0, max_value=2**32))
def test_csum_equals_scapy_on_random_lengths(n, seed):
    data = random.Random(seed).randbytes(n)
    assert csum(data) == scapy_checksum(data)


@FAST
@given(st.integers(min_value=0, max_value=40000), st.integers(min_value=0, max_value=40000),
       st.integers(min_value=0, max_value=2**32))
def test_csum_partial_chains_over_large_blocks(a, b, seed):
    rng = random.Random(seed)
    first, second = rng.randbytes(a & ~1), rng.randbytes(b)
    assert csum(second, csum_partial(first)) == scapy_checksum(first + second)


@FAST
@given(st.integers(min_value=2, max_value=65535), st.integers(min_value=0, max_value=2**32),
       st.booleans())
def test_fill_csum_on_large_regions(n, seed, udp):
    """A pseudo-header's sum as init, the field at an even offset of an odd or even region."""
    rng = random.Random(seed)
    pseudo = rng.randbytes(12)
    region = bytearray(rng.randbytes(n))
    field = rng.randrange(0, n - 1) & ~1
    start = 1 + (seed & 1)                      # the region need not start at an even address
    buf = bytearray(rng.randbytes(start)) + region + bytearray(rng.randbytes(3))
    value = fill_csum(buf, start, start + n, start + field, csum_partial(pseudo), udp=udp)
    region[field:field + 2] = b"\x00\x00"
    expect = scapy_checksum(pseudo + bytes(region))
    assert value == (0xFFFF if udp and expect == 0 else expect)
    assert buf[start + field:start + field + 2] == value.to_bytes(2, "big")
    assert csum(memoryview(buf)[start:start + n], csum_partial(pseudo)) == 0
