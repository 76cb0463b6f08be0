"""Degraded modalities: test-time corruption of one modality at a time, and the same corruptions as
training augmentation (beyond the paper; does dynamic fusion cope when a modality degrades?).

Modalities and corruptions (physical units; applied to the normalised model inputs by undoing the
training normalisation, corrupting, and normalising again)
    ``cfr``       complex white Gaussian noise at an SNR (dB) relative to each CFR's mean power per
                  subcarrier, then the usual per-UE RMS normalisation of the noisy CFR.
    ``angles``    Gaussian errors of standard deviation sigma (degrees) on AoD and AoA (independent).
    ``distance``  relative Gaussian errors: d (1 + sigma n), sigma in per cent.
    ``gain``      Gaussian errors of sigma dB on the path gain.
    missing       the modality's inputs set to the training mean (0 in normalised units). With
                  ``flags`` the model also gets one 0/1 input per modality saying it is missing
                  (4 extra numeric features); only a model trained with modality dropout
                  (:class:`Augment`) has learnt what the flag means.

A corruption is a :class:`Degradation`; :func:`degradation_grid` is the grid of the study:
CFR at 30, 20, 10, 0 dB; angles 1, 5, 10 degrees; distance 1, 5, 10 %; gain 1, 3, 6 dB; each
modality missing. The transforms act on a batch dict of :class:`TrajectoryDataset` (``numeric``
(B, L, 6), ``cfr`` (B, L, C, K), normalised) on its device; they are set on a dataset with
:meth:`TrajectoryDataset.with_transform`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import Protocol

import numpy as np
import pandas as pd
import torch

from scadf_lib.presets import AUGMENT_P_MISSING, AUGMENT_P_NOISE
from scadf_lib.trajectories import Features, Normalizer, SpatialSplit, TrajectoryDataset


class RunData(Protocol):
    """What the study's measurements read of a run's data: its test set, features, normalisation and
    split (:class:`scadf_lib.rundata.PreparedData` is one; this module does not import the engine)."""

    test: TrajectoryDataset
    feats: Features
    norm: Normalizer
    split: SpatialSplit

MODALITIES = ("cfr", "angles", "distance", "gain")
#: Columns of the numeric features (see :class:`scadf_lib.trajectories.Features`) of each scalar modality.
NUMERIC_COLUMNS = {"angles": (0, 1, 2, 3), "distance": (4,), "gain": (5,)}
#: Levels of the study, per noise kind (units in the names).
LEVELS = {"cfr_snr_db": (30.0, 20.0, 10.0, 0.0), "angle_deg": (1.0, 5.0, 10.0), "distance_pct": (1.0, 5.0, 10.0),
          "gain_db": (1.0, 3.0, 6.0)}
#: (4, 6) 0/1: which numeric columns belong to each modality of :data:`MODALITIES` (the CFR owns none).
MODALITY_COLUMNS = torch.tensor([[float(c in NUMERIC_COLUMNS.get(m, ())) for c in range(6)] for m in MODALITIES])
KIND_MODALITY = {"cfr_snr_db": "cfr", "angle_deg": "angles", "distance_pct": "distance", "gain_db": "gain"}
#: Training augmentation: the largest level drawn per kind (uniform in [0, max]; CFR: SNR in [0, 30] dB).
AUGMENT_MAX = {"angle_deg": 10.0, "distance_pct": 10.0, "gain_db": 6.0}
AUGMENT_SNR_DB = (0.0, 30.0)


@dataclass(frozen=True)
class Degradation:
    """One corruption: ``kind`` in :data:`LEVELS`, ``missing`` (``level`` is then the modality
    name) or ``clean``."""

    kind: str
    level: float | str | None = None

    @property
    def modality(self) -> str | None:
        if self.kind == "missing":
            return str(self.level)
        return KIND_MODALITY.get(self.kind)

    @property
    def label(self) -> str:
        return "clean" if self.kind == "clean" else f"{self.kind}={self.level:g}" if self.kind in LEVELS \
            else f"missing {self.level}"


def degradation_grid() -> list[Degradation]:
    """Clean, every noise level of :data:`LEVELS`, and each modality missing."""
    grid = [Degradation("clean")]
    grid += [Degradation(kind, level) for kind, levels in LEVELS.items() for level in levels]
    grid += [Degradation("missing", m) for m in MODALITIES]
    return grid


class _Space:
    """The training normalisation, and :data:`MODALITY_COLUMNS`, as tensors on one device (moved
    once with the transform: a host-to-GPU copy per batch would make every step wait for the device)."""

    def __init__(self, norm: Normalizer, num_antennas: int):
        self.num_mean = torch.as_tensor(norm.numeric_mean, dtype=torch.float32)
        self.num_std = torch.as_tensor(norm.numeric_std, dtype=torch.float32)
        self.cfr_mean = torch.as_tensor(norm.cfr_mean, dtype=torch.float32)[:, None]
        self.cfr_std = torch.as_tensor(norm.cfr_std, dtype=torch.float32)[:, None]
        self.columns = MODALITY_COLUMNS
        self.antennas = num_antennas

    def to(self, device: torch.device | str) -> "_Space":
        for name in ("num_mean", "num_std", "cfr_mean", "cfr_std", "columns"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def cfr_noise(cfr: torch.Tensor, noise_to_signal: torch.Tensor, space: _Space) -> torch.Tensor:
    """Add complex white Gaussian noise of power ``noise_to_signal`` (B,) times each CFR's mean
    power (SNR = -10 log10 of it, dB), renormalise each UE's CFR to unit RMS, rebuild (re, im, |.|)."""
    a = space.antennas
    x = cfr * space.cfr_std + space.cfr_mean  # (B, L, 3A, K): real, imag, magnitude
    h = torch.complex(x[:, :, :a], x[:, :, a:2 * a])
    power = h.abs().pow(2).mean(dim=(2, 3), keepdim=True)
    scale = torch.sqrt(power * noise_to_signal.view(-1, 1, 1, 1) / 2)
    h = h + scale * torch.complex(torch.randn_like(h.real), torch.randn_like(h.real))
    rms = h.abs().pow(2).mean(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-12)
    h = h / rms
    x = torch.cat([h.real, h.imag, h.abs()], dim=2)
    return (x - space.cfr_mean) / space.cfr_std


