"""Leak-free train/test splits, short trajectories, and model-ready features (paper, II-B/II-C).

Held-out points (``holdout="points"``, the paper's protocol)
    Each cluster's points are shuffled; ``test_fraction`` of them become *held-out points*, the rest
    *training points*. The point split uses its own random stream, so it does not depend on the
    trajectory length L: a noSpace split (L = 1, same clusters) holds out exactly the same points.
Held-out blocks (``holdout="blocks"``, beyond the paper)
    The map is cut into ``block_m`` squares and whole blocks are held out until ``test_fraction`` of
    the points are; training points within the clustering radius r of a held-out point are dropped
    (reported as ``guard_points_unused``), so no held-out position has a training point within r.
    Training and held-out points are then clustered separately with the same r, and every test
    trajectory holds held-out points only. Validation blocks (``val_fraction`` > 0) are further whole
    squares drawn the same way, with their own guard band: model selection then measures what the
    test measures (unsurveyed blocks), not the placing of points one metre from a training point.
    Per-point random splits are known to be optimistic for fingerprinting (a held-out point has seen
    neighbours a metre away); this regime shows by how much.
Trajectories
    Training trajectories are L distinct training points of one cluster; they cover every training
    point at least once (a shuffled pass first, then uniform draws), so "seen" means trained on.
    Test trajectories are L points of one cluster with at least one held-out point; first one
    trajectory around every held-out point (so each held-out point is tested), then uniform draws
    with rejection. Held-out points never enter a training trajectory. Clusters too small for a
    trajectory give none; their points are counted in :attr:`SpatialSplit.report`
    (``points_unused_in_small_clusters``, ``held_out_points_unused``).
Validation points (``val_fraction`` > 0, held-out points only)
    After the held-out points, a second per-cluster fraction of each cluster's points is set aside
    as *validation points* (taken only where the cluster stays at least ``min_cluster_size`` +
    the validation points large, so the clusters and held-out points do not change). They enter no
    training and no test trajectory; validation trajectories are built like the test ones (one around
    every validation point, then uniform draws with at least one), from the cluster's training and
    validation points. Model selection on them measures what the test measures (placing unseen
    points in a seen context), not memorisation of training positions.

Bands
    A sample is one trajectory at one band. The geometric split is the same for every band, so a
    position never leaks from training into testing through another band. Regimes: ``mix`` (all
    bands in training and test) and ``ood`` (train 2.6 + 28 GHz, test 6 GHz).

Features (per band and UE; units before normalisation)
    numeric (6): sin AoD, cos AoD, sin AoA, cos AoA (angles as sin/cos, so -pi and pi coincide),
    distance (m), path gain (dB). CFR (3 x A, 64): real, imaginary, magnitude of the CFR of each
    stored antenna, divided by the UE's RMS CFR amplitude (the level is in the gain feature).
    Targets: (x, y) in metres. Normalisation statistics come from training samples only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from scipy.spatial import cKDTree

from scadf_lib.clustering import Clustering, cluster_fixed_radius, cluster_points
from scadf_lib.schema import complex_cfr, has_cfr

Regime = Literal["mix", "ood"]
Holdout = Literal["points", "blocks"]
OOD_TRAIN_BANDS_GHZ = (2.6, 28.0)
OOD_TEST_BANDS_GHZ = (6.0,)


@dataclass(frozen=True)
class SpatialSplit:
    """Geometric train/test split and trajectories (indices into the UE axis)."""

    clustering: Clustering
    train_points: np.ndarray  # (n,) point indices
    test_points: np.ndarray
    train_traj: np.ndarray  # (M_train, L) point indices
    test_traj: np.ndarray  # (M_test, L)
    unseen: np.ndarray  # (N,) bool: in no training trajectory (every held-out point; unused points too)
    report: dict[str, Any] = field(default_factory=dict)
    holdout: str = "points"
    val_points: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # (v,) validation points
    val_traj: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.int64))  # (M_val, L), held-out style

    @property
    def trajectory_length(self) -> int:
        return int(self.train_traj.shape[1])


def _draw_rows(rng: np.random.Generator, pool: np.ndarray, length: int, count: int) -> np.ndarray:
    """``count`` ordered samples of ``length`` distinct members of ``pool``, drawn at once.

    Each row ranks ``pool`` by independent uniform keys and keeps the ``length`` lowest: a uniformly
    random ordered sample without replacement (one vectorised call per cluster, not per trajectory).
    """
    keys = rng.random((count, len(pool)))
    return pool[np.argsort(keys, axis=1)[:, :length]]


def _cover_rows(rng: np.random.Generator, pool: np.ndarray, length: int) -> np.ndarray:
    """ceil(n / L) rows of ``length`` distinct members of ``pool`` that together hold every member:
    a shuffled pass cut into rows, the last row filled up with other random members."""
    perm = rng.permutation(pool)
    n_rows = -(-len(perm) // length)
    short = n_rows * length - len(perm)
    if short:
        tail = perm[(n_rows - 1) * length:]
        others = np.setdiff1d(pool, tail)
        perm = np.concatenate([perm, rng.choice(others, size=short, replace=False)])
    rows = perm.reshape(n_rows, length)
    return rows


def _draw_train(rng: np.random.Generator, pool: np.ndarray, length: int, count: int) -> np.ndarray:
    """At least ``count`` training rows from ``pool``: rows covering every member, then uniform draws."""
    cover = _cover_rows(rng, pool, length)
    extra = count - len(cover)
    return np.concatenate([cover, _draw_rows(rng, pool, length, extra)]) if extra > 0 else cover


def _draw_test(rng: np.random.Generator, members: np.ndarray, unseen: np.ndarray, length: int,
               count: int, max_rounds: int = 50) -> np.ndarray:
    """Test trajectories of ``length`` cluster members, each with at least one unseen point.

    One row around every unseen member first (so every held-out point is tested), then uniform
    draws with rejection in batches up to ``count`` rows; if ``max_rounds`` batches do not yield
    enough (few unseen points), the rest are built around a random unseen point.
    """
    unseen_members = members[unseen[members]]
    if len(unseen_members) == 0:
        raise ValueError("a test pool without held-out points cannot give test trajectories")

    def around(first: int) -> np.ndarray:
        rest = rng.choice(members[members != first], size=length - 1, replace=False)
        return rng.permutation(np.concatenate([[first], rest]))[None]

    accepted: list[np.ndarray] = [around(p) for p in rng.permutation(unseen_members)]
    missing = count - len(accepted)
    for _ in range(max_rounds):
        if missing <= 0:
            return np.concatenate(accepted)
        cand = _draw_rows(rng, members, length, missing)
        cand = cand[unseen[cand].any(axis=1)]
        accepted.append(cand)
        missing -= len(cand)
    accepted.extend(around(rng.choice(unseen_members)) for _ in range(max(0, missing)))
    return np.concatenate(accepted)


def min_cluster_size_for(trajectory_length: int, test_fraction: float = 0.2) -> int:
    """Smallest cluster whose training part (after removing its test points) holds L points."""
    n = max(int(trajectory_length), 2)
    while n - max(1, int(round(test_fraction * n))) < trajectory_length:
        n += 1
    return n


def _cluster_groups(labels: np.ndarray, num_clusters: int) -> list[np.ndarray]:
    """Point indices of each cluster, in cluster order."""
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=num_clusters))[:-1]
    return np.split(order, bounds)


def _check_split_args(trajectory_length: int, test_fraction: float) -> int:
    L = int(trajectory_length)
    if L < 1:
        raise ValueError(f"trajectory_length must be >= 1, got {trajectory_length}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    return L


def _assemble(clustering: Clustering, pools: list[tuple[np.ndarray, np.ndarray]], train_pts: np.ndarray,
              test_pts: np.ndarray, L: int, train_per_point: float, test_per_point: float,
              rng: np.random.Generator, report: dict[str, Any], holdout: str) -> SpatialSplit:
    """Draw the trajectories of ``pools`` = [(training pool, test pool)] and build the split.

    A training pool gives rows covering it (:func:`_draw_train`); its test pool (held-out points,
    with or without seen neighbours) gives rows around every held-out member (:func:`_draw_test`).
    """
    n = len(clustering.labels)
    train_traj = [_draw_train(rng, tr, L, max(1, int(round(train_per_point * len(tr))))) for tr, _ in pools
                  if len(tr) >= L]
    if not train_traj:
        raise ValueError(f"no cluster has enough points for a trajectory of length {L}; use a larger "
                         f"clustering radius, a shorter trajectory or a denser dataset")
    train_traj_arr = np.concatenate(train_traj)
    unseen = np.ones(n, dtype=bool)
    unseen[np.unique(train_traj_arr)] = False
    test_traj = []
    for _, te in pools:
        n_held = int(unseen[te].sum())
        if len(te) >= L and n_held:
            test_traj.append(_draw_test(rng, te, unseen, L, max(1, int(round(test_per_point * n_held)))))
    if not test_traj:
        raise ValueError(f"no held-out point can be placed in a test trajectory of length {L}; use a larger "
                         f"clustering radius, larger held-out blocks or a shorter trajectory")
    test_traj_arr = np.concatenate(test_traj)
    tested = np.unique(test_traj_arr)
    in_test = np.zeros(n, dtype=bool)
    in_test[tested] = True
    slots = unseen[test_traj_arr]
    report.update({
        "points": n, "clusters": clustering.num_clusters, "radius_m": clustering.radius_m, "holdout": holdout,
        "train_points": int(len(train_pts)), "test_points": int(len(test_pts)),
        "train_points_in_trajectories": int((~unseen[train_pts]).sum()),
        "train_trajectories": len(train_traj_arr), "test_trajectories": len(test_traj_arr),
        "held_out_points_tested": int(in_test[test_pts].sum()),
        "held_out_points_unused": int((~in_test[test_pts]).sum()),
        "unseen_points_in_test": int(unseen[tested].sum()),
        "held_out_share_of_test_slots": float(slots.mean()),
        "trajectory_length": L,
    })
    return SpatialSplit(clustering, train_pts, test_pts, train_traj_arr, test_traj_arr, unseen, report, holdout)


def make_split(clustering: Clustering, trajectory_length: int = 5, test_fraction: float = 0.2,
               train_per_point: float = 4.0, test_per_point: float = 4.0, min_cluster_size: int | None = None,
               seed: int = 0, val_fraction: float = 0.0) -> SpatialSplit:
    """Hold out points per cluster and draw trajectories (module docstring, "Held-out points").

    ``train_per_point``: training trajectories per training point of a cluster (rounded; at least
    enough to cover every training point); ``test_per_point``: test trajectories per held-out point
    (at least one around each), and validation trajectories per validation point. ``val_fraction``:
    share of each cluster's points set aside as validation points (module docstring, "Validation
    points"; 0: none). ``min_cluster_size`` defaults to :func:`min_cluster_size_for`
    (L, test_fraction); give an L = 1 (noSpace) split the value of the L = 5 split so both use the
    same clusters and, through the separate point stream, the same held-out and validation points.
    """
    L = _check_split_args(trajectory_length, test_fraction)
    if not 0 <= val_fraction < 1 - test_fraction:
        raise ValueError(f"val_fraction must be in [0, 1 - test_fraction), got {val_fraction}")
    min_size = max(min_cluster_size or 0, min_cluster_size_for(L, test_fraction))
    point_rng = np.random.default_rng([seed, 0])  # which points are held out: independent of L
    traj_rng = np.random.default_rng([seed, 1, L])
    pools, train_pts, test_pts, val_pools = [], [], [], []
    small_clusters = small_points = 0
    for members in _cluster_groups(clustering.labels, clustering.num_clusters):
        members = point_rng.permutation(members)
        n_test = max(1, int(round(test_fraction * len(members))))
        train, test = members[n_test:], members[:n_test]
        if len(members) < min_size or len(train) < L:
            small_clusters += 1
            small_points += len(members)
            continue
        n_val = max(1, int(round(val_fraction * len(members)))) if val_fraction > 0 else 0
        if n_val and len(members) >= min_size + n_val:
            val, train = train[:n_val], train[n_val:]
            val_pools.append((val, np.concatenate([train, val])))
            members = np.concatenate([test, train])  # the test pool: no validation point
        pools.append((train, members))
        train_pts.append(train)
        test_pts.append(test)
    if not pools:
        raise ValueError(f"no cluster has enough points for a trajectory of length {L} (all "
                         f"{clustering.num_clusters} clusters are smaller than {min_size}); use a larger "
                         f"clustering radius, a shorter trajectory or a denser dataset")
    report = {"clusters_too_small": small_clusters, "points_unused_in_small_clusters": small_points, "seed": seed}
    split = _assemble(clustering, pools, np.concatenate(train_pts), np.concatenate(test_pts), L, train_per_point,
                      test_per_point, traj_rng, report, "points")
    if not val_pools:
        split.report.update({"val_points": 0, "val_trajectories": 0})
        return split
    val_rng = np.random.default_rng([seed, 5, L])
    is_val = np.zeros(len(clustering.labels), dtype=bool)
    val_pts = np.concatenate([v for v, _ in val_pools])
    is_val[val_pts] = True
    val_traj = np.concatenate([_draw_test(val_rng, pool, is_val, L, max(1, int(round(test_per_point * len(v)))))
                               for v, pool in val_pools if len(pool) >= L])
    split.report.update({"val_points": int(len(val_pts)), "val_trajectories": int(len(val_traj))})
    return replace(split, val_points=np.sort(val_pts), val_traj=val_traj)


def held_out_blocks(xy: np.ndarray, block_m: float, test_fraction: float, rng: np.random.Generator,
                    exclude: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: points in whole ``block_m`` x ``block_m`` squares (metres) drawn at random until at
    least ``test_fraction`` of the points are held out; squares holding an ``exclude`` point (N,) bool
    are never drawn."""
    if not block_m > 0:
        raise ValueError(f"block size must be positive (metres), got {block_m}")
    cell = np.floor((xy - xy.min(axis=0)) / block_m).astype(np.int64)
    _, block = np.unique(cell, axis=0, return_inverse=True)
    block = block.ravel()
    counts = np.bincount(block)
    order = rng.permutation(len(counts))
    if exclude is not None:
        order = order[~np.isin(order, block[exclude])]
    take = order[:int(np.searchsorted(np.cumsum(counts[order]), test_fraction * len(xy))) + 1]
    return np.isin(block, take)


