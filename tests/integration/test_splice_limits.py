"""Spliced connections when file descriptors run out (issue 13, item 6, splice part).

pypasta runs under `prlimit --nofile=128`; 300 host loopback clients of a `-t` port connect at
once. Connections beyond what the fd limit allows are refused with an RST (or fail to get a pipe
or a socket: that pair only); pypasta survives, holds the same fds afterwards as before, and
serves a new spliced connection.
"""

from __future__ import annotations

import json
import os
import signal

from helpers import dump_stats, env, fd_count, read_stats, wait_until

CONNS = 300

CLIENTS = r"""
import errno, json, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, outcome = [], {}
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1" if i % 2 else "::1", port), timeout=10)
        s.sendall(b"U" + b"x" * 1000)
        socks.append(s)
    except OSError as e:
        k = errno.errorcode.get(e.errno, type(e).__name__)
        outcome[k] = outcome.get(k, 0) + 1
for s in socks:
    try:
        s.shutdown(socket.SHUT_WR)
        data = s.recv(200)
        k = "answered" if data.startswith(b"1000 ") else "closed"
    except OSError as e:
        k = errno.errorcode.get(e.errno, type(e).__name__)
    outcome[k] = outcome.get(k, 0) + 1
    s.close()
print(json.dumps(outcome))
"""


def test_300_spliced_connections_with_128_fds(topology, user):
    t = topology
    w = t.workdir
    tool = t.copy_helper("spliceload.py")
    py, py_ns = env.python_for("root"), env.python_for(user)
    script = f"exec {py_ns} {tool} server :: 9710 --bytes 1000 > {w}/ns-server.out 2>&1"
    logf = os.path.join(w, f"limits-{user}.log")
    argv = ["prlimit", "--nofile=128", *t.pypasta_argv(
        ["--config-net", "-d", "-l", logf, "-t", "9710", "-T", "none", "-u", "none",
         "-U", "none", "--", "sh", "-c", script], user)]
    p = t.hostns.popen(argv, user=user, name="pypasta")
    wait_until(lambda: os.path.exists(f"{w}/ns-server.out") and
               "ready" in open(f"{w}/ns-server.out").read() or p.poll() is not None,
               20, "namespace server")
    assert p.poll() is None, open(logf).read()[-2000:]
    assert "pasta" in open(f"/proc/{p.pid}/cmdline").read()
    t.wait_listening("host", 9710)
    before = fd_count(p.pid)
    r = t.host([py, "-c", CLIENTS, "9710", str(CONNS)], timeout=120)
    outcome = json.loads(r.stdout)
    assert sum(outcome.values()) == CONNS, outcome
    assert outcome.get("answered", 0) >= 1, outcome
    assert p.poll() is None, open(logf).read()[-3000:]
    wait_until(lambda: dump_stats(p.pid, logf).get("splice_conns") == 0, 10,
               "every pair closed")
    st = read_stats(logf)
    assert st["internal_errors"] == 0, st
    assert st["splice_refused"] + st["splice_errors"] >= 1, st
    wait_until(lambda: fd_count(p.pid) == before, 5,
               f"pypasta back to {before} fds (has {fd_count(p.pid)})")
    # and it still serves
    new = t.host([py, tool, "client", "::1", "9710", "--bytes", "1000", "--count", "3",
                  "--parallel", "1", "--modes", "U"], timeout=30, check=False)
    assert new.returncode == 0, new.stdout + new.stderr + open(logf).read()[-2000:]
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
