"""All heavy runs of the workbook from one command; the notebooks only read ``results/``.

Studies
    ``main``         Table II: every scene x method (Concat, FullCon, TransFusion, SoftMoE, SCADF-MoE)
                     x regime (Mix, OOD) x seed.
    ``anchors``      the classical anchors (:mod:`scadf_lib.anchors`: geometric closed form, WKNN on the
                     numeric features, WKNN + CFR) on every scene x regime x seed, scored like the models.
    ``spatial``      SCADF-MoE without spatial context (noSpace: L = 1 on the same clusters, the same
                     held-out points, every training point trained on as often as with L = 5) per
                     scene; compared with SCADF-MoE point by point (``paired_points.csv``).
    ``blocks``       every method, Mix, with whole map blocks held out (no training point within r
                     of a test or validation point; validation blocks select the best epoch) and, where
                     the preset names them, the anchors on the same splits: the spatially held-out
                     regime, beyond the paper (preset ``unsurveyed``: munich, 20 m blocks).
    ``density``      munich Mix, seed 0: SCADF-MoE, SoftMoE and WKNN trained on a thinned site survey
                     (a 2 m or 4 m grid, a random 25 % or 10 %: :mod:`scadf_lib.survey`), scored on the
                     full survey's test trajectories.
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
for the first seed of the Mix runs ``errors/<name>.csv.gz`` (per-point errors in metres; every seed's
held-out points for the blocks and density studies and their baseline), ``tracks.csv`` (walked tracks
from held-out blocks, :func:`score_block_tracks`), the
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

import pandas as pd
import torch
from tqdm import tqdm

from scadf_lib.checkpoints import BEST, RUN_CONFIG, RUN_INFO, RUN_POINT_ERRORS, is_reference_set
from scadf_lib.fileio import project_path, write_csv_atomic, write_json_atomic
from scadf_lib.planning import Run, plan
from scadf_lib.pool import device_name, in_pool
from scadf_lib.presets import ALL_STUDIES, METHODS, PRESETS, REFERENCE_SET, SCENES
from scadf_lib.rebuild import rebuild_checkpoints
from scadf_lib.runnames import block_run
from scadf_lib.runfolder import (PARKED, PAUSED_WALL, add_paused_wall, clear_run, committed_runs, park_unfinished,
                                 paused_wall, print_status, restore_parked, run_done, run_extended, run_finished,
                                 ship_checkpoint, ships_checkpoint, start_extension, sweep_status)
from scadf_lib.studies.resultset import ResultSet
from scadf_lib.sweep_tables import collect, log_sweep
from scadf_lib.training import COMPILE_MODES, FLAT_GAIN, PAPER_BATCH, Paused, late_gain, scaled_lr, train


def run_one(run: Run, work: Path, results: Path, fresh: bool = False, stop_at: float | None = None,
            threads: int | None = None) -> str:
    """Train one run into ``<work>/<name>/`` unless it is finished (or ``fresh``), write its
    ``run.json`` and, where the run is one of them, its per-point errors and the inspector's weights.
    Past ``stop_at`` (Unix time, s) the run is not started, or pauses between epochs (:class:`Paused`);
    the next call resumes it."""
    if threads:
        torch.set_num_threads(threads)
    run_dir = work / run.name
    extended = not fresh and run_extended(run_dir, run.cfg)
    if run_finished(run_dir) and not extended and not fresh:
        return run.name
    if fresh:
        clear_run(run_dir)
    if stop_at is not None and time.time() > stop_at:
        return f"{run.name} (not started: time limit)"
    if run.study == "anchors":
        return score_anchor(run, work, results)
    before_s = (start_extension(run_dir) if extended else 0.0) + paused_wall(run_dir)
    t0 = time.perf_counter()
    try:
        res = train(run.cfg, run_dir, progress=False, stop_at=stop_at)
    except Paused:
        add_paused_wall(run_dir, time.perf_counter() - t0)
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
    extended = {r.name for r in stack if not fresh and run_extended(work / r.name, r.cfg)}
    todo = [r for r in stack if fresh or r.name in extended or not run_finished(work / r.name)]
    if not todo:
        return f"stack of {len(stack)} (finished)"
    if fresh:
        for r in todo:
            clear_run(work / r.name)
    if stop_at is not None and time.time() > stop_at:
        return f"stack of {len(todo)} (not started: time limit)"
    before = {r.name: (start_extension(work / r.name) if r.name in extended else 0.0) + paused_wall(work / r.name)
              for r in todo}
    t0 = time.perf_counter()
    try:
        results_ = train_stack([r.cfg for r in todo], [work / r.name for r in todo], stop_at=stop_at,
                               compile=todo[0].cfg.compile)
    except Paused:
        for r in todo:
            add_paused_wall(work / r.name, time.perf_counter() - t0)
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
        score_routing_quality(run, work)
    return done


def score_routing_quality(run: Run, work: Path) -> None:
    """For a finished SCADF-MoE run of the measured-input study without its routing-against-quality
    table (:mod:`scadf_lib.routing_quality`), write it while the run folder's ``best.pt`` exists."""
    from scadf_lib.routing_quality import ROUTING_QUALITY, score_run
    run_dir = work / run.name
    if (run.study == "measured" and run.cfg.model == "scadf" and run_finished(run_dir, run.cfg)
            and not (run_dir / ROUTING_QUALITY).exists()):
        score_run(run_dir)


