"""Notebook conventions, and papermill runs with good and bad parameters.

(nbval, run by `make test`, checks separately that every notebook executes with its defaults.)
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_eight_notebooks_exist_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_data_exploration.ipynb", "02_clustering.ipynb", "03_train.ipynb",
                     "04_bandwise_analysis.ipynb", "05_ablations.ipynb", "06_routing_inspector.ipynb",
                     "07_degradation.ipynb", "08_localise_tracks.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "import scadf_lib" in "".join(c.source for c in code) or "from scadf_lib" in "".join(c.source for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_the_training_notebook_imports_the_training_engine_and_none_reads_result_files_by_hand(path):
    """Settings come from the torch-free config; result files are read through the library (ResultSet),
    which owns their names."""
    code = "".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    if path.name != "03_train.ipynb":
        assert "scadf_lib.training" not in code and "scadf_lib.engine" not in code
    assert "pd.read_csv" not in code and ".csv\"" not in code and ".csv.gz" not in code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_ends_with_a_summary(path):
    """The last section is a Summary: the reader's takeaway, computed where it quotes numbers."""
    nb = nbformat.read(path, as_version=4)
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Summary")]
    assert heads and heads[-1] >= len(nb.cells) - 2, "end the notebook with a '## Summary' section"


def test_notebooks_are_thin():
    """Notebooks call the library; no function or class definitions longer than a few lines."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert src.count("\nclass ") == 0, path.name
        assert len(src.splitlines()) < 80, f"{path.name} holds too much logic"


def test_nbstrip_filter_removes_outputs(tmp_path):
    from scadf_lib.nbstrip import strip
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="hello")]
    nb.cells[2].execution_count = 3
    stripped = strip(nb)
    assert stripped.cells[2].outputs == [] and stripped.cells[2].execution_count is None
    assert "parameters" in stripped.cells[1].metadata["tags"]


def _papermill(tmp_path, notebook="03_train.ipynb", **params):
    import papermill as pm
    out = tmp_path / "out.ipynb"
    try:
        pm.execute_notebook(str(ROOT / "notebooks" / notebook), str(out), parameters=params,
                            kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
        return None, out
    except pm.PapermillExecutionError as exc:
        return exc, out


def test_papermill_band_28_trains_on_the_embedded_data(tmp_path):
    exc, out = _papermill(tmp_path, band=28, epochs=1, max_steps_per_epoch=3, out_dir=str(tmp_path / "run"))
    assert exc is None, exc
    metrics = (tmp_path / "run" / "munich_scadf_mix_28_s0" / "metrics.csv").read_text()
    assert "28.0" in metrics and "held-out-NLOS" in metrics
    cfg = json.loads((tmp_path / "run" / "munich_scadf_mix_28_s0" / "config.json").read_text())
    assert cfg["train_bands_ghz"] == [28.0] and cfg["test_bands_ghz"] == [28.0]


def test_papermill_trains_on_measured_inputs(tmp_path):
    exc, out = _papermill(tmp_path, band=28, epochs=1, max_steps_per_epoch=2, out_dir=str(tmp_path / "run"),
                          inputs="measured", tx_power_dbm=10.0)
    assert exc is None, exc
    cfg = json.loads((tmp_path / "run" / "munich_scadf_mix_28_s0_measured" / "config.json").read_text())
    assert cfg["train_config"]["inputs"] == "measured" and cfg["train_config"]["measurement"]["tx_power_dbm"] == 10.0
    assert cfg["model_config"]["cfr_channels"] == 16  # the angle-delay profile: 16 beams x 64 delay taps


def _bad_file(tmp_path, kind):
    from synthetic import synthetic_fingerprints
    path = tmp_path / f"{kind}.nc"
    ds = synthetic_fingerprints(n_side=8)
    if kind == "schema":
        ds.drop_vars("aoa").to_netcdf(path)
    elif kind == "nan":
        ds["distance"][0, 0] = float("inf")
        ds.to_netcdf(path)
    elif kind == "tiny":
        from scadf_lib.schema import save_fingerprints
        save_fingerprints(ds.isel(ue=[0, 20, 40]), path)
    return str(path)


@pytest.mark.parametrize("params,message", [
    ({"band": 7}, "unknown band '7' GHz"),
    ({"model": "gpt"}, "unknown model 'gpt'"),
    ({"epochs": -3}, "epochs must be a positive integer"),
    ({"data_path": "/nonexistent/file.nc"}, "does not exist"),
    ({"data_path": "schema"}, "'aoa' is missing"),
    ({"data_path": "nan"}, "NaN/inf"),
    ({"data_path": "tiny"}, "impossible with 3 points"),
])
def test_bad_parameters_fail_early_with_a_clear_message(tmp_path, params, message):
    if params.get("data_path") in {"schema", "nan", "tiny"}:
        params = {"data_path": _bad_file(tmp_path, params["data_path"])}
    exc, out = _papermill(tmp_path, epochs=params.pop("epochs", 1), **params)
    assert exc is not None, "the notebook should have failed"
    assert message in str(exc.evalue), exc.evalue
    assert exc.exec_count <= 3, "the error must come from the first cells"


def test_notebook_01_runs_with_measured_inputs_and_a_weaker_link(tmp_path):
    exc, out = _papermill(tmp_path, "01_data_exploration.ipynb", inputs="measured", tx_power_dbm=3.0,
                          timing_offset_std_ns=10.0, measured_ues=400)
    assert exc is None, exc
    text = out.read_text()
    assert "path length bound (m)" in text and "measured (3 dBm uplink, 10 ns timing std)" in text


@pytest.mark.parametrize("params,message", [
    ({"inputs": "estimated"}, "unknown inputs 'estimated'"),
    ({"noise_figure_db": -3.0}, "noise figure is >= 0 dB"),
    ({"timing_offset_std_ns": -2.0}, "standard deviation is >= 0 ns"),
])
def test_notebook_01_refuses_bad_measurement_settings_early(tmp_path, params, message):
    exc, _ = _papermill(tmp_path, "01_data_exploration.ipynb", **params)
    assert exc is not None and message in str(exc.evalue), exc
    assert exc.exec_count <= 3, "the error must come from the first cells (parameters, injected, validation)"


def test_a_hanging_cell_fails_the_pipeline_naming_the_notebook_and_the_cell(tmp_path, monkeypatch):
    """The pipeline gives every cell a time limit; the error names the notebook and the cell."""
    from scadf_lib import pipeline
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import time\ntime.sleep(60)")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "99_hang.ipynb")
    monkeypatch.setattr(pipeline, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", [("99_hang.ipynb", {})])
    with pytest.raises(pipeline.NotebookCellError) as err:
        pipeline.run_pipeline(tmp_path / "out", cell_timeout_s=5)
    message = str(err.value)
    assert "99_hang.ipynb" in message and "code cell 2 of the executed copy ('import time')" in message and "5 s limit" in message


def test_headless_runs_build_no_live_widget():
    """Notebook 06 builds its ipywidgets controls only with a front end (SCADF_HEADLESS unset), starting
    at the notebook's parameters, and shows the static figures only without one (one view each)."""
    nb = nbformat.read(ROOT / "notebooks" / "06_routing_inspector.ipynb", as_version=4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'os.environ.get("SCADF_HEADLESS") != "1"' in src
    assert ("if interactive:\n    display(inspector.widget(scene, band, trajectory, layer, task))\n"
            "else:\n    inspector.show_static(scene, band, trajectory, layer, task)") in src


def test_notebook_06_inspects_the_measured_input_model_and_draws_its_routing_against_snr(tmp_path):
    exc, out = _papermill(tmp_path, "06_routing_inspector.ipynb", inputs="measured", interactive=False)
    assert exc is None, exc
    nb = nbformat.read(out, as_version=4)
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 4  # one sample, the band shift, the sharpness and the routing against SNR
