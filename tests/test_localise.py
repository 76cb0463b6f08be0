"""The Localiser (trained model -> positions of new measurements) and test-time tracks, on the
shipped munich data with the committed SCADF-MoE checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from scadf_lib.evaluation import predict
from scadf_lib.fileio import project_path
from scadf_lib.localise import Localiser, LocaliseError, main, track_windows
from scadf_lib.dataversions import v1_available
from scadf_lib.presets import REFERENCE_DATA_DIR
from scadf_lib.schema import load_fingerprints
from scadf_lib.tracks import grid_neighbours, random_walks, window_centroid_floor
from scadf_lib.training import TrainConfig, split_of
from scadf_lib.trajectories import TrajectoryDataset, build_features

CKPT = project_path("results/models/munich_scadf.pt")
DATA = project_path(f"{REFERENCE_DATA_DIR}/munich.nc")  # the data version the shipped model was trained on
pytestmark = pytest.mark.skipif(not v1_available(), reason="data version 1 is not here: "
                                "`python -m scadf_lib.dataversions restore 1` (make setup does it)")


@pytest.fixture(scope="module")
def munich():
    loc = Localiser.from_checkpoint(CKPT)
    ds = load_fingerprints(DATA)
    feats = build_features(ds)
    split = split_of(TrainConfig(**loc.train_config), feats.xy)
    return loc, ds, feats, split


def test_localiser_reproduces_evaluation_predict_on_the_test_trajectories(munich):
    loc, ds, feats, split = munich
    traj = split.test_traj[:400]
    for band in (2.6, 28.0):
        ref = predict(loc.model, TrajectoryDataset(feats, traj, [feats.bands.index(band)], loc.norm), feats, loc.norm,
                      split.unseen)
        table = loc.predict_tracks(ds, traj, band)
        assert np.array_equal(table[["x_m", "y_m"]].to_numpy().reshape(ref.points.shape), ref.points)
        assert (table.n_predictions == 1).all() and list(table.track.unique()) == list(range(len(traj)))
        assert np.allclose(table.error_m.to_numpy(), np.linalg.norm(ref.points - ref.truth, axis=-1).ravel())


def test_inference_never_reads_positions(munich):
    loc, ds, _, split = munich
    tracks = [split.test_traj[0], split.test_traj[1][:2], [7]]
    blind = ds.copy(deep=True)
    blind["x"][:] = np.nan
    blind["y"][:] = np.nan
    a = loc.predict_tracks(ds, tracks, 6)
    b = loc.predict_tracks(blind, tracks, 6)
    assert np.array_equal(a[["x_m", "y_m"]].to_numpy(), b[["x_m", "y_m"]].to_numpy())
    assert b.error_m.isna().all() and a.error_m.notna().all()
    c = loc.predict_tracks(blind.drop_vars(["x", "y"]), tracks, 6)
    assert np.array_equal(a.x_m.to_numpy(), c.x_m.to_numpy())


def test_sliding_windows_average_every_window_that_holds_a_point(munich):
    loc, ds, _, _ = munich
    assert track_windows(7, 5).tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]]
    assert track_windows(2, 5).tolist() == [[0, 1, 0, 1, 0]]
    track = np.arange(100, 107)
    table = loc.predict_tracks(ds, [track], 28)
    assert table.n_predictions.tolist() == [1, 2, 3, 3, 3, 2, 1]
    windows = loc.predict_tracks(ds, [track[i:i + 5] for i in range(3)], 28)  # each window on its own
    by_step = windows.assign(pos=[i + s for i in range(3) for s in range(5)]).groupby("pos")[["x_m", "y_m"]].mean()
    assert np.allclose(table[["x_m", "y_m"]].to_numpy(), by_step.to_numpy(), atol=1e-9)


def test_a_model_without_spatial_context_places_each_measurement_on_its_own(munich):
    loc, ds, _, _ = munich
    from scadf_lib.models import build_model, model_config
    torch.manual_seed(0)
    mc = model_config("scadf", trajectory_length=1, cfr_channels=3, num_subcarriers=64)
    single = Localiser(build_model(mc).eval(), loc.norm, mc, loc.train_config, loc.bands)
    together = single.predict_tracks(ds, [[10, 11, 12]], 2.6)
    alone = single.predict_tracks(ds, [[10], [11], [12]], 2.6)
    assert np.allclose(together[["x_m", "y_m"]].to_numpy(), alone[["x_m", "y_m"]].to_numpy(), atol=1e-6)
    assert (together.n_predictions == 1).all()


def test_bad_inputs_fail_early_with_the_fix(munich, tmp_path):
    loc, ds, _, _ = munich
    with pytest.raises(LocaliseError, match=r"5 GHz is not a band .*\[2.6, 6.0, 28.0\]"):
        loc.predict_tracks(ds, [[1, 2]], 5)
    with pytest.raises(LocaliseError, match="not a number"):
        loc.predict_tracks(ds, [[1, 2]], "high")
    with pytest.raises(LocaliseError, match=r"track 1 holds UE 99999, not in the dataset"):
        loc.predict_tracks(ds, [[1, 2], [3, 99999]], 28)
    with pytest.raises(LocaliseError, match="track 0 is empty"):
        loc.predict_tracks(ds, [[]], 28)
    with pytest.raises(LocaliseError, match="no tracks given"):
        loc.predict_tracks(ds, [], 28)
    with pytest.raises(LocaliseError, match="no 6 GHz measurements"):
        loc.predict_tracks(ds.sel(band=[2.6, 28.0]), [[1]], 6)
    with pytest.raises(LocaliseError, match="lacks columns"):
        loc.predict_tracks(ds, pd.DataFrame({"track": [0], "ue": [1]}), 28)
    state = torch.load(CKPT, weights_only=True)
    torch.save({**state, "format_version": 2}, tmp_path / "future.pt")
    with pytest.raises(LocaliseError, match="checkpoint format 2"):
        Localiser.from_checkpoint(tmp_path / "future.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(LocaliseError, match="not a workbook checkpoint"):
        Localiser.from_checkpoint(tmp_path / "other.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        Localiser.from_checkpoint(tmp_path / "notes.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Localiser.from_checkpoint(tmp_path / "missing.pt")


def test_cli_writes_predictions_and_refuses_a_bad_band(munich, tmp_path, capsys):
    _, _, _, split = munich
    rows = [{"track": f"walk{t}", "step": s, "ue": int(u)} for t in range(3) for s, u in enumerate(split.test_traj[t])]
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(tmp_path / "tracks.csv", index=False)  # any row order
    out = tmp_path / "predictions.csv"
    args = ["--checkpoint", str(CKPT), "--data", str(DATA), "--tracks", str(tmp_path / "tracks.csv"), "--out", str(out)]
    assert main([*args, "--band", "28"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:7]) == ["track", "step", "ue", "band_ghz", "x_m", "y_m", "n_predictions"]
    assert table.ue.tolist() == [int(u) for t in range(3) for u in split.test_traj[t]] and len(table) == 15
    assert main([*args, "--band", "60"]) == 2
    assert "60 GHz is not a band" in capsys.readouterr().err


def test_random_walks_step_to_grid_neighbours_and_the_model_places_them(munich):
    loc, ds, feats, split = munich
    starts = np.random.default_rng(0).choice(np.flatnonzero(split.unseen), 60, replace=False)
    nbrs = grid_neighbours(feats.xy)
    tracks = random_walks(feats.xy, starts, 20, seed=1, neighbours=nbrs)
    assert [int(t[0]) for t in tracks] == starts.tolist()  # every track starts at a held-out point
    for t in tracks:
        steps = np.linalg.norm(np.diff(feats.xy[t], axis=0), axis=1)
        assert len(set(t.tolist())) == len(t) and (steps > 0.5).all() and (steps <= 1.5).all()
    assert np.mean([len(t) for t in tracks]) > 15
    floor = window_centroid_floor(tracks, feats.xy, 5)
    assert floor.shape == (sum(len(t) for t in tracks), 2)
    # the committed munich SCADF-MoE places random 1 m-step walks well inside the centroid floor
    table = loc.predict_tracks(ds, tracks, 28)
    floor_err = np.linalg.norm(floor - feats.xy[np.concatenate(tracks)], axis=1)
    assert table.error_m.median() < 0.3 < np.median(floor_err)


def test_the_track_study_scores_held_out_points_and_never_the_validation_points(munich):
    """Validation points chose the best epoch and WKNN's k: a track through them scores none of them."""
    from scadf_lib.tracks import track_study
    loc, ds, feats, split = munich
    assert len(split.val_points) > 100
    pts = track_study({"SCADF-MoE": str(CKPT)}, str(DATA), n_tracks=40, length=20, seed=0)
    scored = set(pts[pts.source == "track"].ue.tolist())
    assert len(scored) > 100 and not scored & set(split.val_points.tolist())
    assert scored <= set(np.flatnonzero(split.unseen).tolist())  # and never a training point
    assert set(pts.method) == {"SCADF-MoE", "WKNN", "centroid floor"}


