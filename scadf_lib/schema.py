"""The fingerprint dataset: one xarray Dataset (one netCDF4 file) per scene.

Dimensions
    ``band`` (carrier, GHz), ``ue`` (UE location), ``antenna`` (BS array element), ``subcarrier``.

Variables (units in the ``units`` attribute, CF style)
    ``cfr_real``, ``cfr_imag``  (band, ue, antenna, subcarrier)  channel frequency response, linear, "1"
    ``aod``, ``aoa``            (band, ue)  global azimuth of departure / arrival of the dominant path, rad
    ``distance``                (band, ue)  propagation distance of the dominant path, m
    ``path_gain``               (band, ue)  total large-scale path gain over all paths, dB
    ``los``                     (band, ue)  a line-of-sight path exists (bool)
    ``has_path``                (band, ue)  at least one path was found (bool)
    ``num_paths``               (band, ue)  number of valid paths
    ``x``, ``y``                (ue)        UE position in the scene frame, m

A file that breaks any of these rules is refused by :func:`validate` with a message naming the
problem and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from scadf_lib.fileio import atomic_path

#: Carrier bands of the paper, GHz.
KNOWN_BANDS_GHZ: tuple[float, ...] = (2.6, 6.0, 28.0)

#: Regenerate hint used in error messages.
SPEED_OF_LIGHT = 299_792_458.0  # m/s

def subcarrier_offsets_hz(bandwidth_hz: float, num_subcarriers: int) -> np.ndarray:
    """Subcarrier frequency offsets from the carrier (Hz), centred on 0."""
    return (np.arange(num_subcarriers) - num_subcarriers // 2) * (bandwidth_hz / num_subcarriers)


def fingerprint_content(per_band: dict[str, np.ndarray], xyz: np.ndarray, cfr: np.ndarray | None,
                        bands_ghz: np.ndarray, bandwidth_hz: float, num_subcarriers: int,
                        has_path: np.ndarray | None = None, z_long_name: str = "UE height above the scene origin",
                        ) -> tuple[dict[str, xr.Variable], dict[str, tuple]]:
    """The variables and coordinates of a fingerprint Dataset, in the schema's units, from arrays over
    (band, ue): ``aod``/``aoa`` (rad), ``distance`` (m), ``path_gain`` (dB), ``los``, ``num_paths``;
    ``xyz`` (ue, 3) in m; ``cfr`` complex (band, ue, antenna, subcarrier) or None (no CFR);
    ``has_path`` (band, ue), all True where None. The one builder of the ray tracer and the importers."""
    dims = ("band", "ue")

    def var(values: np.ndarray, units: str, long_name: str, d: tuple[str, ...] = dims) -> xr.Variable:
        return xr.Variable(d, values, attrs={"units": units, "long_name": long_name})

    data: dict[str, xr.Variable] = {}
    n_ant = 1
    if cfr is not None:
        n_ant = cfr.shape[2]
        spec = ("band", "ue", "antenna", "subcarrier")
        data["cfr_real"] = var(cfr.real.astype(np.float32), "1", "real part of the channel frequency response", spec)
        data["cfr_imag"] = var(cfr.imag.astype(np.float32), "1", "imaginary part of the channel frequency response", spec)
    data.update({
        "aod": var(per_band["aod"].astype(np.float32), "rad", "azimuth of departure of the dominant path"),
        "aoa": var(per_band["aoa"].astype(np.float32), "rad", "azimuth of arrival of the dominant path"),
        "distance": var(per_band["distance"].astype(np.float32), "m", "propagation distance of the dominant path"),
        "path_gain": var(per_band["path_gain"].astype(np.float32), "dB", "total path gain over all paths"),
        "los": var(per_band["los"].astype(bool), "1", "line-of-sight path exists"),
        "has_path": var((np.ones(per_band["aod"].shape, bool) if has_path is None else has_path).astype(bool), "1",
                        "at least one path found"),
        "num_paths": var(per_band["num_paths"].astype(np.int16), "1", "number of valid paths"),
        "x": var(xyz[:, 0], "m", "UE x position", ("ue",)),
        "y": var(xyz[:, 1], "m", "UE y position", ("ue",)),
        "z": var(xyz[:, 2], "m", z_long_name, ("ue",)),
    })
    coords = {
        "band": ("band", np.asarray(bands_ghz, dtype=np.float64), {"units": "GHz", "long_name": "carrier frequency"}),
        "ue": ("ue", np.arange(len(xyz))),
        "antenna": ("antenna", np.arange(n_ant), {"long_name": "BS array element index"}),
        "subcarrier": ("subcarrier", np.arange(num_subcarriers)),
        "subcarrier_offset": ("subcarrier", subcarrier_offsets_hz(bandwidth_hz, num_subcarriers),
                              {"units": "Hz", "long_name": "subcarrier offset from the carrier"}),
    }
    return data, coords


PROVENANCE_ATTRS = ("scene", "bs_position_m", "bs_array", "max_depth", "diffraction", "samples_per_src",
                    "grid_spacing_m", "candidates_total", "candidates_indoor_dropped", "candidates_no_path_dropped",
                    "sionna_rt_version", "created")


def provenance(ds: xr.Dataset) -> dict[str, object]:
    """How a fingerprint file was made (the attributes of :data:`PROVENANCE_ATTRS` it has), as plain
    Python values: netCDF hands numbers back as numpy scalars and lists as arrays."""
    def plain(v: object) -> object:
        return v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v
    return {k: plain(ds.attrs[k]) for k in PROVENANCE_ATTRS if k in ds.attrs}


REGENERATE_HINT = "regenerate it with `python -m scadf_lib.raytrace --scene <name> --out <file>`"


class DatasetError(ValueError):
    """A fingerprint file or Dataset does not follow the schema."""


@dataclass(frozen=True)
class VariableSpec:
    """What one variable must look like."""

    dims: tuple[str, ...]
    units: str
    kind: str  # numpy dtype kind(s) accepted: "f" float, "b" bool, "i" integer


SCHEMA: dict[str, VariableSpec] = {
    "cfr_real": VariableSpec(("band", "ue", "antenna", "subcarrier"), "1", "f"),
    "cfr_imag": VariableSpec(("band", "ue", "antenna", "subcarrier"), "1", "f"),
    "aod": VariableSpec(("band", "ue"), "rad", "f"),
    "aoa": VariableSpec(("band", "ue"), "rad", "f"),
    "distance": VariableSpec(("band", "ue"), "m", "f"),
    "path_gain": VariableSpec(("band", "ue"), "dB", "f"),
    "los": VariableSpec(("band", "ue"), "1", "b"),
    "has_path": VariableSpec(("band", "ue"), "1", "b"),
    "num_paths": VariableSpec(("band", "ue"), "1", "iu"),
    "x": VariableSpec(("ue",), "m", "f"),
    "y": VariableSpec(("ue",), "m", "f"),
}

#: Version of the ray-traced data this code writes (the ``data_version`` attribute; a file without it
#: is version 1). 1: the reference set's data (no free-edge diffraction, paths lost to 500-UE
#: chunks, one CFR element). 2: roof-edge diffraction, 25-UE deterministic chunks, stored paths.
DATA_VERSION = 2


@dataclass(frozen=True)
class PathSpec:
    """One stored-path variable (data version 2)."""

    dims: tuple[str, ...]
    units: str
    long_name: str


#: Each UE's strongest paths (data version 2), padded along ``path`` with zero coefficients past
#: ``num_stored_paths``. ``path_coef`` is the complex baseband gain of BS element 0 including the
#: carrier phase: H[k] = sum_p c_p exp(-j 2 pi df_k tau_p) at subcarrier offset df_k (Hz).
PATH_SCHEMA: dict[str, PathSpec] = {
    "path_delay": PathSpec(("ue", "path"), "s", "propagation delay of the path"),
    "path_coef_real": PathSpec(("band", "ue", "path"), "1", "real part of the path's baseband gain at BS element 0"),
    "path_coef_imag": PathSpec(("band", "ue", "path"), "1", "imaginary part of the path's baseband gain at BS element 0"),
    "path_aod_az": PathSpec(("ue", "path"), "rad", "azimuth of departure at the BS (global frame)"),
    "path_aod_el": PathSpec(("ue", "path"), "rad", "elevation of departure at the BS (above the horizontal)"),
    "path_aoa_az": PathSpec(("ue", "path"), "rad", "azimuth of arrival at the UE (global frame)"),
    "path_aoa_el": PathSpec(("ue", "path"), "rad", "elevation of arrival at the UE (above the horizontal)"),
    "path_interactions": PathSpec(("ue", "path"), "1", "bounces, one hex digit each, first lowest: "
                                  "1 specular, 8 diffraction, 0 none (LOS)"),
    "num_stored_paths": PathSpec(("ue",), "1", "number of stored paths"),
    "stored_power_share": PathSpec(("band", "ue"), "1", "share of the received power the stored paths hold"),
}


def has_paths(ds: xr.Dataset) -> bool:
    """True for a dataset that stores each UE's paths (data version 2)."""
    return "num_stored_paths" in ds.variables


