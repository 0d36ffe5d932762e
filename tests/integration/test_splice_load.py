"""The spliced path under load (issue 13, item 4): bulk transfers never reset while the machine
is busy.

Seen once: a 10 MiB+ upload from the host's [::1] into the namespace through a `-t` port was
reset ("Connection reset by peer" on the client's write) while the machine was busy. Here two
CPU-bound processes run for the whole test while, per family, 50 transfers of 10 MiB cross the
spliced path from host loopback clients of a `-t` port (uploads and downloads in turn), and 50
more from namespace loopback clients of a `-T` port; every one must arrive whole (SHA-256 at the
far end), none may be reset, and pypasta must count no internal error and hold no pair after.
"""

from __future__ import annotations

import json
import os
import signal

from helpers import dump_stats, env, read_stats, wait_until

MIB10 = 10 << 20
COUNT = int(os.environ.get("SL_COUNT", 50))
PAR = int(os.environ.get("SL_PAR", 4))


def _result(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, text
    return json.loads(lines[-1])


def test_fifty_spliced_10mib_transfers_per_family_under_load(topology, user):
    t = topology
    w = t.workdir
    tool = t.copy_helper("spliceload.py")
    py, py_ns = env.python_for("root"), env.python_for(user)
    hogs = [t.host_popen([py, "-c", "while True: pass"], name=f"hog{i}") for i in range(2)]
    host_srv = t.host_popen([py, tool, "server", "::", "9700", "--bytes", str(MIB10)],
                            name="host-server")
    t.wait_listening("host", 9700)
    opts = f"--bytes {MIB10} --count {COUNT} --parallel {PAR} --modes UD"
    script = (f"{py_ns} {tool} server :: 9701 --bytes {MIB10} > {w}/ns-server.out 2>&1 & "
              f"{py_ns} {tool} client 127.0.0.1 9700 {opts} > {w}/T4.json 2>&1; "
              f"{py_ns} {tool} client ::1 9700 {opts} > {w}/T6.json 2>&1; "
              f"touch {w}/T-done; wait")
    logf = os.path.join(w, f"load-{user}.log")
    p = t.pypasta(["--config-net", "-d", "-l", logf, "-t", "9701", "-T", "9700",
                   "--", "sh", "-c", script], user=user)
    try:
        wait_until(lambda: os.path.exists(f"{w}/ns-server.out") and
                   "ready" in open(f"{w}/ns-server.out").read() or p.poll() is not None,
                   20, "namespace server")
        assert p.poll() is None, open(logf).read()[-2000:]
        results = {}
        for fam, addr in (("t4", "127.0.0.1"), ("t6", "::1")):
            r = t.host([py, tool, "client", addr, "9701", *opts.split()], timeout=120,
                       check=False)
            results[fam] = _result(r.stdout + r.stderr)
        wait_until(lambda: os.path.exists(f"{w}/T-done") or p.poll() is not None, 120,
                   "-T transfers")
        for fam in ("T4", "T6"):
            results[fam] = _result(open(f"{w}/{fam}.json").read())
    finally:
        for h in hogs:
            h.kill()
            h.wait(timeout=10)
    for fam, res in results.items():
        assert res["ok"] == COUNT and not res["failed"], (fam, res, open(logf).read()[-3000:])
    os.kill(p.pid, signal.SIGUSR2)
    wait_until(lambda: "state: " in open(logf).read(), 5, "state dump")
    st = read_stats(logf)
    assert st["internal_errors"] == 0, st
    assert st["splice_opened"] == 4 * COUNT and st["tcp_opened"] == 0, st
    wait_until(lambda: dump_stats(p.pid, logf).get("splice_conns") == 0, 10,
               "every spliced pair closed")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    host_srv.kill()
