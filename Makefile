# The two commands of the README: `make demo` (set up + run the notebook pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lab data data-v1 bench clean

setup:
	@bash .ci/setup.sh

# Runs every notebook in order on the embedded data (CPU if no GPU); executed copies go to runs/.
demo: setup
	$(PY) -m scadf_lib.pipeline --out runs/demo

# Unit, property, reliability and notebook (nbval) tests. The unit tests run one process per core
# (pytest-xdist, at most 4; each test process uses one torch thread, tests/conftest.py); the notebooks
# run one after another.
test: setup
	$(PY) -m pytest -q -n auto --maxprocesses 4 tests
	SCADF_HEADLESS=1 $(PY) -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

# JupyterLab on the venv's kernel (as root it needs --allow-root).
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)

# Regenerates data/ (data version 2) with Sionna RT (about 20 minutes on 2 cores, resumable).
data: setup
	PY=$(PY) bash data/generate_embedded.sh

# Writes data version 1 (what the reference set and the shipped models were trained on) to data/v1/
# from git history (make setup does it too).
data-v1: setup
	$(PY) -m scadf_lib.dataversions restore 1

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf runs .pytest_cache
