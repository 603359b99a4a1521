"""Sending to one websocket without letting a slow reader hold anyone up.

Control messages (hello, answer, pong, error) are queued and always delivered, in order.
Pose messages go into a one-message slot: a pose still unsent when the next one is ready
is replaced (and counted), as in the websockets broadcast example, so a slow client gets
fewer, fresh poses instead of an ever longer backlog, and the pump never waits for it.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.replaced = 0  # pose messages dropped because the client had not taken the previous one
        self._control: deque[str] = deque()
        self._pose: str | None = None
        self._wake = asyncio.Event()

    def send(self, message: dict) -> None:
        self._control.append(json.dumps(message, separators=(",", ":")))
        self._wake.set()

    def send_pose(self, text: str) -> None:
        if self._pose is not None:
            self.replaced += 1
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
                    else:
                        text, self._pose = self._pose, None
                    await self.ws.send(text)  # waits while the client's buffer is full
        except ConnectionClosed:
            pass

