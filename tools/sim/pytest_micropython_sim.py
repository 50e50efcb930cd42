"""pytest-micropython-sim: run firmware code under the real MicroPython unix port.

Registered for the whole suite in tests/conftest.py
(``pytest_plugins = ["tools.sim.pytest_micropython_sim"]``).

Fixtures
--------
``mpy`` (session-scoped :class:`MicroPython`)

* ``mpy.run(code, stdin=None, heap="64k", board=None, compiled=True,
  timeout=60, env=None, args=()) -> Result``
  Writes ``code`` to a snippet file and runs
  ``.venv/bin/micropython -X heapsize=<heap> snippet.py *args`` with
  MICROPYPATH set (see below), ``stdin`` (str or bytes) fed in. ``board``
  (e.g. ``"esp32-devkitc"``) takes the heap from ``boards/<board>.json``
  (``heap_bytes``) instead. Never raises on a failing program: look at
  ``Result.rc``.
* ``mpy.check(code, **kw) -> Result`` — as run, but fails the test when
  the program exits non-zero, showing the MicroPython traceback (found on
  stderr or stdout) with the source line of every frame (firmware and
  snippet alike).
* ``mpy.json(code, **kw)`` — check, then parse the *last* stdout line as
  JSON (the idiom: print one JSON object at the end of a batch of checks).
* ``mpy.spawn(code, heap="64k", ...) -> subprocess.Popen`` — a long-lived
  device process (stdin/stdout pipes, text mode), e.g. an agent talking to a
  broker; the caller ends it. ``mpy.env(compiled=True)`` is the environment
  it uses (MICROPYPATH), for your own subprocess calls.
* ``mpy.micropython`` — path of the executable; ``mpy.path(compiled)`` —
  the MICROPYPATH string.

``Result(out, err, rc)`` with ``.ok``, ``.lines`` (stdout lines),
``.json()`` (last stdout line parsed) and ``.explain()`` (the readable
failure report).

MICROPYPATH
-----------
``compiled=True`` (the default): ``build/mpy-fw`` first, then
``build/mpy-lib`` (umqtt). ``build/mpy-fw`` holds ``firmware/**/*.py``
compiled by ``mpy-cross`` (rebuilt when a source is newer; each file written
atomically, so parallel test runs don't trip over each other). That is how
the firmware runs on a board (an .mpy bundle), and it is what makes
``-X heapsize=64k`` realistic: compiling source on the device costs far
more heap than loading bytecode. ``compiled=False``: ``firmware`` (source)
then ``build/mpy-lib`` — handy for exact source lines, needs a bigger heap.

A snippet's own directory is not on MICROPYPATH; a snippet may
``import sys; sys.path.append(...)`` for extras.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
MPY_LIB = ROOT / "build" / "mpy-lib"
MPY_FW = ROOT / "build" / "mpy-fw"
BIN = ROOT / ".venv" / "bin"


@dataclass
class Result:
    out: str
    err: str
    rc: int
    code: str = ""
    snippet: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json(self):
        lines = [ln for ln in self.lines if ln.strip()]
        if not lines:
            raise AssertionError("MicroPython printed nothing\n" + self.explain())
        return json.loads(lines[-1])

    def explain(self) -> str:
        return _explain(self)


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def _source_line(fname: str, lineno: int, snippet_name: str, code: str) -> str | None:
    if fname.endswith(snippet_name):
        lines = code.splitlines()
    else:
        path = Path(fname)
        if not path.is_absolute():
            path = FIRMWARE / fname
        if not path.exists():
            alt = FIRMWARE / Path(fname).name
            path = alt if alt.exists() else path
        if not path.exists():
            return None
        lines = path.read_text(errors="replace").splitlines()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1].strip()
    return None


def _traceback(res: Result) -> tuple[str, str]:
    """(where, text): the traceback, from stderr, or from stdout (the unix
    port prints an uncaught exception there when run in-process)."""
    for where, text in (("stderr", res.err or ""), ("stdout", res.out or "")):
        k = text.find("Traceback (most recent call last):")
        if k >= 0:
            return where, text[k:]
    return "stderr", res.err or ""


def _explain(res: Result) -> str:
    """A failure report: exit status, the traceback with source lines, output tails."""
    where, text = _traceback(res)
    out_lines = []
    for line in text.splitlines():
        out_lines.append(line)
        m = _FRAME.search(line)
        if m:
            src = _source_line(m.group(1), int(m.group(2)), os.path.basename(res.snippet or "snippet.py"), res.code)
            if src:
                out_lines.append("    " + src)
    tail = "\n".join(res.out.splitlines()[-30:])
    return (f"MicroPython exited with status {res.rc}\n"
            f"--- traceback ({where}) ---\n" + "\n".join(out_lines) +
            f"\n--- stdout (last 30 lines) ---\n{tail}\n")


def _heap_of(board: str) -> str:
    path = ROOT / "boards" / f"{board}.json"
    data = json.loads(path.read_text())
    return str(int(data["heap_bytes"]))


def build_mpy(force: bool = False) -> Path:
    """Compile firmware/**/*.py into build/mpy-fw (only what is stale)."""
    cross = BIN / "mpy-cross"
    MPY_FW.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for src in sorted(FIRMWARE.rglob("*.py")):
        rel = src.relative_to(FIRMWARE)
        dst = MPY_FW / rel.with_suffix(".mpy")
        wanted.add(dst)
        if not force and dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".tmp")
        os.close(fd)
        try:
            proc = subprocess.run([str(cross), "-o", tmp, "-s", str(rel), str(rel)],
                                  cwd=FIRMWARE, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"mpy-cross failed on {rel}:\n{proc.stderr}")
            os.replace(tmp, dst)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    for old in MPY_FW.rglob("*.mpy"):
        if old not in wanted:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
    return MPY_FW


class MicroPython:
    def __init__(self, tmpdir: Path):
        self.micropython = str(BIN / "micropython")
        self._tmp = tmpdir
        self._n = 0
        self._built = False

    def path(self, compiled: bool = True) -> str:
        if compiled and not self._built:
            build_mpy()
            self._built = True
        first = MPY_FW if compiled else FIRMWARE
        return os.pathsep.join([str(first), str(MPY_LIB)])

    def env(self, compiled: bool = True, extra: dict | None = None) -> dict:
        env = dict(os.environ)
        env["MICROPYPATH"] = self.path(compiled)
        if extra:
            env.update(extra)
        return env

    def _snippet(self, code: str) -> Path:
        self._n += 1
        path = self._tmp / f"snippet_{self._n}.py"
        path.write_text(code)
        return path

    def _argv(self, snippet: Path, heap: str | None, board: str | None, args) -> list[str]:
        if board:
            heap = _heap_of(board)
        argv = [self.micropython]
        if heap:
            argv += ["-X", f"heapsize={heap}"]
        return argv + [str(snippet), *map(str, args)]

    def run(self, code: str, stdin=None, heap: str | None = "64k", board: str | None = None,
            compiled: bool = True, timeout: float = 60, env: dict | None = None, args=()) -> Result:
        snippet = self._snippet(code)
        if isinstance(stdin, str):
            stdin = stdin.encode()
        proc = subprocess.run(self._argv(snippet, heap, board, args), input=stdin,
                              capture_output=True, timeout=timeout,
                              env=self.env(compiled, env), cwd=self._tmp)
        return Result(proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                      proc.returncode, code, str(snippet))

    def check(self, code: str, **kw) -> Result:
        res = self.run(code, **kw)
        if res.rc != 0:
            raise AssertionError(res.explain())
        return res

    def json(self, code: str, **kw):
        return self.check(code, **kw).json()

    def spawn(self, code: str, heap: str | None = "64k", board: str | None = None,
              compiled: bool = True, env: dict | None = None, args=()) -> subprocess.Popen:
        snippet = self._snippet(code)
        return subprocess.Popen(self._argv(snippet, heap, board, args), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env(compiled, env), cwd=self._tmp)


@pytest.fixture(scope="session")
def mpy(tmp_path_factory) -> MicroPython:
    """Run firmware code under the MicroPython unix port (see the module docstring)."""
    return MicroPython(tmp_path_factory.mktemp("mpy"))
