"""Localise new measurements with a trained model: checkpoint in, fingerprints in, positions out.

Python::

    from scadf_lib.localise import Localiser
    from scadf_lib.schema import load_fingerprints

    loc = Localiser.from_checkpoint("results/models/munich_scadf.pt")
    ds = load_fingerprints("data/v1/munich.nc", positions=False)     # positions may be absent or NaN
    table = loc.predict_tracks(ds, [[120, 121, 122, 123, 124, 125, 126], [4000]], band=28)
    table[["track", "step", "ue", "x_m", "y_m"]]

Command line (``tracks.csv``: columns ``track``, ``step``, ``ue``; one row per measurement, ``ue`` the
index along the dataset's ``ue`` dimension, ``step`` the order within the track)::

    python -m scadf_lib.localise --checkpoint results/models/munich_scadf.pt --data data/v1/munich.nc \\
        --tracks tracks.csv --band 28 --out predictions.csv

Tracks. A track is a UE's consecutive measurements (indices into the dataset), any length >= 1. The
model places L points at once (its trajectory length, 5 for SCADF-MoE as in the paper). Over a track
of n >= L measurements a window of L consecutive measurements slides by one step (n - L + 1
windows); each measurement's position is the mean of the predictions of the windows that hold it
(1 to L of them). A track shorter than L is padded cyclically to one window of L (measurements
0, 1, ..., n-1, 0, 1, ...) and each measurement's position is the mean over its copies: a single
fingerprint is then the same fingerprint L times, which the models never saw in training (their
trajectories hold L distinct points within a cluster radius): expect it to be placed worse than in a
track. A model trained with L = 1 (no spatial context) places every measurement on its own.

Inference reads only the fingerprints (AoD, AoA, distance, path gain, CFR) of the chosen band,
never the positions (:func:`scadf_lib.trajectories.input_features`); where the dataset holds finite
positions the output adds the truth and the error (m).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import xarray as xr
from tqdm import tqdm

from scadf_lib.models import ModelConfig
from scadf_lib.schema import data_version, parse_band
from scadf_lib.dataversions import DATA_DIRS
from scadf_lib.checkpoints import checkpoint_bands, checkpoint_problem, load_checkpoint, model_from_checkpoint
from scadf_lib.trajectories import Features, Normalizer, TrajectoryDataset, model_inputs

#: Variables inference reads (positions are not among them).
INPUT_VARIABLES = ("aod", "aoa", "distance", "path_gain", "cfr_real", "cfr_imag")


class LocaliseError(ValueError):
    """Bad input to the Localiser: the message names the problem and the fix."""


def track_windows(n: int, length: int) -> np.ndarray:
    """(W, L) positions within a track of ``n`` measurements of the windows the model sees (module
    docstring): n - L + 1 sliding windows, or one cyclically padded window when n < L."""
    if n < 1:
        raise LocaliseError("a track is empty; every track needs at least one measurement")
    if n >= length:
        return np.arange(n - length + 1)[:, None] + np.arange(length)[None, :]
    return (np.arange(length) % n)[None, :]


def tracks_from_table(table: pd.DataFrame) -> tuple[list[np.ndarray], list[Any]]:
    """Tracks from a table with columns ``track``, ``step``, ``ue`` (one row per measurement): the UE
    indices of each track in ``step`` order, and the track labels."""
    missing = [c for c in ("track", "step", "ue") if c not in table]
    if missing:
        raise LocaliseError(f"the tracks table lacks columns {missing}; it needs track, step, ue "
                            f"(one row per measurement, ue = index along the dataset's ue dimension)")
    if table.ue.isna().any() or not np.allclose(table.ue, np.round(table.ue)):
        raise LocaliseError("the tracks table's ue column must hold integer UE indices")
    if table.duplicated(["track", "step"]).any():
        raise LocaliseError("the tracks table has two rows with the same (track, step); give each measurement "
                            "of a track its own step")
    ordered = table.sort_values(["track", "step"], kind="stable")
    groups = ordered.groupby("track", sort=False)
    return [g.ue.to_numpy(np.int64) for _, g in groups], list(groups.groups)


@dataclass
class Localiser:
    """A trained model with its normaliser, ready to place fingerprints (:meth:`predict_tracks`)."""

    model: nn.Module
    norm: Normalizer
    model_config: ModelConfig
    train_config: dict[str, Any]
    bands: tuple[float, ...]  # GHz: the bands the model trained or was tested on
    source: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # the run's epochs up to this checkpoint
    data_version: int = 1  # of the ray-traced data trained on (scadf_lib.dataversions); 1 where unrecorded

    @property
    def trajectory_length(self) -> int:
        """L: the measurements the model places at once."""
        return int(self.model_config.trajectory_length)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> "Localiser":
        """Load a checkpoint written by training (``best.pt``/``last.pt``) or the slim copies in
        ``results/**/models/``. Clear errors for a missing file, a file that is not a checkpoint, and a
        checkpoint of another layout (``format_version``) or with weights that do not fit its model."""
        state = load_checkpoint(path, map_location=device)
        problem = checkpoint_problem(state)
        if problem:
            raise LocaliseError(f"'{path}' {problem}")
        try:
            model, norm = model_from_checkpoint(state)
        except TypeError as exc:  # a model_config with fields this version does not know
            raise LocaliseError(f"'{path}' was written by another version of the models ({exc}): retrain it "
                                f"with this workbook") from exc
        return cls(model.to(device).eval(), norm, ModelConfig(**state["model_config"]), dict(state["train_config"]),
                   checkpoint_bands(state), str(path), list(state.get("history", [])),
                   int(state.get("data_version", 1)))

    # ------------------------------------------------------------------------------------- inputs

    def _band_index(self, ds: xr.Dataset, band: float | str) -> int:
        """The index along ``ds``'s band axis of ``band`` (GHz), a band this model trained or was tested on
        (:func:`scadf_lib.schema.parse_band`, as everywhere)."""
        try:
            value = parse_band(band, None)  # a positive number of GHz
        except ValueError as exc:
            raise LocaliseError(f"{exc}; this model knows {list(self.bands)} (GHz)") from None
        try:
            value = parse_band(value, self.bands)
        except ValueError:
            raise LocaliseError(f"band {value:g} GHz is not a band this model trained or was tested on; choose one of "
                                f"{list(self.bands)} (GHz)") from None
        available = tuple(float(b) for b in ds["band"].values)
        try:
            return available.index(parse_band(value, available))
        except ValueError:
            raise LocaliseError(f"the dataset has no {value:g} GHz measurements (its bands: {list(available)} GHz); "
                                f"pass one of those") from None

    def training_data_path(self) -> Path:
        """The fingerprint file this model was trained on: its recorded path, or for a model of data
        version 1 (recorded as ``data/<scene>.nc`` before version 2 existed) ``data/v1/<scene>.nc``."""
        from scadf_lib.fileio import project_path
        recorded = Path(str(self.train_config["data_path"]))
        if self.data_version == 1 and recorded.parent.name == "data":
            return project_path(f"{DATA_DIRS[1]}/{recorded.name}")
        return project_path(recorded)

    def check_data_version(self, ds: xr.Dataset) -> None:
        """Refuse this project's ray-traced data of another version than the model was trained on
        (the same scene traced anew: other UEs, other BS placement). Imported data are not checked."""
        if not str(ds.attrs.get("source", "")).startswith("NVIDIA Sionna RT"):
            return
        version = data_version(ds)
        if version != self.data_version:
            raise LocaliseError(f"this model was trained on ray-traced data version {self.data_version} and the "
                                f"dataset is version {version}: use the files of version {self.data_version} "
                                f"({DATA_DIRS.get(self.data_version, 'data')}/<scene>.nc; version 1: `python -m "
                                f"scadf_lib.dataversions restore 1`), or a model trained on version {version}")

    def _features(self, ds: xr.Dataset) -> Features:
        """The dataset's model inputs without its positions (NaN) or LOS flags (False)."""
        self.check_data_version(ds)
        missing = [v for v in INPUT_VARIABLES if v not in ds.variables]
        if missing:
            raise LocaliseError(f"the dataset lacks {missing}; a fingerprint dataset (scadf_lib.schema) holds "
                                f"{list(INPUT_VARIABLES)} per (band, ue)")
        numeric, cfr = model_inputs(ds, self.train_config.get("inputs", "oracle"),
                                    self.train_config.get("measurement", {}))
        mc = self.model_config
        if cfr.shape[2:] != (mc.cfr_channels, mc.num_subcarriers):
            raise LocaliseError(f"the dataset's CFR has {cfr.shape[2] // 3} antennas x {cfr.shape[3]} subcarriers; "
                                f"the model was trained on {mc.cfr_channels // 3} x {mc.num_subcarriers}: use data "
                                f"with the model's array and subcarriers")
        b, n = numeric.shape[:2]
        return Features(numeric, cfr, np.full((n, 2), np.nan), np.zeros((b, n), bool),
                        tuple(float(x) for x in ds["band"].values), self.train_config.get("inputs", "oracle"))

    def _check_tracks(self, tracks: Iterable[Sequence[int]], n_ue: int) -> list[np.ndarray]:
        if isinstance(tracks, (str, bytes)) or not isinstance(tracks, Iterable):
            raise LocaliseError("tracks must be a sequence of UE-index sequences, e.g. [[3, 4, 5], [9]]")
        out = []
        for i, t in enumerate(tracks):
            arr = np.atleast_1d(np.asarray(t))
            if arr.size == 0:
                raise LocaliseError(f"track {i} is empty; every track needs at least one measurement")
            if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.allclose(arr, np.round(arr))):
                raise LocaliseError(f"track {i} holds {arr.dtype} values; UE indices are integers")
            arr = arr.astype(np.int64)
            bad = arr[(arr < 0) | (arr >= n_ue)]
            if bad.size:
                raise LocaliseError(f"track {i} holds UE {int(bad[0])}, not in the dataset (UE indices 0..{n_ue - 1}); "
                                    f"tracks index the dataset's ue dimension")
            out.append(arr)
        if not out:
            raise LocaliseError("no tracks given; pass at least one track of UE indices")
        return out

    # ------------------------------------------------------------------------------------- inference

    @torch.no_grad()
    def place_windows(self, feats: Features, windows: np.ndarray, band_idx: int, batch_size: int = 1024,
                      progress: bool = False) -> np.ndarray:
        """(W, L, 2) positions (m) of the UE windows ``windows`` (W, L) at band ``band_idx``: the model's
        point predictions, batch by batch, exactly as :func:`scadf_lib.evaluation.predict` computes them."""
        ds = TrajectoryDataset(feats, windows, [band_idx], self.norm)
        if self.train_config.get("augment"):  # augmented models read a missing-modality flag per token: 0
            from scadf_lib.degradation import Corrupt, Degradation
            ds = ds.with_transform(Corrupt(Degradation("clean"), self.norm, feats.cfr.shape[2] // 3, flags=True))
        device = next(self.model.parameters()).device
        ds = ds.to(device)
        out = []
        starts = range(0, len(ds), batch_size)
        for start in tqdm(starts, desc="localise", unit="batch", disable=not progress or len(starts) < 2):
            b = ds.batch(np.arange(start, min(start + batch_size, len(ds))))
            pred = self.model(b["numeric"], b["cfr"])
            out.append(self.norm.to_metres(pred.points.float().cpu()).numpy())
        return np.concatenate(out) if out else np.zeros((0, windows.shape[1], 2))

    def predict_tracks(self, dataset: xr.Dataset, tracks: Iterable[Sequence[int]] | pd.DataFrame, band: float | str,
                       batch_size: int = 1024, progress: bool = False, labels: Sequence[Any] | None = None
                       ) -> pd.DataFrame:
        """Positions (m) of every measurement of every track at ``band`` (GHz).

        ``tracks``: UE-index sequences (a UE's consecutive measurements), or a table with columns
        track, step, ue (:func:`tracks_from_table`). Returns one row per measurement: ``track``,
        ``step``, ``ue``, ``band_ghz``, ``x_m``, ``y_m``, ``n_predictions`` (how many window slots placed it: their mean is the position) and,
        where the dataset holds finite positions, ``x_true_m``, ``y_true_m``, ``error_m`` (NaN
        elsewhere) and ``los``."""
        if isinstance(tracks, pd.DataFrame):
            tracks, labels = tracks_from_table(tracks)
        j = self._band_index(dataset, band)
        feats = self._features(dataset)
        tracks = self._check_tracks(tracks, feats.numeric.shape[1])
        labels = list(range(len(tracks))) if labels is None else list(labels)
        L = self.trajectory_length
        per_track = [track_windows(len(t), L) for t in tracks]
        offsets = np.cumsum([0] + [len(t) for t in tracks])
        slot = np.concatenate([w + offsets[i] for i, w in enumerate(per_track)])  # (W, L) rows of the output
        ue = np.concatenate(tracks)
        placed = self.place_windows(feats, ue[slot], j, batch_size, progress)
        sums = np.zeros((len(ue), 2))
        counts = np.zeros(len(ue))
        np.add.at(sums, slot.ravel(), placed.reshape(-1, 2).astype(np.float64))
        np.add.at(counts, slot.ravel(), 1.0)
        xy = sums / counts[:, None]
        out = pd.DataFrame({"track": np.repeat(labels, [len(t) for t in tracks]),
                            "step": np.concatenate([np.arange(len(t)) for t in tracks]), "ue": ue,
                            "band_ghz": feats.bands[j], "x_m": xy[:, 0], "y_m": xy[:, 1],
                            "n_predictions": counts.astype(int)})
        return self._with_truth(out, dataset, j)

    @staticmethod
    def _with_truth(out: pd.DataFrame, ds: xr.Dataset, band_idx: int) -> pd.DataFrame:
        """Truth and error where the dataset holds finite positions (read after inference, for scoring)."""
        if "x" in ds.variables and "y" in ds.variables:
            x, y = ds["x"].values.astype(np.float64)[out.ue], ds["y"].values.astype(np.float64)[out.ue]
        else:
            x = y = np.full(len(out), np.nan)
        out["x_true_m"], out["y_true_m"] = x, y
        out["error_m"] = np.hypot(out.x_m - x, out.y_m - y)
        if "los" in ds.variables:
            out["los"] = ds["los"].values[band_idx][out.ue].astype(bool)
        return out


# ----------------------------------------------------------------------------------------- model card

def split_scores(loc: Localiser, fingerprints: xr.Dataset, split: Any, band: float | str) -> dict[str, float]:
    """A model's scores on every test trajectory of ``split`` at ``band``: held-out MSE (points in no
    training trajectory), MSE over all test points (m²) and the median error (m)."""
    t = loc.predict_tracks(fingerprints, split.test_traj, band)
    held = split.unseen[t.ue]
    return {"held-out MSE (m²)": float((t.error_m[held] ** 2).mean()), "overall MSE (m²)": float((t.error_m ** 2).mean()),
            "median error (m)": float(t.error_m.median())}


def reference_checkpoint(scene: str, regime: str = "mix", model: str = "scadf") -> Path | None:
    """The committed seed-0 checkpoint of the reference set for ``scene``, ``regime`` and ``model``
    where one ships (``results/<set>/models/main_<scene>_<regime>_<model>_s0.pt``, or the routing
    inspector's ``results/models/<scene>_scadf.pt`` for Mix), else None."""
    from scadf_lib.checkpoints import inspector_name
    from scadf_lib.fileio import project_path
    from scadf_lib.presets import REFERENCE_SET
    from scadf_lib.runnames import main_run
    candidates = [project_path(f"results/{REFERENCE_SET}/models/{main_run(scene, regime, model, 0)}.pt")]
    if regime == "mix" and model == "scadf":
        candidates.append(project_path(f"results/models/{inspector_name(scene)}.pt"))
    return next((c for c in candidates if c.exists()), None)


def compare_with_reference(mine: Localiser, split: Any, fingerprints: xr.Dataset, band: float | str, scene: str,
                           ) -> pd.DataFrame:
    """A freshly trained model beside the committed reference run of its scene, regime and method
    (:func:`reference_checkpoint`), each on its own test split (:func:`split_scores`); the reference
    reads the data version it was trained on. Empty, with ``attrs["why"]``, where none compares."""
    from scadf_lib.config import TrainConfig, split_of
    from scadf_lib.schema import load_fingerprints
    tc = mine.train_config
    reference = reference_checkpoint(scene, tc.get("regime", "mix"), tc.get("model", "scadf"))
    if reference is None or str(tc.get("band", "mix")) != "mix":
        out = pd.DataFrame()
        out.attrs["why"] = (f"no committed reference for {scene}, {tc.get('regime')}, {tc.get('model')}, band "
                            f"{tc.get('band')}: results/models/ and results/flat/models/ hold the Mix SCADF-MoE of every "
                            "scene and the runs of the reference set that ship one")
        return out
    ref = Localiser.from_checkpoint(reference)
    ref_data = load_fingerprints(ref.training_data_path())
    ref_split = split_of(TrainConfig(**ref.train_config), np.stack([ref_data.x.values, ref_data.y.values], 1))
    rows = [{"model": "this run", **split_scores(mine, fingerprints, split, band)},
            {"model": f"reference {reference.name} (data version {ref.data_version}, {len(ref.history)} epochs)",
             **split_scores(ref, ref_data, ref_split, band)}]
    return pd.DataFrame(rows)


def checkpoint_facts(path: Path) -> dict[str, Any]:
    """What a checkpoint says about its run: scene, method, regime, seed, L, bands, the saved (best)
    epoch and the training steps to it, parameters."""
    loc = Localiser.from_checkpoint(path)
    tc = loc.train_config
    hist = pd.DataFrame(loc.history)
    best = int(hist.val_localisation.idxmin()) + 1 if "val_localisation" in hist else None
    return {"file": path.name, "scene": Path(str(tc["data_path"])).stem, "model": tc["model"], "regime": tc["regime"],
            "seed": int(tc["seed"]), "L": loc.trajectory_length, "bands_ghz": "/".join(f"{b:g}" for b in loc.bands),
            "best_epoch": best, "steps_to_best": int(hist.step.iloc[best - 1]) if best and "step" in hist else None,
            "parameters": sum(p.numel() for p in loc.model.parameters())}


def model_card(models_dir: Path, metrics_csv: Path | None = None) -> str:
    """``README.md`` text for a folder of checkpoints: one row per file (:func:`checkpoint_facts`) with
    its held-out and overall test MSE (m², bands pooled) from ``metrics_csv`` (the result set's
    ``all_metrics.csv``, matched on scene, model, regime, seed and L of a ``main`` or ``spatial`` run)."""
    rows = pd.DataFrame([checkpoint_facts(p) for p in sorted(Path(models_dir).glob("*.pt"))])
    if metrics_csv is not None and Path(metrics_csv).exists() and len(rows):
        m = pd.read_csv(metrics_csv, dtype={"band": str})
        m = m[m.study.isin(["main", "spatial"]) & (m.band == "all")]
        for group in ("held-out", "overall"):
            g = m[m.group == group].rename(columns={"trajectory_length": "L", "mse_m2": f"{group} MSE (m²)"})
            g = g.drop_duplicates(["scene", "model", "regime", "seed", "L"])
            rows = rows.merge(g[["scene", "model", "regime", "seed", "L", f"{group} MSE (m²)"]], how="left",
                              on=["scene", "model", "regime", "seed", "L"])
    from scadf_lib.tables import md_table
    table = md_table(rows.round(3)) if len(rows) else "(no checkpoints)"
    source = f" and `{metrics_csv}`" if metrics_csv is not None else ""
    return f"""# Trained models

Generated by `python -m scadf_lib.localise --model-card {models_dir}` from the checkpoints{source}; do not edit by hand.

Each file holds the weights of one run's best epoch (lowest validation error: points + centroid MSE),
its model and training configurations, the normalisation statistics fitted on its training points,
and its learning history. **Data**: the scene's fingerprints of data version 1 (`data/v1/<scene>.nc`, Sionna RT,
2.6 / 6 / 28 GHz, 64 subcarriers over 50 MHz). **Split**: radius clusters of the true positions,
20 % of each cluster's points held out (in no training trajectory), seeded by the run's seed
(`scadf_lib.config.split_of` rebuilds it from the checkpoint). **Protocol**: the reference set's
(`flat` preset: AdamW, batch 64, lr 3e-3, cosine to a 1 % floor held until the validation curve is
flat or 240 epochs). MSE is the mean squared Euclidean error over the run's test trajectories,
bands pooled, in m² (the paper's metric); `held-out` scores the points no training trajectory holds.

{table}

Load and use one (positions of new measurements, see `scadf_lib/localise.py`):

```python
from scadf_lib.localise import Localiser
from scadf_lib.schema import load_fingerprints

loc = Localiser.from_checkpoint("results/models/munich_scadf.pt")
ds = load_fingerprints("data/v1/munich.nc", positions=False)   # positions may be absent or NaN
table = loc.predict_tracks(ds, [[120, 121, 122, 123, 124, 125]], band=28)   # x_m, y_m per measurement
```

or `python -m scadf_lib.localise --checkpoint results/models/munich_scadf.pt --data data/v1/munich.nc --tracks tracks.csv --band 28 --out predictions.csv`.
"""


# ----------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.localise",
                                 description="Place the measurements of UE tracks with a trained model.")
    ap.add_argument("--checkpoint", help="a best.pt or a results/**/models/*.pt file")
    ap.add_argument("--data", help="fingerprint netCDF file (positions may be absent or NaN)")
    ap.add_argument("--tracks", default=None,
                    help="CSV with columns track, step, ue (default: every UE of the file on its own, one track each)")
    ap.add_argument("--band", help="carrier band in GHz, e.g. 28")
    ap.add_argument("--out", help="output CSV (written atomically)")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--model-card", metavar="DIR", default=None,
                    help="instead: write DIR/README.md describing DIR's checkpoints (with --metrics)")
    ap.add_argument("--metrics", default="results/flat/all_metrics.csv", help="the model card's metrics table")
    a = ap.parse_args(argv)
    from scadf_lib.fileio import atomic_path, write_csv_atomic
    if a.model_card:
        with atomic_path(Path(a.model_card) / "README.md") as tmp:
            tmp.write_text(model_card(Path(a.model_card), Path(a.metrics)))
        print(f"wrote {a.model_card}/README.md")
        return 0
    missing = [f"--{k}" for k in ("checkpoint", "data", "band", "out") if getattr(a, k) is None]
    if missing:
        ap.error(f"the following arguments are required: {', '.join(missing)}")
    from scadf_lib.schema import DatasetError, load_fingerprints
    try:
        loc = Localiser.from_checkpoint(a.checkpoint)
        ds = load_fingerprints(a.data, positions=False)
        if a.tracks is None:
            tracks: Any = [[i] for i in range(ds.sizes["ue"])]
        else:
            path = Path(a.tracks)
            if not path.is_file():
                raise LocaliseError(f"tracks file '{path}' does not exist; write a CSV with columns track, step, ue")
            tracks = pd.read_csv(path)
        table = loc.predict_tracks(ds, tracks, a.band, batch_size=a.batch_size, progress=True)
    except (LocaliseError, DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_csv_atomic(table, Path(a.out))
    known = table.error_m.notna()
    summary = (f"; median error {table.error_m[known].median():.2f} m over {int(known.sum())} measurements with known "
               f"positions" if known.any() else "")
    print(f"{len(table)} measurements of {table.track.nunique()} tracks placed at {table.band_ghz.iloc[0]:g} GHz "
          f"by {loc.model_config.name} (L = {loc.trajectory_length}) -> {a.out}{summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
