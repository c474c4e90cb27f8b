# Two commands for a new user: `make demo` and `make test`.
# Each (re)creates .venv when it is missing or older than pyproject.toml / constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export RAY_USAGE_STATS_ENABLED := 0

.PHONY: demo test test-fast system-packages lint bench bench-search bench-monitoring bench-serving bench-panel bench-cold-start labextension lock clean-venv

# The JupyterLab extension is installed after workbench; its labextension is prebuilt and committed,
# so installing it needs no node (SKIP_JUPYTER_BUILDER), and `make labextension` rebuilds it.
EXT := extensions/jupyterlab_workbench

# rfc3987-syntax (pulled in by jupyter-events/nbformat through jsonschema[format-nongpl]) compiles a
# Lark grammar when imported, and `import ray` imports it through jsonschema: 1.7 s of CPU in every
# Ray worker, actor, kernel and Jupyter server (python-jsonschema/jsonschema#1428). Measured here:
# `import ray` 2.4 s -> 0.85 s, a local Ray start 15 s -> 5 s, a 2-trial search 8.6 s -> 4.2 s.
# Without it jsonschema only skips checking the "iri" formats, which no schema we load uses.
SLOW_IMPORTS := rfc3987-syntax

$(STAMP): pyproject.toml constraints.txt $(EXT)/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	SKIP_JUPYTER_BUILDER=1 $(BIN)/python -m pip install --quiet -c constraints.txt -e $(EXT)
	$(BIN)/python -m pip uninstall --quiet --yes $(SLOW_IMPORTS)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench demo

# The Debian packages the suite needs (chromium, postgresql, mosquitto): installed when missing and
# running as root, else it stops with the one command to run.
system-packages:
	@scripts/system-packages

# Two pytest workers, each with its own local Ray and Serve, each running one test module at a time
# (module fixtures stay in one process), the longest modules first and the modules that start Ray
# clusters of their own one after another (tests/conftest.py: work_unit); TEST_WORKERS=0 runs the
# suite in this process alone.
TEST_WORKERS ?= 2

test: system-packages $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not ray"

lint: $(STAMP)
	$(BIN)/ruff check workbench tests bench
	$(BIN)/ruff format --check workbench tests bench

bench: $(STAMP)
	$(BIN)/python bench/demo_footprint.py

# The same small search as plain Ray Tune, the workbench, Tune + MLflow and Optuna, side by side
# (~25 min; BENCH_ARGS=--quick for < 3 min). mlflow-skinny is for this benchmark only: it goes into
# bench/.deps (git-ignored), never into the venv, pyproject.toml or constraints.txt.
MLFLOW_SKINNY ?= mlflow-skinny==3.17.2
BENCH_DEPS    := bench/.deps
BENCH_ARGS    ?= --out bench/.deps/search_overhead.json

$(BENCH_DEPS)/.installed:
	$(BIN)/python -m pip install --quiet --upgrade --target $(BENCH_DEPS) "$(MLFLOW_SKINNY)"
	@touch $@

bench-search: $(STAMP) $(BENCH_DEPS)/.installed
	$(BIN)/python bench/search_overhead.py $(BENCH_ARGS)

# Drift monitors: the workbench wrapper versus alibi-detect called directly versus scipy, on the same
# 10,000 x 50 windows, plus MMD and the online detector (~3 min; MONITORING_ARGS=--quick for < 1 min).
MONITORING_ARGS ?=
bench-monitoring: $(STAMP)
	$(BIN)/python bench/monitoring_overhead.py $(MONITORING_ARGS)

# Serving: FastAPI/uvicorn, a plain Ray Serve deployment and the workbench router (100/0, 90/10,
# 50/50, and with batching) on the same model and client, side by side (~5 min; SERVING_ARGS=--quick
# for ~2 min).
SERVING_ARGS ?=
bench-serving: $(STAMP)
	$(BIN)/python bench/serving_overhead.py $(SERVING_ARGS)

# Rebuild the JupyterLab panel after a change to $(EXT)/src or style (npm ci ~150 MB, then webpack),
# stamp the sources' hash (a test fails when they changed without a rebuild) and reinstall it.
labextension: $(STAMP)
	cd $(EXT) && npm ci --no-audit --no-fund && PATH="$(CURDIR)/$(BIN):$$PATH" npm run build:prod
	$(BIN)/python $(EXT)/labextension_stamp.py --write
	SKIP_JUPYTER_BUILDER=1 $(BIN)/python -m pip install --quiet -c constraints.txt -e $(EXT)

# The side panel's first render with 1,000 trials in the store, in chromium (~1 min).
PANEL_ARGS ?=
bench-panel: $(STAMP)
	$(BIN)/python bench/panel_render.py $(PANEL_ARGS)

# Cold start: import workbench, a fresh process to a 2-trial search's first result and to a new
# deployment's first answer, each on a fresh home and a fresh local Ray (~1 min a repeat;
# COLD_START_ARGS=--quick for 1 repeat).
COLD_START_ARGS ?=
bench-cold-start: $(STAMP)
	$(BIN)/python bench/cold_start.py $(COLD_START_ARGS)

# Re-resolve every pin (run after changing dependencies in pyproject.toml, then commit constraints.txt).
lock:
	rm -rf /tmp/workbench-lock && $(PYTHON) -m venv /tmp/workbench-lock
	/tmp/workbench-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/workbench-lock/bin/python -m pip install --quiet -e ".[dev]"
	/tmp/workbench-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean-venv:
	rm -rf $(VENV)
