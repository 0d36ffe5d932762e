"""Logging with pasta's levels, destinations and formats.

Levels: default INFO; `-q` WARNING; `-d` DEBUG (timestamps on stderr, no syslog); `--trace` DEBUG
plus per-packet trace lines (`log.trace_on` guards their formatting, so the hot path pays one
attribute test when tracing is off).

Destinations (pasta-reference.md 19.1):
- stderr while `to_stderr` is true: until the daemon detaches, and in spawn mode until the command
  starts. With `-d` each line is prefixed by seconds since start (4 decimals).
- `-l FILE`: only the file, created/truncated with mode 0600. A header line
  `pypasta VERSION: EXE (PID)`, then `SECONDS.FRAC: PREFIX message` with pasta's prefixes. When the
  next line would exceed `--log-size`, about 30% of the file (rounded up to a page) is dropped from
  the start and the header is rewritten with ` - log truncated at SECONDS`.
- otherwise syslog through /dev/log (`<PRI>pypasta: message`), best effort.
"""

from __future__ import annotations

import os
import socket
import sys
import time

from pasta import __version__

ERR, WARN, INFO, DEBUG = 3, 4, 6, 7
_PREFIX = {ERR: "ERROR:   ", WARN: "WARNING: ", INFO: "info:    ", DEBUG: "         "}
_PAGE = 4096

level = INFO
stderr_level = DEBUG          # spawn mode lowers it to WARN: pasta is quiet on the terminal
trace_on = False
to_stderr = True
_debug_stderr = False
_start = time.monotonic()
_file_fd = -1
_file_size = 0
_log_size = 1 << 20
_header = ""
_syslog: socket.socket | None = None
_use_syslog = False


def setup(cfg) -> None:
    """Apply -d/--trace/-q/-l/--log-size from a Config."""
    global level, trace_on, _debug_stderr, _file_fd, _file_size, _log_size, _header, _use_syslog
    trace_on = bool(cfg.trace)
    if cfg.debug or cfg.trace:
        level = DEBUG
    elif cfg.quiet:
        level = WARN
    else:
        level = INFO
    _debug_stderr = level == DEBUG
    _log_size = cfg.log_size
    if _file_fd >= 0:
        os.close(_file_fd)
        _file_fd = -1
    if cfg.log_file:
        try:
            _file_fd = os.open(cfg.log_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND |
                               os.O_CLOEXEC, 0o600)
        except OSError as e:
            from pasta.util.errors import ConfigError
            raise ConfigError(f"Couldn't open log file {cfg.log_file}: {e.strerror}") from None
        _header = f"pypasta {__version__}: {os.path.realpath(sys.argv[0])} ({os.getpid()})"
        data = (_header + "\n").encode()
        os.write(_file_fd, data)
        _file_size = len(data)
    else:
        _use_syslog = not _debug_stderr


def _elapsed() -> str:
    return f"{time.monotonic() - _start:.4f}"


def connect_syslog() -> None:
    """Connect to /dev/log now if syslog is used: a confined process cannot reach the path."""
    global _syslog, _use_syslog
    if not _use_syslog or _syslog is not None:
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect("/dev/log")
    except OSError:
        s.close()
        _use_syslog = False           # no syslog daemon: stop trying
        return
    _syslog = s


def _to_syslog(prio: int, msg: str) -> None:
    global _use_syslog
    try:
        connect_syslog()
        if _syslog is None:
            return
        _syslog.send(f"<{8 + prio}>pypasta: {msg}".encode(errors="replace"))
    except OSError:
        _use_syslog = False           # no syslog daemon: stop trying


def _to_file(prio: int, msg: str) -> None:
    global _file_size
    data = f"{_elapsed()}: {_PREFIX[prio]}{msg}\n".encode(errors="replace")
    if _file_size + len(data) > _log_size:
        _rotate()
    try:
        os.write(_file_fd, data)
        _file_size += len(data)
    except OSError:
        pass


def _rotate() -> None:
    """Drop ~30% of the file from the start (page-rounded), keeping the header first."""
    global _file_size
    try:
        # pread on our own fd: a confined process can open no file (pasta.setup.isolation).
        content = b""
        while True:
            chunk = os.pread(_file_fd, 1 << 20, len(content))
            if not chunk:
                break
            content += chunk
        cut = -(-int(len(content) * 0.3) // _PAGE) * _PAGE
        rest = content[cut:]
        nl = rest.find(b"\n")
        rest = rest[nl + 1:] if nl >= 0 else b""
        head = f"{_header} - log truncated at {_elapsed()}\n".encode()
        os.ftruncate(_file_fd, 0)
        os.write(_file_fd, head + rest)
        _file_size = len(head) + len(rest)
    except OSError:
        pass


def log(prio: int, msg: str) -> None:
    if prio > level:
        return
    if _file_fd >= 0:
        _to_file(prio, msg)
    elif _use_syslog:
        _to_syslog(prio, msg)
    if to_stderr and prio <= stderr_level and (_file_fd < 0 or _debug_stderr or prio <= WARN):
        line = f"{_elapsed()}: {msg}\n" if _debug_stderr else f"{msg}\n"
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def err(msg: str) -> None:
    log(ERR, msg)


def warn(msg: str) -> None:
    log(WARN, msg)


def info(msg: str) -> None:
    log(INFO, msg)


def debug(msg: str) -> None:
    log(DEBUG, msg)


def trace(msg: str) -> None:
    if trace_on:
        log(DEBUG, msg)
