"""TCP through the tap end to end (issue 4): bulk transfers both ways and both families with real
tools (socat, curl, iperf3), the peer's real address through `-t`, many concurrent streams,
half-close, resets, refused connects and flow clean-up.

The peer's services listen on 198.18.0.1 / 2001:db8:ffff::1 (the gateway address itself is
mapped to the host's loopback by default). `tests/helpers/tcptool.py` plays the peers that need
exact control (concurrency, half-close, resets, timing).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from helpers import env, read_stats, sha256_file, wait_until
from helpers.topology import Topology

PEER = {4: Topology.peer_inet4, 6: Topology.peer_inet6}
HOST = {4: Topology.host_ip4, 6: Topology.host_ip6}
BIG = 256 << 20


def _sock(fam: int, addr: str, port: int) -> str:
    return f"TCP{fam}:{'[' + addr + ']' if fam == 6 else addr}:{port}"


def _listen(fam: int, port: int, addr: str) -> str:
    a = f"[{addr}]" if fam == 6 else addr
    return f"TCP{fam}-LISTEN:{port},bind={a},reuseaddr"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    os.chmod(d, 0o755)
    path = str(d / "src.bin")
    subprocess.run(["head", "-c", str(BIG), "/dev/urandom"], stdout=open(path, "wb"), check=True)
    os.chmod(path, 0o644)
    return path, sha256_file(path)


@pytest.mark.parametrize("fam", [4, 6])
def test_256mib_both_directions_with_socat(topology, big_file, fam):
    """Namespace client <-> peer server, and peer client <-> namespace server through -t."""
    t = topology
    src, digest = big_file
    w = t.workdir
    peer, host = PEER[fam], HOST[fam]
    # peer servers: one sends the file, one stores what it receives
    t.peer_popen(f"socat -u OPEN:{src} {_listen(fam, 8001, peer)}", name="send")
    t.peer_popen(f"socat -u {_listen(fam, 8002, peer)} CREATE:{w}/up.bin", name="recv")
    t.wait_listening("peer", 8001)
    t.wait_listening("peer", 8002)
    ready = os.path.join(w, "ns-ready")
    any_addr = "::" if fam == 6 else "0.0.0.0"
    script = (f"socat -u OPEN:{src} {_listen(fam, 9001, any_addr)} & "
              f"socat -u {_listen(fam, 9002, any_addr)} CREATE:{w}/in-up.bin & "
              f"i=0; until [ $(ss -Hltn | grep -c ':900[12] ') -ge 2 ]; do i=$((i+1)); "
              f"[ $i -gt 100 ] && exit 97; sleep 0.1; done; "
              f"socat -u {_sock(fam, peer, 8001)} CREATE:{w}/down.bin && "
              f"socat -u OPEN:{src} {_sock(fam, peer, 8002)} && touch {ready} && wait")
    p = t.pypasta(["--config-net", "-t", "9001:9001,9002", "--", "sh", "-c", script])
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 120, "outbound transfers")
    assert os.path.exists(ready), t.logs(p)
    t.peer(f"socat -u {_sock(fam, host, 9001)} CREATE:{w}/in-down.bin", timeout=120)
    t.peer(f"socat -u OPEN:{src} {_sock(fam, host, 9002)}", timeout=120)
    assert p.wait(timeout=60) == 0, t.logs(p)
    wait_until(lambda: os.path.getsize(f"{w}/up.bin") == BIG, 30, "peer stored the upload")
    for name in ("down.bin", "up.bin", "in-down.bin", "in-up.bin"):
        assert sha256_file(os.path.join(w, name)) == digest, name


def test_curl_and_iperf3(topology, user):
    t = topology
    w = t.workdir
    os.makedirs(f"{w}/www", exist_ok=True)
    with open(f"{w}/www/file", "wb") as f:
        f.write(os.urandom(8 << 20))
    digest = sha256_file(f"{w}/www/file")
    t.peer_popen(["busybox", "httpd", "-f", "-p", f"{PEER[4]}:8080", "-h", f"{w}/www"],
                 name="httpd")
    t.peer_popen(["iperf3", "-s", "-B", PEER[4], "-p", "5201"], name="iperf3")
    t.wait_listening("peer", 8080)
    t.wait_listening("peer", 5201)
    script = (f"curl -sS -o {w}/curl.out http://{PEER[4]}:8080/file && "
              f"iperf3 -c {PEER[4]} -p 5201 -t 1 -J > {w}/iperf-{user}.up.json && "
              f"iperf3 -c {PEER[4]} -p 5201 -t 1 -R -J > {w}/iperf-{user}.down.json")
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sha256_file(f"{w}/curl.out") == digest
    import json
    for d in ("up", "down"):
        res = json.load(open(f"{w}/iperf-{user}.{d}.json"))
        assert "error" not in res, res.get("error")
        assert res["end"]["sum_received"]["bytes"] > 0


@pytest.mark.parametrize("fam", [4, 6])
def test_inbound_server_sees_peer_address(topology, user, fam):
    t = topology
    ready = os.path.join(t.workdir, f"ready-{user}-{fam}")
    any_addr = "::" if fam == 6 else "0.0.0.0"
    script = (f"socat {_listen(fam, 8080, any_addr)},fork "
              f"SYSTEM:'echo $SOCAT_PEERADDR port $SOCAT_PEERPORT' & "
              f"i=0; until ss -Hltn 'sport = :8080' | grep -q .; do i=$((i+1)); "
              f"[ $i -gt 100 ] && exit 97; sleep 0.1; done; touch {ready}; wait")
    p = t.pypasta(["--config-net", "-t", "8080", "--", "sh", "-c", script], user=user)
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace server")
    assert p.poll() is None, t.logs(p)
    r = t.peer(f"socat -t 2 - {_sock(fam, HOST[fam], 8080)},sourceport=41234 </dev/null")
    m = re.fullmatch(r"\[?([0-9a-f.:]+)\]? port (\d+)", r.stdout.strip())
    import ipaddress
    assert m and ipaddress.ip_address(m[1]) == ipaddress.ip_address(
        t.peer_ip4 if fam == 4 else t.peer_ip6), r.stdout
    assert m[2] == "41234"


def test_thousand_concurrent_connections_one_mib_each_way(topology):
    t = topology
    tool = t.copy_helper("tcptool.py")
    py = env.python_for("root")
    t.peer_popen([py, tool, "echo-server", PEER[4], "7000"], name="echo")
    t.wait_listening("peer", 7000)
    logf = os.path.join(t.workdir, "many.log")
    r = t.pypasta_run(["--config-net", "-l", logf, "--", py, tool, "many", PEER[4], "7000",
                       "--conns", "1000", "--bytes", str(1 << 20), "--timeout", "240"],
                      timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok 1000 bad 0 unfinished 0", \
        r.stdout + r.stderr[-2000:]


@pytest.mark.parametrize("fam", [4, 6])
def test_half_close_still_receives(topology, user, fam):
    t = topology
    tool = t.copy_helper("tcptool.py")
    t.peer_popen([env.python_for("root"), tool, "send-after-eof-server", PEER[fam], "7100",
                  "--bytes", str(10 << 20)], name="eofsrv")
    t.wait_listening("peer", 7100)
    r = t.pypasta_run(["--config-net", "--", env.python_for(user), tool, "halfclose-client",
                       PEER[fam], "7100", "--bytes", str(10 << 20)], user=user, timeout=60)
    assert r.stdout.strip() == f"received {10 << 20} intact", r.stdout + r.stderr


@pytest.mark.parametrize("fam", [4, 6])
def test_lost_window_update_is_recovered_by_a_probe(topology, user, fam):
    """The namespace's window update after a zero window is a bare ACK nobody retransmits: when
    the tap queue drops it (here: tc drops it on purpose), only our zero-window probe restarts
    the stream. Before the probes existed this stalled forever (1 flow in 1000 under load)."""
    t = topology
    tool = t.copy_helper("tcptool.py")
    size = 8 << 20
    t.peer_popen([env.python_for("root"), tool, "send-after-eof-server", PEER[fam], "7102",
                  "--bytes", str(size)], name="eofsrv")
    t.wait_listening("peer", 7102)
    logf = os.path.join(t.workdir, "probe.log")
    r = t.pypasta_run(["--config-net", "-d", "-l", logf, "--", env.python_for(user), tool,
                       "lost-window-update-client", PEER[fam], "7102", "--bytes", str(size),
                       "--timeout", "20"], user=user, timeout=60)
    m = re.fullmatch(rf"received {size} intact updates-dropped (\d+)", r.stdout.strip())
    assert m and int(m[1]) >= 1, r.stdout + r.stderr
    assert read_stats(logf)["tcp_window_probes"] >= 1


NO_FLOW_SCRIPT = """
import sys
from scapy.all import IP, IPv6, TCP, conf, sr1
conf.verb = 0
dst = sys.argv[1]
l3 = IPv6(dst=dst) if ":" in dst else IP(dst=dst)
for flags, seq, ack, want in (("A", 1000, 12345, ("R", 12345, 0)),
                              ("FA", 1000, 777, ("R", 777, 0)),
                              ("F", 1000, 0, ("RA", 0, 1001))):
    r = sr1(l3 / TCP(sport=40001, dport=7777, flags=flags, seq=seq, ack=ack), timeout=5)
    got = (str(r[TCP].flags), r[TCP].seq, r[TCP].ack) if r is not None else None
    print(flags, "->", got, "ok" if got == want else "WRONG")
