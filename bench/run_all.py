"""Run every benchmark in turn; each writes bench/results/<name>.json (see bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_clustering.py", "bench_training.py", "bench_inference.py", "bench_raytrace.py", "bench_memory.py"]

if __name__ == "__main__":
    only = sys.argv[1:]
    for script in SCRIPTS:
        if only and not any(o in script for o in only):
            continue
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE.parent)
