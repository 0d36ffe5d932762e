"""Side-by-side benchmark: pypasta, Debian's pasta and Debian's slirp4netns in one run.

Run as root from the repository (after `bash tests/install-deps.sh`):

    python3 tests/bench/bench.py [--reps 3] [--seconds 10] [--out bench-results]

Every tool runs as the unprivileged test user on the hermetic topology of the integration tests
(host netns <-veth-> peer netns; servers on the peer's 198.18.0.1 play the internet). The tools
are interleaved: each repetition runs every metric for pypasta, then pasta, then slirp4netns
(`--configure --mtu=65520`, port forwarding through its API socket). Results: the medians with
min-max of the repetitions and the ratios pypasta/pasta and pypasta/slirp4netns, written to
OUT/results.json and OUT/results.md (the table the README carries), and printed.

`--pypasta LABEL=DIR` (repeatable) adds pypasta run from another source tree as tool
pypasta@LABEL, interleaved with the others: a change is measured against its base in one run,
for example `git worktree add --detach /tmp/base BASE` then `--tools pypasta --pypasta
base=/tmp/base`. `--pypasta-option LABEL=OPTION` (repeatable) adds OPTION to that variant's
command line: `--pypasta nofilter=. --pypasta-option nofilter=--no-seccomp` measures the
seccomp filter against the same tree without it.

Metrics (namespace = the tool's namespace, peer = the internet side):
- TCP throughput, iperf3 single stream: namespace -> peer, peer -> namespace (`-R`), peer ->
  namespace server through `-t` (slirp4netns: its hostfwd), and the spliced loopback paths
  (host 127.0.0.1 -> `-t`, namespace 127.0.0.1 -> `-T`; pasta and pypasta only);
- 1-byte TCP request/response latency, namespace -> peer (median and p99), with client, server
  and tool pinned to CPU 1, and unpinned; connect+close rate the same two ways (rrtool.py);
- UDP throughput received and loss, namespace -> peer, iperf3 `-u -b 0` with 1400- and
  8000-byte datagrams;
- tool RSS idle (after start) and peak (VmHWM), RSS after 100,000 connections (first
  repetition), tool CPU seconds per test, start-up time from exec to the command running with a
  route, and to its first successful connect to the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from helpers import env, wait_until                        # noqa: E402
from helpers.proc import descendants                       # noqa: E402
from helpers.topology import Topology                      # noqa: E402

PEER = "198.18.0.1"
TOOLS = ("pypasta", "pasta", "slirp4netns")
IPERF_PORT, FWD_PORT, SPLICE_T_PORT, SPLICE_TT_PORT, RR_PORT, CONN_PORT = (
    5201, 5301, 5302, 5303, 5401, 5399)
CPU = "1"
CHURN = 100_000


class Tool:
    """One network tool serving a namespace that runs `sleep`."""

    def __init__(self, t: Topology, name: str, src: str | None = None, extra=()):
        self.t, self.name = t, name
        self.src = src                  # pypasta variants: a copy of another source tree
        self.extra = list(extra)        # ... and options of their own
        self.pids: list[int] = []
        self.nspid = None
        self.proc = None
        self.slirp = None

    # ------------------------------------------------------------------------- lifecycle
    def args(self) -> list[str]:
        return ["--config-net", "-t", f"{FWD_PORT},{SPLICE_T_PORT}", "-u", str(FWD_PORT),
                "-T", str(SPLICE_TT_PORT), "-U", "none", *self.extra]

    def argv(self, cmd: list[str]) -> list[str]:
        if self.name.startswith("pypasta"):
            argv = Topology.pypasta_argv([*self.args(), "--", *cmd], "rootless")
            return ["env", f"PYTHONPATH={self.src}", *argv] if self.src else argv
        return ["pasta", *self.args(), "--", *cmd]

    def start(self, cmd=None) -> None:
        """Start with `sleep` in the namespace and wait until it runs; or start `cmd` and
        return at once (slirp4netns: once it was started), for the start-up measurement."""
        ready = os.path.join(self.t.workdir, f"ready-{self.name.replace('/', '_')}")
        if os.path.exists(ready):
            os.unlink(ready)
        measuring = cmd is not None
        cmd = cmd or ["sh", "-c", f"touch {ready}; exec sleep 100000"]
        if self.name == "slirp4netns":
            self.proc = self.t.hostns.popen(["unshare", "--user", "--map-root-user", "--net",
                                             *cmd], user="rootless", name="slirp-ns")
            self.nspid = self.proc.pid
            api = os.path.join(self.t.workdir, "slirp.sock")
            if os.path.exists(api):
                os.unlink(api)
            # Wait for the new *user* namespace: before `ip netns exec` has switched, the
            # process is still in this process's namespaces, whose netns is not the topology's
            # host netns either (slirp4netns would then configure a tap in the wrong one).
            own = os.readlink("/proc/self/ns/user")
            wait_until(lambda: _userns(self.nspid) not in (None, own) or
                       self.proc.poll() is not None, 10, "slirp namespace", interval=0.0005)
            self.slirp = self.t.hostns.popen(
                ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                 "--api-socket", api, str(self.nspid), "tap0"], user="rootless", name="slirp")
            self.pids = [self.slirp.pid]
            if measuring:
                return
            wait_until(lambda: self.ns_run(["ip", "-4", "route", "show", "default"]).strip()
                       or self.slirp.poll() is not None, 10, "slirp4netns configured")
            wait_until(lambda: os.path.exists(api), 10, "slirp4netns API socket")
            for proto in ("tcp", "udp"):
                _slirp_api(api, {"execute": "add_hostfwd", "arguments": {
                    "proto": proto, "host_addr": "0.0.0.0", "host_port": FWD_PORT,
                    "guest_port": FWD_PORT}})
        else:
            self.proc = self.t.hostns.popen(self.argv(cmd), user="rootless", name=self.name)
            self.pids = [self.proc.pid]
            if measuring:
                return
            wait_until(lambda: os.path.exists(ready) or self.proc.poll() is not None, 20,
                       f"{self.name} namespace")
            mine = _netns(self.proc.pid)
            inside = [p for p in descendants([self.proc.pid]) if _netns(p) not in (None, mine)]
            if not inside:
                raise SystemExit(f"{self.name}: no process in its namespace: "
                                 f"{self.t.logs(self.proc)}")
            self.nspid = min(inside)
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} did not start: {self.t.logs(self.proc)}")

    def stop(self) -> None:
        # The namespace's PID 1 ignores SIGTERM (no handler): SIGKILL whatever is left inside.
        inside = descendants([p.pid for p in (self.slirp, self.proc) if p is not None])
        if self.nspid is not None:
            inside.add(self.nspid)
        for p in (self.slirp, self.proc):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        for pid in inside:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = self.slirp = self.nspid = None

    # ------------------------------------------------------------------------- helpers
    def ns_cmd(self, cmd: list[str], pin: bool = False) -> list[str]:
        pre = ["taskset", "-c", CPU] if pin else []
        return ["nsenter", "-t", str(self.nspid), "-n", *pre, *cmd]

    def ns_run(self, cmd: list[str], timeout: float = 60, pin: bool = False) -> str:
        return subprocess.run(self.ns_cmd(cmd, pin), capture_output=True, text=True,
                              timeout=timeout, env=env.root_env()).stdout

    def cpu(self) -> float:
        """CPU seconds used so far by the tool (all its threads)."""
        total = 0.0
        for pid in self.pids:
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total

    def status(self, key: str) -> float:
        """VmRSS/VmHWM of the tool in MB."""
        total = 0.0
        for pid in self.pids:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith(key + ":"):
                    total += int(line.split()[1]) / 1024
        return total

    def pin(self, on: bool, extra=()) -> None:
        for pid in [*self.pids, *extra]:
            subprocess.run(["taskset", "-a", "-p", "-c", CPU if on else "0-1", str(pid)],
                           capture_output=True, check=True)

    def addr(self) -> str:
        """Where the peer reaches the namespace's forwarded ports."""
        return self.t.host_ip4


