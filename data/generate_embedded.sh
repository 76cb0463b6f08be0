#!/usr/bin/env bash
# Regenerates the embedded dataset in data/ (about 11 minutes on 2 CPU cores, resumable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for scene in munich etoile florence; do
  "$PY" -m scadf_lib.raytrace --scene "$scene" --out "data/$scene.nc" \
    --area-size 120 --spacing 1 --antennas 16 --stored-antennas 1 --samples 300000 --max-depth 3 --seed 42
done
