"""Side-by-side benchmark of passt mode: pypasta-passt, passt 2026 and Debian's passt 2023.

Purpose: measure what a virtual machine would get from each translator, without a guest. Under
TCG a guest's own TCP/IP stack is too slow to load a translator, so a *relay* stands in for the
guest: `framerelay` (framerelay.c, built here with gcc) joins the translator's stream socket
and a tap device, one thread per direction, writing every frame whole with passt's framing.
The tap lives in a third network namespace, the "guest", whose kernel stack then plays the
guest's. The translator sees what a QEMU guest's frames look like on the socket (stream
framing, no virtio-net header, no offloads). QEMU itself cannot be the relay: QEMU 7.2 with
`-netdev hubport` between `-netdev stream` and `-netdev tap` aborts (iov_copy: "Assertion
`offset == 0' failed") the first time a translator's socket buffer fills, because the hub
hands the stream back-end a different frame after a short write (framerelay.c says more).

```
 guest ns                      host ns (the translator, as pypasta-test)    peer ns ("internet")
 ptap0 198.51.100.2/24         eth0 198.51.100.2/24 <-------veth-------> 198.51.100.1/24
   MTU 65520, no offloads        default via 198.51.100.1                lo 198.18.0.1
   default via 198.51.100.1    translator -f -q -s SOCK -t 5301          iperf3 -s, rrtool server
   |                                 ^
 framerelay SOCK ptap0 ------------- +  UNIX stream socket SOCK (a file in the workdir):
   (tap fd <-> client socket)           4-byte big-endian length + Ethernet frame
```

The guest's address and route are set statically to what passt assigns by DHCP (the host
namespace's address and gateway); passt learns them from the guest's frames. The tap has no
offloads (no TUNSETOFFLOAD, no virtio-net header): the guest kernel
segments and checksums in software and verifies what it receives, like a guest whose NIC
offers no offloads. Addresses: only the topology's 198.51.100.0/24 and 198.18.0.0/15
(tests/helpers/topology.py); the machine's own interfaces, routes and sysctls are not touched.

Run as root from the repository, under the shared lock when others run namespace tests:

    flock /tmp/pypasta-ns.lock python3 tests/bench/passt_bench.py [--reps 3] [--seconds 5] \\
        [--short 3] [--startups 10] [--tools pypasta-passt,passt-2026,passt-2023] [--out DIR]

All three run as the unprivileged `pypasta-test` (passt started as root switches to `nobody`,
and Debian's 2023 build then cannot bind in a directory `nobody` cannot write): pypasta-passt is
`/opt/pypasta-venv/bin/python -m pasta.front.passt` on a world-readable, byte-compiled copy of
this checkout (helpers.env.rootless_src()), passt 2026 is /opt/passt-2026/passt, passt 2023 is
/usr/bin/passt. Each gets `-f -q -s SOCK -l LOG -t 5301`. The tools are interleaved: each
repetition starts every tool in turn (fresh translator, fresh relay) and runs every metric.

Figures (median of the repetitions, min-max in brackets; ratios of medians):
- `startup_listen_ms`: exec to the first successful connect() on the socket path (polled every
  0.2 ms), median of `--startups` starts (interleaved; one warm-up start each, not counted). It
  includes the launcher (`ip netns exec` + `setpriv`): `launcher_floor_ms` in the report is
  that chain running /bin/true, for scale.
- `rss_connected_idle_mb`: VmRSS once the relay is connected and the guest has made one TCP
  connection through it; `rss_peak_mb`: VmHWM at the end of the repetition.
- `tcp_guest_to_peer_gbps`: iperf3 -c from the guest namespace to the peer (one stream);
- `tcp_peer_to_guest_fwd_gbps`: iperf3 -c from the peer to the host namespace's 198.51.100.2:5301,
  forwarded by `-t 5301` to the iperf3 server in the guest namespace;
- `rr_median_us` (and `rr_p99_us`): 1-byte TCP ping-pong guest -> peer, tests/bench/rrtool.py
  (the RR client and server bench.py uses), `--short` seconds;
- `udp_1400_received_gbps` (and `udp_1400_loss_pct`): iperf3 -u -b 0 -l 1400 guest -> peer,
  the rate the peer received (sent rate x (1 - loss), as bench.py);
- `cpu_s:<metric>`: CPU seconds (utime + stime, /proc/PID/stat) of the translator during that
  metric; `relay_cpu_s:<metric>` the same for framerelay. A relay near `--seconds` CPU seconds is
  saturated: the figure is then a floor for the translator, not its limit.
Notes next to a figure: failed runs, a spread above 30 %, iperf3 intervals under 1 % of the
mean rate (stalls), TCP retransmissions, UDP loss. After the table: every line the translators
logged (with -q: warnings and errors only) and any abnormal exit.

Output: the table on stdout; OUT/results.json (machine, raw values per repetition, summary,
notes, logs) and OUT/results.md, rewritten after every repetition.

Limits: the relay takes CPU of a two-core machine and copies every frame twice (tap <->
framerelay <-> socket): absolute figures are lower than a KVM guest with
vhost-net would see, and the ratio narrows when the relay saturates. IPv4 only; one stream;
no pinning (two cores). The guest's kernel does what a guest's would, but on the same CPUs.
Every wait is bounded; every process, the namespaces and the tap go on every exit path
(Topology's cleanup, also on SIGTERM/SIGHUP/SIGINT).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench                                                # noqa: E402  (adds tests/ to sys.path)
from bench import PEER, IPERF_PORT, FWD_PORT, RR_PORT       # noqa: E402
from helpers import env, wait_until                         # noqa: E402
from helpers.proc import descendants                        # noqa: E402
from helpers.topology import Topology                       # noqa: E402

TOOLS = {
    "pypasta-passt": None,                                  # the venv interpreter, -m ...
    "passt-2026": os.path.join(env.PASST2026_DIR, "passt"),
    "passt-2023": "/usr/bin/passt",
}
RELAY_SRC = os.path.join(HERE, "framerelay.c")
TAP = "ptap0"
GUEST_MTU = 65520
GUEST_IP4 = Topology.host_ip4               # what passt assigns: the host namespace's address
GUEST_GW4 = Topology.gw4
WAIT_S = 15.0                               # bound for every start-up wait
STALL_FRACTION = 0.01
SPREAD_NOTE = 0.30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_tree(pid: int) -> list[int]:
    return [pid, *descendants([pid])]


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants (all threads), in seconds."""
    total = 0
    for p in _proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def status_mb(pid: int, key: str) -> float:
    """VmRSS / VmHWM of `pid` and its descendants, in MB."""
    total = 0.0
    for p in _proc_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return round(total, 1)