def _userns(pid: int):
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


def _netns(pid: int):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _slirp_api(path: str, req: dict) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(json.dumps(req).encode())
    s.shutdown(socket.SHUT_WR)
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    s.close()
    reply = json.loads(out)
    if "error" in reply:
        raise SystemExit(f"slirp4netns API: {reply}")
    return reply


def _iperf(res: dict) -> float:
    end = res["end"]
    if "sum_received" in end:
        return end["sum_received"]["bits_per_second"] / 1e9
    return end["sum"]["bits_per_second"] / 1e9


class Bench:
    def __init__(self, t: Topology, seconds: float, short: float):
        self.t, self.seconds, self.short = t, seconds, short
        self.py = env.python_for("root")
        self.rrtool = os.path.join(t.workdir, "rrtool.py")
        with open(os.path.join(HERE, "rrtool.py")) as src, open(self.rrtool, "w") as dst:
            dst.write(src.read())
        self.servers()

    def servers(self) -> None:
        t = self.t
        t.peer_popen(["iperf3", "-s", "-B", PEER, "-p", str(IPERF_PORT)], name="iperf-peer")
        self.rr_server = t.peer_popen([self.py, self.rrtool, "server", PEER, str(RR_PORT)],
                                      name="rr-peer")
        t.peer_popen(["socat", f"TCP4-LISTEN:{CONN_PORT},bind={PEER},fork,reuseaddr",
                      "SYSTEM:true"], name="conn-peer")
        t.host_popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(SPLICE_TT_PORT)],
                     name="iperf-host")
        for port in (IPERF_PORT, RR_PORT, CONN_PORT):
            t.wait_listening("peer", port)
        t.wait_listening("host", SPLICE_TT_PORT)

    def measure(self, tool: Tool, out: dict, churn: bool) -> None:
        def record(metric, fn):
            c0 = tool.cpu()
            try:
                value = fn()
            except Exception as e:                      # one failed metric is reported
                print(f"  {tool.name} {metric}: FAILED {e}", flush=True)
                value = None
            out.setdefault(metric, []).append(value)
            out.setdefault(f"cpu_s:{metric}", []).append(round(tool.cpu() - c0, 3))
            print(f"  {tool.name} {metric}: {value}", flush=True)

        t, secs = self.t, str(self.seconds)
        out.setdefault("rss_idle_mb", []).append(round(tool.status("VmRSS"), 1))
        iperf_ns = lambda *a: _iperf(json.loads(tool.ns_run(
            ["iperf3", "-J", "-c", *a, "-t", secs], timeout=self.seconds + 30)))
        record("tcp_ns_to_peer_gbps", lambda: iperf_ns(PEER, "-p", str(IPERF_PORT)))
        record("tcp_peer_to_ns_gbps", lambda: iperf_ns(PEER, "-p", str(IPERF_PORT), "-R"))
        srv = subprocess.Popen(tool.ns_cmd(["iperf3", "-s", "-p", str(FWD_PORT)]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env.root_env())
        srv2 = subprocess.Popen(tool.ns_cmd(["iperf3", "-s", "-p", str(SPLICE_T_PORT)]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env.root_env())
        try:
            wait_until(lambda: f":{FWD_PORT} " in tool.ns_run(["ss", "-Hltn"]), 10, "iperf3")
            wait_until(lambda: f":{SPLICE_T_PORT} " in tool.ns_run(["ss", "-Hltn"]), 10,
                       "iperf3")
            record("tcp_peer_to_ns_fwd_gbps", lambda: _iperf(json.loads(t.peer(
                ["iperf3", "-J", "-c", tool.addr(), "-p", str(FWD_PORT), "-t", secs],
                timeout=self.seconds + 30).stdout)))
            if tool.name != "slirp4netns":
                record("tcp_splice_host_to_ns_gbps", lambda: _iperf(json.loads(t.host(
                    ["iperf3", "-J", "-c", "127.0.0.1", "-p", str(SPLICE_T_PORT), "-t", secs],
                    timeout=self.seconds + 30).stdout)))
                record("tcp_splice_ns_to_host_gbps", lambda: iperf_ns(
                    "127.0.0.1", "-p", str(SPLICE_TT_PORT)))
        finally:
            srv.terminate()
            srv2.terminate()
            srv.wait()
            srv2.wait()
        for size in (1400, 8000):
            def udp(size=size):
                res = json.loads(tool.ns_run(["iperf3", "-J", "-u", "-b", "0", "-l", str(size),
                                              "-c", PEER, "-p", str(IPERF_PORT), "-t", secs],
                                             timeout=self.seconds + 30))
                s = res["end"]["sum"]
                out.setdefault(f"udp_{size}_loss_pct", []).append(round(s["lost_percent"], 2))
                return round(s["bits_per_second"] * (1 - s["lost_percent"] / 100) / 1e9, 3)
            record(f"udp_{size}_received_gbps", udp)
        for pinned in (True, False):
            tag = "pinned" if pinned else "unpinned"
            tool.pin(pinned, [self.rr_server.pid])
            try:
                def rr(pinned=pinned):
                    res = json.loads(tool.ns_run([self.py, self.rrtool, "rr", PEER, str(RR_PORT),
                                                  "--seconds", str(self.short)], pin=pinned))
                    out.setdefault(f"rr_p99_us_{'pinned' if pinned else 'unpinned'}",
                                   []).append(round(res["p99_us"], 1))
                    return round(res["median_us"], 1)
                record(f"rr_median_us_{tag}", rr)
                record(f"cc_per_s_{tag}", lambda pinned=pinned: round(json.loads(tool.ns_run(
                    [self.py, self.rrtool, "cc", PEER, str(RR_PORT), "--seconds",
                     str(self.short)], pin=pinned))["rate"]))
            finally:
                tool.pin(False, [self.rr_server.pid])
        if churn:
            def churn_rss():
                before = tool.status("VmRSS")
                done = 0
                while done < CHURN:
                    res = json.loads(tool.ns_run([self.py, self.rrtool, "cc", PEER,
                                                  str(RR_PORT), "--seconds", "20"], timeout=60))
                    done += res["count"]
                out.setdefault("rss_before_churn_mb", []).append(round(before, 1))
                return round(tool.status("VmRSS"), 1)
            record("rss_after_100k_conns_mb", churn_rss)
        out.setdefault("rss_peak_mb", []).append(round(tool.status("VmHWM"), 1))

    def floor(self, reps: int) -> int:
        """RR and connect+close from the host namespace straight to the peer, pinned."""
        subprocess.run(["taskset", "-a", "-p", "-c", CPU, str(self.rr_server.pid)],
                       capture_output=True, check=True)
        got: dict = {"rr_median_us_pinned": [], "cc_per_s_pinned": []}
        for _ in range(reps):
            for mode, key, metric in (("rr", "median_us", "rr_median_us_pinned"),
                                      ("cc", "rate", "cc_per_s_pinned")):
                res = json.loads(self.t.host(["taskset", "-c", CPU, self.py, self.rrtool, mode,
                                              PEER, str(RR_PORT), "--seconds", str(self.short)],
                                             timeout=self.short + 30).stdout)
                got[metric].append(round(res[key], 1))
        for metric, values in got.items():
            print(f"no translator: {metric} median {statistics.median(values)} ({values})")
        return 0

    def startup(self, tool: Tool, out: dict) -> None:
        """exec -> command running with a route, and -> its first connect to the peer."""
        w = self.t.workdir
        fifo = os.path.join(w, f"startup-{tool.name.replace('/', '_')}")
        if os.path.exists(fifo):
            os.unlink(fifo)
        os.mkfifo(fifo, 0o666)
        os.chmod(fifo, 0o666)
        script = ("until ip -4 route show default | grep -q .; do :; done; echo route > {f}; "
                  "until socat -u /dev/null TCP4:{p}:{c} 2>/dev/null; do :; done; "
                  "echo connect > {f}; exec sleep 100000").format(f=fifo, p=PEER, c=CONN_PORT)
        marks = []

        def reader():
            for _ in range(2):
                with open(fifo) as f:
                    f.read()
                marks.append(time.monotonic())

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        t0 = time.monotonic()
        tool.start(["sh", "-c", script])
        th.join(20)
        tool.stop()
        if len(marks) != 2:
            raise SystemExit(f"{tool.name}: start-up marks missing ({marks})")
        out.setdefault("startup_route_ms", []).append(round((marks[0] - t0) * 1000, 1))
        out.setdefault("startup_connect_ms", []).append(round((marks[1] - t0) * 1000, 1))
        print(f"  {tool.name} startup: {out['startup_route_ms'][-1]} ms, "
              f"{out['startup_connect_ms'][-1]} ms", flush=True)


HIGHER_IS_BETTER = ("gbps", "per_s")


def summarize(results: dict) -> tuple[dict, str]:
    """The table: one column per tool in the order run, then the first tool's ratio to each
    of the others (pypasta/pasta, pypasta/slirp4netns; or pypasta/pypasta@base)."""
    summary: dict = {}
    metrics = []
    tools = list(results)
    first, others = tools[0], tools[1:]
    for tool in tools:
        for m in results.get(tool, {}):
            if m not in metrics:
                metrics.append(m)
    lines = ["| metric | " + " | ".join(tools + [f"{first}/{o}" for o in others]) + " |",
             "|---" * (len(tools) + len(others) + 1) + "|"]
    for m in metrics:
        row = {}
        for tool in tools:
            vals = [v for v in results.get(tool, {}).get(m, []) if v is not None]
            if vals:
                row[tool] = {"median": statistics.median(vals), "min": min(vals),
                             "max": max(vals), "n": len(vals)}
        summary[m] = row
        cells = []
        for tool in tools:
            r = row.get(tool)
            cells.append(f"{r['median']:g} ({r['min']:g}-{r['max']:g})" if r else "-")
        ratios = []
        for other in others:
            a, b = row.get(first), row.get(other)
            if a and b and b["median"]:
                ratios.append(f"{a['median'] / b['median']:.2f}")
                summary[m][f"ratio_vs_{other}"] = a["median"] / b["median"]
            else:
                ratios.append("-")
        lines.append(f"| {m} | " + " | ".join(cells + ratios) + " |")
    return summary, "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0, help="iperf3 duration")
    p.add_argument("--short", type=float, default=5.0, help="RR and connect-rate duration")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--pypasta", action="append", default=[], metavar="LABEL=DIR",
                   help="also run pypasta from the source tree DIR (another checkout or "
                        "worktree), as tool pypasta@LABEL, interleaved with the others: a "
                        "before/after comparison in one run")
    p.add_argument("--pypasta-option", action="append", default=[], metavar="LABEL=OPTION",
                   help="add OPTION to the command line of variant pypasta@LABEL (e.g. "
                        "nofilter=--no-seccomp)")
    p.add_argument("--no-churn", action="store_true", help="skip the 100,000-connection RSS")
    p.add_argument("--startup-only", action="store_true", help="only the start-up times")
    p.add_argument("--floor", action="store_true",
                   help="only the RR and connect+close figures with no translator at all (the "
                        "host namespace straight to the peer, pinned as in the pinned tests): "
                        "what the client, the server and the kernel cost on their own")
    p.add_argument("--out", default="bench-results")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root (it creates network namespaces); tools run unprivileged")
    found = env.problems()
    if found:
        raise SystemExit(env.problems_message(found))
    tools = a.tools.split(",")
    variants = {}
    options: dict = {}
    for spec in a.pypasta_option:
        label, sep, opt = spec.partition("=")
        if not sep or not opt.startswith("-"):
            raise SystemExit(f"--pypasta-option {spec}: expected LABEL=OPTION")
        options.setdefault(f"pypasta@{label}", []).append(opt)
    for spec in a.pypasta:
        label, sep, src = spec.partition("=")
        if not sep or not label or not os.path.isdir(os.path.join(src, "pasta")):
            raise SystemExit(f"--pypasta {spec}: expected LABEL=DIR, DIR a pypasta source tree")
        variants[f"pypasta@{label}"] = env.copy_sources(src)
        tools.append(f"pypasta@{label}")
    if set(options) - set(variants):
        unknown = ", ".join(sorted(set(options) - set(variants)))
        raise SystemExit(f"--pypasta-option for no --pypasta: {unknown}")
    results: dict = {name: {} for name in tools}
    with Topology() as t:
        bench = Bench(t, a.seconds, a.short)
        # The first start of the rootless copy byte-compiles it: not part of any measurement.
        if a.floor:
            return bench.floor(a.reps)
        for name in ("pypasta", *variants):
            warm = Tool(t, name, variants.get(name), options.get(name, ()))
            warm.start()
            warm.stop()
        for rep in range(a.reps):
            print(f"repetition {rep + 1}/{a.reps}", flush=True)
            for name in tools:
                tool = Tool(t, name, variants.get(name), options.get(name, ()))
                try:
                    bench.startup(tool, results[name])
                    if not a.startup_only:
                        tool.start()
                        bench.measure(tool, results[name], churn=rep == 0 and not a.no_churn)
                except Exception as e:          # reported, and the run goes on
                    print(f"  {name}: FAILED in repetition {rep + 1}: {e}", flush=True)
                    results[name].setdefault("failures", []).append(f"rep {rep + 1}: {e}")
                finally:
                    tool.stop()
            table = write(a, results)
    print(table)
    return 0


def write(a, results: dict) -> str:
    """Write results.json and results.md (after every repetition); returns the report."""
    summary, table = summarize({k: {m: v for m, v in r.items() if m != "failures"}
                                for k, r in results.items()})
    machine = (f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Linux "
               f"{platform.release()}, Python {platform.python_version()}, {a.reps} repetitions, "
               f"iperf3 {a.seconds:g} s, RR/connect {a.short:g} s, "
               f"{time.strftime('%Y-%m-%d')}")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"machine": machine, "raw": results, "summary": summary}, f, indent=1)
    report = f"{machine}\n\nmedian (min-max); ratios of medians\n\n{table}\n"
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(report)
    return report


if __name__ == "__main__":
    sys.exit(main())
