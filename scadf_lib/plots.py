"""Figures of the workbook (matplotlib + seaborn); every axis is labelled with its unit."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.ticker import MaxNLocator

from scadf_lib.clustering import Clustering
from scadf_lib.evaluation import Predictions
from scadf_lib.presets import METHODS
from scadf_lib.schema import SPEED_OF_LIGHT, complex_cfr
from scadf_lib.studies.resultset import ResultSet
from scadf_lib.trajectories import SpatialSplit

sns.set_theme(context="notebook", style="whitegrid")
SCALARS = {"aod": "AoD (rad)", "aoa": "AoA (rad)", "distance": "distance of dominant path (m)",
           "path_gain": "total path gain (dB)"}


def _map_axes(ax: plt.Axes, ds: xr.Dataset | None = None, title: str = "") -> None:
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.set_title(title)
    if ds is not None:
        bs = ds.attrs["bs_position_m"]
        ax.plot(bs[0], bs[1], marker="^", color="black", markersize=9)
        ax.annotate("BS", (bs[0], bs[1]), xytext=(5, 5), textcoords="offset points", fontweight="bold")


def scene_maps(ds: xr.Dataset) -> plt.Figure:
    """UE points coloured by LOS/NLOS, and by path gain at each band."""
    bands = ds["band"].values
    fig, axes = plt.subplots(1, 1 + len(bands), figsize=(4.2 * (1 + len(bands)), 4.2), constrained_layout=True)
    x, y = ds["x"].values, ds["y"].values
    los = ds["los"].values[0]
    axes[0].scatter(x[los], y[los], s=3, label="LOS", color="tab:blue")
    axes[0].scatter(x[~los], y[~los], s=3, label="NLOS", color="tab:red")
    _map_axes(axes[0], ds, f"{ds.attrs['scene']}: LOS / NLOS")
    axes[0].legend(loc="upper right", markerscale=3)
    gain = ds["path_gain"].values
    vmin, vmax = np.percentile(gain, [2, 98])
    for ax, b, g in zip(axes[1:], bands, gain):
        sc = ax.scatter(x, y, c=g, s=3, cmap="viridis", vmin=vmin, vmax=vmax)
        _map_axes(ax, ds, f"path gain at {b:g} GHz")
    fig.colorbar(sc, ax=axes[1:], label="path gain (dB)", shrink=0.8)
    return fig


def scalar_distributions(ds: xr.Dataset) -> plt.Figure:
    """Histograms of the four dominant-path scalars per band, split LOS / NLOS."""
    df = ds[list(SCALARS) + ["los"]].to_dataframe().reset_index()
    df["link"] = np.where(df["los"], "LOS", "NLOS")
    df["band (GHz)"] = df["band"].map(lambda b: f"{b:g}")
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8), constrained_layout=True)
    for ax, (var, label) in zip(axes, SCALARS.items()):
        sns.histplot(df, x=var, hue="band (GHz)", element="step", stat="density", common_norm=False, ax=ax,
                     bins=40)
        ax.set_xlabel(label)
    return fig


def cfr_examples(ds: xr.Dataset, ues: list[int], antenna: int = 0) -> plt.Figure:
    """CFR magnitude (dB) and phase (rad) against subcarrier offset (MHz), per band. The phase is
    shown with the dominant path's delay removed, H(f) exp(+j 2π f d / c) with d its length (m): the
    raw phase turns by 2π Δf d / c per subcarrier (Δf = 781 kHz), more than π for paths longer than
    c / (2 Δf) = 192 m, where unwrapping aliases; what remains is the other paths' effect."""
    h = complex_cfr(ds).isel(antenna=antenna)
    f_hz = ds["subcarrier_offset"].values
    f_mhz = f_hz / 1e6
    fig, axes = plt.subplots(2, len(ues), figsize=(4.2 * len(ues), 6), constrained_layout=True, squeeze=False)
    for j, ue in enumerate(ues):
        link = "LOS" if bool(ds["los"].values[0, ue]) else "NLOS"
        for i, b in enumerate(ds["band"].values):
            hb = h.sel(band=b).isel(ue=ue).values
            delay_s = float(ds["distance"].values[i, ue]) / SPEED_OF_LIGHT
            axes[0, j].plot(f_mhz, 20 * np.log10(np.abs(hb) + 1e-30), label=f"{b:g} GHz")
            axes[1, j].plot(f_mhz, np.unwrap(np.angle(hb * np.exp(2j * np.pi * f_hz * delay_s))), label=f"{b:g} GHz")
        axes[0, j].set_title(f"UE {ue} ({link}, {float(ds['distance'].values[0, ue]):.0f} m)")
        axes[0, j].set_ylabel("|H| (dB)")
        axes[1, j].set_ylabel("phase, dominant delay removed (rad)")
        axes[1, j].set_xlabel("subcarrier offset (MHz)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="band")
    return fig


def cfr_ripple_db(ds: xr.Dataset, antenna: int = 0) -> pd.DataFrame:
    """Median ripple of |H| across the band (max - min over subcarriers, dB) per band and LOS/NLOS:
    how frequency-selective the CFRs are (one path alone gives 0 dB)."""
    mag = 20 * np.log10(np.abs(complex_cfr(ds).isel(antenna=antenna).values) + 1e-30)  # (band, ue, sc)
    ripple = mag.max(-1) - mag.min(-1)
    los = ds["los"].values.astype(bool)
    return pd.DataFrame({"band (GHz)": [f"{b:g}" for b in ds["band"].values],
                         "LOS median ripple (dB)": [float(np.median(r[m])) for r, m in zip(ripple, los)],
                         "NLOS median ripple (dB)": [float(np.median(r[~m])) for r, m in zip(ripple, los)]})


def los_counts(ds: xr.Dataset) -> plt.Figure:
    df = pd.DataFrame({"band (GHz)": np.repeat([f"{b:g}" for b in ds["band"].values], ds.sizes["ue"]),
                       "link": np.where(ds["los"].values.ravel(), "LOS", "NLOS")})
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sns.countplot(df, x="band (GHz)", hue="link", ax=ax)
    ax.set_ylabel("UE locations (count)")
    return fig


def radius_search(clustering: Clustering, threshold: int) -> plt.Figure:
    """Median cluster size against the radii the search tried (linear axes, a few readable ticks)."""
    r, med = zip(*clustering.search)
    fig, ax = plt.subplots(figsize=(5.5, 3.5), constrained_layout=True)
    ax.plot(r, med, "o-", label="radii tried by the search")
    ax.axhline(threshold, color="gray", ls="--", label=f"threshold = {threshold}")
    ax.axvline(clustering.radius_m, color="tab:red", label=f"chosen r = {clustering.radius_m:.1f} m")
    ax.set_xlabel("clustering radius r (m)")
    ax.set_ylabel("median cluster size (points)")
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.legend(fontsize=8)
    return fig


def split_map(xy: np.ndarray, split: SpatialSplit, n_examples: int = 3, seed: int = 0) -> plt.Figure:
    """Clusters on the map, train / test / unused points, and a few example trajectories."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), constrained_layout=True)
    c = split.clustering
    rng = np.random.default_rng(seed)
    palette = rng.permutation(c.num_clusters)
    axes[0].scatter(xy[:, 0], xy[:, 1], c=palette[c.labels] % 20, cmap="tab20", s=4)
    _map_axes(axes[0], title=f"{c.num_clusters} clusters, r = {c.radius_m:.1f} m")
    used = np.zeros(len(xy), bool)
    used[split.train_points] = used[split.test_points] = True
    unseen_test = np.zeros(len(xy), bool)
    unseen_test[np.unique(split.test_traj)] = True
    unseen_test &= split.unseen
    ax = axes[1]
    ax.scatter(*xy[~used].T, s=4, color="lightgray", label="unused (small cluster or guard band)")
    ax.scatter(*xy[split.train_points].T, s=4, color="tab:blue", label="training points")
    if len(split.val_points):
        ax.scatter(*xy[split.val_points].T, s=5, color="tab:green", label="validation points (choose the best epoch)")
    ax.scatter(*xy[unseen_test].T, s=6, color="tab:orange", label="held-out points (in test trajectories)")
    for k, traj in enumerate(split.test_traj[rng.choice(len(split.test_traj), n_examples, replace=False)]):
        ax.plot(*xy[traj].T, "-o", color="black", lw=1.2, ms=4, label="test trajectories" if k == 0 else None)
    _map_axes(ax, title="the split training uses" if len(split.val_points) else "train / test split")
    ax.legend(loc="upper right", markerscale=2, fontsize=8)
    return fig


def learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Point MSE (normalised units) and router MMD per epoch, training and validation."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for col, label in (("train_mse_points", "train"), ("val_mse_points", "validation")):
        axes[0].plot(history["epoch"], history[col], "o-", label=label)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("point MSE (normalised units)")
    axes[0].set_yscale("log")
    axes[0].legend()
    axes[1].plot(history["epoch"], history["train_mmd"], "o-", label="train")
    axes[1].plot(history["epoch"], history["val_mmd"], "o-", label="validation")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("router MMD$^2$ (unitless)")
    axes[1].legend()
    return fig


def error_cdf(errors: Mapping[str, np.ndarray], title: str = "") -> plt.Figure:
    """Empirical CDF of Euclidean position errors (m) for several labelled error sets."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, err in errors.items():
        e = np.sort(np.asarray(err))
        if len(e):
            ax.plot(e, np.arange(1, len(e) + 1) / len(e), label=f"{label} (median {np.median(e):.2f} m)")
    ax.set_xlabel("position error (m)")
    ax.set_ylabel("CDF")
    ax.set_xscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def predictions_map(pred: Predictions, max_points: int = 1500, seed: int = 0) -> plt.Figure:
    """True vs predicted positions (m), with error segments, LOS / NLOS coloured."""
    t = pred.point_table()
    t = t.sample(min(max_points, len(t)), random_state=seed)
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    for los, color, label in ((True, "tab:blue", "LOS"), (False, "tab:red", "NLOS")):
        s = t[t.los == los]
        ax.plot(np.stack([s.x_true, s.x_pred]), np.stack([s.y_true, s.y_pred]), color=color, lw=0.4, alpha=0.5)
        ax.scatter(s.x_true, s.y_true, s=4, color=color, label=f"{label} true position")
    _map_axes(ax, title="true positions and errors to predictions")
    ax.legend(markerscale=3)
    return fig


def method_bars(summary: pd.DataFrame, x: str, hue: str, title: str = "", log: bool = True) -> plt.Figure:
    """Bars of mean MSE (m^2) with 95 % CI error bars, from :func:`scadf_lib.tables.summarize`."""
    xs = list(dict.fromkeys(summary[x]))
    hues = list(dict.fromkeys(summary[hue]))
    if not xs:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, f"{title}: no finished runs", ha="center", va="center")
        ax.set_axis_off()
        return fig
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(xs) * max(1, len(hues) / 3)), 4))
    for i, h in enumerate(hues):
        s = summary[summary[hue] == h].set_index(x).reindex(xs)
        ax.bar(np.arange(len(xs)) + (i - (len(hues) - 1) / 2) * width, s.mse_m2, width, yerr=s.ci95.fillna(0),
               capsize=3, label=str(h))
    ax.set_xticks(np.arange(len(xs)), xs)
    ax.set_ylabel("MSE (m$^2$), mean and 95 % CI over seeds")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


