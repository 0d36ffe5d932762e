"""Debian 13's Podman 5.4, rootless, with pypasta as its `pasta` (podman5.md section 1).

Podman runs in a Debian 13 tree entered inside the topology's host namespace
(tests/helpers/trixie.py). contrib/podman/install-helpers.sh puts a `pasta` that is pypasta first
in `helper_binaries_dir`, exactly as for a user; the tree's pypasta is this checkout's sources.
The peer plays the internet (HTTP, UDP echo and DNS on 198.18.0.1 and 2001:db8:ffff::1, the
test domain resolving to 198.19.0.1 and 2001:db8:1::1), and the host namespace has a stub
resolver on 127.0.0.53, the only nameserver of the tree's resolv.conf: Podman drops it from
containers' resolv.conf, so names resolve through pypasta's --dns-forward 169.254.1.1.

Podman runs pasta synchronously (it must exit 0 once the namespace is configured and the ports
bound), never signals a per-container pasta (it must exit when Podman deletes the netns file),
and sends SIGTERM to the rootless-netns one when the last container on a bridge network leaves.
"""

from __future__ import annotations

import pytest

from helpers.proc import wait_until
from helpers.trixie import HELPERS, IMAGE, INDEX, PeerServices, Trixie, peer_services

pytestmark = pytest.mark.rootless       # Podman runs as the test user

IDLE = ["sleep", "600"]
WEB = ["sh", "-c", "socat UDP6-LISTEN:5354,fork,reuseaddr PIPE & exec httpd -f -p 80 -h /var/www"]
PUB_TCP, PUB_UDP = 8081, 5354


@pytest.fixture
def tx(topology):
    tx = Trixie(topology)
    try:
        tx.import_image()
        yield tx
    finally:
        tx.close()


@pytest.fixture
def svc(topology) -> PeerServices:
    return peer_services(topology)


def run_d(tx: Trixie, name: str, *opts: str, cmd=IDLE) -> None:
    tx.podman("run", "-d", "--name", name, *opts, IMAGE, *cmd)


def sh(tx: Trixie, name: str, script: str, check: bool = True, timeout: float = 30.0):
    return tx.podman("exec", name, "sh", "-c", script, check=check, timeout=timeout)


def pasta_of(tx: Trixie, name: str):
    """(argv, daemon) of the pypasta that serves container `name` (matched by its netns)."""
    netns = tx.podman("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", name
                      ).stdout.strip()
    argvs = [a for a in tx.calls() if netns and netns in a]
    assert len(argvs) == 1, f"pypasta runs for {name} ({netns}): {argvs}"
    procs = tx.pasta_procs(argvs[0])
    assert len(procs) == 1, f"live pypasta for {name}: {procs}"
    return argvs[0], procs[0]


# --------------------------------------------------------------------------- discovery

def test_podman_finds_pypasta_through_install_helpers(tx):
    """install-helpers.sh's directory wins over /usr/bin/pasta: `podman info` probes it with
    `--version` and shows pypasta; its `pesto` is pypasta-pesto."""
    out = tx.podman("info", "--format", "{{.Host.Pasta.Executable}}|{{.Host.Pasta.Version}}"
                    ).stdout
    exe, version = out.split("|", 1)
    assert exe == f"{HELPERS}/pasta" and version.startswith("pypasta "), out
    assert not tx.calls(), "a --version probe is not a run"
    out = tx.run([f"{HELPERS}/pesto", "--version"]).stdout
    assert out.startswith("pypasta-pesto "), out


# --------------------------------------------------------------------------- default network

