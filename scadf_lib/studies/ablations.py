"""The paper's ablations (Fig. 4): what removing each part of SCADF-MoE does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.studies.common import ABLATION_LABELS, HEADLINE, fmt_ci, label, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import fmt_ratio, ratio_ci, summarize


def variant_table(metrics: pd.DataFrame, variants: pd.DataFrame, reference: pd.DataFrame,
                  groups: tuple[str, ...] = (HEADLINE, "held-out-NLOS", "overall"),
                  runs: pd.DataFrame | None = None, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Variants of SCADF-MoE against the full model on the same seeds (same split, same initial data
    order): per variant the MSE (m², mean ± 95 % CI over seeds) per group and the per-seed paired
    change against the reference (%, mean ± 95 % CI). ``variants``: metric rows with a ``variant``
    column; ``reference``: the full model's rows. The per-seed ratios to the full model are summarised
    on the log scale (geometric mean with its 95 % interval, :func:`scadf_lib.tables.ratio_ci`). With
    ``runs``: the epochs its runs trained ('32' or the range over seeds, '32-203'), since each run stops
    by the rule, not at a fixed budget. With ``curves``: the per-seed :func:`equal_epoch_val_change`
    against the full model, as a ratio the same way."""
    ref = reference[reference.seed.isin(variants.seed.unique())].assign(variant="scadf")
    both = pd.concat([ref, variants])
    both = both[both.band == "all"]
    order = ["scadf", *[v for v in ABLATION_LABELS if v in set(variants.variant)],
             *sorted(set(variants.variant) - set(ABLATION_LABELS))]
    rows = []
    for v in order:
        g = both[both.variant == v]
        row = {"variant": "full model" if v == "scadf" else label(v), "seeds": g.seed.nunique()}
        for grp in groups:
            s = summarize(g, ["variant"], grp)
            row[f"{grp} (m²)"] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        for grp in groups[:1] + groups[-1:]:
            change = paired_change(both, grp, v) if v != "scadf" else pd.Series(dtype=float)
            row[f"{grp}: ratio to the full model"] = fmt_ratio(*ratio_ci(1 + change.to_numpy() / 100)) if len(change) \
                else ""
        if runs is not None:
            row["epochs"] = _epoch_range(runs, g.name.unique())
        if curves is not None:
            row[EQUAL_EPOCHS] = "" if v == "scadf" else _equal_epoch_cell(curves, both, v)
        rows.append(row)
    return pd.DataFrame(rows)


def equal_epoch_val_change(curves: pd.DataFrame, name: str, reference: str) -> float:
    """Run ``name`` against run ``reference`` at the same training budget (%, positive: ``name`` does
    worse): each run's validation point MSE (m², ``curves.csv.gz`` val_mse_points_m2) at its best
    checkpoint (lowest val_localisation, the stopping rule's criterion) within the first E epochs,
    E = the fewer epochs of the two. Every run stops by the same rule, so one whose curve kept falling
    trains longer; this separates a setting's effect from that budget. NaN where a curve is missing."""
    n, r = curves[curves.name == name], curves[curves.name == reference]
    if n.empty or r.empty:
        return np.nan
    epochs = min(n.epoch.max(), r.epoch.max())

    def at_best(c: pd.DataFrame) -> float:
        c = c[c.epoch <= epochs]
        return float(c.val_mse_points_m2.loc[c.val_localisation.idxmin()])
    return 100 * (at_best(n) / at_best(r) - 1)


def paired_change(rows: pd.DataFrame, group: str, variant: str) -> pd.Series:
    """Per seed, the change (%) of ``variant``'s MSE against the full model's ("scadf") on ``group``,
    over the seeds both have (positive: the variant does worse); empty where the variant has none."""
    per_seed = rows[rows.group == group].pivot_table(index="seed", columns="variant", values="mse_m2")
    if variant not in per_seed or "scadf" not in per_seed:
        return pd.Series(dtype=float)
    pair = per_seed[["scadf", variant]].dropna()
    return 100 * (pair[variant] / pair["scadf"] - 1)


