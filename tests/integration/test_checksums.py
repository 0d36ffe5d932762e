"""Frames pypasta composes carry complete, correct checksums (issue 13 item 2).

With checksum offload, a frame whose checksum the kernel is asked to finish is delivered with the
pseudo-header sum only: the namespace's own stack accepts it, but a raw socket (iputils ping as
root in a container) or tcpdump sees an unfinished checksum ("BAD CHECKSUM", "wrong icmp cksum").
Every frame pypasta writes that is not socket data (echo replies, ARP, DHCP, DHCPv6, NDP/RA,
bare TCP segments) must be complete. Checked with the real readers: iputils ping on a raw socket
(the test turns ping sockets off in the namespace, so ping falls back to raw) and `tcpdump -vv` in
the namespace, which verifies every checksum of the frames coming in from pypasta.

tcpdump runs as real root through nsenter: inside pypasta's user namespace it cannot drop to
its own user (setgroups is denied there, as in any rootless container). Real root also writes
the namespace's ping_group_range, which needs a gid that the user namespace does not map.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from helpers import env, wait_until
from helpers.topology import Topology

PEER4, PEER6 = Topology.peer_inet4, Topology.peer_inet6
BAD = re.compile(r"bad (udp |tcp |icmp6 )?cksum|wrong icmp cksum|incorrect|BAD CHECKSUM")


def _wait_file(path: str, what: str) -> str:
    """Shell: wait (bounded, 20 s) for `path` to exist."""
    return (f"i=0; until [ -e {path} ]; do i=$((i+1)); "
            f"[ $i -gt 400 ] && echo 'timeout: {what}' && exit 97; sleep 0.05; done")


def _child_of(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = f.read().split()
    return int(kids[0]) if kids else 0


def test_composed_frames_have_complete_checksums(topology, user):
    t = topology
    w = t.workdir
    ready, go = os.path.join(w, f"ready-{user}"), os.path.join(w, f"go-{user}")
    finished, stop = os.path.join(w, f"finished-{user}"), os.path.join(w, f"stop-{user}")
    cap, caperr = os.path.join(w, f"in-{user}.txt"), os.path.join(w, f"tcpdump-{user}.err")
    lease4, lease6 = os.path.join(w, f"d4-{user}.leases"), os.path.join(w, f"d6-{user}.leases")
    script = f"""
set -e
sysctl -qw net.ipv6.conf.eth0.accept_dad=0
ip link set eth0 up
touch {ready}
{_wait_file(go, "tcpdump")}
ip link set eth0 down && ip link set eth0 up    # a Router Solicitation while tcpdump listens
i=0; until ip -6 route show default | grep -q via; do i=$((i+1)); [ $i -gt 100 ] && exit 98; sleep 0.1; done
timeout 20 dhclient -6 -1 --no-pid -sf /bin/true -lf {lease6} eth0
timeout 20 dhclient -4 -1 --no-pid -sf /bin/true -lf {lease4} eth0
ip addr add {t.host_ip4}/24 dev eth0
ip route add default via {t.gw4}
ping -v -c 3 -i 0.2 -W 2 -s 1000 {PEER4}
ping -6 -c 3 -i 0.2 -W 2 -s 1000 {PEER6}
ping -c 2 -i 0.2 -W 2 {t.gw4}
! socat -u /dev/null TCP4:{PEER4}:1     # refused by the peer: an RST from pypasta
touch {finished}
{_wait_file(stop, "the capture")}
"""
    proc = t.pypasta(["--", "sh", "-c", script], user=user)
    dump = None
    try:
        wait_until(lambda: os.path.exists(ready) or proc.poll() is not None, 20,
                   "the namespace's link up")
        assert proc.poll() is None, t.logs(proc)
        child = wait_until(lambda: _child_of(proc.pid), 5, "pypasta's child")
        subprocess.run(["nsenter", "-t", str(child), "-n", "sysctl", "-qw",
                        "net.ipv4.ping_group_range=1 0"], check=True, env=env.root_env())
        # `-Q in`: the frames from pypasta (the namespace's own leave with offloaded checksums,
        # which tcpdump flags as well)
        dump = subprocess.Popen(["nsenter", "-t", str(child), "-n", "tcpdump", "-Q", "in", "-vv",
                                 "-n", "-l", "-i", "eth0"], stdout=open(cap, "w"),
                                stderr=open(caperr, "w"), env=env.root_env())
        wait_until(lambda: "listening on" in open(caperr).read() or dump.poll() is not None, 10,
                   "tcpdump listening")
        assert dump.poll() is None, open(caperr).read()
        open(go, "w").close()
        wait_until(lambda: os.path.exists(finished) or proc.poll() is not None, 60,
                   "the script's end")
        # The namespace (and tcpdump's interface) lives until `stop`: let tcpdump print the
        # last frame, the RST, before it is stopped.
        wait_until(lambda: "Flags [R" in open(cap).read() or proc.poll() is not None, 10,
                   "the RST in the capture")
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        open(stop, "w").close()
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if dump is not None and dump.poll() is None:
            dump.kill()
            dump.wait(10)
    out, err = t.logs(proc)
    assert proc.returncode == 0, out + err
    assert "BAD CHECKSUM" not in out and out.count(" 0% packet loss") == 3, out
    assert "socktype: SOCK_RAW" in err, err             # (ping -v says so on stderr)
    text = open(cap).read()
    bad = [line for line in text.splitlines() if BAD.search(line)]
    assert not bad, "\n".join(bad[:10])
    # Every kind of composed frame was seen, and tcpdump verified the ones it can
    for what in (f"Reply {t.gw4} is-at", "ICMP echo reply", "BOOTP/DHCP, Reply", "udp sum ok",
                 "dhcp6 advertise", "dhcp6 reply", "router advertisement", "icmp6 sum ok",
                 "ICMP6, echo reply", "Flags [R"):
        assert what in text, f"no {what!r} in the capture:\n{text[-3000:]}"
