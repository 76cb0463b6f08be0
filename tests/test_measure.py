"""The measurement model and the estimators on synthetic paths with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from scadf_lib import estimate as E
from scadf_lib import measure as M
from scadf_lib.schema import SPEED_OF_LIGHT

BAND, BANDWIDTH, K = 28.0, 50e6, 64


def one_path(n_ue: int, snr_db: float, distance_m: float = 80.0, direction_cosine: float = 0.3,
             config: M.MeasurementConfig = M.MeasurementConfig()) -> M.Paths:
    """``n_ue`` copies of one path at a known delay and direction, scaled to an SNR per element and
    subcarrier under ``config``'s link budget, each with its own random phase."""
    noise_var = 10 ** ((config.noise_dbm(BAND, BANDWIDTH) - config.tx_power_dbm) / 10)
    amp = np.sqrt(noise_var * 10 ** (snr_db / 10))
    phase = np.random.default_rng(5).uniform(0, 2 * np.pi, n_ue)
    return M.Paths(coef=(amp * np.exp(1j * phase))[:, None].astype(np.complex64),
                   delay_s=np.full((n_ue, 1), distance_m / SPEED_OF_LIGHT),
                   direction_cosine=np.full((n_ue, 1), direction_cosine), valid=np.ones((n_ue, 1), bool))


@pytest.mark.parametrize("snr_db", [0.0, 20.0])
def test_a_single_path_is_recovered_to_within_its_cramer_rao_bound(snr_db):
    cfg = M.MeasurementConfig(timing_offset_std_ns=0.0, seed=3)
    m = M.measure_paths(one_path(300, snr_db, config=cfg), BAND, BANDWIDTH, K, cfg)
    np.testing.assert_allclose(m.snr_db, snr_db, atol=1e-3)
    f = E.estimate(m)
    bound = E.crb(snr_db, m.offsets_hz, cfg.num_antennas, direction_cosine=0.3)
    assert np.isfinite(f["distance"]).all() and np.isfinite(f["aod"]).all()
    for name, truth in (("distance", 80.0), ("aod", np.arcsin(0.3))):
        err = f[name] - truth
        rmse = np.sqrt((err ** 2).mean())
        assert rmse < 1.25 * bound[name], f"{name}: RMSE {rmse:.3g} against the bound {bound[name]:.3g}"
        assert abs(err.mean()) < 3 * bound[name] / np.sqrt(len(err)) + 0.05 * bound[name], f"{name} is biased"
    gain_err = f["path_gain"] - 10 * np.log10(10 ** (snr_db / 10) * m.noise_var)
    assert np.sqrt((gain_err ** 2).mean()) < 1.25 * bound["path_gain"]


def test_a_timing_offset_biases_the_path_length_by_c_times_the_offset():
    cfg = M.MeasurementConfig(timing_offset_std_ns=10.0, seed=4)
    m = M.measure_paths(one_path(200, 20.0, config=cfg), BAND, BANDWIDTH, K, cfg)
    assert 7 < m.timing_offset_s.std() * 1e9 < 13
    f = E.estimate(m)
    np.testing.assert_allclose(f["distance"] - 80.0, SPEED_OF_LIGHT * m.timing_offset_s, atol=0.05)


def test_the_common_phase_is_drawn_per_measurement_and_no_estimate_depends_on_it():
    loud = {"tx_power_dbm": 150.0, "timing_offset_std_ns": 0.0, "seed": 6}  # noise 127 dB below the signal
    paths = one_path(50, 20.0)
    a, b = (M.measure_paths(paths, BAND, BANDWIDTH, K, M.MeasurementConfig(common_phase=c, **loud)) for c in (True, False))
    assert a.common_phase_rad.std() > 1.0 and not b.common_phase_rad.any()
    np.testing.assert_allclose(a.cfr, np.exp(1j * a.common_phase_rad)[:, None, None] * b.cfr, atol=1e-5 * np.abs(b.cfr).max())
    m = M.measure_paths(paths, BAND, BANDWIDTH, K, M.MeasurementConfig(timing_offset_std_ns=0.0))
    rotated = M.Measurement(**{**m.__dict__, "cfr": m.cfr * np.exp(1j * np.linspace(0, 6, 50))[:, None, None]})
    fa, fb = E.estimate(m), E.estimate(rotated)
    bound = E.crb(20.0, m.offsets_hz, 16, 0.3)  # the likelihood is float32: equal to a fraction of the bound
    for name in E.FEATURES:
        np.testing.assert_allclose(fa[name], fb[name], rtol=0, atol=0.3 * bound[name])


