"""Names, labels and the small shared table helpers every study uses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scadf_lib.tables import csv_flags, mean_ci


#: How methods and anchors are named in tables and figures.
METHOD_LABELS = {"concat": "Concat", "fullcon": "FullCon", "transfusion": "TransFusion", "softmoe": "SoftMoE",
                 "scadf": "SCADF-MoE", "geometric": "geometric (closed form)", "wknn": "WKNN (numeric)",
                 "wknn_cfr": "WKNN (numeric + CFR)"}


ANCHORS = ("geometric", "wknn", "wknn_cfr")


#: The paper's ablations (Fig. 4) as the driver names them, with how tables label them.
ABLATION_LABELS = {"scadf_nospace": "no spatial context (L = 1)", "scadf_no_routing": "no dynamic routing",
                   "scadf_single_expert": "single expert", "scadf_no_mmd": "no MMD (λ = 0)",
                   "scadf_no_task_emb": "no task embeddings"}


#: The headline group: points in no training trajectory (the paper's "overall" mostly scores
#: training positions, which sit in test trajectories as spatial context).
HEADLINE = "held-out"


#: The point groups of the per-scene tables (held-out: points in no training trajectory).
GROUPS = ("held-out", "held-out-LOS", "held-out-NLOS", "seen", "seen-LOS", "seen-NLOS", "overall", "centroid")


def label(method: str) -> str:
    """The display name of a method, anchor or ablation variant."""
    return METHOD_LABELS.get(method) or ABLATION_LABELS.get(method) or method


def fmt_ci(mean: float, half: float) -> str:
    """'0.32 ± 0.05' (mean ± 95 % half-width), or '0.32' where the interval is undefined (one seed)."""
    return f"{mean:.2f} ± {half:.2f}" if np.isfinite(half) else f"{mean:.2f}"


def paired_reduction(main: pd.DataFrame, regime: str, group: str) -> pd.DataFrame:
    """Per scene: best baseline (lowest mean MSE), and the per-seed relative reduction of SCADF-MoE
    against it, 100 (1 - scadf / baseline), with a 95 % CI over seeds."""
    sel = main[(main.regime == regime) & (main.group == group) & (main.band == "all")]
    rows = []
    for scene, g in sel.groupby("scene"):
        means = g.groupby("model").mse_m2.mean()
        if "scadf" not in means or len(means) < 2:  # no baseline on this scene (e.g. an inspector-only run)
            continue
        best = means.drop("scadf").idxmin()
        per_seed = g.pivot_table(index="seed", columns="model", values="mse_m2")[["scadf", best]].dropna()
        red = 100 * (1 - per_seed["scadf"] / per_seed[best])
        mean, half = mean_ci(red.values)
        rows.append({"scene": scene, "best_baseline": best, "baseline_mse": means[best], "scadf_mse": means["scadf"],
                     "reduction_pct": mean, "ci95": half, "seeds": len(red)})
    return pd.DataFrame(rows)


def flat_counts(runs: pd.DataFrame) -> pd.Series:
    """Per (model) of the main runs: 'n/N' runs whose validation curve was flat at the end
    (runs.csv ``flat``)."""
    main = runs[runs.study == "main"]
    conv = csv_flags(main["flat"])
    return conv.groupby(main.model).agg(lambda c: f"{int(c.sum())}/{len(c)}")


def not_flat(runs: pd.DataFrame, regime: str) -> pd.DataFrame:
    """The main runs of ``regime`` whose validation curve did not end flat (they ended at their
    maximum budget; runs.csv ``flat``)."""
    sel = runs[(runs.study == "main") & (runs.regime == regime)]
    return sel[~csv_flags(sel["flat"])] if len(sel) else sel


def _not_flat_mark(model: str, flags: pd.Series) -> str:
    """' †' where some of the method's runs (:func:`flat_counts`, 'n/N') were not flat at their end."""
    flat = flags.get(model, "")
    return " †" if flat and flat.split("/")[0] != flat.split("/")[1] else ""


def _distinct(values: pd.Series) -> str:
    """'a, b': the distinct values of a column, sorted (devices, torch versions)."""
    return ", ".join(sorted({str(v) for v in values.dropna()}))


def _share(values: pd.Series, fmt: str = "{:g}") -> str:
    """One value, or 'a-b' for a range (how a setting is stated when the runs differ)."""
    v = values.dropna()
    if v.empty:
        return "n/a"
    lo, hi = v.min(), v.max()
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"
