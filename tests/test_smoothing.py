"""One-Euro filter: less jitter at rest, little lag in motion, missing joints stay missing."""
from __future__ import annotations

import numpy as np

from posecast.smoothing import OneEuroFilter, OneEuroOptions, TrackSmoother

FPS = 30.0


def run(f: OneEuroFilter, xs: np.ndarray, valid: np.ndarray | None = None, t0: float = 0.0) -> np.ndarray:
    """xs [T, J, D] sampled at FPS -> filtered [T, J, D]."""
    valid = np.ones(xs.shape[:2], bool) if valid is None else valid
    return np.stack([f(x, v, t0 + i / FPS) for i, (x, v) in enumerate(zip(xs, valid))])


def test_jitter_at_rest_is_removed():
    rng = np.random.default_rng(0)
    still = np.full((300, 17, 3), 500.0) + rng.normal(0, 10, (300, 17, 3))  # 10 mm of jitter
    out = run(OneEuroFilter(), still)
    assert out[30:].std(axis=0).mean() < 0.4 * still[30:].std(axis=0).mean()


def test_fast_motion_follows_with_little_lag():
    # A joint moving at 2 m/s: a fixed 1 Hz low-pass would trail by ~300 mm; One-Euro raises its cutoff.
    t = np.arange(90) / FPS
    moving = np.zeros((90, 1, 3))
    moving[:, 0, 0] = 2000.0 * t
    out = run(OneEuroFilter(), moving)
    lag = moving[30:, 0, 0] - out[30:, 0, 0]
    assert np.all(lag >= 0) and lag.max() < 40.0, lag.max()
    plain_low_pass = run(OneEuroFilter(OneEuroOptions(beta=0.0)), moving)
    assert (moving[30:, 0, 0] - plain_low_pass[30:, 0, 0]).max() > 5 * lag.max()


def test_missing_joints_pass_through_and_restart_fresh():
    xs = np.zeros((60, 2, 2))
    xs[:, :, 0] = 100.0
    xs[40:, 1, 0] = 300.0  # joint 1 reappears somewhere else after being missing
    valid = np.ones((60, 2), bool)
    valid[20:40, 1] = False
    xs[20:40, 1] = 0.0  # what a detector reports for a missing joint
    out = run(OneEuroFilter(), xs, valid)
    np.testing.assert_allclose(out[20:40, 1], 0.0)  # not smoothed towards anything: still "missing"
    np.testing.assert_allclose(out[40, 1], [300.0, 0.0])  # no pull from where it was before
    np.testing.assert_allclose(out[:, 0, 0], 100.0, atol=1e-6)  # the other joint is unaffected


def test_irregular_frame_times_and_clock_reset():
    f = OneEuroFilter()
    x = np.ones((17, 3))
    f(x, np.ones(17, bool), 1.0)
    out = f(x * 2, np.ones(17, bool), 1.5)  # a long gap (frames dropped): mostly follows the new value
    assert np.all(out > 1.5)
    restarted = f(x * 5, np.ones(17, bool), 0.2)  # time went backwards (new stream): start over
    np.testing.assert_allclose(restarted, 5.0)


def test_track_smoother_keeps_one_filter_per_person_and_forgets_the_gone():
    s = TrackSmoother(max_age=1.0)
    valid = np.ones(17, bool)
    a, b = np.zeros((17, 3)), np.full((17, 3), 1000.0)
    s(1, a, valid, 0.0)
    s(2, b, valid, 0.0)
    out_a = s(1, a + 10, valid, 1 / FPS)
    out_b = s(2, b + 10, valid, 1 / FPS)
    assert np.all(out_a < 10) and np.all((out_b > 1000) & (out_b < 1010))  # each smoothed against its own past
    s(1, a, valid, 2.0)
    s.forget_stale(2.0)
    assert len(s) == 1
