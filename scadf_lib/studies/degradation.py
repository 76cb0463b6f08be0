"""Degraded inputs: noise and missing modalities at test time, clean and augmented training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import AUGMENT_P_MISSING, AUGMENT_P_NOISE, METHODS
from scadf_lib.studies.common import HEADLINE, METHOD_LABELS, fmt_ci, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.studies.routing import routing_shift
from scadf_lib.tables import fmt_ratio, mean_ci, ratio_ci


#: The worst level of each corruption, on which the degradation verdict is taken.
WORST = ("cfr_snr_db=0", "angle_deg=10", "distance_pct=10", "gain_db=6", "missing cfr", "missing angles",
         "missing distance", "missing gain")


#: SCADF-MoE "copes best" if its held-out MSE is the lowest of the methods on at least this many of WORST.
COPES_MIN = 6


def degradation_coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Per training (clean / augmented): the methods of :data:`METHODS` not yet scored, the seeds
    every scored method has (the seeds its summary averages over) and the runs scored."""
    rows = []
    for aug, g in table.groupby("augmented"):
        seeds = g.groupby("model").seed.agg(lambda s: set(int(x) for x in s))
        rows.append({"training": "augmented" if aug else "clean",
                     "missing": [m for m in METHODS if m not in seeds.index],
                     "seeds": sorted(set.intersection(*seeds)), "runs": g.name.nunique()})
    return pd.DataFrame(rows, columns=["training", "missing", "seeds", "runs"])


def degradation_summary(table: pd.DataFrame, group: str = HEADLINE) -> pd.DataFrame:
    """Mean MSE (m^2) and 95 % CI over seeds per method, training (clean / augmented) and corruption.

    Within a training, every method is averaged over the same seeds: those all its scored methods
    have (:func:`degradation_coverage`), so a method whose later seeds landed first is not compared
    on other splits than the rest."""
    sel = table[table.group == group]
    for row in degradation_coverage(table).itertuples():
        mine = sel.augmented.astype(bool) == (row.training == "augmented")
        sel = sel[~mine | sel.seed.isin(row.seeds)]
    rows = []
    for (model, aug, label), g in sel.groupby(["model", "augmented", "label"]):
        mean, half = mean_ci(g.mse_m2.to_numpy())
        rows.append({"model": model, "training": "augmented" if aug else "clean", "label": label,
                     "corruption": g.corruption.iloc[0], "level": g.level.iloc[0], "mse_m2": mean, "ci95": half,
                     "seeds": g.seed.nunique()})
    return pd.DataFrame(rows)


def degradation_winners(summary: pd.DataFrame) -> pd.DataFrame:
    """Per training and worst-level corruption: the method with the lowest mean held-out MSE,
    SCADF-MoE's MSE and its rank (1 = best), and its MSE relative to its clean MSE."""
    rows = []
    for training, g in summary.groupby("training"):
        clean = g[g.label == "clean"].set_index("model").mse_m2
        for label in WORST:
            h = g[g.label == label].set_index("model").mse_m2.sort_values()
            if "scadf" not in h:
                continue
            rows.append({"training": training, "corruption": label, "best": h.index[0], "best_mse": h.iloc[0],
                         "scadf_mse": h["scadf"], "scadf_rank": int(list(h.index).index("scadf")) + 1,
                         "scadf_over_clean": h["scadf"] / clean["scadf"],
                         "best_baseline_over_clean": min((h[m] / clean[m] for m in h.index if m != "scadf"),
                                                         default=np.nan)})
    return pd.DataFrame(rows, columns=["training", "corruption", "best", "best_mse", "scadf_mse", "scadf_rank",
                                       "scadf_over_clean", "best_baseline_over_clean"])


