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

COORD_UNITS = {"band": "GHz", "subcarrier_offset": "Hz"}
REQUIRED_ATTRS = ("scene", "bandwidth_hz", "num_subcarriers", "bs_position_m", "created", "sionna_rt_version")


#: Variables that measurements to be localised may lack (or hold as NaN): the UE positions.
POSITION_VARIABLES = ("x", "y")


def validate(ds: xr.Dataset, source: str = "dataset", positions: bool = True) -> xr.Dataset:
    """Check ``ds`` against the schema; return it unchanged or raise :class:`DatasetError`.

    Checks: variables present with the right dimensions, dtype kind and ``units`` attribute;
    the ``band`` coordinate in GHz; required global attributes; no NaN or inf anywhere.
    ``positions=False`` (fingerprints to be localised, :mod:`scadf_lib.localise`): ``x`` and ``y``
    may be absent or NaN (unknown positions).
    """
    problems: list[str] = []
    for name, spec in SCHEMA.items():
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


def pack_cfr(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with the CFR normalised per (band, ue) and its scale in ``cfr_scale`` (to be
    written as int16; see :data:`CFR_PACKING`). Inverse: :func:`unpack_cfr`."""
    if ds.attrs.get("cfr_packing"):
        return ds
    peak = np.maximum(np.abs(ds["cfr_real"]).max(("antenna", "subcarrier")),
                      np.abs(ds["cfr_imag"]).max(("antenna", "subcarrier")))
    scale = xr.where(peak > 0, peak, 1.0).astype(np.float32)
    out = ds.copy()
    for name in ("cfr_real", "cfr_imag"):
        out[name] = (ds[name] / scale).astype(np.float32).assign_attrs(ds[name].attrs)
    out["cfr_scale"] = scale.assign_attrs(units="1", long_name="per (band, ue) CFR scale: cfr = cfr_packed * cfr_scale")
    out.attrs["cfr_packing"] = CFR_PACKING
    return out


def unpack_cfr(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`pack_cfr` (files without packing are returned unchanged)."""
    if not ds.attrs.get("cfr_packing"):
        return ds
    out = ds.drop_vars("cfr_scale")
    for name in ("cfr_real", "cfr_imag"):
        out[name] = (ds[name] * ds["cfr_scale"]).astype(np.float32).assign_attrs(ds[name].attrs)
    del out.attrs["cfr_packing"]
    return out


def cfr_relative_error(reference: xr.Dataset, decoded: xr.Dataset) -> np.ndarray:
    """||H_decoded - H|| / ||H|| per (band, ue): the storage error of the CFR (dimensionless)."""
    err = np.hypot(decoded["cfr_real"] - reference["cfr_real"], decoded["cfr_imag"] - reference["cfr_imag"])
    norm = np.hypot(reference["cfr_real"], reference["cfr_imag"])
    num = np.sqrt((err.values.astype(np.float64) ** 2).sum(axis=(2, 3)))
    den = np.sqrt((norm.values.astype(np.float64) ** 2).sum(axis=(2, 3)))
    return num / np.where(den > 0, den, 1.0)


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
            ds = unpack_cfr(ds.load())
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
    if pack:
        ds = pack_cfr(ds)
    encoding = {name: {"zlib": True, "complevel": 6, "shuffle": True} for name in ds.data_vars}
    if pack:
        for name in ("cfr_real", "cfr_imag"):
            encoding[name].update(dtype="int16", scale_factor=1.0 / CFR_INT16_MAX, _FillValue=-CFR_INT16_MAX - 1)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return Path(path)


def parse_band(band: str | float, available: tuple[float, ...] = KNOWN_BANDS_GHZ) -> float:
    """Turn a band given as text or number (GHz) into one of ``available``; clear error otherwise."""
    try:
        value = float(band)
    except (TypeError, ValueError):
        raise ValueError(f"band {band!r} is not a number; choose one of {list(available)} (GHz)") from None
    for b in available:
        if abs(b - value) < 1e-6:
            return b
    raise ValueError(f"unknown band {band!r} GHz; choose one of {list(available)} (GHz)")


def complex_cfr(ds: xr.Dataset) -> xr.DataArray:
    """The CFR as a complex DataArray (band, ue, antenna, subcarrier)."""
    return ds["cfr_real"] + 1j * ds["cfr_imag"]
