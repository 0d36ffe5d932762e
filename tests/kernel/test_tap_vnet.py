"""Kernel facts the tap design relies on (pasta/setup/tapdev.py), checked in a private netns.

- Frames the namespace sends arrive with a virtio-net header; a 30,000-byte UDP datagram at MTU
  65520 is one frame with VIRTIO_NET_HDR_F_NEEDS_CSUM (partial checksum) and csum_start/offset
  pointing at the UDP checksum.
- A frame we write with NEEDS_CSUM and only the pseudo-header sum in the checksum field is
  delivered to a socket: the kernel completes the checksum, Python never sums the payload.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

HELPER = textwrap.dedent(r'''
    import os, select, socket, struct, sys, time
    sys.path.insert(0, sys.argv[1])
    from pasta.setup import tapdev
    tap = tapdev.open_tap("vt0", vnet_hdr=True)
    os.system("ip link set vt0 mtu %s up && ip addr add 10.9.0.1/24 dev vt0 && "
              "ip neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev vt0 nud permanent" % sys.argv[2])
    def frames(deadline=2.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            select.select([tap.fd], [], [], 0.2)
            for frame in tap.read_batch():
                yield bytes(frame)
    mode = sys.argv[3]
    if mode == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"u" * 30000, ("10.9.0.2", 4000))
        for f in frames():
            if len(f) > 12 + 14 + 20 and f[12 + 12:12 + 14] == b"\x08\x00" and f[12 + 14 + 9] == 17:
                print("UDP", len(f), *struct.unpack("<BBHHHH", f[:10]))
                break
    elif mode == "write":
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("10.9.0.1", 5000))
        payload = b"w" * 20000
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, 0, 64, 17, 0,
                         socket.inet_aton("10.9.0.2"), socket.inet_aton("10.9.0.1"))
        s = sum(struct.unpack("!10H", ip))
        s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
        ip = ip[:10] + struct.pack("!H", ~s & 0xffff) + ip[12:]
        ulen = 8 + len(payload)
        ps = sum(struct.unpack("!4H", ip[12:20])) + 17 + ulen
        ps = (ps & 0xffff) + (ps >> 16); ps = (ps & 0xffff) + (ps >> 16)
        udp = struct.pack("!HHHH", 6000, 5000, ulen, ps)          # pseudo-header sum only
        mac = open("/sys/class/net/vt0/address").read().strip()
        eth = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000000002") + b"\x08\x00"
        vnet = struct.pack("<BBHHHHH", 1, 0, 0, 0, 14 + 20, 6, 0)   # NEEDS_CSUM, offset 6 (UDP)
        assert tap.write([vnet, eth, ip, udp, payload])
        select.select([r], [], [], 2)
        data, peer = r.recvfrom(65535, socket.MSG_DONTWAIT)
        print("GOT", len(data), data == payload, peer[0])
''')


def _run(netns, mode: str, mtu: int = 65520) -> str:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run(["ip", "netns", "exec", netns.name, sys.executable, "-c", HELPER, repo,
                        str(mtu), mode], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_tap_reads_large_udp_datagram_as_one_frame_with_partial_checksum(netns):
    out = _run(netns, "udp").split()
    assert out[0] == "UDP", out
    length, flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = map(int, out[1:])
    assert length == 12 + 14 + 20 + 8 + 30000
    assert flags & 1                            # VIRTIO_NET_HDR_F_NEEDS_CSUM
    assert (csum_start, csum_offset) == (14 + 20, 6)


def test_tap_write_with_needs_csum_is_completed_by_kernel(netns):
    assert _run(netns, "write").split() == ["GOT", "20000", "True", "10.9.0.2"]
