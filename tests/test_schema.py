"""Schema validation and loading: good files load, bad ones are refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from scadf_lib.schema import DatasetError, load_fingerprints, parse_band, save_fingerprints, validate


def test_synthetic_dataset_round_trips(synthetic_nc, synthetic_ds):
    ds = load_fingerprints(synthetic_nc)
    assert ds.sizes["band"] == 3 and ds.sizes["subcarrier"] == 64
    from scadf_lib.schema import cfr_relative_error
    assert cfr_relative_error(synthetic_ds, ds).max() < 1e-4  # the CFR is stored packed (int16)
    assert ds["los"].dtype == bool
    assert ds["band"].attrs["units"] == "GHz"


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*data/"):
        load_fingerprints(tmp_path / "nope.nc")


def test_truncated_file_is_refused(tmp_path, synthetic_nc):
    bad = tmp_path / "truncated.nc"
    bad.write_bytes(synthetic_nc.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="not a readable netCDF4 file"):
        load_fingerprints(bad)


def test_missing_variable_is_named(synthetic_ds):
    with pytest.raises(DatasetError, match="'aod' is missing"):
        validate(synthetic_ds.drop_vars("aod"))


def test_wrong_units_is_named(synthetic_ds):
    ds = synthetic_ds.copy()
    ds["distance"] = ds["distance"].assign_attrs(units="km")
    with pytest.raises(DatasetError, match="'distance' has units 'km', expected 'm'"):
        validate(ds)


def test_nan_is_refused(synthetic_ds):
    ds = synthetic_ds.copy(deep=True)
    ds["path_gain"][0, 3] = np.nan
    with pytest.raises(DatasetError, match="'path_gain' holds 1 NaN/inf"):
        validate(ds)


def test_save_refuses_invalid_and_keeps_old_file(tmp_path, synthetic_ds):
    path = tmp_path / "f.nc"
    save_fingerprints(synthetic_ds, path)
    before = path.read_bytes()
    with pytest.raises(DatasetError):
        save_fingerprints(synthetic_ds.drop_vars("x"), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("text,expected", [("28", 28.0), (2.6, 2.6), ("6.0", 6.0)])
def test_parse_band(text, expected):
    assert parse_band(text) == expected


@pytest.mark.parametrize("bad", ["7", "abc", None])
def test_parse_band_unknown(bad):
    with pytest.raises(ValueError, match="band"):
        parse_band(bad)


def test_packed_cfr_round_trips_within_1e3_over_a_wide_dynamic_range(tmp_path, synthetic_ds):
    """The CFR is stored as int16 per (band, ue) scaled; levels from -40 to -160 dB (path gains of
    near and far UEs) come back with a relative error far below 1e-3, and in float32."""
    from scadf_lib.schema import cfr_relative_error

    ds = synthetic_ds.copy(deep=True)
    level = 10 ** (-np.linspace(40, 160, ds.sizes["ue"]) / 20)
    ds["cfr_real"] = ds["cfr_real"] * level[None, :, None, None]
    ds["cfr_imag"] = ds["cfr_imag"] * level[None, :, None, None]
    path = tmp_path / "packed.nc"
    save_fingerprints(ds, path)
    back = load_fingerprints(path)
    assert back["cfr_real"].dtype == np.float32 and "cfr_scale" not in back
    err = cfr_relative_error(ds, back)
    assert err.max() < 1e-4
    assert err.max() > 0  # it is packed, not stored exactly
    plain = tmp_path / "plain.nc"
    save_fingerprints(ds, plain, pack=False)
    assert path.stat().st_size < 0.7 * plain.stat().st_size


def _with(ds, name, values):
    out = ds.copy(deep=True)
    out[name] = out[name].copy(data=values)
    return out


def test_physical_rules_refuse_bad_inputs_with_the_fix(synthetic_ds):
    ds = synthetic_ds
    with pytest.raises(DatasetError, match=r"'aod' must be an angle in \[-pi, pi\] rad.*look like degrees.*deg2rad"):
        validate(_with(ds, "aod", np.rad2deg(ds.aod.values)))
    with pytest.raises(DatasetError, match=r"'distance' must be > 0 m.*1 values <= 0"):
        d = ds.distance.values.copy()
        d[0, 3] = -d[0, 3]
        validate(_with(ds, "distance", d))
    with pytest.raises(DatasetError, match=r"'path_gain' must be in dB.*look linear.*10 \* numpy.log10"):
        validate(_with(ds, "path_gain", 10 ** (ds.path_gain.values / 10)))
    x = ds.x.values.copy()
    y = ds.y.values.copy()
    x[5], y[5] = x[4], y[4]
    x[9], y[9] = x[4], y[4]
    dup = _with(_with(ds, "x", x), "y", y)
    with pytest.raises(DatasetError, match=r"2 UEs repeat the \(x, y\) position.*drop_duplicate_positions"):
        validate(dup)
    from scadf_lib.schema import drop_duplicate_positions
    merged = validate(drop_duplicate_positions(dup))
    assert merged.sizes["ue"] == ds.sizes["ue"] - 2 and "2 UEs with a duplicated position" in merged.attrs["history"]
    odd = ds.assign_coords(band=ds.band.values * 0 + np.array([3.5, 6.0, 28.0])[: ds.sizes["band"]])
    odd["band"].attrs = ds["band"].attrs
    with pytest.raises(DatasetError, match="declared_bands_ghz"):
        validate(odd)
    odd.attrs["declared_bands_ghz"] = [3.5]
    validate(odd)


def test_the_shipped_data_pass_the_physical_rules():
    from scadf_lib.fileio import project_path
    for scene in ("munich", "etoile", "florence"):
        load_fingerprints(project_path(f"data/{scene}.nc"))  # raises on any broken rule


@pytest.mark.parametrize("scene", ["munich", "etoile", "florence"])
def test_the_shipped_data_are_version_2_traced_with_roof_edges_and_hold_999_per_mille_of_the_power(scene):
    import json

    from scadf_lib.fileio import project_path
    from scadf_lib.raytrace import DEFAULT_BS_POSITION
    from scadf_lib.schema import data_version, has_paths
    ds = load_fingerprints(project_path(f"data/{scene}.nc"))
    cfg = json.loads(ds.attrs["config_json"])
    assert data_version(ds) == 2 and has_paths(ds)
    assert cfg["edge_diffraction"] and cfg["deterministic"] and cfg["chunk_size"] <= 25
    assert tuple(cfg["bs_position_m"]) == DEFAULT_BS_POSITION[scene]
    assert (ds["stored_power_share"].values >= 0.999 - 1e-9).all()
    # the file stores no CFR: element 0 is rebuilt at load from the paths, a few percent off the CFR of
    # every path (the 0.1 % of the power left out), as the tracer recorded per UE and band
    assert ds.attrs["cfr_storage"] and ds.sizes["antenna"] == 1
    err = ds["cfr_rebuild_error"].values
    assert np.median(err) < 0.03 and np.percentile(err, 99) < 0.1
    # the dominant path (the oracle features) is among the stored ones, at every band
    power = ds["path_coef_real"] ** 2 + ds["path_coef_imag"] ** 2
    dominant = power.argmax("path").values  # (band, ue)
    delay = ds["path_delay"].values[np.arange(ds.sizes["ue"])[None, :], dominant]
    np.testing.assert_allclose(delay * 299_792_458.0, ds["distance"].values, rtol=1e-5)


def test_a_dataset_without_cfr_is_flagged_saved_and_loaded(tmp_path, synthetic_ds):
    from scadf_lib.trajectories import build_features
    bare = synthetic_ds.drop_vars(["cfr_real", "cfr_imag"])
    with pytest.raises(DatasetError, match="'cfr_real' is missing"):
        validate(bare)
    bare.attrs["has_cfr"] = 0
    save_fingerprints(bare, tmp_path / "bare.nc")
    back = load_fingerprints(tmp_path / "bare.nc")
    feats = build_features(back)
    assert feats.cfr.shape[2] == 0 and feats.numeric.shape[-1] == 6
    flagged_but_full = synthetic_ds.copy()
    flagged_but_full.attrs["has_cfr"] = 0
    with pytest.raises(DatasetError, match="has_cfr = 0"):
        validate(flagged_but_full)


def test_provenance_comes_back_as_plain_python_values(synthetic_nc):
    from scadf_lib.schema import load_fingerprints, provenance
    facts = provenance(load_fingerprints(synthetic_nc))
    assert facts["scene"] and isinstance(facts["bs_position_m"], list)
    assert all(not type(v).__module__.startswith("numpy") for v in facts.values()), facts
