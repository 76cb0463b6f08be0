"""Training and evaluation engine: one code path for the notebook, the CLI and ``torchrun``.

Optimiser: AdamW (batch 64 as in the paper, weight decay 0.01 on weight matrices only), peak learning
rate 3e-3 (the project's choice: the paper's value is not in our text; ``bench/bench_learning.py``
measures 1e-3 / 3e-3 / 1e-2) with a linear warm-up over the first 5 % of steps and cosine decay to 5 %
of the peak, gradient clipping at 1.0, and an offset-weighted curriculum that anneals back to the
paper's loss (:func:`offset_weight_at`; w0 = 100 by default, 1 turns it off).
Devices: cuda, then mps, then cpu (``device='auto'``); bf16 autocast on CUDA; optional
``torch.compile``. Multi-GPU: run the same entry point under ``torchrun --nproc_per_node=N``
(DDP; gloo on CPU, nccl on GPU); each rank takes its share of every batch permutation.

Checkpoints (``last.pt`` every epoch, ``best.pt`` on the lowest validation localisation error) are written
atomically and hold the model and train configs, the normalisation statistics and the history, so a
killed run resumes at its last finished epoch with the same result as an uninterrupted one, and
evaluation needs nothing else. They load with ``torch.load(weights_only=True)``.

Command line::

    python -m scadf_lib.training --data data/munich.nc --model scadf --epochs 10 --out runs/munich_scadf
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm  # text bars: a saved notebook shows their last state, not a stale widget

from scadf_lib.config import (COMPILE_MODES, FLAT_GAIN, PAPER_BATCH, BASE_LR, MODEL_NAMES,  # noqa: F401
                               TrainConfig, centroid_floor, decay_end_step, first_stop_epoch, late_gain, lr_at,
                               offset_weight_at, run_bands, scaled_lr, schedule_steps, should_stop, split_of)
from scadf_lib.degradation import flag_columns
from scadf_lib.evaluation import Predictions, metrics_table, per_point_errors, predict
from scadf_lib.fileio import write_csv_atomic, write_json_atomic
from scadf_lib.models import REGISTRY, ModelConfig, build_model, count_parameters, model_config
from scadf_lib.checkpoints import (BEST, CHECKPOINT_FORMAT, LAST, RUN_CONFIG, RUN_HISTORY, RUN_METRICS,  # noqa: F401
                                    RUN_POINT_ERRORS, checkpoint_state, load_checkpoint, model_from_checkpoint,
                                    save_checkpoint)
from scadf_lib.rundata import PreparedData, prepare_data, validation_rows  # noqa: F401  (re-exported)
from scadf_lib.trajectories import Normalizer, TrajectoryDataset


class Paused(Exception):
    """Raised by :func:`train` when the next epoch would end past its ``stop_at`` time; the run's
    ``last.pt`` holds every finished epoch, so calling ``train`` again resumes it."""


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device='auto' or 'cpu'")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return torch.device(name)


#: Budgets of a run whose epochs / steps are left to "auto" (notebook 03): on a GPU a full run
#: (minutes: the learning curves flatten), on a CPU a quick look (about a minute; under-trained).
FULL_GPU_RUN = {"epochs": 30, "max_steps_per_epoch": None}
QUICK_CPU_RUN = {"epochs": 2, "max_steps_per_epoch": 30}


def auto_budget(device: str, epochs: int | None = None,
                max_steps_per_epoch: int | str | None = "auto") -> tuple[int, int | None, str]:
    """(epochs, max_steps_per_epoch, description) for ``device`` ('auto', 'cpu', 'cuda', ...):
    ``epochs=None`` and ``max_steps_per_epoch='auto'`` take :data:`FULL_GPU_RUN` on CUDA and
    :data:`QUICK_CPU_RUN` elsewhere; explicit values are kept."""
    dev = select_device(device)
    budget = FULL_GPU_RUN if dev.type == "cuda" else QUICK_CPU_RUN
    e = budget["epochs"] if epochs is None else epochs
    m = budget["max_steps_per_epoch"] if max_steps_per_epoch == "auto" else max_steps_per_epoch
    kind = "full run on the GPU" if dev.type == "cuda" else f"quick run on the {dev.type.upper()} (under-trained)"
    steps = "full epochs" if m is None else f"at most {m} steps per epoch"
    return e, m, f"{kind}: {e} epochs, {steps}, device {dev}"


# ----------------------------------------------------------------------------- data


# ----------------------------------------------------------------------------- loss

def compute_loss(out: Any, batch: dict[str, torch.Tensor], mmd_weight: float,
                 xy_scale_m: float = 1.0) -> dict[str, torch.Tensor]:
    """Loss terms in normalised position units (metres / ``xy_scale_m``).

    The paper's loss is MSE_points + MSE_centroid - lambda * MMD with the MSEs in m^2 (maximising
    the MMD pushes the task routers apart). With positions divided by ``xy_scale_m`` the MSEs shrink
    by ``xy_scale_m``^2, so ``total`` = (MSE_points + MSE_centroid) - lambda * MMD / xy_scale_m^2,
    which is the paper's loss divided by xy_scale_m^2: lambda keeps its meaning against m^2 (the MMD^2
    is at most 2 here; measured 0.8 on munich at the end of training, so lambda * MMD is about 0.08 m^2
    against point MSEs of 3-15 m^2), and the optimiser sees gradients of order one. ``localisation`` = MSE_points + MSE_centroid is what model selection uses.
    """
    points = out.points.float()
    mse_points = (points - batch["target"]).pow(2).sum(-1).mean()
    mse_centroid = (out.centroid.float() - batch["centroid"]).pow(2).sum(-1).mean()
    mmd = out.mmd.float() if out.mmd is not None else torch.zeros((), device=mse_points.device)
    localisation = mse_points + mse_centroid
    total = localisation - (mmd_weight / xy_scale_m ** 2) * mmd
    offsets = (points - points.mean(1, keepdim=True)) - (batch["target"] - batch["centroid"][:, None])
    return {"total": total, "localisation": localisation, "mse_points": mse_points, "mse_centroid": mse_centroid,
            "mmd": mmd, "mse_offsets": offsets.pow(2).sum(-1).mean()}


# ----------------------------------------------------------------------------- stopping rule


# ----------------------------------------------------------------------------- checkpoints


# ----------------------------------------------------------------------------- distributed

def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _maybe_init_distributed(device: torch.device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


# ----------------------------------------------------------------------------- the loop

@dataclass
class RunResult:
    out_dir: Path
    history: pd.DataFrame
    metrics: pd.DataFrame
    predictions: Predictions
    data: PreparedData
    model: nn.Module
    throughput: float  # training trajectories per second (last epoch)


def run_summary(result: RunResult, cfg: TrainConfig, mode: str = "") -> str:
    """One sentence on a finished run of ``cfg``: what it was, its epochs, and its overall and held-out
    MSE (m²)."""
    m = result.metrics[(result.metrics.band == "all") & result.metrics.group.isin(["overall", "held-out"])]
    what = f"{cfg.model}, {Path(cfg.data_path).stem}, {cfg.regime}, band {cfg.band}, "
    return (f"this run ({what}{len(result.history)} epochs{', ' + mode if mode else ''}): "
            + ", ".join(f"{r.group} {r.mse_m2:.2f} m²" for r in m.itertuples()))


def make_loss_fn(net: nn.Module, mmd_weight: float, xy_scale_m: float, use_amp: bool,
                 compile: bool | str = False) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """batch -> loss terms: the forward pass (bf16 autocast on CUDA when ``use_amp``) and
    :func:`compute_loss`, MMD included; with ``compile`` (True or a mode of :data:`COMPILE_MODES`)
    the whole function goes to ``torch.compile``, and AOTAutograd compiles its backward with it
    ("reduce-overhead": both replayed as CUDA graphs on a GPU)."""
    def loss_fn(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.autocast(batch["cfr"].device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = net(batch["numeric"], batch["cfr"])
        return compute_loss(out, batch, mmd_weight, xy_scale_m)
    if not compile:
        return loss_fn
    return torch.compile(loss_fn, mode=None if compile is True or compile == "default" else compile)


def train_step(loss_fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]], params: list[nn.Parameter],
               opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], grad_clip: float,
               offset_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """One optimisation step: forward and loss, backward, clip, AdamW. ``offset_weight`` w adds
    (w - 1) * mse_offsets to the loss (:func:`offset_weight_at`; 1: the paper's loss). Returns the
    detached loss terms as device tensors: nothing here waits for the device."""
    torch.compiler.cudagraph_mark_step_begin()  # a new iteration: CUDA-graph outputs of the last may be reused
    losses = loss_fn(batch)
    opt.zero_grad(set_to_none=True)
    objective = losses["total"] if offset_weight == 1.0 else losses["total"] + (offset_weight - 1.0) * losses["mse_offsets"]
    objective.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
    opt.step()
    return {k: v.detach() for k, v in losses.items()}


def decay_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict[str, Any]]:
    """AdamW parameter groups: weight decay on weight matrices (and the stacked experts' and routers'
    weights, ndim >= 2) only; none on biases, LayerNorm gains, the point / modality / frequency / task
    embeddings and the routers' log-scale (decaying those pulls gains and the router scale to zero and
    the embeddings together, nanoGPT's rule). ``decay_all``: one group, every parameter decayed."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if decay_all:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    no_decay_names = ("point", "modality", "freq_pos", "task_embedding", "log_scale", "b1", "b2")
    decay = [p for n, p in params if p.ndim >= 2 and n.split(".")[-1] not in no_decay_names]
    keep = [p for n, p in params if not (p.ndim >= 2 and n.split(".")[-1] not in no_decay_names)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW on :func:`decay_groups`, fused into one kernel per step on CUDA, multi-tensor (foreach)
    elsewhere."""
    fused = device.type == "cuda"
    return torch.optim.AdamW(decay_groups(model, cfg.weight_decay, cfg.decay_all), lr=cfg.lr, fused=fused,
                             foreach=None if fused else True)


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Restore the CPU (and, on CUDA, the CUDA) random state of a checkpoint, wherever its tensors
    were mapped: RNG states are CPU byte tensors whatever device the run trained on."""
    torch.set_rng_state(state["torch_rng"].cpu())
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


def rng_state(device: torch.device) -> dict[str, torch.Tensor | None]:
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def _saved_config(saved: dict[str, Any], cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint's settings, ``cfg``'s) as comparable dicts. A setting the checkpoint predates
    (written before the field existed) counts as equal when ``cfg`` has its default value."""
    now = json.loads(json.dumps(cfg.to_dict()))
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    old = {**{k: v for k, v in now.items() if k not in saved and v == defaults.get(k)}, **saved}
    return old, now


def extends_budget(saved: dict[str, Any], cfg: TrainConfig) -> bool:
    """True when ``cfg`` is the checkpoint's run with a larger maximum budget and the same schedule:
    every setting equal except ``epochs`` (now larger), and the schedule spans the same epochs
    (``schedule_epochs``, or the old run's ``epochs``). Such a run is the old one up to its last epoch
    (:func:`schedule_steps`; the data order is seeded per epoch), so it may resume and train on at the
    floor until the stopping rule ends it."""
    old, now = _saved_config(saved, cfg)
    span = lambda c: c.get("schedule_epochs") or c["epochs"]
    if now["epochs"] <= old["epochs"] or span(old) != span(now):
        return False
    rest = lambda c: {k: v for k, v in c.items() if k not in ("epochs", "schedule_epochs")}
    return rest(old) == rest(now)


def check_same_run(saved: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume ``cfg`` from a checkpoint of another configuration (:func:`_saved_config`),
    except a larger maximum budget on the same schedule (:func:`extends_budget`)."""
    old, now = _saved_config(saved, cfg)
    if old != now and not extends_budget(saved, cfg):
        diff = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k))
        raise ValueError(f"'{path}' belongs to a run with another configuration (differs in {diff}); use another "
                         f"out_dir or delete it to start over")


def resume_from(last_path: Path, cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer,
                device: torch.device) -> tuple[int, float, list[dict[str, Any]]]:
    """Load a run's ``last.pt`` into ``model``, ``opt`` and the random state; returns the epoch to
    start at, the best validation error so far and the history. Refuses a checkpoint of another
    configuration."""
    state = load_checkpoint(last_path)  # on the CPU; load_state_dict copies to the device
    check_same_run(state["train_config"], cfg, last_path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    restore_rng(state, device)
    return state["epoch"] + 1, state["best_val"], state["history"]


def train_epoch(loss_fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]], params: list[nn.Parameter],
                opt: torch.optim.Optimizer, train_ds: TrajectoryDataset, cfg: TrainConfig, epoch: int,
                steps_per_epoch: int, progress: bool = False,
                log_every: int = 50) -> tuple[dict[str, torch.Tensor], int, float]:
    """One epoch of :func:`train_step` over a seeded permutation of ``train_ds`` (on its device),
    this rank's share of each batch, learning rate by :func:`lr_at`. Returns the loss terms summed
    over samples (device tensors), the number of samples and the throughput (trajectories/s, all
    ranks); the device is waited for once, at the end (and every ``log_every`` steps for the bar)."""
    rank, world = _dist_info()
    device = train_ds.device
    perm = torch.from_numpy(np.random.default_rng([cfg.seed, epoch]).permutation(len(train_ds))).to(device)
    total_steps = schedule_steps(steps_per_epoch, cfg)
    sums: dict[str, torch.Tensor] = {}
    t0, seen = time.perf_counter(), 0
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
               leave=False, mininterval=1.0)
    for step in bar:
        lo = step * cfg.batch_size * world
        idx = perm[lo:lo + cfg.batch_size * world][rank::world]
        if len(idx) == 0:
            break
        global_step = epoch * steps_per_epoch + step
        for group in opt.param_groups:
            group["lr"] = lr_at(global_step, total_steps, cfg)
        losses = train_step(loss_fn, params, opt, train_ds.batch(idx), cfg.grad_clip,
                            offset_weight_at(global_step, total_steps, cfg))
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v * len(idx)
        seen += len(idx)
        if step % log_every == 0:
            bar.set_postfix(loss=f"{float(losses['total']):.4f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return sums, seen, seen * world / (time.perf_counter() - t0)


def run_model_config(cfg: TrainConfig, data: PreparedData) -> ModelConfig:
    """The model configuration of run ``cfg`` on ``data``: the method's defaults and overrides, with
    the input shapes (CFR channels and subcarriers, numeric features and any missing-modality flags)."""
    c, k = data.feats.cfr.shape[2], data.feats.cfr.shape[3]
    return model_config(cfg.model, trajectory_length=cfg.trajectory_length, cfr_channels=c, num_subcarriers=k,
                        num_numeric=data.feats.numeric.shape[-1] + flag_columns(cfg.augment), **cfg.model_overrides)


@dataclass
class EpochResult:
    """What one run's training epoch gives the epoch loop: loss terms summed over samples (tensors),
    samples seen, throughput (trajectories/s), the learning rate at its last step, and a callable
    returning the optimizer state its checkpoints hold (a lone run's ``torch.optim`` format);
    ``elapsed_s``: the epoch's duration to record (None: measured through its validation)."""

    sums: dict[str, Any]
    seen: int
    throughput: float
    lr: float
    optimizer_state: Callable[[], dict[str, Any]]
    elapsed_s: float | None = None


@dataclass
class RunState:
    """One run's bookkeeping across epochs, shared by the lone and the stacked engine: its data on the
    device, history, best validation error so far, first epoch of this call and whether it is done."""

    cfg: TrainConfig
    out: Path
    data: PreparedData
    model: nn.Module
    steps_per_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    best_val: float = float("inf")
    device: torch.device = torch.device("cpu")
    done: bool = False

    def __post_init__(self) -> None:
        d = self.data
        self.train_ds, self.val_ds = d.train.to(self.device), d.val.to(self.device)
        self.val_seen_ds = d.val_seen.to(self.device) if d.val_seen is not None and d.val_seen is not d.val else None

    def ended(self) -> bool:
        """The stopping rule has ended the run (on its history so far)."""
        return should_stop([h["val_localisation"] for h in self.history], self.cfg, self.steps_per_epoch)


def close_epoch(r: RunState, epoch: int, res: EpochResult, mcfg: ModelConfig, t0: float, write: bool = True,
                progress: bool = False) -> None:
    """After run ``r``'s training epoch ``epoch`` (0-based; weights in ``r.model``): validate, append
    the history row, write ``best.pt`` (a new lowest validation localisation error) and ``last.pt``
    (``write``), and apply the budget and the stopping rule. ``t0``: when the epoch began
    (``time.perf_counter``)."""
    scale = r.data.norm.xy_scale
    val = evaluate_loss(r.model, r.val_ds, mcfg.mmd_weight, r.device, scale)
    seen_val = {} if r.val_seen_ds is None else evaluate_loss(r.model, r.val_seen_ds, mcfg.mmd_weight, r.device, scale)
    elapsed = time.perf_counter() - t0 if res.elapsed_s is None else res.elapsed_s
    row = epoch_row(epoch, res.sums, res.seen, val, seen_val, r.steps_per_epoch, r.cfg, scale, res.lr,
                    res.throughput, r.history, elapsed)
    r.history.append(row)
    if write:
        state = checkpoint_state(r.model, res.optimizer_state(), epoch, min(r.best_val, val["localisation"]),
                                 r.history, r.cfg, mcfg, r.data.norm, rng_state(r.device), r.data.data_version,
                                 r.data.bands_ghz)
        r.out.mkdir(parents=True, exist_ok=True)
        if val["localisation"] < r.best_val:
            save_checkpoint(r.out / BEST, state)
        save_checkpoint(r.out / LAST, state)
    r.best_val = min(r.best_val, val["localisation"])
    r.done = epoch + 1 >= r.cfg.epochs or r.ended()
    if progress:
        print(f"{r.out.name} epoch {epoch + 1}: train {row['train_localisation']:.4f}  val {val['localisation']:.4f} "
              f"(localisation, normalised)  ({res.throughput:.0f} trajectories/s)")
        if r.done and epoch + 1 < r.cfg.epochs:
            print(f"stopping rule: best validation error improved by < {100 * r.cfg.stop_min_gain:g} % over the "
                  f"last {max(r.cfg.stop_patience, math.ceil(len(r.history) / 4))} epochs; stopped at epoch {epoch + 1}")


def run_epochs(runs: list[RunState], train_live: Callable[[int, list[int]], dict[int, EpochResult]],
               mcfg: ModelConfig, stop_at: float | None, paused: Callable[[int], str], write: bool = True,
               progress: bool = False) -> None:
    """The one epoch loop of both engines. Each epoch: raise :class:`Paused` (message ``paused(epoch)``)
    if it would end past ``stop_at`` (Unix time, s; judged by the last epoch's duration), train the
    live runs (not done, started) with ``train_live(epoch, live)`` (:class:`EpochResult` per run
    index, weights left in each run's model), then :func:`close_epoch` each of them. A resumed run
    that had already ended trains no further."""
    for r in runs:
        r.done = r.start_epoch >= r.cfg.epochs or r.ended()
    epoch = min((r.start_epoch for r in runs if not r.done), default=0)
    epoch_s = 0.0  # duration of the last epoch of this call (training and validation), s
    while any(not r.done for r in runs):
        live = [i for i, r in enumerate(runs) if not r.done and r.start_epoch <= epoch]
        if stop_at is not None and time.time() + epoch_s > stop_at:
            raise Paused(paused(epoch))
        t0 = time.perf_counter()
        results = train_live(epoch, live)
        for i in live:
            close_epoch(runs[i], epoch, results[i], mcfg, t0, write, progress)
        epoch_s = time.perf_counter() - t0
        epoch += 1


def train(cfg: TrainConfig, out_dir: str | os.PathLike[str], progress: bool = True, resume: bool = True,
          data: PreparedData | None = None, log_every: int = 50, stop_at: float | None = None) -> RunResult:
    """Train ``cfg`` into ``out_dir`` (resuming from ``last.pt`` if present), evaluate the best
    checkpoint on the test set and write ``metrics.csv``, ``history.csv``, ``config.json``.

    ``stop_at`` (Unix time, s): before each epoch, if it would end past ``stop_at`` (judged by the
    last epoch's duration), raise :class:`Paused` instead; a later call resumes the run. This is how
    sweeps fit into commands of bounded length.

    The training and validation tensors live on the device and batches are gathered there; the loss
    terms are summed on the device and read back once per epoch (and for the progress bar every
    ``log_every`` steps). ``best.pt`` is the epoch with the lowest validation localisation error
    (points + centroid MSE), the same rule for every method.
    """
    out = Path(out_dir)
    device = select_device(cfg.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    _maybe_init_distributed(device)
    rank, world = _dist_info()
    torch.manual_seed(cfg.seed)
    data = data or prepare_data(cfg)
    mcfg = run_model_config(cfg, data)
    model = build_model(mcfg).to(device)
    opt = make_optimizer(model, cfg, device)
    steps_per_epoch = math.ceil(len(data.train) / (cfg.batch_size * world))
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    last_path = out / LAST
    history: list[dict[str, Any]] = []
    start_epoch, best_val = 0, float("inf")
    if resume and last_path.exists():
        start_epoch, best_val, history = resume_from(last_path, cfg, model, opt, device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=not mcfg.dynamic_routing)
    use_amp = cfg.amp and device.type == "cuda"
    loss_fn = make_loss_fn(net, mcfg.mmd_weight, data.norm.xy_scale, use_amp, cfg.compile)
    params = [p for p in model.parameters() if p.requires_grad]

    run = RunState(cfg, out, data, model, steps_per_epoch, history, start_epoch, best_val, device)

    def lone_epoch(epoch: int, live: list[int]) -> dict[int, EpochResult]:
        net.train()
        sums, seen, rate = train_epoch(loss_fn, params, opt, run.train_ds, cfg, epoch, steps_per_epoch,
                                       progress and rank == 0, log_every)
        return {0: EpochResult(sums, seen, rate, opt.param_groups[0]["lr"], opt.state_dict)}

    run_epochs([run], lone_epoch, mcfg, stop_at,
               lambda epoch: f"{out}: paused before epoch {epoch + 1}/{cfg.epochs} (time limit); call again to resume",
               write=rank == 0, progress=progress and rank == 0)
    throughput = float(history[-1].get("trajectories_per_s", float("nan"))) if history else float("nan")
    if world > 1:
        dist.barrier()
    return finish_run(out, cfg, mcfg, data, model, history, device, throughput, write=rank == 0)


def epoch_row(epoch: int, sums: dict[str, Any], seen: int, val: dict[str, float], seen_val: dict[str, float],
              steps_per_epoch: int, cfg: TrainConfig, xy_scale_m: float, lr: float, throughput: float,
              history: list[dict[str, Any]], epoch_s: float) -> dict[str, Any]:
    """One row of a run's history after ``epoch`` (0-based): mean training loss terms, validation
    terms (normalised units; ``val_mse_points_m2`` in m²), the steps so far, the curriculum weight
    and learning rate at the epoch's last step, throughput (trajectories/s) and elapsed seconds."""
    return {"epoch": epoch + 1, **{f"train_{k}": float(v) / max(seen, 1) for k, v in sums.items()},
            **{f"val_{k}": v for k, v in val.items()},
            **{f"val_seen_{k}": seen_val[k] for k in ("localisation", "mse_points", "mse_offsets") if k in seen_val},
            "step": (epoch + 1) * steps_per_epoch, "val_mse_points_m2": val["mse_points"] * xy_scale_m ** 2,
            "offset_weight": offset_weight_at((epoch + 1) * steps_per_epoch - 1, schedule_steps(steps_per_epoch, cfg), cfg),
            "lr": lr, "trajectories_per_s": throughput,
            "elapsed_s": (history[-1].get("elapsed_s", 0.0) if history else 0.0) + epoch_s}


def finish_run(out: Path, cfg: TrainConfig, mcfg: ModelConfig, data: PreparedData, model: nn.Module,
               history: list[dict[str, Any]], device: torch.device, throughput: float, write: bool = True) -> RunResult:
    """Load the run's ``best.pt`` into ``model``, score it on the test set and (``write``) write the
    run's result files (:func:`write_results`)."""
    model.load_state_dict(load_checkpoint(out / BEST)["model"])
    preds = predict(model, data.test, data.feats, data.norm, data.split.unseen, device)
    metrics = metrics_table(preds)
    hist = pd.DataFrame(history)
    if write:
        write_results(out, cfg, mcfg, data, metrics, hist, count_parameters(model), preds)
    return RunResult(out, hist, metrics, preds, data, model, throughput)


@torch.no_grad()
def evaluate_loss(model: nn.Module, ds: TrajectoryDataset, mmd_weight: float, device: torch.device,
                  xy_scale_m: float = 1.0, batch_size: int = 512) -> dict[str, float]:
    """Mean loss terms over a dataset (normalised units) and, for models that report them, the
    routers' sharpness (``out.metrics``, eval mode)."""
    model.eval()
    ds = ds.to(device)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(ds), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(ds)), device=device)
        batch = ds.batch(idx)
        out = model(batch["numeric"], batch["cfr"])
        for k, v in {**compute_loss(out, batch, mmd_weight, xy_scale_m), **out.metrics}.items():
            sums[k] = sums.get(k, 0.0) + v.float() * len(idx)
    return {k: float(v) / len(ds) for k, v in sums.items()}


