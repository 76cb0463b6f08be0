"""Sensitivity of SCADF-MoE to its settings (λ, experts, slots, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.studies.ablations import EQUAL_EPOCHS_PCT as EQUAL_EPOCHS, equal_epoch_val_change
from scadf_lib.studies.common import HEADLINE, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import csv_flags


def _has_own_lambda_0(sens: pd.DataFrame) -> bool:
    """Whether sensitivity rows (metrics or runs) hold a λ = 0 run of their own."""
    return "param" in sens and bool(((sens.param == "mmd_weight")
                                     & (pd.to_numeric(sens.value, errors="coerce") == 0)).any())


def _no_mmd_ablation(frame: pd.DataFrame, seed: int, scene: str = "munich") -> pd.DataFrame:
    """The rows (metrics or runs) of the no-MMD ablation of ``seed`` on ``scene``: the run that stands
    for the sensitivity study's λ = 0 (``scadf_lib.planning``)."""
    return frame[(frame.study == "ablation") & (frame.model == "scadf_no_mmd") & (frame.seed == seed)
                 & (frame.scene == scene)]


def no_mmd_twin(metrics: pd.DataFrame, sens: pd.DataFrame, seed: int, scene: str = "munich") -> pd.DataFrame:
    """The sensitivity study's λ = 0 rows, where its plan left them to the no-MMD ablation of ``seed``
    (the same run: ``scadf_lib.planning``): that ablation's rows (band 'all') tagged mmd_weight = 0,
    or nothing where ``sens`` has its own λ = 0 run or the ablation has not finished."""
    if _has_own_lambda_0(sens):
        return sens.iloc[:0]
    twin = _no_mmd_ablation(metrics, seed, scene)
    return twin[twin.band == "all"].assign(param="mmd_weight", value=0.0)


