"""Each UE's ray-traced paths, as the generator stores them (data version 2).

Sionna RT gives, per band, every path of every UE of a solver call; this module matches a UE's
paths across the bands by their geometry (traced once), keeps the strongest ones that hold all but a
small share of the UE's power (:func:`stored_paths`) and turns them into the schema's variables
(:data:`scadf_lib.schema.PATH_SCHEMA`). :mod:`scadf_lib.measure` synthesises the array CFR from them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from scadf_lib.schema import PATH_SCHEMA


#: Per-path arrays of one band (ue, path) before storage (:func:`stored_paths`).
PATH_KEYS = tuple("path_" + k for k in ("coef", "tau", "valid", "interactions", "aod_az", "aod_el", "aoa_az",
                                       "aoa_el"))

#: Sionna RT interaction types (``sionna.rt.constants.InteractionType``) as stored per path: one hex
#: digit per bounce, first bounce lowest (0 = none: the LOS path is 0; a specular reflection then a
#: diffraction is 0x81). Decode with :func:`decode_interactions`.
INTERACTION_NAMES = {0: "none", 1: "specular", 2: "diffuse", 4: "refraction", 8: "diffraction"}


def interaction_codes(inter: np.ndarray) -> np.ndarray:
    """(depth, ue, path) Sionna interaction types -> (ue, path) int16 codes, one hex digit per bounce."""
    inter = np.asarray(inter, dtype=np.int64)
    return sum(inter[d] << (4 * d) for d in range(inter.shape[0])).astype(np.int16)


def decode_interactions(code: int) -> list[str]:
    """The bounces of one stored path, first first (``[]`` for the LOS path)."""
    out = []
    code = int(code)
    while code:
        out.append(INTERACTION_NAMES.get(code & 0xF, f"type {code & 0xF}"))
        code >>= 4
    return out


#: What makes a path the same path in every band: its geometry, traced once (multiband_paths).
PATH_GEOMETRY = ("tau", "aod_az", "aod_el", "aoa_az", "aoa_el", "interactions")


def merge_bands(per_band: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each UE's paths of every band as one set, matched by geometry (Sionna RT returns them in another
    order per band, and its field calculator may drop a path in one band only: a diffracted path at
    28 GHz, say). Returns the geometry arrays (ue, path), sorted by delay, and the gains (band, ue,
    path), 0 where a band lacks the path."""
    n_band, n_ue = len(per_band), per_band[0]["path_tau"].shape[0]
    rows = []
    for u in range(n_ue):
        paths: dict[tuple, np.ndarray] = {}
        for b, d in enumerate(per_band):
            v = d["path_valid"][u]
            for key, c in zip(zip(*(d["path_" + g][u][v].tolist() for g in PATH_GEOMETRY)), d["path_coef"][u][v]):
                paths.setdefault(key, np.zeros(n_band, np.complex128))[b] += c
        rows.append(sorted(paths.items(), key=lambda kv: kv[0]))
    width = max([1] + [len(r) for r in rows])
    geometry = {g: np.zeros((n_ue, width), per_band[0]["path_" + g].dtype) for g in PATH_GEOMETRY}
    coef = np.zeros((n_band, n_ue, width), np.complex128)
    for u, row in enumerate(rows):
        for p, (key, gains) in enumerate(row):
            for g, value in zip(PATH_GEOMETRY, key):
                geometry[g][u, p] = value
            coef[:, u, p] = gains
    geometry["valid"] = np.arange(width)[None, :] < np.array([len(r) for r in rows])[:, None]
    return geometry, coef


def stored_paths(per_band: list[dict[str, np.ndarray]], max_paths: int, power_tail: float) -> dict[str, np.ndarray]:
    """Each UE's strongest paths, padded to ``max_paths`` (padding: zero coefficient, zero delay).

    A path's rank is its largest share of the UE's received power over the bands; a UE keeps the
    fewest paths that hold all but ``power_tail`` of its power in every band, at most ``max_paths``.
    Returns (ue, path) arrays ``path_*``, ``path_coef`` (band, ue, path) and ``num_stored_paths``,
    ``stored_power_share`` (band, ue): the share of each band's received power the stored paths hold.
    """
    geometry, coef = merge_bands(per_band)
    power = np.abs(coef) ** 2
    total = power.sum(axis=2, keepdims=True)
    share = power / np.where(total > 0, total, 1.0)
    order = np.argsort(-share.max(axis=0), axis=1, kind="stable")[:, :max_paths]  # (ue, P')
    ue = np.arange(len(order))[:, None]
    cum = np.cumsum(share[:, ue, order], axis=2)  # (band, ue, P')
    enough = (cum >= 1.0 - power_tail).all(axis=0)
    n_keep = np.where(enough.any(axis=1), enough.argmax(axis=1) + 1, order.shape[1])
    n_keep = np.minimum(n_keep, geometry["valid"].sum(axis=1))
    keep = np.arange(order.shape[1])[None, :] < n_keep[:, None]
    pad = max_paths - order.shape[1]

    def take(x: np.ndarray, fill: float = 0.0) -> np.ndarray:
        picked = np.where(keep, x[ue, order], fill) if x.ndim == 2 else np.where(keep, x[:, ue, order], fill)
        widths = [(0, 0)] * (picked.ndim - 1) + [(0, pad)]
        return np.pad(picked, widths, constant_values=fill)

    out = {"path_" + k: take(geometry[k]) for k in PATH_GEOMETRY}
    out["path_coef"] = np.pad(np.where(keep[None], coef[:, ue, order], 0.0), [(0, 0), (0, 0), (0, pad)])
    out["num_stored_paths"] = n_keep.astype(np.int16)
    out["stored_power_share"] = np.where(keep[None], share[:, ue, order], 0.0).sum(axis=2)
    return out


def ue_axis(key: str) -> int:
    """The UE axis of a traced array: 0 for per-UE path arrays, 1 after the leading band axis."""
    return 0 if (key in PATH_KEYS and key != "path_coef") or key == "num_stored_paths" else 1


def path_variables(merged: dict[str, np.ndarray]) -> dict[str, xr.Variable]:
    """The stored paths as schema variables (:data:`scadf_lib.schema.PATH_SCHEMA`), the path axis cut
    to the most paths any UE keeps."""
    n = max(int(merged["num_stored_paths"].max()), 1)
    spec = PATH_SCHEMA

    def var(name: str, values: np.ndarray) -> xr.Variable:
        return xr.Variable(spec[name].dims, values, attrs={"units": spec[name].units, "long_name": spec[name].long_name})

    coef = merged["path_coef"][:, :, :n]
    out = {"path_delay": var("path_delay", merged["path_tau"][:, :n].astype(np.float32)),
           "path_coef_real": var("path_coef_real", coef.real.astype(np.float32)),
           "path_coef_imag": var("path_coef_imag", coef.imag.astype(np.float32)),
           "path_interactions": var("path_interactions", merged["path_interactions"][:, :n].astype(np.int16)),
           "num_stored_paths": var("num_stored_paths", merged["num_stored_paths"].astype(np.int16)),
           "stored_power_share": var("stored_power_share", merged["stored_power_share"].astype(np.float64))}
    for k in ("aod_az", "aod_el", "aoa_az", "aoa_el"):
        out[f"path_{k}"] = var(f"path_{k}", merged[f"path_{k}"][:, :n].astype(np.float32))
    return out
