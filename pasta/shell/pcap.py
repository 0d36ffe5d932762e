"""`--pcap FILE`: every frame read from or written to the tap, in classic libpcap format.

Purpose: pasta's pcap.c (pasta-reference.md section 19.4) for debugging with tcpdump/Wireshark.

Theory of operation: `Pcap.open(path)` creates or truncates the file with mode 0600 at start-up
(as the user pypasta runs as, i.e. after `--runas`; pasta opens it before dropping privileges)
and writes the global header: magic 0xa1b2c3d4, version 2.4,
snaplen 65535, linktype 1 (Ethernet). `record(pieces)` appends one record whose timestamp is
CLOCK_REALTIME (seconds + microseconds) and whose caplen = len = the frame's length, with one
`os.writev` of the record header and the frame's pieces (`record(pieces, length)`) (no copy of the payload). The caller
passes the Ethernet frame only, never the virtio-net header.

States: open -> closed (`close()`); a write error logs once and closes the capture, the
translator carries on (capture is best effort, as in pasta).

Invariants: records are whole (one writev per record on a regular file); frames longer than the
snaplen are truncated to 65535 bytes in the capture with their true length in `len`.

Limits: no rotation; the file grows without bound, as in pasta.

Kernel assumptions: none. Differences from passt: none intended.
"""

from __future__ import annotations

import os
import struct
import time

from pasta.util import log

MAGIC = 0xA1B2C3D4
SNAPLEN = 65535
LINKTYPE_ETHERNET = 1
GLOBAL_HDR = struct.Struct("=IHHiIII")
RECORD_HDR = struct.Struct("=IIII")


class Pcap:
    def __init__(self, fd: int, path: str):
        self.fd = fd
        self.path = path
        self.records = 0
        self._hdr = bytearray(RECORD_HDR.size)

    @classmethod
    def open(cls, path: str) -> "Pcap | None":
        """Create the capture file; on failure log an error and return None (as pasta)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.write(fd, GLOBAL_HDR.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        except OSError as e:
            log.err(f"Couldn't open PCAP file {path}: {e.strerror}")
            return None
        log.info(f"Saving packet capture to {path}")
        return cls(fd, path)

    def record(self, pieces, length: int) -> None:
        """Append one frame given as buffers totalling `length` bytes."""
        if self.fd < 0:
            return
        ns = time.time_ns()
        cap = min(length, SNAPLEN)
        RECORD_HDR.pack_into(self._hdr, 0, ns // 1_000_000_000, (ns // 1000) % 1_000_000, cap,
                             length)
        if cap < length:
            pieces = _truncate(pieces, cap)
        try:
            os.writev(self.fd, [self._hdr, *pieces])
        except OSError as e:
            log.err(f"Cannot log packet to {self.path}: {e.strerror}; capture stopped")
            self.close()
            return
        self.records += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _truncate(pieces, cap: int) -> list:
    out = []
    for p in pieces:
        if cap <= 0:
            break
        mv = memoryview(p)
        out.append(mv[:cap])
        cap -= len(mv)
    return out
