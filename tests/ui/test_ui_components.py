"""The dashboard's component tests (cloud/ui/src/*.test.tsx), run in their own
runner, vitest under jsdom, from the lockfile `make setup` installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "cloud" / "ui"


def test_vitest_component_suite_passes():
    if shutil.which("npx") is None:
        pytest.fail("npx (Node.js) not found: the dashboard's component tests need it (make setup)")
    if not (UI / "node_modules" / ".bin" / "vitest").exists():
        pytest.fail("cloud/ui/node_modules is missing: run `make setup` (npm ci in cloud/ui)")
    proc = subprocess.run(["npx", "--no-install", "vitest", "run", "--reporter=dot"], cwd=UI,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert " passed" in out and " failed" not in out, out[-2000:]