def make_block_split(clustering: Clustering, xy: np.ndarray, trajectory_length: int = 5, block_m: float = 20.0,
                     test_fraction: float = 0.2, train_per_point: float = 4.0, test_per_point: float = 4.0,
                     seed: int = 0, val_fraction: float = 0.0) -> SpatialSplit:
    """Hold out whole map blocks (module docstring, "Held-out blocks"); ``clustering`` gives the
    radius r (metres) and is kept for display. ``val_fraction`` > 0 holds out further whole blocks as
    validation blocks (about that share of the points; their own guard band, never trained on), so
    model selection measures what the test measures: placing points in an unsurveyed block."""
    L = _check_split_args(trajectory_length, test_fraction)
    if not 0 <= val_fraction < 1 - test_fraction:
        raise ValueError(f"val_fraction must be in [0, 1 - test_fraction), got {val_fraction}")
    r = clustering.radius_m
    rng = np.random.default_rng([seed, 2])
    held = held_out_blocks(xy, block_m, test_fraction, rng)
    is_val = (held_out_blocks(xy, block_m, val_fraction, np.random.default_rng([seed, 6]), exclude=held)
              if val_fraction > 0 else np.zeros(len(xy), dtype=bool))
    test_idx = np.flatnonzero(held)
    near = np.zeros(len(xy), dtype=bool)
    if (held | is_val).any():
        dist, _ = cKDTree(xy[held | is_val]).query(xy, distance_upper_bound=r)
        near = np.isfinite(dist) & ~held & ~is_val  # within r of a held-out or validation point: the guard band
    train_idx = np.flatnonzero(~held & ~near & ~is_val)
    pools: list[tuple[np.ndarray, np.ndarray]] = []
    small_points = 0
    for idx, role in ((train_idx, "train"), (test_idx, "test")):
        if len(idx) < 2:
            continue
        for pool in _radius_pools(xy, idx, r):
            if len(pool) < L:
                small_points += len(pool)
                continue
            pools.append((pool, np.empty(0, np.int64)) if role == "train" else (np.empty(0, np.int64), pool))
    train_pts = np.concatenate([tr for tr, _ in pools])
    cell = np.floor((xy - xy.min(axis=0)) / block_m).astype(np.int64)
    report = {"block_m": float(block_m), "guard_points_unused": int(near.sum()),
              "test_blocks": len(np.unique(cell[held], axis=0)), "val_blocks": len(np.unique(cell[is_val], axis=0)),
              "points_unused_in_small_clusters": small_points, "clusters_too_small": 0, "seed": seed}
    split = _assemble(clustering, pools, train_pts, test_idx, L, train_per_point, test_per_point,
                      np.random.default_rng([seed, 3, L]), report, "blocks")
    trained = xy[np.unique(split.train_traj)]
    split.report["min_distance_test_to_train_m"] = float(cKDTree(trained).query(xy[np.unique(split.test_traj)])[0].min())
    if not is_val.any():
        split.report.update({"val_points": 0, "val_trajectories": 0})
        return split
    val_rng = np.random.default_rng([seed, 5, L])
    val_pools = [p for p in _radius_pools(xy, np.flatnonzero(is_val), r) if len(p) >= L]
    if not val_pools:
        raise ValueError(f"no validation block holds a trajectory of length {L}; use larger blocks or a shorter "
                         f"trajectory")
    val_traj = np.concatenate([_draw_test(val_rng, p, is_val, L, max(1, int(round(test_per_point * len(p)))))
                               for p in val_pools])
    val_pts = np.unique(val_traj)
    split.report.update({"val_points": int(len(val_pts)), "val_trajectories": int(len(val_traj))})
    return replace(split, val_points=val_pts, val_traj=val_traj)


