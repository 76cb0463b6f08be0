"""Where nobody surveyed (``results/unsurveyed``, data version 2, munich Mix, oracle inputs): every method
on held-out 20 m blocks against the paper's held-out points (the measured-input study's oracle runs: the
same data, protocol and seeds), walked tracks through the held-out blocks, and how the error grows as the
site survey thins (:mod:`scadf_lib.survey`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import METHODS
from scadf_lib.studies.claims import one_scene_claims
from scadf_lib.studies.common import (HEADLINE, figure_line, fmt_ci, label, pooled_errors, report_table, sweep_complete,
                                      sweep_state)
from scadf_lib.studies.measured import MEASURED_SET, study_rows
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import csv_flags, fmt_ratio, mean_ci, ratio_ci

#: The result set of this study, and the set whose oracle point-split runs are its baseline.
UNSURVEYED_SET, BASELINE_SET = "unsurveyed", MEASURED_SET
#: Rows of the block table: the trained methods, then the anchors scored on the same splits.
BLOCK_METHODS = (*METHODS, "wknn", "wknn_cfr", "hybrid")
#: The density study's methods and its surveys' words, densest first.
DENSITY_METHODS = ("scadf", "softmoe", "wknn")
SURVEY_WORDS = {"full": "full survey (1 m grid)", "grid2": "2 m grid", "random25": "random 25 %", "grid4": "4 m grid",
                "random10": "random 10 %"}


def split_rows(rs: ResultSet, base: ResultSet) -> pd.DataFrame:
    """Metric rows (all bands) of both splits: ``split`` 'points' (``base``'s oracle runs at the default
    setting, ``survey`` 'full') or 'blocks' / 'points' with the ``survey`` of this set's runs."""
    frames = []
    if base.has(base.METRICS) and base.has(base.RUNS):
        b = study_rows(base)
        frames.append(b[(b.inputs == "oracle") & b.param.isna()].assign(split="points", survey="full"))
    if rs.has(rs.METRICS) and rs.has(rs.RUNS) and "split" in rs.runs:
        runs = rs.runs.set_index("name")
        m = rs.metrics[rs.metrics.band == "all"]
        m = m.assign(split=m.name.map(runs["split"]), survey=m.name.map(runs["survey"]) if "survey" in runs else np.nan)
        frames.append(m[m.split.notna()])
    if not frames:
        return pd.DataFrame()
    # the full survey's WKNN is scored in both sets (the same split): the baseline set's row stays
    return pd.concat(frames, ignore_index=True).drop_duplicates(["split", "survey", "model", "seed", "group"])


def _cell(values: pd.Series) -> str:
    return fmt_ci(*mean_ci(values.to_numpy())) if len(values) else "n/a"


def blocks_table(rows: pd.DataFrame, flat: pd.Series, group: str = HEADLINE) -> pd.DataFrame:
    """Per method (trained, anchors scored on blocks, then the centroid reference, from the offsets of
    the split's test trajectories): ``group`` MSE (m², mean ± 95 % CI
    over seeds) on held-out points and on held-out blocks, each seed's blocks value, blocks over points
    seed by seed (geometric mean with its interval), the blocks' median and p90 error (m, mean over
    seeds), the LOS and NLOS points' MSE on each split (m², mean over seeds: on oracle inputs a LOS
    point's dominant path gives its position wherever it lies) and the block runs that did not end
    flat (``flat``: run name -> flag)."""
    full = rows[rows.survey.fillna("full") == "full"]
    sel = full[full.group == group]
    by_los = full[full.group.isin([f"{group}-LOS", f"{group}-NLOS"])].groupby(["model", "split", "group"]).mse_m2.mean()

    def los_nlos(model: str, split: str) -> str:  # LOS / NLOS MSE (m², mean over seeds) of one cell
        cell = [by_los.get((model, split, f"{group}-{k}"), np.nan) for k in ("LOS", "NLOS")]
        return "" if np.isnan(cell).any() else f"{cell[0]:.2f} / {cell[1]:.1f}"
    out = []
    for model in [m for m in BLOCK_METHODS if m in set(sel.model)]:
        g = sel[sel.model == model]
        pts, blk = g[g.split == "points"], g[g.split == "blocks"]
        if blk.empty and model not in METHODS:
            continue  # an anchor not scored on blocks (or reduced to another there: WKNN + CFR with CFR weight 0)
        pair = g.pivot_table(index="seed", columns="split", values="mse_m2").dropna()
        ratio = (fmt_ratio(*ratio_ci((pair.blocks / pair.points).to_numpy()))
                 if {"points", "blocks"} <= set(pair.columns) and len(pair) else "")
        trained = [n for n in blk.name if n in flat.index] if model in METHODS else []
        out.append({"method": label(model), "points (m²)": _cell(pts.mse_m2), "blocks (m²)": _cell(blk.mse_m2),
                    "blocks, per seed": " / ".join(f"{v:.2f}" for v in blk.sort_values("seed").mse_m2),
                    "blocks / points": ratio, "blocks: median (m)": f"{blk.median_m.mean():.2f}" if len(blk) else "",
                    "blocks: p90 (m)": f"{blk.p90_m.mean():.2f}" if len(blk) else "",
                    "LOS / NLOS (m²): points": los_nlos(model, "points"), "LOS / NLOS (m²): blocks": los_nlos(model, "blocks"),
                    "runs not flat": str(sum(not flat[n] for n in trained)) if trained else ""})
    ref = sel.drop_duplicates(["split", "seed"])  # every method's test trajectories of a split are the same
    if len(ref):
        out.append({"method": "centroid reference (oracle)",
                    **{f"{s} (m²)": _cell(ref[ref.split == s].offset_floor_m2) for s in ("points", "blocks")}})
    return pd.DataFrame(out).fillna("")


