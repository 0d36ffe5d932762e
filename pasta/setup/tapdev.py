"""The tap device: creation inside the target netns and batched frame I/O.

Theory of operation: `open_tap(name, vnet_hdr=True)` must run inside the target network namespace
(the supervisor calls it through `netns.ns_call`): the tun driver binds the device to the netns of
the task that opens /dev/net/tun. The device is not persistent; it disappears when the last fd is
closed, so nothing is left behind when pypasta exits, however it exits. `attach_tap(fd)` adopts an
fd the caller already owns (`-F/--fd`).

Flags: IFF_TAP | IFF_NO_PI, plus IFF_VNET_HDR with a 12-byte virtio-net header (TUNSETVNETHDRSZ)
and TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6). With these, the namespace's stack may hand
us TCP segments of up to 64 KiB with only a partial checksum, and we may write frames whose L4
checksum the kernel completes (VIRTIO_NET_HDR_F_NEEDS_CSUM): Python never sums payload bytes
(kernel-facts.md). pasta uses none of this and computes checksums in software.

Frame I/O (the `pasta.shell.link.Link` interface): `read_batch()` reads up to N frames into
preallocated slots with `os.readv` (one frame per read on a tap) and returns them as memoryviews;
`write()` writes each frame with one `os.writev` of its pieces (header template + payload view),
so payload bytes are never copied in Python; a full queue or a link that is down drops the frame
(False).

Limits: one queue (no IFF_MULTI_QUEUE).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from pasta.shell.engine import EPOLLIN, FdKind
from pasta.util.errors import SetupError
from pasta.shell.link import WRITE_DROP_ERRNOS
from pasta.core.wire.l2 import VNET_HDR_LEN

TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04

FRAME_MAX = 65535 + VNET_HDR_LEN
_IFREQ = struct.Struct("16sH22x")


class Tap:
    """An open tap fd with its interface name and preallocated read slots."""

    def __init__(self, fd: int, name: str, vnet_hdr: bool, slots: int = 64):
        self.fd = fd
        self.name = name
        self.vnet_hdr = vnet_hdr
        self.hdr_len = VNET_HDR_LEN if vnet_hdr else 0
        size = FRAME_MAX if vnet_hdr else 65535
        self.slots = [bytearray(size) for _ in range(slots)]
        self.views = [memoryview(b) for b in self.slots]
        self.batch_max = slots

    def read_batch(self, limit: int | None = None) -> list:
        """Read frames until EAGAIN or `limit`; returns them as memoryviews, valid until the
        next call. Raises EOFError on hang-up."""
        out = []
        n = self.batch_max if limit is None else min(limit, self.batch_max)
        readv, fd, slots, views = os.readv, self.fd, self.slots, self.views
        for i in range(n):
            try:
                got = readv(fd, (slots[i],))
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if got == 0:
                raise EOFError("tap hang-up")
            out.append(views[i][:got])
        return out

    def write(self, pieces) -> bool:
        """Write one frame given as a sequence of buffers (vnet header first when enabled);
        False if the tap did not take it (queue full, link down)."""
        try:
            os.writev(self.fd, pieces)
        except OSError as e:
            if e.errno in WRITE_DROP_ERRNOS:
                return False
            raise
        return True

    def register(self, engine, handler, on_connect=None) -> None:
        engine.add(self.fd, EPOLLIN, handler, FdKind.TAP_PASTA)
        if on_connect is not None:
            on_connect()

    def unregister(self, engine) -> None:
        engine.remove(self.fd)

    def hangup(self, reason: str) -> bool:
        return False            # the namespace's end of the tap is gone: pypasta exits

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_tap(name: str, vnet_hdr: bool = True) -> Tap:
    """Create a (non-persistent) tap called `name` in the current thread's netns."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise SetupError(f"Failed to open() /dev/net/tun: {e.strerror}") from None
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    try:
        res = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
        if vnet_hdr:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    except OSError as e:
        os.close(fd)
        raise SetupError(f"TUNSETIFF ioctl on /dev/net/tun failed: {e.strerror}") from None
    real = _IFREQ.unpack(res)[0].rstrip(b"\0").decode()
    return Tap(fd, real, vnet_hdr)


def attach_tap(fd: int) -> Tap:
    """Adopt an already-open tap fd (`-F`): read its name and flags, make it non-blocking."""
    try:
        res = fcntl.ioctl(fd, TUNGETIFF, bytes(_IFREQ.size))
    except OSError as e:
        raise SetupError(f"fd {fd} is not a tap device: {e.strerror}") from None
    name, flags = _IFREQ.unpack(res)
    if not flags & IFF_TAP or not flags & IFF_NO_PI:
        raise SetupError(f"fd {fd} is not a tap device without packet information (IFF_TAP|IFF_NO_PI)")
    os.set_blocking(fd, False)
    os.set_inheritable(fd, False)
    vnet = bool(flags & IFF_VNET_HDR)
    if vnet:
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
    return Tap(fd, name.rstrip(b"\0").decode(), vnet)
