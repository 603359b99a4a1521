"""BVH export: round trips through the project's BVH reader and through Blender, missing joints, errors."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tarfile

import numpy as np
import pytest

from posecast import paths
from posecast.bvh_export import JOINTS, bvh_text, matrix_to_euler, nodes, swing, write_bvh
from posecast.lifter import Lifter
from posecast.skeleton import C, H, H36M17, H36M17_EDGES, coco18_to_h36m17
from training.body import coco18_points, h36m17_from_coco3d
from posecast.bvh import axis_rotation, euler_to_matrix, forward_kinematics, parse_bvh
from posecast.bvh import WORLD_TO_CAMERA
from training.cameras import CameraRanges, random_cameras
from training.sources import load_bvh_folder

from synthetic_bvh import write_bvh as write_synthetic_bvh

log = logging.getLogger(__name__)
FRAMES = 60
MM_PER = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """60 frames at 30 fps of real mocap (CMU 102_01, basketball: dribbling, arms up) seen by a fixed
    camera 3.5 m away: the true joints (camera axes, pelvis-relative) and the 2D the lifter gets.
    Without ../shared, the synthetic walker of tests/synthetic_bvh.py, turning slowly."""
    folder = tmp_path_factory.mktemp("mocap")
    archive = paths.shared_dir() / "data/cmu-extra-bvh.tar.xz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            tar.extract("cmu-extra-bvh/bvh/102_01.bvh", folder, filter="data")
        path, stride = folder / "cmu-extra-bvh/bvh/102_01.bvh", 4   # 120 fps -> 30 fps
    else:
        log.warning("%s absent: using the synthetic walker", archive)
        path, stride = folder / "walker.bvh", 1
        write_synthetic_bvh(path, FRAMES + 1, np.random.default_rng(3))
    (motion,) = load_bvh_folder([path], stride=stride).values()
    rot = motion.rot[1:FRAMES + 1].astype(np.float64)   # CMU's frame 0 is a T-pose, not motion
    if stride == 1:  # the walker faces a random way in every frame: make it turn smoothly instead
        rot[:, 0] = axis_rotation(np.linspace(0.0, np.pi / 2, FRAMES), "Y")
    pos, glob = forward_kinematics(motion.parents, rot, np.broadcast_to(motion.offsets[0], rot.shape[:2] + (3,)))
    head = glob[:, motion.parts.head]
    coco = coco18_points(pos[:, motion.landmarks], head @ motion.head_local[0, 0], head @ motion.head_local[0, 1])
    cam = random_cameras(1, np.random.default_rng(0), CameraRanges(distance_mm=(3500.0, 3500.0), offset=0.0))
    centred = coco - 0.5 * (coco[:, None, C["l_hip"]] + coco[:, None, C["r_hip"]])
    xyz = centred @ cam.rotation[0].T + cam.translation[0]
    pixels = cam.focal[0] * xyz[..., :2] / xyz[..., 2:] + cam.centre[0]
    keypoints, confidence = coco18_to_h36m17(pixels, np.ones(pixels.shape[:2]))
    return {"joints3d": h36m17_from_coco3d(xyz), "keypoints": keypoints, "confidence": confidence,
            "source": path.name}


def rest_length(joints3d: np.ndarray) -> np.ndarray:
    """The same bone directions with every bone at its median length: what a BVH can hold exactly."""
    out = np.zeros_like(joints3d)
    for a, b in H36M17_EDGES:
        bone = joints3d[:, b] - joints3d[:, a]
        length = np.linalg.norm(bone, axis=-1, keepdims=True)
        out[:, b] = out[:, a] + bone / length * np.median(length)
    return out


def read_joints(text: str, units: str = "cm") -> tuple[np.ndarray, np.ndarray]:
    """The 17 joints (pelvis-relative, mm, BVH axes) and the local rotations the project's reader sees."""
    bvh = parse_bvh(text)
    assert bvh.names == [n.name for n in nodes()]
    rot, trans = bvh.local_transforms()
    pos, _ = forward_kinematics(bvh.parents, rot, trans)
    first = {}
    for k, node in enumerate(nodes()):
        first.setdefault(node.joint, k)
    joints = pos[:, [first[j] for j in range(17)]] * MM_PER[units]
    return joints - joints[:, :1], rot


def bvh_axes(joints3d: np.ndarray) -> np.ndarray:
    return joints3d @ WORLD_TO_CAMERA.T


