"""Where people are: root position by reprojection, the floor, foot contact and locking, keypoint windows.

Synthetic people seen through a known pinhole camera, so every answer is known exactly.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from posecast.floor import ANKLE_MM, FloorEstimator, FloorOptions, fit_floor
from posecast.history import KeypointHistory
from posecast.root import ADULT_LEG_MM, Intrinsics, leg_mm_for_height, project, solve_root
from posecast.skeleton import H
from posecast.world import World, WorldOptions

CAMERA = Intrinsics.from_fov(640, 480, 65.0)
# A person standing, facing the camera: pelvis-relative, camera axes (x right, y down, z away), mm; legs
# (hip-knee-ankle) of ADULT_LEG_MM, the size people are given.
STANDING = np.array([
    (0, 0, 0), (-120, 0, 0), (-125, 420, 20), (-130, 800, 0), (120, 0, 0), (125, 420, 20), (130, 800, 0),
    (0, -230, 10), (0, -480, 0), (0, -580, -60), (0, -700, 0), (170, -450, 0), (190, -200, -60), (200, 40, -80),
    (-170, -450, 0), (-190, -200, -60), (-200, 40, -80)], np.float64)
PELVIS_HEIGHT = 800 + ANKLE_MM  # pelvis above the floor for STANDING, level camera


def rotation(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    i, j = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def seen(pose: np.ndarray, root: np.ndarray, camera: Intrinsics = CAMERA) -> tuple[np.ndarray, np.ndarray]:
    """What the detector would give: the pose at root, projected; all joints seen."""
    return project(pose + root, camera)[None], np.ones((1, 17))


def test_exact_keypoints_give_the_exact_root():
    rng = np.random.default_rng(1)
    for _ in range(20):
        pose = STANDING @ (rotation("y", rng.uniform(0, 360)) @ rotation("x", rng.uniform(-30, 30))).T
        root = np.array([rng.uniform(-800, 800), rng.uniform(-400, 400), rng.uniform(1500, 8000)])
        kp, cf = seen(pose, root)
        np.testing.assert_allclose(solve_root(kp, cf, pose[None], CAMERA)[0], root, atol=0.5)


def test_noisy_keypoints_and_missing_joints_stay_within_a_few_percent():
    rng = np.random.default_rng(2)
    root = np.array([400.0, 150.0, 4000.0])
    kp, cf = seen(STANDING, root)
    kp = kp + rng.normal(0, 3, kp.shape)  # 3 px detector noise
    cf[0, [H["l_wrist"], H["r_knee"], H["r_ankle"]]] = 0
    kp[0, H["r_ankle"]] = (9999, -9999)  # a missing joint's coordinates are ignored
    error = np.linalg.norm(solve_root(kp, cf, STANDING[None], CAMERA)[0] - root)
    assert error < 0.03 * root[2], f"{error:.0f} mm off at {root[2]:.0f} mm"


def test_a_wrong_focal_length_scales_the_depth_not_the_direction():
    root = np.array([600.0, 200.0, 3000.0])
    kp, cf = seen(STANDING, root)
    wrong = Intrinsics(CAMERA.focal * 1.15, CAMERA.cx, CAMERA.cy)
    estimate = solve_root(kp, cf, STANDING[None], wrong)[0]
    assert estimate[2] == pytest.approx(1.15 * root[2], rel=0.02)
    cosine = estimate @ root / np.linalg.norm(estimate) / np.linalg.norm(root)
    assert math.degrees(math.acos(min(1.0, cosine))) < 2.0  # still on the ray through the person


def test_too_few_joints_give_no_root():
    kp, cf = seen(STANDING, np.array([0.0, 0.0, 3000.0]))
    cf[0, 3:] = 0
    assert np.isnan(solve_root(kp, cf, STANDING[None], CAMERA)).all()
    assert solve_root(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 17, 3)), CAMERA).shape == (0, 3)


def test_fov_is_checked():
    with pytest.raises(ValueError, match="field of view"):
        Intrinsics.from_fov(640, 480, 0.0)
    with pytest.raises(ValueError, match="field of view"):
        World(WorldOptions(fov_deg=float("nan")))
    assert Intrinsics.from_fov(640, 480, 90.0).focal == pytest.approx(320.0)


def tilted_camera(pitch_deg: float, height_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """World (x right, y down, z forward, floor at y = 0, camera above it) -> camera rotation and camera position."""
    return rotation("x", -pitch_deg), np.array([0.0, -height_mm, 0.0])


def to_camera(points_world: np.ndarray, r: np.ndarray, position: np.ndarray) -> np.ndarray:
    return (points_world - position) @ r.T


def test_floor_of_a_tilted_camera_from_feet_walking_around():
    rng = np.random.default_rng(3)
    r, position = tilted_camera(pitch_deg=20.0, height_mm=1600.0)
    ankles = np.stack([rng.uniform(-1500, 1500, 200), np.full(200, -ANKLE_MM), rng.uniform(2000, 6000, 200)], 1)
    ankles += rng.normal(0, 20, ankles.shape)  # the lifter's feet are not exact
    ankles[:20, 1] -= 400  # a few feet in the air (steps, a jump)
    floor = fit_floor(to_camera(ankles, r, position), up_prior=np.array([0.0, -1.0, 0.0]))
    true_up = r @ np.array([0.0, -1.0, 0.0])
    assert math.degrees(math.acos(floor.normal @ true_up)) < 2.0  # the tilt is found, not the level prior
    assert floor.height == pytest.approx(1600.0, abs=30)


def test_standing_still_the_floor_follows_the_spines_of_people():
    """Feet that do not move show no tilt; the lifted spine (camera axes) does."""
    r, position = tilted_camera(pitch_deg=25.0, height_mm=1400.0)
    estimator = FloorEstimator(FloorOptions(min_samples=5))
    rng = np.random.default_rng(4)
    pose_world = STANDING + (0, -PELVIS_HEIGHT, 3000)  # feet on the floor, 3 m ahead
    for _ in range(30):
        joints = to_camera(pose_world + rng.normal(0, 10, (17, 3)), r, position)
        estimator.add(joints, np.ones(17, bool), np.zeros(2))
    floor = estimator.update()
    true_up = r @ np.array([0.0, -1.0, 0.0])
    assert math.degrees(math.acos(floor.normal @ true_up)) < 3.0
    assert floor.height == pytest.approx(1400.0, abs=60)


def run_world(world: World, poses: list[np.ndarray], roots: list[np.ndarray], fps: float = 30.0,
              noise_px: float = 0.0, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for k, (pose, root) in enumerate(zip(poses, roots)):
        kp, cf = seen(pose, root)
        kp = kp + rng.normal(0, noise_px, kp.shape)
        people, _, scene = world([7], kp, cf, pose[None], (640, 480), k / fps)
        out.append({**people[0], **scene})
    return out


def test_standing_person_is_placed_with_feet_in_contact_and_not_sliding():
    root = np.array([300.0, 1500.0 - PELVIS_HEIGHT, 3500.0])  # a level camera 1.5 m above the floor
    n = 150
    locked = run_world(World(), [STANDING] * n, [root] * n, noise_px=1.5)
    unlocked = run_world(World(WorldOptions(foot_lock=False)), [STANDING] * n, [root] * n, noise_px=1.5)
    last = locked[-1]
    assert last["floor"] is not None and last["floor"]["height"] == pytest.approx(1500, abs=80)
    assert np.linalg.norm(np.array(last["root"]) - root) < 0.03 * root[2]
    assert last["contact"] == {"left": True, "right": True}

    def ankle_travel(frames: list[dict]) -> float:
        """Path length of the right ankle over the last 100 frames, mm."""
        ankles = np.array([np.array(f["root"]) + STANDING[H["r_ankle"]] for f in frames[-100:]])
        return float(np.linalg.norm(np.diff(ankles, axis=0), axis=1).sum())
    assert ankle_travel(locked) < 0.2 * ankle_travel(unlocked), (ankle_travel(locked), ankle_travel(unlocked))


def test_walking_person_is_followed_and_a_raised_foot_is_not_in_contact():
    n = 90
    start = np.array([-1500.0, 1500.0 - PELVIS_HEIGHT, 4000.0])
    roots = [start + (1000.0 * k / 30, 0, 0) for k in range(n)]  # 1 m/s to the right, 3 m
    raised = STANDING.copy()
    raised[[H["l_knee"], H["l_ankle"]]] -= (0, 300, 0)  # the left foot 30 cm up
    poses = [STANDING] * 60 + [raised] * 30
    frames = run_world(World(), poses, roots)
    xs = np.array([f["root"][0] for f in frames])
    assert xs[-1] - xs[0] > 2000  # walked right across
    lag = roots[59][0] - xs[59]
    assert abs(lag) < 60, f"the filtered position trails by {lag:.0f} mm at 1 m/s"
    assert not frames[-1]["contact"]["left"]


def test_people_are_given_an_adults_size_whatever_size_the_lifter_guessed():
    """The lifter cannot know a person's size (its 2D input is normalised): a 10 % too big guess would place
    them 10 % too far; scaled to an adult's legs, they are where they are."""
    thigh, shin = (H["r_hip"], H["r_knee"]), (H["r_knee"], H["r_ankle"])
    leg = sum(np.linalg.norm(STANDING[a] - STANDING[b]) for a, b in (thigh, shin))
    assert leg == pytest.approx(ADULT_LEG_MM, abs=3)
    root = np.array([200.0, 300.0, 4000.0])
    kp, cf = seen(STANDING, root)
    for options, expected_depth in ((WorldOptions(), root[2]), (WorldOptions(leg_mm=None), 1.1 * root[2])):
        people, joints, _ = World(options)([1], kp, cf, 1.1 * STANDING[None], (640, 480), 0.0)
        assert people[0]["root"][2] == pytest.approx(expected_depth, rel=0.01)
    np.testing.assert_allclose(joints[0], 1.1 * STANDING, atol=1e-6)  # the lifter's size, with leg_mm=None


