"""``results/REPORT.md``: our numbers next to the paper's claims, written from ``results/*.csv``.

Every verdict is computed from the tables by the rules stated in the report, never edited by hand:
a claim "reproduces" only if our numbers meet it. ``python -m scadf_lib.report`` rewrites it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.degradation import degradation_grid
from scadf_lib.presets import METHODS, PRESETS, SCENES
from scadf_lib.tables import budget_metrics, budget_table, mean_ci, summarize
from scadf_lib.fileio import atomic_path, project_path
from scadf_lib.training import BASE_LR, CONVERGED_GAIN, TrainConfig

PAPER_CLAIMS = {
    "submeter": "sub-meter MSE (below 1 m^2) on every scene",
    "reduction": "61-63 % lower MSE than the best baseline",
    "unseen": "about half the unseen-NLOS error of the best baseline (55 % lower)",
}

#: The headline group: points in no training trajectory (the paper's "overall" mostly scores
#: training positions, which sit in test trajectories as spatial context).
HEADLINE = "held-out"


def _fmt(mean: float, half: float) -> str:
    return f"{mean:.2f} ± {half:.2f}" if np.isfinite(half) else f"{mean:.2f}"


def table_ii(main: pd.DataFrame, regime: str, groups: tuple[str, ...] = (HEADLINE, "overall"),
             runs: pd.DataFrame | None = None) -> str:
    """Markdown table: one row per method (then any anchors in ``main``), per scene one column per
    group (mean ± 95 % CI, m^2). With ``runs``, a method with a run whose curve was not flat at its
    end (:func:`converged_flags`) is marked '†'."""
    lines = ["| method | " + " | ".join(f"{s} {g}" for s in SCENES for g in groups) + " |",
             "|---|" + "---|" * (len(SCENES) * len(groups))]
    stats = {g: summarize(main[main.regime == regime], ["scene", "model"], g).set_index(["scene", "model"])
             for g in groups}
    flags = converged_flags(runs[runs.regime == regime]) if runs is not None else pd.Series(dtype=str)
    for m in [*METHODS, *(a for a in ANCHOR_LABELS if a in set(main.model))]:  # every method, n/a where missing
        cells = []
        for s in SCENES:
            for g in groups:
                r = stats[g].loc[(s, m)] if (s, m) in stats[g].index else None
                cells.append(_fmt(r.mse_m2, r.ci95) if r is not None else "n/a")
        flat = flags.get(m, "")
        mark = " †" if flat and flat.split("/")[0] != flat.split("/")[1] else ""
        label = "**SCADF-MoE**" if m == "scadf" else ANCHOR_LABELS.get(m, m)
        lines.append(f"| {label}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def verdicts(main: pd.DataFrame) -> list[tuple[str, str, str]]:
    out = []
    mix = summarize(main[main.regime == "mix"], ["scene", "model"], "overall")
    scadf = mix[mix.model == "scadf"]
    ok = bool(len(scadf) == len(SCENES) and (scadf.mse_m2 < 1.0).all())
    out.append(("submeter", "reproduces" if ok else "does not reproduce",
                "SCADF-MoE Mix MSE per scene: " + ", ".join(f"{r.scene} {r.mse_m2:.2f} m²" for r in scadf.itertuples())))
    red = paired_reduction(main, "mix", "overall")
    ok = bool(len(red) and (red.reduction_pct >= 61).all())
    out.append(("reduction", "reproduces" if ok else "does not reproduce",
                "reduction vs best baseline (Mix, overall): " + ", ".join(
                    f"{r.scene} {_fmt(r.reduction_pct, r.ci95)} % vs {r.best_baseline}" for r in red.itertuples())))
    red = paired_reduction(main, "mix", "held-out-NLOS")
    ok = bool(len(red) and (red.reduction_pct >= 45).all())
    out.append(("unseen", "reproduces" if ok else "does not reproduce",
                "held-out-NLOS reduction vs best baseline (Mix): " + ", ".join(
                    f"{r.scene} {_fmt(r.reduction_pct, r.ci95)} % vs {r.best_baseline}" for r in red.itertuples())))
    return out


#: LOS offset slope from which a method counts as localising each point, not only the trajectory.
SLOPE_OK = 0.8


def centroid_floor(configs: dict[str, TrainConfig]) -> dict[str, float]:
    """Per scene: the MSE (m^2) of placing every test-trajectory point at its trajectory's true
    centroid, on the split of the run config given for that scene (rebuilt with
    :func:`scadf_lib.training.split_of`; the split is deterministic). A model whose error is not well
    below it cannot be resolving single points."""
    from scadf_lib.schema import load_fingerprints
    from scadf_lib.training import split_of
    out = {}
    for scene, cfg in configs.items():
        path = project_path(cfg.data_path)
        if not path.exists():
            continue
        ds = load_fingerprints(path)
        xy = np.stack([ds["x"].values, ds["y"].values], axis=1)
        pts = xy[split_of(cfg, xy).test_traj]
        out[scene] = float(((pts - pts.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean())
    return out


def metrics_floor(main: pd.DataFrame) -> dict[str, float]:
    """Per scene: the centroid floor of the seed-0 Mix SCADF-MoE run's test set (``offset_floor_m2``
    of its overall row: every test-trajectory point placed at its true centroid, m²; the same
    number :func:`centroid_floor` rebuilds from the split)."""
    sel = main[(main.model == "scadf") & (main.regime == "mix") & (main.seed == main.seed.min())
               & (main.group == "overall") & (main.band == "all")]
    if "offset_floor_m2" not in sel:
        return {}
    return {r.scene: float(r.offset_floor_m2) for r in sel.itertuples() if np.isfinite(r.offset_floor_m2)}


def offset_slope_section(main: pd.DataFrame, longest: pd.Series | None = None, longest_epochs: int | None = None,
                         floor: dict[str, float] | None = None) -> str:
    """Mean LOS offset slope per method and scene (Mix, seeds pooled by their mean) and the check,
    at the preset's budget and, where the budget study ran, at its longest training (``longest``)."""
    sel = main[(main.regime == "mix") & (main.band == "all") & (main.group == "LOS")]
    if "offset_slope" not in sel or sel.offset_slope.isna().all():
        return ""
    piv = sel.pivot_table(index="model", columns="scene", values="offset_slope", aggfunc="mean")
    piv = piv.reindex([m for m in METHODS if m in piv.index])[[s for s in SCENES if s in piv.columns]]
    scadf = piv.loc["scadf"] if "scadf" in piv.index else pd.Series(dtype=float)
    ok = bool(len(scadf) and (scadf >= SLOPE_OK).all())
    text = ("## Does each method localise each point? (Mix, LOS test points)\n\n"
            "Offset slope: least-squares slope of each point's predicted offset from its predicted trajectory "
            "centroid against its true offset from the true centroid (x and y pooled). 1 = points placed "
            "around their centre as they lie; 0 = every point put at the centre. Mean over seeds.\n\n"
            + _df_md(piv.reset_index()) + "\n\n"
            f"Check at the preset's budget: SCADF-MoE's LOS offset slope is at least {SLOPE_OK} on every scene: "
            f"**{'yes' if ok else 'no'}** ({', '.join(f'{k} {v:.2f}' for k, v in scadf.items())}).")
    if floor:
        text = text.replace("Mean over seeds.\n\n", "Mean over seeds. Placing every point at its trajectory's "
                            "true centroid would score " + ", ".join(f"{k} {v:.2f} m²" for k, v in floor.items())
                            + " (the centroid floor): a model whose point MSE is not well below it localises the "
                            "trajectory, not its points, however small its error.\n\n", 1)
    if longest is not None and "scadf" in longest.index:
        ok_long = bool(longest["scadf"] >= SLOPE_OK)
        others = ", ".join(f"{m} {v:.2f}" for m, v in longest.items() if m != "scadf")
        text += (f" Trained for {longest_epochs} epochs (budget study, munich): **{'yes' if ok_long else 'no'}** "
                 f"(SCADF-MoE {longest['scadf']:.2f}; {others}).")
    return text + "\n"


