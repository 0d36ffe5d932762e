"""`pypasta-passt`: passt mode, the network back end of QEMU and libvirt virtual machines.

Purpose: the `passt` half of passt/pasta. The same translator that serves a namespace through a
tap serves a virtual machine through a UNIX stream socket: QEMU's `-netdev stream` connects to
it, QEMU 10.1's `-netdev passt` and qrap hand over a connected socket (`--fd`), and libvirt
starts it for `<interface type='user'><backend type='passt'/>`. The command line is passt's
(`pasta.front.conf.parse_args(argv, mode="passt")`); the run is
`pasta.setup.supervisor.run_passt`. Reference: passt-mode.md.

Theory of operation: listen first, then everything else. libvirt 9.0 execs QEMU right after
its fork returns, without waiting for passt, and QEMU 7.2 connects once, with no retry: a
socket that is not listening yet leaves the guest without network (passt-mode.md 6.2). passt
2026 listens about 7 ms after exec; a Python interpreter needs more than that just to start.
So `main()` first scans argv for the socket options alone (`early_socket_args()`: `-s` and
`--fd`, with getopt_long's clustering, abbreviations and argument rules, from the option tables
below), binds and listens on the socket with nothing but the standard library loaded, and only
then imports the parser and the translator. A connection that arrives meanwhile waits in the
backlog and is accepted when the loop starts. The full parse then decides: an error is
reported as passt reports it (the early socket is closed and its file removed, as if it had
never been bound), a bind error of the early attempt is reported after the parse (passt binds
after parsing), and a parse result that names another socket (which the scan cannot get wrong
for any command line the parser accepts; `tests/unit/test_passt_front.py` checks this) would
be re-bound.

States and events: none; one pass from argv to the supervisor.

Invariants: nothing but the standard library and `pasta.util.sock` is imported before the
socket listens; the socket file is removed on every error path that created it.

Limits: `--vhost-user` is refused (not supported; see the README).

Differences from passt: the listening socket is listened on before option values are checked
(passt checks, then binds, then listens): a client of a command line that turns out wrong is
accepted by the kernel and then sees EOF, where passt's would get ECONNREFUSED.
"""

from __future__ import annotations

import os
import sys

# getopt tables of pasta/passt's conf(), reduced to what the scan needs: which short options
# take an argument, and every long option with whether it takes one. Kept equal to
# pasta.front.conf's tables by tests/unit/test_passt_front.py.
SHORT_OPTIONS = "+dqfel:hs:c:F:I:p:P:m:a:n:M:g:i:o:D:S:H:461t:u:T:U:"
LONG_ARG = frozenset("""
    log-file socket fd ns-ifname pcap pid mtu address netmask mac-addr gateway interface
    outbound dns search hostname tcp-ports udp-ports tcp-ns udp-ns userns netns ns-mac-addr
    dns-forward runas log-size outbound-if4 outbound-if6 map-host-loopback map-guest-addr
    dns-host socket-path fqdn repair-path stats conf-path""".split())
LONG_FLAG = frozenset("""
    debug quiet foreground stderr help no-tcp no-udp no-icmp no-dhcp no-dhcpv6 no-ndp no-ra
    no-splice splice-only freebind no-map-gw ipv4-only ipv6-only one-off dhcp-dns no-dhcp-dns
    dhcp-search no-dhcp-search no-netns-quit trace version config-net no-copy-routes
    no-copy-addrs netns-only host-lo-to-ns-lo vhost-user print-capabilities migrate-exit
    migrate-no-linger chroot-fallback no-seccomp""".split())
_ALIASES = {"socket-path": "socket"}            # same key ('s'): not ambiguous to getopt_long
_EXITS = frozenset({"h", "help", "version", "print-capabilities"})
LISTEN_BACKLOG = 1          # passt: listen(fd, 0), which the kernel reads as one pending client


def _short_table(optstring: str) -> dict:
    table, s = {}, optstring.lstrip("+")
    for i, c in enumerate(s):
        if c != ":":
            table[c] = s[i + 1:i + 2] == ":"
    return table


_SHORT = _short_table(SHORT_OPTIONS)


