"""A training run's configuration, split, bands, learning-rate schedule and stopping rule: pure
Python and numpy, no torch, so that the anchors, diagnostics, widgets and the report read a run's
settings without importing the training engine (:mod:`scadf_lib.training`).

Units: distances in m, bands in GHz, learning rate per optimiser step.
"""

from __future__ import annotations

from pathlib import Path

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scadf_lib.fileio import project_path
from scadf_lib.presets import ABLATIONS, METHODS
from scadf_lib.schema import file_bands, parse_band

if TYPE_CHECKING:  # the split's module builds torch Datasets too: imported where a split is made
    from scadf_lib.trajectories import SpatialSplit

#: Every model name the registry (``scadf_lib.models.REGISTRY``) builds; a test checks they agree.
MODEL_NAMES = (*METHODS, *ABLATIONS)


#: ``torch.compile`` modes a run may ask for: "reduce-overhead" records the compiled forward and
#: backward as CUDA graphs (one launch per graph instead of one per kernel; ignored on a CPU).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


#: The paper's batch size, and the learning rate at that batch: the reference of :func:`scaled_lr`.
#: BASE_LR is the project's choice, not the paper's (its value is stripped from our text): 1e-3 was the
#: first guess; 3e-3 was measured better at equal steps with the zero-initialised residual branches
#: (``bench/results/learning.md``).
PAPER_BATCH, BASE_LR = 64, 3e-3


