"""Many runs of one architecture trained as one stacked model (``torch.func``): a sweep's runs share
each optimiser step's kernels instead of paying the per-op overhead once per run.

R runs whose models have the same configuration (method, size, trajectory length; any scene, regime,
seed, band, schedule or budget) become one model with a leading run axis: their parameters are
stacked (:func:`torch.func.stack_module_state`) and one step evaluates every run's own batch with
``vmap(functional_call(...))``. Everything else stays per run, exactly as :func:`scadf_lib.training.train`
does it alone:

* its seed (initial weights and data order: the same permutation per epoch, batch by batch),
* its data, split, normalisation, bands, learning-rate schedule, offset curriculum and gradient clip,
* its validation after every epoch, stopping rule, ``best.pt`` / ``last.pt`` (in the format of a
  lone run, so either engine resumes them), ``history.csv``, ``metrics.csv`` and run folder.

The optimiser is AdamW over the stacked tensors with one step count, learning rate and weight
decay per run (:class:`StackedAdamW`): AdamW is elementwise, so each run's slice gets the update a
lone run's ``torch.optim.AdamW`` gives it; gradients are clipped per run (its own global norm). A run
whose batch is shorter (the last of an epoch) is evaluated with the runs of the same batch length;
a run that has finished stops updating (it is masked out of the step). Runs with augmentation draw
random noise per batch and are not stacked (:func:`stackable`).

Per-run results equal a lone run's to float tolerance (``tests/test_engine.py``), not bit for bit:
a batched matmul may sum in another order.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from scadf_lib.checkpoints import LAST
from scadf_lib.models import ModelConfig, build_model
from scadf_lib.training import (EpochResult, PreparedData, RunResult, RunState, TrainConfig, check_same_run,
                                compute_loss, decay_groups, finish_run, load_checkpoint, lr_at, make_optimizer,
                                offset_weight_at, prepare_data, run_epochs, run_model_config, schedule_steps,
                                select_device)


def stack_key(cfg: TrainConfig) -> tuple:
    """Runs with equal keys can share a stack: the same architecture and batch size, no augmentation."""
    return (cfg.model, json.dumps(cfg.model_overrides, sort_keys=True), cfg.trajectory_length, cfg.batch_size,
            cfg.device, cfg.amp, cfg.weight_decay, cfg.decay_all)


def stackable(cfg: TrainConfig) -> bool:
    """Whether a run may train in a stack: not with augmentation (its noise comes from the global
    random stream, batch by batch, which a stack would interleave) and not on several ranks."""
    return not cfg.augment


class StackedAdamW:
    """AdamW on stacked parameters (leading axis = run) with per-run step counts, learning rates
    and an ``active`` mask; the update of ``torch.optim.AdamW`` (decoupled weight decay, bias
    correction) run by run:

        p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
        p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """

    def __init__(self, params: dict[str, torch.Tensor], weight_decay: dict[str, float], runs: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.weight_decay, self.betas, self.eps = params, weight_decay, betas, eps
        dev = next(iter(params.values())).device
        self.exp_avg = {k: torch.zeros_like(p) for k, p in params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(p) for k, p in params.items()}
        self.steps = torch.zeros(runs, dtype=torch.float64, device=dev)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], lr: torch.Tensor, active: torch.Tensor) -> None:
        """One update of the ``active`` (R,) runs with learning rates ``lr`` (R,); the others keep
        their parameters and moments."""
        b1, b2 = self.betas
        self.steps += active.to(self.steps.dtype)
        t = self.steps.clamp_min(1)
        bc1 = (1 - b1 ** t).to(torch.float32)
        bc2_sqrt = torch.sqrt(1 - b2 ** t).to(torch.float32)
        for k, p in self.params.items():
            g = grads[k]
            shape = (-1,) + (1,) * (p.dim() - 1)
            on = active.view(shape)
            lr_k = lr.view(shape).to(p.dtype)
            m = torch.where(on, self.exp_avg[k].lerp(g, 1 - b1), self.exp_avg[k])
            v = torch.where(on, self.exp_avg_sq[k] * b2 + (1 - b2) * g * g, self.exp_avg_sq[k])
            new = p * (1 - lr_k * self.weight_decay[k])
            new = new - (lr_k / bc1.view(shape)) * m / (v.sqrt() / bc2_sqrt.view(shape) + self.eps)
            p.copy_(torch.where(on, new, p))
            self.exp_avg[k], self.exp_avg_sq[k] = m, v

    def run_state(self, r: int) -> dict[str, Any]:
        return {"step": float(self.steps[r]), "exp_avg": {k: v[r].clone() for k, v in self.exp_avg.items()},
                "exp_avg_sq": {k: v[r].clone() for k, v in self.exp_avg_sq.items()}}

    @torch.no_grad()
    def load_run_state(self, r: int, state: dict[str, Any]) -> None:
        self.steps[r] = state["step"]
        for k in self.params:
            self.exp_avg[k][r].copy_(state["exp_avg"][k])
            self.exp_avg_sq[k][r].copy_(state["exp_avg_sq"][k])


def stacked_parameters(models: list[nn.Module], cfg: TrainConfig) -> tuple[dict[str, torch.Tensor], StackedAdamW]:
    """The models' trainable parameters stacked by name (leading axis = run, leaf tensors) and their
    :class:`StackedAdamW`, with the weight decay of :func:`scadf_lib.training.decay_groups` per name."""
    names = {id(p): n for n, p in models[0].named_parameters()}
    wd = {names[id(p)]: g["weight_decay"] for g in decay_groups(models[0], cfg.weight_decay, cfg.decay_all)
          for p in g["params"]}
    stacked, _ = stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in stacked.items() if k in wd}
    return params, StackedAdamW(params, wd, len(models))


def clip_per_run(grads: dict[str, torch.Tensor], max_norm: torch.Tensor) -> torch.Tensor:
    """Scale each run's gradients so that their global 2-norm is at most ``max_norm`` (R,), as
    ``torch.nn.utils.clip_grad_norm_`` does for one run (coefficient max_norm / (norm + 1e-6),
    capped at 1). Returns the norms before clipping (R,)."""
    sq = sum(g.float().pow(2).reshape(len(g), -1).sum(1) for g in grads.values())
    norm = sq.sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for k, g in grads.items():
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)).to(g.dtype))
    return norm


def torch_optimizer_state(model: nn.Module, cfg: TrainConfig, device: torch.device, lr: float,
                          state: dict[str, Any]) -> dict[str, Any]:
    """A lone run's ``torch.optim.AdamW`` state dict holding one run's stacked-optimiser state, so
    that its ``last.pt`` resumes under :func:`scadf_lib.training.train` too."""
    opt = make_optimizer(model, cfg, device)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        group["lr"] = lr
        for p in group["params"]:
            n = names[id(p)]
            opt.state[p] = {"step": torch.tensor(state["step"], dtype=torch.float32),
                            "exp_avg": state["exp_avg"][n].to(p.device), "exp_avg_sq": state["exp_avg_sq"][n].to(p.device)}
    return opt.state_dict()


def run_state_from_torch(model: nn.Module, cfg: TrainConfig, device: torch.device, opt_state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`torch_optimizer_state`: one run's moments by parameter name."""
    opt = make_optimizer(model, cfg, device)
    opt.load_state_dict(opt_state)
    names = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, Any] = {"step": 0.0, "exp_avg": {}, "exp_avg_sq": {}}
    for p, s in opt.state.items():
        out["step"] = float(s["step"])
        out["exp_avg"][names[id(p)]] = s["exp_avg"]
        out["exp_avg_sq"][names[id(p)]] = s["exp_avg_sq"]
    for n, p in model.named_parameters():  # a parameter never stepped has no state yet
        out["exp_avg"].setdefault(n, torch.zeros_like(p))
        out["exp_avg_sq"].setdefault(n, torch.zeros_like(p))
    return out


