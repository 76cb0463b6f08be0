"""Bring your own fingerprints: tables of measurements and DeepMIMO v4 scenarios into the workbook's
schema (:mod:`scadf_lib.schema`), validated and saved with :func:`scadf_lib.schema.save_fingerprints`.

From a table (CSV or Parquet), one row per (UE, band)::

    python -m scadf_lib.importers table measurements.csv --out data/mine.nc --angle-unit deg --gain-unit dB \\
        --bs-position 0 0 25 [--cfr cfr.npy] [--scene mine] [--merge-duplicates]

Columns: ``ue`` (any id; rows of one UE share it), ``band_ghz``, ``x_m``, ``y_m``, ``aod``, ``aoa``
(azimuths of the dominant path, in ``--angle-unit``), ``distance_m`` (its length), ``path_gain`` (in
``--gain-unit``: ``dB``, or ``linear`` for a power ratio, converted as 10 log10), ``los`` (0/1 or
true/false); optional ``z_m``. The units are the caller's statement, converted, never guessed (a
table in degrees declared as radians is refused by the physical validation, with a hint). Without
``--cfr`` the dataset has no CFR (``has_cfr = 0``) and every model trains on the numeric features
alone. ``--cfr``: a complex .npy array (band, ue, antenna, subcarrier), UEs in the order of their
first appearance in the table, bands ascending.

From DeepMIMO v4 scenario folders, one per carrier frequency (the ``deepmimo`` package is not
needed: its files are read directly)::

    python -m scadf_lib.importers deepmimo scen_3p5 scen_6 scen_28 --out data/dm.nc [--bandwidth-hz 50e6]

A v4 folder holds ``params.json`` and one ``.npz`` per array, ``{key}_t000_tx000_r000.npz`` (TX set,
TX, RX set): ``rx_pos``, ``tx_pos`` (m), ``power`` (dB), ``phase`` (deg), ``delay`` (s), ``aoa_az``,
``aod_az`` (deg), ``inter`` (interaction codes per path, 0 = none; NaN pads paths that do not exist).
The carrier is ``params.json``'s ``rt_params.frequency`` (Hz), or ``carrier_freq``/``frequency`` at its
top level. Taken per UE and frequency (conventions stated, as the workbook's Sionna data use them):

* the dominant path is path 0, the strongest (DeepMIMO orders paths by power);
* LOS when path 0 has no interaction (``inter[:, 0] == 0``, DeepMIMO's own test);
* AoD, AoA: path 0's azimuths, degrees to radians, wrapped to [-pi, pi];
* distance: path 0's delay x c (m);
* path gain: 10 log10 of the summed linear powers of all paths (dB), minus ``--power-offset-db``
  (0: the powers are taken as gains relative to the transmit power);
* CFR at the workbook's subcarriers f_k (offsets from the carrier, ``--bandwidth-hz`` /
  ``--subcarriers``), one BS antenna (SISO):

      H[k] = sum_p 10^(P_p / 20) exp(j phi_p) exp(-j 2 pi f_k tau_p)

  with P_p the path power (dB), phi_p its phase (rad, at the carrier) and tau_p its delay (s).

UEs are joined across the folders on their receiver positions (to the millimetre); a UE without a
path at some frequency, or missing from a folder, is dropped (the count is in ``history``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from scadf_lib.schema import (SPEED_OF_LIGHT, DatasetError, drop_duplicate_positions, fingerprint_content,  # noqa: F401
                              save_fingerprints, subcarrier_offsets_hz, validate)

TABLE_COLUMNS = ("ue", "band_ghz", "x_m", "y_m", "aod", "aoa", "distance_m", "path_gain", "los")
ANGLE_UNITS = ("rad", "deg")
GAIN_UNITS = ("dB", "linear")


class ImportError_(ValueError):
    """An input that cannot be imported; the message names the problem and the fix."""


def wrap_angle(rad: np.ndarray) -> np.ndarray:
    """Angles (rad) wrapped to [-pi, pi]."""
    return np.angle(np.exp(1j * np.asarray(rad, dtype=np.float64)))


def fingerprint_dataset(bands_ghz: np.ndarray, xyz: np.ndarray, per_band: dict[str, np.ndarray],
                        cfr: np.ndarray | None, bs_position_m: tuple[float, float, float], scene: str,
                        bandwidth_hz: float, num_subcarriers: int, source: str, history: str) -> xr.Dataset:
    """The schema Dataset from arrays (band, ue): ``aod``/``aoa`` (rad), ``distance`` (m), ``path_gain``
    (dB), ``los`` (bool), ``num_paths``; ``xyz`` (ue, 3) m; ``cfr`` complex (band, ue, antenna,
    subcarrier) or None (``has_cfr = 0``)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    data, coords = fingerprint_content(per_band, xyz, cfr, bands_ghz, bandwidth_hz, num_subcarriers,
                                       z_long_name="UE height")
    known = np.array([2.6, 6.0, 28.0])
    extra = [float(b) for b in bands_ghz if not np.isclose(known, b).any()]
    attrs: dict[str, Any] = {
        "title": f"fingerprints imported into scadf-workbook, scene {scene}", "Conventions": "CF-1.10",
        "source": source, "scene": scene, "bs_position_m": [float(v) for v in bs_position_m],
        "bandwidth_hz": float(bandwidth_hz), "num_subcarriers": int(num_subcarriers), "sionna_rt_version": "none",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "history": history,
        "has_cfr": int(cfr is not None), "generator": "scadf_lib.importers",
    }
    if extra:
        attrs["declared_bands_ghz"] = extra
    return xr.Dataset(data, coords=coords, attrs=attrs)


