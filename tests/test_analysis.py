"""The studies of a result set (:mod:`scadf_lib.studies`) on small hand-made tables whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scadf_lib import plots, presets
from scadf_lib.studies import ablations, claims, degradation, ood, overview, resultset, sensitivity, spatial, table_ii
from scadf_lib.tables import csv_flags, mean_ci


def test_csv_flags_reads_booleans_back_from_csv_whether_pandas_parsed_them_or_not(tmp_path):
    """runs.csv ``flat`` and rebuilds.csv ``reproduced`` come back as bool, as text (a column with
    missing cells) or as object: each reads the same; a missing cell is False."""
    pd.DataFrame({"a": [True, False, True], "b": ["True", None, "False"]}).to_csv(tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    assert csv_flags(back.a).tolist() == [True, False, True]
    assert csv_flags(back.b).tolist() == [True, False, False]
    assert csv_flags(pd.Series(["true", "FALSE", np.nan], dtype=object)).tolist() == [True, False, False]


def test_mean_ci():
    mean, half = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-5)
    assert np.isnan(mean_ci(np.array([5.0]))[1])


def test_budget_check_puts_each_longer_run_beside_its_main_run():
    from scadf_lib.studies.budget import budget_check
    runs = pd.DataFrame([
        {"name": "main_s0", "study": "main", "scene": "munich", "regime": "mix", "model": "softmoe", "seed": 0,
         "epochs": 40, "epochs_trained": 33, "val_late_gain": 0.015, "flat": True},
        {"name": "main_s1", "study": "main", "scene": "munich", "regime": "mix", "model": "softmoe", "seed": 1,
         "epochs": 40, "epochs_trained": 40, "val_late_gain": 0.03, "flat": False},
        {"name": "budget_s0", "study": "budget", "scene": "munich", "regime": "mix", "model": "softmoe", "seed": 0,
         "epochs": 80, "epochs_trained": 61, "val_late_gain": 0.01, "flat": True}])
    metrics = pd.DataFrame([{"name": n, "scene": "munich", "regime": "mix", "band": "all", "group": g, "mse_m2": v}
                            for n, base in (("main_s0", 0.3), ("main_s1", 0.4), ("budget_s0", 0.25))
                            for g, v in (("held-out", base), ("held-out-NLOS", 2 * base), ("overall", base / 2))])
    table = budget_check(metrics, runs)
    assert list(table["max epochs"]) == [40, 80] and list(table.seed) == [0, 0]  # seed 1 has no budget run
    assert list(table["held-out (m²)"]) == [0.3, 0.25] and list(table["late gain (%)"]) == [1.5, 1.0]
    assert list(table["epochs trained"]) == [33, 61] and table.flat.all()
    assert list(table["held-out vs main (%)"]) == [0.0, pytest.approx(100 * (0.25 / 0.3 - 1), abs=0.05)]
    assert budget_check(metrics, runs[runs.study == "main"]).empty


def test_band_table_marks_a_method_with_a_run_that_was_not_flat():
    from scadf_lib.studies.table_ii import band_table
    metrics = pd.DataFrame([{"name": f"{m}_s{s}", "study": "main", "scene": "munich", "regime": "mix", "model": m,
                             "seed": s, "band": b, "group": "held-out", "mse_m2": 1.0 + s}
                            for m in ("concat", "scadf") for s in (0, 1) for b in ("2.6", "28", "all")])
    runs = pd.DataFrame([{"name": f"{m}_s{s}", "study": "main", "scene": "munich", "regime": "mix", "model": m,
                          "seed": s, "flat": not (m == "concat" and s == 1)} for m in ("concat", "scadf") for s in (0, 1)])
    table = band_table(metrics, "munich", runs=runs)
    assert list(table.method) == ["Concat †", "SCADF-MoE"] and list(table.columns) == ["method", "2.6 GHz", "28 GHz"]
    assert list(band_table(metrics, "munich").method) == ["Concat", "SCADF-MoE"]


def test_floor_exponent_recovers_a_power_law_at_the_lr_floor_and_ignores_the_decay():
    from scadf_lib.studies.budget import floor_exponent
    step = np.arange(1, 41) * 100
    lr = np.where(step <= 2400, 3e-3 * (1 - step / 2500), 3e-5)  # decay, then a held floor
    decay = np.where(step <= 2400, 5.0 - step / 1000, np.nan)  # anything during the decay
    val = np.where(np.isnan(decay), (step / 1.0) ** -0.1, decay)
    curves = pd.DataFrame({"name": "a", "step": step, "lr": lr, "val_localisation": val})
    flat = curves.assign(name="b", val_localisation=np.where(step <= 2400, val, 0.4))
    short = curves.assign(name="c", lr=np.where(step <= 3800, lr + 1e-3, 3e-5))  # 3 epochs at the floor
    alpha = floor_exponent(pd.concat([curves, flat, short]))
    assert alpha["a"] == pytest.approx(0.1, rel=1e-6) and alpha["b"] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(alpha["c"])
    # a power law's last-quarter gain is the same at every budget: 1 - 0.75^alpha (2.8 % at alpha = 0.1)
    from scadf_lib.training import late_gain
    assert late_gain(np.arange(1, 401) ** -0.1) == pytest.approx(1 - 0.75 ** 0.1, rel=0.02)


def test_paired_reduction_skips_a_scene_with_no_baseline():
    from scadf_lib.studies.common import paired_reduction
    rows = [{"scene": sc, "model": m, "seed": s, "regime": "mix", "group": "overall", "band": "all",
             "mse_m2": (0.5 if m == "scadf" else 1.0) + 0.1 * s}
            for sc, models in (("munich", ("softmoe", "scadf")), ("etoile", ("scadf",))) for m in models for s in (0, 1)]
    red = paired_reduction(pd.DataFrame(rows), "mix", "overall")
    assert list(red.scene) == ["munich"] and red.best_baseline.iloc[0] == "softmoe"
    ratio = np.sqrt(0.5 / 1.0 * 0.6 / 1.1)  # the geometric mean of the per-seed ratios: no seed dominates
    assert red.ratio.iloc[0] == pytest.approx(ratio) and red.reduction_pct.iloc[0] == pytest.approx(100 * (1 - ratio))
    assert red.ratio_low.iloc[0] < ratio < red.ratio_high.iloc[0]


def test_power_law_budget_says_how_far_a_falling_curve_is_from_the_best_method():
    from scadf_lib.studies.budget import power_law_budget
    steps = np.arange(100, 1100, 100)
    lr = np.where(steps <= 400, 1.0, 0.01)  # the floor from step 500

    def curve(name, v_end, alpha):
        return pd.DataFrame({"name": name, "step": steps, "lr": lr, "val_localisation": v_end * (steps / 1000.0) ** -alpha})

    curves = pd.concat([curve("slow", 4.0, 0.1), curve("best", 1.0, 0.05), curve("flat", 2.0, 0.0)])
    runs = pd.DataFrame({"name": ["slow", "best", "flat"], "study": "main", "scene": "munich", "regime": "mix",
                         "model": ["concat", "scadf", "softmoe"]})
    got = power_law_budget(curves, runs)
    assert got["best"] == 1.0 and np.isinf(got["flat"])
    assert got["slow"] == pytest.approx(4.0 ** (1 / 0.1), rel=1e-6)  # 4x the error at α = 0.1: 4^10 the steps


def test_floor_bend_tells_a_curve_bending_toward_flat_from_a_pure_power_law():
    from scadf_lib.studies.budget import floor_bend, floor_exponent
    steps = np.arange(100, 4100, 100).astype(float)
    lr = np.where(steps <= 500, 1.0, 0.01)  # the floor from step 600
    power = 2.0 * steps ** -0.2  # gains 1 - 0.75^0.2 = 5.6 % over any last quarter
    bending = 1.0 + 20.0 * steps ** -0.5  # falls toward an asymptote: its local α shrinks
    curves = pd.concat([pd.DataFrame({"name": n, "step": steps, "lr": lr, "val_localisation": v})
                        for n, v in (("power", power), ("bending", bending))])
    got = floor_bend(curves)
    assert got.loc["power", "alpha_early"] == pytest.approx(0.2) and got.loc["power", "alpha_late"] == pytest.approx(0.2)
    assert floor_exponent(curves)["power"] == pytest.approx(0.2)
    assert got.loc["bending", "alpha_late"] < 0.75 * got.loc["bending", "alpha_early"]
    short = curves[curves.step <= 700]  # two epochs at the floor: no fit
    assert floor_bend(short).isna().all().all()


def test_hold_check_pairs_each_run_at_its_schedule_end_and_after_the_held_floor(tmp_path):
    from scadf_lib.studies.budget import hold_check
    assert hold_check(tmp_path / "flat").empty

    def write(name, epochs, mse, flat, schedule=None):
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        names = [f"main_munich_mix_{m}_s{s}" for m in ("concat", "scadf") for s in (0, 1)]
        runs = pd.DataFrame({"name": names, "study": "main", "scene": "munich", "regime": "mix",
                             "model": [n.split("_")[3] for n in names], "seed": [0, 1, 0, 1], "epochs_trained": epochs,
                             "flat": flat, "val_late_gain": 0.01, "steps_trained": 100, "device": "cpu",
                             "epochs": [80, 80, 40, 40] if schedule is None else 240})
        if schedule is not None:  # the floor held past the schedule, to one maximum
            runs["schedule_epochs"] = schedule
        metrics = pd.DataFrame({"name": names, "study": "main", "scene": "munich", "regime": "mix", "group": "held-out",
                                "band": "all", "mse_m2": mse, "model": runs.model, "seed": runs.seed, "ci95": 0.0})
        metrics = pd.concat([metrics, metrics.assign(group="overall")])
        runs.to_csv(d / "runs.csv", index=False)
        metrics.to_csv(d / "all_metrics.csv", index=False)

    write("flat_schedule_end", [80, 80, 31, 40], [3.0, 2.0, 0.5, 0.6], [False, False, True, False])
    write("flat", [160, 160, 31, 52], [2.7, 1.9, 0.5, 0.6], [False, True, True, True], schedule=[80, 80, 40, 40])
    check = hold_check(tmp_path / "flat").set_index("method")
    assert check.loc["concat", "trained on"] == 2 and check.loc["scadf", "trained on"] == 1
    assert (check.loc["concat", "flat before"], check.loc["concat", "flat after"]) == (0, 1)
    assert check.loc["concat", "change where trained on (%)"].startswith("-7.50 ±")
    assert check.loc["concat", "largest change (%)"] == 10.0
    assert check.loc["scadf", "change where trained on (%)"] == "0.00"  # one run trained on: no CI
    assert check.loc["concat", "epochs (schedule end → held)"] == "80 → 160"
    # a method whose schedule changed between the sets has other runs, not the same runs held longer
    write("flat", [200, 190, 31, 52], [2.0, 1.5, 0.5, 0.6], [True, True, True, True], schedule=[240, 240, 40, 40])
    assert list(hold_check(tmp_path / "flat").method) == ["scadf"]
    assert hold_check(tmp_path / "flat").attrs["other_schedule"] == ["concat"]


def _metrics(rows):
    """Tidy metric rows (band 'all') from (study, scene, regime, model, seed, group, mse[, extra])."""
    out = []
    for r in rows:
        study, scene, regime, model, seed, group, mse, *extra = r
        out.append({"name": f"{study}_{scene}_{regime}_{model}_s{seed}", "study": study, "scene": scene,
                    "regime": regime, "model": model, "variant": model, "seed": seed, "group": group, "band": "all",
                    "mse_m2": mse, "offset_floor_m2": 1.5, "param": None, "value": None, **(extra[0] if extra else {})})
    return pd.DataFrame(out)


def test_main_table_gives_every_method_anchor_and_the_floor_with_seeds_per_scene():
    rows = [("main", sc, "mix", m, s, g, base + s + (g == "overall"))
            for sc in ("munich", "etoile") for m, base in (("softmoe", 1.0), ("scadf", 2.0))
            for s in ((0, 1, 2) if sc == "munich" else (0,)) for g in ("held-out", "overall")]
    rows += [("anchors", "munich", "mix", "wknn", s, g, 6.0) for s in (0, 1, 2) for g in ("held-out", "overall")]
    metrics = _metrics(rows)
    runs = pd.DataFrame([{"name": f"main_{sc}_mix_{m}_s{s}", "study": "main", "scene": sc, "regime": "mix", "model": m,
                          "seed": s, "flat": not (m == "softmoe" and s == 2)}
                         for sc in ("munich", "etoile") for m in ("softmoe", "scadf")
                         for s in ((0, 1, 2) if sc == "munich" else (0,))])
    t = table_ii.main_table(metrics, runs).set_index("method")
    assert list(t.index) == ["SoftMoE †", "SCADF-MoE", "WKNN (numeric)", "centroid reference (oracle)"]
    assert list(t.columns) == ["munich held-out", "munich overall", "etoile held-out", "etoile overall", "seeds"]
    half = mean_ci(np.array([2.0, 3.0, 4.0]))[1]
    assert t.loc["SCADF-MoE", "munich held-out"] == f"3.00 ± {half:.2f}"
    assert t.loc["SCADF-MoE", "etoile held-out"] == "2.00"  # one seed: no interval
    assert t.loc["SCADF-MoE", "seeds"] == "3 / 1" and t.loc["WKNN (numeric)", "etoile held-out"] == "n/a"
    assert t.loc["centroid reference (oracle)", "munich held-out"] == "1.50"


def test_ablation_table_pairs_each_variant_with_the_full_model_seed_by_seed():
    full = [("main", "munich", "mix", "scadf", s, g, 1.0 + s) for s in (0, 1, 2) for g in ("held-out", "held-out-NLOS", "overall")]
    abl = [("ablation", "munich", "mix", "scadf_no_mmd", s, g, 1.1 * (1.0 + s)) for s in (0, 1) for g in ("held-out", "held-out-NLOS", "overall")]
    nospace = [("spatial", "munich", "mix", "scadf_nospace", 0, g, 3.0) for g in ("held-out", "held-out-NLOS", "overall")]
    metrics = _metrics(full + abl + nospace)
    metrics.loc[metrics.study == "spatial", "variant"] = "scadf_nospace"
    t = ablations.ablation_table(metrics).set_index("variant")
    assert list(t.index) == ["full model", "no spatial context (L = 1)", "no MMD (λ = 0)"]
    assert t.loc["full model", "seeds"] == 2  # the seeds some variant has
    assert t.loc["no MMD (λ = 0)", "held-out: ratio to the full model"] == "1.10× (1.10-1.10)"  # on both seeds
    assert t.loc["no spatial context (L = 1)", "held-out: ratio to the full model"] == "3.00×"  # seed 0 only
    assert "epochs" not in t
    runs = pd.DataFrame({"name": ["main_munich_mix_scadf_s0", "main_munich_mix_scadf_s1", "main_munich_mix_scadf_s2",
                                  "ablation_munich_mix_scadf_no_mmd_s0", "ablation_munich_mix_scadf_no_mmd_s1"],
                         "epochs_trained": [203.0, 35.0, 400.0, 32.0, 32.0]})
    e = ablations.ablation_table(metrics, runs=runs).set_index("variant").epochs
    assert e["full model"] == "35-203"  # seed 2 has no variant: not in the range
    assert e["no MMD (λ = 0)"] == "32" and e["no spatial context (L = 1)"] == ""  # not in runs
    assert ablations.ablation_table(_metrics(full)).empty


def test_spatial_table_compares_trajectory_lengths_on_the_seeds_of_the_l1_runs():
    rows = [("main", "munich", "mix", "scadf", s, g, 0.5) for s in (0, 1, 2) for g in ("held-out", "held-out-LOS", "held-out-NLOS", "overall")]
    rows += [("spatial", "munich", "mix", "scadf", 0, g, 1.5) for g in ("held-out", "held-out-LOS", "held-out-NLOS", "overall")]
    rows += [("sensitivity", "munich", "mix", "scadf", 0, g, 0.9, {"param": "trajectory_length", "value": "3"})
             for g in ("held-out", "held-out-LOS", "held-out-NLOS", "overall")]
    t = spatial.spatial_table(_metrics(rows)).set_index("L (points per trajectory)")
    assert list(t.index) == [1, 3, 5] and (t.seeds == 1).all()
    assert list(t["held-out (m²)"]) == ["1.50", "0.90", "0.50"]
    assert spatial.spatial_table(_metrics(rows[:12])).empty  # no L = 1 run: nothing to compare


def test_coverage_counts_planned_and_finished_runs_per_cell():
    from scadf_lib.presets import PRESETS
    run = {"study": "main", "scene": "munich", "regime": "mix", "model": "scadf", "seed": 0}
    runs = pd.DataFrame([run] * 15 + [{**run, "regime": "ood"}] * 4
                        + [{**run, "study": "ablation", "model": "scadf_single_expert"}] * 2
                        + [{**run, "study": "spatial"}])
    t = overview.coverage(runs, PRESETS["flat"]).set_index("cell")
    assert t.loc["Table II Mix, munich"].tolist() == [15, 15] and t.loc["Table II Mix, etoile"].tolist() == [15, 0]
    assert t.loc["OOD, munich"].tolist() == [15, 4] and t.loc["ablations, munich"].tolist() == [15, 3]
    assert t.loc["sensitivity, munich seed 0"].tolist() == [7, 0]
    assert t.loc["degradation, augmented training"].planned == 15 and t.loc["anchors, 3 scenes x Mix/OOD"].planned == 72


def test_claims_need_every_scene_and_say_when_seeds_are_missing():
    def table(scadf, best, scenes=("munich", "etoile", "florence"), seeds=(0, 1, 2)):
        return _metrics([("main", sc, "mix", m, s, g, v) for sc in scenes for s in seeds
                         for m, v in (("scadf", scadf), ("softmoe", best), ("concat", 9.0))
                         for g in ("overall", "held-out", "held-out-NLOS")])
    complete = table(0.3, 1.0)  # every method, three seeds, three scenes
    complete = pd.concat([complete] + [complete[complete.model == "concat"].assign(model=m)
                                       for m in ("fullcon", "transfusion")])
    v = claims.claims_verdicts(complete).set_index("claim").verdict
    assert v.iloc[0] == "**reproduces** on held-out points" and v.iloc[1] == "**reproduces**"  # 70 % lower everywhere
    assert claims.claims_verdicts(table(0.5, 1.0)).verdict.iloc[1].startswith("**does not reproduce**")  # 50 % < 61 %
    two = claims.claims_verdicts(table(0.3, 1.0, scenes=("munich", "etoile"))).set_index("claim")
    assert two.verdict.iloc[0].startswith("**does not reproduce**") and "provisional" in two.verdict.iloc[0]
    assert two.florence.iloc[0] == "n/a"


def test_wknn_with_the_cfr_leaves_the_tables_only_where_it_chose_cfr_weight_zero_on_every_split(tmp_path):
    runs = pd.DataFrame([{"name": f"anchor_munich_mix_{m}_s{s}", "study": "anchors", "scene": "munich",
                          "regime": "mix", "model": m, "seed": s, "anchor_cfr_weight": 0.0}
                         for m in ("wknn", "wknn_cfr") for s in (0, 1)])
    metrics = _metrics([("anchors", "munich", "mix", m, s, "held-out", 6.0)
                        for m in ("wknn", "wknn_cfr") for s in (0, 1)])
    assert resultset.redundant_anchors(runs) == {"wknn_cfr"}
    assert set(resultset.without_redundant_anchors(metrics, runs).model) == {"wknn"}
    runs.loc[runs.index[-1], "anchor_cfr_weight"] = 0.5  # one split where the CFR helped: it stays
    assert resultset.redundant_anchors(runs) == set()
    assert set(resultset.without_redundant_anchors(metrics, runs).model) == {"wknn", "wknn_cfr"}
    metrics.to_csv(tmp_path / "all_metrics.csv", index=False)
    runs.assign(anchor_cfr_weight=0.0).to_csv(tmp_path / "runs.csv", index=False)
    read, read_runs = resultset.read_set(tmp_path)
    assert set(read.model) == {"wknn"} and set(read_runs.model) == {"wknn", "wknn_cfr"}


def test_the_sensitivity_studys_lambda_0_is_the_no_mmd_ablation_of_its_seed_unless_it_has_its_own():
    from scadf_lib.presets import PRESETS
    rows = [("main", "munich", "mix", "scadf", 0, g, 1.0) for g in ("held-out", "overall")]
    rows += [("sensitivity", "munich", "mix", "scadf", 0, g, 2.0, {"name": "sens_experts2", "param": "n_experts",
                                                                    "value": 2.0}) for g in ("held-out", "overall")]
    rows += [("ablation", "munich", "mix", "scadf_no_mmd", s, g, 3.0 + s) for s in (0, 1) for g in ("held-out", "overall")]
    metrics = _metrics(rows)
    runs = metrics.drop_duplicates("name")[["name", "study", "scene", "regime", "model", "seed", "param", "value"]].assign(
        train_samples=100, points_unused_in_small_clusters=0, final_val_mmd=0.0, epochs_trained=30,
        flat=["True", "False", "True", "True"])  # as read back from runs.csv: the experts-2 run not flat
    t = sensitivity.sensitivity_table(metrics, runs).set_index(["param", "value"])
    assert t.loc[("mmd_weight", "0"), "held-out (m²)"] == 3.0  # the seed-0 ablation, not seed 1's 4.0
    assert t.loc[("n_experts", "2"), "held-out (m²)"] == 2.0 and len(t) == 3  # default, experts 2, λ 0
    assert t.loc[("n_experts", "2"), "held-out change (%)"] == 100.0  # 2.0 against the default's 1.0
    assert t.loc[("mmd_weight", "0"), "held-out change (%)"] == 200.0
    assert t["flat"].tolist() == [True, True, False] and t["epochs"].eq(30).all()  # default, λ 0, experts 2
    assert overview.coverage(runs, PRESETS["flat"]).set_index("cell").loc["sensitivity, munich seed 0"].tolist() == [7, 2]
    no_seed0 = runs[~((runs.model == "scadf_no_mmd") & (runs.seed == 0))]  # only seed 1's ablation: no λ = 0 yet
    assert overview.coverage(no_seed0, PRESETS["flat"]).set_index("cell").loc["sensitivity, munich seed 0"].tolist() == [7, 1]
    own = pd.concat([metrics, _metrics([("sensitivity", "munich", "mix", "scadf", 0, g, 9.0,
                                     {"name": "sens_lambda0.0", "param": "mmd_weight", "value": 0.0})
                                    for g in ("held-out", "overall")])])
    two = pd.concat([metrics, _metrics([("sensitivity", "munich", "mix", "scadf", 0, g, 5.0,
                                         {"name": "sens_experts16", "param": "n_experts", "value": 16.0})
                                        for g in ("held-out", "overall")])])
    runs16 = pd.concat([runs, runs.iloc[[1]].assign(name="sens_experts16")])
    order = sensitivity.sensitivity_table(two, runs16)[["param", "value"]].apply(tuple, axis=1).tolist()
    assert order[0][0].startswith("default") and order[1:] == [("mmd_weight", "0"), ("n_experts", "2"),
                                                                ("n_experts", "16")]  # numeric, not text, order
    t = sensitivity.sensitivity_table(own, runs).set_index(["param", "value"])
    assert t.loc[("mmd_weight", "0"), "held-out (m²)"] == 9.0 and len(t) == 3  # its own run wins


def test_seed_spread_ranks_methods_by_their_worst_seed_against_their_best_and_skips_single_seeds():
    rows = [("main", "munich", "mix", "scadf", s, "held-out", v) for s, v in ((0, 0.5), (1, 0.4), (2, 2.0))]
    rows += [("main", "munich", "mix", "softmoe", s, "held-out", v) for s, v in ((0, 0.6), (1, 0.9), (2, 0.6))]
    rows += [("main", "etoile", "mix", "scadf", 0, "held-out", 9.0),  # one seed: no spread
             ("anchors", "munich", "mix", "wknn", 0, "held-out", 1.0), ("anchors", "munich", "mix", "wknn", 1,
                                                                         "held-out", 50.0),  # not a trained method
             ("main", "munich", "mix", "scadf", 0, "overall", 100.0)]  # another group
    s = table_ii.seed_spread(_metrics(rows))
    assert list(zip(s.scene, s.model)) == [("munich", "scadf"), ("munich", "softmoe")]
    assert s.iloc[0].worst_seed == 2 and s.iloc[0].ratio == pytest.approx(5.0)
    assert (s.iloc[0].low_m2, s.iloc[0].high_m2) == (0.4, 2.0)
    assert s.iloc[1].worst_seed == 1 and s.iloc[1].ratio == pytest.approx(1.5)


def test_the_tail_paragraph_quotes_the_isolation_table_and_the_methods_sharing_the_worst_seed(tmp_path):
    from scadf_lib.studies.table_ii import tail_text
    rows = [("main", "munich", "mix", m, s, "held-out", v * k) for m, k in (("scadf", 1.0), ("softmoe", 0.9),
                                                                            ("fullcon", 3.0))
            for s, v in ((0, 0.5), (1, 0.4), (2, 2.0))]
    rows[-1] = ("main", "munich", "mix", "fullcon", 2, "held-out", 1.0)  # FullCon's worst seed is 0, not 2
    rows[4] = ("main", "munich", "mix", "softmoe", 1, "held-out", 0.5)  # SoftMoE's spread 4x, SCADF-MoE's 5x
    metrics = _metrics(rows)
    assert tail_text(tmp_path, metrics) == ""  # no isolation table: nothing to say
    pd.DataFrame([{"name": f"main_munich_mix_{m}_s{s}", "scene": "munich", "regime": "mix", "model": m, "seed": s,
                   "points": 100, "isolated": 10, "isolated_error_share": 0.3, "mse_m2": 1.0,
                   "mse_without_isolated_m2": 0.5, "top1pct_error_share": top, "median_sq_error_m2": med}
                  for m, top, med in (("scadf", 0.40, 0.02), ("softmoe", 0.70, 0.05), ("fullcon", 0.55, 0.10))
                  for s in (0, 1, 2)]).to_csv(tmp_path / "isolation.csv", index=False)
    text = tail_text(tmp_path, metrics)
    assert "hold 40-70 %" in text and "0.02-0.10 m²" in text
    assert "SCADF-MoE on munich, held-out MSE 0.40 to 2.00 m²" in text and "seed 2 the highest" in text
    assert "also the highest for SoftMoE (0.45 to 1.80 m²)" in text and "FullCon" not in text


def test_ood_cost_pairs_each_seeds_mix_and_ood_runs_on_the_unseen_band_only():
    def row(regime, model, seed, band, mse, study="main"):
        return {"name": f"{study}_munich_{regime}_{model}_s{seed}", "study": study, "scene": "munich",
                "regime": regime, "model": model, "seed": seed, "group": "held-out", "band": band, "mse_m2": mse}
    rows = [row("mix", "scadf", s, b, v) for s in (0, 1, 2) for b, v in (("all", 9.0), ("2.6", 9.0), ("6.0", 0.5))]
    rows += [row("ood", "scadf", s, b, v) for s, v in ((0, 1.0), (1, 2.0)) for b in ("all", "6.0")]  # no seed 2
    rows += [row("mix", "softmoe", 0, "6.0", 1.0)]  # Mix only: not in the table
    rows += [row(r, "wknn", 0, "6.0", 4.0, "anchors") for r in ("mix", "ood")]
    t = ood.ood_cost_table(pd.DataFrame(rows)).set_index("method")
    assert list(t.index) == ["SCADF-MoE", "WKNN (numeric)"]
    assert t.loc["SCADF-MoE", "seeds"] == 2
    assert t.loc["SCADF-MoE", "Mix, 6.0 GHz in training"] == "0.50 ± 0.00"  # the 6 GHz slots, not 'all'
    from scadf_lib.tables import fmt_ratio, ratio_ci
    assert t.loc["SCADF-MoE", "OOD / Mix"] == fmt_ratio(*ratio_ci(np.array([2.0, 4.0])))  # geometric: 2.83×
    assert t.loc["SCADF-MoE", "OOD / Mix"].startswith("2.83×")
    assert t.loc["WKNN (numeric)", "OOD / Mix"] == "1.00×"
    assert ood.ood_cost_table(pd.DataFrame(rows[:9])).empty  # no OOD run


def test_the_readme_states_each_methods_ood_error_and_its_cost_against_mix_and_nothing_without_ood_runs():
    from scadf_lib.studies.ood import ood_readme_lines

    def row(regime, model, seed, mse, study="main"):
        return {"name": f"{study}_munich_{regime}_{model}_s{seed}", "study": study, "scene": "munich",
                "regime": regime, "model": model, "seed": seed, "group": "held-out", "band": "6.0", "mse_m2": mse}
    rows = [row("mix", m, s, 0.5) for m in ("softmoe", "scadf") for s in (0, 1)]
    runs = pd.DataFrame([{"name": f"main_munich_{r}_{m}_s{s}", "study": "main", "regime": r, "flat": not (
        r == "ood" and m == "scadf" and s == 1)} for r in ("mix", "ood") for m in ("softmoe", "scadf") for s in (0, 1)])
    assert ood_readme_lines(pd.DataFrame(rows), runs) == []
    rows += [row("ood", "softmoe", s, 1.0) for s in (0, 1)] + [row("ood", "scadf", s, 1.5) for s in (0, 1)]
    rows += [row(r, "wknn", 0, 9.0, "anchors") for r in ("mix", "ood")]  # an anchor: not in the sentence
    line = ood_readme_lines(pd.DataFrame(rows), runs)[0]
    assert "munich: SoftMoE 1.00, SCADF-MoE 1.50 (mean of 2 seeds" in line and "WKNN" not in line
    assert "2.0-3.0 times each method's Mix error" in line
    assert line.endswith("Ended at the maximum budget, not flat: main_munich_ood_scadf_s1.")
    assert "not flat" not in ood_readme_lines(pd.DataFrame(rows), runs.assign(flat=True))[0]


def test_worst_points_measures_the_share_of_error_on_the_largest_errors_of_the_held_out_slots(tmp_path):
    (tmp_path / "errors").mkdir()
    err = np.r_[np.full(95, 0.1), np.full(5, 10.0), np.full(50, 99.0)]  # the 99 m errors are seen slots
    pd.DataFrame({"error_m": err, "held_out": [True] * 100 + [False] * 50}).to_csv(
        tmp_path / "errors" / "run_a.csv.gz", index=False)
    t = spatial.worst_points(tmp_path, ["run_a", "run_without_errors"], worst=5)
    assert list(t.name) == ["run_a"] and t.held_out_slots.iloc[0] == 100
    assert t.max_error_m.iloc[0] == pytest.approx(10.0)
    assert t.worst_5_share_pct.iloc[0] == pytest.approx(100 * 500 / (500 + 95 * 0.01))
    assert t.mse_without_worst_5_m2.iloc[0] == pytest.approx(0.01)
    assert t.mse_m2.iloc[0] == pytest.approx((500 + 0.95) / 100)


def test_sensitivity_points_put_the_default_run_on_every_varied_settings_curve():
    from scadf_lib.config import TrainConfig
    from scadf_lib.models import ModelConfig
    assert sensitivity.SENSITIVITY_DEFAULTS == {"n_experts": ModelConfig().n_experts, "mmd_weight": ModelConfig().mmd_weight,
                                      "trajectory_length": TrainConfig().trajectory_length}
    g2 = ("held-out", "overall")
    rows = [("main", "munich", "mix", "scadf", 0, g, 1.0 + (g == "overall")) for g in g2 + ("held-out-LOS",)]
    rows += [("sensitivity", "munich", "mix", "scadf", 0, g, v, {"name": f"sens_{p}{x}", "param": p, "value": x})
             for p, x, v in (("n_experts", 2.0, 3.0), ("n_experts", 16.0, 4.0), ("radius_m", 3.0, 5.0))
             for g in g2]
    rows += [("ablation", "munich", "mix", "scadf_no_mmd", 0, g, 6.0) for g in g2]
    metrics = _metrics(rows)
    runs = metrics.drop_duplicates("name")[["name"]].assign(radius_m=4.5)
    pts = sensitivity.sensitivity_points(metrics, runs)
    held = pts[pts.group == "held-out"].set_index(["param", "value"])
    assert held.mse_m2.to_dict() == {("mmd_weight", 0.0): 6.0, ("mmd_weight", 0.1): 1.0, ("n_experts", 2.0): 3.0,
                                     ("n_experts", 8.0): 1.0, ("n_experts", 16.0): 4.0, ("radius_m", 3.0): 5.0,
                                     ("radius_m", 4.5): 1.0}  # no L curve: no L run
    assert held.default.sum() == 3 and set(pts.group) == set(g2)
    fig = plots.sensitivity_curves(pts)
    assert [ax.get_xlabel() for ax in fig.axes] == ["number of experts", "λ (MMD weight)", "clustering radius (m)"]
    assert all("MSE" in ax.get_ylabel() for ax in fig.axes)
    assert sensitivity.sensitivity_points(metrics[metrics.study != "sensitivity"], runs).empty


def test_ablation_effects_call_a_part_helpful_only_when_removing_it_hurts_on_every_seed():
    groups = ("held-out", "overall")
    full = [("main", "munich", "mix", "scadf", s, g, 1.0) for s in (0, 1, 2) for g in groups]
    change = {"scadf_no_mmd": (1.5, 1.6, 1.55),  # worse on every seed, tight: helps
              "scadf_single_expert": (1.1, 3.0, 1.01),  # worse on every seed, wide: interval spans 0
              "scadf_no_routing": (0.8, 0.82, 0.79),  # better on every seed, tight: hurts
              "scadf_no_task_emb": (1.2, 0.9, 1.1)}  # mixed
    abl = [("ablation", "munich", "mix", v, s, g, x[s]) for v, x in change.items() for s in (0, 1, 2) for g in groups]
    abl += [("spatial", "munich", "mix", "scadf_nospace", 0, g, 2.0) for g in groups]  # one seed
    metrics = _metrics(full + abl)
    metrics.loc[metrics.study == "spatial", "variant"] = "scadf_nospace"
    e = ablations.ablation_effects(metrics).set_index("variant")
    shown = "error higher on every seed; not shown beyond the seeds"
    assert e.verdict.to_dict() == {
        "no spatial context (L = 1)": f"{shown} (provisional)",  # one seed: no interval
        "no dynamic routing": "the part hurts", "single expert": shown,  # wide: the interval holds 1
        "no MMD (λ = 0)": "the part helps", "no task embeddings": "no consistent effect"}
    assert e.loc["no task embeddings", ["seeds", "worse_on"]].tolist() == [3, 2]
    ratio = (1.5 * 1.6 * 1.55) ** (1 / 3)  # the geometric mean of the per-seed ratios
    assert e.loc["no MMD (λ = 0)", "ratio"] == pytest.approx(ratio)
    assert e.loc["no MMD (λ = 0)", "change_pct"] == pytest.approx(100 * (ratio - 1))
    from scadf_lib.studies.ablations import ablation_verdict_text
    text = ablation_verdict_text(metrics)
    assert f"no MMD (λ = 0): error higher on 3 of 3 seeds, {ratio:.2f}× (" in text and "**the part helps**" in text
    assert ablation_verdict_text(metrics[metrics.study == "main"]) == ""


def _curve(name, val_m2, val_loc=None):
    """A run's curves.csv.gz rows: validation point MSE (m²) per epoch, the stopping criterion alongside."""
    val_loc = val_m2 if val_loc is None else val_loc
    return pd.DataFrame({"name": name, "epoch": np.arange(1, len(val_m2) + 1), "val_mse_points_m2": val_m2,
                         "val_localisation": val_loc})


