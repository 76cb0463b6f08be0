"""The paper's three claims, tested on the reference set by rules fixed in advance."""

from __future__ import annotations

import pandas as pd

from scadf_lib.presets import METHODS, SCENES
from scadf_lib.studies.common import fmt_ci, label, paired_reduction
from scadf_lib.tables import md_table, summarize


PAPER_CLAIMS = {
    "submeter": "sub-meter MSE (below 1 m^2) on every scene",
    "reduction": "61-63 % lower MSE than the best baseline",
    "unseen": "about half the unseen-NLOS error of the best baseline (55 % lower)",
}


#: Each reduction claim of :data:`PAPER_CLAIMS`: the point group it is scored on and the least mean
#: per-seed reduction (%) against the best baseline that counts as reproducing it: the paper's 61 %
#: overall, and 45 % on held-out NLOS points for its "about half" (it reports 55 %).
CLAIM_NEEDS = {"reduction": ("overall", 61), "unseen": ("held-out-NLOS", 45)}


#: The paper's Table II MSE for SCADF-MoE and SoftMoE on its three WAIR-D scenes, as quoted in
#: ``shared/research/peers.md`` (arXiv 2507.01337; units not stated there: see METRIC_NOTE).
PAPER_TABLE_II = {"scadf": (0.34, 0.53, 0.56), "softmoe": (1.40, 1.37, 1.45)}


def claims_table(main: pd.DataFrame, scenes: list[str]) -> pd.DataFrame:
    """The paper's three claims on flat runs, per scene, in both metric conventions (METRIC_NOTE):
    SCADF-MoE's Mix overall MSE against 1 m² (ours and half of it), and its per-seed reduction against
    the best baseline (overall and held-out NLOS; convention-free)."""
    rows = []
    mix = summarize(main[main.regime == "mix"], ["scene", "model"], "overall").set_index(["scene", "model"])
    for scene in scenes:
        if (scene, "scadf") not in mix.index:
            continue
        mse = float(mix.loc[(scene, "scadf")].mse_m2)
        rows.append({"scene": scene, "claim": PAPER_CLAIMS["submeter"], "ours (squared Euclidean)":
                     f"{mse:.3f} m² → {'meets' if mse < 1 else 'misses'}", "AMDNLoc (per coordinate)":
                     f"{mse / 2:.3f} m² → {'meets' if mse / 2 < 1 else 'misses'}"})
        for key, (group, need) in CLAIM_NEEDS.items():
            red = paired_reduction(main[main.scene == scene], "mix", group)
            if len(red):
                r = red.iloc[0]
                text = (f"{fmt_ci(r.reduction_pct, r.ci95)} % vs {r.best_baseline} → "
                        f"{'meets' if r.reduction_pct >= need else 'misses'} ({need} %)")
                rows.append({"scene": scene, "claim": PAPER_CLAIMS[key], "ours (squared Euclidean)": text,
                             "AMDNLoc (per coordinate)": text + " (same: the ratio is convention-free)"})
    return pd.DataFrame(rows)


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


def claims_verdicts(main: pd.DataFrame) -> pd.DataFrame:
    """The paper's three claims (:data:`PAPER_CLAIMS`), one row each: SCADF-MoE's number per scene and
    the verdict. Sub-meter: Mix overall MSE < 1 m² on every scene (ours, and half of it in the per-
    coordinate convention); reductions: mean per-seed reduction against the best baseline reaching
    :data:`CLAIM_NEEDS` on every scene. 'provisional' where a scene lacks three
    seeds of every method."""
    mix = main[main.regime == "mix"]
    scenes = [s for s in SCENES if ((mix.scene == s) & (mix.model == "scadf")).any()]
    complete = all(mix[(mix.scene == s) & (mix.model == m)].seed.nunique() >= 3 for s in SCENES for m in METHODS)
    stats = summarize(mix, ["scene", "model"], "overall").set_index(["scene", "model"])
    rows = []
    mse = {s: float(stats.loc[(s, "scadf")].mse_m2) for s in scenes}
    rows.append({"claim": PAPER_CLAIMS["submeter"],
                 **{s: f"{mse[s]:.2f} ({mse[s] / 2:.2f} per coord.)" for s in scenes},
                 "verdict": _verdict(len(scenes) == len(SCENES) and all(v < 1 for v in mse.values()),
                                     len(scenes) == len(SCENES) and all(v / 2 < 1 for v in mse.values()), complete)})
    for key, (group, need) in CLAIM_NEEDS.items():
        red = paired_reduction(main, "mix", group).set_index("scene")
        cells = {s: f"{fmt_ci(red.loc[s].reduction_pct, red.loc[s].ci95)} % vs {label(red.loc[s].best_baseline)}"
                 for s in scenes if s in red.index}
        met = len(cells) == len(SCENES) and bool((red.reduction_pct >= need).all())
        rows.append({"claim": PAPER_CLAIMS[key], **cells, "verdict": _verdict(met, met, complete)})
    return pd.DataFrame(rows, columns=["claim", *SCENES, "verdict"]).fillna("n/a")


def _verdict(ours: bool, per_coordinate: bool, complete: bool) -> str:
    """'reproduces' / 'does not reproduce' (with the per-coordinate convention where it differs),
    '(provisional)' while cells are missing seeds."""
    text = "reproduces" if ours else ("reproduces only per coordinate" if per_coordinate else "does not reproduce")
    return f"**{text}**" + ("" if complete else " (provisional: seeds missing)")


METRIC_NOTE = ("Metric convention. Ours: MSE = mean over points of the squared Euclidean error |p̂ - p|² (m²). "
               "The paper's formula is missing from our text; the first author's earlier public code (AMDNLoc, "
               "`Horizontal666/AMDNloc`) prints `((y - ŷ)**2).mean()` over x and y, i.e. the mean per coordinate: "
               "**half** of ours. Relative claims (reductions against a baseline) are the same in both conventions; "
               "the sub-meter claim is not.")


def claims_section(metrics: pd.DataFrame) -> str:
    main = metrics[metrics.study == "main"]
    if main.empty:
        return ""
    return ("## The paper's claims\n\n" + md_table(claims_verdicts(main)) + "\n\n"
            "Rules: sub-meter = SCADF-MoE's Mix overall MSE below 1 m² on every scene (in both conventions, below); "
            "the reductions are the mean per-seed reduction of SCADF-MoE's MSE against the best baseline (the "
            "baseline with the lowest mean MSE on that scene), overall (the paper reports 61-63 %; at least "
            f"{CLAIM_NEEDS['reduction'][1]} % counts) and on held-out NLOS points (the paper's unseen NLOS: about "
            f"half, 55 % lower; at least {CLAIM_NEEDS['unseen'][1]} % counts), needed on every scene. A scene with "
            "fewer than three seeds of every method makes the verdict provisional.\n\n" + METRIC_NOTE + "\n\n"
            "Beside the paper's Table II (its WAIR-D scenes, not ours: a check of scale, not a like-for-like):\n\n"
            + md_table(paper_comparison(main, [s for s in SCENES if s in set(main.scene)])) + "\n")
