"""A run's data in one place: the fingerprints of its scene turned into features, its split, the
bands it trains and tests on, the validation rows and the normalisation fitted on its training
points, as torch Datasets (:class:`PreparedData`). Training, the anchors, the diagnostics and the
routing inspector all build a run's data here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scadf_lib.config import TrainConfig, run_bands, split_of
from scadf_lib.degradation import Augment, Corrupt, Degradation
from scadf_lib.schema import data_version, load_fingerprints
from scadf_lib.trajectories import Features, Normalizer, SpatialSplit, TrajectoryDataset, build_features


@dataclass
class PreparedData:
    """A run's data. ``val`` selects the best checkpoint: held-out-style validation trajectories
    (:attr:`SpatialSplit.val_traj`) where the split has validation points, else ``val_seen``'s rows;
    ``val_seen``: training trajectories set aside (every point still trained on), monitored only."""

    feats: Features
    split: SpatialSplit
    norm: Normalizer
    train: TrajectoryDataset
    val: TrajectoryDataset
    test: TrajectoryDataset
    train_bands: tuple[float, ...]
    test_bands: tuple[float, ...]
    val_seen: TrajectoryDataset | None = None
    data_version: int = 1  # of the fingerprint file (scadf_lib.schema.data_version), kept in checkpoints

    @property
    def bands_ghz(self) -> tuple[float, ...]:
        """Every band (GHz) the run trains or is tested on, ascending (kept in checkpoints)."""
        return tuple(sorted(set(self.train_bands) | set(self.test_bands)))


def validation_rows(train_traj: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of about ``fraction`` of the training trajectories to validate on (model selection),
    taken only where every point of the row stays in some remaining training row: the model still
    trains on every training point (a "seen" point is one it was trained on)."""
    rng = np.random.default_rng([seed, 4])
    want = max(1, int(round(fraction * len(train_traj))))
    counts = np.bincount(train_traj.ravel(), minlength=int(train_traj.max()) + 1)
    taken: list[int] = []
    for row in rng.permutation(len(train_traj)):
        pts = train_traj[row]
        if (counts[pts] > 1).all():
            counts[pts] -= 1
            taken.append(int(row))
            if len(taken) == want:
                break
    if not taken:  # every point is in one row only (train_per_point <= 1 with L = 1): validate on a few
        taken = rng.permutation(len(train_traj))[:want].tolist()
    return np.sort(np.asarray(taken, dtype=np.int64))


def prepare_data(cfg: TrainConfig) -> PreparedData:
    """Load, validate, cluster, split, fit normalisation on training samples, build datasets."""
    ds = load_fingerprints(cfg.data_path)
    feats = build_features(ds, cfg.inputs, cfg.measurement)
    train_bands, test_bands = run_bands(cfg, feats.bands)
    split = split_of(cfg, feats.xy)
    tr_idx = [feats.bands.index(b) for b in train_bands]
    te_idx = [feats.bands.index(b) for b in test_bands]
    norm = Normalizer.fit(feats, split.train_points, tr_idx)
    val_rows = validation_rows(split.train_traj, cfg.val_fraction, cfg.seed)
    is_val = np.zeros(len(split.train_traj), dtype=bool)
    is_val[val_rows] = True
    train = TrajectoryDataset(feats, split.train_traj[~is_val], tr_idx, norm)
    val_seen = TrajectoryDataset(feats, split.train_traj[is_val], tr_idx, norm)
    val = TrajectoryDataset(feats, split.val_traj, tr_idx, norm) if len(split.val_traj) else val_seen
    test = TrajectoryDataset(feats, split.test_traj, te_idx, norm)
    if cfg.augment:  # training samples corrupted at random; validation and test clean, flags appended (all 0)
        antennas = feats.cfr.shape[2] // 3
        clean = Corrupt(Degradation("clean"), norm, antennas, flags=True)
        train = train.with_transform(Augment(norm, antennas, flags=True))
        val, val_seen, test = (d.with_transform(clean) for d in (val, val_seen, test))
    return PreparedData(feats, split, norm, train, val, test, train_bands, test_bands, val_seen, data_version(ds))
