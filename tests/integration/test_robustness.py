"""A storm of random and mutated frames cannot hurt the translator (issue 3).

One million frames from `tests/helpers/fuzzframes.py` are injected into the tap from inside the
namespace with an AF_PACKET socket (`tests/helpers/inject.py`, paced by ARP probes that pypasta
must answer, so every frame is consumed and none is lost in the tap's queue). Meanwhile the test
samples pypasta's resident memory at every progress report. Afterwards the namespace still
pings the peer and exchanges UDP with it, pypasta's counters (SIGUSR2 into its log file) show
every frame read and the malformed ones dropped by reason, and it exits cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from helpers import env, read_stats, wait_until

COUNT = 1_000_000
REPORT_EVERY = 100_000
RSS_GROWTH_LIMIT_KB = 16 * 1024      # whole run, tables filling up included
RSS_FLAT_KB = 4 * 1024               # second half of the run


def _rss_kb(pid: int) -> int:
    """Anonymous resident memory: the heap a leak would grow. VmRSS adds file-backed pages
    (libpython, extension modules) that are faulted in as new code paths run."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon")


def test_million_fuzz_frames_leave_pypasta_serving(topology):
    t = topology
    work = t.workdir
    for name in ("inject.py", "fuzzframes.py"):
        t.copy_helper(name)
    logf = os.path.join(work, "fuzz.log")
    after = os.path.join(work, "after-fuzz")
    py = env.python_for("root")
    t.peer_popen(f"socat -b 65536 UDP4-LISTEN:7777,bind={t.peer_inet4},fork PIPE", name="echo")
    t.wait_listening("peer", 7777, "udp")
    script = (
        f"{py} {work}/inject.py --ifname eth0 --count {COUNT} --seed 7 --sync-every 500 "
        f"--report-every {REPORT_EVERY} --probe-ip 198.51.100.77 && "
        # The storm taught pypasta random guest MACs and addresses: real traffic resets them.
        f"ping -c 2 -i 0.2 -W 2 {t.peer_inet4} > {after}.ping && "
        f"ping -6 -c 2 -i 0.2 -W 2 {t.peer_inet6} >> {after}.ping && "
        f"echo still-here | socat -t 2 - UDP4:{t.peer_inet4}:7777 > {after}.udp && "
        f"touch {after} && exec sleep 600")
    p = t.pypasta(["--config-net", "-l", logf, "--", "sh", "-c", script],
                  stdout=subprocess.PIPE)
    samples = []
    done = None
    for raw in p.stdout:
        line = raw.decode().strip()
        if line.startswith("progress "):
            samples.append((int(line.split()[1]), _rss_kb(p.pid)))
        elif line.startswith("done "):
            done = line
            break
    assert done, f"injector did not finish: {t.logs(p)}; log: {open(logf).read()[-2000:]}"
    m = re.fullmatch(r"done (\d+) sent, (\d+) send errors", done)
    sent, refused = int(m[1]), int(m[2])
    assert sent == COUNT
    wait_until(lambda: os.path.exists(after) or p.poll() is not None, 20, "checks after the storm")
    assert p.poll() is None, f"pypasta died: {open(logf).read()[-3000:]}"
    assert os.path.exists(after), open(logf).read()[-3000:]
    assert open(after + ".ping").read().count(" 0% packet loss") == 2
    assert open(after + ".udp").read().strip() == "still-here"

    os.kill(p.pid, signal.SIGUSR2)
    wait_until(lambda: "state: " in open(logf).read(), 5, "state dump")
    stats = read_stats(logf)
    assert stats["internal_errors"] == 0
    # Every frame the kernel accepted reached pypasta (plus probes and the checks' frames).
    assert stats["tap_frames_in"] >= sent - refused
    drops = {k: v for k, v in stats.items() if k.startswith("drop:")}
    assert sum(drops.values()) > (sent - refused) // 2, drops
    for reason in ("unsupported ethertype", "bad ipv4 total length"):
        assert any(reason in k for k in drops), drops

    # Memory (anonymous RSS): the UDP and ICMP tables are bounded (LRU eviction) and full within
    # the first few hundred thousand frames; fuzzed TCP SYNs keep about 2,000 connect attempts
    # alive (10 s handshake timeout), a working set reached around mid-run. Measured under two
    # CPU hogs (three runs): 27.6-27.9 MB at 100k frames, 37.2-38.1 MB at 500k, 39.2-40.1 MB at
    # 1M, growing in the allocator's 2 MB steps (tests/kernel/test_tcp_churn.py shows that 20,000
    # TCP flows leave no Python memory behind).
    # Flatness is judged against the highest sample from 300k to 500k frames, not against the
    # single 500k sample: the working set breathes (connect attempts time out in waves; UDP flows
    # expire after the conntrack timeout of 30 s, so a slow run churns more of them). A loaded
    # suite run once saw VmRSS rise 6 MB from a 600k sample of 43.7 MB to 49.7 MB; VmRSS also
    # counts file pages of libraries faulted in late, which is why RssAnon is sampled now.
    assert len(samples) == COUNT // REPORT_EVERY
    rss = [kb for _, kb in samples]
    assert rss[-1] - rss[0] < RSS_GROWTH_LIMIT_KB, f"RSS samples {samples}"
    flows = {k: v for k, v in stats.items() if "flows" in k or "opened" in k or "closed" in k}
    half = len(rss) // 2
    assert rss[-1] - max(rss[2:half]) < RSS_FLAT_KB, f"RSS samples {samples}; flows {flows}"

    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
