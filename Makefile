# The two quick-start commands: `make demo` and `make test`. Each installs uv if missing.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell bash scripts/ensure-uv.sh)

.PHONY: test demo lint services

test:
	bash scripts/ensure-services.sh --browser
	$(UV) sync --frozen
	$(UV) run --frozen pytest

demo: services
	$(UV) sync --frozen
	$(UV) run --frozen livermore-demo

services:
	bash scripts/ensure-services.sh

lint:
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
