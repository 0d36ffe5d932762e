"""The translator end to end (issue 3): DHCP, DHCPv6, SLAAC, ping, UDP both ways, DNS forwarding.

Every test runs pypasta in the hermetic topology's host namespace (198.51.100.2/24,
2001:db8::2/64, gateway 198.51.100.1 / 2001:db8::1 = the peer) and drives the namespace it
serves with real clients: busybox udhcpc, ISC dhclient, the kernel's own SLAAC, iputils ping,
socat, busybox nslookup, dnsmasq. `tests/helpers/udpecho.py` checks datagram integrity where
socat cannot (socat 1.7 takes a zero-length datagram for end-of-file and its PIPE merges
datagrams that arrive back to back, so against socat the checker keeps one datagram in flight).

The gateway is also the peer here, and pypasta maps the gateway to the host's loopback (pasta's
default), so traffic meant for the peer goes to its other addresses, 198.18.0.1 and
2001:db8:ffff::1.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess

import pytest

from helpers import env, wait_until
from helpers.topology import Topology

PEER4, PEER6 = Topology.peer_inet4, Topology.peer_inet6


def _script(t: Topology, name: str, body: str) -> str:
    path = os.path.join(t.workdir, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def _wait_bound(proto: str, port: int, attempts: int = 100) -> str:
    """Shell snippet: wait (bounded, 10 s) until something listens on `port` in this netns."""
    flag = "-Hlun" if proto == "udp" else "-Hltn"
    return (f"i=0; until ss {flag} 'sport = :{port}' | grep -q .; do i=$((i+1)); "
            f"[ $i -gt {attempts} ] && echo 'not bound: {port}' && exit 97; sleep 0.1; done")


# --------------------------------------------------------------------------- configuration

def test_udhcpc_gets_host_address_router_and_mtu(topology, user):
    t = topology
    out = os.path.join(t.workdir, f"udhcpc-{user}.env")
    hook = _script(t, f"udhcpc-hook-{user}", f'[ "$1" = bound ] && env > {out}\nexit 0\n')
    logf = os.path.join(t.workdir, f"udhcpc-{user}.log")
    r = t.pypasta_run(["-l", logf, "--", "sh", "-c",
                       f"ip link set eth0 up && busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 "
                       f"-s {hook} -O mtu"], user=user)
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(line.split("=", 1) for line in open(out).read().splitlines() if "=" in line)
    assert got["ip"] == t.host_ip4
    assert got["router"] == t.gw4
    assert got["subnet"] == "255.255.255.0"
    assert got["mtu"] == "65520"
    assert got["lease"] == "4294967295"
    assert got["serverid"] == t.gw4
    text = open(logf).read()
    assert "DHCP: offer to discover" in text and "DHCP: ack to request" in text


def test_dhclient6_gets_host_address(topology, user):
    t = topology
    out = os.path.join(t.workdir, f"dhclient6-{user}.env")
    hook = _script(t, f"dhclient-hook-{user}",
                   f'case "$reason" in BOUND6|REBOOT6) env > {out};; esac\nexit 0\n')
    lease = os.path.join(t.workdir, f"dhclient6-{user}.leases")
    pidf = os.path.join(t.workdir, f"dhclient6-{user}.pid")
    # The namespace is PID 1's: dhclient, which stays in the background, dies with it.
    script = ("sysctl -qw net.ipv6.conf.eth0.accept_dad=0 && ip link set eth0 up && "
              f"timeout 20 dhclient -6 -1 -v -sf {hook} -lf {lease} -pf {pidf} eth0")
    r = t.pypasta_run(["--", "sh", "-c", script], user=user, timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    got = dict(line.split("=", 1) for line in open(out).read().splitlines() if "=" in line)
    assert got["new_ip6_address"] == t.host_ip6
    assert got.get("new_ip6_prefixlen") in ("128", "64")


def test_slaac_configures_prefix_and_default_route(topology, user):
    t = topology
    script = ("sysctl -qw net.ipv6.conf.eth0.accept_dad=0 && ip link set eth0 up && "
              "i=0; until ip -6 route show default | grep -q via; do i=$((i+1)); "
              "[ $i -gt 100 ] && break; sleep 0.1; done; "
              "ip -j -6 addr show dev eth0; echo ----; ip -j -6 route show default")
    r = t.pypasta_run(["--", "sh", "-c", script], user=user)
    assert r.returncode == 0, r.stderr
    addr_j, route_j = (json.loads(s) for s in r.stdout.split("----"))
    globals_ = [a for a in addr_j[0]["addr_info"] if a.get("scope") == "global"]
    assert any(a["local"].startswith("2001:db8::") and a["prefixlen"] == 64
               and a.get("dynamic") for a in globals_), addr_j
    assert route_j and route_j[0]["gateway"].startswith("fe80::"), route_j
    assert route_j[0].get("protocol") == "ra"


def test_no_dhcp_no_ndp_switch_the_responders_off(topology):
    t = topology
    script = ("ip link set eth0 up && busybox udhcpc -q -n -f -i eth0 -t 2 -T 1 -s /bin/true;"
              " echo rc=$?; sysctl -qw net.ipv6.conf.eth0.accept_dad=0; "
              "ping -6 -c 1 -W 1 fe80::1%eth0 >/dev/null 2>&1; echo ping6=$?")
    r = t.pypasta_run(["--no-dhcp", "--no-ndp", "--", "sh", "-c", script], timeout=40)
    assert "rc=1" in r.stdout and "ping6=" in r.stdout, r.stdout + r.stderr
    # Without NDP nobody answers the neighbour solicitation for the router.
    assert "ping6=0" not in r.stdout


# --------------------------------------------------------------------------- ICMP echo

def test_ping_and_ping6_to_the_peer(topology, user):
    r = topology.pypasta_run(["--config-net", "--", "sh", "-c",
                              f"ping -c 3 -i 0.2 -W 2 {PEER4} && ping -6 -c 3 -i 0.2 -W 2 {PEER6}"],
                             user=user)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" 0% packet loss") == 2


def test_ping_gateway_reaches_host_loopback(topology):
    # The peer never sees these: the requests go to the host namespace's 127.0.0.1.
    t = topology
    cap = t.peer_popen(["timeout", "10", "tcpdump", "-nlc", "1", "-i", t.peer_ifname, "icmp"])
    r = t.pypasta_run(["--config-net", "--", "ping", "-c", "2", "-i", "0.2", "-W", "2", t.gw4])
    assert r.returncode == 0, r.stdout + r.stderr
    out = t.pypasta_run(["--config-net", "--no-map-gw", "--", "ping", "-c", "1", "-W", "2",
                         t.gw4])
    assert out.returncode == 0, out.stdout + out.stderr
    cap.wait(timeout=15)
    assert "ICMP echo request" in t.logs(cap)[0]      # only the --no-map-gw run reached it


def test_ping_warns_when_ping_sockets_are_forbidden(topology, user):
    t = topology
    t.host("sysctl -qw net.ipv4.ping_group_range='1 0'")
    logf = os.path.join(t.workdir, f"ping-{user}.log")
    # Once the command runs, messages go to syslog or the -l file only (as pasta).
    r = t.pypasta_run(["--config-net", "-l", logf, "--", "ping", "-c", "2", "-i", "0.2", "-W",
                       "1", PEER4], user=user)
    assert r.returncode != 0
    text = open(logf).read()
    assert 'Cannot open "ping" socket' in text
    assert 'sysctl -w net.ipv4.ping_group_range="0 2147483647"' in text
    assert text.count("Cannot open") == 1            # once, not per request


# --------------------------------------------------------------------------- UDP

def _socat_echo(t: Topology, port: int) -> None:
    t.peer_popen(f"socat -b 65536 UDP4-LISTEN:{port},bind={PEER4} PIPE", name="socat4")
    t.peer_popen(f"socat -b 65536 UDP6-LISTEN:{port},bind=[{PEER6}],ipv6only=1 PIPE",
                 name="socat6")
    t.peer(_wait_bound("udp", port))


@pytest.mark.parametrize("count", [pytest.param(10000, id="10k")])
def test_udp_10k_datagrams_through_socat_echo(topology, user, count):
    t = topology
    _socat_echo(t, 7777)
    client = t.copy_helper("udpecho.py")
    py = env.python_for(user)
    script = (f"{py} {client} client {PEER4} 7777 --count {count} --min 1 --max 65000 "
              f"--burst-bytes 0 --seed 4 && "
              f"{py} {client} client {PEER6} 7777 --count {count} --min 1 --max 65000 "
              f"--burst-bytes 0 --seed 6")
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user, timeout=240)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(results) == 2, r.stdout + r.stderr
    for res in results:
        assert res["ok"] == count and not res["errors"]
        assert res["max"] > 64000


def test_udp_zero_length_and_bursts_keep_order(topology, user):
    """Back-to-back bursts and zero-length datagrams, echoed by a datagram-preserving server."""
    t = topology
    server = t.copy_helper("udpecho.py")
    for addr, port in ((PEER4, 7001), (PEER6, 7002)):
        t.peer_popen([env.python_for("root"), server, "server", addr, str(port)], name="echo")
        t.peer(_wait_bound("udp", port))
    py = env.python_for(user)
    script = (f"{py} {server} client {PEER4} 7001 --count 3000 --min 0 --max 9000 --seed 1 && "
              f"{py} {server} client {PEER6} 7002 --count 3000 --min 0 --max 9000 --seed 2 && "
              f"{py} {server} client {PEER4} 7001 --count 200 --min 0 --max 0 --seed 3")
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user, timeout=120)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(results) == 3, r.stdout + r.stderr
    assert [res["ok"] for res in results] == [3000, 3000, 200]
    assert results[2]["zero"] == 200


def _state(stderr: str) -> dict:
    """The counters of the last `state:` line pypasta logged (at exit with -d)."""
    line = [x for x in stderr.splitlines() if "state: " in x][-1]
    return {k: int(v) for k, v in (kv.split("=") for kv in line.split("state: ")[1].split(", "))}


def test_udp_equal_size_runs_go_out_with_gso_and_keep_boundaries(topology, user):
    """Runs of equal-sized datagrams in one tap batch leave as UDP GSO sends; datagrams above
    the veth's 1500-byte MTU make the kernel refuse GSO and go one by one (fragmented). Every
    datagram comes back whole and in order either way.

    pypasta and the echo server are pinned to one CPU: a sender that migrates between CPUs
    can have its datagrams reordered by the veth itself (each CPU's receive backlog is
    processed on its own; seen here with and without GSO). Bursts stay small enough that the
    receivers' default 208 KiB buffers hold them, skb overhead included."""
    t = topology
    server = t.copy_helper("udpecho.py")
    for addr, port in ((PEER4, 7011), (PEER6, 7012)):
        t.peer_popen(["taskset", "-c", "0", env.python_for("root"), server, "server", addr,
                      str(port)], name="echo")
        t.peer(_wait_bound("udp", port))
    py = env.python_for(user)
    small = "--burst-bytes 30000 --min 300 --run 32"
    script = (f"{py} {server} client {PEER4} 7011 --count 4000 --max 1472 {small} --seed 11 && "
              f"{py} {server} client {PEER6} 7012 --count 4000 --max 1452 {small} --seed 12 && "
              f"{py} {server} client {PEER4} 7011 --count 500 --min 1473 --max 8000 --run 16 "
              f"--burst-bytes 60000 --seed 13")
    argv = ["taskset", "-c", "0", *t.pypasta_argv(["-d", "--config-net", "--", "sh", "-c",
                                                   script], user)]
    r = t.hostns.run(argv, user=user, timeout=120, check=False)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and len(results) == 3, r.stdout + r.stderr
    assert [res["ok"] for res in results] == [4000, 4000, 500]
    state = _state(r.stderr)
    assert state["udp_gso_sends"] > 0 and state["udp_gso_fallbacks"] > 0, state


