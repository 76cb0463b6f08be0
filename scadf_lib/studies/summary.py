"""The report's opening: what was compared, what holds, what does not, and what bounds it, in plain
words, each sentence generated from the tables by a rule stated in the section it summarises."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scadf_lib.presets import METHODS, REFERENCE_DATA_VERSION, REFERENCE_SET
from scadf_lib.studies.ablations import ablation_effects
from scadf_lib.studies.claims import claims_verdicts
from scadf_lib.studies.common import label, pairwise_ratios
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import csv_flags


def _scenes_where(ratios: pd.DataFrame, other: str, verdict: str) -> list[str]:
    return list(ratios[(ratios.other == other) & (ratios.verdict == verdict)].scene)


def compared_text(rs: ResultSet) -> str:
    runs = rs.runs
    main = runs[runs.study == "main"]
    mix = main[main.regime == "mix"]
    scenes = list(dict.fromkeys(mix.scene))
    ood = sorted(set(main[main.regime == "ood"].scene))
    flat = csv_flags(main["flat"])
    baselines = [label(m) for m in METHODS if m != "scadf" and m in set(main.model)]
    return (f"**Compared.** SCADF-MoE against {len(baselines)} fusion baselines with the same encoders and heads "
            f"({', '.join(baselines)}) and anchors without a deep model (WKNN fingerprinting; a hybrid: the closed "
            f"form on LOS points, WKNN elsewhere), on {len(scenes)} ray-traced city scenes ({', '.join(scenes)}) with "
            f"all bands in training and test (Mix)" + (f", and trained on 2.6 + 28 GHz, tested on 6 GHz (OOD, "
                                                         f"{', '.join(ood)})" if ood else "")
            + f"; {mix.seed.nunique()} seeds each, {int(flat.sum())} of {len(main)} runs trained until their validation "
            f"curve was flat, the others to their maximum budget.")


def holds_text(metrics: pd.DataFrame) -> str:
    """What the held-out numbers show, by :func:`scadf_lib.studies.common.pairwise_ratios`'s rule (the
    per-seed ratio's 95 % interval below 1: lower; holding 1: no difference shown)."""
    ratios = pairwise_ratios(metrics)
    if ratios.empty:
        return ""
    scenes = list(dict.fromkeys(ratios.scene))
    n = len(scenes)
    parts = []
    for anchor in ("wknn", "hybrid"):
        r = ratios[ratios.other == anchor]
        if len(r):
            parts.append(f"below {label(anchor).split(' (')[0]}'s on {len(_scenes_where(ratios, anchor, 'lower'))} of "
                         f"{n} scenes ({r.ratio.min():.2f}-{r.ratio.max():.2f} times it)")
    for other in [m for m in METHODS if m != "scadf" and m in set(ratios.other)]:
        lower = _scenes_where(ratios, other, "lower")
        higher = _scenes_where(ratios, other, "higher")
        r = ratios[ratios.other == other]
        parts.append(f"{'below' if lower else 'not distinguishable from'} {label(other)}'s"
                     + (f" on {len(lower)} of {n} scenes" if lower else f" on any scene ({r.ratio.min():.2f}-"
                        f"{r.ratio.max():.2f} times it, every interval holds 1)" if not higher else "")
                     + (f", above it on {len(higher)}" if higher else ""))
    ties = [label(o) for o in METHODS if o != "scadf" and set(ratios[ratios.other == o].verdict) == {"no difference shown"}]
    tie = (f" SCADF-MoE ties {' and '.join(ties)}: the seeds show no difference on any scene." if ties else "")
    return ("**What holds.** SCADF-MoE's held-out MSE (points in no training trajectory), seed by seed as a ratio "
            "with its 95 % interval, is " + "; ".join(parts) + "." + tie)


def fails_text(metrics: pd.DataFrame, curves: pd.DataFrame | None) -> str:
    main = metrics[metrics.study == "main"]
    if main.empty:
        return ""
    claims = claims_verdicts(main)
    effects = ablation_effects(metrics, curves=curves)
    helps = [r.variant for r in effects.itertuples() if r.verdict.startswith("the part helps")]
    ablations = ("" if effects.empty else
                 " Of the paper's ablations, removing a part raised the error beyond the seeds' spread for "
                 + (", ".join(helps) if helps else "none") + f" of {len(effects)}.")
    return ("**What does not.** The paper's claims on our data: " + "; ".join(
        f"{r.claim}: {r.verdict}" for r in claims.itertuples()) + "." + ablations)


def caveats_text(rs: ResultSet) -> str:
    """The bounds of the set's answer; for the reference set, with what the measured-input and unsurveyed
    studies beside it have found so far (:func:`measured_headline`, :func:`unsurveyed_headline`)."""
    from scadf_lib.studies.measured import MEASURED_SET, measured_headline
    from scadf_lib.studies.unsurveyed import UNSURVEYED_SET, unsurveyed_headline
    reference = rs.name == REFERENCE_SET
    version = (f" (ray-traced data version {REFERENCE_DATA_VERSION}, before the tracing fixes of version 2)"
               if reference else "")
    measured = measured_headline(rs.sibling(MEASURED_SET)) if reference else ""
    blocks = unsurveyed_headline(rs.sibling(UNSURVEYED_SET)) if reference else ""
    return ("**What bounds it.** Oracle inputs: the ray tracer's exact dominant path (length, angles, gain) and one "
            f"noise-free CFR element{version}: a bound, not what a base station measures (appendix \"What a base "
            "station measures\")." + (f" {measured}" if measured else "") + " Interpolation: each held-out point "
            "lies about 1 m from surveyed training points of a 1 m grid"
            + (f". {blocks}" if blocks else "; unsurveyed streets and sparser surveys are not scored here.")
            + " A mean is carried by few points, and one seed can move it (below the table).")


def summary_section(rs: ResultSet | Path) -> str:
    """At most ten lines: compared, holds, does not, bounds (each a paragraph of one line)."""
    rs = as_set(rs)
    if rs.metrics[rs.metrics.study == "main"].empty:
        return ""
    lines = [compared_text(rs), holds_text(rs.metrics), fails_text(rs.metrics, rs.curves), caveats_text(rs)]
    return "## In short\n\n" + "\n\n".join(line for line in lines if line) + "\n"
