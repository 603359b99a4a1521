"""Letterbox geometry, peak finding, PAF grouping and tracking on synthetic inputs (no network)."""
from __future__ import annotations

import numpy as np
import pytest

from posecast.detector import letterbox
from posecast.detector.paf import group
from posecast.detector.peaks import find_peaks
from posecast.detector.tracking import Tracker, suppress_duplicates
from posecast.skeleton import C, COCO18, COCO18_PAF_LIMBS

# A standing person in heatmap cells (x, y), COCO-18 order.
STANDING = np.array([
    [10, 4], [10, 7], [8, 7], [7.5, 10], [7, 13], [12, 7], [12.5, 10], [13, 13],
    [9, 13], [9, 17], [9, 21], [11, 13], [11, 17], [11, 21], [9.5, 3.5], [10.5, 3.5], [9, 4], [11, 4],
], np.float32)


def render(people: list[np.ndarray], h: int = 26, w: int = 48, sigma: float = 0.8,
           width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Ideal network maps for people [18, 2] (cells): Gaussian parts and unit-vector limb fields."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    heatmaps = np.zeros((19, h, w), np.float32)
    pafs = np.zeros((38, h, w), np.float32)
    for kp in people:
        for j, (x, y) in enumerate(kp):
            heatmaps[j] = np.maximum(heatmaps[j], np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)))
        for k, (a, b) in enumerate(COCO18_PAF_LIMBS):
            d = kp[b] - kp[a]
            length = np.linalg.norm(d)
            u = d / length
            rx, ry = xx - kp[a, 0], yy - kp[a, 1]
            along = rx * u[0] + ry * u[1]
            across = np.abs(rx * u[1] - ry * u[0])
            on = (along >= -width) & (along <= length + width) & (across <= width)
            pafs[2 * k][on], pafs[2 * k + 1][on] = u[0], u[1]
    return heatmaps, pafs


@pytest.mark.parametrize("frame_size, crop, height", [
    ((640, 480), (0, 0, 640, 480), 256),
    ((640, 480), (101, 37, 333, 479), 368),
    ((1920, 1080), (0, 0, 1920, 1080), 320),
    ((3, 2), (0, 0, 3, 2), 256),
    ((100, 5000), (0, 0, 100, 5000), 256),
])
def test_letterbox_round_trip_and_pixels(frame_size, crop, height):
    box = letterbox.make(crop, height)
    w, h = box.size
    assert h % 8 == 0 and w % 8 == 0 and h == height
    pts = np.random.default_rng(1).uniform([crop[0], crop[1]], [crop[2], crop[3]], (50, 2))
    np.testing.assert_allclose(box.to_frame(box.to_net(pts)), pts, rtol=1e-5, atol=1e-3)
    # the crop's corners land on the resized region's corners inside the network input
    x0, y0, x1, y1 = crop
    np.testing.assert_allclose(box.to_net([[x0, y0], [x1, y1]]),
                               [box.pad, np.add(box.pad, box.resized)], atol=1e-4)
    # a bright pixel in the frame shows up where to_net puts it
    fw, fh = frame_size
    frame = np.zeros((fh, fw, 3), np.uint8)
    px, py = (x0 + x1) // 2, (y0 + y1) // 2
    frame[py, px] = 255
    image = letterbox.warp(frame, box)
    assert image.shape == (h, w, 3)
    if box.scale.min() >= 1:         # upsampled: the brightest network pixel sits at the mapped centre
        iy, ix = np.unravel_index(image[..., 0].argmax(), image.shape[:2])
        cx, cy = box.to_net([px + 0.5, py + 0.5])
        assert abs(ix + 0.5 - cx) <= 0.5 + 1e-3 and abs(iy + 0.5 - cy) <= 0.5 + 1e-3


def test_letterbox_pads_instead_of_stretching():
    box = letterbox.make((0, 0, 640, 100), 256)        # very wide: aspect clamped to 2, padded vertically
    assert box.size == (512, 256)
    assert abs(box.scale[0] - box.scale[1]) < 0.01
    assert box.pad[1] > 0 and box.pad[0] == 0


def test_peaks_are_refined_below_a_cell():
    heatmaps, _ = render([STANDING + np.float32(0.3)])
    peaks = find_peaks(heatmaps[:18], 0.1)
    assert np.array_equal(peaks.part, np.arange(18))
    np.testing.assert_allclose(peaks.xy, STANDING + 0.3, atol=0.08)
    # a plateau gives one peak, not four
    flat = np.zeros((1, 9, 9), np.float32)
    flat[0, 3:5, 3:5] = 1.0
    assert len(find_peaks(flat, 0.1).part) == 1


def test_two_people_are_found_and_grouped_correctly():
    second = STANDING * np.float32([1.0, 0.95]) + np.float32([22, 0.5])
    heatmaps, pafs = render([STANDING, second])
    people = group(find_peaks(heatmaps[:18], 0.1), pafs)
    assert len(people.keypoints) == 2
    assert np.all(people.confidence > 0.5)
    order = np.argsort(people.keypoints[:, C["neck"], 0])
    for truth, got in zip([STANDING, second], people.keypoints[order]):
        np.testing.assert_allclose(got, truth, atol=0.15)   # every part with its own person


