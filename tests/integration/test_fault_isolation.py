"""An error that belongs to one flow costs that flow only (issue 13 item 6).

pypasta's fd limit is lowered to 128 while 300 connections run through the tap at once, first
from the namespace to the peer (outbound: socket() fails with EMFILE, the SYN is dropped and the
namespace's kernel retries it) and then from the peer to a `-t` port (inbound: accept() fails
with EMFILE, the listener rests and the connections wait in its backlog). pypasta must survive
with no internal error, end with the fds it started with, and serve a new connection afterwards.
Before the fix, an OSError from a flow's handler was taken for a tap error and pypasta exited.
"""

from __future__ import annotations

import os
from helpers import env, fd_count, read_stats, wait_until
from helpers.topology import Topology

PEER4 = Topology.peer_inet4
CONNS = 300
NOFILE = 128


def test_300_connections_through_the_tap_with_128_fds(topology, user):
    t = topology
    w = t.workdir
    tool = t.copy_helper("tcptool.py")
    py = env.python_for(user)
    t.peer_popen([env.python_for("root"), tool, "echo-server", PEER4, "7000"], name="echo")
    t.wait_listening("peer", 7000)
    files = {k: os.path.join(w, f"{k}-{user}") for k in ("go", "out", "listening", "done")}
    many = f"{py} {tool} many"
    script = f"""
i=0; until [ -e {files['go']} ]; do i=$((i+1)); [ $i -gt 400 ] && exit 97; sleep 0.05; done
{many} {PEER4} 7000 --conns {CONNS} --bytes 16384 --timeout 120 > {files['out']} 2>&1
{many} {PEER4} 7000 --conns 1 --bytes 16384 --timeout 20 >> {files['out']} 2>&1
{py} {tool} echo-server 0.0.0.0 7100 &
i=0; until ss -Hltn 'sport = :7100' | grep -q .; do i=$((i+1)); [ $i -gt 400 ] && exit 98; sleep 0.05; done
touch {files['listening']}
i=0; until [ -e {files['done']} ]; do i=$((i+1)); [ $i -gt 3000 ] && exit 99; sleep 0.05; done
"""
    logf = os.path.join(w, f"pypasta-{user}.log")
    # No `auto` for the other directions: its listeners would change the fd count.
    proc = t.pypasta(["--config-net", "-t", "7100", "-u", "none", "-T", "none", "-U", "none",
                      "-d", "-l", logf, "--", "sh", "-c", script], user=user)
    try:
        wait_until(lambda: "Namespace interface" in (open(logf).read()
                                                      if os.path.exists(logf) else "")
                   or proc.poll() is not None, 20, "pypasta configured")
        assert proc.poll() is None, t.logs(proc)
        start = fd_count(proc.pid)
        # As pypasta's own user: this machine's root lacks CAP_SYS_RESOURCE, and a process of
        # the same uid may lower another's limits without it.
        t.hostns.run(["prlimit", "--pid", str(proc.pid), f"--nofile={NOFILE}:{NOFILE}"],
                     user=user)
        assert open(f"/proc/{proc.pid}/limits").read().count(f" {NOFILE} ") >= 2
        open(files["go"], "w").close()
        wait_until(lambda: os.path.exists(files["listening"]) or proc.poll() is not None, 150,
                   "the outbound connections done")
        out = open(files["out"]).read().splitlines()
        assert out == [f"ok {CONNS} bad 0 unfinished 0", "ok 1 bad 0 unfinished 0"], out
        # Inbound through -t, from the peer
        r = t.peer([env.python_for("root"), tool, "many", t.host_ip4, "7100", "--conns",
                    str(CONNS), "--bytes", "16384", "--timeout", "120"], timeout=150,
                   check=False)
        assert r.stdout.strip() == f"ok {CONNS} bad 0 unfinished 0", r.stdout + r.stderr[-2000:]
        r = t.peer([env.python_for("root"), tool, "many", t.host_ip4, "7100", "--conns", "1",
                    "--bytes", "16384", "--timeout", "20"], timeout=30, check=False)
        assert r.stdout.strip() == "ok 1 bad 0 unfinished 0", r.stdout + r.stderr
        assert proc.poll() is None, t.logs(proc)
        wait_until(lambda: fd_count(proc.pid) <= start, 20, f"pypasta back to {start} fds")
        open(files["done"], "w").close()
        assert proc.wait(20) == 0, t.logs(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    text = open(logf).read()
    stats = read_stats(logf)
    assert stats["internal_errors"] == 0, text[-3000:]
    assert "Error on tap device" not in text
    # The limit really was hit, on both paths
    assert stats.get("drop:tcp: local resources", 0) > 0, stats
    accept_fails = [float(line.split(":", 1)[0]) for line in text.splitlines()
                    if line.endswith("TCP: accept: Too many open files")]
    assert accept_fails, text[-3000:]
    # ...and the listener rested (ACCEPT_PAUSE_S) instead of waking the loop on every turn
    # for the connection waiting in its backlog: at most ~10 failed accepts a second.
    span = accept_fails[-1] - accept_fails[0]
    assert len(accept_fails) <= 20 + 20 * span, (len(accept_fails), span)
