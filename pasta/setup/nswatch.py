"""Watching the target: exit when the netns file goes away or the target process ends.

Theory of operation (pasta-reference.md 18.3, with two improvements):
- `--netns PATH`: inotify IN_DELETE (and IN_MOVED_FROM) on the directory of PATH gives an immediate
  exit when Podman unmounts and unlinks the file. inotify cannot see an unmount that leaves the
  file in place, and is unavailable on procfs, so a periodic check (every `POLL_S`) also compares
  the (st_dev, st_ino) of PATH with our open netns fd: any difference, or PATH gone, means gone.
  The check looks the file up relative to a directory fd opened at construction (pasta's
  `pasta_netns_quit_dirfd`): the confined process has an empty root and cannot use PATH. It
  also holds its original mount namespace (/proc/self/ns/mnt): the netns file is a mount in
  that namespace, which dies with the last process in it (our parent, when we daemonize from
  `ip netns exec`), taking the mount with it, and the lookup would then find the empty file
  underneath and report the namespace gone.
- PID form: a pidfd (`os.pidfd_open`) becomes readable when the process exits, which is both
  immediate and immune to PID reuse; pasta polls /proc once a second instead.
The callback `on_gone(reason)` is called once.
"""

from __future__ import annotations

import ctypes
import os
import struct

from pasta.util import netns
from pasta.shell.engine import FdKind

IN_DELETE = 0x200
IN_MOVED_FROM = 0x40
IN_DELETE_SELF = 0x400
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
POLL_S = 0.2
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(None, use_errno=True)      # the process's own libc; no ldconfig run
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class NsWatch:
    def __init__(self, engine, netns_fd: int, path: str | None, pid: int | None, on_gone):
        self.engine = engine
        self.netns_fd = netns_fd
        self.path = path
        self.base = os.path.basename(path).encode() if path else b""
        self.on_gone = on_gone
        self.done = False
        self.ino_fd = -1
        self.pidfd = -1
        self.dir_fd = -1
        if pid is not None:
            try:
                self.pidfd = os.pidfd_open(pid)
                engine.add(self.pidfd, 1, self._pid_event, FdKind.NSQUIT_PIDFD)
            except OSError:
                self.pidfd = -1
        self.mnt_fd = -1
        if path:
            try:
                self.mnt_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self.mnt_fd = -1
            try:
                self.dir_fd = os.open(os.path.dirname(path) or ".",
                                      os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                self.dir_fd = -1            # the directory is gone: the first poll sees it
            fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd >= 0:
                wd = _libc.inotify_add_watch(fd, os.path.dirname(path).encode() or b".",
                                             IN_DELETE | IN_MOVED_FROM)
                if wd < 0:
                    os.close(fd)
                else:
                    self.ino_fd = fd
                    engine.add(fd, 1, self._inotify_event, FdKind.NSQUIT_INOTIFY)
            engine.call_later(POLL_S, self._poll)

    def _gone(self, reason: str) -> None:
        if not self.done:
            self.done = True
            self.on_gone(reason)

    def _pid_event(self, events: int) -> None:
        self._gone("target process exited")

    def _inotify_event(self, events: int) -> None:
        try:
            data = os.read(self.ino_fd, 65536)
        except BlockingIOError:
            return
        off = 0
        while off + _EVENT.size <= len(data):       # struct inotify_event, then the name
            _wd, _mask, _cookie, ln = _EVENT.unpack_from(data, off)
            name = data[off + _EVENT.size:off + _EVENT.size + ln].rstrip(b"\0")
            off += _EVENT.size + ln
            if name == self.base:
                self._gone("namespace file deleted")
                return

    def _poll(self) -> None:
        if self.done:
            return
        if self.dir_fd < 0 or not netns.same_ns(self.netns_fd, self.base.decode(),
                                                self.dir_fd):
            self._gone("namespace file gone")
            return
        self.engine.call_later(POLL_S, self._poll)

    def close(self) -> None:
        for fd in (self.ino_fd, self.pidfd):
            if fd >= 0:
                self.engine.remove(fd)
                os.close(fd)
        self.ino_fd = self.pidfd = -1
        for fd in (self.dir_fd, self.mnt_fd):
            if fd >= 0:
                os.close(fd)
        self.dir_fd = self.mnt_fd = -1
