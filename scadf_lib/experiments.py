"""All heavy runs of the workbook from one command; the notebooks only read ``results/``.

Studies
    ``main``         Table II: every scene x method (Concat, FullCon, TransFusion, SoftMoE, SCADF-MoE)
                     x regime (Mix, OOD) x seed.
    ``anchors``      the classical anchors (:mod:`scadf_lib.anchors`: geometric closed form, WKNN on the
                     numeric features, WKNN + CFR) on every scene x regime x seed, scored like the models.
    ``spatial``      SCADF-MoE without spatial context (noSpace: L = 1 on the same clusters, the same
                     held-out points, every training point trained on as often as with L = 5) per
                     scene; compared with SCADF-MoE point by point (``paired_points.csv``).
    ``blocks``       every method, Mix, with whole 20 m map blocks held out (no training point
                     within r of a test point): the spatially held-out regime, beyond the paper.
    ``degradation``  munich, Mix, every method trained with noise / modality-dropout augmentation
                     (:mod:`scadf_lib.degradation`); these and the clean ``main`` runs of the same
                     seeds are then scored with one modality corrupted at a time (beyond the paper).
    ``ablation``     munich, Mix: no dynamic routing, single expert, no MMD, no task embeddings.
    ``sensitivity``  munich, Mix, first seed: number of experts, lambda, trajectory length L, radius.
    ``budget``       munich, Mix, every method trained for more epochs than the preset: does the
                     ranking of the methods hold when the models are trained longer?

Every run trains into ``<work>/<name>/`` (resumable, skipped when finished unless ``--fresh``), then
the collected tables are written atomically to ``results/<preset>/``: ``all_metrics.csv`` (tidy: one row per
run x band x group), ``runs.csv`` (one row per run: settings, split sizes, parameters, throughput, wall time),
``paired_points.csv`` (per held-out point and band: SCADF-MoE's and noSpace's squared error),
for the first seed of the Mix runs ``errors/<name>.csv.gz`` (per-point errors in metres), the
seed-0 Mix SCADF-MoE weights of each scene in ``models/`` (for the routing inspector), and
the report (:mod:`scadf_lib.report`: ``results/REPORT.md`` for the reference set).

Command line::

    python -m scadf_lib.experiments --preset flat --jobs 2 --park   # the reference set, results/flat (resumable)
    python -m scadf_lib.experiments --preset paper --studies main ablation --stack 64 --jobs 9 \
        --compile reduce-overhead --time-limit-min 9   # on a GPU: runs of one method as stacked models

``bench/gpu_run.sh`` wraps the GPU command (with the benchmarks). ``--time-limit-min`` makes a call
stop starting runs and epochs that would end later, so a sweep fits into commands of bounded length.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm  # text bars: a saved notebook shows their last state, not a stale widget

from scadf_lib.fileio import atomic_path, project_path, write_json_atomic
from scadf_lib.checkpoints import committed_model_folders, is_reference_set
from scadf_lib.planning import PRIORITY, Run, plan, priority  # noqa: F401  (re-exported)
from scadf_lib.training import (COMPILE_MODES, FLAT_GAIN, PAPER_BATCH, Paused, TrainConfig, extends_budget,
                                late_gain, scaled_lr, select_device, train)

from scadf_lib.presets import (ALL_STUDIES, METHODS, PRESETS, REFERENCE_SET, RETRAINED, SCENES,  # noqa: F401
                               STUDIES)  # (re-exported)
from scadf_lib.tables import csv_flags, mean_ci, summarize  # noqa: F401  (re-exported)


def committed_runs(results: Path) -> set[str]:
    """Names of the runs whose results are already in ``results/runs.csv`` (committed tables). Such
    a run counts as done although its folder under the work directory may be gone (a fresh clone):
    the driver never trains it again, and :func:`collect` keeps its rows."""
    path = results / "runs.csv"
    return set(pd.read_csv(path, usecols=["name"])["name"]) if path.exists() else set()


def _done(run: Run, work: Path, committed: set[str]) -> bool:
    """The run is finished in its folder, or has no folder and its results are committed."""
    run_dir = work / run.name
    if _finished(run_dir, run.cfg):
        return True
    return run.name in committed and not (run_dir / "last.pt").exists()


def _clear(run_dir: Path) -> None:
    """Delete a run folder's files (``--fresh``: the run starts over)."""
    if run_dir.exists():
        for f in run_dir.glob("*"):
            f.unlink()


def _finished(run_dir: Path, cfg: TrainConfig | None = None) -> bool:
    """The run in ``run_dir`` has its results, and (given ``cfg``) is not ``cfg`` with a larger
    maximum budget (:func:`_extended`)."""
    done = (run_dir / "metrics.csv").exists() and (run_dir / "run.json").exists()
    return done and not (cfg is not None and _extended(run_dir, cfg))


