"""TCP loopback bypass (issue 5, first part): `-T` ports and host loopback clients of `-t` ports
are joined socket to socket with splice(2); the tap carries none of it.

Checked with socat and tests/helpers/tcptool.py: 256 MiB files each way intact (socat), 1 GiB
streams each way with identical SHA-256 (tcptool stream modes), the source address the namespace
service sees, half-close and resets carried across, and `--no-splice`.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from helpers import env, read_stats, sha256_file, wait_until

SIZE = 256 << 20


@pytest.fixture
def src(topology):
    path = os.path.join(topology.workdir, "src.bin")
    subprocess.run(["head", "-c", str(SIZE), "/dev/urandom"], stdout=open(path, "wb"),
                   check=True)
    os.chmod(path, 0o644)
    return path, sha256_file(path)


def test_splice_both_ways_for_T_and_loopback_t_clients(topology, src, user):
    t = topology
    path, digest = src
    w = t.workdir
    logf = os.path.join(w, f"splice-{user}.log")
    t.host_popen(f"socat -u OPEN:{path} TCP4-LISTEN:9600,bind=127.0.0.1,reuseaddr", name="s1")
    t.host_popen(f"socat -u TCP6-LISTEN:9602,bind=[::1],reuseaddr CREATE:{w}/T-up.bin",
                 name="s2")
    t.wait_listening("host", 9600)
    t.wait_listening("host", 9602)
    ready = os.path.join(w, f"ready-{user}")
    script = (f"socat -u OPEN:{path} TCP4-LISTEN:9601,reuseaddr & "
              f"socat -u TCP6-LISTEN:9603,reuseaddr CREATE:{w}/t-up.bin & "
              f"socat -u TCP4:127.0.0.1:9600 CREATE:{w}/T-down.bin && "
              f"socat -u OPEN:{path} TCP6:[::1]:9602 && touch {ready} && wait && exec sleep 60")
    p = t.pypasta(["--config-net", "-d", "-l", logf, "-t", "9601,9603", "-T", "9600,9602",
                   "--", "sh", "-c", script], user=user)
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 60, "-T transfers")
    assert os.path.exists(ready), open(logf).read()[-2000:]
    t.host(f"socat -u TCP4:127.0.0.1:9601 CREATE:{w}/t-down.bin", timeout=60)
    t.host(f"socat -u OPEN:{path} TCP6:[::1]:9603", timeout=60)
    wait_until(lambda: os.path.exists(f"{w}/t-up.bin") and
               os.path.getsize(f"{w}/t-up.bin") == SIZE, 30, "namespace stored the upload")
    wait_until(lambda: os.path.getsize(f"{w}/T-up.bin") == SIZE, 30, "host stored the upload")
    for name in ("T-down.bin", "T-up.bin", "t-down.bin", "t-up.bin"):
        assert sha256_file(os.path.join(w, name)) == digest, name
    os.kill(p.pid, signal.SIGUSR2)
    wait_until(lambda: "state: " in open(logf).read(), 5, "state dump")
    st = read_stats(logf)
    assert st["splice_opened"] == 4 and st["tcp_opened"] == 0, st   # nothing on the tap
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


GIB = 1 << 30


def _result(line: str, verb: str):
    words = line.split()
    assert len(words) == 3 and words[0] == verb and words[1] == str(GIB), line
    return words[2]


def test_one_gib_each_spliced_direction(topology, user):
    """-T (namespace loopback client -> host loopback server) and -t with a host loopback
    client (-> namespace server), 1 GiB each way, compared by SHA-256 at both ends."""
    t = topology
    tool = t.copy_helper("tcptool.py")
    py, py_ns = env.python_for("root"), env.python_for(user)
    w = t.workdir
    size = ["--bytes", str(GIB), "--timeout", "120"]
    down = t.host_popen([py, tool, "stream-server", "127.0.0.1", "9650", *size, "--send"],
                        name="T-down")
    up = t.host_popen([py, tool, "stream-server", "::1", "9651", *size, "--recv"], name="T-up")
    t.wait_listening("host", 9650)
    t.wait_listening("host", 9651)
    opts = " ".join(size)
    script = (f"{py_ns} {tool} stream-server 0.0.0.0 9652 {opts} --send > {w}/t-down.ns & "
              f"{py_ns} {tool} stream-server :: 9653 {opts} --recv > {w}/t-up.ns & "
              f"{py_ns} {tool} stream-client 127.0.0.1 9650 {opts} --recv > {w}/T-down.ns && "
              f"{py_ns} {tool} stream-client ::1 9651 {opts} --send > {w}/T-up.ns && "
              f"touch {w}/T-done && wait")
    logf = os.path.join(w, f"gib-{user}.log")
    p = t.pypasta(["--config-net", "-d", "-l", logf, "-t", "9652,9653", "-T", "9650,9651",
                   "--", "sh", "-c", script], user=user)

    def lines(name):
        path = os.path.join(w, name)
        return open(path).read().split("\n") if os.path.exists(path) else []

    wait_until(lambda: "ready" in lines("t-down.ns") and "ready" in lines("t-up.ns")
               or p.poll() is not None, 15, "namespace servers")
    hd = t.host([py, tool, "stream-client", "127.0.0.1", "9652", *size, "--recv"], timeout=150)
    hu = t.host([py, tool, "stream-client", "::1", "9653", *size, "--send"], timeout=150)
    wait_until(lambda: os.path.exists(f"{w}/T-done") or p.poll() is not None, 150,
               "-T transfers")
    assert p.wait(timeout=30) == 0, open(logf).read()[-2000:]
    down.wait(timeout=10)
    up.wait(timeout=10)
    # -T: host server -> namespace client, namespace client -> host server
    assert _result(t.logs(down)[0].split("\n")[1], "sent") == \
        _result(lines("T-down.ns")[0], "received")
    assert _result(lines("T-up.ns")[0], "sent") == _result(t.logs(up)[0].split("\n")[1],
                                                            "received")
    # -t from the host's loopback: namespace server -> host client, and back
    assert _result(lines("t-down.ns")[1], "sent") == _result(hd.stdout.strip(), "received")
    assert _result(hu.stdout.strip(), "sent") == _result(lines("t-up.ns")[1], "received")
    st = read_stats(logf)
    assert st["splice_opened"] == 4 and st["tcp_opened"] == 0, st   # nothing on the tap


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "no-splice"])
def test_source_address_seen_by_the_namespace_service(topology, splice):
    """Spliced, the service sees its own address (pasta connects to it from inside);
    with --no-splice the connection crosses the tap from the gateway (host loopback map)."""
    t = topology
    ready = os.path.join(t.workdir, "ready")
    script = ("socat TCP4-LISTEN:9700,reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR' & "
              "i=0; until ss -Hltn 'sport = :9700' | grep -q .; do i=$((i+1)); "
              f"[ $i -gt 100 ] && exit 97; sleep 0.1; done; touch {ready}; wait")
    args = ["--config-net", "-t", "9700"] + ([] if splice else ["--no-splice"])
    p = t.pypasta([*args, "--", "sh", "-c", script])
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace server")
    r = t.host("socat -t 2 - TCP4:127.0.0.1:9700 </dev/null")
    assert r.stdout.strip() == (t.host_ip4 if splice else t.gw4)


def test_half_close_and_reset_across_splice(topology):
    t = topology
    tool = t.copy_helper("tcptool.py")
    py = env.python_for("root")
    t.host_popen([py, tool, "send-after-eof-server", "127.0.0.1", "9800", "--bytes",
                  str(10 << 20)], name="eof")
    t.host_popen([py, tool, "reset-server", "127.0.0.1", "9801"], name="rst")
    t.wait_listening("host", 9800)
    t.wait_listening("host", 9801)
    script = (f"{py} {tool} halfclose-client 127.0.0.1 9800 --bytes {10 << 20}; "
              f"{py} {tool} expect-reset-client 127.0.0.1 9801 --timeout 10")
    r = t.pypasta_run(["--config-net", "-T", "9800,9801", "--", "sh", "-c", script],
                      timeout=60)
    assert r.stdout.split("\n")[:2] == [f"received {10 << 20} intact", "reset"], \
        r.stdout + r.stderr


def test_udp_loopback_paths_U_and_loopback_u_clients(topology, user):
    """-U: namespace loopback client -> host loopback echo; -u from a host loopback client ->
    namespace echo; zero-length datagrams and bursts included, nothing on the tap."""
    t = topology
    w = t.workdir
    echo = t.copy_helper("udpecho.py")
    py_root, py = env.python_for("root"), env.python_for(user)
    for addr, port in (("127.0.0.1", 9910), ("::1", 9911)):
        t.host_popen([py_root, echo, "server", addr, str(port)], name="echo")
    wait_until(lambda: len(t.host("ss -Hlun 'sport >= :9910 and sport <= :9911'")
                           .stdout.splitlines()) == 2, 10, "host echo servers")
    logf = os.path.join(w, f"udpsplice-{user}.log")
    ready = os.path.join(w, f"uready-{user}")
    script = (f"{py} {echo} server {t.host_ip4} 9912 > {ready}.4 & "
              f"{py} {echo} server {t.host_ip6} 9913 > {ready}.6 & "
              f"{py} {echo} client 127.0.0.1 9910 --count 2000 --max 9000 --seed 1 && "
              f"{py} {echo} client ::1 9911 --count 2000 --max 9000 --seed 2 && "
              f"touch {ready} && wait")
    p = t.pypasta(["--config-net", "-d", "-l", logf, "-U", "9910,9911", "-u", "9912,9913",
                   "--", "sh", "-c", script], user=user, stdout=subprocess.PIPE)
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 60, "-U clients")
    assert os.path.exists(ready), open(logf).read()[-2000:]
    for port in (9912, 9913):
        host = "127.0.0.1" if port == 9912 else "::1"
        r = t.host([py_root, echo, "client", host, str(port), "--count", "2000", "--max",
                    "9000", "--seed", "3"], timeout=60)
        assert '"errors": []' in r.stdout and '"ok": 2000' in r.stdout, r.stdout
    os.kill(p.pid, signal.SIGUSR2)
    wait_until(lambda: "state: " in open(logf).read(), 5, "state dump")
    st = read_stats(logf)
    assert st["udp_to_host"] == 0 and st["udp_to_ns"] == 0, st     # not via the tap
    assert st["udp_splice_datagrams"] >= 4 * 2 * 2000, st
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0


@pytest.mark.parametrize("lo", [False, True], ids=["default", "host-lo-to-ns-lo"])
def test_namespace_loopback_service_private_unless_host_lo_to_ns_lo(topology, lo):
    """A host loopback client reaches the namespace's own address, so a service bound only to
    the namespace's 127.0.0.1 is private, unless --host-lo-to-ns-lo (TCP and UDP)."""
    t = topology
    ready = os.path.join(t.workdir, f"lo-{lo}")
    script = ("socat TCP4-LISTEN:9730,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo tcp-lo' & "
              "socat UDP4-RECVFROM:9731,bind=127.0.0.1,fork "
              "SYSTEM:'echo udp-lo; exec cat >/dev/null' & "
              "i=0; until [ $(ss -Hln | grep -c '127.0.0.1:973[01] ') -ge 2 ]; do i=$((i+1)); "
              f"[ $i -gt 100 ] && exit 97; sleep 0.1; done; touch {ready}; wait")
    args = ["--config-net", "-t", "9730", "-u", "9731"] + (["--host-lo-to-ns-lo"] if lo else [])
    p = t.pypasta([*args, "--", "sh", "-c", script])
    wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 15, "namespace servers")
    assert p.poll() is None
    tcp = t.host("socat -t 2 - TCP4:127.0.0.1:9730 </dev/null 2>/dev/null; true").stdout.strip()
    udp = t.host("echo x | socat -t 1 - UDP4:127.0.0.1:9731 2>/dev/null; true").stdout.strip()
    assert (tcp, udp) == (("tcp-lo", "udp-lo") if lo else ("", ""))
