"""SCADF-MoE's training step on measured inputs against oracle inputs, one CPU thread, batch 64.

Measured inputs give the CFR branch 16 beams x 64 delay taps per point instead of 3 channels
(real, imaginary, magnitude of one element) x 64 subcarriers; the numeric branch keeps 6 features.
The engine's step (``train_step``: forward, loss with MMD, backward, clip, AdamW) of both on a munich
batch (data version 2), interleaved step by step so both see the same machine load; the median over
repeats. Issue 43 asks at most 1.5x. Writes ``bench/results/measured_step.json``::

    python bench/bench_measured_step.py --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import write
from scadf_lib.models import build_model
from scadf_lib.training import (TrainConfig, make_loss_fn, make_optimizer, prepare_data, run_model_config,
                                train_step)


def step_of(inputs: str, model: str, data_path: str):
    """A closure running one training step of ``model`` on a fixed batch of ``inputs``, and its config."""
    cfg = TrainConfig(data_path=data_path, model=model, device="cpu", inputs=inputs, train_per_point=1.0,
                      test_per_point=1.0)
    data = prepare_data(cfg)
    batch = data.train.batch(torch.from_numpy(np.random.default_rng(0).permutation(len(data.train))[:64]))
    torch.manual_seed(0)
    mcfg = run_model_config(cfg, data)
    net = build_model(mcfg)
    fn = make_loss_fn(net, mcfg.mmd_weight, data.norm.xy_scale, False)
    opt = make_optimizer(net, cfg, torch.device("cpu"))
    params = list(net.parameters())
    return (lambda: train_step(fn, params, opt, batch, 1.0, 1.0)), mcfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="scadf")
    ap.add_argument("--data", default="data/munich.nc")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    steps, shapes = {}, {}
    for inputs in ("oracle", "measured"):
        steps[inputs], mcfg = step_of(inputs, a.model, a.data)
        shapes[inputs] = {"cfr_channels": mcfg.cfr_channels, "num_subcarriers": mcfg.num_subcarriers,
                          "num_numeric": mcfg.num_numeric}
    for step in steps.values():
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(a.repeats):
        for k, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    write("measured_step", {"model": a.model, "batch_size": 64, "threads": a.threads, "repeats": a.repeats,
                            "inputs": shapes, "median_ms_per_step": ms,
                            "measured_over_oracle": ms["measured"] / ms["oracle"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
