"""Training throughput (trajectories per second) of every model, in one run, and the loader alone.

Same data (munich, Mix, batch 64), same step (forward, loss, backward, AdamW). On a GPU the step runs
under bf16 autocast, as the training engine does.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from bench.common import write  # noqa: E402
from scadf_lib.models import build_model, count_parameters, model_config, router_mmd  # noqa: E402


def first_version_router_mmd(dispatch: torch.Tensor, combine: torch.Tensor) -> torch.Tensor:
    """The router MMD as first written (the 'before' of bench/README.md): cdist and the median
    heuristic bandwidth."""
    def mmd_all_pairs(samples: torch.Tensor) -> torch.Tensor:
        b, t, n, f = samples.shape
        flat = samples.reshape(b, t * n, f)
        d2 = torch.cdist(flat, flat).pow(2)
        bandwidth = d2.flatten(1).median(dim=1).values.clamp_min(1e-8).detach()
        k = torch.exp(-d2 / bandwidth[:, None, None]).reshape(b, t, n, t, n).mean(dim=(2, 4))
        diag = torch.diagonal(k, dim1=1, dim2=2)
        mmd2 = diag[:, :, None] + diag[:, None, :] - 2 * k
        pairs = torch.triu_indices(t, t, offset=1, device=samples.device)
        return mmd2[:, pairs[0], pairs[1]].mean()

    return mmd_all_pairs(dispatch.transpose(2, 3)) + mmd_all_pairs(combine)


def mmd_before_after(batch: int = 64, tasks: int = 6, tokens: int = 40, slots: int = 8) -> dict[str, float]:
    """Forward + backward time of the router MMD, first version vs current, SCADF-MoE's shapes.
    (The current one compares combine rows on each task's token slice with a fixed kernel.)"""
    from bench.common import best_time
    logits = torch.randn(batch, tasks, tokens, slots, requires_grad=True)
    mask = torch.ones(tasks, tokens, dtype=torch.bool)

    def run(fn):
        def step():
            fn(logits.softmax(2), logits.softmax(3)).backward()
        return best_time(step, repeat=5, number=10)

    before, after = run(first_version_router_mmd), run(lambda d, c: router_mmd(c, mask))
    return {"mmd_before_ms": 1e3 * before, "mmd_after_ms": 1e3 * after, "mmd_speedup": before / after}
from scadf_lib.training import TrainConfig, compute_loss, prepare_data, select_device  # noqa: E402


def main(steps: int = 30, batch_size: int = 64) -> None:
    device = select_device("auto")
    data = prepare_data(TrainConfig(data_path="data/munich.nc", train_per_point=2.0))
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(data.train), batch_size, replace=False) for _ in range(steps)]
    t0 = time.perf_counter()
    for idx in batches:
        data.train.batch(idx)
    loader_tps = steps * batch_size / (time.perf_counter() - t0)
    rows = {}
    for name in ("scadf", "concat", "fullcon", "transfusion", "softmoe"):
        torch.manual_seed(0)
        cfg = model_config(name, cfr_channels=data.feats.cfr.shape[2])
        model = build_model(cfg).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        amp = device.type == "cuda"

        def step(idx):
            b = {k: v.to(device) for k, v in data.train.batch(idx).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(b["numeric"], b["cfr"])
            loss = compute_loss(out, b, cfg.mmd_weight)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()

        for idx in batches[:3]:
            step(idx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for idx in batches:
            step(idx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows[name] = {"trajectories_per_s": steps * batch_size / (time.perf_counter() - t0),
                      "parameters": count_parameters(model)}
        print(name, rows[name], flush=True)
    ref = rows["scadf"]["trajectories_per_s"]
    for r in rows.values():
        r["speed_vs_scadf"] = r["trajectories_per_s"] / ref
    write("training", {"device": str(device), "batch_size": batch_size, "steps": steps, "models": rows,
                       **mmd_before_after(batch_size),
                       "loader_only_trajectories_per_s": loader_tps,
                       "loader_share_of_scadf_step": ref / loader_tps})


if __name__ == "__main__":
    main()