def test_equal_epoch_val_change_compares_two_runs_at_the_budget_both_trained():
    # the reference kept falling for 6 epochs; the variant stopped after 3, level with the reference's first 3
    curves = pd.concat([_curve("ref", [4.0, 2.0, 1.0, 0.8, 0.6, 0.5]), _curve("var", [4.0, 2.5, 1.0])])
    assert ablations.equal_epoch_val_change(curves, "var", "ref") == pytest.approx(0.0)  # not +100 % (1.0 vs 0.5)
    assert ablations.equal_epoch_val_change(curves, "ref", "var") == pytest.approx(0.0)  # symmetric in the budget
    # the checkpoint is the one the stopping criterion picks, not the lowest point MSE
    picky = pd.concat([_curve("ref", [1.0, 1.0]), _curve("var", [1.5, 0.5], val_loc=[0.1, 0.2])])
    assert ablations.equal_epoch_val_change(picky, "var", "ref") == pytest.approx(50.0)
    assert np.isnan(ablations.equal_epoch_val_change(curves, "missing", "ref"))


def test_ablation_and_sensitivity_tables_hold_the_budget_equal_with_curves():
    groups = ("held-out", "overall")
    rows = [("main", "munich", "mix", "scadf", s, g, 1.0) for s in (0, 1) for g in groups]
    rows += [("ablation", "munich", "mix", "scadf_no_mmd", s, g, 1.2) for s in (0, 1) for g in groups]
    rows += [("sensitivity", "munich", "mix", "scadf", 0, g, 1.3, {"name": "sens_experts2", "param": "n_experts",
                                                                    "value": 2.0}) for g in groups]
    metrics = _metrics(rows)
    full = "main_munich_mix_scadf_s{}"
    abl = "ablation_munich_mix_scadf_no_mmd_s{}"
    curves = pd.concat([_curve(full.format(0), [2.0, 1.0, 0.5]), _curve(abl.format(0), [2.0, 0.9]),  # -10 %
                        _curve(full.format(1), [1.0, 1.0]), _curve(abl.format(1), [0.9, 0.9]),  # -10 %
                        _curve("sens_experts2", [3.0, 1.1])])  # +10 % against the default's first 2 epochs
    t = ablations.ablation_table(metrics, curves=curves).set_index("variant")
    assert t.loc["no MMD (λ = 0)", ablations.EQUAL_EPOCHS] == "0.90× (0.90-0.90)"
    assert t.loc["full model", ablations.EQUAL_EPOCHS] == ""
    assert t.loc["no MMD (λ = 0)", "held-out: ratio to the full model"] == "1.20× (1.20-1.20)"  # budget not held
    e = ablations.ablation_effects(metrics, curves=curves).iloc[0]
    assert (e.worse_on, e.val_worse_on, e.val_seeds) == (2, 0, 2)
    assert e.verdict == "error higher on every seed, higher at equal epochs on 0 of 2; not shown beyond the seeds (provisional)"
    assert "val_worse_on" not in ablations.ablation_effects(metrics)
    runs = metrics.drop_duplicates("name")[["name"]].assign(train_samples=1, points_unused_in_small_clusters=0,
                                                             final_val_mmd=0.0, epochs_trained=2, flat="True")
    s = sensitivity.sensitivity_table(metrics, runs, curves=curves).set_index("param")
    assert s.loc["n_experts", ablations.EQUAL_EPOCHS_PCT] == pytest.approx(10.0)
    assert s.loc["n_experts", "held-out change (%)"] == pytest.approx(30.0)
    from scadf_lib.studies.ablations import ablation_verdict_text; from scadf_lib.studies.sensitivity import sensitivity_section
    assert "higher at equal epochs on 0 of 2" in ablation_verdict_text(metrics, curves)
    # λ = 0 (the no-MMD seed-0 run): +20 % held-out but -10 % at equal epochs; 2 experts: +30 % and +10 %
    assert "differ in sign (the budget, not the setting, may carry the held-out change): mmd_weight 0." in \
        sensitivity_section(resultset.ResultSet.of_tables(metrics, runs, curves))
    assert "differ in sign" not in sensitivity_section(resultset.ResultSet.of_tables(metrics, runs))