def test_tracks_table_gives_mean_and_ci_over_seeds_per_scene_and_method():
    from scadf_lib.studies.track_table import tracks_table
    rows = [{"scene": "munich", "method": m, "source": src, "band_ghz": "all", "group": "all", "seed": s,
             "mse_m2": base * (1 + 0.1 * s) * (2 if src == "track" else 1), "median_m": 0.1}
            for m, base in (("WKNN", 6.0), ("SCADF-MoE", 0.5)) for src in ("cluster", "track") for s in (0, 1, 2)]
    table = tracks_table(pd.DataFrame(rows))
    assert table.method.tolist() == ["SCADF-MoE", "WKNN"]  # the report's method order
    scadf = table.iloc[0]
    assert scadf["clusters: held-out MSE (m²)"].startswith("0.55 ± ") and scadf["tracks: held-out MSE (m²)"].startswith("1.10 ± ")
    assert scadf["seeds"] == "0, 1, 2" and scadf["tracks, cluster-tested points: MSE (m²)"] == ""


def test_model_card_quotes_each_checkpoint_with_its_runs_metrics(tmp_path):
    import shutil

    from scadf_lib.localise import model_card
    shutil.copy(CKPT, tmp_path / "munich_scadf.pt")
    metrics = pd.read_csv(project_path("results/flat/all_metrics.csv"), dtype={"band": str})
    held = metrics[(metrics.name == "main_munich_mix_scadf_s0") & (metrics.band == "all")
                   & (metrics.group == "held-out")].mse_m2.iloc[0]
    card = model_card(tmp_path, project_path("results/flat/all_metrics.csv"))
    row = next(line for line in card.splitlines() if line.startswith("| munich_scadf.pt"))
    assert f"| {held:.2f} |" in row  # the run's held-out MSE, from the result table
    assert "| munich | scadf | mix | 0 | 5 | 2.6/6/28 |" in row and "Localiser.from_checkpoint" in card


