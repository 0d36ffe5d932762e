"""pypasta-passt's process contract and framing (issue 17), at the frame level.

What QEMU and libvirt rely on, checked with a frame client over the socket
(`tests/helpers/passt_client.py`) where a real guest could not show it (the guest tests are in
test_passt_guest.py):
- daemon mode: the parent exits 0 only once the socket listens and the PID file names the
  daemon; SIGTERM ends the daemon; the default socket path is passt's /tmp/passt_N.socket;
- one client at a time: a second one is accepted and closed (it sees EOF) while the first is
  served; without --one-off the next client is served after the first leaves; with --one-off,
  and with --fd (QEMU 10.1's `--quiet ... --pid FILE --fd 3`), the daemon exits when its
  client goes; a frame length outside 14..65535 resets the connection;
- each client gets passt's initial ARP request; our MAC is `--mac-addr` (what libvirt 9.0
  passes), the guest's is learnt from its frames (libvirt 9.0's habits are replayed with a real
  guest in test_passt_guest.py);
- frames carry complete checksums (no virtio-net header): DHCP, ARP and ICMP answers checked
  with scapy.
"""

from __future__ import annotations

import os
import signal
import socket

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.l2 import ARP, Ether

from helpers import wait_until
from helpers.proc import alive
from helpers.passt_client import FrameClient

GUEST_MAC = "52:54:00:12:34:56"
GW4, GUEST4 = "198.51.100.1", "198.51.100.2"       # the host namespace's gateway and address










def _is_arp(op: int):
    return lambda f: len(f) >= 42 and f[12:14] == b"\x08\x06" and f[21] == op


def _checksums_ok(frame: bytes) -> None:
    """Every IPv4, UDP and ICMP checksum of `frame` is what scapy computes."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    for layer in (IP, UDP, ICMP):
        if layer in fresh:
            del fresh[layer].chksum
    fresh = Ether(bytes(fresh))
    for layer in (IP, UDP, ICMP):
        if layer in pkt:
            assert pkt[layer].chksum == fresh[layer].chksum, (layer.__name__, pkt.show(dump=True))


def _arp_request(target: str) -> bytes:
    return bytes(Ether(src=GUEST_MAC, dst="ff:ff:ff:ff:ff:ff") /
                 ARP(op=1, hwsrc=GUEST_MAC, psrc=GUEST4, pdst=target))


def test_daemon_listens_before_exiting_and_serves_one_client_at_a_time(topology, user):
    t = topology
    sock = os.path.join(t.workdir, f"passt-{user}.sock")
    logf = os.path.join(t.workdir, f"passt-{user}.log")
    pid = t.passt_daemon(["-s", sock, "-l", logf], user=user)
    # Listening already: no retry needed (QEMU 7.2 connects once).
    c1 = FrameClient.connect(sock)
    init = Ether(c1.wait_frame(_is_arp(1)))            # passt's initial ARP request
    assert (init.dst, init[ARP].psrc, init[ARP].pdst) == ("ff:ff:ff:ff:ff:ff", GW4, GUEST4)
    our_mac = init.src
    c2 = FrameClient.connect(sock)
    assert c2.at_eof(5), "a second client must be accepted and closed"
    c2.close()
    c1.send(_arp_request(GW4))
    reply = Ether(c1.wait_frame(_is_arp(2)))
    assert (reply.dst, reply[ARP].hwsrc, reply[ARP].psrc) == (GUEST_MAC, our_mac, GW4)
    c1.close()
    # Without --one-off the next client is served; the guest MAC learnt stays.
    c3 = FrameClient.connect(sock)
    c3.wait_frame(_is_arp(1))
    c3.send(bytes(Ether(src=GUEST_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0",
                  dst="255.255.255.255") / UDP(sport=68, dport=67) /
                  BOOTP(chaddr=bytes.fromhex(GUEST_MAC.replace(":", "")), xid=7) /
                  DHCP(options=[("message-type", "discover"), "end"])))
    offer = c3.wait_frame(lambda f: f[12:14] == b"\x08\x00" and f[23] == 17 and
                          f[34:36] == b"\x00\x43")
    _checksums_ok(offer)
    opts = dict(o for o in Ether(offer)[DHCP].options if isinstance(o, tuple))
    assert Ether(offer)[BOOTP].yiaddr == GUEST4 and opts["router"] == GW4
    assert opts["interface-mtu"] == 65520
    assert "name_server" in opts, opts          # passt mode advertises DNS by default
    c3.send(bytes(Ether(src=GUEST_MAC, dst=our_mac) / IP(src=GUEST4, dst=t.peer_ip4) /
                  ICMP(id=77, seq=1) / (b"x" * 64)))
    echo = c3.wait_frame(lambda f: f[12:14] == b"\x08\x00" and f[23] == 1, 10)
    _checksums_ok(echo)
    assert Ether(echo)[ICMP].type == 0 and Ether(echo)[IP].src == t.peer_ip4
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), 10, "pypasta-passt exits on SIGTERM")
    c3.close()
    log = open(logf).read()
    assert "accepted connection from PID" in log and "discarding connection from PID" in log
    assert "Client connection closed" in log
    assert "Client connection closed, exiting" not in log, log


def test_one_off_exits_with_its_client_and_bad_lengths_reset(topology):
    t = topology
    sock = os.path.join(t.workdir, "passt.sock")
    logf = os.path.join(t.workdir, "passt.log")
    pid = t.passt_daemon(["-s", sock, "-l", logf])
    # A length outside 14..65535: the connection is reset, the daemon waits for the next.
    c = FrameClient.connect(sock)
    c.sock.sendall(b"\x00\x00\x00\x05hello")
    assert c.at_eof(5)
    c = FrameClient.connect(sock)
    c.wait_frame(_is_arp(1))
    assert alive(pid)
    assert "Bad frame size from guest, resetting connection" in open(logf).read()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), 10, "exit on SIGTERM")

    one = os.path.join(t.workdir, "one.sock")
    pid = t.passt_daemon(["-1", "-s", one, "-l", logf])
    c = FrameClient.connect(one)
    c.wait_frame(_is_arp(1))
    c.close()
    wait_until(lambda: not alive(pid), 10, "--one-off exits when its client goes")
    assert "Client connection closed, exiting" in open(logf).read()


def test_fd_as_qemu_10_1_starts_it(topology, user):
    """QEMU 10.1's `-netdev passt`: socketpair, our end as fd 3, `--quiet --pid FILE --fd 3`,
    readiness = the parent's exit status, then the PID from the file; the daemon exits when
    QEMU's end closes."""
    t = topology
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pidf = os.path.join(t.workdir, f"qemu-passt-{user}.pid")
    open(pidf, "w").close()                 # g_file_open_tmp() made it before the exec
    os.chmod(pidf, 0o666)
    argv = ["--quiet", "--mac-addr", GUEST_MAC, "--pid", pidf, "--fd", "3"]
    # fd 3 in the child (preexec_fn runs before the child closes fds other than pass_fds).
    p = t.passt(argv, user=user, pass_fds=(3,), preexec_fn=lambda: os.dup2(theirs.fileno(), 3))
    theirs.close()
    assert p.wait(timeout=20) == 0, t.logs(p)
    pid = int(open(pidf).read())
    assert pid > 0
    c = FrameClient(ours)
    init = Ether(c.wait_frame(_is_arp(1)))
    assert init.src == GUEST_MAC                # --mac-addr is our own MAC, as in passt
    c.send(_arp_request(GW4))
    assert Ether(c.wait_frame(_is_arp(2))).dst == GUEST_MAC
    c.close()
    wait_until(lambda: not alive(pid), 10, "--fd exits when its peer closes")


