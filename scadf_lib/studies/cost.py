"""What the runs cost: devices, throughput, the GPU reproduction."""

from __future__ import annotations

from pathlib import Path


from scadf_lib.presets import METHODS
from scadf_lib.studies.common import _distinct, label, report_table
from scadf_lib.studies.table_ii import main_table
from scadf_lib.studies.resultset import ResultSet, as_set


def gpu_section(rs: ResultSet | Path, subdir: str = "paper") -> str:
    """The paper-budget set made on a GPU by ``bench/gpu_run.sh``: where it exists, its summary; else
    the command that makes it."""
    sub = as_set(rs).sibling(subdir)
    head = "## L. Paper-budget results on a GPU (`results/paper`)\n\n"
    if not (sub.has(sub.METRICS) and sub.has(sub.RUNS)):
        return (head + "Not produced yet: no GPU was lent to the sessions that wrote this report. On a machine with an "
                "NVIDIA GPU, `bash bench/gpu_run.sh` (after `make setup`; rerun until it prints \"all done\") trains "
                "the `paper` preset as stacked models (`scadf_lib.engine`) into `results/paper/` with its own "
                "REPORT.md.\n")
    metrics, runs = sub.metrics, sub.runs
    return (head + f"{len(runs)} runs on {_distinct(runs.device)}, torch {_distinct(runs.torch)}; full report: "
            "`results/paper/REPORT.md`.\n\nMix, MSE (m²):\n\n" + report_table(main_table(metrics, runs, "mix")) + "\n")


def cost_section(rs: ResultSet | Path) -> str:
    rs = as_set(rs)
    log, runs = rs.table(rs.SWEEPS), rs.runs
    mruns = runs[runs.study == "main"]
    if log is None or mruns.empty:
        return ""
    tp = mruns.groupby("model")[["trajectories_per_s", "parameters"]].median()
    tp["parameters"] = tp.parameters.astype(int)
    tp = tp.reindex([m for m in METHODS if m in tp.index]).rename(index=label)
    return (f"## M. Cost\n\nThe sweep commands ran {len(log)} time(s), {log.wall_s.sum() / 3600:.1f} h of wall clock "
            f"in all ({_distinct(log.device)}; {int(log.jobs.max())} run(s) at once). Median training throughput "
            "of the main runs (shared cores: see `bench/README.md` for clean figures):\n\n"
            + report_table(tp.reset_index()) + "\n")
