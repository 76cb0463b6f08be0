"""Experiment driver, confidence intervals, report verdicts and the routing inspector, on synthetic data."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from scadf_lib.experiments import degradation_targets, execute
from scadf_lib.fileio import write_csv_atomic
from scadf_lib.planning import plan
from scadf_lib.sweep_tables import collect
from scadf_lib.dataversions import v1_available
from scadf_lib.presets import REFERENCE_DATA_DIR, REFERENCE_SET
from scadf_lib.studies.resultset import ResultSet
from scadf_lib.training import BASE_LR, lr_at


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, synthetic_nc):
    root = tmp_path_factory.mktemp("exp")
    (root / "data").mkdir()
    shutil.copy(synthetic_nc, root / "data" / "munich.nc")
    runs = [r for r in plan("smoke", data_dir=str(root / "data"), scenes=("munich",), studies=("main", "spatial", "blocks", "degradation"))]
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}
    from dataclasses import replace
    runs = [replace(r, cfg=replace(r.cfg, model_overrides=small)) for r in runs]
    metrics = execute(runs, root / "work", root / "results", progress=False)
    return root, runs, metrics


def test_plan_covers_every_scene_method_regime_and_seed():
    runs = plan("paper")
    main = [r for r in runs if r.study == "main"]
    assert len(main) == 3 * 5 * 2 * 5
    assert {r.cfg.model for r in main} == {"concat", "fullcon", "transfusion", "softmoe", "scadf"}
    assert {r.cfg.regime for r in main} == {"mix", "ood"}
    assert len({r.name for r in runs}) == len(runs)
    nospace = [r for r in runs if r.study == "spatial"]
    assert all(r.cfg.trajectory_length == 1 and r.cfg.min_cluster_size == 6 for r in nospace)
    # noSpace trains on each point as often as L = 5 does: 5 x the (single-point) trajectories
    assert all(r.cfg.train_per_point == 5 * main[0].cfg.train_per_point for r in nospace)
    blocks = [r for r in runs if r.study == "blocks"]
    assert {r.cfg.model for r in blocks} == {r.cfg.model for r in main} and len(blocks) == 3 * 5 * 5
    assert all(r.cfg.holdout == "blocks" and r.cfg.regime == "mix" for r in blocks)
    with pytest.raises(ValueError, match="unknown preset"):
        plan("huge")
    assert {r.cfg.model for r in plan("paper", studies=("main",), methods=("scadf",))} == {"scadf"}
    with pytest.raises(ValueError, match="unknown methods"):
        plan("paper", methods=("gpt",))
    # the ablations the driver plans are the paper's, and every planned model is registered
    from scadf_lib.models import REGISTRY
    from scadf_lib.presets import ABLATIONS, METHODS
    assert {r.cfg.model for r in runs if r.study == "ablation"} == set(ABLATIONS)
    assert set(METHODS) | set(ABLATIONS) <= set(REGISTRY)


def test_flat_preset_holds_a_small_lr_after_the_curriculum_and_gives_the_baselines_more_epochs():
    runs = [r for r in plan("flat") if r.study == "main"]
    main = [r for r in runs if r.tags["scene"] == "munich" and r.cfg.regime == "mix"]
    assert len(main) == 5 * 3
    # the reference set: Table II (Mix) on the three scenes, OOD on munich, 5 methods x 3 seeds each
    assert {(r.tags["scene"], r.cfg.regime, r.cfg.model, r.cfg.seed) for r in runs} == {
        (sc, reg, m, s) for sc, reg in (("munich", "mix"), ("etoile", "mix"), ("florence", "mix"), ("munich", "ood"))
        for m in ("concat", "fullcon", "transfusion", "softmoe", "scadf") for s in (0, 1, 2)}
    assert len({r.name for r in runs}) == len(runs) == 4 * 15
    assert {r.cfg.model for r in plan("flat", methods=("scadf",)) if r.study == "main"} == {"scadf"}
    assert [r for r in plan("flat", scenes=("munich",)) if r.study == "main" and r.cfg.regime == "mix"] == main
    # the budget check: SoftMoE and SCADF-MoE seed 0 again at twice the epochs, same schedule fractions,
    # and Concat's three seeds on the 80-epoch schedule of its earlier main runs
    budget = [r for r in plan("flat") if r.study == "budget"]
    assert {(r.cfg.model, r.cfg.schedule_epochs, r.cfg.seed, r.cfg.min_lr_fraction) for r in budget} == {
        ("softmoe", 80, 0, 0.01), ("scadf", 80, 0, 0.01), *(("concat", 80, s, 0.01) for s in (0, 1, 2))}
    assert {r.name for r in plan("flat", methods=("softmoe",)) if r.study == "budget"} == {
        "budget_munich_mix_softmoe_e80_s0"}
    schedule = {r.cfg.model: r.cfg.schedule_epochs for r in main}
    assert schedule == {"concat": 240, "fullcon": 80, "transfusion": 40, "softmoe": 40, "scadf": 40}
    # the floor then holds up to one maximum for every method (6 x 40 epochs), where the rule may end a run
    assert {r.cfg.epochs for r in [*runs, *budget]} == {240}
    for r in main:  # the loss is the paper's before the lr reaches its floor, and the floor holds a quarter+
        assert r.cfg.offset_anneal_fraction < r.cfg.decay_fraction <= 0.75 and r.cfg.min_lr_fraction == 0.01
        span = r.cfg.schedule_epochs * 10
        assert lr_at(span - 1, span, r.cfg) == pytest.approx(0.01 * r.cfg.lr)
        assert lr_at(3 * span - 1, span, r.cfg) == pytest.approx(0.01 * r.cfg.lr)
    # --epochs replaces the base budget; the baselines keep their factor; other presets have none
    short = [r for r in plan("flat", epochs=10) if r.study in ("main", "budget")]
    assert {r.cfg.model: r.cfg.schedule_epochs for r in short if r.study == "main"}["concat"] == 60
    assert {r.cfg.epochs for r in short if r.study == "main"} == {60}  # the maximum scales with the base
    assert {(r.cfg.schedule_epochs, r.cfg.epochs) for r in short if r.study == "budget"} == {(80, 80)}
    assert {r.cfg.schedule_epochs for r in plan("paper")} == {None}
    assert {r.cfg.schedule_epochs for r in plan("flat") if r.study == "anchors"} == {None}
    # its clean main runs are scored under corrupted inputs, beside the augmented runs
    scored = degradation_targets(plan("flat"))
    assert {r.name for r in scored if r.study == "main"} == {r.name for r in main}
    assert {(r.cfg.model, r.cfg.seed) for r in scored if r.study == "degradation"} == {
        (r.cfg.model, r.cfg.seed) for r in main}  # the augmented half, on each method's own schedule
    assert all(r.cfg.augment and r.cfg.schedule_epochs == schedule[r.cfg.model] for r in scored if r.study == "degradation")
    assert degradation_targets(plan("paper", studies=("main",))) == []  # scored only beside a degradation study


def test_reference_plan_runs_the_most_important_cells_first():
    runs = plan("flat")
    order = [r.name for r in runs]
    assert len(set(order)) == len(order)
    first = lambda pred: min(i for i, r in enumerate(runs) if pred(r))  # noqa: E731
    last = lambda pred: max(i for i, r in enumerate(runs) if pred(r))  # noqa: E731
    other_mix = lambda r: r.study == "main" and r.cfg.regime == "mix" and r.tags["scene"] != "munich"  # noqa: E731
    ood = lambda r: r.study == "main" and r.cfg.regime == "ood"  # noqa: E731
    ablations = lambda r: r.study in ("ablation", "spatial")  # noqa: E731
    assert last(lambda r: r.study == "anchors") < first(other_mix)
    assert last(other_mix) < first(ood) and last(ood) < first(ablations)
    assert last(ablations) < first(lambda r: r.study == "sensitivity")
    assert last(lambda r: r.study == "sensitivity") < first(lambda r: r.study == "degradation")
    # the paper's ablations, 3 seeds each, on munich Mix; no spatial context = L = 1 on munich only
    abl = [r for r in runs if ablations(r)]
    assert {(r.tags["variant"], r.cfg.seed) for r in abl} == {
        (v, s) for v in ("scadf_nospace", "scadf_no_routing", "scadf_single_expert", "scadf_no_mmd", "scadf_no_task_emb")
        for s in (0, 1, 2)}
    assert {r.tags["scene"] for r in abl} == {"munich"} and {r.cfg.regime for r in abl} == {"mix"}
    sens = {(r.tags["param"], r.tags["value"]) for r in runs if r.study == "sensitivity"}
    # λ = 0 is the no-MMD ablation of seed 0 (the same run), trained once; planned alone, it is a sensitivity run
    assert sens == {("n_experts", 2), ("n_experts", 16), ("mmd_weight", 1.0),
                    ("mmd_weight", 10.0), ("trajectory_length", 3), ("radius_m", 3.0)}
    alone = {r.name for r in plan("flat", studies=("sensitivity",))}
    assert "sens_lambda0.0" in alone and "ablation_munich_mix_scadf_no_mmd_s0" not in alone
    # one protocol: every trained run holds the floor to the same maximum budget
    assert {r.cfg.epochs for r in runs if r.study != "anchors"} == {240}


def test_committed_results_count_as_done_when_the_run_folders_are_gone(smoke_results, tmp_path):
    root, runs, _ = smoke_results
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    before = {p.name: p.read_bytes() for p in results.glob("*.csv") if p.name != "sweeps.csv"}
    execute(runs, tmp_path / "fresh_work", results, progress=False)  # a fresh clone: no runs/ folder
    assert not (tmp_path / "fresh_work").exists() or not any((tmp_path / "fresh_work").iterdir())
    after = {p.name: p.read_bytes() for p in results.glob("*.csv") if p.name != "sweeps.csv"}
    assert after == before  # nothing trained again, nothing committed dropped, byte for byte
    # a run finished in the work folder replaces its committed rows; the others stay
    name = next(r.name for r in runs if r.study == "main")
    collect(runs, root / "work", results)
    table = pd.read_csv(results / "runs.csv")
    assert (table.name == name).sum() == 1 and set(table.name) == set(pd.read_csv(root / "results" / "runs.csv").name)


def test_execute_writes_tidy_tables_and_skips_finished_runs(smoke_results):
    root, runs, metrics = smoke_results
    assert set(metrics.name) == {r.name for r in runs}
    assert (root / "results" / "all_metrics.csv").exists() and (root / "results" / "runs.csv").exists()
    assert (root / "results" / "errors" / "main_munich_mix_scadf_s0.csv.gz").exists()
    assert (root / "results" / "models" / "munich_scadf.pt").exists()
    before = (root / "work" / runs[0].name / "run.json").stat().st_mtime_ns
    execute(runs[:1], root / "work", root / "results", progress=False)
    assert (root / "work" / runs[0].name / "run.json").stat().st_mtime_ns == before, "finished runs are not redone"
    assert len(collect(runs[:1], root / "work", root / "results_one").name.unique()) == 1


def test_nospace_is_paired_with_scadf_on_the_same_held_out_points(smoke_results):
    root, runs, metrics = smoke_results
    paired = pd.read_csv(root / "results" / "paired_points.csv")
    errs = pd.read_csv(root / "work" / "main_munich_mix_scadf_s0" / "point_errors.csv")
    nospace = pd.read_csv(root / "work" / "spatial_munich_mix_nospace_s0" / "point_errors.csv")
    held = errs[errs.held_out]
    # every held-out point of either run is in the pairs: the splits hold out the same points
    assert len(paired) == len(held) == len(nospace[nospace.held_out]) > 0
    assert set(zip(paired.band_ghz, paired.ue)) == set(zip(held.band_ghz, held.ue))
    assert set(nospace.ue) == set(nospace[nospace.held_out].ue), "noSpace tests held-out points only"
    row = paired.iloc[0]
    ref = held[(held.band_ghz == row.band_ghz) & (held.ue == row.ue)].iloc[0]
    assert row.sq_error_scadf_m2 == pytest.approx(ref.sq_error_m2)


def test_degradation_study_scores_clean_and_augmented_runs_and_reports_a_verdict(smoke_results, tmp_path):
    root, runs, metrics = smoke_results
    from scadf_lib.degradation import degradation_grid
    from scadf_lib.studies.degradation import degradation_document, degradation_section
    out = root / "results_degradation"  # another test re-collects a subset into results/
    collect(runs, root / "work", out)
    table = pd.read_csv(out / "degradation.csv")
    assert set(table.model) == {"concat", "fullcon", "transfusion", "softmoe", "scadf"}
    assert set(table.augmented) == {True, False}  # the augmented runs and their clean main runs
    assert set(table.label) == {d.label for d in degradation_grid()}
    resp = pd.read_csv(out / "routing_response.csv")
    assert set(resp.model) == {"scadf"} and set(resp.augmented) == {True, False}
    text = degradation_section(out)
    assert "Verdict" in text and "trained augmented" in text and "trained clean" in text
    assert "task router shift weight" in text and "DEGRADATION.md" in text  # the short version points to the rest
    assert "Verdict" in degradation_document(out) and len(degradation_document(out)) > 3 * len(text)
    # a set scored clean-trained only (the flat preset's main runs) says so, and has no augmented verdict
    clean_only = tmp_path / "clean_only"
    clean_only.mkdir()
    table[~table.augmented.astype(bool)].to_csv(clean_only / "degradation.csv", index=False)
    text = degradation_document(clean_only)
    assert "augmented training half of this study has not run yet" in text
    assert "trained clean" in text and "trained augmented" not in text
    # part of the augmented half in (one baseline's seed 0): its rows say so and its verdict waits
    partial = tmp_path / "partial"
    partial.mkdir()
    table[~table.augmented.astype(bool) | ((table.model == "concat") & (table.seed == 0))].to_csv(
        partial / "degradation.csv", index=False)
    text = degradation_document(partial)
    assert "Trained augmented, not in yet: FullCon, TransFusion, SoftMoE, SCADF-MoE" in text
    assert "trained augmented: waits for FullCon, TransFusion, SoftMoE, SCADF-MoE" in text
    assert "What augmentation buys" in text and "| Concat |" in text.split("What augmentation buys")[1]
    # the smoke preset trains one seed: the routing verdict says it is provisional
    assert ", provisional: 1 seed(s))" in degradation_section(out).split("task router shift weight")[-1]


def test_a_degradation_run_is_scored_under_corrupted_inputs_as_soon_as_it_has_trained(tmp_path, synthetic_nc):
    """Its scores need its best.pt, which only the uncommitted run folder holds: a sweep parked at its
    time limit must not leave a committed augmented run unscored (on a fresh machine it never would be)."""
    from dataclasses import replace
    from scadf_lib.experiments import run_job
    (tmp_path / "data").mkdir()
    shutil.copy(synthetic_nc, tmp_path / "data" / "munich.nc")
    runs = plan("smoke", data_dir=str(tmp_path / "data"), scenes=("munich",), studies=("degradation",))
    aug = next(r for r in runs if r.study == "degradation" and r.cfg.model == "concat")
    aug = replace(aug, cfg=replace(aug.cfg, model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1}))
    work, results = tmp_path / "work", tmp_path / "results"
    run_job(aug, work, results, scored=frozenset({aug.name}))
    scores = pd.read_csv(work / aug.name / "degradation.csv")
    assert scores.augmented.all() and {"clean", "missing cfr"} <= set(scores.label)
    # a run that finished unscored (a driver older than this rule) is scored before the next sweep trains
    (work / aug.name / "degradation.csv").unlink()
    run_job(aug, work, results)  # finished, not named: nothing to do
    assert not (work / aug.name / "degradation.csv").exists()
    execute([aug], work, results, progress=False, time_limit_s=3600)
    assert (work / aug.name / "degradation.csv").exists()
    assert set(pd.read_csv(results / "degradation.csv").name) == {aug.name}


def test_block_runs_test_held_out_points_only(smoke_results):
    root, runs, metrics = smoke_results
    blocks = metrics[(metrics.study == "blocks") & (metrics.band == "all")]
    assert len(blocks) and (blocks[blocks.group == "seen"]["count"] == 0).all()
    info = pd.read_csv(root / "results" / "runs.csv").set_index("name")
    b = info.loc[[n for n in info.index if n.startswith("blocks_")]]
    assert (b.min_distance_test_to_train_m > b.radius_m).all()


def test_runs_trained_in_parallel_processes_give_the_same_metrics(smoke_results, tmp_path):
    """--jobs 2: two runs at once in separate processes, each as it would run alone."""
    root, runs, metrics = smoke_results
    pair = [r for r in runs if r.cfg.model in ("scadf", "transfusion") and r.cfg.regime == "mix" and r.study == "main"]
    assert len(pair) == 2
    again = execute(pair, tmp_path / "work", tmp_path / "results", progress=False, jobs=2)
    cols = ["name", "band", "group", "mse_m2"]
    ref = metrics[metrics.name.isin([r.name for r in pair])][cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(again[cols].sort_values(cols[:3]).reset_index(drop=True), ref)


def test_report_verdicts_follow_the_numbers(smoke_results):
    from scadf_lib.studies.claims import claims_verdicts
    from scadf_lib.report import render
    root, _, metrics = smoke_results
    text = render(root / "results", "smoke")
    assert "Table II on our three scenes" in text and "## The paper's claims" in text
    runs = pd.read_csv(root / "results" / "runs.csv")
    assert f"munich {runs.radius_m.iloc[0]:g} m" in text, "the radius comes from the runs, not from prose"
    assert f"{runs.device.iloc[0]}, {int(runs.torch_threads.iloc[0])} torch thread(s) per run" in text
    # one scene of three: the sub-meter claim cannot reproduce, whatever the number, and is provisional
    claims = claims_verdicts(metrics[metrics.study == "main"]).set_index("claim")
    assert claims.verdict.str.contains("provisional").all()
    assert not claims.verdict.str.startswith("**reproduces**").any()
    # three scenes below 1 m², one seed each: the rule says it reproduces (provisionally)
    main = metrics[(metrics.study == "main") & (metrics.regime == "mix")]
    three = pd.concat([main.assign(scene=s, mse_m2=0.5) for s in ("munich", "etoile", "florence")])
    assert claims_verdicts(three).verdict.iloc[0].startswith("**reproduces**")
    assert claims_verdicts(three.assign(mse_m2=1.5)).verdict.iloc[0].startswith("**reproduces only per coordinate")


def test_routing_inspector_on_a_trained_checkpoint(smoke_results):
    import matplotlib
    matplotlib.use("Agg")
    from scadf_lib.widgets import (RoutingInspector, band_shift, expert_usage, layers, load_scene_model,
                                   modality_share, plot_sample, routing_of)
    root, _, _ = smoke_results
    sm = load_scene_model(str(root / "results" / "models" / "munich_scadf.pt"), str(root / "data" / "munich.nc"))
    assert layers(sm) == ["block0", "task"]
    r = routing_of(sm, np.arange(3))
    n = sm.model.cfg.n_experts
    share = modality_share(r["task_dispatch"], sm.model.tokenizer.modality_of_token, n)
    assert share.shape == (3, sm.model.cfg.trajectory_length + 1, n) and ((share >= 0) & (share <= 1)).all()
    usage = expert_usage(r["block0_combine"], n)
    np.testing.assert_allclose(usage.sum(-1), 1.0, rtol=1e-5)
    df = band_shift(sm, "task", max_trajectories=5)
    assert set(df["band (GHz)"]) == {"2.6", "6", "28"}
    fig = plot_sample(sm, 0, 28.0, "task", task=1)
    assert len(fig.axes) >= 4
    widget = RoutingInspector({"munich": sm}).widget()
    assert widget.children, "the ipywidgets controls are built"


def test_centroid_floor_is_the_mse_of_placing_points_at_their_true_centroid(tmp_path, synthetic_nc):
    from scadf_lib.training import centroid_floor
    from scadf_lib.schema import load_fingerprints
    from scadf_lib.trajectories import spatial_split

    shutil.copy(synthetic_nc, tmp_path / "munich.nc")
    from scadf_lib.training import TrainConfig
    cfg = TrainConfig(data_path=str(tmp_path / "munich.nc"), train_per_point=1.0, test_per_point=2.0)
    floor = centroid_floor({"munich": cfg})
    ds = load_fingerprints(tmp_path / "munich.nc")
    xy = np.stack([ds["x"].values, ds["y"].values], axis=1)
    split = spatial_split(xy, seed=0, train_per_point=1.0, test_per_point=2.0, val_fraction=cfg.val_points_fraction)
    pts = xy[split.test_traj]
    offsets = pts - pts.mean(axis=1, keepdims=True)
    assert floor["munich"] == pytest.approx(float((offsets ** 2).sum(-1).mean()))
    assert 0 < floor["munich"] < split.clustering.radius_m ** 2  # points lie within r of their cluster's anchor


def test_a_results_set_without_main_runs_gets_a_report_of_what_it_holds(smoke_results, tmp_path):
    from scadf_lib.report import write_report
    root, runs, _ = smoke_results
    only = [r for r in runs if r.study == "blocks"]
    collect(only, root / "work", tmp_path / "blocks")
    text = write_report(tmp_path / "blocks", "smoke").read_text()
    assert f"({len(only)} trained runs" in text and "No OOD run has finished" in text
    assert "Table II on our three scenes" not in text


def test_inspector_rebuilds_the_split_a_checkpoint_was_trained_on(synthetic_nc, tmp_path):
    """The routing inspector's test trajectories are those of the run, held-out blocks included."""
    from scadf_lib.training import TrainConfig, train
    from scadf_lib.widgets import load_scene_model

    cfg = TrainConfig(data_path=str(synthetic_nc), model="scadf", epochs=1, max_steps_per_epoch=2, holdout="blocks",
                      block_m=10.0, model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1})
    res = train(cfg, tmp_path / "run", progress=False)
    sm = load_scene_model(str(tmp_path / "run" / "best.pt"), str(synthetic_nc), max_trajectories=50)
    np.testing.assert_array_equal(sm.dataset.trajectories, res.data.split.test_traj[:50])
    assert res.data.split.holdout == "blocks"


