# Dashtam: `make run` serves the embedded default; `make test` runs every gate and test.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: setup run test check lint format typecheck imports pytest bench docs conformance build clean

$(UV):
	@if ! command -v uv >/dev/null 2>&1; then \
	  echo "installing uv from PyPI into .tools"; \
	  $(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv; \
	fi

setup: $(UV)
	@$(UV) sync --all-packages --frozen --quiet || $(UV) sync --all-packages --quiet

run: setup
	@mkdir -p var
	$(BIN)/dashtam serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: setup
	$(BIN)/mypy packages/dashtam-core/src packages/dashtam-api/src packages/dashtam-provider-schwab/src packages/dashtam-provider-alpaca/src packages/dashtam-provider-chase/src

imports: setup
	$(BIN)/lint-imports

check: lint typecheck imports

pytest: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: check pytest

conformance: setup
	$(BIN)/pytest -q -k "Conformance or conformance" $(PYTEST_ARGS)

bench: setup
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

docs: setup
	$(BIN)/mkdocs build --strict

build: setup
	$(UV) build --all-packages -o dist

clean:
	rm -rf dist .mypy_cache .ruff_cache .pytest_cache
