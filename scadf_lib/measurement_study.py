"""The estimator study: how far what a base station estimates lies from the ray tracer's oracle.

For every scene and band, each UE is measured once (:mod:`scadf_lib.measure`, default link
budget) and its features estimated (:mod:`scadf_lib.estimate`); each estimate is compared with the
oracle feature the models are given today:

- ``distance`` (m): the first detected path's length against the oracle dominant path's length;
- ``aod`` (deg): the first path's angle from the array's broadside against the oracle dominant
  path's, arcsin(cos(el) sin(az)) (a ULA measures this angle, not the azimuth);
- ``path_gain`` (dB): the received power against the oracle total path gain.

Errors are absolute; the table gives median and 90th percentile per scene, band and LOS/NLOS, the
share of UEs whose feature is missing (below detection), the median SNR per element and
subcarrier, and the single-path Cramér-Rao bound at that SNR: the gap between the bound and the
error is what multipath, NLOS first paths and the timing offset cost, not thermal noise.

Command line (writes ``results/measurement/estimator_errors.csv`` and ``config.json``)::

    python -m scadf_lib.measurement_study --scenes munich etoile florence
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from scadf_lib.estimate import EstimatorConfig, crb, estimate
from scadf_lib.fileio import atomic_path, project_path, write_json_atomic
from scadf_lib.measure import MeasurementConfig, measure, require_paths
from scadf_lib.schema import load_fingerprints
from scadf_lib.tables import md_table

RESULTS = "results/measurement"
ERRORS_CSV = "estimator_errors.csv"
#: Units of each feature's error in the table.
ERROR_UNITS = {"distance": "m", "aod": "deg", "path_gain": "dB"}


def subset(ds: xr.Dataset, n: int | None, seed: int = 0) -> xr.Dataset:
    """``n`` UEs of ``ds`` drawn at random (in file order), or all of them where ``n`` is None."""
    if n is None or n >= ds.sizes["ue"]:
        return ds
    if n < 1:
        raise ValueError(f"measured_ues must be a positive number of UEs or None (all), got {n}")
    pick = np.sort(np.random.default_rng(seed).choice(ds.sizes["ue"], n, replace=False))
    return ds.isel(ue=pick)


def oracle_features(ds: xr.Dataset, band: float) -> dict[str, np.ndarray]:
    """The oracle counterparts of the estimated features at ``band`` (GHz), per UE: ``distance`` (m,
    dominant path), ``aod`` (rad from broadside, dominant path, from the stored paths), ``path_gain``
    (dB, all paths), ``los``."""
    require_paths(ds)
    sel = ds.sel(band=band)
    power = sel["path_coef_real"].values ** 2 + sel["path_coef_imag"].values ** 2
    dom = power.argmax(axis=1)
    take = np.arange(len(dom))
    el, az = ds["path_aod_el"].values[take, dom], ds["path_aod_az"].values[take, dom]
    return {"distance": sel["distance"].values.astype(np.float64),
            "aod": np.arcsin(np.clip(np.cos(el) * np.sin(az), -1, 1)),
            "path_gain": sel["path_gain"].values.astype(np.float64), "los": sel["los"].values.astype(bool)}


def measured_features(ds: xr.Dataset, mcfg: MeasurementConfig = MeasurementConfig(),
                      ecfg: EstimatorConfig = EstimatorConfig()) -> xr.Dataset:
    """Every band's measurement of every UE, estimated: variables (band, ue) ``distance`` (m),
    ``aod`` (rad from broadside), ``path_gain`` (dB), NaN where missing, and ``snr_db`` per element
    and subcarrier. The settings are in the attributes."""
    bands = [float(b) for b in ds["band"].values]
    per_band = []
    for b in bands:
        m = measure(ds, b, mcfg)
        f = estimate(m, ecfg)
        f["snr_db"] = m.snr_db
        per_band.append(f)
    units = {"distance": "m", "aod": "rad", "path_gain": "dB", "snr_db": "dB"}
    data = {k: (("band", "ue"), np.stack([f[k] for f in per_band]).astype(np.float32), {"units": u})
            for k, u in units.items()}
    return xr.Dataset(data, coords={"band": ("band", bands, {"units": "GHz"}), "ue": ds["ue"].values},
                      attrs={"measurement_json": json.dumps(mcfg.to_json()),
                             "estimator_json": json.dumps(dataclasses.asdict(ecfg))})


def error_rows(scene: str, ds: xr.Dataset, est: xr.Dataset, num_antennas: int) -> list[dict]:
    """The table rows of one scene: per band, LOS/NLOS and feature (see the module docstring)."""
    offsets = ds["subcarrier_offset"].values
    rows = []
    for b in [float(v) for v in ds["band"].values]:
        oracle = oracle_features(ds, b)
        e = est.sel(band=b)
        for condition, mask in (("LOS", oracle["los"]), ("NLOS", ~oracle["los"])):
            if not mask.any():
                continue
            snr = float(np.median(e["snr_db"].values[mask]))
            s_med = float(np.median(np.sin(oracle["aod"][mask])))
            bound = crb(snr, offsets, num_antennas, s_med)
            for feat, unit in ERROR_UNITS.items():
                err = np.abs(e[feat].values[mask].astype(np.float64) - oracle[feat][mask])
                scale = 180 / np.pi if feat == "aod" else 1.0
                ok = np.isfinite(err)
                rows.append({"scene": scene, "band_ghz": b, "condition": condition, "feature": feat,
                             "unit": unit, "ues": int(mask.sum()), "missing_share": float(1 - ok.mean()),
                             "median_abs_error": float(np.median(err[ok]) * scale) if ok.any() else np.nan,
                             "p90_abs_error": float(np.percentile(err[ok], 90) * scale) if ok.any() else np.nan,
                             "median_snr_db": snr, "crb_at_median_snr": float(bound[feat] * scale)})
    return rows


def run_study(scenes: tuple[str, ...], data_dir: str = "data", out: str = RESULTS,
              mcfg: MeasurementConfig = MeasurementConfig(), ecfg: EstimatorConfig = EstimatorConfig()) -> pd.DataFrame:
    """Measure and estimate every scene, write the error table and the settings; return the table."""
    rows, ambiguity = [], []
    for scene in scenes:
        ds = load_fingerprints(project_path(f"{data_dir}/{scene}.nc"))
        est = measured_features(ds, mcfg, ecfg)
        rows += error_rows(scene, ds, est, mcfg.num_antennas)
        ambiguity += mirror_ambiguity_rows(scene, ds)
        print(f"[measurement] {scene}: {ds.sizes['ue']} UEs x {ds.sizes['band']} bands estimated", flush=True)
    table = pd.DataFrame(rows)
    folder = project_path(out)
    with atomic_path(folder / ERRORS_CSV) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(folder / AMBIGUITY_CSV) as tmp:
        pd.DataFrame(ambiguity).to_csv(tmp, index=False, float_format="%.6g")
    write_json_atomic(folder / "config.json", {"measurement": mcfg.to_json(), "estimator": dataclasses.asdict(ecfg),
                                               "data_dir": data_dir, "scenes": list(scenes)})
    return table


AMBIGUITY_CSV = "mirror_ambiguity.csv"


def mirror_ambiguity_rows(scene: str, ds: xr.Dataset, band: float = 28.0, k: int = 5, test_share: float = 0.2,
                          seed: int = 0) -> list[dict]:
    """What the ULA's mirror ambiguity alone costs a fingerprint lookup: WKNN (``k`` neighbours,
    inverse-distance weights, z-scored features) places a random ``test_share`` of the UEs from the
    others, on oracle features that differ only in the angle: the global azimuth of departure (what
    the oracle gives) or the angle from the array's broadside (what a ULA measures: UEs mirrored
    across the array axis look alike); distance and path gain exact, no AoA. A diagnostic on a
    random split, not the study's protocol (that is the anchors' of ``--preset measured``)."""
    from sklearn.neighbors import KNeighborsRegressor
    xy = np.stack([ds["x"].values, ds["y"].values], axis=1)
    test = np.random.default_rng(seed).random(len(xy)) < test_share
    oracle, sel = oracle_features(ds, band), ds.sel(band=band)
    rows = []
    for angle, a in (("global azimuth", sel["aod"].values.astype(np.float64)), ("angle from broadside", oracle["aod"])):
        f = np.column_stack([np.sin(a), np.cos(a), oracle["distance"], oracle["path_gain"]])
        f = (f - f[~test].mean(0)) / f[~test].std(0)
        model = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(f[~test], xy[~test])
        err = ((model.predict(f[test]) - xy[test]) ** 2).sum(axis=1)
        los = oracle["los"][test]
        rows.append({"scene": scene, "band_ghz": band, "angle": angle, "k": k, "test_share": test_share,
                     "test_ues": int(test.sum()),
                     "mse_m2": float(err.mean()), "mse_los_m2": float(err[los].mean()),
                     "mse_nlos_m2": float(err[~los].mean())})
    return rows


def ambiguity_text(folder: str | Path = RESULTS) -> str:
    """The report's sentence on the mirror ambiguity ('' without its table)."""
    path = project_path(folder) / AMBIGUITY_CSV
    if not path.exists():
        return ""
    t = pd.read_csv(path).set_index(["scene", "angle"])
    parts = [f"{scene} {t.loc[(scene, 'global azimuth'), 'mse_m2']:.1f} -> "
             f"{t.loc[(scene, 'angle from broadside'), 'mse_m2']:.1f} m² (LOS {t.loc[(scene, 'global azimuth'), 'mse_los_m2']:.1f}"
             f" -> {t.loc[(scene, 'angle from broadside'), 'mse_los_m2']:.1f})" for scene in t.index.unique("scene")]
    first = t.iloc[0]
    return ("**The array, not the estimators, costs most.** A ULA measures the angle from its broadside, the same "
            "for two UEs mirrored across the array axis, and the BS stands amid its UEs. With every other feature "
            f"exact (the oracle's distance and path gain, no AoA), a {int(first.k)}-nearest-neighbour lookup at "
            f"{first.band_ghz:g} GHz ({100 * first.test_share:.0f} % of each scene's UEs held out at random; a "
            "diagnostic, not the "
            "study's protocol) goes from the global azimuth to the angle from broadside as: " + "; ".join(parts)
            + " (`mirror_ambiguity.csv`). A site that sees one side only (a sector panel, or three) would not "
            "have this ambiguity; this workbook's BS, like the paper's, is one isotropic ULA.")


