"""Learning-fix study: each change to the shared training and model parts, one at a time, at equal steps.

Issue "Each trajectory point, not only the trajectory". A ladder of variants, each adding one change
to the one before, identically for every method (``VARIANTS``):

    legacy          the plain model and optimiser (``PLAIN_INIT``: full-scale residual branches, no encoder
                    LayerNorm, raw stream into the task MoE, weight decay on everything, lr 1e-3)
    +zero_init      residual-branch output layers start at zero (every block the identity at init)
    +encoder_norm   LayerNorm at each encoder's output (CFR and numeric tokens at one scale)
    +task_prenorm   the task MoE reads LayerNorm(x) (SCADF-MoE only; the others are unchanged by it)
    +decay_groups   no weight decay on biases, gains, embeddings, router scale
    +lr3e-3         peak learning rate 3e-3 instead of 1e-3
    +curriculum     offset-weighted loss, w 30 -> 1 by 70 % of the steps (final objective = the paper's)

plus ``lr1e-2`` (the ``+decay_groups`` model at lr 1e-2) for the learning-rate choice and
``curriculum-encoder_norm`` (``+curriculum`` without the encoder LayerNorm) for that choice, and
``curriculum_w10`` / ``curriculum_w100`` / ``curriculum_w300`` (w0 = 10 / 100 / 300 instead of 30) for the curriculum's weight. Every run is an
ordinary resumable run (``--work``, a folder per run, finished ones skipped): the cpu preset's split
(1 training trajectory per point, 1 test trajectory per held-out point, no validation points: the
split of the runs before held-out-style validation, so every variant trains on the same points),
batch 64, ``--steps`` steps as 10 epochs. Scored on the test set's held-out points: MSE (LOS / NLOS), the centroid head, the mean
of the predicted points, the LOS offset slope and the offset decomposition (centroid term + offset
term; :mod:`scadf_lib.evaluation`).

Writes ``bench/results/learning.csv`` (one row per run), ``learning.md`` (means over seeds) and
``learning.png``::

    python bench/bench_learning.py --jobs 2            # the committed study (~30 min on 2 cores)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from common import BENCH_DIR, machine, save_figure
from scadf_lib.fileio import atomic_path
from scadf_lib.models import PLAIN_INIT
from scadf_lib.training import BASE_LR, TrainConfig, train

LOW_LR = 1e-3  # the first guess at the peak lr, before 3e-3 was measured better

#: name -> (TrainConfig changes, model overrides); cumulative down the ladder.
LADDER: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("legacy", {"lr": LOW_LR, "decay_all": True, "offset_weight": 1.0}, dict(PLAIN_INIT)),
    ("+zero_init", {"lr": LOW_LR, "decay_all": True, "offset_weight": 1.0}, {**PLAIN_INIT, "residual_init": "zero"}),
    ("+encoder_norm", {"lr": LOW_LR, "decay_all": True, "offset_weight": 1.0}, {"task_prenorm": False}),
    ("+task_prenorm", {"lr": LOW_LR, "decay_all": True, "offset_weight": 1.0}, {}),
    ("+decay_groups", {"lr": LOW_LR, "offset_weight": 1.0}, {}),
    ("+lr3e-3", {"lr": BASE_LR, "offset_weight": 1.0}, {}),
    ("+curriculum", {"lr": BASE_LR, "offset_weight": 30.0}, {}),
]
EXTRA: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("lr1e-2", {"lr": 1e-2, "offset_weight": 1.0}, {}),
    ("curriculum-encoder_norm", {"lr": BASE_LR, "offset_weight": 30.0}, {"encoder_norm": False}),
    ("curriculum_w10", {"lr": BASE_LR, "offset_weight": 10.0}, {}),
    ("curriculum_w100", {"lr": BASE_LR, "offset_weight": 100.0}, {}),
    ("curriculum_w300", {"lr": BASE_LR, "offset_weight": 300.0}, {}),
]
VARIANTS = {name: (kw, mo) for name, kw, mo in LADDER + EXTRA}
#: Variants that change nothing for a model (skipped for it): the task MoE exists only in SCADF-MoE.
SAME_AS = {("transfusion", "+task_prenorm"), ("softmoe", "+task_prenorm")}


def config(scene: str, model: str, variant: str, seed: int, steps: int, val_points: float = 0.0) -> TrainConfig:
    kw, overrides = VARIANTS[variant]
    epochs = 10
    base = TrainConfig(data_path=f"data/{scene}.nc", model=model, epochs=epochs, max_steps_per_epoch=steps // epochs,
                       train_per_point=1.0, test_per_point=1.0, seed=seed, device="cpu",
                       val_points_fraction=val_points)
    return replace(base, **kw, model_overrides=overrides)


def run_name(scene: str, model: str, variant: str, seed: int, steps: int, val_points: float = 0.0) -> str:
    tag = f"_val{val_points:g}" if val_points else ""
    return f"{scene}_{model}_{variant.lstrip('+')}_{steps}{tag}_s{seed}"


def one(args: tuple[str, str, str, int, int, str, bool, float]) -> dict[str, Any] | None:
    """Train (or reuse) one run and return its row of scores (None for an unfinished run with ``collect``)."""
    scene, model, variant, seed, steps, work, collect, val_points = args
    torch.set_num_threads(1)
    out = Path(work) / run_name(scene, model, variant, seed, steps, val_points)
    cfg = config(scene, model, variant, seed, steps, val_points)
    if not (out / "metrics.csv").exists():
        if collect:
            return None
        train(cfg, out, progress=False)
    m = pd.read_csv(out / "metrics.csv", dtype={"band": str})
    m = m[m.band == "all"].set_index("group")
    hist = pd.read_csv(out / "history.csv")
    scale_m2 = torch.load(out / "best.pt", weights_only=True)["normalizer"]["xy_scale"] ** 2  # normalised -> m^2
    return {"scene": scene, "model": model, "variant": variant, "seed": seed, "steps": steps,
            "val_points_fraction": val_points, "best_val_points_m2": float(hist.val_mse_points.min()) * scale_m2,
            "held_out_m2": m.at["held-out", "mse_m2"], "held_out_los_m2": m.at["held-out-LOS", "mse_m2"],
            "held_out_nlos_m2": m.at["held-out-NLOS", "mse_m2"], "overall_m2": m.at["overall", "mse_m2"],
            "centroid_head_m2": m.at["centroid", "mse_m2"], "centroid_of_points_m2": m.at["centroid-of-points", "mse_m2"],
            "los_slope": m.at["LOS", "offset_slope"], "held_out_los_slope": m.at["held-out-LOS", "offset_slope"],
            "overall_centroid_term_m2": m.at["overall", "centroid_term_m2"],
            "overall_offset_term_m2": m.at["overall", "offset_term_m2"],
            "overall_offset_floor_m2": m.at["overall", "offset_floor_m2"],
            "held_out_centroid_term_m2": m.at["held-out", "centroid_term_m2"],
            "held_out_offset_term_m2": m.at["held-out", "offset_term_m2"],
            "held_out_offset_floor_m2": m.at["held-out", "offset_floor_m2"],
            "train_s": float(hist.elapsed_s.iloc[-1])}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds per (scene, model, variant), in ladder order."""
    cols = [c for c in rows.columns if c.endswith("_m2") or c.endswith("slope")]
    order = {v: i for i, v in enumerate(VARIANTS)}
    g = rows.groupby(["model", "scene", "variant"], sort=False)
    out = g[cols].mean().join(g.seed.nunique().rename("seeds")).reset_index()
    return out.sort_values(["model", "scene", "variant"], key=lambda s: s.map(order) if s.name == "variant" else s)


