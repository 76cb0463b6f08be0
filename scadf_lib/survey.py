"""The site survey a split trains on: how dense it is, and how far the unsurveyed points lie from it.

Survey density (``thin_survey``: issue "Where nobody surveyed")
    A run's training points (the split's; its held-out points are untouched) are thinned
    to a regular grid of ``grid_step`` x the data's grid spacing (every 2nd grid point in x and y: a
    2 m grid on the shipped 1 m data, a quarter of the points) or to a random ``share`` of them. The
    split's clusters (radius r) hold a median of ~6 training points, so a thinned survey no longer
    fills them; the surveyed points are clustered again with the radius scaled by the survey's
    spacing s (s = ``grid_step``, or 1 / sqrt(``share``) for a random share: the mean spacing of such
    a sample), r_s = r s, and training trajectories of L surveyed points are drawn from these
    clusters as in :mod:`scadf_lib.trajectories`. The test trajectories and the held-out flags stay
    those of the full split, so every density is scored on the same points. A thinned-away training
    point that appears in a test trajectory is context there, never a held-out point (its error is
    in the ``seen`` group, which the density study does not report).

    Validation is thinned with the same mask: an operator who surveyed every 4th grid point chooses
    the best epoch (and WKNN's k) on points of that survey, not on the full survey's. The kept
    validation points are clustered with the kept training points (radius r_s) and validation
    trajectories are drawn around them as the split draws them (as many per validation point);
    a kept validation point in no cluster of L surveyed points is dropped (``val_points_unused``).

Distance to the survey (``distance_to_survey``)
    Per held-out point, the distance (m) to the nearest point the model was trained on: about one
    grid step for the paper's per-cluster split, up to half a block plus the guard band for held-out
    blocks. It is the quantity an operator's question ("how far from where we surveyed?") is about.

Block geometry (``open_width``)
    The width (m) of the open space through each outdoor point: the shorter of its row's and its
    column's run of outdoor grid points (a street's width for a point in a street, a square's
    extent for a point in a square). A held-out block wider than most passages holds a street's
    whole width, so the opposite pavement is not a training point a few metres away.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy.spatial import cKDTree



def grid_spacing(xy: np.ndarray) -> float:
    """The grid spacing (m) of positions ``xy`` (N, 2): the median nearest-neighbour distance."""
    if len(xy) < 2:
        raise ValueError("a survey needs at least two positions to have a spacing")
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))


def grid_index(xy: np.ndarray, spacing_m: float) -> np.ndarray:
    """(N, 2) integer grid coordinates of ``xy`` (m) on a grid of ``spacing_m`` from its lower corner."""
    return np.round((xy - xy.min(axis=0)) / spacing_m).astype(np.int64)


def survey_mask(xy: np.ndarray, points: np.ndarray, grid_step: int = 1, share: float = 1.0,
                seed: int = 0, stream: int = 7) -> np.ndarray:
    """(len(points),) bool: which of ``points`` (indices into ``xy``, m) a thinned survey keeps:
    every ``grid_step``-th grid point in x and in y, or a random ``share`` of them (not both; drawn
    from the random stream (``seed``, ``stream``): the training and validation points use two)."""
    check_survey(grid_step, share)
    if grid_step > 1:
        g = grid_index(xy, grid_spacing(xy))[points]
        return (g % int(grid_step) == 0).all(axis=1)
    keep = np.zeros(len(points), dtype=bool)
    if share < 1:
        rng = np.random.default_rng([seed, stream])
        keep[rng.choice(len(points), size=max(1, int(round(share * len(points)))), replace=False)] = True
        return keep
    return ~keep


def check_survey(grid_step: int = 1, share: float = 1.0) -> None:
    """Raise ``ValueError`` naming the fix where (``grid_step``, ``share``) is no thinned survey."""
    if int(grid_step) != grid_step or grid_step < 1:
        raise ValueError(f"survey grid_step must be a positive integer (1: every grid point), got {grid_step}")
    if not 0 < share <= 1:
        raise ValueError(f"survey share must be in (0, 1] (1: every training point), got {share}")
    if grid_step > 1 and share < 1:
        raise ValueError("thin a survey to a coarser grid (grid_step) or to a random share, not both")


def survey_spacing_factor(grid_step: int = 1, share: float = 1.0) -> float:
    """The survey's spacing in grid steps: ``grid_step``, or 1 / sqrt(``share``) for a random share."""
    return float(grid_step) if grid_step > 1 else float(1.0 / np.sqrt(share))


