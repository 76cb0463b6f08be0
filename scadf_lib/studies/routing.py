"""Routing: the CFR share of SCADF-MoE's routers and how sharp they are."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scadf_lib.studies.common import report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import mean_ci


def routing_shift(resp: pd.DataFrame) -> pd.DataFrame:
    """Per layer and training: SCADF-MoE's CFR share (mean over experts and seeds) with the CFR
    clean, at 0 dB SNR and missing, and the per-seed drop clean - 0 dB with its 95 % CI."""
    share = resp.groupby(["augmented", "layer", "seed", "label"]).cfr_share.mean().unstack("label")
    rows = []
    for (aug, layer), g in share.groupby(level=["augmented", "layer"]):
        drop = (g["clean"] - g["cfr_snr_db=0"]).to_numpy()
        mean, half = mean_ci(drop)
        rows.append({"training": "augmented" if aug else "clean", "layer": layer, "share_clean": g["clean"].mean(),
                     "share_30dB": g["cfr_snr_db=30"].mean(), "share_10dB": g["cfr_snr_db=10"].mean(),
                     "share_0dB": g["cfr_snr_db=0"].mean(), "share_cfr_missing": g["missing cfr"].mean(),
                     "drop_clean_to_0dB": mean, "ci95": half, "seeds": len(drop)})
    return pd.DataFrame(rows)


def routing_entropy(runs: pd.DataFrame) -> pd.DataFrame:
    """SCADF-MoE's normalised routing entropies on the validation set at the end of training (main,
    Mix, mean over seeds, per scene): 1 = uniform weights, 0 = one token / one slot."""
    cols = [c for c in runs.columns if c.startswith("final_val_") and c.endswith("_entropy")]
    sel = runs[(runs.study == "main") & (runs.model == "scadf") & (runs.regime == "mix")]
    if not cols or sel.empty:
        return pd.DataFrame()
    table = sel.groupby("scene")[cols].mean()
    table.columns = [c.removeprefix("final_val_") for c in table.columns]
    return table.reset_index()


def routing_section(rs: ResultSet | Path) -> str:
    runs = as_set(rs).runs
    table = routing_entropy(runs)
    if table.empty:
        return ""
    return ("## J. How sharply SCADF-MoE routes (Mix, validation set, end of training)\n\n"
            "Normalised entropy of the dispatch columns (over the tokens a router reads) and of the combine rows "
            "(over the slots): 1 = uniform weights, 0 = one token / one slot. Mean over seeds.\n\n"
            + report_table(table) + "\n")
