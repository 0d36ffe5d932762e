"""--pcap: the file is a classic pcap that scapy reads back frame for frame."""

from __future__ import annotations

import os
import stat

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from pasta.shell.pcap import SNAPLEN, Pcap


def test_records_read_back_with_scapy(tmp_path):
    path = str(tmp_path / "cap.pcap")
    p = Pcap.open(path)
    assert p is not None
    frames = [bytes(Ether() / IP(src="198.51.100.2", dst="198.18.0.1") / UDP(sport=1, dport=2)
                    / (b"x" * n)) for n in (0, 1, 1400)]
    for fr in frames:
        p.record([fr[:10], memoryview(fr)[10:]], len(fr))
    p.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    got = rdpcap(path)
    assert [bytes(g) for g in got] == frames
    assert got[2][UDP].dport == 2


def test_oversized_frame_truncated_to_snaplen(tmp_path):
    path = str(tmp_path / "big.pcap")
    p = Pcap.open(path)
    big = b"\x01" * (SNAPLEN + 100)
    p.record([big[:7], big[7:]], len(big))
    p.close()
    data = open(path, "rb").read()
    caplen, length = int.from_bytes(data[24 + 8:24 + 12], "little"), \
        int.from_bytes(data[24 + 12:24 + 16], "little")
    assert (caplen, length) == (SNAPLEN, SNAPLEN + 100)
    assert len(data) == 24 + 16 + SNAPLEN


def test_open_failure_is_an_error_not_an_exception(tmp_path, capsys):
    assert Pcap.open(str(tmp_path / "missing" / "x.pcap")) is None
