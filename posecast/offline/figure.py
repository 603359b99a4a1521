"""The paper's four-panel figure, drawn with OpenCV: 1 the detector's input crop, 2 its COCO-18 keypoints,
3 the 17 converted joints, 4 the 3D pose. The same look as the page's pipeline view (web/overlay.js,
web/view3d.js): right side blue, left side red, on a dark background.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from posecast.skeleton import COCO18, COCO18_EDGES, H36M17, H36M17_EDGES, edge_sides, sides

# BGR of the page's colours (web/style.css, web/view3d.js).
SIDE_BGR = {"right": (246, 130, 59), "left": (68, 68, 239), "centre": (219, 213, 209)}
SIDE_BGR_3D = {**SIDE_BGR, "centre": (175, 163, 156)}  # the 3D view's grey trunk (#9ca3af)
BACKGROUND = (39, 24, 17)   # #111827
GRID = (85, 65, 51)         # #334155
GRID_AXIS = (139, 116, 100)  # #64748b
TEXT = (235, 231, 229)
CAPTIONS = ("1 Input: the detector's crop", "2 Detector: COCO-18 keypoints",
            "3 Converted: Human3.6M 17 joints", "4 3D pose (lifter)")
LAYOUTS = {"coco18": (COCO18_EDGES, edge_sides(COCO18, COCO18_EDGES), sides(COCO18)),
           "h36m17": (H36M17_EDGES, edge_sides(H36M17, H36M17_EDGES), sides(H36M17))}
CAPTION_HEIGHT = 28
VIEW_METRES = 2.1           # the 3D panel's height covers this much of the scene
DEFAULT_PELVIS_HEIGHT = 0.95  # metres above the ground while some joint is missing (as the page does)
AZIMUTH, ELEVATION = math.radians(-25), math.radians(12)  # the viewer: in front, a little to the side and above


def _blend(colour: tuple[int, int, int], alpha: float, background=BACKGROUND) -> tuple[int, int, int]:
    return tuple(int(round(alpha * c + (1 - alpha) * b)) for c, b in zip(colour, background))


def draw_skeleton_2d(canvas: np.ndarray, points: np.ndarray, confidence: np.ndarray, layout: str,
                     scale: float = 1.0) -> None:
    """points [J, 2] canvas pixels, confidence [J] (0 = missing, not drawn); faint where unsure, as in the page."""
    edges, edge_side, joint_side = LAYOUTS[layout]
    pts = np.round(np.asarray(points) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel anti-aliased lines
    width = max(1, int(round(3 * scale)))
    for (a, b), side in zip(edges, edge_side):
        c = min(confidence[a], confidence[b])
        if c > 0:
            cv2.line(canvas, tuple(pts[a]), tuple(pts[b]), _blend(SIDE_BGR[side], min(1.0, 0.3 + c)), width,
                     cv2.LINE_AA, shift=4)
    for p, c, side in zip(pts, confidence, joint_side):
        if c > 0:
            cv2.circle(canvas, tuple(p), int(round(4 * scale * 16)), _blend(SIDE_BGR[side], min(1.0, 0.3 + c)),
                       -1, cv2.LINE_AA, shift=4)


def crop_panel(image: np.ndarray, crop, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The crop (x0, y0, x1, y1, frame pixels) scaled into size (w, h), aspect kept, centred on the background.
    Returns the panel and the 2x3 affine map from frame pixels to panel pixels."""
    w, h = size
    x0, y0, x1, y1 = crop
    s = min(w / max(x1 - x0, 1e-6), h / max(y1 - y0, 1e-6))
    ox, oy = (w - s * (x1 - x0)) / 2, (h - s * (y1 - y0)) / 2
    m = np.array([[s, 0, ox - s * x0], [0, s, oy - s * y0]], np.float64)
    panel = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)
    return panel, m


def _apply(m: np.ndarray, points) -> np.ndarray:
    p = np.asarray(points, np.float64)[:, :2]
    return p @ m[:, :2].T + m[:, 2]


def _dim(panel: np.ndarray) -> np.ndarray:
    """Darken the photo so the keypoints stand out (the page's 45 % overlay)."""
    return cv2.addWeighted(panel, 0.55, np.full_like(panel, BACKGROUND), 0.45, 0)


def _view(points_world: np.ndarray) -> np.ndarray:
    """World (m, y up, z towards the viewer) -> view (x right, y up, z towards the viewer), orbit camera."""
    ca, sa, ce, se = math.cos(AZIMUTH), math.sin(AZIMUTH), math.cos(ELEVATION), math.sin(ELEVATION)
    yaw = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    pitch = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
    return points_world @ (pitch @ yaw).T


