"""Copy a built bundle onto a board with the real mpremote.

The plan (`flash_commands`) is pure: a list of mpremote argument lists, one
`mpremote connect PORT ...` invocation each. `flash()` runs them.

- The unix-sim "board" is a MicroPython unix-port REPL behind a pseudo-terminal
  (DESIGN.md, Flashing): every invocation starts with `resume`, because a soft
  reset ends the unix port; its filesystem root is the process's working
  folder, so every device path here is relative to the root.
- Real boards (esp32, rp2) get umqtt.simple with `mip install` and a hard
  `reset` at the end, which boots what was flashed.
- With `romfs`, the code (lib/, umqtt.simple included) goes into the board's
  ROMFS partition as the bundle's rom.img (`mpremote romfs deploy`), where
  it runs in place instead of in the heap (tools/device/romfs.py); only main.py,
  boot.py and the data files go onto the filesystem. mpremote refuses a
  board whose firmware has no ROMFS ("ROMFS is not enabled on this device").
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.device.bundle import Bundle

# Removed before copying, so a node dropped from the board never lingers.
_CLEAN = """
import os
def _rm(p):
    try:
        m = os.stat(p)[0]
    except OSError:
        return
    if m & 0x4000:
        for e in os.listdir(p):
            _rm(p + '/' + e)
        os.rmdir(p)
    else:
        os.remove(p)
_rm('lib/fleetflow')
for _d in %s:
    try:
        os.mkdir(_d)
    except OSError:
        pass
"""

# Prints what landed, for `verify`: {path: size}.
_SIZES = """
import os, json
_s = {}
for _p in %s:
    try:
        _s[_p] = os.stat(_p)[6]
    except OSError:
        _s[_p] = -1
print('FFSIZES' + json.dumps(_s))
"""


class FlashError(Exception):
    """Flashing failed: mpremote could not reach the board, or a file did not land."""


@dataclass
class FlashPlan:
    port: str
    commands: list[list[str]]  # mpremote argument lists after `connect PORT`


def _dirs(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in out:
                out.append(d)
    return out


def mpremote_exe() -> str:
    local = Path(sys.executable).with_name("mpremote")
    return str(local) if local.exists() else (shutil.which("mpremote") or "mpremote")


def verified_paths(bundle: Bundle, romfs: bool = False) -> dict[str, int]:
    """{path on the board: size} of every file of the bundle; lib/ under /rom with `romfs`."""
    return {(f"/rom/{f.path}" if romfs and f.path.startswith("lib/") else f.path): f.size for f in bundle.files}


def flash_commands(bundle: Bundle, port: str, *, unix: bool, mip: bool = True, batch: int = 16,
                   romfs: bool = False) -> FlashPlan:
    """The mpremote invocations that copy `bundle` to the board at `port`."""
    prefix = ["resume"] if unix else []
    cmds = []
    if romfs:
        cmds.append(prefix + ["romfs", "deploy", str(bundle.root / "rom.img")])
        mip = False  # umqtt.simple is in the image
    paths = [f.path for f in bundle.files if not (romfs and f.path.startswith("lib/"))]
    cmds.append(prefix + ["exec", _CLEAN % json.dumps(_dirs(paths))])
    for i in range(0, len(paths), batch):
        chunk: list[str] = list(prefix)
        for p in paths[i : i + batch]:
            if chunk and chunk != prefix:
                chunk.append("+")
            chunk += ["fs", "cp", str(bundle.root / p), ":" + p]
        cmds.append(chunk)
    if mip and not unix:
        cmds.append(["mip", "install", "umqtt.simple"])
    cmds.append(prefix + ["exec", _SIZES % json.dumps(list(verified_paths(bundle, romfs)))])
    if not unix:
        cmds.append(["reset"])
    return FlashPlan(port=port, commands=cmds)


def _run(port: str, args: list[str], timeout_s: float) -> str:
    argv = [mpremote_exe(), "connect", port, *args]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise FlashError(f"mpremote timed out after {timeout_s:.0f}s: {' '.join(args[:4])} ...") from None
    if proc.returncode != 0:
        raise FlashError(f"mpremote {' '.join(args[:4])} ... failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def flash(bundle: Bundle, port: str, *, unix: bool, mip: bool = True, timeout_s: float = 120, log=print,
          romfs: bool = False) -> dict:
    """Copy the bundle (its code into ROMFS with `romfs`), install umqtt (boards), verify every
    file's size, reset (boards)."""
    plan = flash_commands(bundle, port, unix=unix, mip=mip, romfs=romfs)
    landed: dict = {}
    for args in plan.commands:
        what = "reset" if args == ["reset"] else ("mip install umqtt.simple" if "mip" in args else None)
        if "romfs" in args:
            what = "romfs deploy rom.img (the code, run in place from flash)"
        if what:
            log(f"flash: {what}")
        try:
            out = _run(port, args, timeout_s)
        except FlashError as e:
            if "romfs" in args and "not enabled" in str(e):
                raise FlashError(f"{e}: this board's MicroPython firmware has no ROMFS partition "
                                 "(MICROPY_VFS_ROM); flash without --romfs (the code goes to /lib and "
                                 "runs from the heap), or flash a firmware built with ROMFS") from None
            raise
        for line in out.splitlines():
            if line.startswith("FFSIZES"):
                landed = json.loads(line[len("FFSIZES") :])
    want = verified_paths(bundle, romfs)
    bad = [f"{p} ({landed.get(p)} != {size})" for p, size in want.items() if landed.get(p) != size]
    if bad:
        raise FlashError("files did not land intact: " + ", ".join(bad))
    log(f"flash: {len(bundle.files)} files, {bundle.total_bytes} bytes verified on {port}"
        + (" (code in ROMFS)" if romfs else ""))
    return {"port": port, "files": len(bundle.files), "bytes": bundle.total_bytes, "verified": True,
            "romfs": romfs}