def test_a_sweep_over_its_time_limit_resumes_with_the_same_command(tmp_path, synthetic_nc):
    """With a time limit no run starts late; the same call again finishes them, and every call is
    logged in sweeps.csv. The batch size sets the learning rate by the square-root rule."""
    from dataclasses import replace
    (tmp_path / "data").mkdir()
    shutil.copy(synthetic_nc, tmp_path / "data" / "munich.nc")
    runs = [r for r in plan("smoke", data_dir=str(tmp_path / "data"), scenes=("munich",), studies=("main",),
                            batch_size=256) if r.cfg.model in ("concat", "scadf") and r.cfg.regime == "mix"]
    assert runs and all(r.cfg.batch_size == 256 and r.cfg.lr == pytest.approx(2 * BASE_LR) for r in runs)
    runs = [replace(r, cfg=replace(r.cfg, model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1}))
            for r in runs]
    work, results = tmp_path / "work", tmp_path / "results"
    assert execute(runs, work, results, progress=False, time_limit_s=-1.0).empty  # nothing may start
    assert not (results / "all_metrics.csv").exists()
    metrics = execute(runs, work, results, progress=False, time_limit_s=3600.0)
    assert set(metrics.name) == {r.name for r in runs}
    log = pd.read_csv(results / "sweeps.csv")
    assert list(log.finished_before) == [0, 0] and list(log.finished_after) == [0, len(runs)]
    assert (log.batch_size == 256).all() and (log.wall_s >= 0).all()
    info = pd.read_csv(results / "runs.csv")
    assert (info.batch_size == 256).all() and np.isfinite(info.train_wall_s).all()


