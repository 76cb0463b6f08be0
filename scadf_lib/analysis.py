"""Pure table analysis of a result set (``all_metrics.csv``, ``runs.csv``, ``curves.csv`` and the
study tables): DataFrames in, DataFrames out, no Markdown and no training code. Notebooks 04-08 and
:mod:`scadf_lib.report` read the results through these functions.

Units: MSE in m² (mean over points of the squared Euclidean error), distances in m.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import ABLATIONS, AUGMENT_P_MISSING, AUGMENT_P_NOISE, METHODS, RETRAINED_LABEL, SCENES
from scadf_lib.tables import csv_flags, mean_ci, summarize

#: How methods and anchors are named in tables and figures.
METHOD_LABELS = {"concat": "Concat", "fullcon": "FullCon", "transfusion": "TransFusion", "softmoe": "SoftMoE",
                 "scadf": "SCADF-MoE", "geometric": "geometric (closed form)", "wknn": "WKNN (numeric)",
                 "wknn_cfr": "WKNN (numeric + CFR)"}
ANCHORS = ("geometric", "wknn", "wknn_cfr")
#: The paper's ablations (Fig. 4) as the driver names them, with how tables label them.
ABLATION_LABELS = {"scadf_nospace": "no spatial context (L = 1)", "scadf_no_routing": "no dynamic routing",
                   "scadf_single_expert": "single expert", "scadf_no_mmd": "no MMD (λ = 0)",
                   "scadf_no_task_emb": "no task embeddings"}

PAPER_CLAIMS = {
    "submeter": "sub-meter MSE (below 1 m^2) on every scene",
    "reduction": "61-63 % lower MSE than the best baseline",
    "unseen": "about half the unseen-NLOS error of the best baseline (55 % lower)",
}

#: Each reduction claim of :data:`PAPER_CLAIMS`: the point group it is scored on and the least mean
#: per-seed reduction (%) against the best baseline that counts as reproducing it: the paper's 61 %
#: overall, and 45 % on held-out NLOS points for its "about half" (it reports 55 %).
CLAIM_NEEDS = {"reduction": ("overall", 61), "unseen": ("held-out-NLOS", 45)}

#: The headline group: points in no training trajectory (the paper's "overall" mostly scores
#: training positions, which sit in test trajectories as spatial context).
HEADLINE = "held-out"

#: The point groups of the per-scene tables (held-out: points in no training trajectory).
GROUPS = ("held-out", "held-out-LOS", "held-out-NLOS", "seen", "seen-LOS", "seen-NLOS", "overall", "centroid")

#: LOS offset slope from which a method counts as localising each point, not only the trajectory.
SLOPE_OK = 0.8

#: The worst level of each corruption, on which the degradation verdict is taken.
WORST = ("cfr_snr_db=0", "angle_deg=10", "distance_pct=10", "gain_db=6", "missing cfr", "missing angles",
         "missing distance", "missing gain")

#: SCADF-MoE "copes best" if its held-out MSE is the lowest of the methods on at least this many of WORST.
COPES_MIN = 6

#: The paper's Table II MSE for SCADF-MoE and SoftMoE on its three WAIR-D scenes, as quoted in
#: ``shared/research/peers.md`` (arXiv 2507.01337; units not stated there: see METRIC_NOTE).
PAPER_TABLE_II = {"scadf": (0.34, 0.53, 0.56), "softmoe": (1.40, 1.37, 1.45)}

#: The validation error the stopping rule and the flatness rule read (points + centroid MSE,
#: normalised; ``scadf_lib.training.should_stop``): the power-law fits below read the same one.
RULE_ERROR = "val_localisation"

#: Row order of the track study's methods (:data:`scadf_lib.tracks.STUDY_MODELS` and the anchors).
#: A retrained sample (:data:`scadf_lib.presets.RETRAINED_LABEL`) follows its method.
TRACK_METHODS = ("SCADF-MoE", "SoftMoE", "SCADF-MoE, L = 1", "WKNN", "centroid floor")



def label(method: str) -> str:
    """The display name of a method, anchor or ablation variant."""
    return METHOD_LABELS.get(method) or ABLATION_LABELS.get(method) or method


def fmt_ci(mean: float, half: float) -> str:
    """'0.32 ± 0.05' (mean ± 95 % half-width), or '0.32' where the interval is undefined (one seed)."""
    return f"{mean:.2f} ± {half:.2f}" if np.isfinite(half) else f"{mean:.2f}"


def read_set(set_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) of a result set; ``band`` stays text ('all', '2.6', ...). The metrics leave
    out anchors that duplicate another on every split (:func:`redundant_anchors`); ``runs`` keeps them."""
    for name in ("all_metrics.csv", "runs.csv"):
        if not (set_dir / name).exists():
            raise FileNotFoundError(f"{set_dir / name} not found: a result set is written by "
                                    f"`python -m scadf_lib.experiments --preset <name>` into results/<name>/")
    runs = pd.read_csv(set_dir / "runs.csv")
    return without_redundant_anchors(pd.read_csv(set_dir / "all_metrics.csv", dtype={"band": str}), runs), runs


def read_curves(set_dir: Path) -> pd.DataFrame | None:
    """A result set's learning curves (``curves.csv``: one row per run and epoch), or None without."""
    path = set_dir / "curves.csv"
    return pd.read_csv(path) if path.exists() else None


