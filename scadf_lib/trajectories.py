"""Leak-free train/test splits, short trajectories, and model-ready features (paper, II-B/II-C).

Split (per cluster, seeded)
    A cluster's points are shuffled; ``test_fraction`` of them become *test points*, the rest
    *training points*. Training trajectories are L points drawn uniformly without replacement from
    the cluster's training points. Test trajectories are L points drawn from the whole cluster and
    accepted only if they hold at least one *unseen* point (a point in no training trajectory);
    test points never enter a training trajectory. Clusters with fewer than ``min_cluster_size``
    points (default: the smallest cluster whose training part holds L points; 6 for L = 5 and 20 %
    test points) give no trajectory: their points are unused and counted in
    :attr:`SpatialSplit.report`.

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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from scadf_lib.clustering import Clustering, cluster_points
from scadf_lib.schema import complex_cfr

Regime = Literal["mix", "ood"]
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
    unseen: np.ndarray  # (N,) bool: in no training trajectory
    report: dict[str, Any] = field(default_factory=dict)

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


def _draw_test(rng: np.random.Generator, members: np.ndarray, unseen: np.ndarray, length: int,
               count: int, max_rounds: int = 50) -> np.ndarray:
    """Test trajectories of ``length`` cluster members, each with at least one unseen point.

    Rejection sampling in batches (uniform over accepted trajectories); if ``max_rounds`` batches
    do not yield enough (few unseen points), the rest are built around a random unseen point.
    """
    accepted: list[np.ndarray] = []
    missing = count
    for _ in range(max_rounds):
        cand = _draw_rows(rng, members, length, missing)
        cand = cand[unseen[cand].any(axis=1)]
        accepted.append(cand)
        missing -= len(cand)
        if missing == 0:
            return np.concatenate(accepted)
    unseen_members = members[unseen[members]]
    for _ in range(missing):
        first = rng.choice(unseen_members)
        rest = rng.choice(members[members != first], size=length - 1, replace=False)
        accepted.append(rng.permutation(np.concatenate([[first], rest]))[None])
    return np.concatenate(accepted)


def min_cluster_size_for(trajectory_length: int, test_fraction: float = 0.2) -> int:
    """Smallest cluster whose training part (after removing its test points) holds L points."""
    n = max(int(trajectory_length), 2)
    while n - max(1, int(round(test_fraction * n))) < trajectory_length:
        n += 1
    return n


def make_split(clustering: Clustering, trajectory_length: int = 5, test_fraction: float = 0.2,
               train_per_point: float = 4.0, test_per_point: float = 4.0, min_cluster_size: int | None = None,
               seed: int = 0) -> SpatialSplit:
    """Split each cluster into train/test points and draw trajectories (see module docstring).

    ``train_per_point``: training trajectories per training point of a cluster (rounded, >= 1);
    ``test_per_point``: test trajectories per test point. ``min_cluster_size`` defaults to
    :func:`min_cluster_size_for` (L, test_fraction); give an L = 1 (noSpace) split the value of the
    L = 5 split so both use the same clusters.
    """
    L = int(trajectory_length)
    if L < 1:
        raise ValueError(f"trajectory_length must be >= 1, got {trajectory_length}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    min_size = max(min_cluster_size or 0, min_cluster_size_for(L, test_fraction))
    rng = np.random.default_rng(seed)
    n = len(clustering.labels)
    order = np.argsort(clustering.labels, kind="stable")
    bounds = np.cumsum(np.bincount(clustering.labels, minlength=clustering.num_clusters))[:-1]
    train_pts, test_pts, train_traj, per_cluster = [], [], [], []
    small_clusters = small_points = 0
    for members in np.split(order, bounds):
        members = rng.permutation(members)
        n_test = max(1, int(round(test_fraction * len(members))))
        train, test = members[n_test:], members[:n_test]
        if len(members) < min_size or len(train) < L:
            small_clusters += 1
            small_points += len(members)
            continue
        train_pts.append(train)
        test_pts.append(test)
        train_traj.append(_draw_rows(rng, train, L, max(1, int(round(train_per_point * len(train))))))
        per_cluster.append((members, test))
    if not train_traj:
        raise ValueError(f"no cluster has enough points for a trajectory of length {L} (all "
                         f"{clustering.num_clusters} clusters are smaller than {min_size}); use a larger "
                         f"clustering radius, a shorter trajectory or a denser dataset")
    train_traj_arr = np.concatenate(train_traj)
    unseen = np.ones(n, dtype=bool)
    unseen[np.unique(train_traj_arr)] = False
    test_traj = [_draw_test(rng, m, unseen, L, max(1, int(round(test_per_point * len(t))))) for m, t in per_cluster]
    test_traj_arr = np.concatenate(test_traj)
    report = {
        "points": n,
        "clusters": clustering.num_clusters,
        "radius_m": clustering.radius_m,
        "clusters_too_small": small_clusters,
        "points_unused_in_small_clusters": small_points,
        "train_points": int(sum(len(t) for t in train_pts)),
        "test_points": int(sum(len(t) for t in test_pts)),
        "train_trajectories": len(train_traj_arr),
        "test_trajectories": len(test_traj_arr),
        "unseen_points_in_test": int(unseen[np.unique(test_traj_arr)].sum()),
        "trajectory_length": L,
        "seed": seed,
    }
    return SpatialSplit(clustering, np.concatenate(train_pts), np.concatenate(test_pts), train_traj_arr,
                        test_traj_arr, unseen, report)


def spatial_split(xy: np.ndarray, radius_m: float | None = None, min_median_size: int = 8,
                  trajectory_length: int = 5, seed: int = 0, **kwargs: Any) -> SpatialSplit:
    """Cluster ``xy`` (fixed or automatic radius, metres) and split it; kwargs go to :func:`make_split`."""
    return make_split(cluster_points(xy, radius_m, min_median_size), trajectory_length, seed=seed, **kwargs)


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

    NUMERIC_NAMES = ("sin_aod", "cos_aod", "sin_aoa", "cos_aoa", "distance_m", "path_gain_db")


def build_features(ds: xr.Dataset) -> Features:
    """Turn a validated fingerprint Dataset into :class:`Features` (float32)."""
    aod, aoa = ds["aod"].values.astype(np.float64), ds["aoa"].values.astype(np.float64)
    numeric = np.stack([np.sin(aod), np.cos(aod), np.sin(aoa), np.cos(aoa),
                        ds["distance"].values, ds["path_gain"].values], axis=-1).astype(np.float32)
    h = complex_cfr(ds).values  # (B, N, A, K)
    rms = np.sqrt((np.abs(h) ** 2).mean(axis=(2, 3), keepdims=True))
    h = h / np.where(rms > 0, rms, 1.0)
    cfr = np.concatenate([h.real, h.imag, np.abs(h)], axis=2).astype(np.float32)  # (B, N, 3A, K)
    for name, arr in (("numeric", numeric), ("cfr", cfr)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} features hold NaN/inf; the dataset is damaged: regenerate it")
    xy = np.stack([ds["x"].values, ds["y"].values], axis=1).astype(np.float64)
    return Features(numeric, cfr, xy, ds["los"].values.astype(bool), tuple(float(b) for b in ds["band"].values))


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
    batches without host work.
    """

    def __init__(self, feats: Features, trajectories: np.ndarray, band_idx: list[int], norm: Normalizer):
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
        return moved

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
        return {k: v[0] for k, v in out.items()} if squeeze else out