def pose_3d_panel(joints3d, confidence, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """The main person's 3D joints (mm, camera axes: x right, y down, z away) standing on a grid, seen from the
    front and a little to the side; orthographic and at a fixed scale, so sizes compare across frames."""
    w, h = size
    panel = np.full((h, w, 3), BACKGROUND, np.uint8)
    px = h / VIEW_METRES  # pixels per metre

    ground = -DEFAULT_PELVIS_HEIGHT
    world = None
    if joints3d is not None:
        conf = np.asarray(confidence, np.float64)
        world = np.asarray(joints3d, np.float64) / 1000.0 * np.array([1.0, -1.0, -1.0])
        if (conf > 0).all():  # feet on the grid only when every joint is seen (else it would stand on its hips)
            ground = world[:, 1].min()
    # The camera looks at a point a little above the ground's middle, so the ground sits low in the panel.
    target = _view(np.array([[0.0, ground + VIEW_METRES * 0.42, 0.0]]))[0]

    def to_px(v: np.ndarray) -> np.ndarray:
        """View coordinates -> panel pixels with 4 fractional bits (cv2's shift=4)."""
        xy = np.stack([w / 2 + (v[:, 0] - target[0]) * px, h / 2 - (v[:, 1] - target[1]) * px], -1)
        return np.round(xy * 16).astype(np.int32)

    # Ground grid: 2 m x 2 m in 0.25 m steps around the pelvis (the centre lines brighter).
    ticks = np.linspace(-1.0, 1.0, 9)
    for i, t in enumerate(ticks):
        for a, b in (((t, -1.0), (t, 1.0)), ((-1.0, t), (1.0, t))):
            q = to_px(_view(np.array([[a[0], ground, a[1]], [b[0], ground, b[1]]])))
            cv2.line(panel, tuple(q[0]), tuple(q[1]), GRID_AXIS if i == 4 else GRID, 1, cv2.LINE_AA, shift=4)
    if world is None:
        cv2.putText(panel, "nobody found", (int(w * 0.3), h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, TEXT, 1,
                    cv2.LINE_AA)
        return panel

    view = _view(world)
    p = to_px(view)
    edges, edge_side, joint_side = LAYOUTS["h36m17"]
    # Far things first, so near limbs cover far ones (painter's order by depth).
    items = [(view[[a, b], 2].mean(), "bone", (a, b), side) for (a, b), side in zip(edges, edge_side)
             if conf[a] > 0 and conf[b] > 0]
    items += [(view[j, 2], "joint", j, side) for j, side in enumerate(joint_side) if conf[j] > 0]
    for _, kind, what, side in sorted(items, key=lambda item: item[0]):
        if kind == "bone":
            a, b = what
            colour = _blend(SIDE_BGR_3D[side], min(1.0, 0.3 + min(conf[a], conf[b])))
            cv2.line(panel, tuple(p[a]), tuple(p[b]), colour, max(2, int(round(5 * scale))), cv2.LINE_AA, shift=4)
        else:
            colour = _blend(SIDE_BGR_3D[side], min(1.0, 0.3 + conf[what]))
            cv2.circle(panel, tuple(p[what]), int(round(5.5 * scale * 16)), colour, -1, cv2.LINE_AA, shift=4)
    return panel


def four_panels(image: np.ndarray, crop, person: dict | None, height: int = 360,
                panel_width: int | None = None) -> np.ndarray:
    """The figure for one frame: image BGR, crop (frame pixels, None = whole frame), person a record's person
    (posecast.records.person_record; None = nobody). Panels 1-3 take the crop's aspect unless panel_width is given
    (a video keeps one size for all frames); panel 4 is as wide as it is high."""
    fh, fw = image.shape[:2]
    crop = tuple(crop) if crop is not None else (0, 0, fw, fh)
    if panel_width is None:
        panel_width = int(round(height * (crop[2] - crop[0]) / max(crop[3] - crop[1], 1)))
    size = (max(16, panel_width), height)
    scale = height / 360
    first, m = crop_panel(image, crop, size)
    second, third = _dim(first), _dim(first)
    joints3d = confidence = None
    if person is not None:
        coco = np.asarray(person["coco18"], np.float64)
        draw_skeleton_2d(second, _apply(m, coco[:, :2]), coco[:, 2], "coco18", scale)
        draw_skeleton_2d(third, _apply(m, person["keypoints"]), np.asarray(person["confidence"]), "h36m17", scale)
        joints3d, confidence = person["joints3d"], person["confidence"]
    fourth = pose_3d_panel(joints3d, confidence, (height, height), scale)
    gap = max(2, int(round(6 * scale)))
    caption = int(round(CAPTION_HEIGHT * scale))
    panels = [first, second, third, fourth]
    total_w = sum(p.shape[1] for p in panels) + gap * (len(panels) + 1)
    out = np.full((height + caption + 2 * gap, total_w, 3), BACKGROUND, np.uint8)
    x = gap
    for panel, text in zip(panels, CAPTIONS):
        pw = panel.shape[1]
        out[gap:gap + height, x:x + pw] = panel
        _caption(out, text, x, gap + height, pw, caption, scale)
        x += pw + gap
    return out


def _caption(out: np.ndarray, text: str, x: int, y: int, width: int, height: int, scale: float) -> None:
    """Caption text under a panel, shrunk to fit its width."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    size = 0.5 * scale
    (tw, th), _ = cv2.getTextSize(text, font, size, thickness)
    if tw > width - 4:
        size *= (width - 4) / tw
        (tw, th), _ = cv2.getTextSize(text, font, size, thickness)
    cv2.putText(out, text, (x + 2, y + (height + th) // 2), font, size, TEXT, thickness, cv2.LINE_AA)
