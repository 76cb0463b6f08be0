"""Classical anchors (geometric closed form, WKNN fingerprinting) and the stopping rule, on small data."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scadf_lib.anchors import (WKNN, PointSet, broadside_positions, geometric_positions, predict_anchor,
                               run_anchor, select_wknn)
from scadf_lib.training import TrainConfig, first_stop_epoch, late_gain, lr_at, prepare_data, should_stop, train


def test_geometric_position_inverts_the_direct_path_exactly():
    rng = np.random.default_rng(0)
    bs = np.array([8.5, 21.0, 27.0])
    xy = rng.uniform(-60, 60, (200, 2))
    z = rng.uniform(0, 4, 200)
    d = np.sqrt(((xy - bs[:2]) ** 2).sum(1) + (bs[2] - z) ** 2)
    aod = np.arctan2(xy[:, 1] - bs[1], xy[:, 0] - bs[0])
    np.testing.assert_allclose(geometric_positions(d, aod, z, bs), xy, atol=1e-9)
    # a path shorter than the height difference is put under the BS, not NaN
    assert np.isfinite(geometric_positions(np.array([1.0]), np.array([0.3]), np.array([1.5]), bs)).all()
    with pytest.raises(ValueError, match="bs_position_m"):
        geometric_positions(d, aod, z, bs[:2])


def test_the_broadside_closed_form_inverts_a_ula_measurement_on_the_side_it_is_given():
    """A ULA along y measures s = cos(el) sin(phi): with the true side the direct path is inverted
    exactly; the other side is the mirror image across the array axis (x = x_b)."""
    rng = np.random.default_rng(1)
    bs = np.array([8.5, 21.0, 27.0])
    xy = rng.uniform(-60, 60, (300, 2))
    z = rng.uniform(0, 4, 300)
    d = np.sqrt(((xy - bs[:2]) ** 2).sum(1) + (bs[2] - z) ** 2)
    s = (np.hypot(*(xy - bs[:2]).T) / d) * (xy[:, 1] - bs[1]) / np.hypot(*(xy - bs[:2]).T)  # cos(el) sin(phi)
    side = np.sign(xy[:, 0] - bs[0])
    np.testing.assert_allclose(broadside_positions(d, s, z, bs, side), xy, atol=1e-7)
    mirror = broadside_positions(d, s, z, bs, -side)
    np.testing.assert_allclose(mirror[:, 0], 2 * bs[0] - xy[:, 0], atol=1e-7)
    np.testing.assert_allclose(mirror[:, 1], xy[:, 1], atol=1e-7)


def test_the_closed_form_on_measured_inputs_finds_los_points_and_the_side_from_the_fingerprint(tmp_path):
    """On a strong link the estimated first path places LOS points to within the delay and angle
    estimates' errors; the fingerprint (WKNN) picks the array's side for most UEs; the true side is a bound."""
    from scadf_lib.schema import save_fingerprints
    from synthetic import synthetic_fingerprints
    save_fingerprints(synthetic_fingerprints(n_side=16, with_paths=True), tmp_path / "s.nc")
    cfg = TrainConfig(data_path=str(tmp_path / "s.nc"), train_per_point=1.0, test_per_point=1.0, inputs="measured",
                      measurement={"tx_power_dbm": 60.0, "timing_offset_std_ns": 0.0})
    scores = {m: run_anchor(m, cfg, tmp_path / m).query("band == 'all'").set_index("group").mse_m2
              for m in ("geometric", "geometric_true_side")}
    facts = {m: json.loads((tmp_path / m / "anchor.json").read_text()) for m in scores}
    errors = pd.read_csv(tmp_path / "geometric_true_side" / "point_errors.csv")
    # LOS: about 0.5 m of path length and 0.01 of direction cosine, amplified by d / r near the 20 m high BS
    assert np.sqrt(errors[errors.los].sq_error_m2).median() < 2.0  # m, a third of a delay bin (c / B = 6 m)
    assert scores["geometric_true_side"]["held-out-LOS"] <= scores["geometric"]["held-out-LOS"] + 1e-9
    assert scores["geometric_true_side"]["held-out-NLOS"] > 1.0  # a bent first path: the closed form's known limit
    assert facts["geometric"]["side_right_share"] > 0.7 and facts["geometric_true_side"]["side"] == "true"
    assert 0 <= facts["geometric"]["first_path_missing_share"] < 0.5
    oracle = TrainConfig(data_path=str(tmp_path / "s.nc"), train_per_point=1.0, test_per_point=1.0)
    with pytest.raises(ValueError, match="geometric_true_side anchor is scored on measured inputs only"):
        run_anchor("geometric_true_side", oracle, tmp_path / "bad")


def test_geometric_anchor_is_exact_on_los_points_and_wrong_on_nlos_ones(synthetic_nc, tmp_path):
    cfg = TrainConfig(data_path=str(synthetic_nc), train_per_point=1.0, test_per_point=1.0)
    m = run_anchor("geometric", cfg, tmp_path / "geo").query("band == 'all'").set_index("group")
    assert m.at["held-out-LOS", "mse_m2"] < 1e-6 and m.at["seen-LOS", "mse_m2"] < 1e-6
    assert m.at["held-out-NLOS", "mse_m2"] > 1.0
    assert set(m.index) >= {"overall", "held-out", "seen", "centroid", "centroid-of-points"}
    # the centroid of an anchor is the mean of its points
    assert m.at["centroid", "mse_m2"] == pytest.approx(m.at["centroid-of-points", "mse_m2"])
    saved = pd.read_csv(tmp_path / "geo" / "metrics.csv")
    assert set(saved.model) == {"geometric"} and set(saved.regime) == {"mix"}


def test_the_hybrid_anchor_is_the_closed_form_on_los_points_and_wknn_on_the_others(synthetic_nc, tmp_path):
    cfg = TrainConfig(data_path=str(synthetic_nc), train_per_point=1.0, test_per_point=1.0)
    scores = {m: run_anchor(m, cfg, tmp_path / m).query("band == 'all'").set_index("group").mse_m2
              for m in ("geometric", "wknn", "hybrid")}
    assert scores["hybrid"]["held-out-LOS"] < 1e-6  # exact where the data say LOS
    assert scores["hybrid"]["held-out-NLOS"] == pytest.approx(scores["wknn"]["held-out-NLOS"], rel=1e-9)
    assert scores["hybrid"]["held-out"] < min(scores["geometric"]["held-out"], scores["wknn"]["held-out"])
    from types import SimpleNamespace
    measured = SimpleNamespace(feats=SimpleNamespace(inputs="measured"))
    with pytest.raises(ValueError, match="hybrid anchor is scored on oracle inputs only"):
        predict_anchor("hybrid", measured, np.zeros(3), np.zeros(1), np.zeros((1, 1)), np.zeros((1, 1)))


def test_wknn_is_exact_on_its_own_references_and_interpolates_between_them():
    xy = np.array([[0.0, 0.0], [10.0, 0.0]])
    feats = np.array([[0.0], [1.0]])
    model = WKNN(k=2).fit({2.6: PointSet(feats, xy)})
    np.testing.assert_allclose(model.predict(2.6, feats), xy)
    mid = model.predict(2.6, np.array([[0.25]]))[0]  # weights 1/0.25 and 1/0.75: 3/4 of the way to point 0
    np.testing.assert_allclose(mid, [2.5, 0.0])
    # a band that no reference was fitted on is looked up in the pooled references
    np.testing.assert_allclose(model.predict(6.0, feats), xy)


def test_wknn_settings_are_chosen_on_validation_points_never_the_test(synthetic_nc):
    cfg = TrainConfig(data_path=str(synthetic_nc), train_per_point=1.0, test_per_point=1.0)
    data = prepare_data(cfg)
    best, grid = select_wknn(data, use_cfr=True)
    assert len(grid) == grid[["scaling", "cfr_weight", "k"]].drop_duplicates().shape[0] > 20
    assert best["val_mse_m2"] == pytest.approx(grid.val_mse_m2.min())
    # the choice depends on the validation points only: scrambling the test points' features changes nothing
    scrambled = data.feats.numeric.copy()
    test_only = np.setdiff1d(data.split.test_points, np.concatenate([data.split.train_points, data.split.val_points]))
    scrambled[:, test_only] = scrambled[:, test_only[::-1]]
    other = replace(data, feats=replace(data.feats, numeric=scrambled))
    assert select_wknn(other, use_cfr=False)[0] == select_wknn(data, use_cfr=False)[0]
    pred, settings = predict_anchor("wknn", data, np.zeros(3), np.zeros(len(data.feats.xy)),
                                    np.zeros((3, len(data.feats.xy))), np.zeros((3, len(data.feats.xy))))
    assert settings["k"] in grid.k.values
    seen = ~pred.held_out
    assert np.abs(pred.points[seen] - pred.truth[seen]).max() < 1e-6, "a training point is found exactly"
    with pytest.raises(ValueError, match="validation points"):
        select_wknn(prepare_data(replace(cfg, val_points_fraction=0.0)), use_cfr=False)


def test_late_gain_measures_the_last_quarter_of_the_curve():
    assert late_gain([4.0, 2.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert late_gain([4.0, 2.0, 1.5, 1.0]) == pytest.approx(1 / 3)
    assert late_gain(np.linspace(2, 1, 9), window=4) == pytest.approx((1.5 - 1.0) / 1.5)
    assert np.isnan(late_gain([1.0]))


def test_stopping_rule_waits_for_the_curriculum_and_the_lr_floor_then_stops_on_a_flat_curve():
    cfg = TrainConfig(epochs=40, stop_min_gain=0.02, stop_patience=5, decay_fraction=0.6)
    first = first_stop_epoch(cfg, steps_per_epoch=100)
    assert first == 29  # the curriculum reaches w = 1 at 70 % of 4,000 steps, after the floor (60 %)
    assert first_stop_epoch(replace(cfg, offset_anneal_fraction=0.5), 100) == 24  # the floor, at 60 %
    assert lr_at(24 * 100, 4000, cfg) == pytest.approx(cfg.min_lr_fraction * cfg.lr)
    assert lr_at(24 * 100 - 2, 4000, cfg) > cfg.min_lr_fraction * cfg.lr
    # a cosine over the whole run reaches its floor at the last step: the rule never ends it early
    whole = replace(cfg, decay_fraction=1.0)
    assert first_stop_epoch(whole, 100) == 40 and not any(should_stop([1.0] * n, whole, 100) for n in range(1, 41))
    flat = [1.0] * 40
    assert not should_stop(flat[:first - 1], cfg, 100)
    assert should_stop(flat[:first], cfg, 100)
    falling = list(np.geomspace(1.0, 0.1, 40))
    assert not any(should_stop(falling[:n], cfg, 100) for n in range(1, 40))
    # a stopped curve is converged by the reported criterion (window >= a quarter of the epochs)
    curve = list(np.geomspace(1.0, 0.1, 15)) + [0.1 * (1 - 0.001 * i) for i in range(1, 26)]
    stops = [n for n in range(1, 41) if should_stop(curve[:n], cfg, 100)]
    assert stops and late_gain(curve[:stops[0]]) < 0.02
    assert not should_stop(flat, replace(cfg, stop_min_gain=None), 100), "no rule: the whole budget"
    # a floor held past the schedule (schedule_epochs): the same first epoch, and the rule may end the
    # run where the schedule ends or later, never at the maximum budget's end only
    held = replace(cfg, epochs=80, schedule_epochs=40)
    assert first_stop_epoch(held, 100) == first
    assert not should_stop(falling, cfg, 100) and not should_stop(falling, held, 100)
    assert should_stop(flat, held, 100) and not should_stop(flat, cfg, 100), "at 40 of 40 the budget ends it"
    with pytest.raises(ValueError, match="stop_min_gain"):
        TrainConfig(stop_min_gain=2.0)


def test_a_run_stops_by_the_rule_and_a_resumed_run_stays_stopped(synthetic_nc, tmp_path):
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}
    cfg = TrainConfig(data_path=str(synthetic_nc), model="concat", epochs=30, max_steps_per_epoch=2,
                      train_per_point=1.0, test_per_point=1.0, lr=1e-6, offset_weight=1.0, stop_min_gain=0.5,
                      stop_patience=2, decay_fraction=0.2, device="cpu", model_overrides=small)
    res = train(cfg, tmp_path / "run", progress=False)
    n = len(res.history)
    assert first_stop_epoch(cfg, 2) <= n < 30, "a near-zero learning rate leaves the curve flat: the rule stops it"
    assert list(res.history.step) == [2 * (i + 1) for i in range(n)]
    assert (res.history.val_mse_points_m2 > 0).all()
    again = train(cfg, tmp_path / "run", progress=False)
    assert len(again.history) == n, "resuming a stopped run trains no further epoch"
    assert again.throughput == pytest.approx(res.history.trajectories_per_s.iloc[-1]), "its last throughput stays"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]["stop_min_gain"] == 0.5


def test_the_cosine_can_reach_its_floor_early_and_hold_it():
    from scadf_lib.training import lr_at
    cfg = TrainConfig(lr=1e-3, decay_fraction=0.75, warmup_fraction=0.05, min_lr_fraction=0.05)
    lrs = [lr_at(s, 1000, cfg) for s in range(1000)]
    assert max(lrs) == pytest.approx(1e-3)
    assert lrs[750] == pytest.approx(5e-5) and lrs[999] == pytest.approx(5e-5)
    assert all(a >= b - 1e-15 for a, b in zip(lrs[50:], lrs[51:])), "non-increasing after the warm-up"
    assert lr_at(999, 1000, replace(cfg, decay_fraction=1.0)) > 5e-5
    with pytest.raises(ValueError, match="decay_fraction"):
        TrainConfig(decay_fraction=0.01)


def test_wknn_scalings_follow_the_feature_names_of_measured_inputs():
    from scadf_lib.anchors import scale_numeric
    from scadf_lib.measured_inputs import MEASURED_NUMERIC_NAMES
    x = np.ones((2, 6))
    mean, std = np.zeros(6), np.ones(6)
    assert scale_numeric(x, mean, std, "angles_x3", MEASURED_NUMERIC_NAMES)[0].tolist() == [3, 3, 1, 1, 1, 1]
    assert scale_numeric(x, mean, std, "angles_x3")[0].tolist() == [3, 3, 3, 3, 1, 1]  # oracle: four angle features
    kept = scale_numeric(np.arange(12.0).reshape(2, 6), mean, std, "no_gain", MEASURED_NUMERIC_NAMES)
    assert kept[0].tolist() == [0, 1, 2, 4, 5]  # the received power (index 3) left out
