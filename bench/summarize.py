"""Renders the figures of ``bench/results/*.json`` into ``bench/README.md`` (between the markers), so
the README never holds a hand-copied number. ``python bench/summarize.py``; run_all.py calls it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])


def _machine(r: dict[str, Any]) -> str:
    m = r["machine"]
    return f"{m['cores']} cores ({m['cpu']}), torch {m['torch']}, {m['torch_threads']} threads, GPU: {m['cuda'] or 'none'}"


def raytrace(r: dict[str, Any]) -> str:
    st = r["settings"]
    rows = [[label.replace("_", " "), x["per_band_s"], x["reuse_s"], x["per_band_ue_bands_per_s"],
             x["reuse_ue_bands_per_s"], x["speedup"], x["cfr_rel_err_median"], x["cfr_rel_err_p99"],
             f"{100 * x['share_below_1e-3']:.1f} %", x["vs_first_per_band_rel_err_p99"],
             f"{100 * x['vs_first_per_band_share_below_1e-3']:.1f} %", x["per_band_run_to_run_rel_err_p99"],
             f"{100 * x['per_band_run_to_run_share_below_1e-3']:.1f} %"] for label, x in st.items()]
    return (f"**Ray tracing** ({r['scene']}, {r['ues']} UEs x {len(r['bands'])} bands, max depth 3, "
            f"{r['samples_per_src']:,} samples; {_machine(r)})\n\n" + _table(
                ["tracing", "per-band loop (s)", "geometry once (s)", "per-band UE-bands/s", "reuse UE-bands/s",
                 "speed-up", "CFR rel. err. vs per-band after: median", "p99", "< 1e-3",
                 "vs per-band before: p99", "< 1e-3",
                 "per-band vs itself: p99", "< 1e-3"], rows)
            + "\n\nRuns in this order: per-band, reuse, per-band again (same seed). CFR errors compare the reuse "
              "with the per-band run after it and the one before it; \"per-band vs itself\" compares the two "
              "identical per-band runs (the tracer's own run-to-run noise).")


def clustering(r: dict[str, Any]) -> str:
    rows = [[f"{x['points']:,}", x["fixed_radius_s"], x["fixed_radius_peak_mib"], x["auto_radius_s"],
             x["auto_radius_m"], x["split_and_trajectories_s"], x["split_peak_mib"], x["clusters"]] for x in r["rows"]]
    before = [[f"{x['points']:,}", x["radius_search_before_s"], x["radius_search_after_s"], x["radius_search_speedup"],
               x["same_radius"], x["split_before_s"], x["split_after_s"], x["split_speedup"]] for x in r["rows"]]
    g = r["growth_exponent"]
    return (f"**Clustering and trajectory sampling** (uniform points at the embedded data's density; {_machine(r)})\n\n"
            + _table(["points", "fixed r = 4.5 m (s)", "peak MiB", "auto radius (s)", "radius (m)",
                      "split + trajectories (s)", "peak MiB", "clusters"], rows)
            + "\n\nThe times above are measured under tracemalloc (for the peak memory), which slows Python-heavy "
              "code several-fold; the before/after table below is timed without it."
            + f"\n\nGrowth exponents (time ~ N^k): fixed radius {g['fixed_radius_s']:.2f}, auto radius "
              f"{g['auto_radius_s']:.2f}, split {g['split_and_trajectories_s']:.2f}.\n\nBefore/after (same run, no "
              "tracemalloc):\n\n"
            + _table(["points", "radius search before (s)", "after (s)", "speed-up", "same radius",
                      "split before (s)", "after (s)", "speed-up"], before))


def stale_models(r: dict[str, Any]) -> list[str]:
    """The models of a figure file whose recorded parameter count is not today's: the figures describe
    another model and are not shown (rerun the benchmark)."""
    import sys
    sys.path.insert(0, str(HERE.parent))
    from scadf_lib.models import build_model, count_parameters, model_config
    return [f"{name} ({m['parameters']:,} parameters then, {count_parameters(build_model(model_config(name))):,} now)"
            for name, m in r["models"].items()
            if "parameters" in m and m["parameters"] != count_parameters(build_model(model_config(name)))]


def _stale_text(title: str, script: str, stale: list[str]) -> str:
    return (f"**{title}**: stale, not shown: these figures were measured on earlier models ({'; '.join(stale)}). "
            f"Rerun `python bench/{script}` on an idle machine.")


def training(r: dict[str, Any]) -> str:
    if stale := stale_models(r):
        return _stale_text("Training throughput", "bench_training.py", stale)
    compiled = r.get("compiled", False)
    graphs = compiled and all("after_cudagraphs_trajectories_per_s" in m for m in r["models"].values())
    rows = []
    for name, m in r["models"].items():
        row = [name, m.get("before_trajectories_per_s", float("nan")), m.get("after_trajectories_per_s",
               m["trajectories_per_s"]), m.get("speedup", float("nan"))]
        if compiled:
            row += [m["after_compiled_trajectories_per_s"], m["compiled_speedup"]]
        if graphs:
            row += [m["after_cudagraphs_trajectories_per_s"], m["cudagraphs_speedup"]]
        rows.append(row + [1e3 * r["batch_size"] / m["trajectories_per_s"], m["speed_vs_scadf"], f"{m['parameters']:,}"])
    header = ["model", "before: trajectories/s", "after: trajectories/s", "after / before"]
    header += ["compiled: trajectories/s", "compiled / before"] if compiled else []
    header += ["CUDA graphs: trajectories/s", "graphs / before"] if graphs else []
    return (f"**Training throughput** (munich, Mix, batch {r['batch_size']}, {r['steps']} steps, device "
            f"{r['device']}; {_machine(r)}). Before: the step as first landed (host batches, a host sync per "
            f"step); after: the engine's step (device-resident batches, fused/foreach AdamW, no sync).\n\n"
            + _table(header + ["best ms/step", "speed vs SCADF-MoE", "parameters"], rows)
            + f"\n\nLoader alone: {r['loader_only_trajectories_per_s']:,.0f} trajectories/s, i.e. "
              f"{100 * r['loader_share_of_scadf_step']:.1f} % of a SCADF-MoE step. Router MMD (forward + backward, "
              f"batch {r['batch_size']}): {r['mmd_before_ms']:.2f} ms before, {r['mmd_after_ms']:.2f} ms after "
              f"({r['mmd_speedup']:.1f}x).")


def inference(r: dict[str, Any]) -> str:
    if stale := stale_models(r):
        return _stale_text("Edge inference", "bench_inference.py", stale)
    rows = [[name, m["eager_ms"], m["torchscript_ms"], m.get("compile_ms", m.get("compile_error", "not run")),
             f"{m['parameters']:,}", m["size_mb"]] for name, m in r["models"].items()]
    return (f"**Edge inference** (batch {r['batch']}, {r['threads']} thread; {_machine(r)})\n\n"
            + _table(["model", "eager (ms)", "TorchScript (ms)", "torch.compile (ms)", "parameters", "MB (fp32)"], rows))


def memory(r: dict[str, Any]) -> str:
    secs = ", ".join(f"{n.split('_')[0]} {s:.0f} s" for n, s in r["seconds"].items())
    return (f"**Notebook pipeline** (`make demo`; {_machine(r)}): peak RSS **{r['peak_rss_mib']:,.0f} MiB** "
            f"(process and kernels), wall {r['wall_s']:.0f} s ({secs}).")


def sweep(r: dict[str, Any]) -> str:
    rows = [[n, j["aggregate_trajectories_per_s"], j["aggregate_vs_first"], j["per_run_trajectories_per_s"]]
            for n, j in r["jobs"].items()]
    return (f"**Sweep throughput** (SCADF-MoE, munich, batch {r['batch_size']}, {r['steps']} steps per run, "
            f"device {r['device']}; {_machine(r)}): N runs at once in separate processes, as "
            f"`experiments --jobs N` trains them.\n\n"
            + _table(["runs at once", "all runs: trajectories/s", "vs the first row", "each run: trajectories/s"], rows))


def batch_scaling(r: dict[str, Any]) -> str:
    rows = [[name, f"{b['batch_size']}", f"{b['lr']:.2g}", b["steps_per_epoch"], len(b["epoch"]), b["train_wall_s"],
             b["wall_vs_first"], b["best_epoch"], b["test_held-out_mse_m2"], b["held_out_mse_vs_first"],
             b["test_overall_mse_m2"], b.get("epochs_to_first_best_val", float("nan")),
             b.get("wall_to_first_best_val_vs_first", float("nan"))]
            for name, m in r["models"].items() for b in m.values()]
    figure = r.get("figure", "batch_scaling.png")
    return (f"**Batch size against accuracy** ({r['scene']}, Mix, seed 0, {r['epochs']} epochs, "
            f"{r['train_per_point']:g} training trajectories per point (larger batches: {r.get('epochs_large', r['epochs'])} epochs), lr by the {r.get('lr_rule', 'sqrt')} rule "
            f"from 1e-3 at batch 64, device "
            f"{r['device']}; {_machine(r)}): does a large batch reach the paper batch's accuracy in less time?\n\n"
            + _table(["model", "batch", "lr", "steps/epoch", "epochs", "training wall (s)", "wall vs batch 64",
                      "best epoch", "held-out MSE (m²)", "vs batch 64", "overall MSE (m²)",
                      "epochs to batch 64's best val.", "wall to it vs batch 64"], rows)
            + f"\n\nLearning curves side by side: `bench/results/{figure}`.")


def measure(r: dict[str, Any]) -> str:
    rows = [[scene, x["ues"], x["load_s"], x["measure_s"], x["estimate_s"], x["measure_over_load"],
             x["measure_and_estimate_over_load"]] for scene, x in r["scenes"].items()]
    return (f"**Measuring a scene like a base station** (every UE at every band: the 16-element array CFR "
            f"from the stored paths with noise and impairments, then the estimators; {_machine(r)})\n\n"
            + _table(["scene", "UEs", "load file (s)", "measure (s)", "estimate (s)", "measure / load",
                      "measure + estimate / load"], rows))


def measured_step(r: dict[str, Any]) -> str:
    ms, shapes = r["median_ms_per_step"], r["inputs"]
    rows = [[k, f"{v['cfr_channels']} x {v['num_subcarriers']}", v["num_numeric"], ms[k]] for k, v in shapes.items()]
    return (f"**Training step on measured inputs** ({r['model']}, batch {r['batch_size']}, {r['threads']} thread(s), "
            f"median of {r['repeats']}; {_machine(r)}): measured / oracle = {r['measured_over_oracle']:.2f}\n\n"
            + _table(["inputs", "CFR branch input per point", "numeric features", "ms per step"], rows))


SECTIONS = {"raytrace": raytrace, "clustering": clustering, "training": training, "inference": inference,
            "memory": memory, "sweep": sweep, "batch_scaling": batch_scaling, "measure": measure,
            "measured_step": measured_step}


def render() -> str:
    """Every section's CPU figures (<name>.json) and, where measured, the same on a GPU
    (<name>_gpu.json) and other variants (<name>_b1024.json, ...)."""
    parts = []
    for name, fn in SECTIONS.items():
        paths = sorted((HERE / "results").glob(f"{name}.json")) + sorted((HERE / "results").glob(f"{name}_*.json"))
        parts += [fn(json.loads(p.read_text())) for p in paths] or [
            f"**{name}**: not run yet (`python bench/bench_{name}.py`)."]
    return "\n\n".join(parts)


def main() -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(f"{head}{START}\n{render()}\n{END}{tail}")
    tmp.replace(readme)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
