"""Learning tests: each model can do the job it is for, on synthetic data whose answer is known.

The per-point task: a trajectory of L points scattered around a random centre; each point's numeric
features are a fixed linear map of that point's own position (plus a little noise), the CFR is
noise. So each point's target depends only on its own features, and a model that localises only
the trajectory's centre cannot beat the "predict the centroid" floor E|p_i - mean_j p_j|^2. Every
registered model must end far below that floor within a few hundred CPU steps. (Before the
modality-task MoE routed each task from its own slice of tokens, SCADF-MoE sat on the floor.)
"""

from __future__ import annotations

import pytest
import torch

from scadf_lib.models import REGISTRY, build_model, model_config
from scadf_lib.training import compute_loss

SMALL = {"d_model": 32, "expert_hidden": 64, "n_blocks": 1}


def per_point_task(n: int, cfg, seed: int) -> dict[str, torch.Tensor]:
    """``n`` trajectories (normalised units): centres uniform in [-2, 2]^2, offsets uniform in the unit disc."""
    g = torch.Generator().manual_seed(seed)
    L = cfg.trajectory_length
    centre = 4 * torch.rand(n, 1, 2, generator=g) - 2
    radius, angle = torch.rand(n, L, generator=g).sqrt(), 2 * torch.pi * torch.rand(n, L, generator=g)
    target = centre + torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)
    mix = torch.randn(2, cfg.num_numeric, generator=torch.Generator().manual_seed(1234))  # same map for every split
    numeric = target @ mix + 0.01 * torch.randn(n, L, cfg.num_numeric, generator=g)
    cfr = torch.randn(n, L, cfg.cfr_channels, cfg.num_subcarriers, generator=g)
    return {"numeric": numeric, "cfr": cfr, "target": target, "centroid": target.mean(1)}


def centroid_floor(data: dict[str, torch.Tensor]) -> float:
    """MSE (per point, squared Euclidean) of predicting every point at its trajectory's true centroid."""
    return float((data["target"] - data["centroid"][:, None]).pow(2).sum(-1).mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_localises_each_point_not_only_the_centroid(name):
    torch.manual_seed(0)
    cfg = model_config(name, **SMALL)
    model = build_model(cfg)
    train, test = per_point_task(4096, cfg, seed=0), per_point_task(512, cfg, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for step in range(400):
        idx = torch.randint(0, 4096, (64,), generator=torch.Generator().manual_seed(step))
        batch = {k: v[idx] for k, v in train.items()}
        loss = compute_loss(model(batch["numeric"], batch["cfr"]), batch, cfg.mmd_weight)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(test["numeric"], test["cfr"])
    mse = float((out.points - test["target"]).pow(2).sum(-1).mean())
    floor = centroid_floor(test)
    print(f"{name}: per-point MSE {mse:.4f}, centroid floor {floor:.4f}")
    assert mse < 0.1 * floor, f"{name}: per-point MSE {mse:.3f} vs centroid floor {floor:.3f}"


def redundant_task(n: int, cfg, seed: int) -> dict[str, torch.Tensor]:
    """Each point's position is encoded twice: linearly in the numeric features and, through another
    fixed linear map, as a level on every subcarrier of the CFR channels; either modality alone
    determines it."""
    data = per_point_task(n, cfg, seed)
    g = torch.Generator().manual_seed(seed + 100)
    mix = torch.randn(2, cfg.cfr_channels, generator=torch.Generator().manual_seed(4321))
    level = data["target"] @ mix  # (n, L, C)
    data["cfr"] = level[..., None] + 0.01 * torch.randn(n, cfg.trajectory_length, cfg.cfr_channels,
                                                       cfg.num_subcarriers, generator=g)
    return data


@pytest.mark.slow
def test_modality_dropout_with_flags_teaches_a_model_to_localise_without_a_modality():
    """Trained with :class:`Augment` (one modality missing at random, flagged), SCADF-MoE still
    localises each point when the angles (4 of the 6 numeric features) are missing at test time:
    the rest (distance, gain, CFR) still determines the position. Trained clean, it cannot. The
    augmentation costs little clean accuracy."""
    import numpy as np

    from scadf_lib.degradation import Augment, drop_modalities
    from scadf_lib.trajectories import Normalizer

    base = model_config("scadf", **SMALL)
    identity = Normalizer(np.zeros(6), np.ones(6), np.zeros(3), np.ones(3), np.zeros(2), 1.0)
    train, test = redundant_task(4096, base, seed=0), redundant_task(512, base, seed=1)
    results = {}
    for augmented in (False, True):
        torch.manual_seed(0)
        cfg = model_config("scadf", **SMALL, num_numeric=10 if augmented else 6)
        model = build_model(cfg)
        aug = Augment(identity, 1, flags=True, p_noise=0.0, p_missing=0.15) if augmented else None
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        for step in range(300):
            idx = torch.randint(0, 4096, (64,), generator=torch.Generator().manual_seed(step))
            batch = {k: v[idx] for k, v in train.items()}
            if aug is not None:
                batch = aug(batch)
            loss = compute_loss(model(batch["numeric"], batch["cfr"]), batch, cfg.mmd_weight)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        for case in ("clean", "angles missing"):
            batch = dict(test)
            missing = torch.zeros(len(batch["numeric"]), 4, dtype=torch.bool)
            missing[:, 1] = case == "angles missing"
            batch["numeric"], batch["cfr"] = drop_modalities(batch["numeric"], batch["cfr"], missing, augmented)
            with torch.no_grad():
                out = model(batch["numeric"], batch["cfr"])
            results[(augmented, case)] = float((out.points - test["target"]).pow(2).sum(-1).mean())
    floor = float(test["target"].pow(2).sum(-1).mean())  # predicting the origin
    print(results, "floor", floor)
    assert results[(True, "angles missing")] < 0.1 * floor
    assert results[(True, "angles missing")] < 0.2 * results[(False, "angles missing")]
    assert results[(True, "clean")] < 0.05 * floor
