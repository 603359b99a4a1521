"""Recordings made from the page: one client's pose messages, kept for download as JSON Lines and BVH.

A recording holds the pose messages the server *sent* to that client (a pose replaced in the outbox
because the client was slow is not in it, so the file matches what the page showed), each written as a
line of the one recording schema (posecast/records.py, the same as `posecast process`). Bounded: at most
`max_seconds` and `max_bytes` of JSON Lines, then it stops by itself. Files live only in the server's
own temporary folder under names the server draws; the download URL carries a second random token that
is never a file name, so nothing a client sends reaches the file system. Files are deleted when their
client leaves, when it starts a new recording, `keep_s` after they became ready, or when the server stops.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posecast import records

from .outbox import Outbox
from .peer import LIVE_FIELDS

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "bvh")
MIME = {"jsonl": "application/x-ndjson", "bvh": "text/plain; charset=us-ascii"}


@dataclass(frozen=True)
class RecordingLimits:
    max_seconds: float = 600.0  # 10 minutes
    max_bytes: int = 64 * 1024 * 1024  # of JSON Lines: ~30 minutes of one person at 20 poses a second
    keep_s: float = 600.0  # how long a finished recording stays downloadable


class Recording:
    """One recording of one client. add() each pose sent; finish() writes the BVH; delete() removes all."""

    def __init__(self, folder: Path, header: dict, limits: RecordingLimits) -> None:
        self.limits = limits
        self.token = secrets.token_urlsafe(32)  # the download URL's; never a file name
        self.name = time.strftime("posecast-%Y%m%d-%H%M%S")  # the downloads' names (Content-Disposition)
        self.paths = {fmt: folder / f"{secrets.token_hex(16)}.{fmt}" for fmt in FORMATS}
        self.started = time.monotonic()
        self.frames = 0
        self.bytes = 0
        self.stop_reason: str | None = None
        self.ready = False
        self.bvh_error: str | None = None
        self._file = open(self.paths["jsonl"], "x", encoding="utf-8")  # noqa: SIM115 - open while recording
        self._write(records.dumps(header))
        self._first_t: float | None = None
        self._t: list[float] = []
        self._joints: list[np.ndarray] = []  # the main person per frame, for the BVH
        self._valid: list[np.ndarray] = []
        self._root: list[np.ndarray] = []
        self._has_root = False

    @property
    def seconds(self) -> float:
        return self._t[-1] if self._t else 0.0

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")
        self.bytes += len(line.encode()) + 1

    def add(self, pose_text: str) -> str | None:
        """Append one sent pose message; returns why the recording must stop now (a limit reached), else None."""
        if self.stop_reason is not None:
            return self.stop_reason
        message = json.loads(pose_text)
        t_abs = message["pts"] if message.get("pts") is not None else message["server_ts"] / 1e3
        if self._first_t is None:
            self._first_t = t_abs
        t = max(0.0, t_abs - self._first_t)
        frame = {k: v for k, v in message.items() if k not in LIVE_FIELDS}
        record = records.frame_record(self.frames, t, frame.pop("frame_size"), frame.pop("crop"),
                                      frame.pop("people"), scene=frame)
        self._write(records.dumps(record))
        self.frames += 1
        self._t.append(t)
        joints, valid, root = records.main_person_arrays([record])
        self._joints.append(joints[0])
        self._valid.append(valid[0])
        self._has_root |= root is not None
        self._root.append(root[0] if root is not None else np.full(3, np.nan))
        # A limit stops the recording after the pose that reached it: every pose the page got before
        # the `stopped` message is in the file (the size may pass max_bytes by that one line).
        if self.bytes >= self.limits.max_bytes:
            return self.stop("size_limit")
        if time.monotonic() - self.started >= self.limits.max_seconds:
            return self.stop("time_limit")
        return None

    def stop(self, reason: str) -> str:
        if self.stop_reason is None:
            self.stop_reason = reason
            self._file.close()
        return self.stop_reason

    def fps(self) -> float:
        """One BVH frame per recorded pose, at the poses' mean rate (the server processes frames irregularly)."""
        if self.frames < 2 or self.seconds <= 0:
            return 30.0
        return float(np.clip((self.frames - 1) / self.seconds, 1.0, 120.0))

    def finish(self) -> None:
        """Write the BVH of the main person (blocking: call it from a thread). A recording without anyone
        in it has no BVH: bvh_error says why, for the page to show."""
        from posecast.bvh_export import write_bvh

        try:
            if not self.frames:
                raise ValueError("nothing was recorded: no pose arrived while recording")
            root = np.stack(self._root) if self._has_root else None
            write_bvh(self.paths["bvh"], np.stack(self._joints), np.stack(self._valid), self.fps(), root)
        except ValueError as exc:
            self.bvh_error = str(exc)
        except OSError as exc:  # the folder went (the server is stopping) or is full
            log.warning("could not write a recording's BVH: %s", exc)
            self.bvh_error = "the server could not write the BVH file"
        self._joints = self._valid = self._root = []  # only the files are kept
        self.ready = True

    def available(self) -> dict[str, bool]:
        return {"jsonl": self.ready, "bvh": self.ready and self.bvh_error is None}

    def delete(self) -> None:
        self.stop(self.stop_reason or "deleted")
        for path in self.paths.values():
            path.unlink(missing_ok=True)


