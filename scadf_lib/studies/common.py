"""Names, labels and the small shared table helpers every study uses."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from scadf_lib.studies.resultset import ResultSet
from scadf_lib.tables import csv_flags, md_table, ratio_ci


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


def sweep_state(runs: pd.DataFrame, preset: str) -> str:
    """Where a study's sweep stands, for its section: its trained and anchor runs in ``runs`` (the
    set's ``runs.csv``) against the driver's plan of ``preset``, and the command that resumes it
    while runs are missing."""
    counts = {kind: int(n) for kind, n in (("trained", (runs.study != "anchors").sum()),
                                            ("anchor", (runs.study == "anchors").sum()))}
    held = " and ".join(f"{n} {kind} run{'' if n == 1 else 's'}" for kind, n in counts.items())
    if sweep_complete(runs, preset):
        return f"every planned run is in ({held})"
    return (f"{held} of {len(planned_runs(preset))} planned "
            f"(`python -m scadf_lib.experiments --preset {preset} --jobs 2 --park` resumes it)")


def planned_runs(preset: str) -> set[str]:
    """The names of the runs the sweep driver plans for ``preset``."""
    from scadf_lib.planning import plan  # the driver's plan (imports torch)
    return {r.name for r in plan(preset)}


def sweep_complete(runs: pd.DataFrame, preset: str) -> bool:
    """Whether ``runs`` (a set's ``runs.csv``) holds every run the driver plans for ``preset``."""
    return planned_runs(preset) <= set(runs.name)


def pooled_errors(rs: ResultSet, names) -> pd.DataFrame | None:
    """The kept held-out errors (``errors/<run>.csv.gz``) of the runs ``names`` pooled, as the error-CDF
    plots read them: ``error_m`` = each point's RMS error over the test trajectories that hold it (m),
    ``held_out`` True; None where none of the runs kept its errors."""
    tables = [t for n in names if (t := rs.errors(n)) is not None]
    if not tables:
        return None
    e = pd.concat(tables, ignore_index=True)
    return pd.DataFrame({"error_m": np.sqrt(e.sq_error_m2), "held_out": True})


def figure_line(rs: ResultSet, name: str, alt: str) -> str:
    """A report's Markdown line for the set's figure ``name`` ('' where the set has none)."""
    return f"![{alt}]({name})\n\n" if rs.has(name) else ""


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


#: Column identifiers of the study tables and how the report heads them: words, with units.
COLUMN_WORDS = {
    "model": "method", "anchor": "anchor", "held_out_slots": "held-out slots", "mse_m2": "MSE (m²)",
    "median_sq_error_m2": "median squared error (m²)", "max_error_m": "largest error (m)",
    "centroid_term_m2": "centroid term (m²)", "offset_term_m2": "offset term (m²)",
    "offset_floor_m2": "centroid reference, same points (m²)", "centroid_head_m2": "centroid head MSE (m²)",
    "mean_of_points_m2": "mean of the points as centroid (m²)", "offset_share_explained": "offsets explained (R²)",
    "late_gain_pct_mean": "late gain, mean (%)", "late_gain_pct_max": "late gain, max (%)",
    "best_epoch_median": "best epoch (median)", "train_min_mean": "training time, mean (min)",
    "floor_exponent_median": "floor exponent α (median)",
    "budget_x_to_best_median": "budget multiple to reach the best method (median, extrapolated)",
    "floor_alpha_early_median": "α, first half of the floor (median)",
    "floor_alpha_late_median": "α, second half of the floor (median)", "held_out_points": "held-out points",
    "isolated": "isolated points (count, mean over seeds)", "isolated_error_pct": "squared error on isolated points (%)",
    "mse_without_isolated_m2": "MSE without isolated points (m²)",
    "top1pct_error_pct": "squared error on the worst 1 % of points (%)", "best": "lowest mean",
    "best_mse": "lowest mean MSE (m²)", "scadf_mse": "SCADF-MoE MSE (m²)", "scadf_rank": "SCADF-MoE rank",
    "scadf_over_clean": "SCADF-MoE / its clean MSE", "best_baseline_over_clean": "best baseline / its clean MSE",
    "share_clean": "CFR share, clean", "share_30dB": "CFR share, 30 dB", "share_10dB": "CFR share, 10 dB",
    "share_0dB": "CFR share, 0 dB", "share_cfr_missing": "CFR share, CFR missing",
    "drop_clean_to_0dB": "drop of the CFR share, clean to 0 dB", "ci95": "± (95 % interval)",
    "low_m2": "lowest seed (m²)", "high_m2": "highest seed (m²)", "worst_seed": "highest seed", "ratio": "ratio",
    "held_out_points_mse": "held-out points MSE (m²)", "held_out_blocks_mse": "held-out blocks MSE (m²)",
    "blocks_over_points": "blocks / points", "pairs": "pairs", "scadf_closer_share": "share where SCADF-MoE is closer",
    "nospace_mse": "L = 1 MSE (m²)", "nospace_minus_scadf": "L = 1 minus SCADF-MoE (m²)",
}


def corruption_words(name: str) -> str:
    """'cfr_snr_db=30' -> 'CFR SNR 30 dB', 'angle_deg=10' -> 'angles ±10°' ...: a test-time corruption
    (:mod:`scadf_lib.degradation`) in words; other names unchanged."""
    kind, _, level = str(name).partition("=")
    form = {"cfr_snr_db": "CFR SNR {} dB", "angle_deg": "angle error {}°", "distance_pct": "distance error {} %",
            "gain_db": "gain error {} dB"}.get(kind)
    return form.format(level) if form and level else (form.split(" {}")[0] if form else str(name))


def words(table: pd.DataFrame) -> pd.DataFrame:
    """A study table as the report shows it: identifiers in the headers replaced by words with units
    (:data:`COLUMN_WORDS`, corruption labels by :func:`corruption_words`), methods by their names."""
    t = table.copy()
    if "model" in t:
        t["model"] = t.model.astype(str).map(label)
    for col in ("corruption", "best", "best_baseline"):
        if col in t:
            t[col] = t[col].map(lambda v: label(corruption_words(v)) if isinstance(v, str) else v)
    return t.rename(columns=column_words)


def column_words(name: str) -> str:
    """One column identifier in words (:data:`COLUMN_WORDS`, the worst-n columns, corruption labels)."""
    if name in COLUMN_WORDS:
        return COLUMN_WORDS[name]
    if m := re.fullmatch(r"worst_(\d+)_share_pct", str(name)):
        return f"squared error on the {m.group(1)} worst (%)"
    if m := re.fullmatch(r"mse_without_worst_(\d+)_m2", str(name)):
        return f"MSE without the {m.group(1)} worst (m²)"
    return corruption_words(name)


def report_table(table: pd.DataFrame) -> str:
    """A study table as Markdown, headed in words (:func:`words`)."""
    return md_table(words(table))
