"""Versions of the shipped ray-traced data, and what each holds.

- **Version 1** (until 2026-12-06): the data the reference set (``results/flat``) and the shipped
  models were trained on. Traced without diffraction on free-floating (roof) edges, 500 UEs per
  solver call (which lost about a third of the paths), munich's BS 1 m above its roof, one CFR
  element, no paths. Its files live in git history; ``python -m scadf_lib.dataversions restore 1``
  writes them to ``data/v1/`` (git blobs checked by hash).
- **Version 2**: roof-edge diffraction, 25 UEs per deterministic solver call, BS placements of
  :data:`scadf_lib.raytrace.DEFAULT_BS_POSITION`, each UE's strongest paths stored. ``data/<scene>.nc``.

``python -m scadf_lib.dataversions stats`` writes ``data/path_statistics.csv`` (both versions side by
side) and the table in ``data/README.md`` between its markers.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from scadf_lib.fileio import PROJECT_ROOT, atomic_path
from scadf_lib.presets import CURRENT_DATA_DIR, REFERENCE_DATA_DIR, REFERENCE_DATA_VERSION
from scadf_lib.schema import DATA_VERSION, data_version, has_paths, load_fingerprints
from scadf_lib.tables import md_table

SCENES = ("munich", "etoile", "florence")
#: Version 1: the commit whose data/ holds it, the git blob of each scene's file, and where it goes.
V1_COMMIT = "450c74a1aad1c39376b678f5844727443d8bada6"
V1_BLOBS = {"munich": "5120a4bd85110d67494b0d12b8bfccb508cc526d",
            "etoile": "e705514d500327a33499667119496b7c8576425a",
            "florence": "40c1e1b83755c45ffdc06c9a36d909d2d18669a7"}
V1_DIR = REFERENCE_DATA_DIR
#: The data folder of each version (relative to the project root): the presets' own names.
DATA_DIRS = {REFERENCE_DATA_VERSION: REFERENCE_DATA_DIR, DATA_VERSION: CURRENT_DATA_DIR}


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, timeout=120)


def _blob_of(path: Path) -> str:
    out = _git("hash-object", str(path))
    return out.stdout.decode().strip()


def v1_available(root: Path = PROJECT_ROOT) -> bool:
    """True where every version-1 file is in ``data/v1/``."""
    return all((root / V1_DIR / f"{s}.nc").is_file() for s in SCENES)


def restore_v1(root: Path = PROJECT_ROOT) -> list[Path]:
    """Write the version-1 files from git history to ``data/v1/`` (skipping those already there
    with the right git blob hash); return their paths. Needs a clone with history."""
    written = []
    for scene, blob in V1_BLOBS.items():
        target = root / V1_DIR / f"{scene}.nc"
        if target.is_file() and _blob_of(target) == blob:
            written.append(target)
            continue
        out = _git("cat-file", "blob", blob)
        if out.returncode != 0:
            raise RuntimeError(
                f"git object {blob} (data/{scene}.nc of commit {V1_COMMIT[:7]}, data version 1) is not in this "
                f"checkout: {out.stderr.decode().strip()}. Clone with history (no --depth), or `git fetch --unshallow`, "
                f"then rerun `python -m scadf_lib.dataversions restore 1`")
        with atomic_path(target) as tmp:
            tmp.write_bytes(out.stdout)
        written.append(target)
    return written


def path_statistics(ds: xr.Dataset) -> dict[str, float]:
    """What a data file holds, for the before/after table: UEs, LOS share, paths per UE, and the
    dominant path of NLOS UEs against the direct BS-UE distance (all at the first band)."""
    b0 = ds.isel(band=0)
    ue = np.column_stack([ds.x.values, ds.y.values, ds.z.values])
    direct = np.linalg.norm(ue - np.asarray(ds.attrs["bs_position_m"], dtype=np.float64), axis=1)
    nlos = ~b0["los"].values.astype(bool)
    dist = b0["distance"].values.astype(np.float64)
    row = {"data_version": data_version(ds), "bs_height_m": float(np.asarray(ds.attrs["bs_position_m"])[2]),
           "ues": ds.sizes["ue"], "candidates_no_path_dropped": int(ds.attrs.get("candidates_no_path_dropped", -1)),
           "los_share": float(1 - nlos.mean()), "median_paths_per_ue": float(np.median(b0["num_paths"].values)),
           "nlos_median_dominant_path_m": float(np.median(dist[nlos])),
           "nlos_median_dominant_over_direct": float(np.median(dist[nlos] / direct[nlos])),
           "nlos_share_dominant_over_2x_direct": float((dist[nlos] > 2 * direct[nlos]).mean())}
    if has_paths(ds):
        row["mean_stored_paths"] = float(ds["num_stored_paths"].values.mean())
        row["min_stored_power_share"] = float(ds["stored_power_share"].values.min())
        rel = ds["cfr_rebuild_error"].values.ravel() if "cfr_rebuild_error" in ds else np.full(1, np.nan)
        before = float(ds.attrs.get("paths_before_dropping_duplicates", 0))
        row["duplicate_path_entries_dropped"] = float(ds.attrs.get("duplicate_paths_dropped", 0)) / before if before else 0.0
        row["cfr_rebuild_error_median"] = float(np.median(rel))
        row["cfr_rebuild_error_p99"] = float(np.percentile(rel, 99))
    return row


def statistics_table(root: Path = PROJECT_ROOT) -> pd.DataFrame:
    """:func:`path_statistics` of every scene in every version available here."""
    rows = []
    for version, folder in sorted(DATA_DIRS.items()):
        for scene in SCENES:
            path = root / folder / f"{scene}.nc"
            if path.is_file():
                rows.append({"scene": scene, **path_statistics(load_fingerprints(path)),
                             "file_mb": path.stat().st_size / 1e6})
    return pd.DataFrame(rows)


STATS_CSV = "data/path_statistics.csv"
README_BEGIN = "<!-- BEGIN GENERATED by `python -m scadf_lib.dataversions stats`: do not edit -->"
README_END = "<!-- END GENERATED -->"


def readme_table(stats: pd.DataFrame) -> str:
    """The before/after table of data/README.md, headers in words."""
    t = pd.DataFrame({
        "scene": stats.scene, "version": stats.data_version, "BS height (m)": stats.bs_height_m.map("{:g}".format),
        "UEs": stats.ues, "LOS (%)": (100 * stats.los_share).map("{:.0f}".format),
        "paths per UE (median)": stats.median_paths_per_ue.map("{:g}".format),
        "NLOS dominant path (m, median)": stats.nlos_median_dominant_path_m.map("{:.0f}".format),
        "NLOS dominant / direct (median)": stats.nlos_median_dominant_over_direct.map("{:.2f}".format),
        "NLOS dominant > 2x direct (%)": (100 * stats.nlos_share_dominant_over_2x_direct).map("{:.0f}".format),
        "no-path candidates dropped": stats.candidates_no_path_dropped,
        "path entries reported twice, dropped (%)": stats.get("duplicate_path_entries_dropped", pd.Series(
            np.nan, stats.index)).map(lambda v: "-" if pd.isna(v) else f"{100 * v:.1f}"),
        "stored paths per UE (mean)": stats.get("mean_stored_paths", pd.Series(np.nan, stats.index)).map(
            lambda v: "-" if pd.isna(v) else f"{v:.1f}"),
        "least power share stored (%)": stats.get("min_stored_power_share", pd.Series(np.nan, stats.index)).map(
            lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}"),
        "element-0 CFR rebuilt from the paths, error (%, median / p99)": [
            "-" if pd.isna(a) else f"{100 * a:.1f} / {100 * b:.1f}"
            for a, b in zip(stats.get("cfr_rebuild_error_median", pd.Series(np.nan, stats.index)),
                            stats.get("cfr_rebuild_error_p99", pd.Series(np.nan, stats.index)))],
        "file (MB)": stats.file_mb.map("{:.1f}".format)})
    return md_table(t.sort_values(["scene", "version"]).reset_index(drop=True))


def write_statistics(root: Path = PROJECT_ROOT) -> pd.DataFrame:
    """Write :data:`STATS_CSV` and the table of data/README.md; return the table."""
    stats = statistics_table(root)
    with atomic_path(root / STATS_CSV) as tmp:
        stats.to_csv(tmp, index=False, float_format="%.6g")
    readme = root / "data" / "README.md"
    text = readme.read_text()
    if README_BEGIN in text:
        head, rest = text.split(README_BEGIN, 1)
        block = "\n".join([README_BEGIN, "", readme_table(stats), "", README_END])
        with atomic_path(readme) as tmp:
            tmp.write_text(head + block + rest.split(README_END, 1)[1])
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.dataversions", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("restore", help="write a past data version's files from git history")
    r.add_argument("version", type=int, choices=[1])
    sub.add_parser("stats", help="path statistics of every version here -> data/path_statistics.csv, data/README.md")
    a = ap.parse_args(argv)
    if a.cmd == "restore":
        for p in restore_v1():
            print(p)
    else:
        print(write_statistics().to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
