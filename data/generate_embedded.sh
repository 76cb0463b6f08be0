#!/usr/bin/env bash
# Regenerates the embedded dataset in data/ (data version 2; about 20 minutes on 2 CPU cores, resumable).
# Data version 1 (the reference set's) is not regenerated here: `python -m scadf_lib.dataversions restore 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for scene in munich etoile florence; do
  "$PY" -m scadf_lib.raytrace --scene "$scene" --out "data/$scene.nc" \
    --area-size 120 --spacing 1 --antennas 16 --stored-antennas 1 --samples 300000 --max-depth 3 --seed 42
done
