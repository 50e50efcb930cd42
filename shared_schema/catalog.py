"""The node catalog: what every node type takes and emits.

`catalog.json` is generated from the firmware's node table by running the
firmware under MicroPython (`fleetflow catalog --write`), so the firmware stays
the single source of truth; `tests/schema/test_catalog.py` fails when the two
drift. Format: docs/node-catalog.md.

A board's node-table hash (`board_hash`) is the sha256 of the canonical JSON
of the catalog's `nodes` restricted to the types the board compiles in: the
same bytes the device hashes for its status message, so the cloud can tell
whether a device runs the node table it expects.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).with_name("catalog.json")
REPO = Path(__file__).resolve().parent.parent
FIRMWARE_DIR = REPO / "firmware"
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
FORMAT = 1


class CatalogError(Exception):
    """The catalog cannot be generated or read."""


def canonical_json(obj: Any) -> bytes:
    """The one canonical encoding used for hashes and programs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def nodes_hash(nodes: dict) -> str:
    return hashlib.sha256(canonical_json(nodes)).hexdigest()


@lru_cache(maxsize=1)
def _load_cached(path: str) -> dict:
    return json.loads(Path(path).read_text())


def load_catalog(path: Path | None = None) -> dict:
    """The catalog as a dict: `{"format", "hash", "nodes": {type: spec}}`."""
    return _load_cached(str(path or CATALOG_PATH))


def node_spec(node_type: str, catalog: dict | None = None) -> dict | None:
    return (catalog or load_catalog())["nodes"].get(node_type)


def param_specs(node_type: str, catalog: dict | None = None) -> dict[str, dict]:
    """Params of a node type by name, in declaration order."""
    spec = node_spec(node_type, catalog)
    return {p["name"]: p for p in spec["params"]} if spec else {}


def _board_nodes(board) -> list[str]:
    if isinstance(board, str):
        from shared_schema.boards import load_board

        board = load_board(board)
    return list(board.nodes)


def board_types(board, catalog: dict | None = None) -> list[str]:
    """The node types a board compiles in that the catalog knows, sorted."""
    nodes = (catalog or load_catalog())["nodes"]
    return sorted(t for t in _board_nodes(board) if t in nodes)


def board_hash(board, catalog: dict | None = None) -> str:
    """sha256 hex of the canonical JSON of the board's subset of `nodes`."""
    nodes = (catalog or load_catalog())["nodes"]
    return nodes_hash({t: nodes[t] for t in board_types(board, catalog)})


def wrap_nodes(nodes: dict) -> dict:
    return {"format": FORMAT, "hash": nodes_hash(nodes), "nodes": nodes}


def generate_catalog(micropython: Path = MICROPYTHON, firmware_dir: Path = FIRMWARE_DIR, timeout_s: float = 30) -> dict:
    """Run the firmware's node table under MicroPython and build the catalog from its dump."""
    env = dict(os.environ, MICROPYPATH=f"{firmware_dir}:.frozen")
    code = "import fleetflow.nodetable as t\nt.print_dump()\n"
    try:
        proc = subprocess.run(
            [str(micropython), "-c", code], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CatalogError(f"cannot run {micropython}: {exc}") from exc
    if proc.returncode != 0:
        raise CatalogError(f"the node table dump failed under MicroPython:\n{proc.stderr or proc.stdout}")
    try:
        dumped = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise CatalogError(f"the node table dump is not JSON: {proc.stdout[:200]!r}") from exc
    nodes = dumped.get("nodes", dumped) if isinstance(dumped, dict) else None
    if not isinstance(nodes, dict) or not nodes:
        raise CatalogError("the node table dump holds no nodes")
    return wrap_nodes(nodes)


def catalog_text(catalog: dict) -> str:
    """How catalog.json is written: stable, reviewable, one key per line."""
    return json.dumps(catalog, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def write_catalog(catalog: dict, path: Path = CATALOG_PATH) -> None:
    path.write_text(catalog_text(catalog))
    _load_cached.cache_clear()
