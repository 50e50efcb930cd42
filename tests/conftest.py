"""Shared pytest set-up. Area-specific fixtures live in each tests/<area>/conftest.py."""

pytest_plugins = ["tools.sim.pytest_micropython_sim"]
