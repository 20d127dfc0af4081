# The two commands a new user needs: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMBEDDED_STAMP := $(VENV)/.installed-embedded

.PHONY: run test bench lint install services

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# `make run`'s embedded mode (no REDIS_URL) needs an in-process Redis; nothing else does.
$(EMBEDDED_STAMP): $(STAMP) requirements-embedded.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-embedded.txt
	touch $(EMBEDDED_STAMP)

install: $(STAMP)

run: $(EMBEDDED_STAMP)
	$(BIN)/python scripts/run.py

test: $(STAMP)
	$(BIN)/python scripts/test.py

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
