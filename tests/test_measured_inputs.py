"""Models trained and used on measured inputs (TrainConfig.inputs = "measured")."""

from __future__ import annotations

import numpy as np
import pytest

from scadf_lib.config import TrainConfig
from scadf_lib.measure import MeasurementConfig
from scadf_lib.measured_inputs import MEASURED_NUMERIC_NAMES, angle_delay_magnitude, measured_input_features
from scadf_lib.schema import save_fingerprints
from synthetic import synthetic_fingerprints


@pytest.fixture(scope="module")
def with_paths():
    return synthetic_fingerprints(n_side=12, with_paths=True)


def test_measured_inputs_have_the_oracle_shapes_roles_and_flag_what_is_missing(with_paths):
    numeric, cfr = measured_input_features(with_paths, {"tx_power_dbm": -20.0})
    n = with_paths.sizes["ue"]
    assert numeric.shape == (3, n, len(MEASURED_NUMERIC_NAMES)) and cfr.shape == (3, n, 16, 64)
    assert np.isfinite(numeric).all() and np.isfinite(cfr).all()
    flags = numeric[..., 4:]
    assert set(np.unique(flags)) <= {0.0, 1.0}
    # a weak link loses the far UEs at 28 GHz first: more flags there than at 2.6 GHz
    assert flags[2, :, 0].mean() > flags[0, :, 0].mean()
    np.testing.assert_allclose((cfr ** 2).mean(axis=(2, 3)), 1.0, rtol=1e-4)  # unit RMS per point


def test_the_angle_delay_magnitude_ignores_the_common_phase(with_paths):
    loud = {"tx_power_dbm": 160.0, "timing_offset_std_ns": 0.0}  # noise 140 dB below the signal
    _, a = measured_input_features(with_paths, MeasurementConfig(common_phase=True, **loud))
    _, b = measured_input_features(with_paths, MeasurementConfig(common_phase=False, **loud))
    np.testing.assert_allclose(a, b, atol=1e-4)
    y = np.random.default_rng(0).standard_normal((4, 16, 64)) + 1j * np.random.default_rng(1).standard_normal((4, 16, 64))
    np.testing.assert_allclose(angle_delay_magnitude(y * np.exp(1.3j)), angle_delay_magnitude(y), rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"inputs": "estimated"}, "unknown inputs 'estimated'"),
    ({"inputs": "measured", "augment": True}, "does not apply to measured inputs"),
    ({"inputs": "measured", "measurement": {"noise_figure_db": -2.0}}, "noise figure is >= 0 dB"),
    ({"inputs": "measured", "measurement": {"tx_power": 23}}, "tx_power"),
    ({"measurement": {"tx_power_dbm": 3.0}}, "inputs='measured' only"),
])
def test_bad_input_settings_fail_at_configuration(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        TrainConfig(**kwargs)


def test_a_model_trains_on_measured_inputs_and_the_localiser_measures_the_same_way(tmp_path, with_paths):
    import torch

    from scadf_lib.localise import Localiser
    from scadf_lib.training import train
    path = tmp_path / "paths.nc"
    save_fingerprints(with_paths, path)
    cfg = TrainConfig(data_path=str(path), model="scadf", epochs=1, max_steps_per_epoch=3, inputs="measured",
                      measurement={"tx_power_dbm": 10.0, "seed": 4}, model_overrides={"d_model": 16})
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.model.cfg.cfr_channels == 16 and res.model.cfg.num_numeric == 6
    loc = Localiser.from_checkpoint(tmp_path / "run" / "best.pt")
    assert loc.train_config["inputs"] == "measured" and loc.train_config["measurement"]["seed"] == 4
    from scadf_lib.schema import load_fingerprints
    shipped = load_fingerprints(path)
    feats = loc._features(shipped)
    np.testing.assert_array_equal(feats.numeric, res.data.feats.numeric)  # the same one measurement per UE
    with torch.no_grad():
        table = loc.predict_tracks(shipped, [list(range(5))], band=28)
    assert np.isfinite(table[["x_m", "y_m"]].to_numpy()).all()
    from scadf_lib.widgets import load_scene_model
    sm = load_scene_model(str(tmp_path / "run" / "best.pt"), str(path), max_trajectories=5)
    assert sm.feats.cfr.shape[2] == 16, "the routing inspector measures as the model was trained"
