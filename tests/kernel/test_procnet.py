"""pasta.shell.autofwd.ProcNet against the real kernel: /proc/net files opened by a thread inside a
namespace keep reporting that namespace when the main thread reads them later (what `auto`
relies on for the namespace side), and `bound_ports` reads the kernel's own format.

Sockets are bound inside a private namespace (the `netns` fixture) via `netns.ns_call`; the main
thread stays in this process's namespace, where a listener of its own must not be reported.
"""

from __future__ import annotations

import os
import socket

from pasta.util import netns as pnetns
from pasta.shell.autofwd import ProcNet


def _bind_all():
    made = []
    for fam, addr, port in ((socket.AF_INET, "127.0.0.1", 9101), (socket.AF_INET6, "::1", 9102)):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((addr, port))
        s.listen()
        made.append(s)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # a connected TCP pair: not LISTEN
    c.connect(("127.0.0.1", 9101))
    made.append(c)
    for fam, addr, port in ((socket.AF_INET, "0.0.0.0", 9103), (socket.AF_INET6, "::", 9104)):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.bind((addr, port))
        made.append(u)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)    # connected UDP: not reported
    u.bind(("127.0.0.1", 9105))
    u.connect(("127.0.0.1", 9103))
    made.append(u)
    return made


def test_namespace_files_read_from_the_main_thread(netns):
    fd = os.open(netns.path, os.O_RDONLY | os.O_CLOEXEC)
    mine = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # in this process's namespace
    mine.bind(("127.0.0.1", 0))
    mine.listen()
    try:
        procnet = pnetns.ns_call(fd, ProcNet.open_here)
        assert procnet.ports(False) == set() and procnet.ports(True) == set()
        socks = pnetns.ns_call(fd, _bind_all)
        assert procnet.ports(False) == {9101, 9102}
        assert procnet.ports(True) == {9103, 9104}
        assert mine.getsockname()[1] not in procnet.ports(False)
        for s in socks:
            s.close()
        assert procnet.ports(False) == set() and procnet.ports(True) == set()
        procnet.close()
    finally:
        mine.close()
        os.close(fd)


def test_host_side_sees_this_namespace():
    here = ProcNet.open_here()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        assert s.getsockname()[1] in here.ports(False)
    finally:
        s.close()
        here.close()
    assert here.fds == {}
