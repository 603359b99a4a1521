"""Sending to one websocket without letting a slow reader hold anyone up.

Control messages (hello, answer, pong, error) are queued and always delivered, in order.
Pose messages go into a one-message slot: a pose still unsent when the next one is ready
is replaced (and counted), as in the websockets broadcast example, so a slow client gets
fewer, fresh poses instead of an ever longer backlog, and the pump never waits for it.

What one client can make the server hold is bounded: a client that keeps asking (pings, bad
messages) without reading would otherwise grow the control queue until it disconnects. Past
`max_messages` or `max_bytes` unsent, the connection is closed with UNREAD_CLOSE_CODE.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

UNREAD_CLOSE_CODE = 1008  # "policy violation": the client left too many replies unread
CLOSE_TIMEOUT_S = 2.0  # a client that does not read will not take the close frame either


class Outbox:
    def __init__(self, ws: ServerConnection, max_messages: int = 64, max_bytes: int = 1 << 20) -> None:
        self.ws = ws
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.replaced = 0  # pose messages dropped because the client had not taken the previous one
        self.overflowed = False  # the client left too much unread and is being closed
        self._control: deque[str] = deque()
        self._control_bytes = 0
        self._pose: str | None = None
        self._wake = asyncio.Event()
        self._closing: asyncio.Task | None = None

    def send(self, message: dict) -> None:
        if self.overflowed:
            return
        text = json.dumps(message, separators=(",", ":"))
        if len(self._control) >= self.max_messages or self._control_bytes + len(text) > self.max_bytes:
            self._overflow()
            return
        self._control.append(text)
        self._control_bytes += len(text)
        self._wake.set()

    def _overflow(self) -> None:
        self.overflowed = True
        log.warning("closing a client that left %d replies (%d bytes) unread", len(self._control),
                    self._control_bytes)
        self._control.clear()
        self._control_bytes = 0
        self._pose = None
        self._closing = asyncio.create_task(self._close())

    async def _close(self) -> None:
        reason = f"over {self.max_messages} replies or {self.max_bytes} bytes left unread"
        try:
            await asyncio.wait_for(self.ws.close(UNREAD_CLOSE_CODE, reason), CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        self.ws.transport.abort()  # frees the socket's buffers even if the close handshake stalled

    def send_pose(self, text: str) -> None:
        if self._pose is not None:
            self.replaced += 1
        if not self.overflowed:
            self._pose = text
            self._wake.set()

    async def run(self) -> None:
        """The connection's only writer; ends when the socket closes."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._control or self._pose is not None:
                    if self._control:
                        text = self._control.popleft()
                        self._control_bytes -= len(text)
                    else:
                        text, self._pose = self._pose, None
                    await self.ws.send(text)  # waits while the client's buffer is full
        except ConnectionClosed:
            pass