def test_a_given_height_places_a_tall_person_at_their_distance():
    """Someone with 12.5 % longer legs than the adult default (1.83 m tall), whom the lifter gives an average
    body: by default placed 11 % too near; with their height given, where they are."""
    tall = 1.125 * STANDING
    root = np.array([-150.0, 250.0, 3500.0])
    kp, cf = seen(tall, root)
    height_cm = 1.125 * ADULT_LEG_MM / 0.491 / 10
    for options, expected_depth in ((WorldOptions(), root[2] / 1.125),
                                    (WorldOptions(leg_mm=leg_mm_for_height(height_cm)), root[2])):
        people, _, _ = World(options)([1], kp, cf, STANDING[None], (640, 480), 0.0)
        assert people[0]["root"][2] == pytest.approx(expected_depth, rel=0.01)
    world = World()  # the page's setting, while streaming: at once, and back to the default
    for height, expected_depth in ((height_cm, root[2]), (None, root[2] / 1.125)):
        world.set_height(height)
        people, _, _ = world([1], kp, cf, STANDING[None], (640, 480), 1.0)
        assert people[0]["root"][2] == pytest.approx(expected_depth, rel=0.01)
    assert leg_mm_for_height(163) == pytest.approx(ADULT_LEG_MM, rel=0.01)
    for bad in (17.5, 1830, float("nan"), "tall"):
        with pytest.raises(ValueError, match="centimetres"):
            leg_mm_for_height(bad)