def data_version(ds: xr.Dataset) -> int:
    """The ray-traced data version of a file (1 where the attribute is absent)."""
    return int(ds.attrs.get("data_version", 1))


COORD_UNITS = {"band": "GHz", "subcarrier_offset": "Hz"}
REQUIRED_ATTRS = ("scene", "bandwidth_hz", "num_subcarriers", "bs_position_m", "created", "sionna_rt_version")


#: Variables that measurements to be localised may lack (or hold as NaN): the UE positions.
POSITION_VARIABLES = ("x", "y")
#: The CFR; a dataset with the global attribute ``has_cfr = 0`` has none (numeric features only).
CFR_VARIABLES = ("cfr_real", "cfr_imag")
#: Plausible range of a path gain in dB (free space at 1 m and 28 GHz is -61 dB; a gain above 0 dB
#: would be amplification, below -300 dB is below any receiver's noise).
PATH_GAIN_RANGE_DB = (-300.0, 0.0)
#: Tolerance on the angle range [-pi, pi] (float32 rounds pi up by 9e-8).
ANGLE_TOL_RAD = 1e-5


def has_cfr(ds: xr.Dataset) -> bool:
    """False for a dataset flagged ``has_cfr = 0`` (numeric features only: AoD, AoA, distance, gain)."""
    return bool(int(ds.attrs.get("has_cfr", 1)))


