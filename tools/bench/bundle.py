"""bundle size per board against the 64 KB flash budget (firmware .mpy + entry points)

    fleetflow bench bundle [--json]

Builds each board's bundle with mpy-cross (no provisioning) under var/bench/
and reports its firmware bytes; `ok` is false when a board is over budget.
"""

from __future__ import annotations

from tools.device import bundle as bundle_mod


def add_arguments(parser) -> None:
    parser.add_argument("--board", action="append", help="only this board (repeatable)")


def run(args) -> dict:
    boards = getattr(args, "board", None) or bundle_mod.board_names()
    result: dict = {"command": "fleetflow bench bundle", "budget_bytes": bundle_mod.DEFAULT_BUDGET}
    ok = True
    for board in boards:
        b = bundle_mod.build_bundle(board, bundle_mod.REPO / "var" / "bench" / f"bundle-{board}")
        s = b.summary()
        types = set(bundle_mod.load_board(board).get("nodes", []))
        nodes = sum(1 for f in b.files if "/nodes/" in f.path and f.path.rsplit("/", 1)[1][:-4] in types)
        result[board] = (f"{s['code_bytes']} B firmware ({s['budget_used']:.1%} of {s['budget_bytes']} B), "
                         f"{s['files']} files, {nodes} node modules, {s['march']}")
        result[f"{board}_bytes"] = s["code_bytes"]
        ok = ok and s["within_budget"]
    result["ok"] = ok
    return result
