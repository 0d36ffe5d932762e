"""log: pasta's file format and size-bounded rotation."""

from __future__ import annotations

import re

from pasta.util import log
from pasta.front.conf import parse_args


def test_log_file_format_levels_and_rotation(tmp_path):
    path = tmp_path / "p.log"
    log.setup(parse_args(["-l", str(path), "--log-size", "40960", "true"]))
    try:
        log.to_stderr = False
        log.info("hello")
        log.debug("hidden at info level")
        log.warn("careful")
        log.err("bad")
        text = path.read_text().splitlines()
        assert text[0].startswith("pypasta ") and re.search(r"\(\d+\)$", text[0])
        assert re.fullmatch(r"\d+\.\d{4}: info:    hello", text[1])
        assert re.fullmatch(r"\d+\.\d{4}: WARNING: careful", text[2])
        assert re.fullmatch(r"\d+\.\d{4}: ERROR:   bad", text[3])
        assert len(text) == 4
        for i in range(2000):                    # ~80 KiB: rotates at least once
            log.info(f"line {i:05d} " + "x" * 20)
        data = path.read_bytes()
        assert len(data) <= 40960
        lines = data.decode().splitlines()
        assert " - log truncated at " in lines[0]
        nums = [int(m[1]) for l in lines[1:] if (m := re.search(r"line (\d{5})", l))]
        assert nums == list(range(nums[0], 2000))     # the newest lines kept, in order
        stamps = [float(l.split(":")[0]) for l in lines[1:]]
        assert stamps == sorted(stamps)
    finally:
        log.to_stderr = True
        log.setup(parse_args(["true"]))


def test_log_quiet_and_debug_levels():
    try:
        log.setup(parse_args(["-q", "true"]))
        assert log.level == log.WARN and not log.trace_on
        log.setup(parse_args(["--trace", "true"]))
        assert log.level == log.DEBUG and log.trace_on
        log.setup(parse_args(["-d", "true"]))
        assert log.level == log.DEBUG and not log.trace_on
    finally:
        log.setup(parse_args(["true"]))
