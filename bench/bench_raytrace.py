"""Ray tracing: UE-bands per second, per-band PathSolver loop vs geometry traced once (one run).

Also the CFR difference between the two, next to the run-to-run difference of the per-band loop
itself. With diffraction on, Sionna's CPU tracer is not reproducible between calls (its sampling of
diffraction edges varies), so that comparison is bounded by the tracer's own noise; reflections only
is (nearly) reproducible and shows the error of the reuse itself.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from common import write
from scadf_lib.raytrace import TraceConfig, candidate_grid, ground_height, load_scene, setup_radio, trace_chunk


def rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1)
    return np.linalg.norm(a - b, axis=-1) / np.maximum(np.linalg.norm(a, axis=-1), 1e-30)


def compare(scene, xyz: np.ndarray, cfg: TraceConfig) -> dict[str, float]:
    """Per-band loop, geometry reuse, per-band loop again (after a warm-up of both): times and CFR errors."""
    for reuse in (False, True):  # warm-up (JIT compilation of the kernels of both code paths)
        trace_chunk(scene, xyz[:20], dataclasses.replace(cfg, reuse_geometry=reuse), seed=0)
    runs, times = {}, {}
    for label, reuse in (("per_band", False), ("reuse", True), ("per_band_again", False)):
        t0 = time.perf_counter()
        runs[label] = trace_chunk(scene, xyz, dataclasses.replace(cfg, reuse_geometry=reuse), seed=1)
        times[label] = time.perf_counter() - t0
    ue_bands = len(xyz) * len(cfg.bands_ghz)
    err = rel_err(runs["per_band_again"]["cfr"], runs["reuse"]["cfr"])
    err_first = rel_err(runs["per_band"]["cfr"], runs["reuse"]["cfr"])
    noise = rel_err(runs["per_band"]["cfr"], runs["per_band_again"]["cfr"])
    return {"per_band_s": times["per_band"], "reuse_s": times["reuse"],
            "per_band_ue_bands_per_s": ue_bands / times["per_band"], "reuse_ue_bands_per_s": ue_bands / times["reuse"],
            "speedup": times["per_band"] / times["reuse"],
            "cfr_rel_err_median": float(np.median(err)), "cfr_rel_err_p99": float(np.percentile(err, 99)),
            "share_below_1e-3": float((err < 1e-3).mean()),
            "vs_first_per_band_rel_err_p99": float(np.percentile(err_first, 99)),
            "vs_first_per_band_share_below_1e-3": float((err_first < 1e-3).mean()),
            "per_band_run_to_run_rel_err_p99": float(np.percentile(noise, 99)),
            "per_band_run_to_run_share_below_1e-3": float((noise < 1e-3).mean())}


def main(n_ue: int = 300) -> None:
    cfg = TraceConfig(scene="munich", grid_spacing_m=4.0, area_size_m=120.0, samples_per_src=300_000)
    scene = load_scene(cfg.scene)
    setup_radio(scene, cfg)
    xy = candidate_grid(cfg)
    z = ground_height(scene, xy)
    xyz = np.column_stack([xy[np.isfinite(z)], z[np.isfinite(z)] + 1.5])[:n_ue]
    settings = {}
    for label, diffraction in (("diffraction", True), ("reflections_only", False)):
        settings[label] = compare(scene, xyz, dataclasses.replace(cfg, diffraction=diffraction))
        print(label, settings[label], flush=True)
    write("raytrace", {"scene": cfg.scene, "ues": len(xyz), "bands": cfg.bands_ghz,
                       "samples_per_src": cfg.samples_per_src, "settings": settings})


if __name__ == "__main__":
    main()