def markdown(summ: pd.DataFrame, steps: int) -> str:
    show = ["model", "scene", "variant", "seeds", "best_val_points_m2", "held_out_m2", "held_out_los_m2", "held_out_nlos_m2",
            "centroid_head_m2", "centroid_of_points_m2", "overall_centroid_term_m2", "overall_offset_term_m2",
            "overall_offset_floor_m2", "los_slope"]
    t = summ[show].copy()
    head = ("| " + " | ".join(show) + " |\n|" + "---|" * len(show) + "\n")
    body = "".join("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |\n"
                   for r in t.itertuples(index=False))
    return (f"**Learning-fix ladder** ({steps} steps at batch 64, cpu-preset split; test set, MSE in m², means over "
            f"seeds; `best_val_points_m2`: the best validation point MSE, the selection set's (held-out-style "
            f"validation points where the runs have them, else seen-position validation rows); `overall` = "
            f"centroid term + offset term exactly; offset floor = the centroid floor; "
            f"machine: {machine()['cpu']}, {machine()['cores']} cores, torch {torch.__version__}, 1 thread per run)\n\n"
            + head + body)


def figure(summ: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = list(summ.groupby(["model", "scene"], sort=False))
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7), squeeze=False)
    for j, ((model, scene), g) in enumerate(panels):
        x = range(len(g))
        ax = axes[0, j]
        ax.bar(x, g.overall_centroid_term_m2, label="centroid term")
        ax.bar(x, g.overall_offset_term_m2, bottom=g.overall_centroid_term_m2, label="offset term")
        ax.axhline(float(g.overall_offset_floor_m2.iloc[0]), color="k", ls="--", lw=1, label="centroid floor")
        ax.set_title(f"{model}, {scene}")
        ax.set_ylabel("test point MSE (m²), all points")
        ax.set_xticks(list(x), g.variant, rotation=60, ha="right", fontsize=8)
        ax.legend(fontsize=7)
        ax = axes[1, j]
        ax.plot(list(x), g.los_slope, "o-", label="LOS offset slope")
        ax.plot(list(x), g.held_out_los_m2, "s-", label="held-out LOS MSE (m²)")
        ax.set_ylim(0, max(1.5, float(g.held_out_los_m2.max()) * 1.1))
        ax.set_ylabel("slope (1: points resolved) / MSE (m²)")
        ax.set_xticks(list(x), g.variant, rotation=60, ha="right", fontsize=8)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["munich", "etoile"])
    ap.add_argument("--models", nargs="+", default=["transfusion", "scadf"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--work", default="runs/bench_learning")
    ap.add_argument("--name", default="learning", help="output name under bench/results/")
    ap.add_argument("--collect", action="store_true", help="train nothing: tabulate the finished runs only")
    ap.add_argument("--val-points-fraction", type=float, default=0.0,
                    help="held-out-style validation points per cluster (0: the study's split, seen validation)")
    a = ap.parse_args(argv)
    todo = [(s, m, v, seed, a.steps, a.work, a.collect, a.val_points_fraction) for m in a.models for s in a.scenes for seed in a.seeds
            for v in a.variants if (m, v) not in SAME_AS]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for i, row in enumerate(pool.map(one, todo), 1):
            if row is None:
                continue
            rows.append(row)
            print(f"[{i}/{len(todo)}] {row['model']} {row['scene']} {row['variant']} s{row['seed']}: "
                  f"held-out {row['held_out_m2']:.2f} m², LOS slope {row['los_slope']:.2f}", flush=True)
    table = pd.DataFrame(rows)
    out = BENCH_DIR / "results"
    with atomic_path(out / f"{a.name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    summ = summary(table)
    with atomic_path(out / f"{a.name}.md") as tmp:
        Path(tmp).write_text(markdown(summ, a.steps))
    figure(summ, out / f"{a.name}.png")
    print(markdown(summ, a.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