def test_container_reaches_the_peer_over_tcp_udp_and_dns(tx, svc):
    """The default network: HTTP (1 MiB, hashed), UDP echo and DNS, over IPv4 and IPv6; DNS
    through --dns-forward reaches the host's loopback stub resolver."""
    run_d(tx, "plain")
    argv, daemon = pasta_of(tx, "plain")
    assert argv[0] == "--config-net" and "--dns-forward" in argv and "--quiet" in argv, argv
    assert argv[argv.index("--map-guest-addr") + 1] == "169.254.1.2", argv

    for url in (f"http://{svc.peer4}:{svc.http_port}/blob",
                f"http://[{svc.peer6}]:{svc.http_port}/blob"):
        out = sh(tx, "plain", f"timeout 20 wget -q -O - {url} | sha256sum").stdout
        assert out.split()[0] == svc.blob_sha256, url
    for fam, addr in (("UDP4", svc.peer4), ("UDP6", f"[{svc.peer6}]")):
        out = sh(tx, "plain", f"echo hello-{fam} | socat -T 5 - {fam}:{addr}:{svc.udp_port}")
        assert out.stdout == f"hello-{fam}\n", out.stderr
    resolv = tx.podman("exec", "plain", "cat", "/etc/resolv.conf").stdout
    assert resolv.split("\n")[0] == "nameserver 169.254.1.1", resolv
    assert "127.0.0.53" not in resolv
    # Through pypasta's DNS forwarder (to 127.0.0.53, on to the peer), then straight to the
    # peer's server over IPv4 and over IPv6; A and AAAA each time.
    for server in ("169.254.1.1", svc.peer4, svc.peer6):
        out = sh(tx, "plain", f"nslookup {svc.domain} {server}").stdout
        assert f"Address: {svc.name4}" in out and f"Address: {svc.name6}" in out, (server, out)
    assert daemon.alive()


@pytest.mark.parametrize("kind", ["raw", "dgram"])
def test_ping_the_peer(tx, svc, kind):
    """ICMP echo over IPv4 and IPv6 with iputils ping, which verifies checksums: through a raw
    socket (NET_RAW, ping sockets disallowed) or a ping socket (no NET_RAW, Podman's default
    ping_group_range "0 0")."""
    opts = (["--cap-add", "NET_RAW", "--sysctl", "net.ipv4.ping_group_range=1 0"]
            if kind == "raw" else ["--cap-drop", "NET_RAW"])
    run_d(tx, "pinger", *opts)
    for fam, addr in (("-4", svc.peer4), ("-6", svc.peer6)):
        r = sh(tx, "pinger", f"iping {fam} -c 2 -i 0.2 -W 5 {addr}", check=False)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and " 0% packet loss" in out, out
        assert "BAD CHECKSUM" not in out and "corrupted" not in out, out


# --------------------------------------------------------------------------- published ports

def test_published_tcp_and_udp_ports_answer_from_the_host_and_the_peer(tx, svc):
    """-p 8081:80 -p 5354:5354/udp: Podman passes `-t 8081-8081:80-80` / `-u 5354-5354:...`;
    the container answers from the host namespace's loopback and address (IPv4 and IPv6) and from
    the peer."""
    t = tx.t
    run_d(tx, "web", "-p", f"{PUB_TCP}:80", "-p", f"{PUB_UDP}:{PUB_UDP}/udp", cmd=WEB)
    argv, _ = pasta_of(tx, "web")
    assert argv[argv.index("-t") + 1] == f"{PUB_TCP}-{PUB_TCP}:80-80", argv
    assert argv[argv.index("-u") + 1] == f"{PUB_UDP}-{PUB_UDP}:{PUB_UDP}-{PUB_UDP}", argv
    wait_until(lambda: "5354" in sh(tx, "web", "netstat -lun", check=False).stdout, 10,
               "the container's UDP echo")
    wait_until(lambda: ":80 " in sh(tx, "web", "netstat -ltn", check=False).stdout, 10,
               "the container's httpd")
    clients = [("host", "127.0.0.1"), ("host", "[::1]"), ("host", t.host_ip4),
               ("host", f"[{t.host_ip6}]"), ("peer", t.host_ip4), ("peer", f"[{t.host_ip6}]")]
    for where, addr in clients:
        ns = t.ns(where)
        r = ns.run(["curl", "-sS", "--max-time", "5", f"http://{addr}:{PUB_TCP}/"], check=False)
        assert r.stdout == INDEX, (where, addr, r.stderr)
        fam = "UDP6" if addr.startswith("[") else "UDP4"
        r = ns.run(["socat", "-T", "5", "-", f"{fam}:{addr}:{PUB_UDP}"], input=f"u-{where}\n",
                   check=False)
        assert r.stdout == f"u-{where}\n", (where, addr, r.stderr)


# --------------------------------------------------------------------------- bridge network