def _degradation(cells):
    """A degradation.csv of (model, seed, augmented, label, held-out MSE m^2) cells."""
    return pd.DataFrame([{"group": "held-out", "mse_m2": mse, "count": 100, "corruption": label.split("=")[0],
                          "level": np.nan, "label": label, "name": f"{m}_s{s}{'_aug' if aug else ''}", "model": m,
                          "seed": s, "augmented": aug} for m, s, aug, label, mse in cells])


def test_a_partial_augmented_half_averages_every_method_over_shared_seeds_and_waits_for_missing_methods():
    labels = ("clean",) + degradation.WORST
    clean = [(m, s, False, lab, 1.0 + s + 0.5 * (m == "scadf")) for m in presets.METHODS for s in (0, 1, 2)
             for lab in labels]
    # augmented so far: concat on seeds 0 and 1 (seed 1 much worse), scadf on seed 0 only
    aug = ([("concat", s, True, lab, 10.0 * (1 + 9 * s)) for s in (0, 1) for lab in labels]
           + [("scadf", 0, True, lab, 5.0) for lab in labels])
    table = _degradation(clean + aug)
    cov = degradation.degradation_coverage(table).set_index("training")
    assert cov.loc["clean", "seeds"] == [0, 1, 2] and cov.loc["clean", "missing"] == []
    assert cov.loc["augmented", "seeds"] == [0] and cov.loc["augmented", "missing"] == ["fullcon", "transfusion",
                                                                                          "softmoe"]
    summary = degradation.degradation_summary(table).set_index(["model", "training", "label"])
    # concat's augmented seed 1 is left out: scadf has seed 0 only
    assert summary.loc[("concat", "augmented", "clean"), "mse_m2"] == pytest.approx(10.0)
    assert summary.loc[("concat", "augmented", "clean"), "seeds"] == 1
    assert summary.loc[("concat", "clean", "clean"), "mse_m2"] == pytest.approx(2.0)  # clean keeps all seeds
    verdicts = degradation.degradation_verdicts(degradation.degradation_winners(degradation.degradation_summary(table)), degradation.degradation_coverage(table))
    v = verdicts.set_index("training")
    assert v.loc["augmented", "verdict"] == "waits" and not v.loc["augmented", "provisional"]
    assert v.loc["augmented", "best_on"] == len(degradation.WORST)  # scadf 5.0 beats concat 10.0 everywhere, so far
    assert v.loc["clean", "verdict"] == "no" and v.loc["clean", "best_on"] == 0  # scadf is worst trained clean
    # every method in, seed 0 only: a verdict, marked provisional
    aug_all = [(m, 0, True, lab, 5.0 if m == "scadf" else 6.0) for m in presets.METHODS for lab in labels]
    table = _degradation(clean + aug_all)
    v = degradation.degradation_verdicts(degradation.degradation_winners(degradation.degradation_summary(table)),
                               degradation.degradation_coverage(table)).set_index("training")
    assert v.loc["augmented", "verdict"] == "yes" and v.loc["augmented", "provisional"]