def numeric_noise(numeric: torch.Tensor, angle_rad: torch.Tensor, distance_rel: torch.Tensor, gain_db: torch.Tensor,
                  space: _Space) -> torch.Tensor:
    """Gaussian errors of per-sample standard deviations (B,) on the angles (rad), the distance
    (relative) and the gain (dB), applied in physical units."""
    x = numeric[..., :6] * space.num_std + space.num_mean
    b, l = x.shape[:2]
    noise = torch.randn(b, l, 4, device=x.device, dtype=x.dtype)
    aod = torch.atan2(x[..., 0], x[..., 1]) + angle_rad.view(-1, 1) * noise[..., 0]
    aoa = torch.atan2(x[..., 2], x[..., 3]) + angle_rad.view(-1, 1) * noise[..., 1]
    dist = x[..., 4] * (1 + distance_rel.view(-1, 1) * noise[..., 2])
    gain = x[..., 5] + gain_db.view(-1, 1) * noise[..., 3]
    y = torch.stack([torch.sin(aod), torch.cos(aod), torch.sin(aoa), torch.cos(aoa), dist, gain], dim=-1)
    return torch.cat([(y - space.num_mean) / space.num_std, numeric[..., 6:]], dim=-1)


def drop_modalities(numeric: torch.Tensor, cfr: torch.Tensor, missing: torch.Tensor, flags: bool,
                    columns: torch.Tensor = MODALITY_COLUMNS) -> tuple[torch.Tensor, torch.Tensor]:
    """Set missing modalities to the training mean (0 normalised). ``missing`` (B, 4) bool in the
    order of :data:`MODALITIES`; with ``flags`` append it to ``numeric`` as 4 0/1 features.
    ``columns``: :data:`MODALITY_COLUMNS`, best already on ``numeric``'s device (``_Space.columns``)."""
    cfr = cfr * (~missing[:, 0]).to(cfr.dtype).view(-1, 1, 1, 1)
    dropped = missing.to(numeric.dtype) @ columns.to(numeric)  # (B, 6): 1 where a column is missing
    numeric = numeric[..., :6] * (1 - dropped)[:, None, :]
    if flags:
        numeric = torch.cat([numeric, missing.to(numeric.dtype)[:, None, :].expand(-1, numeric.shape[1], -1)], dim=-1)
    return numeric, cfr


