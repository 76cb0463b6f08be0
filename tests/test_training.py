"""Training engine: a short run learns, resumes exactly after SIGKILL, DDP ranks agree,
checkpoints are safe and self-contained."""

from __future__ import annotations

import json
import os
from dataclasses import replace
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from scadf_lib.training import (TrainConfig, load_checkpoint, model_from_checkpoint, prepare_data, select_device,
                                train)
from scadf_lib.models import model_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"d_model": 32, "expert_hidden": 64, "n_blocks": 1}


def cfg(path, **kw):
    base = dict(data_path=str(path), epochs=2, batch_size=32, max_steps_per_epoch=12, device="cpu",
                model_overrides=SMALL, train_per_point=2.0, test_per_point=1.0)
    base.update(kw)
    return TrainConfig(**base)


def test_short_run_learns_and_writes_results(synthetic_nc, tmp_path):
    res = train(cfg(synthetic_nc, epochs=3, max_steps_per_epoch=40), tmp_path, progress=False)
    h = res.history
    assert h["train_mse_points"].iloc[-1] < h["train_mse_points"].iloc[0]
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert set(m.group) == {"overall", "LOS", "NLOS", "held-out", "held-out-LOS", "held-out-NLOS", "seen", "seen-LOS",
                            "seen-NLOS", "centroid", "centroid-of-points"}
    assert set(m.band) == {"all", "2.6", "6.0", "28.0"}
    overall = m[(m.band == "all") & (m.group == "overall")].iloc[0]
    # the metric is the mean squared Euclidean error in m^2
    table = res.predictions.point_table()
    assert overall.mse_m2 == pytest.approx(table.sq_error_m2.mean())
    assert overall.rmse_m == pytest.approx(np.sqrt(overall.mse_m2))
    # over whole trajectories the point MSE is the centroid term plus the offset term, exactly
    for band in ("all", "6.0"):
        row = m[(m.band == band) & (m.group == "overall")].iloc[0]
        assert row.mse_m2 == pytest.approx(row.centroid_term_m2 + row.offset_term_m2, rel=1e-6)
    p = res.predictions
    mean_pts = m[(m.band == "all") & (m.group == "centroid-of-points")].iloc[0]
    assert mean_pts.mse_m2 == pytest.approx(((p.points.mean(1) - p.centroid_truth) ** 2).sum(-1).mean())
    assert overall.centroid_term_m2 == pytest.approx(mean_pts.mse_m2)
    assert overall.offset_floor_m2 == pytest.approx(((p.truth - p.centroid_truth[:, None]) ** 2).sum(-1).mean())
    assert {"val_localisation", "val_seen_localisation", "offset_weight"} <= set(h.columns)
    assert (tmp_path / "best.pt").exists() and (tmp_path / "config.json").exists()


def test_checkpoint_is_self_contained(synthetic_nc, tmp_path):
    res = train(cfg(synthetic_nc, epochs=1), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "best.pt")
    model, norm = model_from_checkpoint(state)
    b = res.data.test.batch(np.arange(4))
    model.eval(), res.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(b["numeric"], b["cfr"]).points, res.model(b["numeric"], b["cfr"]).points)
    np.testing.assert_allclose(norm.xy_mean, res.data.norm.xy_mean)


def test_checkpoint_from_another_model_is_a_clear_error(synthetic_nc, tmp_path):
    train(cfg(synthetic_nc, epochs=1), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "best.pt")
    with pytest.raises(ValueError, match="another model configuration"):
        model_from_checkpoint(state, expected=model_config("transfusion"))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/scadf_pwned",))


def test_untrusted_checkpoint_never_executes_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_checkpoint(path)
    assert not Path("/tmp/scadf_pwned").exists()


def test_cpu_training_is_deterministic(synthetic_nc, tmp_path):
    a = train(cfg(synthetic_nc, epochs=1), tmp_path / "a", progress=False)
    b = train(cfg(synthetic_nc, epochs=1), tmp_path / "b", progress=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)


KILL_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from scadf_lib.training import TrainConfig, train
cfg = TrainConfig(data_path=sys.argv[1], epochs=3, batch_size=32, max_steps_per_epoch=25, device="cpu",
                  model_overrides={"d_model": 32, "expert_hidden": 64, "n_blocks": 1},
                  train_per_point=2.0, test_per_point=1.0)