def _extended(run_dir: Path, cfg: TrainConfig) -> bool:
    """True when ``run_dir`` holds a finished run that ``cfg`` continues with a larger maximum budget
    on the same schedule (:func:`scadf_lib.training.extends_budget`), e.g. a preset whose floor now
    holds for longer: the run resumes from its ``last.pt`` (if the stopping rule had ended it, it
    only re-scores)."""
    conf = run_dir / "config.json"
    if not (conf.exists() and (run_dir / "last.pt").exists()):
        return False
    return extends_budget(json.loads(conf.read_text())["train_config"], cfg)


def _start_extension(run_dir: Path) -> float:
    """Before a finished run trains on (:func:`_extended`): drop its corrupted-input scores (they
    scored the shorter run's best checkpoint) and return the wall time it has taken so far (s)."""
    (run_dir / "degradation.csv").unlink(missing_ok=True)
    return float(json.loads((run_dir / "run.json").read_text()).get("wall_s", 0.0))


#: A run folder's wall time of the earlier calls that did not record it (paused by the time limit
#: before the run finished), s; added to ``run.json``'s ``wall_s`` when the run is recorded, so that a
#: resumed run's wall time counts every call.
PAUSED_WALL = "paused_wall.json"


def _paused_wall(run_dir: Path) -> float:
    path = run_dir / PAUSED_WALL
    return float(json.loads(path.read_text())["wall_s"]) if path.exists() else 0.0


def _add_paused_wall(run_dir: Path, seconds: float) -> None:
    write_json_atomic(run_dir / PAUSED_WALL, {"wall_s": _paused_wall(run_dir) + seconds})


def device_name(device: str = "auto") -> str:
    """'cpu', or 'cuda (NVIDIA H100 80GB HBM3)': the device a run trains on, with the GPU's name."""
    dev = select_device(device)
    return f"{dev.type} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else dev.type


def run_one(run: Run, work: Path, results: Path, fresh: bool = False, stop_at: float | None = None,
            threads: int | None = None) -> str:
    """Train one run into ``<work>/<name>/`` unless it is finished (or ``fresh``), write its
    ``run.json`` and, where the run is one of them, its per-point errors and the inspector's weights.
    Past ``stop_at`` (Unix time, s) the run is not started, or pauses between epochs (:class:`Paused`);
    the next call resumes it."""
    if threads:
        torch.set_num_threads(threads)
    run_dir = work / run.name
    extended = not fresh and _extended(run_dir, run.cfg)
    if _finished(run_dir) and not extended and not fresh:
        return run.name
    if fresh:
        _clear(run_dir)
    if stop_at is not None and time.time() > stop_at:
        return f"{run.name} (not started: time limit)"
    if run.study == "anchors":
        return score_anchor(run, work)
    before_s = (_start_extension(run_dir) if extended else 0.0) + _paused_wall(run_dir)
    t0 = time.perf_counter()
    try:
        res = train(run.cfg, run_dir, progress=False, stop_at=stop_at)
    except Paused:
        _add_paused_wall(run_dir, time.perf_counter() - t0)
        return f"{run.name} (paused: time limit)"
    return record_run(run, res, work, results, before_s + time.perf_counter() - t0)


def run_stack(stack: list[Run], work: Path, results: Path, fresh: bool = False, stop_at: float | None = None,
              threads: int | None = None) -> str:
    """Train the unfinished runs of ``stack`` (one architecture: :func:`scadf_lib.engine.stack_key`)
    as one stacked model (:func:`scadf_lib.engine.train_stack`), each into its own folder with its
    own ``run.json``, as :func:`run_one` would; ``stack_size`` and ``stacked_with`` say it was stacked."""
    from scadf_lib.engine import train_stack
    if threads:
        torch.set_num_threads(threads)
    extended = {r.name for r in stack if not fresh and _extended(work / r.name, r.cfg)}
    todo = [r for r in stack if fresh or r.name in extended or not _finished(work / r.name)]
    if not todo:
        return f"stack of {len(stack)} (finished)"
    if fresh:
        for r in todo:
            _clear(work / r.name)
    if stop_at is not None and time.time() > stop_at:
        return f"stack of {len(todo)} (not started: time limit)"
    before = {r.name: (_start_extension(work / r.name) if r.name in extended else 0.0) + _paused_wall(work / r.name)
              for r in todo}
    t0 = time.perf_counter()
    try:
        results_ = train_stack([r.cfg for r in todo], [work / r.name for r in todo], stop_at=stop_at,
                               compile=todo[0].cfg.compile)
    except Paused:
        for r in todo:
            _add_paused_wall(work / r.name, time.perf_counter() - t0)
        return f"stack of {len(todo)} (paused: time limit)"
    wall = time.perf_counter() - t0
    for r, res in zip(todo, results_):
        record_run(r, res, work, results, before[r.name] + wall,
                   {"stack_size": len(todo), "stacked_with": ";".join(x.name for x in todo)})
    return f"stack of {len(todo)}: {todo[0].name} ..."


