"""A small synthetic fingerprint dataset that follows the schema, for tests and quick demos.

Not ray-traced: a BS at (0, 0, 20) m, UEs on a jittered grid, a direct path plus a ground
reflection in free space. UEs with x > ``nlos_x_m`` are NLOS: the direct path is replaced by a
reflection off a wall at y = ``wall_y_m`` (image method), so the physics stays consistent
(angles, distance and gain come from the same path). Use the ray-traced files in ``data/`` for
any result.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import xarray as xr

from scadf_lib.paths import interaction_codes, stored_paths
from scadf_lib.raytrace import SPEED_OF_LIGHT, TraceConfig, cfr_from_paths, reduce_paths, to_dataset


def synthetic_fingerprints(n_side: int = 20, spacing_m: float = 2.0, bands_ghz: tuple[float, ...] = (2.6, 6.0, 28.0),
                           num_subcarriers: int = 64, nlos_x_m: float = 10.0, wall_y_m: float = 60.0,
                           seed: int = 0, with_paths: bool = False) -> xr.Dataset:
    """Schema-valid Dataset of ``n_side**2`` UEs on a jittered grid (metres) starting at x = y = 5 m.
    ``with_paths``: the two paths of every UE are stored too, as in data version 2."""
    rng = np.random.default_rng(seed)
    axis = 5.0 + spacing_m * np.arange(n_side)
    gx, gy = np.meshgrid(axis, axis)
    xy = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-0.3, 0.3, (n_side * n_side, 2)) * spacing_m
    n = len(xy)
    bs = np.array([0.0, 0.0, 20.0])
    ue = np.column_stack([xy, np.full(n, 1.5)])
    nlos = xy[:, 0] > nlos_x_m
    # Path 0: direct (LOS) or wall reflection (NLOS) via the image of the BS in the wall y = wall_y_m.
    src0 = np.where(nlos[:, None], bs * [1, -1, 1] + [0, 2 * wall_y_m, 0], bs)
    # Path 1: ground reflection, image of the BS below z = 0.
    src1 = bs * [1, 1, -1]
    cfg = TraceConfig(scene="synthetic", bs_position_m=tuple(bs), bands_ghz=bands_ghz,
                      num_subcarriers=num_subcarriers, ue_positions_m=tuple(map(tuple, xy)), bs_num_antennas=1)
    out: dict[str, list[np.ndarray]] = {}
    for band in bands_ghz:
        lam = SPEED_OF_LIGHT / (band * 1e9)
        vec = np.stack([ue - src0, ue - src1], axis=1)  # (n, 2, 3)
        dist = np.linalg.norm(vec, axis=-1)
        amp = lam / (4 * np.pi * dist) * np.array([1.0, 0.5])
        amp[:, 0] *= np.where(nlos, 0.3, 1.0)
        a = amp[:, None, :].astype(np.complex128)  # (n, 1 antenna, 2 paths)
        tau = dist / SPEED_OF_LIGHT
        # Departure azimuth: from BS towards the first interaction point (for the image method the
        # direction of the image-to-UE vector, mirrored back for the wall reflection).
        dep = vec.copy()
        dep[:, 0, 1] = np.where(nlos, -vec[:, 0, 1], vec[:, 0, 1])
        phi_t = np.arctan2(dep[..., 1], dep[..., 0])
        phi_r = np.arctan2(-vec[..., 1], -vec[..., 0])
        inter = np.zeros((1, n, 2), dtype=np.int64)
        inter[0, :, 1] = 1
        inter[0, :, 0] = np.where(nlos, 1, 0)
        valid = np.ones((n, 2), dtype=bool)
        res = reduce_paths(a, tau, valid, phi_t, phi_r, inter)
        res["cfr"] = cfr_from_paths(a, tau, valid, band * 1e9, cfg.subcarrier_offsets_hz())
        if with_paths:
            el_t = np.arctan2(dep[..., 2], np.hypot(dep[..., 0], dep[..., 1]))
            el_r = np.arctan2(-vec[..., 2], np.hypot(vec[..., 0], vec[..., 1]))
            res.update({"path_coef": a[:, 0] * np.exp(-2j * np.pi * band * 1e9 * tau), "path_tau": tau,
                        "path_valid": valid, "path_interactions": interaction_codes(inter), "path_aod_az": phi_t,
                        "path_aod_el": el_t, "path_aoa_az": phi_r, "path_aoa_el": el_r})
        for k, v in res.items():
            out.setdefault(k, []).append(v)
    merged = {k: np.stack(v) for k, v in out.items() if not k.startswith("path_") or k == "path_gain"}
    if with_paths:
        per_band = [{k: v[b] for k, v in out.items()} for b in range(len(bands_ghz))]
        merged.update(stored_paths(per_band, max_paths=4, power_tail=0.0))
    ds = to_dataset(merged, ue, cfg, candidates=n, outdoor=n)
    ds.attrs.update({"source": "scadf_lib.synthetic (not ray-traced)", "sionna_rt_version": "none",
                     "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return ds


def per_point_task(n: int, trajectory_length: int = 5, num_numeric: int = 6, cfr_shape: tuple[int, int] = (3, 64),
                   offset_rms: float = 0.029, nlos_share: float = 0.4, feature_noise: float = 0.002,
                   seed: int = 0) -> dict[str, "torch.Tensor"]:
    """``n`` synthetic trajectories at the real data's scales (normalised units), as a batch dict.

    Centres are standard normal per axis (the normalised scene spread, 1); each point lies a normal
    offset of RMS ``offset_rms`` per axis from its trajectory's centre (0.029: munich's 0.88 m per axis
    over its 30.6 m position scale, so the offsets hold ~1/1,200 of the target variance). A "LOS"
    point's numeric features are one fixed linear map of its own position (the same map for every
    seed) plus ``feature_noise``: its position is fixed by its own features, as a LOS point's is by
    its distance and AoD. A share ``nlos_share`` of the points are "NLOS": their features are another
    fixed map of the trajectory's *centre* plus noise (a reflected dominant path tells the area, not
    the point), so they are uninformative about the point's own offset and only the context of the
    LOS points places them; their last feature ("path gain") is lowered by 3, as a real NLOS path's
    excess loss shows against its distance. The CFR is noise.
    ``los`` (n, L) marks the informative points.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    L = trajectory_length
    centre = torch.randn(n, 1, 2, generator=g)
    offsets = torch.randn(n, L, 2, generator=g)
    offsets = (offsets - offsets.mean(1, keepdim=True)) * (L / max(L - 1, 1)) ** 0.5  # unit RMS, zero mean
    target = centre + offset_rms * offsets  # centroid = centre exactly
    mix = torch.randn(2, num_numeric, generator=torch.Generator().manual_seed(1234)) / 2 ** 0.5
    numeric = target @ mix + feature_noise * torch.randn(n, L, num_numeric, generator=g)
    los = torch.rand(n, L, generator=g) >= nlos_share
    mix_nlos = torch.randn(2, num_numeric, generator=torch.Generator().manual_seed(4321)) / 2 ** 0.5
    area = centre @ mix_nlos + offset_rms * torch.randn(n, L, num_numeric, generator=g)  # noise ~ an offset
    area[..., -1] -= 3.0
    numeric = torch.where(los[..., None], numeric, area)
    cfr = torch.randn(n, L, *cfr_shape, generator=g)
    return {"numeric": numeric, "cfr": cfr, "target": target, "centroid": target.mean(1), "los": los}
