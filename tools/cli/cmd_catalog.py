"""`fleetflow catalog [--write | --check]`: the node catalog from the firmware's node table.

Runs `fleetflow.nodetable.print_dump()` under MicroPython and builds
shared_schema/catalog.json from it. Without options it prints a summary of
the generated catalog and each board's node-table hash; `--write` rewrites
catalog.json; `--check` exits 1 when catalog.json has drifted from the
firmware.
"""

from __future__ import annotations

import sys

from shared_schema import catalog as cat
from shared_schema.boards import board_names, load_board


def register(sub) -> None:
    p = sub.add_parser("catalog", help="generate the node catalog from the firmware's node table")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"rewrite {cat.CATALOG_PATH.name} from the firmware")
    group.add_argument("--check", action="store_true", help=f"exit 1 when {cat.CATALOG_PATH.name} differs from the firmware")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        generated = cat.generate_catalog()
    except cat.CatalogError as exc:
        print(f"fleetflow catalog: {exc}", file=sys.stderr)
        return 2
    current = cat.CATALOG_PATH.read_text() if cat.CATALOG_PATH.exists() else ""
    fresh = cat.catalog_text(generated)
    if args.check:
        if current == fresh:
            print(f"{cat.CATALOG_PATH.name} matches the firmware's node table (hash {generated['hash'][:12]})")
            return 0
        print(f"{cat.CATALOG_PATH} has drifted from the firmware's node table: run `fleetflow catalog --write`", file=sys.stderr)
        return 1
    if args.write:
        cat.write_catalog(generated)
        print(f"wrote {cat.CATALOG_PATH} ({len(generated['nodes'])} node types, hash {generated['hash'][:12]})")
        return 0
    print(f"{len(generated['nodes'])} node types: {', '.join(sorted(generated['nodes']))}")
    print(f"catalog hash: {generated['hash']}")
    for name in board_names():
        board = load_board(name)
        print(f"{name}: {len(cat.board_types(board, generated))} nodes, nt_hash {cat.board_hash(board, generated)}")
    print("catalog.json is " + ("up to date" if current == fresh else "OUT OF DATE: run `fleetflow catalog --write`"))
    return 0
