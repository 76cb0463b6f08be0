"""Sweep throughput: N SCADF-MoE trainings at once in separate processes (as ``experiments --jobs N``
runs them) against one alone, in one run. On a GPU one small run leaves the device mostly idle, so N
runs side by side should add up; on a CPU they share the cores (each gets cores / N threads).

``python bench/bench_sweep.py [--jobs 1 2 4 8] [--steps 60]`` writes bench/results/sweep.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import torch

from common import write


def worker(args: tuple[int, int, int, int]) -> float:
    """Train ``steps`` steps of SCADF-MoE (seed ``seed``); returns the seconds spent stepping."""
    seed, steps, batch_size, threads = args
    torch.set_num_threads(threads)
    from scadf_lib.models import build_model, model_config
    from scadf_lib.training import TrainConfig, make_loss_fn, make_optimizer, prepare_data, select_device, train_step
    device = select_device("auto")
    tc = TrainConfig(data_path="data/munich.nc", train_per_point=2.0, seed=seed)
    data = prepare_data(tc)
    train = data.train.to(device)
    cfg = model_config("scadf", cfr_channels=data.feats.cfr.shape[2])
    model = build_model(cfg).to(device)
    opt = make_optimizer(model, tc, device)
    loss_fn = make_loss_fn(model, cfg.mmd_weight, data.norm.xy_scale, device.type == "cuda")
    rng = np.random.default_rng(seed)
    batches = [torch.as_tensor(rng.choice(len(train), batch_size, replace=False), device=device)
               for _ in range(steps + 3)]
    params = list(model.parameters())
    for idx in batches[:3]:
        train_step(loss_fn, params, opt, train.batch(idx), 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for idx in batches[3:]:
        train_step(loss_fn, params, opt, train.batch(idx), 1.0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(jobs: list[int], steps: int, batch_size: int) -> None:
    cores = os.cpu_count() or 1
    rows = {}
    ctx = mp.get_context("spawn")
    for n in jobs:
        with ctx.Pool(n) as pool:
            t0 = time.perf_counter()
            seconds = pool.map(worker, [(seed, steps, batch_size, max(1, cores // n)) for seed in range(n)])
            wall = time.perf_counter() - t0
        rows[str(n)] = {"aggregate_trajectories_per_s": n * steps * batch_size / max(seconds),
                        "per_run_trajectories_per_s": steps * batch_size / float(np.mean(seconds)),
                        "wall_s_with_start_up": wall}
        print(n, rows[str(n)], flush=True)
    one = rows[str(jobs[0])]["aggregate_trajectories_per_s"]
    for r in rows.values():
        r["aggregate_vs_first"] = r["aggregate_trajectories_per_s"] / one
    device = "cuda" if torch.cuda.is_available() else "cpu"
    write("sweep", {"device": device, "model": "scadf", "batch_size": batch_size, "steps": steps, "jobs": rows})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    a = ap.parse_args()
    main(a.jobs, a.steps, a.batch_size)