def test_the_track_study_labels_a_retrained_checkpoint_apart_from_the_committed_run(tmp_path):
    from scadf_lib.tracks import study_checkpoints
    for name in ("etoile_scadf", "main_etoile_mix_softmoe_s0_retrained"):
        (tmp_path / f"{name}.pt").write_bytes(b"")
    found = study_checkpoints([str(tmp_path)], "etoile", 0)
    assert set(found) == {"SCADF-MoE", "SoftMoE (retrained)"}
    assert found["SoftMoE (retrained)"].endswith("main_etoile_mix_softmoe_s0_retrained.pt")
    assert study_checkpoints([str(tmp_path)], "etoile", 1) == {}  # the inspector's file stands for seed 0 only
    (tmp_path / "spatial_etoile_mix_nospace_s1_retrained.pt").write_bytes(b"")  # any model may be a retrained sample
    assert set(study_checkpoints([str(tmp_path)], "etoile", 1)) == {"SCADF-MoE, L = 1 (retrained)"}


def test_a_model_is_refused_on_ray_traced_data_of_another_version():
    """The shipped model was trained on data version 1; data/munich.nc is version 2 (another BS
    placement, other UEs): placing its tracks would be meaningless, so the Localiser says so."""
    loc = Localiser.from_checkpoint(CKPT)
    assert loc.data_version == 1
    ds = load_fingerprints(project_path("data/munich.nc"))
    with pytest.raises(LocaliseError, match="trained on ray-traced data version 1 and the dataset is version 2.*restore 1"):
        loc.predict_tracks(ds, [[0, 1, 2, 3, 4]], band=28)
