"""The `-c/--conf-path` control socket: pesto's protocol served from the epoll loop.

Purpose: the I/O half of passt's conf.c control socket (`sock_unix()`, `conf_listen_handler()`,
`conf_accept()`, `conf_handler()`, `conf_close()`): Podman, RootlessKit and people run `pesto`
(or `pypasta-pesto`) against it to read and replace the forwarding table at run time. The bytes
are `pasta.core.pesto`'s business; the table and its listeners are `pasta.shell.fwd_listen`'s.

Theory of operation:
- `sock_unix(path)` runs while the process still has its filesystem and its starting user
  (before any uid switch and before the empty root of isolation): a probe `connect()` says
  whether another instance serves the path ("Socket path PATH already in use"), a stale file is
  unlinked, and the socket is bound (file mode from the umask, as pasta; the file is never
  unlinked by us: after `pivot_root` we cannot reach it, and the next instance removes it).
- `ConfSock(engine, sock, fwd, pifs)`; `start()` listens with backlog 0 and registers the
  listener (`FdKind.CONTROL_LISTEN`). One client at a time: while one is connected the
  listener is not polled, so further clients wait in the kernel's queue.
- `conf_accept()`: accept, log "Accepted configuration client, PID n" (SO_PEERCRED), queue the
  dump (`pesto.dump`: hello, tables, terminator) and write it without blocking (EPOLLOUT for
  the rest). The client's bytes go into a `pesto.TransactionReader`; a timer bounds the whole
  conversation (`CONF_TIMEOUT_S`).
- A complete transaction: `pesto.transaction_table()` validates every rule against the table's
  capabilities, all or nothing; then "New forwarding rules for HOST:" (and SPLICE) with one
  rule per line, and `FwdListen.replace()` opens and closes listeners to match. The client is
  closed and the next one accepted.

States and events: idle (listener polled) -> client (listener not polled; the client fd
polled for input, and for output while dump bytes are left) -> idle, on the terminator,
EOF, an error, or the timeout.

Invariants: at most one client; the listener is polled exactly when there is none; a refused
or incomplete transaction changes nothing; nothing here blocks (every socket is non-blocking).

Limits: the client learns nothing about the outcome (protocol version 2 has no reply, as
pasta). Reads are bounded by `pesto.TRANSACTION_MAX_BYTES` and the timeout.

Kernel assumptions: AF_UNIX connect() to a listener with backlog 0 queues one client and
makes further blocking clients wait; SO_PEERCRED gives the client's PID.

Differences from passt:
- Non-blocking and bounded in time: pasta reads the transaction with blocking reads inside its
  main loop, so a client that stops half-way stalls forwarding (an upstream FIXME).
- A switch that cannot bind a non-best-effort port keeps the old table and its listeners
  (`FwdListen.replace()` is all or nothing); pasta closes everything first and does not roll
  back. The messages are pasta's ("Error switching to new forwarding rules").
"""

from __future__ import annotations

import socket
import struct

from pasta.core import pesto
from pasta.core.fwd_rule import PIF_NAMES, fwd_rule_fmt
from pasta.shell.engine import EPOLLIN, EPOLLOUT, FdKind
from pasta.util import log
from pasta.util.errors import PastaError, SetupError
from pasta.util.unix_sock import SockInUse, sock_unix as _sock_unix

CONF_TIMEOUT_S = 5.0        # the whole conversation with one client
RECV_CHUNK = 65536
_UCRED = struct.Struct("iII")


def sock_unix(path: str) -> socket.socket:
    """A UNIX stream socket bound at `path` (pasta's sock_unix() rules); not listening yet."""
    try:
        fd, _ = _sock_unix(path)
    except SockInUse as e:
        raise SetupError(e.strerror) from None
    except OSError as e:
        raise SetupError(f"Failed to bind UNIX domain socket: {e.strerror}") from None
    s = socket.socket(fileno=fd)
    s.setblocking(False)
    log.info(f"UNIX domain socket bound at {path}")
    return s


