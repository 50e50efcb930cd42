"""The dashboard in a real browser: Debian's Chromium driven by Playwright
(no browser download: `executable_path`), against the cloud that
`fleetflow sim` runs (the same app `fleetflow serve` serves, on a fresh
SQLite database) and simulated devices running the real firmware."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "cloud" / "ui" / "dist" / "index.html"
SCREENSHOTS = ROOT / "docs" / "screenshots"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Debian's chromium is not installed: run `make setup` (tools/infra/setup_system.sh installs it)")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Three simulated devices (sim-001 with the crash fault: its DHT hands
    over garbage, so a node using the temperature raises every run), a
    broker and the cloud; yields {base, api_key, devices}."""
    if not DIST.is_file():
        pytest.fail("the dashboard is not built: run `make setup` (npm ci && npm run build in cloud/ui)")
    wd = tmp_path_factory.mktemp("uisim")
    out = open(wd / "sim.out", "w+")
    err = open(wd / "sim.err", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "sim", "--devices", "3", "--profile", "steady",
                             "--fault", "1=crash", "--workdir", str(wd / "fleet"), "--json"],
                            cwd=ROOT, stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        info = None
        while time.monotonic() < deadline and proc.poll() is None:
            out.seek(0)
            line = out.readline()
            if line.strip():
                info = json.loads(line)
                break
            time.sleep(0.3)
        if info is None:
            err.seek(0)
            pytest.fail(f"fleetflow sim did not start: {err.read()[-3000:]}")
        base = info["dashboard"].rstrip("/")  # the address `fleetflow sim` prints for the dashboard
        err.seek(0)
        assert f"sim: dashboard {base}/" in err.read()
        yield {"base": base, "api_key": info["api_key"], "devices": info["devices"], "workdir": wd}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.close()
        err.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go: docs/screenshots with UPDATE_SCREENSHOTS=1, else a temporary folder."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str, full: bool = True):
        # a secret shown once (a new API key, a webhook's signing secret) is
        # painted over: a committed picture must not look like a leaked one
        page.screenshot(path=str(folder / f"{name}.png"), full_page=full, mask=[page.locator("pre.secret")])

    return shot
