# The two set-up commands of the README: `make demo` and `make test`; and the container
# image's: `make image` and `make image-test`.
# Each creates the virtual environment on first use (in .venv, or $VENV).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The container engine, driven like docker: docker, else podman. CI sets CONTAINER=.ci/containers
# (podman as these machines need it). IMAGE_BUILD is the command that builds the image.
CONTAINER ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || echo podman)
IMAGE_BUILD ?= $(CONTAINER) build
IMAGE ?= querywatch:dev
LOCK := $(VENV)/bin/uv pip compile --generate-hashes --python-version 3.11 --python-platform linux

.PHONY: demo test lint services image image-test lock

$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[server,demo]'
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(PIP) install -q -e '.[server,demo,test]'
	touch $@

demo: $(VENV)/.runtime  ## Run the all-in-one demo (options: make demo ARGS="--port 8080 --keep")
	$(VENV)/bin/querywatch up --demo $(ARGS)

services:  ## Start what the tests talk to (PostgreSQL; Chromium for the dashboard tests)
	bash scripts/test-services.sh

lint: $(VENV)/.test  ## ruff, ruff format and mypy (on the installed names, through .typecheck/)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	mkdir -p .typecheck/querywatch
	for d in detector features models migrations; do ln -sfn ../../$$d .typecheck/querywatch/$$d; done
	$(PY) -m mypy

# Tests run in TEST_WORKERS processes (pytest-xdist; 0 runs them in this process); the run ends
# with its 15 slowest tests, for keeping CI under its 15 minutes.
TEST_WORKERS ?= 3

test: $(VENV)/.test services lint  ## Everything CI runs
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15

image:  ## Build the container image $(IMAGE) from deploy/Dockerfile
	$(IMAGE_BUILD) -f deploy/Dockerfile -t $(IMAGE) .

# Needs PostgreSQL on 127.0.0.1:5432 (`make services`); starts its own broker on the host.
image-test: image $(VENV)/.test  ## Run the image's processes against real services; print its figures
	QUERYWATCH_IMAGE=$(IMAGE) QUERYWATCH_CONTAINER="$(CONTAINER)" $(PY) -m pytest -m image tests/image

lock: $(VENV)/.runtime  ## Pin the image's dependencies again, with hashes (deploy/*.lock)
	$(PIP) install -q uv
	$(LOCK) pyproject.toml --extra server -o deploy/requirements.lock
	printf 'setuptools>=68\nwheel\n' | $(LOCK) - -o deploy/build.lock
