"""Stacked training (scadf_lib.engine): a run trained in a stack equals the same run trained alone."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from scadf_lib.engine import StackedAdamW, clip_per_run, stack_key, train_stack
from scadf_lib.training import TrainConfig, train

SMALL = {"d_model": 16, "expert_hidden": 32, "n_blocks": 1}


def _cfgs(nc, model):
    base = TrainConfig(data_path=str(nc), model=model, epochs=3, max_steps_per_epoch=None, batch_size=64,
                       train_per_point=1.0, test_per_point=1.0, device="cpu", model_overrides=SMALL)
    # other seeds, a regime and a budget of their own: each keeps its schedule, data order and split
    return [base, replace(base, seed=1, regime="ood"), replace(base, seed=2, epochs=2, lr=1e-3)]


def _compare(alone, stacked):
    cols = ["train_total", "train_localisation", "val_localisation", "val_mse_points", "lr", "offset_weight", "step"]
    for a, s in zip(alone, stacked):
        assert len(a.history) == len(s.history)
        pd.testing.assert_frame_equal(a.history[cols], s.history[cols], rtol=2e-4, atol=1e-7)
        assert int(a.history.val_localisation.idxmin()) == int(s.history.val_localisation.idxmin())
        ma, ms = a.metrics.set_index(["band", "group"]), s.metrics.set_index(["band", "group"])
        np.testing.assert_allclose(ms.mse_m2, ma.mse_m2, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("model", ["concat", "scadf"])
def test_a_run_trained_in_a_stack_equals_the_run_trained_alone(synthetic_nc, tmp_path, model):
    cfgs = _cfgs(synthetic_nc, model)
    assert len({stack_key(c) for c in cfgs}) == 1
    alone = [train(c, tmp_path / f"alone{i}", progress=False) for i, c in enumerate(cfgs)]
    assert len(alone[0].data.train) % 64 != 0, "the test covers a short last batch"
    stacked = train_stack(cfgs, [tmp_path / f"stack{i}" for i in range(len(cfgs))])
    _compare(alone, stacked)
    assert (tmp_path / "stack2" / "metrics.csv").exists() and len(stacked[2].history) == 2, "a shorter run stops"


def test_a_stacked_run_resumes_and_its_checkpoint_resumes_alone(synthetic_nc, tmp_path, monkeypatch):
    cfgs = _cfgs(synthetic_nc, "concat")[:2]
    alone = [train(c, tmp_path / f"alone{i}", progress=False) for i, c in enumerate(cfgs)]
    # one epoch in a stack, then the rest in a stack again, and the second run alone from the stack's last.pt
    short = [replace(c, epochs=c.epochs) for c in cfgs]
    import scadf_lib.training as training  # the one epoch loop both engines share
    calls = {"n": 0}
    real = training.close_epoch

    def stop_after_first(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == len(short):
            raise KeyboardInterrupt
    monkeypatch.setattr(training, "close_epoch", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_stack(short, [tmp_path / "s0", tmp_path / "s1"])
    monkeypatch.setattr(training, "close_epoch", real)
    first = train_stack(short[:1], [tmp_path / "s0"])
    second = train(short[1], tmp_path / "s1", progress=False)
    _compare(alone, [first[0], second])


def test_stacked_adamw_and_clipping_match_torch_run_by_run():
    torch.manual_seed(0)
    ps = [torch.randn(3, 4) for _ in range(2)]
    stacked = {"w": torch.stack(ps).clone()}
    opt = StackedAdamW(stacked, {"w": 0.01}, runs=2)
    refs = [p.clone().requires_grad_(True) for p in ps]
    topts = [torch.optim.AdamW([p], lr=1e-2, weight_decay=0.01) for p in refs]
    for step in range(5):
        g = torch.randn(2, 3, 4) * 10
        active = torch.tensor([True, step % 2 == 0])  # run 1 skips every other step
        grads = {"w": g.clone()}
        clip_per_run(grads, torch.tensor([1.0, 1.0]))
        opt.step(grads, torch.tensor([1e-2, 1e-2]), active)
        for r in range(2):
            if active[r]:
                refs[r].grad = g[r].clone()
                torch.nn.utils.clip_grad_norm_([refs[r]], 1.0)
                topts[r].step()
    for r in range(2):
        torch.testing.assert_close(stacked["w"][r], refs[r].detach(), rtol=1e-5, atol=1e-6)


def test_runs_of_other_architectures_or_with_augmentation_are_refused(synthetic_nc, tmp_path):
    a, b, _ = _cfgs(synthetic_nc, "concat")
    with pytest.raises(ValueError, match="one architecture"):
        train_stack([a, replace(b, model="scadf")], [tmp_path / "x", tmp_path / "y"])
    with pytest.raises(ValueError, match="augmented"):
        train_stack([replace(a, augment=True)], [tmp_path / "z"])


def test_a_stacked_sweep_writes_the_tables_of_an_unstacked_one(synthetic_nc, tmp_path):
    from scadf_lib.experiments import execute, make_jobs
    from scadf_lib.planning import plan
    (tmp_path / "data").mkdir()
    shutil.copy(synthetic_nc, tmp_path / "data" / "munich.nc")
    runs = plan("smoke", data_dir=str(tmp_path / "data"), scenes=("munich",), studies=("main", "anchors"),
                methods=("concat", "scadf"))
    runs = [replace(r, cfg=replace(r.cfg, epochs=2, model_overrides=SMALL)) for r in runs]
    jobs = make_jobs(runs, stack=3)
    stacks = [j for j in jobs if isinstance(j, list)]
    assert {len(s) for s in stacks} == {2} and all(len({r.cfg.model for r in s}) == 1 for s in stacks)
    assert sum(len(j) if isinstance(j, list) else 1 for j in jobs) == len(runs)
    alone = execute(runs, tmp_path / "w1", tmp_path / "r1", progress=False)
    stacked = execute(runs, tmp_path / "w2", tmp_path / "r2", progress=False, stack=3)
    key = ["name", "band", "group"]
    a, s = alone.sort_values(key).reset_index(drop=True), stacked.sort_values(key).reset_index(drop=True)
    assert list(a.name) == list(s.name)
    np.testing.assert_allclose(s.mse_m2, a.mse_m2, rtol=2e-4, atol=1e-6)
    info = pd.read_csv(tmp_path / "r2" / "runs.csv")
    assert (info[info.study == "main"].stack_size == 2).all()
