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
