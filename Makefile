# One entry point. Every target installs what it needs into .venv first.
# torch is pinned to the CPU build 2.13.0 and installed before the project, so pip never
# pulls a multi-GB CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench train results sweep

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,dev]"
	touch $(STAMP)

install: $(STAMP)

# the default controllers less mpc+shield (a second MPC run would take the demo past a minute)
DEMO_CONTROLLERS := static_cap,static_cap+shield,peak_shaving,peak_shaving+shield,shave_then_cap,shave_then_cap+shield,greedy,greedy+shield,mpc,ppo,ppo+shield,oracle

demo: $(STAMP)
	$(BIN)/python evaluate.py --scenario cpm_env/DataCenter-v0 --controllers $(DEMO_CONTROLLERS) --seeds 100-102 --out results/demo

# The README's results table: every scenario, every controller, held-out seeds 100-104.
results: $(STAMP)
	for s in DataCenter-v0 DemandResponse-v0 NoBattery-v0 FastRamp-v0 InferenceTrace-v0; do \
		$(BIN)/python evaluate.py --scenario cpm_env/$$s --seeds 100-104 || exit 1; done

# Site sizing and the battery's value: oversubscription x battery size x controllers, and the
# economics split, into results/sweeps/cpm_frontier/ (about 3 minutes on 2 cores).
sweep: $(STAMP)
	$(BIN)/python evaluate.py --sweep configs/sweeps/cpm_frontier.yml

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff over the whole repo, mypy on cpm_env (settings in pyproject.toml); the pre-commit hooks run the same.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/import_time.py
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/controller_latency.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/oracle_solve.py
	$(BIN)/python benchmarks/trace_load.py

train: $(STAMP)
	$(BIN)/python train.py --scenario cpm_env/DataCenter-v0