def unix_listening(pid: int, path: str) -> bool:
    """Whether a socket bound to `path` listens, seen in /proc/PID/net/unix: no connect, so
    the translator's one client slot is left to the relay."""
    try:
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[-1] == path and fields[3] == "00010000":
                    return True
    except OSError:
        pass
    return False


def stop(proc: subprocess.Popen | None, grace: float = 5.0) -> int | None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds; returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    return proc.returncode


def iperf_figures(res: dict) -> tuple[float, int | None, int]:
    """(Gbit/s received, sender retransmissions or None, intervals under STALL_FRACTION of the
    mean rate) from iperf3 -J output."""
    if res.get("error"):
        raise RuntimeError(f"iperf3: {res['error']}")
    gbps = bench._iperf(res)
    retrans = res["end"].get("sum_sent", {}).get("retransmits")
    rates = [i["sum"]["bits_per_second"] for i in res.get("intervals", ())]
    mean = statistics.mean(rates) if rates else 0
    stalls = sum(1 for r in rates if r < STALL_FRACTION * mean)
    return gbps, retrans, stalls


class Run:
    """One translator serving the relay for one repetition."""

    def __init__(self, b: "PasstBench", name: str, rep: int):
        self.b, self.t, self.name, self.rep = b, b.t, name, rep
        tag = f"{name}-{rep}"
        self.sock = os.path.join(self.t.workdir, f"{tag}.sock")
        self.log = os.path.join(self.t.workdir, f"{tag}.log")
        self.proc: subprocess.Popen | None = None
        self.relay_proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = self.b.launch(self.name, ["-f", "-q", "-s", self.sock, "-l", self.log,
                                              "-t", str(FWD_PORT)])
        wait_until(lambda: unix_listening(self.proc.pid, self.sock) or
                   self.proc.poll() is not None, WAIT_S, f"{self.name} listening")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                               f"{self.t.logs(self.proc)[1][-500:]}")
        # Each implementation has its own MAC (or may): forget the previous one's.
        self.b.guest.run(["ip", "neigh", "flush", "dev", TAP], check=False)
        self.relay_proc = self.b.guest.popen([self.b.relay, self.sock, TAP],
                                       name=f"relay-{self.name}")
        # The guest's first connection through the translator: the relay connected, ARP done.
        first = self.b.guest.run([sys.executable, "-c", (
            "import socket, sys, time\n"
            f"end = time.monotonic() + {WAIT_S}\n"
            "while True:\n"
            "    try:\n"
            f"        socket.create_connection(('{PEER}', {RR_PORT}), timeout=1).close()\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.monotonic() > end: sys.exit('no connection to the peer')\n"
            "        time.sleep(0.05)\n")], timeout=WAIT_S + 5, check=False)
        if first.returncode:
            raise RuntimeError(f"the guest reached no peer through {self.name}: "
                               f"{first.stderr.strip()[-300:]}; relay: "
                               f"rc {self.relay_proc.poll()}, "
                               f"{self.t.logs(self.relay_proc)[1][-300:]}")

    def stop(self) -> dict:
        """Stop the relay, then the translator; return what is worth reporting about them."""
        out = {}
        q = stop(self.relay_proc)
        if q not in (None, 0, -signal.SIGTERM):
            out["relay_exit"] = q
            out["relay_stderr"] = self.t.logs(self.relay_proc)[1].strip().splitlines()[-5:]
        if self.proc is not None and self.proc.poll() is not None:
            out["translator_exited_early"] = self.proc.returncode
        rc = stop(self.proc)
        if rc not in (None, 0, -signal.SIGTERM):
            out["translator_exit"] = rc
        lines = []
        if os.path.exists(self.log):
            with open(self.log, errors="replace") as f:
                lines += [ln.rstrip() for ln in f if ln.strip()]
        if self.proc is not None:
            lines += [ln for ln in self.t.logs(self.proc)[1].splitlines() if ln.strip()]
        if lines:
            out["log"] = lines[:40]
        # The workdir goes with the topology: keep the logs in OUT/logs.
        keep = os.path.join(self.b.out, "logs")
        os.makedirs(keep, exist_ok=True)
        paths = [self.log] + [path for p in (self.proc, self.relay_proc) if p is not None
                              for path in getattr(p, "log_paths", {}).values()]
        for path in paths:
            if os.path.exists(path):
                shutil.copy(path, keep)
        return out


