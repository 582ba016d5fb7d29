# rstransfer: `make demo` and `make test` each do all set-up first (fresh Debian, Python 3.11, root).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export TF_USE_LEGACY_KERAS := 1
CORES ?= 2
# horovod 0.28.1 from source against the pinned TF (see README "Stack")
HOROVOD_ENV := HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_PYTORCH=1 \
	HOROVOD_WITHOUT_MXNET=1 CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS=-j3

.PHONY: setup demo test test-fast lint dag clean system-deps

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)

# one pip call for the pinned stack keeps TF's numpy<2.1 pin intact
$(VENV)/.stack: envs/requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -U pip==24.3.1 wheel==0.45.1 setuptools==75.6.0
	$(BIN)/pip install -q -r envs/requirements.txt
	touch $@

$(VENV)/.horovod: $(VENV)/.stack
	@command -v g++ >/dev/null || { apt-get update -qq && apt-get install -y -qq g++ make; }
	$(HOROVOD_ENV) $(if $(shell command -v mpicxx),,HOROVOD_WITHOUT_MPI=1) \
		$(BIN)/pip install -q --no-cache-dir --no-build-isolation -c envs/requirements.txt horovod==0.28.1
	touch $@

$(VENV)/.rstransfer: pyproject.toml $(VENV)/.horovod
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $@

# Keras 3 on JAX (CPU), no TensorFlow: tests/test_backend_neutral.py builds every study's models here
JAX_VENV := .venv-jax
$(JAX_VENV)/.stack: envs/jax-requirements.txt
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/pip install -q -r envs/jax-requirements.txt
	touch $@

setup: $(VENV)/.rstransfer $(JAX_VENV)/.stack

# two demo teams on one leaderboard: WG02 (config/demo_team_b.yaml) submits its predictions,
# one deliberately bad entry is dropped into its folder, then the main config runs team demo
# and, as the organiser, exports the hidden labels, scores every submission and builds the boards.
# --max-threads 1: on a small machine two single-threaded jobs side by side beat one job on two
# threads (every job also pays TensorFlow's start-up, which is single-threaded)
demo: setup
	snakemake --cores $(CORES) --max-threads 1 --printshellcmds --configfile config/demo_team_b.yaml
	install -D -m 0640 config/demo_bad_submission.json results/submissions/WG02/hsi-perfect-scores.json
	snakemake --cores $(CORES) --max-threads 1 --printshellcmds
	@echo "Report:      $(abspath results/report/index.html)"
	@echo "Report WG02: $(abspath results/teams/WG02/report/index.html)"
	@echo "Leaderboard: $(abspath results/board/leaderboard.html)"

dag: setup
	snakemake --lint && snakemake -n

test: setup
	bash tests/run.sh

clean:
	rm -rf results .snakemake $(JAX_VENV)