class Corrupt:
    """Dataset transform: one fixed :class:`Degradation` for every sample (test time)."""

    def __init__(self, degradation: Degradation, norm: Normalizer, num_antennas: int, flags: bool = False):
        self.degradation, self.flags = degradation, flags
        self.space = _Space(norm, num_antennas)

    def to(self, device: torch.device | str) -> "Corrupt":
        self.space.to(device)
        return self

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        d, numeric, cfr = self.degradation, batch["numeric"], batch["cfr"]
        b = numeric.shape[0]
        zeros = torch.zeros(b, device=numeric.device)
        if d.kind == "cfr_snr_db":
            cfr = cfr_noise(cfr, zeros + 10 ** (-float(d.level) / 10), self.space)
        elif d.kind in ("angle_deg", "distance_pct", "gain_db"):
            level = zeros + float(d.level)
            numeric = numeric_noise(numeric, level * math.pi / 180 if d.kind == "angle_deg" else zeros,
                                    level / 100 if d.kind == "distance_pct" else zeros,
                                    level if d.kind == "gain_db" else zeros, self.space)
        missing = torch.zeros(b, len(MODALITIES), dtype=torch.bool, device=numeric.device)
        if d.kind == "missing":
            missing[:, MODALITIES.index(str(d.level))] = True
        numeric, cfr = drop_modalities(numeric, cfr, missing, self.flags, self.space.columns)
        return {**batch, "numeric": numeric, "cfr": cfr}


class Augment:
    """Dataset transform for training: each sample is left clean (probability ``p_clean``), gets
    one noise kind at a uniformly drawn level (each ``p_noise``), or loses one modality (each
    ``p_missing``); with ``flags`` the missing-modality flags are appended. Draws use torch's
    global random state (restored on resume)."""

    def __init__(self, norm: Normalizer, num_antennas: int, flags: bool = True, p_noise: float = AUGMENT_P_NOISE,
                 p_missing: float = AUGMENT_P_MISSING):
        self.space = _Space(norm, num_antennas)
        self.flags = flags
        self.probs = torch.tensor([1 - 4 * p_noise - 4 * p_missing] + [p_noise] * 4 + [p_missing] * 4)
        if (self.probs < 0).any():
            raise ValueError("augmentation probabilities exceed 1: lower p_noise or p_missing")

    def to(self, device: torch.device | str) -> "Augment":
        self.space.to(device)
        self.probs = self.probs.to(device)
        return self

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        numeric, cfr = batch["numeric"], batch["cfr"]
        b, dev = numeric.shape[0], numeric.device
        choice = torch.multinomial(self.probs, b, replacement=True)  # 0 clean, 1-4 noise kinds, 5-8 missing
        u = torch.rand(b, device=dev)
        snr_db = AUGMENT_SNR_DB[0] + u * (AUGMENT_SNR_DB[1] - AUGMENT_SNR_DB[0])
        noisy_cfr = cfr_noise(cfr, 10 ** (-snr_db / 10), self.space)
        cfr = torch.where((choice == 1).view(-1, 1, 1, 1), noisy_cfr, cfr)
        noisy_num = numeric_noise(numeric, u * AUGMENT_MAX["angle_deg"] * math.pi / 180,
                                  u * AUGMENT_MAX["distance_pct"] / 100, u * AUGMENT_MAX["gain_db"], self.space)
        # each noisy sample takes the noisy columns of its one kind (choice 2-4 = modality 1-3);
        # the others keep their inputs exactly
        kind = (choice[:, None] - 1) == torch.arange(len(MODALITIES), device=dev)[None, :]  # (B, 4)
        pick = (kind.to(numeric.dtype) @ self.space.columns.to(numeric))[:, None, :] > 0  # (B, 1, 6)
        numeric = torch.where(pick, noisy_num, numeric)
        missing = (choice[:, None] - 5) == torch.arange(len(MODALITIES), device=dev)[None, :]
        numeric, cfr = drop_modalities(numeric, cfr, missing, self.flags, self.space.columns)
        return {**batch, "numeric": numeric, "cfr": cfr}