def read_errors(folder: str | Path = RESULTS) -> pd.DataFrame:
    """The committed error table ([] where the study has not run)."""
    path = project_path(folder) / ERRORS_CSV
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def errors_table(errors: pd.DataFrame, scene: str) -> pd.DataFrame:
    """One scene's errors for a reader: a row per band and LOS/NLOS; per feature the median / p90
    absolute error and the single-path bound at the median SNR; headers in words with units."""
    t = errors[errors.scene == scene].set_index(["band_ghz", "condition", "feature"])
    rows = []
    for (band, cond), g in t.groupby(level=[0, 1], sort=False):
        f = g.droplevel([0, 1])
        row = {"band (GHz)": f"{band:g}", "UEs": cond, "median SNR (dB)": f"{f.median_snr_db.iloc[0]:.0f}"}
        for feat, name, unit in (("distance", "path length", "m"), ("aod", "angle", "deg"), ("path_gain", "power", "dB")):
            r = f.loc[feat]
            row[f"{name} error ({unit}), median / p90"] = f"{r.median_abs_error:.3g} / {r.p90_abs_error:.3g}"
            row[f"{name} bound ({unit})"] = f"{r.crb_at_median_snr:.2g}"
        row["missing (%), first path / power"] = (f"{100 * f.loc['distance'].missing_share:.0f} / "
                                                  f"{100 * f.loc['path_gain'].missing_share:.0f}")
        rows.append(row)
    return pd.DataFrame(rows)