SENSITIVITY_AXES = {"n_experts": "number of experts", "mmd_weight": "λ (MMD weight)",
                    "trajectory_length": "trajectory length L (points)", "radius_m": "clustering radius (m)"}


def sensitivity_curves(points: pd.DataFrame, title: str = "") -> plt.Figure:
    """One panel per varied setting: held-out and overall MSE (m²) against its value, from
    :func:`scadf_lib.studies.sensitivity.sensitivity_points`; the default setting's point is ringed."""
    params = [p for p in SENSITIVITY_AXES if p in set(points.param)]
    fig, axes = plt.subplots(1, max(1, len(params)), figsize=(4.5 * max(1, len(params)), 3.6),
                             constrained_layout=True, squeeze=False)
    for ax, param in zip(axes[0], params):
        sel = points[points.param == param]
        for group, g in sel.groupby("group", sort=False):
            ax.plot(g.value, g.mse_m2, "o-", label=group)
            ax.plot(g.value[g.default], g.mse_m2[g.default], "o", ms=12, mfc="none", mec="k")
        ax.set_xlabel(SENSITIVITY_AXES[param])
        ax.set_ylabel("MSE (m$^2$), seed 0")
        if param == "mmd_weight":
            ax.set_xscale("symlog", linthresh=0.01)
        ticks = sorted(sel.value.unique())
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.minorticks_off()
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title or "Sensitivity (ringed: the default setting)")
    return fig


