"""Names, labels and the small shared table helpers every study uses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scadf_lib.tables import csv_flags, ratio_ci


#: How methods and anchors are named in tables and figures.
METHOD_LABELS = {"concat": "Concat", "fullcon": "FullCon", "transfusion": "TransFusion", "softmoe": "SoftMoE",
                 "scadf": "SCADF-MoE", "geometric": "geometric (closed form)", "wknn": "WKNN (numeric)",
                 "wknn_cfr": "WKNN (numeric + CFR)", "hybrid": "hybrid (closed form on LOS, WKNN on NLOS)"}




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
    """Per scene: the best baseline (lowest mean MSE), and SCADF-MoE's MSE over it seed by seed, as a
    geometric mean with its 95 % interval (``ratio``, ``ratio_low``, ``ratio_high``: log scale, so no
    one seed dominates), and the reduction that ratio is, 100 (1 - ratio) (%)."""
    sel = main[(main.regime == regime) & (main.group == group) & (main.band == "all")]
    rows = []
    for scene, g in sel.groupby("scene"):
        means = g.groupby("model").mse_m2.mean()
        if "scadf" not in means or len(means) < 2:  # no baseline on this scene (e.g. an inspector-only run)
            continue
        best = means.drop("scadf").idxmin()
        per_seed = g.pivot_table(index="seed", columns="model", values="mse_m2")[["scadf", best]].dropna()
        ratio, low, high = ratio_ci((per_seed["scadf"] / per_seed[best]).to_numpy())
        rows.append({"scene": scene, "best_baseline": best, "baseline_mse": means[best], "scadf_mse": means["scadf"],
                     "ratio": ratio, "ratio_low": low, "ratio_high": high, "reduction_pct": 100 * (1 - ratio),
                     "seeds": len(per_seed)})
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


def ratio_verdict(low: float, high: float) -> str:
    """What a ratio's 95 % interval shows: 'lower' (below 1), 'higher' (above 1), or 'no difference
    shown' (it holds 1, or one seed gives no interval)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no difference shown"
    return "lower" if high < 1 else "higher" if low > 1 else "no difference shown"


def pairwise_ratios(metrics: pd.DataFrame, regime: str = "mix", group: str = HEADLINE, ref: str = "scadf",
                    studies: tuple[str, ...] = ("main", "anchors")) -> pd.DataFrame:
    """Per scene and other method: ``ref``'s ``group`` MSE over the other's, seed by seed on the
    seeds both have, as a geometric mean with its 95 % interval (:func:`scadf_lib.tables.ratio_ci`),
    on how many seeds ``ref`` was lower, and :func:`ratio_verdict`."""
    sel = metrics[metrics.study.isin(studies) & (metrics.regime == regime) & (metrics.group == group)
                  & (metrics.band == "all")]
    cols = ["scene", "other", "ratio", "low", "high", "seeds", "lower_on", "verdict"]
    rows = []
    for scene, g in sel.groupby("scene", sort=False):
        per = g.pivot_table(index="seed", columns="model", values="mse_m2")
        if ref not in per:
            continue
        for other in [m for m in per.columns if m != ref]:
            pair = per[[ref, other]].dropna()
            ratio = (pair[ref] / pair[other]).to_numpy()
            mean, low, high = ratio_ci(ratio)
            rows.append({"scene": scene, "other": other, "ratio": mean, "low": low, "high": high, "seeds": len(pair),
                         "lower_on": int((ratio < 1).sum()), "verdict": ratio_verdict(low, high)})
    return pd.DataFrame(rows, columns=cols)
