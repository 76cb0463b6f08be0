"""Checkpoints: one run's weights, configurations, normaliser and history in one file, saved
atomically and loaded safely (``weights_only``); what the trainer writes and the Localiser, the
routing inspector and the experiment driver read, without the training engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from scadf_lib.fileio import atomic_path, project_path
from scadf_lib.models import ModelConfig, build_model
from scadf_lib.presets import REFERENCE_SET
from scadf_lib.trajectories import Normalizer


#: The layout of the checkpoints :func:`checkpoint_state` writes (``format_version`` in the file; files
#: without the key have the same layout, version 1). :mod:`scadf_lib.localise` refuses other versions.
CHECKPOINT_FORMAT = 1


def is_reference_set(results: str | os.PathLike[str]) -> bool:
    """``results`` is the project's reference result set, ``results/<REFERENCE_SET>``."""
    return Path(results).resolve() == project_path(f"results/{REFERENCE_SET}").resolve()


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