def declared_bands(ds: xr.Dataset) -> tuple[float, ...]:
    """The bands (GHz) a dataset may hold: the paper's, plus those in its ``declared_bands_ghz`` attribute."""
    extra = np.atleast_1d(np.asarray(ds.attrs.get("declared_bands_ghz", []), dtype=np.float64))
    return tuple(KNOWN_BANDS_GHZ) + tuple(float(b) for b in extra)


def physical_problems(ds: xr.Dataset, positions: bool = True) -> list[str]:
    """The physics rules of a fingerprint Dataset, each broken one as a message naming the variable,
    the rule and the fix: angles in [-pi, pi] rad, distance > 0 m, path gain in dB within
    :data:`PATH_GAIN_RANGE_DB`, bands known or declared, one position per UE."""
    out: list[str] = []
    for name in ("aod", "aoa"):
        v = ds[name].values
        if np.abs(v).max() > np.pi + ANGLE_TOL_RAD:
            hint = (" (values up to {:.0f}: they look like degrees; convert with numpy.deg2rad)".format(np.abs(v).max())
                    if np.abs(v).max() <= 360 + 1e-6 else "")
            out.append(f"variable '{name}' must be an angle in [-pi, pi] rad, found {int((np.abs(v) > np.pi + ANGLE_TOL_RAD).sum())} "
                       f"values outside{hint}; wrap with numpy.angle(numpy.exp(1j * a))")
    d = ds["distance"].values
    if not (d > 0).all():
        out.append(f"variable 'distance' must be > 0 m (the dominant path's length), found {int((d <= 0).sum())} values <= 0; "
                   f"drop UEs without a path or fix the sign")
    g = ds["path_gain"].values
    lo, hi = PATH_GAIN_RANGE_DB
    if ((g < lo) | (g > hi)).any():
        hint = (" (all values in [0, 1]: they look linear; convert with 10 * numpy.log10(gain) for a power gain)"
                if g.min() >= 0 and g.max() <= 1 else "")
        out.append(f"variable 'path_gain' must be in dB within [{lo:g}, {hi:g}], found {int(((g < lo) | (g > hi)).sum())} "
                   f"values outside{hint}")
    bands = [float(b) for b in ds["band"].values]
    unknown = [b for b in bands if not any(abs(b - k) < 1e-6 for k in declared_bands(ds))]
    if unknown:
        out.append(f"band(s) {unknown} GHz are not the paper's {list(KNOWN_BANDS_GHZ)}; declare them in the global "
                   f"attribute declared_bands_ghz (a list of GHz) if they are meant")
    if len(set(bands)) != len(bands):
        out.append(f"the band coordinate repeats a band ({bands}); give each band once")
    if positions and "x" in ds.variables and "y" in ds.variables:
        dup = duplicated_positions(ds)
        if dup.any():
            out.append(f"{int(dup.sum())} UEs repeat the (x, y) position of an earlier UE: the same position could land in "
                       f"training and test; merge them on purpose with scadf_lib.schema.drop_duplicate_positions(ds) "
                       f"(keeps the first) or fix the positions")
    return out


