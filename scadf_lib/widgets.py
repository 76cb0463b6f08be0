"""Routing inspector: what the soft-MoE routers of a trained SCADF-MoE do with each modality.

For a sample (trajectory at a band) and a layer (a soft-MoE block or the task MoE):

* dispatch weights D (tokens x slots) and combine weights C (tokens x slots) as heat maps;
* modality share of each expert's input: the part of the expert's dispatch weight that comes from
  CFR tokens versus numeric tokens (each slot's dispatch column sums to 1 over tokens);
* per-task expert usage in the task MoE: the combine weight each task's tokens give each expert;
* band shift: the CFR share of every expert, averaged over many samples, at each band;
* routing sharpness: normalised entropy of dispatch and combine weights per layer and band (1 =
  uniform, 0 = one token / one slot), from :func:`scadf_lib.models.routing_sharpness`.

:class:`RoutingInspector` renders these as static matplotlib figures (works headless, e.g. under
papermill / nbval) and, in JupyterLab, behind ipywidgets controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from scadf_lib.evaluation import modality_share
from scadf_lib.fileio import project_path
from scadf_lib.models import ModelOutput, SCADFMoE
from scadf_lib.schema import load_fingerprints
from scadf_lib.localise import Localiser
from scadf_lib.config import TrainConfig, split_of
from scadf_lib.trajectories import Features, Normalizer, TrajectoryDataset, build_features


@dataclass
class SceneModel:
    """A trained SCADF-MoE with the features and test trajectories of its scene."""

    scene: str
    model: SCADFMoE
    norm: Normalizer
    feats: Features
    dataset: TrajectoryDataset  # test trajectories at every band
    train_config: dict[str, Any] | None = None  # the run's settings (inputs, link budget)
    data: Any = None  # the scene's fingerprints (xarray Dataset)
    snr_db: np.ndarray | None = None  # (B, N) measurement SNR, computed on first use (plot_share_vs_snr)


def load_scene_model(checkpoint: str, data_path: str | None = None, max_trajectories: int = 400) -> SceneModel:
    """Rebuild the model of a checkpoint and the (same, seeded) test split of its scene; ``data_path``
    defaults to the fingerprint file it was trained on (:meth:`Localiser.training_data_path`)."""
    loc = Localiser.from_checkpoint(project_path(checkpoint))
    if not isinstance(loc.model, SCADFMoE):
        raise ValueError(f"the routing inspector needs a SCADF-MoE checkpoint, got {type(loc.model).__name__}")
    data = load_fingerprints(project_path(data_path) if data_path is not None else loc.training_data_path())
    loc.check_data_version(data)
    feats = build_features(data, loc.train_config.get("inputs", "oracle"), loc.train_config.get("measurement", {}))
    split = split_of(TrainConfig(**loc.train_config), feats.xy)
    ds = TrajectoryDataset(feats, split.test_traj[:max_trajectories], list(range(len(feats.bands))), loc.norm)
    return SceneModel(str(loc.train_config["data_path"]).split("/")[-1].removesuffix(".nc"), loc.model, loc.norm,
                      feats, ds, dict(loc.train_config), data)


def load_scene_models(results_dir: str | Path = "results", scenes: tuple[str, ...] | None = None,
                      inputs: str = "oracle") -> dict[str, SceneModel]:
    """Every scene's SCADF-MoE seed-0 Mix model that ``<results_dir>/models/`` holds
    (:func:`scadf_lib.checkpoints.inspector_name`; with ``inputs='measured'``, the measured-input
    study's run on measured inputs at the default link budget), on the data version it was trained on;
    an error naming the command that writes them where there is none."""
    from scadf_lib.checkpoints import inspector_name
    from scadf_lib.runnames import measured_run
    from scadf_lib.presets import SCENES
    folder = project_path(results_dir) / "models"
    models = {}
    for scene in scenes or SCENES:
        name = inspector_name(scene) if inputs == "oracle" else measured_run(scene, "scadf", inputs, 0)
        ckpt = folder / f"{name}.pt"
        if ckpt.exists():
            models[scene] = load_scene_model(str(ckpt))
    if not models:
        raise FileNotFoundError(f"no SCADF-MoE checkpoint on {inputs} inputs in {folder}; run `python -m "
                                "scadf_lib.experiments` (the reference set ships the oracle ones, `--preset measured` the "
                                "measured ones)")
    return models


def layers(sm: SceneModel) -> list[str]:
    return [f"block{i}" for i in range(sm.model.cfg.n_blocks)] + ["task"]


@torch.no_grad()
def output_of(sm: SceneModel, sample_idx: np.ndarray) -> ModelOutput:
    """The model's output (eval mode: routing weights and sharpness metrics) for some test samples."""
    b = sm.dataset.batch(np.asarray(sample_idx))
    return sm.model(b["numeric"], b["cfr"])


def routing_of(sm: SceneModel, sample_idx: np.ndarray) -> dict[str, torch.Tensor]:
    return output_of(sm, sample_idx).routing


def sample_index(sm: SceneModel, trajectory: int, band: float) -> int:
    """Index into the dataset of one trajectory at one band (GHz)."""
    return trajectory * len(sm.dataset.band_idx) + sm.feats.bands.index(band)


def expert_usage(combine: torch.Tensor, n_experts: int) -> np.ndarray:
    """Mean combine weight each expert receives: (..., m, S) -> (..., n_experts), rows sum to 1."""
    return combine.unflatten(-1, (n_experts, -1)).sum(-1).mean(-2).numpy()


def band_shift(sm: SceneModel, layer: str, max_trajectories: int = 200) -> pd.DataFrame:
    """CFR share of each expert averaged over test trajectories, per band (tidy table)."""
    rows = []
    n_traj = min(max_trajectories, len(sm.dataset.trajectories))
    for band in sm.feats.bands:
        idx = np.array([sample_index(sm, t, band) for t in range(n_traj)])
        r = routing_of(sm, idx)
        d = r[f"{layer}_dispatch"]
        share = modality_share(d if d.dim() == 3 else d.mean(1), sm.model.tokenizer.modality_of_token,
                               sm.model.cfg.n_experts).mean(0)
        rows += [{"band (GHz)": f"{band:g}", "expert": e, "cfr_share": s} for e, s in enumerate(share)]
    return pd.DataFrame(rows)


def sharpness_table(sm: SceneModel, max_trajectories: int = 200) -> pd.DataFrame:
    """Routing sharpness of every layer at every band, over test trajectories (tidy table): the
    model's own eval-mode metrics (normalised entropies and mean largest weights)."""
    rows = []
    n_traj = min(max_trajectories, len(sm.dataset.trajectories))
    for band in sm.feats.bands:
        metrics = output_of(sm, np.array([sample_index(sm, t, band) for t in range(n_traj)])).metrics
        for layer in layers(sm):
            rows.append({"band (GHz)": f"{band:g}", "layer": layer,
                         **{k.removeprefix(f"{layer}_"): float(v) for k, v in metrics.items() if k.startswith(f"{layer}_")}})
    return pd.DataFrame(rows)


def plot_sharpness(sm: SceneModel) -> plt.Figure:
    df = sharpness_table(sm).melt(id_vars=["band (GHz)", "layer"], value_vars=["dispatch_entropy", "combine_entropy"],
                                  var_name="weights", value_name="normalised entropy")
    grid = sns.catplot(df, x="layer", y="normalised entropy", hue="band (GHz)", col="weights", kind="bar",
                       height=3.4, aspect=1.3)
    grid.set(ylim=(0, 1.05))
    grid.set_axis_labels("layer", "entropy / log(count)  (1 = uniform)")
    grid.figure.suptitle(f"{sm.scene}: routing sharpness per layer and band", y=1.04)
    return grid.figure


def task_name(task: int, trajectory_length: int) -> str:
    """'point 1'..'point L' for the trajectory points' tasks 0..L-1, 'centroid' for task L."""
    return "centroid" if task == trajectory_length else f"point {task + 1}"


def plot_sample(sm: SceneModel, trajectory: int, band: float, layer: str, task: int = 0) -> plt.Figure:
    """Dispatch / combine heat maps, modality share per expert and per-task expert usage of one sample.
    ``task``: 0..L-1 for the trajectory points, L for the centroid (task MoE only)."""
    r = routing_of(sm, np.array([sample_index(sm, trajectory, band)]))
    d, c = r[f"{layer}_dispatch"][0], r[f"{layer}_combine"][0]
    n = sm.model.cfg.n_experts
    is_task = d.dim() == 3
    d_show, c_show = (d[task], c[task]) if is_task else (d, c)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    axes = axes.ravel()
    m = d_show.shape[0]
    half = m // 2
    for ax, mat, name in ((axes[0], d_show, "dispatch (softmax over tokens)"),
                          (axes[1], c_show, "combine (softmax over slots)")):
        sns.heatmap(mat.numpy(), ax=ax, cmap="magma", cbar_kws={"label": "weight"}, yticklabels=10)
        ax.axhline(half, color="cyan", lw=1)
        ax.set_xlabel("slot (expert x slot)")
        ax.set_ylabel(f"token (0-{half - 1} CFR, {half}-{m - 1} numeric)")
        ax.set_title(name + (f", task: {task_name(task, sm.model.cfg.trajectory_length)}" if is_task else ""))
    share = modality_share(d, sm.model.tokenizer.modality_of_token, n)
    if is_task:
        for t in range(share.shape[0]):
            axes[2].plot(share[t], "o-", label=task_name(t, share.shape[0] - 1))
        axes[2].legend(fontsize=7)
    else:
        axes[2].bar(np.arange(n), share, color="tab:purple")
    axes[2].axhline(0.5, color="gray", ls="--")
    axes[2].set_xlabel("expert")
    axes[2].set_ylabel("CFR share of the expert's input")
    axes[2].set_ylim(0, 1)
    usage = expert_usage(c, n)
    if is_task:
        sns.heatmap(usage, ax=axes[3], cmap="viridis", cbar_kws={"label": "mean combine weight"},
                    yticklabels=[task_name(t, usage.shape[0] - 1) for t in range(usage.shape[0])])
        axes[3].tick_params(axis="y", labelrotation=0)  # task names read across, one per row
        axes[3].set_title("per-task expert usage")
    else:
        axes[3].bar(np.arange(n), usage, color="tab:green")
        axes[3].set_ylabel("mean combine weight")
        axes[3].set_title("expert usage")
    axes[3].set_xlabel("expert")
    fig.suptitle(f"{sm.scene}, {band:g} GHz, test trajectory {trajectory}, layer {layer}")
    return fig


def plot_share_vs_snr(sm: SceneModel, layer: str = "task") -> plt.Figure | None:
    """Each test sample's CFR share of ``layer``'s experts against its measurement SNR (dB, mean over its
    points; the run's link budget, the default one for an oracle-input model), one colour per band,
    NLOS-heavy samples hollow: does the router lean on the CFR where the numeric estimates are poor?
    None for data that store no paths (data version 1: no measurement, so no SNR)."""
    from scadf_lib.config import TrainConfig
    from scadf_lib.schema import has_paths
    if not has_paths(sm.data):
        return None
    from scadf_lib.routing_quality import cfr_shares, sample_quality, snr_per_band_ue
    cfg = TrainConfig(**sm.train_config)
    if sm.snr_db is None:
        sm.snr_db = snr_per_band_ue(cfg, sm.data)
    q = sample_quality(sm.feats, sm.dataset, sm.snr_db)
    share = cfr_shares(sm.model, sm.dataset)[layer]
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for band, g in q.groupby("band_ghz"):
        nlos = g.nlos_share > 0.5
        line = ax.scatter(g.snr_db[~nlos], share[g.index[~nlos]], s=8, alpha=0.5, label=f"{band:g} GHz")
        ax.scatter(g.snr_db[nlos], share[g.index[nlos]], s=8, alpha=0.5, facecolors="none",
                   edgecolors=line.get_facecolor()[0])
    ax.set_xlabel("measurement SNR per element and subcarrier (dB, mean over the trajectory)")
    ax.set_ylabel(f"CFR share of the {layer} experts' input")
    ax.set_title(f"{sm.scene}, {cfg.inputs} inputs: routing against SNR (hollow: mostly NLOS)")
    ax.legend(fontsize=8, markerscale=2)
    return fig


def plot_band_shift(sm: SceneModel, layer: str) -> plt.Figure:
    df = band_shift(sm, layer)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.barplot(df, x="expert", y="cfr_share", hue="band (GHz)", ax=ax)
    ax.axhline(0.5, color="gray", ls="--")
    ax.set_ylabel("CFR share of the expert's input")
    ax.set_title(f"{sm.scene}, layer {layer}: modality share per expert and band")
    return fig


def _show(fig: plt.Figure | None) -> None:
    """Display a figure once (in a notebook or a widget output) and release it; None is skipped."""
    if fig is None:
        return
    from IPython.display import display
    display(fig)
    plt.close(fig)


class RoutingInspector:
    """Pick scene, band, sample and layer with ipywidgets; falls back to static figures."""

    def __init__(self, models: dict[str, SceneModel]):
        if not models:
            raise ValueError("no trained SCADF-MoE checkpoints given; run the experiments first")
        self.models = models

    def show_static(self, scene: str, band: float, trajectory: int = 0, layer: str = "task", task: int = 0) -> None:
        sm = self.models[scene]
        _show(plot_sample(sm, trajectory, band, layer, task))
        _show(plot_band_shift(sm, layer))
        _show(plot_sharpness(sm))
        _show(plot_share_vs_snr(sm, layer))

    def widget(self, scene: str | None = None, band: float | None = None, trajectory: int = 0, layer: str = "task",
               task: int = 0) -> Any:
        """Live controls, starting at the given scene, band (GHz), trajectory, layer and task (the
        notebook's parameters)."""
        import ipywidgets as w
        start = scene if scene in self.models else next(iter(self.models))
        first = self.models[start]
        bands = list(first.feats.bands)
        L = first.model.cfg.trajectory_length
        scene = w.Dropdown(options=list(self.models), value=start, description="scene")
        band = w.Dropdown(options=[(f"{b:g} GHz", b) for b in bands], value=band if band in bands else bands[0],
                          description="band")
        sample = w.IntSlider(trajectory, 0, len(first.dataset.trajectories) - 1, description="trajectory")
        layer = w.Dropdown(options=layers(first), value=layer, description="layer")
        task = w.Dropdown(options=[(task_name(t, L), t) for t in range(L + 1)], value=task, description="task")

        def draw(scene: str, band: float, trajectory: int, layer: str, task: int) -> None:
            sm = self.models[scene]
            _show(plot_sample(sm, min(trajectory, len(sm.dataset.trajectories) - 1), band, layer, task))

        def draw_bands(scene: str, layer: str) -> None:  # the notebook's question: per band, not per sample
            _show(plot_band_shift(self.models[scene], layer))
            _show(plot_sharpness(self.models[scene]))
            _show(plot_share_vs_snr(self.models[scene], layer))

        out = w.interactive_output(draw, {"scene": scene, "band": band, "trajectory": sample, "layer": layer,
                                          "task": task})
        per_band = w.interactive_output(draw_bands, {"scene": scene, "layer": layer})
        return w.VBox([w.HBox([scene, band, layer]), w.HBox([sample, task]), out, per_band])
