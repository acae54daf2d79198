# Regia. The two commands: `make demo` (the main job, headless through Blender's bpy, on CPU, no downloads) and
# `make test` (the whole suite).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Re-install only when pyproject.toml changes, so that every target after the first run starts at once.
STAMP := $(VENV)/.installed
# Blender's extension CLI ships inside the bpy wheel and runs under plain Python (no Blender binary).
BLENDER_EXT_GLOB := $(VENV)/lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py
PYTEST_ARGS ?=
# The suite runs on every core, a test file per worker (module fixtures, e.g. one engine server, stay shared).
PARALLEL := -n auto --dist loadfile

.PHONY: help venv demo engine-demo test test-fast test-perf test-install test-bpy42 lint format bench schema extension requirements clean distclean gpu-wheels

help:
	@echo "make demo       the main job through the Blender add-on (headless bpy, managed engine); writes out/demo/"
	@echo "make engine-demo  the same kind of job on the engine alone (python -m engine demo); out/engine-demo/"
	@echo "make test       ruff check and format check, then the whole suite but the perf tests (what .ci/run calls)"
	@echo "make test-fast  the tests that start no engine process and no Blender (seconds, for inner loops)"
	@echo "make test-perf  the tests that assert a duration (run them on an idle machine)"
	@echo "make test-install  Install Engine for real in a fresh Blender user folder, then Generate (~6 GB, minutes)"
	@echo "make venv       create .venv and install the engine with its dev extra"
	@echo "make test-bpy42 the add-on and storyboard e2e tests under Blender 4.2 LTS too (installs bpy 4.2 into .venv-bpy42, ~1 GB)"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make format     ruff format and ruff check --fix"
	@echo "make bench      run every bench/*.py script"
	@echo "make schema     print the job spec's JSON Schema"
	@echo "make extension  validate and build the Blender extension zip into dist/"
	@echo "make gpu-wheels    download the wheels bench/gpu_check.sh installs on a CUDA machine without network"
	@echo "make requirements  write addon/engine_requirements.txt (what Install Engine installs) from pyproject.toml"
	@echo "make clean      remove outputs and caches (keeps .venv); distclean removes .venv too"

venv: $(STAMP)

# pip repeats a 'Location ... is ignored' warning for every local index: drop those lines only.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (a few minutes on a fresh clone: torch and bpy)"
	$(VENV)/bin/pip install -q -e '.[dev]' 2>&1 | { grep -v 'WARNING: Location' || true; }
	touch $@

demo: extension
	$(PY) scripts/blender_demo.py --zip "$$(ls -t dist/regia-*.zip | head -n 1)" --out out/demo

engine-demo: $(STAMP)
	$(PY) -m engine demo --out out/engine-demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PARALLEL) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not bpy and not perf" $(PYTEST_ARGS)

# Wheels for a CUDA machine without network or the engine's packages (bench/gpu_check.sh installs them from .whl/):
# the engine's pins that such a machine lacked, and what they need, for its Python (GPU_PYTHON, 3.12 by default).
GPU_PYTHON ?= 3.12
GPU_WHEELS = open_clip_torch==3.3.0 kornia==0.9.0 pydantic==2.14.4 fastapi==0.165.0 uvicorn==0.54.0 \
	diffusers==0.42.1 accelerate==1.15.0 timm==1.0.31 ftfy==6.3.1 wcwidth==0.9.4 kornia_rs==0.2.0 \
	pydantic_core==2.50.5 annotated_types==0.8.0 typing_inspection==0.4.5 typing_extensions==4.16.0 \
	starlette==1.10.0 annotated_doc==0.0.7 importlib_metadata==10.2.0
gpu-wheels:
	mkdir -p .whl
	$(VENV)/bin/pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) -d .whl $(GPU_WHEELS) \
		2>&1 | { grep -v 'WARNING: Location' || true; }

test-perf: $(STAMP)
	$(PY) -m pytest -m perf $(PYTEST_ARGS)

test-install: $(STAMP)
	$(PY) -m pytest -m install $(PYTEST_ARGS)

# Blender 4.2 LTS as a second bpy: its own venv (one bpy per interpreter), used by the add-on tests' children.
BPY42 := .venv-bpy42
$(BPY42)/.installed:
	test -x $(BPY42)/bin/pip || $(PYTHON) -m venv $(BPY42)
	$(BPY42)/bin/pip install -q 'bpy==4.2.*' 'numpy==1.26.4' 2>&1 | { grep -v 'WARNING: Location' || true; }
	touch $@

test-bpy42: $(STAMP) $(BPY42)/.installed
	REGIA_EXTRA_BPY_PYTHONS=$(CURDIR)/$(BPY42)/bin/python $(PY) -m pytest tests/test_addon_e2e.py tests/test_storyboard_addon.py \
		tests/test_addon_ui.py tests/test_uv_raster.py tests/test_material_wiring.py tests/test_texture_addon.py tests/test_projection.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Files starting with _ are helpers that the scripts import, not benchmarks.
bench: $(STAMP)
	@shopt -s nullglob; for script in bench/[!_]*.py; do \
		echo "== $$script"; PYTHONPATH=. $(PY) "$$script"; \
	done

schema: $(STAMP)
	@$(PY) -m engine schema

# Install Engine reads the engine's pins from a file inside the extension (the zip carries no pyproject.toml).
requirements: addon/engine_requirements.txt
addon/engine_requirements.txt: pyproject.toml addon/install_plan.py | $(STAMP)
	$(PY) addon/install_plan.py pyproject.toml

extension: $(STAMP) addon/engine_requirements.txt
	cli=$$(ls $(BLENDER_EXT_GLOB) | head -n 1); \
	$(PY) "$$cli" validate .; \
	mkdir -p dist; \
	$(PY) "$$cli" build --source-dir . --output-dir dist

clean:
	rm -rf out dist build .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(BPY42)
