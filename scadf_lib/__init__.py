"""scadf_lib: the small core behind the SCADF-MoE workbook.

One module per idea:

- :mod:`scadf_lib.schema`      fingerprint dataset schema, validation and loading (xarray / netCDF4)
- :mod:`scadf_lib.raytrace`    ray-traced fingerprints with NVIDIA Sionna RT
- :mod:`scadf_lib.clustering`  radius-based spatial clustering
- :mod:`scadf_lib.trajectories` leak-free splits, trajectories and feature assembly
- :mod:`scadf_lib.models`      SCADF-MoE, its baselines and ablations
- :mod:`scadf_lib.config`      a run's configuration, split, schedule and stopping rule (no torch)
- :mod:`scadf_lib.rundata`     a run's data: features, split, bands, normalisation, Datasets
- :mod:`scadf_lib.training`    the training loop, DDP, CLI
- :mod:`scadf_lib.checkpoints` saving and loading a run's weights
- :mod:`scadf_lib.evaluation`  metrics in metres / square metres
- :mod:`scadf_lib.experiments` the sweep driver (``python -m scadf_lib.experiments --preset ...``); with
  :mod:`~scadf_lib.planning` (which runs), :mod:`~scadf_lib.runfolder` (a run's folder and its state),
  :mod:`~scadf_lib.sweep_tables` (the result set's tables), :mod:`~scadf_lib.rebuild` (re-training shipped
  weights) and :mod:`~scadf_lib.pool` (worker processes)
- :mod:`scadf_lib.studies`     one module per study of a result set: tables, verdicts, report section
- :mod:`scadf_lib.report`      REPORT.md and the README's headline, from the tables
- :mod:`scadf_lib.plots`       figures
- :mod:`scadf_lib.widgets`     routing inspector
"""

__version__ = "0.1.0"
