# The node catalog from the node modules, in the catalog.json format of
# docs/node-catalog.md, and its hash. Reached through fleetflow.nodetable's
# dump(), table_hash() and print_dump(), which hand the functions here the
# node table (fleetflow.nodetable.Table) of the types asked for.

FORMAT = 1


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


def _each(table, fn):
    # One node at a time: import its module, fn(type, its catalog entry),
    # let the module go again unless the running flow had it loaded. A board
    # hashes its table at boot with little heap to spare.
    import sys
    import gc
    import fleetflow.nodes as pkg
    for t in table.types:
        name = "fleetflow.nodes." + t
        had = name in sys.modules
        fn(t, node_json(table.get(t)))
        if not had:
            sys.modules.pop(name, None)
            if hasattr(pkg, t):
                delattr(pkg, t)
            table.mods.pop(t, None)
            gc.collect()


def _hash_into(h, table):
    # the canonical JSON of {type: entry, ...} (sorted types), streamed
    from fleetflow import canon
    first = [True]

    def one(t, entry):
        h.update("{" if first[0] else ",")
        first[0] = False
        canon.dump(t, h.update)
        h.update(":")
        canon.dump(entry, h.update)

    _each(table, one)
    h.update("{}" if first[0] else "}")


def table_hash(table):
    """sha256 hex of the canonical JSON of the table's nodes (streamed)."""
    import hashlib
    import binascii
    h = hashlib.sha256()
    _hash_into(h, table)
    return binascii.hexlify(h.digest()).decode()


def dump(table):
    """The catalog (docs/node-catalog.md): {"format", "hash", "nodes"}."""
    nodes = {}

    def keep(t, entry):
        nodes[t] = entry

    _each(table, keep)
    return {"format": FORMAT, "hash": table_hash(table), "nodes": nodes}


def print_dump(table):
    """Print the catalog as canonical JSON, streamed piece by piece."""
    import sys
    from fleetflow import canon
    canon.dump(dump(table), sys.stdout.write)
    sys.stdout.write("\n")