def budget_slopes(metrics: pd.DataFrame, preset_epochs: int, scene: str = "munich") -> pd.DataFrame:
    """LOS offset slope (Mix, mean over seeds) per method and number of training epochs: the budget
    runs and the main runs of the same seeds (:func:`scadf_lib.experiments.budget_metrics`)."""
    both = budget_metrics(metrics, preset_epochs, scene)
    if both.empty or "offset_slope" not in both:
        return pd.DataFrame()
    both = both[(both.group == "LOS") & (both.band == "all")]
    piv = both.pivot_table(index="model", columns="epochs", values="offset_slope")
    piv.columns = [f"{c} epochs" for c in piv.columns]
    return piv.reindex([m for m in METHODS if m in piv.index])


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


def routing_section(runs: pd.DataFrame) -> str:
    """Sharpness of SCADF-MoE's routers on the validation set at the end of training (main, Mix)."""
    cols = [c for c in runs.columns if c.startswith("final_val_") and c.endswith("_entropy")]
    sel = runs[(runs.study == "main") & (runs.model == "scadf") & (runs.regime == "mix")]
    if not cols or sel.empty:
        return ""
    table = sel.groupby("scene")[cols].mean()
    table.columns = [c.removeprefix("final_val_") for c in table.columns]
    return ("## How sharply SCADF-MoE routes (Mix, validation set, end of training)\n\n"
            "Normalised entropy of the dispatch columns (over the tokens a router reads) and of the combine "
            "rows (over the slots): 1 = uniform weights, 0 = one token / one slot. Mean over seeds.\n\n"
            + _df_md(table.reset_index()) + "\n")


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


#: The worst level of each corruption, on which the degradation verdict is taken.
WORST = ("cfr_snr_db=0", "angle_deg=10", "distance_pct=10", "gain_db=6", "missing cfr", "missing angles",
         "missing distance", "missing gain")
#: SCADF-MoE "copes best" if its held-out MSE is the lowest of the methods on at least this many of WORST.
COPES_MIN = 6


def degradation_summary(table: pd.DataFrame, group: str = HEADLINE) -> pd.DataFrame:
    """Mean MSE (m^2) and 95 % CI over seeds per method, training (clean / augmented) and corruption."""
    sel = table[table.group == group]
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


def degradation_section(results: Path, heading: str = "## Beyond the paper: one modality degraded at test time") -> str:
    """REPORT.md section of the degradation study (empty without ``degradation.csv``); where only
    clean-trained runs were scored (a converged set's main runs), it says so."""
    path = results / "degradation.csv"
    if not path.exists():
        return ""
    table = pd.read_csv(path)
    if not table.model.eq("scadf").any():
        return ""
    summary = degradation_summary(table)
    seeds = sorted(int(x) for x in table.seed.unique())
    trained = ("Every method trained clean (the `main` runs) and trained with the same augmentation (each sample "
               "clean with probability 0.4, else one noise kind at a random level or one modality missing, with "
               "missing-modality flags as 4 extra inputs), then scored" if table.augmented.astype(bool).any() else
               "Every method as trained clean in this set's `main` runs (the augmented training of the degradation "
               "study is not part of this set), scored")
    parts = [f"{heading} (munich, Mix, held-out MSE m²)\n",
             f"{trained} on a fixed subset of 600 test trajectories "
             "with one modality corrupted: CFR white noise at an SNR relative to its power; Gaussian errors on "
             "AoA/AoD (degrees), distance (%) and path gain (dB); or the modality missing (set to its training "
             f"mean; flagged for the augmented models). Mean ± 95 % CI over seeds {seeds}. Curves: notebook 07.\n"]
    for modality, kind in (("CFR", "cfr_snr_db"), ("angles", "angle_deg"), ("distance", "distance_pct"),
                           ("gain", "gain_db")):
        sel = summary[(summary.corruption == kind) | (summary.label == "clean")
                      | (summary.label == f"missing {modality.lower()}")].copy()
        sel["cell"] = [_fmt(a, b) for a, b in zip(sel.mse_m2, sel.ci95)]
        piv = sel.pivot_table(index=["model", "training"], columns="label", values="cell", aggfunc="first")
        order = [d.label for d in degradation_grid() if d.label in piv.columns]  # clean, levels, missing
        parts.append(f"**{modality}**\n\n" + _df_md(piv[order].reset_index()) + "\n")
    win = degradation_winners(summary)
    parts.append("Who copes best at each corruption's worst level (lowest mean held-out MSE; `scadf_over_clean`: "
                 "SCADF-MoE's MSE relative to its own clean MSE, against the best baseline's ratio):\n\n"
                 + _df_md(win) + "\n")
    verdict = []
    for training, g in win.groupby("training"):
        n = int((g.scadf_rank == 1).sum())
        verdict.append(f"trained {training}: SCADF-MoE is best on {n} of {len(g)} worst-level corruptions"
                       f" ({'**yes**' if n >= COPES_MIN else '**no**'})")
    parts.append(f"Verdict, \"dynamic fusion copes best when a modality degrades\" (rule: SCADF-MoE lowest "
                 f"held-out MSE on at least {COPES_MIN} of the {len(WORST)} worst-level corruptions): "
                 + "; ".join(verdict) + ".\n")
    rpath = results / "routing_response.csv"
    if rpath.exists():
        shift = routing_shift(pd.read_csv(rpath))
        task = shift[shift.layer == "task"]
        moved = [f"trained {r.training}: {_fmt(r.drop_clean_to_0dB, r.ci95)} "
                 f"({'**yes**' if r.drop_clean_to_0dB > 0 and np.isfinite(r.ci95) and r.drop_clean_to_0dB - r.ci95 > 0 else '**no**'})"
                 for r in task.itertuples()]
        parts.append("SCADF-MoE's routing against the CFR's SNR: share of the experts' dispatched input that "
                     "comes from CFR tokens (mean over experts and seeds), per layer:\n\n" + _df_md(shift) + "\n\n"
                     "Does the task router shift weight away from the CFR as its SNR drops (drop of the CFR share "
                     "from clean to 0 dB, interval above 0)? " + "; ".join(moved) + ".\n")
    return "\n".join(parts)


def _distinct(values: pd.Series) -> str:
    """'a, b': the distinct values of a column, sorted (devices, torch versions)."""
    return ", ".join(sorted(set(values.astype(str))))


def optimiser_settings(runs: pd.DataFrame) -> str:
    """'batch 64, AdamW lr 0.003' as the runs record it (runs.csv written before these columns: the
    paper's 64 and the then lr 1e-3)."""
    batch = sorted({int(b) for b in runs.get("batch_size", pd.Series([64])).fillna(64)})
    lr = sorted({float(x) for x in runs.get("lr", pd.Series([1e-3])).fillna(1e-3)})
    return (f"batch {', '.join(map(str, batch))}, AdamW lr {', '.join(f'{x:.3g}' for x in lr)}"
            + (f" (square-root rule from lr {BASE_LR:g} at the paper's batch 64)" if batch != [64] else ""))


def curriculum_w0(runs: pd.DataFrame) -> str:
    """The offset curriculum's w0 as the runs record it ('1' for runs.csv written before the column:
    no curriculum)."""
    return _distinct(runs.get("offset_weight", pd.Series([1.0])).fillna(1.0).map(lambda w: f"{w:g}"))


def convergence_note(runs: pd.DataFrame) -> str:
    """How flat the validation curves were at the end (``val_late_gain`` of runs.csv: drop of the best
    validation error over the last quarter of the epochs); empty where runs.csv predates it."""
    main = runs[runs.study == "main"]
    if "val_late_gain" not in main:
        return ""
    if main.val_late_gain.isna().all():
        return " Learning curves: too short to judge how flat they ended (fewer than two epochs per run)."
    gain = 100 * main.val_late_gain.dropna()
    return (f" Learning curves: over the last quarter of the epochs the best validation error still fell by "
            f"a median {gain.median():.1f} % (max {gain.max():.1f} %; {int((gain > 2).sum())} of {len(gain)} main "
            f"runs above 2 %); best epoch median {main.best_epoch.median():.0f} of {int(main.epochs.max())}.")