class RecordingStore:
    """The server's recordings by download token, in one temporary folder made on first use."""

    def __init__(self, limits: RecordingLimits) -> None:
        self.limits = limits
        self.by_token: dict[str, Recording] = {}
        self._folder: Path | None = None
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self.finishing: set[asyncio.Task] = set()  # BVH exports under way, awaited at close

    def new(self, header: dict) -> Recording:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="posecast-recordings-"))
            log.info("recordings are kept in %s", self._folder)
        recording = Recording(self._folder, header, self.limits)
        self.by_token[recording.token] = recording
        return recording

    async def finish(self, recording: Recording) -> None:
        await asyncio.to_thread(recording.finish)  # not the inference worker: the others' poses go on
        if recording.token not in self.by_token:  # its client left meanwhile: the BVH just written goes too
            recording.delete()
            return
        loop = asyncio.get_running_loop()
        self._expiry[recording.token] = loop.call_later(self.limits.keep_s, self.delete, recording)

    def get(self, token: str, fmt: str) -> tuple[Recording, Path] | None:
        """The recording and file for a download, if the token is known and that file exists."""
        recording = self.by_token.get(token)
        if recording is None or fmt not in FORMATS or not recording.available()[fmt]:
            return None
        return recording, recording.paths[fmt]

    def delete(self, recording: Recording) -> None:
        self.by_token.pop(recording.token, None)
        handle = self._expiry.pop(recording.token, None)
        if handle is not None:
            handle.cancel()
        recording.delete()

    async def close(self) -> None:
        """Delete everything, once the BVH exports under way are done (they write into the folder)."""
        await asyncio.gather(*self.finishing, return_exceptions=True)
        for recording in list(self.by_token.values()):
            self.delete(recording)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class Recorder:
    """A session's side of recording: the `record` messages, the `recording` replies (docs/protocol.md)."""

    def __init__(self, store: RecordingStore, outbox: Outbox, header: Callable[[], dict]) -> None:
        self.store = store
        self.outbox = outbox
        self.header = header
        self.recording: Recording | None = None  # the latest: recording, finishing, or ready for download
        self._time_up: asyncio.TimerHandle | None = None  # the time limit, even when no pose comes

    @property
    def active(self) -> bool:
        return self.recording is not None and self.recording.stop_reason is None

    def start(self) -> None:
        if self.active:
            raise RecordingRefused("already recording; send record/stop first")
        self.close()  # one recording per client: a new one replaces the last
        try:
            self.recording = self.store.new(self.header())
        except OSError as exc:  # the temporary folder: full, or not writable
            log.error("cannot record: %s", exc)
            raise RecordingRefused("the server cannot record now (its temporary folder is not writable)") from None
        self.outbox.on_pose_sent = self._on_pose_sent
        self._time_up = asyncio.get_running_loop().call_later(self.store.limits.max_seconds, self._out_of_time,
                                                              self.recording)
        limits = self.store.limits
        self.outbox.send({"type": "recording", "state": "recording", "max_seconds": limits.max_seconds,
                          "max_bytes": limits.max_bytes})

    def stop(self) -> None:
        if not self.active:
            raise RecordingRefused("not recording")
        self.recording.stop("requested")
        self._stopped(self.recording)

    def _out_of_time(self, recording: Recording) -> None:
        if recording is self.recording and self.active:
            recording.stop("time_limit")
            self._stopped(recording)

    def _stopped(self, recording: Recording) -> None:
        reason = recording.stop_reason
        self.outbox.on_pose_sent = None
        if self._time_up is not None:
            self._time_up.cancel()
        log.info("recording stopped (%s): %d poses, %.1f s, %d bytes", reason, recording.frames,
                 recording.seconds, recording.bytes)
        self.outbox.send({"type": "recording", "state": "stopped", "reason": reason, **self._figures(recording)})
        task = asyncio.create_task(self._finish(recording))
        self.store.finishing.add(task)
        task.add_done_callback(self.store.finishing.discard)

    def _on_pose_sent(self, text: str) -> None:
        if self.recording is not None and self.recording.add(text) is not None:  # a limit reached
            self._stopped(self.recording)

    async def _finish(self, recording: Recording) -> None:
        await self.store.finish(recording)
        if recording is not self.recording or not recording.ready:
            return  # replaced or deleted meanwhile
        available = recording.available()
        self.outbox.send({"type": "recording", "state": "ready", **self._figures(recording),
                          "downloads": {fmt: f"/recordings/{recording.token}.{fmt}" if ok else None
                                        for fmt, ok in available.items()},
                          "bvh_error": recording.bvh_error, "expires_in_s": self.store.limits.keep_s})

    @staticmethod
    def _figures(recording: Recording) -> dict:
        return {"frames": recording.frames, "seconds": round(recording.seconds, 2), "bytes": recording.bytes}

    def close(self) -> None:
        """The client left (or starts anew): its recording goes, files and all."""
        self.outbox.on_pose_sent = None
        if self._time_up is not None:
            self._time_up.cancel()
        if self.recording is not None:
            self.store.delete(self.recording)
            self.recording = None


class RecordingRefused(ValueError):
    """A record message that does not fit the state (stop while not recording, start while recording)."""
