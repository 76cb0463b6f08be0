"""Does dynamic fusion weigh the modalities by their quality? The routers' CFR share against the
quality of each sample's numeric estimates (issue: the paper's question under measured inputs).

For a trained SCADF-MoE run, every validation sample (a held-out-style validation trajectory at one
band) gets, per layer, the share of the experts' dispatched input drawn from CFR tokens
(:func:`scadf_lib.evaluation.modality_share`, mean over experts and, in the task MoE, over its tasks),
beside three measures of how good its numeric estimates are:

* ``snr_db``: the mean over its L points of the per-element SNR (dB) of the uplink measurement
  (:func:`scadf_lib.measure.measure` with the run's link budget; for an oracle-input run the default
  link budget, so that oracle and measured runs are binned alike: there it is a control, since oracle
  inputs do not degrade with SNR);
* ``missing``: whether any of its points has an estimated feature missing (measured inputs only);
* ``nlos_share``: the share of its points that are NLOS.

The verdict's rule (:func:`scadf_lib.studies.measured.quality_verdict`) was fixed before any number of
the study was looked at.

``python -m scadf_lib.routing_quality --work runs/measured --results results/measured`` scores every
finished SCADF-MoE run folder that lacks ``routing_quality.csv.gz`` and collects the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scadf_lib.checkpoints import BEST, RUN_CONFIG, RUN_METRICS, load_checkpoint, model_from_checkpoint
from scadf_lib.fileio import write_csv_atomic
from scadf_lib.studies.measured import quality_contrasts, quality_verdict
from scadf_lib.studies.resultset import ResultSet

#: The per-run table this module writes into a run folder, and collects into the result set.
ROUTING_QUALITY = ResultSet.ROUTING_QUALITY


def sample_quality(feats, dataset, snr_db: np.ndarray) -> pd.DataFrame:
    """One row per sample of ``dataset`` (a :class:`TrajectoryDataset` of ``feats``): its band (GHz),
    mean SNR (dB) over its points, whether a point has a missing feature, and its NLOS share.
    ``snr_db``: (B, N) per band and UE."""
    nb = len(dataset.band_idx)
    idx = np.arange(len(dataset))
    traj = dataset.trajectories[idx // nb]
    band = np.asarray(dataset.band_idx)[idx % nb]
    names = list(feats.numeric_names)
    flags = [i for i, n in enumerate(names) if "missing" in n]
    missing = (feats.numeric[band[:, None], traj][..., flags] > 0.5).any(axis=(1, 2)) if flags else \
        np.zeros(len(idx), bool)
    return pd.DataFrame({"band_ghz": np.asarray(feats.bands)[band],
                         "snr_db": snr_db[band[:, None], traj].mean(axis=1),
                         "missing": missing, "nlos_share": 1.0 - feats.los[band[:, None], traj].mean(axis=1)})


@torch.no_grad()
def sample_errors(model: torch.nn.Module, dataset, xy_scale_m: float, batch_size: int = 512) -> np.ndarray:
    """Per sample, the mean over its points of the squared position error (m²)."""
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        b = dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))
        pred = model(b["numeric"], b["cfr"]).points
        out.append((((pred - b["target"]) * xy_scale_m) ** 2).sum(-1).mean(-1).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def cfr_shares(model: torch.nn.Module, dataset, batch_size: int = 512) -> pd.DataFrame:
    """Per sample and layer, the CFR share of the experts' dispatched input (mean over experts and,
    in the task MoE, over tasks); one column per layer. Empty for a model without routing weights."""
    from scadf_lib.evaluation import modality_share
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(dataset), batch_size):
        b = dataset.batch(np.arange(start, min(start + batch_size, len(dataset))))
        out = model(b["numeric"], b["cfr"])
        if not out.routing:
            return pd.DataFrame()
        for key, disp in out.routing.items():
            if key.endswith("_dispatch"):
                d = disp.float().mean(1) if disp.dim() == 4 else disp.float()  # task MoE: mean over tasks
                share = modality_share(d, model.tokenizer.modality_of_token, model.cfg.n_experts).mean(-1)
                parts.setdefault(key.removesuffix("_dispatch"), []).append(share)
    return pd.DataFrame({layer: np.concatenate(v) for layer, v in parts.items()})


def snr_per_band_ue(cfg, ds) -> np.ndarray:
    """(B, N) per-element SNR (dB) of every band and UE under the run's link budget (the default one
    for an oracle-input run)."""
    from scadf_lib.measure import MeasurementConfig, link_snr_db
    mcfg = MeasurementConfig(**(cfg.measurement or {})) if cfg.inputs == "measured" else MeasurementConfig()
    return np.stack([link_snr_db(ds, float(b), mcfg) for b in ds["band"].values])


#: The per-(band, UE) SNR map of the study's default link budget, in the result set.
SNR_MAP = ResultSet.SNR_MAP


def write_snr_map(data_path: str, results: Path) -> Path:
    """``<results>/snr.csv.gz``: the per-element SNR (dB, 0.1 dB) of every band and UE of ``data_path``
    under the default link budget (:class:`scadf_lib.measure.MeasurementConfig`), which the default
    runs of the measured-input study (oracle and measured) share: the held-out points' errors are binned
    by it. Written once (the map depends on the data and the default budget only)."""
    from scadf_lib.config import TrainConfig
    from scadf_lib.schema import load_fingerprints
    out = results / SNR_MAP
    if not out.exists():
        ds = load_fingerprints(data_path)
        snr = snr_per_band_ue(TrainConfig(data_path=data_path), ds)
        b, u = np.meshgrid(ds["band"].values, np.arange(snr.shape[1]), indexing="ij")
        table = pd.DataFrame({"band_ghz": b.ravel(), "ue": u.ravel(), "snr_db": snr.ravel().round(1)})
        write_csv_atomic(table, out)
    return out


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    """The table as it is stored: SNR to 0.01 dB, shares to 1e-4 (a few hundred kB per run)."""
    shares = [c for c in table.columns if c.startswith("block") or c == "task"]
    return table.round({"snr_db": 2, "nlos_share": 3, "sq_error_m2": 3, **{c: 4 for c in shares}})


def score_run(run_dir: Path) -> pd.DataFrame | None:
    """The routing-against-quality table of one finished run folder (its ``best.pt``), written to
    ``routing_quality.csv.gz`` there; None for a model without routers or a folder without weights."""
    from scadf_lib.config import TrainConfig
    from scadf_lib.rundata import prepare_data
    from scadf_lib.schema import load_fingerprints
    if not (run_dir / BEST).exists():
        return None
    saved = json.loads((run_dir / RUN_CONFIG).read_text())["train_config"]
    cfg = TrainConfig(**saved)
    model, _ = model_from_checkpoint(load_checkpoint(run_dir / BEST))
    data = prepare_data(cfg)
    shares = cfr_shares(model, data.val)
    if shares.empty:
        return None
    quality = sample_quality(data.feats, data.val, snr_per_band_ue(cfg, load_fingerprints(cfg.data_path)))
    quality["sq_error_m2"] = sample_errors(model, data.val, data.norm.xy_scale)
    table = pd.concat([quality, shares], axis=1).assign(name=run_dir.name, inputs=cfg.inputs, seed=cfg.seed,
                                                       tx_power_dbm=(cfg.measurement or {}).get("tx_power_dbm"),
                                                       timing_offset_std_ns=(cfg.measurement or {}).get(
                                                           "timing_offset_std_ns"))
    table = _rounded(table)
    write_csv_atomic(table, run_dir / ROUTING_QUALITY)
    return table


def collect(work: Path, results: Path, names: list[str] | None = None) -> pd.DataFrame:
    """Score every finished SCADF-MoE run folder under ``work`` (or those ``names``) that lacks its table
    (or holds one of an earlier layout, without ``sq_error_m2``, and still has its weights),
    gather every run folder's table into ``<results>/routing_quality.csv.gz`` (rows of runs whose folder
    is gone are kept) and return it."""
    frames = []
    for run_dir in sorted(p for p in work.iterdir() if p.is_dir() and (names is None or p.name in names)):
        path = run_dir / ROUTING_QUALITY
        old = pd.read_csv(path) if path.exists() else None
        if old is not None and ("sq_error_m2" in old or not (run_dir / BEST).exists()):
            frames.append(old)
        elif "_scadf_" in run_dir.name and (run_dir / RUN_METRICS).exists():
            t = score_run(run_dir)
            if t is not None:
                frames.append(t)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out = results / ROUTING_QUALITY
    if out.exists() and len(table):
        old = pd.read_csv(out)
        table = pd.concat([old[~old.name.isin(set(table.name))], table], ignore_index=True)
    if len(table):
        table = _rounded(table)
        write_csv_atomic(table, out)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.routing_quality", description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="runs/measured", help="the sweep's run folders")
    ap.add_argument("--results", default="results/measured", help="where the collected table goes")
    a = ap.parse_args(argv)
    table = collect(Path(a.work), Path(a.results))
    if table.empty:
        print("no finished SCADF-MoE run folder with weights under", a.work)
        return 0
    contrasts = quality_contrasts(table)
    print(contrasts.round(4).to_string(index=False))
    print("verdict:", quality_verdict(contrasts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