class PasstBench:
    def __init__(self, t: Topology, seconds: float, short: float, out: str):
        self.t, self.seconds, self.short, self.out = t, seconds, short, out
        self.src = env.rootless_src()
        self.rrtool = os.path.join(HERE, "rrtool.py")
        self.relay = os.path.join(t.workdir, "framerelay")
        subprocess.run(["gcc", "-O2", "-pthread", "-o", self.relay, RELAY_SRC], check=True,
                       timeout=60)
        self.guest = t.add_netns("guest", configure=True)
        self.guest.run(["ip", "-batch", "-"], input="\n".join([
            f"tuntap add dev {TAP} mode tap",
            f"link set {TAP} mtu {GUEST_MTU} up",
            f"addr add {GUEST_IP4}/{t.prefix4} dev {TAP}",
            f"route add default via {GUEST_GW4} dev {TAP}",
        ]) + "\n")
        self.rr_server = t.peer_popen([sys.executable, self.rrtool, "server", PEER,
                                       str(RR_PORT)], name="rr-peer")
        t.wait_listening("peer", RR_PORT)

    # ------------------------------------------------------------------------- launching
    def argv(self, name: str, args: list[str]) -> list[str]:
        path = TOOLS[name]
        if path is None:
            return [env.VENV_PYTHON, "-m", "pasta.front.passt", *args]
        return [path, *args]

    def launch(self, name: str, args: list[str]) -> subprocess.Popen:
        return self.t.hostns.popen(self.argv(name, args), user="rootless", name=name,
                                   env=env.rootless_env(self.src))

    def launcher_floor(self, n: int) -> float:
        """ms from Popen to the exit of `ip netns exec HOST setpriv ... /bin/true`."""
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            p = self.t.hostns.popen(["/bin/true"], user="rootless", name="true",
                                    env=env.rootless_env(self.src))
            p.wait(timeout=WAIT_S)
            times.append((time.monotonic() - t0) * 1000)
        return round(statistics.median(times), 2)

    def startup_once(self, name: str, i: int) -> float:
        """ms from exec to the first successful connect() on the socket path."""
        path = os.path.join(self.t.workdir, f"start-{name}-{i}.sock")
        log = os.path.join(self.t.workdir, f"start-{name}-{i}.log")
        t0 = time.monotonic()
        p = self.launch(name, ["-f", "-q", "-s", path, "-l", log])
        try:
            deadline = t0 + WAIT_S
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(path)
                    took = (time.monotonic() - t0) * 1000
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    pass
                finally:
                    s.close()
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} before listening: "
                                       f"{self.t.logs(p)[1][-300:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not listening after {WAIT_S:g} s")
                time.sleep(0.0002)
        finally:
            stop(p)
        return round(took, 2)

    # ------------------------------------------------------------------------- measuring
    def iperf_server(self, ns, port: int, bind: str | None = None) -> subprocess.Popen:
        """A one-shot iperf3 server in `ns`, returned once it listens."""
        cmd = ["iperf3", "-s", "-1", "-p", str(port)] + (["-B", bind] if bind else [])
        srv = ns.popen(cmd, name=f"iperf3-{port}")
        wait_until(lambda: ns.run(f"ss -Hltn 'sport = :{port}'", check=False).stdout.strip()
                   or srv.poll() is not None, WAIT_S, f"iperf3 server on {port} in {ns.name}")
        return srv

    def measure(self, run: Run, out: dict, notes: dict) -> None:
        pid, qpid = run.proc.pid, run.relay_proc.pid
        secs = str(self.seconds)
        limit = self.seconds + 10

        def record(metric, fn):
            c0, q0 = cpu_seconds(pid), cpu_seconds(qpid)
            try:
                value = fn()
            except Exception as e:                      # one failed metric is reported
                msg = " ".join(str(e).split())
                print(f"  {run.name} {metric}: FAILED {msg[-300:]}", flush=True)
                notes.setdefault(metric, []).append(f"rep {run.rep + 1}: failed: "
                                                    f"{msg[-200:]}")
                value = None
            out.setdefault(metric, []).append(value)
            out.setdefault(f"cpu_s:{metric}", []).append(round(cpu_seconds(pid) - c0, 2))
            out.setdefault(f"relay_cpu_s:{metric}", []).append(
                round(cpu_seconds(qpid) - q0, 2))
            print(f"  {run.name} {metric}: {value} (cpu {out[f'cpu_s:{metric}'][-1]} s, "
                  f"relay {out[f'relay_cpu_s:{metric}'][-1]} s)", flush=True)
            if run.proc.poll() is not None:
                raise RuntimeError(f"{run.name} exited ({run.proc.returncode}) during {metric}")
            if run.relay_proc.poll() is not None:
                raise RuntimeError(f"the relay exited ({run.relay_proc.returncode}) during "
                                   f"{metric}: {self.t.logs(run.relay_proc)[1].strip()[-300:]}")

        def tcp(metric, server_ns, client_run, port, target, bind=None):
            srv = self.iperf_server(server_ns, port, bind)
            try:
                res = json.loads(client_run(["iperf3", "-J", "-c", target, "-p", str(port),
                                             "-t", secs, "--connect-timeout", "3000"],
                                            timeout=limit, check=False).stdout)
            finally:
                stop(srv, grace=2)
            gbps, retrans, stalls = iperf_figures(res)
            out.setdefault(metric.replace("_gbps", "_retrans"), []).append(retrans)
            if stalls:
                notes.setdefault(metric, []).append(
                    f"rep {run.rep + 1}: {stalls} interval(s) under 1 % of the mean rate")
            return round(gbps, 3)

        out.setdefault("rss_connected_idle_mb", []).append(status_mb(pid, "VmRSS"))
        t = self.t
        record("tcp_guest_to_peer_gbps", lambda: tcp(
            "tcp_guest_to_peer_gbps", t.peerns, self.guest.run, IPERF_PORT, PEER, PEER))
        record("tcp_peer_to_guest_fwd_gbps", lambda: tcp(
            "tcp_peer_to_guest_fwd_gbps", self.guest, t.peerns.run, FWD_PORT, t.host_ip4))

        def rr():
            res = json.loads(self.guest.run([sys.executable, self.rrtool, "rr", PEER,
                                             str(RR_PORT), "--seconds", str(self.short)],
                                            timeout=self.short + 10).stdout)
            out.setdefault("rr_p99_us", []).append(round(res["p99_us"], 1))
            return round(res["median_us"], 1)
        record("rr_median_us", rr)

        def udp():
            srv = self.iperf_server(t.peerns, IPERF_PORT, PEER)
            try:
                res = json.loads(self.guest.run(
                    ["iperf3", "-J", "-u", "-b", "0", "-l", "1400", "-c", PEER, "-p",
                     str(IPERF_PORT), "-t", secs, "--connect-timeout", "3000"],
                    timeout=limit, check=False).stdout)
            finally:
                stop(srv, grace=2)
            if res.get("error"):
                raise RuntimeError(f"iperf3: {res['error']}")
            s = res["end"]["sum"]
            out.setdefault("udp_1400_loss_pct", []).append(round(s["lost_percent"], 2))
            return round(s["bits_per_second"] * (1 - s["lost_percent"] / 100) / 1e9, 3)
        record("udp_1400_received_gbps", udp)
        out.setdefault("rss_peak_mb", []).append(status_mb(pid, "VmHWM"))


