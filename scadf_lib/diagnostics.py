"""Why a point is placed badly: is its fingerprint like any training point's near it?

A fingerprint method (a network or WKNN) maps features to positions it has seen. A held-out point
whose dominant path differs from its neighbours' (two paths of near-equal gain, the strongest one
switching within a metre) has numeric features that no training point near it shares; the training
point with the most similar fingerprint can then be tens of metres away, and any fingerprint method
places the point there. :func:`fingerprint_gaps` measures that per test point, with no model;
:func:`isolation_summary` says how much of a run's squared error such points carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from scadf_lib.trajectories import Features, Normalizer, SpatialSplit

if TYPE_CHECKING:
    from scadf_lib.config import TrainConfig

#: A test point is *isolated* when the training point with the nearest numeric fingerprint lies more
#: than this far from it (m): ten times the 1 m grid, where neighbours' fingerprints differ little.
ISOLATED_M = 10.0


def fingerprint_gaps(feats: Features, split: SpatialSplit, band_idx: int, norm: Normalizer) -> pd.DataFrame:
    """One row per test point of band ``band_idx``: ``position_gap_m``, the distance to the nearest
    training position; ``fingerprint_gap_m``, the distance to the training point whose numeric
    features (sin/cos AoD and AoA, distance, path gain, standardised with the training statistics
    ``norm``) are nearest in that band; ``isolated`` (``fingerprint_gap_m`` > :data:`ISOLATED_M`)."""
    if not 0 <= band_idx < len(feats.bands):
        raise ValueError(f"band_idx {band_idx} is not one of the {len(feats.bands)} bands {feats.bands}")
    z = (feats.numeric[band_idx] - norm.numeric_mean) / norm.numeric_std  # (N, F)
    train, test = np.asarray(split.train_points), np.asarray(split.test_points)
    _, by_feature = cKDTree(z[train]).query(z[test])
    position_gap, _ = cKDTree(feats.xy[train]).query(feats.xy[test])
    feature_gap = np.linalg.norm(feats.xy[train[by_feature]] - feats.xy[test], axis=1)
    return pd.DataFrame({"band_ghz": feats.bands[band_idx], "ue": test, "position_gap_m": position_gap,
                         "fingerprint_gap_m": feature_gap, "isolated": feature_gap > ISOLATED_M,
                         "los": feats.los[band_idx, test]})


def isolation_summary(point_errors: pd.DataFrame, gaps: pd.DataFrame, held_out_only: bool = True) -> dict[str, float]:
    """How much of a run's squared error the isolated points carry: ``point_errors`` is a run's
    point_errors.csv (mean squared error per band and UE, m²), ``gaps`` :func:`fingerprint_gaps` of
    the same split for its bands. Returns the points scored, the isolated ones, their share of the
    summed squared error, the MSE with and without them (m²) and the share the top 1 % of points carry."""
    pe = point_errors[point_errors.held_out] if held_out_only else point_errors
    both = pe.merge(gaps[["band_ghz", "ue", "isolated", "fingerprint_gap_m"]], on=["band_ghz", "ue"], how="inner")
    if len(both) != len(pe):
        raise ValueError(f"{len(pe) - len(both)} scored points have no fingerprint gap: compute the gaps on the "
                         f"run's own split and bands (fingerprint_gaps)")
    err = both.sq_error_m2.to_numpy()
    iso = both.isolated.to_numpy()
    top = np.sort(err)[::-1][:max(1, int(round(0.01 * len(err))))]
    total = err.sum()
    return {"points": int(len(err)), "isolated": int(iso.sum()),
            "isolated_error_share": float(err[iso].sum() / total) if total > 0 else float("nan"),
            "mse_m2": float(err.mean()),
            "mse_without_isolated_m2": float(err[~iso].mean()) if (~iso).any() else float("nan"),
            "top1pct_error_share": float(top.sum() / total) if total > 0 else float("nan"),
            "median_sq_error_m2": float(np.median(err))}


def run_isolation(cfg: TrainConfig, point_errors: pd.DataFrame) -> dict[str, float]:
    """:func:`isolation_summary` of a trained run (its TrainConfig ``cfg`` and point_errors.csv),
    on the split, bands and normalisation the run was trained and tested with."""
    from scadf_lib.schema import load_fingerprints
    from scadf_lib.trajectories import build_features
    from scadf_lib.config import run_bands, split_of
    feats = build_features(load_fingerprints(cfg.data_path), cfg.inputs, cfg.measurement)
    train_bands, test_bands = run_bands(cfg, feats.bands)
    split = split_of(cfg, feats.xy)
    norm = Normalizer.fit(feats, split.train_points, [feats.bands.index(b) for b in train_bands])
    gaps = pd.concat([fingerprint_gaps(feats, split, feats.bands.index(b), norm) for b in test_bands])
    return isolation_summary(point_errors, gaps)
