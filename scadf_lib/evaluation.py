"""Localisation metrics in metres (paper's metric: MSE = mean squared Euclidean error, m^2).

Every trajectory point of every test sample is one prediction. A test trajectory mixes *held-out*
points (in no training trajectory: the split's test points) with *seen* ones (training points, the
spatial context), so every group comes three ways: all points as in the paper (``overall``, ``LOS``,
``NLOS``), held-out points only (``held-out``, ``held-out-LOS``, ``held-out-NLOS``: the headline)
and seen points only (``seen``, ``seen-LOS``, ``seen-NLOS``), each over all bands and per band; the
centroid of each trajectory is scored twice: the model's centroid head (group ``centroid``) and the
mean of its predicted points (group ``centroid-of-points``). ``offset_slope`` tells whether a model
localises each point or only the trajectory's centre (:func:`offset_slope`).

Offset decomposition (every point group): with c the true centroid of a point's trajectory, p̄ the
mean of its predicted points, o = p - c and ô = p̂ - p̄ the true and predicted offsets,

    |p̂ - p|^2 = |p̄ - c|^2 + |ô - o|^2 + 2 (p̄ - c) . (ô - o),

and over whole trajectories the cross term sums to zero (both offset sets sum to zero), so
``mse_m2`` = ``centroid_term_m2`` + ``offset_term_m2`` exactly for ``overall`` and per band; for
subsets of points (held-out, LOS, ...) the cross term is ``mse_m2`` minus the two. ``offset_floor_m2``
= mean |o|^2 is the centroid floor of the group (every point placed at its true centroid), so
``offset_term_m2 / offset_floor_m2`` is 1 - R^2 of the offsets: 1 for a model that places only the
trajectory, 0 for one that resolves every point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from scadf_lib.trajectories import Features, Normalizer, TrajectoryDataset

GROUPS = ("overall", "LOS", "NLOS", "held-out", "held-out-LOS", "held-out-NLOS", "seen", "seen-LOS", "seen-NLOS")


@dataclass(frozen=True)
class Predictions:
    """Predictions of one test set in metres. ``points`` and ``truth`` (M, L, 2); ``centroid`` and
    ``centroid_truth`` (M, 2); ``ue`` (M, L) point indices; ``band`` (M,) GHz; ``los`` and ``held_out`` (M, L)."""

    points: np.ndarray
    truth: np.ndarray
    centroid: np.ndarray
    centroid_truth: np.ndarray
    ue: np.ndarray
    band: np.ndarray
    los: np.ndarray
    held_out: np.ndarray

    def point_table(self) -> pd.DataFrame:
        """One row per predicted point: band (GHz), ue, los, held_out, error_m, sq_error_m2, x/y true and
        predicted, and the offsets (m) of the true and the predicted point from the centroid of the
        true and of the predicted trajectory (``dx_true`` ... ``dy_pred``)."""
        m, l, _ = self.points.shape
        err = np.linalg.norm(self.points - self.truth, axis=-1)
        off_true = self.truth - self.truth.mean(axis=1, keepdims=True)
        off_pred = self.points - self.points.mean(axis=1, keepdims=True)
        centre_err = np.broadcast_to(self.points.mean(axis=1, keepdims=True) - self.truth.mean(axis=1, keepdims=True),
                                     self.points.shape)
        return pd.DataFrame({
            "band_ghz": np.repeat(self.band, l), "ue": self.ue.ravel(), "position": np.tile(np.arange(l), m),
            "los": self.los.ravel(), "held_out": self.held_out.ravel(), "error_m": err.ravel(),
            "sq_error_m2": (err ** 2).ravel(), "x_true": self.truth[..., 0].ravel(),
            "y_true": self.truth[..., 1].ravel(), "x_pred": self.points[..., 0].ravel(),
            "y_pred": self.points[..., 1].ravel(), "dx_true": off_true[..., 0].ravel(),
            "dy_true": off_true[..., 1].ravel(), "dx_pred": off_pred[..., 0].ravel(), "dy_pred": off_pred[..., 1].ravel(),
            "cx_err": centre_err[..., 0].ravel(), "cy_err": centre_err[..., 1].ravel(),
        })


@torch.no_grad()
def predict(model: nn.Module, ds: TrajectoryDataset, feats: Features, norm: Normalizer, held_out: np.ndarray,
            device: torch.device | str = "cpu", batch_size: int = 512) -> Predictions:
    """Run ``model`` over every sample of ``ds`` and return predictions in metres; ``held_out`` (N,)
    marks the points in no training trajectory (:attr:`SpatialSplit.unseen`)."""
    model.eval()
    ds = ds.to(device)
    pts, cen, ues, bands = [], [], [], []
    for start in range(0, len(ds), batch_size):
        b = ds.batch(np.arange(start, min(start + batch_size, len(ds))))
        out = model(b["numeric"], b["cfr"])
        pts.append(norm.to_metres(out.points.float().cpu()).numpy())
        cen.append(norm.to_metres(out.centroid.float().cpu()).numpy())
        ues.append(b["points"].cpu().numpy())
        bands.append(b["band"].cpu().numpy())
    ue = np.concatenate(ues)
    band_idx = np.concatenate(bands)
    truth = feats.xy[ue]
    return Predictions(np.concatenate(pts), truth, np.concatenate(cen), truth.mean(axis=1), ue,
                       np.asarray(feats.bands)[band_idx], feats.los[band_idx[:, None], ue], held_out[ue])


def error_stats(err_m: np.ndarray) -> dict[str, float]:
    """MSE (m^2), RMSE, median and 90th-percentile error (m) of Euclidean errors in metres."""
    if len(err_m) == 0:
        return {"mse_m2": np.nan, "rmse_m": np.nan, "median_m": np.nan, "p90_m": np.nan, "count": 0}
    sq = err_m ** 2
    return {"mse_m2": float(sq.mean()), "rmse_m": float(np.sqrt(sq.mean())), "median_m": float(np.median(err_m)),
            "p90_m": float(np.percentile(err_m, 90)), "count": int(len(err_m))}


def offset_slope(table: pd.DataFrame) -> float:
    """Least-squares slope (through the origin, x and y pooled) of each point's predicted offset from
    its predicted trajectory's centroid against its true offset from the true centroid.

    1: the model places the points around their centre as they really lie; 0: it puts every point
    at the centre (it localises the trajectory, not its points). NaN for no points.
    """
    true = table[["dx_true", "dy_true"]].to_numpy()
    pred = table[["dx_pred", "dy_pred"]].to_numpy()
    denom = float((true ** 2).sum())
    return float((pred * true).sum() / denom) if denom > 0 else np.nan


def offset_decomposition(table: pd.DataFrame) -> dict[str, float]:
    """``centroid_term_m2``, ``offset_term_m2`` and ``offset_floor_m2`` of a point table's rows (module
    docstring, "Offset decomposition"), m^2; NaN for no rows."""
    if len(table) == 0:
        return {"centroid_term_m2": np.nan, "offset_term_m2": np.nan, "offset_floor_m2": np.nan}
    t = table
    return {"centroid_term_m2": float((t.cx_err ** 2 + t.cy_err ** 2).mean()),
            "offset_term_m2": float(((t.dx_pred - t.dx_true) ** 2 + (t.dy_pred - t.dy_true) ** 2).mean()),
            "offset_floor_m2": float((t.dx_true ** 2 + t.dy_true ** 2).mean())}


def metrics_table(pred: Predictions) -> pd.DataFrame:
    """Tidy metrics: one row per (band, group) with band 'all' for the pooled bands; the point groups
    also carry :func:`offset_slope` and :func:`offset_decomposition` (NaN for the centroid groups)."""
    table = pred.point_table()
    cen_err = np.linalg.norm(pred.centroid - pred.centroid_truth, axis=-1)
    mean_err = np.linalg.norm(pred.points.mean(axis=1) - pred.centroid_truth, axis=-1)
    rows = []
    for band in ["all", *sorted(set(pred.band.tolist()))]:
        sel = table if band == "all" else table[table.band_ghz == band]
        los, held = sel.los.values, sel.held_out.values
        masks = {"overall": np.ones(len(sel), bool), "LOS": los, "NLOS": ~los, "held-out": held,
                 "held-out-LOS": held & los, "held-out-NLOS": held & ~los, "seen": ~held, "seen-LOS": ~held & los,
                 "seen-NLOS": ~held & ~los}
        for group in GROUPS:
            rows.append({"band": str(band), "group": group, **error_stats(sel.error_m.values[masks[group]]),
                         "offset_slope": offset_slope(sel[masks[group]]), **offset_decomposition(sel[masks[group]])})
        in_band = slice(None) if band == "all" else pred.band == band
        rows.append({"band": str(band), "group": "centroid", **error_stats(cen_err[in_band]), "offset_slope": np.nan})
        rows.append({"band": str(band), "group": "centroid-of-points", **error_stats(mean_err[in_band]),
                     "offset_slope": np.nan})
    return pd.DataFrame(rows)


def per_point_errors(pred: Predictions) -> pd.DataFrame:
    """One row per (band, UE): mean squared error over the test trajectories that hold the point
    (m^2), how many there were, LOS and held-out flags. Pairs methods point by point."""
    t = pred.point_table()
    g = t.groupby(["band_ghz", "ue"], sort=True)
    return g.agg(sq_error_m2=("sq_error_m2", "mean"), appearances=("sq_error_m2", "size"), los=("los", "first"),
                 held_out=("held_out", "first")).reset_index()


def modality_share(dispatch: torch.Tensor, modality_of_token: torch.Tensor, n_experts: int) -> np.ndarray:
    """CFR share of each expert's dispatched input: (..., m, S) dispatch -> (..., n_experts) in [0, 1]
    (the dispatch weight each expert's slots draw from CFR tokens; modality 0 = CFR)."""
    cfr = (dispatch * (modality_of_token == 0).to(dispatch.dtype)[:, None]).sum(-2)  # (..., S)
    per_expert = cfr.unflatten(-1, (n_experts, -1)).mean(-1)
    return per_expert.cpu().numpy()
