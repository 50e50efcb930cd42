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
    for name in _benchmarks():
        module = importlib.import_module(f"tools.bench.{name}")
        p = what.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(func=lambda args, module=module: _run(module, args))
    parser.set_defaults(func=_run_all)


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


def _run_all(args) -> int:
    status = 0
    for name in _benchmarks():
        module = importlib.import_module(f"tools.bench.{name}")
        parser_args = type("Args", (), {"json": False})()
        print(f"== bench {name}")
        status |= _run(module, parser_args)
    return status
