"""BVH reader and forward kinematics on tiny files with known answers, and the real rigs' joint maps."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest

from conftest import shared_path
from posecast.bvh import BvhError, euler_to_matrix, forward_kinematics, parse_bvh, read_bvh
from training.rigs import LANDMARKS, L, find_rig, landmark_indices

TINY = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT arm
  {
    OFFSET 10 0 0
    CHANNELS 3 Yrotation Xrotation Zrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
  JOINT slider
  {
    OFFSET 0 3 0
    CHANNELS 6 Zrotation Xposition Yposition Zposition Yrotation Xrotation
  }
}
MOTION
Frames: 2
Frame Time: 0.5
1 2 3 0 0 0   0 0 0   0 0 3 0 0 0
1 2 3 90 0 0  0 0 90  0 7 8 9 0 0
"""


def test_hierarchy_channels_and_end_sites():
    bvh = parse_bvh(TINY)
    assert bvh.names == ["root", "arm", "arm_end", "slider"]
    assert bvh.parents.tolist() == [-1, 0, 1, 0]
    assert bvh.channels[2] == [] and len(bvh.channels[3]) == 6
    assert bvh.motion.shape == (2, 15) and bvh.frame_time == 0.5


def test_forward_kinematics_known_positions():
    bvh = parse_bvh(TINY)
    pos, glob = forward_kinematics(bvh.parents, *bvh.local_transforms())
    # Frame 0: rest pose shifted by the root position.
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [11, 2, 3], [11, 7, 3], [1, 5, 3]], atol=1e-9)
    # Frame 1: root turned 90 deg about Z (x -> y); arm turned 90 deg about its own Z; the
    # slider's position channels (7, 8, 9) replace its offset.
    np.testing.assert_allclose(pos[1, 1], [1, 12, 3], atol=1e-9)       # (10,0,0) -> (0,10,0)
    np.testing.assert_allclose(pos[1, 2], [1, 12 - 5, 3], atol=1e-9)   # (0,5,0) turned 180 deg -> (0,-5,0)
    np.testing.assert_allclose(pos[1, 3], [1 - 8, 2 + 7, 3 + 9], atol=1e-9)
    np.testing.assert_allclose(glob[1, 2], glob[1, 1], atol=1e-12)     # end sites do not rotate


@pytest.mark.parametrize("order", ["XYZ", "ZXY", "YZX"])
def test_channel_order_is_intrinsic_in_file_order(order):
    angles = np.radians([30.0, -50.0, 70.0])
    r = euler_to_matrix(angles, order)
    want = np.eye(3)
    for axis, a in zip(order, angles):
        c, s = np.cos(a), np.sin(a)
        i, j = [(1, 2), (2, 0), (0, 1)]["XYZ".index(axis)]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        want = want @ m
    np.testing.assert_allclose(r, want, atol=1e-12)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("text,message", [
    ("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Qrotation Xrotation Yrotation\n}\nMOTION\n", "unknown channels"),
    ("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\n", "incomplete"),
    (TINY.replace("Frames: 2", "Frames: 3"), "expected 3 x 15"),
    ("hello", "HIERARCHY"),
])
def test_bad_files_say_what_is_wrong(text, message):
    with pytest.raises(BvhError, match=message):
        parse_bvh(text, "bad.bvh")


def _rest_landmarks(path):
    bvh = read_bvh(path)
    rig = find_rig(bvh.names)
    pos, _ = forward_kinematics(bvh.parents, *bvh.local_transforms())
    return rig, pos[:, landmark_indices(rig, bvh.names)]


def test_cmu_rigs_are_mapped(tmp_path):
    archive = shared_path("data/cmu-extra-bvh.tar.xz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    files = sorted(tmp_path.rglob("*.bvh"))
    assert len(files) == 4
    rigs = set()
    for path in files:
        rig, lm = _rest_landmarks(path)
        rigs.add(rig.name)
        up = lm[:, L["head"]] - 0.5 * (lm[:, L["l_hip"]] + lm[:, L["r_hip"]])
        assert (up[:, 1] > 0).mean() > 0.95, path.name  # Y up: head above the hips
        assert lm.shape[1] == len(LANDMARKS)
    assert rigs == {"cmu-max", "cmu-daz"}
