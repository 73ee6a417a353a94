# The README's commands: `make demo` and `make test` (both set up what is missing).
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.stamps
# Debian packages: the one-node SLURM cluster of the cluster test, ffmpeg for video tools.
APT_PACKAGES := munge slurmctld slurmd slurm-client ffmpeg pkg-config
CORES ?= 2
# What `make lint` / `make format` cover (ruff's config: pyproject.toml [tool.ruff]).
LINT_PATHS := src tests bench setup.py tools

.PHONY: setup apt venv build dev demo test test-fast lint format env bench bench-gpu clean

setup: $(STAMP)/build $(STAMP)/dev

apt: $(STAMP)/apt
$(STAMP)/apt:
	@mkdir -p $(STAMP)
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)
	  if [ -n "$$missing" ]; then
	    echo "== apt-get install $$missing"
	    apt-get update -qq
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null
	  fi
	else
	  echo "!! not root or no apt-get: Debian packages ($(APT_PACKAGES)) not installed; the SLURM test will skip" >&2
	fi
	touch $@

venv: $(STAMP)/venv
$(STAMP)/venv: requirements.txt constraints.txt requirements/torch.txt
	@echo "== $(VENV): Python packages (requirements.txt, constraints.txt, requirements/torch.txt)"
	[ -x $(PY) ] || python3 -m venv $(VENV)
	mkdir -p $(STAMP)
	$(PIP) install -q pip==26.3
	# torch: the CPU wheel where none is present (a bare `torch` would pull a CUDA build)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q -r requirements/torch.txt
	$(PIP) install -q -r requirements.txt -c constraints.txt
	touch $@

build: $(STAMP)/build
$(STAMP)/build: $(STAMP)/apt $(STAMP)/venv setup.py pyproject.toml $(wildcard csrc/*.cpp csrc/*.h)
	@echo "== building affectflow and its C++ extension"
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import affectflow._native"
	touch $@

# Developer tools (ruff), pinned in requirements/dev.txt.
dev: $(STAMP)/dev
$(STAMP)/dev: $(STAMP)/venv requirements/dev.txt
	@echo "== $(VENV): developer tools (requirements/dev.txt)"
	$(PIP) install -q -r requirements/dev.txt
	touch $@

demo: setup
	@source $(VENV)/bin/activate
	bash scripts/demo.sh

test: setup
	@source $(VENV)/bin/activate
	python -m pytest tests -q

test-fast: setup
	@source $(VENV)/bin/activate
	python -m pytest tests -q -m "not slow and not cluster"

# ruff as linter and formatter, read-only (.ci/run runs it); both checks run, either fails it.
lint: $(STAMP)/dev
	@status=0
	$(VENV)/bin/ruff check $(LINT_PATHS) || status=1
	$(VENV)/bin/ruff format --check $(LINT_PATHS) || status=1
	exit $$status

# Rewrites the files: formats, then applies ruff's safe fixes (what remains needs a person).
format: $(STAMP)/dev
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

# envs/*.yaml from pyproject.toml and the lock files (tests/test_env.py fails when they are stale).
env: $(STAMP)/venv
	$(PY) tools/gen_env.py

bench: setup
	@source $(VENV)/bin/activate
	for b in bench/align.py bench/normalize.py bench/train.py; do echo "== $$b"; python $$b; done

# The GPU check (bench/gpu.py): on a CUDA machine; a bare GPU node runs it without `make`:
#   PYTHONPATH=src python3 bench/gpu.py --out gpu.json
bench-gpu:
	PYTHONPATH=src python3 bench/gpu.py --out bench-gpu.json

clean:
	@rm -rf build .deps src/*.egg-info src/affectflow/*.so results .snakemake
