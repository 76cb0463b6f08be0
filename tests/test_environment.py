"""environment.yml (conda) and pyproject.toml (pip) list the same packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch", "netcdf4": "netcdf4"}
NOT_PACKAGES = {"python", "pip"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()


def test_conda_and_pip_dependencies_agree():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = set()
    pip_section: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep["pip"]
        else:
            conda.add(CONDA_TO_PIP.get(_name(dep), _name(dep)))
    conda -= NOT_PACKAGES
    conda |= {_name(d) for d in pip_section if not d.startswith("-e")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = {_name(d) for d in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        pip |= {_name(d) for d in extra}
    assert conda == pip, f"only in environment.yml: {conda - pip}; only in pyproject.toml: {pip - conda}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_torch_pinned_to_the_local_cpu_wheel_in_setup():
    assert "torch==2.13.0" in (ROOT / ".ci" / "constraints.txt").read_text()
    assert "-c .ci/constraints.txt" in (ROOT / ".ci" / "setup.sh").read_text()


#: What may travel to a GPU machine (the device tool copies the working tree: 64 MiB at most, carried
#: wheels included, about 12 MB for netCDF4 and cftime). Parked runs (results/<set>/inflight/) are left
#: out: they exist only while a sweep is unfinished, and a GPU call moves them aside (bench/README.md).
TRAVEL_BUDGET_MIB = 48


def test_the_committed_tree_fits_the_gpu_machines_carry_limit():
    import subprocess
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    paths = [ROOT / f.decode() for f in files if f]
    sizes = {p: p.stat().st_size for p in paths if p.is_file() and "inflight" not in p.relative_to(ROOT).parts}
    total_mib = sum(sizes.values()) / 2**20
    largest = sorted(sizes, key=sizes.get, reverse=True)[:5]
    assert total_mib <= TRAVEL_BUDGET_MIB, (
        f"tracked files take {total_mib:.1f} MiB (largest: {[str(p.relative_to(ROOT)) for p in largest]}); "
        f"keep them under {TRAVEL_BUDGET_MIB} MiB so the tree still travels to a GPU machine")
