"""cloud/engine/ is the pure part of the cloud: its modules import nothing that
does I/O (no store, database, bridge, network, clock of their own). The
shells that carry their actions out (cloud/driver.py, cloud/store/) live
outside it."""

from __future__ import annotations

import ast
from pathlib import Path

import cloud.engine

ENGINE = Path(cloud.engine.__file__).parent
# What engine/ may import: its own modules, the error types, the shared schema
# (pure), and standard-library modules without I/O.
ALLOWED = ("cloud.engine", "cloud.errors", "shared_schema", "__future__", "copy", "math", "dataclasses",
           "typing", "collections", "enum", "functools", "itertools", "re",
           "ast", "json")  # parsing text (ast.literal_eval, json.loads): no I/O


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(("." * node.level) + (node.module or ""))
    return names


def test_engine_imports_nothing_with_io():
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) >= 3  # decide, settings, state at least: the scan sees the package
    bad = [(p.name, name) for p in modules for name in imports(p)
           if not name.startswith(".") and not any(name == a or name.startswith(a + ".") for a in ALLOWED)]
    assert bad == [], f"cloud/engine/ must stay pure; these imports do I/O or are not known pure: {bad}"
