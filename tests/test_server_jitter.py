"""MarkerJitterBuffer: a video frame leaves at its marker packet, not one frame later; aiortc's logic otherwise."""
from __future__ import annotations

from aiortc.rtp import RtpPacket

from server.jitter import MarkerJitterBuffer


def packet(seq: int, ts: int, data: bytes, marker: bool = False) -> RtpPacket:
    p = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=ts, payload=data)
    p._data = data  # what the receiver's depayloader would have set
    return p


def frames(buffer: MarkerJitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes] | None]:
    out = []
    for p in packets:
        _, frame = buffer.add(p)
        out.append(None if frame is None else (frame.timestamp, frame.data))
    return out


def test_frame_released_at_its_marker_packet():
    b = MarkerJitterBuffer(capacity=128, is_video=True)
    got = frames(b, [packet(0, 1000, b"a"), packet(1, 1000, b"b"), packet(2, 1000, b"c", marker=True)])
    assert got == [None, None, (1000, b"abc")]


def test_reordered_packets_wait_for_the_gap_to_fill():
    b = MarkerJitterBuffer(capacity=128, is_video=True)
    got = frames(b, [packet(10, 1000, b"a"), packet(12, 1000, b"c", marker=True), packet(11, 1000, b"b")])
    assert got == [None, None, (1000, b"abc")]


def test_stragglers_of_a_delivered_frame_do_not_make_a_frame():
    b = MarkerJitterBuffer(capacity=128, is_video=True)
    got = frames(b, [packet(0, 1000, b"a", marker=True), packet(1, 1000, b""),  # padding after the frame
                     packet(2, 2000, b"x"), packet(3, 2000, b"y", marker=True)])
    assert got == [(1000, b"a"), None, None, (2000, b"xy")]


def test_lost_marker_falls_back_to_the_next_frame_starting():
    b = MarkerJitterBuffer(capacity=128, is_video=True)
    got = frames(b, [packet(0, 1000, b"a"), packet(1, 1000, b"b"),  # marker packet never arrives
                     packet(2, 2000, b"x", marker=True)])
    assert got[:2] == [None, None]
    assert got[2] == (1000, b"ab")  # aiortc's own rule: complete once the next frame begins
