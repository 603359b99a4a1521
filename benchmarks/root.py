"""`python -m benchmarks root`: how far off the person's position in the room is, and how much planted feet slide.

Held-out motion capture with its real root motion (the climbing set, never trained on; Bandai clips held out
from training) is seen through one static virtual camera per clip, at the live server's uneven frame rates (each
step 1, 2 or 3 frames of 30 fps), and run as live: the lifter, One-Euro on the joints, then posecast.world
(root by reprojection, filtered, floor, foot lock) with the camera's true focal length and with one 15 % off.
The principal point is taken at the image's centre, as the page does (the cameras' own are off it by ~2 % of the
image, as real webcams' are); with the true focal the rows are also given for the true principal point (`pp true`:
the keypoints shifted so that it is the centre), which leaves the lifter's and the solve's own error.
Errors are of the pelvis in camera space, in mm and as a share of the true distance to the camera.
Foot slide: how fast a predicted ankle moves while the true one is planted (true speed under 100 mm/s).
By the camera's pitch: the depth bias beside the lifter's tilt error, how much further from the camera than the
truth the lifted spine (pelvis -> thorax) leans (the lifter standing people too upright puts them too far away).
By posture: the same root error for upright, bent and horizontal bodies (the true trunk's angle from the camera's up).
Prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from posecast import paths
from posecast.floor import FEET
from posecast.history import KeypointHistory
from posecast.lifter import Lifter, TemporalLifter
from posecast.skeleton import H, coco18_to_h36m17
from posecast.smoothing import OneEuroOptions, TrackSmoother
from posecast.root import ADULT_LEG_MM
from posecast.world import World, WorldOptions, leg_lengths

log = logging.getLogger(__name__)

# (focal length as a factor of the true one, principal point: the image centre or the camera's true one)
INTRINSICS = ((1.0, "centre"), (1.0, "true"), (0.85, "centre"), (1.15, "centre"))
PLANTED_MM_S = 100.0  # a true ankle slower than this is planted
LOW_MM = 80.0  # ...and on the floor when within this of the clip's lowest ankle heights
VARIANTS = ("per frame", "filtered", "+ foot lock")  # solve alone; filtered over time; the page's `root`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = paths.shared_dir() / "data"
    parser.add_argument("--model", type=Path, default=paths.LIFTER_ONNX, help="per-frame lifter")
    parser.add_argument("--temporal", type=Path, default=paths.LIFTER_TEMPORAL_ONNX,
                        help="temporal lifter, measured beside the per-frame one when the file exists")
    parser.add_argument("--bandai", type=Path, default=data / "bandai-motion-bvh.tar.xz")
    parser.add_argument("--climb", type=Path, default=data / "holosoma-climb")
    parser.add_argument("--clips", type=int, default=40, help="Bandai held-out clips to use (spread over actions)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--true-legs", action="store_true",
                        help="give each clip's people their true leg length (what `--height` gives a user who knows "
                             "theirs) instead of the adult default")


@dataclass
class Clip:
    name: str
    landmarks: np.ndarray  # [F,14,3] mm, Y up, with root motion
    fps: float


def run(args: argparse.Namespace) -> int:
    from training.body import coco18_points, head_frame_from_body
    from training.cameras import CameraRanges, random_cameras
    from training.metrics import POSTURES, trunk_pitch
    from training.rigs import L

    lifters = {"frame": Lifter(args.model, device="cpu", threads=args.threads)}
    if args.temporal.is_file():
        lifters["temporal"] = TemporalLifter(args.temporal, device="cpu", threads=args.threads)
    else:
        print(f"(no temporal lifter at {args.temporal}: the per-frame lifter only)")
    sets = {"climb": _climb(args.climb), "bandai": _bandai(args.bandai, args.clips)}
    ranges = CameraRanges(distance_mm=(2500.0, 5000.0), offset=0.15)  # the lifter evaluation's cameras
    rows, by_pitch, by_posture = [], {}, {}
    for set_name, clips in sets.items():
        if not clips:
            print(f"({set_name}: no clips found, skipped)")
            continue
        for condition, noise_px in (("exact", 0.0), ("noise5", 5.0)):
            acc: dict = {}
            for index, clip in enumerate(clips):
                rng = np.random.default_rng([args.seed, index])  # one camera and timing per clip, both conditions
                times = _live_times(len(clip.landmarks) / clip.fps, rng)
                lm = _resample(clip.landmarks, clip.fps, times)
                up, forward = head_frame_from_body(lm)
                coco = coco18_points(lm, up, forward)
                cams = random_cameras(1, rng, ranges)
                pitch = math.degrees(math.asin(-cams.rotation[0][2, 1]))  # camera looking down: positive
                centre = 0.5 * (lm[:, 0] + lm[:, 3]).mean(0)  # the clip's mean pelvis (hips are landmarks 0, 3)
                flat = cams.to_camera((coco - centre).reshape(1, -1, 3))  # the camera's, for all frames at once
                pixels = cams.project(flat)
                seen = cams.in_image(pixels, flat).reshape(coco.shape[:2])
                cam, pixels = flat.reshape(coco.shape), pixels.reshape(coco.shape[:2] + (2,))
                pixels = pixels + rng.normal(0, noise_px, pixels.shape)
                kp, cf = coco18_to_h36m17(pixels, seen.astype(np.float32))
                truth, _ = coco18_to_h36m17(cam, np.ones(cam.shape[:2], np.float32))
                posture = trunk_pitch(truth)
                heights = lm[:, [L["r_ankle"], L["l_ankle"]], 1]  # world Y up, FEET order
                low = heights < np.percentile(heights, 5) + LOW_MM  # at the clip's floor level (not on a box)
                width, height = (int(v) for v in cams.size[0])
                legs = float(np.median(leg_lengths(truth).mean(-1))) if args.true_legs else ADULT_LEG_MM
                for name, lifter in lifters.items():
                    joints = _smoothed(_lift(lifter, kp, cf, times), cf, times)
                    for factor, pp in INTRINSICS:
                        fov = math.degrees(2 * math.atan(0.5 * width / (factor * cams.focal[0])))
                        # A pinhole with its principal point at c sees what one with it at the centre sees, shifted.
                        seen_kp = kp + (0.5 * np.array([width, height]) - cams.centre[0]) if pp == "true" else kp
                        for variant in VARIANTS:
                            placed = _place(variant, fov, seen_kp, cf, joints, (width, height), times, legs)
                            _score(acc.setdefault((name, factor, pp, variant), _Acc()), *placed, truth, low, times)
                            if (factor, pp) == INTRINSICS[0] and variant == VARIANTS[-1]:
                                key = (set_name, condition, name, _pitch_bin(pitch))
                                _score(by_pitch.setdefault(key, _Acc()), *placed, truth, low, times)
                                by_pitch[key].tilt.append(_spine_tilt(joints, cf) - _spine_tilt(truth, cf))
                                _, pct, depth = _root_errors(placed[0], truth)
                                for group, (lo, hi) in POSTURES.items():
                                    mask = (posture >= lo) & (posture < hi)
                                    row = by_posture.setdefault((set_name, condition, name, group), ([], []))
                                    row[0].append(pct[mask])
                                    row[1].append(depth[mask])
            for (name, factor, pp, variant), a in acc.items():
                rows.append({"set": set_name, "condition": condition, "lifter": name, "focal": factor, "pp": pp,
                             "variant": variant, **a.summary(), "clips": len(clips)})
    print(format_table(rows))
    print("\nBy the camera's pitch (looking down > 0), true focal, the page's root:")
    print(f"{'set':7} {'2D':7} {'lifter':8} {'pitch':>9} {'% dist':>7} {'depth bias %':>12} {'tilt error °':>12} "
          f"{'frames':>7}")
    for (set_name, condition, name, pitch_bin), a in sorted(by_pitch.items()):
        r = a.summary()
        tilt = np.concatenate(a.tilt)
        print(f"{set_name:7} {condition:7} {name:8} {pitch_bin:>9} {r['pct']:7.1f} {r['depth_bias_pct']:12.1f} "
              f"{np.nanmean(tilt):12.1f} {a.placed:7d}")
    print("\nBy posture (the true trunk's angle from the camera's up), true focal, the page's root:")
    print(f"{'set':7} {'2D':7} {'lifter':8} {'posture':>13} {'% dist':>7} {'depth bias %':>12} {'frames':>7}")
    for (set_name, condition, name, group), (pct, depth) in by_posture.items():
        pct, depth = np.concatenate(pct), np.concatenate(depth)
        ok = ~np.isnan(pct)
        if ok.any():
            print(f"{set_name:7} {condition:7} {name:8} {group:>13} {pct[ok].mean():7.1f} {depth[ok].mean():12.1f} "
                  f"{int(ok.sum()):7d}")
    return 0


def _root_errors(roots: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the root's error in mm and as % of the true distance, and its depth error as % of the true depth
    (NaN: not placed)."""
    true_root = truth[:, 0]
    mm = np.linalg.norm(roots - true_root, axis=1)
    return mm, 100 * mm / np.linalg.norm(true_root, axis=1), 100 * (roots[:, 2] - true_root[:, 2]) / true_root[:, 2]