def error_histograms(errors: Mapping[str, pd.DataFrame], title: str = "") -> plt.Figure:
    """Paper Fig. 2 style: histograms of point errors (m), LOS and NLOS, for each labelled run."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True, sharey=True)
    for ax, los, name in ((axes[0], True, "LOS"), (axes[1], False, "NLOS")):
        for label, t in errors.items():
            e = t.error_m[t.los == los]
            ax.hist(np.log10(e.clip(lower=1e-2)), bins=50, histtype="step", density=True, label=label, lw=1.5)
        ax.set_xlabel("log10 position error (m)")
        ax.set_title(f"{title} {name}")
    axes[0].set_ylabel("density")
    axes[0].legend()
    return fig


#: x-axis label (with unit) of each corruption kind of :mod:`scadf_lib.degradation`.
CORRUPTION_AXES = {"cfr_snr_db": "CFR SNR (dB)", "angle_deg": "AoA/AoD error std (deg)",
                   "distance_pct": "distance error std (%)", "gain_db": "path-gain error std (dB)"}


def degradation_curves(summary: pd.DataFrame, title: str = "") -> plt.Figure:
    """Held-out MSE (m², mean and 95 % CI over seeds) under one corrupted modality: one row per
    training (clean; augmented where it exists), one panel per noise kind against its level (the clean
    score at level 0 / 'clean' SNR), one line per method, and a last panel of bars with each modality
    missing. ``summary``: :func:`scadf_lib.studies.degradation.degradation_summary`."""
    from scadf_lib.studies.common import label
    trainings = [t for t in ("clean", "augmented") if t in set(summary.training)]
    methods = [m for m in METHODS if m in set(summary.model)]
    colours = dict(zip(methods, sns.color_palette(n_colors=len(methods))))
    fig, axes = plt.subplots(len(trainings), 5, figsize=(22, 4.2 * len(trainings)), constrained_layout=True,
                             squeeze=False)
    for row, training in zip(axes, trainings):
        t = summary[summary.training == training]
        for ax, (kind, axis_label) in zip(row[:4], CORRUPTION_AXES.items()):
            for model in methods:
                g = t[t.model == model]
                if g.empty:  # a method not yet trained this way (the augmented half, mid-sweep)
                    continue
                clean, pts = g[g.label == "clean"], g[g.corruption == kind]
                x = np.array([40.0 if kind == "cfr_snr_db" else 0.0] + pts.level.astype(float).tolist())
                y = np.array(clean.mse_m2.tolist() + pts.mse_m2.tolist())
                err = np.array(clean.ci95.fillna(0).tolist() + pts.ci95.fillna(0).tolist())
                order = np.argsort(x)
                ax.errorbar(x[order], y[order], yerr=err[order], capsize=2, marker="o", ms=3, color=colours[model],
                            label=label(model))
            if kind == "cfr_snr_db":
                ax.invert_xaxis()
                ax.set_xticks([40, 30, 20, 10, 0], ["clean", "30", "20", "10", "0"])
            ax.set_xlabel(axis_label)
            ax.set_ylabel("held-out MSE (m$^2$)")
            ax.set_yscale("log")
        miss = t[t.label.str.startswith("missing")].assign(
            modality=lambda d: d.label.str.removeprefix("missing "), method=lambda d: d.model.map(label))
        sns.barplot(miss, x="modality", y="mse_m2", hue="method", ax=row[4], errorbar=None,
                    palette={label(m): c for m, c in colours.items()}, hue_order=[label(m) for m in methods],
                    legend=False)
        row[4].set_yscale("log")
        row[4].set_xlabel("modality missing (set to its training mean)")
        row[4].set_ylabel("held-out MSE (m$^2$)")
        row[0].set_title(f"trained {'clean' if training == 'clean' else 'with augmentation'}", loc="left")
    axes[0, 3].legend(fontsize=8, title="method", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(title)
    return fig


def routing_response_plot(resp: pd.DataFrame, title: str = "") -> plt.Figure:
    """SCADF-MoE's CFR share of the experts' input (mean over experts; mean and std over seeds)
    against the CFR's SNR, one colour per layer; solid trained clean, dashed with augmentation."""
    share = resp.groupby(["augmented", "layer", "seed", "label"]).cfr_share.mean().reset_index()
    snr = {"clean": 40.0, **{f"cfr_snr_db={s:g}": s for s in (30, 20, 10, 0)}, "missing cfr": -10.0}
    share = share[share.label.isin(snr)].assign(snr=lambda d: d.label.map(snr))
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    colours = dict(zip(sorted(share.layer.unique()), sns.color_palette(n_colors=share.layer.nunique())))
    for (aug, layer), g in share.groupby(["augmented", "layer"]):
        m = g.groupby("snr").cfr_share.agg(["mean", "std"]).reset_index()
        ax.errorbar(m.snr, m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=3, ls="--" if aug else "-",
                    color=colours[layer], label=f"{layer} ({'augmented' if aug else 'clean'} training)")
    ax.invert_xaxis()
    ax.set_xticks([40, 30, 20, 10, 0, -10], ["clean", "30", "20", "10", "0", "missing"])
    ax.set_xlabel("CFR SNR at test time (dB)")
    ax.set_ylabel("CFR share of the experts' input")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def run_curves(curves: pd.DataFrame, floor_m2: float | None = None, anchors: Mapping[str, float] | None = None,
               title: str = "") -> plt.Figure:
    """Validation point MSE (m², held-out-style validation points) against optimiser steps, one line
    per run (``results/<set>/curves.csv.gz``: :func:`scadf_lib.sweep_tables.learning_curves`), one colour
    per method, one panel per method; ``floor_m2`` (the centroid reference) and ``anchors`` (name ->
    validation-free test MSE, m², e.g. WKNN held-out) as horizontal references."""
    models = list(dict.fromkeys(curves.model))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(3.3 * max(1, len(models)), 3.4), sharey=True,
                             constrained_layout=True, squeeze=False)
    colours = dict(zip(models, sns.color_palette(n_colors=max(1, len(models)))))
    for ax, model in zip(axes[0], models):
        for _, g in curves[curves.model == model].groupby("name"):
            ax.plot(g.step, g.val_mse_points_m2, color=colours[model], lw=1.2, alpha=0.8)
            best = g.val_mse_points_m2.idxmin()
            ax.plot(g.step[best], g.val_mse_points_m2[best], "o", color=colours[model], ms=4)
        if floor_m2 is not None:
            ax.axhline(floor_m2, color="k", ls="--", lw=1, label="centroid reference (oracle)")
        for (name, value), ls in zip((anchors or {}).items(), (":", "-.", (0, (5, 1)))):
            ax.axhline(value, color="grey", ls=ls, lw=1, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("optimiser steps (batch 64)")
        ax.set_title(f"{title} {model}".strip(), fontsize=10)
    axes[0, 0].set_ylabel("validation point MSE (m²)")
    if floor_m2 is not None or anchors:
        axes[0, -1].legend(fontsize=7, loc="upper right")
    return fig


def track_map(table: pd.DataFrame, grid_xy: np.ndarray, track: object = 0, title: str = "") -> plt.Figure:
    """One track of :meth:`scadf_lib.localise.Localiser.predict_tracks` on the map: the scene's UE grid
    (grey), the true path (black line, m) and each measurement's predicted position coloured by its
    error (m), joined to its true position; beside it the error along the track against the step."""
    t = table[table.track == track].sort_values("step")
    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [1.2, 1]})
    pad = 6.0
    lo, hi = t[["x_true_m", "y_true_m"]].min().to_numpy() - pad, t[["x_true_m", "y_true_m"]].max().to_numpy() + pad
    near = (grid_xy[:, 0] > lo[0]) & (grid_xy[:, 0] < hi[0]) & (grid_xy[:, 1] > lo[1]) & (grid_xy[:, 1] < hi[1])
    ax.scatter(grid_xy[near, 0], grid_xy[near, 1], s=3, color="0.85", label="UE grid (outdoor points)")
    ax.plot(t.x_true_m, t.y_true_m, color="black", lw=1.2, label="true path")
    ax.plot(np.stack([t.x_true_m, t.x_m]), np.stack([t.y_true_m, t.y_m]), color="0.4", lw=0.6)
    sc = ax.scatter(t.x_m, t.y_m, c=t.error_m, cmap="viridis", s=22, zorder=3, label="predicted")
    fig.colorbar(sc, ax=ax, label="error (m)")
    _map_axes(ax, title=title or f"track {track} at {t.band_ghz.iloc[0]:g} GHz")
    ax.legend(loc="best", fontsize=8)
    ax_err.plot(t.step, t.error_m, marker="o", color="tab:blue")
    if "held_out" in t:
        held = t[t.held_out]
        ax_err.scatter(held.step, held.error_m, s=60, facecolors="none", edgecolors="tab:red",
                       label="held-out point (never trained on)")
        ax_err.legend(fontsize=8)
    ax_err.set_xlabel("step along the track")
    ax_err.set_ylabel("error (m)")
    ax_err.set_title("error along the track")
    return fig


