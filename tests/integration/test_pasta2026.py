"""pasta 2026's command line beyond port forwarding (issue 16), each on the hermetic topology:
`-a ADDR/PREFIX`, `-H` (the spawned namespace's hostname and DHCP option 12), per-family local
mode (a host without IPv6, and a host without IPv4), `--splice-only`, `--stats`, and `-T/-U`
bound to the namespace's `lo` (any 127.0.0.0/8 destination reaches the same address on the
host, with the client's source address kept).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess

from helpers import env, read_stats, wait_until


def _ns_json(t, args, script_out: str, user: str = "root", extra=()):
    """Run `pypasta --config-net EXTRA -- sh -c 'ip -j ARGS > OUT'` and parse OUT."""
    r = t.pypasta_run(["--config-net", *extra, "--", "sh", "-c",
                       f"ip -j {args} > {script_out}"], user=user, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.load(open(script_out))


def test_address_with_prefix_length(topology):
    t = topology
    out = os.path.join(t.workdir, "addr.json")
    links = _ns_json(t, "-4 addr show dev eth0", out, extra=("-a", "198.51.100.77/28"))
    assert [(a["local"], a["prefixlen"]) for a in links[0]["addr_info"]] == \
        [("198.51.100.77", 28)]
    r = t.pypasta_run(["-a", "198.51.100.77/28", "-n", "24", "--", "true"])
    assert r.returncode == 1 and r.stderr.strip() == \
        "pypasta: Redundant prefix length specification"


def test_hostname_in_the_namespace_and_over_dhcp(topology, user):
    """-H names the spawned namespace (UTS) and is DHCP option 12 (busybox udhcpc hands it to
    its script as $hostname); --fqdn is DHCP option 81 and DHCPv6 option 39, as ISC dhclient
    records them in its leases."""
    t = topology
    w = t.workdir
    script = os.path.join(w, "udhcpc.sh")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\n[ "$1" = bound ] && echo "$hostname" > {w}/dhcp-{user}\nexit 0\n')
    os.chmod(script, 0o755)
    l4, l6 = f"{w}/l4-{user}", f"{w}/l6-{user}"
    r = t.pypasta_run(["-H", "box.example", "--fqdn", "box.example.org", "--", "sh", "-c",
                       f"hostname > {w}/uts-{user}; sysctl -qw net.ipv6.conf.eth0.accept_dad=0; "
                       f"ip link set eth0 up; "
                       f"busybox udhcpc -f -q -n -t 5 -T 1 -i eth0 -s {script}; "
                       f"timeout 20 dhclient -4 -1 --no-pid -sf /bin/true -lf {l4} eth0; "
                       f"timeout 20 dhclient -6 -1 --no-pid -sf /bin/true -lf {l6} eth0"],
                      user=user, timeout=60)
    assert r.returncode == 0, r.stderr
    assert open(f"{w}/uts-{user}").read().strip() == "box.example"
    assert open(f"{w}/dhcp-{user}").read().strip() == "box.example"
    lease4, lease6 = open(l4).read(), open(l6).read()
    assert 'option host-name "box.example";' in lease4
    assert 'option fqdn.fqdn "box.example.org";' in lease4
    assert 'option fqdn.fqdn "box.example.org";' in lease6


def _drop_family(t, v6: bool) -> None:
    """Simulate a host without IPv6 (or without IPv4): no addresses, no routes of that family
    on the host namespace's interface."""
    if v6:
        t.host("ip -6 route flush table main; ip -6 addr flush dev eth0 scope global; "
               "ip -6 addr flush dev eth0 scope link")
    else:
        t.host("ip -4 route flush table main; ip -4 addr flush dev eth0")


def test_local_mode_for_a_host_without_ipv6(topology):
    """The namespace still gets IPv6: fe80::1 as its default gateway, answered over NDP."""
    t = topology
    _drop_family(t, v6=True)
    w = t.workdir
    r = t.pypasta_run(["--config-net", "--", "sh", "-c",
                       f"ip -j -6 route > {w}/r6.json; ip -j -4 addr show dev eth0 > {w}/a4.json;"
                       " ping -6 -c 1 -W 5 fe80::1%eth0 > /dev/null && echo ok > "
                       f"{w}/nd"], timeout=30)
    assert r.returncode == 0, r.stderr
    routes = json.load(open(f"{w}/r6.json"))
    assert any(x["dst"] == "default" and x.get("gateway") == "fe80::1" for x in routes), routes
    assert json.load(open(f"{w}/a4.json"))[0]["addr_info"][0]["local"] == "198.51.100.2"


