"""Spatial context: L = 5 against L = 1 on the same points; held-out blocks; isolated points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import METHODS, SCENES
from scadf_lib.studies.common import HEADLINE, fmt_ci, label, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import mean_ci, summarize


def paired_spatial(paired: pd.DataFrame) -> pd.DataFrame:
    """SCADF-MoE (L = 5) against noSpace (L = 1) on the same held-out points, per scene and LOS/NLOS:
    mean squared error of each (m^2), the mean per-point difference noSpace - SCADF-MoE with its
    95 % t-interval over points (seeds and bands pooled), and the share of points where SCADF-MoE
    is closer."""
    rows = []
    for (scene, los), g in paired.assign(kind=np.where(paired.los, "LOS", "NLOS")).groupby(["scene", "kind"]):
        diff = (g.sq_error_nospace_m2 - g.sq_error_scadf_m2).to_numpy()
        mean, half = mean_ci(diff)
        rows.append({"scene": scene, "points": los, "pairs": len(g), "scadf_mse": g.sq_error_scadf_m2.mean(),
                     "nospace_mse": g.sq_error_nospace_m2.mean(), "nospace_minus_scadf": mean, "ci95": half,
                     "scadf_closer_share": float((diff > 0).mean())})
    return pd.DataFrame(rows)


def blocks_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Held-out MSE (m^2, mean over the block study's seeds) per scene and method: held-out points
    (the paper's split, the same seeds) against held-out 20 m blocks, and their ratio."""
    blocks = metrics[metrics.study == "blocks"]
    if blocks.empty:
        return pd.DataFrame()
    seeds = blocks.seed.unique()
    points = metrics[(metrics.study == "main") & (metrics.regime == "mix") & metrics.seed.isin(seeds)]
    a = summarize(points, ["scene", "model"], HEADLINE).set_index(["scene", "model"]).mse_m2
    b = summarize(blocks, ["scene", "model"], HEADLINE).set_index(["scene", "model"]).mse_m2
    out = pd.DataFrame({"held_out_points_mse": a, "held_out_blocks_mse": b}).dropna()
    out["blocks_over_points"] = out.held_out_blocks_mse / out.held_out_points_mse
    return out.reset_index()


def isolation_by_method(rs: ResultSet | Path) -> pd.DataFrame:
    """Where a set's held-out error sits (``isolation.csv``, :func:`scadf_lib.sweep_tables.isolation_table`):
    per scene and method (Mix, mean over seeds), the share of the squared error on held-out points
    whose fingerprint matches no training point within 10 m, and the MSE with and without them (m²)."""
    iso = as_set(rs).table(ResultSet.ISOLATION)
    if iso is None:
        return pd.DataFrame()
    iso = iso[iso.regime == "mix"]
    if iso.empty:
        return pd.DataFrame()
    g = iso.groupby(["scene", "model"], sort=False).agg(
        seeds=("seed", "size"), held_out_points=("points", "mean"), isolated=("isolated", "mean"),
        isolated_error_pct=("isolated_error_share", lambda v: 100 * v.mean()), mse_m2=("mse_m2", "mean"),
        mse_without_isolated_m2=("mse_without_isolated_m2", "mean"),
        top1pct_error_pct=("top1pct_error_share", lambda v: 100 * v.mean()),
        median_sq_error_m2=("median_sq_error_m2", "mean")).reset_index()
    g["model"] = pd.Categorical(g.model, [m for m in METHODS if m in set(g.model)], ordered=True)
    g["scene"] = pd.Categorical(g.scene, [x for x in SCENES if x in set(g.scene)], ordered=True)
    g["held_out_points"] = g.held_out_points.round().astype(int)
    return g.sort_values(["scene", "model"]).round({"isolated": 1, "isolated_error_pct": 1,
                                                     "mse_m2": 3, "mse_without_isolated_m2": 3, "top1pct_error_pct": 1,
                                                     "median_sq_error_m2": 4})


def worst_points(rs: ResultSet | Path, names: list[str], worst: int = 10) -> pd.DataFrame:
    """How much of each run's held-out MSE its ``worst`` points carry, from its per-point errors
    (``errors/<name>.csv.gz``, written for the first seed of the Mix runs; runs without one are left
    out): held-out slots, MSE and median squared error (m²), the share of the squared error on the
    ``worst`` largest errors (%), the largest error (m) and the MSE without those points (m²)."""
    rows = []
    for name in names:
        e = as_set(rs).errors(name)
        if e is None:
            continue
        sq = np.sort(e.error_m[e.held_out].to_numpy() ** 2)[::-1]
        if len(sq) <= worst:
            continue
        rows.append({"name": name, "held_out_slots": len(sq), "mse_m2": sq.mean(), "median_sq_error_m2": np.median(sq),
                     f"worst_{worst}_share_pct": 100 * sq[:worst].sum() / sq.sum(), "max_error_m": np.sqrt(sq[0]),
                     f"mse_without_worst_{worst}_m2": sq[worst:].mean()})
    return pd.DataFrame(rows)


