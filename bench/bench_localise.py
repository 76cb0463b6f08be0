"""Localising with a trained model on one CPU thread (scadf_lib.localise.Localiser, the committed
munich SCADF-MoE): one track of 5 measurements end to end (features of a 5-UE dataset, windows,
model, averaging) against the bare model forward on one window, eager and TorchScript (the figure of
bench_inference.py), and a batch of 10,000 tracks of 5 measurements, all measured in this run.

    .venv/bin/python bench/bench_localise.py     # writes bench/results/localise.json
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from common import best_time, write  # bench/ is on sys.path when this file runs as a script
from scadf_lib.fileio import project_path
from scadf_lib.localise import Localiser
from scadf_lib.schema import load_fingerprints


def main(checkpoint: str = "results/models/munich_scadf.pt", data: str = "data/v1/munich.nc", batch_tracks: int = 10_000) -> None:
    torch.set_num_threads(1)
    loc = Localiser.from_checkpoint(project_path(checkpoint))
    ds = load_fingerprints(project_path(data), positions=False)
    rng = np.random.default_rng(0)
    track = np.arange(100, 105)
    small = ds.isel(ue=track)  # a receiver's five new measurements
    one = lambda: loc.predict_tracks(small, [np.arange(5)], 28)  # noqa: E731
    one()
    numeric, cfr = torch.randn(1, 5, 6), torch.randn(1, 5, 3, 64)

    class Points(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> torch.Tensor:
            return self.model(numeric, cfr).points

    bare = Points(loc.model).eval()
    with torch.inference_mode():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(bare, (numeric, cfr))
        traced(numeric, cfr)
        eager_ms = 1e3 * best_time(lambda: bare(numeric, cfr), repeat=5, number=20)
        traced_ms = 1e3 * best_time(lambda: traced(numeric, cfr), repeat=5, number=20)
    track_ms = 1e3 * best_time(one, repeat=5, number=10)
    tracks = [rng.choice(ds.sizes["ue"], 5, replace=False) for _ in range(batch_tracks)]
    t0 = time.perf_counter()
    table = loc.predict_tracks(ds, tracks, 28, batch_size=1024)
    batch_s = time.perf_counter() - t0
    write("localise", {
        "threads": 1, "checkpoint": checkpoint, "model": loc.model_config.name, "L": loc.trajectory_length,
        "one_track_5_points_ms": track_ms, "model_forward_eager_ms": eager_ms, "model_forward_torchscript_ms": traced_ms,
        "one_track_over_forward": track_ms / eager_ms,
        "batch_tracks": batch_tracks, "batch_points": len(table), "batch_s": batch_s,
        "batch_tracks_per_s": batch_tracks / batch_s,
        "note": "one track: a 5-UE dataset, so feature building is for those UEs only; the batch builds the "
                "features of the whole scene (7,371 UEs x 3 bands) once"})


if __name__ == "__main__":
    main()
