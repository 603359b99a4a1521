"""Training samples: cameras, virtual COCO-18, pose-space augmentation, dropout, metrics."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from posecast.skeleton import C, H
from training.body import DefinitionJitter, coco18_points, head_frame_from_body
from posecast.bvh import forward_kinematics
from training.cameras import CameraRanges, random_cameras
from training.data import LEG_JOINTS, Dropout, SampleOptions, apply_condition, synthesize
from training.legprior import borrowed_legs
from training.metrics import bone_p_mpjpe, limb_angle, p_mpjpe, procrustes_align, trunk_pitch
from training.posespace import PoseAugment, augment_rotations, random_rotations
from training.rigs import L, body_axes, unit
from training.sources import load_bvh_folder

from synthetic_bvh import write_bvh


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bvh")
    rng = np.random.default_rng(1)
    for k in range(3):
        write_bvh(folder / f"dataset-1_walk_x_{k:03d}.bvh", 60, rng)
    return load_bvh_folder(sorted(folder.glob("*.bvh")), stride=1)["bandai"]


def test_projection_round_trip_and_axes():
    rng = np.random.default_rng(0)
    cams = random_cameras(64, rng)
    world = rng.normal(0, 500, (64, 17, 3))
    cam = cams.to_camera(world)
    pixels = cams.project(cam)
    np.testing.assert_allclose(cams.unproject(pixels, cam[..., 2]), cam, atol=1e-6)
    # Camera axes: y down, so a point above the pelvis (world Y up) is higher in the image
    # unless the camera looks down at it steeply; z away from the camera.
    up = cams.to_camera(np.array([[[0.0, 0.0, 0.0], [0.0, 500.0, 0.0]]]).repeat(64, 0))
    assert (up[:, 1, 1] < up[:, 0, 1]).all() and (cam[..., 2] > 0).mean() > 0.99


def test_samples_follow_the_contract(motion):
    s = synthesize(motion, np.arange(len(motion.rot)), np.random.default_rng(0), SampleOptions.evaluation())
    assert s.keypoints.shape == (len(motion.rot), 17, 2) and s.joints3d.shape == (len(motion.rot), 17, 3)
    assert np.all(s.joints3d[:, 0] == 0) and np.all(s.confidence == 1)
    # Head above the pelvis in camera axes (y down); bones of a human size (the rig: 400 mm shins).
    assert (s.joints3d[:, H["head"], 1] < -400).all()
    shin = np.linalg.norm(s.joints3d[:, H["l_ankle"]] - s.joints3d[:, H["l_knee"]], axis=-1)
    np.testing.assert_allclose(shin, 410, atol=1)
    # The thorax is the COCO neck: the shoulders' midpoint.
    mid = 0.5 * (s.joints3d[:, H["l_shoulder"]] + s.joints3d[:, H["r_shoulder"]])
    np.testing.assert_allclose(s.joints3d[:, H["thorax"]], mid, atol=1e-3)


def augmented(motion, opts: PoseAugment, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions of every frame of `motion` before and after pose-space augmentation."""
    rot = motion.rot.astype(np.float64)
    trans = motion.offsets[motion.clip].astype(np.float64)
    before, _ = forward_kinematics(motion.parents, rot, trans)
    after, _ = forward_kinematics(motion.parents, *augment_rotations(rot, trans, motion.parts, opts, rng))
    return before, after


def assert_same_bones(motion, before: np.ndarray, after: np.ndarray) -> None:
    bones = lambda p: np.linalg.norm(p[:, 1:] - p[:, motion.parents[1:]], axis=-1)  # noqa: E731
    np.testing.assert_allclose(bones(after), bones(before), atol=1e-3)


def test_pose_augmentation_keeps_bones_and_bends_knees_forward(motion):
    rng = np.random.default_rng(0)
    opts = PoseAugment(perturb=1.0, recombine=1.0, postures=1.0, tilt=0.0, bone_scale=0.0, body_scale=(1.0, 1.0),
                       torso_scale=(1.0, 1.0), proportions=0.0)
    before, after = augmented(motion, opts, rng)
    assert_same_bones(motion, before, after)
    assert np.abs(after - before).max() > 100  # the poses did change

    def knees_forward(pos):
        lm = pos[:, motion.landmarks]
        _, forward, _ = body_axes(lm)
        return np.sum((lm[:, L["l_knee"]] - lm[:, L["l_hip"]]) * forward, -1).mean()
    # Sitting, crouching and knee lifts all swing the thighs forward.
    postures_only = PoseAugment(perturb=0.0, recombine=0.0, postures=1.0, tilt=0.0, bone_scale=0.0,
                                body_scale=(1.0, 1.0))
    _, sat = augmented(motion, postures_only, rng)
    assert knees_forward(sat) > knees_forward(before) + 80


