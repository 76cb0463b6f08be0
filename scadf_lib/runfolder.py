"""A run's folder under the sweep's work directory (``runs/<preset>/<name>/``): the state its files
record (finished, extended, paused), parking unfinished runs in the result set, and the sweep's
status read from the folders alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from scadf_lib.checkpoints import (BEST, LAST, RUN_CONFIG, RUN_INFO, RUN_METRICS, committed_model_folders,
                                   inspector_name, slim_state)
from scadf_lib.fileio import atomic_path, write_json_atomic
from scadf_lib.planning import Run
from scadf_lib.studies.resultset import ResultSet
from scadf_lib.training import TrainConfig, extends_budget, late_gain


def committed_runs(results: Path) -> set[str]:
    """Names of the runs whose results are already in ``results/runs.csv`` (committed tables). Such
    a run counts as done although its folder under the work directory may be gone (a fresh clone):
    the driver never trains it again, and :func:`collect` keeps its rows."""
    path = results / ResultSet.RUNS
    return set(pd.read_csv(path, usecols=["name"])["name"]) if path.exists() else set()


def run_done(run: Run, work: Path, committed: set[str]) -> bool:
    """The run is finished in its folder, or has no folder and its results are committed."""
    run_dir = work / run.name
    if run_finished(run_dir, run.cfg):
        return True
    return run.name in committed and not (run_dir / LAST).exists()


def clear_run(run_dir: Path) -> None:
    """Delete a run folder's files (``--fresh``: the run starts over)."""
    if run_dir.exists():
        for f in run_dir.glob("*"):
            f.unlink()


def run_finished(run_dir: Path, cfg: TrainConfig | None = None) -> bool:
    """The run in ``run_dir`` has its results, and (given ``cfg``) is not ``cfg`` with a larger
    maximum budget (:func:`run_extended`)."""
    done = (run_dir / RUN_METRICS).exists() and (run_dir / RUN_INFO).exists()
    return done and not (cfg is not None and run_extended(run_dir, cfg))


def run_extended(run_dir: Path, cfg: TrainConfig) -> bool:
    """True when ``run_dir`` holds a finished run that ``cfg`` continues with a larger maximum budget
    on the same schedule (:func:`scadf_lib.training.extends_budget`), e.g. a preset whose floor now
    holds for longer: the run resumes from its ``last.pt`` (if the stopping rule had ended it, it
    only re-scores)."""
    conf = run_dir / RUN_CONFIG
    if not (conf.exists() and (run_dir / LAST).exists()):
        return False
    return extends_budget(json.loads(conf.read_text())["train_config"], cfg)


def start_extension(run_dir: Path) -> float:
    """Before a finished run trains on (:func:`run_extended`): drop its corrupted-input scores (they
    scored the shorter run's best checkpoint) and return the wall time it has taken so far (s)."""
    (run_dir / ResultSet.DEGRADATION).unlink(missing_ok=True)
    return float(json.loads((run_dir / RUN_INFO).read_text()).get("wall_s", 0.0))


#: A run folder's wall time of the earlier calls that did not record it (paused by the time limit
#: before the run finished), s; added to ``run.json``'s ``wall_s`` when the run is recorded, so that a
#: resumed run's wall time counts every call.
PAUSED_WALL = "paused_wall.json"


def paused_wall(run_dir: Path) -> float:
    path = run_dir / PAUSED_WALL
    return float(json.loads(path.read_text())["wall_s"]) if path.exists() else 0.0


def add_paused_wall(run_dir: Path, seconds: float) -> None:
    write_json_atomic(run_dir / PAUSED_WALL, {"wall_s": paused_wall(run_dir) + seconds})


def ships_checkpoint(run: Run) -> bool:
    """Whether a run's best weights go to ``<results>/models/<name>.pt`` (for :mod:`scadf_lib.localise`
    and the track study): the seed-0 Mix runs of SCADF-MoE and SoftMoE, the seed-0 runs without
    spatial context (L = 1) and the measured-input study's seed-0 SCADF-MoE at the default link budget
    (oracle and measured: the routing inspector's measured-input models). Seed 0 only: ~2 MB each, and
    the working tree must travel to a GPU machine (64 MiB at most, data and wheels included)."""
    main = run.study == "main" and run.cfg.regime == "mix" and run.cfg.model in ("scadf", "softmoe")
    measured = run.study == "measured" and run.cfg.model == "scadf" and "param" not in run.tags
    return (main or measured or run.study == "spatial") and run.cfg.seed == 0


def _checkpoint_names(run: Run) -> list[str]:
    """The file names (without ``.pt``) a shipping run's weights go to: its own name and, for SCADF-MoE
    seed 0 Mix, the routing inspector's ``<scene>_scadf``."""
    inspector = run.cfg.model == "scadf" and run.cfg.seed == 0 and run.study == "main"
    return [run.name] + ([inspector_name(run.tags["scene"])] if inspector else [])


