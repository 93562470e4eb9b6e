# Tenantry: `make run` serves everything, `make test` runs the whole suite.
# Both create .venv and install on first use; with no DATABASE_URL / REDIS_URL they start an
# embedded PostgreSQL and Redis under .data/ (see config/devstack.py).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
# Lint needs settings to import, not a server: these values are never connected to.
LINT_ENV := DJANGO_SETTINGS_MODULE=config.settings TENANTRY_TESTING=1 \
	DATABASE_URL=postgres://lint@127.0.0.1:1/lint REDIS_URL=redis://127.0.0.1:1/0

.PHONY: install run test pytest lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m config.devstack run --port $(PORT)

test: install lint pytest

pytest: install
	$(PY) -m config.devstack test $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(LINT_ENV) $(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m config.devstack exec -- $(PY) bench/provision.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data staticfiles .pytest_cache .mypy_cache .ruff_cache