def directions_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between the bones of two [F,17,3] skeletons, [F,16] degrees."""
    u = np.stack([a[:, j] - a[:, i] for i, j in H36M17_EDGES], 1)
    v = np.stack([b[:, j] - b[:, i] for i, j in H36M17_EDGES], 1)
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_angles_are_what_the_reader_turns_back_into_rotations(order):
    rng = np.random.default_rng(5)
    angles = rng.uniform(-np.pi, np.pi, (500, 3))
    angles[:, 1] /= 2
    angles[:50, 1] = np.pi / 2 * rng.choice([-1, 1], 50)   # gimbal lock
    r = euler_to_matrix(angles, order)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(r, order), order), r, atol=1e-9)


def test_swing_takes_a_to_b_by_a_proper_rotation():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 3))
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    b = rng.normal(size=(300, 3))
    b /= np.linalg.norm(b, axis=-1, keepdims=True)
    b[:20], b[20:40] = -a[:20], a[20:40]              # exactly opposite, and the same
    r = swing(a, b)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", r, a), b, atol=1e-7)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-7)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-7)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", r, np.cross(a, b))[40:], np.cross(a, b)[40:], atol=1e-7)


@pytest.mark.parametrize("units", ["cm", "m"])
def test_round_trip_of_a_rest_length_skeleton_is_exact(clip, units):
    joints = rest_length(clip["joints3d"])
    text, report = bvh_text(joints, np.ones(joints.shape[:2], bool), 30.0, units=units)
    got, _ = read_joints(text, units)
    err = np.linalg.norm(got - bvh_axes(joints), axis=-1)
    log.info("%s, rest-length skeleton in %s: max error %.4f mm", clip["source"], units, err.max())
    assert err.max() < 2.0
    assert report.frames == FRAMES and report.position_error_max_mm < 0.1
    assert max(report.length_std_mm.values()) < 0.01
    assert parse_bvh(text).frame_time == pytest.approx(1 / 30)


def test_lifter_output_keeps_its_bone_directions_and_stays_within_a_few_cm(clip):
    joints = Lifter(paths.LIFTER_ONNX, device="cpu")(clip["keypoints"].astype(np.float32),
                                                     clip["confidence"].astype(np.float32))
    text, report = bvh_text(joints, np.ones(joints.shape[:2], bool), 30.0)
    got, _ = read_joints(text)
    want = bvh_axes(joints - joints[:, :1])
    err = np.linalg.norm(got - want, axis=-1)
    log.info("%s, lifter output: %s; per bone length std (mm) %s; file vs input: mean %.1f, p95 %.1f, max %.1f mm",
             clip["source"], report.summary(), {k: round(v, 1) for k, v in report.length_std_mm.items()},
             err.mean(), np.percentile(err, 95), err.max())
    assert directions_deg(got, want).max() < 0.05       # only the lengths are fitted, never the directions
    assert report.position_error_mean_mm == pytest.approx(err.mean(), abs=0.01)
    assert report.position_error_max_mm == pytest.approx(err.max(), abs=0.01)
    assert err.mean() < 30 and np.percentile(err, 95) < 80
    truth = bvh_axes(clip["joints3d"])   # fixed bone lengths cost no accuracy against the real motion
    lifter_mm, bvh_mm = (np.linalg.norm(p - truth, axis=-1).mean() for p in (want, got))
    log.info("against the mocap: lifter %.1f mm, its BVH %.1f mm (mean joint error)", lifter_mm, bvh_mm)
    assert bvh_mm < lifter_mm + 5.0
    assert max(report.length_std_mm.values()) > 1.0    # the lifter's lengths do vary: a real test


def test_report_measures_the_bone_length_variation(clip):
    joints = rest_length(clip["joints3d"])
    forearm = joints[:, H["l_wrist"]] - joints[:, H["l_elbow"]]
    stretch = 0.1 * np.sin(np.arange(FRAMES) / 5)[:, None]
    joints[:, H["l_wrist"]] += stretch * forearm
    _, report = bvh_text(joints, np.ones(joints.shape[:2], bool), 30.0)
    length = np.linalg.norm(forearm, axis=-1)
    changes = stretch[:, 0] * length
    assert report.length_std_mm["l_elbow-l_wrist"] == pytest.approx(np.std(changes), rel=0.05)
    assert report.length_max_deviation_mm["l_elbow-l_wrist"] == pytest.approx(
        np.abs(changes - np.median(changes)).max(), rel=0.05)
    assert max(v for k, v in report.length_std_mm.items() if k != "l_elbow-l_wrist") < 0.01
    assert report.position_error_max_mm == pytest.approx(np.abs(changes - np.median(changes)).max(), rel=0.05)


def test_missing_joints_keep_the_last_good_rotation(clip):
    joints = rest_length(clip["joints3d"])
    valid = np.ones(joints.shape[:2], bool)
    valid[20:35, H["l_wrist"]] = False      # the forearm (l_elbow's bone) is missing for 15 frames
    valid[:5, H["l_elbow"]] = False         # the whole left arm is missing at the start
    joints[~valid] = np.nan                 # what a missing joint holds must not matter
    text, report = bvh_text(joints, valid, 30.0)
    got, rot = read_joints(text)
    upper_arm, forearm = (k for k, n in enumerate(nodes()) if n.name in ("l_shoulder", "l_elbow"))
    for f in range(20, 35):  # held in local terms: the forearm still follows the upper arm
        np.testing.assert_allclose(rot[f, forearm], rot[19, forearm], atol=1e-6)
    for f in range(5):  # before the first good frame: the first good rotation
        np.testing.assert_allclose(rot[f, upper_arm], rot[5, upper_arm], atol=1e-6)
        np.testing.assert_allclose(rot[f, forearm], rot[5, forearm], atol=1e-6)
    assert not np.allclose(rot[19, forearm], rot[35, forearm], atol=1e-3)   # it did move again
    assert report.held_frames["l_elbow"] == 20 and report.held_frames["l_shoulder"] == 5
    placed = valid.copy()
    placed[:5, H["l_wrist"]] = False        # there, but its forearm was not (no elbow)
    err = np.linalg.norm(got - bvh_axes(joints), axis=-1)[placed]
    assert err.max() < 2.0                  # every joint whose bones were there is where it was


def test_legs_never_seen_stay_in_the_rest_pose(clip):
    joints = rest_length(clip["joints3d"])
    valid = np.ones(joints.shape[:2], bool)
    legs = [H[n] for n in ("l_knee", "l_ankle", "r_knee", "r_ankle")]
    valid[:, legs] = False
    text, report = bvh_text(joints, valid, 30.0)
    got, rot = read_joints(text)
    assert set(report.unmeasured) == {"l_hip-l_knee", "l_knee-l_ankle", "r_hip-r_knee", "r_knee-r_ankle"}
    knees = [k for k, n in enumerate(nodes()) if n.name in ("l_knee", "r_knee")]
    np.testing.assert_allclose(rot[:, knees], np.broadcast_to(np.eye(3), rot[:, knees].shape), atol=1e-6)
    assert np.linalg.norm(got - bvh_axes(joints), axis=-1)[valid].max() < 2.0


def test_upper_body_only_at_a_desk(clip):
    joints = rest_length(clip["joints3d"])
    valid = np.zeros(joints.shape[:2], bool)
    upper = [H[n] for n in ("thorax", "neck_nose", "head", "l_shoulder", "l_elbow", "l_wrist",
                            "r_shoulder", "r_elbow", "r_wrist")]
    valid[:, upper] = True                  # no hips: no pelvis and no spine either (posecast.skeleton)
    text, report = bvh_text(joints, valid, 30.0)
    got, _ = read_joints(text)
    want = bvh_axes(joints)
    seen = [e for e, (a, b) in enumerate(H36M17_EDGES) if a in upper and b in upper]
    assert directions_deg(got, want)[:, seen].max() < 0.01    # arms and head move as recorded
    assert report.position_error_max_mm < 0.1                  # measured from the thorax
    assert "pelvis-spine" in report.unmeasured and report.held_frames["pelvis"] == FRAMES
    arms_only = np.zeros_like(valid)
    arms_only[:, [H["l_elbow"], H["l_wrist"]]] = True
    _, report = bvh_text(joints, arms_only, 30.0)
    assert "no frame with a pelvis or thorax" in report.summary()


@pytest.mark.parametrize("valid", [np.zeros((FRAMES, 17), bool), np.zeros((0, 17), bool)])
def test_no_person_is_a_clear_error(valid):
    with pytest.raises(ValueError, match="no person in any of the"):
        bvh_text(np.zeros(valid.shape + (3,)), valid, 30.0)


@pytest.mark.parametrize("args,message", [
    ((np.zeros((5, 18, 3)), np.ones((5, 18), bool), 30.0), r"joints3d must be \[frames, 17, 3\]"),
    ((np.zeros((5, 17, 3)), np.ones((4, 17), bool), 30.0), r"valid must be \[frames, 17\]"),
    ((np.zeros((5, 17, 3)), np.ones((5, 17), bool), 0.0), "fps must be a positive number"),
    ((np.zeros((5, 17, 3)), np.ones((5, 17), bool), 30.0, np.zeros((5, 2))), r"root must be \[frames, 3\]"),
])
def test_bad_input_says_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        bvh_text(*args)


def standing_person() -> np.ndarray:
    """One frame of a person facing the camera, arms down, in camera axes (x right, y down, z away)."""
    p = {"pelvis": (0, 0, 0), "r_hip": (-120, 0, 0), "r_knee": (-120, 420, -20), "r_ankle": (-120, 850, 0),
         "l_hip": (120, 0, 0), "l_knee": (120, 420, -20), "l_ankle": (120, 850, 0),
         "spine": (0, -240, 0), "thorax": (0, -480, 0), "neck_nose": (0, -600, -90), "head": (0, -750, 0),
         "l_shoulder": (170, -450, 0), "l_elbow": (190, -180, 0), "l_wrist": (200, 60, -30),
         "r_shoulder": (-170, -450, 0), "r_elbow": (-190, -180, 0), "r_wrist": (-200, 60, -30)}
    return np.array([[p[n] for n in H36M17]], dtype=np.float64)


def test_twist_comes_from_the_body_and_limbs_do_not_spin():
    person = standing_person()
    turn = np.radians(30.0)   # the upper body turned 30 degrees about the vertical, against the hips
    c, s = np.cos(turn), np.sin(turn)
    twisted = person.copy()
    upper = [H[n] for n in H36M17[7:]]
    twisted[0, upper] = person[0, upper] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    both = np.concatenate([person, twisted])
    text, _ = bvh_text(both, np.ones((2, 17), bool), 30.0)
    _, rot = read_joints(text)
    spine = [n.name for n in nodes()].index("spine")
    angle = np.degrees(np.arccos((np.trace(rot[1, spine]) - 1) / 2))
    assert angle == pytest.approx(30.0, abs=1e-3) and abs(rot[1, spine][1, 1]) == pytest.approx(1.0)  # about Y
    others = [k for k, n in enumerate(nodes()) if n.channels and n.name not in ("pelvis", "spine")]
    np.testing.assert_allclose(rot[1, others], rot[0, others], atol=1e-6)   # the rest just follows


def test_rotations_do_not_flip_on_real_motion(clip):
    text, _ = bvh_text(clip["joints3d"], np.ones((FRAMES, 17), bool), 30.0)
    _, rot = read_joints(text)
    step = np.swapaxes(rot[:-1], -1, -2) @ rot[1:]
    angle = np.degrees(np.arccos(np.clip((np.trace(step, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    log.info("%s: largest frame-to-frame turn of a joint %.1f degrees", clip["source"], angle.max())
    assert angle.max() < 60.0   # a twist flip would be ~180 degrees; the fastest real joint here turns ~35


def test_bvh_axes_y_up_facing_the_camera_and_the_root():
    person = np.repeat(standing_person(), 3, 0)
    valid = np.ones((3, 17), bool)
    text, report = bvh_text(person, valid, 25.0, units="mm")
    bvh = parse_bvh(text)
    got, _ = forward_kinematics(bvh.parents, *bvh.local_transforms())
    at = {n.name: k for k, n in enumerate(nodes())}
    head, ankle, l_hip = got[0, at["neck_nose_end"]], got[0, at["l_knee_end"]], got[0, at["l_hip"]]
    nose, thorax = got[0, at["neck_nose"]], got[0, at["thorax"]]
    assert head[1] > got[0, 0, 1] > ankle[1]              # Y up
    assert l_hip[0] > got[0, 0, 0]                         # the person's left is +X ...
    assert nose[2] > thorax[2]                             # ... and the face looks towards +Z
    assert abs(ankle[1]) < 30                              # without a root: standing on the floor (Y = 0)
    root = np.array([[100.0, -200.0, 3000.0], [np.nan, np.nan, np.nan], [300.0, 50.0, 2500.0]])
    text, _ = bvh_text(person, valid, 25.0, root, units="cm")
    np.testing.assert_allclose(parse_bvh(text).motion[:, :3], [[10, 20, -300], [10, 20, -300], [30, -5, -250]],
                               atol=1e-4)                  # camera -> BVH axes; a missing root holds


def test_write_bvh_writes_the_file_or_nothing(tmp_path, clip):
    joints = clip["joints3d"]
    report = write_bvh(tmp_path / "take.bvh", joints, np.ones(joints.shape[:2], bool), 30.0)
    assert parse_bvh((tmp_path / "take.bvh").read_text()).motion.shape == (FRAMES, 6 + 3 * (len(JOINTS) - 1))
    assert report.bones == tuple(j.name for j in JOINTS)
    with pytest.raises(ValueError):
        write_bvh(tmp_path / "none.bvh", joints, np.zeros(joints.shape[:2], bool), 30.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.bvh"]
    (tmp_path / "plain.txt").write_text("x")  # the permissions open() gives, not mkstemp's private 0600
    assert (tmp_path / "take.bvh").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777


# Runs inside Blender: import the BVH as Blender users do, then read every bone's world-space head
# and tail on every frame. Debian 12's blender 3.4.1 runs on Python 3.11, which no longer accepts the
# importer's open(path, 'rU'): the shim drops the 'U' (blender.org builds ship Python 3.10).
BLENDER_SCRIPT = """
import builtins, json, sys
import bpy
from io_anim_bvh import import_bvh
import_bvh.open = lambda path, mode="r", *a, **k: builtins.open(path, mode.replace("U", ""), *a, **k)
bvh, out = sys.argv[sys.argv.index("--") + 1:]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_anim.bvh(filepath=bvh, global_scale=0.01, axis_forward="-Z", axis_up="Y",
                        update_scene_fps=True, update_scene_duration=True)