def test_copes_best_needs_the_seeds_to_agree_not_only_the_means():
    """SCADF-MoE has the lowest mean at every worst-level corruption, carried by one seed: SoftMoE is lower
    on the other two. The means alone would say yes; seed by seed it is not shown."""
    labels = ("clean",) + degradation.WORST
    mse = {"scadf": (0.1, 2.0, 2.0), "softmoe": (3.0, 1.5, 1.5)}
    cells = [(m, s, aug, lab, mse.get(m, (9.0, 9.0, 9.0))[s]) for m in presets.METHODS for s in (0, 1, 2)
             for aug in (False,) for lab in labels]
    table = _degradation(cells)
    win = degradation.degradation_winners(degradation.degradation_summary(table))
    cov = degradation.degradation_coverage(table)
    assert (win.scadf_rank == 1).all()
    assert degradation.degradation_verdicts(win, cov).verdict.iloc[0] == "yes"  # the means alone
    paired = degradation.degradation_against_best_baseline(table)
    v = degradation.degradation_verdicts(win, cov, paired=paired).iloc[0]
    assert v.verdict == "not shown seed by seed" and v.every_seed_on == 0


def test_augmentation_effect_pairs_each_methods_augmented_and_clean_runs_seed_by_seed():
    labels = ("clean", "missing cfr")
    clean = [(m, s, False, lab, 2.0 if lab == "clean" else 100.0) for m in ("concat", "scadf") for s in (0, 1, 2)
             for lab in labels]
    assert degradation.augmentation_effect(_degradation(clean)).empty
    # augmented: scadf on seeds 0 and 1 only; missing CFR drops to 10 m^2 on seed 0, 50 m^2 on seed 1
    aug = [("scadf", s, True, "clean", 2.2) for s in (0, 1)] + [("scadf", 0, True, "missing cfr", 10.0),
                                                               ("scadf", 1, True, "missing cfr", 50.0)]
    effect = degradation.augmentation_effect(_degradation(clean + aug), labels=labels).set_index(["model", "label"])
    assert set(effect.index.get_level_values("model")) == {"scadf"}  # concat has no augmented run
    row = effect.loc[("scadf", "missing cfr")]
    assert row.seeds == 2 and row.helped_on == 2
    assert row.ratio == pytest.approx(np.sqrt(0.1 * 0.5))  # geometric: seed 0's 10x drop does not dominate
    assert row.change_pct == pytest.approx(100 * (np.sqrt(0.1 * 0.5) - 1))
    assert row.clean_trained_mse == pytest.approx(100.0)  # over the paired seeds 0 and 1, not seed 2
    assert effect.loc[("scadf", "clean"), "change_pct"] == pytest.approx(10.0)
    assert effect.loc[("scadf", "clean"), "helped_on"] == 0