def sweep_cost(results: Path) -> str:
    """Wall time of the experiment commands that made these results (``sweeps.csv``), device and torch."""
    path = results / "sweeps.csv"
    if not path.exists():
        return ""
    log = pd.read_csv(path)
    return (f"The commands that produced these results ran {len(log)} time(s) for {log.wall_s.sum() / 60:.1f} min "
            f"of wall clock in all ({_distinct(log.device)}; torch {_distinct(log.torch)}; "
            f"{int(log.jobs.max())} run(s) at once).\n")


def gpu_results_section(results: Path, subdir: str = "paper") -> str:
    """The paper-budget result set (``results/paper``, made on a GPU by ``bench/gpu_run.sh``): where
    it exists its device, wall time and Table II (held-out) summary, else the command that makes it."""
    sub = results / subdir
    head = "## Paper-budget results on a GPU (`results/paper`)\n\n"
    if not (sub / "all_metrics.csv").exists() or not (sub / "runs.csv").exists():
        return (head + "Not produced yet: no GPU was lent to the sessions that wrote this report. On a machine "
                "with an NVIDIA GPU, `bash bench/gpu_run.sh` (after `make setup`; rerun until it prints \"all "
                "done\") trains the `paper` preset's Table II (5 methods x 3 scenes x Mix/OOD x 5 seeds, 4 "
                "training trajectories per point, batch 64 per run for 40 epochs) and its ablations as stacked "
                "models (`scadf_lib.engine`) into `results/paper/` with its own REPORT.md, and measures the GPU "
                "engine for `bench/README.md` (sizing: about 5 min of an H200 by estimate, \"Stacked runs\").\n")
    metrics = pd.read_csv(sub / "all_metrics.csv", dtype={"band": str})
    runs = pd.read_csv(sub / "runs.csv")
    main = metrics[metrics.study == "main"]
    return (head + f"{len(runs)} runs on {_distinct(runs.device)}, torch {_distinct(runs.torch)}, "
            f"{optimiser_settings(runs)}; summed training wall time {runs.wall_s.sum() / 3600:.2f} h of runs. "
            + sweep_cost(sub) + convergence_note(runs) + " Full report: `results/paper/REPORT.md`.\n\n"
            + "Mix, MSE (m²):\n\n" + table_ii(main, "mix") + "\n")


def _df_md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- converged set (issue 21)

#: The paper's Table II MSE for SCADF-MoE and SoftMoE on its three WAIR-D scenes, as quoted in
#: ``shared/research/peers.md`` (arXiv 2507.01337; units not stated there: see METRIC_NOTE).
PAPER_TABLE_II = {"scadf": (0.34, 0.53, 0.56), "softmoe": (1.40, 1.37, 1.45)}
ANCHOR_LABELS = {"geometric": "geometric (closed form)", "wknn": "WKNN (numeric)", "wknn_cfr": "WKNN (numeric + CFR)"}
CONVERGED_GROUPS = ("held-out", "held-out-LOS", "held-out-NLOS", "seen", "seen-LOS", "seen-NLOS", "overall", "centroid")
METRIC_NOTE = ("Metric convention. Ours: MSE = mean over points of the squared Euclidean error |p̂ - p|² (m²). "
               "The paper's formula is missing from our text; the first author's earlier public code (AMDNLoc, "
               "`Horizontal666/AMDNloc`) prints `((y - ŷ)**2).mean()` over x and y, i.e. the mean per coordinate: "
               "**half** of ours. Both are shown where a claim depends on it. Relative claims (reductions against a "
               "baseline) are the same in both conventions (the factor 1/2 cancels); the sub-meter claim is not.")


def flat_flags(converged: pd.Series) -> pd.Series:
    """runs.csv's ``converged`` column as booleans (it is read back as text or bool)."""
    return converged.astype(str).str.lower() == "true"


def converged_flags(runs: pd.DataFrame) -> pd.Series:
    """Per (model) of the main runs: 'n/N' runs whose validation curve was flat at the end
    (runs.csv ``converged``)."""
    main = runs[runs.study == "main"]
    if "converged" in main and main.converged.notna().all():
        conv = flat_flags(main.converged)
    elif "val_late_gain" in main:  # runs.csv written before the column: the same criterion
        conv = main.val_late_gain < CONVERGED_GAIN
    else:
        return pd.Series(dtype=str)
    return conv.groupby(main.model).agg(lambda c: f"{int(c.sum())}/{len(c)}")


def method_table(metrics: pd.DataFrame, runs: pd.DataFrame, scene: str, regime: str = "mix",
                 groups: tuple[str, ...] = CONVERGED_GROUPS, band: str = "all") -> pd.DataFrame:
    """Methods (trained, then anchors, then the centroid floor) x groups: mean ± 95 % CI over seeds
    (m²); trained methods carry how many of their runs converged, a method with any run not flat is
    marked '†'."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == regime) & metrics.study.isin(["main", "anchors"])]
    flags = converged_flags(runs[(runs.scene == scene) & (runs.regime == regime)])
    rows = []
    order = [m for m in (*METHODS, *ANCHOR_LABELS) if m in set(sel.model)]
    for m in order:
        g = sel[sel.model == m]
        flat = flags.get(m, "")
        label = ("**SCADF-MoE**" if m == "scadf" else ANCHOR_LABELS.get(m, m)) + _not_flat_mark(m, flags)
        row = {"method": label, "runs flat": flat or "(no training)"}
        for grp in groups:
            s = summarize(g, ["model"], grp, band)
            row[grp] = _fmt(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        rows.append(row)
    floor = sel[(sel.band == band) & sel.group.isin(groups)].groupby("group").offset_floor_m2.mean()
    rows.append({"method": "centroid floor (every point at its true centroid)", "runs flat": "",
                 **{g: f"{floor[g]:.2f}" if g in floor and np.isfinite(floor[g]) else "" for g in groups}})
    return pd.DataFrame(rows)


def _not_flat_mark(model: str, flags: pd.Series) -> str:
    """' †' where some of the method's runs (:func:`converged_flags`, 'n/N') were not flat at their end."""
    flat = flags.get(model, "")
    return " †" if flat and flat.split("/")[0] != flat.split("/")[1] else ""