def flag_columns(flags: bool) -> int:
    """Extra numeric inputs of a model trained with missing-modality flags."""
    return len(MODALITIES) if flags else 0


def subset(n: int, size: int, seed: int = 0) -> np.ndarray:
    """A fixed random subset of ``size`` sample indices out of ``n`` (all of them if fewer)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


# ----------------------------------------------------------------------------- the study's measurements

#: Groups kept from each degraded evaluation (held-out is the headline).
DEGRADATION_GROUPS = ("held-out", "held-out-LOS", "held-out-NLOS", "overall")


def _test_subset(data: RunData, max_trajectories: int, seed: int) -> TrajectoryDataset:
    """The clean test set cut to a fixed subset of ``max_trajectories`` test trajectories."""
    return data.test.with_transform(None).subset(subset(len(data.test.trajectories), max_trajectories, seed))


def _corrupted(test: TrajectoryDataset, deg: Degradation, data: RunData, flags: bool,
               noise_seed: int) -> TrajectoryDataset:
    """``test`` with ``deg`` applied to every batch; the noise drawn after seeding with ``noise_seed``."""
    torch.manual_seed(noise_seed)
    return test.with_transform(Corrupt(deg, data.norm, data.feats.cfr.shape[2] // 3, flags))


@torch.no_grad()
def degraded_metrics(model: torch.nn.Module, data: RunData, flags: bool, device: torch.device | str = "cpu",
                     max_trajectories: int = 600, seed: int = 0) -> pd.DataFrame:
    """Held-out and overall MSE (m^2, all bands pooled) of ``model`` on a fixed subset of
    ``max_trajectories`` test trajectories under every corruption of :func:`degradation_grid`
    (the noise drawn with a fixed seed per corruption)."""
    from scadf_lib.evaluation import metrics_table, predict
    test = _test_subset(data, max_trajectories, seed)
    rows = []
    for i, deg in enumerate(degradation_grid()):
        ds = _corrupted(test, deg, data, flags, 10_000 * seed + i)
        m = metrics_table(predict(model, ds, data.feats, data.norm, data.split.unseen, device))
        m = m[(m.band == "all") & m.group.isin(DEGRADATION_GROUPS)]
        rows.append(m[["group", "mse_m2", "count"]].assign(corruption=deg.kind, level=str(deg.level), label=deg.label))
    return pd.concat(rows, ignore_index=True)


@torch.no_grad()
def routing_response(model: torch.nn.Module, data: RunData, flags: bool, device: torch.device | str = "cpu",
                     max_trajectories: int = 200, seed: int = 0) -> pd.DataFrame:
    """CFR share of each expert's input (:func:`scadf_lib.evaluation.modality_share`, mean over the
    samples and, in the task MoE, over the tasks) per layer, for the clean CFR, every CFR SNR of
    the grid and the CFR missing (SCADF-MoE models: those whose output has routing weights)."""
    from scadf_lib.evaluation import modality_share
    test = _test_subset(data, max_trajectories, seed).to(device)
    model.eval()
    grid = [d for d in degradation_grid() if d.kind in ("clean", "cfr_snr_db") or d.modality == "cfr"]
    rows = []
    for i, deg in enumerate(grid):
        b = _corrupted(test, deg, data, flags, 10_000 * seed + i).batch(np.arange(len(test)))
        out = model(b["numeric"], b["cfr"])
        if not out.routing:
            return pd.DataFrame()
        n_exp = model.cfg.n_experts
        for key, disp in out.routing.items():
            if not key.endswith("_dispatch"):
                continue
            d = disp.float().mean(1) if disp.dim() == 4 else disp.float()
            share = modality_share(d, model.tokenizer.modality_of_token, n_exp).mean(0)
            rows += [{"layer": key.removesuffix("_dispatch"), "expert": e, "cfr_share": float(v), "corruption": deg.kind,
                      "level": str(deg.level), "label": deg.label} for e, v in enumerate(share)]
    return pd.DataFrame(rows)