def test_degradation_curves_draw_only_the_methods_each_training_has():
    import matplotlib.pyplot as plt
    labels = ("clean", "cfr_snr_db=30", "cfr_snr_db=0", "angle_deg=10", "distance_pct=10", "gain_db=6",
              "missing cfr", "missing angles", "missing distance", "missing gain")
    clean = [(m, s, False, lab, 1.0 + s) for m in presets.METHODS for s in (0, 1) for lab in labels]
    aug = [(m, 0, True, lab, 2.0) for m in ("concat", "scadf") for lab in labels]
    table = _degradation(clean + aug)
    table["level"] = [float(lab.split("=")[1]) if "=" in lab else np.nan for lab in table.label]
    fig = plots.degradation_curves(degradation.degradation_summary(table))
    axes = np.array(fig.axes[:10]).reshape(2, 5)
    assert [len(ax.containers) for ax in axes[:, 0]] == [len(presets.METHODS), 2]  # an errorbar per method drawn
    for ax in axes.ravel():
        assert ax.get_ylabel() == "held-out MSE (m$^2$)" and ax.get_xlabel()
    plt.close(fig)


def test_augmented_loss_shares_weigh_each_parts_error_by_its_probability_in_the_training_mixture():
    from scadf_lib.presets import AUGMENT_P_MISSING, AUGMENT_P_NOISE
    from scadf_lib.studies.degradation import augmented_loss_paragraph
    labels = ["clean", "cfr_snr_db=30", "cfr_snr_db=0", "angle_deg=10", "distance_pct=10", "gain_db=6",
              "missing cfr", "missing angles", "missing distance", "missing gain"]
    mse = {"clean": 1.0, "cfr_snr_db=30": 1.0, "cfr_snr_db=0": 3.0, "angle_deg=10": 10.0, "distance_pct=10": 4.0,
           "gain_db=6": 1.0, "missing cfr": 2.0, "missing angles": 400.0, "missing distance": 40.0, "missing gain": 1.0}
    cells = [("concat", 0, True, lab, mse[lab]) for lab in labels] + [("concat", 0, False, lab, 0.5) for lab in labels]
    table = _degradation(cells)
    table["corruption"] = [lab.split("=")[0] if "=" in lab else ("missing" if lab.startswith("missing") else "clean")
                           for lab in table.label]
    table = pd.concat([table.assign(group="overall"), table.assign(group="held-out")], ignore_index=True)
    shares = degradation.augmented_loss_shares(table).set_index("part")
    assert set(shares.name) == {"concat_s0_aug"}  # the clean-trained run has no training mixture
    p_clean = 1 - 4 * AUGMENT_P_NOISE - 4 * AUGMENT_P_MISSING
    total = (p_clean * 1.0 + AUGMENT_P_NOISE * (2.0 + 10.0 + 4.0 + 1.0)  # the CFR at the mean of its two levels
             + AUGMENT_P_MISSING * (2.0 + 400.0 + 40.0 + 1.0))
    assert shares.loc["cfr_snr_db", "mse_m2"] == pytest.approx(2.0)
    assert shares.loc["missing angles", "share_pct"] == pytest.approx(100 * AUGMENT_P_MISSING * 400.0 / total)
    assert shares.share_pct.sum() == pytest.approx(100.0)
    assert shares.probability.sum() == pytest.approx(1.0)
    text = augmented_loss_paragraph(table, degradation.augmentation_effect(table))
    assert "missing angles (5 % of training samples)" in text
    assert "clean held-out error rose with augmentation (Concat)" in text.replace("\n", " ")
    # where augmentation lowered the clean held-out error, no reason for a rise is offered
    table.loc[~table.augmented & (table.label == "clean"), "mse_m2"] = 5.0
    assert "rose" not in augmented_loss_paragraph(table, degradation.augmentation_effect(table))


