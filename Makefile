# Better Work Pakistan data platform.
#   make run    build the warehouse (demo sources by default), print how to query it
#   make test   lint + unit, integration (real PostgreSQL) and end-to-end tests
# Both create the project's environment first, from the lock file, with nothing but Python and make.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= 1
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-system lint stop airflow demo-data bench-load bench-run bench-scale env clean help site
.DEFAULT_GOAL := help

help:
	@sed -n '2,4p' Makefile | sed 's/^# //'
	@echo "Also: make stop | airflow | site | demo-data SCALE=n | test-system | bench-load | bench-run | bench-scale | lint | env | clean"

# uv, bootstrapped into a small virtualenv of its own, then the project environment from uv.lock.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	@echo "Creating the environment (.venv) from uv.lock"
	$(UV) sync --frozen --quiet --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

run: env
	$(BIN)/bw run

# Two pytest-xdist workers (TEST_WORKERS=0 for one process); tests/conftest.py groups the tests so
# that each module's pipeline run, and the session's shared demo run, happen once. The fifteen
# slowest steps are listed at the end, so that a slow run says where its time went.
TEST_WORKERS ?= 2
test: env lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15

# Whole-system tests that take minutes each (alerts through real DAG runs, a killed run then two
# concurrent runs): pytest's `system` marker, left out of `make test`.
test-system: env
	$(BIN)/pytest -m system

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/snapshots

stop: env
	$(BIN)/bw stop

# Airflow as on the team server: EXECUTOR=local (default) or celery (workers on REDIS_URL).
EXECUTOR ?= local
airflow: env
	EXECUTOR=$(EXECUTOR) $(BIN)/bw airflow

demo-data: env
	SCALE=$(SCALE) $(BIN)/bw demo-data

# The export loader against a bare COPY and DataFrame.to_sql (options: BENCH_ARGS="--scale 100 --only loader_all").
BENCH_ARGS ?=
bench-load: env
	$(BIN)/python -m benchmarks.load $(BENCH_ARGS)

# Wall time of a warm `make run` (environment, warehouse and sources already in place).
bench-run: env
	$(BIN)/python -m benchmarks.run

# The whole pipeline at several demo scales, fresh warehouse each; table in docs/BENCHMARKS.md.
SCALES ?= 1,10,100
bench-scale: env
	$(BIN)/python -m benchmarks.scale --scales $(SCALES) --write docs/BENCHMARKS.md

# Serve the static site (SITE_DIR, default data/site/) on 127.0.0.1:8000 for a look; built if missing.
site: env
	$(BIN)/bw site

clean:
	rm -rf $(VENV) $(TOOLS) .airflow dbt_project/target dbt_project/logs .pytest_cache .ruff_cache
