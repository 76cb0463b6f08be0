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


def validate(ds: xr.Dataset, source: str = "dataset") -> xr.Dataset:
    """Check ``ds`` against the schema; return it unchanged or raise :class:`DatasetError`.

    Checks: variables present with the right dimensions, dtype kind and ``units`` attribute;
    the ``band`` coordinate in GHz; required global attributes; no NaN or inf anywhere.
    """
    problems: list[str] = []
    for name, spec in SCHEMA.items():
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


def load_fingerprints(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a fingerprint netCDF file, load it into memory and validate it.

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
            ds = ds.load()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise DatasetError(f"'{p}' is not a readable netCDF4 file ({exc}); it may be truncated or "
                           f"corrupt: {REGENERATE_HINT}.") from exc
    return validate(ds, source=f"'{p}'")


def save_fingerprints(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Validate ``ds`` and write it atomically as compressed netCDF4."""
    validate(ds)
    encoding = {name: {"zlib": True, "complevel": 4} for name in ds.data_vars}
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