def band_table(metrics: pd.DataFrame, scene: str, regime: str = "mix", group: str = HEADLINE,
               runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Methods x test bands: ``group`` MSE (mean ± 95 % CI over seeds, m²); with ``runs``, a method
    with a run that was not flat is marked '†'."""
    sel = metrics[(metrics.scene == scene) & (metrics.regime == regime) & metrics.study.isin(["main", "anchors"])]
    flags = converged_flags(runs[(runs.scene == scene) & (runs.regime == regime)]) if runs is not None else pd.Series(dtype=str)
    bands = sorted(set(sel.band) - {"all"}, key=float)
    rows = []
    for m in [m for m in (*METHODS, *ANCHOR_LABELS) if m in set(sel.model)]:
        row = {"method": ANCHOR_LABELS.get(m, m) + _not_flat_mark(m, flags)}
        for b in bands:
            s = summarize(sel[sel.model == m], ["model"], group, b)
            row[f"{b} GHz"] = _fmt(s.mse_m2.iloc[0], s.ci95.iloc[0]) if len(s) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def anchors_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every scene x regime x anchor: held-out (LOS / NLOS), seen and overall MSE (m², mean over seeds)."""
    sel = metrics[(metrics.study == "anchors") & (metrics.band == "all")]
    if sel.empty:
        return pd.DataFrame()
    piv = sel.pivot_table(index=["scene", "regime", "model"], columns="group", values="mse_m2", aggfunc="mean")
    cols = [g for g in ("held-out", "held-out-LOS", "held-out-NLOS", "seen", "overall") if g in piv.columns]
    return piv[cols].reset_index().rename(columns={"model": "anchor"})


def claims_converged(main: pd.DataFrame, scenes: list[str]) -> pd.DataFrame:
    """The paper's three claims on converged runs, per scene, in both metric conventions (METRIC_NOTE):
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
        for key, group, need in (("reduction", "overall", 61), ("unseen", "held-out-NLOS", 45)):
            red = paired_reduction(main[main.scene == scene], "mix", group)
            if len(red):
                r = red.iloc[0]
                text = (f"{_fmt(r.reduction_pct, r.ci95)} % vs {r.best_baseline} → "
                        f"{'meets' if r.reduction_pct >= need else 'misses'} ({need} %)")
                rows.append({"scene": scene, "claim": PAPER_CLAIMS[key], "ours (squared Euclidean)": text,
                             "AMDNLoc (per coordinate)": text + " (same: the ratio is convention-free)"})
    return pd.DataFrame(rows)


def paper_comparison(main: pd.DataFrame, scenes: list[str]) -> pd.DataFrame:
    """Our converged Mix overall MSE of SCADF-MoE and SoftMoE in both conventions beside the paper's
    Table II values (its scenes are WAIR-D's, not ours: a scale check, not a like-for-like)."""
    s = summarize(main[main.regime == "mix"], ["scene", "model"], "overall").set_index(["scene", "model"])
    rows = []
    for m, paper in PAPER_TABLE_II.items():
        for scene in scenes:
            if (scene, m) in s.index:
                v = float(s.loc[(scene, m)].mse_m2)
                rows.append({"method": m, "our scene": scene, "ours, squared Euclidean (m²)": round(v, 3),
                             "ours, per coordinate (m²)": round(v / 2, 3),
                             "paper Table II (3 WAIR-D scenes)": " / ".join(f"{x:.2f}" for x in paper)})
    return pd.DataFrame(rows)


def converged_curves(cdir: Path, scene: str = "munich") -> tuple[pd.DataFrame, float, dict[str, float]]:
    """The converged main runs' learning curves of ``scene`` (Mix), the centroid floor of their test
    points and WKNN's held-out test MSE (m²): the inputs of :func:`scadf_lib.plots.run_curves`."""
    curves = pd.read_csv(cdir / "curves.csv")
    curves = curves[(curves.study == "main") & (curves.scene == scene) & (curves.regime == "mix")]
    metrics = pd.read_csv(cdir / "all_metrics.csv", dtype={"band": str})
    sel = metrics[(metrics.scene == scene) & (metrics.regime == "mix") & (metrics.band == "all")
                  & (metrics.group == "held-out")]
    wknn = float(sel[sel.model == "wknn"].mse_m2.mean())
    floor = float(sel[sel.study == "main"].offset_floor_m2.mean())
    return curves, floor, ({"WKNN held-out (test)": wknn} if np.isfinite(wknn) else {})


def converged_overview(cdir: Path, scene: str = "munich") -> dict[str, pd.DataFrame]:
    """The converged set's tables for notebook 04: ``methods`` (:func:`method_table`), ``runs`` (how
    each run ended), ``anchors`` (:func:`anchors_table`) and, where collected, ``isolation``
    (:func:`isolation_by_method`); empty without ``cdir``."""
    if not (cdir / "all_metrics.csv").exists():
        return {}
    metrics = pd.read_csv(cdir / "all_metrics.csv", dtype={"band": str})
    runs = pd.read_csv(cdir / "runs.csv")
    ended = runs[runs.study == "main"][["name", "epochs_trained", "steps_trained", "best_epoch", "val_late_gain",
                                        "converged"]].round(3)
    tables = {"methods": method_table(metrics, runs, scene), "runs": ended, "anchors": anchors_table(metrics).round(2)}
    isolation = isolation_by_method(cdir)
    if len(isolation):
        tables["isolation"] = isolation
    return tables


def learning_curve_figure(cdir: Path, scene: str = "munich") -> Path | None:
    """``<cdir>/learning_curves.png``: validation curves of the converged main runs of ``scene`` (Mix),
    with the centroid floor and the WKNN anchor of the same test set as references."""
    path = cdir / "curves.csv"
    if not path.exists():
        return None
    import matplotlib
    matplotlib.use("Agg")
    from scadf_lib import plots
    curves, floor, anchors = converged_curves(cdir, scene)
    if curves.empty or "val_mse_points_m2" not in curves:
        return None
    fig = plots.run_curves(curves, floor_m2=floor, anchors=anchors, title=f"{scene} Mix:")
    out = cdir / "learning_curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return out


#: The trained-to-the-end result sets, newest first: the report leads with the first that exists
#: (``results/<name>/``, written by ``--preset <name>``) and compares them all.
#: ``flat_schedule_end``: the ``flat`` set as it stood before its floor was held past the schedule
#: (each run ended at its schedule's end or by the rule inside it); :func:`hold_check` pairs the two.
CONVERGED_SETS = ("flat", "flat_schedule_end", "converged")


def lead_set(results: Path) -> Path | None:
    """The result set the report and notebook 04 lead with: the first of :data:`CONVERGED_SETS`
    under ``results`` with training runs, else the first with any runs, else None."""
    found = [results / n for n in CONVERGED_SETS if (results / n / "runs.csv").exists()]
    trained = [d for d in found if (pd.read_csv(d / "runs.csv").study == "main").any()]
    return (trained or found or [None])[0]


def _share(values: pd.Series, fmt: str = "{:g}") -> str:
    """One value, or 'a-b' for a range (how a setting is stated when the runs differ)."""
    v = values.dropna()
    if v.empty:
        return "n/a"
    lo, hi = v.min(), v.max()
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def schedule_text(mruns: pd.DataFrame) -> str:
    """The training schedule of a set's main runs, from runs.csv (older runs.csv files lack the
    curriculum and floor columns: those runs used the defaults, 70 % and 5 %)."""
    def setting(column: str, default: float) -> pd.Series:
        return mruns[column].fillna(default) if column in mruns else pd.Series(default, index=mruns.index)

    floor, anneal = setting("min_lr_fraction", 0.05), setting("offset_anneal_fraction", 0.7)
    decay = setting("decay_fraction", 1.0)
    order = [m for m in METHODS if m in set(mruns.model)]

    def per_method(column: pd.Series) -> str:
        return ", ".join(f"{m} {int(e)}" for m, e in column.groupby(mruns.model).max().reindex(order).items())

    held = "schedule_epochs" in mruns and mruns.schedule_epochs.notna().all()
    span = "schedule" if held else "budget"
    text = (f"batch 64, 1 training trajectory per training point per epoch, at most {per_method(mruns.epochs)} epochs "
            f"({int(mruns.steps_trained.max()):,} steps at most trained)")
    if held:
        text += (f"; the schedule spans {per_method(mruns.schedule_epochs)} epochs and the floor then holds to the "
                 f"maximum, where the stopping rule may end a run")
    return (text + f"; the offset curriculum (w from 100 to 1) reaches the paper's loss at "
            f"{_share(100 * anneal, '{:.0f}')} % of the {span}; the cosine reaches its floor "
            f"({_share(100 * floor, '{:g}')} % of the peak lr) at {_share(100 * decay, '{:.0f}')} % of the {span} and "
            f"holds it")


def set_comparison(results: Path, scene: str = "munich", group: str = HEADLINE) -> pd.DataFrame:
    """Every trained set of :data:`CONVERGED_SETS` side by side on ``scene`` Mix: per method, the
    ``group`` MSE (mean ± 95 % CI over seeds, m²), the overall MSE, how many runs ended flat, the
    steps trained and the mean late gain: whether a number moves with the schedule and budget."""
    rows = []
    for name in CONVERGED_SETS:
        d = results / name
        if not (d / "all_metrics.csv").exists():
            continue
        metrics = pd.read_csv(d / "all_metrics.csv", dtype={"band": str})
        runs = pd.read_csv(d / "runs.csv")
        sel = metrics[(metrics.study == "main") & (metrics.scene == scene) & (metrics.regime == "mix")]
        mr = runs[(runs.study == "main") & (runs.scene == scene) & (runs.regime == "mix")]
        flags = converged_flags(mr)
        for m in [m for m in METHODS if m in set(sel.model)]:
            held, over = (summarize(sel[sel.model == m], ["model"], g) for g in (group, "overall"))
            r = mr[mr.model == m]
            rows.append({"method": m, "set": name, f"{group} (m²)": _fmt(held.mse_m2.iloc[0], held.ci95.iloc[0]),
                         "overall (m²)": _fmt(over.mse_m2.iloc[0], over.ci95.iloc[0]),
                         "runs flat": flags.get(m, ""), "steps (max)": int(r.steps_trained.max()),
                         "late gain (mean %)": round(100 * float(r.val_late_gain.mean()), 1)})
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    out["method"] = pd.Categorical(out.method, [m for m in METHODS if m in set(out.method)], ordered=True)
    return out.sort_values(["method", "set"]).reset_index(drop=True)


#: The validation error the stopping rule and the flatness rule read (points + centroid MSE,
#: normalised; ``scadf_lib.training.should_stop``): the power-law fits below read the same one.
RULE_ERROR = "val_localisation"


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
                         "flat": str(r.converged).lower() == "true"})
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


