"""Internet checksum candidates, measured: time per call and Gbit/s, each verified first.

Run from the repository (no root, no namespaces, standard library only; gcc optional):

    python3 tests/bench/csum_bench.py [--reps 7] [--seconds 0.05] [--sizes 64,1500,...]
                                      [--only NAME,...] [--no-cc] [--clock wall|cpu]
                                      [--json FILE]

Every candidate computes what `pasta.core.wire.csum.csum_partial(data, init)` returns: the
folded, non-inverted 16-bit one's complement sum of `data` (an odd length padded with a zero
byte) plus `init`. Before anything is timed, each candidate's result is compared with RFC 1071's
word loop (`reference`) on random data of every length 0-130 and of random lengths up to 65,535
(even and odd), on all-0xff and all-zero data, and with several `init` values; one mismatch and
the run stops.

Candidates:
- loop_struct, loop_memoryview: plain Python, a loop over the 16-bit words
  (`struct.iter_unpack('!H')`, or `memoryview.cast('H')` in host order, byte-swapped at the end:
  the one's complement sum is byte-order independent, RFC 1071 section 2(B)); carries folded at
  the end (RFC 1071 section 2(C), deferred carries);
- frombytes_mod: `int.from_bytes(data, 'big') % 0xffff`, the implementation before issue 17
  (the baseline of the ratios);
- frombytes_le: the same over `int.from_bytes(data, 'little')`, byte-swapped at the end;
- frombytes_chunks: `int.from_bytes` over 2 KiB chunks, summed, then `% 0xffff` (2**16 == 1
  modulo 0xffff, so the chunks' integers add up to a congruent value);
- array_sum, array_byteswap_sum: `sum(array('H', data))` in host order, the sum byte-swapped, or
  the array byte-swapped first;
- mv_sum_H, mv_sum_Q: `sum(memoryview(data).cast('H'))`, or with 64-bit words ('Q') and the
  tail through `int.from_bytes`, folded and byte-swapped;
- cc_ctypes: a 20-line C function built at run time with the system gcc (-O2) into a shared
  object in a temporary directory and called through ctypes; its build time and the cost of a
  call on 0 bytes are printed. Benchmark only: pypasta has no compiled code.
- csum_partial (this tree): `pasta.core.wire.csum.csum_partial` as this tree has it; since
  issue 17, `int.from_bytes`, halving folds `(v >> k) + (v & (2**k - 1))` (k a power of two)
  down to 2,048 bits, then `% 0xffff`, the odd-length pad and `init` applied to the 16-bit sum.
`noop` (returns 0) measures the loop and call overhead that every figure includes. Not
candidates: `zlib.adler32`/`crc32` and `binascii.crc_hqx` are other checksums, and the kernel's
`csum_partial()` cannot be called from user space.

Method: each repetition times every size and every candidate in turn (interleaved, so load
from other work spreads over all of them), a repetition of one (candidate, size) being enough
back-to-back calls on the same bytes object to last `--seconds`, after a warm-up that also sets
the count; `time.perf_counter_ns`, or with `--clock cpu` `time.thread_time_ns` (on a machine
busy with other work, wall-clock medians include time spent waiting for a CPU). Reported: the
median over `--reps` repetitions of the time per call with the min-max, Gbit/s of the median
(8 * size / time), and the baseline's median time divided by the candidate's (> 1: faster than
frombytes_mod).
"""

from __future__ import annotations

import argparse
import array
import ctypes
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pasta.core.wire.csum import csum_partial as pasta_csum_partial     # noqa: E402

SIZES = (64, 1500, 9000, 65480, 1501, 65479)
BASELINE = "frombytes_mod"
LITTLE = sys.byteorder == "little"
_from_bytes = int.from_bytes
_iter_unpack = struct.Struct("!H").iter_unpack


def _fold(s: int) -> int:
    """End-around carry down to 16 bits (0 stays 0, a non-zero sum never becomes 0)."""
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _swap(s: int) -> int:
    """Byte-swap a folded 16-bit sum: a host-order (little-endian) sum into network order."""
    return ((s & 0xFF) << 8) | (s >> 8)


