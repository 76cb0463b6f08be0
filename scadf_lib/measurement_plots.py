"""Figures of the estimator study (notebook 01): what the BS measures, its SNR, and each estimate
against the oracle. Every axis is labelled with its unit."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from scadf_lib.estimate import EstimatorConfig, angle_delay_profile, first_path
from scadf_lib.measure import Measurement
from scadf_lib.measurement_study import oracle_features
from scadf_lib.schema import SPEED_OF_LIGHT


def example_ues(ds: xr.Dataset, est: xr.Dataset, band: float) -> dict[str, int]:
    """Two typical UEs to draw at ``band``: the LOS UE and the NLOS UE (among those whose first path
    was detected) with the median SNR of their kind."""
    los = ds["los"].sel(band=band).values
    e = est.sel(band=band)
    snr, found = e["snr_db"].values, np.isfinite(e["distance"].values)
    out = {}
    for label, mask in ((f"a typical LOS UE at {band:g} GHz", los), (f"a typical detected NLOS UE at {band:g} GHz",
                                                                     ~los & found)):
        idx = np.flatnonzero(mask)
        if len(idx):
            out[label] = int(idx[np.argsort(snr[idx])[len(idx) // 2]])
    return out


def measured_profiles(m: Measurement, ues: dict[str, int], ecfg: EstimatorConfig = EstimatorConfig()) -> plt.Figure:
    """For each named UE: the delay profile (largest beam per delay, dB over the noise of a cell)
    against path length, and the angle profile at the first detected path against the angle from
    broadside; the estimate and the detection threshold marked."""
    fig, axes = plt.subplots(len(ues), 2, figsize=(11, 3.2 * len(ues)), constrained_layout=True, squeeze=False)
    idx = np.array(list(ues.values()))
    sub = Measurement(**{**m.__dict__, "cfr": m.cfr[idx], "snr_db": m.snr_db[idx],
                         "timing_offset_s": m.timing_offset_s[idx], "common_phase_rad": m.common_phase_rad[idx]})
    tau, s = first_path(sub, ecfg)
    n_ant, k = m.cfr.shape[1:]
    beams = ecfg.beams_per_element * n_ant
    p, _, noise_gain = angle_delay_profile(sub.cfr, ecfg.oversample, beams)
    period = 1.0 / float(m.offsets_hz[1] - m.offsets_hz[0])
    length = np.arange(p.shape[1]) * period / p.shape[1] * SPEED_OF_LIGHT
    noise = m.noise_var * noise_gain
    grid = np.linspace(-1, 1, 721)
    for row, (label, _) in enumerate(ues.items()):
        ax = axes[row, 0]
        ax.plot(length, 10 * np.log10(p[row] / noise), lw=1)
        ax.axhline(ecfg.detection_db, color="grey", ls=":", label=f"detection ({ecfg.detection_db:g} dB)")
        if np.isfinite(tau[row]):
            ax.axvline(SPEED_OF_LIGHT * tau[row], color="C3", ls="--", label="first path (estimate)")
        ax.set(xlabel="path length (m), wraps at 384 m", ylabel="power over noise (dB)",
               title=f"{label}: delay profile, SNR {m.snr_db[idx[row]]:.0f} dB per element", xlim=(0, 400))
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        if np.isfinite(tau[row]):
            snap = np.einsum("nk,k->n", sub.cfr[row], np.exp(2j * np.pi * m.offsets_hz * tau[row]))
            spec = np.abs(np.exp(-1j * np.pi * np.outer(grid, np.arange(n_ant))) @ snap) ** 2
            ax.plot(np.degrees(np.arcsin(grid)), 10 * np.log10(spec / spec.max()), lw=1)
            ax.axvline(np.degrees(np.arcsin(s[row])), color="C3", ls="--", label="estimate")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no path detected:\nevery feature is missing", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set(xlabel="angle from the array's broadside (deg)", ylabel="beam power (dB, max 0)",
               title=f"{label}: angle profile at the first path", ylim=(-40, 2))
    return fig


def snr_map(ds: xr.Dataset, est: xr.Dataset) -> plt.Figure:
    """Each UE's SNR per element and subcarrier (dB), per band, on the scene map."""
    bands = [float(b) for b in est["band"].values]
    fig, axes = plt.subplots(1, len(bands), figsize=(4.4 * len(bands), 4.2), constrained_layout=True, squeeze=False)
    x, y = ds["x"].sel(ue=est["ue"]).values, ds["y"].sel(ue=est["ue"]).values
    for ax, b in zip(axes[0], bands):
        sc = ax.scatter(x, y, c=est["snr_db"].sel(band=b).values, s=2, cmap="viridis", vmin=-30, vmax=40)
        bs = ds.attrs["bs_position_m"]
        ax.plot(bs[0], bs[1], marker="^", color="black", markersize=9)
        ax.set(xlabel="x (m)", ylabel="y (m)", title=f"{b:g} GHz", aspect="equal")
    fig.colorbar(sc, ax=axes[0, -1], label="SNR per element and subcarrier (dB)")
    return fig


def estimate_errors(ds: xr.Dataset, est: xr.Dataset, band: float) -> plt.Figure:
    """Cumulative distribution of each estimate's absolute error against the oracle, LOS and NLOS,
    at one band; a vertical line marks the share of UEs with the feature missing."""
    oracle = oracle_features(ds.sel(ue=est["ue"]), band)
    e = est.sel(band=band)
    units = {"distance": ("path length", "m", 1.0), "aod": ("angle from broadside", "deg", 180 / np.pi),
             "path_gain": ("received power", "dB", 1.0)}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for ax, (feat, (name, unit, scale)) in zip(axes, units.items()):
        for cond, mask in (("LOS", oracle["los"]), ("NLOS", ~oracle["los"])):
            err = np.abs(e[feat].values[mask] - oracle[feat][mask]) * scale
            found = np.sort(err[np.isfinite(err)])
            if len(found):
                ax.plot(found, np.arange(1, len(found) + 1) / mask.sum(),
                        label=f"{cond} ({100 * (1 - len(found) / mask.sum()):.0f} % missing)")
        ax.set(xscale="log", xlabel=f"|estimate - oracle| of the {name} ({unit})", ylabel="share of UEs",
               title=f"{name}, {band:g} GHz", ylim=(0, 1))
        ax.legend(fontsize=8)
    return fig


def feature_distributions(est: xr.Dataset) -> plt.Figure:
    """Histograms of the estimated features per band (what a model would be given as measured
    inputs); the title gives the share of UEs whose feature is missing."""
    units = {"distance": ("first path length (m)", 1.0), "aod": ("angle from broadside (deg)", 180 / np.pi),
             "path_gain": ("received power over transmitted (dB)", 1.0)}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for ax, (feat, (label, scale)) in zip(axes, units.items()):
        missing = []
        for b in est["band"].values:
            v = est[feat].sel(band=b).values * scale
            ok = np.isfinite(v)
            missing.append(f"{b:g} GHz {100 * (1 - ok.mean()):.0f} %")
            ax.hist(v[ok], bins=40, histtype="step", density=True, label=f"{b:g} GHz")
        ax.set(xlabel=label, ylabel="density", title="missing: " + ", ".join(missing))
        ax.title.set_fontsize(9)
        ax.legend(fontsize=8)
    return fig