def thin_survey(split: Any, xy: np.ndarray, grid_step: int = 1, share: float = 1.0, seed: int = 0) -> Any:
    """The :class:`~scadf_lib.trajectories.SpatialSplit` ``split`` (held-out points) with its training
    and validation points thinned (module docstring, "Survey density"); ``split`` itself where nothing
    is thinned. The training trajectories are drawn again, as many as ``split`` has (so an epoch takes
    the same steps at every density and a sparse survey is not also a shorter training); the test
    trajectories and held-out flags are kept."""
    from scadf_lib.trajectories import _draw_train, _radius_pools
    check_survey(grid_step, share)
    if grid_step == 1 and share == 1.0:
        return split
    if split.holdout != "points":
        raise ValueError("a thinned survey applies to the per-cluster split (holdout='points'); held-out blocks "
                         "already leave whole areas unsurveyed")
    L = split.trajectory_length
    full = np.unique(split.train_traj)  # the full survey's training points (all in some training row)
    kept = full[survey_mask(xy, full, grid_step, share, seed)]
    factor = survey_spacing_factor(grid_step, share)
    radius = split.clustering.radius_m * factor
    pools = _radius_pools(xy, kept, radius) if len(kept) >= L else []
    usable = [p for p in pools if len(p) >= L]
    unused = sum(len(p) for p in pools if len(p) < L)
    per_point = len(split.train_traj) / max(1, sum(len(p) for p in usable))  # as many rows as the full survey
    rng = np.random.default_rng([seed, 8, L])
    rows = [_draw_train(rng, p, L, max(1, int(round(per_point * len(p))))) for p in usable]
    if not rows:
        raise ValueError(f"a survey thinned to grid step {grid_step} / share {share:g} leaves no cluster of radius "
                         f"{radius:.1f} m with {L} surveyed points: survey more densely or shorten the trajectory")
    train_traj = np.concatenate(rows)
    train_points = np.unique(train_traj)
    val_points, val_traj, val_unused = _thinned_validation(split, xy, train_points, grid_step, share, seed, radius)
    report = {**split.report, "survey_grid_step": int(grid_step), "survey_share": float(share),
              "survey_radius_m": float(radius), "surveyed_points": int(len(kept)),
              "survey_share_of_training_points": float(len(kept) / len(full)),
              "surveyed_points_unused": int(unused), "train_points": int(len(train_points)),
              "train_trajectories": int(len(train_traj)), "val_points": int(len(val_points)),
              "val_trajectories": int(len(val_traj)), "val_points_unused": int(val_unused)}
    return replace(split, train_points=train_points, train_traj=train_traj, val_points=val_points,
                   val_traj=val_traj, report=report)