def _radius_pools(xy: np.ndarray, idx: np.ndarray, r: float) -> list[np.ndarray]:
    """The points ``idx`` (indices into ``xy``, m) clustered on their own with radius ``r``: index arrays."""
    c = cluster_fixed_radius(xy[idx], r)
    return [idx[members] for members in _cluster_groups(c.labels, c.num_clusters)]


def spatial_split(xy: np.ndarray, radius_m: float | None = None, min_median_size: int = 8,
                  trajectory_length: int = 5, seed: int = 0, holdout: Holdout = "points", block_m: float = 20.0,
                  **kwargs: Any) -> SpatialSplit:
    """Cluster ``xy`` (fixed or automatic radius, metres) and split it by held-out ``points`` (kwargs
    go to :func:`make_split`) or held-out ``blocks`` of ``block_m`` metres (:func:`make_block_split`)."""
    clustering = cluster_points(xy, radius_m, min_median_size)
    if holdout == "points":
        return make_split(clustering, trajectory_length, seed=seed, **kwargs)
    if holdout == "blocks":
        kwargs.pop("min_cluster_size", None)
        return make_block_split(clustering, xy, trajectory_length, block_m, seed=seed, **kwargs)
    raise ValueError(f"unknown holdout {holdout!r}; choose 'points' (the paper's) or 'blocks'")


