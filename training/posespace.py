"""Pose-space augmentation (issue 7): new plausible poses made on the joint rotations.

Everything here edits local joint rotations and is re-run through forward kinematics, so bone
lengths stay those of the rig. Rotations about world axes (hip and knee flexion, bending) are
turned into local ones with L' = G_parent^T Q G_parent L. Signs, for a body with up U,
forward F and left = U x F: a rotation by +a about `left` turns U towards F, so the thigh
swings forward with -a, the shin folds back with +a and the trunk bends forward with +a.
Whole-body tilts (lying, leaning) rotate the finished landmarks about the pelvis.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posecast.bvh import forward_kinematics
from .rigs import L, body_axes, unit


@dataclass
class PoseAugment:
    """Switches and strengths; every part can be turned off for the ablation."""
    perturb: float = 0.5        # probability of joint-angle perturbation
    recombine: float = 0.3      # probability of taking arms / legs from other frames
    postures: float = 0.45      # probability of a posture: sit, crouch, bend, lift a knee, reach, all fours, kneel, lunge
    tilt: float = 0.2           # probability of a whole-body tilt beyond upright
    # Probability of arms held away from the body (abducted up to abduct_deg): Bandai's arms
    # hang close to the body, the climbing actor's (and many people's) 25 degrees out or more.
    abduct: float = 0.7
    abduct_deg: float = 50.0
    # All fours with the trunk pitched this far (degrees): horizontal on a floor, steeper with the
    # hands on something higher (a box, a step, a slope), as when climbing onto it.
    fours_pitch_deg: tuple[float, float] = (35.0, 95.0)
    # Share of all fours that crawl: one thigh forward (hip 95-130 degrees), the other back (45-80),
    # the knees drawn apart; 0 keeps both sides alike, as the per-frame lifter was trained.
    fours_crawl: float = 0.0
    # Knee lifts lean the trunk forward up to this (degrees) half the time: stepping up onto something.
    step_lean_deg: float = 50.0
    bone_scale: float = 0.07    # per-bone length variation (fraction)
    body_scale: tuple[float, float] = (0.85, 1.12)
    # Trunk (pelvis to neck) length factor: part of the joint-definition jitter, since rigs
    # disagree (hips to shoulders: Bandai 400 mm, the climbing set 520 mm).
    torso_scale: tuple[float, float] = (0.95, 1.4)
    # Probability of drawn limb proportions (both sides alike): people's arms and shins, relative
    # to the rest, vary more than the per-bone jitter; the Bandai rig's arms are short
    # (upper arm 243 mm against the climbing actor's 312 mm) and its shins as long as its thighs.
    proportions: float = 0.6
    limb_scale: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "upper_arm": (1.0, 1.4), "forearm": (0.95, 1.25), "thigh": (0.9, 1.1), "shin": (0.95, 1.25)})
    # Perturbation standard deviations (degrees), clipped at 2.5 sigma.
    sigma_deg: dict[str, float] = field(default_factory=lambda: {
        "spine": 8.0, "neck": 12.0, "hip": 18.0, "shoulder": 35.0, "elbow": 30.0, "knee": 12.0})

    @classmethod
    def off(cls) -> "PoseAugment":
        return cls(perturb=0.0, recombine=0.0, postures=0.0, tilt=0.0, abduct=0.0, bone_scale=0.0,
                   body_scale=(1.0, 1.0), torso_scale=(1.0, 1.0), proportions=0.0)


@dataclass
class RigParts:
    """Which joints of a rig play which role, found from its landmark joints."""
    parents: np.ndarray
    landmarks: np.ndarray        # [14] joint index of each landmark
    head: int
    spine: list[int]             # joints from above the pelvis up to (not including) the neck base
    trunk: list[int]             # spine joints and the neck base: their offsets make the trunk
    neck: list[int]
    legs: np.ndarray             # joint indices of both legs (thigh roots and below)
    arms: np.ndarray             # joint indices of both arms (clavicles and below)
    limbs: dict[str, list[int]]  # joints whose offsets make each limb segment, both sides

    @classmethod
    def of(cls, parents: np.ndarray, landmarks: np.ndarray) -> "RigParts":
        def chain(j: int) -> list[int]:
            out = []
            while j >= 0:
                out.append(j)
                j = int(parents[j])
            return out[::-1]

        def segment(top: str, bottom: str) -> list[int]:
            # Offsets below `top` down to `bottom` (twist joints in between included), both sides.
            return [j for side in "lr" for j in chain(lm[f"{side}_{bottom}"])
                    if j not in chain(lm[f"{side}_{top}"])]

        def subtree(root: int) -> list[int]:
            keep = [root]
            for j in range(root + 1, len(parents)):
                if parents[j] in keep:
                    keep.append(j)
            return keep

        lm = {name: int(landmarks[i]) for name, i in L.items()}
        pelvis = int(parents[lm["l_hip"]])
        to_neck = chain(lm["neck"])
        spine = to_neck[to_neck.index(pelvis) + 1:] if pelvis in to_neck else to_neck[1:]
        neck = chain(lm["head"])[len(to_neck) - 1:]
        legs = subtree(lm["l_hip"]) + subtree(lm["r_hip"])
        arms = subtree(int(parents[lm["l_shoulder"]])) + subtree(int(parents[lm["r_shoulder"]]))
        limbs = {"upper_arm": segment("shoulder", "elbow"), "forearm": segment("elbow", "wrist"),
                 "thigh": segment("hip", "knee"), "shin": segment("knee", "ankle")}
        return cls(parents, landmarks, lm["head"], spine[:-1] or spine, spine, neck,
                   np.array(legs), np.array(arms), limbs)


def rodrigues(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations [B,3,3] by angle [B] about unit axes [B,3]."""
    k = np.zeros(axis.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * k @ k


def random_rotations(n: int, sigma_rad: float, rng: np.random.Generator) -> np.ndarray:
    axis = unit(rng.normal(size=(n, 3)))
    angle = np.clip(rng.normal(0, sigma_rad, n), -2.5 * sigma_rad, 2.5 * sigma_rad)
    return rodrigues(axis, angle)


def _world_turn(rot: np.ndarray, glob: np.ndarray, parents: np.ndarray, joint: int,
                q: np.ndarray, mask: np.ndarray) -> None:
    """Turn joint's subtree by world rotations q [B,3,3] where mask, in place on rot."""
    gp = glob[:, parents[joint]]
    new = np.swapaxes(gp, -1, -2) @ q @ gp @ rot[:, joint]
    rot[mask, joint] = new[mask]


def augment_rotations(rot: np.ndarray, trans: np.ndarray, parts: RigParts, opts: PoseAugment,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations [B,J,3,3] and offsets [B,J,3] of one rig -> augmented copies."""
    b = len(rot)
    rot, trans = rot.copy(), trans.copy()
    lm = {name: int(parts.landmarks[i]) for name, i in L.items()}

    if opts.recombine > 0:
        for group in (parts.legs, parts.arms):
            pick = rng.random(b) < opts.recombine
            donor = rng.integers(b, size=b)
            rot[np.ix_(pick, group)] = rot[np.ix_(donor[pick], group)]

    if opts.perturb > 0:
        sig = {k: np.radians(v) for k, v in opts.sigma_deg.items()}
        groups = [(parts.spine, sig["spine"]), (parts.neck, sig["neck"]),
                  ([lm["l_hip"], lm["r_hip"]], sig["hip"]),
                  ([lm["l_shoulder"], lm["r_shoulder"]], sig["shoulder"]),
                  ([lm["l_elbow"], lm["r_elbow"]], sig["elbow"]),
                  ([lm["l_knee"], lm["r_knee"]], sig["knee"])]
        pick = rng.random(b) < opts.perturb
        for joints, s in groups:
            for j in joints:
                rot[pick, j] = rot[pick, j] @ random_rotations(int(pick.sum()), s, rng)

    if opts.postures > 0 or opts.abduct > 0:
        _postures(rot, trans, parts, lm, opts, rng)

    if opts.torso_scale != (1.0, 1.0):
        trans[:, parts.trunk] *= rng.uniform(*opts.torso_scale, size=(b, 1, 1))
    if opts.proportions > 0:
        pick = rng.random(b) < opts.proportions
        for name, (lo, hi) in opts.limb_scale.items():
            trans[:, parts.limbs[name]] *= np.where(pick, rng.uniform(lo, hi, b), 1.0)[:, None, None]
    if opts.bone_scale > 0 or opts.body_scale != (1.0, 1.0):
        scale = rng.uniform(*opts.body_scale, size=(b, 1, 1))
        scale = scale * rng.uniform(1 - opts.bone_scale, 1 + opts.bone_scale, size=(b, trans.shape[1], 1))
        trans *= scale
    return rot, trans


def _postures(rot: np.ndarray, trans: np.ndarray, parts: RigParts, lm: dict[str, int],
              opts: PoseAugment, rng: np.random.Generator) -> None:
    """Sitting, crouching, bending, knee lifts, reaching, all fours, kneeling and lunges (one knee
    down, as when climbing onto something): flexions about the body's left axis, arms turned
    towards drawn directions, the whole body pitched forward."""
    b = len(rot)
    pos, glob = forward_kinematics(parts.parents, rot, trans)
    up, forward, left = body_axes(pos[:, parts.landmarks])
    # 0 none, 1 sit, 2 crouch, 3 bend, 4 knee lift, 5 reach, 6 all fours, 7 kneel, 8 lunge
    kind = np.where(rng.random(b) < opts.postures, rng.integers(1, 9, b), 0)
    deg = np.radians
    # Arms out to the side: about the body's forward axis, +a turns a hanging arm towards left.
    # Done in the upright frame, so a later bend or pitch carries the arms along.
    out = rng.random(b) < opts.abduct
    for name, sign in (("l", 1.0), ("r", -1.0)):
        angle = np.where(out, rng.uniform(0, deg(opts.abduct_deg), b), 0.0)
        _world_turn(rot, glob, parts.parents, lm[f"{name}_shoulder"], rodrigues(forward, sign * angle), angle != 0)
    hip = np.zeros((b, 2))
    knee = np.zeros((b, 2))
    bend = np.zeros(b)
    sit, crouch, bends, lift, reach, fours, kneel, lunge = (kind == k for k in range(1, 9))

    def both_sides(mask: np.ndarray, lo: float, hi: float, sd: float) -> np.ndarray:
        """One flexion (degrees drawn in lo..hi) for both sides, each side off by sd: [n,2] radians."""
        n = int(mask.sum())
        return rng.uniform(deg(lo), deg(hi), (n, 1)) + rng.normal(0, deg(sd), (n, 2))

    hip[fours], knee[fours] = both_sides(fours, 70, 100, 8), both_sides(fours, 70, 110, 8)
    if opts.fours_crawl > 0:  # (off, the random stream is the per-frame recipe's)
        crawl = np.flatnonzero(fours & (rng.random(b) < opts.fours_crawl))
        side = rng.integers(2, size=len(crawl))
        hip[crawl, side] = rng.uniform(deg(95), deg(130), len(crawl))
        hip[crawl, 1 - side] = rng.uniform(deg(45), deg(80), len(crawl))
        knee[crawl] = rng.uniform(deg(50), deg(130), (len(crawl), 2))
    hip[sit], knee[sit] = both_sides(sit, 60, 100, 8), both_sides(sit, 60, 110, 8)
    hip[crouch], knee[crouch] = both_sides(crouch, 80, 125, 6), both_sides(crouch, 100, 140, 6)
    bend[crouch] = rng.uniform(deg(10), deg(45), crouch.sum())
    bend[bends] = rng.uniform(deg(15), deg(80), bends.sum())
    side = rng.integers(2, size=lift.sum())
    hip[lift, side] = rng.uniform(deg(30), deg(110), lift.sum())
    knee[lift, side] = rng.uniform(deg(20), deg(120), lift.sum())
    bend[lift] = rng.uniform(0, deg(opts.step_lean_deg), lift.sum()) * (rng.random(lift.sum()) < 0.5)
    # Kneeling: thighs about upright, shins folded back; a lunge has the other foot forward.
    hip[kneel], knee[kneel] = both_sides(kneel, -10, 40, 8), both_sides(kneel, 80, 130, 8)
    side = rng.integers(2, size=lunge.sum())
    rows = np.flatnonzero(lunge)
    hip[rows, side] = rng.uniform(deg(60), deg(110), lunge.sum())
    knee[rows, side] = rng.uniform(deg(60), deg(110), lunge.sum())
    hip[rows, 1 - side] = rng.uniform(deg(-20), deg(20), lunge.sum())
    knee[rows, 1 - side] = rng.uniform(deg(70), deg(120), lunge.sum())
    bend[kneel | lunge] = rng.uniform(deg(-5), deg(40), (kneel | lunge).sum())

    for k, (h, kn) in enumerate(((lm["l_hip"], lm["l_knee"]), (lm["r_hip"], lm["r_knee"]))):
        q_hip = rodrigues(left, -hip[:, k])
        _world_turn(rot, glob, parts.parents, h, q_hip, hip[:, k] != 0)
        # The thigh's new world frame, then fold the shin about the same axis.
        g_thigh = glob.copy()
        g_thigh[:, h] = q_hip @ glob[:, h]
        _world_turn(rot, g_thigh, parts.parents, kn, rodrigues(left, knee[:, k]), knee[:, k] != 0)
    if parts.spine:
        _world_turn(rot, glob, parts.parents, parts.spine[0], rodrigues(left, bend), bend != 0)

    # Arms: reach in a drawn direction (forward half, any height; also half of the bends, as when
    # leaning on something), or straight ahead for all fours, where the whole body is then
    # pitched forward so they point at the floor.
    arms = reach | fours | (bends & (rng.random(b) < 0.5))
    if arms.any():
        pos, glob = forward_kinematics(parts.parents, rot, trans)
        both = fours | (rng.random(b) < 0.5)
        for k, (name, out) in enumerate((("l", 1.0), ("r", -1.0))):
            sh, el = lm[f"{name}_shoulder"], lm[f"{name}_elbow"]
            target = np.where(fours[:, None], forward + rng.normal(0, 0.25, (b, 3)),
                              rng.uniform(0.1, 1.0, (b, 1)) * forward + rng.uniform(-1, 1, (b, 1)) * up
                              + out * rng.uniform(-0.2, 0.8, (b, 1)) * left)
            mask = arms & (both | (rng.random(b) < 0.5))
            q = rotation_between(pos[:, el] - pos[:, sh], target)
            _world_turn(rot, glob, parts.parents, sh, q, mask)
        pitch = rng.uniform(*deg(opts.fours_pitch_deg), b)
        root = int(np.flatnonzero(parts.parents < 0)[0])
        rot[fours, root] = rodrigues(left, pitch)[fours] @ rot[fours, root]


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations [B,3,3] turning directions a [B,3] onto b [B,3]."""
    a, b = unit(a), unit(b)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    fallback = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    axis = np.where(sin[..., None] > 1e-6, axis, fallback)
    return rodrigues(unit(axis), np.arctan2(sin, np.sum(a * b, -1)))


def tilt_bodies(points: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate whole bodies [B,K,3] (pelvis-centred) about a random horizontal axis: lying, leaning."""
    b = len(points)
    pick = rng.random(b) < prob
    if not pick.any():
        return points
    heading = rng.uniform(0, 2 * np.pi, pick.sum())
    axis = np.stack([np.cos(heading), np.zeros_like(heading), np.sin(heading)], 1)
    angle = rng.uniform(np.radians(20), np.radians(95), pick.sum())
    out = points.copy()
    out[pick] = np.einsum("bij,bkj->bki", rodrigues(axis, angle), points[pick])
    return out