def test_a_paused_runs_wall_time_counts_every_call(tmp_path, synthetic_nc, monkeypatch):
    """A run paused by the time limit and finished by a later call records the wall time of both calls."""
    import json
    import time
    from dataclasses import replace
    from scadf_lib import experiments, runfolder
    from scadf_lib.training import Paused
    (tmp_path / "data").mkdir()
    shutil.copy(synthetic_nc, tmp_path / "data" / "munich.nc")
    run = next(r for r in plan("smoke", data_dir=str(tmp_path / "data"), scenes=("munich",), studies=("main",))
               if r.cfg.model == "concat" and r.cfg.regime == "mix")
    run = replace(run, cfg=replace(run.cfg, model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1}))
    real_train = experiments.train

    def slow_pause(*args, **kwargs):
        time.sleep(0.3)
        raise Paused("paused before epoch 1/1 (time limit)")

    monkeypatch.setattr(experiments, "train", slow_pause)
    work, results = tmp_path / "work", tmp_path / "results"
    assert experiments.run_one(run, work, results).endswith("(paused: time limit)")
    assert experiments.run_one(run, work, results).endswith("(paused: time limit)")
    paused = json.loads((work / run.name / runfolder.PAUSED_WALL).read_text())["wall_s"]
    assert 0.6 <= paused < 1.0
    monkeypatch.setattr(experiments, "train", real_train)
    t0 = time.perf_counter()
    experiments.run_one(run, work, results)
    last_call = time.perf_counter() - t0
    info = json.loads((work / run.name / "run.json").read_text())
    assert paused + last_call - 0.1 <= info["wall_s"] <= paused + last_call
    assert not (work / run.name / runfolder.PAUSED_WALL).exists()