# ----------------------------------------------------------------------------------------- tables

def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; a clear error for a missing file or another format."""
    p = Path(path)
    if not p.is_file():
        raise ImportError_(f"table '{p}' does not exist")
    if p.suffix.lower() == ".parquet":
        try:
            return pd.read_parquet(p)
        except ImportError as exc:  # no parquet engine installed
            raise ImportError_(f"reading '{p}' needs a Parquet engine ({exc}); `pip install pyarrow`, or export "
                               f"the table as CSV") from exc
    if p.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(p)
    raise ImportError_(f"table '{p}' is neither .csv nor .parquet; export it as one of those")


def to_table(ds: xr.Dataset, angle_unit: str = "deg") -> pd.DataFrame:
    """A fingerprint Dataset's scalars as the importer's table (the inverse of :func:`from_table`
    without the CFR): one row per (ue, band), angles in ``angle_unit``, path gain in dB."""
    conv = np.rad2deg if angle_unit == "deg" else (lambda a: a)
    rows = []
    for j, band in enumerate(ds.band.values):
        rows.append(pd.DataFrame({
            "ue": ds.ue.values, "band_ghz": float(band), "x_m": ds.x.values, "y_m": ds.y.values,
            **({"z_m": ds.z.values} if "z" in ds else {}),
            "aod": conv(ds.aod.values[j].astype(np.float64)), "aoa": conv(ds.aoa.values[j].astype(np.float64)),
            "distance_m": ds.distance.values[j], "path_gain": ds.path_gain.values[j],
            "los": ds.los.values[j].astype(int)}))
    return pd.concat(rows, ignore_index=True)


def _los_flags(values: pd.Series) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower()
    mapping = {"1": True, "0": False, "true": True, "false": False, "1.0": True, "0.0": False}
    bad = sorted(set(text) - set(mapping))
    if bad:
        raise ImportError_(f"column 'los' must be a 0/1 (or true/false) flag, found {bad[:5]}")
    return text.map(mapping).to_numpy(bool)


def from_table(table: pd.DataFrame, angle_unit: str, gain_unit: str, bs_position_m: tuple[float, float, float],
               scene: str = "imported", cfr: np.ndarray | None = None, bandwidth_hz: float = 50e6,
               num_subcarriers: int = 64, merge_duplicates: bool = False, source: str = "table") -> xr.Dataset:
    """A validated fingerprint Dataset from a table with :data:`TABLE_COLUMNS` (module docstring)."""
    if angle_unit not in ANGLE_UNITS:
        raise ImportError_(f"angle unit {angle_unit!r} unknown; say 'rad' or 'deg' (the unit of the aod/aoa columns)")
    if gain_unit not in GAIN_UNITS:
        raise ImportError_(f"gain unit {gain_unit!r} unknown; say 'dB' or 'linear' (the unit of path_gain)")
    missing = [c for c in TABLE_COLUMNS if c not in table]
    if missing:
        raise ImportError_(f"the table lacks columns {missing}; it needs {list(TABLE_COLUMNS)} (+ optional z_m)")
    t = table.copy()
    if t.duplicated(["ue", "band_ghz"]).any():
        raise ImportError_("the table has two rows for the same (ue, band_ghz); give one row per UE and band")
    ues = pd.unique(t.ue)
    bands = np.sort(t.band_ghz.unique().astype(np.float64))
    full = pd.MultiIndex.from_product([bands, ues], names=["band_ghz", "ue"])
    t = t.set_index(["band_ghz", "ue"])
    absent = full.difference(t.index)
    if len(absent):
        raise ImportError_(f"{len(absent)} (band, ue) rows are missing (e.g. band {absent[0][0]:g} GHz, ue {absent[0][1]}); "
                           f"every UE needs a row at every band")
    t = t.reindex(full)
    shape = (len(bands), len(ues))
    col = lambda c: t[c].to_numpy(np.float64).reshape(shape)  # noqa: E731
    to_rad = np.deg2rad if angle_unit == "deg" else (lambda a: a)
    gain = col("path_gain")
    if gain_unit == "linear":
        if (gain <= 0).any():
            raise ImportError_("path_gain declared linear but holds values <= 0; a linear power gain is > 0")
        gain = 10 * np.log10(gain)
    first = t.xs(bands[0], level="band_ghz")
    xyz = np.stack([first.x_m, first.y_m, first.z_m if "z_m" in first else np.zeros(len(first))], 1).astype(np.float64)
    per_band = {"aod": to_rad(col("aod")), "aoa": to_rad(col("aoa")), "distance": col("distance_m"),
                "path_gain": gain, "los": _los_flags(t["los"]).reshape(shape), "num_paths": np.ones(shape)}
    if cfr is not None:
        cfr = np.asarray(cfr)
        if cfr.ndim != 4 or cfr.shape[:2] != shape or not np.iscomplexobj(cfr):
            raise ImportError_(f"the CFR array must be complex (band, ue, antenna, subcarrier) = ({shape[0]}, {shape[1]}, "
                               f"A, K); got {cfr.dtype} {cfr.shape}")
        num_subcarriers = cfr.shape[3]
    history = (f"imported from {source}: angles in {angle_unit} (converted to rad), path gain in {gain_unit}"
               f"{' (converted to dB)' if gain_unit == 'linear' else ''}")
    ds = fingerprint_dataset(bands, xyz, per_band, cfr, bs_position_m, scene, bandwidth_hz, num_subcarriers,
                             f"table ({source})", history)
    return _validated(ds, merge_duplicates)


def _validated(ds: xr.Dataset, merge_duplicates: bool) -> xr.Dataset:
    if merge_duplicates:
        ds = drop_duplicate_positions(ds)
        ds = ds.assign_coords(ue=np.arange(ds.sizes["ue"]))
    return validate(ds, source="the imported dataset")


# ----------------------------------------------------------------------------------------- DeepMIMO

DEEPMIMO_KEYS = ("rx_pos", "tx_pos", "power", "phase", "delay", "aoa_az", "aod_az", "inter")


def deepmimo_arrays(folder: str | Path) -> tuple[dict[str, np.ndarray], float]:
    """The arrays of one DeepMIMO v4 scenario folder (TX set 0, TX 0, the first RX set with files) and its
    carrier frequency (Hz) from ``params.json``."""
    f = Path(folder)
    params_path = f / "params.json"
    if not params_path.is_file():
        raise ImportError_(f"'{f}' is not a DeepMIMO v4 scenario folder: it has no params.json")
    params = json.loads(params_path.read_text())
    freq = (params.get("rt_params", {}) or {}).get("frequency") or params.get("carrier_freq") or params.get("frequency")
    if not freq:
        raise ImportError_(f"'{params_path}' names no carrier frequency (rt_params.frequency, carrier_freq or "
                           f"frequency, in Hz)")
    arrays = {}
    for key in DEEPMIMO_KEYS:
        hits = sorted(f.glob(f"{key}_t000_tx000_r*.npz"))
        if not hits:
            raise ImportError_(f"'{f}' lacks {key}_t000_tx000_r*.npz; a v4 scenario holds {list(DEEPMIMO_KEYS)}")
        with np.load(hits[0], allow_pickle=False) as z:
            arrays[key] = z[z.files[0]]
    return arrays, float(freq)


def synthesise_cfr(power_db: np.ndarray, phase_deg: np.ndarray, delay_s: np.ndarray,
                   offsets_hz: np.ndarray) -> np.ndarray:
    """(N, K) complex CFR from per-path power (dB), phase (deg) and delay (s), (N, P) with NaN for absent
    paths: H[k] = sum_p 10^(P_p / 20) exp(j phi_p) exp(-j 2 pi f_k tau_p) (module docstring)."""
    valid = np.isfinite(power_db) & np.isfinite(delay_s)
    amp = np.where(valid, 10 ** (np.where(valid, power_db, 0) / 20), 0.0)
    phase = np.deg2rad(np.where(valid, phase_deg, 0.0))
    tau = np.where(valid, delay_s, 0.0)
    return np.einsum("np,npk->nk", amp * np.exp(1j * phase),
                     np.exp(-2j * np.pi * tau[:, :, None] * offsets_hz[None, None, :]))


def from_deepmimo(folders: list[str | Path], scene: str = "deepmimo", bandwidth_hz: float = 50e6,
                  num_subcarriers: int = 64, power_offset_db: float = 0.0, with_cfr: bool = True,
                  merge_duplicates: bool = False) -> xr.Dataset:
    """A validated fingerprint Dataset from DeepMIMO v4 scenario folders, one per carrier frequency
    (module docstring for the conventions)."""
    if not folders:
        raise ImportError_("give at least one DeepMIMO scenario folder")
    loaded = sorted((deepmimo_arrays(f)[::-1] + (str(f),) for f in folders), key=lambda x: x[0])
    freqs = [fr for fr, _, _ in loaded]
    if len(set(freqs)) != len(freqs):
        raise ImportError_(f"two folders have the same carrier frequency ({freqs} Hz); give one folder per frequency")
    keys = [pd.Index([tuple(r) for r in np.round(a["rx_pos"][:, :3], 3)]) for _, a, _ in loaded]
    common = keys[0]
    for k in keys[1:]:
        common = common.intersection(k, sort=False)
    offsets = subcarrier_offsets_hz(bandwidth_hz, num_subcarriers)
    per_band: dict[str, list[np.ndarray]] = {k: [] for k in ("aod", "aoa", "distance", "path_gain", "los", "num_paths")}
    cfrs, has_path = [], []
    for (freq, a, _), k in zip(loaded, keys):
        rows = k.get_indexer(common)
        power = a["power"][rows].astype(np.float64)
        valid = np.isfinite(power)
        has_path.append(valid[:, 0])
        linear = np.where(valid, 10 ** (np.where(valid, power, 0) / 10), 0.0).sum(1)
        per_band["aod"].append(wrap_angle(np.deg2rad(a["aod_az"][rows, 0])))
        per_band["aoa"].append(wrap_angle(np.deg2rad(a["aoa_az"][rows, 0])))
        per_band["distance"].append(a["delay"][rows, 0] * SPEED_OF_LIGHT)
        per_band["path_gain"].append(10 * np.log10(np.where(linear > 0, linear, np.nan)) - power_offset_db)
        per_band["los"].append(a["inter"][rows, 0] == 0)
        per_band["num_paths"].append(valid.sum(1))
        if with_cfr:
            cfrs.append(synthesise_cfr(power, a["phase"][rows], a["delay"][rows], offsets)[:, None, :])
    keep = np.all(has_path, axis=0)
    stacked = {k: np.stack(v)[:, keep] for k, v in per_band.items()}
    xyz = np.asarray(list(common), dtype=np.float64)[keep]
    tx = np.asarray(loaded[0][1]["tx_pos"], dtype=np.float64).reshape(-1, 3)[0]
    cfr = np.stack(cfrs)[:, keep] if with_cfr else None
    dropped = len(keys[0]) - int(keep.sum())
    history = (f"imported from DeepMIMO v4 folders {[f for _, _, f in loaded]}: dominant path = path 0 (strongest), "
               f"LOS = no interaction on path 0, distance = delay x c; {dropped} receivers of the first folder dropped "
               f"(missing from a folder or without a path at some frequency)")
    ds = fingerprint_dataset(np.asarray(freqs) / 1e9, xyz, stacked, cfr, tuple(tx), scene, bandwidth_hz,
                             num_subcarriers, "DeepMIMO v4 scenario (read directly)", history)
    return _validated(ds, merge_duplicates)


# ----------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.importers", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("table", help="a CSV/Parquet table, one row per (ue, band)")
    t.add_argument("table")
    t.add_argument("--angle-unit", required=True, choices=ANGLE_UNITS)
    t.add_argument("--gain-unit", required=True, choices=GAIN_UNITS)
    t.add_argument("--bs-position", nargs=3, type=float, required=True, metavar=("X", "Y", "Z"), help="m")
    t.add_argument("--cfr", default=None, help="complex .npy (band, ue, antenna, subcarrier)")
    d = sub.add_parser("deepmimo", help="DeepMIMO v4 scenario folders, one per carrier frequency")
    d.add_argument("folders", nargs="+")
    d.add_argument("--power-offset-db", type=float, default=0.0, help="subtracted from the path powers (dB)")
    d.add_argument("--no-cfr", action="store_true", help="import the scalars only (has_cfr = 0)")
    for p in (t, d):
        p.add_argument("--out", required=True, help="netCDF file to write (atomically)")
        p.add_argument("--scene", default=None)
        p.add_argument("--bandwidth-hz", type=float, default=50e6)
        p.add_argument("--subcarriers", type=int, default=64)
        p.add_argument("--merge-duplicates", action="store_true",
                       help="drop UEs whose position repeats an earlier UE's (otherwise refused)")
    a = ap.parse_args(argv)
    try:
        if a.kind == "table":
            cfr = np.load(a.cfr, allow_pickle=False) if a.cfr else None
            ds = from_table(read_table(a.table), a.angle_unit, a.gain_unit, tuple(a.bs_position),
                            a.scene or Path(a.table).stem, cfr, a.bandwidth_hz, a.subcarriers, a.merge_duplicates,
                            source=str(a.table))
        else:
            ds = from_deepmimo(a.folders, a.scene or Path(a.folders[0]).name, a.bandwidth_hz, a.subcarriers,
                               a.power_offset_db, not a.no_cfr, a.merge_duplicates)
        save_fingerprints(ds, a.out)
    except (ImportError_, DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{ds.sizes['ue']} UEs x bands {[float(b) for b in ds.band.values]} GHz "
          f"({'CFR + scalars' if 'cfr_real' in ds else 'scalars only'}) -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
