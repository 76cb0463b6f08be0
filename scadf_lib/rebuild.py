"""Rebuilding shipped weights: retrain a committed run from scratch on the machine kind it records,
check that it reproduces its committed results, and ship its weights (``--rebuild-checkpoints``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from scadf_lib.checkpoints import RUN_HISTORY, RUN_METRICS
from scadf_lib.fileio import write_csv_atomic, write_json_atomic
from scadf_lib.planning import Run
from scadf_lib.pool import device_name, in_pool
from scadf_lib.presets import RETRAINED
from scadf_lib.runfolder import committed_runs, ship_checkpoint, shipped_checkpoint, ships_checkpoint
from scadf_lib.studies.resultset import ResultSet
from scadf_lib.sweep_tables import keep_committed
from scadf_lib.tables import csv_flags
from scadf_lib.training import train


#: Largest relative difference between a retrained run and its committed results for the retrained
#: weights to ship (:func:`rebuild_checkpoints`). Training on the CPU with the recorded number of
#: threads is deterministic, so a run that reproduces does so to the digits the tables hold.
REPRODUCE_RTOL = 1e-6


#: The columns of a run's learning curve that :func:`reproduction_check` compares.
REPRODUCED_CURVE = ("train_localisation", "val_localisation", "val_mse_points_m2")


def missing_checkpoints(runs: list[Run], results: Path) -> list[Run]:
    """The runs whose results are committed and whose weights should ship (:func:`ships_checkpoint`)
    but are not in ``<results>/models/`` (they finished before the sweep shipped them)."""
    committed = committed_runs(results)
    return [r for r in runs if ships_checkpoint(r) and r.name in committed and shipped_checkpoint(r, results) is None]


def _max_rel_diff(new: Any, old: Any) -> float:
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    return float(np.max(np.abs(new - old) / np.maximum(np.abs(old), 1e-12), initial=0.0))


def reproduction_check(run: Run, run_dir: Path, results: Path) -> dict[str, Any]:
    """How closely the run retrained in ``run_dir`` gives its committed results: the largest relative
    difference over its learning curve (:data:`REPRODUCED_CURVE`, every epoch, ``curves.csv.gz``) and over
    its test MSEs (every group and band, ``all_metrics.csv``); infinite where the epochs or the rows
    differ in number. ``reproduced``: both within :data:`REPRODUCE_RTOL`."""
    curves = pd.read_csv(results / ResultSet.CURVES)
    old_curve = curves[curves.name == run.name].sort_values("epoch")
    new_curve = pd.read_csv(run_dir / RUN_HISTORY)
    cols = list(REPRODUCED_CURVE)
    curve = (_max_rel_diff(new_curve[cols], old_curve[cols]) if len(new_curve) == len(old_curve) > 0 else np.inf)
    metrics = pd.read_csv(results / ResultSet.METRICS, dtype={"band": str})
    old_m = metrics[metrics.name == run.name]
    both = old_m.merge(pd.read_csv(run_dir / RUN_METRICS, dtype={"band": str}), on=["group", "band"],
                       suffixes=("_old", "_new"))
    scores = _max_rel_diff(both.mse_m2_new, both.mse_m2_old) if len(both) == len(old_m) > 0 else np.inf
    first = {c: _max_rel_diff(new_curve[c].iloc[:1], old_curve[c].iloc[:1]) if len(new_curve) and len(old_curve)
             else np.inf for c in ("train_localisation", "val_localisation")}
    held = both[(both.group == "held-out") & (both.band == "all")]
    return {"name": run.name, "epochs_committed": len(old_curve), "epochs_retrained": len(new_curve),
            "first_epoch_train_rel_diff": first["train_localisation"],
            "first_epoch_val_rel_diff": first["val_localisation"], "curve_max_rel_diff": curve, "metrics_max_rel_diff": scores,
            "held_out_mse_m2_committed": float(held.mse_m2_old.iloc[0]) if len(held) else np.nan,
            "held_out_mse_m2_retrained": float(held.mse_m2_new.iloc[0]) if len(held) else np.nan,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "reproduced": bool(max(curve, scores) <= REPRODUCE_RTOL)}


def rebuild_blocker(row: pd.Series, device: str, tried: pd.DataFrame | None = None) -> str | None:
    """Why a committed run (its ``runs.csv`` row) cannot be reproduced here, or None:

    * another device, or a CPU whose vector instructions (``torch.backends.cpu.get_cpu_capability()``:
      AVX2, AVX512) differ from the recorded ones. Either changes the rounding of steps, and training
      amplifies it: etoile SoftMoE seed 0, committed from another machine and retrained on this one
      with the same code (checked at the run's commit) and data, differed by 3e-5 in the first epoch's
      mean training loss, by 6 % in the validation error after it and by 12 % in the final held-out
      MSE. Runs recorded before the capability was are tried;
    * an earlier rebuild on this kind of CPU that did not reproduce it (``tried``: rows of
      ``rebuilds.csv``): a fresh machine of the same kind would only repeat it."""
    if str(row.device) != device:
        return f"trained on {row.device}, this machine trains on {device}"
    recorded = row.get("cpu_capability")
    here = torch.backends.cpu.get_cpu_capability()
    if isinstance(recorded, str) and recorded != here:
        return f"trained on a CPU with {recorded}, this one has {here}"
    if tried is not None and len(tried) and "cpu_capability" in tried:
        failed = tried[(tried.name == row.name) & (tried.cpu_capability == here)
                       & ~csv_flags(tried.reproduced)]
        if len(failed):
            return f"an earlier rebuild on a CPU with {here} did not reproduce it (rebuilds.csv)"
    return None


def rebuild_one(run: Run, work: Path, results: Path, threads: int | None = None) -> str:
    """Retrain a committed run from scratch into ``<work>/rebuild/<name>/`` (resumable), on the device
    and number of CPU threads its ``runs.csv`` row records, compare it with its committed results
    (:func:`reproduction_check`, written to ``rebuild.json`` there) and ship its weights under the run's
    name only where it reproduces them; otherwise they ship as ``<name>_retrained.pt`` (:data:`RETRAINED`:
    another sample of the method, scored in ``rebuilds.csv``, labelled so by the track study). A run
    that cannot be reproduced here (:func:`rebuild_blocker`) is skipped, and says why. ``threads`` (the
    pool's share) is ignored: the recorded count decides."""
    row = pd.read_csv(results / ResultSet.RUNS).set_index("name").loc[run.name]
    tried = pd.read_csv(results / ResultSet.REBUILDS) if (results / ResultSet.REBUILDS).exists() else None
    blocker = rebuild_blocker(row, device_name(run.cfg.device), tried)
    if blocker:
        return f"{run.name}: not rebuilt ({blocker}; a rebuild reproduces a run on its own kind of machine only)"
    before = torch.get_num_threads()
    torch.set_num_threads(int(row.torch_threads))
    try:
        run_dir = work / "rebuild" / run.name
        train(run.cfg, run_dir, progress=False)
        check = reproduction_check(run, run_dir, results)
    finally:
        torch.set_num_threads(before)
    ship_checkpoint(run, run_dir, results, None if check["reproduced"] else [run.name + RETRAINED])
    write_json_atomic(run_dir / "rebuild.json", check)
    verdict = ("reproduced, shipped" if check["reproduced"] else
               f"differs from its committed results, shipped as {run.name + RETRAINED}.pt")
    return (f"{run.name}: {verdict} (curve {check['curve_max_rel_diff']:.2g}, test MSEs "
            f"{check['metrics_max_rel_diff']:.2g}, largest relative differences)")


def rebuild_checkpoints(runs: list[Run], work: Path, results: Path, jobs: int = 1,
                        progress: bool = True) -> pd.DataFrame:
    """Retrain every run of :func:`missing_checkpoints` (:func:`rebuild_one`, ``jobs`` at once) and
    record each comparison in ``<results>/rebuilds.csv`` (rows of other runs kept): a committed run
    whose weights were never shipped gets them, and the set gains a check that its runs reproduce."""
    todo = missing_checkpoints(runs, results)
    bar = tqdm(total=len(todo), desc="rebuilt checkpoints", unit="run", disable=not progress)
    in_pool(rebuild_one, todo, (work, results), jobs, bar)
    bar.close()
    checks = [work / "rebuild" / r.name / "rebuild.json" for r in todo]
    table = pd.DataFrame([json.loads(c.read_text()) for c in checks if c.exists()])
    table = keep_committed(results, ResultSet.REBUILDS, table, set(table.name) if len(table) else set())
    if len(table):
        write_csv_atomic(table, results / ResultSet.REBUILDS)
    return table
