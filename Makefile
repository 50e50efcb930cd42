# fleetflow — the two commands a new user needs: `make demo` and `make test`.
# Everything they need is set up here, from a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MPYLIB := build/mpy-lib
WASM   := tools/bench/wasm

.PHONY: all setup system demo test bench clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(MPYLIB)/umqtt/simple.py: tools/fetch_umqtt.py | $(BIN)/.installed
	$(BIN)/python tools/fetch_umqtt.py $(MPYLIB)

# MicroPython's WebAssembly port (32-bit) for `fleetflow bench heap32`, from
# the lockfile; best effort (no node/npm, or offline: that bench says so).
$(WASM)/node_modules/.installed: $(WASM)/package.json $(WASM)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		(cd $(WASM) && npm ci --no-audit --no-fund --loglevel=error) && touch $@ \
		|| echo "WARNING: npm ci in $(WASM) failed: fleetflow bench heap32 won't run"; \
	else echo "WARNING: npm not found: fleetflow bench heap32 (32-bit heap figures) won't run"; fi

# Debian packages the tests and demo use (mosquitto, socat); best effort
# when not root, and the tests say loudly what they fell back to.
system:
	@bash tools/setup_system.sh

setup: $(BIN)/.installed $(MPYLIB)/umqtt/simple.py $(WASM)/node_modules/.installed system

demo: setup
	$(BIN)/fleetflow demo

test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/fleetflow bench

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis var $(WASM)/node_modules