def spatial_table(metrics: pd.DataFrame, scene: str = "munich") -> pd.DataFrame:
    """Spatial context (the paper's Fig. 2) on ``scene`` Mix: SCADF-MoE's MSE (m², mean ± 95 % CI over
    seeds) against the trajectory length L: 1 (the ``spatial`` runs), the sensitivity study's L and 5
    (the main runs)."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == "mix") & (metrics.band == "all")]
    parts = [sel[sel.study == "spatial"].assign(L=1),
             sel[(sel.study == "sensitivity") & (sel.param == "trajectory_length")].pipe(
                 lambda d: d.assign(L=d.value.astype(float).astype(int))),
             sel[(sel.study == "main") & (sel.model == "scadf")].assign(L=5)]
    both = pd.concat(parts)
    if parts[0].empty or both.L.nunique() < 2:
        return pd.DataFrame()
    both = both[both.seed.isin(parts[0].seed.unique())]  # paired: the seeds the L = 1 runs have
    if both.L.nunique() < 2:
        return pd.DataFrame()
    rows = []
    for L, g in both.groupby("L"):
        row = {"L (points per trajectory)": int(L), "seeds": g.seed.nunique()}
        for grp in (HEADLINE, "held-out-LOS", "held-out-NLOS", "overall"):
            s = summarize(g.assign(model="scadf"), ["model"], grp)
            row[f"{grp} (m²)"] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def spatial_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs = rs.metrics, rs.runs
    table = spatial_table(metrics)
    if table.empty:
        return ""
    return ("## Spatial context (the paper's Fig. 2), munich Mix: SCADF-MoE against the trajectory length L\n\n"
            + report_table(table) + "\n\nL = 1 trains on single points, as often per point as L = 5 (5 single-point "
            "trajectories per point); rows are restricted to the seeds L = 1 has, and L = 3 is the sensitivity "
            "study's seed-0 run.\n" + spatial_tail_text(rs, runs))


def spatial_tail_text(rs: ResultSet | Path, runs: pd.DataFrame, worst: int = 10) -> str:
    """Where the L = 1 error sits: :func:`worst_points` of the L = 1 run and the
    L = 5 run of the seed that has per-point errors (munich Mix)."""
    one = runs[(runs.study == "spatial") & (runs.scene == "munich")]
    five = runs[(runs.study == "main") & (runs.model == "scadf") & (runs.scene == "munich") & (runs.regime == "mix")
                & runs.seed.isin(one.seed)]
    L = pd.concat([one.assign(L=1), five.assign(L=5)]).set_index("name").L
    t = worst_points(rs, list(L.index), worst)
    if t.empty or t.name.map(L).nunique() < 2:
        return ""
    t.insert(0, "L", t.name.map(L))
    one_row, five_row = t[t.L == 1].iloc[0], t[t.L == 5].iloc[0]
    share, without = f"worst_{worst}_share_pct", f"mse_without_worst_{worst}_m2"
    reading = ("On this seed the trajectory's neighbours guard against a few gross errors, not the typical point's "
               "accuracy." if one_row[without] <= five_row[without] else
               "On this seed the neighbours help the typical point as well as the worst ones.")
    return (f"\nWhere the error sits (per-point errors, written for seed 0): the share of the held-out squared error "
            f"carried by the {worst} worst held-out slots, the largest error, and the MSE without those "
            f"{worst}:\n\n" + report_table(t.round(3)) + f"\n\nWithout spatial context, {one_row[share]:.0f} % of the "
            f"held-out squared error sits on {worst} points (largest error {one_row.max_error_m:.1f} m, against "
            f"{five_row.max_error_m:.1f} m with L = 5); without them L = 1 scores {one_row[without]:.2f} m² and L = 5 "
            f"{five_row[without]:.2f} m². " + reading + "\n")


def isolation_section(rs: ResultSet | Path) -> str:
    g = isolation_by_method(rs)
    if g.empty:
        return ""
    return ("## F. Where the held-out error sits: fingerprints with no match nearby (Mix)\n\n"
            "Per held-out (band, UE) point, the training point with the most similar numeric fingerprint (AoD, AoA, "
            "distance, gain, standardised) is found; the point is *isolated* when that training point lies more than "
            "10 m away. Any fingerprint method must extrapolate there. MSEs here are per-point means (each point "
            "once), not the trajectory-slot means of the tables above (`scadf_lib.diagnostics`).\n\n"
            + report_table(g.assign(model=g.model.astype(str).map(label))) + "\n")