def test_below_the_detection_threshold_every_feature_is_missing():
    cfg = M.MeasurementConfig(timing_offset_std_ns=0.0)
    f = E.estimate(M.measure_paths(one_path(300, -35.0, config=cfg), BAND, BANDWIDTH, K, cfg))
    for name in E.FEATURES:
        assert np.isnan(f[name]).mean() > 0.98, f"{name} must be missing, not a guess, at -35 dB"


def test_noise_follows_the_link_budget():
    cfg = M.MeasurementConfig(tx_power_dbm=23.0, noise_figure_db=5.0)
    assert cfg.noise_dbm(2.6, 50e6) == pytest.approx(-174 + 10 * np.log10(50e6) + 5)
    assert M.MeasurementConfig().noise_figure(2.6) == 5.0 and M.MeasurementConfig().noise_figure(28.0) == 7.0
    silent = M.Paths(np.zeros((400, 1), np.complex64), np.zeros((400, 1)), np.zeros((400, 1)), np.ones((400, 1), bool))
    m = M.measure_paths(silent, 2.6, BANDWIDTH, K, cfg)
    expected = 10 ** ((-174 + 10 * np.log10(50e6) + 5 - 23) / 10)
    assert (np.abs(m.cfr) ** 2).mean() == pytest.approx(expected, rel=0.01)
    # a -100 dB path gain gives 23 - 100 - (-174 + 77 + 5) = 15 dB per element and subcarrier
    assert M.snr_db(-100.0, cfg, 2.6, 50e6) == pytest.approx(23 - 100 - (-174 + 10 * np.log10(50e6) + 5))


def test_a_measurement_is_fixed_by_its_seed_and_differs_with_another():
    paths = one_path(20, 0.0)
    a, b, c = (M.measure_paths(paths, BAND, BANDWIDTH, K, M.MeasurementConfig(seed=s)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.cfr, b.cfr)
    assert not np.allclose(a.cfr, c.cfr)


def test_the_array_cfr_of_one_path_is_a_ula_steering_vector_times_a_delay_ramp():
    paths = one_path(1, 30.0, distance_m=45.0, direction_cosine=-0.6)
    offsets = np.linspace(-25e6, 25e6, K, endpoint=False)
    h = M.array_cfr(paths, offsets, 16)[0]
    n, f = np.arange(16)[:, None], offsets[None, :]
    expected = paths.coef[0, 0] * np.exp(1j * np.pi * -0.6 * n) * np.exp(-2j * np.pi * f * 45.0 / SPEED_OF_LIGHT)
    np.testing.assert_allclose(h, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("kwargs, message", [
    ({"noise_figure_db": -3.0}, "noise figure is >= 0 dB"),
    ({"num_antennas": 0}, "at least 1 element"),
    ({"timing_offset_std_ns": -1.0}, ">= 0 ns"),
])
def test_bad_measurement_settings_fail_early_naming_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        M.MeasurementConfig(**kwargs)


def test_an_unknown_input_name_is_refused_with_the_choices():
    assert M.check_inputs("measured") == "measured"
    with pytest.raises(ValueError, match=r"choose one of \['oracle', 'measured'\]"):
        M.check_inputs("estimated")


def test_a_path_near_endfire_is_not_folded_to_the_other_end_of_the_array():
    """At s = 0.985 the nearest FFT beam is s = 1, which is also s = -1: the refined estimate must
    come back at +80 deg, not at -90 deg."""
    cfg = M.MeasurementConfig(timing_offset_std_ns=0.0)
    f = E.estimate(M.measure_paths(one_path(50, 20.0, direction_cosine=0.985, config=cfg), BAND, BANDWIDTH, K, cfg))
    np.testing.assert_allclose(f["aod"], np.arcsin(0.985), atol=np.radians(0.5))
