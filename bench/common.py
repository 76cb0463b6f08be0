"""Helpers shared by the benchmark scripts: timing, machine description, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch

BENCH_DIR = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version()}


def best_time(fn: Callable[[], Any], repeat: int = 5, number: int = 1) -> float:
    """Best wall time (s) of ``number`` calls, over ``repeat`` repetitions."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def write(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json, or <name>_gpu.json where CUDA is available (a GPU's figures sit
    beside the CPU's instead of replacing them)."""
    if torch.cuda.is_available():
        name += "_gpu"
    path = BENCH_DIR / "results" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float))
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG atomically (110 dpi) and close it."""
    import matplotlib.pyplot as plt

    from scadf_lib.fileio import atomic_path
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