def record_run(run: Run, res: Any, work: Path, results: Path, wall_s: float, extra: dict[str, Any] | None = None) -> str:
    """Write a trained run's ``run.json`` (settings, throughput, convergence) and, where the run is one
    of them, its per-point errors and the inspector's weights."""
    run_dir = work / run.name
    gain = late_gain(res.history.val_localisation)
    info = {"name": run.name, "study": run.study, **run.tags, "model": run.cfg.model, "regime": run.cfg.regime,
            "seed": run.cfg.seed, "wall_s": wall_s, "trajectories_per_s": res.throughput, **(extra or {}),
            "train_wall_s": float(res.history.elapsed_s.iloc[-1]),
            "parameters": json.loads((run_dir / RUN_CONFIG).read_text())["parameters"],
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
        write_csv_atomic(table.round({"error_m": 3}), results / ResultSet.ERRORS / f"{run.name}.csv.gz")
    keep_held_out_errors(run, work, results)
    if ships_checkpoint(run):
        ship_checkpoint(run, run_dir, results)
    write_json_atomic(run_dir / RUN_INFO, info)
    (run_dir / PAUSED_WALL).unlink(missing_ok=True)  # counted in wall_s now
    return run.name


def score_anchor(run: Run, work: Path, results: Path) -> str:
    """Score one classical anchor (:func:`scadf_lib.anchors.run_anchor`) into ``<work>/<name>/`` with a
    ``run.json`` like a trained run's (no training: 0 parameters, wall time of the fit and scoring)."""
    from scadf_lib.anchors import run_anchor
    run_dir = work / run.name
    run_anchor(run.tags["variant"], run.cfg, run_dir)
    fit = json.loads((run_dir / "anchor.json").read_text())
    info = {"name": run.name, "study": run.study, **run.tags, "model": run.tags["variant"], "regime": run.cfg.regime,
            "seed": run.cfg.seed, "wall_s": fit["wall_s"], "parameters": 0, "train_samples": fit["train_samples"],
            "test_samples": fit["test_samples"], "device": "cpu", "epochs": 0,
            **{f"anchor_{k}": fit[k] for k in ("k", "scaling", "cfr_weight", "val_mse_m2", "first_path_missing_share",
                                                "side_right_share") if k in fit}}
    keep_held_out_errors(run, work, results)
    write_json_atomic(run_dir / RUN_INFO, info)
    return run.name


def keeps_held_out_errors(run: Run) -> bool:
    """Whether a run keeps its held-out points' errors in ``<results>/errors/``, every seed: the runs of
    the study "Where nobody surveyed" (tagged with their ``split``: held-out blocks, thinned surveys and
    their anchors) and the measured-input study's runs at the default link budget, oracle (that study's
    baseline) and measured (binned by SNR in its report)."""
    measured = run.study in ("measured", "anchors") and run.tags.get("inputs") in ("oracle", "measured")
    return "split" in run.tags or (measured and "param" not in run.tags)


def keep_held_out_errors(run: Run, work: Path, results: Path) -> None:
    """For a run that :func:`keeps_held_out_errors`: its held-out points' errors, one row per (band, UE)
    with the mean squared error over the test trajectories holding it (m²), how many there were and
    the LOS flag, from the run folder's ``point_errors.csv`` to ``<results>/errors/<name>.csv.gz``."""
    src = work / run.name / RUN_POINT_ERRORS
    if not keeps_held_out_errors(run) or not src.exists():
        return
    table = pd.read_csv(src)
    table = table[table.held_out][["band_ghz", "ue", "los", "appearances", "sq_error_m2"]]
    write_csv_atomic(table, results / ResultSet.ERRORS / f"{run.name}.csv.gz")


#: The models whose walked tracks through held-out blocks the driver scores, by label.
BLOCK_TRACK_MODELS = {"SCADF-MoE": "scadf", "SoftMoE": "softmoe"}


def score_block_tracks(runs: list[Run], work: Path, results: Path) -> None:
    """Walked tracks from held-out blocks (:func:`scadf_lib.tracks.track_study`: tracks start at
    held-out points and walk on, scored on held-out points) for each scene and seed whose block-split
    :data:`BLOCK_TRACK_MODELS` have finished, from their run folders' best weights, with WKNN and the
    centroid floor beside them: ``<results>/tracks.csv`` (each scene and seed once)."""
    from scadf_lib.tracks import add_track_scores
    blocks = {r.name: r for r in runs if r.study == "blocks"}
    for scene, seed in sorted({(r.tags["scene"], r.cfg.seed) for r in blocks.values()}):
        names = {label: block_run(scene, method, seed) for label, method in BLOCK_TRACK_MODELS.items()}
        if all(n in blocks and run_finished(work / n, blocks[n].cfg) for n in names.values()):
            add_track_scores(str(results / ResultSet.TRACKS), {k: str(work / n / BEST) for k, n in names.items()},
                             scene, seed, str(project_path(blocks[names["SCADF-MoE"]].cfg.data_path)))


def write_block_distances(runs: list[Run], results: Path) -> None:
    """``<results>/survey_distance.csv.gz``: for every seed of the block-split runs in ``runs`` that the
    table lacks, each held-out point's distance to the survey (m, 0.01 m; :func:`scadf_lib.survey.distance_to_survey`),
    columns ``seed``, ``ue``, ``distance_m``. The split depends on the data, the seed and the split
    settings, not the model, so the seed's first run rebuilds it (about a second; the positions only
    are read). The held-out errors on the blocks are binned by it."""
    import numpy as np
    import xarray as xr
    from scadf_lib.config import split_of
    from scadf_lib.survey import distance_to_survey, held_out_points
    path = results / ResultSet.SURVEY_DISTANCE
    old = pd.read_csv(path) if path.exists() else None
    known = set() if old is None else set(old.seed)
    cfgs = {r.cfg.seed: r.cfg for r in reversed(runs) if r.study == "blocks" and r.cfg.seed not in known}
    frames = []
    for seed, cfg in sorted(cfgs.items()):
        with xr.open_dataset(project_path(cfg.data_path)) as ds:
            xy = np.stack([ds["x"].values, ds["y"].values], axis=1).astype(np.float64)
        split = split_of(cfg, xy)
        held = held_out_points(split)
        frames.append(pd.DataFrame({"seed": seed, "ue": held, "distance_m": distance_to_survey(xy, split)[held].round(2)}))
    if frames:
        write_csv_atomic(pd.concat([old, *frames] if old is not None else frames).sort_values(["seed", "ue"]), path)


def backfill_held_out_errors(runs: list[Run], work: Path, results: Path) -> None:
    """Finished runs that :func:`keeps_held_out_errors` but finished before the driver kept them: their
    errors from the run folder, an anchor scored again first where its folder has none (seconds;
    deterministic, so its metrics are rewritten unchanged; its ``run.json`` is kept)."""
    for run in runs:
        if not keeps_held_out_errors(run) or (results / ResultSet.ERRORS / f"{run.name}.csv.gz").exists():
            continue
        if run.study == "anchors" and (work / run.name / RUN_INFO).exists():
            if not (work / run.name / RUN_POINT_ERRORS).exists():
                from scadf_lib.anchors import run_anchor
                run_anchor(run.tags["variant"], run.cfg, work / run.name)  # run.json (its timing) stays
            keep_held_out_errors(run, work, results)
        elif run.study != "anchors" and run_finished(work / run.name, run.cfg):
            keep_held_out_errors(run, work, results)


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
    if (run_dir / ResultSet.DEGRADATION).exists() or not run_finished(run_dir, run.cfg):
        return run.name
    state = load_checkpoint(run_dir / BEST)
    model, _ = model_from_checkpoint(state)
    data = prepare_data(run.cfg)
    tags = {"name": run.name, "model": run.cfg.model, "seed": run.cfg.seed, "augmented": run.cfg.augment}
    if run.cfg.model == "scadf":
        resp = routing_response(model, data, run.cfg.augment).assign(**tags)
        write_csv_atomic(resp, run_dir / ResultSet.ROUTING_RESPONSE)
    table = degraded_metrics(model, data, run.cfg.augment).assign(**tags)
    write_csv_atomic(table, run_dir / ResultSet.DEGRADATION)
    return run.name


def score_pending(targets: list[Run], work: Path, jobs: int, progress: bool, stop_at: float | None) -> None:
    """Score the finished runs of ``targets`` that have no ``degradation.csv`` yet
    (:func:`evaluate_degradation`), unless past ``stop_at``."""
    pending = [r for r in targets if run_finished(work / r.name, r.cfg) and not (work / r.name / ResultSet.DEGRADATION).exists()]
    if pending and (stop_at is None or time.time() < stop_at):
        bar = tqdm(total=len(pending), desc="corrupted inputs", unit="run", disable=not progress)
        in_pool(evaluate_degradation, pending, (work,), jobs, bar)
        bar.close()


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
    todo = [r for r in runs if fresh or not run_done(r, work, committed)]
    done_before = len(runs) - len(todo)
    bar = tqdm(total=len(runs), initial=done_before, desc="experiments", unit="run", disable=not progress)

    def tables_so_far() -> None:  # after each finished unit: the tables hold every finished run
        if any(run_finished(work / r.name, r.cfg) for r in todo):
            collect(runs, work, results)
            if stop_at is None or time.time() < stop_at:  # a seed's block-split pair as soon as both are in
                score_block_tracks(runs, work, results)
    targets = degradation_targets(runs)
    score_pending(targets, work, jobs, progress, stop_at)  # finished earlier, not yet scored (an older driver)
    for run in runs:  # the same for the routing-against-quality tables
        score_routing_quality(run, work)
    backfill_held_out_errors(runs, work, results)
    write_block_distances(runs, results)
    measured = [r for r in runs if r.study == "measured"]
    if measured:  # the SNR map the held-out errors are binned by (once)
        from scadf_lib.routing_quality import write_snr_map
        write_snr_map(str(project_path(measured[0].cfg.data_path)), results)
    in_pool(run_job, make_jobs(todo, stack), (work, results, fresh, stop_at, frozenset(r.name for r in targets)),
             jobs, bar, tables_so_far)
    bar.close()
    score_pending(targets, work, jobs, progress, stop_at)
    if stop_at is None or time.time() < stop_at:  # about a minute per model and seed: else left to the next call
        score_block_tracks(runs, work, results)
    unfinished = [r.name for r in runs if not run_done(r, work, committed)]
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
    from scadf_lib.plots import save_report_figures
    from scadf_lib.report import update_readme, write_report  # the report reads the tables only
    save_report_figures(results)
    print("report:", write_report(results, a.preset))
    if is_reference_set(results):
        update_readme(project_path("README.md"), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