def degradation_against_best_baseline(table: pd.DataFrame, group: str = HEADLINE) -> pd.DataFrame:
    """Per training and worst-level corruption: SCADF-MoE against the baseline with the lowest mean
    ``group`` MSE, seed by seed over the seeds both have: on how many SCADF-MoE's MSE is lower, and its
    per-seed ratio to the baseline's as a geometric mean with its 95 % interval (below 1: SCADF-MoE
    lower). The winners table ranks means only; this says whether a rank holds on every seed."""
    cols = ["training", "corruption", "best_baseline", "seeds", "scadf_lower_on", "ratio", "low", "high"]
    sel = table[(table.group == group) & table.label.isin(WORST)]
    rows = []
    for (aug, label), g in sel.groupby([sel.augmented.astype(bool), "label"]):
        per = g.pivot_table(index="seed", columns="model", values="mse_m2")
        if "scadf" not in per or per.shape[1] < 2:
            continue
        best = per.drop(columns="scadf").mean().idxmin()
        pair = per[["scadf", best]].dropna()
        ratio = (pair.scadf / pair[best]).to_numpy()
        mean, low, high = ratio_ci(ratio)
        rows.append({"training": "augmented" if aug else "clean", "corruption": label, "best_baseline": best,
                     "seeds": len(pair), "scadf_lower_on": int((ratio < 1).sum()), "ratio": mean, "low": low,
                     "high": high})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["training", "corruption"], key=lambda k: k.map({w: i for i, w in enumerate(WORST)})
                           if k.name == "corruption" else k, ignore_index=True)


def augmentation_effect(table: pd.DataFrame, group: str = HEADLINE,
                        labels: tuple[str, ...] = ("clean",) + WORST) -> pd.DataFrame:
    """What training with augmentation does to each method, per test-time corruption of ``labels``:
    the per-seed ratio of its ``group`` MSE trained augmented to trained clean, over the seeds it has
    both (below 1: augmentation helped), as a geometric mean with its 95 % interval (``change_pct`` =
    100 (ratio - 1)), and on how many seeds it helped. Empty until an augmented run is scored."""
    cols = ["model", "label", "clean_trained_mse", "augmented_mse", "ratio", "low", "high", "change_pct", "helped_on",
            "seeds"]
    sel = table[(table.group == group) & table.label.isin(labels)]
    training = np.where(sel.augmented.astype(bool), "augmented", "clean")
    per = sel.assign(training=training).pivot_table(index=["model", "label", "seed"], columns="training",
                                                    values="mse_m2")
    if "augmented" not in per or "clean" not in per:
        return pd.DataFrame(columns=cols)
    per = per[["clean", "augmented"]].dropna()
    change = per["augmented"] / per["clean"]
    rows = []
    for (model, label), c in change.groupby(level=["model", "label"]):
        pair = per.loc[(model, label)]
        mean, low, high = ratio_ci(c.to_numpy())
        rows.append({"model": model, "label": label, "clean_trained_mse": pair["clean"].mean(),
                     "augmented_mse": pair["augmented"].mean(), "ratio": mean, "low": low, "high": high,
                     "change_pct": 100 * (mean - 1), "helped_on": int((c < 1).sum()), "seeds": len(c)})
    out = pd.DataFrame(rows, columns=cols)
    order = {**{label: i for i, label in enumerate(labels)}, **{m: i for i, m in enumerate(METHODS)}}
    return out.sort_values(["model", "label"], key=lambda k: k.map(order), ignore_index=True)


