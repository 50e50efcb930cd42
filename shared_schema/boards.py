"""Board definitions: `boards/<name>.json` (format: docs/boards.md).

A board says which GPIOs exist and what each can do, which belong to
something else, its heap/flash/program budgets and the node types compiled
into its firmware bundle. The validator checks pins and node types against it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"

PinUse = Literal["in", "out", "adc", "pwm"]


class BoardError(Exception):
    """Unknown board or a board file that does not parse."""


class Flash(BaseModel):
    fs_bytes: int = Field(gt=0)
    block_size: int = Field(gt=0)
    bundle_max_bytes: int = Field(gt=0)


class Board(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    title: str
    mcu: str
    port: Literal["esp32", "rp2", "unix"]
    heap_bytes: int = Field(gt=0)
    program_max_bytes: int = Field(gt=0)
    # the biggest MQTT message the device reads into RAM; a bigger one is
    # dropped unread and rejected `oversized` (firmware/fleetflow/link.py)
    msg_max_bytes: int = Field(gt=0)
    # machine.WDT's timeout: the agent arms it at boot and feeds it after
    # each loop step, so a hung loop resets the board (the RP2040 counts to
    # at most 8388 ms)
    watchdog_ms: int = Field(ge=1000, le=60000)
    flash: Flash
    pins: dict[int, list[PinUse]]
    reserved: dict[int, str] = {}
    nodes: list[str]
    notes: list[str] = []
    sources: list[str] = Field(min_length=1)

    def pin_uses(self, pin: int) -> set[str] | None:
        """What a usable GPIO can do; None when it is reserved or absent."""
        uses = self.pins.get(pin)
        return set(uses) if uses is not None else None

    def pins_for(self, use: str) -> list[int]:
        return sorted(p for p, uses in self.pins.items() if use in uses)

    def has_node(self, node_type: str) -> bool:
        return node_type in self.nodes


def format_pins(pins: list[int]) -> str:
    """`[0, 1, 2, 4]` -> `"0-2, 4"`: readable lists in messages."""
    out: list[str] = []
    for pin in sorted(pins):
        if out and out[-1][1] == pin - 1:
            out[-1] = (out[-1][0], pin)
        else:
            out.append((pin, pin))
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)


def board_names(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in boards_dir.glob("*.json"))


@lru_cache(maxsize=16)
def _load(path: str) -> Board:
    return Board.model_validate_json(Path(path).read_text())


def load_board(name: str | Board, boards_dir: Path = BOARDS_DIR) -> Board:
    """The board called `name` (a Board passes through unchanged)."""
    if isinstance(name, Board):
        return name
    path = boards_dir / f"{name}.json"
    if not path.is_file() or "/" in name:
        raise BoardError(f"unknown board {name!r}; boards: {', '.join(board_names(boards_dir))}")
    try:
        return _load(str(path))
    except ValueError as exc:
        raise BoardError(f"board file {path} is invalid: {exc}") from exc