@dataclass
class StackRun(RunState):
    """One run of a stack: its :class:`~scadf_lib.training.RunState` (its own module holds its weights
    for validation, checkpoints and the final evaluation) and this epoch's loss sums."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    seen: int = 0
    resume_opt: dict[str, Any] | None = None  # a resumed run's optimizer state (a lone run's format)


def _setup_run(cfg: TrainConfig, out: Path, device: torch.device, data: PreparedData | None) -> tuple[StackRun, ModelConfig]:
    torch.manual_seed(cfg.seed)  # as train(): the seed, then the data, then the weights
    data = data or prepare_data(cfg)
    mcfg = run_model_config(cfg, data)
    model = build_model(mcfg).to(device)
    steps = math.ceil(len(data.train) / cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    return StackRun(cfg, out, data, model, steps, device=device), mcfg


def _stacked_loss(base: nn.Module, use_amp: bool) -> Callable:
    """(params (G, ...), batch (G, B, ...), mmd coefficient (G,), offset weight (G,)) -> the summed
    objective and the per-run loss terms (G,): :func:`compute_loss` run by run under ``vmap``."""
    def one(params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], mmd_coef: torch.Tensor,
            w: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(batch["cfr"].device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = functional_call(base, params, (batch["numeric"], batch["cfr"]))
        losses = compute_loss(out, batch, 0.0)
        losses["total"] = losses["localisation"] - mmd_coef * losses["mmd"]
        return losses["total"] + (w - 1.0) * losses["mse_offsets"], losses

    batched = vmap(one, in_dims=(0, 0, 0, 0))  # lambda per run, in mmd_coef (with the run's position scale)

    def loss(params: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], mmd_coef: torch.Tensor,
             w: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        objective, losses = batched(params, batch, mmd_coef, w)
        return objective.sum(), losses
    return loss


BATCH_KEYS = ("numeric", "cfr", "target", "centroid")


def stacked_grads(loss: Callable, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor],
                  sel: torch.Tensor, batch: dict[str, torch.Tensor], mmd_coef: torch.Tensor,
                  w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward and backward of the runs ``sel`` (G,) on their stacked ``batch`` (G, B, ...): adds
    each run's gradient into its slice of ``grads`` and returns its loss terms (G,)."""
    sub = {k: p[sel] for k, p in params.items()}
    objective, losses = loss(sub, batch, mmd_coef, w)
    g = torch.autograd.grad(objective, list(sub.values()))
    for k, gk in zip(sub, g):
        grads[k].index_add_(0, sel, gk)
    return losses