def augmented_loss_shares(table: pd.DataFrame, group: str = "overall", p_noise: float = AUGMENT_P_NOISE,
                          p_missing: float = AUGMENT_P_MISSING) -> pd.DataFrame:
    """Where an augmented run's training error sits: per augmented run and part of the training
    mixture, that part's share (%) of the expected squared error, estimated from the run's own scores
    on ``group`` ('overall': mostly training positions): clean (probability 1 - 4 p_noise - 4 p_missing),
    each noise kind (p_noise each; its level is drawn uniformly in training, here the mean MSE over
    the study's grid levels stands for it) and each modality missing (p_missing each)."""
    cols = ["name", "model", "seed", "part", "probability", "mse_m2", "share_pct"]
    sel = table[(table.group == group) & table.augmented.astype(bool)]
    rows = []
    for (name, model, seed), g in sel.groupby(["name", "model", "seed"]):
        mse = g.set_index("label").mse_m2
        noisy = g[~g.corruption.isin(["clean", "missing"])]
        parts = {"clean": (1 - 4 * p_noise - 4 * p_missing, mse["clean"]),
                 **{kind: (p_noise, levels.mse_m2.mean()) for kind, levels in noisy.groupby("corruption", sort=False)},
                 **{lab: (p_missing, mse[lab]) for lab in g[g.corruption == "missing"].label}}
        total = sum(p * m for p, m in parts.values())
        rows += [{"name": name, "model": model, "seed": int(seed), "part": part, "probability": p, "mse_m2": m,
                  "share_pct": 100 * p * m / total} for part, (p, m) in parts.items()]
    return pd.DataFrame(rows, columns=cols)


