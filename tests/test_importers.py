"""Importers (tables, DeepMIMO v4 folders), data without a CFR, and the physical validation of imports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from scadf_lib.fileio import project_path
from scadf_lib.importers import (SPEED_OF_LIGHT, ImportError_, from_table, main, subcarrier_offsets_hz,
                                 synthesise_cfr, to_table)
from scadf_lib.schema import DatasetError, load_fingerprints, save_fingerprints


@pytest.fixture(scope="module")
def munich():
    return load_fingerprints(project_path("data/munich.nc"))


def test_a_table_of_munichs_scalars_round_trips_and_trains_to_the_same_metrics(munich, tmp_path):
    table = to_table(munich)
    table.to_csv(tmp_path / "munich.csv", index=False)
    cfr = (munich.cfr_real.values + 1j * munich.cfr_imag.values).astype(np.complex64)
    np.save(tmp_path / "cfr.npy", cfr)
    bs = [str(v) for v in munich.attrs["bs_position_m"]]
    assert main(["table", str(tmp_path / "munich.csv"), "--angle-unit", "deg", "--gain-unit", "dB", "--bs-position", *bs,
                 "--cfr", str(tmp_path / "cfr.npy"), "--out", str(tmp_path / "back.nc"), "--scene", "munich"]) == 0
    back = load_fingerprints(tmp_path / "back.nc")
    for name in ("aod", "aoa", "distance", "path_gain", "x", "y", "cfr_real", "cfr_imag"):
        np.testing.assert_allclose(back[name].values, munich[name].values, rtol=1e-5, atol=1e-5, err_msg=name)
    assert (back.los.values == munich.los.values).all()
    from scadf_lib.training import TrainConfig, train
    torch.set_num_threads(1)
    scores = []
    for path in (project_path("data/munich.nc"), tmp_path / "back.nc"):
        cfg = TrainConfig(data_path=str(path), model="concat", epochs=1, max_steps_per_epoch=20, seed=0)
        res = train(cfg, tmp_path / f"run_{len(scores)}", progress=False)
        scores.append(res.metrics.set_index(["band", "group"]).mse_m2)
    np.testing.assert_allclose(scores[0].to_numpy(), scores[1].to_numpy(), rtol=1e-3)


def test_table_units_are_stated_and_bad_inputs_refused(munich):
    small = munich.isel(ue=slice(0, 40))
    table = to_table(small)
    bs = tuple(small.attrs["bs_position_m"])
    with pytest.raises(DatasetError, match="look like degrees"):  # degrees declared as radians
        from_table(table, "rad", "dB", bs)
    linear = table.assign(path_gain=10 ** (table.path_gain / 10))
    with pytest.raises(DatasetError, match="look linear"):  # a linear gain declared as dB
        from_table(linear, "deg", "dB", bs)
    ds = from_table(linear, "deg", "linear", bs)  # stated: converted
    np.testing.assert_allclose(ds.path_gain.values, small.path_gain.values, atol=1e-3)
    negative = table.copy()
    negative.loc[3, "distance_m"] = -5.0
    with pytest.raises(DatasetError, match="'distance' must be > 0 m"):
        from_table(negative, "deg", "dB", bs)
    twice = pd.concat([table, table.assign(ue=table.ue + 1000)], ignore_index=True)  # the same positions again
    with pytest.raises(DatasetError, match="40 UEs repeat the \\(x, y\\) position"):
        from_table(twice, "deg", "dB", bs)
    assert from_table(twice, "deg", "dB", bs, merge_duplicates=True).sizes["ue"] == 40
    with pytest.raises(ImportError_, match="lacks columns \\['los'\\]"):
        from_table(table.drop(columns="los"), "deg", "dB", bs)
    with pytest.raises(ImportError_, match="0/1"):
        from_table(table.assign(los="maybe"), "deg", "dB", bs)
    with pytest.raises(ImportError_, match="angle unit 'grad'"):
        from_table(table, "grad", "dB", bs)
    no_cfr = from_table(table, "deg", "dB", bs)
    assert no_cfr.attrs["has_cfr"] == 0 and "cfr_real" not in no_cfr


def test_two_path_cfr_matches_a_hand_computation():
    offsets = subcarrier_offsets_hz(50e6, 64)
    power = np.array([[-80.0, -86.0, np.nan]])  # dB; the third path does not exist
    phase = np.array([[30.0, -120.0, np.nan]])  # degrees
    delay = np.array([[400e-9, 1.2e-6, np.nan]])  # s
    h = synthesise_cfr(power, phase, delay, offsets)[0]
    k = 5
    f = offsets[k]  # (5 - 32) * 781,250 Hz
    by_hand = (1e-4 * np.exp(1j * np.pi / 6) * np.exp(-2j * np.pi * f * 400e-9)
               + 10 ** (-86 / 20) * np.exp(-2j * np.pi / 3) * np.exp(-2j * np.pi * f * 1.2e-6))
    assert f == pytest.approx(-27 * 781_250.0)
    assert h[k] == pytest.approx(by_hand, rel=1e-12)
    assert np.abs(h).max() <= 1e-4 + 10 ** (-86 / 20) + 1e-18


def write_deepmimo_scenario(folder, freq_hz: float, rx: np.ndarray, seed: int) -> None:
    """A DeepMIMO v4 scenario folder in the documented format: params.json and one npz per array."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    n, p = len(rx), 3
    bs = np.array([[0.0, 0.0, 20.0]])
    d_los = np.linalg.norm(rx - bs, axis=1)
    delay = np.stack([d_los, d_los + 15 + rng.uniform(0, 5, n), d_los + 40 + rng.uniform(0, 5, n)], 1) / SPEED_OF_LIGHT
    power = np.stack([-60 - 20 * np.log10(d_los), -75 - 20 * np.log10(d_los), -90 - 20 * np.log10(d_los)], 1)
    power[-1, 1:] = np.nan  # a receiver with one path
    aod = np.rad2deg(np.arctan2(rx[:, 1] - bs[0, 1], rx[:, 0] - bs[0, 0]))
    arrays = {"rx_pos": rx, "tx_pos": bs, "power": power, "phase": rng.uniform(-180, 180, (n, p)), "delay": delay,
              "aoa_az": np.stack([aod + 180 - 360 * (aod > 0)] * p, 1), "aod_az": np.stack([aod] * p, 1),
              "aoa_el": np.zeros((n, p)), "aod_el": np.zeros((n, p)),
              "inter": np.stack([np.where(np.arange(n) % 4 == 0, 1.0, 0.0), np.ones(n), np.full(n, 11.0)], 1)}
    for key, value in arrays.items():
        np.savez(folder / f"{key}_t000_tx000_r000.npz", **{key: value})
    (folder / "params.json").write_text(json.dumps({"version": "4.0", "rt_params": {"frequency": freq_hz}}))