def save_learning_curves(set_dir: Path, scene: str = "munich") -> Path | None:
    """``<set_dir>/learning_curves.png``: validation curves of the set's main runs of ``scene`` (Mix),
    with the centroid reference and WKNN's held-out test MSE as references; None without curves."""
    from scadf_lib.studies.budget import curve_inputs
    from scadf_lib.fileio import atomic_path
    if not (set_dir / ResultSet.CURVES).exists():
        return None
    curves, floor, anchors = curve_inputs(set_dir, scene)
    if curves.empty:
        return None
    fig = run_curves(curves, floor_m2=floor, anchors=anchors, title=f"{scene} Mix:")
    out = set_dir / ResultSet.LEARNING_CURVES
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return out


def error_cdfs(errors: Mapping[str, Mapping[str, pd.DataFrame]], title: str = "",
               colors: Mapping[str, object] | None = None) -> plt.Figure:
    """Empirical CDFs of the held-out point errors (m, log axis), one panel per scene and one line per
    method: ``errors[scene][method]`` is a per-point error table (``errors/<run>.csv.gz``: columns
    ``held_out``, ``error_m``). ``colors`` (method -> colour) keeps a method's colour across panels
    and puts a legend in each."""
    scenes = list(errors)
    fig, axes = plt.subplots(1, max(1, len(scenes)), figsize=(3.6 * max(1, len(scenes)) + (2.8 if colors else 0), 3.3), sharey=True,
                             constrained_layout=True, squeeze=False)
    for ax, scene in zip(axes[0], scenes):
        for method, e in errors[scene].items():
            err = np.sort(e.error_m[e.held_out.astype(bool)].to_numpy())
            ax.plot(np.maximum(err, 1e-3), np.arange(1, len(err) + 1) / len(err), lw=1.3, label=method,
                    color=(colors or {}).get(method))
        ax.set_xscale("log")
        ax.set_title(f"{title} {scene}".strip(), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("share of held-out points")
    fig.supxlabel("held-out point error (m; errors below 1 mm drawn at 1 mm)", fontsize=10)
    if colors:  # a method keeps its colour across panels: one legend beside them
        _legend_outside(fig, axes)
    else:
        axes[0, -1].legend(fontsize=7, loc="lower right")
    return fig


def save_error_cdfs(set_dir: Path, seed: int = 0) -> Path | None:
    """``<set_dir>/error_cdf.png``: :func:`error_cdfs` of the Mix main runs of ``seed`` that kept their
    per-point errors (``errors/``); None without any."""
    from scadf_lib.fileio import atomic_path
    from scadf_lib.presets import METHODS, SCENES
    from scadf_lib.studies.common import label
    rs = ResultSet(set_dir)
    from scadf_lib.runnames import main_run
    errors = {scene: {label(m): e for m in METHODS if (e := rs.errors(main_run(scene, "mix", m, seed))) is not None}
              for scene in SCENES}
    errors = {scene: e for scene, e in errors.items() if e}
    if not errors:
        return None
    fig = error_cdfs(errors, title=f"Mix, seed {seed}:")
    out = set_dir / ResultSet.ERROR_CDF
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return out


def survey_density_curve(points: pd.DataFrame) -> plt.Figure:
    """Held-out MSE (m²) and median error (m) against the share of the grid's points surveyed (log
    axes), one line per method (:func:`scadf_lib.studies.unsurveyed.density_points`); regular grids
    and random shares are drawn with different markers."""
    from matplotlib.ticker import FuncFormatter, LogLocator
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), constrained_layout=True)
    markers = {"full": "D", "grid": "o", "random": "s"}
    surveys = points.drop_duplicates("survey").sort_values("share")
    for ax, col in zip(axes, ("nearest_ms_m2", "distance_median_m")):  # the oracle lookup: error = the distance
        ax.plot(surveys.share, surveys[col], color="black", ls="--", lw=1.2, label="nearest surveyed point (oracle)")
    for (method, g), color in zip(points.groupby("method", sort=False), sns.color_palette(n_colors=8)):
        g = g.sort_values("share")
        for ax, col in zip(axes, ("mse_m2", "median_m")):
            ax.plot(g.share, g[col], color=color, lw=1.2, label=method)
            for kind, k in g.groupby("kind"):
                ax.scatter(k.share, k[col], color=color, marker=markers.get(kind, "o"), s=22, zorder=3)
    ticks = [t for t in (0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if points.share.min() / 2 <= t <= 1.0]
    for ax, ylabel in zip(axes, ("held-out MSE (m²)", "held-out median error (m)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks, [f"{100 * t:g} %" for t in ticks])
        ax.xaxis.set_minor_locator(LogLocator(subs=()))
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("share of the grid's points surveyed")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, title="◆ full, ● grid, ■ random", title_fontsize=7)
    seeds = sorted({x for v in points.seeds for x in v.split(", ")}) if "seeds" in points else ["0"]
    fig.suptitle(f"munich Mix, thinned site surveys: means over seed{'s' if len(seeds) > 1 else ''} "
                 f"{', '.join(seeds)} where run", fontsize=10)
    return fig


def error_vs_distance(points: pd.DataFrame, colors: Mapping[str, object] | None = None) -> plt.Figure:
    """Held-out MSE (m², log axis) on held-out blocks against the point's distance to the nearest
    surveyed point (bins, m), LOS and NLOS points in two panels, one line per method and the
    nearest-surveyed-point oracle in black (:func:`scadf_lib.studies.unsurveyed.distance_points`)."""
    from scadf_lib.studies.unsurveyed import DISTANCE_WORDS, NEAREST_SURVEYED
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4), sharey=True, constrained_layout=True)
    for ax, los in zip(axes, (True, False)):
        sel = points[points.los == los]
        for method, g in sel.groupby("method", sort=False):
            g = g.sort_values("position")
            oracle = method == NEAREST_SURVEYED
            ax.plot(g.position, g.mse_m2, marker="o", ms=3.5, lw=1.8 if oracle else 1.2, ls="--" if oracle else "-",
                    color="black" if oracle else (colors or {}).get(method), label=method)
        ax.set_yscale("log")
        ax.set_xticks(range(len(DISTANCE_WORDS)), DISTANCE_WORDS)
        ax.set_title(f"{'LOS' if los else 'NLOS'} points", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("held-out MSE (m²)")
    fig.supxlabel("distance to the nearest surveyed point (m)", fontsize=10)
    fig.suptitle("munich Mix, held-out 20 m blocks, seeds pooled", fontsize=10)
    _legend_outside(fig, axes)
    return fig


def _legend_outside(fig: plt.Figure, axes) -> None:
    """One legend for every panel's lines (each label once), right of the panels, so it hides no line."""
    handles = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="outside right center")


