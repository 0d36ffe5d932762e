"""pasta.shell.link.StreamLink over a socketpair: passt's framing (4-byte big-endian length, then the
frame), partial reads and writes, a broken stream, and the engine's EPOLLOUT finishing a frame.

The other end is plain socket code written here (struct, recv), not StreamLink itself, so the
framing is checked against an independent reader and writer."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from pasta.shell.engine import EPOLLIN, Engine
from pasta.shell.link import L2_MAX_LEN_PASST, StreamLink


def _pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return StreamLink(a), b


def _frame(n: int, fill: int | None = None) -> bytes:
    return os.urandom(n) if fill is None else bytes([fill]) * n


def _record(frame: bytes) -> bytes:
    return struct.pack(">I", len(frame)) + frame


def _read_records(sock: socket.socket, data: bytearray) -> list[bytes]:
    """Everything available on `sock`, cut into frames by the length words."""
    sock.setblocking(False)
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        data.extend(chunk)
    out = []
    while len(data) >= 4:
        n = struct.unpack_from(">I", data)[0]
        if len(data) < 4 + n:
            break
        out.append(bytes(data[4:4 + n]))
        del data[:4 + n]
    return out


def test_frames_come_out_whole_from_one_read():
    link, peer = _pair()
    frames = [_frame(n) for n in (14, 60, 1514, 65535)]
    peer.sendall(b"".join(_record(f) for f in frames))
    got = [bytes(v) for v in link.read_batch()]
    assert got == frames
    assert link.read_batch() == []
    link.close()
    peer.close()


def test_a_stream_cut_anywhere_is_put_back_together():
    """The bytes arrive one at a time: inside the length word, inside the frame."""
    link, peer = _pair()
    frames = [_frame(n) for n in (42, 14, 300, 9000)]
    stream = b"".join(_record(f) for f in frames)
    got = []
    for i in range(len(stream)):
        peer.send(stream[i:i + 1])
        got += [bytes(v) for v in link.read_batch()]
    assert got == frames
    link.close()
    peer.close()


def test_frames_stay_valid_until_the_next_read():
    link, peer = _pair()
    a, b = _frame(100, 1), _frame(100, 2)
    peer.sendall(_record(a) + _record(b)[:50])
    (va,) = link.read_batch()
    assert bytes(va) == a
    peer.sendall(_record(b)[50:])
    (vb,) = link.read_batch()
    assert bytes(vb) == b
    link.close()
    peer.close()


@pytest.mark.parametrize("length", [0, 13, L2_MAX_LEN_PASST + 1, 0xFFFFFFFF])
def test_a_bad_length_gives_the_connection_up(length):
    link, peer = _pair()
    peer.sendall(struct.pack(">I", length) + b"x" * 20)
    with pytest.raises(EOFError, match="bad frame size"):
        link.read_batch()
    link.close()
    peer.close()


def test_hang_up_after_the_last_frames():
    link, peer = _pair()
    f = _frame(64)
    peer.sendall(_record(f))
    peer.close()
    assert [bytes(v) for v in link.read_batch()] == [f]
    with pytest.raises(EOFError):
        link.read_batch()
    link.close()


def test_frames_written_carry_their_length():
    link, peer = _pair()
    frames = [_frame(n) for n in (14, 1514, 65535)]
    for f in frames:
        assert link.write([memoryview(f)[:10], memoryview(f)[10:]])
    assert _read_records(peer, bytearray()) == frames
    link.close()
    peer.close()


def test_a_partly_written_frame_is_finished_before_any_other():
    """Fill the socket until a frame goes out only in part: later frames are not taken while
    it is pending; once the peer reads, EPOLLOUT finishes it. The peer sees whole frames in
    order, exactly those that write() took."""
    a, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    link = StreamLink(a)
    engine = Engine()
    link.register(engine, lambda ev: None)
    taken, refused = [], 0
    i = 0
    while link.pending is None:
        f = _frame(20000, i % 251)
        assert link.write([f]), "a frame refused before any was partly written"
        taken.append(f)
        i += 1
    for j in range(5):
        f = _frame(3000, 7)
        if link.write([f]):
            taken.append(f)
        else:
            refused += 1
    assert refused == 5
    got, data = [], bytearray()

    def drained():
        got.extend(_read_records(peer, data))
        return link.pending is None and len(got) == len(taken)

    deadline = engine.call_later(5.0, lambda: engine.stop(1))

    def check():
        if drained():
            engine.stop(0)
        else:
            engine.call_later(0.005, check)
    engine.call_later(0, check)
    assert engine.run() == 0, (len(got), len(taken), link.pending)
    deadline.cancel()
    assert got == taken
    f = _frame(500)
    assert link.write([f])                        # taken again once the frame is finished
    assert _read_records(peer, data) == [f]
    link.unregister(engine)
    engine.close()
    link.close()
    peer.close()


def test_the_engine_reports_frames_arriving():
    link, peer = _pair()
    engine = Engine()
    seen = []

    def readable(events):
        assert events & EPOLLIN
        seen.extend(bytes(v) for v in link.read_batch())
        engine.stop(0)
    link.register(engine, readable)
    f = _frame(1000)
    peer.sendall(_record(f))
    limit = engine.call_later(2.0, lambda: engine.stop(1))
    assert engine.run() == 0
    limit.cancel()
    assert seen == [f]
    link.unregister(engine)
    engine.close()
    link.close()
    peer.close()


def test_a_long_incomplete_frame_moves_to_the_front_intact():
    """The tail left after a short frame is longer than the distance it moves."""
    link, peer = _pair()
    a, b = _frame(100), _frame(60000)
    peer.sendall(_record(a) + _record(b)[:50000])
    assert [bytes(v) for v in link.read_batch()] == [a]
    peer.sendall(_record(b)[50000:])
    assert [bytes(v) for v in link.read_batch()] == [b]
    link.close()
    peer.close()
