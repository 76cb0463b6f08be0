"""What a sweep trains, in which order: a preset (:mod:`scadf_lib.presets`) turned into runs, each a
name, a study, a :class:`~scadf_lib.config.TrainConfig` and its tags (:func:`plan`). No training here:
:mod:`scadf_lib.experiments` executes the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from scadf_lib.config import PAPER_BATCH, TrainConfig, scaled_lr
from scadf_lib.presets import (ABLATIONS, ALL_STUDIES, METHODS, PRESETS, REFERENCE_SET, SCENES, STUDIES,
                               preset_data_dir)
from scadf_lib.runnames import anchor_run, block_run, main_run, measured_run, spatial_run
from scadf_lib.trajectories import min_cluster_size_for


@dataclass(frozen=True)
class Run:
    name: str
    study: str
    cfg: TrainConfig
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Planner:
    """Builds a preset's runs (:func:`plan`): one method per study, all adding to ``runs``."""

    p: dict[str, Any]
    base: TrainConfig
    data_dir: str
    scenes: tuple[str, ...]
    studies: tuple[str, ...]
    main_scenes: tuple[str, ...]
    regimes: tuple[str, ...]
    methods: tuple[str, ...]
    epoch_factor: dict[str, int]
    max_epochs: int | None
    runs: list[Run] = field(default_factory=list)

    def add(self, name: str, study: str, scene: str, tags: dict[str, Any] | None = None, **kw: Any) -> None:
        cfg = replace(self.base, data_path=f"{self.data_dir}/{scene}.nc", **kw)
        if self.max_epochs and study != "anchors":  # the schedule spans cfg.epochs; the floor holds up to max_epochs
            cfg = replace(cfg, schedule_epochs=cfg.epochs, epochs=max(self.max_epochs, cfg.epochs))
        self.runs.append(Run(name, study, cfg, {"scene": scene, **(tags or {})}))

    def main_cells(self, seed: int) -> None:
        """The main, spatial (L = 1) and blocks runs of one seed, scene by scene."""
        p, base = self.p, self.base
        for scene in self.scenes:
            if "main" in self.studies and scene in self.main_scenes:
                for regime in (r for r in self.regimes if r != "ood" or scene in p.get("ood_scenes", self.scenes)):
                    for method in self.methods:
                        corrupt = {"score_corrupted": True} if (p.get("score_corrupted") and scene == "munich"
                                                                 and regime == "mix") else {}
                        self.add(main_run(scene, regime, method, seed), "main", scene,
                                 {"variant": method, **corrupt}, model=method, regime=regime, seed=seed,
                                 epochs=base.epochs * self.epoch_factor.get(method, 1))
            if "spatial" in self.studies and scene in p.get("spatial_scenes", self.scenes):
                # L = 1 with L x the trajectories, so each point is trained on as often as with L = 5
                self.add(spatial_run(scene, seed), "spatial", scene,
                         {"variant": "scadf_nospace", "paired_with": main_run(scene, "mix", "scadf", seed)},
                         trajectory_length=1, min_cluster_size=min_cluster_size_for(5), seed=seed,
                         train_per_point=5 * base.train_per_point)
            if "blocks" in self.studies and scene in self.main_scenes and seed in p.get("block_seeds", p["seeds"]):
                self.blocks(scene, seed)

    def blocks(self, scene: str, seed: int) -> None:
        """Held-out blocks of ``scene`` and ``seed`` (the preset's ``block_m``, m): every method, and
        where the preset scores anchors on blocks (``block_anchors``), those on the same split."""
        block = {"holdout": "blocks", "block_m": self.p.get("block_m", 20.0)}
        for anchor in self.p.get("block_anchors", ()):
            self.add(anchor_run(scene, "blocks", anchor, seed), "anchors", scene,
                     {"variant": anchor, "split": "blocks"}, seed=seed, **block)
        for method in sorted(self.methods, key=_question_first):
            self.add(block_run(scene, method, seed), "blocks", scene, {"variant": method, "split": "blocks"},
                     model=method, seed=seed, epochs=self.base.epochs * self.epoch_factor.get(method, 1), **block)

    def density(self) -> None:
        """Thinned site surveys of munich Mix (:func:`scadf_lib.survey.thin_survey`), for each of the
        preset's ``density_seeds`` (default its first seed): WKNN and the preset's ``density_methods``
        on each of its ``surveys`` (name, grid step, random share); on the full survey WKNN only (the
        models' full-survey runs are the measured-input study's oracle runs, the same split and
        protocol). After the first seed the sparsest surveys come first: there one seed says least."""
        from scadf_lib.survey import survey_spacing_factor
        for i, seed in enumerate(self.p.get("density_seeds", self.p["seeds"][:1])):
            surveys = list(self.p.get("surveys", ()))
            if i:
                surveys.sort(key=lambda s: -survey_spacing_factor(s[1], s[2]))
            self.density_seed(seed, surveys)

    def density_seed(self, seed: int, surveys: list[tuple[str, int, float]]) -> None:
        """:meth:`density` for one seed and its surveys, in that order."""
        for survey, step, share in surveys:
            thin = {"survey_grid_step": step, "survey_share": share}
            tags = {"split": "points", "survey": survey}
            self.add(anchor_run("munich", "mix", "wknn", seed, survey), "anchors", "munich", {"variant": "wknn", **tags},
                     seed=seed, **thin)
            full = step == 1 and share == 1.0
            for method in (m for m in self.p.get("density_methods", ()) if m in self.methods and not full):
                self.add(f"density_munich_mix_{method}_{survey}_s{seed}", "density", "munich",
                         {"variant": method, **tags}, model=method, seed=seed,
                         epochs=self.base.epochs * self.epoch_factor.get(method, 1), **thin)

    def measured(self) -> None:
        """The measured-input study, munich Mix: seed 0 of every method with oracle and with measured
        inputs, then the link-budget and timing-offset sweeps (seed 0), then the further seeds."""
        from scadf_lib.measure import MeasurementConfig
        p, default = self.p, MeasurementConfig()

        def one(method: str, seed: int, inputs: str, suffix: str = "", measurement: dict | None = None,
                tags: dict | None = None) -> None:
            self.add(measured_run("munich", method, suffix or inputs, seed), "measured", "munich",
                     {"variant": method, "inputs": inputs, **(tags or {})}, model=method, seed=seed, inputs=inputs,
                     measurement=measurement or {}, epochs=self.base.epochs * self.epoch_factor.get(method, 1))

        methods = sorted(self.methods, key=_question_first)  # each method's oracle and measured runs together
        cells = [(m, s, i) for s in p["seeds"] for m in methods for i in ("oracle", "measured")]
        for seed in p["seeds"]:  # the anchors first (seconds each): WKNN and the closed form on each kind of input,
            for inputs in ("oracle", "measured"):  # on measured ones also with the array's true side (a bound)
                for anchor in ("geometric", "wknn", "wknn_cfr") + (("geometric_true_side",) if inputs == "measured" else ()):
                    self.add(anchor_run("munich", "mix", anchor, seed, inputs), "anchors", "munich",
                             {"variant": anchor, "inputs": inputs}, seed=seed, inputs=inputs)
        for method, seed, inputs in cells[:2 * len(self.methods)]:
            one(method, seed, inputs)
        for method in (m for m in p.get("sweep_methods", ()) if m in self.methods):
            for db in p.get("tx_power_offsets_db", ()):
                one(method, 0, "measured", f"tx{db:+g}dB", {"tx_power_dbm": default.tx_power_dbm + db},
                    {"param": "tx_power_offset_db", "value": db})
            for ns in p.get("timing_offsets_ns", ()):
                one(method, 0, "measured", f"timing{ns:g}ns", {"timing_offset_std_ns": ns},
                    {"param": "timing_offset_std_ns", "value": ns})
        for method, seed, inputs in cells[2 * len(self.methods):]:
            one(method, seed, inputs)

    def anchors(self) -> None:
        from scadf_lib.anchors import ANCHORS
        for seed in self.p["seeds"]:
            for scene in self.scenes:
                for regime in ("mix", "ood"):
                    for method in ANCHORS:
                        self.add(anchor_run(scene, regime, method, seed), "anchors", scene, {"variant": method},
                                 regime=regime, seed=seed)

    def ablations(self) -> None:
        for seed in self.p["ablation_seeds"]:
            for variant in ABLATIONS:
                self.add(f"ablation_munich_mix_{variant}_s{seed}", "ablation", "munich", {"variant": variant},
                         model=variant, seed=seed)

    def sensitivity(self) -> None:
        p, seed = self.p, self.p["seeds"][0]
        for n in p.get("experts", (2, 4, 16)):
            self.add(f"sens_experts{n}", "sensitivity", "munich", {"param": "n_experts", "value": n},
                     model_overrides={"n_experts": n}, seed=seed)
        for lam in p.get("lambdas", (0.0, 0.01, 1.0, 10.0, 100.0)):
            if lam == 0.0 and self.trains_no_mmd_ablation(seed):
                continue  # the same run as the no-MMD ablation of this seed: trained once, read by both tables
            self.add(f"sens_lambda{lam}", "sensitivity", "munich", {"param": "mmd_weight", "value": lam},
                     model_overrides={"mmd_weight": lam}, seed=seed)
        for L in p.get("lengths", (3, 7)):
            self.add(f"sens_L{L}", "sensitivity", "munich", {"param": "trajectory_length", "value": L},
                     trajectory_length=L, seed=seed)
        for r in p.get("radii", (3.0, 6.0)):
            self.add(f"sens_radius{r}", "sensitivity", "munich", {"param": "radius_m", "value": r}, radius_m=r,
                     seed=seed)

    def trains_no_mmd_ablation(self, seed: int) -> bool:
        """Whether this plan trains the no-MMD ablation (``scadf_no_mmd``: SCADF-MoE with λ = 0) on
        munich Mix with ``seed``, which is then also the sensitivity study's λ = 0 run."""
        return ("ablation" in self.studies and "scadf_no_mmd" in ABLATIONS
                and seed in self.p.get("ablation_seeds", self.p["seeds"]))

    def inspector_scenes(self) -> None:
        p = self.p
        for scene in (s for s in p.get("inspector_scenes", ()) if s in self.scenes and s not in self.main_scenes):
            for method in (m for m in p.get("scene_methods", ("scadf",)) if m in self.methods):
                tags = {"variant": method, **({"inspector": True} if method == "scadf" else {})}
                self.add(main_run(scene, "mix", method, p["seeds"][0]), "main", scene, tags,
                         model=method, regime="mix", seed=p["seeds"][0])

    def degradation(self) -> None:
        for seed in self.p.get("degradation_seeds", self.p["seeds"]):
            for method in self.methods:
                self.add(f"degr_munich_mix_{method}_aug_s{seed}", "degradation", "munich",
                         {"variant": method, "clean_run": main_run("munich", "mix", method, seed)}, model=method,
                         augment=True, seed=seed, epochs=self.base.epochs * self.epoch_factor.get(method, 1))

    def budget(self) -> None:
        p = self.p
        cells = [(m, e, s) for e in p.get("budget_epochs", ()) for s in p["budget_seeds"]
                 for m in p.get("budget_methods", self.methods)]
        cells += [(m, e, s) for m, e, seeds in p.get("budget_extra", ()) for s in seeds]
        for method, epochs, seed in cells:
            if method in self.methods:
                self.add(f"budget_munich_mix_{method}_e{epochs}_s{seed}", "budget", "munich",
                         {"variant": method, "param": "epochs", "value": epochs}, model=method, epochs=epochs,
                         seed=seed)


