"""UE tracks at test time: random walks on the outdoor grid, and how models place them.

The paper's test trajectories are clusters of the *true* positions: the model is told which
fingerprints lie within a radius of each other. A receiver knows time instead: a moving UE's
consecutive measurements are neighbours. :func:`random_walks` draws such tracks on a scene's UE
grid (1 m spacing in the shipped data):

* a step goes to a grid neighbour within ``max_step_m`` (1.5 m: the 8-neighbourhood, steps of 1 m
  or 1.41 m), so a track only turns where the street has points (indoor and no-path points are not
  in the grid);
* the walker keeps its heading where it can: with probability 1 - ``turn_prob`` it takes the
  neighbour most aligned with its last step (if that is within 45 degrees), otherwise a random
  neighbour that does not turn back; it never revisits a point of its own track unless it is stuck
  (a dead end), where the track ends early;
* every track starts at a point in no training trajectory of the model's split and not among its
  validation points (a held-out point), so no track is made of training positions only.

:func:`track_study` places the tracks' points with trained models (:class:`scadf_lib.localise.Localiser`,
sliding windows of L), with WKNN on the numeric features (per point, chosen on validation points as
in :mod:`scadf_lib.anchors`) and with the track's centroid floor (each point at the mean true position
of the windows that hold it), and scores the held-out points: points in no training trajectory, less
the split's validation points (they chose the models' best epoch and WKNN's k, so they are not
unseen); beside them, the same models on the held-out points of the split's cluster trajectories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from scadf_lib.presets import REFERENCE_DATA_DIR
from scadf_lib.runnames import main_run, spatial_run

#: Neighbour radius of a step (m): the 8-neighbourhood of the shipped 1 m grids.
MAX_STEP_M = 1.5


def grid_neighbours(xy: np.ndarray, max_step_m: float = MAX_STEP_M) -> list[np.ndarray]:
    """For each point of ``xy`` (N, 2) m, the indices of the other points within ``max_step_m``."""
    tree = cKDTree(xy)
    return [np.array([j for j in nb if j != i], dtype=np.int64)
            for i, nb in enumerate(tree.query_ball_point(xy, max_step_m))]


def _next_point(rng: np.random.Generator, xy: np.ndarray, here: int, heading: np.ndarray | None,
                options: np.ndarray, turn_prob: float) -> int:
    if heading is None:
        return int(rng.choice(options))
    steps = xy[options] - xy[here]
    cos = steps @ heading / (np.linalg.norm(steps, axis=1) * np.linalg.norm(heading) + 1e-12)
    straight = int(np.argmax(cos))
    if cos[straight] > np.cos(np.pi / 4) + 1e-9 and rng.random() >= turn_prob:
        return int(options[straight])
    forward = options[cos > -1e-9]  # no turning back
    return int(rng.choice(forward if len(forward) else options))


def random_walks(xy: np.ndarray, starts: np.ndarray, length: int, seed: int = 0, turn_prob: float = 0.2,
                 max_step_m: float = MAX_STEP_M, neighbours: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """One random walk (module docstring) of at most ``length`` points from each of ``starts`` (UE
    indices into ``xy``, m). Returns the UE indices of each track in time order (>= 1 point)."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if not 0.0 <= turn_prob <= 1.0:
        raise ValueError(f"turn_prob must be in [0, 1], got {turn_prob}")
    rng = np.random.default_rng(seed)
    nbrs = neighbours if neighbours is not None else grid_neighbours(xy, max_step_m)
    tracks = []
    for start in np.asarray(starts, dtype=np.int64):
        track, seen, heading = [int(start)], {int(start)}, None
        while len(track) < length:
            options = np.array([j for j in nbrs[track[-1]] if j not in seen], dtype=np.int64)
            if not len(options):
                break  # dead end: the track ends here
            nxt = _next_point(rng, xy, track[-1], heading, options, turn_prob)
            heading = xy[nxt] - xy[track[-1]]
            track.append(nxt)
            seen.add(nxt)
        tracks.append(np.asarray(track, dtype=np.int64))
    return tracks