def _long(name: str):
    """getopt_long's lookup: an exact name, or the one name (aliases counted once) it starts."""
    if name in LONG_ARG or name in LONG_FLAG:
        return _ALIASES.get(name, name)
    hits = {_ALIASES.get(n, n) for n in (LONG_ARG | LONG_FLAG) if n.startswith(name)}
    return hits.pop() if len(hits) == 1 and name else None


def early_socket_args(argv) -> tuple | None:
    """What the socket options of `argv` ask for, by getopt_long's rules: ("fd",) for `--fd`,
    ("path", PATH or None) otherwise (None: passt's default paths), the last option winning
    as in passt. None when the command line only prints and exits (`-h`, `--version`,
    `--print-capabilities`) or when getopt would stop with an error: then nothing is bound
    early and the parser reports it."""
    want: tuple = ("path", None)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, val = arg[2:].partition("=")
            key = _long(name)
            if key is None:
                return None
            if key in LONG_ARG or key == "socket":
                if not eq:
                    i += 1
                    if i >= len(argv):
                        return None
                    val = argv[i]
            elif eq:
                return None
            opts = [(key, val)]
        else:
            opts = []
            j = 1
            while j < len(arg):
                c = arg[j]
                if c not in _SHORT:
                    return None
                if _SHORT[c]:
                    val = arg[j + 1:]
                    if not val:
                        i += 1
                        if i >= len(argv):
                            return None
                        val = argv[i]
                    opts.append((c, val))
                    break
                opts.append((c, None))
                j += 1
        for key, val in opts:
            if key in _EXITS:
                return None
            if key in ("s", "socket"):
                want = ("path", val)
            elif key in ("F", "fd"):
                want = ("fd",)
        i += 1
    return want


def listen_early(argv):
    """(fd, path): the socket for `argv`, bound and listening before the heavy imports (not
    even Python's `socket` module is loaded); (None, None) when there is none to make or when
    binding failed (the full parse then decides, and binding again reports the error where
    passt would)."""
    want = early_socket_args(argv)
    if want is None or want[0] == "fd":
        return None, None
    path = want[1]
    if path is not None and not 0 < len(os.fsencode(path)) < 108:
        return None, None               # the parser refuses it ("Invalid socket path")
    try:
        return _listen(path)
    except OSError:
        return None, None


def _listen(path):
    """(fd, path) of a listening socket at `path` (None: passt's default paths)."""
    import _socket
    from pasta.util.unix_sock import sock_unix
    fd, path = sock_unix(path)
    s = _socket.socket(fileno=fd)
    try:
        s.listen(LISTEN_BACKLOG)
    except OSError:
        s.close()
        _discard(None, path)
        raise
    return s.detach(), path


def _discard(fd, path) -> None:
    """Close a socket the command line did not want (fd None: closed), and remove its file."""
    if path is None:
        return
    if fd is not None:
        os.close(fd)
    try:
        os.unlink(path)
    except OSError:
        pass


def _bind(path):
    """Bind and listen as passt's sock_unix(), with its messages."""
    from pasta.util.errors import SetupError
    from pasta.util.unix_sock import SockInUse
    try:
        return _listen(path)
    except SockInUse as e:
        raise SetupError(e.strerror) from None
    except OSError as e:
        raise SetupError(f"Failed to bind UNIX domain socket: {e.strerror}") from None


def main(argv=None) -> int:
    """Console-script entry: listen, parse, then run passt mode; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    fd, path = listen_early(argv)
    try:
        from pasta.front import conf
        cfg = conf.main_parse(argv, mode="passt")
    except BaseException:
        _discard(fd, path)
        raise
    if isinstance(cfg, int):
        _discard(fd, path)
        return cfg
    sock = None

    def run() -> int:
        nonlocal fd, path, sock
        if cfg.tap_fd is not None:              # --fd: a connected socket, no listener
            _discard(fd, path)
            fd = None
            return run_passt(cfg, None)
        if fd is None or cfg.socket_path not in (None, path):
            _discard(fd, path)
            fd = None
            fd, path = _bind(cfg.socket_path)
        sock, fd = socket.socket(fileno=fd), None
        return run_passt(replace(cfg, socket_path=path), sock)

    import socket
    from dataclasses import replace
    from pasta.setup.supervisor import run_passt
    try:
        return conf.run_reporting(run, argv, mode="passt")
    finally:
        if sock is not None:
            sock.close()


if __name__ == "__main__":
    raise SystemExit(main())