def test_the_degradation_ranks_are_checked_seed_by_seed_against_the_best_baseline():
    from scadf_lib.studies.degradation import best_baseline_paragraph
    # missing cfr: scadf's mean (2.0) beats softmoe's (2.5) and concat's (9), but softmoe wins seed 2
    mse = {"scadf": (1.0, 1.0, 4.0), "softmoe": (3.0, 1.5, 3.0), "concat": (9.0, 9.0, 9.0)}
    cells = [(m, s, False, "missing cfr", v[s]) for m, v in mse.items() for s in (0, 1, 2)]
    cells += [(m, s, False, "gain_db=6", 1.0 if m == "scadf" else 2.0) for m in mse for s in (0, 1, 2)]
    paired = degradation.degradation_against_best_baseline(_degradation(cells)).set_index("corruption")
    row = paired.loc["missing cfr"]
    assert row.best_baseline == "softmoe" and row.seeds == 3 and row.scadf_lower_on == 2
    assert row.ratio == pytest.approx((1 / 3 * 1 / 1.5 * 4 / 3) ** (1 / 3))
    assert paired.loc["gain_db=6", "scadf_lower_on"] == 3 and paired.loc["gain_db=6", "high"] == pytest.approx(0.5)
    text = best_baseline_paragraph(_degradation(cells))
    assert "trained clean: lower on every seed in 1 of 2, interval below 1 in 1" in text