def nearest_survey_row(runs: pd.DataFrame) -> pd.DataFrame:
    """The nearest-surveyed-point reference (an oracle: each held-out point placed at the nearest point
    trained on; :func:`scadf_lib.survey.survey_facts`) as a row of :func:`blocks_table`: its MSE (m²,
    mean ± 95 % CI over seeds) on the full survey's points and on the blocks; empty without the facts."""
    if not {"split", "held_out_distance_ms_m2"} <= set(runs.columns):
        return pd.DataFrame()
    r = runs.dropna(subset=["held_out_distance_ms_m2"])
    r = r[(r.split == "blocks") | (r.get("survey", pd.Series("", index=r.index)) == "full")]
    r = r.drop_duplicates(["split", "seed"])
    cells = {f"{s} (m²)": _cell(r[r.split == s].held_out_distance_ms_m2) for s in ("points", "blocks")}
    return pd.DataFrame([{"method": NEAREST_SURVEYED, **cells}])


def block_facts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed of the block split (its runs' split facts, ``runs.csv``): held-out, validation, guard
    and unused points, and the held-out points' distance to the nearest trained point (m)."""
    cols = {"test_blocks": "held-out blocks", "test_points": "held-out points",
            "held_out_points_tested": "held-out points tested", "val_blocks": "validation blocks",
            "val_points": "validation points", "guard_points_unused": "guard band (unused)",
            "held_out_distance_median_m": "distance to survey: median (m)",
            "held_out_distance_p90_m": "distance to survey: p90 (m)", "held_out_distance_max_m": "max (m)"}
    if not {"split", *cols} <= set(runs.columns):
        return pd.DataFrame()
    b = runs[runs.split == "blocks"].dropna(subset=list(cols)).drop_duplicates("seed").sort_values("seed")
    b = b[["seed", *cols]].round(1)
    counts = [c for c in cols if not c.endswith("_m")]
    b[counts] = b[counts].astype(int)
    return b.rename(columns=cols)


def density_points(rows: pd.DataFrame, runs: pd.DataFrame, group: str = HEADLINE) -> pd.DataFrame:
    """Tidy, one row per survey and method (point split, mean over the seeds the survey was run for),
    densest survey first: ``survey``, ``kind`` ('full', 'grid' or 'random'), training points surveyed,
    their ``share`` of the grid, the validation points kept (the survey's own, which choose the epoch),
    the held-out points' median distance to the survey (m), the nearest-surveyed-point oracle's MSE
    (m²), the method's ``group`` MSE (m²) and median error (m), and its ``seeds``. A survey's facts
    come from its runs in ``runs``, seed by seed (the full survey's from its WKNN run); a row of
    ``rows`` counts where its (survey, seed) has them (the baseline's further seeds do not) and every
    method of the survey has that seed (a sweep under way adds a seed to a survey whole)."""
    if "survey" not in runs:
        return pd.DataFrame()
    facts = runs[runs.survey.notna()].drop_duplicates(["survey", "seed"]).set_index(["survey", "seed"])
    sel = rows[(rows.split == "points") & (rows.group == group) & rows.model.isin(DENSITY_METHODS)]
    out = []
    for r in sel.itertuples():
        if (r.survey, r.seed) not in facts.index:
            continue
        f = facts.loc[(r.survey, r.seed)]
        n = f.surveyed_points if pd.notna(f.get("surveyed_points", np.nan)) else f.train_points
        out.append({"survey": r.survey, "kind": r.survey.rstrip("0123456789"), "points_surveyed": int(n),
                    "share": float(n / f.points), "val_points": int(f.val_points),
                    "distance_median_m": float(f.held_out_distance_median_m),
                    "nearest_ms_m2": float(f.get("held_out_distance_ms_m2", np.nan)),
                    "method": label(r.model), "seed": int(r.seed), "mse_m2": r.mse_m2, "median_m": r.median_m})
    if not out:
        return pd.DataFrame()
    per_seed = pd.DataFrame(out)
    methods = per_seed.groupby("survey").method.transform("nunique")
    per_seed = per_seed[per_seed.groupby(["survey", "seed"]).method.transform("nunique") == methods]  # seeds every method has
    means = per_seed.groupby(["survey", "kind", "method"], sort=False).agg(
        points_surveyed=("points_surveyed", "mean"), share=("share", "mean"), val_points=("val_points", "mean"),
        distance_median_m=("distance_median_m", "mean"), nearest_ms_m2=("nearest_ms_m2", "mean"),
        mse_m2=("mse_m2", "mean"), median_m=("median_m", "mean"),
        seeds=("seed", lambda v: ", ".join(map(str, sorted(v))))).reset_index()
    order = {s: i for i, s in enumerate(SURVEY_WORDS)}
    methods = {label(m): i for i, m in enumerate(DENSITY_METHODS)}
    return (means.assign(o=means.survey.map(order), m=means.method.map(methods)).sort_values(["o", "m"])
            .drop(columns=["o", "m"]).reset_index(drop=True)
            .astype({"points_surveyed": int, "val_points": int}))


def density_table(points: pd.DataFrame) -> pd.DataFrame:
    """:func:`density_points` as one row per survey: its seeds, its size (mean over them) and each
    method's MSE (m²) and median (m), means over its seeds."""
    if points.empty:
        return points
    wide = points.pivot_table(index="survey", columns="method", values=["mse_m2", "median_m"], sort=False)
    head = points.drop_duplicates("survey").set_index("survey")
    seeds = points.groupby("survey", sort=False).seeds.agg(lambda v: " / ".join(sorted(set(v))))
    out = pd.DataFrame({"survey": [SURVEY_WORDS[s] for s in head.index], "seeds": seeds.reindex(head.index).values,
                        "points surveyed": head.points_surveyed.values,
                        "share of the grid": head.share.round(3).values, "validation points": head.val_points.values,
                        "held-out distance to survey: median (m)": head.distance_median_m.round(2).values,
                        "nearest surveyed point (oracle): MSE (m²)": head.nearest_ms_m2.round(2).values})
    for method in [label(m) for m in DENSITY_METHODS if label(m) in set(points.method)]:
        out[f"{method}: MSE (m²)"] = wide[("mse_m2", method)].reindex(head.index).round(2).values
        out[f"{method}: median (m)"] = wide[("median_m", method)].reindex(head.index).round(2).values
    return out.astype(object).where(out.notna(), "")


def density_line(points: pd.DataFrame) -> str:
    """What thinning the survey costs, in one sentence per method of :data:`DENSITY_METHODS` with the full
    survey and a thinned one in: its MSE and median on the full survey against each thinned survey's;
    '' before a thinned survey is in."""
    if points.empty:
        return ""
    parts = []
    for method in [label(m) for m in DENSITY_METHODS]:
        g = points[points.method == method].set_index("survey")
        if "full" not in g.index or len(g) < 2:
            continue
        full = g.loc["full"]
        cells = ", ".join(f"{SURVEY_WORDS[k]} {r.mse_m2:.1f} m² ({r.mse_m2 / full.mse_m2:.0f}×, median {r.median_m:.2f} m)"
                          for k, r in g.drop("full").iterrows())
        parts.append(f"{method} {full.mse_m2:.2f} m² (median {full.median_m:.2f} m) on the full survey; {cells}.")
    return ("What thinning costs (held-out MSE, its multiple of the full survey's, median error): " + " ".join(parts)
            + "\n\n") if parts else ""


def cdf_errors(rs: ResultSet, base: ResultSet) -> dict[str, dict[str, pd.DataFrame]]:
    """Per split ('held-out points', 'held-out blocks') and method label: the kept per-point errors of
    every seed in so far (``errors/<run>.csv.gz``), pooled, as the error-CDF plot reads them: ``error_m`` =
    the point's RMS error over the test trajectories that hold it (m), ``held_out`` True."""
    rows = split_rows(rs, base)
    rows = rows[(rows.group == HEADLINE) & (rows.survey.fillna("full") == "full")]
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for split, title, src in (("points", "held-out points", base), ("blocks", "held-out blocks", rs)):
        for model in [m for m in BLOCK_METHODS if m in set(rows.model)]:
            pooled = pooled_errors(src, rows[(rows.split == split) & (rows.model == model)].name.unique())
            if pooled is not None:
                out.setdefault(title, {})[label(model)] = pooled
    return out


#: Bins of the held-out block points' distance to the survey (m): the guard band makes the nearest ~2.8 m.
DISTANCE_BINS = (0.0, 5.0, 10.0, 20.0, np.inf)
DISTANCE_WORDS = ("≤ 5", "5-10", "10-20", "> 20")
#: The methods of the distance table: the trained five and WKNN, which can only return surveyed positions.
DISTANCE_METHODS = (*METHODS, "wknn")
NEAREST_SURVEYED = "nearest surveyed point (oracle)"
#: A distance bin's LOS or NLOS cell with fewer points (seeds and bands pooled) is left out: too few to say.
MIN_CELL_POINTS = 30


def block_errors(rs: ResultSet, rows: pd.DataFrame) -> pd.DataFrame:
    """The kept held-out errors of every block-split run of :data:`DISTANCE_METHODS` in ``rows``
    (:func:`split_rows`), the seeds every method has pooled, each row with its ``model``, ``seed``, its point's distance to the
    survey (``distance_m``, m; ``survey_distance.csv.gz``) and distance ``bin`` (:data:`DISTANCE_WORDS`);
    empty before the distances are written."""
    dist = rs.table(rs.SURVEY_DISTANCE)
    sel = rows[(rows.split == "blocks") & (rows.group == HEADLINE) & rows.model.isin(DISTANCE_METHODS)]
    if dist is None or sel.empty:
        return pd.DataFrame()
    frames = [e.assign(model=r.model, seed=r.seed) for r in sel.drop_duplicates("name").itertuples()
              if (e := rs.errors(r.name)) is not None]
    if not frames:
        return pd.DataFrame()
    e = pd.concat(frames, ignore_index=True).merge(dist, on=["seed", "ue"], how="inner")
    common = set.intersection(*(set(g.seed) for _, g in e.groupby("model")))
    e = e[e.seed.isin(common)]  # every method on the same points: the seeds all of them have
    return e.assign(bin=pd.cut(e.distance_m, DISTANCE_BINS, labels=DISTANCE_WORDS))


def _weighted_mse(e: pd.DataFrame, min_points: int = 1) -> float:
    """The held-out MSE (m²) of pooled per-point rows, each point weighted by its test trajectories; NaN
    with fewer than ``min_points`` rows."""
    return float(np.average(e.sq_error_m2, weights=e.appearances)) if len(e) >= max(1, min_points) else np.nan


def _nearest_ms(e: pd.DataFrame) -> float:
    """The nearest-surveyed-point oracle's MSE (m²) on pooled per-point rows: their mean squared distance
    to the survey, each point weighted by its test trajectories."""
    return float(np.average(e.distance_m ** 2, weights=e.appearances))


def _reference_model(e: pd.DataFrame) -> str:
    """The method whose points the distance table's shares and oracle are read from: SCADF-MoE, else the first."""
    return "scadf" if "scadf" in set(e.model) else e.model.iloc[0]


def far_nlos_share(s: pd.DataFrame) -> tuple[pd.Series, float, float]:
    """For one method's block errors: the mask of its NLOS points in the farthest distance bin, their
    share of the points and their share of its squared error (each point weighted by its trajectories)."""
    far = (s.bin == DISTANCE_WORDS[-1]) & ~s.los.astype(bool)
    weight = s.sq_error_m2 * s.appearances
    return far, float(far.mean()), float(weight[far].sum() / weight.sum())


def distance_table(e: pd.DataFrame) -> pd.DataFrame:
    """Held-out MSE (m²) on the blocks per bin of the distance to the survey (:func:`block_errors`,
    seeds pooled, bands pooled, points weighted by their test trajectories): the bin's share of the
    held-out points and its NLOS share (from SCADF-MoE's points, else the first method's), the
    nearest-surveyed-point oracle (mean squared distance), each method's LOS / NLOS MSE ('–' for a
    cell of fewer than :data:`MIN_CELL_POINTS` points) and the share of SCADF-MoE's squared error the
    bin carries."""
    if e.empty:
        return pd.DataFrame()
    ref_model = _reference_model(e)
    ref = e[e.model == ref_model]
    total = (ref.sq_error_m2 * ref.appearances).sum()
    out = []
    for word in DISTANCE_WORDS:
        b = ref[ref.bin == word]
        if b.empty:
            continue
        row = {"distance to survey (m)": word, "share of held-out points": f"{len(b) / len(ref):.2f}",
               "NLOS share": f"{(~b.los.astype(bool)).mean():.2f}",
               "nearest surveyed point (oracle): MSE (m²)": f"{_nearest_ms(b):.1f}"}
        for model in [m for m in DISTANCE_METHODS if m in set(e.model)]:
            g = e[(e.model == model) & (e.bin == word)]
            los, nlos = (_weighted_mse(g[g.los.astype(bool) == k], MIN_CELL_POINTS) for k in (True, False))
            row[f"{label(model)}: LOS / NLOS (m²)"] = f"{los:.1f} / {nlos:.1f}".replace("nan", "–")
        row[f"share of {label(ref_model)}'s squared error"] = f"{(b.sq_error_m2 * b.appearances).sum() / total:.2f}"
        out.append(row)
    return pd.DataFrame(out)


def distance_points(e: pd.DataFrame) -> pd.DataFrame:
    """Tidy, for the figure: per distance bin, LOS flag and method label (plus the nearest-surveyed-point
    oracle, from SCADF-MoE's points or the first method's) the held-out ``mse_m2`` (m², seeds pooled);
    cells of fewer than :data:`MIN_CELL_POINTS` points left out."""
    if e.empty:
        return pd.DataFrame()
    ref_model = _reference_model(e)
    out = []
    order = {m: i for i, m in enumerate(DISTANCE_METHODS)}
    cells = e.groupby(["model", "bin", e.los.astype(bool)], observed=True)
    for (model, word, los), g in sorted(cells, key=lambda kv: order[kv[0][0]]):
        if len(g) < MIN_CELL_POINTS:
            continue
        out.append({"bin": word, "los": los, "method": label(model), "mse_m2": _weighted_mse(g)})
        if model == ref_model:
            out.append({"bin": word, "los": los, "method": NEAREST_SURVEYED, "mse_m2": _nearest_ms(g)})
    order = {w: i for i, w in enumerate(DISTANCE_WORDS)}
    return pd.DataFrame(out).assign(position=lambda t: t.bin.map(order).astype(int))


def _los_growth(e: pd.DataFrame) -> tuple[str, float, str, float, str] | None:
    """For one method's block errors: the LOS MSE (m²) in the nearest and in the farthest distance bin
    that hold :data:`MIN_CELL_POINTS` LOS points, with the bins' words, and where the farthest bin's
    points come from ('582 points of seeds 0, 2'); None with fewer than two such bins."""
    los = e[e.los.astype(bool)]
    groups = [(word, g) for word, g in los.groupby("bin", observed=True) if len(g) >= MIN_CELL_POINTS]
    if len(groups) < 2:
        return None
    (near_word, near), (far_word, far) = groups[0], groups[-1]
    seeds = sorted(far.seed.unique())
    source = f"{len(far)} points of seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    return near_word, _weighted_mse(near), far_word, _weighted_mse(far), source


def distance_line(e: pd.DataFrame) -> str:
    """What the distance table says, in one paragraph: where SCADF-MoE's squared error on the blocks
    lies, how its NLOS error compares with the distance to the survey, and how its LOS error (which
    the closed form makes 0) grows away from the survey, beside WKNN's; '' without SCADF-MoE's errors."""
    s = e[e.model == "scadf"] if len(e) else e
    if s.empty:
        return ""
    far_nlos, point_share, error_share = far_nlos_share(s)
    near_nlos = s[(s.bin == DISTANCE_WORDS[0]) & ~s.los.astype(bool)]
    nlos = s[~s.los.astype(bool)]
    lookup = [_weighted_mse(g) / _nearest_ms(g) for _, g in nlos.groupby("bin", observed=True) if len(g)]
    text = (f"Where the error lies: NLOS points more than {DISTANCE_BINS[-2]:g} m from the nearest surveyed point are "
            f"{100 * point_share:.0f} % of the held-out block points and carry {100 * error_share:.0f} % "
            f"of SCADF-MoE's squared error on the blocks (MSE {_weighted_mse(s[far_nlos]):.0f} m², against "
            f"{_weighted_mse(near_nlos):.0f} m² on NLOS points within {DISTANCE_BINS[1]:g} m). On NLOS points its RMS error is "
            f"{np.sqrt(min(lookup)):.1f}-{np.sqrt(max(lookup)):.1f}× their RMS distance to the nearest surveyed point, bin by "
            f"bin: where the dominant path is bent, it errs by about as far as the point lies from the survey.")
    growth, wknn = _los_growth(s), _los_growth(e[e.model == "wknn"]) if len(e) else None
    if growth:
        near_word, near, far_word, far, source = growth
        text += (f" On LOS points, whose dominant path fixes the position (the closed form places them exactly), its MSE "
                 f"goes from {near:.2f} m² at {near_word} m from the survey to {far:.1f} m² at {far_word} m ({source}"
                 + (f"; WKNN, which can only return surveyed positions: {wknn[1]:.0f} to {wknn[3]:.0f} m²" if wknn else "")
                 + ")"
                 + (": the geometry it learned holds near the survey, not beyond it." if far > 10 * near else "."))
    return text + "\n\n"


def design_text(runs: pd.DataFrame) -> str:
    """The block size and guard band, with the scene facts that justify them (from ``runs.csv``)."""
    b = runs[(runs.get("split") == "blocks")] if "split" in runs else pd.DataFrame()
    if b.empty or "open_width_median_m" not in b or b.open_width_median_m.isna().all():
        return ""
    f = b.dropna(subset=["open_width_median_m"]).iloc[0]
    return (f"Blocks of {f.block_m:g} m: the scene has {int(f.blocks)} squares of that size, drawn at random until "
            f"20 % of the points are held out and 10 % more are validation points. The open space through "
            f"an outdoor point (the shorter of its row's and column's run of outdoor grid points) is "
            f"{f.open_width_median_m:.0f} m wide at the median and {f.open_width_p90_m:.0f} m at p90; "
            f"{100 * f.share_in_passages_narrower_than_block:.0f} % of the points lie in passages narrower than a "
            f"block, whose whole width a held-out block then holds, so the far pavement is not a training point "
            f"a few metres away. Smaller blocks leave every held-out point near a training point; larger ones leave "
            f"a handful of areas per seed. Guard band: training points within the clustering radius "
            f"({f.radius_m:.1f} m, the test trajectories' own radius) of a held-out or validation point are dropped. "
            f"Validation blocks (10 % of the points, their own guard band) select each run's best epoch, so model "
            f"selection measures what the test measures.")


def study_tables(rs: ResultSet | Path, base: ResultSet | Path | None = None,
                 rows: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The study's tables (what its section and notebook 04 show): 'blocks' (:func:`blocks_table`),
    'block facts', 'claims' (per split, :func:`scadf_lib.studies.claims.one_scene_claims`), 'density'
    (:func:`density_table`), 'distance' (the blocks' error by distance to the survey, :func:`distance_table`) and 'tracks' (walked tracks from the held-out blocks); ``base``: the
    baseline set (default: the measured-input study's, beside ``rs``); ``rows``: their
    :func:`split_rows`, where the caller has them already."""
    from scadf_lib.studies.track_table import tracks_table
    rs = as_set(rs)
    base = as_set(base) if base is not None else rs.sibling(BASELINE_SET)
    rows, runs = split_rows(rs, base) if rows is None else rows, rs.runs
    flat = csv_flags(runs.set_index("name")["flat"]) if "flat" in runs else pd.Series(dtype=bool)
    full = rows[(rows.survey.fillna("full") == "full") & rows.model.isin(METHODS)] if len(rows) else rows
    tracks = rs.table(rs.TRACKS)
    return {"blocks": pd.concat([blocks_table(rows, flat), nearest_survey_row(runs)], ignore_index=True).fillna(""),
            "block facts": block_facts(runs),
            "claims": one_scene_claims({s: full[full.split == s] for s in ("points", "blocks")}, "split"),
            "density": density_table(density_points(rows, runs)),
            "distance": distance_table(block_errors(rs, rows)),
            "tracks": pd.DataFrame() if tracks is None else tracks_table(tracks).drop(
                columns=["tracks, cluster-tested points: MSE (m²)"], errors="ignore")}


def unsurveyed_section(rs: ResultSet | Path, base: ResultSet | Path | None = None) -> str:
    """The study's section ("Where nobody surveyed"), '' where its result set does not exist yet."""
    rs = as_set(rs)
    if not (rs.has(rs.METRICS) and rs.has(rs.RUNS)):
        return ""
    base = as_set(base) if base is not None else rs.sibling(BASELINE_SET)
    rows = split_rows(rs, base)
    runs, t = rs.runs, study_tables(rs, base, rows)
    blocks, facts, claims, density, tracks = (t[k] for k in ("blocks", "block facts", "claims", "density", "tracks"))
    return ("## Where nobody surveyed (data version 2, munich Mix, oracle inputs)\n\n"
            f"`results/{rs.name}/`, {sweep_state(runs, UNSURVEYED_SET)}. The paper's protocol holds out points of a 1 m grid whose neighbours were trained on; "
            "here whole map blocks are held out, as a street nobody surveyed would be. Points: the measured-input "
            f"study's oracle runs (`results/{base.name}/`, the same data, protocol and seeds). "
            + design_text(runs) + "\n\n"
            + ("" if facts.empty else "The held-out blocks per seed:\n\n" + report_table(facts) + "\n\n")
            + "Held-out MSE (m²), mean ± 95 % interval over the seeds; blocks / points seed by seed on a "
              "log scale; median and p90 error (m) on the blocks:\n\n" + report_table(blocks) + "\n\n"
            + geometric_line(rows)
            + distance_text(rs, block_errors(rs, rows), t["distance"])
            + figure_line(rs, rs.UNSURVEYED_CDF, "Held-out error CDFs, points and blocks")
            + ("" if claims.empty else "The paper's claims on munich, per split (the reference set's rules on one "
               "scene; seeds in so far):\n\n" + report_table(claims) + "\n\n")
            + ("" if tracks.empty else "Walked tracks that start at an unsurveyed point (in a held-out block or "
               "its guard band; the `Localiser`, sliding windows of L; unsurveyed points scored, validation "
               "blocks excluded, bands pooled; mean ± 95 % interval over seeds):\n\n"
               + report_table(tracks) + "\n\n")
            + ("" if density.empty else "### How dense must the survey be? (point split, means over the seeds)\n\n"
               "The training and validation points thinned to a coarser grid or a random share: the best "
               "epoch (WKNN's k) is chosen on the thinned survey's own validation points, as an operator with "
               "that survey would choose it. The test trajectories stay those of the full survey, so every row "
               "is scored on the same held-out points. Surveyed points are clustered again with the radius "
               "scaled by the survey's spacing, and every survey trains the same number of trajectories per "
               "epoch:\n\n" + report_table(density) + "\n\n" + density_line(density_points(rows, runs))
               + figure_line(rs, rs.SURVEY_DENSITY, "Held-out error against the share of the grid surveyed")))


def distance_text(rs: ResultSet, e: pd.DataFrame, table: pd.DataFrame) -> str:
    """The blocks' error against the distance to the survey: its table (:func:`distance_table` of the
    block errors ``e``), what it says and its figure; '' before the distances (``survey_distance.csv.gz``)
    are written."""
    if table.empty:
        return ""
    return ("Held-out MSE on the blocks by the point's distance to the nearest surveyed point (m; seeds and bands "
            "pooled, each point weighted by its test trajectories; the nearest-surveyed-point column is the MSE of "
            f"placing every point of the bin there; '–': fewer than {MIN_CELL_POINTS} points):\n\n"
            + report_table(table) + "\n\n" + distance_line(e)
            + figure_line(rs, rs.ERROR_VS_DISTANCE, "Held-out MSE against the distance to the survey"))


def geometric_line(rows: pd.DataFrame) -> str:
    """The closed form's LOS sanity line on the blocks (it needs no survey, so it is no row)."""
    geo = rows[(rows.model == "geometric") & (rows.split == "blocks") & (rows.group == "held-out-LOS")].mse_m2
    return ("" if geo.empty else f"Sanity line: the closed form, which needs no survey, places the blocks' held-out "
            f"LOS points with MSE {geo.mean():.2f} m² (no row: on NLOS points it follows a bent path to its end).\n\n")


def unsurveyed_readme_lines(rs: ResultSet | Path) -> list[str]:
    """README's line on the study: what held-out blocks cost each trained method (held-out MSE on
    points → blocks, seeds in so far); [] before the study has a block run."""
    rs = as_set(rs)
    if not (rs.has(rs.METRICS) and rs.has(rs.RUNS)):
        return []
    rows = split_rows(rs, rs.sibling(BASELINE_SET))
    sel = rows[(rows.group == HEADLINE) & (rows.survey.fillna("full") == "full")]
    cells = []
    for model in [m for m in (*METHODS, "wknn") if m in set(sel[sel.split == "blocks"].model)]:
        g = sel[sel.model == model].groupby("split").agg(mse=("mse_m2", "mean"), seeds=("seed", "nunique"))
        if {"points", "blocks"} <= set(g.index):
            cells.append(f"{label(model)} {g.mse['points']:.2f} → {g.mse['blocks']:.2f} "
                         f"({int(g.seeds['blocks'])} seed{'s' if g.seeds['blocks'] > 1 else ''})")
    if not cells:
        return []
    return [f"Where nobody surveyed (`results/{rs.name}/`, munich Mix, oracle inputs): held-out MSE (m²) on the "
            "paper's held-out points → on held-out 20 m blocks: " + "; ".join(cells) + ".", ""]


def unsurveyed_headline(rs: ResultSet | Path) -> str:
    """One clause for the report's summary: what held-out 20 m blocks cost SCADF-MoE (or, before its
    block runs, WKNN) against held-out points; '' before any block run is in."""
    rs = as_set(rs)
    if not rs.has(rs.RUNS):  # a set's metrics come with its runs
        return ""
    rows = split_rows(rs, rs.sibling(BASELINE_SET))
    if rows.empty:
        return ""
    sel = rows[(rows.group == HEADLINE) & (rows.survey.fillna("full") == "full")]
    for model in ("scadf", "wknn"):
        g = sel[sel.model == model].groupby("split").agg(mse=("mse_m2", "mean"), median=("median_m", "mean"),
                                                         seeds=("seed", "nunique"))
        if {"points", "blocks"} <= set(g.index):
            n = int(g.seeds["blocks"])
            so_far = "" if sweep_complete(rs.runs, UNSURVEYED_SET) else " so far"
            return (f"In unsurveyed 20 m blocks of munich {label(model)}'s held-out MSE is {g.mse['blocks']:.0f} m² "
                    f"against {g.mse['points']:.2f} between surveyed points (median error {g['median']['blocks']:.2f} m "
                    f"against {g['median']['points']:.2f}{far_clause(block_errors(rs, rows), model)}; "
                    f"{n} seed{'s' if n > 1 else ''}{so_far}; appendix \"Where nobody surveyed\").")
    return ""


def far_clause(e: pd.DataFrame, model: str) -> str:
    """'; 87 % of its squared error lies on the 5 % of points that are NLOS and over 20 m from the survey'
    for ``model``'s block errors (:func:`block_errors`), '' without them."""
    s = e[e.model == model] if len(e) else e
    if s.empty:
        return ""
    _, point_share, error_share = far_nlos_share(s)
    return (f"; {100 * error_share:.0f} % of its squared error lies on the {100 * point_share:.0f} % "
            f"of points that are NLOS and over {DISTANCE_BINS[-2]:g} m from the survey")

