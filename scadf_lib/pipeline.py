"""The workbook's main job (``make demo``): execute every notebook in order with papermill.

Executed copies (with outputs) go to ``<out>/``; the notebooks in ``notebooks/`` stay output-free.
Runs on the CPU when there is no GPU. Notebooks 04-06 read the committed ``results/``; pass
``--rerun-experiments`` to regenerate those first (long).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import papermill as pm

from scadf_lib.fileio import PROJECT_ROOT

NOTEBOOKS: list[tuple[str, dict[str, Any]]] = [
    ("01_data_exploration.ipynb", {}),
    ("02_clustering.ipynb", {}),
    ("03_train.ipynb", {}),
    ("04_bandwise_analysis.ipynb", {}),
    ("05_ablations.ipynb", {}),
    ("06_routing_inspector.ipynb", {}),
]


def run_pipeline(out: Path, rerun_experiments: bool = False, kernel: str = "python3") -> list[tuple[str, float]]:
    """Execute every notebook; returns (name, seconds) per notebook. Stops at the first failure."""
    out.mkdir(parents=True, exist_ok=True)
    timings = []
    for name, params in NOTEBOOKS:
        if name.startswith("04") and rerun_experiments:
            params = {**params, "rerun": True}
        t0 = time.perf_counter()
        print(f"[pipeline] {name}", flush=True)
        pm.execute_notebook(str(PROJECT_ROOT / "notebooks" / name), str(out / name), parameters=params,
                            kernel_name=kernel, cwd=str(PROJECT_ROOT / "notebooks"), progress_bar=False)
        timings.append((name, time.perf_counter() - t0))
    return timings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.pipeline", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/demo", help="folder for the executed notebooks")
    ap.add_argument("--rerun-experiments", action="store_true")
    ap.add_argument("--kernel", default="python3")
    a = ap.parse_args(argv)
    out = Path(a.out) if Path(a.out).is_absolute() else PROJECT_ROOT / a.out
    timings = run_pipeline(out, a.rerun_experiments, a.kernel)
    for name, secs in timings:
        print(f"  {name:32s} {secs:7.1f} s")
    print(f"[pipeline] done: executed notebooks are in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
