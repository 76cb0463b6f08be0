"""Checkpoints: one run's weights, configurations, normaliser and history in one file, saved
atomically and loaded safely (``weights_only``); what the trainer writes and the Localiser, the
routing inspector and the experiment driver read, without the training engine. This module is the
one owner of the format: the names of a run folder's files, the keys, the slim copy that ships, and what a reader needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from scadf_lib.fileio import atomic_path, project_path
from scadf_lib.models import ModelConfig, build_model
from scadf_lib.presets import REFERENCE_SET
from scadf_lib.schema import KNOWN_BANDS_GHZ
from scadf_lib.trajectories import Normalizer, regime_bands


#: The layout of the checkpoints :func:`checkpoint_state` writes (``format_version`` in the file; files
#: without the key have the same layout, version 1). :mod:`scadf_lib.localise` refuses other versions.
CHECKPOINT_FORMAT = 1

#: A run folder's checkpoints: the last finished epoch (for resuming) and the lowest validation error.
LAST = "last.pt"
BEST = "best.pt"

#: The other files of a run folder: what training writes (its settings and split, its test metrics,
#: its learning curve, its per-point errors) and the driver's record of the finished run.
RUN_CONFIG = "config.json"
RUN_METRICS = "metrics.csv"
RUN_HISTORY = "history.csv"
RUN_POINT_ERRORS = "point_errors.csv"
RUN_INFO = "run.json"

#: Keys every checkpoint holds, and so every reader may rely on.
REQUIRED_KEYS = ("model", "model_config", "normalizer", "train_config")

#: What the slim copy a result set ships (``results/**/models/<name>.pt``) keeps: no optimizer state.
SHIPPED_KEYS = ("format_version", "model", "model_config", "normalizer", "train_config", "history",
                "data_version", "bands_ghz")


def checkpoint_state(model: nn.Module, optimizer_state: dict[str, Any], epoch: int, best_val: float,
                     history: list[dict[str, Any]], cfg: Any, mcfg: ModelConfig, norm: Normalizer,
                     rng: dict[str, Any], data_version: int = 1,
                     bands_ghz: tuple[float, ...] = ()) -> dict[str, Any]:
    """What ``last.pt`` / ``best.pt`` hold: everything a resume or an evaluation needs (``cfg``: the
    run's :class:`~scadf_lib.config.TrainConfig`; ``rng``: the random number generators' states), the
    data version of the file trained on (absent in checkpoints from before version 2: they are
    version 1) and the bands (GHz) the run trained and was tested on (absent before declared bands
    could be trained on: :func:`checkpoint_bands` derives them)."""
    return {"format_version": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": optimizer_state,
            "epoch": epoch, "best_val": best_val, "data_version": data_version,
            "bands_ghz": [float(b) for b in bands_ghz],
            "history": history, "train_config": json.loads(json.dumps(cfg.to_dict())), "model_config": mcfg.to_dict(),
            "normalizer": norm.state(), **rng}


def slim_state(state: dict[str, Any]) -> dict[str, Any]:
    """The copy of a checkpoint that ships: :data:`SHIPPED_KEYS` only."""
    return {k: state[k] for k in SHIPPED_KEYS if k in state}


def checkpoint_problem(state: Any) -> str | None:
    """Why a loaded file cannot be read as a checkpoint of this workbook, or None."""
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        have = sorted(state) if isinstance(state, dict) else type(state).__name__
        return (f"is not a workbook checkpoint (it holds {have}; a checkpoint holds {list(REQUIRED_KEYS)}): pass a "
                f"{BEST} of a training run or a file from results/models/")
    version = state.get("format_version", 1)
    if version != CHECKPOINT_FORMAT:
        return (f"has checkpoint format {version}, this workbook reads format {CHECKPOINT_FORMAT}: load it with the "
                f"workbook version that wrote it, or retrain")
    return None


def checkpoint_bands(state: dict[str, Any]) -> tuple[float, ...]:
    """The bands (GHz) a run trained or was tested on: those its checkpoint records or, in a
    checkpoint from before they were recorded (the paper's bands only), every band of the paper for
    Mix, 2.6 + 28 GHz (trained) and 6 GHz (tested) for OOD, or the one band of a single-band run."""
    if state.get("bands_ghz"):
        return tuple(float(b) for b in state["bands_ghz"])
    train_config = state["train_config"]
    band = str(train_config.get("band", "mix"))
    if band != "mix":
        return (float(band),)
    train, test = regime_bands(train_config.get("regime", "mix"), KNOWN_BANDS_GHZ)
    return tuple(sorted(set(train) | set(test)))


def is_reference_set(results: str | os.PathLike[str]) -> bool:
    """``results`` is the project's reference result set, ``results/<REFERENCE_SET>``."""
    return Path(results).resolve() == project_path(f"results/{REFERENCE_SET}").resolve()


def inspector_name(scene: str) -> str:
    """The file name (without ``.pt``) of a scene's SCADF-MoE seed-0 Mix weights in ``results/models/``:
    what the routing inspector, the track study and notebook 03's reference read."""
    return f"{scene}_scadf"


def committed_model_folders(results: str | os.PathLike[str]) -> list[Path]:
    """Where a result set's committed checkpoints are looked for, first match wins: ``<results>/models``
    and, for the reference set only, the project's ``results/models`` (the routing inspector's
    ``<scene>_scadf.pt``, which stands for SCADF-MoE seed 0 of the reference set)."""
    return [Path(results) / "models"] + ([project_path("results/models")] if is_reference_set(results) else [])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: no code is executed)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint '{p}' does not exist; train first (scadf_lib.training)")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncation, foreign objects
        raise ValueError(f"checkpoint '{p}' cannot be loaded safely ({type(exc).__name__}: {exc}); "
                         f"it is corrupt or holds objects other than weights") from exc


def model_from_checkpoint(state: dict[str, Any], expected: ModelConfig | None = None) -> tuple[nn.Module, Normalizer]:
    """Rebuild the model and normaliser stored in a checkpoint; clear error on a config mismatch."""
    cfg = ModelConfig(**state["model_config"])
    if expected is not None and expected != cfg:
        diff = {k: (v, getattr(expected, k)) for k, v in cfg.to_dict().items() if getattr(expected, k) != v}
        raise ValueError(f"checkpoint was trained with another model configuration (checkpoint, expected): {diff}")
    model = build_model(cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint weights do not fit model '{cfg.name}': {exc}") from exc
    return model, Normalizer.from_state(state["normalizer"])