train(cfg, sys.argv[2], progress=False)
"""


def test_resume_after_sigkill_matches_uninterrupted_run(synthetic_nc, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(synthetic_nc), str(killed)], env=env)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "last.pt").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(killed / "last.pt")
    assert state["epoch"] < 2, "the run should have been killed before finishing"
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(synthetic_nc), str(killed)], env=env, check=True)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(synthetic_nc), str(ref)], env=env, check=True)
    a, b = load_checkpoint(killed / "last.pt"), load_checkpoint(ref / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k in b["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    assert pd.read_csv(killed / "metrics.csv").equals(pd.read_csv(ref / "metrics.csv"))


def test_resume_into_a_run_with_another_config_is_refused(synthetic_nc, tmp_path):
    train(cfg(synthetic_nc, epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train(cfg(synthetic_nc, epochs=1, lr=5e-4), tmp_path, progress=False)


DDP_SCRIPT = """
import os, sys, torch
import torch.distributed as dist
from scadf_lib.training import TrainConfig, train
cfg = TrainConfig(data_path=sys.argv[1], epochs=1, batch_size=16, max_steps_per_epoch=6, device="cpu",
                  model_overrides={"d_model": 32, "expert_hidden": 64, "n_blocks": 1},
                  train_per_point=2.0, test_per_point=1.0)