def test_crawling_puts_one_thigh_forward_and_the_other_back(motion):
    def thighs_apart(opts: PoseAugment) -> np.ndarray:
        """Degrees between the two thighs of the poses made on all fours (trunk >= 60 degrees from up)."""
        _, pos = augmented(motion, opts, np.random.default_rng(0))
        lm = pos[:, motion.landmarks]
        trunk = unit(lm[:, L["neck"]] - 0.5 * (lm[:, L["l_hip"]] + lm[:, L["r_hip"]]))
        fours = np.degrees(np.arccos(trunk[:, 1])) >= 60  # world: y up
        thigh = {side: unit(lm[:, L[f"{side}_knee"]] - lm[:, L[f"{side}_hip"]]) for side in "lr"}
        return np.degrees(np.arccos(np.clip(np.sum(thigh["l"] * thigh["r"], -1), -1, 1)))[fours]

    alike = replace(PoseAugment.off(), postures=1.0)  # (the source motion walks: its thighs are a little apart)
    apart, crawling = np.median(thighs_apart(alike)), np.median(thighs_apart(replace(alike, fours_crawl=1.0)))
    assert crawling > 40 and crawling > apart + 15, (apart, crawling)


def test_limb_proportions_lengthen_both_sides_alike(motion):
    opts = PoseAugment.off()
    opts.proportions = 1.0
    opts.limb_scale = {"upper_arm": (1.3, 1.4), "forearm": (1.0, 1.0), "thigh": (1.0, 1.0), "shin": (0.8, 0.9)}
    before, after = augmented(motion, opts, np.random.default_rng(0))

    def length(pos, side, a, b):
        lm = pos[:, motion.landmarks]
        return np.linalg.norm(lm[:, L[f"{side}_{b}"]] - lm[:, L[f"{side}_{a}"]], axis=-1)
    for a, b, lo, hi in (("shoulder", "elbow", 1.3, 1.4), ("elbow", "wrist", 1.0, 1.0),
                         ("hip", "knee", 1.0, 1.0), ("knee", "ankle", 0.8, 0.9)):
        ratio = {side: length(after, side, a, b) / length(before, side, a, b) for side in "lr"}
        assert ratio["l"].min() >= lo - 1e-6 and ratio["l"].max() <= hi + 1e-6, (a, b)
        np.testing.assert_allclose(ratio["l"], ratio["r"], atol=1e-6)  # people are symmetric


def test_abduction_takes_both_arms_away_from_the_body(motion):
    opts = PoseAugment.off()
    opts.abduct = 1.0
    before, after = augmented(motion, opts, np.random.default_rng(0))
    assert_same_bones(motion, before, after)

    def outwards(pos, side, sign):  # how far the elbow sits out from the shoulder, along the body's left
        lm = pos[:, motion.landmarks]
        _, _, left = body_axes(lm)
        return sign * np.sum((lm[:, L[f"{side}_elbow"]] - lm[:, L[f"{side}_shoulder"]]) * left, -1)
    for side, sign in (("l", 1.0), ("r", -1.0)):
        assert outwards(after, side, sign).mean() > outwards(before, side, sign).mean() + 40, side


def test_wider_shoulders_carry_the_arms(motion):
    pos, _ = forward_kinematics(motion.parents, motion.rot.astype(np.float64),
                                motion.offsets[motion.clip].astype(np.float64))
    lm = pos[:, motion.landmarks]
    up, forward = head_frame_from_body(lm)
    plain = coco18_points(lm, up, forward)
    rng = np.random.default_rng(0)
    for carry, tilt_in in ((1.0, False), (0.0, True)):
        wide = coco18_points(lm, up, forward, rng, DefinitionJitter(shoulder_width_mm=(550.0, 560.0),
                                                                    arm_carry=(carry, carry)))
        width = np.linalg.norm(wide[:, C["l_shoulder"]] - wide[:, C["r_shoulder"]], axis=-1)
        assert (width > np.linalg.norm(plain[:, C["l_shoulder"]] - plain[:, C["r_shoulder"]], axis=-1) + 120).all()
        for side in "lr":
            arm = lambda p: p[:, C[f"{side}_elbow"]] - p[:, C[f"{side}_shoulder"]]  # noqa: E731
            # Carried along, the upper arm keeps its direction; left behind, it tilts in by ~100 mm.
            moved = np.linalg.norm(arm(wide) - arm(plain), axis=-1)
            assert (moved > 50).all() if tilt_in else np.allclose(moved, 0, atol=1e-6)


