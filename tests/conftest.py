"""Shared pytest set-up. Area-specific fixtures live in each tests/<area>/conftest.py."""

pytest_plugins = ["tools.pytest_micropython_sim"]
