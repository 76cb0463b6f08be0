"""Stored paths in files, the estimator study's tables and report section, and the data versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scadf_lib import measurement_study as S
from scadf_lib.dataversions import V1_BLOBS, path_statistics, restore_v1
from scadf_lib.measure import MeasurementConfig, Paths, array_cfr, measure, require_paths
from scadf_lib.schema import DatasetError, data_version, has_paths, load_fingerprints, save_fingerprints
from synthetic import synthetic_fingerprints


@pytest.fixture(scope="module")
def with_paths():
    return synthetic_fingerprints(n_side=12, with_paths=True)


def test_stored_paths_survive_the_file_and_rebuild_its_cfr(tmp_path, with_paths):
    path = tmp_path / "paths.nc"
    save_fingerprints(with_paths, path)
    back = load_fingerprints(path)
    assert has_paths(back) and "path_coef_scale" not in back
    for band in (2.6, 28.0):
        h = array_cfr(Paths.from_dataset(back, band), back["subcarrier_offset"].values, 1)[:, 0]
        ref = (back["cfr_real"] + 1j * back["cfr_imag"]).sel(band=band).values[:, 0]
        rel = np.linalg.norm(h - ref, axis=1) / np.linalg.norm(ref, axis=1)
        assert rel.max() < 1e-3
    # departure angles are stored exactly (float32), the UE's arrival angles in 1e-4 rad steps
    np.testing.assert_array_equal(back["path_aod_az"].values, with_paths["path_aod_az"].values)
    assert 0 < np.abs(back["path_aoa_az"].values - with_paths["path_aoa_az"].values).max() < 1e-4


def test_a_file_with_broken_paths_is_refused_naming_the_variable(tmp_path, with_paths):
    with pytest.raises(DatasetError, match="path variable 'path_delay' is missing"):
        save_fingerprints(with_paths.drop_vars("path_delay"), tmp_path / "broken.nc")


def test_a_dataset_without_paths_cannot_be_measured_and_says_how_to_get_one():
    old = synthetic_fingerprints(n_side=4)
    assert data_version(old) == 2 and not has_paths(old)  # written by today's code, but without paths
    with pytest.raises(ValueError, match="stores no paths.*make data"):
        require_paths(old)


def test_error_table_has_every_band_condition_and_feature_with_its_bound(with_paths):
    est = S.measured_features(with_paths, MeasurementConfig(tx_power_dbm=40.0, timing_offset_std_ns=0.0))
    rows = pd.DataFrame(S.error_rows("synthetic", with_paths, est, 16))
    assert len(rows) == 3 * 2 * 3  # bands x LOS/NLOS x features
    los = rows[(rows.condition == "LOS") & (rows.feature == "distance")]
    # the LOS path is the first and the strongest, but the ground reflection arrives within one 6 m delay
    # bin of it and pulls the estimate by about half a metre: multipath, not noise, sets the error
    assert (los.median_abs_error < 1.0).all() and (los.missing_share == 0).all()
    assert (los.median_abs_error > 10 * los.crb_at_median_snr).all()
    assert (rows.crb_at_median_snr > 0).all() and (rows.median_abs_error >= 0).all()
    table = S.errors_table(rows, "synthetic")
    assert list(table.columns)[:3] == ["band (GHz)", "UEs", "median SNR (dB)"] and len(table) == 3 * 2
    assert "path length error (m), median / p90" in table.columns and "angle bound (deg)" in table.columns


def test_a_weak_link_marks_features_missing_instead_of_guessing(with_paths):
    est = S.measured_features(with_paths, MeasurementConfig(tx_power_dbm=-60.0))
    assert np.isnan(est["distance"].values).mean() > 0.9 and np.isnan(est["aod"].values).mean() > 0.9


def test_the_report_section_renders_the_committed_table(tmp_path, with_paths):
    assert S.report_section(tmp_path / "nothing") == ""
    (tmp_path / "data").mkdir()
    save_fingerprints(with_paths.assign_attrs(scene="synthetic"), tmp_path / "data" / "synthetic.nc")
    S.run_study(("synthetic",), str(tmp_path / "data"), str(tmp_path / "out"), MeasurementConfig(seed=2))
    text = S.report_section(tmp_path / "out")
    assert "## What a base station measures" in text and "**synthetic**" in text and "path length bound (m)" in text
    assert "times its single-path bound" in text
    assert text == S.report_section(tmp_path / "out"), "rendered from the files alone"


def test_measurements_of_a_subset_equal_those_of_the_same_ues_in_the_whole_set(with_paths):
    """The impairments are drawn per UE in file order from the seed: a subset draws its own, so only
    its size and ordering are checked here, and that it is reproducible."""
    a, b = S.subset(with_paths, 50, seed=1), S.subset(with_paths, 50, seed=1)
    np.testing.assert_array_equal(a["ue"].values, b["ue"].values)
    assert np.all(np.diff(a["ue"].values) > 0) and S.subset(with_paths, None) is with_paths
    with pytest.raises(ValueError, match="positive number of UEs"):
        S.subset(with_paths, 0)
    m1, m2 = measure(a, 28.0), measure(b, 28.0)
    np.testing.assert_array_equal(m1.cfr, m2.cfr)


def test_the_link_snr_without_a_cfr_is_the_measurements_own(with_paths):
    from scadf_lib.measure import link_snr_db
    for band in (2.6, 28.0):
        for cfg in (MeasurementConfig(), MeasurementConfig(tx_power_dbm=MeasurementConfig().tx_power_dbm - 20)):
            snr = link_snr_db(with_paths, band, cfg)
            np.testing.assert_array_equal(snr, measure(with_paths, band, cfg).snr_db)
            assert snr.shape == (with_paths.sizes["ue"],) and np.ptp(snr) > 10  # per UE, from its own paths
    low = link_snr_db(with_paths, 28.0, MeasurementConfig(tx_power_dbm=MeasurementConfig().tx_power_dbm - 20))
    np.testing.assert_allclose(link_snr_db(with_paths, 28.0) - low, 20.0)


def test_path_statistics_measure_the_nlos_detour(with_paths):
    stats = path_statistics(with_paths)
    assert stats["data_version"] == 2 and stats["mean_stored_paths"] == 2
    assert 0 < stats["los_share"] < 1 and stats["nlos_median_dominant_over_direct"] > 1


def test_data_version_1_is_restored_byte_for_byte_from_git(tmp_path):
    try:
        written = restore_v1(tmp_path)
    except RuntimeError as exc:  # a clone without history: the message names the fix
        assert "Clone with history" in str(exc)
        pytest.skip("no git history here")
    import subprocess
    for p in written:
        blob = subprocess.run(["git", "hash-object", str(p)], capture_output=True, text=True).stdout.strip()
        assert blob == V1_BLOBS[p.stem]
    assert data_version(load_fingerprints(written[0])) == 1


def test_interactions_are_stored_one_hex_digit_per_bounce_first_lowest():
    from scadf_lib.paths import decode_interactions, interaction_codes
    inter = np.array([[[0, 1, 8]], [[0, 8, 1]], [[0, 0, 1]]])  # (depth, ue, path): LOS, refl+diffr, diffr+refl+refl
    codes = interaction_codes(inter)
    assert codes.tolist() == [[0, 0x81, 0x118]]
    assert [decode_interactions(c) for c in codes[0]] == [[], ["specular", "diffraction"],
                                                          ["diffraction", "specular", "specular"]]


def test_a_path_reported_twice_is_counted_once():
    from scadf_lib.raytrace import duplicate_paths
    tau = np.array([[3.0, 1.0, 3.0, 2.0, 3.0], [1.0, 1.0, 1.0, 0.0, 0.0]])
    az = np.array([[0.5, 0.1, 0.5, 0.2, 0.6], [0.1, 0.1, 0.2, 0.0, 0.0]])
    valid = np.array([[True, True, True, True, True], [True, True, True, False, False]])
    dup = duplicate_paths(valid, tau, az)
    # UE 0: path 2 repeats path 0 (same delay and angle), path 4 has another angle; UE 1: path 1 repeats
    # path 0, the invalid padding is never a duplicate
    assert dup.tolist() == [[False, False, True, False, False], [False, True, False, False, False]]


def test_the_mirror_ambiguity_check_finds_ues_mirrored_across_the_array_axis(with_paths):
    """A scene and its mirror image across the array axis (x -> -x about the BS at x = 0): the global
    azimuth tells them apart, the angle from broadside that a ULA measures does not."""
    import xarray as xr
    mirror = with_paths.copy(deep=True)
    mirror["x"] = -mirror["x"]
    for name in ("aod", "path_aod_az"):
        mirror[name] = mirror[name].copy(data=np.angle(np.exp(1j * (np.pi - mirror[name].values))))
    both = xr.concat([with_paths, mirror.assign_coords(ue=mirror.ue + with_paths.sizes["ue"])], dim="ue")
    rows = {r["angle"]: r for r in S.mirror_ambiguity_rows("mirrored", both, k=3, test_share=0.3)}
    assert rows["angle from broadside"]["mse_m2"] > 20 * rows["global azimuth"]["mse_m2"]
