"""`pypasta-pesto`: the `pesto` client of passt 2026_07_16, for pasta's and pypasta's `-c` socket.

Purpose: change (or show) the forwarding tables of a running pasta, passt or pypasta through its
control socket, with pesto's command line, output, messages and exit codes
(docs/pesto-protocol.md section 5), so Podman and RootlessKit can run it where they run `pesto`.

Theory of operation (pesto.c `main()`, in its order):
1. The client's ephemeral port range from /proc/sys/net/ipv4/ip_local_port_range (warning
   "Unable to open ..."/"Unable to parse ..." and 49152-65535 otherwise), before the options,
   as pesto's `fwd_probe_ephemeral()`.
2. First option pass (GNU getopt_long with permutation, `pasta.front.getopt.Getopt`, optstring
   `dhADC:t:u:T:U:s`): -h prints the usage on stdout (exit 0), --version the version (exit 0),
   -d and -s are noted, the editing options only mark an update; a getopt error prints glibc's
   message with argv[0] and the usage on stderr (exit 1); so does anything but exactly one
   non-option (PATH).
3. Connect (`Invalid socket path "P"`, `Failed to connect to P: error`), then read the greeting
   and the tables with `pasta.core.pesto.DumpReader` (its messages; EOF: "Couldn't read server
   greeting: No data available" or "Error reading from control socket").
4. No editing option: print "passt/pasta configuration (PATH)" and the tables, send nothing.
   Otherwise (-s: "Previous configuration (PATH)" and the tables first) a second pass applies
   the options in order to the local copy: -A and -D switch to add and delete mode for what
   follows; in the initial replace mode the first -t/-u empties the whole HOST table and the
   first -T/-U the whole SPLICE table; -C PIF empties that table ("Unsupported pif name PIF")
   and counts as its clearing. Specs go through pasta 2026's parser in `pasta.core.fwd_rule`
   against the server's caps, as pesto's `fwd_rule_parse(optname, del, optarg, fwd)`: adding is
   `fwd_table_parse` on the server's rules (each rule checked by fwd_rule_add as it is made:
   the reason, then "Unable to add rule R"); deleting runs the same parser (`_DeleteParse`, a
   subclass of its `_Parse` whose `add` hook deletes) and removes each rule as it is made by
   byte-for-byte match (`PifTable.delete`, then "Unable to delete rule R"); `none` refuses a
   table that already holds that protocol ("-t none conflicts with previous options").
5. -s: "Updated configuration (PATH)" and the tables; then every table received is sent, the
   terminator, shutdown(SHUT_RDWR) and close (`Error writing to control socket: ...`, `Error
   shutting down control socket: ...`). Exit 0: the server says nothing back, so a rule it
   refuses or a port it cannot bind is not seen here (as with pesto).

States and events: the mode (replace, add, delete) and the two "already cleared" flags of the
second pass; `Die` (message lines, exit status) is the only way out besides success.

Invariants: every error is one line per message on stderr and exit 1 (warnings first, as pesto
prints them), never a traceback; stdout carries only the tables, the usage of -h and the
version; stdout is flushed after each table listing (pesto's fflush), before later messages.

Limits and not handled: no seccomp filter. pesto confines itself (PR_SET_DUMPABLE 0,
PR_SET_NO_NEW_PRIVS, a seccomp allow-list of nine syscalls); CPython needs far more than that
to run, so run as the console script this sets only PR_SET_DUMPABLE 0 and PR_SET_NO_NEW_PRIVS
(ignored if they fail), and restores the default SIGPIPE and SIGINT actions so that a closed
socket or pipe and Ctrl-C end it as they end pesto (killed by the signal). `main(argv)` called
from Python does none of that (the caller's process is left alone).

Kernel assumptions: an AF_UNIX stream socket delivers the server's bytes in order; the dump is
read in chunks of any size (tests/unit/test_pesto.py feeds every split).

Differences from pesto (`pesto.c`, `fwd_rule.c fwd_rule_parse()`):
- `--version` prints "pypasta-pesto VERSION" (pypasta's version, not passt's date, so nothing
  mistakes it for a pesto release) and a licence blurb in pesto's layout; RootlessKit only
  checks that it succeeds. `--help` prints pesto's text with argv[0].
- A version-1 server is refused ("Unsupported server protocol version 1 < 2"); pesto goes on
  and misreads every rule.
- SIGPIPE and SIGINT end the console script as they end pesto; `main()` called in-process
  reports a closed socket as "Error writing to control socket: Broken pipe" (exit 1).
- An unexpected exception (a bug) is one line, "internal error: ...", exit 1.
- Adding counts the sockets of the server's rules against the 327 680 limit too (pesto's copy
  of the table never counted them; see `pasta.core.pesto`).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import replace
from typing import Callable, List, Optional, Sequence, Tuple

from pasta import __version__
from pasta.core import fwd_rule
from pasta.core.fwd_rule import (IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE, FwdRule,
                                 FwdRuleError, FwdTable, fwd_parse_ephemeral, fwd_rule_fmt,
                                 fwd_table_parse)
from pasta.core.pesto import (DumpReader, PestoError, PifTable, WireRule, pack_transaction,
                              show_lines)
from pasta.front.getopt import Getopt, GetoptError, LongOpt
from pasta.util.errors import ConfigError

PROG = "pypasta-pesto"
SHORT_OPTIONS = "dhADC:t:u:T:U:s"
LONG_OPTIONS = (
    LongOpt("debug", False, "d"),
    LongOpt("help", False, "h"),
    LongOpt("version", False, "version"),
    LongOpt("add", False, "A"),
    LongOpt("delete", False, "D"),
    LongOpt("clear", True, "C"),
    LongOpt("tcp-ports", True, "t"),
    LongOpt("udp-ports", True, "u"),
    LongOpt("tcp-ns", True, "T"),
    LongOpt("udp-ns", True, "U"),
    LongOpt("show", False, "s"),
)
UPDATE_KEYS = frozenset("CtuTUAD")
PORT_RANGE_SYSCTL = "/proc/sys/net/ipv4/ip_local_port_range"
EPHEMERAL_RFC6335 = (49152, 65535)
SUN_PATH_MAX = 108
RECV_CHUNK = 65536

_USAGE = """\
Usage: {p} [OPTION]... PATH

  -A, --add		Add following specifiers to forwards
  -D, --delete		Delete following specifiers instead
  -C, --clear PIF	Clear forwarding table for given PIF
  -t, --tcp-ports SPEC	TCP inbound port forwarding
    can be specified multiple times
    SPEC can be:
      'none': don't forward any ports
      [ADDR[%IFACE]/]PORTS: forward specific ports
        PORTS is either 'all' (forward all unbound, non-ephemeral
        ports), or a comma-separated list of ports, optionally
        ranged with '-' and optional target ports after ':'.
        Ranges can be reduced by excluding ports or ranges
        prefixed by '~'.
        The 'auto' keyword may be given to only forward
        ports which are bound in the target namespace
        Examples:
        -t all         Forward all ports
        -t 127.0.0.1/all Forward all ports from local address
                         127.0.0.1
        -t 22		Forward local port 22 to 22
        -t 22:23	Forward local port 22 to 23
        -t 22,25	Forward ports 22, 25 to ports 22, 25
        -t 22-80  	Forward ports 22 to 80
        -t 22-80:32-90	Forward ports 22 to 80 to
			corresponding port numbers plus 10
        -t 192.0.2.1/5	Bind port 5 of 192.0.2.1
        -t 5-25,~10-20	Forward ports 5 to 9, and 21 to 25
        -t ~25		Forward all ports except for 25
        -t auto	Forward all ports bound in namespace
        -t 192.0.2.2/auto Forward ports from 192.0.2.2 if
                          they are bound in the namespace
        -t 8000-8010,auto Forward ports 8000-8010 if they
                          are bound in the namespace
  -u, --udp-ports SPEC	UDP inbound port forwarding
    SPEC is as described for TCP above
  -T, --tcp-ns SPEC	TCP port forwarding to init namespace
    SPEC is as described above
  -U, --udp-ns SPEC	UDP port forwarding to init namespace
    SPEC is as described above
  -s, --show		Show configuration before and after
  -d, --debug		Print debugging messages
  -h, --help		Display this help message and exit
  --version		Show version and exit
