"""tools/infra/proc.py: children that die with their owner, however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tools.infra import proc

REPO = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.skipif(not proc.supported(), reason="parent-death signal is Linux only")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids, timeout_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_a_child_started_from_a_short_lived_thread_outlives_the_thread():
    # The kernel's "parent" is the forking thread: forked by this thread, the
    # child would get SIGTERM the moment the thread ends.
    box = {}
    t = threading.Thread(target=lambda: box.update(p=proc.owned_popen(["sleep", "30"])))
    t.start()
    t.join()
    child = box["p"]
    try:
        time.sleep(0.5)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(5)


@pytest.mark.parametrize("thread", [False, True], ids=["main-thread", "other-thread"])
def test_children_die_when_their_owner_is_sigkilled(thread):
    owner_code = textwrap.dedent(f"""
        import subprocess, sys, threading, time
        from tools.infra.proc import owned_popen
        def start():
            for _ in range(2):
                p = owned_popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL)
                print(p.pid, flush=True)
        if {thread}:
            t = threading.Thread(target=start); t.start(); t.join()
        else:
            start()
        print("ready", flush=True)
        time.sleep(60)
    """)
    owner = subprocess.Popen([sys.executable, "-c", owner_code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    pids = []
    try:
        for line in owner.stdout:
            if line.strip() == "ready":
                break
            pids.append(int(line))
        assert len(pids) == 2 and all(alive(p) for p in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait(5)
        assert wait_gone(pids) == []
    finally:
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        if owner.poll() is None:
            owner.kill()


def test_owned_popen_passes_popen_arguments_and_errors_through():
    out = proc.owned_popen([sys.executable, "-c", "print('hi')"], stdout=subprocess.PIPE, text=True)
    assert out.communicate(timeout=10)[0] == "hi\n" and out.returncode == 0
    box = {}

    def missing():
        try:
            proc.owned_popen(["/nonexistent/fleetflow-exe"])
        except FileNotFoundError as exc:
            box["err"] = exc
    t = threading.Thread(target=missing)
    t.start()
    t.join()
    assert isinstance(box.get("err"), FileNotFoundError)
