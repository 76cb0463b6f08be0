"""How long measuring a whole scene takes, against loading its file (ratios within one run).

For each shipped scene: load the fingerprint file (``load_fingerprints``: read, unpack, validate);
measure every UE at every band (``scadf_lib.measure``: the 16-element array CFR from the stored
paths, noise, common phase, timing offset); estimate the features (``scadf_lib.estimate``). Writes
bench/results/measure.json with seconds and the ratios to loading.

    python bench/bench_measure.py [--scenes munich etoile florence] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import best_time, write  # noqa: E402
from scadf_lib.estimate import estimate  # noqa: E402
from scadf_lib.fileio import project_path  # noqa: E402
from scadf_lib.measure import MeasurementConfig, measure  # noqa: E402
from scadf_lib.schema import load_fingerprints  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", nargs="+", default=["munich", "etoile", "florence"])
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    rows = {}
    for scene in a.scenes:
        path = project_path(f"data/{scene}.nc")
        ds = load_fingerprints(path)
        bands = [float(b) for b in ds["band"].values]
        cfg = MeasurementConfig()
        load_s = best_time(lambda: load_fingerprints(path), repeat=a.repeat)
        measure_s = best_time(lambda: [measure(ds, b, cfg) for b in bands], repeat=a.repeat)
        ms = [measure(ds, b, cfg) for b in bands]
        t0 = time.perf_counter()
        for m in ms:
            estimate(m)
        estimate_s = time.perf_counter() - t0
        rows[scene] = {"ues": ds.sizes["ue"], "bands": len(bands), "load_s": load_s, "measure_s": measure_s,
                       "estimate_s": estimate_s, "measure_over_load": measure_s / load_s,
                       "measure_and_estimate_over_load": (measure_s + estimate_s) / load_s,
                       "measure_and_estimate_s": measure_s + estimate_s}
        print(scene, rows[scene], flush=True)
    write("measure", {"scenes": rows, "note": "seconds on this machine; the ratios are what to compare"})


if __name__ == "__main__":
    main()