def test_image_mode_places_people_without_a_floor():
    root = np.array([0.0, 0.0, 3000.0])
    frames = run_world(World(temporal=False), [STANDING] * 3, [root] * 3)
    assert frames[-1]["floor"] is None and frames[-1]["contact"] == {"left": False, "right": False}
    np.testing.assert_allclose(frames[-1]["root"], root, atol=10.0)  # legs 801 mm, not 800: 0.1 %


def test_keypoint_windows_pad_the_past_with_confidence_zero():
    history = KeypointHistory(window=4)
    kp = np.ones((1, 17, 2), np.float32)
    cf = np.ones((1, 17), np.float32)
    windows = [history([5], kp * k, cf, k / 30) for k in range(1, 4)]
    w_kp, w_cf = windows[-1]
    assert w_kp.shape == (1, 4, 17, 2) and w_cf.shape == (1, 4, 17)
    assert (w_cf[0, 0] == 0).all() and (w_cf[0, 1:] == 1).all()  # before the person appeared: missing
    assert w_kp[0, -1, 0, 0] == 3 and w_kp[0, 1, 0, 0] == 1  # oldest first
    # A frame without the person: their track moves on with a missing frame; a new person starts empty.
    history([9], kp, cf, 4 / 30)
    w_kp, w_cf = history([5, 9], np.concatenate([kp, kp]) * 5, np.concatenate([cf, cf]), 5 / 30)
    assert w_cf[0, :, 0].tolist() == [1, 1, 0, 1] and w_cf[1, :, 0].tolist() == [0, 0, 1, 1]
    history([], kp[:0], cf[:0], 10.0)  # long gone: forgotten
    assert len(history) == 0


def test_the_floor_is_under_everyone_not_on_the_box_someone_stands_on():
    rng = np.random.default_rng(5)
    ground = np.stack([rng.uniform(-1500, 1500, 150), np.full(150, 1500.0 - ANKLE_MM), rng.uniform(2000, 5000, 150)], 1)
    box = np.stack([rng.uniform(-500, 0, 250), np.full(250, 500.0 - ANKLE_MM), rng.uniform(4000, 4500, 250)], 1)
    points = np.concatenate([ground, box]) + rng.normal(0, 20, (400, 3))
    floor = fit_floor(points, up_prior=np.array([0.0, -1.0, 0.0]))
    assert floor.height == pytest.approx(1500.0, abs=30)
    assert math.degrees(math.acos(-floor.normal[1])) < 2.0
