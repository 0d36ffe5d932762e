"""A pesto control-socket server for tests, built on pasta.core.pesto: one client at a time.

`PestoServer(path, greeting)` binds an AF_UNIX stream socket at `path` and serves each client in
a thread: it sends `greeting` (any bytes: a `dump()`, or something broken on purpose; with
`close_after_greeting` its write side is shut down after it), reads what the client sends until
EOF (bounded by `timeout`), and records it in `received` (one bytes object per client).
`transaction(i)` parses client `i`'s bytes with `TransactionReader`. Used to run the real `pesto`
and `pypasta-pesto` against the same server and compare bytes and text.

Both clients are run with `run_client(argv, ...)`: a subprocess with captured text output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional, Sequence

from pasta.core.fwd_rule import PIF_HOST, PIF_SPLICE
from pasta.core.pesto import Transaction, TransactionReader

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_PESTO = os.environ.get("PYPASTA_REAL_PESTO", "/opt/passt-2026/pesto")
BUILD_HINT = ("the reference pesto is built by tests/install-deps.sh "
              "(../shared/tools/build-passt.sh /opt/passt-2026)")


class PestoServer:
    def __init__(self, path: str, greeting: bytes, timeout: float = 10.0,
                 close_after_greeting: bool = False):
        self.path = path
        self.greeting = greeting
        self.close_after_greeting = close_after_greeting
        self.timeout = timeout
        self.received: List[bytes] = []
        self.errors: List[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(timeout)
        self._thread: Optional[threading.Thread] = None

    def serve_one(self) -> None:
        """Accept one client in the background (call before starting the client)."""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError as e:
            self.errors.append(f"accept: {e}")
            return
        with conn:
            conn.settimeout(self.timeout)
            data = bytearray()
            try:
                conn.sendall(self.greeting)
                if self.close_after_greeting:       # EOF for a client that wants more
                    conn.shutdown(socket.SHUT_WR)
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError as e:
                self.errors.append(f"serve: {e}")
            self.received.append(bytes(data))

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
            assert not self._thread.is_alive(), "server thread did not finish"

    def transaction(self, i: int = -1, pifs=(PIF_HOST, PIF_SPLICE)) -> Optional[Transaction]:
        return TransactionReader(pifs).feed(self.received[i])

    def close(self) -> None:
        self.sock.close()


def ours_argv() -> List[str]:
    return [sys.executable, "-m", "pasta.front.pesto"]


def run_client(argv: Sequence[str], timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, errors="surrogateescape")