def test_local_mode_for_a_host_without_ipv4(topology):
    """The namespace gets 169.254.2.1/16 via 169.254.2.2, and the gateway still leads to the
    host's loopback over IPv4 (what Podman's 169.254.1.x helper addresses rely on)."""
    t = topology
    _drop_family(t, v6=False)
    w = t.workdir
    t.host_popen("socat TCP4-LISTEN:9730,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo lo4'",
                 name="lo4")
    t.wait_listening("host", 9730)
    r = t.pypasta_run(["--config-net", "-t", "none", "-T", "none", "--", "sh", "-c",
                       f"ip -j -4 addr show dev eth0 > {w}/a4.json; ip -j -4 route > "
                       f"{w}/r4.json; socat -T 5 - TCP4:169.254.2.2:9730 > {w}/lo4"],
                      timeout=30)
    assert r.returncode == 0, r.stderr
    a4 = json.load(open(f"{w}/a4.json"))[0]["addr_info"][0]
    assert (a4["local"], a4["prefixlen"]) == ("169.254.2.1", 16)
    assert any(x["dst"] == "default" and x.get("gateway") == "169.254.2.2"
               for x in json.load(open(f"{w}/r4.json")))
    assert open(f"{w}/lo4").read().strip() == "lo4"


def test_splice_only(topology, user):
    """No tap: the namespace has only lo; -t from the host's loopback reaches the namespace's
    loopback, -T reaches the host's, and a client from the peer is refused."""
    t = topology
    w = t.workdir
    t.host_popen("socat TCP4-LISTEN:9741,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo host'",
                 name="h")
    t.wait_listening("host", 9741)
    logf = os.path.join(w, f"so-{user}.log")
    p = t.pypasta(["--splice-only", "-d", "-l", logf, "-t", "9740", "-T", "9741", "-u", "none",
                   "-U", "none", "--", "sh", "-c",
                   f"ip -j link > {w}/links-{user}.json; "
                   "socat TCP4-LISTEN:9740,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo ns' & "
                   f"while ! ss -Hltn 'sport = :9740' | grep -q .; do sleep 0.05; done; "
                   f"socat -T 5 - TCP4:127.0.0.1:9741 > {w}/T-{user}; "
                   f"touch {w}/ready-{user}; exec sleep 600"], user=user)
    wait_until(lambda: os.path.exists(f"{w}/ready-{user}") or p.poll() is not None, 20,
               "namespace ready")
    assert p.poll() is None, open(logf).read()[-2000:]
    assert [l["ifname"] for l in json.load(open(f"{w}/links-{user}.json"))] == ["lo"]
    assert open(f"{w}/T-{user}").read().strip() == "host"
    assert t.host("socat -T 5 - TCP4:127.0.0.1:9740", timeout=10).stdout.strip() == "ns"
    refused = t.peer("socat -T 2 - TCP4:198.51.100.2:9740,connect-timeout=2", check=False,
                     timeout=10)
    assert refused.stdout.strip() == ""
    assert "Namespace interface" not in open(logf).read()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


