"""Tests for pasta.core.wire.csum: the Internet checksum against scapy's, and the offload helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from scapy.utils import checksum as scapy_checksum

from pasta.core.wire.csum import csum, csum_finish, csum_fold, csum_partial, fill_csum, fill_csum_partial

FAST = settings(max_examples=200, deadline=None)


@FAST
@given(st.binary(max_size=300))
def test_csum_equals_scapy(data):
    assert csum(data) == scapy_checksum(data)


@FAST
@given(st.binary(max_size=300))
def test_csum_accepts_any_bytes_like(data):
    expect = csum(data)
    assert csum(bytearray(data)) == expect
    assert csum(memoryview(data)) == expect
    padded = b"\x00" + data + b"\x00"
    assert csum(memoryview(padded)[1:-1]) == expect


@FAST
@given(st.binary(max_size=200).map(lambda b: b[:len(b) & ~1]), st.binary(max_size=200))
def test_csum_partial_chains_over_even_blocks(a, b):
    assert csum_partial(a + b) == csum_partial(b, csum_partial(a))
    assert csum(a + b) == csum(b, csum_partial(a))


@FAST
@given(st.binary(min_size=2, max_size=200))
def test_csum_verifies_to_zero_once_stored(data):
    buf = bytearray(data[:len(data) & ~1]) + bytearray(2)
    value = fill_csum(buf, 0, len(buf), len(buf) - 2)
    assert value == scapy_checksum(bytes(buf[:-2]))
    assert csum(buf) == 0


def test_csum_fold_ranges():
    assert csum_fold(0) == 0
    assert csum_fold(0xFFFF) == 0xFFFF
    assert csum_fold(0x10000) == 1
    assert csum_fold(0x1FFFE) == 0xFFFF
    assert csum_partial(bytes(10)) == 0
    assert csum_partial(b"\xff\xff\xff\xff") == 0xFFFF
    assert csum_finish(0) == 0xFFFF and csum_finish(0xFFFF) == 0


def test_csum_odd_length_pads_with_zero():
    assert csum(b"\x12\x34\x56") == csum(b"\x12\x34\x56\x00") == scapy_checksum(b"\x12\x34\x56")


def test_csum_fill_udp_maps_zero_to_all_ones():
    buf = bytearray(b"\xff\xff\x00\x00")
    assert fill_csum(buf, 0, 4, 2) == 0
    assert fill_csum(buf, 0, 4, 2, udp=True) == 0xFFFF
    assert buf[2:] == b"\xff\xff"


def test_csum_fill_zeroes_the_field_first():
    buf = bytearray(b"\x01\x02\xaa\xbb\x03\x04")
    value = fill_csum(buf, 0, 6, 2)
    assert value == scapy_checksum(b"\x01\x02\x00\x00\x03\x04")


def test_csum_fill_rejects_field_outside_region():
    with pytest.raises(ValueError):
        fill_csum(bytearray(8), 2, 8, 0)
    with pytest.raises(ValueError):
        fill_csum(bytearray(8), 0, 8, 7)


@FAST
@given(st.integers(min_value=0, max_value=1 << 40), st.binary(max_size=100))
def test_csum_partial_offload_completion_matches_software(pseudo, data):
    """What the kernel does with NEEDS_CSUM: sum from csum_start with the field as found."""
    body = bytearray(b"\x00\x00" + data)
    software = fill_csum(bytearray(body), 0, len(body), 0, pseudo)
    fill_csum_partial(body, 0, pseudo)
    assert body[:2] == csum_fold(pseudo).to_bytes(2, "big")
    kernel = scapy_checksum(bytes(body))          # ~fold(sum over the region, field included)
    assert kernel == software
