"""Ray-tracing physics on tiny scenes (seconds). Needs Sionna RT with a working backend."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scadf_lib.raytrace import SPEED_OF_LIGHT, TraceConfig

ROOT = Path(__file__).resolve().parents[1]


def _sionna_or_skip():
    try:
        from scadf_lib.raytrace import _import_sionna
        return _import_sionna()
    except Exception as exc:  # noqa: BLE001 - any failure means no backend on this machine
        if os.environ.get("CI"):
            raise  # CI installs libllvm19: a missing backend there is a failure, not a skip
        pytest.skip(f"Sionna RT backend unavailable ({exc}); install libllvm19 (make setup)")


pytestmark = pytest.mark.sionna
BS = (0.0, 0.0, 10.0)
UES = ((30.0, 5.0), (-20.0, 40.0), (55.0, -35.0), (5.0, -80.0))


@pytest.fixture(scope="module")
def free_space(tmp_path_factory):
    _sionna_or_skip()
    from scadf_lib.raytrace import generate
    cfg = TraceConfig(scene="empty", bs_position_m=BS, ue_positions_m=UES, bands_ghz=(2.6, 28.0),
                      diffraction=False, samples_per_src=10_000, chunk_size=2, stored_antennas=None, bs_num_antennas=4)
    return generate(cfg, tmp_path_factory.mktemp("rt") / "free.nc", progress=False)


def _geometry():
    ue = np.column_stack([np.asarray(UES), np.full(len(UES), 1.5)])
    d = ue - np.asarray(BS)
    return np.linalg.norm(d, axis=1), np.arctan2(d[:, 1], d[:, 0])


def test_los_distance_equals_geometry(free_space):
    dist, _ = _geometry()
    assert free_space["los"].values.all()
    np.testing.assert_allclose(free_space["distance"].values, np.broadcast_to(dist, (2, len(UES))), rtol=1e-4)


def test_aod_is_atan2_from_bs_to_ue_and_aoa_opposite(free_space):
    _, az = _geometry()
    np.testing.assert_allclose(free_space["aod"].values, np.broadcast_to(az, (2, len(UES))), atol=1e-4)
    diff = np.angle(np.exp(1j * (free_space["aoa"].values - free_space["aod"].values - np.pi)))
    np.testing.assert_allclose(diff, 0.0, atol=1e-4)


def test_free_space_gain_scales_with_frequency(free_space):
    dist, _ = _geometry()
    g = free_space["path_gain"].values
    np.testing.assert_allclose(g[0] - g[1], 20 * math.log10(28.0 / 2.6), atol=0.01)
    lam = SPEED_OF_LIGHT / 2.6e9
    np.testing.assert_allclose(g[0], 20 * np.log10(lam / (4 * np.pi * dist)), atol=0.01)


def test_cfr_energy_matches_path_gain_single_path(free_space):
    h = free_space["cfr_real"].values + 1j * free_space["cfr_imag"].values  # (band, ue, ant, k)
    energy_db = 10 * np.log10((np.abs(h) ** 2).mean(axis=(2, 3)))
    np.testing.assert_allclose(energy_db, free_space["path_gain"].values, atol=0.01)


def test_cfr_phase_across_antennas_is_a_ula_steering_vector(free_space):
    """Half-wavelength ULA: adjacent elements differ by pi*sin(angle to the array axis)."""
    h = free_space["cfr_real"].values + 1j * free_space["cfr_imag"].values
    ratio = h[:, :, 1:, :] / h[:, :, :-1, :]
    assert np.allclose(np.abs(ratio), 1.0, atol=1e-3)
    step = np.angle(ratio)
    assert np.allclose(step, step[:, :, :1, :1], atol=1e-3)  # one phase step per UE and band


def test_street_canyon_multipath(tmp_path):
    _sionna_or_skip()
    from scadf_lib.raytrace import generate
    cfg = TraceConfig(scene="simple_street_canyon", area_size_m=40.0, grid_spacing_m=5.0, bands_ghz=(2.6, 28.0),
                      diffraction=False, samples_per_src=100_000, chunk_size=40)
    ds = generate(cfg, tmp_path / "canyon.nc", progress=False)
    assert ds.sizes["ue"] > 10
    assert ds.attrs["candidates_total"] == ds.sizes["ue"] + ds.attrs["candidates_indoor_dropped"] + \
        ds.attrs["candidates_no_path_dropped"]
    assert (ds["num_paths"].values > 1).mean() > 0.5  # reflections present
    los = ds["los"].values[0]
    ue = np.column_stack([ds.x.values, ds.y.values, ds.z.values])
    geo = np.linalg.norm(ue - np.asarray(ds.attrs["bs_position_m"]), axis=1)
    # the LOS path is the strongest one at short range, so the dominant distance is geometric
    np.testing.assert_allclose(ds["distance"].values[0][los], geo[los], rtol=1e-3)
    # multipath: CFR energy and summed path power agree on average (cross terms average out)
    h = ds["cfr_real"].values + 1j * ds["cfr_imag"].values
    ratio = (np.abs(h) ** 2).mean(axis=(2, 3)) / 10 ** (ds["path_gain"].values / 10)
    assert 0.7 < np.median(ratio) < 1.4


SCRIPT = """
import sys
from scadf_lib.raytrace import TraceConfig, generate
cfg = TraceConfig(scene="empty", bs_position_m=(0.0, 0.0, 10.0), diffraction=False, samples_per_src=10000,
                  chunk_size=3, bands_ghz=(2.6, 6.0, 28.0),
                  ue_positions_m=tuple((10.0 + 3 * i, -20.0 + 2 * i) for i in range(30)))
