"""Radius clustering and leak-free splits: the rules of scadf_lib.clustering / trajectories."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scadf_lib.clustering import choose_radius, cluster_fixed_radius, median_cluster_size
from scadf_lib.trajectories import make_split, min_cluster_size_for, spatial_split


def grid(n_side=30, spacing=1.0, jitter=0.2, seed=0):
    rng = np.random.default_rng(seed)
    a = np.arange(n_side) * spacing
    gx, gy = np.meshgrid(a, a)
    return np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-jitter, jitter, (n_side * n_side, 2))


positions = st.integers(min_value=0, max_value=10_000).map(lambda s: np.random.default_rng(s).uniform(0, 50, (
    np.random.default_rng(s).integers(20, 300), 2)))


@settings(max_examples=40, deadline=None)
@given(xy=positions, radius=st.floats(min_value=0.5, max_value=10.0))
def test_clusters_are_disjoint_cover_all_and_compact(xy, radius):
    c = cluster_fixed_radius(xy, radius)
    assert (c.labels >= 0).all() and c.labels.max() == c.num_clusters - 1  # every point in exactly one cluster
    assert c.sizes.sum() == len(xy)
    # compactness: every member within r of its anchor, so diameter <= 2r
    d = np.linalg.norm(xy - xy[c.anchors[c.labels]], axis=1)
    assert (d <= radius + 1e-9).all()
    assert (c.labels[c.anchors] == np.arange(c.num_clusters)).all()


def test_no_chaining_along_a_line():
    """Points 1 m apart on a 200 m line: single linkage would make one cluster; ours stays short."""
    xy = np.column_stack([np.arange(200.0), np.zeros(200)])
    c = cluster_fixed_radius(xy, 2.0)
    assert c.num_clusters >= 200 / 5
    for k in range(c.num_clusters):
        m = xy[c.members(k)]
        assert np.ptp(m[:, 0]) <= 4.0


@pytest.mark.parametrize("threshold", [3, 5, 8])
def test_radius_rule_is_the_smallest_reaching_the_threshold(threshold):
    xy = grid()
    c = choose_radius(xy, min_median_size=threshold, tol_m=0.1)
    assert median_cluster_size(c) >= threshold
    smaller = cluster_fixed_radius(xy, c.radius_m - 0.1)
    assert median_cluster_size(smaller) < threshold
    assert c.search, "the search history is recorded for the notebook"


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 2)), "no positions"),
    (np.array([[1.0, 2.0]]), "at least 2 points"),
    (np.ones((10, 2)), "identical"),
    (np.array([[0.0, 0.0], [np.nan, 1.0], [2.0, 2.0]]), "NaN"),
    (np.zeros((5, 3)), "shape"),
])
def test_degenerate_input_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        choose_radius(bad)


def test_unreachable_threshold_is_refused():
    with pytest.raises(ValueError, match="impossible"):
        choose_radius(grid(3), min_median_size=100)


def _check_split(split, L):
    train_set = set(split.train_points.tolist())
    test_set = set(split.test_points.tolist())
    assert not train_set & test_set
    assert split.train_traj.shape[1] == L and split.test_traj.shape[1] == L
    # no test point leaks into any training trajectory
    assert not set(split.train_traj.ravel().tolist()) & test_set
    assert set(split.train_traj.ravel().tolist()) <= train_set
    # every test trajectory has a point unseen in training
    assert split.unseen[split.test_traj].any(axis=1).all()
    # every training point is trained on; every held-out point is tested or reported unused
    assert not split.unseen[split.train_points].any()
    tested = np.isin(split.test_points, split.test_traj)
    assert split.report["held_out_points_unused"] == int((~tested).sum())
    # trajectories stay inside one cluster, points are distinct
    lab = split.clustering.labels
    for traj in (split.train_traj, split.test_traj):
        assert (lab[traj] == lab[traj[:, :1]]).all()
        assert all(len(set(t)) == L for t in traj.tolist())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), L=st.integers(1, 6), test_fraction=st.floats(0.1, 0.5))
def test_split_invariants(seed, L, test_fraction):
    xy = grid(n_side=15, seed=seed)
    split = spatial_split(xy, radius_m=2.5, trajectory_length=L, seed=seed, test_fraction=test_fraction)
    _check_split(split, L)
    rep = split.report
    assert rep["train_points"] + rep["test_points"] + rep["points_unused_in_small_clusters"] == len(xy)


def test_split_is_reproducible_with_a_seed():
    xy = grid()
    a, b = spatial_split(xy, seed=3), spatial_split(xy, seed=3)
    np.testing.assert_array_equal(a.train_traj, b.train_traj)
    np.testing.assert_array_equal(a.test_traj, b.test_traj)
    c = spatial_split(xy, seed=4)
    assert not np.array_equal(a.train_traj, c.train_traj)


def test_small_clusters_are_reported_and_unused():
    xy = np.concatenate([grid(10), np.array([[500.0, 500.0], [501.0, 500.0]])])
    split = spatial_split(xy, radius_m=2.0, trajectory_length=5)
    assert split.report["clusters_too_small"] >= 1
    assert split.report["points_unused_in_small_clusters"] >= 2
    used = set(split.train_traj.ravel()) | set(split.test_traj.ravel())
    assert len(xy) - 1 not in used and len(xy) - 2 not in used


def test_nospace_split_uses_the_same_clusters():
    xy = grid()
    c = cluster_fixed_radius(xy, 2.0)
    full = make_split(c, trajectory_length=5, seed=1)
    iso = make_split(c, trajectory_length=1, min_cluster_size=min_cluster_size_for(5), seed=1)
    _check_split(iso, 1)
    assert full.report["clusters_too_small"] == iso.report["clusters_too_small"]
    # the same held-out points, so the two can be compared point by point
    np.testing.assert_array_equal(np.sort(full.test_points), np.sort(iso.test_points))
    np.testing.assert_array_equal(np.sort(full.train_points), np.sort(iso.train_points))


@pytest.mark.parametrize("L", [1, 3, 5])
def test_every_held_out_point_is_tested_and_every_training_point_trained(L):
    """A low trajectory count (less than one per point) still covers every point once."""
    xy = grid(20)
    split = spatial_split(xy, radius_m=2.5, trajectory_length=L, seed=2, train_per_point=0.1, test_per_point=0.1)
    _check_split(split, L)
    assert split.report["held_out_points_unused"] == 0
    assert split.report["held_out_points_tested"] == len(split.test_points)
    assert split.report["train_points_in_trajectories"] == len(split.train_points)
    assert np.isin(split.train_points, split.train_traj).all()
    assert np.isin(split.test_points, split.test_traj).all()


def test_block_holdout_leaves_no_training_point_within_the_radius():
    xy = grid(40, seed=1)
    r = 2.5
    split = spatial_split(xy, radius_m=r, trajectory_length=5, seed=0, holdout="blocks", block_m=10.0,
                          train_per_point=1.0, test_per_point=1.0)
    assert split.holdout == "blocks"
    trained = xy[np.unique(split.train_traj)]
    tested = xy[np.unique(split.test_traj)]
    from scipy.spatial import cKDTree
    assert cKDTree(trained).query(tested)[0].min() > r
    assert split.report["min_distance_test_to_train_m"] > r
    assert split.unseen[split.test_traj].all()  # test trajectories hold held-out points only
    assert not set(split.train_traj.ravel()) & set(split.test_points.tolist())
    assert split.report["guard_points_unused"] > 0
    # whole blocks: every 10 m square is entirely held out or entirely not
    cell = np.floor((xy - xy.min(0)) / 10.0).astype(int)
    held = np.zeros(len(xy), bool)
    held[split.test_points] = True
    for c in np.unique(cell, axis=0):
        inside = (cell == c).all(axis=1)
        assert held[inside].all() or not held[inside].any()
    assert 0.2 <= held.mean() < 0.35
    n = len(xy)
    rep = split.report
    assert rep["held_out_points_tested"] + rep["held_out_points_unused"] == rep["test_points"]
    assert rep["train_points"] + rep["test_points"] + rep["guard_points_unused"] <= n


def test_unknown_holdout_is_refused():
    with pytest.raises(ValueError, match="unknown holdout 'rows'"):
        spatial_split(grid(), radius_m=2.5, holdout="rows")


def test_no_cluster_big_enough_is_a_clear_error():
    xy = grid(6, spacing=10.0)
    with pytest.raises(ValueError, match="no cluster has enough points"):
        spatial_split(xy, radius_m=1.0, trajectory_length=5)


def test_trajectory_sampler_is_uniform_over_members_and_positions():
    """Each member is equally likely at each trajectory position, and no row repeats a member."""
    from scadf_lib.trajectories import _draw_rows

    pool = np.arange(10, 16)
    rows = _draw_rows(np.random.default_rng(0), pool, 3, 60_000)
    assert rows.shape == (60_000, 3)
    assert (np.sort(rows, axis=1)[:, 1:] != np.sort(rows, axis=1)[:, :-1]).all()
    for pos in range(3):
        freq = np.bincount(rows[:, pos] - 10, minlength=6) / len(rows)
        np.testing.assert_allclose(freq, 1 / 6, atol=0.01)


def test_test_trajectories_with_few_unseen_points_fall_back_to_building_around_one():
    """One unseen point among 20 members: batched rejection gives up after ``max_rounds`` and the
    remaining trajectories are built around the unseen point; every row still holds it once."""
    from scadf_lib.trajectories import _draw_test

    members = np.arange(100, 120)
    unseen = np.zeros(200, dtype=bool)
    unseen[107] = True
    rows = _draw_test(np.random.default_rng(0), members, unseen, length=3, count=40, max_rounds=1)
    assert rows.shape == (40, 3)
    assert rows[0].tolist().count(107) == 1  # the row around each unseen point comes first
    assert ((rows == 107).sum(axis=1) == 1).all()
    assert np.isin(rows, members).all()
    assert (np.sort(rows, axis=1)[:, 1:] != np.sort(rows, axis=1)[:, :-1]).all()
