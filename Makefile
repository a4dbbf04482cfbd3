# The front door. `make run` and `make test` set everything up themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 3000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup redis run test unit integration template lint format clean

help:
	@echo "make run    serve the whole API on http://127.0.0.1:$(PORT) (no AWS account, no Docker)"
	@echo "make test   lint + unit, integration and template tests"
	@echo "make lint   ruff, mypy --strict on core/"

setup: $(STAMP) redis

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $(STAMP)

# Tests and the local stack start their own private redis-server; this only makes sure one is installed.
redis:
	@command -v redis-server >/dev/null || command -v valkey-server >/dev/null || { \
		echo "redis-server not found: installing Debian's redis-server package"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

run: setup
	$(BIN)/python -m local --port $(PORT)

test: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup
	$(BIN)/python -m pytest -q tests/integration

template: setup
	$(BIN)/python -m pytest -q tests/template

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .local build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
