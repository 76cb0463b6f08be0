"""Classical anchors, scored by the same code as the models: how good is a learned number?

Every anchor places each point of each test trajectory from that point's own fingerprint (no spatial
context), on the split a model of the same scene, regime and seed is trained and tested on
(:func:`scadf_lib.rundata.prepare_data`); its :class:`~scadf_lib.evaluation.Predictions` go through
:func:`~scadf_lib.evaluation.metrics_table`, so every group, band and column of ``all_metrics.csv``
means the same for an anchor as for a model. The centroid "head" of an anchor is the mean of its points.

``geometric``   closed form from the dominant path: with the BS at (x_b, y_b, z_b) (the dataset's
                ``bs_position_m``), the UE height z (the dataset's ``z``), the path length d (m) and the
                global azimuth of departure phi (rad),

                    r = sqrt(max(d^2 - (z_b - z)^2, 0)),   p = (x_b + r cos phi, y_b + r sin phi).

                Exact on LOS points (the dominant path is the direct one), a known-bad guess on NLOS
                points (it places the UE at the end of an unfolded reflected path). No training. It
                reads the true UE height, which the models do not see (a 1.5 m-above-ground receiver).
                On measured inputs it reads what the ULA estimates instead: the first path's length d
                (timing offset included) and its direction cosine s = cos(el) sin(phi) along the array
                axis (the scene's y axis). With cos(el) = r / d, sin(phi) = s d / r, and the array cannot
                tell the two sides of its axis apart (x - x_b = +-r cos phi): the side is the one whose
                candidate lies nearer the fingerprint's guess (``wknn_cfr`` on the same measured
                inputs, which falls back to the numeric features where the CFR does not help on
                validation; the survey alone cannot tell: both mirror images of a street point usually
                lie on a street), and a UE without a detected first path is placed where ``wknn_cfr``
                puts it (:func:`measured_geometric_positions`).
``geometric_true_side``
                measured inputs only: the same with the true side of the array (an oracle bit), a bound
                that separates what the estimates cost from what the array's mirror ambiguity costs.
``wknn``        weighted k-nearest-neighbour fingerprinting (scikit-learn ``KNeighborsRegressor``,
                weights = 1 / feature distance) on the six numeric features (sin/cos AoD, sin/cos AoA,
                distance m, path gain dB), per band; the reference set is the run's training points.
                k and the feature scaling are chosen on the split's validation points (never the test).
``wknn_cfr``    the same with the CFR appended: the first principal components of the CFR magnitude
                (rms-normalised, 64 subcarriers), whitened and weighted by a factor also chosen on the
                validation points (0 = the CFR is not used).
``hybrid``      what a practitioner would deploy: ``geometric`` on the points the data flag LOS (in
                that band), ``wknn`` on the others. It reads the data's LOS flag, which a receiver would
                have to detect (an oracle flag, like the oracle inputs it is scored on).

A test band that is no training band (OOD: 6 GHz) is looked up in the pooled training bands' references.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scadf_lib.checkpoints import RUN_CONFIG, RUN_METRICS, RUN_POINT_ERRORS
from scadf_lib.evaluation import Predictions, metrics_table, per_point_errors
from scadf_lib.fileio import write_csv_atomic, write_json_atomic

from scadf_lib.presets import ANCHORS  # noqa: F401  (re-exported: the anchors every preset scores)

#: Anchors of measured inputs only (the measured-input study scores them beside :data:`ANCHORS`).
MEASURED_ANCHORS = ("geometric_true_side",)

#: Search grid of the WKNN anchors (chosen on validation points).
WKNN_K = (1, 2, 3, 5, 8, 13, 21)
#: Feature scalings: z-score every feature; z-score, angles x 3 (direction matters more than gain);
#: z-score without the path gain (band-dependent: the OOD band's gain differs).
WKNN_SCALINGS = ("standard", "angles_x3", "no_gain")
WKNN_CFR_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
CFR_COMPONENTS = 16


def geometric_positions(distance_m: np.ndarray, aod_rad: np.ndarray, ue_z_m: np.ndarray,
                        bs_position_m: np.ndarray) -> np.ndarray:
    """Closed-form (x, y) in metres of UEs from the dominant path's length ``distance_m`` and global
    azimuth of departure ``aod_rad`` (same shape), the UE heights ``ue_z_m`` and the BS position
    (x, y, z) m (module docstring). Shape (..., 2)."""
    bs = np.asarray(bs_position_m, dtype=np.float64)
    if bs.shape != (3,):
        raise ValueError(f"bs_position_m must be (x, y, z) in metres, got shape {bs.shape}")
    r = np.sqrt(np.clip(np.asarray(distance_m, np.float64) ** 2 - (bs[2] - np.asarray(ue_z_m, np.float64)) ** 2,
                        0.0, None))
    return np.stack([bs[0] + r * np.cos(aod_rad), bs[1] + r * np.sin(aod_rad)], axis=-1)


def broadside_positions(distance_m: np.ndarray, direction_cosine: np.ndarray, ue_z_m: np.ndarray,
                        bs_position_m: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Closed-form (x, y) m from what a ULA along the y axis measures: the path length ``distance_m``
    and the direction cosine s = cos(el) sin(phi) along the array (same shape), the UE heights and
    the BS position (x, y, z) m; ``side`` (+1 or -1, broadcast) picks x - x_b >= 0 or < 0, which the
    array cannot tell (module docstring). r = sqrt(d^2 - (z_b - z)^2), sin phi = clip(s d / r),
    p = (x_b + side r cos phi, y_b + r sin phi). Shape (..., 2)."""
    bs = np.asarray(bs_position_m, dtype=np.float64)
    d = np.asarray(distance_m, np.float64)
    r = np.sqrt(np.clip(d ** 2 - (bs[2] - np.asarray(ue_z_m, np.float64)) ** 2, 0.0, None))
    sin_phi = np.clip(np.asarray(direction_cosine, np.float64) * d / np.maximum(r, 1e-9), -1.0, 1.0)
    return np.stack([bs[0] + np.sign(side) * r * np.sqrt(1.0 - sin_phi ** 2), bs[1] + r * sin_phi], axis=-1)