class ConfSock:
    """The control socket's listener and its one client."""

    def __init__(self, engine, sock: socket.socket, fwd, pifs):
        self.engine = engine
        self.sock = sock
        self.fwd = fwd                      # pasta.shell.fwd_listen.FwdListen
        self.pifs = tuple(sorted(pifs))     # pifs with a table: HOST (+ SPLICE in pasta mode)
        self.client = None
        self.out = b""
        self.reader = None
        self.timer = None
        self.started = False

    def start(self) -> None:
        try:
            self.sock.listen(0)
        except OSError as e:
            raise SetupError(f"Couldn't listen on configuration socket: {e.strerror}") \
                from None
        self.engine.add(self.sock.fileno(), EPOLLIN, self.conf_listen_handler,
                        FdKind.CONTROL_LISTEN)
        self.started = True

    # ------------------------------------------------------------------ accepting
    def conf_listen_handler(self, _events: int) -> None:
        if self.client is None:
            self.conf_accept()

    def conf_accept(self) -> None:
        """Accept the next waiting client, if any, and send it the hello and the tables."""
        while self.client is None:
            try:
                client, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warn(f"accept4() on configuration listening socket: {e.strerror}")
                return
            client.setblocking(False)
            try:
                pid = _UCRED.unpack(client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                      _UCRED.size))[0]
            except OSError as e:
                log.warn(f"Can't get configuration client credentials: {e.strerror}")
                pid = 0
            table = self.fwd.table
            self.client = client
            self.out = pesto.dump(table, table.caps, self.pifs)
            self.reader = pesto.TransactionReader(self.pifs)
            self.engine.modify(self.sock.fileno(), 0)
            self.engine.add(client.fileno(), EPOLLIN, self.conf_handler, FdKind.CONTROL)
            self.timer = self.engine.call_later(CONF_TIMEOUT_S, self._timeout)
            log.info(f"Accepted configuration client, PID {pid}")
            self._flush()

    def _flush(self) -> None:
        """Write what is left of the dump; poll for output while something is."""
        try:
            while self.out:
                n = self.client.send(self.out)
                self.out = self.out[n:]
        except (BlockingIOError, InterruptedError):
            self.engine.modify(self.client.fileno(), EPOLLIN | EPOLLOUT)
            return
        except OSError as e:
            log.warn(f"Error writing configuration protocol hello: {e.strerror}")
            self.conf_close()
            return
        self.engine.modify(self.client.fileno(), EPOLLIN)

    # ------------------------------------------------------------------ the client
    def conf_handler(self, events: int) -> None:
        if events & EPOLLOUT and self.out:
            self._flush()
            if self.client is None:
                return
        if not events & ~EPOLLOUT:
            return
        while self.client is not None:
            try:
                data = self.client.recv(RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug(f"Configuration client: {e.strerror}")
                self.conf_close()
                return
            if not data:
                if self.reader.started:
                    log.debug("Configuration client closed before the end of its rules")
                else:
                    log.debug("Configuration client hangup")
                self.conf_close()
                return
            try:
                txn = self.reader.feed(data)
            except pesto.PestoError as e:
                log.err(str(e))
                self.conf_close()
                return
            if txn is not None:
                self._switch(txn)
                self.conf_close()
                return

    def _switch(self, txn) -> None:
        """Validate the transaction into a table and make it current, or change nothing."""
        caps = self.fwd.table.caps
        try:
            table = pesto.transaction_table(txn, caps)
        except pesto.PestoError as e:
            log.err(str(e))
            return
        for pif in self.pifs:
            log.info(f"New forwarding rules for {PIF_NAMES[pif]}:")
            for rule in table.rules_of(pif):
                log.info(f"    {fwd_rule_fmt(rule)}")
        try:
            self.fwd.replace(table)
        except PastaError as e:
            log.err(str(e))
            log.err("Error switching to new forwarding rules")

    def _timeout(self) -> None:
        self.timer = None
        if self.client is not None:
            log.warn("Configuration client too slow, closing it (no change)")
            self.conf_close()

    def conf_close(self) -> None:
        """Close the client and accept the next one (which may be waiting already)."""
        if self.client is not None:
            log.debug("Closing configuration socket")
            self.engine.remove(self.client.fileno())
            self.client.close()
            self.client = None
        self.out = b""
        self.reader = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.started:
            self.engine.modify(self.sock.fileno(), EPOLLIN)
            self.engine.defer(self.conf_accept)

    def close(self) -> None:
        """Stop serving (the socket file stays, as with pasta)."""
        self.started = False
        self.conf_close()
        try:
            self.engine.remove(self.sock.fileno())
        except (OSError, ValueError):
            pass
        self.sock.close()