def paired_reduction(main: pd.DataFrame, regime: str, group: str) -> pd.DataFrame:
    """Per scene: best baseline (lowest mean MSE), and the per-seed relative reduction of SCADF-MoE
    against it, 100 (1 - scadf / baseline), with a 95 % CI over seeds."""
    sel = main[(main.regime == regime) & (main.group == group) & (main.band == "all")]
    rows = []
    for scene, g in sel.groupby("scene"):
        means = g.groupby("model").mse_m2.mean()
        if "scadf" not in means or len(means) < 2:  # no baseline on this scene (e.g. an inspector-only run)
            continue
        best = means.drop("scadf").idxmin()
        per_seed = g.pivot_table(index="seed", columns="model", values="mse_m2")[["scadf", best]].dropna()
        red = 100 * (1 - per_seed["scadf"] / per_seed[best])
        mean, half = mean_ci(red.values)
        rows.append({"scene": scene, "best_baseline": best, "baseline_mse": means[best], "scadf_mse": means["scadf"],
                     "reduction_pct": mean, "ci95": half, "seeds": len(red)})
    return pd.DataFrame(rows)


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
    ``group`` MSE, seed by seed over the seeds both have: on how many SCADF-MoE's MSE is lower, and
    its mean per-seed change (%) with the 95 % CI (negative: SCADF-MoE lower). The winners table ranks
    means only; this says whether a rank holds on every seed."""
    cols = ["training", "corruption", "best_baseline", "seeds", "scadf_lower_on", "change_pct", "ci95"]
    sel = table[(table.group == group) & table.label.isin(WORST)]
    rows = []
    for (aug, label), g in sel.groupby([sel.augmented.astype(bool), "label"]):
        per = g.pivot_table(index="seed", columns="model", values="mse_m2")
        if "scadf" not in per or per.shape[1] < 2:
            continue
        best = per.drop(columns="scadf").mean().idxmin()
        pair = per[["scadf", best]].dropna()
        change = 100 * (pair.scadf / pair[best] - 1)
        mean, half = mean_ci(change.to_numpy())
        rows.append({"training": "augmented" if aug else "clean", "corruption": label, "best_baseline": best,
                     "seeds": len(pair), "scadf_lower_on": int((change < 0).sum()), "change_pct": mean, "ci95": half})
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["training", "corruption"], key=lambda k: k.map({w: i for i, w in enumerate(WORST)})
                           if k.name == "corruption" else k, ignore_index=True)


def augmentation_effect(table: pd.DataFrame, group: str = HEADLINE,
                        labels: tuple[str, ...] = ("clean",) + WORST) -> pd.DataFrame:
    """What training with augmentation does to each method, per test-time corruption of ``labels``:
    the per-seed change (%) of its ``group`` MSE trained augmented against trained clean, over the
    seeds it has both (negative: augmentation helped), mean ± 95 % CI, and on how many seeds it helped.
    Empty until an augmented run is scored."""
    cols = ["model", "label", "clean_trained_mse", "augmented_mse", "change_pct", "ci95", "helped_on", "seeds"]
    sel = table[(table.group == group) & table.label.isin(labels)]
    training = np.where(sel.augmented.astype(bool), "augmented", "clean")
    per = sel.assign(training=training).pivot_table(index=["model", "label", "seed"], columns="training",
                                                    values="mse_m2")
    if "augmented" not in per or "clean" not in per:
        return pd.DataFrame(columns=cols)
    per = per[["clean", "augmented"]].dropna()
    change = 100 * (per["augmented"] / per["clean"] - 1)
    rows = []
    for (model, label), c in change.groupby(level=["model", "label"]):
        pair = per.loc[(model, label)]
        mean, half = mean_ci(c.to_numpy())
        rows.append({"model": model, "label": label, "clean_trained_mse": pair["clean"].mean(),
                     "augmented_mse": pair["augmented"].mean(), "change_pct": mean, "ci95": half,
                     "helped_on": int((c < 0).sum()), "seeds": len(c)})
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


def degradation_verdicts(winners: pd.DataFrame, coverage: pd.DataFrame, seeds_needed: int = 3) -> pd.DataFrame:
    """Per training: on how many worst-level corruptions SCADF-MoE has the lowest mean held-out MSE
    and the verdict on "dynamic fusion copes best" (at least :data:`COPES_MIN`): "yes" or "no", or
    "waits" while a method of :data:`METHODS` has no scored run in that training. ``provisional``:
    fewer than ``seeds_needed`` seeds shared by every method."""
    rows = []
    for row in coverage.itertuples():
        g = winners[winners.training == row.training]
        best_on = int((g.scadf_rank == 1).sum())
        verdict = "waits" if row.missing or g.empty else ("yes" if best_on >= COPES_MIN else "no")
        rows.append({"training": row.training, "best_on": best_on, "corruptions": len(g), "verdict": verdict,
                     "missing": row.missing, "seeds": row.seeds,
                     "provisional": verdict != "waits" and len(row.seeds) < seeds_needed})
    return pd.DataFrame(rows, columns=["training", "best_on", "corruptions", "verdict", "missing", "seeds",
                                       "provisional"])


def routing_shift(resp: pd.DataFrame) -> pd.DataFrame:
    """Per layer and training: SCADF-MoE's CFR share (mean over experts and seeds) with the CFR
    clean, at 0 dB SNR and missing, and the per-seed drop clean - 0 dB with its 95 % CI."""
    share = resp.groupby(["augmented", "layer", "seed", "label"]).cfr_share.mean().unstack("label")
    rows = []
    for (aug, layer), g in share.groupby(level=["augmented", "layer"]):
        drop = (g["clean"] - g["cfr_snr_db=0"]).to_numpy()
        mean, half = mean_ci(drop)
        rows.append({"training": "augmented" if aug else "clean", "layer": layer, "share_clean": g["clean"].mean(),
                     "share_30dB": g["cfr_snr_db=30"].mean(), "share_10dB": g["cfr_snr_db=10"].mean(),
                     "share_0dB": g["cfr_snr_db=0"].mean(), "share_cfr_missing": g["missing cfr"].mean(),
                     "drop_clean_to_0dB": mean, "ci95": half, "seeds": len(drop)})
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
    rows.append({"method": "centroid floor (every point at its true centroid)", "runs flat": "",
                 **{g: f"{floor[g]:.2f}" if g in floor and np.isfinite(floor[g]) else "" for g in groups}})
    return pd.DataFrame(rows)


def _not_flat_mark(model: str, flags: pd.Series) -> str:
    """' †' where some of the method's runs (:func:`flat_counts`, 'n/N') were not flat at their end."""
    flat = flags.get(model, "")
    return " †" if flat and flat.split("/")[0] != flat.split("/")[1] else ""


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