def _thinned_validation(split: Any, xy: np.ndarray, surveyed: np.ndarray, grid_step: int, share: float,
                        seed: int, radius: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(validation points, validation trajectories, kept validation points left unused) of a survey
    thinned like its training points (module docstring, "Survey density"); ``surveyed``: the kept
    training points, the trajectories' context; ``radius`` (m): the survey's clustering radius."""
    from scadf_lib.trajectories import _draw_test, _radius_pools
    if len(split.val_points) == 0:
        return split.val_points, split.val_traj, 0
    L = split.trajectory_length
    kept = split.val_points[survey_mask(xy, split.val_points, grid_step, share, seed, stream=9)]
    is_val = np.zeros(len(xy), dtype=bool)
    is_val[kept] = True
    pools = [p for p in _radius_pools(xy, np.union1d(surveyed, kept), radius) if len(p) >= L and is_val[p].any()]
    per_point = len(split.val_traj) / len(split.val_points)  # the split's validation rows per validation point
    rng = np.random.default_rng([seed, 10, L])
    rows = [_draw_test(rng, p, is_val, L, max(1, int(round(per_point * is_val[p].sum())))) for p in pools]
    if not rows:
        raise ValueError(f"a survey thinned to grid step {grid_step} / share {share:g} keeps no validation point "
                         f"in a cluster of {L} surveyed points (radius {radius:.1f} m): survey more densely, "
                         f"raise val_points_fraction or shorten the trajectory")
    val_traj = np.concatenate(rows)
    val_points = np.unique(val_traj[is_val[val_traj]])
    return val_points, val_traj, int(len(kept) - len(val_points))


def distance_to_survey(xy: np.ndarray, split: Any) -> np.ndarray:
    """(N,) m: each point's distance to the nearest point in a training trajectory of ``split``
    (0 for trained points)."""
    trained = np.unique(split.train_traj)
    return cKDTree(xy[trained]).query(xy)[0]


def open_width(xy: np.ndarray) -> np.ndarray:
    """(N,) m: the width of the open space through each point of the grid ``xy`` (module docstring,
    "Block geometry"): the shorter of the runs of grid points along its row and its column."""
    spacing = grid_spacing(xy)
    g = grid_index(xy, spacing)
    occ = np.zeros(tuple(g.max(axis=0) + 1), dtype=bool)
    occ[g[:, 0], g[:, 1]] = True
    return np.minimum(_run_lengths(occ)[g[:, 0], g[:, 1]], _run_lengths(occ.T).T[g[:, 0], g[:, 1]]) * spacing


def _run_lengths(occ: np.ndarray) -> np.ndarray:
    """Per cell of the boolean grid ``occ``: the length of the run of True cells along its row."""
    out = np.zeros(occ.shape, dtype=np.int64)
    padded = np.pad(occ, ((0, 0), (1, 1)))
    for i, row in enumerate(padded):
        edges = np.flatnonzero(np.diff(row.astype(np.int8)))
        for start, stop in zip(edges[::2], edges[1::2]):
            out[i, start:stop] = stop - start
    return out


def held_out_points(split: Any) -> np.ndarray:
    """The sorted indices of the split's held-out points: test points in no training trajectory."""
    return np.intersect1d(np.flatnonzero(split.unseen), split.test_points)


def survey_facts(xy: np.ndarray, split: Any) -> dict[str, float]:
    """The held-out points' distance to the survey (:func:`distance_to_survey`; its mean square, m²: the
    MSE of placing each held-out point at the nearest surveyed one, an oracle; median, p90 and max, m)
    and, for held-out blocks, the facts behind the block size: the open width's median and p90
    (m, :func:`open_width`), the share of points in passages narrower than a block and the number of
    blocks. Recorded in each run's split report."""
    dist = distance_to_survey(xy, split)[held_out_points(split)]
    facts = {"held_out_distance_ms_m2": float((dist ** 2).mean()), "held_out_distance_median_m": float(np.median(dist)),
             "held_out_distance_p90_m": float(np.percentile(dist, 90)), "held_out_distance_max_m": float(dist.max())}
    if split.holdout == "blocks":
        block_m = split.report["block_m"]
        width = open_width(xy)
        cells = np.floor((xy - xy.min(axis=0)) / block_m).astype(np.int64)
        facts.update({"blocks": int(len(np.unique(cells, axis=0))), "open_width_median_m": float(np.median(width)),
                      "open_width_p90_m": float(np.percentile(width, 90)),
                      "share_in_passages_narrower_than_block": float((width < block_m).mean())})
    return facts
