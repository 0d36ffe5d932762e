"""A passt-mode frame client for the tests: what QEMU's `-netdev stream` does, in Python.

Purpose: drive pypasta-passt's socket at the frame level where a real guest cannot show what a
test must see (the initial ARP request, a second client's EOF, the framing itself, checksums
checked with scapy), and feed the passt-mode benchmark.

Theory of operation: `FrameClient.connect(path)` (or `FrameClient(sock)` for a socketpair
end) sends frames with passt's framing (a 4-byte big-endian length, then the frame) and
reassembles received ones from the byte stream. `recv_frames(timeout)` returns the frames
complete so far, waiting up to `timeout` for the first; `wait_frame(pred, timeout)` returns the
first received frame for which `pred(frame)` is true. `at_eof(timeout)` says whether the server
closed the stream.

Limits: blocking socket with timeouts; one thread.
"""

from __future__ import annotations

import socket
import struct
import time

_LEN = struct.Struct(">I")


class FrameClient:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    @classmethod
    def connect(cls, path: str, timeout: float = 5.0) -> "FrameClient":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s)

    def send(self, frame: bytes) -> None:
        self.sock.sendall(_LEN.pack(len(frame)) + bytes(frame))

    def _fill(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def _take(self) -> list[bytes]:
        out = []
        while len(self.buf) >= 4:
            n = _LEN.unpack_from(self.buf)[0]
            if len(self.buf) < 4 + n:
                break
            out.append(bytes(self.buf[4:4 + n]))
            del self.buf[:4 + n]
        return out

    def recv_frames(self, timeout: float = 2.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        frames = self._take()
        while not frames and not self.eof and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
            frames = self._take()
        return frames

    def wait_frame(self, pred, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            for f in self.recv_frames(deadline - time.monotonic()):
                if pred(f):
                    return f
                seen.append(f)
            if self.eof:
                break
        raise AssertionError(f"no matching frame in {timeout} s (eof={self.eof}); "
                             f"got {[f[:34].hex() for f in seen][:10]}")

    def at_eof(self, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        return self.eof

    def close(self) -> None:
        self.sock.close()
