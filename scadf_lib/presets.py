"""Names and budgets of the experiment sweeps: scenes, studies, methods and presets (pure data).

Read by the driver (:mod:`scadf_lib.experiments`) and the report (:mod:`scadf_lib.report`), so that
the report reads result tables without importing the driver.
"""

from __future__ import annotations

from typing import Any

SCENES = ("munich", "etoile", "florence")
#: The studies of a preset that names none (the paper's evaluation and its checks) ...
#: The classical anchors every preset's ``anchors`` study scores (:mod:`scadf_lib.anchors`).
ANCHORS = ("geometric", "wknn", "wknn_cfr", "hybrid")

STUDIES = ("main", "anchors", "spatial", "blocks", "ablation", "sensitivity", "budget", "degradation")
#: ... and every study the driver knows; a preset trains the ones it names (``studies``).
ALL_STUDIES = STUDIES + ("measured", "density")
#: The paper's baselines, then SCADF-MoE (``scadf_lib.models.REGISTRY`` names; a test checks they agree).
METHODS = ("concat", "fullcon", "transfusion", "softmoe", "scadf")
#: The paper's ablations (Fig. 4) besides L = 1 (the ``spatial`` study): ``scadf_lib.models.REGISTRY`` names.
ABLATIONS = ("scadf_no_routing", "scadf_single_expert", "scadf_no_mmd", "scadf_no_task_emb")
#: The result set REPORT.md, the README and notebooks 04-08 read (``results/flat/``).
REFERENCE_SET = "flat"
#: The data version the reference set and the shipped models were trained on, and its folder
#: (``python -m scadf_lib.dataversions restore 1`` writes it from git history; see
#: :mod:`scadf_lib.dataversions`). New presets train on the current version in ``data/``.
REFERENCE_DATA_VERSION, REFERENCE_DATA_DIR = 1, "data/v1"
CURRENT_DATA_DIR = "data"


def preset_data_dir(preset: str) -> str:
    """The data folder a preset trains on: the reference set's version for it, ``data/`` otherwise."""
    return REFERENCE_DATA_DIR if preset == REFERENCE_SET else CURRENT_DATA_DIR