def ablation_verdict(worse: int, seeds: int, low: float, high: float, val_worse: int | None = None,
                     val_seeds: int | None = None) -> str:
    """The verdict on a removed part, worded no stronger than its evidence: 'the part helps' needs the
    variant's error higher on every seed, the ratio's interval above 1 and, where curves say it, higher at
    equal epochs on every seed too; 'the part hurts' the mirror of it. Every seed one way with an interval
    that holds 1 (or one seed, no interval) is 'higher (lower) on every seed; not shown beyond the
    seeds'; seeds that disagree are 'no consistent effect'."""
    equal = val_seeds is None or val_seeds == 0 or val_worse in (0, val_seeds)
    if worse == seeds:
        if np.isfinite(low) and low > 1 and equal and (val_seeds in (None, 0) or val_worse == val_seeds):
            return "the part helps"
        at_equal = "" if val_seeds in (None, 0) else f", higher at equal epochs on {val_worse} of {val_seeds}"
        return f"error higher on every seed{at_equal}; not shown beyond the seeds"
    if worse == 0:
        if np.isfinite(high) and high < 1 and (val_seeds in (None, 0) or val_worse == 0):
            return "the part hurts"
        return "error lower on every seed; not shown beyond the seeds"
    return "no consistent effect"


def ablation_effects(metrics: pd.DataFrame, scene: str = "munich", group: str = HEADLINE,
                     seeds_needed: int = 3, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Does each part of SCADF-MoE help, as the paper's Fig. 4 says? Per ablation: the seeds paired
    with the full model, on how many the variant's ``group`` MSE is higher (removing the part hurt),
    the per-seed ratio variant / full model as a geometric mean with its 95 % interval (``ratio``,
    ``low``, ``high``; ``change_pct`` = 100 (ratio - 1)) and :func:`ablation_verdict`; '(provisional)'
    below ``seeds_needed`` seeds. With ``curves``: on how many of the seeds with curves (``val_seeds``)
    the variant's validation error at equal epochs is higher (``val_worse_on``,
    :func:`equal_epoch_val_change`): the same question with the budget held equal."""
    sel, ref = ablation_rows(metrics, scene)
    sel, ref = sel[sel.band == "all"], ref[ref.band == "all"]
    both = pd.concat([ref.assign(variant="scadf"), sel])
    rows = []
    for v in [v for v in ABLATION_LABELS if v in set(sel.variant)]:
        change = paired_change(both, group, v)
        if change.empty:
            continue
        ratio, low, high = ratio_ci(1 + change.to_numpy() / 100)
        worse = int((change > 0).sum())
        val = equal_epoch_changes(curves, both, v) if curves is not None else None
        val_worse = None if val is None else int((val > 0).sum())
        verdict = ablation_verdict(worse, len(change), low, high, val_worse, None if val is None else len(val))
        row = {"variant": label(v), "seeds": len(change), "worse_on": worse, "ratio": ratio, "low": low, "high": high,
               "change_pct": 100 * (ratio - 1), "verdict": verdict + (" (provisional)" if len(change) < seeds_needed
                                                                      else "")}
        if val is not None:
            row.update(val_seeds=len(val), val_worse_on=val_worse)
        rows.append(row)
    columns = ["variant", "seeds", "worse_on", "ratio", "low", "high", "change_pct", "verdict"]
    return pd.DataFrame(rows, columns=columns + (["val_seeds", "val_worse_on"] if curves is not None else []))


#: The column of a run's change at equal epochs on the validation points: a ratio in the ablation table,
#: a percentage in the sensitivity table (one seed).
EQUAL_EPOCHS = "validation error at equal epochs: ratio to the full model"
EQUAL_EPOCHS_PCT = "validation change at equal epochs (%)"


def equal_epoch_changes(curves: pd.DataFrame, both: pd.DataFrame, variant: str) -> np.ndarray:
    """Per seed, :func:`equal_epoch_val_change` of ``variant``'s run against the full model's ('scadf')
    run of that seed (``both``: metric rows of both, with ``variant`` and ``name``); seeds without
    both curves left out."""
    names = both.drop_duplicates(["variant", "seed"]).pivot(index="seed", columns="variant", values="name")
    if "scadf" not in names or variant not in names:
        return np.array([])
    pairs = names[["scadf", variant]].dropna()
    change = np.array([equal_epoch_val_change(curves, r[variant], r["scadf"]) for _, r in pairs.iterrows()])
    return change[np.isfinite(change)]


def _equal_epoch_cell(curves: pd.DataFrame, both: pd.DataFrame, variant: str) -> str:
    """:func:`equal_epoch_changes` as a ratio (geometric mean with its 95 % interval); '' without curves."""
    change = equal_epoch_changes(curves, both, variant)
    return fmt_ratio(*ratio_ci(1 + change / 100)) if len(change) else ""


def _epoch_range(runs: pd.DataFrame, names) -> str:
    """'32' or '32-203': the epochs the named runs trained (``runs.csv`` epochs_trained); '' if none."""
    e = runs.set_index("name").epochs_trained.reindex(list(names)).dropna().astype(int)
    return "" if e.empty else f"{e.min()}" if e.min() == e.max() else f"{e.min()}-{e.max()}"


def ablation_summary(metrics: pd.DataFrame, scene: str = "munich",
                     groups: tuple[str, ...] = (HEADLINE, "overall")) -> pd.DataFrame:
    """The ablation and L = 1 variants beside the full model on the seeds they have: MSE (m², mean and
    95 % CI over seeds) per variant and group, the input of :func:`scadf_lib.plots.method_bars`."""
    variants, full = ablation_rows(metrics, scene)
    if variants.empty:
        return pd.DataFrame(columns=["variant", "mse_m2", "ci95", "seeds", "group"])
    both = pd.concat([full[full.seed.isin(variants.seed.unique())].assign(variant="scadf"), variants])
    s = pd.concat([summarize(both, ["variant"], g).assign(group=g) for g in groups])
    return s.assign(variant=s.variant.map(lambda v: "full model" if v == "scadf" else label(v)))


def ablation_table(metrics: pd.DataFrame, scene: str = "munich", runs: pd.DataFrame | None = None,
                   curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's ablations (Fig. 4) on ``scene`` Mix: :func:`variant_table` of the ``ablation`` and
    ``spatial`` (L = 1) runs against SCADF-MoE's main runs (with ``runs``: the epochs trained; with
    ``curves``: the change at equal epochs on the validation set); empty without ablation runs."""
    sel, ref = ablation_rows(metrics, scene)
    if sel.empty:
        return pd.DataFrame()
    return variant_table(metrics, sel, ref, runs=runs, curves=curves)


