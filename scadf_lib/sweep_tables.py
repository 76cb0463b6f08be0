"""The result set's tables gathered from the finished run folders (``all_metrics.csv``, ``runs.csv``,
``curves.csv.gz``, ...; the names are :class:`scadf_lib.studies.resultset.ResultSet`'s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from scadf_lib.checkpoints import RUN_CONFIG, RUN_HISTORY, RUN_INFO, RUN_METRICS, RUN_POINT_ERRORS
from scadf_lib.fileio import atomic_path, write_csv_atomic
from scadf_lib.planning import Run
from scadf_lib.runfolder import run_finished
from scadf_lib.studies.resultset import ResultSet


def log_sweep(results: Path, row: dict[str, Any]) -> None:
    """Append one row to ``results/sweeps.csv`` (atomically: the file is rewritten whole)."""
    path = results / ResultSet.SWEEPS
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    write_csv_atomic(pd.concat([old, pd.DataFrame([row])], ignore_index=True), path)


#: Split facts copied from each run's config.json into runs.csv.
SPLIT_COLUMNS = ("points", "radius_m", "clusters", "clusters_too_small", "points_unused_in_small_clusters",
                 "train_points", "test_points", "held_out_points_tested", "held_out_points_unused",
                 "held_out_share_of_test_slots", "holdout", "block_m", "guard_points_unused",
                 "min_distance_test_to_train_m", "val_points", "val_trajectories", "survey_grid_step",
                 "survey_share", "survey_radius_m", "surveyed_points", "surveyed_points_unused",
                 "held_out_distance_ms_m2", "held_out_distance_median_m", "held_out_distance_p90_m", "held_out_distance_max_m", "blocks", "test_blocks", "val_blocks",
                 "open_width_median_m", "open_width_p90_m", "share_in_passages_narrower_than_block")


def paired_points(runs: list[Run], work: Path) -> pd.DataFrame:
    """noSpace against SCADF-MoE on the same held-out points: one row per (scene, seed, band, UE)
    held out in both runs, with each run's mean squared error over the test trajectories that hold
    the point (m^2). The pairs are the ``spatial`` runs and the ``main`` Mix SCADF-MoE runs of the
    same scene and seed (the ``paired_with`` tag of :func:`plan`); both splits hold out the same
    points (see :func:`make_split`)."""
    finished = {r.name: r for r in runs if (work / r.name / RUN_POINT_ERRORS).exists() and run_finished(work / r.name)}
    rows = []
    for r in finished.values():
        ref = r.tags.get("paired_with")
        if ref not in finished:
            continue
        a = pd.read_csv(work / ref / RUN_POINT_ERRORS)
        b = pd.read_csv(work / r.name / RUN_POINT_ERRORS)
        both = a[a.held_out].merge(b[b.held_out], on=["band_ghz", "ue"], suffixes=("_scadf", "_nospace"))
        rows.append(pd.DataFrame({"scene": r.tags["scene"], "seed": r.cfg.seed, "band_ghz": both.band_ghz,
                                  "ue": both.ue, "los": both.los_scadf, "sq_error_scadf_m2": both.sq_error_m2_scadf,
                                  "sq_error_nospace_m2": both.sq_error_m2_nospace,
                                  "appearances_scadf": both.appearances_scadf}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


#: Columns of a run's history.csv kept in ``results/curves.csv.gz`` (those present).
CURVE_COLUMNS = ("epoch", "step", "train_localisation", "train_mse_points", "val_localisation", "val_mse_points",
                 "val_mse_points_m2", "val_seen_localisation", "lr", "offset_weight", "elapsed_s")


def learning_curves(runs: list[Run], work: Path) -> pd.DataFrame:
    """Every finished trained run's learning curve, tidy: one row per (run, epoch) with the run's
    name, study, model, scene, regime, seed and :data:`CURVE_COLUMNS` (normalised units, except
    ``val_mse_points_m2`` in m^2 and ``elapsed_s`` in s)."""
    frames = []
    for run in runs:
        path = work / run.name / RUN_HISTORY
        if run.study == "anchors" or not path.exists() or not run_finished(work / run.name):
            continue
        h = pd.read_csv(path)
        frames.append(h[[c for c in CURVE_COLUMNS if c in h]].assign(
            name=run.name, study=run.study, model=run.cfg.model, scene=run.tags["scene"], regime=run.cfg.regime,
            seed=run.cfg.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def isolation_table(runs: list[Run], work: Path) -> pd.DataFrame:
    """Per finished ``main`` run: how much of its held-out squared error falls on points whose
    fingerprint matches no training point within 10 m (:func:`scadf_lib.diagnostics.run_isolation`),
    cached in the run's ``isolation.json`` (recomputed when its point_errors.csv is newer)."""
    from scadf_lib.diagnostics import run_isolation
    rows = []
    for run in runs:
        run_dir = work / run.name
        errors, cache = run_dir / RUN_POINT_ERRORS, run_dir / "isolation.json"
        if run.study != "main" or not errors.exists() or not run_finished(run_dir, run.cfg):
            continue
        if cache.exists() and cache.stat().st_mtime >= errors.stat().st_mtime:
            summary = json.loads(cache.read_text())
        else:
            summary = run_isolation(run.cfg, pd.read_csv(errors))
            with atomic_path(cache) as tmp:
                tmp.write_text(json.dumps(summary))
        rows.append({"name": run.name, "scene": run.tags["scene"], "regime": run.cfg.regime, "model": run.cfg.model,
                     "seed": run.cfg.seed, **summary})
    return pd.DataFrame(rows)


