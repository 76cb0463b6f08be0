"""Table II: every method's MSE per scene, point group and band; the offset decomposition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import ANCHORS, METHODS, SCENES
from scadf_lib.studies.anchor_table import cfr_anchor_text, geometric_los_text
from scadf_lib.studies.budget import stopping_text
from scadf_lib.studies.common import GROUPS, HEADLINE, flat_counts, fmt_ci, label, _not_flat_mark, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.studies.spatial import isolation_by_method
from scadf_lib.tables import summarize


#: LOS offset slope from which a method counts as localising each point, not only the trajectory.
SLOPE_OK = 0.8

#: The anchors of the headline tables. The closed form is exact on LOS points and meaningless on NLOS
#: ones (it follows a bent path to its end): a sanity line under the table, not a row of it.
HEADLINE_ANCHORS = tuple(a for a in ANCHORS if a != "geometric")

#: The centroid reference's row: an oracle that knows each trajectory's true centre. The models go
#: below it (they place points, not only trajectories), so it is a reference, not a floor.
CENTROID_REFERENCE = "centroid reference (oracle: each point at its trajectory's true centre)"


def metrics_floor(main: pd.DataFrame) -> dict[str, float]:
    """Per scene: the centroid floor of the seed-0 Mix SCADF-MoE run's test set (``offset_floor_m2``
    of its overall row: every test-trajectory point placed at its true centroid, m²; the same
    number :func:`centroid_floor` rebuilds from the split)."""
    sel = main[(main.model == "scadf") & (main.regime == "mix") & (main.seed == main.seed.min())
               & (main.group == "overall") & (main.band == "all")]
    if "offset_floor_m2" not in sel:
        return {}
    return {r.scene: float(r.offset_floor_m2) for r in sel.itertuples() if np.isfinite(r.offset_floor_m2)}


def decomposition_table(main: pd.DataFrame, regime: str = "mix", group: str = "overall") -> pd.DataFrame:
    """Per method and scene (mean over seeds): point MSE = centroid term + offset term (+ the cross
    term for subsets of points), with the offset floor (the centroid floor of the same points) and the
    two centroid scores, in m² (:mod:`scadf_lib.evaluation`, "Offset decomposition")."""
    sel = main[(main.regime == regime) & (main.band == "all")]
    pts = sel[sel.group == group].groupby(["model", "scene"])[
        ["mse_m2", "centroid_term_m2", "offset_term_m2", "offset_floor_m2"]].mean()
    head = sel[sel.group == "centroid"].groupby(["model", "scene"]).mse_m2.mean().rename("centroid_head_m2")
    mean = sel[sel.group == "centroid-of-points"].groupby(["model", "scene"]).mse_m2.mean().rename("mean_of_points_m2")
    t = pts.join(head).join(mean).reset_index()
    t["offset_share_explained"] = 1 - t.offset_term_m2 / t.offset_floor_m2
    t["model"] = pd.Categorical(t.model, [m for m in METHODS if m in set(t.model)], ordered=True)
    return t.sort_values(["scene", "model"]).round(3)


def held_out_vs_seen(main: pd.DataFrame, regime: str = "mix") -> pd.DataFrame:
    """Mean MSE (m^2, over seeds) per scene and method for held-out and seen LOS / NLOS points."""
    groups = ("held-out-LOS", "held-out-NLOS", "seen-LOS", "seen-NLOS")
    s = pd.concat([summarize(main[main.regime == regime], ["scene", "model"], g).assign(group=g) for g in groups])
    piv = s.pivot_table(index=["scene", "model"], columns="group", values="mse_m2")[list(groups)]
    return piv.reset_index()


def method_table(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str, regime: str = "mix",
                 groups: tuple[str, ...] = GROUPS, band: str = "all") -> pd.DataFrame:
    """Methods (trained, then anchors, then the centroid floor) x groups: mean ± 95 % CI over seeds
    (m²); trained methods carry how many of their runs ended flat, a method with any run not flat is
    marked '†'."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == regime) & metrics.study.isin(["main", "anchors"])]
    flags = flat_counts(runs[(runs.scene == scene) & (runs.regime == regime)])
    rows = []
    order = [m for m in (*METHODS, *ANCHORS) if m in set(sel.model)]
    for m in order:
        g = sel[sel.model == m]
        row = {"method": label(m) + _not_flat_mark(m, flags), "runs flat": flags.get(m, "") or "(no training)"}
        for grp in groups:
            s = summarize(g, ["model"], grp, band)
            row[grp] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        rows.append(row)
    floor = sel[(sel.band == band) & sel.group.isin(groups)].groupby("group").offset_floor_m2.mean()
    rows.append({"method": CENTROID_REFERENCE, "runs flat": "",
                 **{g: f"{floor[g]:.2f}" if g in floor and np.isfinite(floor[g]) else "" for g in groups}})
    return pd.DataFrame(rows)


