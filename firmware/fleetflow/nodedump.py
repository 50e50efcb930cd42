# The node catalog from the node modules, in the catalog.json format of
# docs/node-catalog.md, and its hash. Reached through fleetflow.nodetable's
# dump(), table_hash() and print_dump().
from fleetflow.nodetable import FORMAT, load_table


def spec_json(spec):
    """A param spec tuple (fleetflow/params.py) in catalog form."""
    from fleetflow.nodes import REQ
    name, typ, default, lo, hi, extra = spec
    d = {"name": name, "type": typ, "required": default == REQ}
    if not d["required"]:
        d["default"] = default
    if lo is not None:
        d["min"] = lo
    if hi is not None:
        d["max"] = hi
    if typ == "enum":
        d["choices"] = list(extra)
    elif typ == "pin":
        d["use"] = extra
    return d


def node_json(mod):
    d = {
        "kind": mod.KIND,
        "trigger": mod.TRIGGER,
        "ports": mod.PORTS,
        "doc": mod.DOC,
        "params": [spec_json(s) for s in mod.PARAMS],
    }
    emits = getattr(mod, "EMITS", None)
    if emits:
        d["emits"] = list(emits)
    return d


def _nodes(types):
    # Imports every node of `types`, then unloads those the running flow
    # didn't already have loaded, so a hash at connect time costs no RAM.
    import sys
    import fleetflow.nodes as pkg
    before = set(k for k in sys.modules if k.startswith("fleetflow.nodes."))
    table = load_table(types)
    out = {t: node_json(table[t]) for t in table}
    for t in table:
        name = "fleetflow.nodes." + t
        if name not in before and name in sys.modules:
            del sys.modules[name]
            if hasattr(pkg, t):
                delattr(pkg, t)
    return out


def _hash(nodes):
    from fleetflow import canon
    import hashlib
    import binascii
    return binascii.hexlify(hashlib.sha256(canon.dumps(nodes).encode()).digest()).decode()


def table_hash(types=None):
    """sha256 hex of the canonical JSON of the nodes of `types`."""
    return _hash(_nodes(types))


def dump(types=None):
    """The catalog (docs/node-catalog.md): {"format", "hash", "nodes"}."""
    nodes = _nodes(types)
    return {"format": FORMAT, "hash": _hash(nodes), "nodes": nodes}


def print_dump(types=None):
    from fleetflow import canon
    print(canon.dumps(dump(types)))
