"""Radius-based spatial clustering of UE locations (paper, section II-B).

Rule (leader clustering, densest anchor first)
    Points are visited as candidate anchors in order of decreasing number of neighbours within r
    (ties by index). An anchor that is not yet in a cluster opens a new cluster and claims every
    still-unclaimed point within distance r of itself. So each cluster is its anchor's r-ball minus
    the points that denser anchors claimed earlier.

Why this rule
    * Clusters are disjoint by construction (a point is claimed once).
    * Clusters stay compact: every member lies within r of its anchor, so a cluster's diameter is at
      most 2 r. Transitive merging of overlapping balls (single linkage) would chain along a street
      across the whole map, and a "trajectory" drawn from such a cluster would not be a short path.
    * Densest-first anchors make clusters as full as the geometry allows, so the median cluster
      size reaches the threshold at a small radius.

The radius is either fixed (the paper uses 2 m) or chosen by :func:`choose_radius`: the smallest r on
a grid of step ``tol_m`` for which the median cluster size reaches ``min_median_size``.

All positions are in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Clustering:
    """Disjoint clusters of points.

    ``labels[i]`` is the cluster of point i (0..K-1); ``anchors[k]`` the index of cluster k's anchor;
    ``radius_m`` the ball radius used.
    """

    labels: np.ndarray
    anchors: np.ndarray
    radius_m: float
    search: list[tuple[float, float]] = field(default_factory=list)  # (radius, median size) tried

    @property
    def num_clusters(self) -> int:
        return len(self.anchors)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_clusters)

    def members(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.labels == k)


def check_positions(xy: np.ndarray) -> np.ndarray:
    """Return ``xy`` as float64 (N, 2) or raise ``ValueError`` naming what is wrong with it."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"positions must have shape (N, 2) in metres, got {xy.shape}")
    if len(xy) == 0:
        raise ValueError("no positions to cluster: the dataset holds no UE locations")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} positions are NaN/inf (first at index {int(np.argmax(bad))}); "
                         f"drop or fix them before clustering")
    if len(xy) < 2:
        raise ValueError("clustering needs at least 2 points, got 1")
    if np.ptp(xy, axis=0).max() == 0:
        raise ValueError(f"all {len(xy)} positions are identical; clustering needs distinct locations")
    return xy