def redundant_anchors(runs: pd.DataFrame) -> set[str]:
    """Anchors that reduced to another on every split of the set: ``wknn_cfr`` where the validation
    search chose CFR weight 0 everywhere (its predictions are then exactly WKNN (numeric)'s)."""
    cfr = runs[(runs.study == "anchors") & (runs.model == "wknn_cfr")]
    if cfr.empty or "anchor_cfr_weight" not in cfr:
        return set()
    return {"wknn_cfr"} if (cfr.anchor_cfr_weight.fillna(0) <= 0).all() else set()


def without_redundant_anchors(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` without the rows of :func:`redundant_anchors` (they duplicate another anchor's)."""
    drop = redundant_anchors(runs)
    return metrics[~((metrics.study == "anchors") & metrics.model.isin(drop))]


def geometric_los_nlos(metrics: pd.DataFrame, regime: str = "mix") -> tuple[float, float] | None:
    """The geometric anchor's held-out LOS and NLOS MSE (m², mean over scenes and seeds), or None."""
    sel = metrics[(metrics.study == "anchors") & (metrics.model == "geometric") & (metrics.regime == regime)
                  & (metrics.band == "all")]
    by_group = sel.groupby("group").mse_m2.mean()
    if not {"held-out-LOS", "held-out-NLOS"} <= set(by_group.index):
        return None
    return float(by_group["held-out-LOS"]), float(by_group["held-out-NLOS"])


def anchors_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every scene x regime x anchor: held-out (LOS / NLOS), seen and overall MSE (m², mean over seeds)."""
    sel = metrics[(metrics.study == "anchors") & (metrics.band == "all")]
    if sel.empty:
        return pd.DataFrame()
    piv = sel.pivot_table(index=["scene", "regime", "model"], columns="group", values="mse_m2", aggfunc="mean")
    cols = [g for g in ("held-out", "held-out-LOS", "held-out-NLOS", "seen", "overall") if g in piv.columns]
    return piv[cols].reset_index().rename(columns={"model": "anchor"})


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


def curve_inputs(cdir: Path, scene: str = "munich") -> tuple[pd.DataFrame, float, dict[str, float]]:
    """The main runs' learning curves of ``scene`` (Mix), the centroid floor of their test
    points and WKNN's held-out test MSE (m²): the inputs of :func:`scadf_lib.plots.run_curves`."""
    curves = pd.read_csv(cdir / "curves.csv")
    curves = curves[(curves.study == "main") & (curves.scene == scene) & (curves.regime == "mix")]
    metrics = pd.read_csv(cdir / "all_metrics.csv", dtype={"band": str})
    sel = metrics[(metrics.scene == scene) & (metrics.regime == "mix") & (metrics.band == "all")
                  & (metrics.group == "held-out")]
    wknn = float(sel[sel.model == "wknn"].mse_m2.mean())
    floor = float(sel[sel.study == "main"].offset_floor_m2.mean())
    return curves, floor, ({"WKNN held-out (test)": wknn} if np.isfinite(wknn) else {})


def hold_check(results: Path, longer: str = "flat", shorter: str = "flat_schedule_end", scene: str = "munich",
               group: str = HEADLINE) -> pd.DataFrame:
    """The same main runs (``scene`` Mix) at the end of their schedule (set ``shorter``) and with the
    floor held on past the schedule to the set's maximum (set ``longer``), paired by run: per method, how many runs
    trained on, how many were flat before and after, the mean ``group`` MSE (m²) before and after,
    and the change of each run that trained on (mean ± 95 % CI over those runs, %, and the largest);
    a number that moves by less than its spread
    between the two is as final as the test metric can show. Only runs on the same schedule in
    both sets pair; ``attrs["other_schedule"]`` lists the methods left out for that. Empty without
    both sets."""
    paths = [results / n for n in (shorter, longer)]
    if not all((p / "all_metrics.csv").exists() and (p / "runs.csv").exists() for p in paths):
        return pd.DataFrame()
    per_set = []
    for p in paths:
        m, r = pd.read_csv(p / "all_metrics.csv", dtype={"band": str}), pd.read_csv(p / "runs.csv")
        m = m[(m.study == "main") & (m.scene == scene) & (m.regime == "mix") & (m.group == group) & (m.band == "all")]
        r = r[(r.study == "main") & (r.scene == scene) & (r.regime == "mix")].set_index("name")
        # flat_schedule_end's runs.csv predates the schedule_epochs column: there the schedule spans the run
        span = r.schedule_epochs.fillna(r.epochs) if "schedule_epochs" in r else r.epochs
        per_set.append(pd.DataFrame({"model": r.model, "epochs": r.epochs_trained, "flat": csv_flags(r["flat"]),
                                     "span": span, "mse": m.set_index("name").mse_m2.reindex(r.index)}))
    both = per_set[0].merge(per_set[1].drop(columns="model"), left_index=True, right_index=True,
                            suffixes=("_short", "_long"))
    in_both = set(both.model)
    both = both[both.span_short == both.span_long]  # the same run only: a run whose schedule changed is another
    rows = []
    for model, g in both.groupby("model"):
        on = g[g.epochs_long > g.epochs_short]
        change = 100 * (on.mse_long / on.mse_short - 1)
        mean, half = mean_ci(change.values)
        rows.append({"method": model, "runs": len(g), "trained on": len(on),
                     "epochs (schedule end → held)": f"{int(g.epochs_short.max())} → {int(g.epochs_long.max())}",
                     "flat before": int(g.flat_short.sum()), "flat after": int(g.flat_long.sum()),
                     f"{group} (m²) before": round(float(g.mse_short.mean()), 3),
                     f"{group} (m²) after": round(float(g.mse_long.mean()), 3),
                     "change where trained on (%)": fmt_ci(mean, half) if len(on) else "",
                     "largest change (%)": round(float(change.abs().max()), 1) if len(on) else 0.0})
    out = pd.DataFrame(rows)
    if len(out):
        out["method"] = pd.Categorical(out.method, [m for m in METHODS if m in set(out.method)], ordered=True)
        out = out.sort_values("method")
    out.attrs["other_schedule"] = sorted(in_both - set(both.model), key=list(METHODS).index)
    return out


def floor_exponent(curves: pd.DataFrame) -> pd.Series:
    """Per run (``name``): the exponent α of a power law, best validation error (:data:`RULE_ERROR`,
    the one the stopping rule reads) ∝ step^-α, fitted
    (least squares in log-log) to the epochs at the learning-rate floor (``lr`` within 0.1 % of the
    run's smallest); NaN with fewer than 4 such epochs. A power law gains 1 - 0.75^α over the last
    quarter of any budget: the 2 % flatness rule needs α < 0.07, whatever the budget, and doubling
    the budget gains 1 - 2^-α."""
    out = {}
    for name, g in curves.sort_values("step").groupby("name"):
        log_step, log_best, at_floor = _floor_curve(g)
        out[name] = _alpha(log_step, log_best, at_floor, min_epochs=4)
    return pd.Series(out, name="floor_exponent", dtype=float)


def _floor_curve(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One run's curve (sorted by step) as log steps, log best-so-far :data:`RULE_ERROR`, and the mask
    of its epochs at the learning-rate floor (``lr`` within 0.1 % of the run's smallest)."""
    at_floor = (g.lr <= 1.001 * g.lr.min()).to_numpy()
    return np.log(g.step.to_numpy()), np.log(g[RULE_ERROR].cummin().to_numpy()), at_floor


def _alpha(log_step: np.ndarray, log_best: np.ndarray, sel: np.ndarray, min_epochs: int) -> float:
    """α of best ∝ step^-α, least squares in log-log over the epochs ``sel``; NaN with fewer than ``min_epochs``."""
    return float(-np.polyfit(log_step[sel], log_best[sel], 1)[0]) if sel.sum() >= min_epochs else float("nan")


def floor_bend(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run (``name``): :func:`floor_exponent`'s α fitted separately to the first and the second
    half (in log steps) of the epochs at the learning-rate floor (``alpha_early``, ``alpha_late``;
    NaN with fewer than 3 epochs in a half). It describes whether a curve was bending by the end of
    the run (α falling: toward flat); it does not predict it: a curve whose α rose can still bend later
    (SCADF-MoE munich seed 0: 0.13 -> 0.21 to 120 epochs, flat at 203)."""
    rows = []
    for name, g in curves.sort_values("step").groupby("name"):
        steps, best, at_floor = _floor_curve(g)
        mid = 0.5 * (steps[at_floor].min() + steps[at_floor].max()) if at_floor.any() else np.nan
        rows.append({"name": name, "alpha_early": _alpha(steps, best, at_floor & (steps <= mid), min_epochs=3),
                     "alpha_late": _alpha(steps, best, at_floor & (steps >= mid), min_epochs=3)})
    return pd.DataFrame(rows, columns=["name", "alpha_early", "alpha_late"]).set_index("name")


def power_law_budget(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Per main run (``name``): how many times its trained steps its best validation MSE would need to
    reach the best method's (the lowest per-method median of the runs' best validation MSE, same scene
    and regime), if it kept falling as the power law of :func:`floor_exponent`: (v / v_best)^(1/α).
    1 for a run already there; inf where α <= 0 (a curve that no longer falls). An extrapolation,
    not a measurement: it says whether a not-flat run could still change a ranking."""
    alpha = floor_exponent(curves)
    best = curves.groupby("name")[RULE_ERROR].min()
    main = runs[(runs.study == "main") & runs.name.isin(best.index)].assign(v=lambda r: r.name.map(best))
    target = main.groupby(["scene", "regime", "model"]).v.median().groupby(["scene", "regime"]).min()
    out = {}
    for r in main.itertuples():
        ratio = r.v / target[(r.scene, r.regime)]
        a = alpha.get(r.name, np.nan)
        if ratio <= 1:
            out[r.name] = 1.0
        elif not np.isfinite(a):
            out[r.name] = np.nan
        else:  # exp(ln(ratio) / α), inf for a curve that no longer falls (or past 1e300)
            exponent = np.log(ratio) / a if a > 0 else np.inf
            out[r.name] = float(np.exp(exponent)) if exponent < 690 else np.inf
    return pd.Series(out, name="power_law_budget", dtype=float)


def budget_check(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str = "munich") -> pd.DataFrame:
    """Each ``budget`` run (``scene`` Mix) beside the ``main`` run of the same method and seed: maximum
    and trained epochs, held-out / held-out-NLOS / overall MSE (m²) and late gain, so that one sees
    whether a flat curve at the set's budget was already the number a longer budget gives."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == "mix") & (metrics.band == "all")]
    table = sel.pivot_table(index="name", columns="group", values="mse_m2", aggfunc="first")
    info = runs.set_index("name")
    rows = []
    for b in runs[(runs.study == "budget") & (runs.scene == scene)].itertuples():
        ref = runs[(runs.study == "main") & (runs.scene == scene) & (runs.regime == "mix")
                   & (runs.model == b.model) & (runs.seed == b.seed)]
        for name in [*ref.name, b.name]:
            r = info.loc[name]
            span = r.get("schedule_epochs", float("nan"))
            rows.append({"method": b.model, "seed": int(b.seed),
                         **({"schedule epochs": int(span)} if pd.notna(span) else {}), "max epochs": int(r.epochs),
                         "epochs trained": int(r.epochs_trained),
                         **{f"{g} (m²)": round(float(table.loc[name, g]), 3) for g in ("held-out", "held-out-NLOS", "overall")
                            if name in table.index and g in table.columns},
                         "late gain (%)": round(100 * float(r.val_late_gain), 1),
                         "flat": str(r["flat"]).lower() == "true"})
    out = pd.DataFrame(rows)
    if len(out) and "held-out (m²)" in out:  # the longer run's held-out MSE against its main run's
        first = out.groupby(["method", "seed"])["held-out (m²)"].transform("first")
        out["held-out vs main (%)"] = (100 * (out["held-out (m²)"] / first - 1)).round(1)
    return out


def isolation_by_method(cdir: Path) -> pd.DataFrame:
    """Where a set's held-out error sits (``isolation.csv``, :func:`scadf_lib.experiments.isolation_table`):
    per scene and method (Mix, mean over seeds), the share of the squared error on held-out points
    whose fingerprint matches no training point within 10 m, and the MSE with and without them (m²)."""
    path = cdir / "isolation.csv"
    if not path.exists():
        return pd.DataFrame()
    iso = pd.read_csv(path)
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


def ood_cost(metrics: pd.DataFrame, band: str = "6.0", group: str = HEADLINE) -> pd.DataFrame:
    """What leaving a band out of training costs: per scene and method (model names), the held-out
    MSE on the ``band`` (GHz) test slots of the Mix runs (the band in training: ``mix_m2``) and of the
    OOD runs (never trained on: ``ood_m2``), m², mean over seeds with 95 % CI half-widths (``*_ci``),
    and the per-seed ratio OOD / Mix (``ratio``, ``ratio_ci``). A seed's Mix and OOD runs share the
    split, so both score the same test slots; seeds without both are left out."""
    sel = metrics[metrics.study.isin(["main", "anchors"]) & (metrics.group == group) & (metrics.band == band)]
    rows = []
    for scene in [s for s in SCENES if s in set(sel[sel.regime == "ood"].scene)]:
        for m in [m for m in (*METHODS, *ANCHORS) if m in set(sel.model)]:
            g = sel[(sel.scene == scene) & (sel.model == m)]
            pair = g.pivot_table(index="seed", columns="regime", values="mse_m2")
            if not {"mix", "ood"} <= set(pair.columns):
                continue
            pair = pair[["mix", "ood"]].dropna()
            if pair.empty:
                continue
            (mix, mix_ci), (ood, ood_ci) = mean_ci(pair.mix.values), mean_ci(pair.ood.values)
            ratio, ratio_ci = mean_ci((pair.ood / pair.mix).values)
            rows.append({"scene": scene, "model": m, "mix_m2": mix, "mix_ci": mix_ci, "ood_m2": ood, "ood_ci": ood_ci,
                         "ratio": ratio, "ratio_ci": ratio_ci, "seeds": len(pair)})
    return pd.DataFrame(rows, columns=["scene", "model", "mix_m2", "mix_ci", "ood_m2", "ood_ci", "ratio",
                                       "ratio_ci", "seeds"])


def ood_cost_table(metrics: pd.DataFrame, band: str = "6.0", group: str = HEADLINE) -> pd.DataFrame:
    """:func:`ood_cost` as a table: MSE and ratio cells 'mean ± CI', methods by their labels."""
    c = ood_cost(metrics, band, group)
    return pd.DataFrame({"scene": c.scene, "method": c.model.map(label),
                         f"Mix, {band} GHz in training": [fmt_ci(m, h) for m, h in zip(c.mix_m2, c.mix_ci)],
                         f"OOD, {band} GHz never trained on": [fmt_ci(m, h) for m, h in zip(c.ood_m2, c.ood_ci)],
                         "OOD / Mix (x)": [fmt_ci(m, h) for m, h in zip(c.ratio, c.ratio_ci)], "seeds": c.seeds})


def worst_points(results: Path, names: list[str], worst: int = 10) -> pd.DataFrame:
    """How much of each run's held-out MSE its ``worst`` points carry, from its per-point errors
    (``errors/<name>.csv.gz``, written for the first seed of the Mix runs; runs without one are left
    out): held-out slots, MSE and median squared error (m²), the share of the squared error on the
    ``worst`` largest errors (%), the largest error (m) and the MSE without those points (m²)."""
    rows = []
    for name in names:
        path = results / "errors" / f"{name}.csv.gz"
        if not path.exists():
            continue
        e = pd.read_csv(path)
        sq = np.sort(e.error_m[e.held_out].to_numpy() ** 2)[::-1]
        if len(sq) <= worst:
            continue
        rows.append({"name": name, "held_out_slots": len(sq), "mse_m2": sq.mean(), "median_sq_error_m2": np.median(sq),
                     f"worst_{worst}_share_pct": 100 * sq[:worst].sum() / sq.sum(), "max_error_m": np.sqrt(sq[0]),
                     f"mse_without_worst_{worst}_m2": sq[worst:].mean()})
    return pd.DataFrame(rows)


def tracks_table(tracks: pd.DataFrame, group: str = "all") -> pd.DataFrame:
    """Per scene and method (``tracks.csv`` of :func:`scadf_lib.tracks.run_track_studies`, bands
    pooled): held-out MSE (m², mean ± 95 % CI over seeds) in cluster trajectories and in tracks, the
    tracks' median error (m) and the seeds. ``group``: 'all', 'LOS' or 'NLOS'."""
    t = tracks[(tracks.band_ghz.astype(str) == "all") & (tracks.group == group)]
    rows = []
    for (scene, method), g in t.groupby(["scene", "method"], sort=False):
        cell = {}
        for source in ("cluster", "track", "track, cluster-tested points"):
            v = g[g.source == source].sort_values("seed")
            cell[source] = fmt_ci(*mean_ci(v.mse_m2.to_numpy())) if len(v) else ""
        tr = g[g.source == "track"]
        rows.append({"scene": scene, "method": method, "clusters: held-out MSE (m²)": cell["cluster"],
                     "tracks: held-out MSE (m²)": cell["track"],
                     "tracks, cluster-tested points: MSE (m²)": cell["track, cluster-tested points"],
                     "tracks: median (m)": f"{tr.median_m.mean():.2f}",
                     "seeds": ", ".join(str(int(x)) for x in sorted(g.seed.unique()))})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    order = {m: i for i, m in enumerate(TRACK_METHODS)}
    order.update({m + RETRAINED_LABEL: i + 0.5 for m, i in order.items()})
    scenes = {sc: i for i, sc in enumerate(SCENES)}
    return out.sort_values(["scene", "method"], key=lambda c: c.map(scenes if c.name == "scene" else order)
                           ).reset_index(drop=True)


def main_table(metrics: pd.DataFrame, runs: pd.DataFrame, regime: str = "mix", scenes: tuple[str, ...] = SCENES,
               groups: tuple[str, ...] = (HEADLINE, "overall")) -> pd.DataFrame:
    """Table II as a frame: one row per method, then the anchors, then the centroid floor; per scene
    and group the MSE (m², mean ± 95 % CI over seeds; 'n/a' where the cell has no run), and the seeds
    per scene. A method with a run whose curve did not end flat is marked '†'."""
    sel = metrics[(metrics.regime == regime) & metrics.study.isin(["main", "anchors"]) & metrics.scene.isin(scenes)]
    scenes = tuple(s for s in scenes if s in set(sel.scene))
    flags = flat_counts(runs[(runs.regime == regime) & runs.scene.isin(scenes)])
    rows = []
    for m in [m for m in (*METHODS, *ANCHORS) if m in set(sel.model)]:
        g = sel[sel.model == m]
        row = {"method": label(m) + _not_flat_mark(m, flags)}
        for scene in scenes:
            for grp in groups:
                s = summarize(g[g.scene == scene], ["model"], grp)
                row[f"{scene} {grp}"] = fmt_ci(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        row["seeds"] = " / ".join(str(g[g.scene == sc].seed.nunique()) for sc in scenes)
        rows.append(row)
    floor = sel[(sel.band == "all") & (sel.study == "main")].groupby(["scene", "group"]).offset_floor_m2.mean()
    rows.append({"method": "centroid floor", **{f"{sc} {g}": f"{floor[(sc, g)]:.2f}" if (sc, g) in floor else ""
                                                for sc in scenes for g in groups}, "seeds": ""})
    return pd.DataFrame(rows)


def variant_table(metrics: pd.DataFrame, variants: pd.DataFrame, reference: pd.DataFrame,
                  groups: tuple[str, ...] = (HEADLINE, "held-out-NLOS", "overall"),
                  runs: pd.DataFrame | None = None, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Variants of SCADF-MoE against the full model on the same seeds (same split, same initial data
    order): per variant the MSE (m², mean ± 95 % CI over seeds) per group and the per-seed paired
    change against the reference (%, mean ± 95 % CI). ``variants``: metric rows with a ``variant``
    column; ``reference``: the full model's rows. With ``runs``: the epochs its runs trained ('32' or
    the range over seeds, '32-203'), since each run stops by the rule, not at a fixed budget. With
    ``curves``: the per-seed :func:`equal_epoch_val_change` against the full model (mean ± 95 % CI)."""
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
            row[f"{grp} change (%)"] = fmt_ci(*mean_ci(change.to_numpy())) if len(change) else ""
        if runs is not None:
            row["epochs"] = _epoch_range(runs, g.name.unique())
        if curves is not None:
            row[EQUAL_EPOCHS] = "" if v == "scadf" else _equal_epoch_cell(curves, both, v)
        rows.append(row)
    return pd.DataFrame(rows)


def equal_epoch_val_change(curves: pd.DataFrame, name: str, reference: str) -> float:
    """Run ``name`` against run ``reference`` at the same training budget (%, positive: ``name`` does
    worse): each run's validation point MSE (m², ``curves.csv`` val_mse_points_m2) at its best
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


def ablation_effects(metrics: pd.DataFrame, scene: str = "munich", group: str = HEADLINE,
                     seeds_needed: int = 3, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Does each part of SCADF-MoE help, as the paper's Fig. 4 says? Per ablation: the seeds paired
    with the full model, on how many the variant's ``group`` MSE is higher (removing the part hurt),
    the mean per-seed change (%) with its 95 % CI, and a verdict on the removed part: 'the part helps'
    (the variant worse on every seed and the interval above 0), 'the part helps on every seed, interval
    spans 0', 'the part hurts on every seed' (the variant better on every seed), else 'no consistent
    effect'; '(provisional)' below ``seeds_needed`` seeds. With ``curves``: on how many of the seeds
    with curves (``val_seeds``) the variant's validation error at equal epochs is higher
    (``val_worse_on``, :func:`equal_epoch_val_change`): the same question with the budget held equal."""
    sel, ref = ablation_rows(metrics, scene)
    sel, ref = sel[sel.band == "all"], ref[ref.band == "all"]
    both = pd.concat([ref.assign(variant="scadf"), sel])
    rows = []
    for v in [v for v in ABLATION_LABELS if v in set(sel.variant)]:
        change = paired_change(both, group, v)
        if change.empty:
            continue
        mean, ci = mean_ci(change.to_numpy())
        worse = int((change > 0).sum())
        verdict = ("the part helps" if worse == len(change) and np.isfinite(ci) and mean - ci > 0 else
                   "the part helps on every seed, interval spans 0" if worse == len(change) else
                   "the part hurts on every seed" if worse == 0 else "no consistent effect")
        row = {"variant": label(v), "seeds": len(change), "worse_on": worse, "change_pct": mean, "ci95": ci,
               "verdict": verdict + (" (provisional)" if len(change) < seeds_needed else "")}
        if curves is not None:
            val = equal_epoch_changes(curves, both, v)
            row.update(val_seeds=len(val), val_worse_on=int((val > 0).sum()))
        rows.append(row)
    columns = ["variant", "seeds", "worse_on", "change_pct", "ci95", "verdict"]
    return pd.DataFrame(rows, columns=columns + (["val_seeds", "val_worse_on"] if curves is not None else []))


EQUAL_EPOCHS = "val change, equal epochs (%)"


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
    """:func:`equal_epoch_changes` as mean ± 95 % CI over seeds; '' where no pair has curves."""
    change = equal_epoch_changes(curves, both, variant)
    return fmt_ci(*mean_ci(change)) if len(change) else ""


def _epoch_range(runs: pd.DataFrame, names) -> str:
    """'32' or '32-203': the epochs the named runs trained (``runs.csv`` epochs_trained); '' if none."""
    e = runs.set_index("name").epochs_trained.reindex(list(names)).dropna().astype(int)
    return "" if e.empty else f"{e.min()}" if e.min() == e.max() else f"{e.min()}-{e.max()}"


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


def _has_own_lambda_0(sens: pd.DataFrame) -> bool:
    """Whether sensitivity rows (metrics or runs) hold a λ = 0 run of their own."""
    return "param" in sens and bool(((sens.param == "mmd_weight")
                                     & (pd.to_numeric(sens.value, errors="coerce") == 0)).any())


def _no_mmd_ablation(frame: pd.DataFrame, seed: int, scene: str = "munich") -> pd.DataFrame:
    """The rows (metrics or runs) of the no-MMD ablation of ``seed`` on ``scene``: the run that stands
    for the sensitivity study's λ = 0 (``scadf_lib.planning``)."""
    return frame[(frame.study == "ablation") & (frame.model == "scadf_no_mmd") & (frame.seed == seed)
                 & (frame.scene == scene)]


def no_mmd_twin(metrics: pd.DataFrame, sens: pd.DataFrame, seed: int, scene: str = "munich") -> pd.DataFrame:
    """The sensitivity study's λ = 0 rows, where its plan left them to the no-MMD ablation of ``seed``
    (the same run: ``scadf_lib.planning``): that ablation's rows (band 'all') tagged mmd_weight = 0,
    or nothing where ``sens`` has its own λ = 0 run or the ablation has not finished."""
    if _has_own_lambda_0(sens):
        return sens.iloc[:0]
    twin = _no_mmd_ablation(metrics, seed, scene)
    return twin[twin.band == "all"].assign(param="mmd_weight", value=0.0)


def sensitivity_rows(metrics: pd.DataFrame, scene: str = "munich") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the sensitivity runs' rows on ``scene`` with λ = 0 from :func:`no_mmd_twin`, the default
    SCADF-MoE main run of their seed), band 'all'; both empty without sensitivity runs."""
    sens = metrics[(metrics.study == "sensitivity") & (metrics.scene == scene) & (metrics.band == "all")]
    if sens.empty:
        return sens, sens
    seed = int(sens.seed.iloc[0])
    default = metrics[(metrics.study == "main") & (metrics.model == "scadf") & (metrics.regime == "mix")
                      & (metrics.scene == scene) & (metrics.seed == seed) & (metrics.band == "all")]
    return pd.concat([sens, no_mmd_twin(metrics, sens, seed, scene)]), default


def sensitivity_table(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str = "munich",
                      curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """The sensitivity runs (one setting changed each, seed 0) beside the default SCADF-MoE run of the
    same seed: held-out and overall MSE (m²), the held-out change against the default (%, positive:
    the setting is worse), the epochs trained and whether the run ended flat, training trajectories
    and points left unused in clusters too small for a trajectory, and the task routers' final
    validation MMD². With ``curves``: the change against the default at equal epochs on the validation
    set (:func:`equal_epoch_val_change`)."""
    sens, default = sensitivity_rows(metrics, scene)
    if sens.empty:
        return pd.DataFrame()
    both = pd.concat([default.assign(param="default (8 experts, λ 0.1, L 5, auto radius)", value=""), sens])
    piv = both.pivot_table(index=["name", "param", "value"], columns="group", values="mse_m2", aggfunc="first")
    piv = piv[[HEADLINE, "overall"]].rename(columns=lambda g: f"{g} (m²)").reset_index()
    reference = piv.loc[piv.param.str.startswith("default"), f"{HEADLINE} (m²)"]
    base = reference.iloc[0] if len(reference) else np.nan
    piv[f"{HEADLINE} change (%)"] = (100 * (piv[f"{HEADLINE} (m²)"] / base - 1)).round(1)
    info = runs.set_index("name")[["epochs_trained", "flat", "train_samples", "points_unused_in_small_clusters",
                                   "final_val_mmd"]].rename(columns={"epochs_trained": "epochs"})
    info["flat"] = csv_flags(info.flat)
    if curves is not None and len(default):
        piv[EQUAL_EPOCHS] = [equal_epoch_val_change(curves, n, default.name.iloc[0]) for n in piv.name]
        piv[EQUAL_EPOCHS] = piv[EQUAL_EPOCHS].round(1)
    out = piv.join(info, on="name").drop(columns="name")
    number = pd.to_numeric(out.value, errors="coerce")  # the default row has no value
    out = out.assign(_default=~out.param.str.startswith("default"), _number=number.fillna(-np.inf))
    out = out.sort_values(["_default", "param", "_number"]).drop(columns=["_default", "_number"])
    out["value"] = [f"{v:g}" if np.isfinite(v) else "" for v in number.reindex(out.index)]
    out["epochs"] = out.epochs.astype("Int64")
    return out.reset_index(drop=True)


#: The default SCADF-MoE settings the sensitivity study varies one at a time (``ModelConfig`` n_experts
#: and mmd_weight, ``TrainConfig`` trajectory_length; the radius is each run's automatic one).
SENSITIVITY_DEFAULTS = {"n_experts": 8, "mmd_weight": 0.1, "trajectory_length": 5}


def sensitivity_points(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str = "munich") -> pd.DataFrame:
    """The sensitivity study as curves: one row per (param, value, group) with MSE (m²), for the
    held-out and overall groups, each varied setting's curve holding the default run at its default
    value (``default`` True; the radius is the default run's automatic radius, m) and, for λ, the
    no-MMD ablation's seed-0 run at λ = 0 (:func:`no_mmd_twin`). Empty without sensitivity runs."""
    sens, base = sensitivity_rows(metrics, scene)
    if sens.empty:
        return pd.DataFrame(columns=["param", "value", "group", "mse_m2", "default"])
    sens = sens.assign(default=False)
    radius = runs.set_index("name").radius_m.reindex(base.name.unique()).dropna()
    defaults = {**SENSITIVITY_DEFAULTS, "radius_m": float(radius.iloc[0]) if len(radius) else np.nan}
    points = [sens] + [base.assign(param=p, value=v, default=True) for p, v in defaults.items()
                       if p in set(sens.param) and np.isfinite(v)]
    out = pd.concat(points)[["param", "value", "group", "mse_m2", "default"]]
    out = out[out.group.isin([HEADLINE, "overall"])].astype({"value": float})
    return out.sort_values(["param", "group", "value"]).reset_index(drop=True)


def flatness_table(runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """How each method's main runs ended, per scene and regime: runs, runs flat, late gain (drop of
    the best validation error over the last quarter of the epochs, mean and max %), median best
    epoch, steps, training minutes per run, and, with ``curves``, the power-law fits at the lr floor
    (:func:`floor_exponent`, :func:`floor_bend`, :func:`power_law_budget`)."""
    mruns = runs[runs.study == "main"]
    per = mruns.groupby(["scene", "regime", "model"]).agg(
        runs=("name", "size"), flat=("flat", lambda c: int(csv_flags(c).sum())),
        late_gain_pct_mean=("val_late_gain", lambda g: 100 * g.mean()),
        late_gain_pct_max=("val_late_gain", lambda g: 100 * g.max()),
        best_epoch_median=("best_epoch", "median"), steps=("steps_trained", "max"),
        train_min_mean=("train_wall_s", lambda w: w.mean() / 60)).reset_index()
    if curves is not None and len(curves):
        bend = floor_bend(curves)
        fits = pd.DataFrame({"floor_exponent_median": floor_exponent(curves),
                             "budget_x_to_best_median": power_law_budget(curves, runs),
                             "floor_alpha_early_median": bend.alpha_early, "floor_alpha_late_median": bend.alpha_late})
        fits = mruns[["scene", "regime", "model"]].join(fits.reindex(mruns.name).set_axis(mruns.index))
        fits = fits.groupby(["scene", "regime", "model"]).median().reset_index()
        fits = fits.round({"floor_exponent_median": 3, "floor_alpha_early_median": 3, "floor_alpha_late_median": 3})
        per = per.merge(fits, on=["scene", "regime", "model"], how="left")
        per["budget_x_to_best_median"] = per.budget_x_to_best_median.map(
            lambda x: "" if pd.isna(x) else ("never" if np.isinf(x) else f"{x:.2g}"))
    per["model"] = pd.Categorical(per.model, [m for m in METHODS if m in set(per.model)], ordered=True)
    per["scene"] = pd.Categorical(per.scene, [s for s in SCENES if s in set(per.scene)], ordered=True)
    return per.sort_values(["scene", "regime", "model"]).reset_index(drop=True)


def offset_slopes(main: pd.DataFrame) -> pd.DataFrame:
    """Mean LOS offset slope per method (rows) and scene (columns), Mix, mean over seeds: 1 = each point
    placed around its trajectory's centre as it lies, 0 = every point at the centre."""
    sel = main[(main.regime == "mix") & (main.band == "all") & (main.group == "LOS")]
    piv = sel.pivot_table(index="model", columns="scene", values="offset_slope", aggfunc="mean")
    return piv.reindex([m for m in METHODS if m in piv.index])[[s for s in SCENES if s in piv.columns]]


def routing_entropy(runs: pd.DataFrame) -> pd.DataFrame:
    """SCADF-MoE's normalised routing entropies on the validation set at the end of training (main,
    Mix, mean over seeds, per scene): 1 = uniform weights, 0 = one token / one slot."""
    cols = [c for c in runs.columns if c.startswith("final_val_") and c.endswith("_entropy")]
    sel = runs[(runs.study == "main") & (runs.model == "scadf") & (runs.regime == "mix")]
    if not cols or sel.empty:
        return pd.DataFrame()
    table = sel.groupby("scene")[cols].mean()
    table.columns = [c.removeprefix("final_val_") for c in table.columns]
    return table.reset_index()


def coverage(runs: pd.DataFrame, preset: dict) -> pd.DataFrame:
    """Per cell of the evaluation (Table II per scene, OOD, ablations, sensitivity, budget checks,
    augmented degradation, anchors): the runs a preset plans and those ``runs`` holds."""
    seeds = len(preset["seeds"])
    main = runs[runs.study == "main"]
    cells = []
    for scene in preset.get("main_scenes", SCENES):
        cells.append((f"Table II Mix, {scene}", len(METHODS) * seeds,
                      ((main.scene == scene) & (main.regime == "mix")).sum()))
    if "ood" in preset.get("main_regimes", ("mix", "ood")):
        for scene in preset.get("ood_scenes", SCENES):
            cells.append((f"OOD, {scene}", len(METHODS) * seeds, ((main.scene == scene) & (main.regime == "ood")).sum()))
    studies = preset.get("studies", ())
    if "ablation" in studies:
        cells.append(("ablations, munich", len(ABLATIONS) * len(preset.get("ablation_seeds", preset["seeds"]))
                      + len(preset.get("spatial_scenes", SCENES)) * seeds,
                      runs.study.isin(["ablation", "spatial"]).sum()))
    if "sensitivity" in studies:
        sens = runs[runs.study == "sensitivity"]
        twin = (0.0 in preset.get("lambdas", ()) and not _has_own_lambda_0(sens)
                and not _no_mmd_ablation(runs, preset["seeds"][0]).empty)
        cells.append(("sensitivity, munich seed 0", sum(len(preset.get(k, ())) for k in ("experts", "lambdas", "lengths", "radii")),
                      len(sens) + int(twin)))
    if "budget" in studies:
        extra = sum(len(s) for _, _, s in preset.get("budget_extra", ()))
        cells.append(("budget checks, munich", len(preset.get("budget_methods", METHODS)) * len(preset.get("budget_seeds", ()))
                      + extra, (runs.study == "budget").sum()))
    if "degradation" in studies:
        cells.append(("degradation, augmented training", len(METHODS) * len(preset.get("degradation_seeds", preset["seeds"])),
                      (runs.study == "degradation").sum()))
    if "anchors" in studies:
        cells.append(("anchors, 3 scenes x Mix/OOD", len(ANCHORS) * len(SCENES) * 2 * seeds, (runs.study == "anchors").sum()))
    return pd.DataFrame(cells, columns=["cell", "planned", "done"]).astype({"planned": int, "done": int})


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
