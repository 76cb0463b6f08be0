"""The training protocol: schedule, stopping and flatness, and whether the budget was enough."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from scadf_lib.presets import METHODS, SCENES
from scadf_lib.studies.common import HEADLINE, _distinct, fmt_ci, label, report_table, _share
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import csv_flags, mean_ci


#: The validation error the stopping rule and the flatness rule read (points + centroid MSE,
#: normalised; ``scadf_lib.training.should_stop``): the power-law fits below read the same one.
RULE_ERROR = "val_localisation"


def curve_inputs(rs: ResultSet | Path, scene: str = "munich") -> tuple[pd.DataFrame, float, dict[str, float]]:
    """The main runs' learning curves of ``scene`` (Mix), the centroid floor of their test
    points and WKNN's held-out test MSE (m²): the inputs of :func:`scadf_lib.plots.run_curves`."""
    rs = as_set(rs)
    curves, metrics = rs.required(rs.CURVES), rs.required(rs.METRICS)
    curves = curves[(curves.study == "main") & (curves.scene == scene) & (curves.regime == "mix")]
    sel = metrics[(metrics.scene == scene) & (metrics.regime == "mix") & (metrics.band == "all")
                  & (metrics.group == "held-out")]
    wknn = float(sel[sel.model == "wknn"].mse_m2.mean())
    floor = float(sel[sel.study == "main"].offset_floor_m2.mean())
    return curves, floor, ({"WKNN held-out (test)": wknn} if np.isfinite(wknn) else {})


def hold_check(rs: ResultSet | Path, shorter: str = "flat_schedule_end", scene: str = "munich",
               group: str = HEADLINE) -> pd.DataFrame:
    """The same main runs (``scene`` Mix) at the end of their schedule (the set ``shorter`` beside
    ``rs``) and with the floor held on past the schedule to the set's maximum (``rs``), paired by run: per method, how many runs
    trained on, how many were flat before and after, the mean ``group`` MSE (m²) before and after,
    and the change of each run that trained on (mean ± 95 % CI over those runs, %, and the largest);
    a number that moves by less than its spread
    between the two is as final as the test metric can show. Only runs on the same schedule in
    both sets pair; ``attrs["other_schedule"]`` lists the methods left out for that. Empty without
    both sets."""
    sets = [as_set(rs).sibling(shorter), as_set(rs)]
    if not all(s.has(s.METRICS) and s.has(s.RUNS) for s in sets):
        return pd.DataFrame()
    per_set = []
    for s in sets:
        m, r = s.required(s.METRICS), s.runs
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
            lambda x: "" if pd.isna(x) else ("never" if np.isinf(x) else "> 100" if x > 100 else f"{x:.2g}"))
    per["model"] = pd.Categorical(per.model, [m for m in METHODS if m in set(per.model)], ordered=True)
    per["scene"] = pd.Categorical(per.scene, [s for s in SCENES if s in set(per.scene)], ordered=True)
    return per.sort_values(["scene", "regime", "model"]).reset_index(drop=True)


def schedule_text(mruns: pd.DataFrame) -> str:
    """The training schedule of a set's main runs, as runs.csv records it."""
    order = [m for m in METHODS if m in set(mruns.model)]

    def per_method(column: pd.Series) -> str:
        return ", ".join(f"{label(m)} {int(e)}" for m, e in column.groupby(mruns.model).max().reindex(order).items())

    held = mruns.schedule_epochs.notna().all()
    span = "schedule" if held else "budget"
    text = (f"batch {_share(mruns.batch_size, '{:.0f}')}, AdamW lr {_share(mruns.lr, '{:.3g}')}, 1 training "
            f"trajectory per training point per epoch, at most {per_method(mruns.epochs)} epochs "
            f"({int(mruns.steps_trained.max()):,} steps at most trained)")
    if held:
        text += (f"; the schedule spans {per_method(mruns.schedule_epochs)} epochs and the floor then holds to the "
                 f"maximum, where the stopping rule may end a run")
    return (text + f"; the offset curriculum (w from {_share(mruns.offset_weight)} to 1) reaches the paper's loss at "
            f"{_share(100 * mruns.offset_anneal_fraction, '{:.0f}')} % of the {span}; the cosine reaches its floor "
            f"({_share(100 * mruns.min_lr_fraction, '{:g}')} % of the peak lr) at "
            f"{_share(100 * mruns.decay_fraction, '{:.0f}')} % of the {span} and holds it")


def stopping_text(mruns: pd.DataFrame) -> str:
    """The stopping and flatness rules as the runs record them."""
    return (f"A run stops when its best validation error (points + centroid, on held-out-style validation points) "
            f"has fallen by less than {100 * float(mruns.stop_min_gain.max()):g} % over the last "
            f"max({int(mruns.stop_patience.max())} epochs, a quarter of its epochs). **Flat**: the best validation "
            f"error fell by less than 2 % over the last quarter of the run's epochs (runs.csv `flat`); a method "
            f"marked † has a run that did not end flat")


