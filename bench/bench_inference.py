"""Edge inference: latency per trajectory at batch 1 on one CPU thread, eager vs TorchScript
(trace) vs torch.compile, and model size in parameters and MB (float32)."""

from __future__ import annotations

import sys
import warnings

import torch

from common import best_time, write
from scadf_lib.models import build_model, count_parameters, model_config


class Positions(torch.nn.Module):
    """Tensor-only wrapper (TorchScript and torch.compile want tensors out)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, numeric: torch.Tensor, cfr: torch.Tensor) -> torch.Tensor:
        out = self.model(numeric, cfr)
        return torch.cat([out.points.flatten(1), out.centroid], dim=1)


def main(compile_models: bool = True) -> None:
    torch.set_num_threads(1)
    numeric, cfr = torch.randn(1, 5, 6), torch.randn(1, 5, 3, 64)
    rows = {}
    for name in ("scadf", "concat", "fullcon", "transfusion", "softmoe"):
        model = Positions(build_model(model_config(name))).eval()
        n = count_parameters(model)
        row = {"parameters": n, "size_mb": n * 4 / 2**20}
        with torch.inference_mode():
            row["eager_ms"] = 1e3 * best_time(lambda: model(numeric, cfr), repeat=5, number=20)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model, (numeric, cfr))
            traced(numeric, cfr)
            row["torchscript_ms"] = 1e3 * best_time(lambda: traced(numeric, cfr), repeat=5, number=20)
            if compile_models:
                try:
                    compiled = torch.compile(model)
                    compiled(numeric, cfr)
                    row["compile_ms"] = 1e3 * best_time(lambda: compiled(numeric, cfr), repeat=5, number=20)
                except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
                    row["compile_error"] = f"{type(exc).__name__}: {exc}"[:200]
        rows[name] = row
        print(name, row, flush=True)
    write("inference", {"threads": 1, "batch": 1, "models": rows})


if __name__ == "__main__":
    main(compile_models="--no-compile" not in sys.argv)
