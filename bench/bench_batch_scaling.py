"""Large batch against the paper's batch of 64: same data, same epochs, learning rate by the
square-root rule (``training.scaled_lr``). Learning curves side by side, per epoch and per second of
training, and the final test MSE (m^2), all from one run of this script on one machine.

Issue "Training on the GPU" allows reaching "the same accuracy in a tenth of the wall time with a
larger batch and a scaled learning rate": on a GPU a step at batch 512 costs about what one at 64
does (it is launch-bound), so an epoch is up to 8x cheaper, and this script measures whether the
accuracy holds. On a CPU the step is compute-bound, so only the per-epoch curves say something.

Each training run is an ordinary resumable run under ``runs/bench_batch_scaling/`` (rerun the same
command after an interruption). Writes ``bench/results/batch_scaling.json`` and
``bench/results/batch_scaling.png`` (``batch_scaling_gpu.*`` on a GPU; ``--name`` for another set).

    python bench/bench_batch_scaling.py                           # GPU: munich, 40 epochs, 4 trajectories/point
    python bench/bench_batch_scaling.py --epochs 20 --train-per-point 1   # what a 2-core CPU can do (~25 min)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import BENCH_DIR, save_figure, write
from scadf_lib.training import PAPER_BATCH, BASE_LR, TrainConfig, scaled_lr, select_device, train

GROUPS = ("held-out", "overall", "held-out-NLOS")


def lr_for(batch_size: int, rule: str) -> float:
    """The paper's lr at batch 64, scaled to ``batch_size`` by the square-root (default) or linear rule."""
    if rule not in ("sqrt", "linear"):
        raise ValueError(f"unknown lr rule {rule!r}; choose 'sqrt' or 'linear'")
    return scaled_lr(batch_size) if rule == "sqrt" else BASE_LR * batch_size / PAPER_BATCH


def time_to_reach(elapsed_s: list[float], val: list[float], target: float) -> tuple[float, float]:
    """(seconds, epochs) of training until the best validation error first reaches ``target``
    (NaN, NaN if it never does)."""
    best = float("inf")
    for epoch, (t, v) in enumerate(zip(elapsed_s, val), start=1):
        best = min(best, v)
        if best <= target:
            return t, float(epoch)
    return float("nan"), float("nan")


def run_pair(model: str, batches: list[int], epochs: int, train_per_point: float, scene: str, device: str,
             compile: bool | str, work: Path, lr_rule: str = "sqrt", epochs_large: int | None = None) -> dict[str, dict]:
    """Train ``model`` once per batch size (seed 0, same split; the first batch for ``epochs``, the
    others for ``epochs_large``, default the same); curves in m^2 and seconds, and the time each
    large batch takes to reach the first batch's best validation error."""
    rows = {}
    for b in batches:
        n_epochs = epochs if b == batches[0] else (epochs_large or epochs)
        cfg = TrainConfig(data_path=f"data/{scene}.nc", model=model, epochs=n_epochs, batch_size=b,
                          lr=lr_for(b, lr_rule), train_per_point=train_per_point, test_per_point=1.0, device=device,
                          compile=compile)
        suffix = "" if lr_rule == "sqrt" or b == PAPER_BATCH else f"_{lr_rule}"
        res = train(cfg, work / f"{scene}_{model}_b{b}{suffix}_e{n_epochs}_tpp{train_per_point:g}", progress=True)
        scale2 = res.data.norm.xy_scale ** 2  # normalised squared position -> m^2
        h = res.history
        m = res.metrics[res.metrics.band == "all"].set_index("group").mse_m2
        rows[str(b)] = {
            "batch_size": b, "lr": cfg.lr, "steps_per_epoch": -(-len(res.data.train) // b),
            "epoch": h.epoch.tolist(), "elapsed_s": h.elapsed_s.tolist(),
            "val_localisation_m2": (h.val_localisation * scale2).tolist(),
            "train_localisation_m2": (h.train_localisation * scale2).tolist(),
            "train_wall_s": float(h.elapsed_s.iloc[-1]), "best_epoch": int(h.val_localisation.idxmin()) + 1,
            **{f"test_{g}_mse_m2": float(m[g]) for g in GROUPS}}
        print(model, b, {k: v for k, v in rows[str(b)].items() if not isinstance(v, list)}, flush=True)
    ref = rows[str(batches[0])]
    target = min(ref["val_localisation_m2"])
    for r in rows.values():
        r["wall_vs_first"] = r["train_wall_s"] / ref["train_wall_s"]
        r["held_out_mse_vs_first"] = r["test_held-out_mse_m2"] / ref["test_held-out_mse_m2"]
        r["s_to_first_best_val"], r["epochs_to_first_best_val"] = time_to_reach(r["elapsed_s"], r["val_localisation_m2"],
                                                                               target)
        r["wall_to_first_best_val_vs_first"] = r["s_to_first_best_val"] / ref["train_wall_s"]
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = result["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 3.6 * len(models)), squeeze=False)
    for (name, rows), (ax_e, ax_t) in zip(models.items(), axes):
        for r in rows.values():
            label = f"batch {r['batch_size']}, lr {r['lr']:.2g}"
            ax_e.plot(r["epoch"], r["val_localisation_m2"], marker=".", label=label)
            ax_t.plot(r["elapsed_s"], r["val_localisation_m2"], marker=".", label=label)
        ax_e.set(xlabel="epoch", ylabel="validation MSE, points + centroid (m²)", yscale="log", title=f"{name}: per epoch")
        ax_t.set(xlabel=f"training wall time (s, {result['device']})", ylabel="validation MSE, points + centroid (m²)",
                 yscale="log", title=f"{name}: per second")
        for ax in (ax_e, ax_t):
            ax.grid(alpha=0.3)
            ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["scadf", "softmoe"])
    ap.add_argument("--batches", type=int, nargs="+", default=[PAPER_BATCH, 512],
                    help="batch sizes; the first is the reference")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--train-per-point", type=float, default=4.0)
    ap.add_argument("--scene", default="munich")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", default=None, nargs="?", const="default")
    ap.add_argument("--epochs-large", type=int, default=None,
                    help="epochs of the larger batches (default --epochs): fewer steps per epoch may need more")
    ap.add_argument("--lr-rule", default="sqrt", choices=["sqrt", "linear"],
                    help="how the learning rate grows with the batch (the reference batch keeps 1e-3)")
    ap.add_argument("--name", default="batch_scaling", help="output name under bench/results/")
    ap.add_argument("--work", default="runs/bench_batch_scaling")
    a = ap.parse_args(argv)
    result = {"device": str(select_device(a.device)), "scene": a.scene, "epochs": a.epochs,
              "epochs_large": a.epochs_large or a.epochs,
              "train_per_point": a.train_per_point, "compile": str(a.compile or False), "lr_rule": a.lr_rule,
              "models": {m: run_pair(m, a.batches, a.epochs, a.train_per_point, a.scene, a.device, a.compile or False,
                                     Path(a.work), a.lr_rule, a.epochs_large) for m in a.models}}
    result["figure"] = f"{a.name}{'_gpu' if torch.cuda.is_available() else ''}.png"  # beside write()'s json
    write(a.name, result)
    plot(result, BENCH_DIR / "results" / result["figure"])


if __name__ == "__main__":
    main()
