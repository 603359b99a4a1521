import numpy as np
import pytest

from posecast import skeleton as sk

DOCUMENTED_H36M = ("pelvis r_hip r_knee r_ankle l_hip l_knee l_ankle spine thorax neck_nose head "
                   "l_shoulder l_elbow l_wrist r_shoulder r_elbow r_wrist").split()
DOCUMENTED_COCO = ("Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist RHip RKnee RAnkle "
                   "LHip LKnee LAnkle REye LEye REar LEar").split()


def snake(openpose_name: str) -> str:
    side = {"R": "r_", "L": "l_"}.get(openpose_name[0]) if openpose_name[1:2].isupper() else None
    return (side + openpose_name[1:] if side else openpose_name).lower()


def test_names_follow_documented_orders():
    assert list(sk.H36M17) == DOCUMENTED_H36M
    assert list(sk.COCO18) == [snake(n) for n in DOCUMENTED_COCO]


@pytest.mark.parametrize("names,edges", [(sk.H36M17, sk.H36M17_EDGES), (sk.COCO18, sk.COCO18_EDGES),
                                         (sk.COCO18, sk.COCO18_PAF_LIMBS)])
def test_edges_are_valid_and_unique(names, edges):
    assert all(0 <= a < len(names) and 0 <= b < len(names) and a != b for a, b in edges)
    assert len({frozenset(e) for e in edges}) == len(edges)


def test_h36m_skeleton_is_a_tree_rooted_at_pelvis():
    parent = {}
    for a, b in sk.H36M17_EDGES:
        assert b not in parent, f"{sk.H36M17[b]} has two parents"
        parent[b] = a
    assert set(parent) == set(range(1, 17)) and 0 not in parent


@pytest.mark.parametrize("names", [sk.H36M17, sk.COCO18])
def test_mirror_is_an_involution_that_swaps_sides(names):
    perm = sk.mirror_permutation(names)
    np.testing.assert_array_equal(perm[perm], np.arange(len(names)))
    sides = sk.sides(names)
    for i, j in enumerate(perm):
        assert {sides[i], sides[j]} in ({"centre"}, {"left", "right"})
        assert names[i].removeprefix("l_").removeprefix("r_") == names[j].removeprefix("l_").removeprefix("r_")


def test_edge_sides_colour_limbs_by_side():
    es = dict(zip(sk.H36M17_EDGES, sk.edge_sides(sk.H36M17, sk.H36M17_EDGES)))
    assert es[(sk.H["pelvis"], sk.H["r_hip"])] == "right"
    assert es[(sk.H["l_elbow"], sk.H["l_wrist"])] == "left"
    assert es[(sk.H["spine"], sk.H["thorax"])] == "centre"


def full_coco_pose() -> np.ndarray:
    pts = {"nose": (100, 40), "neck": (100, 70), "r_shoulder": (80, 70), "r_elbow": (75, 100), "r_wrist": (72, 130),
           "l_shoulder": (120, 70), "l_elbow": (125, 100), "l_wrist": (128, 130), "r_hip": (90, 140),
           "r_knee": (90, 190), "r_ankle": (90, 240), "l_hip": (110, 140), "l_knee": (110, 190), "l_ankle": (110, 240),
           "r_eye": (96, 36), "l_eye": (104, 36), "r_ear": (92, 38), "l_ear": (108, 38)}
    return np.array([pts[n] for n in sk.COCO18], np.float32)


def test_conversion_builds_pelvis_spine_head_and_copies_limbs():
    kp = full_coco_pose()
    out, conf = sk.coco18_to_h36m17(kp, np.ones(18))
    assert conf.shape == (17,) and (conf == 1).all()
    np.testing.assert_allclose(out[sk.H["pelvis"]], [100, 140])
    np.testing.assert_allclose(out[sk.H["thorax"]], kp[sk.C["neck"]])
    np.testing.assert_allclose(out[sk.H["spine"]], [100, 105])
    np.testing.assert_allclose(out[sk.H["r_wrist"]], kp[sk.C["r_wrist"]])
    assert out[sk.H["head"], 1] < kp[sk.C["r_eye"], 1]  # above the eyes (y down)


def test_missing_joints_are_marked_missing_not_zero_positions():
    conf = np.ones((2, 18), np.float32)
    conf[0, [sk.C["l_hip"]]] = 0  # one hip: no pelvis, no spine
    conf[1, [sk.C["r_ear"], sk.C["l_ear"], sk.C["r_eye"], sk.C["l_eye"]]] = 0  # no head
    out, oc = sk.coco18_to_h36m17(np.stack([full_coco_pose()] * 2), conf)
    assert oc[0, sk.H["pelvis"]] == 0 and oc[0, sk.H["spine"]] == 0 and oc[0, sk.H["l_hip"]] == 0
    assert oc[0, sk.H["r_hip"]] == 1
    assert oc[1, sk.H["head"]] == 0 and oc[1, sk.H["pelvis"]] == 1
    assert (out[oc == 0] == 0).all()


def test_conversion_works_on_3d_points():
    kp3 = np.concatenate([full_coco_pose(), np.full((18, 1), 5.0, np.float32)], axis=1)
    out, _ = sk.coco18_to_h36m17(kp3[None], np.ones((1, 18)))
    assert out.shape == (1, 17, 3) and np.allclose(out[0, :, 2], 5.0)


def test_skeleton_info_is_json_ready():
    import json
    info = json.loads(json.dumps(sk.skeleton_info()))
    assert info["h36m17"]["joints"] == DOCUMENTED_H36M and len(info["h36m17"]["edges"]) == 16