class NeighbourGraph:
    """Neighbours within ``max_radius_m`` (self included) as CSR with distances, built once.

    :meth:`csr` gives the neighbours within any smaller radius by filtering, so the radius search
    queries the KD-tree once instead of once per radius tried.
    """

    def __init__(self, tree: cKDTree, max_radius_m: float):
        n = tree.n
        pairs = tree.query_pairs(max_radius_m, output_type="ndarray")
        src = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(n)])
        dst = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(n)])
        order = np.argsort(src, kind="stable")
        self.src, self.dst = src[order], dst[order]
        self.dist = np.linalg.norm(tree.data[self.src] - tree.data[self.dst], axis=1)
        self.n, self.max_radius_m = n, max_radius_m

    def csr(self, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) of the neighbours within ``radius_m`` <= ``max_radius_m``."""
        keep = self.dist <= radius_m
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.src[keep], minlength=self.n), out=indptr[1:])
        return indptr, self.dst[keep]


def cluster_fixed_radius(xy: np.ndarray, radius_m: float, graph: NeighbourGraph | None = None) -> Clustering:
    """Cluster points with a fixed ball radius (metres) by the densest-anchor-first rule."""
    xy = check_positions(xy)
    if not radius_m > 0:
        raise ValueError(f"radius must be positive (metres), got {radius_m}")
    if graph is None or graph.max_radius_m < radius_m:
        graph = NeighbourGraph(cKDTree(xy), radius_m)
    n = len(xy)
    indptr, indices = graph.csr(radius_m)
    degree = np.diff(indptr)
    order = np.lexsort((np.arange(n), -degree))  # densest first, ties by index
    labels = np.full(n, -1, dtype=np.int64)
    anchors: list[int] = []
    for anchor in order:
        if labels[anchor] >= 0:
            continue
        nbrs = indices[indptr[anchor]:indptr[anchor + 1]]
        free = nbrs[labels[nbrs] < 0]
        labels[free] = len(anchors)
        anchors.append(int(anchor))
    return Clustering(labels=labels, anchors=np.asarray(anchors, dtype=np.int64), radius_m=float(radius_m))


def median_cluster_size(clustering: Clustering) -> float:
    return float(np.median(clustering.sizes))


def choose_radius(xy: np.ndarray, min_median_size: int = 5, tol_m: float = 0.1,
                  max_radius_m: float | None = None) -> Clustering:
    """Cluster with the smallest radius (multiple of ``tol_m``) whose median cluster size reaches
    ``min_median_size``.

    Search: an upper bracket from nearest-neighbour distances (grown until it passes), then
    bisection on the radius grid down from it; about log2(r / tol) clusterings, all on one
    neighbour graph. The bisection keeps ``lo`` failing and ``hi`` passing, so the result r reaches
    the threshold and r - tol does not. (The median is not strictly monotone in r under
    greedy clustering, so a smaller passing radius below r - tol can exist in rare cases.)
    """
    xy = check_positions(xy)
    if min_median_size < 1:
        raise ValueError(f"min_median_size must be >= 1, got {min_median_size}")
    if min_median_size > len(xy):
        raise ValueError(f"a median cluster size of {min_median_size} is impossible with {len(xy)} points; "
                         f"lower the threshold or use more points")
    tree = cKDTree(xy)
    extent = float(np.hypot(*np.ptp(xy, axis=0)))
    max_radius_m = max_radius_m if max_radius_m is not None else extent + tol_m
    cache: dict[int, Clustering] = {}
    graph: NeighbourGraph | None = None

    def at(step: int) -> Clustering:
        nonlocal graph
        if step not in cache:
            if graph is None or graph.max_radius_m < step * tol_m:
                graph = NeighbourGraph(tree, step * tol_m)  # built while growing hi; bisection reuses it
            cache[step] = cluster_fixed_radius(xy, step * tol_m, graph)
        return cache[step]

    def ok(step: int) -> bool:
        return median_cluster_size(at(step)) >= min_median_size

    # Upper bracket guess: the median distance to the (2 x threshold)-th neighbour of a sample,
    # grown by 25 % until it passes; the lower bracket is r = 0. Bisection then reuses one graph.
    sample = xy[np.random.default_rng(0).choice(len(xy), min(len(xy), 10_000), replace=False)]
    k = min(2 * min_median_size, len(xy) - 1)
    guess = float(np.median(tree.query(sample, k=k + 1)[0][:, -1]))
    hi = max(1, int(math.ceil(guess / tol_m)))
    while not ok(hi):
        if hi * tol_m > max_radius_m:
            raise ValueError(f"no radius up to {max_radius_m:.1f} m gives a median cluster size of "
                             f"{min_median_size}; lower the threshold")
        hi = max(hi + 1, int(hi * 1.25))  # small steps: the graph at hi is the costly part
    lo = 0  # r = 0 holds single points only, below any threshold > 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    best = at(hi)
    search = sorted((s * tol_m, median_cluster_size(c)) for s, c in cache.items())
    return Clustering(best.labels, best.anchors, best.radius_m, search)


def cluster_points(xy: np.ndarray, radius_m: float | None = None, min_median_size: int = 5,
                   tol_m: float = 0.1) -> Clustering:
    """Fixed radius if given (metres), otherwise the automatic radius of :func:`choose_radius`."""
    if radius_m is not None:
        return cluster_fixed_radius(xy, radius_m)
    return choose_radius(xy, min_median_size=min_median_size, tol_m=tol_m)
