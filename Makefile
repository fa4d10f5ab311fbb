# Two entry points that do all the set-up on a fresh machine:
#   make run     create .venv if missing, install, run the default pipeline (CPU): results, the
#                timing table and the HTML report under results/config/; changes no tracked file
#   make test    same set-up, then the test suite
# and one explicit step after a run:
#   make readme  copy that run's tables to results/reference/config/ (committed) and regenerate
#                the README's results section from them (CI checks the two agree)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2
# Each config writes under results/<config file name>; the default config's run:
RESULTS := results/config
# The committed copy of that run's tables the README's results section is generated from.
REFERENCE := results/reference/config
# GPUs x gpu_share of the paper config: how many weight-sharing searches run at once
GPU_SLOTS ?= 1

.PHONY: run readme test lint browser schema paper clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[all]'
	touch $@

run: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) --report $(RESULTS)/report.html

readme: $(STAMP)
	$(BIN)/ddpnas report readme --run $(RESULTS) --config config/config.yaml \
	  --snapshot $(REFERENCE) --readme README.md

test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --lint

# Debian's chromium for the test that opens the HTML report in a headless browser (CI runs this;
# playwright drives it and is pinned in requirements/lock.txt). Needs root and apt; elsewhere
# install chromium yourself, or that one test skips and says so.
browser:
	command -v chromium >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	chromium --version

# The config's JSON schema for editors, exported from the typed models (a test checks the copy).
schema: $(STAMP)
	$(BIN)/python -m ddpnas.config.export

paper: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores 8 --resources gpu=1 gpu_slots=$(GPU_SLOTS) \
	  --configfile config/paper.yaml

# The default run's outputs only (other configs' folders under results/ are left alone).
clean:
	rm -rf $(RESULTS)