def duplicated_positions(ds: xr.Dataset, decimals: int = 3) -> np.ndarray:
    """(N,) bool: the UE's (x, y), rounded to ``decimals`` m, equals an earlier UE's."""
    import pandas as pd
    xy = pd.DataFrame({"x": np.round(ds["x"].values, decimals), "y": np.round(ds["y"].values, decimals)})
    return xy.duplicated().to_numpy()


def drop_duplicate_positions(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` without the UEs whose (x, y) repeats an earlier UE's (the first is kept); the count goes
    to the ``history`` attribute. The explicit way to merge duplicated positions (:func:`validate`
    refuses them)."""
    dup = duplicated_positions(ds)
    out = ds.isel(ue=np.flatnonzero(~dup))
    out.attrs["history"] = (str(ds.attrs.get("history", "")) + f"\n{int(dup.sum())} UEs with a duplicated position "
                            f"dropped (first kept)").strip()
    return out


def validate(ds: xr.Dataset, source: str = "dataset", positions: bool = True) -> xr.Dataset:
    """Check ``ds`` against the schema; return it unchanged or raise :class:`DatasetError`.

    Checks: variables present with the right dimensions, dtype kind and ``units`` attribute;
    the ``band`` coordinate in GHz; required global attributes; no NaN or inf anywhere; then the
    physics (:func:`physical_problems`). A dataset with ``has_cfr = 0`` has no CFR variables.
    ``positions=False`` (fingerprints to be localised, :mod:`scadf_lib.localise`): ``x`` and ``y``
    may be absent or NaN (unknown positions).
    """
    problems: list[str] = []
    for name, spec in SCHEMA.items():
        if name in CFR_VARIABLES and not has_cfr(ds):
            if name in ds.variables:
                problems.append(f"variable '{name}' is present but the attribute has_cfr = 0 says the dataset has no "
                                f"CFR; drop the attribute or the variable")
            continue
        if not positions and name in POSITION_VARIABLES:
            if name in ds.variables and tuple(ds[name].dims) != spec.dims:
                problems.append(f"variable '{name}' has dims {tuple(ds[name].dims)}, expected {spec.dims}")
            continue
        if name not in ds.variables:
            problems.append(f"variable '{name}' is missing")
            continue
        var = ds[name]
        if tuple(var.dims) != spec.dims:
            problems.append(f"variable '{name}' has dims {tuple(var.dims)}, expected {spec.dims}")
        if var.dtype.kind not in spec.kind:
            problems.append(f"variable '{name}' has dtype {var.dtype}, expected kind '{spec.kind}'")
        units = var.attrs.get("units")
        if units != spec.units:
            problems.append(f"variable '{name}' has units {units!r}, expected {spec.units!r}")
        if var.dtype.kind == "f" and var.size and not np.isfinite(var.values).all():
            bad = int((~np.isfinite(var.values)).sum())
            problems.append(f"variable '{name}' holds {bad} NaN/inf values")
    for coord, units in COORD_UNITS.items():
        if coord not in ds.coords:
            problems.append(f"coordinate '{coord}' is missing")
        elif ds[coord].attrs.get("units") != units:
            problems.append(f"coordinate '{coord}' has units {ds[coord].attrs.get('units')!r}, expected {units!r}")
    for attr in REQUIRED_ATTRS:
        if attr not in ds.attrs:
            problems.append(f"global attribute '{attr}' is missing")
    if "ue" in ds.sizes and ds.sizes["ue"] == 0:
        problems.append("the dataset holds no UE locations")
    problems += path_problems(ds)
    if not problems:  # the layout is right: now the physics
        problems += physical_problems(ds, positions)
    if problems:
        raise DatasetError(f"{source} does not follow the fingerprint schema: " + "; ".join(problems)
                           + f". Fix the file or {REGENERATE_HINT}.")
    return ds


#: CFR packing: each (band, ue) CFR is divided by its largest |real| or |imag| part (stored as the
#: float32 variable ``cfr_scale``) and the result, in [-1, 1], is stored as int16 with the CF
#: ``scale_factor`` 1/32767. The relative error per (band, ue) is at most about 2e-5 x sqrt(N)/||H/max||
#: and is measured on the shipped files in data/README.md (< 1e-3 required).
CFR_PACKING = "int16 per (band, ue) scaled, cfr = cfr_packed * cfr_scale"
CFR_INT16_MAX = 32767


def _pack_scaled(ds: xr.Dataset, names: tuple[str, ...], over: tuple[str, ...], scale_name: str, attr: str,
                 packing: str, long_name: str) -> xr.Dataset:
    """``ds`` with the real/imaginary pair ``names`` divided by their largest magnitude over the
    dimensions ``over`` (kept as the float32 variable ``scale_name``), to be written as int16."""
    peak = np.maximum(np.abs(ds[names[0]]).max(over), np.abs(ds[names[1]]).max(over))
    scale = xr.where(peak > 0, peak, 1.0).astype(np.float32)
    out = ds.copy()
    for name in names:
        out[name] = (ds[name] / scale).astype(np.float32).assign_attrs(ds[name].attrs)
    out[scale_name] = scale.assign_attrs(units="1", long_name=long_name)
    out.attrs[attr] = packing
    return out


def _unpack_scaled(ds: xr.Dataset, names: tuple[str, ...], scale_name: str, attr: str) -> xr.Dataset:
    """Undo :func:`_pack_scaled` (a dataset without the ``attr`` attribute is returned unchanged)."""
    if not ds.attrs.get(attr):
        return ds
    out = ds.drop_vars(scale_name)
    for name in names:
        out[name] = (ds[name] * ds[scale_name]).astype(np.float32).assign_attrs(ds[name].attrs)
    del out.attrs[attr]
    return out


def pack_cfr(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with the CFR normalised per (band, ue) and its scale in ``cfr_scale`` (to be
    written as int16; see :data:`CFR_PACKING`). Inverse: :func:`unpack_cfr`."""
    if ds.attrs.get("cfr_packing") or not has_cfr(ds) or "cfr_real" not in ds.variables:
        return ds
    return _pack_scaled(ds, CFR_VARIABLES, ("antenna", "subcarrier"), "cfr_scale", "cfr_packing", CFR_PACKING,
                        "per (band, ue) CFR scale: cfr = cfr_packed * cfr_scale")


def unpack_cfr(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`pack_cfr` (files without packing are returned unchanged)."""
    return _unpack_scaled(ds, CFR_VARIABLES, "cfr_scale", "cfr_packing")


def cfr_relative_error(reference: xr.Dataset, decoded: xr.Dataset) -> np.ndarray:
    """||H_decoded - H|| / ||H|| per (band, ue): the storage error of the CFR (dimensionless)."""
    err = np.hypot(decoded["cfr_real"] - reference["cfr_real"], decoded["cfr_imag"] - reference["cfr_imag"])
    norm = np.hypot(reference["cfr_real"], reference["cfr_imag"])
    num = np.sqrt((err.values.astype(np.float64) ** 2).sum(axis=(2, 3)))
    den = np.sqrt((norm.values.astype(np.float64) ** 2).sum(axis=(2, 3)))
    return num / np.where(den > 0, den, 1.0)


#: Path packing (data version 2): the UE's arrival angles as int16 with the CF ``scale_factor``
#: pi/32767 (steps of 1e-4 rad); the departure angles stay float32, since the array CFR needs them
#: finer (int16 steps shift the phase of element 15 by up to 2e-3 rad, which put the synthesised
#: array CFR 3e-3 off the tracer's where paths cancel); each (band, ue)'s path gains divided by their
#: largest real or imaginary part (``path_coef_scale``) and stored as int16 like the CFR.
PATH_PACKING = "AoA int16 (pi/32767 rad steps); path_coef = packed * path_coef_scale per (band, ue)"
PATH_ANGLES = ("path_aoa_az", "path_aoa_el")
PATH_COEFS = ("path_coef_real", "path_coef_imag")


def pack_paths(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its path gains normalised per (band, ue) (see :data:`PATH_PACKING`)."""
    if ds.attrs.get("path_packing") or not has_paths(ds):
        return ds
    return _pack_scaled(ds, PATH_COEFS, ("path",), "path_coef_scale", "path_packing", PATH_PACKING,
                        "per (band, ue) path gain scale")


def unpack_paths(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`pack_paths` (files without packed paths are returned unchanged)."""
    return _unpack_scaled(ds, PATH_COEFS, "path_coef_scale", "path_packing")


def path_problems(ds: xr.Dataset) -> list[str]:
    """The layout rules of the stored paths (data version 2), each broken one as a message."""
    if not has_paths(ds):
        return []
    out = []
    for name, spec in PATH_SCHEMA.items():
        if name not in ds.variables:
            out.append(f"path variable '{name}' is missing (a file with num_stored_paths holds all of "
                       f"{list(PATH_SCHEMA)})")
        elif tuple(ds[name].dims) != spec.dims or ds[name].attrs.get("units") != spec.units:
            out.append(f"path variable '{name}' must have dims {spec.dims} and units {spec.units!r}")
        elif ds[name].dtype.kind == "f" and not np.isfinite(ds[name].values).all():
            out.append(f"path variable '{name}' holds NaN/inf values")
    return out


#: A file with this ``cfr_storage`` attribute stores no CFR: the CFR of BS element 0 is synthesised
#: at load from the stored paths (:func:`cfr_from_stored_paths`), and ``cfr_rebuild_error`` (band,
#: ue) records, from the tracer, how far it lies from the CFR of every path. It halves the files of
#: data version 2 (the tree must travel to a GPU machine within 48 MiB).
CFR_FROM_PATHS = "element 0 synthesised at load from the stored paths"


def cfr_from_stored_paths(ds: xr.Dataset, block: int = 2048) -> np.ndarray:
    """The CFR of BS element 0 from the stored paths: H[k] = sum_p c_p exp(-j 2 pi df_k tau_p), as
    (band, ue, 1, subcarrier) complex64 (c_p includes the carrier phase; df_k the subcarrier offsets)."""
    offsets = subcarrier_offsets_hz(float(ds.attrs["bandwidth_hz"]), int(ds.attrs["num_subcarriers"]))
    coef = (ds["path_coef_real"].values + 1j * ds["path_coef_imag"].values).astype(np.complex64)  # (band, ue, P)
    tau = ds["path_delay"].values.astype(np.float64)
    out = np.empty(coef.shape[:2] + (1, len(offsets)), np.complex64)
    for lo in range(0, tau.shape[0], block):
        sl = slice(lo, lo + block)
        phase = np.exp(1j * (-2 * np.pi * tau[sl, :, None] * offsets).astype(np.float32))  # (ue, P, K)
        out[:, sl, 0] = np.einsum("bup,upk->buk", coef[:, sl], phase)
    return out


def with_cfr_from_paths(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with the CFR variables synthesised from its paths (files whose ``cfr_storage`` says so)."""
    if ds.attrs.get("cfr_storage") != CFR_FROM_PATHS or "cfr_real" in ds.variables:
        return ds
    h = cfr_from_stored_paths(ds)
    dims = ("band", "ue", "antenna", "subcarrier")
    out = ds.assign_coords(antenna=("antenna", np.arange(1), {"long_name": "BS array element index"}))
    out["cfr_real"] = xr.Variable(dims, h.real, {"units": "1", "long_name": "real part of the channel frequency response"})
    out["cfr_imag"] = xr.Variable(dims, h.imag, {"units": "1", "long_name": "imaginary part of the channel frequency response"})
    return out


def load_fingerprints(path: str | os.PathLike[str], positions: bool = True) -> xr.Dataset:
    """Open a fingerprint netCDF file, load it into memory and validate it (``positions=False``: the
    UE positions may be absent or NaN, see :func:`validate`).

    Raises ``FileNotFoundError`` for a missing file and :class:`DatasetError` for a file that is not
    readable netCDF (truncated, corrupt) or that breaks the schema.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"fingerprint file '{p}' does not exist. Use one of the shipped files in data/ "
            f"(e.g. data/munich.nc) or {REGENERATE_HINT}.")
    try:
        with xr.open_dataset(p, engine="netcdf4") as ds:
            ds = with_cfr_from_paths(unpack_paths(unpack_cfr(ds.load())))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise DatasetError(f"'{p}' is not a readable netCDF4 file ({exc}); it may be truncated or "
                           f"corrupt: {REGENERATE_HINT}.") from exc
    return validate(ds, source=f"'{p}'", positions=positions)


def save_fingerprints(ds: xr.Dataset, path: str | os.PathLike[str], pack: bool = True) -> Path:
    """Validate ``ds`` and write it atomically as compressed netCDF4 (zlib, byte shuffle).

    With ``pack=True`` (the default) the CFR is stored as int16 per (band, ue) scaled values
    (:func:`pack_cfr`, half the bytes of float32); :func:`load_fingerprints` restores float32.
    """
    validate(ds)
    if ds.attrs.get("cfr_storage") == CFR_FROM_PATHS:  # rebuilt from the paths at load
        ds = ds.drop_vars([v for v in CFR_VARIABLES if v in ds.variables])
    if pack:
        ds = pack_paths(pack_cfr(ds))
    encoding = {name: {"zlib": True, "complevel": 6, "shuffle": True} for name in ds.data_vars}
    int16 = {"dtype": "int16", "_FillValue": -CFR_INT16_MAX - 1}
    if pack and has_cfr(ds) and "cfr_real" in ds.variables:
        for name in CFR_VARIABLES:
            encoding[name].update(int16, scale_factor=1.0 / CFR_INT16_MAX)
    if pack and has_paths(ds):
        for name in PATH_COEFS:
            encoding[name].update(int16, scale_factor=1.0 / CFR_INT16_MAX)
        for name in PATH_ANGLES:
            encoding[name].update(int16, scale_factor=np.pi / CFR_INT16_MAX)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return Path(path)


def parse_band(band: str | float, available: tuple[float, ...] | None = KNOWN_BANDS_GHZ) -> float:
    """Turn a band given as text or number (GHz) into one of ``available`` (the paper's bands by
    default; a file's own bands: :func:`file_bands`), or into any positive number where ``available``
    is None; a clear error otherwise. The one band parser of the workbook."""
    try:
        value = float(band)
    except (TypeError, ValueError):
        choose = f"choose one of {list(available)} (GHz)" if available is not None else "give it in GHz, e.g. 28"
        raise ValueError(f"band {band!r} is not a number; {choose}") from None
    if available is None:
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"band {band!r} GHz is not a positive carrier frequency; give it in GHz, e.g. 28")
        return value
    for b in available:
        if abs(b - value) < 1e-6:
            return b
    raise ValueError(f"unknown band {band!r} GHz; choose one of {list(available)} (GHz)")


def file_bands(path: str | os.PathLike[str]) -> tuple[float, ...] | None:
    """The bands (GHz) a fingerprint file holds, read from its ``band`` coordinate without loading the
    rest; None where the file does not exist or is not a fingerprint file."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with xr.open_dataset(p, engine="netcdf4") as ds:
            return tuple(float(b) for b in ds["band"].values)
    except (OSError, KeyError, ValueError):
        return None


def complex_cfr(ds: xr.Dataset) -> xr.DataArray:
    """The CFR as a complex DataArray (band, ue, antenna, subcarrier)."""
    return ds["cfr_real"] + 1j * ds["cfr_imag"]