def test_no_maps_no_people():
    heatmaps, pafs = np.zeros((19, 20, 30), np.float32), np.zeros((38, 20, 30), np.float32)
    people = group(find_peaks(heatmaps[:18], 0.1), pafs)
    assert people.keypoints.shape == (0, 18, 2) and people.confidence.shape == (0, 18)


def test_parts_without_a_field_between_them_are_not_joined():
    heatmaps, pafs = render([STANDING])
    pafs[:] = 0.0
    assert len(group(find_peaks(heatmaps[:18], 0.1), pafs).keypoints) == 0


def person_at(dx: float, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    return (STANDING * 8 * scale + np.float32([dx, 0])), np.full(18, 0.8, np.float32)


def step(tracker: Tracker, people: list[tuple[np.ndarray, np.ndarray]]):
    kp = np.array([p[0] for p in people], np.float32).reshape(-1, 18, 2)
    cf = np.array([p[1] for p in people], np.float32).reshape(-1, 18)
    return tracker.update(kp, cf, cf.sum(-1) / 18, (640, 480))


def test_tracker_keeps_the_main_id_when_a_bigger_person_appears():
    tracker = Tracker()
    ids, main = step(tracker, [person_at(0)])
    first = ids[main]
    for t in range(1, 6):
        ids, main = step(tracker, [person_at(300, scale=1.5), person_at(3 * t)])
        assert ids[main] == first and main == 1
        assert ids[0] != first
    # the main person disappears for a frame: the bystander is not made main at once
    ids, main = step(tracker, [person_at(300, scale=1.5)])
    assert main is None
    ids, main = step(tracker, [person_at(300, scale=1.5), person_at(18)])
    assert ids[main] == first
    # gone for good: after the grace period the other person becomes main
    for _ in range(tracker.options.main_grace + 1):
        ids, main = step(tracker, [person_at(300, scale=1.5)])
    assert main == 0 and ids[0] != first


def test_tracker_reclaims_the_main_id_after_a_sudden_pose_change():
    tracker = Tracker()
    ids, main = step(tracker, [person_at(100)])
    flipped, cf = person_at(100)
    flipped[:, 1] = flipped[:, 1].min() + flipped[:, 1].max() - flipped[:, 1]   # upside down, same place
    ids2, main2 = step(tracker, [(flipped, cf)])
    assert ids2[main2] == ids[main]


def test_doubled_skeleton_is_suppressed():
    kp, cf = person_at(100)
    ghost = kp + np.float32([1.5, -1.0])
    keep = suppress_duplicates(np.stack([ghost, kp, person_at(400)[0]]), np.stack([cf * 0.5, cf, cf]),
                               np.array([0.4, 0.8, 0.8]), 0.6)
    assert keep.tolist() == [1, 2]


def test_crop_follows_the_main_person_with_margin():
    tracker = Tracker()
    kp, cf = person_at(200)
    step(tracker, [(kp, cf)])
    x0, y0, x1, y1 = tracker.crop((640, 480))
    assert x0 < kp[:, 0].min() and x1 > kp[:, 0].max() and y0 < kp[:, 1].min() and y1 > kp[:, 1].max()
    assert (x1 - x0) * (y1 - y0) < 0.6 * 640 * 480
    step(tracker, [])
    assert tracker.crop((640, 480)) is None          # lost: look at the whole frame
    assert len(COCO18) == 18


def test_fragment_of_a_body_is_dropped_and_does_not_steal_the_track():
    kp, cf = person_at(100)
    body_cf, fragment_cf = cf.copy(), np.zeros(18, np.float32)
    arm = [C["r_shoulder"], C["r_elbow"], C["r_wrist"], C["neck"]]
    body_cf[arm[:3]] = 0                        # the grouping split the right arm off the body
    fragment_cf[arm] = 0.8
    keep = suppress_duplicates(np.stack([kp, kp]), np.stack([fragment_cf, body_cf]), np.array([0.2, 0.6]), 0.6)
    assert keep.tolist() == [1]
    tracker = Tracker()
    ids, main = step(tracker, [(kp, cf)])
    ids2, main2 = step(tracker, [(kp, fragment_cf), (kp, body_cf)])   # were it kept, the body still wins
    assert ids2[1] == ids[main] and main2 == 1


def test_a_half_found_main_person_is_reclaimed_after_a_missed_frame():
    tracker = Tracker()
    kp, cf = person_at(100)
    ids, main = step(tracker, [(kp, cf)])
    legs = np.zeros(18, np.float32)
    legs[[C["r_hip"], C["r_knee"], C["r_ankle"], C["l_hip"], C["l_knee"], C["l_ankle"]]] = 0.8
    step(tracker, [(kp, legs)])                 # only the legs: too partial to match, kept for later
    ids3, main3 = step(tracker, [(kp + 2, cf)])  # whole again
    assert ids3[main3] == ids[main]