def isolation_section(cdir: Path) -> str:
    """The report's paragraph and table of :func:`isolation_by_method`; empty without isolation.csv."""
    g = isolation_by_method(cdir)
    if g.empty:
        return ""
    return ("### Where the held-out error sits: fingerprints with no match nearby (Mix)\n\n"
            "Per held-out (band, UE) point, the training point with the most similar numeric fingerprint (AoD, AoA, "
            "distance, gain, standardised) is found; the point is *isolated* when that training point lies more than "
            "10 m away (its dominant path differs from its neighbours', e.g. two paths of near-equal gain). Any "
            "fingerprint method must extrapolate there. MSEs here are per-point means (each point once), not the "
            "trajectory-slot means of the tables above. No model is involved in the flag (`scadf_lib.diagnostics`).\n\n"
            + _df_md(g) + "\n")


#: Row order of the track study's methods (:data:`scadf_lib.tracks.STUDY_MODELS` and the anchors).
TRACK_METHODS = ("SCADF-MoE", "SoftMoE", "SCADF-MoE, L = 1", "WKNN", "centroid floor")


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
            cell[source] = _fmt(*mean_ci(v.mse_m2.to_numpy())) if len(v) else ""
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
    scenes = {sc: i for i, sc in enumerate(SCENES)}
    return out.sort_values(["scene", "method"], key=lambda c: c.map(scenes if c.name == "scene" else order)
                           ).reset_index(drop=True)


def tracks_section(cdir: Path) -> str:
    """The deployment question: held-out points placed in random-walk tracks (time order) against
    the paper's cluster trajectories (ground-truth neighbours); empty without ``tracks.csv``."""
    path = cdir / "tracks.csv"
    if not path.exists():
        return ""
    tracks = pd.read_csv(path)
    table = tracks_table(tracks)
    facts = tracks.groupby("scene")[["n_tracks", "mean_length", "held_out_share"]].first()
    has_l1 = (tracks.method == "SCADF-MoE, L = 1").any()
    verdict = ("Spatial context with tracks: compare SCADF-MoE with SCADF-MoE, L = 1 in the tracks column." if has_l1
               else "The model without spatial context (L = 1, the `spatial` runs of the sweep) has no checkpoint in "
                    "this set yet, so whether spatial context still helps with tracks is not answered here; SCADF-MoE "
                    "against WKNN and the centroid floor is.")
    return ("### Tracks instead of clusters at test time (`python -m scadf_lib.tracks`, `scadf_lib.localise`)\n\n"
            "The paper's test trajectories are clusters of the true positions. Here each held-out point is also placed "
            "inside a random walk (`scadf_lib.tracks.random_walks`: 1-1.41 m steps to grid neighbours, keeping its "
            "heading where the street allows, starting at a held-out point) by the `Localiser` (sliding windows of L, "
            "each point the mean of its windows). Only held-out points are scored, all three bands pooled; the "
            "centroid floor places each point at the true centre of its window(s). Tracks reach held-out points "
            "that the paper's protocol never scores (points of clusters too small for a trajectory, often at the "
            "edges of the street grid); the column 'cluster-tested points' keeps only the held-out points that some "
            "cluster test trajectory holds, so it compares the two protocols on the same points. Tracks per scene: "
            + ", ".join(f"{sc} {int(r.n_tracks)} of {r.mean_length:.1f} points ({100 * r.held_out_share:.0f} % "
                        f"held-out)" for sc, r in facts.iterrows())
            + f".\n\n{_df_md(table)}\n\n{verdict}\n")


