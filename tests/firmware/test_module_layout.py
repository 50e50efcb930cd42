"""The firmware's module layout (docs/decisions.md, "the interpreter's module
layout"): no import circles between fleetflow's modules, no module reaching
into another's `_private` names, and imports a reader can follow. This reads
the source with `ast`; it runs nothing, so it checks structure only (the
behaviour is tested under MicroPython by the other firmware suites)."""

import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def _modules():
    mods = {}
    for path in sorted((FIRMWARE / "fleetflow").rglob("*.py")):
        parts = path.relative_to(FIRMWARE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = (path, ast.parse(path.read_text(), str(path)))
    return mods


MODULES = _modules()


def _imports(tree):
    """(line, module imported, name taken from it or None) for every import
    of a fleetflow module, at the top or inside a function."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            for a in n.names:
                if a.name.split(".")[0] == "fleetflow":
                    yield n.lineno, a.name, None
        elif isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "fleetflow":
            for a in n.names:
                full = n.module + "." + a.name
                if full in MODULES:
                    yield n.lineno, full, None
                else:
                    yield n.lineno, n.module, a.name


def _graph():
    graph = {}
    for name, (_, tree) in MODULES.items():
        graph[name] = {m for _, m, _ in _imports(tree) if m in MODULES and m != name}
    return graph


def _circles(graph):
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_the_firmware():
    # the checks below are only as good as what they read
    assert {"fleetflow.agent", "fleetflow.interp", "fleetflow.runner", "fleetflow.program",
            "fleetflow.loader", "fleetflow.records", "fleetflow.record_wire"} <= set(MODULES)
    graph = _graph()
    assert "fleetflow.runner" in graph["fleetflow.interp"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
    assert _circles(_graph()) == []


def test_no_module_reaches_into_another_modules_private_names():
    found = []
    for name, (path, tree) in MODULES.items():
        for line, mod, taken in _imports(tree):
            if taken and taken.startswith("_") and not taken.startswith("__"):
                found.append("%s:%d from %s import %s" % (path.name, line, mod, taken))
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__"):
                if isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"):
                    continue
                found.append("%s:%d %s" % (path.name, n.lineno, ast.unparse(n)))
    assert found == []


def test_imports_are_plain_except_the_node_tables_lookup_by_type():
    # nodetable imports a node's module by its type name, which is data; any
    # other __import__ hides an edge from a reader (and from the checks above)
    found = [
        "%s:%d" % (path.name, n.lineno)
        for name, (path, tree) in MODULES.items()
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "__import__"
    ]
    assert [f.split(":")[0] for f in found] == ["nodetable.py"], found