def settings_section(rs: ResultSet | Path) -> str:
    runs = as_set(rs).runs
    mruns = runs[runs.study == "main"]
    if mruns.empty:
        return ""
    by_scene = mruns.groupby("scene", sort=False)
    sizes = ", ".join(f"{sc} {int(n):,} UEs" for sc, n in by_scene.points.first().items())
    radii = ", ".join(f"{sc} {r:g} m" for sc, r in by_scene.radius_m.first().items())
    unused = ", ".join(f"{sc} {c} clusters / {n} points" for sc, c, n in by_scene[
        ["clusters_too_small", "points_unused_in_small_clusters"]].first().itertuples())
    share = mruns.held_out_share_of_test_slots
    return ("## A. Settings\n\n"
            f"* Data: our Sionna RT fingerprints (`data/`, one BS per scene, 2.6 / 6 / 28 GHz, UEs on a 1 m grid), "
            f"not WAIR-D: {sizes}. Clustering radius (smallest r with median cluster size >= 8): {radii} (the "
            f"paper: 2 m); clusters too small for a trajectory leave their points unused: {unused}.\n"
            "* Split: per cluster, 20 % of the points are held out and never enter a training trajectory; 10 % of "
            "the rest are validation points in trajectories built like the test ones (they choose the best epoch "
            f"and stop the run). Held-out points fill {_share(100 * share, '{:.0f}')} % of the test trajectories' "
            "slots; the others are seen points, the spatial context.\n"
            f"* Training, identical for every method: {schedule_text(mruns)}. {stopping_text(mruns)}. Default model: "
            "d = 64, 2 soft-MoE blocks, 8 experts, λ = 0.1 against the MSE in m².\n"
            f"* Hardware: {_distinct(mruns.device)}, {_distinct(mruns.torch_threads.astype(int))} torch thread(s) per "
            f"run, torch {_distinct(mruns.torch)}.\n")


def flatness_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    runs, curves = rs.runs, rs.curves
    mruns = runs[runs.study == "main"]
    if mruns.empty:
        return ""
    table = flatness_table(runs, curves)
    table["model"] = table.model.map(label)
    gain = 100 * mruns.val_late_gain
    return ("## D. How each run's curve ended\n\n"
            f"{int(csv_flags(mruns['flat']).sum())} of {len(mruns)} main runs ended flat (late gain median "
            f"{gain.median():.1f} %, max {gain.max():.1f} %; epochs trained {int(mruns.epochs_trained.min())}-"
            f"{int(mruns.epochs_trained.max())}). Late gain: drop of the best validation error over the last quarter "
            "of the epochs; training time: wall time per run while other runs shared the 2 cores; floor exponent: α "
            "of a power law best validation error ∝ step^-α fitted to the epochs at the lr floor (on a pure power law "
            "the 2 % rule needs α < 0.07 however long the run; doubling the budget gains 1 - 2^-α); α, first and "
            "second half: the same fit on each half of the floor (log steps); budget multiple: the multiple of its "
            "steps a run would need, on that power law, to reach the best method's median validation error (an "
            "extrapolation; '> 100' where it runs past anything a power law fitted to a few epochs can say).\n\n"
            + report_table(table) + "\n"
            + (f"\nLearning curves: `results/{rs.name}/{rs.LEARNING_CURVES}` (and notebook 04).\n" if rs.has(rs.LEARNING_CURVES) else "")
            + reproduction_text(rs))


def budget_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs = rs.metrics, rs.runs
    parts = []
    check = budget_check(metrics, runs)
    if len(check):
        parts.append("The `budget` runs repeat a main run (same method, seed, split and schedule shape) with twice the "
                     "schedule (both held to the same maximum epochs where the floor is held):\n\n"
                     + report_table(check.assign(method=check.method.map(label))) + "\n")
    hold = hold_check(rs)
    if len(hold):
        other = hold.attrs["other_schedule"]
        parts.append("`flat_schedule_end` holds the same runs as they stood at the end of their schedule; this set "
                     "holds the floor on to the maximum budget until the rule ends the run. Paired by run; where the "
                     "change's CI holds 0, the longer training did not move the held-out number"
                     + (f" (left out: {', '.join(map(label, other))}, whose schedule differs between the two)" if other else "")
                     + ":\n\n" + report_table(hold.assign(method=hold.method.astype(str).map(label))) + "\n")
    if not parts:
        return ""
    return "## E. Is a flat curve a final number? (munich, Mix)\n\n" + "\n".join(parts)


def _rel_diff_text(x: float) -> str:
    return "n/a (curves of different lengths)" if np.isinf(x) else f"{x:.2g}"


def reproduction_text(rs: ResultSet | Path) -> str:
    """What ``rebuilds.csv`` says (``python -m scadf_lib.experiments --rebuild-checkpoints``): how many
    committed runs were retrained from scratch and whether they gave their committed results."""
    t = as_set(rs).table(ResultSet.REBUILDS)
    if t is None:
        return ""
    same = t[csv_flags(t.reproduced)]
    text = (f"\nReproduction: {len(t)} committed run(s) retrained from scratch in a new process, on the device and "
            f"CPU threads their runs recorded (to ship weights that finished before the sweep shipped them: "
            f"`rebuilds.csv`); {len(same)} gave their committed learning curve and test MSEs (largest relative "
            f"difference {_rel_diff_text(t.curve_max_rel_diff.max())} on the curves, "
            f"{_rel_diff_text(t.metrics_max_rel_diff.max())} on the MSEs).")
    differ = t[~t.name.isin(same.name)]
    if len(differ):
        text += (" Not reproduced (their weights ship as `<name>_retrained.pt`, labelled \"retrained\" in the track "
                 "study, never as the committed run): ") + "; ".join(
            f"{r.name} (first epoch: training loss {r.first_epoch_train_rel_diff:.1g}, validation error "
            f"{r.first_epoch_val_rel_diff:.1g}; held-out MSE {r.held_out_mse_m2_committed:.2f} m² committed, "
            f"{r.held_out_mse_m2_retrained:.2f} m² retrained on {r.cpu_capability})"
            for r in differ.itertuples()) + (
            ". The same code, data and thread count give identical runs on one machine (tested); these runs were "
            "committed from other machines, whose CPU's vector instructions or libraries round differently: the "
            "difference appears within the first epoch and training amplifies it like a change of seed, so a "
            "retrained run is another sample of its method, not the committed one.")
    return text + "\n"
