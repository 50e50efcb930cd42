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


def _each(types, fn):
    # One node at a time: import its module, fn(type, its catalog entry),
    # let the module go again unless the running flow had it loaded. A board
    # hashes its table at boot with little heap to spare.
    import sys
    import gc
    import fleetflow.nodes as pkg
    table = load_table(types)
    for t in table.types:
        name = "fleetflow.nodes." + t
        had = name in sys.modules
        fn(t, node_json(table.get(t)))
        if not had:
            sys.modules.pop(name, None)
            if hasattr(pkg, t):
                delattr(pkg, t)
            table._mods.pop(t, None)
            gc.collect()


def _hash_into(h, types):
    # the canonical JSON of {type: entry, ...} (sorted types), streamed
    from fleetflow import canon
    first = [True]

    def one(t, entry):
        h.update("{" if first[0] else ",")
        first[0] = False
        canon.dump(t, h.update)
        h.update(":")
        canon.dump(entry, h.update)

    _each(types, one)
    h.update("{}" if first[0] else "}")


def table_hash(types=None):
    """sha256 hex of the canonical JSON of the nodes of `types` (streamed)."""
    import hashlib
    import binascii
    h = hashlib.sha256()
    _hash_into(h, types)
    return binascii.hexlify(h.digest()).decode()


def dump(types=None):
    """The catalog (docs/node-catalog.md): {"format", "hash", "nodes"}."""
    nodes = {}

    def keep(t, entry):
        nodes[t] = entry

    _each(types, keep)
    return {"format": FORMAT, "hash": table_hash(types), "nodes": nodes}


def print_dump(types=None):
    """Print the catalog as canonical JSON, streamed piece by piece."""
    import sys
    from fleetflow import canon
    canon.dump(dump(types), sys.stdout.write)
    sys.stdout.write("\n")
