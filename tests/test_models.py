"""Models: shapes, soft-MoE properties, gradients, MMD, and that every model can fit a tiny batch."""

from __future__ import annotations

import pytest
import torch

from scadf_lib.models import (PLAIN_INIT, MMD_BANDWIDTHS, REGISTRY, ModelConfig, SoftMoE, build_model,
                              count_parameters, model_config, router_mmd, routing_sharpness)

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


@pytest.mark.parametrize("init", ["zero", "default"])
def test_gradients_reach_every_expert_and_router(init):
    """With zero-initialised residual outputs the experts' first layers and the routers get their
    gradient from the second step on (the first moves the output layers off zero)."""
    model = build_model(model_config("scadf", residual_init=init))
    if init == "zero":
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        out = model(*inputs())
        (out.points.pow(2).mean() + out.centroid.pow(2).mean()).backward()
        opt.step()
        model.zero_grad()
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
    mask = torch.ones(4, 10, dtype=torch.bool)
    c = torch.softmax(torch.randn(2, 1, 10, 8), dim=3)
    assert router_mmd(c.expand(2, 4, 10, 8), mask).abs() < 1e-6
    assert router_mmd(torch.softmax(3 * torch.randn(2, 4, 10, 8), 3), mask) > 1e-3


def test_mmd_has_a_fixed_bandwidth_and_grows_as_routers_part():
    """Fixed kernel: the same pair of routers gives the same MMD whatever else is in the batch, and
    tasks that use more different slots are further apart."""
    mask = torch.ones(2, 6, dtype=torch.bool)
    uniform = torch.full((6, 8), 1 / 8)

    def pair(shift: float) -> torch.Tensor:  # task 1 moves weight `shift` onto slot 0
        one = uniform * (1 - shift)
        one[:, 0] += shift
        return torch.stack([uniform, one])[None]

    values = [float(router_mmd(pair(s), mask)) for s in (0.1, 0.4, 0.9)]
    assert values[0] < values[1] < values[2]
    both = torch.cat([pair(0.4), pair(0.9)])  # batch mean = mean of the two alone
    assert float(router_mmd(both, mask)) == pytest.approx((values[1] + values[2]) / 2, rel=1e-5)


def test_task_router_draws_each_point_task_from_that_points_tokens(monkeypatch):
    """Task t < L dispatches only from point t's CFR and numeric tokens, the centroid task from all,
    and (self-attention aside) task t's vector depends on no other token."""
    cfg = ModelConfig()
    model = build_model(model_config("scadf")).eval()
    numeric, cfr = inputs(2, 5, cfg)
    d = model(numeric, cfr).routing["task_dispatch"]  # (B, L + 1, m, S)
    pot = model.tokenizer.point_of_token
    for t in range(cfg.trajectory_length):
        assert d[:, t][:, pot != t].abs().max() == 0, f"task {t} dispatches from other points' tokens"
        torch.testing.assert_close(d[:, t][:, pot == t].sum(1), torch.ones(2, d.shape[-1]))  # columns sum to 1
        assert int((pot == t).sum()) == 2 * cfg.cfr_tokens_per_point  # both modalities of point t
    assert (d[:, -1] > 0).all(), "the centroid task reads every token"
    moe = model.task_moe
    monkeypatch.setattr(moe.attn, "forward", lambda x: torch.zeros_like(x))  # isolate the task MoE
    x = torch.randn(1, len(pot), cfg.d_model, requires_grad=True)
    tasks, _ = moe(x)
    probe = torch.randn(cfg.d_model)  # (a plain sum of a LayerNorm output is constant)
    for t in range(cfg.trajectory_length):
        (grad,) = torch.autograd.grad(tasks[0, t] @ probe, x, retain_graph=True)
        reads = grad[0].abs().sum(-1) > 0
        assert torch.equal(reads, pot == t), f"task {t} depends on tokens {reads.nonzero().ravel().tolist()}"


def test_routing_sharpness_is_one_for_uniform_and_falls_when_routers_decide():
    m, s = 10, 8
    flat = routing_sharpness(torch.full((3, m, s), 1 / m), torch.full((3, m, s), 1 / s))
    assert float(flat["dispatch_entropy"]) == pytest.approx(1.0) and float(flat["combine_entropy"]) == pytest.approx(1.0)
    logits = 10 * torch.randn(3, m, s)
    sharp = routing_sharpness(logits.softmax(1), logits.softmax(2))
    assert float(sharp["dispatch_entropy"]) < 0.5 and float(sharp["combine_max"]) > 0.5


def test_router_scale_starts_at_sqrt_d_so_routing_is_not_uniform_at_init():
    model = build_model(model_config("scadf")).eval()
    out = model(*inputs(8))
    assert float(model.task_moe.router.log_scale.detach().exp()) == pytest.approx(8.0)
    assert float(out.metrics["task_combine_entropy"].detach()) < 0.95  # with scale 1 it is about 0.998


def test_uniform_routing_ablation_has_constant_routing():
    model = build_model(model_config("scadf_no_routing"))
    out = model(*inputs())
    d, c = out.routing["task_dispatch"], out.routing["task_combine"]
    mask = model.task_moe.task_tokens
    for t in range(mask.shape[0]):
        torch.testing.assert_close(d[:, t][:, mask[t]], torch.full_like(d[:, t][:, mask[t]], 1 / int(mask[t].sum())))
    torch.testing.assert_close(c, torch.full_like(c, 1 / c.shape[-1]))


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


