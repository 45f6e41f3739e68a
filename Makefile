# The two quick-start commands: `make demo` and `make test`. Each installs what it needs (uv, the
# services).
# `make demo DURATION=60` stops the demo after 60 s; `make test PYTEST_ARGS="-m 'not slow'"` runs a subset.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell bash scripts/ensure-uv.sh)
DURATION ?=
PYTEST_ARGS ?=
# Stop with the reason rather than run a wrong command when uv is missing.
REQUIRE_UV = @if [ -z "$(UV)" ] || [ ! -x "$(UV)" ]; then \
	echo "make: uv is missing and scripts/ensure-uv.sh could not install it (its reason is above)" >&2; \
	exit 1; fi

.PHONY: test demo lint services

test:
	$(REQUIRE_UV)
	bash scripts/ensure-services.sh --browser
	$(UV) sync --frozen
	$(UV) run --frozen pytest $(PYTEST_ARGS)

demo: services
	$(REQUIRE_UV)
	$(UV) sync --frozen
	$(UV) run --frozen livermore-demo $(if $(DURATION),--duration $(DURATION))

services:
	bash scripts/ensure-services.sh

lint:
	$(REQUIRE_UV)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