def save_unsurveyed_figures(set_dir: Path) -> list[Path]:
    """The study "Where nobody surveyed"'s figures in ``set_dir``: the held-out error CDFs on points and
    on blocks (:func:`error_cdfs`) and the survey-density curve; those without data are skipped."""
    from scadf_lib.studies.common import label
    from scadf_lib.studies.unsurveyed import (BASELINE_SET, BLOCK_METHODS, block_errors, cdf_errors, density_points,
                                              distance_points, split_rows)
    rs = ResultSet(set_dir)
    if not (rs.has(rs.METRICS) and rs.has(rs.RUNS) and "split" in rs.runs):
        return []  # not this study's set
    base = rs.sibling(BASELINE_SET)
    errors, rows = cdf_errors(rs, base), split_rows(rs, base)
    palette = dict(zip([label(m) for m in BLOCK_METHODS], sns.color_palette(n_colors=len(BLOCK_METHODS))))
    figures = {rs.UNSURVEYED_CDF: error_cdfs(errors, "munich Mix, seeds pooled,", palette) if errors else None}
    distances = distance_points(block_errors(rs, rows))
    figures[rs.ERROR_VS_DISTANCE] = error_vs_distance(distances, palette) if len(distances) else None
    points = density_points(rows, rs.runs)
    figures[rs.SURVEY_DENSITY] = survey_density_curve(points) if len(points) else None
    return _save_figures(set_dir, figures)


