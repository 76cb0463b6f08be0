"""Stacked training step (scadf_lib.engine) against R lone steps, on the device at hand.

One optimiser step of R runs of one architecture (forward, loss with MMD, backward, per-run clip,
AdamW), munich batches of 64 per run: the stacked step (``vmap`` over the run axis, one update for
all) against R lone steps of the engine (``train_step`` with ``torch.optim.AdamW``), interleaved so
that both see the same machine load. Writes ``bench/results/stacked.json`` (``_gpu`` on a GPU) and
``stacked.png``: ms per run-step and speed-up against R::

    python bench/bench_stacked.py --models softmoe scadf --stacks 1 2 4 8
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from common import BENCH_DIR, save_figure, write
from scadf_lib.engine import BATCH_KEYS, _stacked_loss, clip_per_run, stacked_grads, stacked_parameters
from scadf_lib.models import build_model
from scadf_lib.training import (TrainConfig, make_loss_fn, make_optimizer, prepare_data,
                                run_model_config, select_device, train_step)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model_name: str, stack: int, data, device: torch.device, repeats: int, steps: int,
            compile: bool = False) -> dict[str, float]:
    cfg = TrainConfig(model=model_name, device=str(device))
    mcfg = run_model_config(cfg, data)
    models = [build_model(mcfg).to(device) for _ in range(stack)]
    ds = data.train.to(device)
    rng = np.random.default_rng(0)
    batches = [ds.batch(torch.from_numpy(rng.permutation(len(ds))[:64]).to(device)) for _ in range(stack)]
    use_amp = device.type == "cuda"
    # lone steps: the engine's step, one run after the other
    lone = [(make_loss_fn(m, mcfg.mmd_weight, data.norm.xy_scale, use_amp, compile), m,
             make_optimizer(m, cfg, device)) for m in models]

    def lone_steps() -> None:
        for (fn, m, opt), b in zip(lone, batches):
            train_step(fn, list(m.parameters()), opt, b, 1.0, 1.0)

    params, opt = stacked_parameters(models, cfg)
    loss = _stacked_loss(models[0], use_amp)
    if compile:
        loss = torch.compile(loss)
    batch = {k: torch.stack([b[k] for b in batches]) for k in BATCH_KEYS}
    sel = torch.arange(stack, device=device)
    coef = torch.full((stack,), mcfg.mmd_weight / data.norm.xy_scale ** 2, device=device)
    ones = torch.ones(stack, device=device)
    lr = torch.full((stack,), 3e-3, device=device)
    active = torch.ones(stack, dtype=torch.bool, device=device)

    def stacked_step() -> None:
        grads = {k: torch.zeros_like(p) for k, p in params.items()}
        stacked_grads(loss, params, grads, sel, batch, coef, ones)
        clip_per_run(grads, ones)
        opt.step(grads, lr, active)

    for fn in (lone_steps, stacked_step):  # warm-up (and compilation)
        for _ in range(3):
            fn()
    sync(device)
    t_lone, t_stack = [], []
    for _ in range(repeats):
        for fn, out in ((lone_steps, t_lone), (stacked_step, t_stack)):
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync(device)
            out.append((time.perf_counter() - t0) / steps)
    lone_ms, stack_ms = 1e3 * statistics.median(t_lone), 1e3 * statistics.median(t_stack)
    return {"model": model_name, "stack": stack, "lone_ms_per_run_step": lone_ms / stack,
            "stacked_ms_per_run_step": stack_ms / stack, "speedup": lone_ms / stack_ms,
            "stacked_trajectories_per_s": 64 * stack / (stack_ms / 1e3)}


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        axes[0].plot([r["stack"] for r in rs], [r["stacked_ms_per_run_step"] for r in rs], "o-", label=f"{model} stacked")
        axes[0].plot([r["stack"] for r in rs], [r["lone_ms_per_run_step"] for r in rs], "s--", label=f"{model} alone")
        axes[1].plot([r["stack"] for r in rs], [r["speedup"] for r in rs], "o-", label=model)
    axes[0].set_xlabel("runs per stack R")
    axes[0].set_ylabel("ms per run-step (batch 64)")
    axes[1].set_xlabel("runs per stack R")
    axes[1].set_ylabel("speed-up: R lone steps / one stacked step")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["softmoe", "scadf"])
    ap.add_argument("--stacks", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = select_device(a.device)
    data = prepare_data(TrainConfig(data_path="data/munich.nc", train_per_point=1.0, test_per_point=1.0))
    rows = []
    for model in a.models:
        for r in a.stacks:
            rows.append(measure(model, r, data, device, a.repeats, a.steps, a.compile))
            print(rows[-1], flush=True)
    name = "stacked" + ("_compiled" if a.compile else "")
    write(name, {"device": str(device), "batch_per_run": 64, "rows": rows,
                 "note": "median over repeats; lone and stacked steps interleaved (same machine load)"})
    figure(rows, BENCH_DIR / "results" / f"{name}{'_gpu' if device.type == 'cuda' else ''}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
