"""The paper's question under measured inputs (``results/measured``, data version 2, munich Mix): every
method on the ray tracer's oracle inputs against the features a base station estimates, the link-budget
and timing-offset sweeps, and whether SCADF-MoE's routers weigh the modalities by their quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import METHODS
from scadf_lib.studies.claims import one_scene_claims
from scadf_lib.studies.common import (HEADLINE, figure_line, fmt_ci, label, planned_runs, report_table,
                                      sweep_complete, sweep_state)
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import csv_flags, fmt_ratio, ratio_ci, summarize

#: The anchors with a row beside the trained methods (the closed form has a line of its own: LOS points only).
MEASURED_ANCHOR_ROWS = ("wknn", "wknn_cfr")

#: The result set of this study.
MEASURED_SET = "measured"


def study_rows(rs: ResultSet) -> pd.DataFrame:
    """The set's metric rows (all bands), with each run's inputs ('oracle' or 'measured') and sweep
    setting (``param``, ``value``; empty for the default link budget) from ``runs.csv``."""
    runs = rs.runs.set_index("name")
    m = rs.metrics[rs.metrics.band == "all"].copy()
    m["inputs"] = m.name.map(runs["inputs"]) if "inputs" in runs else "oracle"
    for col in ("param", "value"):
        m[col] = m.name.map(runs[col]) if col in runs else np.nan
    return m


def oracle_vs_measured(rs: ResultSet, group: str = HEADLINE) -> pd.DataFrame:
    """Per method (trained, then anchors), at the default link budget: ``group`` MSE (m², mean ± 95 %
    CI over seeds, each seed's) on oracle and on measured inputs, measured over oracle seed by seed
    (geometric mean with its interval) and the median error (m, mean over seeds) on both; the runs of
    each cell that did not end flat are counted."""
    m = study_rows(rs)
    m = m[m.param.isna() & (m.group == group)]
    flat = csv_flags(rs.runs.set_index("name")["flat"])
    rows = []
    for model in [x for x in (*METHODS, *MEASURED_ANCHOR_ROWS) if x in set(m.model)]:
        g = m[m.model == model]
        row = {"method": label(model)}
        per = g.pivot_table(index="seed", columns="inputs", values="mse_m2")
        for inputs in ("oracle", "measured"):
            s = summarize(g[g.inputs == inputs], ["model"], group)
            row[f"{inputs} (m²)"] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
            row[f"{inputs}, per seed"] = " / ".join(f"{v:.2f}" for v in per[inputs].dropna()) if inputs in per else ""
        pair = per.dropna() if {"oracle", "measured"} <= set(per.columns) else pd.DataFrame()
        row["measured / oracle"] = fmt_ratio(*ratio_ci((pair.measured / pair.oracle).to_numpy())) if len(pair) else ""
        median = g.groupby("inputs").median_m.mean() if "median_m" in g else pd.Series(dtype=float)
        row["median error (m): oracle → measured"] = (f"{median['oracle']:.2f} → {median['measured']:.2f}"
                                                      if {"oracle", "measured"} <= set(median.dropna().index) else "")
        trained = g[g.model.isin(METHODS)].name.unique()
        short = [n for n in trained if n in flat.index and not flat[n]]
        row["runs not flat"] = len(short) if len(trained) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_table(rs: ResultSet, group: str = HEADLINE) -> pd.DataFrame:
    """The link-budget and timing sweeps (seed 0, measured inputs): per method and setting, the
    ``group`` MSE (m²), with the default setting's run as its reference row."""
    m = study_rows(rs)
    m = m[(m.group == group) & (m.inputs == "measured") & (m.seed == 0) & m.model.isin(METHODS)]
    swept = m[m.param.notna()]
    if swept.empty:
        return pd.DataFrame()
    default = m[m.param.isna() & m.model.isin(set(swept.model))].assign(setting="default link budget (23 dBm, 2 ns)")
    words = {"tx_power_offset_db": "transmit power {:+g} dB", "timing_offset_std_ns": "timing offset std {:g} ns"}
    swept = swept.assign(setting=[words.get(p, p + " {:g}").format(float(v)) for p, v in zip(swept.param, swept.value)])
    t = pd.concat([default, swept])
    t = t.assign(method=t.model.map(label))
    return t.pivot_table(index="setting", columns="method", values="mse_m2", sort=False).reset_index()


def quality_contrasts(table: pd.DataFrame, layer: str = "task") -> pd.DataFrame:
    """Per run: the CFR share of ``layer`` in the lowest SNR quartile minus the highest (``snr``: the
    rule's contrast, quartiles over the run's validation samples, bands pooled), the same with the
    quartiles taken within each band and averaged over bands (``snr_within_band``: a check that the
    band, which sets much of the SNR, does not carry it), on samples with a missing feature minus
    without (``missing``), on mostly-NLOS samples minus mostly-LOS (``nlos``); NaN where a side is
    empty. Positive: more CFR where the numeric estimates are worse."""
    rows = []
    for (name, inputs, seed), g in table.groupby(["name", "inputs", "seed"], sort=False):
        lo, hi = g.snr_db.quantile([0.25, 0.75])
        s = g[layer]

        def diff(worse: pd.Series, better: pd.Series) -> float:
            return float(s[worse].mean() - s[better].mean()) if worse.any() and better.any() else np.nan
        by_band = [diff((b.snr_db <= b.snr_db.quantile(0.25)).reindex(g.index, fill_value=False),
                        (b.snr_db >= b.snr_db.quantile(0.75)).reindex(g.index, fill_value=False))
                   for _, b in g.groupby("band_ghz")]
        rows.append({"name": name, "inputs": inputs, "seed": int(seed), "samples": len(g),
                     "default_budget": str(name).endswith(f"_{inputs}_s{int(seed)}"),
                     "share": float(s.mean()), "snr": diff(g.snr_db <= lo, g.snr_db >= hi),
                     "snr_within_band": float(np.nanmean(by_band)) if by_band else np.nan,
                     "missing": diff(g.missing.astype(bool), ~g.missing.astype(bool)),
                     "nlos": diff(g.nlos_share > 0.5, g.nlos_share <= 0.5)})
    return pd.DataFrame(rows, columns=["name", "inputs", "seed", "samples", "default_budget", "share", "snr",
                                       "snr_within_band", "missing", "nlos"])


def quality_verdict(contrasts: pd.DataFrame) -> str:
    """Do the routers move weight toward the CFR where the numeric estimates are poor (the paper's
    hypothesis)? The rule, fixed before any number of the study was looked at, on the default link
    budget's runs (one oracle and one measured run per seed): **supported** when, on measured inputs,
    the task router's CFR share is higher in the lowest SNR quartile than in the highest
    (:func:`quality_contrasts`' ``snr``) on every seed, and that difference exceeds the oracle-input
    run's on every seed; **contradicted** when it is higher on no seed; otherwise **mixed**; one seed
    makes it provisional; 'waits' without a seed that has both. Missing features and NLOS points are
    reported beside it with the same contrast, not voted on."""
    default = contrasts[contrasts.default_budget.astype(bool)]
    pair = default.pivot_table(index="seed", columns="inputs", values="snr").dropna()
    if not {"oracle", "measured"} <= set(pair.columns) or pair.empty:
        return "waits"
    higher = pair.measured > 0
    beyond = pair.measured > pair.oracle
    verdict = "supported" if (higher & beyond).all() else "contradicted" if not higher.any() else "mixed"
    return verdict + (" (provisional: one seed)" if len(pair) < 2 else "")


def measured_claims(rs: ResultSet) -> pd.DataFrame:
    """The paper's three claims on munich, at the default link budget, on each kind of input
    (:func:`scadf_lib.studies.claims.one_scene_claims`)."""
    m = study_rows(rs)
    m = m[m.param.isna() & m.model.isin(METHODS)]
    return one_scene_claims({inputs: m[m.inputs == inputs] for inputs in ("oracle", "measured")}, "inputs")


def accuracy_by_snr(table: pd.DataFrame) -> pd.DataFrame:
    """Per SCADF-MoE run (:mod:`scadf_lib.routing_quality`'s table), the validation samples' MSE (m²: the
    mean over their points of the squared error) in each quarter of their measurement SNR, lowest
    first, with each quarter's SNR range (dB): how accuracy follows the link."""
    if "sq_error_m2" not in table:
        return pd.DataFrame()
    rows = []
    for (name, inputs), g in table.dropna(subset=["sq_error_m2"]).groupby(["name", "inputs"], sort=False):
        q = pd.qcut(g.snr_db, 4, labels=False, duplicates="drop")
        edges = g.snr_db.quantile([0.25, 0.5, 0.75])
        row = {"run": name, "inputs": inputs, "SNR quartile edges (dB)": " / ".join(f"{e:.0f}" for e in edges)}
        for k, part in g.groupby(q):
            row[f"MSE, SNR quarter {int(k) + 1} (m²)"] = part.sq_error_m2.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def held_out_by_snr(rs: ResultSet) -> pd.DataFrame:
    """Per method (trained, then anchors) and inputs, at the default link budget, seeds pooled: the
    held-out points' MSE (m², each point's mean over the test trajectories holding it; ``errors/``) in
    each quarter of their per-element SNR (``snr.csv.gz``; quartile edges over every held-out point of
    these runs, bands pooled), lowest first. For oracle inputs the SNR their inputs would have had (they
    do not degrade with it): the control."""
    snr = rs.table(rs.SNR_MAP)
    if snr is None:
        return pd.DataFrame()
    m = study_rows(rs)
    runs = m[m.param.isna() & (m.group == HEADLINE)].drop_duplicates("name")
    frames = [e.merge(snr, on=["band_ghz", "ue"]).assign(model=r.model, inputs=r.inputs, seed=r.seed)
              for r in runs.itertuples() if (e := rs.errors(r.name)) is not None]
    if not frames:
        return pd.DataFrame()
    pts = pd.concat(frames, ignore_index=True)
    edges = pts.drop_duplicates(["band_ghz", "ue"]).snr_db.quantile([0.25, 0.5, 0.75]).to_numpy()
    names = [f"< {edges[0]:.0f} dB", f"{edges[0]:.0f}-{edges[1]:.0f} dB", f"{edges[1]:.0f}-{edges[2]:.0f} dB",
             f"> {edges[2]:.0f} dB"]
    pts["quarter"] = np.digitize(pts.snr_db, edges)
    rows = []
    for model in [x for x in (*METHODS, *MEASURED_ANCHOR_ROWS) if x in set(pts.model)]:
        for inputs in ("oracle", "measured"):
            g = pts[(pts.model == model) & (pts.inputs == inputs)]
            if len(g):
                mse = g.groupby("quarter").sq_error_m2.mean()
                rows.append({"method": label(model), "inputs": inputs, "seeds": int(g.seed.nunique()),
                             **{f"MSE, SNR {n} (m²)": mse.get(k, np.nan) for k, n in enumerate(names)}})
    return pd.DataFrame(rows)


def routing_quality_text(rs: ResultSet) -> str:
    """The routing verdict of :mod:`scadf_lib.routing_quality` with its contrasts, or '' without data."""
    table = rs.table(rs.ROUTING_QUALITY)
    if table is None or table.empty:
        return ""
    c = quality_contrasts(table)  # default budget first, seed by seed (oracle, then measured), then the sweeps
    c = c.sort_values(["default_budget", "seed", "inputs", "name"], ascending=[False, True, False, True],
                      key=lambda col: col.astype(bool) if col.name == "default_budget" else col)
    accuracy = accuracy_by_snr(table)
    if len(accuracy):
        accuracy = accuracy.set_index("run").loc[c.name].reset_index()
    accuracy_text = ("" if accuracy.empty else "\nAccuracy against the link: the same validation samples' MSE per "
                     "quarter of their measurement SNR, lowest first (for an oracle-input run the SNR its "
                     "inputs would have had: they do not degrade):\n\n" + report_table(accuracy.round(2)) + "\n")
    shown = c.drop(columns=["samples"]).rename(columns={
        "default_budget": "default link budget", "share": "task router CFR share",
        "snr": "low SNR - high SNR", "snr_within_band": "the same within each band",
        "missing": "missing feature - none", "nlos": "NLOS - LOS"})
    return ("\n**Do the routers weigh the modalities by their quality?** Per SCADF-MoE run, the task router's CFR share "
            "(mean over experts and tasks) on its validation samples, and how it differs between samples whose numeric "
            "estimates are poor and good (positive: more CFR where the estimates are worse):\n\n"
            + report_table(shown) + "\n\n"
            "Rule, fixed in `scadf_lib.studies.measured.quality_verdict` before any of these numbers was looked at: the hypothesis is "
            "supported when, on measured inputs, the CFR share is higher in the lowest SNR quartile than in the "
            "highest on every seed and by more than the oracle-input run's on every seed; contradicted when it is "
            f"higher on no seed. Verdict: **{quality_verdict(c)}**.\n" + accuracy_text)


def held_out_link_text(table: pd.DataFrame, method: str = "scadf") -> str:
    """README's clause on how ``method``'s held-out error follows the link (:func:`held_out_by_snr`), ''
    without both inputs."""
    rows = table[table.method == label(method)].set_index("inputs") if len(table) else table
    if not {"oracle", "measured"} <= set(rows.index):
        return ""
    cols = [c for c in table.columns if c.startswith("MSE, SNR")]
    low, high = cols[0].removeprefix("MSE, SNR ").removesuffix(" (m²)"), cols[-1].removeprefix("MSE, SNR ").removesuffix(
        " (m²)")
    m, o = rows.loc["measured"], rows.loc["oracle"]
    return (f" On measured inputs the error follows the link: {label(method)}'s held-out MSE is {m[cols[0]]:.2f} m² in "
            f"the lowest SNR quarter ({low}) and {m[cols[-1]]:.2f} m² in the highest ({high}); on oracle inputs "
            f"{o[cols[0]]:.2f} and {o[cols[-1]]:.2f} ({int(m.seeds)} seed{'s' if m.seeds > 1 else ''}).")


def held_out_snr_text(rs: ResultSet) -> str:
    """The held-out points' accuracy against the link (:func:`held_out_by_snr`), or '' without data."""
    table = held_out_by_snr(rs)
    return ("" if table.empty else "\nAccuracy against the link on the test: held-out points' MSE (m²) per quarter "
            "of their per-element SNR at the default link budget (quartiles over all held-out points, bands pooled, "
            "seeds pooled; oracle rows: the SNR their inputs would have had, a control):\n\n"
            + report_table(table.round(2)) + "\n")


def _figure(rs: ResultSet, name: str, alt: str) -> str:
    """The figure's line as a paragraph of this section ('' where the set has no such figure)."""
    line = figure_line(rs, name, alt)
    return "\n" + line.rstrip("\n") + "\n" if line else ""


def measured_section(rs: ResultSet | Path) -> str:
    """The study's section, '' where its result set does not exist yet."""
    rs = as_set(rs)
    if not (rs.has(rs.METRICS) and rs.has(rs.RUNS)):
        return ""
    table = oracle_vs_measured(rs)
    sweep = sweep_table(rs)
    claims = measured_claims(rs)
    sanity = closed_form_text(rs)
    return ("## The paper's question on measured inputs (data version 2, munich Mix)\n\n"
            f"`results/{rs.name}/`, {sweep_state(rs.runs, MEASURED_SET)}. Oracle inputs: the ray tracer's dominant path and one noise-free CFR element; measured: what a "
            "16-element ULA base station estimates from one uplink pilot (first-path length, angle from broadside, "
            "power, missing flags; the angle-delay profile as the CFR input), 23 dBm, 2 ns timing offset. Held-out "
            "MSE (m²), mean ± 95 % interval over the seeds in so far, then each seed's; measured / oracle seed by seed "
            "on a log scale:\n\n" + report_table(table) + "\n" + (f"\n{sanity}\n" if sanity else "")
            + _figure(rs, rs.MEASURED_CDF, "Held-out error CDFs on oracle and on measured inputs")
            + ("" if claims.empty else "\nThe paper's claims on munich, default link budget (the reference set's rules on "
               "one scene; seeds in so far):\n\n" + report_table(claims) + "\n")
            + ("" if sweep.empty else "\nLink budget and timing offset (seed 0, held-out MSE m²):\n\n"
               + report_table(sweep.round(2)) + "\n")
            + held_out_snr_text(rs)
            + _figure(rs, rs.ACCURACY_VS_SNR, "Held-out MSE per quarter of the link SNR")
            + routing_quality_text(rs)
            + "\nA ULA measures the angle from its broadside, the same for two UEs mirrored across the array axis "
              "(\"What a base station measures\", below): part of what the measured inputs cost is this array, not "
              "the estimators.\n")


def closed_form_cells(rs: ResultSet) -> dict[str, pd.DataFrame]:
    """The closed form's held-out-LOS rows (default link budget, one row per seed and band pooling):
    ``oracle`` (oracle inputs), ``true_side`` and ``guessed`` (measured inputs, the array's side known
    or chosen by the fingerprint), each only when its anchors are in."""
    rows = study_rows(rs)
    los = rows[(rows.group == "held-out-LOS") & rows.param.isna()]
    cell = {(m, i): g for (m, i), g in los.groupby(["model", "inputs"])}
    keys = {"oracle": ("geometric", "oracle"), "guessed": ("geometric", "measured"),
            "true_side": ("geometric_true_side", "measured")}
    return {k: cell[key] for k, key in keys.items() if key in cell}


def closed_form_text(rs: ResultSet) -> str:
    """The closed form's line (held-out LOS points, seeds pooled as means): on oracle inputs (a sanity
    check), and on measured inputs with the array's true side and with the side chosen by the fingerprint (WKNN)
    (:func:`scadf_lib.anchors.measured_geometric_positions`); '' before its anchors are in."""
    cells = closed_form_cells(rs)
    if "oracle" not in cells:
        return ""
    text = (f"Closed form (no row: on NLOS points it follows a bent first path to its end), held-out LOS points: "
            f"MSE {cells['oracle'].mse_m2.mean():.2f} m² on oracle inputs (a sanity check)")
    true_side, guessed = cells.get("true_side"), cells.get("guessed")
    if true_side is not None and guessed is not None:
        runs = rs.runs.set_index("name")
        right = runs.reindex(guessed.name.unique()).get("anchor_side_right_share", pd.Series(dtype=float)).mean()
        text += (f"; on measured inputs {true_side.mse_m2.mean():.2f} m² (median {true_side.median_m.mean():.2f} m) "
                 f"with the array's true side, which a sector antenna facing one side would know, and "
                 f"{guessed.mse_m2.mean():.0f} m² (median {guessed.median_m.mean():.2f} m, p90 {guessed.p90_m.mean():.0f} m) "
                 f"with the side a bare ULA amid its UEs must guess (the mirror candidate nearer the position WKNN on the measured CFR and features gives"
                 + (f"; right for {100 * right:.0f} % of detected first paths" if np.isfinite(right) else "") + ")")
    return text + "."


def measured_readme_lines(rs: ResultSet | Path) -> list[str]:
    """The README's sentence on the measured-input study: each trained method's held-out MSE on oracle
    and on measured inputs (seeds in so far) and the routing verdict; [] before the study has runs."""
    rs = as_set(rs)
    if not (rs.has(rs.METRICS) and rs.has(rs.RUNS)):
        return []
    m = study_rows(rs)
    m = m[m.param.isna() & (m.group == HEADLINE)]
    if not m.model.isin(METHODS).any():
        return []
    cells = []
    for model in [x for x in (*METHODS, *MEASURED_ANCHOR_ROWS) if x in set(m.model)]:
        g = m[m.model == model].groupby("inputs").agg(mse=("mse_m2", "mean"), seeds=("seed", "nunique"))
        if {"oracle", "measured"} <= set(g.index):
            cells.append(f"{label(model)} {g.mse['oracle']:.2f} → {g.mse['measured']:.2f} "
                         f"({int(g.seeds.min())} seed{'s' if g.seeds.min() > 1 else ''})")
    closed = closed_form_cells(rs)
    if {"true_side", "guessed"} <= set(closed):
        cells.append(f"the closed form from the first path, held-out LOS points only: {closed['oracle'].mse_m2.mean():.2f}"
                     f" → {closed['guessed'].mse_m2.mean():.0f} ({closed['true_side'].mse_m2.mean():.2f} with the "
                     "array's side known)")
    table = rs.table(rs.ROUTING_QUALITY)
    link = held_out_link_text(held_out_by_snr(rs))
    verdict = ("" if table is None or table.empty else
               f" Do SCADF-MoE's routers move weight to the CFR where the numeric estimates are poor (rule fixed "
               f"beforehand)? **{quality_verdict(quality_contrasts(table))}**.")
    planned = planned_runs(MEASURED_SET)
    done = len(set(rs.runs.name) & planned)
    state = "every planned run in" if done == len(planned) else f"{done} of {len(planned)} planned runs in"
    return [f"Measured inputs (`results/{rs.name}/`, munich Mix, data version 2, {state}): held-out MSE "
            "(m²) on the ray tracer's oracle inputs → on what a 16-element ULA base station estimates: "
            + "; ".join(cells) + "." + link + verdict, ""]


def measured_headline(rs: ResultSet | Path) -> str:
    """One clause for the report's summary: SCADF-MoE's held-out MSE on oracle and on measured inputs
    (munich, default link budget, seeds in so far); '' before both are in."""
    rs = as_set(rs)
    if not rs.has(rs.RUNS):  # a set's metrics come with its runs
        return ""
    rows = study_rows(rs)
    rows = rows[rows.param.isna() & (rows.group == HEADLINE)]
    m = rows[rows.model == "scadf"]
    m = m if "median_m" in m else m.assign(median_m=np.nan)  # a table without medians: none quoted
    g = m.groupby("inputs").agg(mse=("mse_m2", "mean"), seeds=("seed", "nunique"), median=("median_m", "mean"))
    if not {"oracle", "measured"} <= set(g.index):
        return ""
    n = int(g.seeds.min())
    medians = (f" (median error {g['median']['measured']:.2f} m against {g['median']['oracle']:.2f})"
               if g["median"].notna().all() else "")
    anchors = rows[rows.model.isin(MEASURED_ANCHOR_ROWS) & (rows.inputs == "measured")].groupby("model").mse_m2.mean()
    anchor = ("" if anchors.empty else f"; the better fingerprinting anchor on the same inputs, "
              f"{label(anchors.idxmin())}, {anchors.min():.0f} m²")
    so_far = "" if sweep_complete(rs.runs, MEASURED_SET) else " so far"
    return (f"On what a base station measures (munich, data version 2, {n} seed{'s' if n > 1 else ''}{so_far}), "
            f"SCADF-MoE's held-out MSE is {g.mse['measured']:.1f} m² against {g.mse['oracle']:.2f} on oracle inputs"
            f"{medians}{anchor} (appendix \"The paper's question on measured inputs\").")