def train_stack(cfgs: list[TrainConfig], out_dirs: list[Path], progress: bool = False,
                stop_at: float | None = None, data: list[PreparedData | None] | None = None,
                compile: bool | str = False) -> list[RunResult]:
    """Train ``cfgs`` (one architecture: equal :func:`stack_key`) as one stacked model, each into its
    ``out_dirs`` entry, resuming each from its ``last.pt``; returns each run's :class:`RunResult` as
    :func:`scadf_lib.training.train` would. ``stop_at`` (Unix time, s): :class:`Paused` before an epoch
    that would end later (every run keeps its last finished epoch). ``compile``: ``torch.compile``
    the stacked loss (its backward with it; a mode such as "reduce-overhead" replays it as CUDA
    graphs on a GPU; False on a CPU, where the sweep's runs are eager)."""
    if not cfgs or len(cfgs) != len(out_dirs):
        raise ValueError("train_stack needs one out_dir per config, and at least one config")
    keys = {stack_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ValueError(f"a stack holds runs of one architecture and batch size; got {len(keys)} kinds: "
                         f"group them with scadf_lib.engine.stack_key")
    if not all(stackable(c) for c in cfgs):
        raise ValueError("augmented runs draw their noise batch by batch and cannot be stacked: train them alone")
    device = select_device(cfgs[0].device)
    runs, mcfgs = [], []
    for i, (cfg, out) in enumerate(zip(cfgs, out_dirs)):
        run, mcfg = _setup_run(cfg, Path(out), device, (data or [None] * len(cfgs))[i])
        runs.append(run)
        mcfgs.append(mcfg)
    if len({json.dumps(m.to_dict(), sort_keys=True) for m in mcfgs}) != 1:
        raise ValueError("the runs' model configurations differ (data of other shapes?): they cannot share a stack")
    mcfg = mcfgs[0]
    base = runs[0].model
    for r in runs:  # resume each run from its own last.pt (written by either engine)
        last = r.out / LAST
        if last.exists():
            state = load_checkpoint(last)
            check_same_run(state["train_config"], r.cfg, last)
            r.model.load_state_dict(state["model"])
            r.start_epoch, r.best_val, r.history = state["epoch"] + 1, state["best_val"], state["history"]
            r.resume_opt = state["optimizer"]
    params, opt = stacked_parameters([r.model for r in runs], cfgs[0])
    for i, r in enumerate(runs):
        if r.resume_opt is not None:
            opt.load_run_state(i, run_state_from_torch(r.model, r.cfg, device, r.resume_opt))
    use_amp = cfgs[0].amp and device.type == "cuda"
    loss = _stacked_loss(base, use_amp)
    if compile:
        loss = torch.compile(loss, mode=None if compile in (True, "default") else compile)
    mmd_coef = torch.tensor([mcfg.mmd_weight / r.data.norm.xy_scale ** 2 for r in runs], device=device)
    clip = torch.tensor([r.cfg.grad_clip for r in runs], device=device)

    def stacked_epoch(epoch: int, live: list[int]) -> dict[int, EpochResult]:
        t0 = time.perf_counter()
        _train_stacked_epoch(runs, live, epoch, loss, params, opt, mmd_coef, clip, device)
        train_s = time.perf_counter() - t0
        out = {}
        for i in live:
            r = runs[i]
            with torch.no_grad():  # the run's own module gets its slice of the stack
                own = dict(r.model.named_parameters())
                for k, p in params.items():
                    own[k].copy_(p[i])
            last_lr = lr_at((epoch + 1) * r.steps_per_epoch - 1, schedule_steps(r.steps_per_epoch, r.cfg), r.cfg)
            out[i] = EpochResult(r.sums, r.seen, r.seen / max(train_s, 1e-9), last_lr,
                                 lambda r=r, i=i, lr=last_lr: torch_optimizer_state(r.model, r.cfg, device, lr,
                                                                                    opt.run_state(i)),
                                 elapsed_s=train_s)
        return out

    run_epochs(runs, stacked_epoch, mcfg, stop_at,
               lambda epoch: f"stack of {len(runs)}: paused before epoch {epoch + 1} (time limit); call again to resume",
               progress=progress)
    return [_finish(r, mcfg, device) for r in runs]


def _train_stacked_epoch(runs: list[StackRun], live: list[int], epoch: int, loss: Callable,
                         params: dict[str, torch.Tensor], opt: StackedAdamW, mmd_coef: torch.Tensor,
                         clip: torch.Tensor, device: torch.device) -> None:
    """One epoch of the live runs as one stacked model: each run's own seeded permutation, batch by
    batch; runs whose batch has the same length step together; per-run learning rate, offset weight,
    gradient clip; a run past its steps is masked out of the step. Sums each run's loss terms into
    ``r.sums`` / ``r.seen``."""
    perms = {i: torch.from_numpy(np.random.default_rng([runs[i].cfg.seed, epoch]).permutation(len(runs[i].train_ds)))
             .to(device) for i in live}
    for i in live:
        runs[i].sums, runs[i].seen = {}, 0
    for step in range(max(runs[i].steps_per_epoch for i in live)):
        by_size: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for i in live:
            r = runs[i]
            if step >= r.steps_per_epoch:
                continue
            idx = perms[i][step * r.cfg.batch_size:(step + 1) * r.cfg.batch_size]
            if len(idx):
                by_size.setdefault(len(idx), []).append((i, idx))
        if not by_size:
            break
        active = torch.zeros(len(runs), dtype=torch.bool, device=device)
        lr = torch.zeros(len(runs), dtype=torch.float32, device=device)
        grads = {k: torch.zeros_like(p) for k, p in params.items()}
        for size, members in by_size.items():
            who = [i for i, _ in members]
            sel = torch.tensor(who, device=device)
            batches = [runs[i].train_ds.batch(idx) for i, idx in members]
            batch = {k: torch.stack([b[k] for b in batches]) for k in BATCH_KEYS}
            w = torch.tensor([offset_weight_at(epoch * runs[i].steps_per_epoch + step,
                                               schedule_steps(runs[i].steps_per_epoch, runs[i].cfg), runs[i].cfg)
                              for i in who], device=device)
            losses = stacked_grads(loss, params, grads, sel, batch, mmd_coef[sel], w)
            for j, i in enumerate(who):
                r = runs[i]
                for k, v in losses.items():
                    r.sums[k] = r.sums.get(k, 0.0) + v[j].detach() * size
                r.seen += size
                active[i] = True
                lr[i] = lr_at(epoch * r.steps_per_epoch + step, schedule_steps(r.steps_per_epoch, r.cfg), r.cfg)
        clip_per_run(grads, clip)
        opt.step(grads, lr, active)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finish(r: StackRun, mcfg: ModelConfig, device: torch.device) -> RunResult:
    """Evaluate the run's best checkpoint on its test set and write its results, as train() does."""
    throughput = float(r.history[-1]["trajectories_per_s"]) if r.history else float("nan")
    return finish_run(r.out, r.cfg, mcfg, r.data, r.model, r.history, device, throughput)
