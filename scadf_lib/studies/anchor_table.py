"""The anchors without a deep model (closed form, WKNN, WKNN + CFR, hybrid) and what they say."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scadf_lib.studies.common import _distinct, label, report_table
from scadf_lib.studies.resultset import ResultSet, as_set, redundant_anchors


def geometric_los_nlos(metrics: pd.DataFrame, regime: str = "mix") -> tuple[float, float] | None:
    """The geometric anchor's held-out LOS and NLOS MSE (m², mean over scenes and seeds), or None."""
    sel = metrics[(metrics.study == "anchors") & (metrics.model == "geometric") & (metrics.regime == regime)
                  & (metrics.band == "all")]
    by_group = sel.groupby("group").mse_m2.mean()
    if not {"held-out-LOS", "held-out-NLOS"} <= set(by_group.index):
        return None
    return float(by_group["held-out-LOS"]), float(by_group["held-out-NLOS"])


def anchors_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every scene x regime x anchor: held-out (LOS / NLOS), seen and overall MSE (m², mean over seeds)."""
    sel = metrics[(metrics.study == "anchors") & (metrics.band == "all")]
    if sel.empty:
        return pd.DataFrame()
    piv = sel.pivot_table(index=["scene", "regime", "model"], columns="group", values="mse_m2", aggfunc="mean")
    cols = [g for g in ("held-out", "held-out-LOS", "held-out-NLOS", "seen", "overall") if g in piv.columns]
    return piv[cols].reset_index().rename(columns={"model": "anchor"})


def geometric_text(metrics: pd.DataFrame) -> str:
    """What the geometric anchor is, and why its rows are large (its LOS and NLOS held-out MSE)."""
    text = "geometric = closed form from the dominant path's length and AoD and the BS position"
    split = geometric_los_nlos(metrics)
    if split is None:
        return text + " (exact on LOS points)."
    los, nlos = split
    return (text + f": exact on LOS points (held-out-LOS {los:.2f} m²), but on an NLOS point the dominant path "
            "bends (a reflection or a diffraction), and the point at its whole length along its departure direction "
            f"is not where the UE is (held-out-NLOS {nlos:,.0f} m², mean over scenes): it is there to show that the "
            "dominant path alone does not localise NLOS points.")


def geometric_los_text(metrics: pd.DataFrame) -> str:
    """The closed form as a sanity line: its held-out LOS MSE (exact: the oracle's direct path), and why
    it is no row of the headline table."""
    split = geometric_los_nlos(metrics)
    if split is None:
        return ""
    los, nlos = split
    return (f"Sanity line: the closed form from the dominant path's length and departure angle places held-out LOS "
            f"points with MSE {los:.2f} m² (exact, as oracle inputs allow); it is no row of the table because on NLOS "
            f"points the path bends and it lands far away ({nlos:,.0f} m², mean over scenes; appendix K).")


def cfr_anchor_text(runs: pd.DataFrame) -> str:
    """A sentence saying that WKNN + CFR is left out of the tables, where it reduced to WKNN everywhere."""
    if "wknn_cfr" not in redundant_anchors(runs):
        return ""
    n = int(((runs.study == "anchors") & (runs.model == "wknn_cfr")).sum())
    return (" WKNN with the CFR magnitude's principal components added chose CFR weight 0 on all "
            f"{n} splits (the validation search found no weight that helped), so it equals WKNN (numeric) and is "
            "not shown (appendix K).")


def anchors_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    metrics, runs = rs.metrics, rs.runs
    table = anchors_table(metrics)
    if table.empty:
        return ""
    chosen = runs[runs.study == "anchors"]
    cfr = chosen[chosen.model == "wknn_cfr"]
    return ("## K. Anchors on every scene and regime (mean over seeds, m²)\n\n"
            "Same splits, groups and scoring code as the models (`scadf_lib.anchors`). A seen point is in WKNN's "
            "reference set, so its seen error is ~0 in Mix.\n\n"
            + report_table(table.assign(anchor=table.anchor.map(label))) + "\n\n"
            f"WKNN + CFR chose a CFR weight > 0 in {int((cfr.anchor_cfr_weight > 0).sum())} of {len(cfr)} splits"
            + (" (where it chose 0 everywhere its rows equal WKNN (numeric)'s and are left out of every table; a likely "
               "reason: the CFR magnitude fades over fractions of a wavelength, so on a 1 m grid a neighbour's CFR says "
               "little about a point's)" if "wknn_cfr" in redundant_anchors(runs) else "") + "; "
            f"chosen k: {_distinct(chosen.anchor_k.dropna().astype(int))}; scalings: "
            f"{_distinct(chosen.anchor_scaling.dropna())}.\n")