def _host(s: int) -> int:
    """A folded sum of host-order words, in network order."""
    return _swap(s) if LITTLE else s


def reference(data, init: int = 0) -> int:
    """RFC 1071 section 4.1's loop: 16-bit big-endian words, odd byte padded, carries folded."""
    b = bytes(data) + b"\x00" * (len(data) & 1)
    s = init
    for i in range(0, len(b), 2):
        s += (b[i] << 8) | b[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return _fold(s)


# --------------------------------------------------------------------------- candidates
def noop(data, init: int = 0) -> int:
    return 0


def loop_struct(data, init: int = 0) -> int:
    n = len(data)
    s = init
    for (w,) in _iter_unpack(memoryview(data)[:n & ~1]):
        s += w
    if n & 1:
        s += data[n - 1] << 8
    return _fold(s)


def loop_memoryview(data, init: int = 0) -> int:
    n = len(data)
    s = 0
    for w in memoryview(data)[:n & ~1].cast("H"):
        s += w
    if n & 1:
        s += data[n - 1] << (0 if LITTLE else 8)
    return _fold(_host(_fold(s)) + init)


def frombytes_mod(data, init: int = 0) -> int:
    """pasta.core.wire.csum.csum_partial before issue 17 (verbatim)."""
    v = _from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    v += init
    if not v:
        return 0
    return v % 0xFFFF or 0xFFFF


def frombytes_le(data, init: int = 0) -> int:
    # Little-endian words: an odd last byte is the low byte of a word whose high byte is 0.
    v = _from_bytes(data, "little")
    if v:
        v = _swap(v % 0xFFFF or 0xFFFF)
    v += init
    if not v:
        return 0
    return v % 0xFFFF or 0xFFFF


CHUNK = 2048


def frombytes_chunks(data, init: int = 0) -> int:
    n = len(data)
    if n <= CHUNK:
        return frombytes_mod(data, init)
    mv = memoryview(data)
    even = n & ~1
    v = sum(map(_from_bytes, [mv[i:min(i + CHUNK, even)] for i in range(0, even, CHUNK)],
                itertools.repeat("big")))
    if n & 1:
        v += data[n - 1] << 8
    v += init
    if not v:
        return 0
    return v % 0xFFFF or 0xFFFF


def _array(data) -> array.array:
    n = len(data)
    a = array.array("H")
    a.frombytes(memoryview(data)[:n & ~1])
    if n & 1:
        a.append(data[n - 1] << (0 if LITTLE else 8))
    return a


def array_sum(data, init: int = 0) -> int:
    return _fold(_host(_fold(sum(_array(data)))) + init)


def array_byteswap_sum(data, init: int = 0) -> int:
    a = _array(data)
    if LITTLE:
        a.byteswap()
    return _fold(sum(a) + init)


def mv_sum_H(data, init: int = 0) -> int:
    n = len(data)
    s = sum(memoryview(data)[:n & ~1].cast("H"))
    if n & 1:
        s += data[n - 1] << (0 if LITTLE else 8)
    return _fold(_host(_fold(s)) + init)


def mv_sum_Q(data, init: int = 0) -> int:
    n = len(data)
    mv = memoryview(data)
    s = sum(mv[:n & ~7].cast("Q"))
    # A 64-bit word is four 16-bit words, each at an even offset: 2**16 == 1 (mod 0xffff).
    tail = _from_bytes(mv[n & ~7:], sys.byteorder)
    s += tail if LITTLE or not n & 1 else tail << 8
    return _fold(_host(_fold(s)) + init)


C_SOURCE = r"""
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Folded, non-inverted one's complement sum of p[0..n) plus init (RFC 1071). */
uint32_t csum_partial(const unsigned char *p, size_t n, uint64_t init)
{
    uint64_t s = 0;
    uint32_t w = 0;
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {            /* host-order 32-bit words: two 16-bit words */
        memcpy(&w, p + i, 4);
        s += w;
    }
    w = 0;
    memcpy(&w, p + i, n - i);               /* the tail, zero-padded in place */
    s += w;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    s = ((s & 0xff) << 8) | (s >> 8);       /* RFC 1071 2(B): byte order independence */
#endif
    s += init & 0xffffffff;
    s += init >> 32;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}
"""


def build_cc() -> tuple:
    """Compile C_SOURCE with gcc into a temporary shared object: (function, build ms) or
    (None, reason)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return None, "no gcc or cc on PATH"
    with tempfile.TemporaryDirectory(prefix="csum-bench-") as tmp:
        src, lib = os.path.join(tmp, "csum.c"), os.path.join(tmp, "csum.so")
        with open(src, "w") as f:
            f.write(C_SOURCE)
        t0 = time.perf_counter_ns()
        r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", lib, src],
                           capture_output=True, text=True)
        build_ms = (time.perf_counter_ns() - t0) / 1e6
        if r.returncode:
            return None, f"{cc} failed: {r.stderr.strip()}"
        so = ctypes.CDLL(lib)           # mapped: the file may go with the directory
    fn = so.csum_partial
    fn.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64)
    fn.restype = ctypes.c_uint32

    def cc_ctypes(data, init: int = 0) -> int:
        return fn(data, len(data), init)        # data: bytes (c_char_p passes it, no copy)

    return cc_ctypes, build_ms


CANDIDATES = [noop, loop_struct, loop_memoryview, frombytes_mod, frombytes_le, frombytes_chunks,
              array_sum, array_byteswap_sum, mv_sum_H, mv_sum_Q, pasta_csum_partial]
LABELS = {pasta_csum_partial: "csum_partial (this tree)"}


def label(f) -> str:
    return LABELS.get(f, f.__name__)


# --------------------------------------------------------------------------- verification
def cases(rng: random.Random):
    """(data, init) pairs: every length 0-130, random lengths, the benchmark's sizes, 65,535."""
    lengths = list(range(131)) + [rng.randrange(131, 65536) for _ in range(12)]
    lengths += [1499, 1500, 1501, 8999, 9000, 65478, 65479, 65480, 65534, 65535]
    inits = (0, 1, 0xFFFF, 0x1FFFE, (1 << 32) - 1)
    for n in lengths:
        for data in (rng.randbytes(n), b"\xff" * n, bytes(n)):
            yield data, 0
            yield data, rng.choice(inits)
            yield data, rng.getrandbits(32)


def verify(funcs: list, seed: int) -> int:
    """Every function against `reference`; raises SystemExit on the first mismatch."""
    count = 0
    for data, init in cases(random.Random(seed)):
        want = reference(data, init)
        for f in funcs:
            got = f(data, init)
            if got != want:
                raise SystemExit(f"{label(f)}: wrong sum {got:#06x} (want {want:#06x}) for "
                                 f"{len(data)} bytes starting {data[:8].hex()}, init {init:#x}")
        count += 1
    return count


# --------------------------------------------------------------------------- timing
CLOCK = time.perf_counter_ns       # --clock cpu: time.thread_time_ns


def per_call_ns(f, data, iters: int) -> float:
    t0 = CLOCK()
    for _ in itertools.repeat(None, iters):
        f(data)
    return (CLOCK() - t0) / iters


def calibrate(f, data, seconds: float) -> int:
    """Warm up and find how many calls last `seconds`."""
    iters = 1
    while True:
        ns = per_call_ns(f, data, iters) * iters
        if ns >= seconds * 1e9 / 10:
            return max(1, round(iters * seconds * 1e9 / ns))
        iters *= 4


def run(funcs: list, sizes: list, reps: int, seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    payload = {n: rng.randbytes(n) for n in sizes}
    iters = {(f, n): calibrate(f, payload[n], seconds) for n in sizes for f in funcs}
    times: dict = {label(f): {n: [] for n in sizes} for f in funcs}
    for rep in range(reps):
        print(f"repetition {rep + 1}/{reps}", file=sys.stderr, flush=True)
        for n in sizes:
            for f in funcs:
                times[label(f)][n].append(per_call_ns(f, payload[n], iters[f, n]))
    return times


def fmt_time(ns: float) -> str:
    """Microseconds with two or three significant digits, never in exponent notation."""
    us = ns / 1000
    return f"{us:.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def tables(times: dict, sizes: list) -> str:
    """Time per call (median, min-max) and Gbit/s with the speed-up over the baseline."""
    head = "| candidate | " + " | ".join(f"{n} B" for n in sizes) + " |"
    rule = "|---" * (len(sizes) + 1) + "|"
    base = times.get(BASELINE)
    t_lines = ["median time per call in us (min-max of the repetitions)", "", head, rule]
    g_lines = [f"Gbit/s of the median; x: {BASELINE}'s median time / the candidate's", "",
               head, rule]
    for name, by_size in times.items():
        tc, gc = [], []
        for n in sizes:
            v = by_size[n]
            med = statistics.median(v)
            tc.append(f"{fmt_time(med)} ({fmt_time(min(v))}-{fmt_time(max(v))})")
            if name == "noop":
                gc.append("-")
                continue
            cell = f"{8 * n / med:.3g}"
            if base:
                cell += f" x{statistics.median(base[n]) / med:.2f}"
            gc.append(cell)
        t_lines.append(f"| {name} | " + " | ".join(tc) + " |")
        g_lines.append(f"| {name} | " + " | ".join(gc) + " |")
    return "\n".join(t_lines) + "\n\n" + "\n".join(g_lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=7, help="repetitions (medians over them)")
    p.add_argument("--seconds", type=float, default=0.05,
                   help="duration of one repetition of one candidate on one size")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="payload sizes in bytes")
    p.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    p.add_argument("--no-cc", action="store_true", help="skip the gcc-built ctypes candidate")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: time.perf_counter_ns; cpu: time.thread_time_ns, the CPU time of "
                        "this thread only (with other work running, time spent waiting for a "
                        "CPU is left out)")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--json", metavar="FILE", help="also write the raw times (ns) as JSON")
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    global CLOCK
    CLOCK = time.perf_counter_ns if a.clock == "wall" else time.thread_time_ns
    funcs = list(CANDIDATES)
    notes = []
    if not a.no_cc:
        cc, info = build_cc()
        if cc is None:
            notes.append(f"cc_ctypes skipped: {info}")
        else:
            funcs.insert(funcs.index(pasta_csum_partial), cc)
            empty = statistics.median(per_call_ns(cc, b"", 100_000) for _ in range(5))
            notes.append(f"cc_ctypes: gcc -O2 build {info:.0f} ms (once, at start-up); a ctypes "
                         f"call on 0 bytes costs {empty:.0f} ns")
    if a.only:
        wanted = set(a.only.split(",")) | {BASELINE}
        notes = [n for n in notes if n.split(":")[0].split()[0] in wanted]
        unknown = wanted - {f.__name__ for f in funcs}
        if unknown:
            raise SystemExit(f"--only: no candidate {', '.join(sorted(unknown))}")
        funcs = [f for f in funcs if f.__name__ in wanted]
    checked = verify([f for f in funcs if f is not noop], a.seed)
    print(f"verified: {len(funcs) - (noop in funcs)} candidates agree with RFC 1071's loop on "
          f"{checked} (data, init) cases", file=sys.stderr, flush=True)
    load0 = os.getloadavg()[0]
    times = run(funcs, sizes, a.reps, a.seconds, a.seed)
    machine = (f"{platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Linux "
               f"{platform.release()}, Python {platform.python_version()}, {a.reps} "
               f"repetitions of >= {a.seconds:g} s, {a.clock} clock, load average {load0:.2f} -> "
               f"{os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d')}")
    print(machine + "\n")
    print(tables(times, sizes))
    for note in notes:
        print(note)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine, "notes": notes, "sizes": sizes,
                       "times_ns": {k: {str(n): v for n, v in by.items()}
                                    for k, by in times.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
