"""Clustering and trajectory sampling at 10k, 100k and 1M points: time, peak memory, growth.

Also the automatic radius search and the trajectory samplers before and after their rewrites, in
the same run (timed without tracemalloc). Points are uniform with the density of the first embedded
data (one UE per 4 m^2, a 2 m grid; the embedded data are now on a 1 m grid, four times denser), so
the radius and the cluster sizes are those of that data and the results in bench/README.md stay
comparable.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from common import write
from scipy.spatial import cKDTree

from scadf_lib.clustering import NeighbourGraph, choose_radius, cluster_fixed_radius, median_cluster_size
import scadf_lib.trajectories as trajectories
from scadf_lib.trajectories import make_split


def first_version_choose_radius(xy: np.ndarray, min_median_size: int = 8, tol_m: float = 0.1) -> float:
    """The radius search as first written (kept here as the 'before' of bench/README.md): doubling
    from tol, then bisection, with a new neighbour query for every radius tried."""
    tree = cKDTree(xy)

    def ok(step: int) -> bool:
        graph = NeighbourGraph(tree, step * tol_m)
        return median_cluster_size(cluster_fixed_radius(xy, step * tol_m, graph)) >= min_median_size

    hi = 1
    while not ok(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        hi, lo = (mid, lo) if ok(mid) else (hi, mid)
    return hi * tol_m


def first_version_draw_train(rng, pool, length, count):
    """Training trajectories as first written: one ``rng.choice`` per trajectory."""
    return np.stack([rng.choice(pool, size=length, replace=False) for _ in range(count)])


def first_version_draw_test(rng, members, unseen, length, count, max_tries=50):
    """Test trajectories as first written: rejection sampling one trajectory at a time."""
    out = []
    unseen_members = members[unseen[members]]
    for _ in range(count):
        for _ in range(max_tries):
            traj = rng.choice(members, size=length, replace=False)
            if unseen[traj].any():
                break
        else:
            first = rng.choice(unseen_members)
            rest = rng.choice(members[members != first], size=length - 1, replace=False)
            traj = rng.permutation(np.concatenate([[first], rest]))
        out.append(traj)
    return np.stack(out)


def first_version_make_split(clustering, *args, **kwargs):
    """make_split with the per-trajectory samplers it had before vectorisation (same rules)."""
    saved = trajectories._draw_rows, trajectories._draw_test
    trajectories._draw_rows, trajectories._draw_test = first_version_draw_train, first_version_draw_test
    try:
        return make_split(clustering, *args, **kwargs)
    finally:
        trajectories._draw_rows, trajectories._draw_test = saved


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak / 2**20


def main(sizes=(10_000, 100_000, 1_000_000)) -> None:
    rows = []
    for n in sizes:
        side = np.sqrt(4.0 * n)
        xy = np.random.default_rng(0).uniform(0, side, (n, 2))
        c, t_fixed, m_fixed = measure(lambda: cluster_fixed_radius(xy, 4.5))
        auto, t_auto, m_auto = measure(lambda: choose_radius(xy, min_median_size=8))
        _, t_split, m_split = measure(lambda: make_split(c, 5, train_per_point=2.0, seed=0))
        t0 = time.perf_counter()
        r_before = first_version_choose_radius(xy)
        t_before = time.perf_counter() - t0
        t0 = time.perf_counter()
        r_after = choose_radius(xy, min_median_size=8).radius_m
        t_after = time.perf_counter() - t0
        t0 = time.perf_counter()
        first_version_make_split(c, 5, train_per_point=2.0, seed=0)
        t_split_before = time.perf_counter() - t0
        t0 = time.perf_counter()
        make_split(c, 5, train_per_point=2.0, seed=0)
        t_split_after = time.perf_counter() - t0
        rows.append({"points": n, "fixed_radius_s": t_fixed, "fixed_radius_peak_mib": m_fixed,
                     "auto_radius_s": t_auto, "auto_radius_m": auto.radius_m, "auto_radius_clusterings": len(auto.search),
                     "auto_peak_mib": m_auto, "split_and_trajectories_s": t_split, "split_peak_mib": m_split,
                     "clusters": c.num_clusters, "radius_search_before_s": t_before,
                     "radius_search_after_s": t_after, "radius_search_speedup": t_before / t_after,
                     "same_radius": bool(abs(r_before - r_after) < 1e-9),
                     "split_before_s": t_split_before, "split_after_s": t_split_after,
                     "split_speedup": t_split_before / t_split_after})
        print(rows[-1], flush=True)
    n = np.array([r["points"] for r in rows], float)
    growth = {k: float(np.polyfit(np.log(n), np.log([r[k] for r in rows]), 1)[0])
              for k in ("fixed_radius_s", "auto_radius_s", "split_and_trajectories_s")}
    write("clustering", {"rows": rows, "growth_exponent": growth,
                         "note": "exponent of time ~ N^k from a log-log fit; N log N gives k slightly above 1"})


if __name__ == "__main__":
    main()