"""


def usage_text(prog: str) -> str:
    """pesto's usage, with the program name as invoked."""
    return _USAGE.format(p=prog)


def version_text() -> str:
    """`--version`: name and pypasta's version, then pesto's licence lines."""
    return (f"{PROG} {__version__}\n"
            "GNU General Public License, version 2 or later\n"
            "  <https://www.gnu.org/licenses/old-licenses/gpl-2.0.html>\n"
            "This is free software: you are free to change and redistribute it.\n"
            "There is NO WARRANTY, to the extent permitted by law.\n\n")


class Die(Exception):
    """Leave with `code` after printing `lines` on stderr (and the usage if `usage`)."""

    def __init__(self, *lines: str, code: int = 1, usage: bool = False):
        super().__init__(lines[-1] if lines else "")
        self.lines = lines
        self.code = code
        self.usage = usage


class _Exit(Exception):
    """Not an error: print `text` on stdout and exit with `code` (-h, --version)."""

    def __init__(self, text: str, code: int = 0):
        super().__init__(text)
        self.text = text
        self.code = code


# ------------------------------------------------------------------------- ephemeral range
def probe_ephemeral(warn: Callable[[str], None],
                    path: str = PORT_RANGE_SYSCTL) -> Tuple[int, int]:
    """The client's ephemeral range, or RFC 6335's with pesto's warning."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as e:
        warn(f"Unable to open {path}: {os.strerror(e.errno or 0)}")
        return EPHEMERAL_RFC6335
    found = fwd_parse_ephemeral(data.decode("latin-1"))
    if found is None:
        warn(f"Unable to parse {path}")
        return EPHEMERAL_RFC6335
    return found


# ------------------------------------------------------------------------------ spec parsing
class _DeleteParse(fwd_rule._Parse):
    """pasta's fwd_rule_parse() with `del` set: each rule the spec makes (in pasta's order) is
    deleted from the client's table by exact match instead of being added."""

    def __init__(self, pif_table: PifTable, table: FwdTable, pif: int, proto: int,
                 ephemeral: Tuple[int, int], warnings: List[str]):
        super().__init__(table, pif, proto, table.caps, ephemeral, warnings)
        self.pif_table = pif_table

    def add(self, rule: FwdRule) -> None:
        try:
            self.pif_table.delete(rule)
        except FwdRuleError as e:
            raise FwdRuleError(*_lines(e), f"Unable to delete rule {fwd_rule_fmt(rule)}") \
                from None
        self.added.append(rule)


