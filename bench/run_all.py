"""Run every benchmark in turn (or those named: `run_all.py clustering training`); each writes
bench/results/<name>.json, then the figures of bench/README.md are re-rendered from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# torch.compile (inductor) needs minutes of C++ compilation per model on a small CPU: run
# `python bench/bench_inference.py` alone to include it.
SCRIPTS = [["bench_clustering.py"], ["bench_training.py"], ["bench_sweep.py"], ["bench_inference.py", "--no-compile"],
           ["bench_raytrace.py"], ["bench_memory.py"], ["bench_measure.py"], ["bench_measured_step.py"]]

if __name__ == "__main__":
    only = sys.argv[1:]
    for script, *args in SCRIPTS:
        if only and not any(o in script for o in only):
            continue
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=HERE.parent)
    subprocess.run([sys.executable, str(HERE / "summarize.py")], check=True, cwd=HERE.parent)