"""


@pytest.mark.parametrize("fam", [4, 6])
def test_segment_without_flow_gets_a_reset(topology, fam):
    """RFC 9293 (and pasta): a namespace that missed our RST, or outlived a flow, is told at
    once instead of retransmitting for minutes. Segments built and parsed by scapy."""
    t = topology
    r = t.pypasta_run(["--config-net", "--", env.python_for("root"), "-c", NO_FLOW_SCRIPT,
                       PEER[fam]], timeout=60)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.endswith(" ok") for line in lines), r.stdout + r.stderr


def test_half_close_inbound(topology):
    t = topology
    tool = t.copy_helper("tcptool.py")
    py = env.python_for("root")
    ready = os.path.join(t.workdir, "hc-ready")
    script = (f"{py} {tool} send-after-eof-server 0.0.0.0 7101 --bytes {10 << 20} > {ready} & "
              "wait")
    t.pypasta(["--config-net", "-t", "7101", "--", "sh", "-c", script])
    wait_until(lambda: os.path.exists(ready) and open(ready).read().strip() == "ready", 15,
               "namespace server")
    r = t.peer([py, tool, "halfclose-client", HOST[4], "7101", "--bytes", str(10 << 20)],
               timeout=60)
    assert r.stdout.strip() == f"received {10 << 20} intact", r.stdout + r.stderr


def test_reset_reaches_the_other_side(topology, user):
    t = topology
    tool = t.copy_helper("tcptool.py")
    py_root, py = env.python_for("root"), env.python_for(user)
    # peer resets -> namespace client sees ECONNRESET
    t.peer_popen([py_root, tool, "reset-server", PEER[4], "7200"], name="rstsrv")
    t.wait_listening("peer", 7200)
    srv = t.peer_popen([py_root, tool, "expect-reset-server", PEER[4], "7201", "--timeout",
                        "10"], name="expect", stdout=subprocess.PIPE)
    assert srv.stdout.readline().strip() == b"ready"
    script = (f"{py} {tool} expect-reset-client {PEER[4]} 7200 --timeout 10 && "
              f"{py} {tool} reset-client {PEER[4]} 7201")
    r = t.pypasta_run(["--config-net", "--", "sh", "-c", script], user=user, timeout=30)
    assert r.stdout.split("\n")[0] == "reset", r.stdout + r.stderr
    # namespace resets -> peer server sees ECONNRESET
    assert srv.stdout.readline().strip() == b"reset"


def test_refused_connect_is_prompt(topology, user):
    tool = topology.copy_helper("tcptool.py")
    r = topology.pypasta_run(["--config-net", "--", env.python_for(user), tool, "refused",
                              PEER[4], "7999"], user=user)
    name, ms = r.stdout.split()
    assert name == "ECONNREFUSED", r.stdout + r.stderr
    assert int(ms) < 100


def test_sequential_short_connections_leave_nothing_behind(topology):
    t = topology
    tool = t.copy_helper("tcptool.py")
    py = env.python_for("root")
    t.peer_popen([py, tool, "echo-server", PEER[4], "7300"], name="echo")
    t.wait_listening("peer", 7300)
    logf = os.path.join(t.workdir, "seq.log")
    done = os.path.join(t.workdir, "seq-done")
    script = f"{py} {tool} sequential {PEER[4]} 7300 --count 10000 > {done}.out && " \
             f"touch {done} && exec sleep 600"
    p = t.pypasta(["--config-net", "-d", "-l", logf, "--", "sh", "-c", script])
    wait_until(lambda: os.path.exists(done) or p.poll() is not None, 240, "10000 connections")
    resets = [x for x in open(logf).read().splitlines() if "TCP: reset" in x]
    assert os.path.exists(done), open(f"{done}.out").read()[-500:] + "\n".join(resets)
    assert open(f"{done}.out").read().strip() == "done 10000"
    # pypasta's own sockets: only the tap and the epoll/signal fds remain
    wait_until(lambda: not t.host(f"ss -Htanp | grep 'pid={p.pid},' || true").stdout.strip(),
               10, "no TCP sockets left in pypasta")
    os.kill(p.pid, signal.SIGUSR2)
    wait_until(lambda: "state: " in open(logf).read(), 5, "state dump")
    stats = read_stats(logf)
    assert stats["tcp_flows"] == 0 and stats["tcp_opened"] == stats["tcp_closed"] == 10000, \
        stats
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


def test_port_spec_ranges_exclusions_and_bind_address(topology):
    t = topology
    ready = os.path.join(t.workdir, "spec-ready")
    srv = "".join(f"socat TCP4-LISTEN:{p},reuseaddr,fork SYSTEM:'echo ns{p}' & "
                  for p in (9200, 9201, 9202))
    script = (srv + "i=0; until [ $(ss -Hltn | grep -c ':920[012] ') -ge 3 ]; do i=$((i+1)); "
              f"[ $i -gt 100 ] && exit 97; sleep 0.1; done; touch {ready}; wait")
    p = t.pypasta(["--config-net", "-t", f"{t.host_ip4}/9100-9102:9200-9202,~9101",
                   "--", "sh", "-c", script])
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace servers")
    assert p.poll() is None, t.logs(p)
    ask = "socat -t 2 - TCP4:{}:{} </dev/null 2>&1; true"
    assert t.peer(ask.format(t.host_ip4, 9100)).stdout.strip() == "ns9200"
    assert t.peer(ask.format(t.host_ip4, 9102)).stdout.strip() == "ns9202"
    assert "Connection refused" in t.peer(ask.format(t.host_ip4, 9101)).stdout   # excluded
    # bound to the host's address only: not on its loopback
    assert "Connection refused" in t.host(ask.format("127.0.0.1", 9100)).stdout


def test_busy_port_is_fatal_at_start(topology):
    t = topology
    holder = t.host_popen([env.python_for("root"), "-c",
                           "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 9300));"
                           " s.listen(); print('ok', flush=True); time.sleep(60)"],
                          stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"ok"
    r = t.pypasta_run(["--config-net", "-t", "9300", "true"])
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == \
        "pypasta: Failed to bind port 9300 (Address already in use) for option '-t', exiting"


def test_loopback_client_and_gateway_mapping_over_tcp(topology):
    """With --no-splice a host loopback client reaches the namespace through the tap, seen from
    the gateway address; the namespace reaches the host's loopback via the gateway, and TCP
    DNS to --dns-forward reaches --dns-host."""
    t = topology
    t.host_popen("socat TCP4-LISTEN:9400,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo host-lo'",
                 name="lo")
    t.host_popen(["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                  "--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--user=root",
                  "--pid-file=", "--address=/example.test/198.18.0.7"], name="dnsmasq")
    t.wait_listening("host", 9400)
    t.wait_listening("host", 53)
    ready = os.path.join(t.workdir, "lo-ready")
    query = os.path.join(t.workdir, "tcpdns.py")
    with open(query, "w") as f:
        f.write("import socket, struct\n"
                "q = struct.pack('!HHHHHH', 7, 0x0100, 1, 0, 0, 0) + b'\\x07example\\x04test\\x00'"
                " + struct.pack('!HH', 1, 1)\n"
                "s = socket.create_connection(('169.254.0.1', 53), timeout=3)\n"
                "s.sendall(struct.pack('!H', len(q)) + q)\n"
                "n = struct.unpack('!H', s.recv(2))[0]; a = b''\n"
                "while len(a) < n: a += s.recv(n - len(a))\n"
                "print('dns', a[-4:].hex())\n")
    script = (f"echo x | socat -t 2 - TCP4:{t.gw4}:9400; {env.python_for('root')} {query}; "
              "socat TCP4-LISTEN:9401,reuseaddr,fork SYSTEM:'echo from $SOCAT_PEERADDR' & "
              "i=0; until ss -Hltn 'sport = :9401' | grep -q .; do i=$((i+1)); "
              f"[ $i -gt 100 ] && exit 97; sleep 0.1; done; touch {ready}; wait")
    p = t.pypasta(["--config-net", "--no-splice", "-t", "9401", "--dns-forward", "169.254.0.1",
                   "--dns-host", "127.0.0.1", "--", "sh", "-c", script],
                  stdout=subprocess.PIPE)
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace server")
    assert p.poll() is None, t.logs(p)
    r = t.host("socat -t 2 - TCP4:127.0.0.1:9401 </dev/null")
    assert r.stdout.strip() == f"from {t.gw4}"
    p.send_signal(signal.SIGTERM)
    out = p.stdout.read().decode().split("\n")
    assert out[0] == "host-lo" and out[1] == "dns c6120007", out


def test_outbound_address_and_guest_mapping_over_tcp(topology, user):
    t = topology
    t.host("ip addr add 198.51.100.3/24 dev eth0 nodad")
    t.peer_popen(f"socat TCP4-LISTEN:9500,bind={PEER[4]},reuseaddr,fork "
                 "SYSTEM:'echo $SOCAT_PEERADDR'", name="whoami")
    t.host_popen(f"socat TCP4-LISTEN:9501,bind={t.host_ip4},reuseaddr,fork "
                 "SYSTEM:'echo own-address'", name="own")
    t.wait_listening("peer", 9500)
    t.wait_listening("host", 9501)
    script = (f"socat -t 2 - TCP4:{PEER[4]}:9500 </dev/null; "
              "socat -t 2 - TCP4:198.51.100.200:9501 </dev/null")
    r = t.pypasta_run(["--config-net", "-o", "198.51.100.3", "--map-guest-addr",
                       "198.51.100.200", "--", "sh", "-c", script], user=user)
    assert r.stdout.split() == ["198.51.100.3", "own-address"], r.stdout + r.stderr
