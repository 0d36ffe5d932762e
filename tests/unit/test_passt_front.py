"""pypasta-passt's early socket scan (`pasta.front.passt.early_socket_args`) agrees with the
parser: the socket it listens on before the heavy imports is the one the command line asks
for, on every command line the parser accepts, and nothing is bound for one that only prints.
"""

from __future__ import annotations

import itertools
import random

import pytest

from pasta.front import conf, passt
from pasta.util.errors import PastaError

EPH = (49152, 65535)


def test_option_tables_are_the_parsers():
    assert passt.SHORT_OPTIONS == conf.SHORT_OPTIONS
    assert passt.LONG_ARG == {o.name for o in conf.LONG_OPTIONS if o.has_arg}
    assert passt.LONG_FLAG == {o.name for o in conf.LONG_OPTIONS if not o.has_arg}


PIECES = [
    ["-s", "/tmp/a.sock"], ["-s/tmp/b.sock"], ["--socket", "/tmp/c.sock"], ["--socket=/tmp/d"],
    ["--socket-path", "/tmp/e"], ["--sock=/tmp/f"], ["--socket-p", "/tmp/g"], ["-1"],
    ["-fs", "/tmp/h"], ["-1fs/tmp/i"], ["-F", "5"], ["--fd", "7"], ["--fd=0"], ["-F9"],
    ["-l", "-s"], ["--log-file", "--fd"], ["-t", "80"], ["-P", "/tmp/p"], ["-q"], ["-f"],
    ["--mac-addr", "52:54:00:12:34:56"], ["-m", "9000"], ["--one-off"], ["-D", "-s"],
    ["--search", "a.test b.test"], ["--no-dhcp-dns"], ["-a", "198.51.100.9"], ["-d"],
]


def _cases():
    rng = random.Random(17)
    yield []
    for p in PIECES:
        yield list(p)
    for a, b in itertools.permutations(PIECES, 2):
        yield [*a, *b]
    for _ in range(400):
        yield [w for p in rng.sample(PIECES, rng.randint(2, 5)) for w in p]


def test_scan_agrees_with_the_parser_on_every_accepted_command_line():
    checked = 0
    for argv in _cases():
        try:
            cfg = conf.parse_args(argv, EPH, mode="passt")
        except PastaError:
            continue
        want = passt.early_socket_args(argv)
        if cfg.tap_fd is not None:
            assert want == ("fd",), argv
        else:
            assert want == ("path", cfg.socket_path), argv
        checked += 1
    assert checked > 300


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["--version"], ["--print-cap"],
                                  ["-s", "/tmp/x", "-h"], ["-1h"], ["--bogus"], ["-s"],
                                  ["--so", "/tmp/x", "--s"]])
def test_nothing_is_bound_for_command_lines_that_only_print_or_fail(argv):
    assert passt.early_socket_args(argv) is None
