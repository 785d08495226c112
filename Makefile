# `make up` installs and runs the simulator; `make test` is THE test command (CI runs it too).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra arguments, e.g. `make up UP_ARGS="--portal-port 9010"` or `make test PYTEST_ARGS="-k cli"`.
UP_ARGS ?=
PYTEST_ARGS ?=

.PHONY: up test lint install install-dev clean-state

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps make repeated runs skip pip until pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

up: install
	$(BIN)/mpac up --demo $(UP_ARGS)

test: install-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Forgets everything `mpac up` stored (embedded database, Redis data, field encryption key).
clean-state:
	rm -rf .mpac
