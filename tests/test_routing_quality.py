"""The routers' CFR share against the quality of each sample's numeric estimates: the rule fixed
before the measured-input study's data, and the per-sample tables it reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from scadf_lib.routing_quality import cfr_shares, sample_quality
from scadf_lib.studies.measured import quality_contrasts, quality_verdict


def _table(effect: dict[str, float], seeds=(0, 1)) -> pd.DataFrame:
    """Validation samples of one oracle and one measured run per seed: the task CFR share rises by
    ``effect[inputs]`` from the best to the worst SNR (a uniform grid of SNRs, 40 samples)."""
    rows = []
    snr = np.linspace(0, 40, 40)
    for seed in seeds:
        for inputs, e in effect.items():
            task = 0.5 + e * (40 - snr) / 40
            rows.append(pd.DataFrame({"band_ghz": 28.0, "snr_db": snr, "missing": snr < 5, "nlos_share": 0.0,
                                      "task": task, "name": f"meas_munich_mix_scadf_{inputs}_s{seed}",
                                      "inputs": inputs, "seed": seed}))
    return pd.concat(rows, ignore_index=True)


def test_the_rule_needs_more_cfr_at_low_snr_on_measured_inputs_than_on_oracle_ones_on_every_seed():
    c = quality_contrasts(_table({"oracle": 0.0, "measured": 0.1})).set_index(["inputs", "seed"])
    assert c.loc[("measured", 0), "snr"] == pytest.approx(0.075, abs=0.01)  # lowest quartile minus highest
    assert c.loc[("oracle", 0), "snr"] == pytest.approx(0.0) and c.loc[("measured", 0), "missing"] > 0
    assert np.isnan(c.loc[("oracle", 0), "nlos"])  # no NLOS sample: no contrast
    assert quality_verdict(quality_contrasts(_table({"oracle": 0.0, "measured": 0.1}))) == "supported"
    assert quality_verdict(quality_contrasts(_table({"oracle": 0.0, "measured": -0.1}))) == "contradicted"
    assert quality_verdict(quality_contrasts(_table({"oracle": 0.2, "measured": 0.1}))) == "mixed"  # not beyond
    one = quality_contrasts(_table({"oracle": 0.0, "measured": 0.1}, seeds=(0,)))
    assert quality_verdict(one) == "supported (provisional: one seed)"
    assert quality_verdict(quality_contrasts(_table({"measured": 0.1}))) == "waits"
    swept = _table({"oracle": 0.0, "measured": 0.1}).replace({"name": {"meas_munich_mix_scadf_measured_s1":
                                                                          "meas_munich_mix_scadf_tx-20dB_s1"}})
    c = quality_contrasts(swept)
    assert not c.set_index("name").loc["meas_munich_mix_scadf_tx-20dB_s1", "default_budget"]
    assert quality_verdict(c) == "supported (provisional: one seed)"  # the link-budget sweep does not vote


def test_every_validation_sample_gets_its_quality_and_each_layers_cfr_share(synthetic_nc, tmp_path):
    from scadf_lib.config import TrainConfig
    from scadf_lib.training import train
    torch.set_num_threads(1)
    cfg = TrainConfig(data_path=str(synthetic_nc), model="scadf", epochs=1, max_steps_per_epoch=2,
                      model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1})
    res = train(cfg, tmp_path / "run", progress=False)
    val = res.data.val
    snr = np.arange(np.prod(res.data.feats.los.shape), dtype=float).reshape(res.data.feats.los.shape)
    q = sample_quality(res.data.feats, val, snr)
    assert len(q) == len(val) and not q.missing.any()  # oracle inputs: nothing missing
    first = val.trajectories[0]
    assert q.snr_db.iloc[0] == pytest.approx(snr[val.band_idx[0], first].mean())
    shares = cfr_shares(res.model, val)
    assert len(shares) == len(val) and {"block0", "task"} <= set(shares.columns)
    assert ((shares >= 0) & (shares <= 1)).all().all()


def test_the_measured_study_pairs_each_methods_oracle_and_measured_runs_seed_by_seed():
    from scadf_lib.studies.measured import measured_claims, oracle_vs_measured, sweep_table
    from scadf_lib.studies.resultset import ResultSet
    runs, rows = [], []
    for model, (oracle, measured) in {"scadf": (1.0, 20.0), "softmoe": (0.8, 25.0)}.items():
        for seed in (0, 1):
            for inputs, mse in (("oracle", oracle), ("measured", measured)):
                name = f"meas_munich_mix_{model}_{inputs}_s{seed}"
                runs.append({"name": name, "study": "measured", "model": model, "inputs": inputs, "seed": seed,
                             "flat": True})
                rows += [{"name": name, "study": "measured", "model": model, "seed": seed, "band": "all", "scene": "munich",
                          "group": g, "mse_m2": mse * (1 + 0.1 * seed), "median_m": np.sqrt(mse) / 4 + 0.1 * seed}
                         for g in ("held-out", "overall", "held-out-NLOS")]
    name = "meas_munich_mix_scadf_tx-20dB_s0"
    runs.append({"name": name, "study": "measured", "model": "scadf", "inputs": "measured", "seed": 0, "flat": True,
                 "param": "tx_power_offset_db", "value": -20.0})
    rows += [{"name": name, "study": "measured", "model": "scadf", "seed": 0, "band": "all", "group": "held-out",
              "mse_m2": 80.0}]
    rs = ResultSet.of_tables(pd.DataFrame(rows), pd.DataFrame(runs))
    t = oracle_vs_measured(rs).set_index("method")
    assert t.loc["SCADF-MoE", "measured, per seed"] == "20.00 / 22.00"  # the sweep's run is not a seed
    assert t.loc["SCADF-MoE", "measured / oracle"].startswith("20.00× (")
    assert t.loc["SCADF-MoE", "median error (m): oracle → measured"] == "0.30 → 1.17"  # means over seeds
    s = sweep_table(rs).set_index("setting")
    assert s.loc["transmit power -20 dB", "SCADF-MoE"] == pytest.approx(80.0) and list(s.columns) == ["SCADF-MoE"]
    c = measured_claims(rs).set_index("inputs")
    assert c.loc["oracle", "sub-metre (held-out MSE)"].endswith("meets only per coordinate")  # 1.05 m² mean
    assert c.loc["measured", "61-63 % below the best baseline (all test points)"].startswith("0.80× (")


def test_the_closed_form_line_sets_the_arrays_true_side_against_the_guessed_one():
    from scadf_lib.studies.measured import closed_form_text
    from scadf_lib.studies.resultset import ResultSet
    cells = {("geometric", "oracle"): 0.0, ("geometric", "measured"): 900.0, ("geometric_true_side", "measured"): 4.0}
    runs, rows = [], []
    for (model, inputs), mse in cells.items():
        for seed in (0, 1):
            name = f"anchor_munich_mix_{model}_{inputs}_s{seed}"
            runs.append({"name": name, "study": "anchors", "model": model, "inputs": inputs, "seed": seed,
                         "anchor_side_right_share": 0.5 + 0.1 * seed if model == "geometric" and inputs == "measured"
                         else np.nan})
            rows.append({"name": name, "study": "anchors", "model": model, "seed": seed, "band": "all",
                         "group": "held-out-LOS", "mse_m2": mse + seed, "median_m": 1.0, "p90_m": 60.0})
    text = closed_form_text(ResultSet.of_tables(pd.DataFrame(rows), pd.DataFrame(runs)))
    assert "MSE 0.50 m² on oracle inputs" in text and "4.50 m² (median 1.00 m) with the array's true side" in text
    assert "900 m² (median 1.00 m, p90 60 m) with the side a bare ULA" in text and "right for 55 %" in text
    oracle_only = [r for r in rows if "oracle" in r["name"]]
    assert closed_form_text(ResultSet.of_tables(pd.DataFrame(oracle_only), pd.DataFrame(runs))).endswith(
        "on oracle inputs (a sanity check).")
    assert closed_form_text(ResultSet.of_tables(pd.DataFrame(rows[2:]), pd.DataFrame(runs))) == ""


def test_the_readme_line_sets_the_anchors_beside_the_methods_on_both_inputs():
    from scadf_lib.studies.measured import measured_readme_lines
    from scadf_lib.studies.resultset import ResultSet
    cells = {("scadf", "oracle", "held-out"): 1.0, ("scadf", "measured", "held-out"): 20.0,
             ("wknn", "oracle", "held-out"): 4.0, ("wknn", "measured", "held-out"): 190.0,
             ("geometric", "oracle", "held-out-LOS"): 0.0, ("geometric", "measured", "held-out-LOS"): 120.0,
             ("geometric_true_side", "measured", "held-out-LOS"): 4.4}
    runs, rows = [], []
    for (model, inputs, group), mse in cells.items():
        name = f"x_{model}_{inputs}_s0"
        runs.append({"name": name, "study": "measured", "model": model, "inputs": inputs, "seed": 0, "flat": True})
        rows.append({"name": name, "study": "measured", "model": model, "seed": 0, "band": "all", "group": group,
                     "mse_m2": mse, "median_m": 1.0, "p90_m": 2.0})
    line = measured_readme_lines(ResultSet.of_tables(pd.DataFrame(rows), pd.DataFrame(runs)))[0]
    assert "SCADF-MoE 1.00 → 20.00 (1 seed); WKNN (numeric) 4.00 → 190.00 (1 seed)" in line
    assert "held-out LOS points only: 0.00 → 120 (4.40 with the array's side known)" in line
    from scadf_lib.studies.measured import measured_headline
    rows.append({**rows[3], "name": "x_wknn_cfr_measured_s0", "model": "wknn_cfr", "mse_m2": 120.0})
    runs.append({**runs[3], "name": "x_wknn_cfr_measured_s0", "model": "wknn_cfr"})
    head = measured_headline(ResultSet.of_tables(pd.DataFrame(rows), pd.DataFrame(runs)))
    assert "is 20.0 m² against 1.00 on oracle inputs (median error 1.00 m against 1.00); the better " \
           "fingerprinting anchor on the same inputs, WKNN (numeric + CFR), 120 m² (appendix" in head
    no_anchors = [r for r in rows if r["model"] == "scadf"]
    line = measured_readme_lines(ResultSet.of_tables(pd.DataFrame(no_anchors), pd.DataFrame(runs)))[0]
    assert "WKNN" not in line and "closed form" not in line


def test_accuracy_is_tabled_per_quarter_of_the_measurement_snr():
    from scadf_lib.studies.measured import accuracy_by_snr
    t = _table({"oracle": 0.0, "measured": 0.1}, seeds=(0,))
    assert accuracy_by_snr(t).empty  # a table of an earlier layout: no errors, no accuracy
    t["sq_error_m2"] = np.where(t.snr_db < 10, 100.0, 1.0)  # the lowest quarter is ten times off
    a = accuracy_by_snr(t).set_index("inputs")
    assert a.loc["measured", "MSE, SNR quarter 1 (m²)"] == pytest.approx(100.0)
    assert a.loc["measured", "MSE, SNR quarter 4 (m²)"] == pytest.approx(1.0)


def test_held_out_points_are_binned_by_the_snr_map_per_method_and_input():
    from scadf_lib.studies.measured import held_out_by_snr, held_out_link_text
    from scadf_lib.studies.resultset import ResultSet
    names = {"oracle": "meas_munich_mix_scadf_oracle_s0", "measured": "meas_munich_mix_scadf_measured_s0"}
    runs = pd.DataFrame({"name": list(names.values()), "inputs": list(names), "param": [np.nan, np.nan],
                         "study": "measured", "flat": True})
    metrics = pd.DataFrame({"name": list(names.values()), "model": "scadf", "seed": 0, "band": "all",
                            "group": "held-out", "mse_m2": [1.0, 2.0], "study": "measured"})
    snr = pd.DataFrame({"band_ghz": 28.0, "ue": np.arange(8), "snr_db": np.arange(8) * 10.0})
    rs = ResultSet.of_tables(metrics, runs)
    rs._tables[ResultSet.SNR_MAP] = snr
    # the measured run misses by 10 m on the two weakest points, by 1 m elsewhere; the oracle by 0.1 m
    for inputs, name in names.items():
        err = np.where(snr.snr_db < 20, 10.0, 1.0) if inputs == "measured" else np.full(8, 0.1)
        rs._tables[f"{ResultSet.ERRORS}/{name}.csv.gz"] = pd.DataFrame(
            {"band_ghz": 28.0, "ue": np.arange(8), "los": True, "appearances": 1, "sq_error_m2": err ** 2})
    t = held_out_by_snr(rs).set_index("inputs")
    cols = [c for c in t.columns if c.startswith("MSE, SNR")]
    assert len(cols) == 4 and cols[0] == "MSE, SNR < 18 dB (m²)"  # quartile edges over the held-out points
    assert t.loc["measured", cols].tolist() == pytest.approx([100.0, 1.0, 1.0, 1.0])
    assert t.loc["oracle", cols].tolist() == pytest.approx([0.01] * 4)
    from scadf_lib.studies.measured import measured_headline
    assert "SCADF-MoE's held-out MSE is 2.0 m² against 1.00 on oracle inputs" in measured_headline(rs)
    text = held_out_link_text(held_out_by_snr(rs))
    assert "100.00 m² in the lowest SNR quarter (< 18 dB)" in text and "on oracle inputs 0.01 and 0.01" in text


def test_a_studys_section_says_whether_its_sweep_is_complete_and_how_to_resume_it():
    from scadf_lib.planning import plan
    from scadf_lib.studies.common import sweep_state
    runs = pd.DataFrame([{"name": r.name, "study": r.study} for r in plan("measured")])
    trained, anchors = int((runs.study != "anchors").sum()), int((runs.study == "anchors").sum())
    assert sweep_state(runs, "measured") == f"every planned run is in ({trained} trained runs and {anchors} anchor runs)"
    short = sweep_state(runs.iloc[1:], "measured")
    assert short.startswith(f"{trained} trained runs and {anchors - 1} anchor runs of {len(runs)} planned")
    assert "--preset measured --jobs 2 --park` resumes it" in short