def make_jobs(runs: list[Run], stack: int) -> list[Run | list[Run]]:
    """Units of work for the pool: with ``stack`` > 1, runs of one architecture (and no augmentation)
    in stacks of at most ``stack`` runs, in plan order; the others (anchors, augmented runs) alone."""
    from scadf_lib.engine import stack_key, stackable
    if stack <= 1:
        return list(runs)
    jobs: list[Run | list[Run]] = []
    open_stacks: dict[tuple, list[Run]] = {}
    for r in runs:
        if r.study == "anchors" or not stackable(r.cfg):
            jobs.append(r)
            continue
        key = stack_key(r.cfg)
        if key not in open_stacks:
            open_stacks[key] = []
            jobs.append(open_stacks[key])
        open_stacks[key].append(r)
        if len(open_stacks[key]) == stack:
            del open_stacks[key]
    return jobs


def run_job(job: Run | list[Run], work: Path, results: Path, fresh: bool = False, stop_at: float | None = None,
            scored: frozenset[str] = frozenset(), threads: int | None = None) -> str:
    """One unit of :func:`make_jobs`: a stack, or a single run. Its finished runs named in ``scored``
    (:func:`degradation_targets`) are then scored under corrupted inputs at once, while the run folder
    and its ``best.pt`` exist: a run committed unscored could not be scored on a machine without them."""
    done = (run_stack(job, work, results, fresh, stop_at, threads) if isinstance(job, list)
            else run_one(job, work, results, fresh, stop_at, threads))
    for run in job if isinstance(job, list) else [job]:
        if run.name in scored:
            evaluate_degradation(run, work, threads)
    return done


def record_run(run: Run, res: Any, work: Path, results: Path, wall_s: float, extra: dict[str, Any] | None = None) -> str:
    """Write a trained run's ``run.json`` (settings, throughput, convergence) and, where the run is one
    of them, its per-point errors and the inspector's weights."""
    run_dir = work / run.name
    gain = late_gain(res.history.val_localisation)
    info = {"name": run.name, "study": run.study, **run.tags, "model": run.cfg.model, "regime": run.cfg.regime,
            "seed": run.cfg.seed, "wall_s": wall_s, "trajectories_per_s": res.throughput, **(extra or {}),
            "train_wall_s": float(res.history.elapsed_s.iloc[-1]),
            "parameters": json.loads((run_dir / "config.json").read_text())["parameters"],
            "modalities": "cfr+numeric" if res.data.feats.cfr.shape[2] else "numeric",
            "train_samples": len(res.data.train), "test_samples": len(res.data.test),
            "device": device_name(run.cfg.device), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "epochs": run.cfg.epochs, "batch_size": run.cfg.batch_size,
            "lr": run.cfg.lr, "compile": str(run.cfg.compile), "offset_weight": run.cfg.offset_weight,
            "weight_decay_all": run.cfg.decay_all, "val_points_fraction": run.cfg.val_points_fraction,
            "best_epoch": int(res.history.val_localisation.idxmin()) + 1,
            "val_late_gain": gain, "flat": bool(gain < FLAT_GAIN),
            "epochs_trained": len(res.history), "steps_trained": int(res.history["step"].iloc[-1]),
            "stopped_early": len(res.history) < run.cfg.epochs, "stop_min_gain": run.cfg.stop_min_gain,
            "stop_patience": run.cfg.stop_patience, "train_per_point": run.cfg.train_per_point,
            "decay_fraction": run.cfg.decay_fraction,
            **{f"final_{k}": v for k, v in res.history.iloc[-1].items()
               if k == "val_mmd" or k.startswith("val_task_") or k.startswith("val_block")}}
    if run.cfg.regime == "mix" and run.cfg.seed == 0 and run.study in ("main", "spatial"):
        table = res.predictions.point_table()[["band_ghz", "ue", "position", "los", "held_out", "error_m"]]
        with atomic_path(results / "errors" / f"{run.name}.csv.gz") as tmp:
            table.round({"error_m": 3}).to_csv(tmp, index=False, compression="gzip")
    if ships_checkpoint(run):
        ship_checkpoint(run, run_dir, results)
    write_json_atomic(run_dir / "run.json", info)
    (run_dir / PAUSED_WALL).unlink(missing_ok=True)  # counted in wall_s now
    return run.name