def measured_geometric_positions(data: Any, bs_position_m: np.ndarray, ue_z_m: np.ndarray,
                                 true_side: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """(B, N, 2) m: every band's UEs placed by the closed form on measured inputs (module docstring,
    ``geometric``; ``true_side``: ``geometric_true_side``), and its facts (the share of band-UE pairs
    without a first path; with the fingerprint's side, the share where it picked the true side, and
    WKNN's setting)."""
    feats = data.feats
    names = feats.numeric_names
    s = feats.numeric[..., names.index("sin_aod")]
    d = feats.numeric[..., names.index("distance_m")]
    missing = feats.numeric[..., names.index("first_path_missing")] > 0.5
    plus, minus = (broadside_positions(d, s, ue_z_m[None, :], bs_position_m, side) for side in (1.0, -1.0))
    truth = feats.xy[:, 0] >= np.asarray(bs_position_m, np.float64)[0]  # (N,) the UE is on the +x side
    guess, settings = wknn_positions(data, use_cfr=True)  # the fingerprint's position: the side, and the fallback
    if true_side:
        pick_plus = np.broadcast_to(truth, missing.shape)
    else:
        pick_plus = ((plus - guess) ** 2).sum(-1) <= ((minus - guess) ** 2).sum(-1)
    xy = np.where(pick_plus[..., None], plus, minus)
    xy = np.where(missing[..., None], guess, xy)
    facts = {"side": "true" if true_side else "fingerprint", "first_path_missing_share": float(missing.mean()),
             **settings}
    if not true_side:
        facts["side_right_share"] = float((pick_plus == truth)[~missing].mean()) if (~missing).any() else float("nan")
    return xy, facts


def scale_numeric(numeric: np.ndarray, mean: np.ndarray, std: np.ndarray, scaling: str,
                  names: tuple[str, ...] = ("sin_aod", "cos_aod", "sin_aoa", "cos_aoa", "distance_m", "path_gain_db"),
                  ) -> np.ndarray:
    """Numeric features (..., F) named ``names`` (:attr:`Features.numeric_names`: oracle or measured
    inputs), z-scored with the training statistics, then re-weighted by ``scaling`` (one of
    :data:`WKNN_SCALINGS`): the angle features x 3, or without the path gain."""
    z = (numeric - mean) / std
    if scaling == "standard":
        return z
    if scaling == "angles_x3":
        return z * np.array([3 if n.startswith(("sin_", "cos_")) else 1 for n in names], dtype=z.dtype)
    if scaling == "no_gain":
        return z[..., [i for i, n in enumerate(names) if n != "path_gain_db"]]
    raise ValueError(f"unknown scaling {scaling!r}; choose one of {WKNN_SCALINGS}")


@dataclass(frozen=True)
class PointSet:
    """Fingerprints of some points in some bands, flattened: ``x`` (n, f) features, ``xy`` (n, 2) m."""

    x: np.ndarray
    xy: np.ndarray


class WKNN:
    """Per-band weighted k-NN regressor (m): ``fit`` on the training points' fingerprints of each
    training band, ``predict`` a band's points from that band's references (pooled training bands
    for a band not trained on)."""

    def __init__(self, k: int):
        self.k = k
        self.models: dict[Any, Any] = {}

    def fit(self, per_band: dict[float, PointSet]) -> "WKNN":
        from sklearn.neighbors import KNeighborsRegressor
        pooled = PointSet(np.concatenate([s.x for s in per_band.values()]),
                          np.concatenate([s.xy for s in per_band.values()]))
        for key, s in [*per_band.items(), ("pooled", pooled)]:
            self.models[key] = KNeighborsRegressor(n_neighbors=min(self.k, len(s.x)), weights="distance").fit(s.x, s.xy)
        return self

    def predict(self, band: float, x: np.ndarray) -> np.ndarray:
        model = self.models.get(band, self.models["pooled"])
        return model.predict(x)


def _cfr_components(cfr_abs: np.ndarray, fit_rows: np.ndarray, n: int = CFR_COMPONENTS) -> np.ndarray:
    """Whitened first ``n`` principal components of CFR magnitudes (rows, K), fitted on ``fit_rows``."""
    ref = cfr_abs[fit_rows]
    mean = ref.mean(0)
    _, s, vt = np.linalg.svd(ref - mean, full_matrices=False)
    n = min(n, len(s))
    scale = s[:n] / np.sqrt(max(len(ref) - 1, 1)) + 1e-9
    return ((cfr_abs - mean) @ vt[:n].T) / scale / np.sqrt(n)


def cfr_components(data: Any) -> np.ndarray:
    """(B, N, c) whitened principal components of every band's and UE's CFR magnitude, fitted on the
    training points in the training bands (:func:`_cfr_components`)."""
    feats = data.feats
    b, n = feats.numeric.shape[:2]
    if feats.cfr.shape[2] == 0:  # a dataset without a CFR: no components (WKNN + CFR is WKNN)
        return np.zeros((b, n, 0))
    if feats.inputs == "oracle":  # real, imaginary and magnitude channels: the magnitude
        antennas = feats.cfr.shape[2] // 3
        mag = feats.cfr[:, :, 2 * antennas:, :].reshape(b * n, -1).astype(np.float64)
    else:  # measured: the angle-delay profile's magnitude, every channel
        mag = feats.cfr.reshape(b * n, -1).astype(np.float64)
    tr_idx = [feats.bands.index(x) for x in data.train_bands]
    rows = (np.asarray(tr_idx)[:, None] * n + data.split.train_points[None, :]).ravel()
    return _cfr_components(mag, rows).reshape(b, n, -1)


def anchor_features(data: Any, scaling: str, cfr_weight: float, comps: np.ndarray | None = None) -> np.ndarray:
    """(B, N, f) features of every band and UE of a run's data (:class:`PreparedData`): scaled numeric
    features (training statistics of :attr:`PreparedData.norm`), plus ``cfr_weight`` x the CFR's
    whitened principal components (``comps`` from :func:`cfr_components`, computed here if None)
    when ``cfr_weight`` > 0."""
    feats, norm = data.feats, data.norm
    num = scale_numeric(feats.numeric.astype(np.float64), norm.numeric_mean, norm.numeric_std, scaling,
                        feats.numeric_names)
    if cfr_weight <= 0:
        return num
    comps = cfr_components(data) if comps is None else comps
    return np.concatenate([num, cfr_weight * comps], axis=-1)


def _point_sets(x: np.ndarray, xy: np.ndarray, bands: tuple[float, ...], band_idx: list[int],
                points: np.ndarray) -> dict[float, PointSet]:
    return {bands[j]: PointSet(x[j, points], xy[points]) for j in band_idx}


def _mse_on(model: WKNN, x: np.ndarray, xy: np.ndarray, bands: tuple[float, ...], band_idx: list[int],
            points: np.ndarray) -> float:
    errs = [((model.predict(bands[j], x[j, points]) - xy[points]) ** 2).sum(-1) for j in band_idx]
    return float(np.concatenate(errs).mean())


def select_wknn(data: Any, use_cfr: bool) -> tuple[dict[str, Any], pd.DataFrame]:
    """Grid search of k, scaling (and the CFR weight) on the validation points: fit on the training
    points, score the validation points in the training bands (squared Euclidean error, m^2). Returns
    the best setting and the whole grid. Raises where the split has no validation points."""
    split, feats = data.split, data.feats
    if len(split.val_points) == 0:
        raise ValueError("the WKNN anchors choose k and the scaling on validation points, and this split has none: "
                         "use holdout='points' with val_points_fraction > 0")
    tr_idx = [feats.bands.index(b) for b in data.train_bands]
    rows = []
    comps = cfr_components(data) if use_cfr else None  # the same for every scaling and weight: once
    for scaling, w in itertools.product(WKNN_SCALINGS, WKNN_CFR_WEIGHTS if use_cfr else (0.0,)):
        x = anchor_features(data, scaling, w, comps)
        refs = _point_sets(x, feats.xy, feats.bands, tr_idx, split.train_points)
        for k in WKNN_K:
            model = WKNN(k).fit(refs)
            rows.append({"scaling": scaling, "cfr_weight": w, "k": k,
                         "val_mse_m2": _mse_on(model, x, feats.xy, feats.bands, tr_idx, split.val_points)})
    grid = pd.DataFrame(rows)
    best = grid.loc[grid.val_mse_m2.idxmin()].to_dict()
    return {"scaling": best["scaling"], "cfr_weight": float(best["cfr_weight"]), "k": int(best["k"]),
            "val_mse_m2": float(best["val_mse_m2"])}, grid


def point_predictions(data: Any, xy_of_band_ue: np.ndarray) -> Predictions:
    """:class:`Predictions` of the run's test set from per-(band, UE) positions ``xy_of_band_ue``
    (B, N, 2) m: sample i is test trajectory i // b in test band i % b, as in :class:`TrajectoryDataset`;
    the centroid prediction is the mean of the trajectory's points."""
    feats, split = data.feats, data.split
    te_idx = [feats.bands.index(b) for b in data.test_bands]
    traj = split.test_traj
    ue = np.repeat(traj, len(te_idx), axis=0)  # (M * b, L)
    band_idx = np.tile(np.asarray(te_idx), len(traj))
    points = xy_of_band_ue[band_idx[:, None], ue]
    truth = feats.xy[ue]
    return Predictions(points, truth, points.mean(axis=1), truth.mean(axis=1), ue, np.asarray(feats.bands)[band_idx],
                       feats.los[band_idx[:, None], ue], split.unseen[ue])


def wknn_positions(data: Any, use_cfr: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """(B, N, 2) positions (m) of every test band's UEs placed by WKNN (``use_cfr``: with the CFR's
    components), its setting chosen on the validation points (:func:`select_wknn`), and that setting."""
    feats = data.feats
    best, grid = select_wknn(data, use_cfr=use_cfr)
    x = anchor_features(data, best["scaling"], best["cfr_weight"])
    tr_idx = [feats.bands.index(b) for b in data.train_bands]
    model = WKNN(best["k"]).fit(_point_sets(x, feats.xy, feats.bands, tr_idx, data.split.train_points))
    xy = np.zeros((len(feats.bands), len(feats.xy), 2))
    for j, band in enumerate(feats.bands):
        if band in data.test_bands:
            xy[j] = model.predict(band, x[j])
    return xy, {**best, "grid_size": len(grid)}


def predict_anchor(method: str, data: Any, bs_position_m: np.ndarray, ue_z_m: np.ndarray,
                   aod_rad: np.ndarray, distance_m: np.ndarray) -> tuple[Predictions, dict[str, Any]]:
    """Test-set predictions of one anchor (:data:`ANCHORS`) and its chosen settings. ``aod_rad`` and
    ``distance_m`` (B, N) are the dataset's raw dominant-path scalars, ``ue_z_m`` (N,) the UE heights."""
    feats = data.feats
    if method not in ANCHORS + MEASURED_ANCHORS:
        raise ValueError(f"unknown anchor {method!r}; choose one of {ANCHORS + MEASURED_ANCHORS}")
    if (method == "hybrid" and feats.inputs != "oracle") or (method in MEASURED_ANCHORS and feats.inputs == "oracle"):
        raise ValueError(f"the {method} anchor is scored on {'oracle' if method == 'hybrid' else 'measured'} inputs "
                         "only (hybrid reads the data's LOS flag; the true side is a question of measured inputs)")
    if method.startswith("geometric") and feats.inputs != "oracle":
        xy, facts = measured_geometric_positions(data, bs_position_m, ue_z_m, true_side=method in MEASURED_ANCHORS)
        return point_predictions(data, xy), facts
    if method in ("geometric", "hybrid"):
        geo = geometric_positions(distance_m, aod_rad, ue_z_m[None, :], bs_position_m)
        if method == "geometric":
            return point_predictions(data, geo), {}
        wknn, settings = wknn_positions(data, use_cfr=False)
        los = np.asarray(feats.los, dtype=bool)[..., None]
        return point_predictions(data, np.where(los, geo, wknn)), settings
    xy, settings = wknn_positions(data, use_cfr=method == "wknn_cfr")
    return point_predictions(data, xy), settings


def run_anchor(method: str, cfg: Any, out_dir: Path) -> pd.DataFrame:
    """Score anchor ``method`` on the split of ``cfg`` (a :class:`TrainConfig`; its model is ignored)
    into ``out_dir``: ``metrics.csv`` and ``point_errors.csv`` (as a trained run's), ``anchor.json``
    (chosen settings, seconds) and ``config.json`` (split facts). Returns the metrics."""
    import time

    from scadf_lib.schema import load_fingerprints
    from scadf_lib.rundata import prepare_data
    t0 = time.perf_counter()
    ds = load_fingerprints(cfg.data_path)
    data = prepare_data(cfg)
    pred, settings = predict_anchor(method, data, np.asarray(ds.attrs["bs_position_m"], np.float64),
                                    ds["z"].values.astype(np.float64), ds["aod"].values.astype(np.float64),
                                    ds["distance"].values.astype(np.float64))
    metrics = metrics_table(pred).assign(model=method, regime=cfg.regime, train_band=cfg.band, seed=cfg.seed,
                                         scene=Path(cfg.data_path).stem, trajectory_length=cfg.trajectory_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(metrics, out_dir / RUN_METRICS)
    write_csv_atomic(per_point_errors(pred).round({"sq_error_m2": 4}), out_dir / RUN_POINT_ERRORS)
    write_json_atomic(out_dir / RUN_CONFIG, {"train_config": json.loads(json.dumps(cfg.to_dict())),
                                                "split": data.split.report, "parameters": 0, "anchor": method,
                                                "train_bands_ghz": data.train_bands, "test_bands_ghz": data.test_bands})
    write_json_atomic(out_dir / "anchor.json", {"method": method, **settings, "wall_s": time.perf_counter() - t0,
                                                "train_samples": len(data.train), "test_samples": len(data.test)})
    return metrics
