"""SCADF-MoE's training step against SoftMoE's (and the other methods'), one CPU thread, batch 64.

The engine's step (``train_step``: forward, loss with MMD, backward, clip, AdamW) of each model on the
same munich batch, the models interleaved step by step so that all see the same machine load; the
median over repeats. Issue 22 asks SCADF-MoE's step to cost at most 1.3x SoftMoE's. Writes
``bench/results/step_ratio.json``::

    python bench/bench_step_ratio.py --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import write
from scadf_lib.training import run_model_config
from scadf_lib.models import build_model
from scadf_lib.training import TrainConfig, make_loss_fn, make_optimizer, prepare_data, train_step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["softmoe", "scadf", "transfusion", "concat", "fullcon"])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = prepare_data(TrainConfig(data_path="data/munich.nc", train_per_point=1.0, test_per_point=1.0))
    batch = data.train.batch(torch.from_numpy(np.random.default_rng(0).permutation(len(data.train))[:64]))
    steps = {}
    for m in a.models:
        cfg = TrainConfig(model=m, device="cpu")
        torch.manual_seed(0)
        mcfg = run_model_config(cfg, data)
        model = build_model(mcfg)
        fn = make_loss_fn(model, mcfg.mmd_weight, data.norm.xy_scale, False)
        opt = make_optimizer(model, cfg, torch.device("cpu"))
        params = list(model.parameters())
        steps[m] = lambda fn=fn, params=params, opt=opt: train_step(fn, params, opt, batch, 1.0, 1.0)
    for step in steps.values():
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {m: [] for m in steps}
    for _ in range(a.repeats):
        for m, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[m].append(time.perf_counter() - t0)
    ms = {m: 1e3 * statistics.median(v) for m, v in times.items()}
    out = {"batch_size": 64, "threads": a.threads, "repeats": a.repeats, "median_ms_per_step": ms,
           "scadf_over_softmoe": ms["scadf"] / ms["softmoe"] if {"scadf", "softmoe"} <= set(ms) else None}
    write("step_ratio", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
