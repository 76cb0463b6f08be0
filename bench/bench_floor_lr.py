"""Is a curve that still falls at its floor held back by the floor's learning rate?

A run of the ``flat`` preset whose validation error still falls at the end of its maximum budget
(Concat: 4.9-6.4 % over its last quarter at 240 epochs) is either still learning something it can
learn (more steps, or larger ones, help) or creeping down a power law that no budget ends. This
probe takes such a run's ``last.pt`` and trains copies of it on for ``--epochs`` epochs at a few
constant learning rates (each copy from the same checkpoint, with the same batches), then records
each copy's best validation localisation error (normalised units, as the stopping rule reads it)
and its point MSE in m². Writes ``bench/results/floor_lr_<run>.json`` and ``.png``::

    python bench/bench_floor_lr.py runs/flat/main_munich_mix_concat_s0 --lrs 3e-5 3e-4 1e-3 3e-3

Nothing in the run folder is changed. One CPU thread; ~5 s per Concat epoch on munich.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from common import BENCH_DIR, save_figure, write
from scadf_lib.training import (TrainConfig, evaluate_loss, load_checkpoint, make_loss_fn,
                                make_optimizer, model_from_checkpoint, prepare_data, train_epoch)


def constant_lr(cfg: TrainConfig, lr: float) -> TrainConfig:
    """``cfg`` whose schedule is the constant ``lr`` past its warm-up (min_lr_fraction 1), no stopping rule."""
    return replace(cfg, lr=lr, min_lr_fraction=1.0, stop_min_gain=None)


def train_on(state: dict[str, Any], cfg: TrainConfig, data: Any, epochs: int) -> list[dict[str, float]]:
    """Train a copy of the checkpoint ``state`` on for ``epochs`` epochs at ``cfg.lr`` (constant);
    per epoch: the validation localisation error and point MSE (m²)."""
    torch.manual_seed(cfg.seed)
    model, _ = model_from_checkpoint(state)
    opt = make_optimizer(model, cfg, torch.device("cpu"))
    opt.load_state_dict(state["optimizer"])  # Adam's moments carry over; the lr is set per step
    mmd_weight = float(state["model_config"]["mmd_weight"])
    loss_fn = make_loss_fn(model, mmd_weight, data.norm.xy_scale, False)
    params = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    first = state["epoch"] + 1  # past the schedule: offset weight 1, fresh batch orders
    rows = []
    for e in range(first, first + epochs):
        model.train()
        train_epoch(loss_fn, params, opt, data.train, cfg, e, steps_per_epoch)
        val = evaluate_loss(model, data.val, mmd_weight, torch.device("cpu"), data.norm.xy_scale)
        rows.append({"epoch": e + 1, "val_localisation": val["localisation"],
                     "val_mse_points_m2": val["mse_points"] * data.norm.xy_scale ** 2})
        print(f"lr {cfg.lr:.0e} epoch {e + 1}: val {val['localisation']:.6f}", flush=True)
    return rows


def figure(run: str, start: float, curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for lr, rows in curves.items():
        best = [min(r["val_localisation"] for r in rows[:i + 1]) for i in range(len(rows))]
        ax.plot([r["epoch"] for r in rows], [100 * (start - b) / start for b in best], "o-", label=f"lr {lr}")
    ax.set_xlabel("epoch (continuing the run)")
    ax.set_ylabel("best validation error below the checkpoint's best (%)")
    ax.set_title(f"{run}: training on at constant learning rates", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", help="a finished run folder with last.pt (e.g. runs/flat/main_munich_mix_concat_s0)")
    ap.add_argument("--lrs", type=float, nargs="+", default=[3e-5, 3e-4, 1e-3, 3e-3])
    ap.add_argument("--epochs", type=int, default=8)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    run_dir = Path(a.run_dir)
    state = load_checkpoint(run_dir / "last.pt")
    cfg = replace(TrainConfig(**state["train_config"]), device="cpu")
    data = prepare_data(cfg)
    start = float(state["best_val"])
    curves = {f"{lr:g}": train_on(state, constant_lr(cfg, lr), data, a.epochs) for lr in a.lrs}
    name = f"floor_lr_{run_dir.name}"
    summary = {lr: {"best_gain_pct": 100 * (start - min(r["val_localisation"] for r in rows)) / start,
                    "last_val_mse_points_m2": rows[-1]["val_mse_points_m2"]} for lr, rows in curves.items()}
    write(name, {"run": str(run_dir), "checkpoint_epoch": state["epoch"] + 1, "checkpoint_best_val": start,
                 "floor_lr": cfg.lr * cfg.min_lr_fraction, "epochs": a.epochs, "summary": summary, "curves": curves})
    figure(run_dir.name, start, curves, BENCH_DIR / "results" / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
