"""The `fleetflow` command.

Each subcommand lives in its own module `tools/cli/cmd_<name>.py`, which exposes
`register(subparsers)` (adds its parser and sets `func`) — so the command
table below is the whole map of what `fleetflow` can do.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = (
    ("serve", "tools.cli.cmd_serve"),
    ("broker", "tools.cli.cmd_broker"),
    ("sim", "tools.cli.cmd_sim"),
    ("demo", "tools.cli.cmd_demo"),
    ("flow", "tools.cli.cmd_flow"),
    ("deploy", "tools.cli.cmd_deploy"),
    ("devices", "tools.cli.cmd_devices"),
    ("exec", "tools.cli.cmd_exec"),
    ("pipeline", "tools.cli.cmd_pipeline"),
    ("webhooks", "tools.cli.cmd_webhooks"),
    ("keys", "tools.cli.cmd_keys"),
    ("users", "tools.cli.cmd_users"),
    ("flash", "tools.cli.cmd_flash"),
    ("board-check", "tools.cli.cmd_board_check"),
    ("bench", "tools.cli.cmd_bench"),
    ("powercut", "tools.cli.cmd_powercut"),
    ("catalog", "tools.cli.cmd_catalog"),
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

