# fleetcheck developer entry points. Every target creates the virtualenv when it is missing.
# `make demo` installs only what the product needs; the test, lint and benchmark targets add
# the development extras (pytest, playwright, mypy, ...) to the same virtualenv.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench venv clean

# System packages for the Kerberos tests (a real MIT KDC) and for building gssapi/pykerberos.
KRB_PACKAGES := krb5-kdc krb5-admin-server krb5-user libkrb5-dev faketime

$(RUNTIME): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	@if ! [ -x /usr/sbin/krb5kdc ] || ! command -v krb5-config >/dev/null || ! command -v faketime >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(KRB_PACKAGES) >/dev/null \
	      || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(KRB_PACKAGES) >/dev/null) \
	      || echo "warning: could not install $(KRB_PACKAGES): the Kerberos tests will be skipped" >&2; \
	  else \
	    echo "note: install $(KRB_PACKAGES) (apt-get, as root) to run the Kerberos tests" >&2; \
	  fi; \
	fi
	$(BIN)/pip install -q -e '.[dev]' || { \
	  echo "warning: the Kerberos extras did not build (need $(KRB_PACKAGES)); the Kerberos tests will be skipped" >&2; \
	  $(BIN)/pip install -q -e '.[devtools]'; }
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