def _pitch_bin(deg: float) -> str:
    for hi in (0, 10, 20):
        if deg < hi:
            return f"< {hi}°"
    return ">= 20°"


def _spine_tilt(joints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Per frame, how far the spine (pelvis -> thorax) leans away from the camera, degrees (NaN where unseen)."""
    spine = joints[:, H["thorax"]] - joints[:, H["pelvis"]]
    seen = (confidence[:, H["thorax"]] > 0) & (confidence[:, H["pelvis"]] > 0)
    return np.where(seen, np.degrees(np.arctan2(spine[:, 2], -spine[:, 1])), np.nan)


def _climb(folder: Path) -> list[Clip]:
    from training.sources import load_climb
    if not folder.is_dir():
        log.warning("no climbing set at %s", folder)
        return []
    names, landmarks = load_climb(folder, stride=1)
    return [Clip(n, lm, 120.0) for n, lm in zip(names, landmarks)]  # "about 120 fps" (../shared/README.md)


def _bandai(archive: Path, limit: int) -> list[Clip]:
    """Held-out Bandai clips (the split training uses), with their root motion."""
    from posecast.bvh import forward_kinematics, read_bvh
    from training.rigs import find_rig, landmark_indices
    from training.sources import clip_action, split_clips, unpack

    if not archive.exists():
        log.warning("no Bandai archive at %s", archive)
        return []
    files = sorted(unpack(archive, paths.cache_dir() / "bandai").rglob("*.bvh"))
    held_out = [f for f, v in zip(files, split_clips([f.stem for f in files], [clip_action(f) for f in files])) if v]
    step = max(1, len(held_out) // max(1, limit))
    clips = []
    for path in held_out[::step][:limit]:
        bvh = read_bvh(path)
        rig = find_rig(bvh.names)
        rot, trans = bvh.local_transforms()
        pos, _ = forward_kinematics(bvh.parents, rot, trans * rig.mm_per_unit)
        clips.append(Clip(path.stem, pos[:, landmark_indices(rig, bvh.names)], 1.0 / bvh.frame_time))
    return clips


def _live_times(duration: float, rng: np.random.Generator) -> np.ndarray:
    """Frame times as the live server processes them: steps of 1, 2 or 3 frames at 30 fps."""
    steps = rng.integers(1, 4, size=int(duration * 30) + 1) / 30.0
    times = np.concatenate([[0.0], np.cumsum(steps)])
    return times[times <= duration - 1.0 / 30]


def _resample(x: np.ndarray, fps: float, times: np.ndarray) -> np.ndarray:
    f = times * fps
    i = np.minimum(np.floor(f).astype(int), len(x) - 2)
    w = (f - i)[:, None, None]
    return (1 - w) * x[i] + w * x[i + 1]


def _lift(lifter: Lifter | TemporalLifter, kp: np.ndarray, cf: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The lifter's answer for every frame; the temporal one gets each frame's window, as the pipeline builds it."""
    if isinstance(lifter, Lifter):
        return lifter(kp, cf)
    history = KeypointHistory(lifter.window)
    windows = [history([1], kp[k:k + 1], cf[k:k + 1], float(t)) for k, t in enumerate(times)]
    return lifter(np.concatenate([w[0] for w in windows]), np.concatenate([w[1] for w in windows]))


def _smoothed(joints: np.ndarray, cf: np.ndarray, times: np.ndarray) -> np.ndarray:
    """One-Euro over the joints with the live defaults, missing joints as zeros (as in the pose messages)."""
    smoother = TrackSmoother(OneEuroOptions())
    out = np.zeros_like(joints, dtype=np.float64)
    for k, t in enumerate(times):
        valid = cf[k] > 0
        out[k] = np.where(valid[:, None], smoother(1, joints[k], valid, t), 0.0)
    return out


def _place(variant: str, fov: float, kp: np.ndarray, cf: np.ndarray, joints: np.ndarray,
           size: tuple[int, int], times: np.ndarray, leg_mm: float = ADULT_LEG_MM) -> np.ndarray:
    options = WorldOptions(fov_deg=fov, leg_mm=leg_mm)
    if variant == "filtered":
        options = replace(options, foot_lock=False)
    world = World(options, temporal=variant != "per frame")
    roots = np.full((len(times), 3), np.nan)
    shown = np.zeros_like(joints)
    contact = np.zeros((len(times), len(FEET)), bool)
    for k, t in enumerate(times):
        people, scaled, _ = world([1], kp[k:k + 1], cf[k:k + 1], joints[k:k + 1], size, float(t))
        if people[0]["root"] is not None:
            roots[k] = people[0]["root"]
            shown[k] = scaled[0]
        contact[k] = [people[0]["contact"][name] for name, _ in FEET]
    return roots, shown, contact


class _Acc:
    def __init__(self) -> None:
        self.err, self.pct, self.depth_pct, self.lateral, self.slide = [], [], [], [], []
        self.frames = self.placed = 0
        self.tilt: list[np.ndarray] = []  # lifted minus true spine tilt, degrees, per frame
        self.hits = self.claimed = self.planted = 0  # contact: right claims, all claims, true contacts

    def summary(self) -> dict:
        err, pct = np.concatenate(self.err), np.concatenate(self.pct)
        slide = np.concatenate(self.slide) if self.slide else np.zeros(0)
        return {"mm": float(err.mean()), "pct": float(pct.mean()), "pct_median": float(np.median(pct)),
                "depth_bias_pct": float(np.concatenate(self.depth_pct).mean()),
                "lateral_mm": float(np.concatenate(self.lateral).mean()),
                "slide_mm_s": float(slide.mean()) if len(slide) else float("nan"),
                "contact_precision": self.hits / max(1, self.claimed),
                "contact_recall": self.hits / max(1, self.planted),
                "placed": self.placed / max(1, self.frames)}


def _score(acc: _Acc, roots: np.ndarray, joints: np.ndarray, contact: np.ndarray, truth: np.ndarray,
           low: np.ndarray, times: np.ndarray) -> None:
    true_root = truth[:, 0]
    ok = ~np.isnan(roots).any(1)
    acc.frames += len(roots)
    acc.placed += int(ok.sum())
    mm, pct, depth = _root_errors(roots, truth)
    acc.err.append(mm[ok])
    acc.pct.append(pct[ok])
    acc.depth_pct.append(depth[ok])
    acc.lateral.append(np.linalg.norm((roots - true_root)[ok, :2], axis=1))
    dt = np.diff(times)
    for k, (_, j) in enumerate(FEET):
        true_speed = np.linalg.norm(np.diff(truth[:, j], axis=0), axis=1) / dt
        shown = roots + joints[:, j]
        speed = np.linalg.norm(np.diff(shown, axis=0), axis=1) / dt
        planted = (true_speed < PLANTED_MM_S) & ok[1:] & ok[:-1] & (joints[1:, j] != 0).any(1)
        acc.slide.append(speed[planted])
        on_floor = (true_speed < PLANTED_MM_S) & low[1:, k]
        acc.hits += int((contact[1:, k] & on_floor).sum())
        acc.claimed += int(contact[1:, k].sum())
        acc.planted += int(on_floor.sum())


def format_table(rows: list[dict]) -> str:
    head = (f"{'set':7} {'2D':7} {'lifter':8} {'focal':>6} {'pp':6} {'root':12} {'error mm':>9} {'% dist':>7} "
            f"{'median %':>8} "
            f"{'depth bias %':>12} {'lateral mm':>10} {'foot slide mm/s':>15} {'contact P/R %':>13} {'placed':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['set']:7} {r['condition']:7} {r['lifter']:8} {r['focal']:6.2f} {r['pp']:6} {r['variant']:12} "
                     f"{r['mm']:9.0f} "
                     f"{r['pct']:7.1f} {r['pct_median']:8.1f} {r['depth_bias_pct']:12.1f} {r['lateral_mm']:10.0f} "
                     f"{r['slide_mm_s']:15.0f} {100 * r['contact_precision']:6.0f}/{100 * r['contact_recall']:<6.0f} "
                     f"{100 * r['placed']:6.0f}%")
    return "\n".join(lines)
