"""Training throughput (trajectories per second) of every model, in one run: the step as first
landed ("before": host batches, a host sync per step) against the engine's ("after": device-resident
batches, fused/foreach AdamW, no sync), optionally compiled, and the loader alone.

Same data (munich, Mix), same work per step (forward, loss with MMD, backward, clip, AdamW). On a GPU
the step runs under bf16 autocast, as the training engine does. ``--batch-size 1024`` writes
``training_b1024.json``; ``--compile`` adds the torch.compile'd step and, on a GPU, the same
compiled step replayed as CUDA graphs (``mode="reduce-overhead"``). Files get ``_gpu`` on a GPU.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from common import write
from scadf_lib.models import build_model, count_parameters, model_config, router_mmd


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
    from common import best_time
    logits = torch.randn(batch, tasks, tokens, slots, requires_grad=True)
    mask = torch.ones(tasks, tokens, dtype=torch.bool)

    def run(fn):
        def step():
            fn(logits.softmax(2), logits.softmax(3)).backward()
        return best_time(step, repeat=5, number=10)

    before, after = run(first_version_router_mmd), run(lambda d, c: router_mmd(c, mask))
    return {"mmd_before_ms": 1e3 * before, "mmd_after_ms": 1e3 * after, "mmd_speedup": before / after}
from scadf_lib.training import (TrainConfig, compute_loss, make_loss_fn, make_optimizer, prepare_data,
                                select_device, train_step)

MODELS = ("scadf", "concat", "fullcon", "transfusion", "softmoe")


def legacy_step(model, opt, data, idx, device, amp, xy_scale):
    """The training step as first landed (the 'before'): batch gathered on the host and copied,
    plain AdamW, and the loss read back to the host every step (a synchronisation)."""
    b = {k: v.to(device, non_blocking=True) for k, v in data.train.batch(idx).items()}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(b["numeric"], b["cfr"])
    loss = compute_loss(out, b, model.cfg.mmd_weight, xy_scale)["total"]
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.detach())


def time_steps(step, batches, device) -> float:
    """Trajectories per second over ``batches`` after three warm-up steps (compilation included there)."""
    for idx in batches[:3]:
        step(idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for idx in batches:
        step(idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(batches) * len(batches[0]) / (time.perf_counter() - t0)


def main(steps: int = 30, batch_size: int = 64, compile_models: bool = False) -> None:
    device = select_device("auto")
    tc = TrainConfig(data_path="data/munich.nc", train_per_point=2.0)
    data = prepare_data(tc)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(data.train), batch_size, replace=False) for _ in range(steps)]
    t0 = time.perf_counter()
    for idx in batches:
        data.train.batch(idx)
    loader_tps = steps * batch_size / (time.perf_counter() - t0)
    train_dev = data.train.to(device)
    dev_batches = [torch.as_tensor(b, device=device) for b in batches]
    amp, xy_scale = device.type == "cuda", data.norm.xy_scale
    rows = {}
    for name in MODELS:
        cfg = model_config(name, cfr_channels=data.feats.cfr.shape[2])
        row: dict[str, float] = {}
        variants = [("before", False), ("after", False)] + ([("after_compiled", True)] if compile_models else [])
        if compile_models and device.type == "cuda":  # the compiled forward and backward replayed as CUDA graphs
            variants.append(("after_cudagraphs", "reduce-overhead"))
        for label, compiled in variants:
            torch.manual_seed(0)
            model = build_model(cfg).to(device)
            if label == "before":
                opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
                tps = time_steps(lambda idx: legacy_step(model, opt, data, idx, device, amp, xy_scale), batches, device)
            else:
                opt = make_optimizer(model, tc, device)
                loss_fn = make_loss_fn(model, cfg.mmd_weight, xy_scale, amp, compile=compiled)
                params = list(model.parameters())
                tps = time_steps(lambda idx: train_step(loss_fn, params, opt, train_dev.batch(idx), 1.0),
                                 dev_batches, device)
            row[f"{label}_trajectories_per_s"] = tps
            row[f"{label}_ms_per_step"] = 1e3 * batch_size / tps
        row["speedup"] = row["after_trajectories_per_s"] / row["before_trajectories_per_s"]
        if compile_models:
            row["compiled_speedup"] = row["after_compiled_trajectories_per_s"] / row["before_trajectories_per_s"]
        if "after_cudagraphs_trajectories_per_s" in row:
            row["cudagraphs_speedup"] = row["after_cudagraphs_trajectories_per_s"] / row["before_trajectories_per_s"]
        row["trajectories_per_s"] = max(v for k, v in row.items() if k.startswith("after") and k.endswith("_per_s"))
        row["parameters"] = count_parameters(model)
        rows[name] = row
        print(name, {k: round(v, 2) for k, v in row.items()}, flush=True)
    ref = rows["scadf"]["trajectories_per_s"]
    for r in rows.values():
        r["speed_vs_scadf"] = r["trajectories_per_s"] / ref
    write("training" if batch_size == 64 else f"training_b{batch_size}", {
        "device": str(device), "batch_size": batch_size, "steps": steps, "compiled": compile_models, "models": rows,
        **mmd_before_after(batch_size), "loader_only_trajectories_per_s": loader_tps,
        "loader_share_of_scadf_step": ref / loader_tps})


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--compile", action="store_true", help="also time the torch.compile'd step (minutes on a CPU)")
    a = ap.parse_args()
    main(a.steps, a.batch_size, a.compile)
