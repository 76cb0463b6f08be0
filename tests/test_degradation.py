"""Corrupted modalities: each corruption has the size it claims, in physical units, and touches
only its modality; augmentation draws them at the stated rates; the study's scoring runs end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scadf_lib.degradation import (MODALITIES, Augment, Corrupt, Degradation, degradation_grid, degraded_metrics,
                                   routing_response)
from scadf_lib.training import TrainConfig, prepare_data, train


@pytest.fixture(scope="module")
def data(synthetic_nc):
    return prepare_data(TrainConfig(data_path=str(synthetic_nc), model="scadf", train_per_point=1.0,
                                    test_per_point=2.0))


def _batches(data, deg, flags=False, n=256):
    torch.manual_seed(0)
    idx = np.arange(min(n, len(data.test)))
    clean = data.test.batch(idx)
    bad = data.test.with_transform(Corrupt(deg, data.norm, 1, flags)).batch(idx)
    return clean, bad


def _physical(data, numeric):
    return numeric[..., :6].numpy() * data.norm.numeric_std + data.norm.numeric_mean


def _complex(data, cfr):
    x = cfr.numpy() * data.norm.cfr_std[:, None] + data.norm.cfr_mean[:, None]
    return x[:, :, 0] + 1j * x[:, :, 1]  # (B, L, K), one antenna


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 0.0])
def test_cfr_noise_has_the_stated_snr(data, snr_db):
    """Noisy and clean CFR are correlated as |rho|^2 = SNR / (1 + SNR) for white noise."""
    clean, bad = _batches(data, Degradation("cfr_snr_db", snr_db))
    h, g = _complex(data, clean["cfr"]), _complex(data, bad["cfr"])
    rho2 = np.abs((h * g.conj()).sum(-1)) ** 2 / ((np.abs(h) ** 2).sum(-1) * (np.abs(g) ** 2).sum(-1))
    snr = 10 ** (snr_db / 10)
    assert rho2.mean() == pytest.approx(snr / (1 + snr), abs=0.02)
    # still RMS-normalised, and the magnitude channel is |h| of the noisy CFR
    assert np.sqrt((np.abs(g) ** 2).mean(-1)) == pytest.approx(1.0, abs=1e-3)
    mag = bad["cfr"][:, :, 2].numpy() * data.norm.cfr_std[2] + data.norm.cfr_mean[2]
    np.testing.assert_allclose(mag, np.abs(g), atol=1e-4)
    torch.testing.assert_close(bad["numeric"], clean["numeric"])


@pytest.mark.parametrize("kind,level,column,measure", [
    ("angle_deg", 5.0, "angles", lambda a, b: np.angle(np.exp(1j * (np.arctan2(b[..., 0], b[..., 1])
                                                                     - np.arctan2(a[..., 0], a[..., 1])))) * 180 / math.pi),
    ("distance_pct", 5.0, "distance", lambda a, b: 100 * (b[..., 4] / a[..., 4] - 1)),
    ("gain_db", 3.0, "gain", lambda a, b: b[..., 5] - a[..., 5]),
])
def test_scalar_noise_has_the_stated_spread_in_physical_units(data, kind, level, column, measure):
    clean, bad = _batches(data, Degradation(kind, level))
    a, b = _physical(data, clean["numeric"]), _physical(data, bad["numeric"])
    err = measure(a, b)
    assert err.std() == pytest.approx(level, rel=0.1)
    assert abs(err.mean()) < 0.2 * level
    untouched = [c for c in range(6) if c not in {"angles": (0, 1, 2, 3), "distance": (4,), "gain": (5,)}[column]]
    np.testing.assert_allclose(a[..., untouched], b[..., untouched], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bad["cfr"], clean["cfr"])


@pytest.mark.parametrize("modality", MODALITIES)
def test_missing_modality_is_the_training_mean_and_flagged(data, modality):
    clean, bad = _batches(data, Degradation("missing", modality), flags=True)
    assert bad["numeric"].shape[-1] == 10
    flags = bad["numeric"][..., 6:]
    expected = torch.tensor([m == modality for m in MODALITIES], dtype=flags.dtype)
    assert (flags == expected).all()
    if modality == "cfr":
        assert (bad["cfr"] == 0).all()
        torch.testing.assert_close(bad["numeric"][..., :6], clean["numeric"])
    else:
        cols = {"angles": [0, 1, 2, 3], "distance": [4], "gain": [5]}[modality]
        assert (bad["numeric"][..., cols] == 0).all()
        keep = [c for c in range(6) if c not in cols]
        torch.testing.assert_close(bad["numeric"][..., keep], clean["numeric"][..., keep])


def test_augmentation_draws_each_corruption_at_its_rate(data):
    torch.manual_seed(0)
    aug = Augment(data.norm, 1, flags=True, p_noise=0.1, p_missing=0.05)
    ds = data.train.with_transform(aug)
    b = ds.batch(np.arange(4000) % len(ds))
    clean = data.train.batch(np.arange(4000) % len(ds))
    flags = b["numeric"][:, 0, 6:]
    assert flags.sum(1).max() <= 1  # at most one modality missing per sample
    np.testing.assert_allclose(flags.float().mean(0).numpy(), 0.05, atol=0.015)
    cfr_changed = ((b["cfr"] - clean["cfr"]).abs().amax(dim=(1, 2, 3)) > 1e-3) & (flags[:, 0] == 0)
    assert float(cfr_changed.float().mean()) == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError, match="exceed 1"):
        Augment(data.norm, 1, p_noise=0.2, p_missing=0.1)


def test_grid_covers_every_level_and_modality():
    labels = [d.label for d in degradation_grid()]
    assert labels[0] == "clean" and len(labels) == len(set(labels)) == 1 + 4 + 3 + 3 + 3 + 4
    assert {d.modality for d in degradation_grid() if d.kind == "missing"} == set(MODALITIES)


def test_augmented_run_trains_with_flags_and_is_scored_under_every_corruption(synthetic_nc, tmp_path):
    small = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}
    res = train(TrainConfig(data_path=str(synthetic_nc), model="scadf", epochs=1, max_steps_per_epoch=3,
                            augment=True, train_per_point=1.0, test_per_point=1.0, model_overrides=small),
                tmp_path / "aug", progress=False)
    assert res.model.cfg.num_numeric == 10
    table = degraded_metrics(res.model, res.data, flags=True, max_trajectories=50)
    assert set(table.label) == {d.label for d in degradation_grid()}
    held = table[table.group == "held-out"].set_index("label").mse_m2
    assert np.isfinite(held).all() and held["clean"] == pytest.approx(
        res.metrics.set_index(["band", "group"]).loc[("all", "held-out"), "mse_m2"], rel=0.5)
    resp = routing_response(res.model, res.data, flags=True, max_trajectories=20)
    assert set(resp.label) == {"clean", "missing cfr"} | {f"cfr_snr_db={s:g}" for s in (30, 20, 10, 0)}
    assert resp.cfr_share.between(0, 1).all()
    # with the CFR missing (all CFR tokens identical) the routers still give it a share, but a different one
    assert set(resp.layer) == {"block0", "task"}
