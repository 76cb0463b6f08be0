"""Shared fixtures: a small synthetic schema-valid dataset (no Sionna needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scadf_lib.schema import save_fingerprints
from synthetic import synthetic_fingerprints

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_ds():
    return synthetic_fingerprints(n_side=16, spacing_m=2.0, seed=0)


@pytest.fixture(scope="session")
def synthetic_nc(tmp_path_factory, synthetic_ds) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.nc"
    save_fingerprints(synthetic_ds, path)
    return path