def sensitivity_rows(metrics: pd.DataFrame, scene: str = "munich") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the sensitivity runs' rows on ``scene`` with λ = 0 from :func:`no_mmd_twin`, the default
    SCADF-MoE main run of their seed), band 'all'; both empty without sensitivity runs."""
    sens = metrics[(metrics.study == "sensitivity") & (metrics.scene == scene) & (metrics.band == "all")]
    if sens.empty:
        return sens, sens
    seed = int(sens.seed.iloc[0])
    default = metrics[(metrics.study == "main") & (metrics.model == "scadf") & (metrics.regime == "mix")
                      & (metrics.scene == scene) & (metrics.seed == seed) & (metrics.band == "all")]
    return pd.concat([sens, no_mmd_twin(metrics, sens, seed, scene)]), default


def sensitivity_table(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str = "munich",
                      curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """The sensitivity runs (one setting changed each, seed 0) beside the default SCADF-MoE run of the
    same seed: held-out and overall MSE (m²), the held-out change against the default (%, positive:
    the setting is worse), the epochs trained and whether the run ended flat, training trajectories
    and points left unused in clusters too small for a trajectory, and the task routers' final
    validation MMD². With ``curves``: the change against the default at equal epochs on the validation
    set (:func:`equal_epoch_val_change`)."""
    sens, default = sensitivity_rows(metrics, scene)
    if sens.empty:
        return pd.DataFrame()
    both = pd.concat([default.assign(param="default (8 experts, λ 0.1, L 5, auto radius)", value=""), sens])
    piv = both.pivot_table(index=["name", "param", "value"], columns="group", values="mse_m2", aggfunc="first")
    piv = piv[[HEADLINE, "overall"]].rename(columns=lambda g: f"{g} (m²)").reset_index()
    reference = piv.loc[piv.param.str.startswith("default"), f"{HEADLINE} (m²)"]
    base = reference.iloc[0] if len(reference) else np.nan
    piv[f"{HEADLINE} change (%)"] = (100 * (piv[f"{HEADLINE} (m²)"] / base - 1)).round(1)
    info = runs.set_index("name")[["epochs_trained", "flat", "train_samples", "points_unused_in_small_clusters",
                                   "final_val_mmd"]].rename(columns={"epochs_trained": "epochs"})
    info["flat"] = csv_flags(info.flat)
    if curves is not None and len(default):
        piv[EQUAL_EPOCHS] = [equal_epoch_val_change(curves, n, default.name.iloc[0]) for n in piv.name]
        piv[EQUAL_EPOCHS] = piv[EQUAL_EPOCHS].round(1)
    out = piv.join(info, on="name").drop(columns="name")
    number = pd.to_numeric(out.value, errors="coerce")  # the default row has no value
    out = out.assign(_default=~out.param.str.startswith("default"), _number=number.fillna(-np.inf))
    out = out.sort_values(["_default", "param", "_number"]).drop(columns=["_default", "_number"])
    out["value"] = [f"{v:g}" if np.isfinite(v) else "" for v in number.reindex(out.index)]
    out["epochs"] = out.epochs.astype("Int64")
    return out.reset_index(drop=True)


#: The default SCADF-MoE settings the sensitivity study varies one at a time (``ModelConfig`` n_experts
#: and mmd_weight, ``TrainConfig`` trajectory_length; the radius is each run's automatic one).
SENSITIVITY_DEFAULTS = {"n_experts": 8, "mmd_weight": 0.1, "trajectory_length": 5}


def sensitivity_points(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str = "munich") -> pd.DataFrame:
    """The sensitivity study as curves: one row per (param, value, group) with MSE (m²), for the
    held-out and overall groups, each varied setting's curve holding the default run at its default
    value (``default`` True; the radius is the default run's automatic radius, m) and, for λ, the
    no-MMD ablation's seed-0 run at λ = 0 (:func:`no_mmd_twin`). Empty without sensitivity runs."""
    sens, base = sensitivity_rows(metrics, scene)
    if sens.empty:
        return pd.DataFrame(columns=["param", "value", "group", "mse_m2", "default"])
    sens = sens.assign(default=False)
    radius = runs.set_index("name").radius_m.reindex(base.name.unique()).dropna()
    defaults = {**SENSITIVITY_DEFAULTS, "radius_m": float(radius.iloc[0]) if len(radius) else np.nan}
    points = [sens] + [base.assign(param=p, value=v, default=True) for p, v in defaults.items()
                       if p in set(sens.param) and np.isfinite(v)]
    out = pd.concat(points)[["param", "value", "group", "mse_m2", "default"]]
    out = out[out.group.isin([HEADLINE, "overall"])].astype({"value": float})
    return out.sort_values(["param", "group", "value"]).reset_index(drop=True)


def sensitivity_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs, curves = rs.metrics, rs.runs, rs.curves
    table = sensitivity_table(metrics, runs, curves=curves)
    if table.empty:
        return ""
    flips = ""
    if EQUAL_EPOCHS in table:
        varied = table[~table.param.str.startswith("default")]
        flip = varied[np.sign(varied[f"{HEADLINE} change (%)"]) * np.sign(varied[EQUAL_EPOCHS]) < 0]
        flips = ("\n\nSettings whose held-out change and equal-epoch validation change differ in sign (the budget, "
                 "not the setting, may carry the held-out change): "
                 + (", ".join(f"{r.param} {r.value}" for r in flip.itertuples()) or "none") + ".")
    return ("## I. Sensitivity (munich, Mix, seed 0)\n\n"
            "One setting changed per run. The clustering radius (m) sets which clusters are too small for a "
            "trajectory, so it changes the training set (`train_samples`, `points_unused_in_small_clusters`); "
            "`final_val_mmd` is the task routers' MMD² on the validation set at the end. "
            "λ = 0 is the no-MMD ablation's seed-0 run (the same training; it is trained once). `held-out change`: "
            "against the default run (positive: the setting does worse); one seed each, so a change is a single "
            "sample, and a run that trained far fewer or more epochs than the default differs in budget too "
            "(every run stops by the same rule; `flat` says whether it ended flat). `validation change at equal epochs`: "
            "against the default with the budget held equal, on the validation points (each run's validation point "
            "MSE at its best checkpoint within the epochs both trained; the radius and L change the split, so "
            "there the validation points differ too).\n\n"
            + report_table(table) + flips + "\n")