def scaled_lr(batch_size: int, base_lr: float = BASE_LR, base_batch: int = PAPER_BATCH) -> float:
    """Learning rate for ``batch_size`` by the square-root rule (Adam-type optimisers):
    lr = base_lr * sqrt(batch_size / base_batch). ``bench/bench_batch_scaling.py`` checks, with learning
    curves side by side, that a larger batch at this rate reaches the paper batch's accuracy."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return base_lr * math.sqrt(batch_size / base_batch)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Distances in metres, learning rate per step."""

    data_path: str = "data/munich.nc"
    model: str = "scadf"
    regime: str = "mix"  # mix | ood
    band: str = "mix"  # 'mix' (the regime's bands) or one band in GHz (train and test on it; regime mix)
    epochs: int = 10
    batch_size: int = 64
    lr: float = BASE_LR
    weight_decay: float = 0.01
    decay_all: bool = False  # True: weight decay on every parameter; False: weight matrices only
    offset_weight: float = 100.0  # w0 of the offset curriculum, annealed to 1 (1: the paper's loss throughout)
    offset_anneal_fraction: float = 0.7  # w(t) reaches 1 at this fraction of the steps
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.05
    decay_fraction: float = 1.0  # the cosine reaches min_lr_fraction here and holds (the flat preset: 0.6)
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    compile: bool | str = False  # True / "default", or a torch.compile mode: "reduce-overhead" (CUDA graphs)
    trajectory_length: int = 5
    radius_m: float | None = None  # None: automatic radius
    min_median_size: int = 8
    min_cluster_size: int | None = None  # default from L; a noSpace (L=1) run passes the L=5 value (6)
    test_fraction: float = 0.2
    holdout: str = "points"  # points (paper: held-out points per cluster) | blocks (held-out map squares)
    block_m: float = 20.0  # side of a held-out block, m (holdout="blocks")
    #: a thinned site survey (scadf_lib.survey.thin_survey; holdout="points"): train on every
    #: survey_grid_step-th grid point in x and y, or on a random survey_share of the training points
    survey_grid_step: int = 1
    survey_share: float = 1.0
    augment: bool = False  # noise / modality-dropout augmentation with missing-modality flags (degradation)
    train_per_point: float = 4.0
    test_per_point: float = 4.0
    val_fraction: float = 0.1  # of training trajectories: validation on seen positions (monitored)
    val_points_fraction: float = 0.1  # of each cluster's points (blocks: validation blocks of this share), selects 'best'
    max_steps_per_epoch: int | None = None
    stop_min_gain: float | None = None  # stopping rule (:func:`should_stop`): None trains all ``epochs``
    stop_patience: int = 5  # epochs: the rule's shortest look-back window
    schedule_epochs: int | None = None  # epochs the lr schedule and curriculum span (None: ``epochs``); the floor holds after
    model_overrides: dict[str, Any] = field(default_factory=dict)
    #: the model inputs: "oracle" (the ray tracer's dominant path and CFR element 0) or "measured" (what
    #: the BS measures and estimates, scadf_lib.measured_inputs; needs data version 2), and the
    #: measurement's settings (scadf_lib.measure.MeasurementConfig fields; defaults where absent)
    inputs: str = "oracle"
    measurement: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; choose one of {sorted(MODEL_NAMES)}")
        if self.regime not in ("mix", "ood"):
            raise ValueError(f"unknown regime {self.regime!r}; choose 'mix' or 'ood'")
        if str(self.band) != "mix":  # one of the file's bands (a declared one too), or a number until the file exists
            parse_band(self.band, file_bands(project_path(self.data_path)))
            if self.regime != "mix":
                raise ValueError("a single band is a Mix-regime setting; use band='mix' with regime='ood'")
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 1 and lr > 0")
        if self.trajectory_length < 1:
            raise ValueError(f"trajectory_length must be >= 1, got {self.trajectory_length}")
        if self.holdout not in ("points", "blocks"):
            raise ValueError(f"unknown holdout {self.holdout!r}; choose 'points' (the paper's) or 'blocks'")
        if self.survey_grid_step != 1 or self.survey_share != 1.0:
            from scadf_lib.survey import check_survey
            check_survey(self.survey_grid_step, self.survey_share)
            if self.holdout != "points":
                raise ValueError("a thinned survey (survey_grid_step, survey_share) applies to holdout='points'")
        if self.offset_weight < 1 or not 0 < self.offset_anneal_fraction <= 1:
            raise ValueError(f"offset_weight must be >= 1 (1: the paper's loss) and offset_anneal_fraction in (0, 1], "
                             f"got {self.offset_weight} and {self.offset_anneal_fraction}")
        if not self.warmup_fraction < self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must be in (warmup_fraction, 1], got {self.decay_fraction}")
        if self.stop_min_gain is not None and not (0 < self.stop_min_gain < 1 and self.stop_patience >= 1):
            raise ValueError(f"stop_min_gain must be in (0, 1) (a relative gain, e.g. 0.02) and stop_patience >= 1 "
                             f"epochs, got {self.stop_min_gain} and {self.stop_patience}")
        if self.schedule_epochs is not None and not (isinstance(self.schedule_epochs, int)
                                                     and 1 <= self.schedule_epochs <= self.epochs):
            raise ValueError(f"schedule_epochs must be an integer in [1, epochs={self.epochs}] (None: the schedule spans "
                             f"all epochs), got {self.schedule_epochs!r}")
        if self.inputs == "measured":
            from scadf_lib.measure import MeasurementConfig
            MeasurementConfig(**self.measurement)  # an unknown or bad setting fails here, naming the fix
            if self.augment:
                raise ValueError("augment (the degradation study's corruptions of oracle inputs) does not apply to "
                                 "measured inputs: their noise, offsets and missing features are measured")
        elif self.inputs != "oracle":
            raise ValueError(f"unknown inputs {self.inputs!r}: choose 'oracle' (the ray tracer's values) or "
                             f"'measured' (what the BS estimates)")
        elif self.measurement:
            raise ValueError("measurement settings apply to inputs='measured' only")
        if self.compile not in (False, True, *COMPILE_MODES):
            raise ValueError(f"compile must be True, False or one of {COMPILE_MODES}, got {self.compile!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_bands(cfg: TrainConfig, available: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from scadf_lib.trajectories import regime_bands
    if str(cfg.band) != "mix":
        band = parse_band(cfg.band, available)
        return (band,), (band,)
    return regime_bands(cfg.regime, available)  # type: ignore[arg-type]


def run_name(cfg: TrainConfig) -> str:
    """A folder name that says what a run is: ``<scene>_<model>_<regime>_<band>_s<seed>`` (and
    ``_measured`` on measured inputs), the scene being the data file's stem."""
    return (f"{Path(cfg.data_path).stem}_{cfg.model}_{cfg.regime}_{cfg.band}_s{cfg.seed}"
            + ("_measured" if cfg.inputs == "measured" else ""))


def split_of(cfg: TrainConfig, xy: np.ndarray) -> SpatialSplit:
    """The (seeded, deterministic) split of a run: the one place that turns a TrainConfig's split
    settings into a :class:`SpatialSplit` of the positions ``xy`` (m), so training, the inspector
    and the report rebuild the same trajectories."""
    from scadf_lib.survey import survey_facts, thin_survey
    from scadf_lib.trajectories import spatial_split
    split = spatial_split(xy, radius_m=cfg.radius_m, min_median_size=cfg.min_median_size,
                          trajectory_length=cfg.trajectory_length, seed=cfg.seed, test_fraction=cfg.test_fraction,
                          train_per_point=cfg.train_per_point, test_per_point=cfg.test_per_point,
                          min_cluster_size=cfg.min_cluster_size, holdout=cfg.holdout, block_m=cfg.block_m,
                          val_fraction=cfg.val_points_fraction)
    split = thin_survey(split, xy, cfg.survey_grid_step, cfg.survey_share, cfg.seed)
    split.report.update(survey_facts(xy, split))
    return split


def offset_weight_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Weight w(t) of the offset term in the curriculum loss: w0 = ``offset_weight`` at step 0,
    linearly down to 1 at ``offset_anneal_fraction`` of the steps, then 1.

    The training loss is total + (w(t) - 1) * mse_offsets, where mse_offsets = mean_i |(p̂_i - mean p̂)
    - (p_i - c)|^2 (normalised units). Since MSE_points = |mean p̂ - c|^2 + mse_offsets exactly (both
    offset sets sum to zero over a trajectory), w(t) = 1 is the paper's loss: the curriculum only
    re-weights the within-trajectory part early on, where it carries ~1/1,240 of the target variance.
    Not in the paper: a training-procedure choice. w0 = 100 (the default)
    was chosen over 10 / 30 / 300 on held-out-style validation points (``bench/results/learning.md``)."""
    if cfg.offset_weight == 1.0:
        return 1.0
    end = max(1, int(cfg.offset_anneal_fraction * total_steps))
    return 1.0 + (cfg.offset_weight - 1.0) * max(0.0, 1.0 - step / end)


def schedule_steps(steps_per_epoch: int, cfg: TrainConfig) -> int:
    """The steps that :func:`lr_at` and :func:`offset_weight_at` span: ``schedule_epochs`` (default:
    ``epochs``) epochs. Past them the learning rate holds its floor and w = 1 until the stopping rule
    or the maximum budget ``epochs`` ends the run: more epochs at the floor change nothing before."""
    return steps_per_epoch * (cfg.schedule_epochs or cfg.epochs)


def decay_end_step(total_steps: int, cfg: TrainConfig) -> int:
    """The step from which :func:`lr_at` holds its floor, ``min_lr_fraction * lr``."""
    warmup = max(1, int(cfg.warmup_fraction * total_steps))
    return max(warmup + 1, int(cfg.decay_fraction * total_steps))


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr_fraction * lr``, reached at
    ``decay_fraction`` of the steps and held from there (1: the cosine spans the whole run)."""
    warmup = max(1, int(cfg.warmup_fraction * total_steps))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    decay_end = decay_end_step(total_steps, cfg)
    progress = min(1.0, (step - warmup) / max(1, decay_end - warmup))
    return cfg.lr * (cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


#: A run whose best validation error fell by less than this over the last quarter of its epochs
#: ended flat (:func:`late_gain`); runs.csv's ``flat`` column.
FLAT_GAIN = 0.02


def late_gain(val: Any, window: int | None = None) -> float:
    """Relative drop of the best validation error over the last ``window`` epochs (default: the
    last quarter, at least one): (best before the window - best overall) / best before. Near 0:
    the curve is flat at its end; NaN with fewer than two epochs."""
    v = np.asarray(val, dtype=float)
    if len(v) < 2:
        return float("nan")
    window = max(1, int(round(0.25 * len(v)))) if window is None else window
    cut = max(1, len(v) - window)
    before = float(np.min(v[:cut]))
    return (before - float(np.min(v))) / before if before > 0 else float("nan")


def first_stop_epoch(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The earliest epoch count after which the stopping rule may end a run: the offset curriculum
    has reached the paper's loss (w = 1), the learning rate has reached its floor (a curve that is
    flat while the lr is still falling is noise-limited, not finished: the decay's end usually still
    gains) and at least ``stop_patience`` epochs have passed. With ``decay_fraction`` = 1 the floor
    is the last step, so the rule never ends such a run early."""
    total = schedule_steps(steps_per_epoch, cfg)
    curriculum_end = 0 if cfg.offset_weight == 1.0 else int(cfg.offset_anneal_fraction * total)
    floor = decay_end_step(total, cfg)
    return max(cfg.stop_patience + 1, math.ceil((curriculum_end + 1) / steps_per_epoch),
               math.ceil(floor / steps_per_epoch))


def should_stop(val: Any, cfg: TrainConfig, steps_per_epoch: int) -> bool:
    """The stopping rule, after ``len(val)`` epochs of validation errors ``val``: stop when the best
    error has improved by less than ``stop_min_gain`` (relative) over the last max(``stop_patience``,
    a quarter of the epochs so far) epochs, once :func:`first_stop_epoch` has passed. The window of
    at least a quarter makes a stopped run flat in :func:`late_gain`'s sense. ``epochs`` stays
    the maximum budget, and the learning-rate schedule and curriculum run over it (stopping early
    cuts only the held floor, never the decay, where the rule has found the curve flat)."""
    n = len(val)
    if cfg.stop_min_gain is None or n < first_stop_epoch(cfg, steps_per_epoch) or n >= cfg.epochs:
        return False
    window = max(cfg.stop_patience, math.ceil(n / 4))
    return late_gain(val, window) < cfg.stop_min_gain


def centroid_floor(configs: dict[str, TrainConfig]) -> dict[str, float]:
    """Per scene: the MSE (m^2) of placing every test-trajectory point at its trajectory's true
    centroid, on the split of the run config given for that scene (rebuilt with
    :func:`split_of`; the split is deterministic). A model whose error is not well
    below it cannot be resolving single points."""
    from scadf_lib.schema import load_fingerprints
    out = {}
    for scene, cfg in configs.items():
        path = project_path(cfg.data_path)
        if not path.exists():
            continue
        ds = load_fingerprints(path)
        xy = np.stack([ds["x"].values, ds["y"].values], axis=1)
        pts = xy[split_of(cfg, xy).test_traj]
        out[scene] = float(((pts - pts.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean())
    return out
