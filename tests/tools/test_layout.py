"""tools/ talks to the cloud through its HTTP API and cloud.admin, not its internals.

Read from the source (ast), so a lazy import inside a function counts too.
The benchmarks (tools/bench) measure the cloud's internals on purpose and
are not held to it.
"""

from __future__ import annotations

import ast
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
# what the tools may import of the cloud: the admin module for local
# database work, and what starts a cloud (`fleetflow serve`, the local Stack)
ALLOWED = {"cloud.admin", "cloud.app", "cloud.config", "cloud.secrets", "cloud.dynsec", "cloud.private"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from cloud.store import keys` -> cloud.store.keys (a name in a module counts as the module)
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _within(name: str, modules) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def _modules():
    return [p for p in sorted(TOOLS.rglob("*.py"))
            if "node_modules" not in p.parts and p.parent.name not in ("bench", "mpy")]


def test_tools_reach_the_cloud_only_through_its_public_modules():
    modules = _modules()
    assert len(modules) > 40 and TOOLS / "cli" / "cmd_keys.py" in modules
    wrong = [f"{p.relative_to(TOOLS.parent)}:{line}: imports {name}"
             for p in modules for line, name in _imports(p)
             if _within(name, ("cloud",)) and not _within(name, ALLOWED)]
    assert not wrong, "tools/ uses the cloud's internals (use cloud.admin or the HTTP API):\n" + "\n".join(wrong)


# what of tools/cli the other packages may use: the HTTP client (the demo and
# the Stack talk to the cloud as any API user) and the demo's deploy view
CLI_SHARED = ("tools.cli.client", "tools.cli.deploy_progress")


def test_the_simulator_device_and_infra_packages_do_not_import_cli_commands():
    wrong = [f"{p.relative_to(TOOLS.parent)}:{line}: imports {name}"
             for p in _modules() if p.parent.name in ("sim", "device", "infra")
             for line, name in _imports(p) if _within(name, ("tools.cli",)) and not _within(name, CLI_SHARED)]
    assert not wrong, "\n".join(wrong)


def test_the_scripts_run_under_micropython_are_not_a_python_package():
    scripts = sorted(p.name for p in (TOOLS / "mpy").glob("*.py"))
    assert scripts and "__init__.py" not in scripts


def test_every_command_in_the_table_is_there():
    """tools.cli skips a command whose module is missing, so a moved or
    renamed module would drop out of `fleetflow --help` without a word."""
    import importlib

    from tools import cli

    for name, module_name in cli.COMMANDS:
        assert hasattr(importlib.import_module(module_name), "register"), name
    assert {name for name, _ in cli.COMMANDS} <= set(cli.build_parser().format_help().split())
