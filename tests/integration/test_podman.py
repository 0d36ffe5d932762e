"""Podman 4.3.1 with `network_cmd_path` = pypasta-slirp4netns, root and rootless (issue 7).

Podman itself builds the helper's argv (`--disable-host-loopback --mtu=65520 --enable-sandbox
--enable-seccomp --enable-ipv6 -c -e 3 -r 4 --netns-type=path ... tap0`, plus `--api-socket`
for port_handler=slirp4netns), hands it the exit and ready pipes, and publishes ports either
with rootlessport (port_handler=rootlesskit, the default) or through our API socket. See
tests/helpers/podman.py for how Podman runs on the hermetic topology.
"""

from __future__ import annotations

import pytest

from helpers.podman import IMAGE, INDEX, Podman
from helpers.proc import wait_until

PEER4 = "198.18.0.1"


@pytest.fixture
def podman(topology, user):
    p = Podman(topology, user)
    yield p
    p.cleanup()
    wait_until(lambda: not p.live_helpers(), 15, "no pypasta-slirp4netns left")


def _ip_json(p: Podman, network: str, what: list[str]):
    r = p.run(["run", "--rm", f"--network={network}", IMAGE, "ip", *what])
    return r.stdout


def test_container_addresses_and_peer(podman):
    """10.0.2.100/24 via 10.0.2.2 and an fd00::/64 address; the peer is reachable; the helper
    is gone once the container is."""
    p = podman
    p.t.peer_popen(["socat", f"TCP4-LISTEN:7070,bind={PEER4},fork,reuseaddr",
                    "SYSTEM:echo peer"], name="peer-tcp")
    p.t.wait_listening("peer", 7070)
    script = f"ip -4 addr show tap0; ip -6 addr show tap0; ip route; nc {PEER4} 7070 </dev/null"
    out = p.run(["run", "--rm", "--network=slirp4netns", IMAGE, "sh", "-c", script]).stdout
    assert "inet 10.0.2.100/24" in out
    assert "inet6 fd00::" in out
    assert "default via 10.0.2.2 dev tap0" in out
    assert out.rstrip().endswith("peer")
    assert len(p.helpers()) == 1
    wait_until(lambda: not p.live_helpers(), 10, "helper gone after the container")


def test_cidr_and_mtu_options(podman):
    out = podman.run(["run", "--rm", "--network=slirp4netns:cidr=10.0.3.0/24,mtu=1500,"
                      "enable_ipv6=false", IMAGE, "sh", "-c", "ip addr show tap0; ip route"]).stdout
    assert "inet 10.0.3.100/24" in out and "mtu 1500" in out
    assert "default via 10.0.3.2" in out and "inet6 fd00" not in out


@pytest.mark.parametrize("handler", ["rootlesskit", "slirp4netns"])
def test_published_tcp_and_udp_ports(podman, handler):
    """-p 127.0.0.1:P:80 reaches busybox httpd, -p ...:53/udp answers (with the slirp4netns
    handler too, where slirp4netns itself drops the replies), and stopping the container
    ends the helper."""
    p = podman
    base = 7080 if handler == "rootlesskit" else 7090
    cmd = ("socat UDP4-LISTEN:53,fork,reuseaddr PIPE & "
           "exec httpd -f -p 80 -h /var/www")
    p.run(["run", "-d", "--name", f"web-{handler}",
           f"--network=slirp4netns:port_handler={handler}",
           "-p", f"127.0.0.1:{base}:80", "-p", f"127.0.0.1:{base + 1}:53/udp",
           IMAGE, "sh", "-c", cmd])

    def served():
        r = p.t.host(["curl", "-s", "--max-time", "2", f"http://127.0.0.1:{base}/"],
                     check=False)
        return r.stdout == INDEX
    wait_until(served, 20, "httpd through the published port")

    def udp_echo():
        r = p.t.host(["socat", "-T", "2", "-", f"UDP4:127.0.0.1:{base + 1}"], input="q\n",
                     check=False)
        return r.stdout == "q\n"
    wait_until(udp_echo, 20, "UDP echo through the published port")
    helpers = p.live_helpers()
    assert len(helpers) == 1
    p.run(["stop", "-t", "1", f"web-{handler}"])
    wait_until(lambda: not p.live_helpers(), 15, "helper gone after podman stop")


def test_allow_host_loopback(podman):
    """allow_host_loopback=true: 10.0.2.2 is the host's 127.0.0.1 over TCP and UDP; without it
    the connection is refused with "Network is unreachable"."""
    p = podman
    t = p.t
    t.host_popen(["socat", "TCP4-LISTEN:7100,bind=127.0.0.1,fork,reuseaddr",
                  "SYSTEM:echo host-tcp"], name="host-tcp")
    t.host_popen(["socat", "UDP4-LISTEN:7101,bind=127.0.0.1,fork,reuseaddr", "PIPE"],
                 name="host-udp")
    t.wait_listening("host", 7100)
    t.wait_listening("host", 7101, proto="udp")
    script = ("nc 10.0.2.2 7100 </dev/null; "
              "echo udp | socat -T 3 - UDP4:10.0.2.2:7101")
    out = p.run(["run", "--rm", "--network=slirp4netns:allow_host_loopback=true", IMAGE,
                 "sh", "-c", script]).stdout
    assert out == "host-tcp\nudp\n"
    r = p.run(["run", "--rm", "--network=slirp4netns", IMAGE, "sh", "-c",
               "nc 10.0.2.2 7100 </dev/null"], check=False)
    assert r.returncode != 0 and "Network is unreachable" in r.stdout + r.stderr


@pytest.mark.rootless
def test_rootless_bridge_network_through_the_helper(topology):
    """A rootless bridge network (rootless Podman only): Podman's rootless-netns is connected
    by our helper (`-c -r 3 --netns-type=path .../rootless-netns-...`), and its containers
    reach the peer."""
    p = Podman(topology, "rootless")
    p.t.peer_popen(["socat", f"TCP4-LISTEN:7110,bind={PEER4},fork,reuseaddr",
                    "SYSTEM:echo peer-bridge"], name="peer-tcp")
    p.t.wait_listening("peer", 7110)
    p.run(["network", "create", "pypasta-bridge"])
    try:
        out = p.run(["run", "--rm", "--network=pypasta-bridge", IMAGE, "sh", "-c",
                     f"nc {PEER4} 7110 </dev/null"]).stdout
        assert out == "peer-bridge\n"
        assert p.helpers()
    finally:
        p.run(["network", "rm", "-f", "pypasta-bridge"], check=False)
        p.cleanup()
    # The rootless-netns helper is ended by Podman (SIGTERM) with the last container, or
    # with the pause process that cleanup() kills.
    wait_until(lambda: not p.live_helpers(), 15, "no pypasta-slirp4netns left")