def report_section(folder: str | Path = RESULTS) -> str:
    """REPORT.md's section on the estimators ('' before the study has run)."""
    errors = read_errors(folder)
    if errors.empty:
        return ""
    cfg = json.loads(project_path(folder).joinpath("config.json").read_text())
    m = cfg["measurement"]
    parts = ["## What a base station measures (data version 2)\n",
             f"Each UE sends an uplink pilot at {m['tx_power_dbm']:g} dBm over 50 MHz; the BS's {m['num_antennas']}-element "
             f"array measures it with thermal noise ({m['noise_psd_dbm_hz']:g} dBm/Hz, noise figure "
             + ("5 dB in FR1 and 7 dB at 28 GHz" if m["noise_figure_db"] is None else f"{m['noise_figure_db']:g} dB")
             + "), a random "
             f"common phase and a timing offset of std {m['timing_offset_std_ns']:g} ns "
             "(`scadf_lib.measure`). From that, the BS estimates the first path's length (delay profile, then "
             "maximum likelihood), its angle from the array's broadside (beamscan; a ULA cannot measure the azimuth "
             "itself) and the received power (`scadf_lib.estimate`); the UE's angle of arrival is not measurable. "
             "Absolute error against the oracle feature the models are given today (the dominant path's length and "
             "angle, the total path gain), with the single-path Cramér-Rao bound at the median SNR (for the power: the "
             "noise-only standard deviation of the estimate): where the error "
             "is far above the bound, multipath, an NLOS first path or the timing offset limit the estimate, not "
             f"noise. Missing = below the detection threshold ({cfg['estimator']['detection_db']:g} dB above the noise "
             "of a cell of the angle-delay profile).\n"]
    parts.append(summary_text(errors, m["timing_offset_std_ns"]) + "\n")
    parts.append(ambiguity_text(folder) + "\n")
    for scene in errors.scene.unique():
        parts += [f"**{scene}**\n", md_table(errors_table(errors, scene)), ""]
    return "\n".join(parts) + "\n"