def ship_checkpoint(run: Run, run_dir: Path, results: Path, names: list[str] | None = None) -> None:
    """Copy the best weights of the run in ``run_dir`` (with its configs, normalisation statistics and
    history; no optimizer state) to ``<results>/models/`` under ``names`` (default
    :func:`_checkpoint_names`), atomically."""
    slim = slim_state(torch.load(run_dir / BEST, weights_only=True))
    for name in names or _checkpoint_names(run):
        with atomic_path(results / "models" / f"{name}.pt") as tmp:
            torch.save(slim, tmp)


def shipped_checkpoint(run: Run, results: Path) -> Path | None:
    """Where the committed weights of a shipping run are: ``<name>.pt`` (or the inspector's
    ``<scene>_scadf.pt``) in :func:`~scadf_lib.checkpoints.committed_model_folders`, the folders the
    track study also reads; None when there are none."""
    folders = committed_model_folders(results)
    return next((f / f"{n}.pt" for n in _checkpoint_names(run) for f in folders if (f / f"{n}.pt").exists()), None)


#: Where a sweep parks the state of its unfinished runs (``--park``), under the result set's folder.
PARKED = "inflight"


def restore_parked(runs: list[Run], work: Path, results: Path) -> list[str]:
    """Copy each parked run (``results/inflight/<name>/``) into its empty work folder, so that a fresh
    clone resumes it at its last finished epoch; returns the names restored."""
    import shutil
    restored = []
    for run in runs:
        src, dst = results / PARKED / run.name, work / run.name
        if (src / LAST).exists() and not (dst / LAST).exists() and not run_finished(dst):
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                shutil.copy2(f, dst / f.name)
            restored.append(run.name)
    return restored


def park_unfinished(runs: list[Run], work: Path, results: Path) -> list[str]:
    """Copy the resumable state of every started but unfinished run (``last.pt``, the weights of
    ``best.pt``, the wall time so far) to ``results/inflight/<name>/`` (atomically, file by file) and
    drop the parked state of runs that have finished; returns the names parked. Committed with the
    tables, it lets a sweep on a fresh clone lose at most the epoch in progress."""
    import shutil
    parked = []
    for run in runs:
        src, dst = work / run.name, results / PARKED / run.name
        if run_finished(src, run.cfg):
            shutil.rmtree(dst, ignore_errors=True)
            continue
        if not (src / LAST).exists():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for name in (LAST, PAUSED_WALL):
            if (src / name).exists():
                with atomic_path(dst / name) as tmp:
                    shutil.copy2(src / name, tmp)
        if (src / BEST).exists():
            best = torch.load(src / BEST, weights_only=True)
            with atomic_path(dst / BEST) as tmp:
                torch.save({k: v for k, v in best.items() if k != "optimizer"}, tmp)  # weights: what finishing reads
        parked.append(run.name)
    if (results / PARKED).exists() and not any((results / PARKED).iterdir()):
        (results / PARKED).rmdir()
    return parked


def sweep_status(runs: list[Run], work: Path, results: Path) -> pd.DataFrame:
    """Where each planned run stands, read from files only (safe while a sweep runs): ``done`` (in
    ``<results>/runs.csv`` or finished in its work folder), ``started`` (a ``last.pt`` in its work
    folder), ``parked`` (in ``<results>/inflight/``) or ``waiting``; for a started or parked run its
    epochs so far against its maximum, its best epoch and the stopping rule's late gain (%: the drop
    of the best validation error over the last quarter of its epochs; the rule, where the run has one,
    ends it below ``rule_pct``)."""
    from scadf_lib.checkpoints import load_checkpoint
    committed = set(pd.read_csv(results / ResultSet.RUNS).name) if (results / ResultSet.RUNS).exists() else set()
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.name, "study": run.study, "state": "waiting"}
        if run.name in committed or run_finished(work / run.name):
            row["state"] = "done"
        for state, folder in (("started", work / run.name), ("parked", results / PARKED / run.name)):
            if row["state"] == "waiting" and (folder / LAST).exists():
                val = [h["val_localisation"] for h in load_checkpoint(folder / LAST)["history"]]
                row.update(state=state, epochs=len(val), max_epochs=run.cfg.epochs,
                           best_epoch=int(np.argmin(val)) + 1, late_gain_pct=round(100 * late_gain(val), 2),
                           rule_pct=None if run.cfg.stop_min_gain is None else 100 * run.cfg.stop_min_gain)
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("epochs", "max_epochs", "best_epoch"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def print_status(status: pd.DataFrame) -> None:
    """The counts of :func:`sweep_status` per study and state, then the started and parked runs."""
    print(status.groupby(["study", "state"], sort=False).size().unstack(fill_value=0).to_string())
    live = status[status.state.isin(["started", "parked"])]
    if len(live):
        print("\n" + live.drop(columns="study").to_string(index=False))
