# `make up` installs and runs the simulator; `make test` is THE test command (CI runs it too).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra arguments, e.g. `make up UP_ARGS="--portal-port 9010"` or `make test PYTEST_ARGS="-k cli"`.
UP_ARGS ?=
PYTEST_ARGS ?=
# e.g. `make audit AUDIT_ARGS="--service osv"`.
AUDIT_ARGS ?=

.PHONY: up test lint audit install install-dev clean-state

# venv seeds whatever pip and setuptools the Python shipped with (old ones carry known CVEs).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check --quiet --upgrade pip setuptools

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

# Known vulnerabilities in the installed dependencies (pip-audit; waivers in scripts/audit_ignore.txt).
audit: install-dev
	scripts/audit_dependencies.sh $(AUDIT_ARGS)

# Forgets everything `mpac up` stored (embedded database, Redis data, field encryption key).
clean-state:
	rm -rf .mpac