def test_udp_client_with_socat_in_namespace(topology, user):
    t = topology
    _socat_echo(t, 7003)
    script = (f"echo hello4 | socat -t 2 - UDP4:{PEER4}:7003 && "
              f"echo hello6 | socat -t 2 - UDP6:[{PEER6}]:7003")
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello4", "hello6"]


def test_udp_inbound_forward_sees_real_peer_address(topology, user):
    t = topology
    # -u 6000 (same port) and -u 6001:7001 (mapped), both families.
    # (':' separates socat address parameters, hence "port" in the reply.)
    srv = ("socat UDP4-RECVFROM:{p},fork SYSTEM:'echo v4 from $SOCAT_PEERADDR port "
           "$SOCAT_PEERPORT; exec cat >/dev/null' & socat UDP6-RECVFROM:{p},ipv6only=1,fork "
           "SYSTEM:'echo v6 from $SOCAT_PEERADDR port $SOCAT_PEERPORT; exec cat >/dev/null' & ")
    ready = os.path.join(t.workdir, f"inbound-ready-{user}")
    script = (srv.format(p=6000) + srv.format(p=7001) + _wait_bound("udp", 6000) + "; "
              + _wait_bound("udp", 7001) + f"; touch {ready}; wait")
    p = t.pypasta(["--config-net", "-u", "6000", "-u", "6001:7001", "--", "sh", "-c", script],
                  user=user)
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace servers")
    assert p.poll() is None, t.logs(p)
    for port in (6000, 6001):
        sport = 40000 + port % 100
        r4 = t.peer(f"echo x | socat -t 2 - UDP4:{t.host_ip4}:{port},sourceport={sport}")
        assert r4.stdout.strip() == f"v4 from {t.peer_ip4} port {sport}", r4.stdout
        r6 = t.peer(f"echo x | socat -t 2 - UDP6:[{t.host_ip6}]:{port},sourceport={sport}")
        m = re.fullmatch(r"v6 from \[(.*)\] port (\d+)", r6.stdout.strip())
        assert m and ipaddress.ip_address(m[1]) == ipaddress.ip_address(t.peer_ip6), r6.stdout
        assert int(m[2]) == sport