def band_table(metrics: pd.DataFrame, scene: str, regime: str = "mix", group: str = HEADLINE,
               runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Methods x test bands: ``group`` MSE (mean ± 95 % CI over seeds, m²); with ``runs``, a method
    with a run that was not flat is marked '†'."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == regime) & metrics.study.isin(["main", "anchors"])]
    flags = flat_counts(runs[(runs.scene == scene) & (runs.regime == regime)]) if runs is not None else pd.Series(dtype=str)
    bands = sorted(set(sel.band) - {"all"}, key=float)
    rows = []
    for m in [m for m in (*METHODS, *ANCHORS) if m in set(sel.model)]:
        row = {"method": label(m) + _not_flat_mark(m, flags)}
        for b in bands:
            s = summarize(sel[sel.model == m], ["model"], group, b)
            row[f"{b} GHz"] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def seed_spread(metrics: pd.DataFrame, regime: str = "mix", group: str = HEADLINE) -> pd.DataFrame:
    """Per scene and trained method with at least two seeds: the lowest and highest MSE over seeds
    (m², ``group``, all bands), the seed with the highest, and their ratio; widest spread first."""
    sel = metrics[(metrics.study == "main") & (metrics.regime == regime) & (metrics.group == group)
                  & (metrics.band == "all") & metrics.model.isin(METHODS)]
    rows = []
    for (scene, model), g in sel.groupby(["scene", "model"], sort=False):
        if g.seed.nunique() < 2:
            continue
        worst = g.loc[g.mse_m2.idxmax()]
        rows.append({"scene": scene, "model": model, "low_m2": g.mse_m2.min(), "high_m2": worst.mse_m2,
                     "worst_seed": int(worst.seed), "ratio": worst.mse_m2 / g.mse_m2.min()})
    cols = ["scene", "model", "low_m2", "high_m2", "worst_seed", "ratio"]
    return pd.DataFrame(rows, columns=cols).sort_values("ratio", ascending=False, ignore_index=True)


def per_band_summary(metrics: pd.DataFrame, scene: str, regime: str = "mix", group: str = HEADLINE) -> pd.DataFrame:
    """``group`` MSE (m², mean and 95 % CI over seeds) per trained method and test band of ``scene``:
    the input of :func:`scadf_lib.plots.method_bars` (columns model, method, band, mse_m2, ci95)."""
    sel = metrics[(metrics.study == "main") & (metrics.regime == regime) & (metrics.scene == scene)]
    bands = sorted(set(sel.band) - {"all"}, key=float)
    if not bands:
        return pd.DataFrame(columns=["model", "mse_m2", "ci95", "seeds", "band", "method"])
    out = pd.concat([summarize(sel, ["model"], group, band=b).assign(band=f"{float(b):g} GHz") for b in bands])
    return out.assign(method=out.model.map(label))


def main_table(metrics: pd.DataFrame, runs: pd.DataFrame, regime: str = "mix", scenes: tuple[str, ...] = SCENES,
               groups: tuple[str, ...] = (HEADLINE, "overall")) -> pd.DataFrame:
    """Table II as a frame: one row per method, then the headline anchors, then the centroid reference; per scene
    and group the MSE (m², mean ± 95 % CI over seeds; 'n/a' where the cell has no run), and the seeds
    per scene. A method with a run whose curve did not end flat is marked '†'."""
    sel = metrics[(metrics.regime == regime) & metrics.study.isin(["main", "anchors"]) & metrics.scene.isin(scenes)]
    scenes = tuple(s for s in scenes if s in set(sel.scene))
    flags = flat_counts(runs[(runs.regime == regime) & runs.scene.isin(scenes)])
    rows = []
    for m in [m for m in (*METHODS, *HEADLINE_ANCHORS) if m in set(sel.model)]:
        g = sel[sel.model == m]
        row = {"method": label(m) + _not_flat_mark(m, flags)}
        for scene in scenes:
            for grp in groups:
                s = summarize(g[g.scene == scene], ["model"], grp)
                row[f"{scene} {grp}"] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        row["seeds"] = " / ".join(str(g[g.scene == sc].seed.nunique()) for sc in scenes)
        rows.append(row)
    floor = sel[(sel.band == "all") & (sel.study == "main")].groupby(["scene", "group"]).offset_floor_m2.mean()
    rows.append({"method": "centroid reference (oracle)", **{f"{sc} {g}": f"{floor[(sc, g)]:.2f}" if (sc, g) in floor else ""
                                                for sc in scenes for g in groups}, "seeds": ""})
    return pd.DataFrame(rows)


def offset_slopes(main: pd.DataFrame) -> pd.DataFrame:
    """Mean LOS offset slope per method (rows) and scene (columns), Mix, mean over seeds: 1 = each point
    placed around its trajectory's centre as it lies, 0 = every point at the centre."""
    sel = main[(main.regime == "mix") & (main.band == "all") & (main.group == "LOS")]
    piv = sel.pivot_table(index="model", columns="scene", values="offset_slope", aggfunc="mean")
    return piv.reindex([m for m in METHODS if m in piv.index])[[s for s in SCENES if s in piv.columns]]


def scene_table(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str, regime: str = "mix",
                group: str = HEADLINE) -> pd.DataFrame:
    """Table II for one scene, for a reader: per method (the trained ones, then :data:`HEADLINE_ANCHORS`,
    then the centroid reference) the ``group`` MSE (m², mean ± 95 % CI over seeds), each seed's MSE
    (seeds in order), the median and 90th percentile of the point errors (m; each run's, mean over
    seeds) and the MSE over all test points (the paper's scoring). '†': a run that did not end flat."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == regime) & metrics.study.isin(["main", "anchors"])
                  & (metrics.band == "all")]
    flags = flat_counts(runs[(runs.scene == scene) & (runs.regime == regime)])
    rows = []
    for m in [m for m in (*METHODS, *HEADLINE_ANCHORS) if m in set(sel.model)]:
        g = sel[(sel.model == m) & (sel.group == group)].sort_values("seed")
        s = summarize(sel[sel.model == m], ["model"], group)
        o = summarize(sel[sel.model == m], ["model"], "overall")
        rows.append({"method": label(m) + _not_flat_mark(m, flags),
                     "held-out MSE (m²)": fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]),
                     "per seed (m²)": " / ".join(f"{v:.2f}" for v in g.mse_m2),
                     "median error (m)": f"{g.median_m.mean():.2f}", "p90 error (m)": f"{g.p90_m.mean():.2f}",
                     "all test points MSE (m²)": fmt_ci(o.mse_m2.iloc[0], o.ci95.iloc[0]) if len(o) else "n/a"})
    floor = sel[sel.study == "main"].groupby("group").offset_floor_m2.mean()
    rows.append({"method": CENTROID_REFERENCE, "held-out MSE (m²)": f"{floor.get(group, np.nan):.2f}",
                 "per seed (m²)": "", "median error (m)": "", "p90 error (m)": "",
                 "all test points MSE (m²)": f"{floor.get('overall', np.nan):.2f}"})
    return pd.DataFrame(rows)


def figure_link(rs: ResultSet, name: str) -> str:
    """The path of a figure of ``rs`` as the report that shows it links it: ``results/REPORT.md`` for
    the reference set, ``<set>/REPORT.md`` for any other."""
    from scadf_lib.presets import REFERENCE_SET
    return f"{rs.name}/{name}" if rs.name == REFERENCE_SET else name


def table_ii_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs = rs.metrics, rs.runs
    main = metrics[metrics.study == "main"]
    if main.empty:
        return ""
    mruns = runs[runs.study == "main"]
    scenes = [s for s in SCENES if s in set(main[main.regime == "mix"].scene)]
    tables = "\n".join(f"**{scene}**\n\n" + report_table(scene_table(metrics, runs, scene)) + "\n" for scene in scenes)
    geo = geometric_los_text(metrics)
    figures = "".join(f"\n![{alt}]({figure_link(rs, name)})\n" for name, alt in (
        (rs.ERROR_CDF, "Held-out error CDF per scene, seed 0"), (rs.LEARNING_CURVES, "Learning curves, munich"))
        if rs.has(name))
    return ("## Table II on our three scenes, Mix (all bands in training and test)\n\n" + tables + "\n"
            "Held-out MSE: mean over seeds with its 95 % interval, then each seed's (seeds 0, 1, 2). Median and p90: "
            "of each run's held-out point errors in metres, mean over seeds (the MSE is carried by few points: see "
            f"below). Anchors without a deep model: WKNN = weighted k nearest fingerprints, k and the feature scaling "
            f"chosen on the validation points; hybrid = the closed form on the points the data flag LOS, WKNN on the "
            f"others, the baseline a practitioner would deploy.{cfr_anchor_text(runs)} {geo} The centroid reference "
            "knows each trajectory's true centre; a model below it places points, not only trajectories. "
            f"{stopping_text(mruns)}.\n" + figures)


def tail_text(rs: ResultSet | Path, metrics: pd.DataFrame) -> str:
    """A paragraph saying how much of the MSE few points carry (``isolation.csv``) and the widest
    seed-to-seed spread of a method's held-out MSE (:func:`scadf_lib.analysis.seed_spread`)."""
    iso, spread = isolation_by_method(rs), seed_spread(metrics)
    if iso.empty or spread.empty:
        return ""
    top, med = iso.top1pct_error_pct, iso.median_sq_error_m2
    w = spread.iloc[0]
    same = spread[(spread.scene == w.scene) & (spread.worst_seed == w.worst_seed) & (spread.ratio >= 2)].iloc[1:]
    others = [f"{label(r.model)} ({r.low_m2:.2f} to {r.high_m2:.2f} m²)" for r in same.itertuples()]
    shared = ("" if not others else "; also the highest for " + (", ".join(others[:-1]) + " and " if len(others) > 1
              else "") + others[-1] + ": a seed sets both the split and the initialisation, and a worst seed "
              "shared across methods points to its split")
    return ("**How far a mean can be trusted.** The MSE is carried by few points: the worst 1 % of held-out points "
            f"hold {top.min():.0f}-{top.max():.0f} % of a trained method's squared error, and the median squared "
            f"error is {med.min():.2f}-{med.max():.2f} m² (Mix, appendix F). One seed that misplaces a few "
            "trajectories therefore moves a scene's mean and widens its interval: the widest spread by ratio "
            "(highest seed / lowest) is "
            f"{label(w.model)} on {w.scene}, held-out MSE {w.low_m2:.2f} to {w.high_m2:.2f} m² across seeds "
            f"(seed {w.worst_seed} the highest{shared}).\n")


def per_scene_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs = rs.metrics, rs.runs
    main = metrics[metrics.study == "main"]
    parts = ["## B. Every group, band and term, per scene\n"]
    for scene in [s for s in SCENES if s in set(main.scene)]:
        for regime in [r for r in ("mix", "ood") if ((main.scene == scene) & (main.regime == r)).any()]:
            parts.append(f"### {scene}, {regime.upper() if regime == 'ood' else 'Mix'}: MSE (m²)\n\n"
                         + report_table(method_table(metrics, runs, scene, regime)) + "\n\n"
                         + "Held-out points per test band:\n\n"
                         + report_table(band_table(metrics, scene, regime, runs=runs)) + "\n")
        dec = decomposition_table(main[main.scene == scene])
        if len(dec):
            parts.append(f"Where the error lies ({scene}, Mix, all test points, mean over seeds, m²): point MSE = "
                         "centroid term + offset term; the centroid reference of the same points is every point at its true centroid, "
                         "offsets explained = 1 - offset term / centroid reference (the R² of the offsets).\n\n"
                         + report_table(dec) + "\n")
    return "\n".join(parts) if len(parts) > 1 else ""


def offset_slope_section(rs: ResultSet | Path) -> str:
    metrics = as_set(rs).metrics
    main = metrics[metrics.study == "main"]
    if main.empty or "offset_slope" not in main or main.offset_slope.isna().all():
        return ""
    piv = offset_slopes(main)
    scadf = piv.loc["scadf"] if "scadf" in piv.index else pd.Series(dtype=float)
    ok = bool(len(scadf) and (scadf >= SLOPE_OK).all())
    return ("## C. Does each method place each point? (Mix, LOS test points)\n\n"
            "Offset slope: least-squares slope of each point's predicted offset from its predicted trajectory "
            "centroid against its true offset from the true centroid (x and y pooled); 1 = points placed around "
            "their centre as they lie, 0 = every point at the centre. Mean over seeds.\n\n"
            + report_table(piv.rename(index=label).reset_index()) + "\n\n"
            f"Check: SCADF-MoE's LOS offset slope is at least {SLOPE_OK} on every scene: **{'yes' if ok else 'no'}**.\n")
