# Two set-up commands: `make up` (run the platform) and `make test` (run the suite). Each creates .venv
# and installs the project into it by itself; the stamp file makes later runs skip the install until
# pyproject.toml changes.

VENV := .venv
STAMP := $(VENV)/.installed
# Python 3.11 exactly (pyproject.toml requires it): python3.11, else python3 when that is 3.11.
PYTHON := $(shell for candidate in python3.11 python3; do \
	command -v $$candidate >/dev/null 2>&1 && \
	$$candidate -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null && \
	{ echo $$candidate; break; }; done)
PACKAGES := engine services actors gateway persistence voelgoed loadtests paysim

.PHONY: up test lint flash-sale compare

up: $(STAMP)
	$(VENV)/bin/voelgoed up

# The suite in parallel (pytest-xdist): TEST_WORKERS sessions, each with its own Postgres, Redis, Ray and
# simulator. More workers than cores pays: many tests wait on I/O. TEST_WORKERS=0, or -n0 in PYTEST_ARGS, runs it
# serially; with VOELGOED_REDIS_URL (one shared database the suite flushes) it is serial by default.
# Tests go to whichever worker is free (--dist load). Keeping tests/system on one worker (--dist loadgroup with a
# scheduler by path) was tried and dropped: one such run hung at its end, the last worker never released.
TEST_WORKERS ?= $(if $(VOELGOED_REDIS_URL),0,4)
TEST_DIST ?= load

test: $(STAMP)
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist $(TEST_DIST) $(PYTEST_ARGS)

# The flash-sale harness with its defaults (100,000 buyers, 20,000 seats, 10 s); FLASH_SALE_ARGS adds options.
flash-sale: $(STAMP)
	$(VENV)/bin/python -m loadtests.flashsale $(FLASH_SALE_ARGS)

# The engine and both baselines on the same scenario, one after another.
compare: $(STAMP)
	$(VENV)/bin/python -m loadtests.compare $(FLASH_SALE_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(PACKAGES)
	$(VENV)/bin/lint-imports --no-cache

$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -e '.[test]'
	touch $(STAMP)
