"""Socket creation, in one place (passt's sock_l4() in util.c).

Purpose: every TCP, UDP and ping socket pypasta opens (flow sockets, listeners, spliced sockets,
whichever namespace they are made in) comes from `sock_l4()`, so the options they share are set
the same way everywhere: non-blocking, close-on-exec, IPv6-only for IPv6, address reuse,
buffer sizes, IP_FREEBIND, SO_BINDTODEVICE, then bind, listen or connect.

Theory of operation: `sock_l4(v6, proto, ...)` (`Proto.TCP`, `Proto.UDP` or `Proto.PING`) opens the socket and applies what it is asked
for, in the order the kernel needs (options before bind, bind before listen or connect). Any
failure closes the socket and raises the OSError, so no caller can leak a half-made socket.

States and events: none.

Invariants: every socket returned is non-blocking and close-on-exec; an IPv6 socket is
IPv6-only (pypasta binds each family separately, as pasta).

Limits: the caller chooses the namespace (sockets are made in the calling thread's network
namespace: `pasta.util.netns.ns_call` runs this inside the namespace).

Kernel assumptions: IP_FREEBIND and IPV6_FREEBIND (Linux 4.15+); SO_BINDTODEVICE without
CAP_NET_RAW works on Linux 5.7+ for an interface in the socket's namespace.

Differences from passt: passt's sock_l4() also registers the socket with epoll and packs the
fd reference; here the caller registers it (the engine's `add(fd, events, handler, kind)`).
"""

from __future__ import annotations

import enum
import socket

IP_FREEBIND = 15
IPV6_FREEBIND = 78


class Proto(enum.IntEnum):
    """What `sock_l4()` opens: `Proto.TCP` (stream), `Proto.UDP` (datagram), `Proto.PING` (an
    unprivileged ICMP or ICMPv6 echo socket)."""

    TCP = 6
    UDP = 17
    PING = 1


def sock_l4(v6: bool, proto: Proto, *, reuse: bool = False, freebind: bool = False,
            ifname: str | None = None, bufsize: int = 0, bind=None, listen: int = 0,
            connect=None) -> socket.socket:
    """A non-blocking, close-on-exec socket of `proto`, with the options asked for, then
    bound to `bind` (a sockaddr), listening with backlog `listen`, or connected to `connect`.
    `bufsize` sets both SO_RCVBUF and SO_SNDBUF (the kernel caps them at net.core.*mem_max)."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    if proto == Proto.TCP:
        kind, ipproto = socket.SOCK_STREAM, 0
    elif proto == Proto.UDP:
        kind, ipproto = socket.SOCK_DGRAM, 0
    else:
        kind, ipproto = socket.SOCK_DGRAM, (socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    s = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, ipproto)
    try:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6 and proto != Proto.PING:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if bufsize:
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                s.setsockopt(socket.SOL_SOCKET, opt, bufsize)
        if freebind:
            set_freebind(s, v6)
        if ifname:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        if bind is not None:
            s.bind(bind)
        if listen:
            s.listen(listen)
        if connect is not None:
            s.connect(connect)
    except BaseException:
        s.close()
        raise
    return s


def set_freebind(sock: socket.socket, v6: bool) -> None:
    """Bind to an address the host does not have (yet): IP_FREEBIND / IPV6_FREEBIND."""
    if v6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