def _lines(e: Exception) -> Tuple[str, ...]:
    return tuple(getattr(e, "lines", None) or str(e).splitlines())


def apply_spec(pif_table: PifTable, optarg: str, pif: int, proto: int, delete: bool,
               ephemeral: Tuple[int, int], warnings: List[str]) -> None:
    """One -t/-u/-T/-U argument applied to the client's copy of a table, as pesto's
    fwd_rule_parse(optname, del, optarg, fwd) does: pasta 2026's grammar against the server's
    caps; ConfigError with every line pesto prints (the reason, then "Unable to add rule R" or
    "Unable to delete rule R"); warnings are appended to `warnings`."""
    # The option says which pif the rules are for; the server's rules are seen as that pif's
    # whatever id it gave the table, so that conflicts are found as pesto finds them.
    current = FwdTable(pif_table.caps, tuple(replace(r, pif=pif) if r.pif != pif else r
                                             for r in pif_table.fwd_rules()))
    # A C string ends at its first NUL (argv cannot hold one anyway).
    optarg = optarg.split("\0", 1)[0]
    if delete:
        _DeleteParse(pif_table, current, pif, proto, ephemeral, warnings).parse(optarg)
        return
    new = fwd_table_parse(current, optarg, pif, proto, ephemeral, warnings)
    for rule in new.rules[len(current.rules):]:
        pif_table.rules.append(WireRule.of(replace(rule, pif=pif_table.pif)
                                           if rule.pif != pif_table.pif else rule))


