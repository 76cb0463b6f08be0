"""Out of distribution: trained on 2.6 + 28 GHz, tested on 6 GHz."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scadf_lib.presets import ANCHORS, METHODS, SCENES
from scadf_lib.studies.common import HEADLINE, _distinct, fmt_ci, label, not_flat, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.studies.table_ii import main_table
from scadf_lib.tables import fmt_ratio, mean_ci, ratio_ci


def ood_cost(metrics: pd.DataFrame, band: str = "6.0", group: str = HEADLINE) -> pd.DataFrame:
    """What leaving a band out of training costs: per scene and method (model names), the held-out
    MSE on the ``band`` (GHz) test slots of the Mix runs (the band in training: ``mix_m2``) and of the
    OOD runs (never trained on: ``ood_m2``), m², mean over seeds with 95 % CI half-widths (``*_ci``),
    and the per-seed ratio OOD / Mix as a geometric mean with its 95 % interval (``ratio``,
    ``ratio_low``, ``ratio_high``). A seed's Mix and OOD runs share the split, so both score the same
    test slots; seeds without both are left out. The closed form reads no band: it is left out."""
    sel = metrics[metrics.study.isin(["main", "anchors"]) & (metrics.group == group) & (metrics.band == band)]
    rows = []
    for scene in [s for s in SCENES if s in set(sel[sel.regime == "ood"].scene)]:
        for m in [m for m in (*METHODS, *ANCHORS) if m in set(sel.model) and m != "geometric"]:
            g = sel[(sel.scene == scene) & (sel.model == m)]
            pair = g.pivot_table(index="seed", columns="regime", values="mse_m2")
            if not {"mix", "ood"} <= set(pair.columns):
                continue
            pair = pair[["mix", "ood"]].dropna()
            if pair.empty:
                continue
            (mix, mix_ci), (ood, ood_ci) = mean_ci(pair.mix.values), mean_ci(pair.ood.values)
            ratio, low, high = ratio_ci((pair.ood / pair.mix).to_numpy())
            rows.append({"scene": scene, "model": m, "mix_m2": mix, "mix_ci": mix_ci, "ood_m2": ood, "ood_ci": ood_ci,
                         "ratio": ratio, "ratio_low": low, "ratio_high": high, "seeds": len(pair)})
    return pd.DataFrame(rows, columns=["scene", "model", "mix_m2", "mix_ci", "ood_m2", "ood_ci", "ratio",
                                       "ratio_low", "ratio_high", "seeds"])


def ood_cost_table(metrics: pd.DataFrame, band: str = "6.0", group: str = HEADLINE) -> pd.DataFrame:
    """:func:`ood_cost` as a table: MSE and ratio cells 'mean ± CI', methods by their labels."""
    c = ood_cost(metrics, band, group)
    return pd.DataFrame({"scene": c.scene, "method": c.model.map(label),
                         f"Mix, {band} GHz in training": [fmt_ci(m, h) for m, h in zip(c.mix_m2, c.mix_ci)],
                         f"OOD, {band} GHz never trained on": [fmt_ci(m, h) for m, h in zip(c.ood_m2, c.ood_ci)],
                         "OOD / Mix": [fmt_ratio(*r) for r in zip(c.ratio, c.ratio_low, c.ratio_high)],
                         "seeds": c.seeds})


def ood_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs = rs.metrics, rs.runs
    ood = metrics[(metrics.study == "main") & (metrics.regime == "ood")]
    head = "## OOD: train 2.6 + 28 GHz, test 6 GHz (the paper's Fig. 3, bottom): MSE (m²)\n\n"
    if ood.empty:
        return head + "No OOD run has finished in this set yet; the anchors' OOD scores are in the appendix.\n"
    scenes = tuple(s for s in SCENES if s in set(ood.scene))
    return (head + report_table(main_table(metrics, runs, "ood", scenes, (HEADLINE, "held-out-NLOS", "overall")))
            + "\n\nEvery test point is at 6 GHz, a band no training sample holds; the anchors match 6 GHz "
            "fingerprints against the 2.6 and 28 GHz training fingerprints.\n" + ood_cost_text(metrics))


def ood_cost_text(metrics: pd.DataFrame) -> str:
    """The OOD cost table (:func:`scadf_lib.analysis.ood_cost_table`) with its reading."""
    cost = ood_cost_table(metrics)
    if cost.empty:
        return ""
    return ("\nWhat the unseen band costs: the same held-out 6 GHz test slots scored by the Mix run of the same seed "
            "(6 GHz in training) and by the OOD run (6 GHz never trained on), held-out MSE (m²); OOD / Mix is the "
            "per-seed ratio as a geometric mean with its 95 % interval:\n\n" + report_table(cost) + "\n")


def ood_readme_lines(metrics: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """The README's OOD sentence: per scene with OOD runs, each trained method's held-out MSE on the
    unseen 6 GHz band and how many times its Mix error on the same slots that is, and the OOD runs
    that ended at their maximum budget, not flat; [] without OOD runs."""
    cost = ood_cost(metrics)
    cost = cost[cost.model.isin(METHODS)]
    if cost.empty:
        return []
    parts = [f"{scene}: " + ", ".join(f"{label(r.model)} {r.ood_m2:.2f}" for r in g.itertuples())
             + f" (mean of {_distinct(g.seeds)} seeds; intervals in REPORT.md), {g.ratio.min():.1f}-"
             f"{g.ratio.max():.1f} times each method's Mix error on the same 6 GHz slots"
             for scene, g in cost.groupby("scene", sort=False)]
    short = not_flat(runs, "ood")
    ended = "" if short.empty else " Ended at the maximum budget, not flat: " + ", ".join(short.name) + "."
    return ["OOD (trained on 2.6 + 28 GHz, tested on 6 GHz), held-out MSE (m²), " + "; ".join(parts) + "." + ended,
            ""]
