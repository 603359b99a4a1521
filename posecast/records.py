"""The one schema of posecast's pose data: a person, a frame, and the header of a recording (docs/offline.md).

The live `pose` message (server/peer.py) and a line of a `.jsonl` recording (`posecast process`, the page's
recordings) are built here, so both carry the same fields with the same meaning and rounding.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

import posecast
from posecast.skeleton import skeleton_info

# Bump when a field changes meaning or goes away (adding a field does not break readers that ignore unknown keys).
SCHEMA_VERSION = 1
FORMAT = "posecast.poses"  # the header's `format`: what a reader checks before trusting the rest


def _round(a: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(a, np.float64), digits).tolist()


def person_record(track_id: int, main: bool, score: float, joints3d: np.ndarray, keypoints: np.ndarray,
                  confidence: np.ndarray, coco18: np.ndarray, coco18_confidence: np.ndarray,
                  held: np.ndarray | None = None, **extra) -> dict:
    """One person, JSON-ready. joints3d [17, 3] mm (camera axes, pelvis-relative), keypoints [17, 2] frame pixels,
    confidence [17] (0 = missing), coco18 [18, 2] pixels with coco18_confidence [18]; held [17] bool: joints
    missing now whose 3D the temporal lifter carried over from the frames just before (None: none); `extra`:
    further JSON-ready fields of the person (e.g. where they are in the room), placed after joints3d.
    A missing joint's coordinates are written as zeros unless it is held: readers go by confidence and `held`."""
    missing = np.asarray(confidence) <= 0
    held = np.zeros(len(missing), bool) if held is None else np.asarray(held, bool) & missing
    return {
        "id": int(track_id), "main": bool(main), "score": round(float(score), 3),
        "joints3d": _round(np.where((missing & ~held)[:, None], 0.0, joints3d), 1),
        "held": held.tolist(),
        **extra,
        "keypoints": _round(np.where(missing[:, None], 0.0, keypoints), 1),
        "confidence": _round(confidence, 3),
        "coco18": _round(np.concatenate([coco18, np.asarray(coco18_confidence)[:, None]], axis=1), 3),
    }


def frame_fields(frame_size: tuple[int, int], crop: Sequence[float] | None, people: list[dict],
                 scene: Mapping | None = None) -> dict:
    """What a frame's pose data holds, live and recorded alike: frame size (w, h), the detector's crop, the people,
    then `scene`: the stream-wide JSON-ready fields the pipeline gives (FrameResult.scene, when it has them)."""
    return {"frame_size": [int(frame_size[0]), int(frame_size[1])],
            "crop": [round(float(v), 1) for v in crop] if crop is not None else None,
            "people": people, **(scene or {})}


def frame_record(index: int, t: float | None, frame_size: tuple[int, int], crop: Sequence[float] | None,
                 people: list[dict], scene: Mapping | None = None, **extra) -> dict:
    """One line of a recording: the frame's index (0-based, every decoded frame), its time in seconds
    (None for unrelated images), then frame_fields; `extra` (e.g. `source`, the image's file name) goes last."""
    return {"index": int(index), "t": None if t is None else round(float(t), 4),
            **frame_fields(frame_size, crop, people, scene), **extra}


def header_record(models: Mapping, options: Mapping, source: Mapping | None = None) -> dict:
    """The first line of a recording: what the frames mean and what made them."""
    return {"format": FORMAT, "schema": SCHEMA_VERSION, "posecast": posecast.__version__,
            "skeleton": skeleton_info(), "models": dict(models), "options": dict(options),
            "source": dict(source or {})}


def dumps(record: Mapping) -> str:
    """One compact JSON line (no newline)."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def read_jsonl(path) -> tuple[dict, list[dict]]:
    """A recording's header and frames; ValueError when the file is not a posecast recording."""
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines or lines[0].get("format") != FORMAT:
        raise ValueError(f"{path}: not a posecast recording (no '{FORMAT}' header line)")
    if lines[0].get("schema", 0) > SCHEMA_VERSION:
        raise ValueError(f"{path}: schema {lines[0]['schema']} is newer than this posecast reads ({SCHEMA_VERSION})")
    return lines[0], lines[1:]


def main_person(people: list[dict]) -> dict | None:
    """The frame's main person (the detector's tracked one, listed first), or None."""
    return next((p for p in people if p.get("main")), None)


def main_person_arrays(frames: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The main person over a recording's frames (records or pose messages), for the BVH export:
    joints3d [F, 17, 3] mm, valid [F, 17] (False where missing or nobody; True for joints held by the temporal
    lifter: a leg behind a chair keeps following the lifted estimate rather than freezing), root [F, 3] mm or None
    (when the people carry no `root`; NaN rows where nobody was found)."""
    n = len(frames)
    joints = np.zeros((n, 17, 3), np.float64)
    valid = np.zeros((n, 17), bool)
    root = np.full((n, 3), np.nan)
    has_root = False
    for i, frame in enumerate(frames):
        person = main_person(frame["people"])
        if person is None:
            continue
        joints[i] = person["joints3d"]
        valid[i] = (np.asarray(person["confidence"]) > 0) | np.asarray(person.get("held", False), bool)
        if person.get("root") is not None:
            root[i] = person["root"]
            has_root = True
    return joints, valid, root if has_root else None