def test_the_scene_table_gives_each_seed_the_median_and_p90_beside_the_mean_and_no_closed_form_row():
    rows = [("main", "munich", "mix", "scadf", s, g, 1.0 + s) for s in (0, 1, 2) for g in ("held-out", "overall")]
    rows += [("anchors", "munich", "mix", a, s, g, 9.0) for a in ("geometric", "wknn", "hybrid") for s in (0, 1, 2)
             for g in ("held-out", "overall")]
    metrics = _metrics(rows).assign(median_m=0.25, p90_m=1.5, offset_floor_m2=1.6)
    runs = pd.DataFrame({"name": [f"main_munich_mix_scadf_s{s}" for s in (0, 1, 2)], "study": "main",
                         "scene": "munich", "regime": "mix", "model": "scadf", "seed": [0, 1, 2], "flat": True})
    t = table_ii.scene_table(metrics, runs, "munich").set_index("method")
    assert list(t.index) == ["SCADF-MoE", "WKNN (numeric)", "hybrid (closed form on LOS, WKNN on NLOS)",
                             table_ii.CENTROID_REFERENCE]
    assert t.loc["SCADF-MoE", "per seed (m²)"] == "1.00 / 2.00 / 3.00"
    assert t.loc["SCADF-MoE", "median error (m)"] == "0.25" and t.loc["SCADF-MoE", "p90 error (m)"] == "1.50"
    assert t.loc[table_ii.CENTROID_REFERENCE, "held-out MSE (m²)"] == "1.60"


def test_headers_are_words_with_units():
    from scadf_lib.studies.common import words
    t = words(pd.DataFrame({"model": ["scadf"], "mse_m2": [1.0], "isolated": [3.0], "worst_10_share_pct": [50.0],
                            "cfr_snr_db=30": [1.0], "corruption": ["angle_deg=10"]}))
    assert list(t.columns) == ["method", "MSE (m²)", "isolated points (count, mean over seeds)",
                               "squared error on the 10 worst (%)", "CFR SNR 30 dB", "corruption"]
    assert t.method.iloc[0] == "SCADF-MoE" and t.corruption.iloc[0] == "angle error 10°"