def summary_text(errors: pd.DataFrame, timing_std_ns: float) -> str:
    """What the table says, in words, from the table: the LOS length error against what the timing
    offset alone costs, and how much of the NLOS UEs' first paths are missing or far off."""
    los = errors[(errors.condition == "LOS") & (errors.feature == "distance")]
    nlos = errors[(errors.condition == "NLOS") & (errors.feature == "distance")]
    timing_m = 0.6745 * 299_792_458.0 * timing_std_ns * 1e-9  # median |N(0, c sigma)|
    ratio = los.median_abs_error / los.crb_at_median_snr
    return (f"On LOS UEs the first path's length is off by a median {los.median_abs_error.min():.2f}-"
            f"{los.median_abs_error.max():.2f} m over scenes and bands, {ratio.min():.0f}-{ratio.max():.0f} times its "
            f"single-path bound at the median SNR: noise is not the limit. A timing offset "
            f"of std {timing_std_ns:g} ns alone costs a median {timing_m:.2f} m, and a ground reflection within the "
            f"same 6 m delay bin pulls the rest. On NLOS UEs {100 * nlos.missing_share.min():.0f}-"
            f"{100 * nlos.missing_share.max():.0f} % of the first paths are missing (below detection; most at "
            f"{nlos.groupby('band_ghz').missing_share.mean().idxmax():g} GHz) "
            f"and the 90th percentile of the length error ({nlos.p90_abs_error.min():.0f}-"
            f"{nlos.p90_abs_error.max():.0f} m) is a first path that is not the dominant one the oracle gives: "
            f"the oracle's features are what no receiver measures there.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.measurement_study", description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["munich", "etoile", "florence"])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--tx-power-dbm", type=float, default=MeasurementConfig.tx_power_dbm)
    ap.add_argument("--timing-offset-std-ns", type=float, default=MeasurementConfig.timing_offset_std_ns)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    mcfg = MeasurementConfig(tx_power_dbm=a.tx_power_dbm, timing_offset_std_ns=a.timing_offset_std_ns, seed=a.seed)
    table = run_study(tuple(a.scenes), a.data_dir, a.out, mcfg)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
