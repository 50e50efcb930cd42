"""A MicroPython unix-port REPL behind a pseudo-terminal: a "board" mpremote can flash.

DESIGN.md (Flashing): `socat PTY,link=P,raw,echo=0 EXEC:micropython,pty,raw,echo=0`
gives mpremote a serial-like port; `mpremote connect P resume ...` drives it
without the soft reset that would end the unix port. The board's filesystem
root is the folder the REPL runs in, so each PtyBoard flashes into its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.infra.proc import owned_popen


class PtyBoardError(Exception):
    """The pseudo-terminal board could not start."""


def micropython_exe() -> str:
    local = Path(sys.executable).with_name("micropython")
    return str(local) if local.exists() else (shutil.which("micropython") or "micropython")


class PtyBoard:
    def __init__(self, root: str | Path, heapsize: str = "256k"):
        self.root = Path(root)
        self.port = str(self.root.parent / f"{self.root.name}.pty")
        self.heapsize = heapsize
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10) -> "PtyBoard":
        socat = shutil.which("socat")
        if not socat:
            raise PtyBoardError("socat is not installed (Debian package socat; `make system` installs it)")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(self.port):
            os.unlink(self.port)
        exe = f"{micropython_exe()} -X heapsize={self.heapsize} -i"
        # Own session: stop() ends socat and the REPL together, by process group.
        self.proc = owned_popen(
            [socat, f"PTY,link={self.port},raw,echo=0", f"EXEC:{exe},pty,raw,echo=0,stderr"],
            cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self.port):
            if self.proc.poll() is not None:
                raise PtyBoardError(f"socat exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise PtyBoardError(f"no pty at {self.port} after {timeout_s}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if os.path.lexists(self.port):
            os.unlink(self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.sim.ptyboard DIR`: a pty "board" to try `fleetflow flash --board unix-sim` on."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tools.sim.ptyboard", description=main.__doc__)
    parser.add_argument("root", type=Path, help="the board's filesystem root (a folder)")
    args = parser.parse_args(argv)

    def _interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, _interrupt)  # stopped either way, the REPL goes with it
    board = PtyBoard(args.root.resolve()).start()
    print(f"board filesystem {board.root}, port {board.port}", flush=True)
    print(f"try: fleetflow flash --board unix-sim --port {board.port} --device-id try-1 --mqtt-host 127.0.0.1",
          flush=True)
    try:
        board.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
