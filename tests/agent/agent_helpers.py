"""Helpers for the device-agent tests: run scripts under the real MicroPython unix port."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
MPY_DIR = Path(__file__).resolve().parent / "mpy"


def mpy_env() -> dict:
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{ROOT / 'firmware'}:{ROOT / 'build' / 'mpy-lib'}:{MPY_DIR}"
    return env


def run_mpy(script: str, *args: str, heap: str = "128k", timeout: float = 120) -> list:
    """Run tests/agent/mpy/<script> under MicroPython; return the JSON lines it printed.

    These scripts import the firmware from source, so MicroPython compiles it
    on the device heap -- which a board never does (it gets .mpy files). At 64k
    that compile sat at the edge and failed or passed with the length of the
    checkout's path, so the default leaves room; the heap budgets themselves
    are measured on the compiled bundle (`fleetflow bench device|agent`).
    """
    proc = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={heap}", str(MPY_DIR / script), *args],
        cwd=ROOT, env=mpy_env(), capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith(("{", "["))]

