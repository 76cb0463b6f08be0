"""Names and budgets of the experiment sweeps: scenes, studies, methods and presets (pure data).

Read by the driver (:mod:`scadf_lib.experiments`) and the report (:mod:`scadf_lib.report`), so that
the report reads result tables without importing the driver.
"""

from __future__ import annotations

from typing import Any

from scadf_lib.models import BASELINES

SCENES = ("munich", "etoile", "florence")
STUDIES = ("main", "anchors", "spatial", "blocks", "ablation", "sensitivity", "budget", "degradation")
METHODS = (*BASELINES, "scadf")

#: Presets: training budget per run. 'cpu' fits this project's 2-core CI-class machine in about an
#: hour with ``--jobs 2``: an "epoch" there is at most ``max_steps_per_epoch`` batches of 64, so
#: every model is under-trained (the budget study shows how far); 'paper' is for a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"epochs": 3, "max_steps_per_epoch": 100, "train_per_point": 1.0, "test_per_point": 1.0,
            "seeds": (0, 1, 2), "ablation_seeds": (0, 1), "block_seeds": (0,), "degradation_seeds": (0, 1, 2),
            "experts": (2, 16), "lambdas": (0.0, 1.0, 10.0, 100.0), "lengths": (3,), "radii": (3.0,),
            "budget_epochs": (20,), "budget_seeds": (0,)},
    "paper": {"epochs": 40, "train_per_point": 4.0, "test_per_point": 4.0, "seeds": (0, 1, 2, 3, 4),
              "ablation_seeds": (0, 1, 2, 3, 4), "budget_epochs": (80,), "budget_seeds": (0, 1, 2)},
    # Trained to the end of the curve (issue 21): each run stops when its best validation error has
    # gained < 2 % over the last max(5 epochs, a quarter of its epochs), or at the maximum budget;
    # runs.csv says whether its curve was flat (``converged``). An epoch is 1 trajectory per point.
    # The cosine reaches its floor at 75 % of the budget and holds it: the last quarter tests whether
    # more training at a small learning rate still helps (with the cosine over the whole budget the
    # curve falls to the end by construction: bench/results/long_run_*_e40_tpp1.*).
    # The main runs default to munich Mix (``--main-scenes``/``--regimes`` add more); the anchors
    # (seconds each) run on every scene and regime. Sizing: bench/README.md ("Converged runs").
    "converged": {"epochs": 40, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0, 1, 2),
                  "decay_fraction": 0.75, "stop_min_gain": 0.02, "stop_patience": 5, "main_scenes": ("munich",), "main_regimes": ("mix",),
                  "studies": ("main", "anchors")},
    # Flat by the end (issue 21, after `converged`): the same budget for the attention models, and a
    # schedule whose last quarter holds a small learning rate, so that "flat" tests convergence at the
    # end of the schedule rather than the tail of the decay. The offset curriculum reaches the paper's
    # loss (w = 1) at 50 % of the steps, the cosine reaches its floor of 1 % of the peak at 60 % and
    # holds it. FullCon, whose `converged` curves were still falling 10 % over their last quarter, gets
    # twice the epochs (``epoch_factor``); Concat six times (a 240-epoch schedule): on 80 its curve still
    # fell as a power law (step^-0.19) at the floor held to 240 epochs, not flat in 3 seeds, while with
    # the schedule spanning 240 epochs all three seeds end flat. More budget for the baselines, never less.
    # ``score_corrupted``: the munich Mix main runs are also scored under corrupted inputs (the
    # degradation study's clean-trained rows, at this budget; its augmented runs are not trained here).
    # ``inspector_scenes``: the scenes outside ``main_scenes`` with a seed-0 Mix run of each of
    # ``scene_methods`` (default SCADF-MoE only: the routing inspector's checkpoints, and a converged
    # run per method beside that scene's anchors).
    # The budget study asks whether a flat curve is a final number: seed 0 of SoftMoE and SCADF-MoE
    # again with twice the epochs (the same schedule, stretched), beside their main runs; and Concat's
    # three seeds on the 80-epoch schedule its main runs had before (``budget_extra``: method, epochs,
    # seeds), held at the floor to the same 240 epochs: is the schedule or the budget what it needed?
    # ``max_epoch_factor``: the schedule spans each run's ``epochs`` (x ``epoch_factor``), and the
    # floor then holds up to one maximum budget for every method, ``max_epoch_factor`` (6) x the base
    # epochs (240 epochs, 48,960 steps: more than the paper's 40,000), so a run whose curve still falls
    # at the end of its schedule trains on at the floor until the stopping rule or that maximum ends
    # it (``TrainConfig.schedule_epochs``); a run the rule ended inside its schedule is unchanged, and
    # a finished shorter run resumes from its last.pt.
    # ``scene_methods``: these methods, seed 0, Mix, on the scenes outside ``main_scenes`` too (the
    # routing inspector's SCADF-MoE checkpoints, and one converged run per method beside each scene's
    # anchors).
    "flat": {"epochs": 40, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0, 1, 2),
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
    # ``flat`` is the reference set: Table II on the three scenes, OOD on munich (``ood_scenes``),
    # no spatial context (L = 1) on munich (``spatial_scenes``) and the paper's ablations, 3 seeds each,
    # the sensitivity study on seed 0, the augmented half of the degradation study last.
    # ``order`` 'priority': runs in the order of :data:`scadf_lib.experiments.PRIORITY` (the most
    # important cells first), so that an interrupted sweep leaves the most important tables complete.
    "smoke": {"epochs": 1, "train_per_point": 1.0, "test_per_point": 1.0, "seeds": (0,), "ablation_seeds": (0,),
              "max_steps_per_epoch": 3},
}