# ----------------------------------------------------------------------------- report
def notes_for(results: dict, notes: dict, summary: dict, seconds: float) -> dict:
    """metric -> ["tool: note", ...]: failures, spread, stalls, retransmissions, loss,
    saturated relay."""
    out: dict = {}
    for tool, per in notes.items():
        for metric, items in per.items():
            out.setdefault(metric, []).extend(f"{tool}: {n}" for n in items)
    for metric, row in summary.items():
        for tool, r in row.items():
            if not isinstance(r, dict) or not r.get("median"):
                continue
            spread = (r["max"] - r["min"]) / abs(r["median"])
            if r["n"] > 1 and spread > SPREAD_NOTE and metric.endswith(
                    ("_gbps", "_us", "_ms", "_mb")) and ":" not in metric:
                out.setdefault(metric, []).append(f"{tool}: spread {spread:.0%}")
    for tool, res in results.items():
        for metric in ("tcp_guest_to_peer_gbps", "tcp_peer_to_guest_fwd_gbps"):
            rt = [v for v in res.get(metric.replace("_gbps", "_retrans"), []) if v]
            if rt:
                out.setdefault(metric, []).append(f"{tool}: retrans {rt}")
        loss = [v for v in res.get("udp_1400_loss_pct", []) if v is not None]
        if loss:
            out.setdefault("udp_1400_received_gbps", []).append(
                f"{tool}: loss {statistics.median(loss):g} %")
        for metric, vals in res.items():
            if metric.startswith("relay_cpu_s:") and "gbps" in metric:
                v = [x for x in vals if x is not None]
                if v and statistics.median(v) > 0.9 * seconds:
                    out.setdefault(metric, []).append(f"{tool}: relay saturated")
    return out


