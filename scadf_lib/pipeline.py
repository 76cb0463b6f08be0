"""The workbook's main job (``make demo``): execute every notebook in order with papermill.

Executed copies (with outputs) go to ``<out>/``; the notebooks in ``notebooks/`` stay output-free.
Runs on the CPU when there is no GPU. Notebooks 04-06 read the committed ``results/``; pass
``--rerun-experiments`` to regenerate those first (long).

Headless: the kernels run with ``SCADF_HEADLESS=1`` (notebook 06 then shows static figures and
builds no live widget: under papermill an ipywidgets display can wait for a front end that never
answers), talk to papermill over local IPC sockets rather than TCP, and every cell has a time
limit (``--cell-timeout``): a cell that exceeds it fails the run with the notebook and cell named.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import papermill as pm
from jupyter_client.connect import ConnectionFileMixin
from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

from scadf_lib.fileio import PROJECT_ROOT


class IPCTransport(ConnectionFileMixin):
    """Kernel connections over local IPC sockets instead of TCP ports: nothing listens on the
    network, and the kernel does not warn about unencrypted TCP on every start. The socket prefix is
    absolute: a relative one (jupyter_client's "kernel-ipc" before the connection file is named)
    breaks when the kernel starts in another working directory."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        if self.connection_file:
            return os.path.splitext(os.path.abspath(self.connection_file))[0] + "-ipc"
        os.makedirs(jupyter_runtime_dir(), exist_ok=True)
        return os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4().hex[:12]}-ipc")


class IPCKernelManager(IPCTransport, AsyncKernelManager):
    """The pipeline's (papermill's) kernel manager."""


class SyncIPCKernelManager(IPCTransport, KernelManager):
    """The same for synchronous clients (nbval)."""


class NotebookCellError(RuntimeError):
    """A notebook of the pipeline failed or timed out; names the notebook and the cell."""

NOTEBOOKS: list[tuple[str, dict[str, Any]]] = [
    ("01_data_exploration.ipynb", {}),
    ("02_clustering.ipynb", {}),
    ("03_train.ipynb", {}),
    ("04_bandwise_analysis.ipynb", {}),
    ("05_ablations.ipynb", {}),
    ("06_routing_inspector.ipynb", {}),
    ("07_degradation.ipynb", {}),
    ("08_localise_tracks.ipynb", {}),
]


def run_pipeline(out: Path, rerun_experiments: bool = False, kernel: str = "python3",
                 cell_timeout_s: float = 1800.0) -> list[tuple[str, float]]:
    """Execute every notebook; returns (name, seconds) per notebook. Stops at the first failure
    with a :class:`NotebookCellError` that names the notebook and the cell."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ["SCADF_HEADLESS"] = "1"  # inherited by the kernels
    timings = []
    for name, params in NOTEBOOKS:
        if name.startswith("04") and rerun_experiments:
            params = {**params, "rerun": True}
        t0 = time.perf_counter()
        print(f"[pipeline] {name}", flush=True)
        try:
            pm.execute_notebook(str(PROJECT_ROOT / "notebooks" / name), str(out / name), parameters=params,
                                kernel_name=kernel, cwd=str(PROJECT_ROOT / "notebooks"), progress_bar=False,
                                execution_timeout=cell_timeout_s, kernel_manager_class=IPCKernelManager)
        except Exception as exc:  # papermill's execution error or nbclient's CellTimeoutError
            raise NotebookCellError(f"{name}: {describe_failure(out / name, exc, cell_timeout_s)}; the executed "
                                    f"notebook with the error is {out / name}") from exc
        timings.append((name, time.perf_counter() - t0))
    return timings


def describe_failure(executed: Path, exc: Exception, cell_timeout_s: float) -> str:
    """Which cell failed (its number and first line, from the executed copy papermill wrote) and why."""
    import nbformat
    what = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    if "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower():
        what = f"a cell ran longer than the {cell_timeout_s:g} s limit (--cell-timeout)"
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - no copy written: say what we know
        return what
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code) if c.metadata.get("papermill", {}).get("exception")
              or any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    started = [i for i, c in enumerate(code) if "iopub.execute_input" in c.metadata.get("execution", {})]
    if not (failed or started):
        return what
    i = (failed or started)[-1]
    first = code[i].source.strip().splitlines()[0] if code[i].source.strip() else ""
    return f"code cell {i + 1} of the executed copy ({first!r}) failed: {what}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scadf_lib.pipeline", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/demo", help="folder for the executed notebooks")
    ap.add_argument("--rerun-experiments", action="store_true")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--cell-timeout", type=float, default=1800.0, help="seconds one cell may run")
    a = ap.parse_args(argv)
    out = Path(a.out) if Path(a.out).is_absolute() else PROJECT_ROOT / a.out
    try:
        timings = run_pipeline(out, a.rerun_experiments, a.kernel, a.cell_timeout)
    except NotebookCellError as exc:
        print(f"[pipeline] FAILED in {exc}", file=sys.stderr)
        return 1
    for name, secs in timings:
        print(f"  {name:32s} {secs:7.1f} s")
    print(f"[pipeline] done: executed notebooks are in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
