# Two commands do everything on a fresh Debian machine (see README.md):
#   make demo   set up, then run the main job
#   make test   set up, then run lint and the whole test suite (what CI runs)
# and a second job: make demo-flood (the bundled Flood model on the committed before/after pair)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# QGIS headless: Qt needs an offscreen platform, QGIS its prefix and a private runtime dir.
export QT_QPA_PLATFORM := offscreen
export QGIS_PREFIX_PATH := /usr
export XDG_RUNTIME_DIR := $(or $(XDG_RUNTIME_DIR),/tmp/sarmae-runtime-$(shell id -u))
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test lint demo demo-flood bench plugin

setup:
	@bash scripts/setup.sh
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

demo: setup
	bash scripts/demo.sh

demo-flood: setup
	bash scripts/flood_demo.sh

bench: setup
	$(PY) benchmarks/pretrain.py
	$(PY) benchmarks/inference.py

plugin: setup
	$(PY) scripts/build_plugin.py --out dist
