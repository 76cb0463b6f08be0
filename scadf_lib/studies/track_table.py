"""Walked tracks scored with the Localiser."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scadf_lib.presets import RETRAINED_LABEL, SCENES
from scadf_lib.studies.common import fmt_ci, report_table
from scadf_lib.studies.resultset import ResultSet, as_set
from scadf_lib.tables import mean_ci


#: Row order of the track study's methods (:data:`scadf_lib.tracks.STUDY_MODELS` and the anchors).
#: A retrained sample (:data:`scadf_lib.presets.RETRAINED_LABEL`) follows its method.
TRACK_METHODS = ("SCADF-MoE", "SoftMoE", "SCADF-MoE, L = 1", "WKNN", "centroid floor")


def tracks_table(tracks: pd.DataFrame, group: str = "all") -> pd.DataFrame:
    """Per scene and method (``tracks.csv`` of :func:`scadf_lib.tracks.run_track_studies`, bands
    pooled): held-out MSE (m², mean ± 95 % CI over seeds) in cluster trajectories and in tracks, the
    tracks' median error (m) and the seeds. ``group``: 'all', 'LOS' or 'NLOS'."""
    t = tracks[(tracks.band_ghz.astype(str) == "all") & (tracks.group == group)]
    rows = []
    for (scene, method), g in t.groupby(["scene", "method"], sort=False):
        cell = {}
        for source in ("cluster", "track", "track, cluster-tested points"):
            v = g[g.source == source].sort_values("seed")
            cell[source] = fmt_ci(*mean_ci(v.mse_m2.to_numpy())) if len(v) else ""
        tr = g[g.source == "track"]
        rows.append({"scene": scene, "method": method, "clusters: held-out MSE (m²)": cell["cluster"],
                     "tracks: held-out MSE (m²)": cell["track"],
                     "tracks, cluster-tested points: MSE (m²)": cell["track, cluster-tested points"],
                     "tracks: median (m)": f"{tr.median_m.mean():.2f}",
                     "seeds": ", ".join(str(int(x)) for x in sorted(g.seed.unique()))})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    order = {m: i for i, m in enumerate(TRACK_METHODS)}
    order.update({m + RETRAINED_LABEL: i + 0.5 for m, i in order.items()})
    scenes = {sc: i for i, sc in enumerate(SCENES)}
    out = out.sort_values(["scene", "method"], key=lambda c: c.map(scenes if c.name == "scene" else order)
                          ).reset_index(drop=True)
    return out.assign(method=out.method.replace({"centroid floor": "centroid reference (oracle)"}))


def tracks_section(rs: ResultSet | Path) -> str:
    tracks = as_set(rs).table(ResultSet.TRACKS)
    if tracks is None:
        return ""
    facts = tracks.groupby("scene")[["n_tracks", "mean_length", "held_out_share"]].first()
    retrained = sorted(m for m in tracks.method.unique() if m.endswith(RETRAINED_LABEL))
    return ("## G. Tracks instead of clusters at test time (`python -m scadf_lib.tracks`)\n\n"
            "The paper's test trajectories are clusters of the true positions. Here each held-out point is also placed "
            "inside a random walk (1-1.41 m steps to grid neighbours, keeping its heading where the street allows) "
            "by the `Localiser` (sliding windows of L, each point the mean of its windows). Only held-out points are "
            "scored (in no training trajectory and not a validation point, which chose the best epoch), the three "
            "bands pooled; the centroid reference, an oracle, places each point at the true centre of "
            "its window(s). Tracks reach held-out points the paper's protocol never scores (clusters too small for a "
            "trajectory); 'cluster-tested points' keeps only the held-out points some cluster test trajectory holds. "
            "Tracks per scene: "
            + ", ".join(f"{sc} {int(r.n_tracks)} of {r.mean_length:.1f} points ({100 * r.held_out_share:.0f} % "
                        f"held-out)" for sc, r in facts.iterrows())
            + ".\n\n" + report_table(tracks_table(tracks)) + "\n"
            + (f"\n{', '.join(retrained)}: seed 0 trained again on this protocol to rebuild weights the sweep never "
               "shipped; it did not reproduce the committed run (appendix D), so its scores here are another sample "
               "of the method, not the Table II run's.\n" if retrained else ""))