def ships_checkpoint(run: Run) -> bool:
    """Whether a run's best weights go to ``<results>/models/<name>.pt`` (for :mod:`scadf_lib.localise`
    and the track study): the seed-0 Mix runs of SCADF-MoE and SoftMoE and the seed-0 runs without
    spatial context (L = 1). Seed 0 only: ~2 MB each, and the working tree must travel to a GPU
    machine (64 MiB at most, data and wheels included)."""
    main = run.study == "main" and run.cfg.regime == "mix" and run.cfg.model in ("scadf", "softmoe")
    return (main or run.study == "spatial") and run.cfg.seed == 0


def _checkpoint_names(run: Run) -> list[str]:
    """The file names (without ``.pt``) a shipping run's weights go to: its own name and, for SCADF-MoE
    seed 0 Mix, the routing inspector's ``<scene>_scadf``."""
    inspector = run.cfg.model == "scadf" and run.cfg.seed == 0 and run.study == "main"
    return [run.name] + ([f"{run.tags['scene']}_scadf"] if inspector else [])


def ship_checkpoint(run: Run, run_dir: Path, results: Path, names: list[str] | None = None) -> None:
    """Copy the best weights of the run in ``run_dir`` (with its configs, normalisation statistics and
    history; no optimizer state) to ``<results>/models/`` under ``names`` (default
    :func:`_checkpoint_names`), atomically."""
    state = torch.load(run_dir / "best.pt", weights_only=True)
    slim = {k: state[k] for k in ("format_version", "model", "model_config", "normalizer", "train_config", "history",
                                  "data_version") if k in state}
    for name in names or _checkpoint_names(run):
        with atomic_path(results / "models" / f"{name}.pt") as tmp:
            torch.save(slim, tmp)


def shipped_checkpoint(run: Run, results: Path) -> Path | None:
    """Where the committed weights of a shipping run are: ``<name>.pt`` (or the inspector's
    ``<scene>_scadf.pt``) in :func:`~scadf_lib.checkpoints.committed_model_folders`, the folders the
    track study also reads; None when there are none."""
    folders = committed_model_folders(results)
    return next((f / f"{n}.pt" for n in _checkpoint_names(run) for f in folders if (f / f"{n}.pt").exists()), None)


def score_anchor(run: Run, work: Path) -> str:
    """Score one classical anchor (:func:`scadf_lib.anchors.run_anchor`) into ``<work>/<name>/`` with a
    ``run.json`` like a trained run's (no training: 0 parameters, wall time of the fit and scoring)."""
    from scadf_lib.anchors import run_anchor
    run_dir = work / run.name
    run_anchor(run.tags["variant"], run.cfg, run_dir)
    fit = json.loads((run_dir / "anchor.json").read_text())
    info = {"name": run.name, "study": run.study, **run.tags, "model": run.tags["variant"], "regime": run.cfg.regime,
            "seed": run.cfg.seed, "wall_s": fit["wall_s"], "parameters": 0, "train_samples": fit["train_samples"],
            "test_samples": fit["test_samples"], "device": "cpu", "epochs": 0,
            **{f"anchor_{k}": fit[k] for k in ("k", "scaling", "cfr_weight", "val_mse_m2") if k in fit}}
    write_json_atomic(run_dir / "run.json", info)
    return run.name


def degradation_targets(runs: list[Run]) -> list[Run]:
    """The runs scored under corrupted inputs: the ``degradation`` study's augmented runs, the
    clean runs they name (``clean_run`` tag) that are in ``runs``, and runs tagged
    ``score_corrupted`` (a preset's clean main runs, e.g. ``flat``), each once."""
    by_name = {r.name: r for r in runs}
    aug = [r for r in runs if r.study == "degradation"]
    clean = [by_name[r.tags["clean_run"]] for r in aug if r.tags.get("clean_run") in by_name]
    tagged = [r for r in runs if r.tags.get("score_corrupted")]
    return list({r.name: r for r in aug + clean + tagged}.values())


def evaluate_degradation(run: Run, work: Path, threads: int | None = None) -> str:
    """Score a finished run's best checkpoint under every corruption (``degradation.csv``) and,
    for SCADF-MoE, its routing against the CFR's SNR (``routing_response.csv``); skipped when done."""
    from scadf_lib.degradation import degraded_metrics, routing_response
    from scadf_lib.checkpoints import load_checkpoint, model_from_checkpoint
    from scadf_lib.rundata import prepare_data
    if threads:
        torch.set_num_threads(threads)
    run_dir = work / run.name
    if (run_dir / "degradation.csv").exists() or not _finished(run_dir, run.cfg):
        return run.name
    state = load_checkpoint(run_dir / "best.pt")
    model, _ = model_from_checkpoint(state)
    data = prepare_data(run.cfg)
    tags = {"name": run.name, "model": run.cfg.model, "seed": run.cfg.seed, "augmented": run.cfg.augment}
    if run.cfg.model == "scadf":
        resp = routing_response(model, data, run.cfg.augment).assign(**tags)
        with atomic_path(run_dir / "routing_response.csv") as tmp:
            resp.to_csv(tmp, index=False)
    table = degraded_metrics(model, data, run.cfg.augment).assign(**tags)
    with atomic_path(run_dir / "degradation.csv") as tmp:
        table.to_csv(tmp, index=False)
    return run.name