def regime_bands(regime: Regime, bands: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(training bands, test bands) in GHz of a regime, checked against the dataset's bands."""
    if regime == "mix":
        return tuple(bands), tuple(bands)
    if regime == "ood":
        missing = [b for b in OOD_TRAIN_BANDS_GHZ + OOD_TEST_BANDS_GHZ if b not in bands]
        if missing:
            raise ValueError(f"the OOD regime needs bands {OOD_TRAIN_BANDS_GHZ + OOD_TEST_BANDS_GHZ} GHz; "
                             f"the dataset lacks {missing}")
        return OOD_TRAIN_BANDS_GHZ, OOD_TEST_BANDS_GHZ
    raise ValueError(f"unknown regime {regime!r}; choose 'mix' or 'ood'")


# ----------------------------------------------------------------------------- features

@dataclass(frozen=True)
class Features:
    """Per-(band, UE) model inputs before normalisation.

    ``numeric`` (B, N, 6); ``cfr`` (B, N, 3A, K); ``xy`` (N, 2) metres; ``los`` (B, N); ``bands`` GHz.
    """

    numeric: np.ndarray
    cfr: np.ndarray
    xy: np.ndarray
    los: np.ndarray
    bands: tuple[float, ...]
    inputs: str = "oracle"  # "measured": numeric in scadf_lib.measured_inputs.MEASURED_NUMERIC_NAMES' order

    NUMERIC_NAMES = ("sin_aod", "cos_aod", "sin_aoa", "cos_aoa", "distance_m", "path_gain_db")

    @property
    def numeric_names(self) -> tuple[str, ...]:
        """The names of the numeric features, in order (oracle or measured inputs)."""
        if self.inputs == "oracle":
            return self.NUMERIC_NAMES
        from scadf_lib.measured_inputs import MEASURED_NUMERIC_NAMES
        return MEASURED_NUMERIC_NAMES


def input_features(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs of every (band, UE) of a fingerprint Dataset, float32, read from the
    fingerprints only (never the positions): ``numeric`` (B, N, 6) in the order of
    :attr:`Features.NUMERIC_NAMES` and ``cfr`` (B, N, 3A, K): real, imaginary and magnitude parts of
    the CFR divided by its rms over antennas and subcarriers (no channels, 3A = 0, for a dataset
    without a CFR: :func:`scadf_lib.schema.has_cfr`)."""
    aod, aoa = ds["aod"].values.astype(np.float64), ds["aoa"].values.astype(np.float64)
    numeric = np.stack([np.sin(aod), np.cos(aod), np.sin(aoa), np.cos(aoa),
                        ds["distance"].values, ds["path_gain"].values], axis=-1).astype(np.float32)
    if has_cfr(ds):
        h = complex_cfr(ds).values  # (B, N, A, K)
        rms = np.sqrt((np.abs(h) ** 2).mean(axis=(2, 3), keepdims=True))
        h = h / np.where(rms > 0, rms, 1.0)
        cfr = np.concatenate([h.real, h.imag, np.abs(h)], axis=2).astype(np.float32)  # (B, N, 3A, K)
    else:  # numeric features only: no CFR channels (the models then tokenise the numeric features alone)
        cfr = np.zeros((*numeric.shape[:2], 0, int(ds.attrs.get("num_subcarriers", 0))), np.float32)
    for name, arr in (("numeric", numeric), ("cfr", cfr)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} features hold NaN/inf; the dataset is damaged: regenerate it")
    return numeric, cfr


def model_inputs(ds: xr.Dataset, inputs: str = "oracle", measurement: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(numeric, cfr) of every (band, UE): the oracle's (:func:`input_features`) or, for
    ``inputs="measured"``, one measurement's (:func:`scadf_lib.measured_inputs.measured_input_features`)."""
    if inputs == "oracle":
        return input_features(ds)
    from scadf_lib.measure import check_inputs, require_paths
    check_inputs(inputs)
    require_paths(ds)
    from scadf_lib.measured_inputs import measured_input_features
    return measured_input_features(ds, measurement)


def build_features(ds: xr.Dataset, inputs: str = "oracle", measurement: dict | None = None) -> Features:
    """Turn a validated fingerprint Dataset into :class:`Features` (float32), oracle or measured inputs."""
    numeric, cfr = model_inputs(ds, inputs, measurement)
    xy = np.stack([ds["x"].values, ds["y"].values], axis=1).astype(np.float64)
    return Features(numeric, cfr, xy, ds["los"].values.astype(bool), tuple(float(b) for b in ds["band"].values),
                    inputs)


@dataclass(frozen=True)
class Normalizer:
    """Training-set statistics. Positions use one isotropic scale, so normalised MSE is proportional
    to MSE in m^2. Stored in checkpoints (:meth:`state`)."""

    numeric_mean: np.ndarray
    numeric_std: np.ndarray
    cfr_mean: np.ndarray  # per channel
    cfr_std: np.ndarray
    xy_mean: np.ndarray  # (2,) metres
    xy_scale: float  # metres

    @classmethod
    def fit(cls, feats: Features, train_points: np.ndarray, train_band_idx: list[int]) -> "Normalizer":
        num = feats.numeric[train_band_idx][:, train_points].reshape(-1, feats.numeric.shape[-1])
        cfr = feats.cfr[train_band_idx][:, train_points]  # (b, n, C, K)
        xy = feats.xy[train_points]
        return cls(num.mean(0), num.std(0) + 1e-6, cfr.mean(axis=(0, 1, 3)), cfr.std(axis=(0, 1, 3)) + 1e-6,
                   xy.mean(0), float(xy.std(0).mean() + 1e-6))

    def state(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Normalizer":
        return cls(**{k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v) for k, v in state.items()})

    def to_metres(self, xy_norm: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.xy_mean, dtype=xy_norm.dtype, device=xy_norm.device)
        return xy_norm * self.xy_scale + mean


class TrajectoryDataset(Dataset):
    """Samples = (trajectory, band). Built lazily from index arrays; features are gathered per batch.

    An item is a dict of tensors: ``numeric`` (L, 6), ``cfr`` (L, C, K), ``target`` (L, 2) and
    ``centroid`` (2,) normalised; ``points`` (L,) UE indices; ``band`` (index into Features.bands).
    :meth:`to` moves the (normalised) feature tensors to a device, where :meth:`batch` then gathers
    batches without host work. An optional ``transform`` (:meth:`with_transform`) corrupts or
    augments each gathered batch there (:mod:`scadf_lib.degradation`).
    """

    def __init__(self, feats: Features, trajectories: np.ndarray, band_idx: list[int], norm: Normalizer):
        self.transform: Any = None  # callable on a batch dict (e.g. scadf_lib.degradation.Corrupt): with_transform
        self.trajectories = np.ascontiguousarray(trajectories, dtype=np.int64)
        self.band_idx = list(band_idx)
        self.numeric = torch.from_numpy((feats.numeric - norm.numeric_mean) / norm.numeric_std).float()
        self.cfr = torch.from_numpy((feats.cfr - norm.cfr_mean[None, None, :, None])
                                    / norm.cfr_std[None, None, :, None]).float()
        self.xy = torch.from_numpy((feats.xy - norm.xy_mean) / norm.xy_scale).float()
        self._traj = torch.from_numpy(self.trajectories)
        self._bands = torch.as_tensor(self.band_idx, dtype=torch.int64)

    @property
    def device(self) -> torch.device:
        return self.cfr.device

    def to(self, device: torch.device | str) -> "TrajectoryDataset":
        """The same samples with every tensor on ``device`` (``self`` if they are there already)."""
        if torch.device(device) == self.device:
            return self
        moved = copy.copy(self)
        for name in ("numeric", "cfr", "xy", "_traj", "_bands"):
            setattr(moved, name, getattr(self, name).to(device))
        if self.transform is not None:
            moved.transform = copy.deepcopy(self.transform).to(device)
        return moved

    def with_transform(self, transform: Any) -> "TrajectoryDataset":
        """The same samples, with ``transform`` applied to every batch (it needs ``.to(device)``)."""
        out = copy.copy(self)
        out.transform = transform.to(self.device) if transform is not None else None
        return out

    def subset(self, rows: np.ndarray) -> "TrajectoryDataset":
        """The samples of the trajectories ``rows`` (indices into :attr:`trajectories`), all bands."""
        out = copy.copy(self)
        out.trajectories = self.trajectories[rows]
        out._traj = self._traj[torch.as_tensor(rows, dtype=torch.int64, device=self.device)]
        return out

    def __len__(self) -> int:
        return len(self.trajectories) * len(self.band_idx)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batch(np.array([i]), squeeze=True)

    def batch(self, idx: np.ndarray | torch.Tensor, squeeze: bool = False) -> dict[str, torch.Tensor]:
        """Gather many samples at once (the training loop's path), on the dataset's device."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=self.device)
        traj = self._traj[idx // len(self.band_idx)]  # (b, L)
        band = self._bands[idx % len(self.band_idx)]  # (b,)
        target = self.xy[traj]
        out = {"numeric": self.numeric[band[:, None], traj], "cfr": self.cfr[band[:, None], traj],
               "target": target, "centroid": target.mean(1), "points": traj, "band": band}
        if self.transform is not None:
            out = self.transform(out)
        return {k: v[0] for k, v in out.items()} if squeeze else out
