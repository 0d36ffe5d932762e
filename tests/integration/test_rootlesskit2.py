"""Debian 13's RootlessKit 2.0.2 with `--net=pasta --pasta-binary=<pypasta>` (podman5.md 2).

RootlessKit runs as the test user in the Debian 13 tree (tests/helpers/trixie.py) on the host
namespace of the hermetic topology. It creates tap0 in its child's namespaces itself, starts
pypasta as `--foreground --stderr --ns-ifname=tap0 ... --tcp-ports=auto|none ... CHILDPID` (the
target is a trailing PID: the stand-in passes its argv through untouched, so nothing lands after
it), never waits for it, configures tap0 in the child, and SIGKILLs pypasta when the child exits.

- `--port-driver=implicit --disable-host-loopback` (as rootless Docker runs it): the child reaches
  the peer (HTTP, UDP echo, DNS through 10.0.2.3, raw ping), and a port the child binds later is
  published on the host by `-t auto`.
- `--port-driver=none` (host loopback allowed): the same, plus 10.0.2.2 is the host namespace's
  loopback; no port is published.
The child command ends when the test closes its stdin; then pypasta must be gone.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from helpers.proc import wait_until
from helpers.trixie import BIN, PeerServices, Trixie, peer_services

pytestmark = pytest.mark.rootless       # RootlessKit runs as the test user

CHILD_PORT = 8091
HOST_LO_PORT = 7300


@pytest.fixture
def tx(topology):
    tx = Trixie(topology)
    try:
        yield tx
    finally:
        tx.close()


@pytest.fixture
def svc(topology) -> PeerServices:
    return peer_services(topology)


@pytest.mark.parametrize("driver", ["implicit", "none"])
def test_rootlesskit2_child_network_ports_and_exit(tx, svc, driver):
    t = tx.t
    state = os.path.join(tx.w, f"rk-{driver}")
    ready = os.path.join(tx.w, f"rk-{driver}.ready")
    if driver == "none":
        t.host_popen(["socat", f"TCP4-LISTEN:{HOST_LO_PORT},bind=127.0.0.1,fork,reuseaddr",
                      "SYSTEM:echo host-loopback"], name="host-lo")
        t.wait_listening("host", HOST_LO_PORT)
    # The child serves CHILD_PORT, says it is ready, and ends when its stdin closes.
    child = (f"socat TCP4-LISTEN:{CHILD_PORT},fork,reuseaddr SYSTEM:'echo from-the-child' & "
             f"touch {ready}; read _; kill $!; wait")
    opts = (["--port-driver=implicit", "--disable-host-loopback"] if driver == "implicit"
            else ["--port-driver=none"])
    rk = tx.popen(["rootlesskit", "--net=pasta", f"--pasta-binary={BIN}/pypasta", *opts,
                   "--copy-up=/etc", f"--state-dir={state}", "sh", "-c", child],
                  name=f"rootlesskit-{driver}", stdin=subprocess.PIPE)
    try:
        wait_until(lambda: os.path.exists(ready) or rk.poll() is not None, 30,
                   "RootlessKit's child")
        assert rk.poll() is None, open(rk.log_paths["stderr"]).read()
        child_pid = open(os.path.join(state, "child_pid")).read().strip()

        (argv,) = tx.calls()
        assert argv[0] == "--foreground" and "--ns-ifname=tap0" in argv, argv
        assert argv[-1] == child_pid, "the target PID must stay last"
        want = "auto" if driver == "implicit" else "none"
        assert f"--tcp-ports={want}" in argv and f"--udp-ports={want}" in argv, argv
        assert "--config-net" not in argv
        (pasta,) = tx.pasta_procs(argv)

        def in_child(script: str, check: bool = True):
            return tx.run(["nsenter", "-U", "--preserve-credentials", "-n", "-m", "-t",
                           child_pid, "sh", "-c", script], check=check, timeout=30)
        addr = in_child("ip -4 addr show tap0; ip route").stdout
        assert "inet 10.0.2.100/24" in addr and "default via 10.0.2.2 dev tap0" in addr, addr
        out = in_child(f"timeout 20 busybox wget -q -O - "
                       f"http://{svc.peer4}:{svc.http_port}/blob | sha256sum").stdout
        assert out.split()[0] == svc.blob_sha256
        out = in_child(f"echo rk | socat -T 5 - UDP4:{svc.peer4}:{svc.udp_port}").stdout
        assert out == "rk\n"
        out = in_child(f"busybox nslookup {svc.domain} 10.0.2.3").stdout
        assert f"Address: {svc.name4}" in out, out
        # RootlessKit's new namespace disallows ping sockets: iputils ping goes raw and checks
        # the reply's checksum.
        r = in_child(f"ping -c 2 -i 0.2 -W 5 {svc.peer4}", check=False)
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
        assert "BAD CHECKSUM" not in r.stdout and "corrupted" not in r.stdout, r.stdout

        if driver == "implicit":
            for host_addr in ("127.0.0.1", t.host_ip4):
                def published():
                    r = t.host(["socat", "-T", "3", "-", f"TCP4:{host_addr}:{CHILD_PORT}"],
                               check=False)
                    return r.stdout == "from-the-child\n"
                wait_until(published, 10, f"the child's port on the host's {host_addr}")
        else:
            out = in_child(f"socat -T 5 - TCP4:10.0.2.2:{HOST_LO_PORT} </dev/null").stdout
            assert out == "host-loopback\n"
            listening = t.host(f"ss -Hltn 'sport = :{CHILD_PORT}'").stdout
            assert not listening.strip(), "--port-driver=none must publish nothing"
    finally:
        rk.stdin.close()
        try:
            rk.wait(20)
        except subprocess.TimeoutExpired:
            pass
    assert rk.returncode == 0, open(rk.log_paths["stderr"]).read()
    tx.wait_gone([pasta], "pypasta to be gone after RootlessKit's child exited")
    assert not tx.pasta_procs()