def test_the_gpu_command_runs_end_to_end_and_packs_a_resumable_state(tmp_path, synthetic_nc):
    """bench/gpu_run.sh, the documented GPU command, driven on the CPU (ALLOW_CPU=1) with the smoke
    preset: it trains, reports, says "all done", and packs the finished runs' tables without checkpoints;
    without CUDA and without ALLOW_CPU it refuses with a clear message."""
    import os
    import subprocess
    import tarfile
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "data").mkdir()
    shutil.copy(synthetic_nc, tmp_path / "data" / "munich.nc")
    env = {**os.environ, "PYTHON": __import__("sys").executable, "ALLOW_CPU": "1", "BENCH": "0", "PRESET": "smoke",
           "SCENES": "munich", "METHODS": "concat scadf", "DATA_DIR": str(tmp_path / "data"), "WORK": str(tmp_path / "work"),
           "RESULTS": str(tmp_path / "results"), "JOBS": "1", "EPOCHS": "1", "TIME_LIMIT_MIN": "30", "PACK": str(tmp_path / "out"),
           "STUDIES": "main", "COMPILE": "none", "STACK": "4"}
    done = subprocess.run(["bash", str(root / "bench" / "gpu_run.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gpu_run: all done" in done.stdout
    assert (tmp_path / "results" / "REPORT.md").exists()
    log = pd.read_csv(tmp_path / "results" / "sweeps.csv")
    assert log.finished_after.iloc[-1] == log.runs.iloc[-1] == 4  # 2 methods x Mix/OOD
    assert (pd.read_csv(tmp_path / "results" / "runs.csv").stack_size == 2).all(), "each method's runs in one stack"
    with tarfile.open(tmp_path / "out" / "gpu_state.tgz") as tar:
        names = tar.getnames()
    assert any(n.endswith("metrics.csv") for n in names) and not any(n.endswith(".pt") for n in names)
    if not torch.cuda.is_available():
        env.pop("ALLOW_CPU")
        refused = subprocess.run(["bash", str(root / "bench" / "gpu_run.sh")], env=env, capture_output=True, text=True)
        assert refused.returncode == 2 and "no CUDA device" in refused.stderr


def test_report_points_to_the_gpu_result_set_or_to_the_command_that_makes_it(smoke_results, tmp_path):
    from scadf_lib.studies.cost import gpu_section
    root, runs, metrics = smoke_results
    missing = gpu_section(tmp_path / "flat")
    assert "Not produced yet" in missing and "bash bench/gpu_run.sh" in missing
    shutil.copytree(root / "results", tmp_path / "paper")
    found = gpu_section(tmp_path / "flat")
    n = len(pd.read_csv(root / "results" / "runs.csv"))
    assert f"{n} runs on cpu" in found and "| SCADF-MoE †" in found  # Table II, the smoke runs not flat


@pytest.fixture(scope="module")
def converged_results(tmp_path_factory, synthetic_nc):
    """The reference preset on synthetic data: two methods, three seeds, Mix, a short schedule whose
    floor is held for 4 more epochs."""
    from dataclasses import replace
    root = tmp_path_factory.mktemp("conv")
    (root / "data").mkdir()
    shutil.copy(synthetic_nc, root / "data" / "munich.nc")
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}
    runs = plan("flat", data_dir=str(root / "data"), scenes=("munich",), methods=("concat", "scadf"),
                studies=("main", "anchors"), regimes=("mix",))
    runs = [replace(r, cfg=replace(r.cfg, epochs=12, max_steps_per_epoch=2, model_overrides=small,
                                   schedule_epochs=None if r.study == "anchors" else 8)) for r in runs]
    execute(runs, root / "work", root / "results" / "flat", progress=False)
    return root, runs


def test_reference_preset_trains_to_its_rule_and_scores_the_anchors(converged_results):
    root, runs = converged_results
    assert {r.study for r in runs} == {"main", "anchors"}
    assert {(r.cfg.regime, r.tags["scene"]) for r in runs if r.study == "main"} == {("mix", "munich")}
    assert {r.cfg.regime for r in runs if r.study == "anchors"} == {"mix", "ood"}
    assert all(r.cfg.stop_min_gain == 0.02 for r in runs)
    res = root / "results" / "flat"
    table = pd.read_csv(res / "runs.csv")
    trained = table[table.study == "main"]
    assert len(trained) == 2 * 3 and {"flat", "epochs_trained", "stopped_early", "val_late_gain"} <= set(table)
    assert (trained.epochs_trained <= 12).all()
    assert (trained.min_lr_fraction == 0.01).all() and (trained.offset_anneal_fraction == 0.5).all()
    # a run the rule stopped is flat by the reported criterion
    assert trained[trained.stopped_early.astype(bool)]["flat"].astype(bool).all()
    curves = pd.read_csv(res / ResultSet.CURVES)
    assert set(curves.name) == set(trained.name) and (curves.val_mse_points_m2 > 0).all()
    assert (curves.groupby("name").size().values == trained.set_index("name").loc[
        sorted(curves.name.unique())].epochs_trained.values).all()
    metrics = pd.read_csv(res / "all_metrics.csv", dtype={"band": str})
    anchors = metrics[metrics.study == "anchors"]
    assert set(anchors.model) == {"geometric", "wknn", "wknn_cfr", "hybrid"} and set(anchors.regime) == {"mix", "ood"}
    geo = anchors[(anchors.model == "geometric") & (anchors.group == "held-out-LOS") & (anchors.band == "all")]
    assert (geo.mse_m2 < 1e-6).all()
    # where each run's held-out error sits, cached per run and consistent with its point errors
    iso = pd.read_csv(res / "isolation.csv")
    assert set(iso.name) == set(trained.name) and (iso.isolated <= iso.points).all()
    for r in iso.itertuples():
        pe = pd.read_csv(root / "work" / r.name / "point_errors.csv")
        assert r.points == int(pe.held_out.sum()) and r.mse_m2 == pytest.approx(pe.sq_error_m2[pe.held_out].mean())
        assert (root / "work" / r.name / "isolation.json").exists()


def test_the_report_leads_with_the_summary_table_ii_the_claims_ood_and_ablations_then_the_checks(converged_results,
                                                                                                    tmp_path):
    from scadf_lib.plots import save_learning_curves
    from scadf_lib.report import write_report
    root, _ = converged_results
    shutil.copytree(root / "results" / "flat", tmp_path / "results" / "flat")
    assert save_learning_curves(tmp_path / "results" / "flat").exists()
    path = write_report(tmp_path / "results" / "flat")
    assert path == tmp_path / "results" / "REPORT.md"  # the reference set's report is results/REPORT.md
    text = path.read_text()
    order = ["## In short", "## Table II on our three scenes", "## The paper's claims", "## OOD", "## Ablations",
             "# Appendix", "Runs in this report against the plan", "## D. How each run's curve ended", "## K. Anchors"]
    assert [text.index(h) for h in order] == sorted(text.index(h) for h in order)
    assert "Table II Mix, munich | 15 | 6 |" in text and "Table II Mix, munich 6 of 15" in text
    lead = text.split("# Appendix")[0]
    assert "WKNN (numeric)" in lead and "| geometric (closed form) |" not in lead and "centroid reference" in lead
    assert "geometric (closed form)" in text  # in the appendix's anchor table
    assert "AMDNLoc" in text and "per coord." in text
    assert "learning_curves.png" in text and "Where the held-out error sits" in text
    assert "No ablation run has finished" in text and "No OOD run has finished" in text


def test_a_finished_run_trains_on_at_the_floor_when_its_preset_raises_the_budget(tmp_path, synthetic_nc):
    """A preset that holds the floor for longer (``max_epoch_factor``) continues its finished shorter runs
    from their last.pt instead of skipping or restarting them: the run trains its extra epoch, its
    stale corrupted-input scores go, its wall time adds up, and runs.csv states the schedule."""
    import json
    from dataclasses import replace
    (tmp_path / "data").mkdir()
    shutil.copy(synthetic_nc, tmp_path / "data" / "munich.nc")
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}
    runs = [replace(r, cfg=replace(r.cfg, model_overrides=small, max_steps_per_epoch=2))
            for r in plan("smoke", data_dir=str(tmp_path / "data"), scenes=("munich",), studies=("main",))
            if r.cfg.model == "concat" and r.cfg.regime == "mix"]
    work, results = tmp_path / "work", tmp_path / "results"
    execute(runs, work, results, progress=False)
    run_dir = work / runs[0].name
    first = json.loads((run_dir / "run.json").read_text())
    (run_dir / "degradation.csv").write_text("stale\n")
    longer = [replace(r, cfg=replace(r.cfg, schedule_epochs=r.cfg.epochs, epochs=2 * r.cfg.epochs)) for r in runs]
    execute(longer, work, results, progress=False)
    info = json.loads((run_dir / "run.json").read_text())
    assert first["epochs_trained"] == 1 and info["epochs_trained"] == 2 and info["epochs"] == 2
    assert info["wall_s"] > first["wall_s"] and not (run_dir / "degradation.csv").exists()
    assert len(pd.read_csv(run_dir / "history.csv")) == 2
    table = pd.read_csv(results / "runs.csv")
    assert (table.schedule_epochs == 1).all() and (table.epochs_trained == 2).all()
    execute(longer, work, results, progress=False)  # now finished: skipped
    assert pd.read_csv(results / "sweeps.csv").finished_before.iloc[-1] == len(longer)


def test_schedule_text_states_a_held_floor_only_where_the_runs_have_one():
    from scadf_lib.studies.budget import schedule_text
    runs = pd.DataFrame({"model": ["concat", "scadf"], "epochs": [160, 80], "steps_trained": [16320, 9000],
                         "min_lr_fraction": 0.01, "decay_fraction": 0.6, "offset_anneal_fraction": 0.5,
                         "batch_size": 64, "lr": 0.003, "offset_weight": 100.0, "schedule_epochs": float("nan")})
    plain = schedule_text(runs)
    assert "at most Concat 160, SCADF-MoE 80 epochs" in plain and "at 60 % of the budget" in plain
    assert "schedule spans" not in plain and "batch 64, AdamW lr 0.003" in plain
    held = schedule_text(runs.assign(schedule_epochs=[80, 40]))
    assert "the schedule spans Concat 80, SCADF-MoE 40 epochs" in held and "at 60 % of the schedule" in held
    assert "1 % of the peak lr" in held and "16,320 steps" in held


@pytest.mark.skipif(not v1_available(), reason="data version 1 is not here: `python -m scadf_lib.dataversions restore 1`")
def test_a_run_started_today_reproduces_the_first_epoch_of_a_committed_reference_run(tmp_path, monkeypatch):
    """The reference set's protocol is unchanged: munich Mix Concat seed 0, planned by today's driver
    and trained for one epoch, gives the committed curve's first epoch (results/flat/curves.csv.gz)."""
    from pathlib import Path

    import scadf_lib.training as training
    from scadf_lib.fileio import project_path
    curves = pd.read_csv(project_path("results/flat/curves.csv.gz"))
    committed = curves[(curves.name == "main_munich_mix_concat_s0") & (curves.epoch == 1)].iloc[0]
    run = next(r for r in plan("flat") if r.name == "main_munich_mix_concat_s0")
    assert run.cfg.data_path == f"{REFERENCE_DATA_DIR}/munich.nc", "the reference set trains on its data version"
    monkeypatch.setattr(training, "should_stop", lambda val, cfg, steps: len(val) >= 1)  # one epoch, then score
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the sweep trains (one thread per run)
    try:
        res = training.train(run.cfg, Path(tmp_path) / run.name, progress=False)
    finally:
        torch.set_num_threads(threads)
    first = res.history.iloc[0]
    for col in ("step", "lr", "offset_weight", "train_localisation", "val_localisation", "val_mse_points_m2"):
        assert first[col] == pytest.approx(committed[col], rel=1e-4), col


def test_a_parked_run_resumes_on_a_fresh_clone_as_if_never_interrupted(tmp_path, synthetic_nc, monkeypatch):
    """park_unfinished / restore_parked: the state of a run stopped after its first epoch travels through
    results/inflight/ to an empty work folder and the run ends as an uninterrupted one does."""
    from dataclasses import replace

    import scadf_lib.training as training
    from scadf_lib.experiments import run_one
    from scadf_lib.planning import Run
    from scadf_lib.runfolder import PARKED, park_unfinished, restore_parked, sweep_status
    from scadf_lib.training import TrainConfig
    cfg = TrainConfig(data_path=str(synthetic_nc), model="concat", epochs=3, max_steps_per_epoch=3,
                      model_overrides={"d_model": 16})
    run = Run("main_synthetic_mix_concat_s0", "main", cfg, {"scene": "synthetic", "variant": "concat"})
    whole = training.train(cfg, tmp_path / "whole", progress=False)
    with monkeypatch.context() as m:  # a run interrupted after its first epoch: last.pt holds epoch 1
        m.setattr(training, "should_stop", lambda val, c, steps: len(val) >= 1)
        training.train(cfg, tmp_path / "work" / run.name, progress=False)
    for f in ("metrics.csv", "config.json", "history.csv", "point_errors.csv"):
        (tmp_path / "work" / run.name / f).unlink(missing_ok=True)
    results = tmp_path / "results"
    other = replace(run, name="main_synthetic_mix_concat_s1")
    status = sweep_status([run, other], tmp_path / "work", results).set_index("run")
    assert list(status.state) == ["started", "waiting"] and status.loc[run.name, "epochs"] == 1
    assert park_unfinished([run], tmp_path / "work", results) == [run.name]
    status = sweep_status([run], tmp_path / "clone", results).set_index("run")  # a fresh clone: parked
    assert status.loc[run.name, "state"] == "parked" and status.loc[run.name, "max_epochs"] == 3
    assert restore_parked([run], tmp_path / "clone", results) == [run.name]  # a fresh clone's empty runs/
    run_one(replace(run), tmp_path / "clone", results)
    assert list(sweep_status([run], tmp_path / "clone", results).state) == ["done"]
    resumed = pd.read_csv(tmp_path / "clone" / run.name / "history.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns=["elapsed_s", "trajectories_per_s"]),
                                  whole.history.drop(columns=["elapsed_s", "trajectories_per_s"]), check_exact=False,
                                  rtol=1e-6)
    park_unfinished([run], tmp_path / "clone", results)  # finished now: its parked state goes
    assert not (results / PARKED).exists()


def test_todays_plan_gives_every_committed_reference_run_the_settings_it_was_trained_with():
    """A refactor cannot change what the resumable sweep trains: each committed run of the reference
    set, planned today, has the recorded schedule, budget, split and model settings."""
    from scadf_lib.fileio import project_path
    committed = pd.read_csv(project_path("results/flat/runs.csv")).set_index("name")
    planned = {r.name: r for r in plan("flat")}
    assert set(committed.index) <= set(planned), "a committed run the plan no longer holds"
    columns = ("model", "regime", "seed", "epochs", "schedule_epochs", "lr", "decay_fraction", "min_lr_fraction",
               "offset_anneal_fraction", "offset_weight", "warmup_fraction", "train_per_point", "batch_size",
               "stop_min_gain", "stop_patience", "val_points_fraction")
    for name, row in committed[committed.study != "anchors"].iterrows():
        cfg = planned[name].cfg
        for col in columns:
            want, got = row[col], getattr(cfg, col)
            assert (pd.isna(want) and got is None) or want == got or str(want) == str(got), (name, col, want, got)


def test_a_checkpoint_never_shipped_is_rebuilt_only_where_the_retrained_run_reproduces_its_committed_results(
        smoke_results, tmp_path):
    """A committed run whose weights were never shipped (a fresh clone: no run folder) is retrained
    from scratch; its weights ship when its curve and test MSEs equal the committed ones, and the
    comparison is kept in rebuilds.csv. A committed curve the retraining does not give ships nothing."""
    from scadf_lib.rebuild import missing_checkpoints, rebuild_checkpoints
    from scadf_lib.runfolder import ships_checkpoint
    root, runs, _ = smoke_results
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    target = next(r for r in runs if ships_checkpoint(r) and r.cfg.model == "softmoe")
    shipped = results / "models" / f"{target.name}.pt"
    original = torch.load(shipped, weights_only=True)
    assert missing_checkpoints(runs, results) == []
    shipped.unlink()
    assert [r.name for r in missing_checkpoints(runs, results)] == [target.name]
    table = rebuild_checkpoints(runs, tmp_path / "work", results, progress=False).set_index("name")
    assert bool(table.loc[target.name, "reproduced"]) and table.loc[target.name, "metrics_max_rel_diff"] == 0.0
    rebuilt = torch.load(shipped, weights_only=True)
    assert rebuilt["model"].keys() == original["model"].keys()
    assert all(torch.equal(rebuilt["model"][k], original["model"][k]) for k in original["model"])
    assert missing_checkpoints(runs, results) == []  # nothing left to rebuild: a second call trains nothing
    assert list(pd.read_csv(results / "rebuilds.csv").name) == [target.name]

    shipped.unlink()  # the committed curve says otherwise: the retrained weights are not shipped
    curves = pd.read_csv(results / ResultSet.CURVES)
    curves.loc[curves.name == target.name, "val_localisation"] *= 1.001
    write_csv_atomic(curves, results / ResultSet.CURVES)
    table = rebuild_checkpoints(runs, tmp_path / "work", results, progress=False).set_index("name")
    assert not bool(table.loc[target.name, "reproduced"])
    assert table.loc[target.name, "curve_max_rel_diff"] == pytest.approx(0.001 / 1.001, rel=1e-3)
    assert table.loc[target.name, "first_epoch_val_rel_diff"] == pytest.approx(0.001 / 1.001, rel=1e-3)
    assert table.loc[target.name, "first_epoch_train_rel_diff"] == 0.0
    assert table.loc[target.name, "held_out_mse_m2_retrained"] == table.loc[target.name, "held_out_mse_m2_committed"]
    assert not shipped.exists() and len(table) == 1  # another sample: never under the committed run's name
    retrained = results / "models" / f"{target.name}_retrained.pt"
    assert torch.equal(next(iter(torch.load(retrained, weights_only=True)["model"].values())),
                       next(iter(original["model"].values())))  # (here it is the same run: the curve was edited)
    retrained.unlink()
    shutil.rmtree(tmp_path / "work" / "rebuild")  # a fresh machine of the same kind does not try again
    rebuild_checkpoints(runs, tmp_path / "work", results, progress=False)
    assert not (tmp_path / "work" / "rebuild" / target.name).exists()
    from scadf_lib.studies.budget import reproduction_text
    text = reproduction_text(results)
    assert "1 committed run(s) retrained" in text and "0 gave their committed" in text
    assert "never as the committed run): " + f"{target.name} (first epoch: training loss 0, validation error 0.001" in text

    runs_csv = pd.read_csv(results / "runs.csv")  # trained on another kind of CPU: not even tried
    assert (runs_csv.cpu_capability == torch.backends.cpu.get_cpu_capability()).all()
    runs_csv.loc[runs_csv.name == target.name, "cpu_capability"] = "AVX9000"
    runs_csv.to_csv(results / "runs.csv", index=False)
    shutil.rmtree(tmp_path / "work")
    rebuild_checkpoints(runs, tmp_path / "work", results, progress=False)
    assert not (tmp_path / "work" / "rebuild" / target.name).exists() and not shipped.exists()
    assert not retrained.exists()


def test_only_the_reference_set_falls_back_to_the_projects_shipped_models(tmp_path):
    """The inspector's ``results/models/<scene>_scadf.pt`` stands for the reference set's SCADF-MoE seed 0
    (the rebuild and the track study look there), never for another result set's run."""
    from scadf_lib.checkpoints import committed_model_folders, is_reference_set
    from scadf_lib.fileio import project_path
    reference = project_path(f"results/{REFERENCE_SET}")
    assert is_reference_set(reference) and not is_reference_set(tmp_path / REFERENCE_SET)
    assert committed_model_folders(reference) == [reference / "models", project_path("results/models")]
    assert committed_model_folders(tmp_path / "other") == [tmp_path / "other" / "models"]


def test_the_reference_sweep_ships_seed_0_checkpoints_of_the_track_studys_models_only():
    from scadf_lib.runfolder import ships_checkpoint
    shipped = {r.name for r in plan("flat") if ships_checkpoint(r)}
    assert shipped == {f"main_{sc}_mix_{m}_s0" for sc in ("munich", "etoile", "florence") for m in ("scadf", "softmoe")} \
        | {"spatial_munich_mix_nospace_s0"}


def test_the_no_mmd_ablation_is_the_sensitivity_studys_lambda_0_run(tmp_path, synthetic_nc):
    """Why the reference plan trains λ = 0 once: the planned configurations differ only in how they
    name the model, and the two train to identical histories and metrics."""
    from dataclasses import asdict, replace

    from scadf_lib.training import train
    ablation = next(r for r in plan("flat") if r.name == "ablation_munich_mix_scadf_no_mmd_s0").cfg
    sens = next(r for r in plan("flat", studies=("sensitivity",)) if r.name == "sens_lambda0.0").cfg
    a, s = asdict(ablation), asdict(sens)
    assert {k for k in a if a[k] != s[k]} == {"model", "model_overrides"}
    small = dict(data_path=str(synthetic_nc), epochs=2, schedule_epochs=2, max_steps_per_epoch=4)
    runs = {}
    for name, cfg in (("ablation", ablation), ("sens", sens)):
        cfg = replace(cfg, **small, model_overrides={**cfg.model_overrides, "d_model": 16, "n_blocks": 1})
        runs[name] = train(cfg, tmp_path / name, progress=False)
    timing = ["elapsed_s", "trajectories_per_s"]
    pd.testing.assert_frame_equal(runs["ablation"].history.drop(columns=timing),
                                  runs["sens"].history.drop(columns=timing), check_exact=True)
    pd.testing.assert_frame_equal(runs["ablation"].metrics, runs["sens"].metrics, check_exact=True)


def test_the_measured_study_plans_oracle_and_measured_pairs_then_the_link_sweeps():
    runs = plan("measured")
    names = [r.name for r in runs]
    assert len(runs) == len(set(names)) == 5 * 2 * 3 + 2 * (3 + 3) + 3 * (3 + 4)
    anchors = [r for r in runs if r.study == "anchors"]
    assert {r.tags["variant"] for r in anchors if r.cfg.inputs == "measured"} == {"geometric", "geometric_true_side",
                                                                                 "wknn", "wknn_cfr"}
    runs = [r for r in runs if r.study == "measured"]
    names = [r.name for r in runs]
    assert names[:4] == ["meas_munich_mix_scadf_oracle_s0", "meas_munich_mix_scadf_measured_s0",
                         "meas_munich_mix_softmoe_oracle_s0", "meas_munich_mix_softmoe_measured_s0"]
    assert all(r.cfg.data_path == "data/munich.nc" for r in runs + anchors)  # data version 2
    by_name = {r.name: r.cfg for r in runs}
    assert by_name["meas_munich_mix_scadf_tx-20dB_s0"].measurement == {"tx_power_dbm": 3.0}
    assert by_name["meas_munich_mix_softmoe_timing50ns_s0"].measurement == {"timing_offset_std_ns": 50.0}
    assert {c.inputs for n, c in by_name.items() if "oracle" not in n} == {"measured"}
    assert not any(r.study == "measured" for r in plan("paper")), "opt-in: only a preset that names it"


def test_the_driver_trains_and_collects_a_measured_input_pair(tmp_path):
    from dataclasses import replace

    from scadf_lib.schema import save_fingerprints
    from synthetic import synthetic_fingerprints
    save_fingerprints(synthetic_fingerprints(n_side=12, with_paths=True), tmp_path / "munich.nc")
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}
    wanted = {"meas_munich_mix_scadf_oracle_s0", "meas_munich_mix_scadf_measured_s0",
              "anchor_munich_mix_wknn_measured_s0", "anchor_munich_mix_wknn_cfr_measured_s0"}
    runs = [replace(r, cfg=replace(r.cfg, data_path=str(tmp_path / "munich.nc"), epochs=1, schedule_epochs=None,
                                   max_steps_per_epoch=3, stop_min_gain=None, model_overrides=small))
            for r in plan("measured") if r.name in wanted]
    execute(runs, tmp_path / "work", tmp_path / "results", progress=False)
    table = pd.read_csv(tmp_path / "results" / "runs.csv").set_index("name")
    assert table.loc["meas_munich_mix_scadf_oracle_s0", "inputs"] == "oracle"
    assert table.loc["meas_munich_mix_scadf_measured_s0", "inputs"] == "measured"
    metrics = pd.read_csv(tmp_path / "results" / "all_metrics.csv")
    assert wanted <= set(metrics.name), "the anchors score measured inputs too (WKNN on the estimated features)"


def test_a_table_written_again_unchanged_is_the_same_bytes_and_a_failed_write_keeps_the_old_one(tmp_path):
    """Collected .csv.gz tables carry no time stamp or temporary file name in their gzip header, so a
    sweep that collects an unchanged table again leaves git clean; a write that fails loses nothing."""
    import time
    from scadf_lib.fileio import write_csv_atomic
    table = pd.DataFrame({"name": ["a", "b"], "mse_m2": [0.5, 20.25]})
    write_csv_atomic(table, tmp_path / "t.csv.gz")
    first = (tmp_path / "t.csv.gz").read_bytes()
    time.sleep(1.1)  # gzip's header time stamp has a resolution of a second
    write_csv_atomic(table, tmp_path / "t.csv.gz")
    write_csv_atomic(table, tmp_path / "u.csv.gz")
    assert (tmp_path / "t.csv.gz").read_bytes() == first == (tmp_path / "u.csv.gz").read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv.gz"), table)

    class Broken(pd.DataFrame):
        def to_csv(self, *a, **k):
            raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        write_csv_atomic(Broken(table), tmp_path / "t.csv.gz")
    assert (tmp_path / "t.csv.gz").read_bytes() == first and len(list(tmp_path.iterdir())) == 2