def score_pending(targets: list[Run], work: Path, jobs: int, progress: bool, stop_at: float | None) -> None:
    """Score the finished runs of ``targets`` that have no ``degradation.csv`` yet
    (:func:`evaluate_degradation`), unless past ``stop_at``."""
    pending = [r for r in targets if _finished(work / r.name, r.cfg) and not (work / r.name / "degradation.csv").exists()]
    if pending and (stop_at is None or time.time() < stop_at):
        bar = tqdm(total=len(pending), desc="corrupted inputs", unit="run", disable=not progress)
        _in_pool(evaluate_degradation, pending, (work,), jobs, bar)
        bar.close()


def _size(item: Any) -> int:
    return len(item) if isinstance(item, list) else 1


def _in_pool(fn: Any, items: list[Any], args: tuple, jobs: int, bar: Any, after_each: Any = None) -> None:
    """Call ``fn(item, *args)`` for every item, in ``jobs`` spawned processes when jobs > 1; the bar
    advances by the runs an item holds (a stack: several); ``after_each()`` is called in this process
    after every item."""
    after_each = after_each or (lambda: None)
    if jobs <= 1:
        for item in items:
            bar.set_postfix_str(fn(item, *args))
            bar.update(_size(item))
            after_each()
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    threads = max(1, torch.get_num_threads() // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(fn, item, *args, threads): item for item in items}
        for future in as_completed(futures):
            bar.set_postfix_str(future.result())
            bar.update(_size(futures[future]))
            after_each()


#: Where a sweep parks the state of its unfinished runs (``--park``), under the result set's folder.
PARKED = "inflight"


def restore_parked(runs: list[Run], work: Path, results: Path) -> list[str]:
    """Copy each parked run (``results/inflight/<name>/``) into its empty work folder, so that a fresh
    clone resumes it at its last finished epoch; returns the names restored."""
    import shutil
    restored = []
    for run in runs:
        src, dst = results / PARKED / run.name, work / run.name
        if (src / "last.pt").exists() and not (dst / "last.pt").exists() and not _finished(dst):
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
        if _finished(src, run.cfg):
            shutil.rmtree(dst, ignore_errors=True)
            continue
        if not (src / "last.pt").exists():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("last.pt", PAUSED_WALL):
            if (src / name).exists():
                with atomic_path(dst / name) as tmp:
                    shutil.copy2(src / name, tmp)
        if (src / "best.pt").exists():
            best = torch.load(src / "best.pt", weights_only=True)
            with atomic_path(dst / "best.pt") as tmp:
                torch.save({k: v for k, v in best.items() if k != "optimizer"}, tmp)  # weights: what finishing reads
        parked.append(run.name)
    if (results / PARKED).exists() and not any((results / PARKED).iterdir()):
        (results / PARKED).rmdir()
    return parked


def execute(runs: list[Run], work: Path, results: Path, fresh: bool = False, progress: bool = True,
            jobs: int = 1, time_limit_s: float | None = None, stack: int = 1, park: bool = False) -> pd.DataFrame:
    """Train every run not yet finished (all of them with ``fresh``), then collect the tables.

    ``stack`` > 1 trains runs of one architecture together as one stacked model, up to ``stack``
    runs per stack (:func:`make_jobs`, :mod:`scadf_lib.engine`); each run's results are those it
    gets alone, to float tolerance.

    ``jobs`` > 1 trains that many runs at once in separate processes (each with its share of the CPU
    threads; on a GPU they share the device, which one small run leaves mostly idle). Each run
    writes only its own files, atomically, so an interrupted sweep resumes where it stopped.
    ``time_limit_s``: no run starts, and no epoch begins that would end, later than that after the
    call began; unfinished runs are left to the next call (the same command), and the tables and
    report cover the finished ones. Each call appends a row to ``results/sweeps.csv`` (wall time,
    device, torch, runs finished). ``park``: runs parked in ``results/inflight/`` by an earlier call
    are restored first, and the unfinished ones are parked there at the end (:func:`park_unfinished`).
    """
    if park and not fresh:
        for name in restore_parked(runs, work, results):
            print(f"resumed from results/{PARKED}/: {name}")
    t0, started = time.perf_counter(), pd.Timestamp.now(tz="UTC")
    stop_at = time.time() + time_limit_s if time_limit_s is not None else None
    committed = set() if fresh else committed_runs(results)
    todo = [r for r in runs if fresh or not _done(r, work, committed)]
    done_before = len(runs) - len(todo)
    bar = tqdm(total=len(runs), initial=done_before, desc="experiments", unit="run", disable=not progress)

    def tables_so_far() -> None:  # after each finished unit: the tables hold every finished run
        if any(_finished(work / r.name, r.cfg) for r in todo):
            collect(runs, work, results)
    targets = degradation_targets(runs)
    score_pending(targets, work, jobs, progress, stop_at)  # finished earlier, not yet scored (an older driver)
    _in_pool(run_job, make_jobs(todo, stack), (work, results, fresh, stop_at, frozenset(r.name for r in targets)),
             jobs, bar, tables_so_far)
    bar.close()
    score_pending(targets, work, jobs, progress, stop_at)
    unfinished = [r.name for r in runs if not _done(r, work, committed)]
    if park:
        park_unfinished(runs, work, results)
    if unfinished:
        print(f"{len(unfinished)} of {len(runs)} runs unfinished (time limit): run the same command again to "
              f"resume them")
    log_sweep(results, {"started_utc": started.isoformat(timespec="seconds"), "wall_s": time.perf_counter() - t0,
                        "jobs": jobs, "device": device_name(runs[0].cfg.device) if runs else "",
                        "torch": torch.__version__, "batch_size": runs[0].cfg.batch_size if runs else None,
                        "compile": str(runs[0].cfg.compile) if runs else "", "runs": len(runs), "stack": stack,
                        "finished_before": done_before, "finished_after": len(runs) - len(unfinished)})
    if len(unfinished) == len(runs):
        return pd.DataFrame()
    return collect(runs, work, results)


def log_sweep(results: Path, row: dict[str, Any]) -> None:
    """Append one row to ``results/sweeps.csv`` (atomically: the file is rewritten whole)."""
    path = results / "sweeps.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    with atomic_path(path) as tmp:
        pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(tmp, index=False)


#: Split facts copied from each run's config.json into runs.csv.
SPLIT_COLUMNS = ("points", "radius_m", "clusters", "clusters_too_small", "points_unused_in_small_clusters",
                 "train_points", "test_points", "held_out_points_tested", "held_out_points_unused",
                 "held_out_share_of_test_slots", "holdout", "block_m", "guard_points_unused",
                 "min_distance_test_to_train_m", "val_points", "val_trajectories")


def paired_points(runs: list[Run], work: Path) -> pd.DataFrame:
    """noSpace against SCADF-MoE on the same held-out points: one row per (scene, seed, band, UE)
    held out in both runs, with each run's mean squared error over the test trajectories that hold
    the point (m^2). The pairs are the ``spatial`` runs and the ``main`` Mix SCADF-MoE runs of the
    same scene and seed (the ``paired_with`` tag of :func:`plan`); both splits hold out the same
    points (see :func:`make_split`)."""
    finished = {r.name: r for r in runs if (work / r.name / "point_errors.csv").exists() and _finished(work / r.name)}
    rows = []
    for r in finished.values():
        ref = r.tags.get("paired_with")
        if ref not in finished:
            continue
        a = pd.read_csv(work / ref / "point_errors.csv")
        b = pd.read_csv(work / r.name / "point_errors.csv")
        both = a[a.held_out].merge(b[b.held_out], on=["band_ghz", "ue"], suffixes=("_scadf", "_nospace"))
        rows.append(pd.DataFrame({"scene": r.tags["scene"], "seed": r.cfg.seed, "band_ghz": both.band_ghz,
                                  "ue": both.ue, "los": both.los_scadf, "sq_error_scadf_m2": both.sq_error_m2_scadf,
                                  "sq_error_nospace_m2": both.sq_error_m2_nospace,
                                  "appearances_scadf": both.appearances_scadf}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


#: Columns of a run's history.csv kept in ``results/curves.csv`` (those present).
CURVE_COLUMNS = ("epoch", "step", "train_localisation", "train_mse_points", "val_localisation", "val_mse_points",
                 "val_mse_points_m2", "val_seen_localisation", "lr", "offset_weight", "elapsed_s")


def learning_curves(runs: list[Run], work: Path) -> pd.DataFrame:
    """Every finished trained run's learning curve, tidy: one row per (run, epoch) with the run's
    name, study, model, scene, regime, seed and :data:`CURVE_COLUMNS` (normalised units, except
    ``val_mse_points_m2`` in m^2 and ``elapsed_s`` in s)."""
    frames = []
    for run in runs:
        path = work / run.name / "history.csv"
        if run.study == "anchors" or not path.exists() or not _finished(work / run.name):
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
        errors, cache = run_dir / "point_errors.csv", run_dir / "isolation.json"
        if run.study != "main" or not errors.exists() or not _finished(run_dir, run.cfg):
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


def _keep_committed(results: Path, name: str, frame: pd.DataFrame, renewed: set[str]) -> pd.DataFrame:
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
    split's and the schedule's settings) and their learning curves into ``results/curves.csv``.
    Rows already in those tables for runs not finished in ``work`` are kept (:func:`_keep_committed`):
    a run whose folder is gone keeps its committed results."""
    frames, infos = [], []
    for run in runs:
        run_dir = work / run.name
        if not _finished(run_dir, run.cfg):
            continue
        info = json.loads((run_dir / "run.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        schedule = {k: config.get("train_config", {}).get(k) for k in SCHEDULE_COLUMNS}
        infos.append({**schedule, **info, **{k: config["split"].get(k) for k in SPLIT_COLUMNS}})
        m = pd.read_csv(run_dir / "metrics.csv", dtype={"band": str})
        frames.append(m.assign(name=run.name, study=run.study, variant=info.get("variant", run.cfg.model),
                               param=info.get("param"), value=info.get("value")))
    renewed = {i["name"] for i in infos}
    metrics = _keep_committed(results, "all_metrics.csv",
                              pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), renewed)
    if not len(metrics):
        raise RuntimeError("no finished runs to collect")
    tables = [("all_metrics.csv", metrics), ("runs.csv", pd.DataFrame(infos)), ("curves.csv", learning_curves(runs, work)),
              ("paired_points.csv", paired_points(runs, work)), ("isolation.csv", isolation_table(runs, work))]
    for name in ("degradation.csv", "routing_response.csv"):
        found = [pd.read_csv(work / r.name / name) for r in runs if (work / r.name / name).exists()]
        tables.append((name, pd.concat(found, ignore_index=True) if found else pd.DataFrame()))
    for name, frame in tables:
        if name != "all_metrics.csv":
            frame = _keep_committed(results, name, frame, renewed)
        if len(frame):
            with atomic_path(results / name) as tmp:
                frame.to_csv(tmp, index=False)
    return pd.read_csv(results / "all_metrics.csv", dtype={"band": str})


def sweep_status(runs: list[Run], work: Path, results: Path) -> pd.DataFrame:
    """Where each planned run stands, read from files only (safe while a sweep runs): ``done`` (in
    ``<results>/runs.csv`` or finished in its work folder), ``started`` (a ``last.pt`` in its work
    folder), ``parked`` (in ``<results>/inflight/``) or ``waiting``; for a started or parked run its
    epochs so far against its maximum, its best epoch and the stopping rule's late gain (%: the drop
    of the best validation error over the last quarter of its epochs; the rule, where the run has one,
    ends it below ``rule_pct``)."""
    from scadf_lib.checkpoints import load_checkpoint
    committed = set(pd.read_csv(results / "runs.csv").name) if (results / "runs.csv").exists() else set()
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.name, "study": run.study, "state": "waiting"}
        if run.name in committed or _finished(work / run.name):
            row["state"] = "done"
        for state, folder in (("started", work / run.name), ("parked", results / PARKED / run.name)):
            if row["state"] == "waiting" and (folder / "last.pt").exists():
                val = [h["val_localisation"] for h in load_checkpoint(folder / "last.pt")["history"]]
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
    difference over its learning curve (:data:`REPRODUCED_CURVE`, every epoch, ``curves.csv``) and over
    its test MSEs (every group and band, ``all_metrics.csv``); infinite where the epochs or the rows
    differ in number. ``reproduced``: both within :data:`REPRODUCE_RTOL`."""
    curves = pd.read_csv(results / "curves.csv")
    old_curve = curves[curves.name == run.name].sort_values("epoch")
    new_curve = pd.read_csv(run_dir / "history.csv")
    cols = list(REPRODUCED_CURVE)
    curve = (_max_rel_diff(new_curve[cols], old_curve[cols]) if len(new_curve) == len(old_curve) > 0 else np.inf)
    metrics = pd.read_csv(results / "all_metrics.csv", dtype={"band": str})
    old_m = metrics[metrics.name == run.name]
    both = old_m.merge(pd.read_csv(run_dir / "metrics.csv", dtype={"band": str}), on=["group", "band"],
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
    row = pd.read_csv(results / "runs.csv").set_index("name").loc[run.name]
    tried = pd.read_csv(results / "rebuilds.csv") if (results / "rebuilds.csv").exists() else None
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
    _in_pool(rebuild_one, todo, (work, results), jobs, bar)
    bar.close()
    checks = [work / "rebuild" / r.name / "rebuild.json" for r in todo]
    table = pd.DataFrame([json.loads(c.read_text()) for c in checks if c.exists()])
    table = _keep_committed(results, "rebuilds.csv", table, set(table.name) if len(table) else set())
    if len(table):
        with atomic_path(results / "rebuilds.csv") as tmp:
            table.to_csv(tmp, index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.experiments", description="Run every experiment.")
    ap.add_argument("--preset", default=REFERENCE_SET, choices=sorted(PRESETS))
    ap.add_argument("--data-dir", default=None,
                    help="fingerprint folder (default: data/v1 for the reference set 'flat', the data version it "
                         "was trained on; data/ for other presets)")
    ap.add_argument("--work", default=None, help="per-run folders (default runs/<preset>)")
    ap.add_argument("--results", default=None,
                    help="collected tables read by the notebooks (default results/<preset>)")
    ap.add_argument("--main-scenes", nargs="+", default=None, choices=SCENES,
                    help="scenes of the main study (default: the preset's, else --scenes)")
    ap.add_argument("--regimes", nargs="+", default=None, choices=["mix", "ood"],
                    help="regimes of the main study (default: the preset's, else both)")
    ap.add_argument("--studies", nargs="+", default=list(ALL_STUDIES), choices=ALL_STUDIES,
                    help="limit the preset's studies to these (default: all the preset names)")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--fresh", action="store_true", help="re-run everything from scratch")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (shared by the jobs)")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at once, in separate processes")
    ap.add_argument("--batch-size", type=int, default=PAPER_BATCH,
                    help="training batch (default the paper's 64); the learning rate follows scaled_lr (sqrt rule)")
    ap.add_argument("--epochs", type=int, default=None, help="replace the preset's number of epochs")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                    help="methods of the comparisons (default all five)")
    ap.add_argument("--compile", default=None, nargs="?", const="default", choices=COMPILE_MODES,
                    help="torch.compile the step: 'default' (bare flag) or 'reduce-overhead' (CUDA graphs)")
    ap.add_argument("--stack", type=int, default=1,
                    help="train up to this many runs of one architecture as one stacked model (scadf_lib.engine)")
    ap.add_argument("--park", action="store_true",
                    help="park unfinished runs' state in <results>/inflight/ at the end (commit it) and resume from there "
                         "on a fresh clone")
    ap.add_argument("--time-limit-min", type=float, default=None,
                    help="stop starting runs and epochs that would end later than this; rerun to resume")
    ap.add_argument("--status", action="store_true",
                    help="print where each planned run stands (done, started, parked, waiting) and exit; safe while "
                         "the sweep runs")
    ap.add_argument("--rebuild-checkpoints", action="store_true",
                    help="retrain committed runs whose weights should ship but were never shipped; their weights ship under "
                         "the run's name where they reproduce its committed results, else as <name>_retrained.pt "
                         "(<results>/rebuilds.csv)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.batch_size < 1 or a.jobs < 1 or a.stack < 1:
        ap.error("--batch-size, --jobs and --stack must be positive")
    if a.epochs is not None and a.epochs < 1:
        ap.error("--epochs must be positive")
    work = Path(a.work or f"runs/{a.preset}")
    results = Path(a.results or f"results/{a.preset}")
    runs = plan(a.preset, a.data_dir, tuple(a.scenes), tuple(a.studies), batch_size=a.batch_size,
                compile=a.compile or False, epochs=a.epochs, methods=tuple(a.methods),
                main_scenes=tuple(a.main_scenes) if a.main_scenes else None,
                regimes=tuple(a.regimes) if a.regimes else None)
    if a.status:
        print_status(sweep_status(runs, work, results))
        return 0
    if a.rebuild_checkpoints:
        table = rebuild_checkpoints(runs, work, results, jobs=a.jobs)
        print(table.to_string(index=False) if len(table) else "every shipping run's checkpoint is in place")
        return 0
    print(f"{len(runs)} runs, preset {a.preset}, batch {a.batch_size} (lr {scaled_lr(a.batch_size):.3g}), "
          f"device {device_name()}")
    metrics = execute(runs, work, results, fresh=a.fresh, jobs=a.jobs, stack=a.stack, park=a.park,
                      time_limit_s=None if a.time_limit_min is None else 60 * a.time_limit_min)
    if metrics.empty:
        print("no run has finished yet: no tables or report written")
        return 0
    from scadf_lib.plots import save_learning_curves
    from scadf_lib.report import update_readme, write_report  # the report reads the tables only
    save_learning_curves(results)
    print("report:", write_report(results, a.preset))
    if is_reference_set(results):
        update_readme(project_path("README.md"), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
