"""The paper's three claims, tested on the reference set by rules fixed in advance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import METHODS, SCENES
from scadf_lib.studies.common import label, paired_reduction, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import fmt_ratio, summarize


PAPER_CLAIMS = {
    "submeter": "sub-meter MSE (below 1 m^2) on every scene",
    "reduction": "61-63 % lower MSE than the best baseline",
    "unseen": "about half the unseen-NLOS error of the best baseline (55 % lower)",
}


#: Each reduction claim of :data:`PAPER_CLAIMS`: the point group it is scored on and the least
#: reduction (%) against the best baseline that counts as reproducing it, 100 (1 - ratio) of the
#: per-seed MSE ratio's geometric mean: the paper's 61 % overall (a ratio of at most 0.39), and 45 % on
#: held-out NLOS points for its "about half" (it reports 55 %; a ratio of at most 0.55).
CLAIM_NEEDS = {"reduction": ("overall", 61), "unseen": ("held-out-NLOS", 45)}


#: The paper's Table II MSE for SCADF-MoE and SoftMoE on its three WAIR-D scenes, as quoted in
#: ``shared/research/peers.md`` (arXiv 2507.01337; units not stated there: see METRIC_NOTE).
PAPER_TABLE_II = {"scadf": (0.34, 0.53, 0.56), "softmoe": (1.40, 1.37, 1.45)}


def paper_comparison(main: pd.DataFrame, scenes: list[str]) -> pd.DataFrame:
    """Our Mix overall MSE of SCADF-MoE and SoftMoE in both conventions beside the paper's
    Table II values (its scenes are WAIR-D's, not ours: a scale check, not a like-for-like)."""
    s = summarize(main[main.regime == "mix"], ["scene", "model"], "overall").set_index(["scene", "model"])
    rows = []
    for m, paper in PAPER_TABLE_II.items():
        for scene in scenes:
            if (scene, m) in s.index:
                v = float(s.loc[(scene, m)].mse_m2)
                rows.append({"method": label(m), "our scene": scene, "ours, squared Euclidean (m²)": round(v, 3),
                             "ours, per coordinate (m²)": round(v / 2, 3),
                             "paper Table II (3 WAIR-D scenes)": " / ".join(f"{x:.2f}" for x in paper)})
    return pd.DataFrame(rows)


def _submeter_cell(held_out: float, overall: float) -> str:
    return f"held-out {held_out:.2f} ({held_out / 2:.2f} per coord.); overall {overall:.2f} ({overall / 2:.2f})"


def submeter_verdict(mse: dict[str, dict[str, float]], complete: bool) -> str:
    """The sub-meter claim judged on every scene's SCADF-MoE Mix MSE (m², mean over seeds) of held-out
    points (the headline) and of all test points (the paper's scoring), each in both conventions
    (:data:`METRIC_NOTE`). The bold word follows the held-out points; the rest says where it differs."""
    def met(group: str, per: float) -> bool:
        return len(mse) == len(SCENES) and all(v[group] / per < 1 for v in mse.values())

    def word(group: str) -> str:
        return "reproduces" if met(group, 1) else "reproduces only per coordinate" if met(group, 2) else \
            "does not reproduce"
    head, overall = word("held-out"), word("overall")
    per = 2 if head == "does not reproduce" else 1  # the scenes that fail even per coordinate, or in ours
    misses = [f"{s}: {v['held-out']:.2f} m², {v['held-out'] / 2:.2f} per coordinate" for s, v in mse.items()
              if v["held-out"] / per >= 1] if head != "reproduces" else []
    text = f"**{head}** on held-out points" + (f" ({'; '.join(misses)})" if misses else "")
    if overall != head:
        text += f"; on all test points (the paper's scoring) it {overall}"
    return text + ("" if complete else " (provisional: seeds missing)")


def claims_verdicts(main: pd.DataFrame) -> pd.DataFrame:
    """The paper's three claims (:data:`PAPER_CLAIMS`), one row each: SCADF-MoE's number per scene and
    the verdict. Sub-meter: :func:`submeter_verdict`; reductions: the geometric mean of the per-seed
    MSE ratio against the best baseline reaching :data:`CLAIM_NEEDS` on every scene. 'provisional'
    where a scene lacks three seeds of every method."""
    mix = main[main.regime == "mix"]
    scenes = [s for s in SCENES if ((mix.scene == s) & (mix.model == "scadf")).any()]
    complete = all(mix[(mix.scene == s) & (mix.model == m)].seed.nunique() >= 3 for s in SCENES for m in METHODS)
    stats = {g: summarize(mix, ["scene", "model"], g).set_index(["scene", "model"]).mse_m2
             for g in ("held-out", "overall")}
    mse = {s: {g: float(stats[g].get((s, "scadf"), np.nan)) for g in stats} for s in scenes}
    rows = [{"claim": PAPER_CLAIMS["submeter"], **{s: _submeter_cell(v["held-out"], v["overall"])
                                                    for s, v in mse.items()},
             "verdict": submeter_verdict(mse, complete)}]
    for key, (group, need) in CLAIM_NEEDS.items():
        red = paired_reduction(main, "mix", group).set_index("scene")
        cells = {s: f"{fmt_ratio(r.ratio, r.ratio_low, r.ratio_high)} of {label(r.best_baseline)} "
                    f"({abs(r.reduction_pct):.0f} % {'lower' if r.reduction_pct >= 0 else 'higher'})"
                 for s, r in red.iterrows() if s in scenes}
        met = len(cells) == len(SCENES) and bool((red.reduction_pct >= need).all())
        text = "reproduces" if met else "does not reproduce"
        rows.append({"claim": PAPER_CLAIMS[key], **cells,
                     "verdict": f"**{text}**" + ("" if complete else " (provisional: seeds missing)")})
    return pd.DataFrame(rows, columns=["claim", *SCENES, "verdict"]).fillna("n/a")


def one_scene_claims(cells: dict[str, pd.DataFrame], key: str) -> pd.DataFrame:
    """The paper's three claims on one scene, by the reference set's rules restricted to it, one row
    per ``cells`` entry (its name in column ``key``; its metric rows, all bands pooled): SCADF-MoE's
    held-out MSE below 1 m² (and per coordinate); its per-seed ratio to the best baseline overall and
    on held-out NLOS points (geometric mean with its interval) reaching 61 % and 45 % lower."""
    heads = {"submeter": "sub-metre (held-out MSE)", "reduction": "61-63 % below the best baseline (all test points)",
             "unseen": "about half the unseen-NLOS error (held-out NLOS)"}
    rows = []
    for name, g in cells.items():
        g = g.assign(regime="mix", band="all")
        held = g[(g.model == "scadf") & (g.group == "held-out")].mse_m2
        if held.empty:
            continue
        mse = float(held.mean())
        row = {key: name, heads["submeter"]: f"{mse:.2f} m² ({mse / 2:.2f} per coordinate): "
               + ("meets" if mse < 1 else "meets only per coordinate" if mse / 2 < 1 else "misses")}
        for claim, (group, need) in CLAIM_NEEDS.items():
            red = paired_reduction(g, "mix", group)
            if len(red):
                r = red.iloc[0]
                row[heads[claim]] = (f"{fmt_ratio(r.ratio, r.ratio_low, r.ratio_high)} of {label(r.best_baseline)}: "
                                     + ("meets" if r.reduction_pct >= need else "misses"))
        rows.append(row)
    return pd.DataFrame(rows)


METRIC_NOTE = ("Metric convention. Ours: MSE = mean over points of the squared Euclidean error |p̂ - p|² (m²). "
               "The paper's formula is missing from our text; the first author's earlier public code (AMDNLoc, "
               "`Horizontal666/AMDNloc`) prints `((y - ŷ)**2).mean()` over x and y, i.e. the mean per coordinate: "
               "**half** of ours. Relative claims (reductions against a baseline) are the same in both conventions; "
               "the sub-meter claim is not.")


def claims_section(rs: ResultSet | Path) -> str:
    metrics = as_set(rs).metrics
    main = metrics[metrics.study == "main"]
    if main.empty:
        return ""
    return ("## The paper's claims\n\n" + report_table(claims_verdicts(main)) + "\n\n"
            "Rules (the thresholds were fixed before the runs; after them, on review, the per-seed averaging moved to "
            "a log scale and the sub-meter claim is judged on held-out points too): sub-meter = SCADF-MoE's Mix MSE "
            "below 1 m² on every scene, judged on "
            "held-out points (the headline) and on all test points (the paper's scoring), in both conventions "
            "(below). The reductions compare SCADF-MoE with the best baseline (the lowest mean MSE on that scene) "
            "seed by seed: the geometric mean of the per-seed MSE ratios, with its 95 % interval (a ratio of 0.39 "
            "is 61 % lower), overall (the paper reports 61-63 %; at least "
            f"{CLAIM_NEEDS['reduction'][1]} % lower counts) and on held-out NLOS points (the paper's unseen NLOS: about "
            f"half, 55 % lower; at least {CLAIM_NEEDS['unseen'][1]} % counts), needed on every scene. A scene with "
            "fewer than three seeds of every method makes the verdict provisional.\n\n" + METRIC_NOTE + "\n\n"
            "Beside the paper's Table II (its WAIR-D scenes, not ours: a check of scale, not a like-for-like):\n\n"
            + report_table(paper_comparison(main, [s for s in SCENES if s in set(main.scene)])) + "\n")
