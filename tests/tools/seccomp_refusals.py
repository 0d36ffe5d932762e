#!/usr/bin/env python3
"""The syscalls pypasta's seccomp filter refused, from the kernel log.

The filter (pasta/setup/isolation.py) returns EPERM for any syscall outside its allow-list and
is installed with SECCOMP_FILTER_FLAG_LOG, so the kernel logs each refusal as an audit record
of type 1326 with `code=0x50000` (SECCOMP_RET_ERRNO; the errno itself is not logged), in dmesg
when no audit daemon takes them. The kernel rate limits these lines, so a burst shows only its
first records, never none. Other seccomp users that log errno refusals would show up too.

This is how the allow-list is measured: run the whole test suite (its summary runs this for
the span of the run) or the benchmark, then

    python3 tests/tools/seccomp_refusals.py --since UPTIME_SECONDS [--exclude-pid PID ...]

prints one line per refused syscall (name, number, count, pids). An empty output means the
filter refused nothing. Needs root (dmesg).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys

LINE = re.compile(r"^\[\s*(\d+\.\d+)\].*audit: type=1326 .*?\bpid=(\d+) .*?\bcomm=\"([^\"]*)\""
                  r".*?\barch=([0-9a-f]+) syscall=(\d+) .*?\bcode=0x50000\b")
HEADERS = {"c000003e": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
           "c00000b7": "/usr/include/asm-generic/unistd.h"}


def syscall_names(arch: str) -> dict[int, str]:
    try:
        text = open(HEADERS[arch]).read()
    except (KeyError, OSError):
        return {}
    return {int(m[2]): m[1] for m in re.finditer(r"#define __NR(?:3264)?_(\w+) (\d+)", text)}


def refusals(since: float = 0.0, exclude=()) -> list[tuple[str, int, int, list[int]]]:
    """[(name, number, count, pids)] of refusals logged after `since` (seconds since boot)."""
    out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout
    seen: dict = collections.defaultdict(lambda: [0, set()])
    for line in out.splitlines():
        m = LINE.match(line)
        if not m or float(m[1]) < since or int(m[2]) in exclude:
            continue
        entry = seen[(m[4], int(m[5]))]
        entry[0] += 1
        entry[1].add(int(m[2]))
    names = {arch: syscall_names(arch) for arch, _ in seen}
    return sorted((names[arch].get(nr, f"#{nr}"), nr, count, sorted(pids))
                  for (arch, nr), (count, pids) in seen.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--since", type=float, default=0.0, help="seconds since boot (/proc/uptime)")
    ap.add_argument("--exclude-pid", type=int, action="append", default=[])
    args = ap.parse_args()
    for name, nr, count, pids in refusals(args.since, set(args.exclude_pid)):
        print(f"{name} ({nr}): {count} refusals, pids {' '.join(map(str, pids))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
