"""How long the paper preset takes as stacked runs on one GPU: counted work, measured FLOPs, assumed step times.

Counts, from the data and the plan (no training): trajectory-steps and optimiser steps of every run
of the ``paper`` preset's main study (5 methods x 3 scenes x Mix/OOD x 5 seeds, 40 epochs at batch
64, 4 training trajectories per point) and its ablations; FLOPs of one trajectory's forward and
backward per method (``torch.utils.flop_counter`` on the CPU, batch 64). Then the wall time of
``bench/gpu_run.sh``'s stacked sweep under stated step times: the H100 figures of issue 22 (an eager
step is launch-bound, 16-34 ms whatever the batch) and a CUDA-graph step, with the stacks of one
method side by side (``--jobs``). Writes ``bench/results/paper_sizing.json``::

    python bench/size_paper_preset.py
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from common import write
from scadf_lib.training import run_model_config
from scadf_lib.planning import plan
from scadf_lib.models import build_model
from scadf_lib.training import TrainConfig, compute_loss, prepare_data

H200_BF16_DENSE_TFLOPS = 989.0  # NVIDIA's H200 SXM figure (dense, without sparsity)


def flops_per_trajectory(model: str, data) -> float:
    """Forward + backward FLOPs of one trajectory (batch 64, divided by 64)."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = TrainConfig(model=model, device="cpu")
    net = build_model(run_model_config(cfg, data))
    batch = data.train.batch(torch.arange(64))
    with FlopCounterMode(display=False) as counter:
        out = net(batch["numeric"], batch["cfr"])
        compute_loss(out, batch, 0.1)["total"].backward()
    return counter.get_total_flops() / 64


def main() -> int:
    runs = plan("paper", studies=("main", "ablation"))
    sizes: dict[tuple, int] = {}
    per_run = []
    for r in runs:
        key = (r.cfg.data_path, r.cfg.regime)
        if key not in sizes:
            sizes[key] = len(prepare_data(r.cfg).train)
        steps = math.ceil(sizes[key] / r.cfg.batch_size) * r.cfg.epochs
        per_run.append({"name": r.name, "model": r.cfg.model, "steps": steps, "trajectories": sizes[key] * r.cfg.epochs})
    data = prepare_data(TrainConfig(data_path="data/munich.nc", train_per_point=1.0, test_per_point=1.0))
    flops = {m: flops_per_trajectory(m, data) for m in sorted({p["model"] for p in per_run})}
    total_flop = sum(p["trajectories"] * flops[p["model"]] for p in per_run)
    stacks: dict[str, list[dict]] = defaultdict(list)
    for p in per_run:
        stacks[p["model"]].append(p)
    # one stack per architecture (all its runs), the stacks side by side: the sweep takes as many
    # stacked steps as its longest run
    longest = max(p["steps"] for p in per_run)
    scenarios = {}
    for label, step_ms in (("eager, launch-bound (H100: 16 ms)", 16.0), ("eager, launch-bound (H100: 34 ms)", 34.0),
                           ("CUDA graphs (assumed 4 ms per stacked step)", 4.0)):
        compute_s = total_flop / (0.05 * H200_BF16_DENSE_TFLOPS * 1e12)  # at 5 % of the bf16 peak
        scenarios[label] = {"step_ms": step_ms, "launch_bound_s": longest * step_ms / 1e3,
                            "compute_s_at_5pct_of_peak": compute_s,
                            "estimate_s": max(longest * step_ms / 1e3, compute_s)}
    out = {"runs": len(per_run), "stacks": {m: len(v) for m, v in stacks.items()},
           "run_steps": sum(p["steps"] for p in per_run), "longest_run_steps": longest,
           "trajectory_steps": sum(p["trajectories"] for p in per_run),
           "flops_per_trajectory_fwd_bwd": flops, "total_pflop": total_flop / 1e15,
           "seconds_at_h200_bf16_peak": total_flop / (H200_BF16_DENSE_TFLOPS * 1e12), "scenarios": scenarios,
           "note": ("estimates: no GPU was lent; validation (about 5 ms per run-epoch batch) and checkpoint "
                    "writes come on top")}
    write("paper_sizing", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
