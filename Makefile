# Two entry points that do all the set-up on a fresh machine:
#   make run    create .venv if missing, install, run the default pipeline (CPU), the report and README results
#   make test   same set-up, then the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
# Each config writes under results/<config file name>; the default config's run:
RESULTS := results/config
# GPUs x gpu_share of the paper config: how many weight-sharing searches run at once
GPU_SLOTS ?= 1

.PHONY: run test lint schema paper report clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[all]'
	touch $@

run: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES)
	$(BIN)/ddpnas report timing --benchmarks $(RESULTS)/benchmarks --out $(RESULTS)/tables/timing --cores $(CORES)
	$(BIN)/ddpnas report readme --tables $(RESULTS)/tables --readme README.md --config config/config.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) --report $(RESULTS)/report.html

test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --lint

# The config's JSON schema for editors, exported from the typed models (a test checks the copy).
schema: $(STAMP)
	$(BIN)/python -m ddpnas.config.export

paper: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores 8 --resources gpu=1 gpu_slots=$(GPU_SLOTS) \
	  --configfile config/paper.yaml

# The default run's outputs only (other configs' folders under results/ are left alone).
clean:
	rm -rf $(RESULTS)
