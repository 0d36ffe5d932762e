#!/usr/bin/env python3
"""Differential check of pypasta's -t/-u/-T/-U parser against a real pasta 2026 binary.

pasta parses every port option in one loop before it creates or joins any namespace, and dies
at the first bad one. Each run here ends its command line with `-U SENTINEL!`, which pasta
refuses ("Invalid port specifier 'SENTINEL!'") if nothing before it failed, so pasta never gets
past option parsing: no namespace, no socket, no listener. Its stderr is compared with the
lines `pasta.core.fwd_rule.fwd_table_parse()` gives for the same arguments (`FwdRuleError.lines`,
or the PortSpecError message), and for accepted specs the rules pasta made are probed: adding a
one-port spec that overlaps a rule makes pasta print "Forwarding configuration conflict: PROBE
versus RULE" with its own text of that rule.

    python3 tests/tools/portspec_oracle.py [--pasta /opt/passt-2026/pasta] [--cases 2000]
                                           [--seed 1] [--ephemeral 32768,60999]

`--ephemeral` must be the host's ip_local_port_range (read by default). The IFNAME capability
is assumed (SO_BINDTODEVICE: kernel 5.7+), as pasta probes it. Prints one line per difference
and a summary; exit status 1 if there was any.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pasta.core.fwd_rule import (IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE,  # noqa: E402
                                 FwdRuleError, FwdTable, fwd_caps, fwd_parse_ephemeral,
                                 fwd_rule_fmt, fwd_rule_parse, fwd_table_parse)
from pasta.plan.portspec import PortSpecError  # noqa: E402

SENTINEL = ["-U", "SENTINEL!"]
SENTINEL_LINE = "Invalid port specifier 'SENTINEL!'"
OPTS = {"t": (PIF_HOST, IPPROTO_TCP), "u": (PIF_HOST, IPPROTO_UDP),
        "T": (PIF_SPLICE, IPPROTO_TCP), "U": (PIF_SPLICE, IPPROTO_UDP)}
OPT_OF = {v: k for k, v in OPTS.items()}
NOISE = ("AVX2", "Started as root")         # pasta's start-up lines unrelated to parsing

ADDRS = ["0.0.0.0", "127.0.0.1", "[::]", "::", "::1", "[::1]", "10.0.0.1", "[10.0.0.1]",
         "fd00::2", "[fd00::2]", "*", "", "224.0.0.1", "ff02::1", "::ffff:10.0.0.1",
         "255.255.255.255", "1.2.3", "[::ffff:0.0.0.0]"]
TADDRS = ["0.0.0.0", "127.0.0.1", "[::]", "::", "::1", "10.0.0.1", "fd00::2", "224.0.0.1",
          "ff02::1"]
IFSPECS = ["", "", "", "%lo", "%eth0", "%.", "%..", "%", "%abcdefghijklmnop", "%abcdefghijklmno"]
FLAGS = [[], [], [], ["-4"], ["-6"], ["--no-udp"], ["--no-tcp"]]
GARBAGE = "0123456789:/,-~%[]*.afxlo auto all none ff::"


def run_pasta(pasta: str, args: list) -> list:
    out = subprocess.run([pasta, "-f", *args, *SENTINEL], capture_output=True, text=True,
                         timeout=10)
    return [line for line in (out.stdout + out.stderr).splitlines()
            if not any(n in line for n in NOISE)]


def caps_of(flags: list) -> int:
    return fwd_caps(v4="-6" not in flags, v6="-4" not in flags, tcp="--no-tcp" not in flags,
                    udp="--no-udp" not in flags, scan=True, ifname=True)


def ours(flags: list, opts: list, ephemeral) -> tuple:
    """(pasta's expected output lines, the table made)."""
    table = FwdTable(caps_of(flags))
    try:
        for opt, text in opts:
            table = fwd_table_parse(table, text, *OPTS[opt], ephemeral)
    except FwdRuleError as e:
        return list(e.lines), table
    except PortSpecError as e:
        return [str(e)], table
    return [SENTINEL_LINE], table


def port(rng: random.Random) -> str:
    return rng.choice(["1", "22", "80", "0", "65535", "65536", "32768", "60999", "61000",
                       str(rng.randint(1, 65535)), " 80", "+80", "-0", "080", "-1"])


def port_range(rng: random.Random) -> str:
    return f"{port(rng)}-{port(rng)}" if rng.random() < 0.4 else port(rng)


def chunk(rng: random.Random) -> str:
    k = rng.random()
    if k < 0.08:
        return "all" + rng.choice(["", ":10.0.0.1", ":[::]", ":fd00::2", ":0.0.0.0"])
    if k < 0.16:
        return "auto"
    if k < 0.35:
        return "~" + port_range(rng)
    text = port_range(rng)
    t = rng.random()
    if t < 0.15:
        text += ":" + port_range(rng)
    elif t < 0.25:
        text += ":" + rng.choice(TADDRS)
    elif t < 0.35:
        text += ":" + rng.choice(TADDRS) + "/" + port_range(rng)
    return text


def spec(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return "none"
    if rng.random() < 0.2:
        return "".join(rng.choice(GARBAGE) for _ in range(rng.randint(0, 14)))
    text = ",".join(chunk(rng) for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])))
    if rng.random() < 0.35:
        text = rng.choice(ADDRS) + rng.choice(IFSPECS) + "/" + text
    if rng.random() < 0.05:
        cut = rng.randint(0, len(text))
        text = text[:cut] + rng.choice(" x,:/-~%[]*") + text[cut:]
    return text