def ablation_rows(metrics: pd.DataFrame, scene: str = "munich") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the ablation and L = 1 runs' metric rows, SCADF-MoE's main runs' rows) on ``scene`` Mix."""
    mix = metrics[(metrics.scene == scene) & (metrics.regime == "mix")]
    return (mix[mix.study.isin(["ablation", "spatial"])],
            mix[(mix.study == "main") & (mix.model == "scadf")])


def ablation_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs, curves = rs.metrics, rs.runs, rs.curves
    table = ablation_table(metrics, runs=runs, curves=curves)
    head = "## Ablations (the paper's Fig. 4), munich Mix\n\n"
    if table.empty:
        return head + "No ablation run has finished in this set yet.\n"
    return (head + report_table(table) + "\n\nEach variant removes one part of SCADF-MoE and is trained on the same "
            "seeds, split and schedule as the full model; `ratio to the full model` is its MSE over the full "
            "model's, seed by seed, as a geometric mean with its 95 % interval (above 1: the part helps). `epochs`: "
            "what its runs trained (the range over seeds): every run stops by the same rule, so a run whose curve "
            "kept falling trained longer, and part of a change on one seed can be that budget (appendix E: how much "
            "the held floor moved each method). `validation error at equal epochs`: the same pairing with the "
            "budget held equal, on the validation points: each run's validation point MSE at its best checkpoint "
            "within the epochs both runs trained.\n" + ablation_verdict_text(metrics, curves))


def ablation_verdict_text(metrics: pd.DataFrame, curves: pd.DataFrame | None = None) -> str:
    """One sentence per ablation: does removing the part raise the held-out error, on how many seeds,
    by what ratio, and the verdict of :func:`ablation_verdict`."""
    effects = ablation_effects(metrics, curves=curves)
    if effects.empty:
        return ""
    each = [f"{r.variant}: error higher on {r.worse_on} of {r.seeds} seeds, {fmt_ratio(r.ratio, r.low, r.high)} the "
            f"full model's, **{r.verdict}**" for r in effects.itertuples()]
    return ("\nDoes each part help, as the paper's Fig. 4 says (removing any part raises the error)? Held-out MSE, "
            "paired seed by seed; **the part helps** needs a higher error without it on every seed, the ratio's "
            "interval above 1 and a higher validation error at equal epochs on every seed: "
            + "; ".join(each) + ".\n")


def ablation_readme_lines(metrics: pd.DataFrame, curves: pd.DataFrame | None = None) -> list[str]:
    """The README's ablation sentence: per part of SCADF-MoE, the verdict of :func:`ablation_effects`
    and on how many seeds removing it raised the held-out error; [] without ablation runs."""
    effects = ablation_effects(metrics, curves=curves)
    if effects.empty:
        return []
    return ["Does each part help, as the paper's ablations (Fig. 4) say? Each variant removes one part; munich, "
            "held-out MSE against the full model, seed by seed: "
            + "; ".join(f"{r.variant}: " + ("" if r.verdict.startswith("error") else
                                             f"error higher on {r.worse_on} of {r.seeds} seeds, ") + r.verdict
                        for r in effects.itertuples()) + ".", ""]
