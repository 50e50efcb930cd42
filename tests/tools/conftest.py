"""Fixtures of the tools tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
