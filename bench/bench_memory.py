"""Peak resident memory of the notebook pipeline (``make demo``: notebooks 01-06 on the embedded data
and the committed results): the sum of the RSS of this process and its children (papermill kernels),
sampled every 0.1 s."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import psutil

from common import write
from scadf_lib import pipeline


def main() -> None:
    proc = psutil.Process()
    peak = {"rss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                peak["rss"] = max(peak["rss"], rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        timings = pipeline.run_pipeline(Path(out))
    done.set()
    thread.join()
    write("memory", {"notebooks": [n for n, _ in timings], "seconds": dict(timings),
                     "wall_s": time.perf_counter() - t0, "peak_rss_mib": peak["rss"] / 2**20})


if __name__ == "__main__":
    main()
