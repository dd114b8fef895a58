# The two commands of the README. Each installs what it needs first (idempotent).
VENV ?= .venv
KB := $(VENV)/bin/kb
PY := $(VENV)/bin/python

.PHONY: demo test lint install db-start db-stop

install:
	@scripts/install.sh

demo: install
	@$(KB) demo

test: install lint
	@scripts/install-browser.sh
	@$(KB) db start
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(PY) scripts/typecheck.py

db-start: install
	@$(KB) db start

db-stop:
	@$(KB) db stop