def test_default_socket_path_is_passts(topology):
    """Without -s: /tmp/passt_1.socket ... /tmp/passt_99.socket, the first one free; a second
    instance skips the one in use."""
    t = topology
    logs = [os.path.join(t.workdir, f"default-{i}.log") for i in (1, 2)]
    pids, paths = [], []
    try:
        for logf in logs:
            pids.append(t.passt_daemon(["-l", logf]))
            line = next(l for l in open(logf) if "UNIX domain socket bound at" in l)
            paths.append(line.rsplit(" ", 1)[1].strip())
        assert paths[0] != paths[1]
        for path in paths:
            assert path.startswith("/tmp/passt_") and path.endswith(".socket")
            c = FrameClient.connect(path)
            c.wait_frame(_is_arp(1))
            c.close()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        for pid in pids:
            wait_until(lambda: not alive(pid), 10, "exit on SIGTERM")
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)


def test_bad_command_lines_leave_no_socket(topology):
    t = topology
    sock = os.path.join(t.workdir, "bad.sock")
    for args, msg in ((["-s", sock, "-T", "80"], "-T is for pasta mode only"),
                      (["-s", sock, "-t", "auto"],
                       "'auto' port forwarding is only allowed for pasta"),
                      (["-s", sock, "extra"], "Extra non-option argument: extra")):
        r = t.hostns.run(t.passt_argv(args), check=False, timeout=20)
        assert r.returncode == 1 and r.stderr.strip().endswith(msg), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not os.path.exists(sock)
    # A path in use is refused as passt refuses it.
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(sock)
    holder.listen(1)
    r = t.hostns.run(t.passt_argv(["-f", "-s", sock]), check=False, timeout=20)
    holder.close()
    assert r.returncode == 1 and r.stderr.strip() == f"pypasta-passt: Socket path {sock} already in use"
