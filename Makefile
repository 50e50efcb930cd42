# fleetflow — the two commands a new user needs: `make demo` and `make test`.
# Everything they need is set up here, from a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MPYLIB := build/mpy-lib

.PHONY: all setup system demo test bench clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(MPYLIB)/umqtt/simple.py: tools/fetch_umqtt.py | $(BIN)/.installed
	$(BIN)/python tools/fetch_umqtt.py $(MPYLIB)

# Debian packages the tests and demo use (mosquitto, socat); best effort
# when not root, and the tests say loudly what they fell back to.
system:
	@bash tools/setup_system.sh

setup: $(BIN)/.installed $(MPYLIB)/umqtt/simple.py system

demo: setup
	$(BIN)/fleetflow demo

test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/fleetflow bench

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis var
