"""Models: shapes, soft-MoE properties, gradients, MMD, and that every model can fit a tiny batch."""

from __future__ import annotations

import pytest
import torch

from scadf_lib.models import (REGISTRY, ModelConfig, SoftMoE, build_model, count_parameters, model_config,
                              router_mmd)

torch.manual_seed(0)


def inputs(b=4, L=5, cfg=None):
    cfg = cfg or ModelConfig()
    return torch.randn(b, L, cfg.num_numeric), torch.randn(b, L, cfg.cfr_channels, cfg.num_subcarriers)


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("L,b", [(1, 1), (3, 2), (5, 7)])
def test_output_shapes(name, L, b):
    model = build_model(model_config(name, trajectory_length=L))
    out = model(*inputs(b, L))
    assert out.points.shape == (b, L, 2) and out.centroid.shape == (b, 2)
    assert torch.isfinite(out.points).all()


def test_parameter_counts_are_printed_and_positive(capsys):
    for name in sorted(REGISTRY):
        n = count_parameters(build_model(model_config(name)))
        print(f"{name:22s} {n:>10,d} parameters")
        assert n > 1000
    assert "scadf " in capsys.readouterr().out


def test_soft_moe_dispatch_and_combine_normalisation():
    layer = SoftMoE(ModelConfig(n_experts=4, slots_per_expert=2))
    x = torch.randn(3, 11, 64)
    _, r = layer(x)
    assert r["dispatch"].shape == (3, 11, 8)
    torch.testing.assert_close(r["dispatch"].sum(dim=1), torch.ones(3, 8))  # columns over tokens
    torch.testing.assert_close(r["combine"].sum(dim=2), torch.ones(3, 11))  # rows over slots


def test_soft_moe_is_permutation_equivariant_in_tokens():
    layer = SoftMoE(ModelConfig())
    x = torch.randn(2, 9, 64)
    perm = torch.randperm(9)
    y, _ = layer(x)
    y_perm, _ = layer(x[:, perm])
    torch.testing.assert_close(y_perm, y[:, perm], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_expert_and_router():
    model = build_model(model_config("scadf"))
    out = model(*inputs())
    loss = out.points.pow(2).mean() + out.centroid.pow(2).mean() - 0.1 * out.mmd
    loss.backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, name
        if "experts.w1" in name or "router.phi" in name:
            per_unit = p.grad.abs().flatten(1).sum(1)  # per expert / per router
            assert (per_unit > 0).all(), f"{name}: some expert or router gets no gradient"


def test_mmd_zero_for_identical_routers_positive_otherwise():
    d = torch.softmax(torch.randn(2, 1, 10, 8), dim=2)
    c = torch.softmax(torch.randn(2, 1, 10, 8), dim=3)
    same = router_mmd(d.expand(2, 4, 10, 8), c.expand(2, 4, 10, 8))
    assert same.abs() < 1e-6
    diff = router_mmd(torch.softmax(torch.randn(2, 4, 10, 8), 2), torch.softmax(torch.randn(2, 4, 10, 8), 3))
    assert diff > 1e-3


def test_uniform_routing_ablation_has_constant_routing():
    model = build_model(model_config("scadf_no_routing"))
    out = model(*inputs())
    d = out.routing["task_dispatch"]
    assert torch.allclose(d, d.flatten()[0].expand_as(d))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_model_overfits_a_tiny_batch(name):
    torch.manual_seed(0)
    cfg = model_config(name, d_model=32, expert_hidden=64, n_blocks=1)
    model = build_model(cfg)
    numeric, cfr = inputs(8, 5, cfg)
    target = torch.randn(8, 5, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(300):
        out = model(numeric, cfr)
        mse = (out.points - target).pow(2).mean() + (out.centroid - target.mean(1)).pow(2).mean()
        first = first if first is not None else float(mse.detach())
        opt.zero_grad()
        mse.backward()
        opt.step()
    last = float(mse.detach())
    assert last < 0.02 * first, f"{name}: {first:.3f} -> {last:.4f}"
