"""One run trained far past the cpu preset's budget: is the validation curve flat, and where does it end?

Issue "Each trajectory point, not only the trajectory": trained to a flat validation curve on the
CPU, SCADF-MoE's held-out LOS error on munich should fall below 0.1 m² and its point MSE well below
the centroid floor. This trains one ordinary (resumable) run with the engine's defaults, then writes
``bench/results/long_run_<model>_<scene>_e<epochs>_tpp<n>.json`` (test metrics, offset decomposition, late validation
gain, wall time) and ``.png`` (learning curves in m²: training loss, held-out-style validation,
seen-position validation, against the centroid floor)::

    python bench/bench_long_run.py --model scadf --epochs 12      # ~25 min on one CPU thread
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd
import torch

from common import BENCH_DIR, machine, save_figure
from scadf_lib.fileio import write_json_atomic
from scadf_lib.training import TrainConfig, late_gain, train


def figure(hist: pd.DataFrame, scale_m: float, floor_m2: float, title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m2 = scale_m ** 2
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(hist.epoch, hist.train_mse_points * m2, label="training points (batch mean, curriculum weights aside)")
    ax.plot(hist.epoch, hist.val_mse_points * m2, "o-", label="validation: held-out-style points (selects best)")
    if "val_seen_mse_points" in hist:
        ax.plot(hist.epoch, hist.val_seen_mse_points * m2, "s-", label="validation: seen positions")
    ax.axhline(floor_m2, color="k", ls="--", lw=1, label="centroid floor (test)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("point MSE (m²)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="scadf")
    ap.add_argument("--scene", default="munich")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--train-per-point", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/bench_long_run")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TrainConfig(data_path=f"data/{a.scene}.nc", model=a.model, epochs=a.epochs, train_per_point=a.train_per_point,
                      test_per_point=1.0, seed=a.seed, device="cpu")
    name = f"{a.model}_{a.scene}_e{a.epochs}_tpp{a.train_per_point:g}_s{a.seed}"
    res = train(cfg, Path(a.work) / name, progress=False)
    m = res.metrics[res.metrics.band == "all"].set_index("group")
    floor = float(m.at["overall", "offset_floor_m2"])
    hist = res.history
    steps = math.ceil(len(res.data.train) / cfg.batch_size) * cfg.epochs
    out = {"machine": machine(), "run": name, "train_config": cfg.to_dict(), "steps": steps,
           "train_wall_s": float(hist.elapsed_s.iloc[-1]), "best_epoch": int(hist.val_localisation.idxmin()) + 1,
           "val_late_gain": late_gain(hist.val_localisation),
           "metrics": {g: {k: float(m.at[g, k]) for k in ("mse_m2", "offset_slope", "centroid_term_m2",
                                                           "offset_term_m2", "offset_floor_m2") if k in m}
                       for g in ("overall", "held-out", "held-out-LOS", "held-out-NLOS", "LOS", "centroid",
                                 "centroid-of-points")}}
    base = BENCH_DIR / "results" / f"long_run_{a.model}_{a.scene}_e{a.epochs}_tpp{a.train_per_point:g}"
    write_json_atomic(base.with_suffix(".json"), out)
    figure(hist, res.data.norm.xy_scale, floor, f"{a.model}, {a.scene}, Mix, seed {a.seed}: {cfg.epochs} epochs, "
           f"{a.train_per_point:g} trajectories per point, {steps} steps", base.with_suffix(".png"))
    print(json.dumps(out["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