def window_centroid_floor(tracks: list[np.ndarray], xy: np.ndarray, length: int) -> np.ndarray:
    """Per track point (concatenated), the mean over the windows of ``length`` that hold it
    (:func:`scadf_lib.localise.track_windows`) of the window's true centroid (m): the placement of a
    model that knows each window's centre exactly and nothing of the points within it."""
    from scadf_lib.localise import track_windows
    out = []
    for t in tracks:
        w = track_windows(len(t), length)
        centre = xy[t[w]].mean(axis=1)  # (W, 2)
        sums = np.zeros((len(t), 2))
        counts = np.zeros(len(t))
        np.add.at(sums, w.ravel(), np.repeat(centre, w.shape[1], axis=0))
        np.add.at(counts, w.ravel(), 1.0)
        out.append(sums / counts[:, None])
    return np.concatenate(out)


def score_points(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """MSE (m²), median and 90th-percentile error (m) and count of a per-point table's ``error_m``,
    per ``keys`` and LOS group (all, LOS, NLOS)."""
    rows = []
    for key, g in table.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for group, sel in (("all", g), ("LOS", g[g.los]), ("NLOS", g[~g.los])):
            e = sel.error_m.to_numpy()
            rows.append({**dict(zip(keys, key)), "group": group, "mse_m2": float((e ** 2).mean()) if len(e) else np.nan,
                         "median_m": float(np.median(e)) if len(e) else np.nan,
                         "p90_m": float(np.percentile(e, 90)) if len(e) else np.nan, "count": int(len(e))})
    return pd.DataFrame(rows)


def track_study(checkpoints: dict[str, str], data_path: str, n_tracks: int = 400, length: int = 20,
                seed: int = 0, bands: tuple[float, ...] | None = None) -> pd.DataFrame:
    """Per held-out point: its error (m) in random-walk tracks and in the split's cluster trajectories,
    for each model of ``checkpoints`` (label -> checkpoint path; all of one scene and split seed),
    WKNN and the centroid floor. Columns: method, source ('track' or 'cluster'), band_ghz, ue, los,
    cluster_tested (the point is in some cluster test trajectory: held-out points of clusters too small
    for a trajectory are never scored by the paper's protocol, but tracks reach them), error_m (one
    row per placed held-out point)."""
    from scadf_lib.localise import Localiser
    from scadf_lib.schema import load_fingerprints
    from scadf_lib.config import TrainConfig
    from scadf_lib.rundata import prepare_data

    locs = {k: Localiser.from_checkpoint(p) for k, p in checkpoints.items()}
    ref = next(iter(locs.values()))
    cfg = TrainConfig(**{**ref.train_config, "data_path": data_path})
    for name, loc in locs.items():
        other = TrainConfig(**{**loc.train_config, "data_path": data_path})
        if (other.seed, other.radius_m, other.holdout, other.test_fraction) != (cfg.seed, cfg.radius_m, cfg.holdout,
                                                                                cfg.test_fraction):
            raise ValueError(f"{name}: the models of one track study must share the split (seed, radius, holdout)")
    ds = load_fingerprints(data_path)
    data = prepare_data(cfg)
    xy = data.feats.xy
    unseen = data.split.unseen.copy()
    unseen[data.split.val_points] = False  # validation points chose the best epoch: not held out
    rng = np.random.default_rng(seed)
    held = np.flatnonzero(unseen)
    starts = rng.choice(held, size=min(n_tracks, len(held)), replace=False)
    tracks = random_walks(xy, starts, length, seed=seed)
    ue = np.concatenate(tracks)
    bands = bands or tuple(data.test_bands)
    los_all = ds["los"].values.astype(bool)
    rows: list[pd.DataFrame] = []
    cluster_tested = np.zeros(len(xy), bool)
    cluster_tested[data.split.test_traj.ravel()] = True  # held-out points the paper's protocol scores

    def add(method: str, source: str, band: float, ues: np.ndarray, pred_xy: np.ndarray) -> None:
        j = data.feats.bands.index(band)
        keep = unseen[ues]
        err = np.linalg.norm(pred_xy[keep] - xy[ues[keep]], axis=1)
        rows.append(pd.DataFrame({"method": method, "source": source, "band_ghz": band, "ue": ues[keep],
                                  "los": los_all[j, ues[keep]], "cluster_tested": cluster_tested[ues[keep]],
                                  "error_m": err}))

    wknn_xy_per_band = _wknn_positions(data)  # k and scaling chosen once: they do not depend on the band
    for band in bands:
        for name, loc in locs.items():
            t = loc.predict_tracks(ds, tracks, band)
            add(name, "track", band, ue, t[["x_m", "y_m"]].to_numpy())
            c = loc.predict_tracks(ds, data.split.test_traj if loc.trajectory_length == cfg.trajectory_length
                                   else data.split.test_traj.reshape(-1, 1), band)
            add(name, "cluster", band, c.ue.to_numpy(), c[["x_m", "y_m"]].to_numpy())
        wknn_xy = wknn_xy_per_band[data.feats.bands.index(band)]
        add("WKNN", "track", band, ue, wknn_xy[ue])
        add("WKNN", "cluster", band, data.split.test_traj.ravel(), wknn_xy[data.split.test_traj.ravel()])
        add("centroid floor", "track", band, ue, window_centroid_floor(tracks, xy, cfg.trajectory_length))
        cl = data.split.test_traj
        add("centroid floor", "cluster", band, cl.ravel(), np.repeat(xy[cl].mean(axis=1), cl.shape[1], axis=0))
    out = pd.concat(rows, ignore_index=True)
    out.attrs["tracks"] = {"n_tracks": len(tracks), "mean_length": float(np.mean([len(t) for t in tracks])),
                           "held_out_share": float(unseen[ue].mean()),
                           "track_held_out_cluster_tested": float(cluster_tested[ue[unseen[ue]]].mean())}
    return out


def _wknn_positions(data: Any) -> np.ndarray:
    """(B, N, 2) m: every UE placed at every band by WKNN on the numeric features (k and scaling chosen
    once on the split's validation points, :func:`scadf_lib.anchors.select_wknn`)."""
    from scadf_lib.anchors import WKNN, _point_sets, anchor_features, select_wknn
    best, _ = select_wknn(data, use_cfr=False)
    x = anchor_features(data, best["scaling"], 0.0)
    feats = data.feats
    tr_idx = [feats.bands.index(b) for b in data.train_bands]
    model = WKNN(best["k"]).fit(_point_sets(x, feats.xy, feats.bands, tr_idx, data.split.train_points))
    return np.stack([model.predict(band, x[j]) for j, band in enumerate(feats.bands)])


#: Checkpoints of the track study, by label, as the reference sweep names them in ``<results>/models/``
#: (:func:`scadf_lib.runfolder.ships_checkpoint`). Each may also be found as a retrained sample
#: (:data:`scadf_lib.presets.RETRAINED`: a rebuild that did not reproduce the committed run; ``rebuilds.csv``
#: scores both), labelled with :data:`scadf_lib.presets.RETRAINED_LABEL`.
STUDY_MODELS = {"SCADF-MoE": lambda scene, seed: main_run(scene, "mix", "scadf", seed),
                "SoftMoE": lambda scene, seed: main_run(scene, "mix", "softmoe", seed),
                "SCADF-MoE, L = 1": spatial_run}


def study_checkpoints(models_dirs: list[str], scene: str, seed: int) -> dict[str, str]:
    """label -> checkpoint path of the :data:`STUDY_MODELS` found in ``models_dirs`` (first wins); the
    routing inspector's ``<scene>_scadf.pt`` stands in for SCADF-MoE seed 0."""
    from scadf_lib.presets import RETRAINED, RETRAINED_LABEL
    found: dict[str, str] = {}
    for label, run_name in STUDY_MODELS.items():
        name = run_name(scene, seed)
        inspector = [f"{scene}_scadf"] if label == "SCADF-MoE" and seed == 0 else []
        for lab, names in ((label, [name] + inspector), (label + RETRAINED_LABEL, [name + RETRAINED])):
            for d in models_dirs:
                hit = next((Path(d) / f"{n}.pt" for n in names if (Path(d) / f"{n}.pt").exists()), None)
                if hit is not None:
                    found[lab] = str(hit)
                    break
    return found


def run_track_studies(out: str, models_dirs: list[str], scenes: tuple[str, ...] = ("munich", "etoile", "florence"),
                      seeds: tuple[int, ...] = (0, 1, 2), data_dir: str = REFERENCE_DATA_DIR, n_tracks: int = 400,
                      length: int = 20) -> pd.DataFrame:
    """:func:`track_study` for every scene and seed with a checkpoint; writes ``out`` (CSV, atomic,
    rewritten after each (scene, seed)): :func:`score_points` per scene, seed, method, source and band
    ('all' pooled), with the track set's facts. A (scene, seed) already in ``out`` with every model
    found now is skipped (resumable); one with a new checkpoint is computed again and replaced."""
    from scadf_lib.fileio import project_path
    for scene in scenes:
        for seed in seeds:
            ckpts = study_checkpoints([str(project_path(d)) for d in models_dirs], scene, seed)
            add_track_scores(out, ckpts, scene, seed, str(project_path(f"{data_dir}/{scene}.nc")), n_tracks, length)
    return pd.read_csv(out) if Path(out).exists() else pd.DataFrame()


def add_track_scores(out: str, ckpts: dict[str, str], scene: str, seed: int, data_path: str, n_tracks: int = 400,
                     length: int = 20) -> bool:
    """:func:`track_study` of ``ckpts`` (label -> checkpoint; one scene and split seed) scored with
    :func:`score_points` per method, source and band ('all' pooled) into the CSV ``out`` (atomic).
    A (scene, seed) already in ``out`` with every label of ``ckpts`` is skipped (resumable); one with a
    new checkpoint is computed again and replaced. Returns whether it computed."""
    from scadf_lib.fileio import write_csv_atomic
    path = Path(out)
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    mine = (table.scene == scene) & (table.seed == seed) if len(table) else pd.Series(dtype=bool)
    if not ckpts or (mine.any() and set(ckpts) <= set(table[mine].method)):
        return False
    pts = track_study(ckpts, data_path, n_tracks, length, seed)
    both = pts[(pts.source == "track") & pts.cluster_tested].assign(source="track, cluster-tested points")
    pts = pd.concat([pts, both], ignore_index=True)
    pooled = pts.assign(band_ghz="all")
    scores = score_points(pd.concat([pts.assign(band_ghz=pts.band_ghz.map("{:g}".format)), pooled]),
                          ["method", "source", "band_ghz"])
    scores = scores.assign(scene=scene, seed=seed, track_length=length, **pts.attrs["tracks"])
    table = pd.concat([table[~mine] if len(table) else table, scores], ignore_index=True)
    write_csv_atomic(table, path)
    print(f"tracks: {scene} seed {seed}: {sorted(ckpts)}", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.tracks",
                                 description="Tracks vs cluster trajectories at test time, per scene and seed.")
    ap.add_argument("--results", default="results/flat", help="result set: reads <results>/models, writes tracks.csv")
    ap.add_argument("--models", nargs="+", default=None,
                    help="checkpoint folders (default: <results>/models, then, for the reference set, results/models)")
    ap.add_argument("--scenes", nargs="+", default=["munich", "etoile", "florence"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--tracks", type=int, default=400, help="tracks per scene and seed")
    ap.add_argument("--length", type=int, default=20, help="points per track")
    ap.add_argument("--data-dir", default=REFERENCE_DATA_DIR,
                    help="fingerprints the models were trained on (default: the reference set's data version)")
    a = ap.parse_args(argv)
    from scadf_lib.checkpoints import committed_model_folders
    dirs = a.models or [str(f) for f in committed_model_folders(a.results)]
    run_track_studies(f"{a.results}/tracks.csv", dirs, tuple(a.scenes), tuple(a.seeds), data_dir=a.data_dir,
                      n_tracks=a.tracks, length=a.length)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