generate(cfg, sys.argv[1], progress=False)
"""


def test_generation_resumes_after_sigkill(tmp_path):
    _sionna_or_skip()
    out = tmp_path / "killed.nc"
    parts = tmp_path / "killed.nc.parts"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("chunk_*.npz"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(parts.glob("chunk_*.npz"))
    assert 3 <= len(done) < 10, "the run should have been killed part-way"
    assert not out.exists(), "no final file before the run completes"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out)], env=env, check=True)
    assert out.exists() and not parts.exists()
    # an uninterrupted run gives the same data
    ref = tmp_path / "ref.nc"
    subprocess.run([sys.executable, "-c", SCRIPT, str(ref)], env=env, check=True)
    from scadf_lib.schema import load_fingerprints
    a, b = load_fingerprints(out), load_fingerprints(ref)  # the CFR rebuilt from the stored paths
    for name in ("cfr_real", "cfr_imag", "distance", "path_gain", "aod", "path_delay", "path_coef_real"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert a.attrs["chunks_resumed"] == len(done), "finished chunks must be reused, not re-traced"
    assert b.attrs["chunks_resumed"] == 0 and a.attrs["chunks_total"] == 10


def test_resume_with_other_config_is_refused(tmp_path):
    _sionna_or_skip()
    from scadf_lib.raytrace import _check_manifest
    parts = tmp_path / "x.nc.parts"
    _check_manifest(parts, TraceConfig(scene="munich"))
    with pytest.raises(ValueError, match="another configuration"):
        _check_manifest(parts, TraceConfig(scene="munich", seed=7))


def test_geometry_reuse_matches_per_band_solver():
    """Tracing geometry once and recomputing coefficients per band gives the per-band solver's CFR."""
    _sionna_or_skip()
    import dataclasses
    from scadf_lib.raytrace import candidate_grid, ground_height, load_scene, setup_radio, trace_chunk
    cfg = TraceConfig(scene="simple_street_canyon", area_size_m=40.0, grid_spacing_m=5.0, bands_ghz=(2.6, 6.0, 28.0),
                      diffraction=True, samples_per_src=100_000, stored_antennas=None)
    scene = load_scene(cfg.scene)
    setup_radio(scene, cfg)
    xy = candidate_grid(cfg)
    z = ground_height(scene, xy)
    xyz = np.column_stack([xy[np.isfinite(z)], z[np.isfinite(z)] + 1.5])
    reuse = trace_chunk(scene, xyz, cfg, seed=3)
    naive = trace_chunk(scene, xyz, dataclasses.replace(cfg, reuse_geometry=False), seed=3)
    a, b = naive["cfr"].reshape(3, len(xyz), -1), reuse["cfr"].reshape(3, len(xyz), -1)
    rel = np.linalg.norm(a - b, axis=-1) / np.linalg.norm(a, axis=-1)
    assert np.median(rel) < 1e-4
    assert (rel < 1e-3).mean() > 0.95, "geometry reuse must reproduce the per-band CFR"
    np.testing.assert_array_equal(reuse["los"], naive["los"])


def test_bs_is_placed_above_the_highest_roof_near_the_centre_of_any_scene():
    _sionna_or_skip()
    from scadf_lib.raytrace import _cast_down, auto_bs_position, ground_height, load_scene, scene_center
    scene = load_scene("simple_street_canyon")
    x, y, z = auto_bs_position(scene, search_radius_m=40.0, mast_m=5.0)
    assert np.isnan(ground_height(scene, np.array([[x, y]])))[0], "the BS should stand on a roof, not the street"
    cx, cy = scene_center(scene)
    assert math.hypot(x - cx, y - cy) <= 40.0
    ring = np.array([[cx + r * math.cos(a), cy + r * math.sin(a)] for r in (0, 10, 25, 39) for a in np.linspace(0, 6, 12)])
    _, tops, hit = _cast_down(scene, ring)
    assert z == pytest.approx(tops[hit].max() + 5.0, abs=3.0) and z >= tops[hit].max() + 5.0 - 1e-3