def test_stats_prints_pastas_table(topology):
    """--stats DELAY (after -f): the staircase header and a line of event counts on stderr."""
    t = topology
    r = t.pypasta_run(["-f", "--stats", "1", "--config-net", "--", "sh", "-c",
                       "ip link set eth0 up; sleep 0.3"], timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.split("\n")
    assert "       connected TCP socket" in lines
    assert any(l.endswith("|      /dev/net/tun device") for l in lines)
    counts = [l for l in lines if l.startswith("  ") and l.split() and
              all(x.isdigit() for x in l.split())]
    assert counts and len(counts[0].split()) == 19


def test_T_and_U_bound_to_lo_keep_the_loopback_destination(topology, user):
    """pasta 2026: -T/-U listen on `lo` by interface, so 127.0.0.53 in the namespace reaches
    127.0.0.53 on the host (systemd-resolved's address), from the client's own address."""
    t = topology
    w = t.workdir
    t.host_popen("socat TCP4-LISTEN:9750,bind=127.0.0.53,reuseaddr,fork "
                 "SYSTEM:'echo tcp $SOCAT_SOCKADDR $SOCAT_PEERADDR'", name="t53")
    t.host_popen("socat UDP4-RECVFROM:9751,bind=127.0.0.53,reuseaddr,fork "
                 "SYSTEM:'read l; echo udp $SOCAT_PEERADDR'", name="u53")
    t.wait_listening("host", 9750)
    t.wait_listening("host", 9751, "udp")
    r = t.pypasta_run(["--config-net", "-T", "9750", "-U", "9751", "-t", "none", "-u", "none",
                       "--", "sh", "-c",
                       f"socat -T 5 - TCP4:127.0.0.53:9750,bind=127.0.0.9 > {w}/t-{user}; "
                       f"echo x | socat -t 5 -T 5 - UDP4:127.0.0.53:9751,bind=127.0.0.9 "
                       f"> {w}/u-{user}"],
                      user=user, timeout=30)
    assert r.returncode == 0, r.stderr
    assert open(f"{w}/t-{user}").read().strip() == "tcp 127.0.0.53 127.0.0.9"
    # Only a server on 127.0.0.53 listens, and the connected client takes replies only from
    # there: the datagram went to 127.0.0.53 and the reply came back from it.
    assert open(f"{w}/u-{user}").read().strip() == "udp 127.0.0.9"


def _read(path: str) -> str:
    return open(path).read() if os.path.exists(path) else ""


def test_neighbour_macs_followed_live(topology):
    """LAN hosts keep their real MACs (pasta 2026): ARP answers for addresses in the host's
    neighbour table carry them, frames from those hosts are sent from them, and entries added
    after start are followed. The gateway (mapped to the host's loopback by default) keeps
    pypasta's own MAC. tcpdump runs as real root through nsenter (inside pypasta's user
    namespace it cannot drop privileges)."""
    t = topology
    w = t.workdir
    t.peer("ip addr add 198.51.100.9/24 dev " + t.peer_ifname)
    peer_mac = json.loads(t.peer(f"ip -j link show {t.peer_ifname}").stdout)[0]["address"]
    t.host("ping -c 1 -W 2 198.51.100.9")                  # the host learns .9's MAC
    t.peer_popen("socat TCP4-LISTEN:9760,bind=198.51.100.9,reuseaddr,fork SYSTEM:'echo lan'",
                 name="lan")
    t.wait_listening("peer", 9760)
    script = (f"ip link set eth0 up; touch {w}/up; "
              f"while [ ! -e {w}/go ]; do sleep 0.05; done; "
              f"socat -T 5 - TCP4:198.51.100.9:9760 > {w}/lan.out; "
              f"ip -j neigh show dev eth0 > {w}/neigh1.json; touch {w}/step1; "
              f"while [ ! -e {w}/added ]; do sleep 0.05; done; "
              f"ping -c 1 -W 1 198.51.100.10 > /dev/null; "
              f"ip -j neigh show dev eth0 > {w}/neigh2.json")
    logf = os.path.join(w, "neigh.log")
    p = t.pypasta(["--config-net", "--trace", "-l", logf, "-t", "none", "-T", "none", "--",
                   "sh", "-c", script])
    wait_until(lambda: os.path.exists(f"{w}/up") or p.poll() is not None, 20, "link up")
    child = wait_until(lambda: _child_of(p.pid), 5, "pypasta's child")
    err = open(f"{w}/tcpdump.err", "w")
    dump = subprocess.Popen(["nsenter", "-t", str(child), "-n", "tcpdump", "-e", "-n", "-l",
                             "-c", "1", "-i", "eth0", "src host 198.51.100.9 and tcp"],
                            stdout=subprocess.PIPE, stderr=err, text=True,
                            env=env.root_env())
    try:
        wait_until(lambda: "listening on" in _read(f"{w}/tcpdump.err"), 10, "tcpdump")
        open(f"{w}/go", "w").close()
        wait_until(lambda: os.path.exists(f"{w}/step1") or p.poll() is not None, 20, "step 1")
        assert open(f"{w}/lan.out").read().strip() == "lan", open(logf).read()[-2000:]
        frame = dump.communicate(timeout=10)[0]
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    assert f" {peer_mac} > " in frame, frame           # data frames from .9's real MAC
    n1 = {e["dst"]: e.get("lladdr") for e in json.load(open(f"{w}/neigh1.json"))}
    assert n1["198.51.100.9"] == peer_mac                 # and the ARP answer
    t.host("ip neigh replace 198.51.100.10 lladdr 02:00:00:00:00:10 nud permanent dev eth0")
    wait_until(lambda: "198.51.100.10 / 02:00:00:00:00:10" in _read(logf) or p.poll(), 5,
               "the notification")
    open(f"{w}/added", "w").close()
    assert p.wait(timeout=20) == 0
    n2 = {e["dst"]: e.get("lladdr") for e in json.load(open(f"{w}/neigh2.json"))}
    assert n2["198.51.100.10"] == "02:00:00:00:00:10"
    assert n2.get("198.51.100.1") in (None, "9a:55:9a:55:9a:55")


def _child_of(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = f.read().split()
    return int(kids[0]) if kids else 0


def test_target_address_forwards_from_the_command_line(topology, user):
    """-t ADDR/PORT:TADDR/TPORT (Podman's forms for containers on a bridge, both families): the
    peer's connection arrives at TADDR:TPORT inside the namespace with its own address."""
    t = topology
    w = t.workdir
    script = ("ip addr add 10.89.0.2/32 dev lo || exit 1; "
              "ip addr add fd00::2/128 dev lo nodad || exit 1; "
              "socat TCP4-LISTEN:80,bind=10.89.0.2,reuseaddr,fork "
              "SYSTEM:'echo $SOCAT_PEERADDR' & "
              "socat TCP6-LISTEN:80,bind=[fd00::2],reuseaddr,fork "
              "SYSTEM:'echo $SOCAT_PEERADDR' & "
              "while [ $(ss -Hltn 'sport = :80' | wc -l) -lt 2 ]; do sleep 0.05; done; "
              f"touch {w}/ready-{user}; exec sleep 600")
    p = t.pypasta(["--config-net", "-t", "0.0.0.0/9770:10.89.0.2/80",
                   "-t", "[::]/9770:fd00::2/80", "-u", "none", "-T", "none", "-U", "none",
                   "--", "sh", "-c", script], user=user)
    wait_until(lambda: os.path.exists(f"{w}/ready-{user}") or p.poll() is not None, 20,
               "namespace services")
    assert p.poll() is None, t.logs(p)
    assert t.peer("socat -T 5 - TCP4:198.51.100.2:9770", timeout=10).stdout.strip() == \
        "198.51.100.1"
    got = t.peer("socat -T 5 - TCP6:[2001:db8::2]:9770", timeout=10).stdout.strip()
    assert ipaddress.ip_address(got.strip("[]")) == ipaddress.ip_address("2001:db8::1")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


def test_all_under_a_low_fd_limit(topology):
    """`-t all` (pasta 2026: every non-ephemeral port, best effort) covers more ports than a
    16384-fd limit allows: the first ports are listened on, the rest skipped with a warning
    naming the rule, and the translator keeps the other half of its fds for flows."""
    t = topology
    w = t.workdir
    script = ("socat TCP4-LISTEN:3000,reuseaddr,fork SYSTEM:'echo all' & "
              "while ! ss -Hltn 'sport = :3000' | grep -q .; do sleep 0.05; done; "
              f"touch {w}/all-ready; exec sleep 600")
    logf = os.path.join(w, "all.log")
    p = t.host_popen(["prlimit", "--nofile=16384:16384", *t.pypasta_argv(
        ["--config-net", "-l", logf, "-t", "all", "-u", "none", "-T", "none", "-U", "none",
         "--", "sh", "-c", script])], name="pypasta-all")
    wait_until(lambda: os.path.exists(f"{w}/all-ready") or p.poll() is not None, 60,
               "namespace service")
    assert p.poll() is None, t.logs(p)
    assert t.peer("socat -T 5 - TCP4:198.51.100.2:3000", timeout=10).stdout.strip() == "all"
    assert "File descriptor limit: " in open(logf).read()
    assert "not listened on" in open(logf).read()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 0