def converged_section(cdir: Path, link_prefix: str | None = None) -> str:
    """The report's lead section from a trained-to-the-end result set in ``cdir`` (``--preset
    <cdir.name>``, one of :data:`CONVERGED_SETS`); empty where it does not exist."""
    if not (cdir / "all_metrics.csv").exists() or not (cdir / "runs.csv").exists():
        return ""
    link_prefix = f"{cdir.name}/" if link_prefix is None else link_prefix
    metrics = pd.read_csv(cdir / "all_metrics.csv", dtype={"band": str})
    runs = pd.read_csv(cdir / "runs.csv")
    main = metrics[metrics.study == "main"]
    mruns = runs[runs.study == "main"]
    scenes = [s for s in SCENES if s in set(main.scene)]
    parts = [f"## Converged set (`{cdir.name}` preset): trained until the validation curve is flat, or to the budget\n"]
    if mruns.empty:
        parts.append("No converged training run has finished yet; the anchors below stand alone.\n")
    else:
        conv = flat_flags(mruns.converged)
        gain = 100 * mruns.val_late_gain
        cells = ", ".join(f"{sc} {rg}" for sc, rg in mruns.groupby(["scene", "regime"]).size().index)
        parts.append(
            f"Written from `results/{link_prefix}` by `python -m scadf_lib.experiments --preset {cdir.name} --jobs 2` "
            f"({len(mruns)} training runs: {cells}; seeds {sorted(int(s) for s in mruns.seed.unique())}; "
            f"{_distinct(mruns.device)}). Each run: {schedule_text(mruns)}. It "
            f"stops when its best "
            f"validation error (held-out-style validation points) has fallen by less than "
            f"{100 * float(mruns.stop_min_gain.max()):g} % over the last max({int(mruns.stop_patience.max())} epochs, a "
            f"quarter of its epochs). **Flat** = the best validation error fell by less than 2 % over the last quarter "
            f"of the run's epochs (runs.csv `converged`): **{int(conv.sum())} of {len(mruns)} runs** (late gain median "
            f"{gain.median():.1f} %, max {gain.max():.1f} %; epochs trained {int(mruns.epochs_trained.min())}-"
            f"{int(mruns.epochs_trained.max())}). A method marked † has a run that was not flat.\n")
        per = mruns.groupby(["scene", "regime", "model"]).agg(runs=("name", "size"), flat=("converged", lambda c: int(flat_flags(c).sum())),
                                         late_gain_pct_mean=("val_late_gain", lambda g: 100 * g.mean()),
                                         late_gain_pct_max=("val_late_gain", lambda g: 100 * g.max()),
                                         best_epoch_median=("best_epoch", "median"), steps=("steps_trained", "max"),
                                         train_min_mean=("train_wall_s", lambda w: w.mean() / 60))
        per = per.reset_index()
        if (cdir / "curves.csv").exists():  # the power law at the floor: is "flat" reachable by budget?
            curves = pd.read_csv(cdir / "curves.csv")
            bend = floor_bend(curves)
            fits = pd.DataFrame({"floor_exponent_median": floor_exponent(curves),
                                 "budget_x_to_best_median": power_law_budget(curves, runs),
                                 "floor_alpha_early_median": bend.alpha_early,
                                 "floor_alpha_late_median": bend.alpha_late})
            fits = mruns[["scene", "regime", "model"]].join(fits.reindex(mruns.name).set_axis(mruns.index))
            fits = fits.groupby(["scene", "regime", "model"]).median().reset_index()
            fits = fits.round({"floor_exponent_median": 3, "floor_alpha_early_median": 3, "floor_alpha_late_median": 3})
            per = per.merge(fits, on=["scene", "regime", "model"], how="left")
            per["budget_x_to_best_median"] = per.budget_x_to_best_median.map(
                lambda x: "" if pd.isna(x) else ("never" if np.isinf(x) else f"{x:.2g}"))
        per["model"] = pd.Categorical(per.model, [m for m in METHODS if m in set(per.model)], ordered=True)
        per["scene"] = pd.Categorical(per.scene, [s for s in SCENES if s in set(per.scene)], ordered=True)
        per = per.sort_values(["scene", "regime", "model"])
        parts.append("How flat each method's curves ended (late gain: drop of the best validation error over the last "
                     "quarter of the epochs; train_min: training wall time per run, summed over resumes, while other runs shared the 2 cores; floor exponent: α of a power law "
                     "best validation error ∝ step^-α fitted to the epochs at the lr floor, which gains 1 - 0.75^α over "
                     "the last quarter of any budget, so on a pure power law the 2 % rule needs α < 0.07 however long the run (a "
                     "curve that bends can still end flat), and "
                     "doubling the budget gains 1 - 2^-α; floor α early / late: the same fit on the first and the "
                     "second half (log steps) of the floor, which describes, and does not predict, whether a curve "
                     "was bending by the end of the run (a curve can still bend later); budget x to best: the multiple of its steps a run would "
                     "need, on that power law, for its best validation MSE to reach the best method's median, an "
                     "extrapolation that says whether a curve still falling could change the ranking):\n\n" + _df_md(per) + "\n")
    for scene in scenes:
        parts.append(f"### {scene}, Mix: MSE (m², mean ± 95 % CI over seeds)\n\n"
                     + _df_md(method_table(metrics, runs, scene)) + "\n")
        parts.append(f"Held-out points per test band ({scene}, Mix):\n\n" + _df_md(band_table(metrics, scene, runs=runs)) + "\n")
        dec = decomposition_table(main[main.scene == scene])
        if len(dec):
            flags = converged_flags(runs[(runs.scene == scene) & (runs.regime == "mix")])
            dec.insert(1, "runs flat", [flags.get(m, "") for m in dec.model])
            parts.append(f"Offset decomposition ({scene}, Mix, all test points, mean over seeds, m²):\n\n"
                         + _df_md(dec) + "\n")
        if len(main[(main.scene == scene) & (main.regime == "ood")]):
            parts.append(f"### {scene}, OOD (train 2.6 + 28 GHz, test 6 GHz): MSE (m², mean ± 95 % CI over seeds)\n\n"
                         + _df_md(method_table(metrics, runs, scene, "ood")) + "\n")
    if len(main):
        parts.append("### The paper's claims on the converged runs\n\n" + METRIC_NOTE + "\n\n"
                     + _df_md(claims_converged(main, scenes)) + "\n\n"
                     "Beside the paper's Table II (its WAIR-D scenes, not ours: a check of scale, not a like-for-like; "
                     "the overall group, mostly seen positions, is the paper's):\n\n"
                     + _df_md(paper_comparison(main, scenes)) + "\n")
        fig = learning_curve_figure(cdir)
        if fig is not None:
            parts.append(f"Learning curves: `results/{link_prefix}learning_curves.png` (and notebook 04).\n")
    if "modalities" in runs and runs.modalities.notna().any():
        trained = runs[runs.study != "anchors"]
        mods = trained.modalities.fillna("cfr+numeric").value_counts()
        parts.append("Modalities the trained runs read: " + ", ".join(
            f"{'CFR + numeric' if m == 'cfr+numeric' else 'numeric features only (no CFR)'} {n}" for m, n in mods.items())
            + " runs.\n")
    isolated = isolation_section(cdir)
    if isolated:
        parts.append(isolated)
    tracked = tracks_section(cdir)
    if tracked:
        parts.append(tracked)
    check = budget_check(metrics, runs)
    if len(check):
        parts.append("### Is a flat curve a final number? The same runs with twice the budget (munich, Mix)\n\n"
                     "The `budget` runs repeat a main run (same method, seed, split and schedule shape) with twice the "
                     "schedule: the cosine and curriculum stretch to twice the steps (where the floor is held past a "
                     "schedule's end, both are held to the same maximum epochs, the `max epochs` column).\n\n"
                     + _df_md(check) + "\n")
    degraded = degradation_section(cdir, heading="### One modality degraded at test time, on this set's models")
    if degraded:
        parts.append(degraded)
    anchors = anchors_table(metrics)
    if len(anchors):
        parts.append("### Classical anchors on every scene (mean over seeds, m²)\n\n"
                     "Same splits, groups and scoring code as the models (`scadf_lib.anchors`). geometric: closed form "
                     "from the dominant path's length and AoD and the BS position, no training (exact on LOS points). "
                     "WKNN: k and the feature scaling (and the CFR's weight) chosen on the validation points. A seen "
                     "point is in WKNN's reference set, so its seen error is ~0 in Mix.\n\n" + _df_md(anchors) + "\n")
        chosen = runs[runs.study == "anchors"]
        if "anchor_cfr_weight" in chosen:
            cfr = chosen[chosen.model == "wknn_cfr"]
            parts.append(f"WKNN + CFR chose a CFR weight > 0 in {int((cfr.anchor_cfr_weight > 0).sum())} of {len(cfr)} "
                         f"splits; chosen k: {_distinct(chosen.anchor_k.dropna().astype(int))}; scalings: "
                         f"{_distinct(chosen.anchor_scaling.dropna())}.\n")
    return "\n".join(parts)