def probe_rules(pasta: str, flags: list, opts: list, table: FwdTable, ephemeral) -> list:
    """Differences between our rules and pasta's, found with one-port conflicting probes."""
    diffs = []
    base = flags + [a for opt, text in opts for a in (f"-{opt}", text)]
    for rule in table.rules:
        for p in sorted({rule.first, rule.last}):
            probe = fwd_rule_parse(str(p), rule.pif, rule.proto, table.caps, ephemeral)[0]
            first = next(r for r in table.rules if (r.pif, r.proto) == (rule.pif, rule.proto)
                         and r.first <= p <= r.last)
            want = (f"Forwarding configuration conflict: {fwd_rule_fmt(probe)} versus "
                    f"{fwd_rule_fmt(first)}")
            args = base + [f"-{OPT_OF[(rule.pif, rule.proto)]}", str(p)]
            got = run_pasta(pasta, args)
            if not got or got[0] != want:
                diffs.append((args, got, want))
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pasta", default="/opt/passt-2026/pasta")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ephemeral", default=None, help="MIN,MAX (default: the host's)")
    ap.add_argument("--probe", type=float, default=0.3,
                    help="share of accepted command lines whose rules are probed")
    a = ap.parse_args()
    if a.ephemeral:
        lo, hi = (int(x) for x in a.ephemeral.split(","))
        ephemeral = (lo, hi)
    else:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        ephemeral = fwd_parse_ephemeral(text) or (49152, 65535)
    rng = random.Random(a.seed)
    diffs = accepted = probed = 0
    for _ in range(a.cases):
        flags = rng.choice(FLAGS)
        opts = [(rng.choice("tuTU"), spec(rng)) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        args = flags + [x for opt, text in opts for x in (f"-{opt}", text)]
        got = run_pasta(a.pasta, args)
        want, table = ours(flags, opts, ephemeral)
        if got != want:
            diffs += 1
            print(f"DIFF {args!r}\n  pasta: {got!r}\n  ours:  {want!r}")
            continue
        if want == [SENTINEL_LINE]:
            accepted += 1
            if table.rules and rng.random() < a.probe:
                probed += 1
                for args, got, want in probe_rules(a.pasta, flags, opts, table, ephemeral):
                    diffs += 1
                    print(f"RULE {args!r}\n  pasta: {got!r}\n  ours:  {want!r}")
    print(f"{a.cases} command lines, {accepted} accepted, {probed} probed, {diffs} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