def render(results: dict, notes: dict, seconds: float) -> tuple[dict, str, dict]:
    """bench.summarize's table (medians, min-max, ratios of the first tool to the others)
    with a notes column."""
    summary, table = bench.summarize(results)
    extra = notes_for(results, notes, summary, seconds)
    lines = table.split("\n")
    out = [lines[0] + " notes |", lines[1] + "---|"]
    for line in lines[2:]:
        metric = line.split("|")[1].strip()
        out.append(line + f" {'; '.join(extra.get(metric, []))} |")
    return summary, "\n".join(out), extra


def versions() -> str:
    def first_line(cmd):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (res.stdout or res.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return "; ".join([f"passt-2026: {first_line([TOOLS['passt-2026'], '--version'])}",
                      "passt-2023: Debian " + first_line(
                          ["dpkg-query", "-W", "-f", "${Version}", "passt"]),
                      first_line(["iperf3", "--version"])])


def write(a, machine: str, results: dict, notes: dict, logs: dict, extra: dict) -> str:
    summary, table, metric_notes = render(
        {k: v for k, v in results.items() if v}, notes, a.seconds)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"machine": machine, "command": " ".join(sys.argv), "raw": results,
                   "summary": summary, "notes": metric_notes, "logs": logs, **extra}, f,
                  indent=1)
    parts = [machine, "", f"launcher floor (ip netns exec + setpriv + /bin/true): "
             f"{extra.get('launcher_floor_ms')} ms", "",
             "median (min-max); ratios of medians", "", table, ""]
    for tool, items in logs.items():
        for item in items:
            parts.append(f"{tool} {item}")
    report = "\n".join(parts) + "\n"
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(report)
    return report


