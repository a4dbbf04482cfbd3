# The front door. `make run` and `make test` set everything up themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 3000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup redis run test unit integration template lint format clean package deploy

help:
	@echo "make run    serve the whole API on http://127.0.0.1:$(PORT) (no AWS account, no Docker)"
	@echo "make test   lint + unit, integration and template tests"
	@echo "make lint   ruff, mypy --strict on core/"

setup: $(STAMP) redis

$(STAMP): pyproject.toml constraints.txt requirements/schemathesis.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev]' \
		--requirement requirements/schemathesis.txt
	@# tests/fuzz: schemathesis's own pin of jsonschema-rs is older than the project's (requirements/schemathesis.txt)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --no-deps schemathesis
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

# Lambda artifacts for template.yaml (build/: layer.zip, <Function>.zip, manifest.json, host/ for the tests).
package: $(STAMP)
	$(BIN)/python packaging/build.py

# make deploy ARTIFACT_BUCKET=my-bucket [STACK=travel-search] [REGION=eu-west-1] [PARAMETERS="AlarmEmail=a@b.c"] [DRY_RUN=1]
STACK ?= travel-search
deploy: $(STAMP)
	$(BIN)/python packaging/deploy.py --stack "$(STACK)" --bucket "$(ARTIFACT_BUCKET)" --region "$(REGION)" \
		$(foreach p,$(PARAMETERS),--parameter "$(p)") $(if $(DRY_RUN),--dry-run)

clean:
	rm -rf $(VENV) .local build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# checkov (tests/template/test_static_gates.py) lives in its own venv: it pins its own boto3 and friends.
# The test and template targets set it up, and tell the test where it is (so it never skips under make).
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
.PHONY: checkov clean-checkov

$(CHECKOV_STAMP): requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --requirement requirements/checkov.txt
	@touch $(CHECKOV_STAMP)

test template: $(CHECKOV_STAMP)
test template: export CHECKOV_BIN := $(CURDIR)/$(CHECKOV_VENV)/bin/checkov

# The same scan as the test, readable: every finding with its resource, and the skips with their reasons.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --skip-download --compact -f template.yaml --framework cloudformation

clean: clean-checkov
clean-checkov:
	rm -rf $(CHECKOV_VENV)

# Benchmarks (bench/): the figures of docs/performance.md → bench/results/latest.json and docs/performance.png.
.PHONY: bench load
bench: setup
	$(BIN)/python -m bench

# The local stack under 50 locust clients for 60 s, then an audit that every accepted partner push landed.
load: setup
	$(BIN)/python -m bench.load

# Reliability: the fault suite (Redis stopped/stalled/failed over, DynamoDB throttled, events replayed …),
# ending with one line "N passed, N failed"; and a long schema-driven fuzz of the API (≥ 2,000 requests).
.PHONY: faults fuzz
faults: setup
	$(BIN)/python -m tests.faults tests/faults

fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz
