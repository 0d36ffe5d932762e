"""UNIX domain sockets bound as passt binds them (`sock_unix()` in passt's util.c), on the C
`_socket` module alone.

Purpose: pypasta-passt must be listening a few milliseconds after exec (libvirt 9.0 starts
QEMU without waiting, and QEMU 7.2 connects once: passt-mode.md 6.2). Python's `socket` module
imports `enum` and builds its constant classes, about 5 ms here; `_socket` costs nothing. The
control socket (`-c`) uses the same rules.

Theory of operation: `sock_unix(path)` tries `path`, or /tmp/passt_1.socket ... 99 when it is
None. A path is free when a connect() to it fails with ENOENT, ECONNREFUSED or EACCES; the stale
file is then unlinked and bound. Returns the bound (not listening) socket's fd and the path.

Invariants: no fd leaks on failure; the fd is close-on-exec and blocking.

Limits: Linux paths only (shorter than 108 bytes; the caller checks).
"""

from __future__ import annotations

import _socket
import errno
import os

UNIX_SOCK_PATH = "/tmp/passt_{}.socket"     # passt's default tap socket paths: 1 to 99
UNIX_SOCK_MAX = 100
_FREE = (errno.ENOENT, errno.ECONNREFUSED, errno.EACCES)


class SockInUse(OSError):
    """An explicit path answers: another instance listens there."""


def _in_use(path: str) -> bool:
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except OSError as e:
        return e.errno not in _FREE
    finally:
        probe.close()
    return True


def sock_unix(path: str | None) -> tuple[int, str]:
    """(fd, path) of a UNIX stream socket bound at `path` or at the first free default path.
    An explicit path in use raises SockInUse; a bind failure on it, the OSError (with the
    default paths: the next one is tried)."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        for i in range(1, UNIX_SOCK_MAX):
            p = path if path else UNIX_SOCK_PATH.format(i)
            if _in_use(p):
                if path:
                    raise SockInUse(errno.EADDRINUSE, f"Socket path {p} already in use")
                continue
            try:
                os.unlink(p)
            except OSError:
                pass                    # bind() says what is wrong
            try:
                s.bind(p)
            except OSError:
                if path:
                    raise
                continue
            return s.detach(), p
        raise OSError(errno.EADDRINUSE, "no free /tmp/passt_N.socket path")
    except BaseException:
        s.close()
        raise
