"""The documents cannot drift from the result tables: REPORT.md and the README's headline block are
what the committed tables render to, byte for byte."""

from __future__ import annotations

from scadf_lib.fileio import project_path
from scadf_lib.presets import REFERENCE_SET
from scadf_lib.report import README_BEGIN, README_END, readme_block, render

SET_DIR = project_path(f"results/{REFERENCE_SET}")
FIX = "rerun `python -m scadf_lib.report` and commit REPORT.md, DEGRADATION.md and README.md with the tables"


def test_report_is_what_the_committed_tables_render_to():
    committed = project_path("results/REPORT.md").read_text()
    assert committed == render(SET_DIR), f"results/REPORT.md differs from the tables: {FIX}"


def test_the_degradation_document_is_what_the_committed_tables_render_to():
    from scadf_lib.studies.degradation import degradation_document
    from scadf_lib.studies.resultset import ResultSet
    committed = (SET_DIR / ResultSet.DEGRADATION_REPORT).read_text()
    assert committed == degradation_document(SET_DIR), f"the degradation document differs from the tables: {FIX}"


def test_the_report_opens_with_a_short_summary_and_shows_its_figures():
    text = render(SET_DIR)
    summary = text.split("## In short\n\n", 1)[1].split("\n## ", 1)[0]
    assert len(summary.strip().splitlines()) <= 10
    assert all(word in summary for word in ("**Compared.**", "**What holds.**", "**What does not.**",
                                            "**What bounds it.**"))
    from scadf_lib.studies.resultset import ResultSet
    for figure in (ResultSet.ERROR_CDF, ResultSet.LEARNING_CURVES):
        assert f"]({REFERENCE_SET}/{figure})" in text and (SET_DIR / figure).exists()
    assert "| geometric (closed form) |" not in text.split("# Appendix")[0], "the closed form is a sanity line"


def test_readme_headline_is_generated_from_the_same_tables():
    readme = project_path("README.md").read_text()
    assert readme.count(README_BEGIN) == 1 and readme.count(README_END) == 1
    block = README_BEGIN + readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0] + README_END
    assert block == readme_block(SET_DIR), f"README's headline differs from the tables: {FIX}"


def test_readme_is_short_and_quotes_no_result_outside_its_generated_block():
    readme = project_path("README.md").read_text()
    assert len(readme.splitlines()) < 200
    outside = readme.split(README_BEGIN)[0] + readme.split(README_END)[1]
    assert "m²" not in outside.replace("MSE (m²)", ""), "a result quoted by hand: put it in the generated block"


def test_the_readme_block_says_which_mix_runs_did_not_end_flat():
    from scadf_lib import tables
    from scadf_lib.studies import resultset
    _, runs = resultset.read_set(SET_DIR)
    mix = runs[(runs.study == "main") & (runs.regime == "mix")]
    short = mix[~tables.csv_flags(mix["flat"])]
    block = readme_block(SET_DIR)
    assert all(name in block for name in short.name)
    assert ("flat or to its maximum budget" in block) == (len(short) > 0)


def test_the_readme_counts_runs_as_the_sweep_driver_does():
    """One run fills two cells (the no-MMD ablation's seed 0 is the sensitivity study's λ = 0), so the
    README counts runs from the driver's plan, not by summing the report's cells."""
    from scadf_lib.planning import plan
    from scadf_lib.presets import PRESETS
    from scadf_lib.studies import overview, resultset
    _, runs = resultset.read_set(SET_DIR)
    planned = {r.name for r in plan(REFERENCE_SET)}
    assert overview.coverage(runs, PRESETS[REFERENCE_SET]).planned.sum() == len(planned) + 1  # the twin
    done = len(set(runs.name) & planned)
    if done < len(planned):
        assert f"{done} of {len(planned)} planned runs are in" in readme_block(SET_DIR)


def test_bench_readme_is_what_the_figure_files_render_to_and_hides_figures_of_earlier_models():
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("bench_summarize", project_path("bench/summarize.py"))
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    readme = project_path("bench/README.md").read_text()
    block = readme.split(summarize.START, 1)[1].split(summarize.END, 1)[0]
    assert block == f"\n{summarize.render()}\n", "bench/README.md differs from bench/results: run python bench/summarize.py"
    from scadf_lib.models import build_model, count_parameters, model_config
    now = {"scadf": {"parameters": count_parameters(build_model(model_config("scadf")))}}
    assert summarize.stale_models({"models": now}) == []
    assert summarize.stale_models({"models": {"scadf": {"parameters": 1}}})[0].startswith("scadf (1 parameters then")
    r = json.loads(project_path("bench/results/training.json").read_text())
    assert ("stale, not shown" in summarize.training(r)) == bool(summarize.stale_models(r))


def test_the_measured_input_studys_report_is_what_its_tables_render_to():
    from scadf_lib.studies.measured import MEASURED_SET
    set_dir = project_path(f"results/{MEASURED_SET}")
    committed = (set_dir / "REPORT.md").read_text()
    assert committed == render(set_dir, MEASURED_SET), f"results/{MEASURED_SET}/REPORT.md differs: {FIX}"
    assert "## The paper's question on measured inputs" in committed and "| SCADF-MoE |" in committed


def test_the_unsurveyed_studys_report_is_what_its_tables_render_to():
    from scadf_lib.studies.unsurveyed import UNSURVEYED_SET
    set_dir = project_path(f"results/{UNSURVEYED_SET}")
    committed = (set_dir / "REPORT.md").read_text()
    assert committed == render(set_dir, UNSURVEYED_SET), f"results/{UNSURVEYED_SET}/REPORT.md differs: {FIX}"
    assert "## Where nobody surveyed" in committed and "held-out blocks" in committed
    assert "](error_cdf_blocks.png)" in committed and (set_dir / "error_cdf_blocks.png").exists()


def test_every_figure_a_committed_report_links_exists_where_it_points():
    """Study sections appear in their set's REPORT.md and in results/REPORT.md's appendix: each
    document links its figures relative to itself (the appendix's once pointed into results/)."""
    import re
    reports = [project_path("results/REPORT.md"), *sorted(project_path("results").glob("*/REPORT.md"))]
    linked = 0
    for report in reports:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text()):
            assert (report.parent / target).exists(), f"{report} links {target}, which does not exist: {FIX}"
            linked += 1
    assert linked >= 6  # the reference set's two figures, the measured and the unsurveyed studies' two each
