"""Fixtures of the tools tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools.sim.ptyboard import PtyBoard


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live (not zombie) processes whose command line contains `text`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{pid}: {cmd.strip()}")
    return found


@pytest.fixture
def procs_mentioning():
    """processes_mentioning(text): the no-orphans check of the simulator, demo and flash tests."""
    return processes_mentioning


@pytest.fixture
def board(tmp_path):
    """A MicroPython unix-port REPL behind a pty: a "board" mpremote can reach (flash, board-check)."""
    if not shutil.which("socat"):
        pytest.skip("socat is not installed: `make system` (Debian package socat) installs it")
    b = PtyBoard(tmp_path / "board").start()
    yield b
    b.stop()