def test_a_scene_without_a_default_bs_position_is_traced_with_an_automatic_one(tmp_path):
    _sionna_or_skip()
    from scadf_lib.raytrace import DEFAULT_BS_POSITION, generate
    assert "simple_street_canyon_with_cars" not in DEFAULT_BS_POSITION
    cfg = TraceConfig(scene="simple_street_canyon_with_cars", area_size_m=20.0, grid_spacing_m=10.0,
                      bands_ghz=(28.0,), diffraction=False, samples_per_src=10_000, bs_num_antennas=2)
    with pytest.raises(ValueError, match="--bs-position X Y Z"):
        cfg.bs_position
    ds = generate(cfg, tmp_path / "cars.nc", progress=False)
    assert ds.attrs["bs_position_m"][2] > 10.0 and ds.sizes["ue"] > 0


@pytest.mark.parametrize("scene", ["munich", "etoile", "florence"])
def test_the_cfr_synthesised_from_the_stored_paths_equals_the_tracers_on_every_scene_and_band(scene, tmp_path):
    """Every path stored (no power tail), written and read back: the 16-element CFR that
    scadf_lib.measure synthesises from the file's paths equals the tracer's own CFR to 1e-3."""
    _sionna_or_skip()
    from scadf_lib.measure import Paths, array_cfr
    from scadf_lib.raytrace import DEFAULT_BS_POSITION, generate
    from scadf_lib.schema import load_fingerprints
    bx, by, _ = DEFAULT_BS_POSITION[scene]
    ues = tuple((bx + dx, by + dy) for dx, dy in ((25, 3), (-18, 30), (40, -35), (-45, -20), (5, 55), (60, 10)))
    cfg = TraceConfig(scene=scene, ue_positions_m=ues, stored_antennas=None, stored_power_tail=0.0,
                      max_stored_paths=1024, samples_per_src=100_000)
    generate(cfg, tmp_path / f"{scene}.nc", progress=False)
    ds = load_fingerprints(tmp_path / f"{scene}.nc")
    assert ds.sizes["ue"] >= 3, "most of these points get a path"
    np.testing.assert_allclose(ds["stored_power_share"].values, 1.0, atol=1e-9)
    for band in ds["band"].values:
        h = array_cfr(Paths.from_dataset(ds, float(band)), ds["subcarrier_offset"].values, 16)
        ref = (ds["cfr_real"] + 1j * ds["cfr_imag"]).sel(band=band).values
        rel = np.linalg.norm((h - ref).reshape(len(h), -1), axis=1) / np.linalg.norm(ref.reshape(len(h), -1), axis=1)
        assert rel.max() < 1e-3, f"{scene} {band} GHz: relative CFR error up to {rel.max():.2e}"


def _path_power(out: dict, ue: int) -> dict[int, float]:
    """A traced UE's paths at 28 GHz: delay (ps, rounded) -> power."""
    power = np.abs(out["path_coef"][2, ue]) ** 2
    return {round(t * 1e12): p for t, p in zip(out["path_tau"][ue], power) if p > 0}


def test_a_ues_paths_do_not_depend_on_how_many_ues_are_traced_with_it():
    """25 munich UEs in one solver call (the generator's chunk) against some of them traced alone:
    the same dominant path, and the paths found in one call but not the other hold under 1e-3 of the
    UE's power (measured: at most 2.4e-4; at 500 UEs per call a third of the paths were lost)."""
    _sionna_or_skip()
    from scadf_lib.raytrace import candidate_grid, ground_height, load_scene, setup_radio, trace_chunk
    cfg = TraceConfig(scene="munich", area_size_m=60.0, grid_spacing_m=6.0, stored_power_tail=0.0,
                      max_stored_paths=1024)
    scene = load_scene(cfg.scene)
    setup_radio(scene, cfg)
    xy = candidate_grid(cfg)
    z = ground_height(scene, xy)
    xyz = np.column_stack([xy[np.isfinite(z)], z[np.isfinite(z)] + 1.5])[:cfg.chunk_size]
    together = trace_chunk(scene, xyz, cfg, seed=7)
    for i in (4, 8, 14, 22):
        alone = trace_chunk(scene, xyz[i:i + 1], cfg, seed=7)
        a, b = _path_power(together, i), _path_power(alone, 0)
        assert len(a) > 10 and abs(len(a) - len(b)) <= 0.1 * len(a)
        differing = sum(a.get(k, 0) + b.get(k, 0) for k in set(a) ^ set(b)) / sum(a.values())
        assert differing < 1e-3, f"UE {i}: paths holding {differing:.1e} of the power depend on the chunk"
        for name in ("distance", "aod"):  # the dominant path
            np.testing.assert_allclose(together[name][:, i], alone[name][:, 0], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(together["path_gain"][:, i], alone["path_gain"][:, 0], atol=0.02)  # dB