res = train(cfg, sys.argv[2], progress=False)
torch.save(res.model.state_dict(), os.path.join(sys.argv[2], f"rank{dist.get_rank()}.pt"))
assert dist.get_world_size() == 2
dist.destroy_process_group()
"""


def test_ddp_two_cpu_ranks_end_with_identical_weights(synthetic_nc, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"]
    subprocess.run([*torchrun, str(script), str(synthetic_nc), str(tmp_path)], env=env, check=True, timeout=300)
    r0, r1 = torch.load(tmp_path / "rank0.pt", weights_only=True), torch.load(tmp_path / "rank1.pt", weights_only=True)
    init = load_checkpoint(tmp_path / "last.pt")
    assert init["epoch"] == 0
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("kw,match", [
    ({"model": "gpt"}, "unknown model"),
    ({"band": "7"}, "unknown band"),
    ({"epochs": -1}, "epochs must be a positive integer"),
    ({"regime": "sideways"}, "unknown regime"),
    ({"regime": "ood", "band": "28"}, "single band"),
    ({"compile": "fastest"}, "compile must be"),
])
def test_bad_settings_fail_early(kw, match, synthetic_nc):
    with pytest.raises(ValueError, match=match):
        cfg(synthetic_nc, **kw)


def test_ood_regime_trains_on_2_6_and_28_and_tests_on_6(synthetic_nc):
    data = prepare_data(cfg(synthetic_nc, regime="ood"))
    assert data.train_bands == (2.6, 28.0) and data.test_bands == (6.0,)
    assert {data.feats.bands[i] for i in data.train.band_idx} == {2.6, 28.0}


def test_normalisation_uses_training_points_only(synthetic_nc):
    data = prepare_data(cfg(synthetic_nc))
    np.testing.assert_allclose(data.norm.xy_mean, data.feats.xy[data.split.train_points].mean(0))


def test_device_selection():
    assert select_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")


def test_best_checkpoint_is_the_epoch_with_the_lowest_validation_localisation_error(synthetic_nc, tmp_path):
    """One selection rule for every method: points + centroid MSE, never the -lambda MMD term."""
    res = train(cfg(synthetic_nc, epochs=3), tmp_path, progress=False)
    h = res.history
    np.testing.assert_allclose(h.val_localisation, h.val_mse_points + h.val_mse_centroid, rtol=1e-6)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] + 1 == int(h.epoch[h.val_localisation.idxmin()])
    assert {"val_task_dispatch_entropy", "val_task_combine_entropy"} <= set(h.columns)  # routing sharpness


def test_a_checkpoint_written_by_a_cuda_run_resumes_on_the_cpu(synthetic_nc, tmp_path):
    """A CUDA run stores the CPU RNG state and the CUDA one; resuming loads both onto the CPU first
    (the landed code mapped the CPU RNG state onto the GPU and crashed)."""
    train(cfg(synthetic_nc, epochs=2), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["torch_rng"].dtype == torch.uint8 and state["cuda_rng"] is None
    state["cuda_rng"] = state["torch_rng"].clone()  # what torch.cuda.get_rng_state() holds: a CPU byte tensor
    state["epoch"], state["history"] = 0, state["history"][:1]  # as if killed after the first epoch
    torch.save(state, tmp_path / "last.pt")
    res = train(cfg(synthetic_nc, epochs=2), tmp_path, progress=False)
    assert list(res.history.epoch) == [1, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_resumes_on_cuda(synthetic_nc, tmp_path):
    train(cfg(synthetic_nc, epochs=2, device="cuda"), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["cuda_rng"] is not None
    state["epoch"], state["history"] = 0, state["history"][:1]  # as if killed after the first epoch
    torch.save(state, tmp_path / "last.pt")
    res = train(cfg(synthetic_nc, epochs=2, device="cuda"), tmp_path, progress=False)
    assert list(res.history.epoch) == [1, 2]


def test_batches_gathered_on_the_device_equal_the_host_ones(synthetic_nc):
    data = prepare_data(cfg(synthetic_nc))
    idx = np.array([3, 0, 7, 11])
    host, moved = data.train.batch(idx), data.train.to("cpu").batch(torch.as_tensor(idx))
    for k in host:
        torch.testing.assert_close(host[k], moved[k], rtol=0, atol=0)


def test_notebook_budget_is_a_full_run_on_a_gpu_and_a_quick_one_on_a_cpu(monkeypatch):
    from scadf_lib.training import FULL_GPU_RUN, QUICK_CPU_RUN, auto_budget
    epochs, steps, mode = auto_budget("cpu")
    assert (epochs, steps) == (QUICK_CPU_RUN["epochs"], QUICK_CPU_RUN["max_steps_per_epoch"]) and "quick" in mode
    assert auto_budget("cpu", 5, None)[:2] == (5, None)  # explicit values win
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    epochs, steps, mode = auto_budget("auto")
    assert (epochs, steps) == (FULL_GPU_RUN["epochs"], None) and "full run on the GPU" in mode


def test_validation_rows_leave_every_training_point_in_training():
    from scadf_lib.training import validation_rows

    rng = np.random.default_rng(0)
    rows = np.concatenate([np.arange(100).reshape(20, 5), rng.integers(0, 100, size=(30, 5))])
    val = validation_rows(rows, 0.1, seed=0)
    assert len(val) == 5 and len(set(val.tolist())) == 5
    keep = np.delete(rows, val, axis=0)
    assert set(keep.ravel().tolist()) == set(range(100))
    single = np.arange(50)[:, None]  # L = 1, one row per point: nothing can go without losing a point
    assert len(validation_rows(single, 0.1, seed=0)) == 5  # falls back to a few rows


def test_metrics_separate_held_out_from_seen_points(synthetic_nc, tmp_path):
    res = train(TrainConfig(data_path=str(synthetic_nc), epochs=1, max_steps_per_epoch=2, model="concat"),
                tmp_path / "run", progress=False)
    m = res.metrics[res.metrics.band == "all"].set_index("group")
    assert m.loc["held-out", "count"] + m.loc["seen", "count"] == m.loc["overall", "count"]
    assert m.loc["held-out-LOS", "count"] + m.loc["held-out-NLOS", "count"] == m.loc["held-out", "count"]
    t = res.predictions.point_table()
    held = t.ue.isin(res.data.split.test_points)
    np.testing.assert_array_equal(t.held_out.values, held.values)
    assert m.loc["held-out", "mse_m2"] == pytest.approx(t.sq_error_m2[held].mean())
    pe = pd.read_csv(tmp_path / "run" / "point_errors.csv")
    assert set(pe[pe.held_out].ue) == set(res.data.split.test_points.tolist())


def test_a_run_paused_by_its_time_limit_resumes_to_the_uninterrupted_result(synthetic_nc, tmp_path, monkeypatch):
    """``stop_at`` pauses between epochs (a sweep's bounded command); calling again finishes the run
    with the weights and metrics of a run never paused."""
    from scadf_lib import training
    from scadf_lib.training import Paused
    ref = train(cfg(synthetic_nc, epochs=3), tmp_path / "ref", progress=False)
    clock = iter([0.0, 1e12])  # the first epoch starts in time, the second would end too late
    real_time = time.time
    monkeypatch.setattr(training.time, "time", lambda: next(clock, real_time()))
    with pytest.raises(Paused, match="before epoch 2/3"):
        train(cfg(synthetic_nc, epochs=3), tmp_path / "paused", progress=False, stop_at=100.0)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "paused" / "last.pt")["epoch"] == 0
    assert not (tmp_path / "paused" / "metrics.csv").exists()
    res = train(cfg(synthetic_nc, epochs=3), tmp_path / "paused", progress=False, stop_at=time.time() + 3600)
    for (k, va), vb in zip(ref.model.state_dict().items(), res.model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)
    assert pd.read_csv(tmp_path / "paused" / "metrics.csv").equals(pd.read_csv(tmp_path / "ref" / "metrics.csv"))
    assert list(res.history.epoch) == [1, 2, 3] and res.history.elapsed_s.is_monotonic_increasing


def test_learning_rate_follows_the_square_root_rule():
    from scadf_lib.training import BASE_LR, scaled_lr
    assert scaled_lr(64) == pytest.approx(BASE_LR) == pytest.approx(3e-3)  # the project's choice at the paper's batch
    assert scaled_lr(256) == pytest.approx(2 * BASE_LR) and scaled_lr(1024) == pytest.approx(4 * BASE_LR)
    assert scaled_lr(256, base_lr=1e-3) == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="batch_size"):
        scaled_lr(0)


@pytest.mark.parametrize("mode", [True, pytest.param("reduce-overhead", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA graphs need CUDA (on a CPU this mode is the default one)"))])
def test_compiled_step_trains_like_the_eager_one(synthetic_nc, tmp_path, mode):
    """The torch.compile'd step (forward, loss with the router MMD, and its backward; CUDA graphs in
    "reduce-overhead" mode on a GPU) is the same computation as the eager step, on the CPU too."""
    device = "cuda" if mode == "reduce-overhead" else "cpu"
    short = dict(epochs=1, max_steps_per_epoch=4, device=device, amp=False)  # fp32: bf16 kernels differ
    eager = train(cfg(synthetic_nc, **short), tmp_path / "eager", progress=False)
    compiled = train(cfg(synthetic_nc, **short, compile=mode), tmp_path / "compiled", progress=False)
    for col in ("train_localisation", "train_mmd", "val_localisation", "val_mmd"):
        np.testing.assert_allclose(compiled.history[col], eager.history[col], rtol=1e-4, err_msg=col)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("augment", [False, True])
def test_cuda_training_step_never_waits_for_the_device(synthetic_nc, augment):
    """Batches gathered (and, for the degradation study, corrupted) on the GPU, loss with MMD,
    backward, clipping and fused AdamW: no step synchronises with the host (torch raises on any
    synchronising call in "error" mode)."""
    from scadf_lib.degradation import flag_columns
    from scadf_lib.training import make_loss_fn, make_optimizer, train_step
    c = cfg(synthetic_nc, device="cuda", augment=augment)
    data = prepare_data(c)
    mcfg = model_config("scadf", cfr_channels=data.feats.cfr.shape[2],
                        num_numeric=data.feats.numeric.shape[-1] + flag_columns(augment), **SMALL)
    from scadf_lib.models import build_model
    model = build_model(mcfg).cuda()
    opt, ds = make_optimizer(model, c, torch.device("cuda")), data.train.to("cuda")
    loss_fn = make_loss_fn(model, mcfg.mmd_weight, data.norm.xy_scale, use_amp=True)
    batches = [torch.randperm(len(ds), device="cuda")[:32] for _ in range(4)]
    train_step(loss_fn, list(model.parameters()), opt, ds.batch(batches[0]), 1.0)  # warm-up (lazy init)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for idx in batches[1:]:
            train_step(loss_fn, list(model.parameters()), opt, ds.batch(idx), 1.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_offset_curriculum_anneals_to_the_papers_loss_and_its_terms_decompose():
    """w(t) falls linearly from w0 to 1 by 70 % of the steps, and MSE_points = |mean p̂ - c|^2 +
    mse_offsets exactly (so w = 1 is the paper's loss)."""
    from types import SimpleNamespace

    from scadf_lib.training import compute_loss, offset_weight_at
    c = TrainConfig(offset_weight=30.0)
    w = [offset_weight_at(s, 1000, c) for s in (0, 350, 699, 700, 999)]
    assert w[0] == 30.0 and w[1] == pytest.approx(15.5) and 1 < w[2] < 1.1 and w[3] == w[4] == 1.0
    assert offset_weight_at(0, 1000, TrainConfig(offset_weight=1.0)) == 1.0
    with pytest.raises(ValueError, match="offset_weight"):
        TrainConfig(offset_weight=0.5)
    g = torch.Generator().manual_seed(0)
    target = torch.randn(16, 5, 2, generator=g)
    points = torch.randn(16, 5, 2, generator=g)
    out = SimpleNamespace(points=points, centroid=points.mean(1), mmd=None)
    terms = compute_loss(out, {"target": target, "centroid": target.mean(1)}, 0.0)
    centre = (points.mean(1) - target.mean(1)).pow(2).sum(-1).mean()
    torch.testing.assert_close(terms["mse_points"], centre + terms["mse_offsets"])


def test_weight_decay_spares_biases_gains_embeddings_and_the_router_scale():
    from scadf_lib.models import build_model
    from scadf_lib.training import decay_groups
    model = build_model(model_config("scadf", **SMALL))
    decay, keep = decay_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    kept = {names[id(p)] for p in keep["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert keep["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01
    assert {"tokenizer.point", "tokenizer.modality", "tokenizer.cfr.freq_pos", "task_moe.task_embedding",
            "task_moe.router.log_scale", "task_moe.experts.b1", "blocks.0.ln1.weight"} <= kept
    assert {"task_moe.experts.w1", "task_moe.router.phi", "blocks.0.attn.qkv.weight", "head.linear.weight"} <= decayed
    assert len(decay_groups(model, 0.01, decay_all=True)) == 1


def test_validation_points_are_held_out_like_the_test_points(synthetic_nc):
    """Selection data built like the test: validation points in no training and no test trajectory,
    every validation trajectory holds one, every validation point is in one; the held-out test points
    are the same as without validation points."""
    with_val = prepare_data(cfg(synthetic_nc, val_points_fraction=0.15))
    without = prepare_data(cfg(synthetic_nc, val_points_fraction=0.0))
    s = with_val.split
    vp = set(s.val_points.tolist())
    assert vp and not vp & set(np.unique(s.train_traj).tolist()) and not vp & set(np.unique(s.test_traj).tolist())
    assert np.isin(s.val_traj, s.val_points).any(axis=1).all()
    assert vp == set(np.unique(s.val_traj[np.isin(s.val_traj, s.val_points)]).tolist())
    assert not np.isin(s.val_traj, s.test_points).any()
    np.testing.assert_array_equal(np.sort(s.test_points), np.sort(without.split.test_points))
    assert len(with_val.val) == len(s.val_traj) * len(with_val.train_bands)  # selection: held-out style
    assert with_val.val_seen is not None and len(with_val.val_seen) > 0  # seen positions: monitored
    assert len(without.split.val_traj) == 0 and without.val is without.val_seen


def test_a_checkpoint_older_than_a_new_setting_resumes_when_the_setting_is_at_its_default(tmp_path):
    from scadf_lib.training import check_same_run
    cfg = TrainConfig(epochs=3)
    saved = json.loads(json.dumps(cfg.to_dict()))
    del saved["decay_fraction"], saved["stop_min_gain"]  # written before these fields existed
    check_same_run(saved, cfg, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="decay_fraction"):
        check_same_run(saved, replace(cfg, decay_fraction=0.75), tmp_path / "last.pt")
    with pytest.raises(ValueError, match="epochs"):
        check_same_run(saved, replace(cfg, epochs=4), tmp_path / "last.pt")


def test_a_longer_budget_on_the_same_schedule_continues_the_shorter_run_exactly(synthetic_nc, tmp_path):
    """``schedule_epochs`` fixes the lr schedule and curriculum; a larger maximum budget then trains on
    at the floor. A finished 2-epoch run resumed with ``epochs=3, schedule_epochs=2`` equals that run
    trained from scratch, weight for weight, and its third epoch is at the floor with the paper's loss."""
    from scadf_lib.training import check_same_run, extends_budget
    short = cfg(synthetic_nc, epochs=2, decay_fraction=0.5)
    longer = replace(short, epochs=3, schedule_epochs=2)
    train(short, tmp_path / "extended", progress=False)
    ext = train(longer, tmp_path / "extended", progress=False)
    ref = train(longer, tmp_path / "ref", progress=False)
    assert list(ext.history.epoch) == [1, 2, 3]
    pd.testing.assert_frame_equal(ext.history.drop(columns=["elapsed_s", "trajectories_per_s"]),
                                  ref.history.drop(columns=["elapsed_s", "trajectories_per_s"]))
    for (k, va), vb in zip(ext.model.state_dict().items(), ref.model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)
    assert ext.history.lr.iloc[-1] == pytest.approx(short.min_lr_fraction * short.lr)
    assert ext.history.offset_weight.iloc[-1] == 1.0
    saved = load_checkpoint(tmp_path / "ref" / "last.pt")["train_config"]
    assert json.loads((tmp_path / "extended" / "config.json").read_text())["train_config"]["schedule_epochs"] == 2
    # only the budget may grow: a stretched schedule, a smaller budget or another setting is another run
    assert extends_budget(short.to_dict(), longer) and not extends_budget(saved, longer)
    for other in (replace(short, epochs=3), replace(longer, epochs=4, schedule_epochs=3), replace(longer, lr=1e-4)):
        assert not extends_budget(short.to_dict(), other)
        with pytest.raises(ValueError, match="another configuration"):
            check_same_run(short.to_dict(), other, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="schedule_epochs"):
        TrainConfig(epochs=2, schedule_epochs=3)