def check_machine(tools: list[str]) -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root (it creates network namespaces); translators run "
                         "unprivileged")
    missing = [x for x in ("gcc", "iperf3", "ip", "setpriv", "ss") if env.which(x) is None]
    missing += [TOOLS[n] for n in tools if TOOLS[n] and not os.access(TOOLS[n], os.X_OK)]
    if not os.access(env.VENV_PYTHON, os.X_OK):
        missing.append(env.VENV_PYTHON)
    try:
        env.pw_test_user()
    except KeyError:
        missing.append(f"user {env.TEST_USER}")
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}; {env.FIX}")


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="iperf3 duration")
    p.add_argument("--short", type=float, default=3.0, help="RR duration")
    p.add_argument("--startups", type=int, default=10, help="starts per tool for the "
                   "time to listen")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--out", default="passt-bench-results")
    a = p.parse_args(argv)
    tools = a.tools.split(",")
    if set(tools) - set(TOOLS) or not tools:
        raise SystemExit(f"--tools: choose from {', '.join(TOOLS)}")
    check_machine(tools)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    machine = (f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Linux "
               f"{platform.release()}, Python {platform.python_version()}; {versions()}; "
               f"{a.reps} repetitions, iperf3 {a.seconds:g} s, RR {a.short:g} s, "
               f"{a.startups} starts; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results: dict = {n: {} for n in tools}
    notes: dict = {n: {} for n in tools}
    logs: dict = {n: [] for n in tools}
    extra: dict = {}
    report = ""
    t0 = time.monotonic()
    with Topology() as t:
        b = PasstBench(t, a.seconds, a.short, a.out)
        extra["launcher_floor_ms"] = b.launcher_floor(5)
        print(f"launcher floor: {extra['launcher_floor_ms']} ms", flush=True)
        for name in tools:                                  # warm-up, not counted
            try:
                b.startup_once(name, -1)
            except Exception as e:
                print(f"  {name} warm-up start: FAILED {e}", flush=True)
        for i in range(a.startups):
            for name in tools:
                try:
                    results[name].setdefault("startup_listen_ms", []).append(
                        b.startup_once(name, i))
                except Exception as e:
                    results[name].setdefault("startup_listen_ms", []).append(None)
                    notes[name].setdefault("startup_listen_ms", []).append(str(e)[:200])
        for name in tools:
            print(f"  {name} startup_listen_ms: {results[name]['startup_listen_ms']}",
                  flush=True)
        for rep in range(a.reps):
            print(f"repetition {rep + 1}/{a.reps} ({time.monotonic() - t0:.0f} s)",
                  flush=True)
            for name in tools:
                run = Run(b, name, rep)
                try:
                    run.start()
                    b.measure(run, results[name], notes[name])
                except Exception as e:          # reported, and the run goes on
                    print(f"  {name}: FAILED in repetition {rep + 1}: {e}", flush=True)
                    notes[name].setdefault("rss_connected_idle_mb", []).append(
                        f"rep {rep + 1}: run failed: {str(e)[:300]}")
                finally:
                    got = run.stop()
                    for key, value in got.items():
                        if key == "log":
                            logs[name] += [f"rep {rep + 1} log: {ln}" for ln in value]
                        else:
                            logs[name].append(f"rep {rep + 1} {key}: {value}")
            report = write(a, machine, results, notes, logs, extra)
    print(f"total {time.monotonic() - t0:.0f} s\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
