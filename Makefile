# fleetflow — the two commands a new user needs: `make demo` and `make test`.
# Everything they need is set up here, from a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MPYLIB := build/mpy-lib
WASM   := tools/bench/wasm
ASYNCAPI := tools/asyncapi

.PHONY: all setup system ui demo test bench clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(MPYLIB)/umqtt/simple.py: tools/device/fetch_umqtt.py | $(BIN)/.installed
	$(BIN)/python tools/device/fetch_umqtt.py $(MPYLIB)

# MicroPython's WebAssembly port (32-bit) for `fleetflow bench heap32`, from
# the lockfile; best effort (no node/npm, or offline: that bench says so).
$(WASM)/node_modules/.installed: $(WASM)/package.json $(WASM)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		(cd $(WASM) && npm ci --no-audit --no-fund --loglevel=error) && touch $@ \
		|| echo "WARNING: npm ci in $(WASM) failed: fleetflow bench heap32 won't run"; \
	else echo "WARNING: npm not found: fleetflow bench heap32 (32-bit heap figures) won't run"; fi

# The dashboard (cloud/ui: React + TypeScript + Vite), from its lockfile,
# built into cloud/ui/dist for `fleetflow serve` to serve at /. Never
# committed; without npm, / says how to build it.
UI       := cloud/ui
UI_SRC   := $(shell find $(UI)/src -type f 2>/dev/null) $(UI)/index.html $(UI)/vite.config.ts $(UI)/tsconfig.json shared_schema/catalog.json

$(UI)/node_modules/.installed: $(UI)/package.json $(UI)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		(cd $(UI) && npm ci --no-audit --no-fund --loglevel=error) && touch $@; \
	else echo "WARNING: npm not found: the dashboard (cloud/ui) is not built; / says how to build it"; fi

$(UI)/dist/index.html: $(UI)/node_modules/.installed $(UI_SRC)
	@if [ -f $(UI)/node_modules/.installed ]; then (cd $(UI) && npm run --silent build) && touch $@; fi

ui: $(UI)/dist/index.html

# The AsyncAPI parser that validates docs/asyncapi.json in make test, from
# the lockfile; best effort (without npm that test says so and skips).
$(ASYNCAPI)/node_modules/.installed: $(ASYNCAPI)/package.json $(ASYNCAPI)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		(cd $(ASYNCAPI) && npm ci --no-audit --no-fund --loglevel=error) && touch $@ \
		|| echo "WARNING: npm ci in $(ASYNCAPI) failed: the AsyncAPI document won't be validated"; \
	else echo "WARNING: npm not found: the AsyncAPI document (docs/asyncapi.json) won't be validated"; fi

# Debian packages the tests and demo use (mosquitto, socat); best effort
# when not root, and the tests say loudly what they fell back to.
system:
	@bash tools/infra/setup_system.sh

setup: $(BIN)/.installed $(MPYLIB)/umqtt/simple.py $(WASM)/node_modules/.installed $(ASYNCAPI)/node_modules/.installed $(UI)/dist/index.html system

demo: setup
	$(BIN)/fleetflow demo

test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/fleetflow bench

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis var $(WASM)/node_modules $(ASYNCAPI)/node_modules $(UI)/node_modules $(UI)/dist
