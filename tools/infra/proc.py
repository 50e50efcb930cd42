"""Child processes that do not outlive the process that started them.

    from tools.infra.proc import owned_popen
    p = owned_popen([exe, ...], start_new_session=True, ...)   # same arguments as subprocess.Popen

The simulator's devices (tools/sim/simdevice.py) and Mosquitto (tools/infra/broker.py)
run in sessions of their own, so a Ctrl-C on the terminal reaches only their
owner, which then stops them cleanly. If the owner is SIGKILLed it can stop
nothing, and they would keep running. On Linux `owned_popen` gives the child
a parent-death signal (prctl PR_SET_PDEATHSIG = SIGTERM) before it execs, so
the kernel sends it SIGTERM when its owner dies, however it dies. Elsewhere
it is plain subprocess.Popen.

The kernel's "parent" is the *thread* that forked the child: a child forked
by a short-lived thread (a boot-loop thread, an asyncio executor thread)
would be sent SIGTERM when that thread ends. So children are forked by a
thread that lives as long as the process: the main thread when it calls, and
otherwise one daemon "spawner" thread, started on first use, that forks on
the caller's behalf (the Popen object works from any thread).
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future

PR_SET_PDEATHSIG = 1
DEATH_SIGNAL = signal.SIGTERM


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl, sig = libc.prctl, libc.signal
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    sig.argtypes = [ctypes.c_int, ctypes.c_void_p]
    sig.restype = ctypes.c_void_p
    return prctl, sig


# Resolved once, before any fork: the child only calls them.
_LIBC = _libc()


def supported() -> bool:
    """True where children get a parent-death signal (Linux)."""
    return _LIBC is not None


def _die_with_parent(parent_pid: int, chain=None):
    prctl, c_signal = _LIBC

    def preexec() -> None:
        if chain is not None:
            chain()
        # Python's own handler for the signal (a flag for the interpreter's
        # main loop) was copied by fork and would swallow it until exec.
        c_signal(DEATH_SIGNAL, None)  # SIG_DFL
        prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the owner died before prctl took effect
            os._exit(1)

    return preexec


class _Spawner:
    """One daemon thread that forks children for callers on other threads."""

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fleetflow-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # handed back to the caller
                    fut.set_exception(exc)

    def call(self, fn):
        fut: Future = Future()
        self._jobs.put((fn, fut))
        return fut.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _get_spawner() -> _Spawner:
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner._thread.is_alive():
            _spawner = _Spawner()
        return _spawner


def owned_popen(args, **kwargs) -> subprocess.Popen:
    """subprocess.Popen(args, **kwargs) for a child that gets SIGTERM when this process dies (Linux)."""
    if _LIBC is None:
        return subprocess.Popen(args, **kwargs)
    kwargs["preexec_fn"] = _die_with_parent(os.getpid(), kwargs.get("preexec_fn"))
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(args, **kwargs)
    return _get_spawner().call(lambda: subprocess.Popen(args, **kwargs))
