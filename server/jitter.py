"""Hand a received video frame to the decoder as soon as its last packet is in.

aiortc's jitter buffer knows a frame is complete only when the first packet of the *next*
frame arrives, which holds every frame back by one frame interval (33 ms at 30 fps, most
of the transport's latency on one machine). Senders set the RTP marker bit on the last
packet of each video frame (RFC 7741 for VP8, RFC 6184 for H.264), so a contiguous run of
packets with one timestamp that ends in a marker is a whole frame: release it then.
Everything else (loss, reordering, NACK, PLI) stays aiortc's own logic.
"""
from __future__ import annotations

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame


class MarkerJitterBuffer(JitterBuffer):
    def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
        super().__init__(capacity, prefetch=prefetch, is_video=is_video)
        self._delivered: int | None = None  # RTP timestamp of the last frame handed on

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if not self._is_video or self._prefetch:
            return super()._remove_frame(sequence_number)
        # Stragglers of a frame already delivered (e.g. padding) would otherwise form a bogus frame.
        while (p := self._packets[self._origin % self._capacity]) is not None and p.timestamp == self._delivered:
            self.remove(1)
        frame = super()._remove_frame(sequence_number) or self._marked_frame()
        if frame is not None:
            self._delivered = frame.timestamp
        return frame

    def _marked_frame(self) -> JitterFrame | None:
        """The frame at the origin, if all its packets up to the marker are here."""
        packets = []
        for count in range(self._capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packet.timestamp)
        return None


def install() -> None:
    """Make aiortc's receivers (created after this call) use MarkerJitterBuffer; idempotent."""
    aiortc.rtcrtpreceiver.JitterBuffer = MarkerJitterBuffer