arm = bpy.context.object
scene = bpy.context.scene
first, last = (int(f) for f in arm.animation_data.action.frame_range)
frames = []
for f in range(first, last + 1):
    scene.frame_set(f)
    frames.append({b.name: [list(arm.matrix_world @ b.head), list(arm.matrix_world @ b.tail)]
                   for b in arm.pose.bones})
json.dump({"first": first, "last": last, "fps": scene.render.fps / scene.render.fps_base,
           "frames": frames}, open(out, "w"))
"""


def test_blender_plays_the_exported_skeleton(tmp_path, clip):
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender is not installed (Debian: apt-get install blender; scripts/setup --dev does)")
    joints = Lifter(paths.LIFTER_ONNX, device="cpu")(clip["keypoints"].astype(np.float32),
                                                     clip["confidence"].astype(np.float32))
    write_bvh(tmp_path / "take.bvh", joints, np.ones(joints.shape[:2], bool), 30.0)
    bvh = parse_bvh((tmp_path / "take.bvh").read_text())
    exported, _ = forward_kinematics(bvh.parents, *bvh.local_transforms())
    exported *= 10.0                                        # cm -> mm
    run = subprocess.run([blender, "-b", "--factory-startup", "--python-exit-code", "2", "--python-expr",
                          BLENDER_SCRIPT, "--", str(tmp_path / "take.bvh"), str(tmp_path / "pose.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"blender failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    seen = json.loads((tmp_path / "pose.json").read_text())
    assert seen["last"] - seen["first"] + 1 == FRAMES and seen["fps"] == pytest.approx(30.0, abs=1e-3)

    def mm(points):  # Blender (metres, Z up, -Y forward) -> BVH axes in mm
        p = np.array(points) * 1000.0
        return np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)

    tree = nodes()
    bones = [k for k, n in enumerate(tree) if n.channels]
    head = mm([[fr[tree[k].name][0] for k in bones] for fr in seen["frames"]])
    tail = mm([[fr[tree[k].name][1] for k in bones] for fr in seen["frames"]])
    head_err = np.linalg.norm(head - exported[:, bones], axis=-1)
    angle = []
    for i, k in enumerate(bones):
        j = JOINTS[[x.name for x in JOINTS].index(tree[k].name)]
        if j.to is None:
            continue                                        # the root has no bone of its own
        end = next(c for c, n in enumerate(tree) if n.parent == k and n.joint == H[j.to])
        want, got = exported[:, end] - exported[:, k], tail[:, i] - head[:, i]
        cos = np.sum(want * got, -1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        angle.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    log.info("Blender vs exported skeleton, %d frames x %d bones: heads max %.4f mm, directions max %.4f deg",
             FRAMES, len(bones), head_err.max(), np.max(angle))
    assert head_err.max() < 2.0 and np.max(angle) < 2.0
    at = {tree[k].name: i for i, k in enumerate(bones)}
    assert (tail[:, at["neck_nose"], 1] > tail[:, at["l_knee"], 1]).all()   # upright in Blender (its Z up)