# ---------------------------------------------------------------------------------- the run
class _Out:
    """stdout and stderr as pesto uses them."""

    def __init__(self, debug: bool = False):
        self.debug_on = debug

    @staticmethod
    def out(text: str) -> None:
        sys.stdout.write(text)

    @staticmethod
    def flush() -> None:
        sys.stdout.flush()

    @staticmethod
    def warn(text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def debug(self, text: str) -> None:
        if self.debug_on:
            self.warn(text)


def _options(argv: Sequence[str]) -> Getopt:
    return Getopt(argv, SHORT_OPTIONS, LONG_OPTIONS,
                  posixly_correct="POSIXLY_CORRECT" in os.environ)


def _first_pass(argv: Sequence[str], prog: str) -> Tuple[bool, bool, bool, str]:
    """(update, show, debug, path) or _Exit/Die, as pesto's first getopt loop."""
    update = show = debug = False
    g = _options(argv)
    try:
        for key, _arg, _spelled in g:
            if key in UPDATE_KEYS:
                update = True
            elif key == "s":
                show = True
            elif key == "h":
                raise _Exit(usage_text(prog))
            elif key == "d":
                debug = True
            elif key == "version":
                raise _Exit(version_text())
    except GetoptError as e:
        raise Die(f"{prog}: {e}", usage=True) from None
    if len(g.positionals) != 1:
        raise Die(usage=True)
    return update, show, debug, g.positionals[0]


def _connect(path: str) -> socket.socket:
    raw = os.fsencode(path)
    if not raw or len(raw) >= SUN_PATH_MAX:
        raise Die(f'Invalid socket path "{path}"')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(raw)
    except OSError as e:
        s.close()
        raise Die(f"Failed to connect to {path}: {os.strerror(e.errno or 0)}") from None
    return s


def _read_conf(s: socket.socket, io: _Out):
    reader = DumpReader()
    shown = 0
    while True:
        try:
            data = s.recv(RECV_CHUNK)
        except OSError as e:
            why = os.strerror(e.errno or 0)
            if not reader.greeted:
                raise Die(f"Couldn't read server greeting: {why}") from None
            raise Die("Error reading from control socket") from None
        try:
            conf = reader.feed(data) if data else None
        except PestoError as e:
            for line in reader.debug[shown:]:
                io.debug(line)
            raise Die(str(e)) from None
        for line in reader.debug[shown:]:
            io.debug(line)
        shown = len(reader.debug)
        if conf is not None:
            return conf
        if not data:
            raise Die(reader.eof_message())


def _show(io: _Out, title: str, tables: Sequence[PifTable]) -> None:
    io.out(title + "\n")
    for line in show_lines(tables):
        io.out(line + "\n")
    io.flush()


def _apply(argv: Sequence[str], conf, ephemeral: Tuple[int, int], io: _Out) -> None:
    """pesto's second getopt loop: the edits, in order, on the local copy of the tables."""
    mode = "clear"
    cleared = {PIF_HOST: False, PIF_SPLICE: False}
    tables = {PIF_HOST: conf.by_name("HOST"), PIF_SPLICE: conf.by_name("SPLICE")}
    for key, optarg, _spelled in _options(argv):
        if key == "A":
            mode = "add"
        elif key == "D":
            mode = "del"
        elif key == "C":
            table = conf.by_name(optarg)
            if table is None:
                raise Die(f"Unsupported pif name {optarg}")
            table.clear()
            if optarg == "HOST":
                cleared[PIF_HOST] = True
            elif optarg == "SPLICE":
                cleared[PIF_SPLICE] = True
        elif key in "tuTU":
            pif = PIF_HOST if key in "tu" else PIF_SPLICE
            table = tables[pif]
            if table is None:
                side = "inbound" if pif == PIF_HOST else "outbound"
                raise Die(f"Can't use -{key}, no {side} interface")
            if mode == "clear" and not cleared[pif]:
                table.clear()
                cleared[pif] = True
            _spec(table, key, optarg, pif, mode == "del", ephemeral, io)


def _spec(table: PifTable, key: str, optarg: str, pif: int, delete: bool,
          ephemeral: Tuple[int, int], io: _Out) -> None:
    proto = IPPROTO_TCP if key in "tT" else IPPROTO_UDP
    warnings: List[str] = []
    try:
        apply_spec(table, optarg, pif, proto, delete, ephemeral, warnings)
    except (ConfigError, ValueError) as e:
        raise Die(*warnings, *_lines(e)) from None
    for line in warnings:
        io.warn(line)


def run(argv: Sequence[str], prog: str) -> int:
    """The whole client; raises Die or _Exit for the ways out other than success."""
    io = _Out()
    ephemeral = probe_ephemeral(io.warn)
    update, show, debug, path = _first_pass(argv, prog)
    io.debug_on = debug
    io.debug(f'debug_flag=1, path="{path}"')
    s = _connect(path)
    try:
        io.debug("Connected to passt/pasta control socket")
        conf = _read_conf(s, io)
        if not update:
            _show(io, f"passt/pasta configuration ({path})", conf.tables)
        else:
            if show:
                _show(io, f"Previous configuration ({path})", conf.tables)
            _apply(argv, conf, ephemeral, io)
            if show:
                _show(io, f"Updated configuration ({path})", conf.tables)
            try:
                s.sendall(pack_transaction(conf.tables))
            except OSError as e:
                raise Die(f"Error writing to control socket: {os.strerror(e.errno or 0)}") \
                    from None
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError as e:
            raise Die(f"Error shutting down control socket: {os.strerror(e.errno or 0)}") \
                from None
    finally:
        s.close()
    return 0


def _confine() -> None:
    """What this process keeps of pesto's sandbox (see the module docstring)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)           # PR_SET_DUMPABLE
        libc.prctl(38, 1, 0, 0, 0)          # PR_SET_NO_NEW_PRIVS
    except (OSError, AttributeError):
        pass
    for sig in (signal.SIGPIPE, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Console-script entry (argv None: sys.argv, confined as above); returns the exit status."""
    if argv is None:
        _confine()
        argv = sys.argv[1:]
        prog = sys.argv[0]
    if prog is None:
        prog = PROG
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="surrogateescape")
        except (AttributeError, ValueError):
            pass
    try:
        return run(argv, prog)
    except _Exit as req:
        sys.stdout.write(req.text)
        sys.stdout.flush()
        return req.code
    except Die as d:
        sys.stdout.flush()
        for line in d.lines:
            sys.stderr.write(line + "\n")
        if d.usage:
            sys.stderr.write(usage_text(prog))
        sys.stderr.flush()
        return d.code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line, never a traceback
        sys.stdout.flush()
        sys.stderr.write(f"internal error: {type(e).__name__}: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