#: Training-schedule settings copied from each run's config.json into runs.csv (the report states them).
SCHEDULE_COLUMNS = ("min_lr_fraction", "decay_fraction", "offset_weight", "offset_anneal_fraction", "warmup_fraction",
                    "schedule_epochs")


def keep_committed(results: Path, name: str, frame: pd.DataFrame, renewed: set[str]) -> pd.DataFrame:
    """``frame`` (rows of the runs finished in the work directory) after the rows of ``results/name``
    that belong to other runs: committed results whose run folders may be gone are never dropped. A
    table without a ``name`` column (``paired_points.csv``) is keyed by (scene, seed)."""
    path = results / name
    if not path.exists():
        return frame
    old = pd.read_csv(path, dtype=str, keep_default_na=False)  # as text: kept rows are rewritten byte for byte
    if "name" in old:
        old = old[~old["name"].isin(renewed)]
    elif len(frame):
        keys = {(str(a), str(b)) for a, b in zip(frame.scene, frame.seed)}
        old = old[[k not in keys for k in zip(old.scene, old.seed)]]
    parts = [f for f in (old, frame) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else frame


def collect(runs: list[Run], work: Path, results: Path) -> pd.DataFrame:
    """Gather finished runs' metrics into ``results/all_metrics.csv``, ``results/runs.csv`` (with the
    split's and the schedule's settings) and their learning curves into ``results/curves.csv.gz``.
    Rows already in those tables for runs not finished in ``work`` are kept (:func:`keep_committed`):
    a run whose folder is gone keeps its committed results."""
    frames, infos = [], []
    for run in runs:
        run_dir = work / run.name
        if not run_finished(run_dir, run.cfg):
            continue
        info = json.loads((run_dir / RUN_INFO).read_text())
        config = json.loads((run_dir / RUN_CONFIG).read_text())
        schedule = {k: config.get("train_config", {}).get(k) for k in SCHEDULE_COLUMNS}
        infos.append({**schedule, **info, **{k: config["split"].get(k) for k in SPLIT_COLUMNS}})
        m = pd.read_csv(run_dir / RUN_METRICS, dtype={"band": str})
        frames.append(m.assign(name=run.name, study=run.study, variant=info.get("variant", run.cfg.model),
                               param=info.get("param"), value=info.get("value")))
    renewed = {i["name"] for i in infos}
    metrics = keep_committed(results, ResultSet.METRICS,
                              pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), renewed)
    if not len(metrics):
        raise RuntimeError("no finished runs to collect")
    tables = [(ResultSet.METRICS, metrics), (ResultSet.RUNS, pd.DataFrame(infos)), (ResultSet.CURVES, learning_curves(runs, work)),
              (ResultSet.PAIRED_POINTS, paired_points(runs, work)), (ResultSet.ISOLATION, isolation_table(runs, work))]
    for name in (ResultSet.DEGRADATION, ResultSet.ROUTING_RESPONSE, ResultSet.ROUTING_QUALITY):
        found = [pd.read_csv(work / r.name / name) for r in runs if (work / r.name / name).exists()]
        tables.append((name, pd.concat(found, ignore_index=True) if found else pd.DataFrame()))
    for name, frame in tables:
        if name != ResultSet.METRICS:
            frame = keep_committed(results, name, frame, renewed)
        if len(frame):
            write_csv_atomic(frame, results / name)
    return pd.read_csv(results / ResultSet.METRICS, dtype={"band": str})
