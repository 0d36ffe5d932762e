"""Podman 4.3.1 with `network_backend = "cni"` and a conflist whose plugin is pypasta-cni.

Podman's libcni runs VERSION, then ADD with the container's netns, `eth0` and the `-p`
mappings as runtimeConfig.portMappings; DEL when the container stops. Rootless, the plugin runs
as uid 0 in Podman's user namespace inside the rootless-netns, which pypasta-slirp4netns
connects (so the container's traffic crosses two pypasta translators).
"""

from __future__ import annotations

import json
import os

import pytest

from helpers.podman import IMAGE, INDEX, Podman
from helpers.proc import alive, wait_until

PEER4 = "198.18.0.1"


def _attachments(p: Podman) -> list[dict]:
    d = p.cni_state
    if not os.path.isdir(d):
        return []
    return [json.load(open(os.path.join(d, n))) for n in sorted(os.listdir(d))
            if n.endswith(".json")]


@pytest.fixture
def podman_cni(topology, user):
    p = Podman(topology, user, cni=True)
    yield p
    p.cleanup()
    wait_until(lambda: not any(alive(a["pid"]) for a in _attachments(p)), 15,
               "no pypasta-cni translator left")


def test_container_on_a_pypasta_cni_network(podman_cni):
    """The container gets an interface from the plugin and reaches the peer; stopping it
    removes the translator and its state."""
    p = podman_cni
    p.t.peer_popen(["socat", f"TCP4-LISTEN:7140,bind={PEER4},fork,reuseaddr",
                    "SYSTEM:echo peer-cni"], name="peer-tcp")
    p.t.wait_listening("peer", 7140)
    p.run(["run", "-d", "--name", "cni-ctr", "--network", "pypasta", IMAGE, "sleep", "1000"])
    (att,) = _attachments(p)
    assert att["ifname"] == "eth0" and alive(att["pid"])
    out = p.run(["exec", "cni-ctr", "sh", "-c",
                 f"ip -4 addr show eth0; nc {PEER4} 7140 </dev/null"]).stdout
    assert "inet " in out and out.rstrip().endswith("peer-cni")
    p.run(["stop", "-t", "0", "cni-ctr"])
    wait_until(lambda: not alive(att["pid"]), 15, "translator stopped with the container")
    assert _attachments(p) == []


def test_published_port_reaches_httpd(podman_cni):
    """-p 127.0.0.1:P:80 reaches busybox httpd in the container. Rootless: rootlessport on the
    host, pypasta-cni's listener in the rootless-netns. Rootful: Podman holds the host port
    itself, so the plugin's iptables REDIRECT sends it to pypasta; the rules go with DEL."""
    p = podman_cni
    p.run(["run", "-d", "--name", "cni-web", "--network", "pypasta",
           "-p", "127.0.0.1:7141:80", "-p", "7142:53/udp", IMAGE, "sh", "-c",
           "socat UDP4-LISTEN:53,fork,reuseaddr PIPE & exec httpd -f -p 80 -h /var/www"])

    def served():
        r = p.t.host(["curl", "-s", "--max-time", "2", "http://127.0.0.1:7141/"], check=False)
        return r.stdout == INDEX
    wait_until(served, 20, "httpd through the published port")

    def udp_echo():                 # no hostIP: from the peer, to the host's address
        r = p.t.peer(["socat", "-T", "2", "-", f"UDP4:{p.t.host_ip4}:7142"], input="u\n",
                     check=False)
        return r.stdout == "u\n"
    wait_until(udp_echo, 20, "UDP echo through the published port from the peer")
    (att,) = _attachments(p)
    p.run(["stop", "-t", "0", "cni-web"])
    wait_until(lambda: not alive(att["pid"]), 15, "translator stopped with the container")
    assert _attachments(p) == []
    if p.user == "root":
        assert att["rules"]
        nat = p.t.host(["iptables", "-w", "-t", "nat", "-S"]).stdout
        assert "pypasta-cni" not in nat
