# fleetcheck developer entry points. Every target creates the virtualenv when it is missing.
# `make demo` installs only what the product needs; the test, lint and benchmark targets add
# the development extras (pytest, playwright, mypy, ...) to the same virtualenv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench venv clean

$(RUNTIME): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(RUNTIME)
	$(BIN)/python -m fleetcheck.lab.demo
	@echo
	@echo "fleetcheck is installed in $(VENV): run $(BIN)/fleetcheck --help"
	@echo "(or put it on your PATH for good: pipx install $(CURDIR))"

test: $(STAMP)
	$(BIN)/ruff check fleetcheck tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check fleetcheck tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.inventory_load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
