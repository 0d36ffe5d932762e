"""pasta 2026's control socket end to end (issue 16): `-c PATH` on pypasta driven by the reference
`pesto`, and `pypasta-pesto` driving the reference pasta, on the hermetic topology.

The forwards the control socket adds are real listeners: the peer ("the internet") connects to
the host namespace's address, and a target-address rule (`0.0.0.0/PORT:TADDR/TPORT`, Podman's
form for containers on a rootless-netns bridge) delivers to an address inside the namespace
other than its own (on its loopback interface here), keeping the client's address: the namespace's service sees the peer's
198.51.100.1, not a translated one.
"""

from __future__ import annotations

import os
import signal

from helpers import env, wait_until

PESTO = "/opt/passt-2026/pesto"
PASTA = "/opt/passt-2026/pasta"
TADDR = "10.89.0.2"         # a "container" address inside the namespace, not its own


def _ns_services(w: str) -> str:
    """Namespace script: TADDR on the loopback interface (any local address is delivered,
    and this kernel has no dummy module), TCP and UDP services on it that answer with the
    client's address, then a ready file."""
    return (f"ip addr add {TADDR}/32 dev lo || exit 1; "
            f"socat TCP4-LISTEN:80,bind={TADDR},reuseaddr,fork "
            "SYSTEM:'echo tcp $SOCAT_PEERADDR' & "
            f"socat UDP4-RECVFROM:81,bind={TADDR},reuseaddr,fork "
            "SYSTEM:'read l; echo udp $SOCAT_PEERADDR' & "
            f"socat TCP4-LISTEN:9702,reuseaddr,fork SYSTEM:'echo own $SOCAT_PEERADDR' & "
            f"while ! ss -Hltn 'sport = :80' | grep -q . || ! ss -Hlun 'sport = :81' | "
            "grep -q .; do sleep 0.05; done; "
            f"touch {w}/ns-ready; exec sleep 600")


def _peer_tcp(t, port: int) -> str:
    return t.peer(f"socat -T 5 - TCP4:198.51.100.2:{port},connect-timeout=5",
                  timeout=10).stdout.strip()


def _peer_udp(t, port: int) -> str:
    return t.peer(f"echo x | socat -t 5 -T 5 - UDP4:198.51.100.2:{port}",
                  timeout=10).stdout.strip()


def test_reference_pesto_edits_pypasta_and_target_addresses_keep_the_client(topology, user):
    t = topology
    w = t.workdir
    sock = os.path.join(w, f"pasta-{user}.sock")
    logf = os.path.join(w, f"pypasta-{user}.log")
    p = t.pypasta(["--config-net", "-d", "-l", logf, "-c", sock, "-t", "9702", "-u", "none",
                   "-T", "none", "-U", "none", "--", "sh", "-c", _ns_services(w)], user=user)
    wait_until(lambda: os.path.exists(f"{w}/ns-ready") or p.poll() is not None, 20,
               "namespace services")
    assert p.poll() is None, open(logf).read()[-2000:]
    assert _peer_tcp(t, 9702) == "own 198.51.100.1"           # -t from the command line

    show = t.host([PESTO, sock], user=user)
    assert show.stdout == (f"passt/pasta configuration ({sock})\n  HOST\n"
                           "    TCP [*]:9702  =>  9702 \n  SPLICE\n")
    add = t.host([PESTO, "-A", "-t", f"0.0.0.0/9700:{TADDR}/80",
                  "-u", f"0.0.0.0/9701:{TADDR}/81", sock], user=user)
    assert add.returncode == 0 and add.stderr == ""
    t.wait_listening("host", 9700)
    t.wait_listening("host", 9701, "udp")
    # The client's real address arrives at the target address.
    assert _peer_tcp(t, 9700) == "tcp 198.51.100.1"
    assert _peer_udp(t, 9701) == "udp 198.51.100.1"
    # From the host's loopback: never spliced; the namespace sees the host-loopback mapping.
    out = t.host("socat -T 5 - TCP4:127.0.0.1:9700,connect-timeout=5", timeout=10).stdout
    assert out.strip().startswith("tcp ") and "127.0.0.1" not in out
    # Delete (pesto -D matches rules byte for byte); the port stops listening.
    rm = t.host([PESTO, "-D", "-t", f"0.0.0.0/9700:{TADDR}/80", sock], user=user)
    assert rm.returncode == 0, rm.stderr
    wait_until(lambda: not t.host("ss -Hltn 'sport = :9700'").stdout.strip(), 5,
               "9700 closed")
    assert _peer_udp(t, 9701) == "udp 198.51.100.1"          # the other rule stays
    # A refused update (an exact duplicate conflicts) changes nothing and is logged.
    t.host([PESTO, "-A", "-t", "9702", sock], user=user, check=False)
    assert _peer_tcp(t, 9702) == "own 198.51.100.1"
    log = open(logf).read()
    assert "Accepted configuration client, PID" in log
    assert "New forwarding rules for HOST:" in log
    assert f"    UDP [0.0.0.0]:9701  =>  {TADDR}:81 " in log
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    assert os.path.exists(sock)                     # as pasta: never unlinked


def test_pypasta_pesto_drives_the_reference_pasta(topology):
    t = topology
    w = t.workdir
    sock = os.path.join(w, "ref.sock")
    assert os.path.exists(PASTA), env.FIX
    p = t.host_popen([PASTA, "-f", "--config-net", "-c", sock, "-t", "9720", "-u", "none",
                      "-T", "none", "-U", "none", "--", "sh", "-c",
                      f"socat TCP4-LISTEN:9721,reuseaddr,fork SYSTEM:'echo ref' & "
                      f"while ! ss -Hltn 'sport = :9721' | grep -q .; do sleep 0.05; done; "
                      f"touch {w}/ref-ready; exec sleep 600"], name="pasta-2026",
                     user="rootless")     # as root, pasta 2026 switches to nobody and fails
    wait_until(lambda: os.path.exists(f"{w}/ref-ready") or p.poll() is not None, 20,
               "reference pasta")
    assert p.poll() is None, t.logs(p)
    pesto = [env.python_for("rootless"), "-m", "pasta.front.pesto"]
    r = t.host(pesto + ["-s", "-A", "-t", "9721", sock], user="rootless")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f"Previous configuration ({sock})\n  HOST\n    TCP [*]:9720  =>  9720 \n"
                        f"  SPLICE\nUpdated configuration ({sock})\n  HOST\n"
                        "    TCP [*]:9720  =>  9720 \n    TCP [*]:9721  =>  9721 \n  SPLICE\n")
    t.wait_listening("host", 9721)
    assert _peer_tcp(t, 9721) == "ref"
    r = t.host(pesto + [sock], user="rootless")
    assert "    TCP [*]:9721  =>  9721 \n" in r.stdout
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