def degradation_verdicts(winners: pd.DataFrame, coverage: pd.DataFrame, seeds_needed: int = 3,
                         paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per training: on how many worst-level corruptions SCADF-MoE has the lowest mean held-out MSE
    and the verdict on "dynamic fusion copes best": "yes" needs the lowest mean on at least
    :data:`COPES_MIN` and, given ``paired`` (:func:`degradation_against_best_baseline`), a lower MSE
    than the best baseline on every seed on at least as many ("not shown seed by seed" where the means
    say yes and the seeds do not); "no" below it; "waits" while a method of :data:`METHODS` has no
    scored run in that training. ``provisional``: fewer than ``seeds_needed`` seeds shared by every
    method."""
    rows = []
    for row in coverage.itertuples():
        g = winners[winners.training == row.training]
        best_on = int((g.scadf_rank == 1).sum())
        p = paired[paired.training == row.training] if paired is not None else None
        every_seed = None if p is None else int((p.scadf_lower_on == p.seeds).sum())
        verdict = ("waits" if row.missing or g.empty else "no" if best_on < COPES_MIN else
                   "yes" if every_seed is None or every_seed >= COPES_MIN else "not shown seed by seed")
        rows.append({"training": row.training, "best_on": best_on, "every_seed_on": every_seed,
                     "corruptions": len(g), "verdict": verdict, "missing": row.missing, "seeds": row.seeds,
                     "provisional": verdict != "waits" and len(row.seeds) < seeds_needed})
    return pd.DataFrame(rows, columns=["training", "best_on", "every_seed_on", "corruptions", "verdict", "missing",
                                       "seeds", "provisional"])


def degradation_verdict_text(r) -> str:
    """One training's verdict row of :func:`scadf_lib.analysis.degradation_verdicts` as a clause."""
    if r.verdict == "waits":
        return (f"trained {r.training}: waits for {', '.join(METHOD_LABELS[m] for m in r.missing)}"
                + (f" (among the methods scored so far SCADF-MoE is best on {r.best_on} of {r.corruptions})"
                   if r.corruptions else ""))
    note = f", provisional: seeds {r.seeds}" if r.provisional else ""
    seeds = ("" if r.every_seed_on is None or pd.isna(r.every_seed_on) else
             f", lower than the best baseline on every seed on {int(r.every_seed_on)}")
    return (f"trained {r.training}: SCADF-MoE has the lowest mean on {r.best_on} of {r.corruptions}{seeds} "
            f"(**{r.verdict}**{note})")


def best_baseline_paragraph(table: pd.DataFrame) -> str:
    """The winners' ranks seed by seed (:func:`scadf_lib.analysis.degradation_against_best_baseline`):
    the table, and per training on how many corruptions SCADF-MoE is lower on every seed, and how many
    of the changes' intervals lie below 0."""
    paired = degradation_against_best_baseline(table)
    if paired.empty:
        return ""
    clauses = [f"trained {training}: lower on every seed in {int((g.scadf_lower_on == g.seeds).sum())} of {len(g)}, "
               f"interval below 1 in {int((g.high < 1).sum())}"
               for training, g in paired.groupby("training", sort=False)]
    shown = paired.assign(best_baseline=paired.best_baseline.map(METHOD_LABELS),
                          ratio=[fmt_ratio(a, b, c) for a, b, c in zip(paired.ratio, paired.low, paired.high)])
    shown = shown.drop(columns=["low", "high"]).rename(columns={
        "best_baseline": "best baseline", "scadf_lower_on": "SCADF-MoE lower on (seeds)",
        "ratio": "SCADF-MoE / best baseline (MSE ratio)"})
    return ("The same ranks seed by seed: SCADF-MoE against the baseline with the lowest mean MSE at each corruption, "
            "over the seeds both have (the per-seed MSE ratio as a geometric mean with its 95 % interval; below 1: "
            "SCADF-MoE lower):\n\n" + report_table(shown) + "\n\n"
            "Does a rank hold on every seed? " + "; ".join(clauses) + ".\n")


def augmented_loss_paragraph(table: pd.DataFrame, effect: pd.DataFrame) -> str:
    """Where the augmented runs' training error sits (:func:`scadf_lib.analysis.augmented_loss_shares`):
    a table of shares per method and the part that carries most, beside the clean samples' share; with
    ``effect`` (:func:`scadf_lib.analysis.augmentation_effect`), the methods whose clean error rose."""
    shares = augmented_loss_shares(table)
    if shares.empty:
        return ""
    mean = shares.groupby(["model", "part"], sort=False).agg(share=("share_pct", "mean"), p=("probability", "first"),
                                                             seeds=("seed", "nunique")).reset_index()
    piv = mean.assign(method=mean.model.map(METHOD_LABELS)).pivot_table(index="method", columns="part",
                                                                          values="share", sort=False)
    piv.insert(0, "seeds", mean.groupby(mean.model.map(METHOD_LABELS)).seeds.max())
    piv = piv.reindex([METHOD_LABELS[m] for m in METHODS if METHOD_LABELS[m] in piv.index])
    by_part = mean.groupby("part", sort=False).agg(share=("share", "mean"), p=("p", "first"))
    top = by_part.share.idxmax()
    clean = effect[effect.label == "clean"]
    rose = [METHOD_LABELS[m] for m in clean[clean.change_pct > 0].model]
    why = (f": a likely reason why the clean held-out error rose with augmentation ({', '.join(rose)}), since the loss "
           "weights every sample's squared error alike and samples no model can place well dominate it" if rose else "")
    return ("Where the augmented training error sits: each part of the training mixture's share (%) of the expected "
            "squared error, estimated from each augmented run's own overall scores (a noise kind at the mean of its "
            "grid levels), mean over seeds:\n\n" + report_table(piv.round(1).reset_index()) + "\n\n"
            f"Over the methods in so far, {top} ({100 * by_part.p[top]:g} % of training samples) carries "
            f"{by_part.share[top]:.0f} % of it and the clean samples ({100 * by_part.p['clean']:g} %) "
            f"{by_part.share['clean']:.0f} %{why}.\n")


def degradation_document(rs: ResultSet | Path) -> str:
    """The degradation study in full (``<set>/DEGRADATION.md``): every corruption's table, who copes
    best, seed by seed, what augmentation buys, where the augmented loss sits, and the routing."""
    rs = as_set(rs)
    table = rs.table(rs.DEGRADATION)
    if table is None or not table.model.eq("scadf").any():
        return ""
    summary = degradation_summary(table)
    coverage = degradation_coverage(table)
    augmented = (coverage.training == "augmented").any()
    trained = ("Every method trained clean (the `main` runs) and trained with augmentation (each sample clean with "
               f"probability {1 - 4 * (AUGMENT_P_NOISE + AUGMENT_P_MISSING):g}, else one of 4 noise kinds at a random "
               f"level ({AUGMENT_P_NOISE:g} each) or one of 4 modalities missing ({AUGMENT_P_MISSING:g} each), with "
               "missing-modality flags as 4 extra inputs), then scored" if augmented else
               "Every method as trained clean in the `main` runs (the augmented training half of this study has not "
               "run yet), scored")
    seeds = (f"{sorted(int(x) for x in table.seed.unique())}" if len(coverage) == 1 else
             "; ".join(f"{r.seeds} trained {r.training}" for r in coverage.itertuples()) +
             " (within a training, every method over the seeds all of them have)")
    parts = ["# One modality degraded at test time (munich, Mix, held-out MSE m²)\n",
             f"Generated by `python -m scadf_lib.report` from `results/{rs.name}/{rs.DEGRADATION}`; the short version "
             "is section H of the report.\n",
             f"{trained} on a fixed subset of 600 test trajectories with one modality corrupted: CFR white noise at "
             "an SNR relative to its power; Gaussian errors on AoA/AoD (degrees), distance (%) and path gain (dB); or "
             f"the modality missing (set to its training mean). Mean ± 95 % CI over seeds {seeds}. "
             "Curves: notebook 07.\n"]
    for r in coverage[coverage.missing.str.len() > 0].itertuples():
        parts.append(f"Trained {r.training}, not in yet: {', '.join(METHOD_LABELS[m] for m in r.missing)} "
                     f"({r.runs} run(s) of this training are in so far); its rows are partial.\n")
    for modality, kind in (("CFR", "cfr_snr_db"), ("angles", "angle_deg"), ("distance", "distance_pct"),
                           ("gain", "gain_db")):
        sel = summary[(summary.corruption == kind) | (summary.label == "clean")
                      | (summary.label == f"missing {modality.lower()}")].copy()
        sel["cell"] = [fmt_ci(a, b) for a, b in zip(sel.mse_m2, sel.ci95)]
        piv = sel.pivot_table(index=["model", "training"], columns="label", values="cell", aggfunc="first")
        order = [label for label in dict.fromkeys(table.label) if label in piv.columns]  # the grid's order
        parts.append(f"**{modality}**\n\n" + report_table(piv[order].reset_index()) + "\n")
    parts.append("Who copes best at each corruption's worst level (SCADF-MoE's MSE relative to its own clean MSE, "
                 "beside the best baseline's ratio):\n\n" + report_table(degradation_winners(summary)) + "\n\n"
                 + copes_best_sentence(table) + "\n")
    parts.append(best_baseline_paragraph(table))
    effect = augmentation_effect(table)
    if len(effect):
        effect["cell"] = [f"{fmt_ratio(r, lo, hi)} ({n}/{k})" for r, lo, hi, n, k in
                          zip(effect.ratio, effect.low, effect.high, effect.helped_on, effect.seeds)]
        effect["method"] = effect.model.map(METHOD_LABELS)
        piv = effect.pivot_table(index="method", columns="label", values="cell", aggfunc="first")
        piv = piv.reindex(index=[METHOD_LABELS[m] for m in METHODS if METHOD_LABELS[m] in piv.index],
                          columns=[c for c in ("clean",) + WORST if c in piv.columns])
        parts.append("What augmentation buys: per method and test-time corruption (clean and the worst levels), the "
                     "per-seed ratio of the held-out MSE trained augmented to trained clean, on the seeds it has both, "
                     "as a geometric mean with its 95 % interval (below 1: augmentation helped; in brackets, on how "
                     "many of those seeds it helped):"
                     "\n\n" + report_table(piv.reset_index()) + "\n")
        parts.append(augmented_loss_paragraph(table, effect))
    if rs.has(rs.ROUTING_RESPONSE):
        parts.append("SCADF-MoE's routing against the CFR's SNR: share of the experts' dispatched input that comes "
                     "from CFR tokens (mean over experts and seeds), per layer:\n\n"
                     + report_table(routing_shift(rs.table(rs.ROUTING_RESPONSE))) + "\n\n" + routing_sentence(rs) + "\n")
    return "\n".join(parts)


def copes_best_sentence(table: pd.DataFrame) -> str:
    """The verdict on "dynamic fusion copes best when a modality degrades", per training, with its rule."""
    summary, coverage = degradation_summary(table), degradation_coverage(table)
    verdicts = degradation_verdicts(degradation_winners(summary), coverage,
                                    paired=degradation_against_best_baseline(table))
    return (f"Verdict, \"dynamic fusion copes best when a modality degrades\" (**yes** needs SCADF-MoE's lowest "
            f"mean held-out MSE on at least {COPES_MIN} of the {len(WORST)} worst-level corruptions and a lower "
            f"MSE than the best baseline on every seed on as many): "
            + "; ".join(degradation_verdict_text(r) for r in verdicts.itertuples()) + ".")


def augmentation_sentence(effect: pd.DataFrame) -> str:
    """Per method, on how many corruptions augmented training lowered its error (the geometric mean
    ratio below 1) and on how many beyond the seeds' spread (the interval below 1)."""
    return "; ".join(f"augmentation lowered {METHOD_LABELS.get(m, m)}'s error on {int((g.ratio < 1).sum())} of {len(g)} "
                     f"corruptions ({int((g.high < 1).sum())} beyond the seeds' spread)"
                     for m, g in effect.groupby("model", sort=False)) + ("." if len(effect) else "")


def routing_sentence(rs: ResultSet) -> str:
    """Does SCADF-MoE's task router shift weight away from the CFR as its SNR drops? Per training."""
    shift = routing_shift(rs.table(rs.ROUTING_RESPONSE))
    moved = [f"trained {r.training}: {fmt_ci(r.drop_clean_to_0dB, r.ci95)} ("
             f"{'**yes**' if np.isfinite(r.ci95) and r.drop_clean_to_0dB - r.ci95 > 0 else '**no**'}"
             f"{f', provisional: {r.seeds} seed(s)' if r.seeds < 3 else ''})"
             for r in shift[shift.layer == "task"].itertuples()]
    return ("Does the task router shift weight away from the CFR as its SNR drops (drop of the CFR share from "
            "clean to 0 dB, interval above 0)? " + "; ".join(moved) + ".")


def degradation_section(rs: ResultSet | Path) -> str:
    """The report's short version of the degradation study; the detail is :func:`degradation_document`."""
    rs = as_set(rs)
    table = rs.table(rs.DEGRADATION)
    if table is None or not table.model.eq("scadf").any():
        return ""
    from scadf_lib.studies.table_ii import figure_link
    effect = augmentation_effect(table)
    clean = effect[effect.label == "clean"]
    helped = [METHOD_LABELS[m] for m in clean[clean.high < 1].model]
    hurt = [METHOD_LABELS[m] for m in clean[clean.low > 1].model]
    augment = ("" if effect.empty else
               " Augmented training, on clean inputs: the held-out error fell beyond the seeds' spread for "
               f"{', '.join(helped) or 'no method'} and rose for {', '.join(hurt) or 'no method'}.")
    routing = " " + routing_sentence(rs) if rs.has(rs.ROUTING_RESPONSE) else ""
    return ("## H. Beyond the paper: one modality degraded at test time (munich, Mix)\n\n"
            "Every method, trained clean and trained with noise and modality-dropout augmentation, scored with one "
            "modality corrupted at a time (CFR noise; angle, distance and gain errors; a modality missing). "
            + copes_best_sentence(table) + augment + routing
            + f" Every table, seed by seed: [`{figure_link(rs, rs.DEGRADATION_REPORT)}`]"
              f"({figure_link(rs, rs.DEGRADATION_REPORT)}); curves: notebook 07.\n")