#: Presets: what a sweep trains (pure data). Keys the driver reads: ``epochs`` (the schedule's span),
#: ``train_per_point`` / ``test_per_point`` (trajectories per point per epoch), ``seeds``, the
#: schedule (``decay_fraction``, ``min_lr_fraction``, ``offset_anneal_fraction``), the stopping rule
#: (``stop_min_gain``, ``stop_patience``), ``epoch_factor`` (per-method span multiples),
#: ``max_epoch_factor`` (the floor is held up to this multiple of ``epochs``), the cells (``studies``,
#: ``main_scenes``, ``main_regimes``, ``ood_scenes``, ``spatial_scenes``, ``inspector_scenes`` with
#: ``scene_methods``) and the study grids (the unsurveyed study's: ``block_m``, ``block_anchors``,
#: ``density_methods``, ``density_seeds``, ``surveys`` as (name, grid step, random share)). Measurements behind the
#: choices: ``bench/README.md``.
PRESETS: dict[str, dict[str, Any]] = {
    # The reference set: every run trained until its validation curve is flat, or to 240 epochs.
    # Concat and FullCon get longer schedules (x6, x2) because their curves were still falling at 40.
    REFERENCE_SET: {
        "epochs": 40, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0, 1, 2),
        "decay_fraction": 0.6, "min_lr_fraction": 0.01, "offset_anneal_fraction": 0.5,
        "stop_min_gain": 0.02, "stop_patience": 5, "epoch_factor": {"concat": 6, "fullcon": 2},
        "max_epoch_factor": 6, "score_corrupted": True, "inspector_scenes": ("etoile", "florence"),
        "scene_methods": ("scadf", "softmoe"),
        "budget_epochs": (80,), "budget_seeds": (0,), "budget_methods": ("softmoe", "scadf"),
        "budget_extra": (("concat", 80, (0, 1, 2)),),
        "main_scenes": ("munich", "etoile", "florence"), "main_regimes": ("mix", "ood"),
        "ood_scenes": ("munich",), "spatial_scenes": ("munich",), "ablation_seeds": (0, 1, 2),
        "experts": (2, 16), "lambdas": (0.0, 1.0, 10.0), "lengths": (3,), "radii": (3.0,),
        "degradation_seeds": (0, 1, 2), "order": "priority",
        "studies": ("main", "anchors", "budget", "spatial", "ablation", "sensitivity", "degradation")},
    # The measured-input study (issue 43) on data version 2, munich Mix, the reference set's protocol:
    # every method with oracle and with measured inputs (default link budget), then SCADF-MoE and
    # SoftMoE, seed 0, at other transmit powers (dB against the default 23 dBm) and timing offsets (ns).
    "measured": {
        "epochs": 40, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0, 1, 2),
        "decay_fraction": 0.6, "min_lr_fraction": 0.01, "offset_anneal_fraction": 0.5,
        "stop_min_gain": 0.02, "stop_patience": 5, "epoch_factor": {"concat": 6, "fullcon": 2},
        "max_epoch_factor": 6, "studies": ("measured",), "main_scenes": ("munich",),
        "sweep_methods": ("scadf", "softmoe"), "tx_power_offsets_db": (-20.0, -10.0, 10.0),
        "timing_offsets_ns": (0.0, 10.0, 50.0)},
    # Where nobody surveyed (issue 44), data version 2, munich Mix, oracle inputs, the measured preset's
    # protocol (its oracle point-split runs are the baseline): every method x 3 seeds on held-out 20 m
    # blocks with the anchors, then SCADF-MoE, SoftMoE and WKNN (seed 0) on thinned surveys.
    "unsurveyed": {
        "epochs": 40, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0, 1, 2),
        "decay_fraction": 0.6, "min_lr_fraction": 0.01, "offset_anneal_fraction": 0.5,
        "stop_min_gain": 0.02, "stop_patience": 5, "epoch_factor": {"concat": 6, "fullcon": 2},
        "max_epoch_factor": 6, "studies": ("blocks", "density"), "main_scenes": ("munich",),
        "block_m": 20.0, "block_anchors": ("geometric", "wknn", "wknn_cfr", "hybrid"),
        "density_methods": ("scadf", "softmoe"), "density_seeds": (0, 1),
        "surveys": (("full", 1, 1.0), ("grid2", 2, 1.0), ("random25", 1, 0.25), ("grid4", 4, 1.0),
                    ("random10", 1, 0.10))},
    # The paper's budget (40 epochs of 4 trajectories per point, 5 seeds), for a GPU (bench/gpu_run.sh).
    "paper": {"epochs": 40, "train_per_point": 4.0, "test_per_point": 4.0, "seeds": (0, 1, 2, 3, 4),
              "ablation_seeds": (0, 1, 2, 3, 4), "budget_epochs": (80,), "budget_seeds": (0, 1, 2)},
    # A few steps per run: tests and the demo's pipeline check; never reported as a result.
    "smoke": {"epochs": 1, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0,), "ablation_seeds": (0,),
              "max_steps_per_epoch": 3},
}


#: Training augmentation of the degradation study (:class:`scadf_lib.degradation.Augment`): the
#: probability of each of the 4 noise kinds and of each of the 4 modalities missing; a sample is
#: clean with probability 1 - 4 (p_noise + p_missing) = 0.4.
AUGMENT_P_NOISE, AUGMENT_P_MISSING = 0.1, 0.05

#: File suffix of the weights of a run retrained to rebuild a checkpoint never shipped, where it did not
#: reproduce the committed run (``scadf_lib.rebuild.rebuild_one``), and the label suffix the track
#: study gives them: another sample of the method, never passed off as the committed run.
RETRAINED, RETRAINED_LABEL = "_retrained", " (retrained)"
