"""The names of the sweep's runs: their folders under ``runs/<preset>/``, their rows in the result
tables and their shipped checkpoints (``results/<set>/models/<name>.pt``). One place, pure strings, read
by the planner (:mod:`scadf_lib.planning`), the Localiser, the track study and the figures."""

from __future__ import annotations


def main_run(scene: str, regime: str, method: str, seed: int) -> str:
    """A run of Table II (the ``main`` study)."""
    return f"main_{scene}_{regime}_{method}_s{seed}"


def spatial_run(scene: str, seed: int) -> str:
    """SCADF-MoE without spatial context (L = 1), Mix."""
    return f"spatial_{scene}_mix_nospace_s{seed}"


def block_run(scene: str, method: str, seed: int) -> str:
    """A run of the ``blocks`` study (Mix, held-out map blocks)."""
    return f"blocks_{scene}_mix_{method}_s{seed}"


def measured_run(scene: str, method: str, setting: str, seed: int) -> str:
    """A run of the measured-input study: ``setting`` is 'oracle', 'measured' (the default link budget)
    or a sweep's setting ('tx-10dB', 'timing50ns')."""
    return f"meas_{scene}_mix_{method}_{setting}_s{seed}"


def anchor_run(scene: str, cell: str, anchor: str, seed: int, setting: str = "") -> str:
    """An anchor's run: ``cell`` is the regime ('mix', 'ood') or the split ('blocks'); ``setting`` the
    inputs or the survey where the study has several ('oracle', 'measured', 'grid2')."""
    return f"anchor_{scene}_{cell}_{anchor}" + (f"_{setting}" if setting else "") + f"_s{seed}"