def accuracy_vs_snr(table: pd.DataFrame, colors: Mapping[str, object] | None = None) -> plt.Figure:
    """Held-out MSE (m², log axis) in each quarter of the held-out points' per-element link SNR, one
    colour per method, measured inputs solid, oracle inputs dashed (the control: their inputs do not
    degrade); ``table`` is :func:`scadf_lib.studies.measured.held_out_by_snr`."""
    cols = [c for c in table.columns if c.startswith("MSE, SNR")]
    quarters = [c.removeprefix("MSE, SNR ").removesuffix(" (m²)") for c in cols]
    fig, ax = plt.subplots(figsize=(7.2, 3.4), constrained_layout=True)
    palette = dict(colors or zip(table.method.unique(), sns.color_palette(n_colors=table.method.nunique())))
    labelled = set()
    for _, row in table.iterrows():
        measured = row["inputs"] == "measured"
        ax.plot(range(len(cols)), row[cols].to_numpy(float), color=palette[row["method"]],
                ls="-" if measured else "--", marker="o" if measured else None, ms=3.5,
                lw=1.3 if measured else 0.9, label=None if row["method"] in labelled else row["method"])
        labelled.add(row["method"])
    ax.set_yscale("log")
    ax.set_xticks(range(len(cols)), quarters)
    ax.set_xlabel("per-element link SNR (quarters of the held-out points)")
    ax.set_ylabel("held-out MSE (m²)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, title="solid: measured\ndashed: oracle", title_fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.set_title("munich Mix, default link budget, seeds pooled", fontsize=10)
    return fig


def save_measured_figures(set_dir: Path) -> list[Path]:
    """The measured-input study's figures in ``set_dir``: held-out error CDFs on oracle and on measured
    inputs (:func:`error_cdfs`, seeds pooled, the anchors beside the methods) and :func:`accuracy_vs_snr`;
    none for a set that is not this study's."""
    from scadf_lib.studies.common import label, pooled_errors
    from scadf_lib.studies.measured import MEASURED_ANCHOR_ROWS, held_out_by_snr, study_rows
    rs = ResultSet(set_dir)
    if not (rs.has(rs.METRICS) and rs.has(rs.RUNS) and "inputs" in rs.runs and (rs.runs.study == "measured").any()):
        return []
    rows = study_rows(rs)
    rows = rows[rows.param.isna() & (rows.group == "held-out")].drop_duplicates("name")
    models = [m for m in (*METHODS, *MEASURED_ANCHOR_ROWS) if m in set(rows.model)]
    palette = dict(zip([label(m) for m in models], sns.color_palette(n_colors=len(models))))
    errors: dict[str, dict[str, pd.DataFrame]] = {}
    for inputs in ("oracle", "measured"):
        for model in models:
            pooled = pooled_errors(rs, rows[(rows.model == model) & (rows.inputs == inputs)].name)
            if pooled is not None:
                errors.setdefault(f"{inputs} inputs", {})[label(model)] = pooled
    snr = held_out_by_snr(rs)
    figures = {rs.MEASURED_CDF: error_cdfs(errors, "munich Mix, seeds pooled,", palette) if errors else None,
               rs.ACCURACY_VS_SNR: accuracy_vs_snr(snr, palette) if len(snr) else None}
    return _save_figures(set_dir, figures)


def _save_figures(set_dir: Path, figures: Mapping[str, plt.Figure | None]) -> list[Path]:
    """Write each figure (not None) to ``set_dir/<name>`` atomically, close it; the paths written."""
    from scadf_lib.fileio import atomic_path
    written = []
    for name, fig in figures.items():
        if fig is None:
            continue
        with atomic_path(set_dir / name) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
        written.append(set_dir / name)
    return written


def save_report_figures(set_dir: Path) -> None:
    """Every figure a result set's REPORT.md shows, each where the set has its data: learning curves,
    error CDFs, and those of the unsurveyed and measured-input studies."""
    save_learning_curves(set_dir)
    save_error_cdfs(set_dir)
    save_unsurveyed_figures(set_dir)
    save_measured_figures(set_dir)