def test_custom_network_through_the_rootless_netns(tx, svc):
    """`podman network create`: one pypasta (`--pid FILE`, Podman 5.4.2) connects the
    rootless-netns for every container on bridge networks; containers reach the peer and DNS
    through it, `-p` is rootlessport's; Podman SIGTERMs pypasta when the last container leaves,
    and it exits."""
    t = tx.t
    tx.podman("network", "create", "pypasta-net")
    run_d(tx, "b1", "--network", "pypasta-net", "-p", f"{PUB_TCP}:80", cmd=WEB)
    runs = [a for a in tx.calls() if "--pid" in a]
    assert len(runs) == 1 and len(tx.calls()) == 1, tx.calls()
    argv = runs[0]
    pidfile = argv[argv.index("--pid") + 1]
    assert pidfile.endswith("/rootless-netns/rootless-netns-conn.pid"), argv
    assert argv[argv.index("--netns") + 1].endswith("/rootless-netns/rootless-netns"), argv
    inner = int(tx.read(pidfile).strip())
    outer = tx.ns_pid(inner)
    (daemon,) = [p for p in tx.pasta_procs(argv) if p.pid == outer]

    out = sh(tx, "b1", f"timeout 20 wget -q -O - http://{svc.peer4}:{svc.http_port}/blob "
                       "| sha256sum").stdout
    assert out.split()[0] == svc.blob_sha256
    out = sh(tx, "b1", f"echo bridge | socat -T 5 - UDP4:{svc.peer4}:{svc.udp_port}").stdout
    assert out == "bridge\n"
    out = sh(tx, "b1", f"nslookup {svc.domain}").stdout          # aardvark-dns, then pypasta
    assert f"Address: {svc.name4}" in out, out

    def served():
        r = t.host(["curl", "-sS", "--max-time", "3", f"http://127.0.0.1:{PUB_TCP}/"],
                   check=False)
        return r.stdout == INDEX
    wait_until(served, 15, "httpd through rootlessport")

    run_d(tx, "b2", "--network", "pypasta-net")
    assert len(tx.calls()) == 1, "a second container must reuse the rootless-netns pypasta"
    tx.podman("rm", "-f", "-t", "0", "b1")
    assert daemon.alive(), "pypasta exited while a container was still on the network"
    tx.podman("rm", "-f", "-t", "0", "b2")
    tx.wait_gone([daemon], "the rootless-netns pypasta to exit after the last container left")


# --------------------------------------------------------------------------- host, restart

def test_host_containers_internal_reaches_the_host(tx):
    """host.containers.internal is 169.254.1.2 (--map-guest-addr), which pypasta maps to the
    host namespace's own address: a server bound there answers over TCP and UDP."""
    t = tx.t
    t.host_popen(["socat", f"TCP4-LISTEN:7200,bind={t.host_ip4},fork,reuseaddr",
                  "SYSTEM:echo on-the-host"], name="host-tcp")
    t.host_popen(["socat", f"UDP4-RECVFROM:7201,bind={t.host_ip4},fork", "PIPE"],
                 name="host-udp")
    t.wait_listening("host", 7200)
    t.wait_listening("host", 7201, proto="udp")
    run_d(tx, "hci")
    hosts = tx.podman("exec", "hci", "cat", "/etc/hosts").stdout
    assert any(line.split()[:2] == ["169.254.1.2", "host.containers.internal"]
               for line in hosts.splitlines()), hosts
    out = sh(tx, "hci", "socat -T 5 - TCP4:host.containers.internal:7200 </dev/null").stdout
    assert out == "on-the-host\n"
    out = sh(tx, "hci", "echo u | socat -T 5 - UDP4:host.containers.internal:7201").stdout
    assert out == "u\n"


def test_restart_gets_a_new_pypasta_and_stop_ends_it(tx, svc):
    """`podman restart`: the old pypasta exits (Podman deletes the netns file), a new one serves
    the published port and the peer; `podman stop` ends that one too."""
    t = tx.t
    run_d(tx, "rs", "-p", f"{PUB_TCP}:80", cmd=WEB)

    def served():
        r = t.host(["curl", "-sS", "--max-time", "3", f"http://127.0.0.1:{PUB_TCP}/"],
                   check=False)
        return r.stdout == INDEX
    wait_until(served, 15, "httpd through the published port")
    _, first = pasta_of(tx, "rs")
    tx.podman("restart", "-t", "0", "rs")
    tx.wait_gone([first], "the first pypasta to exit after podman restart")
    _, second = pasta_of(tx, "rs")
    assert second.pid != first.pid
    wait_until(served, 15, "httpd through the published port after the restart")
    out = sh(tx, "rs", f"echo again | socat -T 5 - UDP4:{svc.peer4}:{svc.udp_port}").stdout
    assert out == "again\n"
    tx.podman("stop", "-t", "0", "rs")
    tx.wait_gone([second], "pypasta to exit after podman stop")
    assert not tx.pasta_procs()
