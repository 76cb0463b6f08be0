"""Fingerprint isolation: a held-out point whose features match only far-away training points."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from scadf_lib.diagnostics import ISOLATED_M, fingerprint_gaps, isolation_summary
from scadf_lib.trajectories import Features, Normalizer


def grid_features(switched: tuple[int, ...]) -> tuple[Features, SimpleNamespace]:
    """A 1 m grid, 40 x 40 m, BS at the origin; features are a smooth function of position (the
    direct path), except at ``switched`` points, which carry the fingerprint of a point 30 m away."""
    gx, gy = np.meshgrid(np.arange(40.0), np.arange(40.0))
    xy = np.stack([gx.ravel() + 5, gy.ravel() + 5], 1)
    aod, dist = np.arctan2(xy[:, 1], xy[:, 0]), np.linalg.norm(xy, axis=1)
    numeric = np.stack([np.sin(aod), np.cos(aod), np.sin(aod), np.cos(aod), dist, -20 * np.log10(dist)], 1)
    far = [int(np.argmin(np.linalg.norm(xy - (xy[i] + [30.0, 0.0]), axis=1))) for i in switched]
    numeric[list(switched)] = numeric[far]
    n = len(xy)
    test = np.arange(0, n, 7)
    train = np.setdiff1d(np.arange(n), test)
    feats = Features(numeric[None].astype(np.float32), np.zeros((1, n, 3, 4), np.float32), xy, np.ones((1, n), bool),
                     (2.6,))
    return feats, SimpleNamespace(train_points=train, test_points=test)


def test_a_switched_fingerprint_is_isolated_and_its_neighbours_are_not():
    switched = (7 * 40, 7 * 120)  # two test points (every 7th point is a test point) at x = 5 m
    feats, split = grid_features(switched)
    norm = Normalizer.fit(feats, split.train_points, [0])
    gaps = fingerprint_gaps(feats, split, 0, norm)
    assert len(gaps) == len(split.test_points) and (gaps.position_gap_m == 1.0).all()
    flagged = set(gaps.ue[gaps.isolated])
    assert flagged == set(switched)
    assert (gaps.fingerprint_gap_m[gaps.ue.isin(switched)] > 25).all()
    assert gaps.fingerprint_gap_m[~gaps.isolated].max() < ISOLATED_M
    with pytest.raises(ValueError, match="band_idx"):
        fingerprint_gaps(feats, split, 3, norm)


def test_isolation_summary_splits_the_squared_error():
    gaps = pd.DataFrame({"band_ghz": 2.6, "ue": range(100), "isolated": [True] + [False] * 99,
                         "fingerprint_gap_m": [30.0] + [1.0] * 99})
    errors = pd.DataFrame({"band_ghz": 2.6, "ue": range(100), "sq_error_m2": [900.0] + [1.0] * 99,
                           "held_out": True})
    s = isolation_summary(errors, gaps)
    assert s["points"] == 100 and s["isolated"] == 1
    assert s["isolated_error_share"] == pytest.approx(900 / 999)
    assert s["mse_m2"] == pytest.approx(9.99) and s["mse_without_isolated_m2"] == pytest.approx(1.0)
    assert s["top1pct_error_share"] == pytest.approx(900 / 999) and s["median_sq_error_m2"] == 1.0
    seen = errors.assign(held_out=[False] * 50 + [True] * 50)
    assert isolation_summary(seen, gaps)["points"] == 50
    with pytest.raises(ValueError, match="no fingerprint gap"):
        isolation_summary(errors, gaps.iloc[:50])