def write_results(out: Path, cfg: TrainConfig, mcfg: ModelConfig, data: PreparedData, metrics: pd.DataFrame,
                  history: pd.DataFrame, n_params: int, preds: Predictions | None = None) -> None:
    """metrics.csv (tidy, with run columns), history.csv, config.json and, given the predictions,
    point_errors.csv (:func:`per_point_errors`, for paired comparisons), all atomic."""
    tagged = metrics.assign(model=cfg.model, regime=cfg.regime, train_band=cfg.band, seed=cfg.seed,
                            scene=Path(cfg.data_path).stem, trajectory_length=cfg.trajectory_length)
    frames = [(RUN_METRICS, tagged), (RUN_HISTORY, history)]
    if preds is not None:
        frames.append((RUN_POINT_ERRORS, per_point_errors(preds).round({"sq_error_m2": 4})))
    for name, frame in frames:
        write_csv_atomic(frame, out / name)
    write_json_atomic(out / RUN_CONFIG, {
        "train_config": cfg.to_dict(), "model_config": mcfg.to_dict(), "parameters": n_params,
        "split": data.split.report, "train_bands_ghz": data.train_bands, "test_bands_ghz": data.test_bands,
        "torch": torch.__version__})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scadf_lib.training", description="Train and evaluate one model.")
    p.add_argument("--data", default="data/munich.nc")
    p.add_argument("--model", default="scadf", choices=sorted(REGISTRY))
    p.add_argument("--regime", default="mix", choices=["mix", "ood"])
    p.add_argument("--band", default="mix",
                   help="'mix' or one band in GHz: 2.6, 6, 28 or a band the data file declares (e.g. 60)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: 3e-3 at batch 64, scaled by the square-root rule)")
    p.add_argument("--offset-weight", type=float, default=100.0,
                   help="w0 of the offset curriculum, annealed to 1 (the paper's loss) by 70 %% of the steps; 1: off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--trajectory-length", type=int, default=5)
    p.add_argument("--radius", type=float, default=None, help="clustering radius in m (default: automatic)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--holdout", default="points", choices=["points", "blocks"],
                   help="hold out points per cluster (paper) or whole map blocks")
    p.add_argument("--block-m", type=float, default=20.0, help="side of a held-out block, m")
    p.add_argument("--survey-grid-step", type=int, default=1,
                   help="train on every k-th grid point in x and y (2: a 2 m grid on 1 m data; scadf_lib.survey)")
    p.add_argument("--survey-share", type=float, default=1.0, help="train on a random share of the training points")
    p.add_argument("--compile", default=None, nargs="?", const="default", choices=COMPILE_MODES,
                   help="torch.compile the step ('default' for the bare flag; 'reduce-overhead': CUDA graphs)")
    p.add_argument("--inputs", default="oracle", choices=["oracle", "measured"],
                   help="oracle: the ray tracer's features; measured: what the BS measures and estimates")
    p.add_argument("--tx-power-dbm", type=float, default=None, help="measured inputs: UE transmit power (dBm)")
    p.add_argument("--timing-offset-std-ns", type=float, default=None,
                   help="measured inputs: timing offset standard deviation (ns)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    measurement = {k: v for k, v in (("tx_power_dbm", a.tx_power_dbm), ("timing_offset_std_ns", a.timing_offset_std_ns))
                   if v is not None}
    cfg = TrainConfig(data_path=a.data, model=a.model, regime=a.regime, band=a.band, epochs=a.epochs,
                      batch_size=a.batch_size, lr=a.lr if a.lr is not None else scaled_lr(a.batch_size),
                      seed=a.seed, device=a.device,
                      trajectory_length=a.trajectory_length, radius_m=a.radius,
                      max_steps_per_epoch=a.max_steps_per_epoch, compile=a.compile or False, holdout=a.holdout, block_m=a.block_m,
                      survey_grid_step=a.survey_grid_step, survey_share=a.survey_share, offset_weight=a.offset_weight, inputs=a.inputs, measurement=measurement)
    result = train(cfg, a.out)
    if _dist_info()[0] == 0:
        print(result.metrics[result.metrics.band == "all"].to_string(index=False))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

