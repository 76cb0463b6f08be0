"""Where nobody surveyed: thinned surveys, validation blocks, the block design facts, the study's plan,
its driver outputs and its report tables."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from scadf_lib.clustering import cluster_points
from scadf_lib.planning import plan
from scadf_lib.survey import distance_to_survey, open_width, survey_facts, survey_mask, thin_survey
from scadf_lib.trajectories import make_block_split, make_split


def grid(n: int = 40, spacing: float = 1.0, hole: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """An exact n x n grid (m), less the cells of ``hole`` (x0, x1, y0, y1 in grid steps): a building."""
    g = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    if hole:
        x0, x1, y0, y1 = hole
        g = g[~((g[:, 0] >= x0) & (g[:, 0] < x1) & (g[:, 1] >= y0) & (g[:, 1] < y1))]
    return g * spacing + 3.0


@pytest.fixture(scope="module")
def point_split():
    xy = grid(40)
    return xy, make_split(cluster_points(xy, None, 8), 5, train_per_point=1.0, test_per_point=1.0, seed=0,
                          val_fraction=0.1)


def test_a_grid_survey_keeps_every_kth_point_and_scores_the_same_test(point_split):
    xy, full = point_split
    thin = thin_survey(full, xy, grid_step=2, seed=0)
    trained = np.unique(thin.train_traj)
    steps = np.round((xy[trained] - xy.min(0))).astype(int)
    assert (steps % 2 == 0).all()  # only 2 m grid points are trained on
    assert set(trained) <= set(np.unique(full.train_traj))  # never a held-out or validation point
    # the test trajectories and held-out flags are those of the full survey: the same points are scored
    assert np.array_equal(thin.test_traj, full.test_traj) and np.array_equal(thin.unseen, full.unseen)
    # validation is thinned like training: the best epoch is chosen on the operator's own survey
    val_steps = np.round((xy[np.unique(thin.val_traj)] - xy.min(0))).astype(int)
    assert (val_steps % 2 == 0).all() and set(thin.val_points) <= set(full.val_points)
    assert len(thin.val_points) + thin.report["val_points_unused"] == survey_mask(xy, full.val_points, 2).sum()
    assert set(np.unique(thin.val_traj)) <= set(thin.val_points) | set(trained)  # context: surveyed points only
    assert all(set(row) & set(thin.val_points) for row in thin.val_traj.tolist())  # each row validates a point
    # as many training rows as the full survey (an epoch keeps its steps), within rounding per cluster
    assert abs(len(thin.train_traj) - len(full.train_traj)) <= thin.clustering.num_clusters
    # re-clustered with the radius scaled by the spacing: a row's points lie within 2 r_s of each other
    r = thin.report["survey_radius_m"]
    assert r == pytest.approx(2 * full.clustering.radius_m)
    span = np.linalg.norm(xy[thin.train_traj][:, :, None] - xy[thin.train_traj][:, None], axis=-1).max()
    assert span <= 2 * r + 1e-9
    assert thin.report["surveyed_points"] == int(survey_mask(xy, np.unique(full.train_traj), 2).sum())


def test_a_random_share_keeps_that_share_and_bad_surveys_fail_early(point_split):
    xy, full = point_split
    pool = np.unique(full.train_traj)
    assert survey_mask(xy, pool, share=0.25, seed=0).sum() == round(0.25 * len(pool))
    assert not np.array_equal(survey_mask(xy, pool, share=0.25, seed=0), survey_mask(xy, pool, share=0.25, seed=1))
    assert thin_survey(full, xy) is full  # nothing thinned: the split itself
    with pytest.raises(ValueError, match="not both"):
        survey_mask(xy, pool, grid_step=2, share=0.5)
    with pytest.raises(ValueError, match="share must be in"):
        thin_survey(full, xy, share=0.0)
    with pytest.raises(ValueError, match="survey more densely"):
        thin_survey(full, xy, grid_step=40)
    from scadf_lib.config import TrainConfig
    with pytest.raises(ValueError, match="holdout='points'"):
        TrainConfig(holdout="blocks", survey_share=0.5)


def test_validation_blocks_are_whole_unsurveyed_squares_apart_from_the_test_blocks():
    xy = grid(60)
    clustering = cluster_points(xy, None, 8)
    r = clustering.radius_m
    split = make_block_split(clustering, xy, 5, block_m=10.0, train_per_point=1.0, test_per_point=1.0, seed=0,
                             val_fraction=0.1)
    plain = make_block_split(clustering, xy, 5, block_m=10.0, train_per_point=1.0, test_per_point=1.0, seed=0)
    assert np.array_equal(split.test_points, plain.test_points)  # validation blocks do not move the test blocks
    val = split.val_points
    assert len(val) >= 0.08 * len(xy) and not set(val) & set(split.test_points)
    cells = {tuple(c) for c in np.floor((xy[val] - xy.min(0)) / 10.0).astype(int)}
    in_cells = np.array([tuple(c) in cells for c in np.floor((xy - xy.min(0)) / 10.0).astype(int)])
    # whole squares: every validation point's square is a validation square, and its points are validation
    # points but for the few in clusters too small for a trajectory
    assert set(val) <= set(np.flatnonzero(in_cells)) and len(val) >= 0.9 * in_cells.sum()
    assert not set(np.flatnonzero(in_cells)) & set(np.unique(split.train_traj))
    assert set(np.unique(split.val_traj)) == set(val)  # validation trajectories hold validation points only
    trained = np.unique(split.train_traj)
    assert cKDTree(xy[trained]).query(xy[np.r_[val, split.test_points]])[0].min() > r  # the guard band
    assert split.report["val_blocks"] == len(cells)
    assert plain.report["val_points"] == 0


def test_open_width_measures_streets_and_the_block_facts_tell_blocks_from_points():
    # a 40 m square with a 30 x 30 building in it: 5 m wide streets around it
    xy = grid(40, hole=(5, 35, 5, 35))
    width = open_width(xy)
    mid_street = (np.abs(xy[:, 0] - 3.0 - 20) < 1) & (xy[:, 1] < 3.0 + 5)
    assert np.all(width[mid_street] == 5.0)
    xy = grid(60)
    clustering = cluster_points(xy, None, 8)
    blocks = make_block_split(clustering, xy, 5, block_m=12.0, train_per_point=1.0, test_per_point=1.0, seed=0,
                              val_fraction=0.1)
    points = make_split(clustering, 5, train_per_point=1.0, test_per_point=1.0, seed=0, val_fraction=0.1)
    fb, fp = survey_facts(xy, blocks), survey_facts(xy, points)
    assert fp["held_out_distance_median_m"] == pytest.approx(1.0)  # a neighbour one grid step away
    assert fb["held_out_distance_median_m"] > clustering.radius_m  # beyond the guard band
    assert fb["blocks"] == 25 and fb["open_width_median_m"] == 60.0 and "blocks" not in fp
    held = np.intersect1d(np.flatnonzero(blocks.unseen), blocks.test_points)
    assert distance_to_survey(xy, blocks)[held].max() == pytest.approx(fb["held_out_distance_max_m"])


def test_the_study_plans_blocks_and_densities_on_the_baselines_split_and_protocol():
    runs = plan("unsurveyed")
    by = {r.name: r for r in runs}
    assert len(by) == len(runs)
    blocks = [r for r in runs if r.study == "blocks"]
    assert len(blocks) == 5 * 3 and all(r.cfg.holdout == "blocks" and r.cfg.block_m == 20.0 for r in blocks)
    block_anchors = [r for r in runs if r.study == "anchors" and r.tags["split"] == "blocks"]
    assert {r.tags["variant"] for r in block_anchors} == {"geometric", "wknn", "wknn_cfr", "hybrid"}
    assert len(block_anchors) == 4 * 3
    density = [r for r in runs if r.study == "density"]
    assert len(density) == 2 * 4 * 2 and {r.cfg.model for r in density} == {"scadf", "softmoe"}
    assert {r.cfg.seed for r in density} == {0, 1}
    later = [r.tags["survey"] for r in density if r.cfg.seed == 1]  # after the first seed: sparsest surveys first
    assert later[:2] == ["grid4", "grid4"] and later[-1] == "random25"
    # each density run is the baseline's oracle run (the measured-input study) with a thinner survey
    base = {r.name: r for r in plan("measured")}
    for r in density:
        ref = base[f"meas_munich_mix_{r.cfg.model}_oracle_s{r.cfg.seed}"]
        assert replace(r.cfg, survey_grid_step=1, survey_share=1.0) == ref.cfg
    for r in blocks:  # and each block run the baseline's with the block split
        ref = base[f"meas_munich_mix_{r.cfg.model}_oracle_s{r.cfg.seed}"]
        assert replace(r.cfg, holdout="points", block_m=ref.cfg.block_m) == ref.cfg
    # the question's pair first
    assert [r.cfg.model for r in blocks[:2]] == ["scadf", "softmoe"]


@pytest.fixture(scope="module")
def study_set(tmp_path_factory):
    """The study's seed-0 runs of SCADF-MoE and SoftMoE on the synthetic scene (with stored paths, as
    the baseline's SCADF-MoE run measures its routing against the link), a few steps each, and a
    baseline set with the oracle point-split runs they are compared with."""
    from scadf_lib.experiments import execute
    from scadf_lib.schema import save_fingerprints
    from synthetic import synthetic_fingerprints
    root = tmp_path_factory.mktemp("unsurveyed")
    (root / "data").mkdir()
    save_fingerprints(synthetic_fingerprints(n_side=16, spacing_m=2.0, seed=0, with_paths=True),
                      root / "data" / "munich.nc")
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}

    def shrink(r):
        cfg = replace(r.cfg, model_overrides={} if r.study == "anchors" else small, epochs=1, schedule_epochs=None,
                      max_steps_per_epoch=2, block_m=8.0)
        return replace(r, cfg=cfg)
    keep = ("blocks", "full", "random25")  # the jittered synthetic grid has no exact grid to thin
    runs = [shrink(r) for r in plan("unsurveyed", data_dir=str(root / "data"), methods=("scadf", "softmoe"))
            if r.cfg.seed == 0 and (r.tags.get("survey") or r.tags["split"]) in keep]
    base = [shrink(r) for r in plan("measured", data_dir=str(root / "data"), methods=("scadf", "softmoe"))
            if r.cfg.seed == 0 and r.tags.get("inputs") == "oracle" and "param" not in r.tags
            and r.tags["variant"] in ("scadf", "softmoe", "wknn")]
    execute(base, root / "work_base", root / "results" / "measured", progress=False)
    execute(runs, root / "work", root / "results" / "unsurveyed", progress=False)
    return root, runs, base


def test_every_run_of_the_study_keeps_its_held_out_errors_and_block_tracks_are_scored(study_set):
    root, runs, base = study_set
    res, res_base = root / "results" / "unsurveyed", root / "results" / "measured"
    for r in runs:
        e = pd.read_csv(res / "errors" / f"{r.name}.csv.gz")
        assert len(e) and {"band_ghz", "ue", "los", "appearances", "sq_error_m2"} == set(e.columns)
        point = pd.read_csv(root / "work" / r.name / "point_errors.csv")
        assert len(e) == int(point.held_out.sum())  # held-out points only
    for r in base:  # the baseline's oracle runs keep theirs too (the driver backfills finished ones)
        assert (res_base / "errors" / f"{r.name}.csv.gz").exists()
    tracks = pd.read_csv(res / "tracks.csv")
    assert {"SCADF-MoE", "SoftMoE", "WKNN", "centroid floor"} <= set(tracks.method) and set(tracks.seed) == {0}
    info = pd.read_csv(res / "runs.csv").set_index("name")
    blocks = info.loc["blocks_munich_mix_scadf_s0"]
    assert blocks.held_out_distance_median_m > blocks.radius_m and blocks.val_blocks >= 1
    thin = info.loc["density_munich_mix_scadf_random25_s0"]
    assert thin.surveyed_points == pytest.approx(0.25 * info.loc["anchor_munich_mix_wknn_full_s0"].train_points, abs=1)
    assert 0 < thin.val_points < info.loc["anchor_munich_mix_wknn_full_s0"].val_points  # the survey's own validation


def test_the_report_section_compares_blocks_with_points_and_draws_the_density_curve(study_set):
    from scadf_lib.plots import save_unsurveyed_figures
    from scadf_lib.studies.resultset import ResultSet
    from scadf_lib.studies.unsurveyed import unsurveyed_readme_lines, unsurveyed_section
    root, _, _ = study_set
    res = root / "results" / "unsurveyed"
    written = save_unsurveyed_figures(res)
    assert {p.name for p in written} == {ResultSet.UNSURVEYED_CDF, ResultSet.SURVEY_DENSITY, ResultSet.ERROR_VS_DISTANCE}
    text = unsurveyed_section(res)
    assert "## Where nobody surveyed" in text and "| SCADF-MoE |" in text and "random 25 %" in text
    assert "](error_cdf_blocks.png)" in text and "](survey_density.png)" in text
    assert "| validation points |" in text and "chosen on the thinned survey's own validation points" in text
    assert "Walked tracks that start at an unsurveyed point" in text
    assert "by the point's distance to the nearest surveyed point" in text and "](error_vs_distance.png)" in text
    # the nearest surveyed point, an oracle: its MSE is the held-out points' mean squared distance to the survey
    runs = pd.read_csv(res / "runs.csv").set_index("name")
    ms = runs.loc["anchor_munich_blocks_wknn_s0", "held_out_distance_ms_m2"]
    assert f"| nearest surveyed point (oracle) | " in text and f"| {ms:.2f} |" in text
    from scadf_lib.studies.unsurveyed import unsurveyed_headline
    assert unsurveyed_headline(res).startswith("In unsurveyed 20 m blocks of munich SCADF-MoE's held-out MSE is")
    line = unsurveyed_readme_lines(res)[0]
    assert "SCADF-MoE" in line and "→" in line


def test_the_measured_studys_figures_are_drawn_for_its_set_only_and_shown_by_its_section(study_set):
    """The baseline set here is the measured-input study's (its oracle runs): the error CDFs and the
    accuracy against the link are drawn from its kept errors and SNR map; the unsurveyed set gets none."""
    from scadf_lib.plots import accuracy_vs_snr, save_measured_figures
    from scadf_lib.studies.measured import held_out_by_snr, measured_section
    from scadf_lib.studies.resultset import ResultSet
    root, _, _ = study_set
    res_base = root / "results" / "measured"
    written = save_measured_figures(res_base)
    assert {p.name for p in written} == {ResultSet.MEASURED_CDF, ResultSet.ACCURACY_VS_SNR}
    assert save_measured_figures(root / "results" / "unsurveyed") == []
    text = measured_section(res_base)
    assert "](error_cdf_measured.png)" in text and "](accuracy_vs_snr.png)" in text
    table = held_out_by_snr(ResultSet(res_base))
    ax = accuracy_vs_snr(table).axes[0]
    assert ax.get_ylabel() == "held-out MSE (m²)" and "SNR" in ax.get_xlabel() and len(ax.lines) == len(table)


def test_block_table_pairs_seeds_and_reads_the_centroid_reference():
    from scadf_lib.studies.unsurveyed import blocks_table, density_table
    rows = []
    for split, scale in (("points", 1.0), ("blocks", 8.0)):
        for seed in (0, 1, 2):
            for model, mse in (("scadf", 1.0 + seed), ("softmoe", 2.0)):
                rows.append({"split": split, "survey": "full", "model": model, "seed": seed, "group": "held-out",
                             "mse_m2": mse * scale, "median_m": 1.0, "p90_m": 2.0, "offset_floor_m2": 0.5 * scale,
                             "name": f"{split}_{model}_s{seed}"})
                for group, share in (("held-out-LOS", 0.1), ("held-out-NLOS", 3.0)):
                    rows.append({**rows[-1], "group": group, "mse_m2": mse * (scale if group.endswith("NLOS") else 1)
                                 * share})
    rows = pd.DataFrame(rows)
    flat = pd.Series({n: not n.endswith("s2") for n in rows.name})
    t = blocks_table(rows, flat).set_index("method")
    assert t.loc["SCADF-MoE", "blocks / points"].startswith("8.00×")  # every seed 8x: the ratio is exact
    assert t.loc["SCADF-MoE", "blocks, per seed"] == "8.00 / 16.00 / 24.00"
    assert t.loc["SoftMoE", "runs not flat"] == "1"
    assert t.loc["centroid reference (oracle)", "blocks (m²)"].startswith("4.00")
    # LOS / NLOS, means over seeds: scadf's LOS stays at 0.1 x (1, 2, 3) = 0.2, its NLOS grows 8-fold on blocks
    assert (t.loc["SCADF-MoE", "LOS / NLOS (m²): points"], t.loc["SCADF-MoE", "LOS / NLOS (m²): blocks"]) == \
           ("0.20 / 6.0", "0.20 / 48.0")
    assert density_table(pd.DataFrame()).empty


def test_the_training_command_line_trains_on_a_thinned_survey(tmp_path, synthetic_nc):
    import json

    from scadf_lib.training import main
    assert main(["--data", str(synthetic_nc), "--model", "concat", "--epochs", "1", "--max-steps-per-epoch", "1",
                 "--survey-share", "0.5", "--out", str(tmp_path / "run")]) == 0
    split = json.loads((tmp_path / "run" / "config.json").read_text())["split"]
    assert split["survey_share"] == 0.5 and split["surveyed_points"] < split["points"] / 2


def test_the_driver_records_each_held_out_block_points_distance_to_the_survey(study_set):
    """survey_distance.csv.gz holds every held-out point of the block split with its distance to the
    nearest trained point (the split rebuilt from the run's settings); pooled back over the distance
    bins, the kept errors give the run's held-out MSE exactly (points weighted by their trajectories)."""
    from scadf_lib.config import split_of
    from scadf_lib.schema import load_fingerprints
    from scadf_lib.studies.resultset import ResultSet
    from scadf_lib.studies.unsurveyed import BASELINE_SET, block_errors, distance_table, split_rows
    root, runs, _ = study_set
    res = root / "results" / "unsurveyed"
    dist = pd.read_csv(res / ResultSet.SURVEY_DISTANCE)
    blocks = next(r for r in runs if r.name == "blocks_munich_mix_scadf_s0")
    ds = load_fingerprints(blocks.cfg.data_path)
    xy = np.stack([ds["x"].values, ds["y"].values], axis=1)
    split = split_of(blocks.cfg, xy)
    held = np.intersect1d(np.flatnonzero(split.unseen), split.test_points)
    assert list(dist.ue) == list(held) and set(dist.seed) == {0}
    np.testing.assert_allclose(dist.distance_m, distance_to_survey(xy, split)[held], atol=0.006)
    rs = ResultSet(res)
    radius = rs.runs.set_index("name").loc[blocks.name, "radius_m"]
    assert dist.distance_m.min() > radius  # the guard band keeps trained points away
    e = block_errors(rs, split_rows(rs, rs.sibling(BASELINE_SET)))
    s = e[e.model == "scadf"]
    mse = rs.metrics.query("name == @blocks.name and band == 'all' and group == 'held-out'").mse_m2.iloc[0]
    assert np.average(s.sq_error_m2, weights=s.appearances) == pytest.approx(mse, rel=1e-3)
    table = distance_table(e)
    assert table["share of SCADF-MoE's squared error"].astype(float).sum() == pytest.approx(1.0, abs=0.02)
    assert table["share of held-out points"].astype(float).sum() == pytest.approx(1.0, abs=0.02)


def test_the_distance_table_bins_points_and_leaves_out_cells_too_small_to_say():
    from scadf_lib.studies.unsurveyed import MIN_CELL_POINTS, distance_line, distance_points, distance_table
    rng = np.random.default_rng(0)
    n = 400
    d = np.concatenate([rng.uniform(3, 5, n), rng.uniform(25, 40, n)])  # near and far points
    los = np.concatenate([np.ones(n, bool), np.zeros(n - 5, bool), np.ones(5, bool)])  # 5 far LOS points
    frames = []
    for model, far_nlos in (("scadf", 1000.0), ("wknn", 3000.0)):
        sq = np.where(los, 0.5, far_nlos) * (1 if model == "scadf" else 2)
        frames.append(pd.DataFrame({"model": model, "seed": 0, "ue": np.arange(2 * n), "los": los, "appearances": 2,
                                    "sq_error_m2": sq, "distance_m": d}))
    e = pd.concat(frames, ignore_index=True)
    e["bin"] = pd.cut(e.distance_m, (0, 5, 10, 20, np.inf), labels=("≤ 5", "5-10", "10-20", "> 20"))
    t = distance_table(e).set_index("distance to survey (m)")
    assert list(t.index) == ["≤ 5", "> 20"]  # empty bins are no rows
    assert t.loc["≤ 5", "SCADF-MoE: LOS / NLOS (m²)"] == "0.5 / –"  # no NLOS point near the survey
    assert t.loc["> 20", "SCADF-MoE: LOS / NLOS (m²)"] == "– / 1000.0"  # 5 LOS points < MIN_CELL_POINTS
    assert 5 < MIN_CELL_POINTS
    far_share = (n - 5) * 1000 / ((n - 5) * 1000 + (n + 5) * 0.5)
    assert float(t.loc["> 20", "share of SCADF-MoE's squared error"]) == pytest.approx(far_share, abs=0.005)
    assert float(t.loc["> 20", "NLOS share"]) == pytest.approx((n - 5) / n, abs=0.005)
    line = distance_line(e)
    assert "carry 100 % of SCADF-MoE's squared error" in line
    assert "On LOS points" not in line  # one distance bin only holds enough LOS points: no growth to state
    far_los = e.index[(e.distance_m > 20) & (e.ue % 10 == 0)]  # 40 far points per method made LOS, 100x the error
    e2 = e.copy()
    e2.loc[far_los, "los"] = True
    e2.loc[(e2.distance_m > 20) & e2.los, "sq_error_m2"] = 50.0
    line = distance_line(e2)
    assert "its MSE goes from 0.50 m² at ≤ 5 m from the survey to 50.0 m² at > 20 m (45 points of seed 0; WKNN" in line
    assert "; WKNN, which can only return surveyed positions: 1 to 50 m²)" in line and "not beyond it." in line
    p = distance_points(e)
    assert set(p.method) == {"SCADF-MoE", "WKNN (numeric)", "nearest surveyed point (oracle)"}
    assert not ((p.bin == "> 20") & p.los).any()  # the small LOS cell is left out of the figure too


def test_the_density_line_states_each_thinned_surveys_cost_against_the_full_survey():
    from scadf_lib.studies.unsurveyed import density_line
    pts = pd.DataFrame([{"survey": s, "method": m, "mse_m2": mse, "median_m": med}
                        for s, m, mse, med in (("full", "SCADF-MoE", 1.0, 0.15), ("grid2", "SCADF-MoE", 8.0, 0.2),
                                               ("grid2", "SoftMoE", 9.0, 0.2))])
    line = density_line(pts)
    assert "SCADF-MoE 1.00 m² (median 0.15 m) on the full survey; 2 m grid 8.0 m² (8×, median 0.20 m)." in line
    assert "SoftMoE" not in line  # no full survey of its own: nothing to compare with
    assert density_line(pts[pts.survey == "full"]) == "" and density_line(pd.DataFrame()) == ""


def test_density_points_average_each_survey_over_the_seeds_all_its_methods_have():
    from scadf_lib.studies.unsurveyed import density_points, density_table
    runs, rows = [], []
    for survey, seeds in (("full", (0, 1, 2)), ("grid4", (0, 1))):
        for seed in seeds:
            runs.append({"survey": survey, "seed": seed, "surveyed_points": 100.0 / (4 if survey == "grid4" else 1),
                         "train_points": 100, "points": 200, "val_points": 10, "held_out_distance_median_m": 1.0 + seed,
                         "held_out_distance_ms_m2": 2.0})
            for model in ("scadf", "wknn"):
                if survey == "grid4" and seed == 1 and model == "scadf":
                    continue  # a sweep under way: seed 1's model run not in yet
                rows.append({"split": "points", "group": "held-out", "model": model, "survey": survey, "seed": seed,
                             "mse_m2": 1.0 + 10 * seed + (50 if survey == "grid4" else 0), "median_m": 0.1})
    # the baseline's seed 2 has no facts of its own in this set (no (full, 2) run): left out
    p = density_points(pd.DataFrame(rows), pd.DataFrame([r for r in runs if (r["survey"], r["seed"]) != ("full", 2)]))
    full = p[(p.survey == "full") & (p.method == "SCADF-MoE")].iloc[0]
    assert full.seeds == "0, 1" and full.mse_m2 == pytest.approx((1 + 11) / 2)
    thin = p[p.survey == "grid4"]
    assert set(thin.seeds) == {"0"} and set(thin.mse_m2) == {51.0}  # WKNN's seed 1 waits for SCADF-MoE's
    t = density_table(p).set_index("survey")
    assert t.loc["4 m grid", "seeds"] == "0" and t.loc["full survey (1 m grid)", "seeds"] == "0, 1"
    assert t.loc["full survey (1 m grid)", "held-out distance to survey: median (m)"] == pytest.approx(1.5)