def dense_router_mmd(combine: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """The router MMD as it was first written: the kernel over all T x m combine rows, with weight 0
    on the rows outside each task's slice (the reference for the gathered version)."""
    b, t, m, s = combine.shape
    flat = combine.float().reshape(b, t * m, s)
    sq = flat.pow(2).sum(-1)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * flat @ flat.transpose(1, 2)).clamp_min(0)
    k = sum(torch.exp(-d2 * s / bw) for bw in MMD_BANDWIDTHS) / len(MMD_BANDWIDTHS)
    w = token_mask.to(flat.dtype) / token_mask.sum(-1, keepdim=True)
    gram = torch.einsum("bimjn,im,jn->bij", k.reshape(b, t, m, t, m), w, w)
    diag = torch.diagonal(gram, dim1=1, dim2=2)
    mmd2 = diag[:, :, None] + diag[:, None, :] - 2 * gram
    pairs = torch.triu_indices(t, t, offset=1)
    return mmd2[:, pairs[0], pairs[1]].mean()


def test_slice_mmd_equals_the_dense_mmd_and_its_gradient():
    model = build_model(model_config("scadf"))
    mask = model.task_moe.task_tokens
    logits = torch.randn(3, mask.shape[0], mask.shape[1], 8, requires_grad=True)
    combine = (2 * logits).softmax(-1)
    fast, dense = model.task_moe.mmd(combine), dense_router_mmd(combine, mask)
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(router_mmd(combine, mask), dense, rtol=1e-5, atol=1e-7)
    g_fast, = torch.autograd.grad(fast, logits, retain_graph=True)
    g_dense, = torch.autograd.grad(dense, logits)
    torch.testing.assert_close(g_fast, g_dense, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("name", ["scadf", "softmoe", "transfusion"])
def test_every_residual_block_is_the_identity_at_init(name):
    """Zero-initialised residual outputs: each block returns its input, so at init the read-out
    sees each point's own tokens (review 2026-12, finding 1); the old init does not."""
    x = torch.randn(2, 40, 64)
    for init, identity in (("zero", True), ("default", False)):
        model = build_model(model_config(name, residual_init=init))
        for block in model.blocks:
            y = block(x)
            y = y[0] if isinstance(y, tuple) else y
            assert torch.allclose(y, x) == identity, (name, init)
    if name == "scadf":  # the task MoE adds nothing either: Z_t = LayerNorm(X[M_t])
        moe = build_model(model_config(name)).task_moe
        tasks, _ = moe(x)
        z = moe.ln_out(x)
        torch.testing.assert_close(tasks[:, 0], z[:, moe.task_tokens[0]].mean(1))


def test_encoder_norm_puts_both_modalities_at_one_token_scale():
    num, cfr = inputs(8)
    for norm, close in ((True, True), (False, False)):
        tok = build_model(model_config("transfusion", encoder_norm=norm)).tokenizer
        with torch.no_grad():
            rms_cfr = float(tok.cfr(cfr).pow(2).mean().sqrt())
            rms_num = float(tok.numeric(num).pow(2).mean().sqrt())
        assert (abs(rms_cfr / rms_num - 1) < 0.2) == close, (norm, rms_cfr, rms_num)


def test_plain_init_turns_off_the_zero_init_and_the_encoder_norm():
    old = build_model(model_config("transfusion", **PLAIN_INIT))
    assert float(old.blocks[0].attn.proj.weight.detach().abs().sum()) > 0
    assert isinstance(old.tokenizer.cfr.norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="residual_init"):
        model_config("scadf", residual_init="fixup")


@pytest.mark.parametrize("name", ["scadf", "concat"])
def test_first_numeric_layer_and_head_stay_fp32_under_bf16_autocast(name):
    """bf16 rounds a normalised position to ~1e-2 (0.3 m on munich): the head and the first numeric
    layer run in fp32 even under autocast (CPU autocast stands in for CUDA's here)."""
    model = build_model(model_config(name))
    num, cfr = inputs(2)
    seen = {}
    model.tokenizer.numeric.first.register_forward_hook(lambda m, i, o: seen.update(first=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(num, cfr)
    assert seen["first"] == torch.float32
    assert out.points.dtype == torch.float32 and out.centroid.dtype == torch.float32


def test_the_task_moe_read_out_over_slice_rows_equals_the_dense_one():
    """Z_t is only read on its slice, so gathering those rows is the dense formula (the model
    before the gather: residual and LayerNorm on all T x m rows, read-out weights zero off the slice)."""
    torch.manual_seed(0)
    moe = build_model(model_config("scadf", residual_init="default")).task_moe
    x = torch.randn(3, moe.task_tokens.shape[1], 64, requires_grad=True)
    tasks, routing = moe(x)
    h = x + moe.attn(moe.ln(x))
    y = moe.experts((torch.einsum("btms,bmd->btsd", routing["dispatch"], moe.ln_moe(h)) + moe.task_embedding)
                    .unflatten(2, (moe.n, moe.p))).flatten(2, 3)
    z = moe.ln_out(h[:, None] + torch.einsum("btms,btsd->btmd", routing["combine"], y))
    readout = moe.task_tokens.float() / moe.task_tokens.sum(-1, keepdim=True)
    dense = torch.einsum("btmd,tm->btd", z, readout)
    torch.testing.assert_close(tasks, dense, rtol=1e-5, atol=1e-6)
    g, = torch.autograd.grad(tasks.square().sum(), x, retain_graph=True)
    g_dense, = torch.autograd.grad(dense.square().sum(), x)
    torch.testing.assert_close(g, g_dense, rtol=1e-4, atol=1e-6)