def _question_first(method: str) -> int:
    """Sort key of the methods of a study: the question's pair first (SCADF-MoE, SoftMoE), then the
    faster baselines, Concat (the longest schedule) last."""
    first = ("scadf", "softmoe", "transfusion", "fullcon", "concat")
    return first.index(method) if method in first else len(first)


def plan(preset: str = REFERENCE_SET, data_dir: str | None = None, scenes: tuple[str, ...] = SCENES,
         studies: tuple[str, ...] = ALL_STUDIES, batch_size: int = PAPER_BATCH, compile: bool | str = False,
         epochs: int | None = None, methods: tuple[str, ...] = METHODS, main_scenes: tuple[str, ...] | None = None,
         regimes: tuple[str, ...] | None = None) -> list[Run]:
    """The list of runs of a preset, in the order they are executed. ``batch_size`` other than the
    paper's 64 takes the learning rate of :func:`scaled_lr` (a GPU does a batch of 512 in the time of
    one of 64); ``compile`` is :attr:`TrainConfig.compile`; ``epochs`` replaces the preset's (a larger
    batch takes fewer steps per epoch and so needs more epochs: ``bench/bench_batch_scaling.py``);
    ``methods`` limits the method comparisons (main, blocks, degradation, budget) to some methods;
    ``main_scenes`` and ``regimes`` limit the ``main`` study (default: the preset's ``main_scenes`` /
    ``main_regimes``, else every scene and both regimes). The ``anchors`` study (:mod:`scadf_lib.anchors`)
    scores the classical anchors on every scene x regime x seed of ``scenes``."""
    data_dir = data_dir or preset_data_dir(preset)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    studies = tuple(s for s in studies if s in p.get("studies", STUDIES))
    main_scenes = tuple(s for s in scenes if s in (main_scenes or p.get("main_scenes", scenes)))
    regimes = regimes or p.get("main_regimes", ("mix", "ood"))
    bad = set(regimes) - {"mix", "ood"}
    if bad:
        raise ValueError(f"unknown regimes {sorted(bad)}; choose from ['mix', 'ood']")
    base = TrainConfig(epochs=epochs or p["epochs"], train_per_point=p["train_per_point"], test_per_point=p["test_per_point"],
                       max_steps_per_epoch=p.get("max_steps_per_epoch"), batch_size=batch_size,
                       lr=scaled_lr(batch_size), compile=compile, stop_min_gain=p.get("stop_min_gain"),
                       decay_fraction=p.get("decay_fraction", 1.0),
                       min_lr_fraction=p.get("min_lr_fraction", TrainConfig.min_lr_fraction),
                       offset_anneal_fraction=p.get("offset_anneal_fraction", TrainConfig.offset_anneal_fraction),
                       stop_patience=p.get("stop_patience", 5))
    max_epochs = p["max_epoch_factor"] * base.epochs if "max_epoch_factor" in p else None
    pl = _Planner(p, base, data_dir, scenes, studies, main_scenes, regimes, methods, p.get("epoch_factor", {}), max_epochs)
    if "anchors" in studies:  # seconds each: first, so that every table has them
        pl.anchors()
    # Two seeds of everything first, then ablations and sensitivity, then the remaining seeds, so
    # that an interrupted run still leaves a complete (if narrower) set of tables.
    for seed in p["seeds"][:2]:
        pl.main_cells(seed)
    if "density" in studies and "munich" in scenes:
        pl.density()
    if "ablation" in studies:
        pl.ablations()
    if "sensitivity" in studies:
        pl.sensitivity()
    for seed in p["seeds"][2:]:
        pl.main_cells(seed)
    if "main" in studies:  # seed 0 per further scene: the routing inspector's checkpoints and a baseline
        pl.inspector_scenes()
    if "degradation" in studies and "munich" in scenes:
        pl.degradation()
    if "budget" in studies:
        pl.budget()
    if "measured" in studies and "munich" in scenes:
        pl.measured()
    runs = pl.runs
    if p.get("order") == "priority":
        runs.sort(key=priority)
    return runs


#: Order of a sweep whose preset says ``order: priority`` (lower first): the cells that answer the
#: paper's question first (Table II on munich, then the other scenes, then OOD), the ablations and
#: the spatial-context runs next, then sensitivity, budget checks and the augmented degradation runs.
PRIORITY = ("anchors", "main_munich_mix", "main_mix", "main_ood", "ablation", "sensitivity", "budget", "degradation")


def priority(run: Run) -> tuple[int, int]:
    """Sort key of a run under :data:`PRIORITY`: (its class, its seed); the sort is stable, so runs
    of one class and seed keep the plan's order (scenes, then methods)."""
    if run.study == "main":
        scene_first = run.cfg.regime == "mix" and run.tags["scene"] == "munich"
        cls = "main_munich_mix" if scene_first else f"main_{run.cfg.regime}"
    else:
        cls = {"spatial": "ablation"}.get(run.study, run.study)
    return PRIORITY.index(cls) if cls in PRIORITY else len(PRIORITY), run.cfg.seed