def test_a_deepmimo_fixture_with_three_frequencies_imports_trains_and_localises(tmp_path):
    xs, ys = np.meshgrid(np.arange(16.0), np.arange(16.0))
    rx = np.stack([xs.ravel() + 10, ys.ravel() + 10, np.full(xs.size, 1.5)], 1)
    folders = []
    for i, f in enumerate((2.6e9, 6e9, 28e9)):
        order = np.random.default_rng(i).permutation(len(rx))  # each folder lists the receivers in its own order
        write_deepmimo_scenario(tmp_path / f"scen_{i}", f, rx[order], seed=i)
        folders.append(str(tmp_path / f"scen_{i}"))
    out = tmp_path / "dm.nc"
    assert main(["deepmimo", *folders, "--out", str(out), "--scene", "fixture"]) == 0
    ds = load_fingerprints(out)
    assert list(ds.band.values) == [2.6, 6.0, 28.0] and ds.sizes["ue"] == len(rx)
    np.testing.assert_allclose(ds.distance.values[0], np.linalg.norm(np.stack([ds.x, ds.y, ds.z - 20], 1), axis=1),
                               rtol=1e-5)  # path 0 is the direct path: delay x c
    assert ds.los.values[0].mean() == pytest.approx(0.75, abs=0.02)  # inter[:, 0] == 0 on 3 of 4 receivers
    assert np.abs(ds.aod.values).max() <= np.pi + 1e-6
    from scadf_lib.training import TrainConfig, train
    torch.set_num_threads(1)
    cfg = TrainConfig(data_path=str(out), model="scadf", epochs=1, max_steps_per_epoch=3,
                      model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1})
    train(cfg, tmp_path / "run", progress=False)
    from scadf_lib.localise import main as localise
    pd.DataFrame({"track": 0, "step": range(5), "ue": range(5)}).to_csv(tmp_path / "tracks.csv", index=False)
    assert localise(["--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", str(out), "--tracks",
                     str(tmp_path / "tracks.csv"), "--band", "6", "--out", str(tmp_path / "pred.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "pred.csv")) == 5
    assert main(["deepmimo", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.nc")]) == 2


@pytest.mark.parametrize("model", ["concat", "fullcon", "transfusion", "softmoe", "scadf"])
def test_every_method_trains_and_predicts_on_data_without_a_cfr(model, synthetic_ds, tmp_path):
    from scadf_lib.training import TrainConfig, train
    bare = synthetic_ds.drop_vars(["cfr_real", "cfr_imag"])
    bare.attrs["has_cfr"] = 0
    save_fingerprints(bare, tmp_path / "bare.nc")
    cfg = TrainConfig(data_path=str(tmp_path / "bare.nc"), model=model, epochs=1, max_steps_per_epoch=3,
                      model_overrides={"d_model": 16, "expert_hidden": 32, "n_blocks": 1})
    res = train(cfg, tmp_path / model, progress=False)
    assert getattr(res.model, "tokenizer").cfr is None
    assert np.isfinite(res.metrics.mse_m2.dropna()).all()


def test_the_anchors_work_on_data_without_a_cfr(synthetic_ds, tmp_path):
    from scadf_lib.anchors import run_anchor
    from scadf_lib.training import TrainConfig
    bare = synthetic_ds.drop_vars(["cfr_real", "cfr_imag"])
    bare.attrs["has_cfr"] = 0
    save_fingerprints(bare, tmp_path / "bare.nc")
    cfg = TrainConfig(data_path=str(tmp_path / "bare.nc"))
    plain = run_anchor("wknn", cfg, tmp_path / "wknn")
    with_cfr = run_anchor("wknn_cfr", cfg, tmp_path / "wknn_cfr")
    np.testing.assert_allclose(plain.mse_m2.to_numpy(), with_cfr.mse_m2.to_numpy())


def test_a_declared_60_ghz_band_trains_with_band_60_and_the_model_localises_it(tmp_path):
    """A file that declares 60 GHz (beside 6 and 28) trains with ``--band 60`` from the CLI; the model
    records the bands it trained on, and the Localiser places tracks of that band from the CLI and the
    API, and refuses a band the model never saw, naming the one it has."""
    from scadf_lib.localise import Localiser, LocaliseError, main as localise
    from scadf_lib.training import main as train_cli
    xs, ys = np.meshgrid(np.arange(12.0), np.arange(12.0))
    rx = np.stack([xs.ravel() + 10, ys.ravel() + 10, np.full(xs.size, 1.5)], 1)
    folders = []
    for i, f in enumerate((6e9, 28e9, 60e9)):
        write_deepmimo_scenario(tmp_path / f"scen_{i}", f, rx, seed=i)
        folders.append(str(tmp_path / f"scen_{i}"))
    out = tmp_path / "dm60.nc"
    assert main(["deepmimo", *folders, "--out", str(out), "--scene", "fixture60"]) == 0
    ds = load_fingerprints(out)
    assert 60.0 in ds.band.values and 60.0 in np.atleast_1d(ds.attrs["declared_bands_ghz"])
    torch.set_num_threads(1)
    assert train_cli(["--data", str(out), "--model", "concat", "--band", "60", "--epochs", "1",
                      "--max-steps-per-epoch", "3", "--out", str(tmp_path / "run")]) == 0
    loc = Localiser.from_checkpoint(tmp_path / "run" / "best.pt")
    assert loc.bands == (60.0,)
    tracks = pd.DataFrame({"track": 0, "step": range(5), "ue": range(5)})
    tracks.to_csv(tmp_path / "tracks.csv", index=False)
    api = loc.predict_tracks(ds, tracks, band=60)
    assert len(api) == 5 and np.isfinite(api[["x_m", "y_m"]].to_numpy()).all() and (api.band_ghz == 60).all()
    assert localise(["--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", str(out), "--tracks",
                     str(tmp_path / "tracks.csv"), "--band", "60", "--out", str(tmp_path / "pred.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "pred.csv")[["x_m", "y_m"]], api[["x_m", "y_m"]], rtol=1e-6)
    with pytest.raises(LocaliseError, match=r"band 28 GHz is not a band this model trained .*choose one of \[60.0\]"):
        loc.predict_tracks(ds, tracks, band=28)
    with pytest.raises(ValueError, match=r"unknown band '61' GHz; choose one of \[6.0, 28.0, 60.0\]"):
        train_cli(["--data", str(out), "--band", "61", "--out", str(tmp_path / "bad")])