def hold_check(results: Path, longer: str = "flat", shorter: str = "flat_schedule_end", scene: str = "munich",
               group: str = HEADLINE) -> pd.DataFrame:
    """The same main runs (``scene`` Mix) at the end of their schedule (set ``shorter``) and with the
    floor held on past the schedule to the set's maximum (set ``longer``), paired by run: per method, how many runs
    trained on, how many were flat before and after, the mean ``group`` MSE (m²) before and after,
    and the change of each run that trained on (mean ± 95 % CI over those runs, %, and the largest);
    a number that moves by less than its spread
    between the two is as converged as the test metric can show. Only runs on the same schedule in
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
        span = r.schedule_epochs.fillna(r.epochs) if "schedule_epochs" in r else r.epochs
        per_set.append(pd.DataFrame({"model": r.model, "epochs": r.epochs_trained, "flat": flat_flags(r.converged),
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
                     "change where trained on (%)": _fmt(mean, half) if len(on) else "",
                     "largest change (%)": round(float(change.abs().max()), 1) if len(on) else 0.0})
    out = pd.DataFrame(rows)
    if len(out):
        out["method"] = pd.Categorical(out.method, [m for m in METHODS if m in set(out.method)], ordered=True)
        out = out.sort_values("method")
    out.attrs["other_schedule"] = sorted(in_both - set(both.model), key=list(METHODS).index)
    return out


def comparison_section(results: Path) -> str:
    """The trained sets of :data:`CONVERGED_SETS` side by side (:func:`set_comparison`), where there
    are two or more: how much the numbers move with the schedule and the budget."""
    table = set_comparison(results)
    if table.empty or table.set.nunique() < 2:
        return ""
    held = []
    for name in CONVERGED_SETS:
        if (results / name / "runs.csv").exists():
            r = pd.read_csv(results / name / "runs.csv")
            r = r[r.study == "main"]
            cells = ", ".join(f"{sc} {rg} ({len(g)} runs)" for (sc, rg), g in r.groupby(["scene", "regime"]))
            held.append(f"`{name}`: {cells or 'no training runs'}")
    return ("### The converged sets side by side (munich, Mix)\n\n"
            "The same methods, seeds and split under each trained set's schedule (their settings are stated in their "
            "own reports, `results/<set>/REPORT.md`): where a number moves by more than its CI between the sets, it "
            "depends on the schedule or budget, and neither set alone is its final value.\n\n"
            + _df_md(table) + "\n\nWhat each set holds (its other cells are in its own report): "
            + "; ".join(held) + ".\n" + hold_section(results))


def hold_section(results: Path) -> str:
    """:func:`hold_check` with its reading; empty without both sets."""
    check = hold_check(results)
    if check.empty:
        return ""
    other = check.attrs["other_schedule"]
    left_out = (f" Left out: {', '.join(other)}, whose schedule differs between the two sets (not the same runs: "
                f"see the budget check in the set's report)." if other else "")
    return ("\n### Does holding the floor longer move the test numbers? (munich, Mix, paired by run)\n\n"
            "`flat_schedule_end` is the `flat` set as it stood when each run ended at its schedule's end (or by the "
            "rule inside it); `flat` holds the learning-rate floor on past the schedule, up to its maximum budget "
            "(runs.csv `epochs`), until the rule ends "
            "the run. A run the rule had ended inside its schedule is the same run in both; the change is over the "
            "runs that trained on. Where the change's CI holds 0, the longer training did not move the held-out "
            "number even where the validation curve was still falling." + left_out + "\n\n" + _df_md(check) + "\n")


def write_report(results: Path, preset: str = "cpu") -> Path:
    """``<results>/REPORT.md``. For the cpu preset (``results/``) the report leads with the first
    converged set of :data:`CONVERGED_SETS` found under ``results/`` (:func:`lead_set`), compares the
    sets, then gives the equal-small-budget tables; for a converged preset it is its section alone."""
    if preset in CONVERGED_SETS:
        path = results / "REPORT.md"
        with atomic_path(path) as tmp:
            tmp.write_text("# Converged results: SCADF-MoE and the baselines trained to a flat curve\n\n"
                           f"Generated by `python -m scadf_lib.report --preset {preset}`; `results/REPORT.md` "
                           "leads with the newest converged set, beside the equal-small-budget tables.\n\n"
                           + converged_section(results, link_prefix=f"{results.name}/"))
        return path
    metrics = pd.read_csv(results / "all_metrics.csv", dtype={"band": str})
    runs = pd.read_csv(results / "runs.csv")
    anchors = metrics[metrics.study == "anchors"]
    main = metrics[metrics.study == "main"]
    if main.empty:  # e.g. `--studies degradation` alone: only the sections that need no main runs
        path = results / "REPORT.md"
        with atomic_path(path) as tmp:
            tmp.write_text("# Partial report\n\nThese results hold no `main` runs (Table II), so only the "
                           f"studies that stand alone are reported ({len(runs)} runs).\n\n"
                           + degradation_section(results))
        return path
    seeds = sorted(int(s) for s in main.seed.unique())
    p = PRESETS[preset]
    main_runs = runs[runs.study == "main"]
    epochs = int(main_runs.epochs.max()) if "epochs" in main_runs and main_runs.epochs.notna().any() else p["epochs"]
    radii = ", ".join(f"{sc} {r:g} m" for sc, r in main_runs.groupby("scene").radius_m.first().items())
    unused = ", ".join(f"{sc} {c} clusters / {n} points" for sc, c, n in main_runs.groupby("scene")[
        ["clusters_too_small", "points_unused_in_small_clusters"]].first().itertuples())
    sizes = ", ".join(f"{sc} {int(n):,} UEs" for sc, n in main_runs.groupby("scene").points.first().items())
    untested = ", ".join(f"{sc} {int(n)}" for sc, n in main_runs.groupby("scene").held_out_points_unused.max().items())
    share = main_runs.held_out_share_of_test_slots
    held_share = (f"{100 * share.min():.0f}-{100 * share.max():.0f} %" if round(100 * share.min()) != round(100 * share.max())
                  else f"{100 * share.min():.0f} %")
    hw = ", ".join(sorted({f"{d} ({t} thread{'s' if t != 1 else ''} per run)"
                           for d, t in zip(runs.device, runs.torch_threads)}))
    steps = f" of at most {p['max_steps_per_epoch']} steps" if p.get("max_steps_per_epoch") else ""
    budget_note = (" Every model is **under-trained** at this budget, so the numbers compare methods at an "
                   "equal, small budget; they are not converged accuracies." if preset != "paper" else "")
    lead_dir = lead_set(results) if preset == "cpu" else None
    lead = converged_section(lead_dir) + "\n" + comparison_section(results) if lead_dir is not None else ""
    parts = [f"""# Reproduction report: SCADF-MoE on our ray-traced data

Generated by `python -m scadf_lib.report` from `results/all_metrics.csv` ({len(runs)} runs,
written by `python -m scadf_lib.experiments --preset {preset}`){f" and `results/{lead_dir.name}/`" if lead else ""}.
Do not edit by hand: rerun.

{lead}

# Equal small budget: the `{preset}` preset{" (every run under-trained: † on every method)" if preset == "cpu" else ""}

The rest of this report compares the methods at one small, equal budget on every scene, regime and
study; its numbers are not converged accuracies (the converged set above is).

## Settings, and why absolute numbers differ from the paper

* Data: our Sionna RT fingerprints (`data/`, one BS per scene, 2.6 / 6 / 28 GHz, UEs on a 1 m grid),
  not WAIR-D: {sizes}. Clustering radius chosen automatically (smallest r with median cluster
  size >= 8): {radii} (the paper: 2 m). Clusters too small for a trajectory (their points unused):
  {unused}.
* Split: per cluster, 20 % of the points are held out; they never enter a training trajectory.
  Every training point is trained on and every held-out point sits in at least one test trajectory
  (held-out points not tested: {untested}). A test trajectory also holds seen (training) points as
  its spatial context: held-out points fill {held_share} of the test trajectories' slots.
* Training budget (preset `{preset}`): {epochs} epochs{steps}, {p['train_per_point']} training trajectories per
  training point, {optimiser_settings(runs)} with cosine decay, default model (d = 64, 2 soft-MoE blocks,
  8 experts, λ = 0.1 against the MSE in m²). Every method keeps the epoch with the lowest validation
  localisation error (points + centroid MSE). Seeds {seeds}; ± is the 95 % Student-t interval over seeds. Run on
  {hw}.{budget_note}{convergence_note(runs)}
