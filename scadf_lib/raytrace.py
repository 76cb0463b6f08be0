"""Ray-traced multimodal fingerprints with NVIDIA Sionna RT 2.x.

One base station (BS) with a uniform linear array (ULA, half-wavelength spacing, isotropic,
vertical polarisation) serves single-antenna UEs at ``ue_height_m`` above the ground, on a regular
grid of candidate points inside a square area of interest. Candidates inside buildings are removed
(a ray cast straight down must first hit the ground object), then each chunk of UEs is traced once
per carrier band and reduced to the fingerprint of :mod:`scadf_lib.schema`.

Long runs are chunked and resumable: every finished chunk is written atomically to
``<out>.parts/``; a killed run restarted with the same configuration re-traces nothing that was
finished, and the final netCDF file appears only when complete (atomic rename).

Command line::

    python -m scadf_lib.raytrace --scene munich --out data/munich.nc --area-size 140 --spacing 2
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm import tqdm  # text bars: a saved notebook shows their last state, not a stale widget

from scadf_lib.fileio import atomic_path, write_json_atomic
from scadf_lib.paths import PATH_KEYS, interaction_codes, path_variables, stored_paths, ue_axis
from scadf_lib.schema import (CFR_FROM_PATHS, DATA_VERSION, KNOWN_BANDS_GHZ, SPEED_OF_LIGHT, cfr_from_stored_paths,
                              fingerprint_content, save_fingerprints, subcarrier_offsets_hz)


#: Default BS position (x, y, z in metres, scene frame) of the bundled city scenes (data version 2;
#: version 1 had munich at 27 m, 1 m above its roof, and florence at 40 m):
#: - munich: a rooftop macro site, the antenna on a 5 m mast above the 26 m roof it stands on (31 m);
#: - etoile: a street-level macro mast of 20 m at a junction (the roofs within 10 m reach 14.7 m);
#: - florence: a 25 m macro mast in an open square (3GPP TR 38.901 UMa: BS height 25 m).
DEFAULT_BS_POSITION: dict[str, tuple[float, float, float]] = {
    "munich": (8.5, 21.0, 31.0),
    "etoile": (-200.0, -100.0, 20.0),
    "florence": (0.0, 0.0, 25.0),
    "simple_street_canyon": (-30.0, 0.0, 20.0),
}

#: Objects whose names match this regex are ground (outdoor test, and kept unmerged).
GROUND_REGEX = r"(?i)ground|terrain|plane|floor"


@dataclass(frozen=True)
class TraceConfig:
    """Everything that determines a generated dataset (stored in the file's attributes).

    Units: positions and distances in metres, bands in GHz, bandwidth in Hz.
    """

    scene: str = "munich"
    bs_position_m: tuple[float, float, float] | None = None  # None: DEFAULT_BS_POSITION[scene]
    bs_num_antennas: int = 16
    ue_height_m: float = 1.5
    area_center_m: tuple[float, float] | None = None  # None: BS (x, y)
    area_size_m: float = 140.0
    grid_spacing_m: float = 2.0
    bands_ghz: tuple[float, ...] = KNOWN_BANDS_GHZ
    bandwidth_hz: float = 50e6
    num_subcarriers: int = 64
    max_depth: int = 3
    diffraction: bool = True
    #: Diffract on free-floating edges too (edges of one face only, e.g. where a roof mesh meets
    #: separate wall meshes: every roof edge of the bundled city scenes). Off, roof-edge diffraction
    #: is lost (data version 1). Sionna RT's own default is False.
    edge_diffraction: bool = True
    samples_per_src: int = 300_000
    #: Size of Sionna RT's candidate-path buffer per source: shared by every UE of a chunk, so a
    #: buffer too small for a chunk silently drops paths (data version 1 lost about a third of them
    #: with 1e6 at 500 UEs per chunk). 0: 20,000 per UE of the chunk.
    max_num_paths_per_src: int = 0
    #: Sionna RT's deterministic candidate generator: without it a fixed seed does not fix the paths
    #: (parallel insertion into a shared buffer), and a UE's paths depend on the UEs traced with it.
    deterministic: bool = True
    seed: int = 42
    #: UEs per solver call. Measured on munich (scadf_lib 2026-12): the path sets of UEs traced 25 at
    #: a time equal those traced one at a time; at 100 or 500 per call some weak paths differ.
    chunk_size: int = 25
    stored_antennas: int | None = 1  # None: all BS elements; k: the first k elements
    #: Paths stored per UE (the strongest, by power over the bands): at most this many, and only as
    #: many as hold all but ``stored_power_tail`` of the UE's received power in every band.
    max_stored_paths: int = 128
    stored_power_tail: float = 1e-3
    reuse_geometry: bool = True  # trace path geometry once for all bands (see MultiBandPathSolver)
    ue_positions_m: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.bs_num_antennas < 1:
            raise ValueError(f"bs_num_antennas must be >= 1, got {self.bs_num_antennas}")
        if self.grid_spacing_m <= 0 or self.area_size_m <= 0:
            raise ValueError("grid_spacing_m and area_size_m must be positive (metres)")
        if self.num_subcarriers < 1 or self.bandwidth_hz <= 0:
            raise ValueError("num_subcarriers must be >= 1 and bandwidth_hz > 0")
        if not self.bands_ghz or any(b <= 0 for b in self.bands_ghz):
            raise ValueError(f"bands_ghz must be positive carrier frequencies in GHz, got {self.bands_ghz}")
        if self.stored_antennas is not None and not 1 <= self.stored_antennas <= self.bs_num_antennas:
            raise ValueError(f"stored_antennas must be in 1..{self.bs_num_antennas} or None")

    @property
    def bs_position(self) -> tuple[float, float, float]:
        if self.bs_position_m is not None:
            return tuple(float(v) for v in self.bs_position_m)  # type: ignore[return-value]
        if self.scene not in DEFAULT_BS_POSITION:
            raise ValueError(f"scene '{self.scene}' has no default BS position: pass --bs-position X Y Z (metres) on "
                             f"the command line or bs_position_m=(x, y, z) in Python, or let generate() place it "
                             f"above the highest roof near the area's centre (auto_bs_position)")
        return DEFAULT_BS_POSITION[self.scene]

    def subcarrier_offsets_hz(self) -> np.ndarray:
        """Subcarrier frequency offsets from the carrier, Hz, centred on 0."""
        return subcarrier_offsets_hz(self.bandwidth_hz, self.num_subcarriers)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["bs_position_m"] = list(self.bs_position)
        return json.loads(json.dumps(d))


# ----------------------------------------------------------------------------- Sionna set-up

def _import_sionna() -> Any:
    """Import Sionna RT with a CPU (LLVM) or CUDA Mitsuba variant; clear error if impossible."""
    try:
        import mitsuba as mi
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("Sionna RT is not installed: `pip install -e .[raytrace]` "
                          "(and `apt-get install libllvm19` for the CPU backend)") from exc
    if mi.variant() is None:
        llvm = "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1"
        if "DRJIT_LIBLLVM_PATH" not in os.environ and os.path.exists(llvm):
            os.environ["DRJIT_LIBLLVM_PATH"] = llvm
        for variant in ("cuda_ad_mono_polarized", "llvm_ad_mono_polarized"):
            try:
                mi.set_variant(variant)
                break
            except Exception:  # noqa: BLE001 - try the next backend
                continue
        else:  # pragma: no cover - depends on the machine
            raise RuntimeError("no Mitsuba backend works: install libllvm19 (`apt-get install libllvm19`) "
                               "for the CPU, or a CUDA driver")
    import sionna.rt as rt
    return rt


def sionna_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("sionna-rt")
    except PackageNotFoundError:
        return "not installed"


def generator_version() -> str:
    """This generator's version: the package version and, in a git checkout, the commit (+dirty)."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version
    try:
        pkg = version("scadf-workbook")
    except PackageNotFoundError:
        pkg = "unknown"
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"scadf_lib.raytrace {pkg}" + (f" (git {commit})" if commit else "")


def load_scene(name_or_path: str) -> Any:
    """Load a bundled Sionna scene by name (munich, etoile, florence, ...) or a scene XML path."""
    rt = _import_sionna()
    if name_or_path == "empty":  # free space, for physics checks
        return rt.load_scene()
    if os.path.isfile(name_or_path):
        filename = name_or_path
    elif hasattr(rt.scene, name_or_path):
        filename = getattr(rt.scene, name_or_path)
    else:
        bundled = sorted(n for n in dir(rt.scene) if not n.startswith("_"))
        raise ValueError(f"unknown scene '{name_or_path}': give a scene XML path or one of {bundled}")
    return rt.load_scene(filename, merge_shapes_exclude_regex=GROUND_REGEX)


def candidate_grid(config: TraceConfig) -> np.ndarray:
    """Regular grid of candidate UE (x, y) positions in metres, shape (N, 2)."""
    if config.ue_positions_m is not None:
        return np.asarray(config.ue_positions_m, dtype=np.float64).reshape(-1, 2)
    cx, cy = config.area_center_m if config.area_center_m is not None else config.bs_position[:2]
    half = config.area_size_m / 2
    axis = np.arange(-half, half + 1e-9, config.grid_spacing_m)
    gx, gy = np.meshgrid(cx + axis, cy + axis)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _cast_down(scene: Any, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast a ray straight down from above the scene at each (x, y): (hit object ids, hit z in m, hit?)."""
    import drjit as dr
    import mitsuba as mi

    top = float(scene.mi_scene.bbox().max.z) + 100.0
    origin = mi.Point3f(xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32),
                        np.full(len(xy), top, np.float32))
    si = scene.mi_scene.ray_intersect(mi.Ray3f(origin, mi.Vector3f(0, 0, -1)))
    hit_ids = np.asarray(dr.reinterpret_array(mi.UInt, si.shape))
    return hit_ids, np.asarray(si.p.z, dtype=np.float64), np.asarray(si.is_valid(), dtype=bool)


def ground_height(scene: Any, xy: np.ndarray) -> np.ndarray:
    """Ground height (m) under each (x, y), or NaN where the first surface hit from above is not ground.

    A ray is cast straight down from above the scene; the point is outdoors if the first object hit
    is a ground object (compared by object id, so hilly terrain works).
    """
    ground_ids = [obj.object_id for name, obj in scene.objects.items() if re.search(GROUND_REGEX, name)]
    if not ground_ids:
        raise ValueError("the scene has no object named ground/terrain/plane/floor, so outdoor points "
                         "cannot be found; pass explicit ue_positions_m")
    hit_ids, z, valid = _cast_down(scene, xy)
    return np.where(valid & np.isin(hit_ids, ground_ids), z, np.nan)


def scene_center(scene: Any) -> tuple[float, float]:
    """(x, y) centre of the scene's bounding box, metres."""
    box = scene.mi_scene.bbox()
    return float(box.min.x + box.max.x) / 2, float(box.min.y + box.max.y) / 2


def auto_bs_position(scene: Any, center_m: tuple[float, float] | None = None, search_radius_m: float = 40.0,
                     mast_m: float = 5.0, step_m: float = 2.0) -> tuple[float, float, float]:
    """A BS position for any scene: ``mast_m`` above the highest surface (a roof, or the terrain
    where there is none) within ``search_radius_m`` of ``center_m`` (default: the scene's centre).

    Heights come from rays cast straight down on a ``step_m`` grid; metres, scene frame.
    """
    cx, cy = center_m if center_m is not None else scene_center(scene)
    axis = np.arange(-search_radius_m, search_radius_m + 1e-9, step_m)
    gx, gy = np.meshgrid(cx + axis, cy + axis)
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    xy = xy[np.hypot(xy[:, 0] - cx, xy[:, 1] - cy) <= search_radius_m]
    _, z, valid = _cast_down(scene, xy)
    if not valid.any():
        raise ValueError(f"no surface of the scene lies within {search_radius_m} m of ({cx:.1f}, {cy:.1f}) m; "
                         f"pass --area-center X Y inside the scene, or --bs-position X Y Z")
    i = int(np.argmax(np.where(valid, z, -np.inf)))
    return float(xy[i, 0]), float(xy[i, 1]), float(z[i] + mast_m)


def setup_radio(scene: Any, config: TraceConfig) -> None:
    """Place the BS (ULA along the local y axis) and set the single-antenna UE array."""
    rt = _import_sionna()
    scene.tx_array = rt.PlanarArray(num_rows=1, num_cols=config.bs_num_antennas, vertical_spacing=0.5,
                                    horizontal_spacing=0.5, pattern="iso", polarization="V")
    scene.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, vertical_spacing=0.5, horizontal_spacing=0.5,
                                    pattern="iso", polarization="V")
    for name in list(scene.transmitters):
        scene.remove(name)
    scene.add(rt.Transmitter("bs", position=[float(v) for v in config.bs_position]))


# ----------------------------------------------------------------------------- tracing

def cfr_from_paths(a: np.ndarray, tau: np.ndarray, valid: np.ndarray, carrier_hz: float,
                   offsets_hz: np.ndarray) -> np.ndarray:
    """Channel frequency response in float64 from path coefficients.

    ``a`` (ue, antenna, path) complex, no carrier phase; ``tau`` (ue, path) delays in s; ``valid``
    (ue, path). Returns H (ue, antenna, subcarrier) = sum_p a_p exp(-j 2 pi (f_c + df_k) tau_p).
    """
    freqs = carrier_hz + offsets_hz  # (K,)
    phase = np.exp(-2j * np.pi * tau[:, :, None].astype(np.float64) * freqs[None, None, :])  # (ue, P, K)
    a = np.where(valid[:, None, :], a, 0.0).astype(np.complex128)
    return np.einsum("uap,upk->uak", a, phase)


def reduce_paths(a: np.ndarray, tau: np.ndarray, valid: np.ndarray, phi_t: np.ndarray, phi_r: np.ndarray,
                 interactions: np.ndarray) -> dict[str, np.ndarray]:
    """Per-UE scalars of one band: dominant-path AoD/AoA (rad), distance (m), total gain (dB), LOS.

    Shapes: ``a`` (ue, antenna, path); ``tau``, ``valid``, ``phi_t``, ``phi_r`` (ue, path);
    ``interactions`` (depth, ue, path). The dominant path has the largest power averaged over antennas.
    """
    power = np.where(valid, (np.abs(a) ** 2).mean(axis=1), 0.0)  # (ue, P)
    has_path = valid.any(axis=1) & (power.sum(axis=1) > 0)
    dom = power.argmax(axis=1)
    take = np.arange(len(dom))
    total = power.sum(axis=1)
    los_path = valid & (interactions == 0).all(axis=0)
    return {
        "aod": phi_t[take, dom],
        "aoa": phi_r[take, dom],
        "distance": SPEED_OF_LIGHT * tau[take, dom],
        "path_gain": 10 * np.log10(np.where(has_path, total, 1.0)),
        "los": los_path.any(axis=1),
        "has_path": has_path,
        "num_paths": valid.sum(axis=1),
    }


def duplicate_paths(valid: np.ndarray, *geometry: np.ndarray) -> np.ndarray:
    """(ue, path) True for a valid path whose geometry (every array of ``geometry``, (ue, path)) equals
    an earlier valid path's of the same UE. Sionna RT 2.2 reports some paths twice (measured on
    etoile: 0.5 % of the path entries, in two thirds of the UE-bands; once in a while the copy of a
    strong diffracted path): the same delay, angles and interactions are one physical path."""
    keys = [np.where(valid, g, 0) for g in geometry] + [~valid]
    order = np.lexsort(keys[::-1], axis=-1)
    ue = np.arange(valid.shape[0])[:, None]
    same = np.ones(order.shape, bool)
    for k in keys:
        s = k[ue, order]
        same[:, 1:] &= s[:, 1:] == s[:, :-1]
    same[:, 0] = False
    dup = np.zeros(valid.shape, bool)
    dup[ue, order] = same & valid[ue, order]
    return dup


def _paths_to_numpy(paths: Any, n_ant: int, carrier_hz: float, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """Reduce a Sionna ``Paths`` object (synthetic array, one BS) to the per-UE fingerprint of one band."""
    a_re, a_im = paths.a
    raw = {"a": (np.asarray(a_re) + 1j * np.asarray(a_im))[:, 0, 0],  # (ue, tx_ant, P)
           "tau": np.asarray(paths.tau)[:, 0], "valid": np.asarray(paths.valid, dtype=bool)[:, 0],  # (ue, P)
           "phi_t": np.asarray(paths.phi_t)[:, 0], "phi_r": np.asarray(paths.phi_r)[:, 0],
           "theta_t": np.asarray(paths.theta_t)[:, 0], "theta_r": np.asarray(paths.theta_r)[:, 0],
           "inter": np.asarray(paths.interactions)[:, :, 0]}  # (depth, ue, P)
    if raw["tau"].shape[-1] == 0:  # no UE of the chunk has a path: one invalid slot keeps every shape
        raw = {k: np.zeros(v.shape[:-1] + (1,), v.dtype) for k, v in raw.items()}
    a, tau, valid, phi_t, phi_r, inter = (raw[k] for k in ("a", "tau", "valid", "phi_t", "phi_r", "inter"))
    dup = duplicate_paths(valid, tau, phi_t, raw["theta_t"], phi_r, raw["theta_r"], *inter)
    valid = valid & ~dup  # each physical path counted once, in the CFR too
    out = reduce_paths(a, tau, valid, phi_t, phi_r, inter)
    out["duplicate_paths"] = dup.sum(axis=1)
    out["cfr"] = cfr_from_paths(a[:, :n_ant], tau, valid, carrier_hz, offsets).astype(np.complex64)
    # every path, for path storage: the baseband coefficient of BS element 0 with the carrier phase
    # taken in float64 here, so that the stored delay needs float32 only for the subcarrier offsets
    out["path_coef"] = np.where(valid, a[:, 0].astype(np.complex128)
                                * np.exp(-2j * np.pi * carrier_hz * tau.astype(np.float64)), 0.0)
    out["path_tau"], out["path_valid"], out["path_interactions"] = tau, valid, interaction_codes(inter)
    out["path_aod_az"], out["path_aoa_az"] = phi_t, phi_r
    out["path_aod_el"], out["path_aoa_el"] = np.pi / 2 - raw["theta_t"], np.pi / 2 - raw["theta_r"]
    return out


def multiband_paths(scene: Any, bands_ghz: tuple[float, ...], deterministic: bool = True,
                    **solver_kwargs: Any) -> Any:
    """Yield (band, Paths) for every band, tracing the path geometry only once.

    Sionna RT's ``PathSolver`` runs three stages: candidate generation (ray shooting), the image
    method (exact path geometry) and the field calculator (frequency-dependent coefficients).
    Geometry does not depend on frequency when diffuse reflection and refraction are off, so this
    runs the first two stages once and only the field calculator per band. It calls the solver's
    stages directly, which are internals of sionna-rt 2.2.0 (the version pinned in pyproject.toml);
    tests/test_raytrace.py checks it against the plain per-band ``PathSolver`` loop.
    """
    import drjit as dr
    rt = _import_sionna()
    from sionna.rt.path_solvers.paths import Paths

    kw = {"max_depth": 3, "max_num_paths_per_src": 1_000_000, "samples_per_src": 1_000_000, "los": True,
          "specular_reflection": True, "diffuse_reflection": False, "refraction": False, "diffraction": False,
          "edge_diffraction": False, "diffraction_lit_region": True, "seed": 42, **solver_kwargs}
    if kw["diffuse_reflection"] or kw["refraction"]:
        raise ValueError("geometry reuse needs diffuse_reflection=False and refraction=False")
    solver = rt.PathSolver(deterministic=deterministic)
    scene.all_set(radio_map=False)
    src_pos, src_ori, _, tx_vel = scene.sources(True, True)
    tgt_pos, tgt_ori, _, rx_vel = scene.targets(True, True)
    dr.make_opaque(src_pos, tgt_pos, src_ori, tgt_ori)
    buf = solver._candidate_generator(
        mi_scene=scene.mi_scene, src_positions=src_pos, tgt_positions=tgt_pos, samples_per_src=kw["samples_per_src"],
        max_num_paths_per_src=kw["max_num_paths_per_src"], max_depth=kw["max_depth"], los=kw["los"],
        specular_reflection=kw["specular_reflection"], diffuse_reflection=False, refraction=False,
        diffraction=kw["diffraction"], edge_diffraction=kw["edge_diffraction"], seed=kw["seed"])
    buf.schedule()
    dr.eval()
    buf.shrink()
    buf.detach_geometry()
    buf = solver._image_method(scene=scene.mi_scene, paths=buf, src_positions=src_pos, tgt_positions=tgt_pos,
                               diffraction=kw["diffraction"], diffraction_lit_region=kw["diffraction_lit_region"])
    for band in bands_ghz:
        scene.frequency = band * 1e9
        # array element offsets scale with the wavelength: take them at this band
        rel_tx, rel_rx = scene.sources(True, True)[2], scene.targets(True, True)[2]
        buf = solver._field_calculator(
            wavelength=scene.wavelength, paths=buf, samples_per_src=kw["samples_per_src"],
            diffraction=kw["diffraction"], src_positions=src_pos, tgt_positions=tgt_pos, src_orientations=src_ori,
            tgt_orientations=tgt_ori, src_antenna_patterns=scene.tx_array.antenna_pattern.patterns,
            tgt_antenna_patterns=scene.rx_array.antenna_pattern.patterns)
        buf.discard_invalid()
        yield band, Paths(scene, src_pos, tgt_pos, tx_vel, rx_vel, True, buf, rel_tx, rel_rx)


def perband_paths(scene: Any, bands_ghz: tuple[float, ...], deterministic: bool = True,
                  **solver_kwargs: Any) -> Any:
    """Yield (band, Paths) for every band with one full ``PathSolver`` call per band (reference)."""
    rt = _import_sionna()
    solver = rt.PathSolver(deterministic=deterministic)
    for band in bands_ghz:
        scene.frequency = band * 1e9
        yield band, solver(scene, **solver_kwargs)


def trace_chunk(scene: Any, xyz: np.ndarray, config: TraceConfig, seed: int) -> dict[str, np.ndarray]:
    """Trace one chunk of UEs at every band; arrays have a leading band axis."""
    rt = _import_sionna()
    for name in list(scene.receivers):
        scene.remove(name)
    for i, p in enumerate(xyz):
        scene.add(rt.Receiver(f"ue{i}", position=[float(p[0]), float(p[1]), float(p[2])]))
    offsets = config.subcarrier_offsets_hz()
    n_ant = config.stored_antennas or config.bs_num_antennas
    tracer = multiband_paths if config.reuse_geometry else perband_paths
    max_paths = config.max_num_paths_per_src or 20_000 * len(xyz)
    per_band = [_paths_to_numpy(paths, n_ant, band * 1e9, offsets)
                for band, paths in tracer(scene, config.bands_ghz, max_depth=config.max_depth, los=True,
                                          specular_reflection=True, diffuse_reflection=False, refraction=False,
                                          diffraction=config.diffraction, edge_diffraction=config.edge_diffraction,
                                          samples_per_src=config.samples_per_src, max_num_paths_per_src=max_paths,
                                          deterministic=config.deterministic, seed=seed)]
    out = {k: np.stack([d[k] for d in per_band]) for k in per_band[0] if k not in PATH_KEYS}
    if config.reuse_geometry:  # the per-band reference solver samples other paths in each band
        out.update(stored_paths(per_band, config.max_stored_paths, config.stored_power_tail))
    return out


# ----------------------------------------------------------------------------- the whole run

def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _check_manifest(parts: Path, config: TraceConfig) -> None:
    manifest = parts / "config.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != config.to_json():
            raise ValueError(f"'{parts}' holds chunks of a run with another configuration; delete that "
                             f"folder to start over, or rerun with the same settings to resume it")
    else:
        parts.mkdir(parents=True, exist_ok=True)
        write_json_atomic(manifest, config.to_json())


def generate(config: TraceConfig, out: str | os.PathLike[str], progress: bool = True) -> xr.Dataset:
    """Trace ``config`` and write the fingerprint netCDF to ``out``; resume any finished chunks.

    Returns the Dataset. Only UEs with at least one path in every band are kept; the attributes
    record how many candidates were indoors and how many had no path.
    """
    out = Path(out)
    scene = load_scene(config.scene)
    if config.bs_position_m is None and config.scene not in DEFAULT_BS_POSITION:
        config = dataclasses.replace(config, bs_position_m=auto_bs_position(scene, config.area_center_m))
        print(f"[raytrace] scene '{config.scene}' has no default BS position; placed it above the highest roof "
              f"near the area's centre at {tuple(round(v, 1) for v in config.bs_position)} m "
              f"(--bs-position X Y Z to choose)")
    setup_radio(scene, config)
    xy = candidate_grid(config)
    if config.ue_positions_m is not None:
        z0 = np.zeros(len(xy))
    else:
        z0 = ground_height(scene, xy)
    outdoor = np.isfinite(z0)
    xyz = np.column_stack([xy[outdoor], z0[outdoor] + config.ue_height_m])
    if len(xyz) == 0:
        raise ValueError(f"no outdoor candidate points in the area of interest of scene '{config.scene}'; "
                         f"move area_center_m or enlarge area_size_m")
    parts = _parts_dir(out)
    _check_manifest(parts, config)
    starts = range(0, len(xyz), config.chunk_size)
    resumed = 0
    for k, start in enumerate(tqdm(starts, desc=f"ray tracing {config.scene}", unit="chunk", disable=not progress)):
        part = parts / f"chunk_{k:05d}.npz"
        if part.exists():
            resumed += 1
            continue
        result = trace_chunk(scene, xyz[start:start + config.chunk_size], config, seed=config.seed + k)
        with atomic_path(part) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **result)
    chunks = [dict(np.load(parts / f"chunk_{k:05d}.npz")) for k in range(len(starts))]
    merged = {key: np.concatenate([c[key] for c in chunks], axis=ue_axis(key)) for key in chunks[0]}
    ds = to_dataset(merged, xyz, config, candidates=len(xy), outdoor=int(outdoor.sum()))
    ds.attrs["chunks_total"] = len(starts)
    ds.attrs["chunks_resumed"] = resumed
    save_fingerprints(ds, out)
    shutil.rmtree(parts)
    return ds


def cfr_rebuild_error(ds: xr.Dataset) -> np.ndarray:
    """(band, ue): ||H_paths - H|| / ||H|| of BS element 0, the CFR rebuilt from the stored paths
    against the tracer's CFR of every path (what the paths left out)."""
    rebuilt = cfr_from_stored_paths(ds)[:, :, 0]
    full = (ds["cfr_real"].values + 1j * ds["cfr_imag"].values)[:, :, 0]
    norm = np.linalg.norm(full, axis=-1)
    return np.linalg.norm(rebuilt - full, axis=-1) / np.where(norm > 0, norm, 1.0)


def to_dataset(merged: dict[str, np.ndarray], xyz: np.ndarray, config: TraceConfig, candidates: int,
               outdoor: int) -> xr.Dataset:
    """Build the schema Dataset from per-band arrays, keeping UEs with a path in every band."""
    keep = merged["has_path"].all(axis=0)
    per_band = {k: merged[k][:, keep] for k in ("aod", "aoa", "distance", "path_gain", "los", "num_paths")}
    data, coords = fingerprint_content(per_band, xyz[keep], merged["cfr"][:, keep], np.asarray(config.bands_ghz),
                                       config.bandwidth_hz, config.num_subcarriers, has_path=merged["has_path"][:, keep])
    from_paths = "num_stored_paths" in merged and data["cfr_real"].shape[2] == 1
    if "num_stored_paths" in merged:
        data.update(path_variables({k: np.compress(keep, v, axis=ue_axis(k)) for k, v in merged.items()
                                    if k in PATH_KEYS or k in ("num_stored_paths", "stored_power_share")}))
    ds = xr.Dataset(
        data,
        coords=coords,
        attrs={
            "title": f"SCADF-MoE ray-traced fingerprints, scene {config.scene}",
            "data_version": DATA_VERSION,
            "Conventions": "CF-1.10",
            "source": "NVIDIA Sionna RT PathSolver",
            "scene": config.scene,
            "bs_position_m": list(config.bs_position),
            "bs_array": f"ULA, {config.bs_num_antennas} isotropic V-pol elements, half-wavelength spacing",
            "bs_num_antennas": config.bs_num_antennas,
            "ue_height_m": config.ue_height_m,
            "bandwidth_hz": config.bandwidth_hz,
            "num_subcarriers": config.num_subcarriers,
            "max_depth": config.max_depth,
            "diffraction": int(config.diffraction),
            "edge_diffraction": int(config.edge_diffraction),
            "max_num_paths_per_src": config.max_num_paths_per_src or f"20000 x UEs per chunk ({config.chunk_size})",
            "deterministic_solver": int(config.deterministic),
            "duplicate_paths_dropped": int(merged["duplicate_paths"].sum()) if "duplicate_paths" in merged else 0,
            "paths_before_dropping_duplicates": int(merged["num_paths"].sum() + merged["duplicate_paths"].sum())
            if "duplicate_paths" in merged else 0,
            "chunk_size": config.chunk_size,
            "stored_paths": f"strongest paths holding all but {config.stored_power_tail:g} of each UE's power in "
                            f"every band, at most {config.max_stored_paths}",
            "samples_per_src": config.samples_per_src,
            "seed": config.seed,
            "band_tracing": "geometry traced once, coefficients per band" if config.reuse_geometry
            else "one PathSolver call per band",
            "grid_spacing_m": config.grid_spacing_m,
            "area_size_m": config.area_size_m,
            "candidates_total": candidates,
            "candidates_indoor_dropped": candidates - outdoor,
            "candidates_no_path_dropped": int((~keep).sum()),
            "sionna_rt_version": sionna_version(),
            "generator": generator_version(),
            "reuse_geometry": int(config.reuse_geometry),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "history": "python -m scadf_lib.raytrace " + " ".join(sys.argv[1:]),
            "config_json": json.dumps(config.to_json()),
        },
    )
    if from_paths:  # one element: the file stores no CFR, it is rebuilt from the paths at load
        ds.attrs["cfr_storage"] = CFR_FROM_PATHS
        ds["cfr_rebuild_error"] = xr.Variable(("band", "ue"), cfr_rebuild_error(ds).astype(np.float32), {
            "units": "1", "long_name": "||H(stored paths) - H(all paths)|| / ||H(all paths)|| of BS element 0"})
    return ds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scadf_lib.raytrace", description=__doc__.split("\n")[0])
    p.add_argument("--scene", default="munich", help="bundled Sionna scene name or scene XML path")
    p.add_argument("--out", required=True, help="output netCDF file")
    p.add_argument("--bs-position", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                   help="metres; default: the scene's known position, else 5 m above the highest roof within "
                        "40 m of the area's centre")
    p.add_argument("--antennas", type=int, default=16, help="BS ULA elements")
    p.add_argument("--stored-antennas", type=int, default=1, help="elements whose CFR is stored (0 = all)")
    p.add_argument("--area-size", type=float, default=140.0, help="side of the square area of interest, m")
    p.add_argument("--area-center", type=float, nargs=2, default=None, metavar=("X", "Y"), help="metres")
    p.add_argument("--spacing", type=float, default=2.0, help="UE grid spacing, m")
    p.add_argument("--bands", type=float, nargs="+", default=list(KNOWN_BANDS_GHZ), help="GHz")
    p.add_argument("--max-depth", type=int, default=3)
    p.add_argument("--no-diffraction", action="store_true")
    p.add_argument("--samples", type=int, default=300_000, help="rays per source")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--chunk-size", type=int, default=TraceConfig.chunk_size,
                   help="UEs per solver call (more per call loses weak paths, see TraceConfig.chunk_size)")
    p.add_argument("--no-edge-diffraction", action="store_true",
                   help="no diffraction on free-floating (roof) edges, as data version 1")
    p.add_argument("--max-stored-paths", type=int, default=TraceConfig.max_stored_paths)
    p.add_argument("--stored-power-tail", type=float, default=TraceConfig.stored_power_tail,
                   help="a UE keeps the strongest paths holding all but this share of its power")
    p.add_argument("--per-band-tracing", action="store_true",
                   help="one full PathSolver call per band instead of shared geometry (slower)")
    args = p.parse_args(argv)
    config = TraceConfig(
        scene=args.scene, bs_position_m=tuple(args.bs_position) if args.bs_position else None,
        bs_num_antennas=args.antennas, stored_antennas=args.stored_antennas or None,
        area_size_m=args.area_size, area_center_m=tuple(args.area_center) if args.area_center else None,
        grid_spacing_m=args.spacing, bands_ghz=tuple(args.bands), max_depth=args.max_depth,
        diffraction=not args.no_diffraction, samples_per_src=args.samples, seed=args.seed,
        chunk_size=args.chunk_size, reuse_geometry=not args.per_band_tracing,
        edge_diffraction=not args.no_edge_diffraction, max_stored_paths=args.max_stored_paths,
        stored_power_tail=args.stored_power_tail)
    ds = generate(config, args.out)
    print(f"wrote {args.out}: {ds.sizes['ue']} UEs x {ds.sizes['band']} bands "
          f"({ds.attrs['candidates_indoor_dropped']} indoor and {ds.attrs['candidates_no_path_dropped']} "
          f"no-path candidates dropped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