def test_dropout_marks_joints_missing(motion):
    rng = np.random.default_rng(0)
    frames = np.arange(len(motion.rot))
    legs = SampleOptions(dropout=Dropout(random=0, legs=1.0, lower_body=0, arm=0, face=0), noise=None)
    s = synthesize(motion, frames, rng, legs)
    assert (s.confidence[:, [H["l_knee"], H["l_ankle"], H["r_knee"], H["r_ankle"]]] == 0).all()
    waist_up = SampleOptions(dropout=Dropout(random=0, legs=0, lower_body=1.0, arm=0, face=0), noise=None,
                             clip_to_image=False)
    s = synthesize(motion, frames, rng, waist_up)
    # Without hips the conversion cannot form the pelvis or the spine either.
    assert (s.confidence[:, [H["pelvis"], H["spine"], H["l_hip"], H["r_hip"]]] == 0).all()
    assert (s.confidence[:, H["thorax"]] == 1).all()
    # A camera too close to see the legs: joints outside the image are missing too.
    close = SampleOptions(dropout=None, noise=None, cameras=CameraRanges(distance_mm=(700.0, 800.0), offset=0.0,
                                                                         pitch_deg=(0.0, 0.0)))
    s = synthesize(motion, frames, rng, close)
    assert (s.confidence[:, H["l_ankle"]] == 0).mean() > 0.5


def test_conditions():
    from training.data import Samples
    s = Samples(np.zeros((4, 17, 2), np.float32), np.ones((4, 17), np.float32), np.zeros((4, 17, 3), np.float32))
    assert apply_condition(s, "exact").keypoints.std() == 0
    assert 4 < apply_condition(s, "noise5").keypoints.std() < 6
    assert apply_condition(s, "no_legs").confidence.sum() == 4 * 13
    with pytest.raises(ValueError, match="unknown condition"):
        apply_condition(s, "blurry")


def test_metrics_known_values():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 300, (5, 17, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    moved = 1.3 * gt @ q + 50
    np.testing.assert_allclose(procrustes_align(moved, gt), gt, atol=1e-6)
    assert p_mpjpe(moved, gt).max() < 1e-6 and p_mpjpe(gt + 10, gt).max() < 1e-6
    # Same directions, other bone lengths: only the bone-corrected score forgives it.
    stretched = gt.copy()
    stretched[:, H["l_ankle"]] += 0.5 * (gt[:, H["l_ankle"]] - gt[:, H["l_knee"]])
    assert p_mpjpe(stretched, gt).min() > 1 and bone_p_mpjpe(stretched, gt).max() < 1e-6
    assert limb_angle(stretched, gt).max() < 1e-6
    flipped = gt.copy()
    flipped[:, H["l_ankle"]] = 2 * gt[:, H["l_knee"]] - gt[:, H["l_ankle"]]
    np.testing.assert_allclose(limb_angle(flipped, gt), 180 / 8)
    # Trunk pitch: standing (thorax above the pelvis; camera y points down) 0, on all fours 90, head down 180.
    poses = np.zeros((3, 17, 3))
    poses[:, H["thorax"]] = [[0, -500, 0], [0, 0, -500], [0, 500, 0]]
    np.testing.assert_allclose(trunk_pitch(poses), [0, 90, 180])


def test_rotation_between_turns_a_onto_b():
    from training.posespace import rotation_between
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    b = np.concatenate([rng.normal(size=(48, 3)), -a[48:49], 2 * a[49:50]])  # incl. opposite and equal
    q = rotation_between(a, b)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(np.einsum("bij,bj->bi", q, unit(a)), unit(b), atol=1e-9)
    np.testing.assert_allclose(q @ np.swapaxes(q, 1, 2), np.broadcast_to(np.eye(3), q.shape), atol=1e-9)


def test_borrowed_legs_come_from_other_clips_carried_into_the_frame():
    # Two clips with the same upper bodies, seen from other angles in clip 1 and with other legs:
    # a clip-0 frame borrows clip 1's legs, turned back into its own frame.
    rng = np.random.default_rng(3)
    upper = rng.normal(0, 300, (6, 17, 3))
    legs0, legs1 = upper.copy(), upper.copy()
    legs1[:, LEG_JOINTS] += rng.normal(0, 200, (6, 4, 3))
    turns = random_rotations(6, np.pi, rng)
    gt = np.concatenate([legs0, legs1 @ np.swapaxes(turns, 1, 2) + 50.0])
    clips = np.repeat([0, 1], 6)
    out = borrowed_legs(gt, gt, clips, k=1)
    np.testing.assert_allclose(out[:6], legs1, atol=1e-6)
    np.testing.assert_allclose(out[6:, LEG_JOINTS], (legs0 @ np.swapaxes(turns, 1, 2) + 50.0)[:, LEG_JOINTS], atol=1e-6)
