"""passt mode with a real guest (issue 17): Debian 12's kernel under QEMU 7.2, through
pypasta-passt, on the hermetic topology.

The guest (tests/helpers/guest.py: busybox initramfs, TCG) configures itself as a VM does: busybox
udhcpc (DHCPv4: address, router, MTU, DNS and search list), `guestnet dhcp6` (DHCPv6) and
SLAAC from our router advertisements. Through pypasta-passt it then reaches:
- the peer ("the internet"): ping in both families, TCP both ways with 4 MiB checksummed end to
  end (md5 in the guest, md5 of what the peer got or sent), TCP over IPv6, UDP both ways
  (`guestnet udp-ping` against a peer echo; the peer's datagrams to a `-u` port echoed by the
  guest), DNS through the nameserver offered by DHCP (dnsmasq on the peer);
- the host's loopback through the gateway address (passt's default --map-host-loopback);
- inbound `-t`/`-u` forwards from the host's loopback and from the peer: a CGI in the guest's
  busybox httpd prints the client address it sees (the peer's own 198.51.100.1, and the gateway
  for the host's loopback).
Then the guest powers off, QEMU exits, and --one-off pypasta-passt exits with it.

Two ways in: QEMU's `-netdev stream` to pypasta-passt's socket (`-s`, daemon mode, as run by hand
or by newer libvirt), and QEMU 10.1's: a socketpair, our end as `--fd 3` with `--quiet --pid
FILE`, QEMU's end as `-netdev socket,fd=N`. And libvirt 9.0's argv and process contract.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket

import pytest

from helpers import env, guest as guest_mod, wait_until
from helpers.guest import Guest
from helpers.proc import alive, cmdline_has
from helpers.topology import PASST_MODULE

PEER4, PEER6 = "198.18.0.1", "2001:db8:ffff::1"        # the peer's "internet" addresses
GW4, GUEST4 = "198.51.100.1", "198.51.100.2"
GUEST_MAC = "52:54:00:12:34:56"
MIB = 4
NIC = ["-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC}"]

CGI = ('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\n'
       'echo "guest $REMOTE_ADDR"\n')


@pytest.fixture(autouse=True)
def _guest_assets():
    try:
        guest_mod.check_setup()
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)




def _peer_services(t) -> dict:
    """Peer: an md5-checked file to download (5002), an upload sink (5001), an IPv6 greeter
    (5003), a UDP echo (7777, both families) and dnsmasq answering example.test."""
    w = t.workdir
    data = os.path.join(w, "down.bin")
    with open(data, "wb") as f:
        f.write(os.urandom(MIB << 20))
    up = os.path.join(w, "up.bin")
    t.peer_popen(f"socat -u OPEN:{data} TCP4-LISTEN:5002,bind={PEER4},reuseaddr", name="down")
    t.peer_popen(f"socat -u TCP4-LISTEN:5001,bind={PEER4},reuseaddr CREATE:{up}", name="up")
    t.peer_popen(f"socat TCP6-LISTEN:5003,bind=[{PEER6}],reuseaddr,fork "
                 "SYSTEM:'echo peer6 $SOCAT_PEERADDR'", name="greet6")
    t.peer_popen(f"socat UDP4-RECVFROM:7777,bind={PEER4},fork PIPE", name="echo4")
    t.peer_popen(f"socat UDP6-RECVFROM:7777,bind=[{PEER6}],fork PIPE", name="echo6")
    t.peer_popen(["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                  f"--listen-address={PEER4}", "--bind-interfaces", "--port=53",
                  "--user=root", "--pid-file=", "--log-facility=-",
                  "--address=/example.test/198.18.0.7",
                  "--address=/example.test/2001:db8:ffff::7"], name="dnsmasq")
    for port, proto in ((5002, "tcp"), (5001, "tcp"), (5003, "tcp"), (7777, "udp"),
                        (53, "udp")):
        t.wait_listening("peer", port, proto)
    return {"down_md5": hashlib.md5(open(data, "rb").read()).hexdigest(), "up": up}


def _host_loopback_service(t) -> None:
    t.host_popen("socat TCP4-LISTEN:8081,bind=127.0.0.1,reuseaddr,fork "
                 "SYSTEM:'echo host-lo'", name="hostlo")
    t.wait_listening("host", 8081)


def _boot(t, netdev, pass_fds=()) -> Guest:
    g = Guest(t.workdir, [*NIC, *netdev], popen_prefix=functools.partial(
        t.host_popen, name="qemu"), pass_fds=pass_fds)
    g.start()
    g.wait_ready()
    return g


def _v4(text: str) -> str:
    """busybox httpd listens on a dual-stack socket: it names IPv4 clients [::ffff:A.B.C.D]."""
    return text.strip().replace("[::ffff:", "").replace("]", "")


def _check_everything(t, g, peer, dns: bool = True) -> None:
    """Everything the module docstring lists; DNS only when pypasta-passt was given -D PEER4
    and -S example.test (libvirt 9.0 passes neither: the host's resolv.conf is offered)."""
    lease = g.check("udhcpc -i eth0 -n -q -t 10 -T 1 -O search", timeout=40)
    assert f"bound eth0 {GUEST4}/24 router {GW4} mtu 65520 dns " in lease, lease
    if dns:
        assert f"mtu 65520 dns {PEER4} search example.test " in lease, lease
        assert g.check("cat /etc/resolv.conf").split() == ["search", "example.test",
                                                           "nameserver", PEER4]
    v6 = g.check("guestnet dhcp6 eth0 15", timeout=30)
    assert "address 2001:db8::2" in v6.split("\n"), v6
    # SLAAC from our router advertisements: a dynamic global address in 2001:db8::/64.
    g.check("for i in $(seq 100); do ip -6 addr show dev eth0 | "
            "grep -q 'inet6 2001:db8::.* dynamic' && ip -6 route | grep -q ^default && exit 0; "
            "sleep 0.1; done; ip -6 addr; ip -6 route; exit 1", timeout=30)

    assert " 0% packet loss" in g.check(f"ping -c 2 -W 3 {PEER4}", timeout=20)
    assert " 0% packet loss" in g.check(f"ping6 -c 2 -W 3 {PEER6}", timeout=20)

    # TCP both ways, checksummed end to end.
    got = g.check(f"nc {PEER4} 5002 | md5sum", timeout=120).split()[0]
    assert got == peer["down_md5"]
    sent = g.check(f"dd if=/dev/urandom of=/tmp/up bs=1M count={MIB} 2>/dev/null && "
                   f"md5sum /tmp/up && nc {PEER4} 5001 < /tmp/up", timeout=120).split()[0]
    wait_until(lambda: os.path.getsize(peer["up"]) == MIB << 20, 30, "upload complete")
    assert hashlib.md5(open(peer["up"], "rb").read()).hexdigest() == sent
    assert g.check(f"nc {PEER6} 5003 </dev/null", timeout=20).startswith("peer6 ")

    # UDP both ways (guest to peer here; peer to guest through -u below), and DNS.
    assert "sent 20 ok 20" in g.check(f"guestnet udp-ping {PEER4} 7777 20 1400", timeout=60)
    assert "sent 5 ok 5" in g.check(f"guestnet udp-ping {PEER6} 7777 5 1200", timeout=60)
    if dns:
        answer = g.check("nslookup example.test", timeout=20)
        assert "Address: 198.18.0.7" in answer and "Address: 2001:db8:ffff::7" in answer, answer

    # The host's loopback through the gateway address.
    assert g.check(f"nc {GW4} 8081 </dev/null", timeout=20).strip() == "host-lo"

    # Inbound -t/-u: from the peer (its own address is kept) and from the host's loopback
    # (seen from the gateway address).
    g.check("mkdir -p /tmp/www/cgi-bin && cat > /tmp/www/cgi-bin/who <<'EOF'\n" + CGI +
            "EOF\nchmod +x /tmp/www/cgi-bin/who && httpd -p 8080 -h /tmp/www && "
            "(guestnet udp-echo 0.0.0.0 8082 > /tmp/echo.log 2>&1 &) && "
            "for i in $(seq 50); do grep -q ready /tmp/echo.log && exit 0; sleep 0.1; done; "
            "exit 1")
    out = t.peer(f"curl -sS -m 10 http://{GUEST4}:8080/cgi-bin/who", timeout=20).stdout
    assert _v4(out) == f"guest {t.peer_ip4}", out
    out = t.host("curl -sS -m 10 http://127.0.0.1:8080/cgi-bin/who", timeout=20).stdout
    assert _v4(out) == f"guest {GW4}", out
    out = t.peer(f"echo from-peer | socat -t 5 -T 5 - UDP4:{GUEST4}:8082", timeout=20).stdout
    assert out.strip() == "from-peer"
    out = t.host("echo from-host | socat -t 5 -T 5 - UDP4:127.0.0.1:8082", timeout=20).stdout
    assert out.strip() == "from-host"




def test_guest_over_stream_socket(topology, user):
    t = topology
    peer = _peer_services(t)
    _host_loopback_service(t)
    sock = os.path.join(t.workdir, f"passt-{user}.socket")
    logf = os.path.join(t.workdir, f"passt-{user}.log")
    pid = t.passt_daemon(["-1", "-s", sock, "-l", logf, "-D", PEER4, "-S", "example.test",
                          "-t", "8080", "-u", "8082"], user=user)
    with _boot(t, ["-netdev", f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"]) as g:
        _check_everything(t, g, peer)
        assert g.poweroff() == 0
    wait_until(lambda: not alive(pid), 15, "--one-off pypasta-passt exits after QEMU")
    log = open(logf).read()
    assert "Client connection closed, exiting" in log, log[-2000:]


def test_guest_over_inherited_fd_as_qemu_10_1(topology):
    """QEMU 10.1's `-netdev passt` contract: a socketpair, pypasta-passt with `--quiet ...
    --pid FILE --fd 3` in its default daemon mode, readiness = the parent's exit; QEMU's end as
    `-netdev socket,fd=N` (QEMU 7.2 uses the same framing for a stream socket)."""
    t = topology
    peer = _peer_services(t)
    _host_loopback_service(t)
    ours, qemu_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pidf = os.path.join(t.workdir, "passt-qemu.pid")
    open(pidf, "w").close()
    p = t.passt(["--quiet", "-D", PEER4, "-S", "example.test", "--tcp-ports", "8080",
                 "--udp-ports", "8082", "--pid", pidf, "--fd", "3"],
                pass_fds=(3,), preexec_fn=lambda: os.dup2(ours.fileno(), 3))
    ours.close()
    assert p.wait(timeout=20) == 0, t.logs(p)
    pid = int(open(pidf).read())
    assert pid > 0 and alive(pid)
    fd = qemu_end.fileno()
    with _boot(t, ["-netdev", f"socket,id=n0,fd={fd}"], pass_fds=(fd,)) as g:
        qemu_end.close()
        _check_everything(t, g, peer)
        assert g.poweroff() == 0
    wait_until(lambda: not alive(pid), 15, "pypasta-passt --fd exits after QEMU")


def test_libvirt_9_0_argv_and_process_contract(topology):
    """libvirt 9.0 (Debian 12, with passt re-enabled): `passt --one-off --socket S --mac-addr
    GUEST_MAC --log-file F --tcp-ports ... --udp-ports ...` (its own guest MAC as passt's MAC),
    stdin /dev/null, stderr a pipe it stops reading at once, fds leaked into the child,
    libvirt's own daemonizing and PID file (which then names the exited parent), and QEMU's
    `-netdev stream` with no reconnect. QEMU is started once the socket accepts: libvirt does not
    wait, and how fast pypasta-passt listens is measured by tests/bench/passt_bench.py."""
    t = topology
    peer = _peer_services(t)
    _host_loopback_service(t)
    sock = os.path.join(t.workdir, "1-vmpasst-net0.socket")
    logf = os.path.join(t.workdir, "vmpasst-net0.log")
    leak_r, leak_w = os.pipe()
    err_r, err_w = os.pipe()
    # libvirt's environment: HOME, PATH, PWD (and PYTHONPATH, for this checkout).
    p = t.passt(["--one-off", "--socket", sock, "--mac-addr", GUEST_MAC, "--log-file", logf,
                 "--tcp-ports", "8080", "--udp-ports", "8082"],
                stderr=err_w, pass_fds=(leak_r, leak_w),
                env={k: v for k, v in env.root_env().items()
                     if k in ("PATH", "HOME", "PYTHONPATH")} | {"PWD": "/"})
    os.close(err_w)
    os.close(err_r)
    libvirt_pidfile = os.path.join(t.workdir, "1-vmpasst-net0-passt.pid")
    with open(libvirt_pidfile, "w") as f:
        f.write(f"{p.pid}\n")                   # libvirt records the process it started
    # A probe connection would be a client too, and its leaving would end a --one-off daemon:
    # wait for the socket file (pypasta-passt listens right after binding), then let QEMU,
    # which takes at least 17 ms from exec to its connect, be the first client.
    wait_until(lambda: os.path.exists(sock), 10, "socket bound")
    with _boot(t, ["-netdev", f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"]) as g:
        assert p.wait(timeout=20) == 0
        _check_everything(t, g, peer, dns=False)
        pids = [pid for pid in t.hostns.pids() if cmdline_has(pid, PASST_MODULE.encode())]
        assert pids and p.pid not in pids       # the daemon is not the PID libvirt recorded
        assert g.poweroff() == 0
    wait_until(lambda: not any(alive(x) for x in pids), 15, "the one-off daemon exits")
    assert not alive(p.pid)
    os.close(leak_r)
    os.close(leak_w)
    log = open(logf).read()
    assert "Client connection closed, exiting" in log and "discarding" not in log, log[-2000:]

