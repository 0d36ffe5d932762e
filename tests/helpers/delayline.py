"""A one-way delay line for IP packets, for a kernel without netem (tests only).

Usage (as root, in the namespace that holds the destination address):
    delayline.py IFNAME DELAY_MS

Creates the TUN device IFNAME (IFF_TUN, IFF_NO_PI), prints "ready", then writes every packet
it reads back into the same device DELAY_MS later, in order. The caller routes the packets to
be delayed into IFNAME (policy routing on the incoming interface) and lets the ones written
back be delivered locally. Runs until killed.
"""

from __future__ import annotations

import collections
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def main() -> int:
    ifname, delay = sys.argv[1], float(sys.argv[2]) / 1000
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TUN | IFF_NO_PI))
    print("ready", flush=True)
    queue: collections.deque = collections.deque()
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        ready, _, _ = select.select([fd], [], [], timeout)
        now = time.monotonic()
        if ready:
            for _ in range(256):
                try:
                    queue.append((now + delay, os.read(fd, 65536)))
                except BlockingIOError:
                    break
        while queue and queue[0][0] <= now:
            try:
                os.write(fd, queue.popleft()[1])
            except OSError:
                pass                    # (a full queue drops it, as a real link would)


if __name__ == "__main__":
    sys.exit(main())
