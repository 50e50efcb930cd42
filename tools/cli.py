"""The `fleetflow` command.

Each subcommand lives in its own module `tools/cmd_<name>.py`, which exposes
`register(subparsers)` (adds its parser and sets `func`) — so the command
table below is the whole map of what `fleetflow` can do.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = (
    ("serve", "tools.cmd_serve"),
    ("broker", "tools.cmd_broker"),
    ("sim", "tools.cmd_sim"),
    ("demo", "tools.cmd_demo"),
    ("flow", "tools.cmd_flow"),
    ("deploy", "tools.cmd_deploy"),
    ("devices", "tools.cmd_devices"),
    ("exec", "tools.cmd_exec"),
    ("pipeline", "tools.cmd_pipeline"),
    ("webhooks", "tools.cmd_webhooks"),
    ("keys", "tools.cmd_keys"),
    ("users", "tools.cmd_users"),
    ("flash", "tools.cmd_flash"),
    ("board-check", "tools.cmd_board_check"),
    ("bench", "tools.cmd_bench"),
    ("powercut", "tools.cmd_powercut"),
    ("catalog", "tools.cmd_catalog"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetflow",
        description="Safe over-the-air automation flows for fleets of MicroPython boards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, module_name in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