* Training procedure (identical for every method; choices the paper leaves open, measured in
  `bench/results/learning.md`): residual-branch output layers start at zero (each block the identity
  at init; FullCon's fusion layer starts as the per-point mean), a LayerNorm at each encoder's output,
  the task MoE reads the LayerNorm-ed stream, weight decay on weight matrices only, the peak lr above (the
  paper's value is not in our text), and an offset-weighted curriculum: the within-trajectory part of the
  point MSE weighted by w from {curriculum_w0(runs)} down to 1 at {100 * TrainConfig().offset_anneal_fraction:.0f} % of the steps, so the final objective is the paper's.
  The best epoch is chosen on held-out-style validation points (10 % of each cluster's points, in
  trajectories built like the test ones), not on seen positions.
* MSE is the mean squared Euclidean error of predicted trajectory points, in m². **held-out**: only
  the held-out points of the test trajectories (the headline: positions the model never trained on);
  **overall**: every point of the test trajectories, as the paper scores them (mostly seen
  positions); **seen**: the training points in test trajectories. LOS / NLOS split each of them.

## The paper's claims at this small budget
"""]
    parts.append("| claim (paper) | on our data | numbers |\n|---|---|---|")
    for key, verdict, numbers in verdicts(main):
        parts.append(f"| {PAPER_CLAIMS[key]} | **{verdict}** | {numbers} |")
    parts.append("""
Rules: sub-meter = SCADF-MoE's mean Mix MSE below 1 m² on all three scenes; the reduction claims
need the mean per-seed reduction against the best baseline (lowest mean MSE of the four) to reach
61 % (overall, the paper's metric) and 45 % (held-out NLOS: the paper's "unseen NLOS", about half)
on every scene.
""")
    for regime, title in (("mix", "Mix (all bands in training and test)"), ("ood", "OOD (train 2.6 + 28 GHz, test 6 GHz)")):
        parts.append(f"## Table II on our data: {title}, MSE (m²), held-out points first\n\n"
                     f"{table_ii(pd.concat([main, anchors]), regime, runs=runs)}\n")
        for group in (HEADLINE, "overall"):
            red = paired_reduction(main, regime, group)
            if len(red):
                parts.append(f"SCADF-MoE against the best baseline, {group}:\n\n{_df_md(red)}\n")
    floor = metrics_floor(main)
    slopes = budget_slopes(metrics, epochs)
    if len(slopes):
        parts.append(offset_slope_section(main, slopes.iloc[:, -1], int(slopes.columns[-1].split()[0]), floor))
    else:
        parts.append(offset_slope_section(main, floor=floor))
    if "offset_term_m2" in main:
        parts.append("## Where the error lies: centroid term + offset term (Mix, mean over seeds, m²)\n\n"
                     "Point MSE = |mean of the predicted points - true centroid|² (centroid term) + mean |predicted "
                     "offset - true offset|² (offset term), exactly over whole trajectories (`overall`). The offset "
                     "floor is the centroid floor of the same points: an offset term at the floor means the model "
                     "places the trajectory but not its points (`offset_share_explained` = 1 - offset term / floor, "
                     "the R² of the offsets). `centroid_head_m2` scores the centroid head, `mean_of_points_m2` the "
                     "mean of the predicted points.\n\n" + _df_md(decomposition_table(main)) + "\n\n"
                     "Held-out points only (the cross term is the remainder of `mse_m2`):\n\n"
                     + _df_md(decomposition_table(main, group=HEADLINE).drop(
                         columns=["centroid_head_m2", "mean_of_points_m2"])) + "\n")
    parts.append("## Held-out against seen points (Mix, MSE m², mean over seeds)\n\n"
                 "Seen points are positions the model trained on (at other bands too); held-out points are not. "
                 "The gap is what the paper's \"overall\" hides.\n\n" + _df_md(held_out_vs_seen(main)) + "\n")
    parts.append(routing_section(runs))
    paired_path = results / "paired_points.csv"
    if paired_path.exists():
        pairs = paired_spatial(pd.read_csv(paired_path))
        parts.append("## Spatial context: SCADF-MoE (L = 5) against noSpace (L = 1) on the same held-out points (Mix)\n\n"
                     "Both runs hold out exactly the same points (same clusters and seeds), and noSpace trains on every "
                     "training point as often as SCADF-MoE (5 single-point trajectories per point). Each held-out point "
                     "and band is one pair: the squared error of each method (SCADF-MoE's averaged over the test "
                     "trajectories that hold the point), in m². `nospace_minus_scadf` > 0: context helps; ± is the 95 % "
                     "t-interval over pairs (seeds pooled).\n\n" + _df_md(pairs) + "\n")
    blocks = blocks_table(metrics)
    if len(blocks):
        bruns = runs[runs.study == "blocks"]
        parts.append("## Held-out blocks: no training point within r of a test point (Mix, beyond the paper)\n\n"
                     f"Whole {bruns.block_m.max():g} m squares "
                     "of the map are held out (about 20 % of the points); training points within r of a held-out point "
                     f"are dropped ({', '.join(f'{sc} {int(n)}' for sc, n in bruns.groupby('scene').guard_points_unused.first().items())} "
                     "points); test trajectories hold held-out points only. Closest training point to any tested point: "
                     f"{bruns.min_distance_test_to_train_m.min():.2f} m (r = {bruns.radius_m.max():g} m at most). Held-out MSE "
                     "(m²) against the paper's per-point split, same seeds:\n\n" + _df_md(blocks) + "\n")
    abl = metrics[metrics.study == "ablation"]
    if len(abl):
        ref = main[(main.model == "scadf") & (main.regime == "mix") & (main.scene == "munich")
                   & main.seed.isin(abl.seed.unique())]
        both = pd.concat([ref.assign(variant="scadf"), abl])
        s = pd.concat([summarize(both, ["variant"], g).assign(group=g) for g in (HEADLINE, "overall")])
        s["mse (m²)"] = [_fmt(a, b) for a, b in zip(s.mse_m2, s.ci95)]
        table = s.pivot(index="variant", columns="group", values="mse (m²)")
        for g in (HEADLINE, "overall"):  # paired by seed: same split, same initial data order
            per_seed = both[(both.group == g) & (both.band == "all")].pivot_table(index="seed", columns="variant",
                                                                                  values="mse_m2")
            change = {v: mean_ci(100 * (per_seed[v] / per_seed["scadf"] - 1).values) for v in per_seed}
            table[f"{g} change vs SCADF-MoE (%)"] = [_fmt(*change[v]) if v != "scadf" else "" for v in table.index]
        nseeds = both.seed.nunique()
        parts.append(f"## Ablations (munich, Mix, seeds {sorted(int(x) for x in both.seed.unique())})\n\n"
                     f"With {nseeds} seeds the 95 % interval is wide (Student t with {nseeds - 1} degree(s) of "
                     "freedom); the paired change per seed is the sharper comparison.\n\n"
                     + _df_md(table.reset_index()) + "\n")
    sens = metrics[(metrics.study == "sensitivity") & (metrics.band == "all") & (metrics.group == "overall")]
    if len(sens):
        extra = [c for c in ("final_val_mmd",) if c in runs.columns]
        sizes = runs.set_index("name")[["train_samples", "points_unused_in_small_clusters", *extra]]
        seed = int(sens.seed.iloc[0])
        default = main[(main.model == "scadf") & (main.regime == "mix") & (main.scene == "munich")
                       & (main.seed == seed) & (main.band == "all") & (main.group == "overall")].assign(param="default (8 experts, λ 0.1, L 5, auto r)",
                                                                 value="")
        table = pd.concat([default, sens])[["name", "param", "value", "mse_m2"]].join(sizes, on="name")
        table = table.drop(columns="name")
        parts.append(f"## Sensitivity (munich, Mix, seed {seed}; overall MSE m²)\n\n"
                     "A smaller radius leaves more clusters too small for a trajectory: their points are unused "
                     "and the training set shrinks (columns on the right). The λ rows show the trade-off of the "
                     "MMD term: `final_val_mmd` is the task routers' MMD² on the validation set at the end "
                     "(λ weighs it against the MSE in m²).\n\n"
                     + _df_md(table.reset_index(drop=True)) + "\n")
    budget = budget_table(metrics, epochs)
    if len(budget):
        budget["mse (m²)"] = [_fmt(a, b) for a, b in zip(budget.mse_m2, budget.ci95)]
        bseeds = sorted(int(s) for s in metrics[metrics.study == "budget"].seed.unique())
        for group in (HEADLINE, "overall"):
            piv = budget[budget.group == group].pivot(index="model", columns="epochs", values="mse (m²)")
            piv.columns = [f"{c} epochs" for c in piv.columns]
            parts.append(f"## Training budget (munich, Mix, {group} MSE m², seeds {bseeds})\n\n"
                         "Does the ranking of the methods hold when every model trains longer?\n\n"
                         + _df_md(piv.reset_index()) + "\n")
        slope = budget_slopes(metrics, epochs)
        if len(slope):  # the same table feeds the check of the offset-slope section
            parts.append("LOS offset slope (1 = each point placed where it lies around its trajectory's centre, "
                         "0 = every point at the centre) against training epochs, same runs:\n\n"
                         + _df_md(slope.reset_index()) + "\n")
    parts.append(degradation_section(results))
    if preset != "paper":
        parts.append(gpu_results_section(results))
    tp = runs[runs.study == "main"].groupby("model")[["trajectories_per_s", "parameters"]].median()
    tp["parameters"] = tp.parameters.astype(int)
    parts.append(f"## Cost\n\n{sweep_cost(results)}Median training throughput over the main runs on "
                 f"{_distinct(runs.device)} (with other runs at once, so see "
                 "`bench/README.md` for clean figures):\n\n" + _df_md(tp.reset_index()) + "\n")
    path = results / "REPORT.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.report", description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=None, help="default results/ for cpu, else results/<preset>")
    ap.add_argument("--preset", default="cpu")
    a = ap.parse_args(argv)
    print(write_report(project_path(a.results or ("results" if a.preset == "cpu" else f"results/{a.preset}")), a.preset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
