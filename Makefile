# The two set-up commands of the README: `make demo` and `make test`.
# Each creates the virtual environment on first use (in .venv, or $VENV).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint services

$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[server]'
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(PIP) install -q -e '.[server,test]'
	touch $@

demo: $(VENV)/.runtime  ## Run the all-in-one demo: broker, database, consumer, dispatcher, API, simulated thieves
	$(VENV)/bin/querywatch up --demo

services:  ## Start what the tests talk to (PostgreSQL; Chromium for the dashboard tests)
	bash scripts/test-services.sh

lint: $(VENV)/.test  ## ruff, ruff format and mypy (on the installed names, through .typecheck/)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	mkdir -p .typecheck/querywatch
	for d in detector features models migrations; do ln -sfn ../../$$d .typecheck/querywatch/$$d; done
	$(PY) -m mypy

test: $(VENV)/.test services lint  ## Everything CI runs
	$(PY) -m pytest
