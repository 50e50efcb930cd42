"""`fleetflow bench <what>`: benchmarks that print their figures.

Each benchmark is a module `tools/bench/<what>.py` with
`add_arguments(parser)` (optional) and `run(args) -> dict`; the dict is printed
as one JSON object with `--json`, else as `key: value` lines.
"""

from __future__ import annotations

import importlib
import json
import pkgutil

import tools.bench


def _benchmarks() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(tools.bench.__path__) if not m.name.startswith("_"))


def register(sub) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print its figures")
    what = parser.add_subparsers(dest="bench", metavar="WHAT")
    parsers = {}
    for name in _benchmarks():
        module = importlib.import_module(f"tools.bench.{name}")
        summary = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None
        # argparse %-formats help text: "40 %" in a docstring must not break --help
        p = what.add_parser(name, help=summary and summary.replace("%", "%%"))
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(func=lambda args, module=module: _run(module, args))
        parsers[name] = p
    parser.set_defaults(func=lambda args: _run_all(parsers))


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def _run(module, args) -> int:
    result = module.run(args)
    _print(result, args.json)
    return 1 if result.get("ok") is False else 0


def _run_all(parsers: dict) -> int:
    """Every benchmark with its own defaults (as `fleetflow bench NAME` would run it)."""
    status = 0
    for name, p in parsers.items():
        print(f"== bench {name}")
        status |= _run(importlib.import_module(f"tools.bench.{name}"), p.parse_args([]))
    return status