def test_udp_inbound_bind_failure_is_a_clear_error(topology, user):
    t = topology
    holder = t.host_popen([env.python_for("root"), "-c",
                           "import socket,time; s=socket.socket(socket.AF_INET,"
                           "socket.SOCK_DGRAM); s.bind(('0.0.0.0', 6100)); print('ok', flush=1);"
                           " time.sleep(60)"], stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"ok"
    r = t.pypasta_run(["--config-net", "-u", "6100", "true"], user=user)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == \
        "pypasta: Failed to bind port 6100 (Address already in use) for option '-u', exiting"


# --------------------------------------------------------------------------- DNS

DNS_FWD4, DNS_FWD6 = "169.254.0.1", "fd00::53"


def _dnsmasq(t: Topology) -> None:
    t.host_popen(["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                  "--listen-address=127.0.0.1,::1", "--bind-interfaces", "--port=53",
                  "--user=root", "--pid-file=", "--log-facility=-", "--log-queries",
                  "--address=/example.test/198.18.0.7",
                  "--address=/example.test/2001:db8:ffff::7"], name="dnsmasq")
    t.host(_wait_bound("udp", 53))


QUERY = r"""
import socket, struct, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(3)
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x04test\x00" + \
    struct.pack("!HH", 1, 1)
s.sendto(q, (sys.argv[1], 53))
data, src = s.recvfrom(2048)
print(src[0], src[1], data[:2].hex(), data[-4:].hex())
"""


def test_dns_forward_reaches_host_loopback_resolver(topology, user):
    t = topology
    _dnsmasq(t)
    q = os.path.join(t.workdir, "q.py")
    with open(q, "w") as f:
        f.write(QUERY)
    py = env.python_for(user)
    script = (f"busybox nslookup example.test {DNS_FWD4}; echo ----; "
              f"busybox nslookup -type=aaaa example.test {DNS_FWD6}; echo ----; "
              f"{py} {q} {DNS_FWD4}; {py} {q} {DNS_FWD6}")
    r = t.pypasta_run(["--config-net", "--dns-forward", DNS_FWD4, "--dns-forward", DNS_FWD6,
                       "--dns-host", "127.0.0.1", "--dns-host", "::1", "--", "sh", "-c", script],
                      user=user)
    assert r.returncode == 0, r.stdout + r.stderr
    ns4, ns6, raw = r.stdout.split("----")
    assert "198.18.0.7" in ns4, ns4
    assert "2001:db8:ffff::7" in ns6, ns6
    lines = raw.split("\n")
    lines = [line for line in lines if line.strip()]
    # The answers come from the --dns-forward addresses, port 53, with our query id and the
    # A record 198.18.0.7 (c6120007) at the end.
    assert lines[0].split() == [DNS_FWD4, "53", "1234", "c6120007"], lines
    assert lines[1].split() == [DNS_FWD6, "53", "1234", "c6120007"], lines


# --------------------------------------------------------------------------- options

def _peer_whoami(t: Topology, port: int) -> None:
    """A UDP server on the peer that answers with the source address it sees. (The script
    keeps its stdin open: socat writes the datagram there, and a script that has already
    exited makes that write fail with EPIPE, and socat then quits without replying.)"""
    t.peer_popen(f"socat UDP4-RECVFROM:{port},bind={PEER4},fork "
                 f"SYSTEM:'echo $SOCAT_PEERADDR; exec cat >/dev/null'", name="whoami")
    t.peer(_wait_bound("udp", port))


def test_mac_addr_option_is_our_mac_in_arp_and_ndp(topology, user):
    mac = "02:aa:bb:cc:dd:ee"
    script = (f"ping -c 1 -W 2 {PEER4} >/dev/null && ping -6 -c 1 -W 2 {PEER6} >/dev/null && "
              "ip -j neigh show dev eth0")
    r = topology.pypasta_run(["--config-net", "-M", mac, "--", "sh", "-c", script], user=user)
    assert r.returncode == 0, r.stdout + r.stderr
    neigh = {n["dst"]: n.get("lladdr") for n in json.loads(r.stdout)}
    assert neigh[topology.gw4] == mac
    assert neigh[topology.gw6] == mac


def test_pcap_records_frames_both_ways(topology, user):
    from scapy.layers.inet import ICMP, IP
    from scapy.utils import rdpcap
    pcap = os.path.join(topology.workdir, f"cap-{user}.pcap")
    r = topology.pypasta_run(["--config-net", "--pcap", pcap, "--", "ping", "-c", "1", "-W", "2",
                              PEER4], user=user)
    assert r.returncode == 0, r.stdout + r.stderr
    pkts = [p for p in rdpcap(pcap) if ICMP in p]
    kinds = {(p[IP].src, p[IP].dst, p[ICMP].type) for p in pkts}
    assert (topology.host_ip4, PEER4, 8) in kinds           # read from the tap
    assert (PEER4, topology.host_ip4, 0) in kinds           # written to it


def test_dhcp_dns_and_search_offered_to_clients(topology, user):
    t = topology
    out4 = os.path.join(t.workdir, f"dns-udhcpc-{user}.env")
    out6 = os.path.join(t.workdir, f"dns-dhclient-{user}.env")
    hook4 = _script(t, f"dns-hook4-{user}", f'[ "$1" = bound ] && env > {out4}\nexit 0\n')
    hook6 = _script(t, f"dns-hook6-{user}",
                    f'case "$reason" in BOUND6) env > {out6};; esac\nexit 0\n')
    script = ("sysctl -qw net.ipv6.conf.eth0.accept_dad=0 && ip link set eth0 up && "
              f"busybox udhcpc -q -n -f -i eth0 -t 5 -T 1 -s {hook4} -O dns -O search && "
              f"timeout 20 dhclient -6 -1 -sf {hook6} -lf {t.workdir}/dns-{user}.leases "
              f"-pf {t.workdir}/dns-{user}.pid eth0")
    r = t.pypasta_run(["--dhcp-dns", "--dhcp-search", "-D", "198.18.0.53", "-D",
                       "2001:db8:ffff::53", "-S", "example.test", "-S", "corp.test", "--",
                       "sh", "-c", script], user=user, timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    env4 = dict(l.split("=", 1) for l in open(out4).read().splitlines() if "=" in l)
    env6 = dict(l.split("=", 1) for l in open(out6).read().splitlines() if "=" in l)
    assert env4["dns"].split() == ["198.18.0.53"]
    assert env4["search"].split() == ["example.test", "corp.test"]
    assert env6["new_dhcp6_name_servers"].split() == ["2001:db8:ffff::53"]
    assert env6["new_dhcp6_domain_search"].split() == ["example.test.", "corp.test."]


def test_outbound_address_and_interface(topology, user):
    t = topology
    t.host("ip addr add 198.51.100.3/24 dev eth0 nodad")
    _peer_whoami(t, 7010)
    ask = f"echo x | socat -t 2 - UDP4:{PEER4}:7010"
    r = t.pypasta_run(["--config-net", "-o", "198.51.100.3", "--", "sh", "-c", ask], user=user)
    assert r.stdout.strip() == "198.51.100.3", r.stdout + r.stderr
    r = t.pypasta_run(["--config-net", "--outbound-if4", "eth0", "--", "sh", "-c", ask],
                      user=user)
    assert r.stdout.strip() == t.host_ip4, r.stdout + r.stderr
    # Bound to lo, the flow cannot reach the peer: the option is really applied.
    r = t.pypasta_run(["--config-net", "--outbound-if4", "lo", "--", "sh", "-c", ask], user=user)
    assert r.stdout.strip() == "", r.stdout


def test_map_guest_addr_and_map_host_loopback(topology, user):
    t = topology
    # Two servers in the host namespace: one on its own address, one on its loopback.
    t.host_popen(f"socat UDP4-RECVFROM:7020,bind={t.host_ip4},fork "
                 "SYSTEM:'echo guest-addr; exec cat >/dev/null'",
                 name="own")
    t.host_popen("socat UDP4-RECVFROM:7021,bind=127.0.0.1,fork "
                 "SYSTEM:'echo host-lo; exec cat >/dev/null'",
                 name="lo")
    t.host(_wait_bound("udp", 7020) + "; " + _wait_bound("udp", 7021))
    script = ("echo x | socat -t 2 - UDP4:198.51.100.200:7020; "
              "echo x | socat -t 2 - UDP4:198.51.100.250:7021; "
              f"echo x | socat -t 2 - UDP4:{t.gw4}:7021; echo end")
    r = t.pypasta_run(["--config-net", "--map-guest-addr", "198.51.100.200",
                       "--map-host-loopback", "198.51.100.250", "--", "sh", "-c", script],
                      user=user)
    # The gateway is no longer the loopback mapping once another address is: no answer.
    assert r.stdout.split() == ["guest-addr", "host-lo", "end"], r.stdout + r.stderr


# --------------------------------------------------------------------------- link tracking

def test_no_unsolicited_router_advertisement_at_start(topology):
    """As pasta: the first unsolicited RA comes one whole interval (200..600 s) after start, never
    while the namespace's link-local address may still be tentative (issue 13 item 3: an early
    RA completed SLAAC before dhclient -6 could bind that address). With the kernel's own
    solicitations off, no default route appears within 3 s of the link coming up; with them on,
    the RS is answered at once (test_slaac_configures_prefix_and_default_route)."""
    script = ("sysctl -qw net.ipv6.conf.eth0.router_solicitations=0 "
              "net.ipv6.conf.eth0.accept_dad=0 && ip link set eth0 up && "
              "i=0; until ip -6 route show default | grep -q via; do i=$((i+1)); "
              "[ $i -gt 30 ] && break; sleep 0.1; done; echo routes:; ip -6 route show default")
    r = topology.pypasta_run(["--", "sh", "-c", script])
    assert r.returncode == 0 and "routes:" in r.stdout, r.stdout + r.stderr
    assert "proto ra" not in r.stdout, r.stdout


def test_follows_guest_mac_and_address_changes(topology, user):
    """Replies go to the MAC the namespace uses now; inbound flows to the address it uses."""
    t = topology
    ready = os.path.join(t.workdir, f"moved-{user}")
    script = ("ip link set eth0 address 02:12:34:56:78:9a && ip link set eth0 up && "
              "ip addr add 198.51.100.9/24 dev eth0 && ip route add default via 198.51.100.1 && "
              f"ping -c 1 -W 2 {PEER4} > /dev/null && "
              "socat UDP4-RECVFROM:6200,bind=198.51.100.9,fork "
              "SYSTEM:'echo seen; exec cat >/dev/null' & "
              + _wait_bound("udp", 6200) + f"; touch {ready}; wait")
    p = t.pypasta(["-u", "6200", "--", "sh", "-c", script], user=user)
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace ready")
    assert p.poll() is None, t.logs(p)
    r = t.peer(f"echo x | socat -t 2 - UDP4:{t.host_ip4}:6200")
    # The server listens on 198.51.100.9 only: an answer proves the delivery address.
    assert r.stdout.strip() == "seen", r.stdout


def test_ipv4_only_drops_ipv6(topology):
    logf = os.path.join(topology.workdir, "v4only.log")
    script = (f"ping -c 1 -W 2 {PEER4} > /dev/null && echo v4-ok; "
              f"ip -6 route add default dev eth0 2>/dev/null; "
              f"ping -6 -c 1 -W 1 {PEER6} > /dev/null 2>&1 || echo v6-blocked; sleep 0.2")
    p = topology.pypasta(["--config-net", "-4", "-d", "-l", logf, "--", "sh", "-c", script],
                         stdout=subprocess.PIPE)
    out = p.stdout.read().decode()
    assert p.wait(timeout=20) == 0
    assert out.split() == ["v4-ok", "v6-blocked"], out
    assert re.search(r"drop:ipv6 disabled=[1-9]", open(logf).read())     # counted at exit
