# The compiled-in node table: type id -> node module (fleetflow/nodes/<type>.py).
#
# A board's bundle carries only the node modules its board file lists, so
# load_table(types) imports only those. dump() is the catalog in the
# format of docs/node-catalog.md; shared_schema/catalog.json is generated
# from it (`micropython -c "import fleetflow.nodetable as t; t.print_dump()"`)
# and a host test fails when the two drift.
from fleetflow.errors import FFError

# The whole first catalog; a board compiles in a subset.
ALL_TYPES = ("adc", "change", "clear_cache", "counter", "deadband", "debounce", "delay",
             "dht", "gpio_in", "gpio_out", "inject", "log", "mqtt_out", "pwm",
             "rate_limit", "set_log_level", "switch", "toggle_feature")

FORMAT = 1


class Table:
    """The node table of a bundle: {type: module}, each module imported on
    first use, so RAM holds only the nodes the running flow uses."""

    def __init__(self, types):
        self.types = types
        self._mods = {}

    def get(self, t, default=None):
        m = self._mods.get(t)
        if m is None:
            if t not in self.types:
                return default
            m = __import__("fleetflow.nodes." + t, None, None, (t,))
            if m.TYPE != t:
                raise FFError("node table: module %s declares TYPE %s" % (t, m.TYPE))
            self._mods[t] = m
        return m

    def __getitem__(self, t):
        m = self.get(t)
        if m is None:
            raise KeyError(t)
        return m

    def __contains__(self, t):
        return t in self.types

    def __iter__(self):
        return iter(self.types)

    def __len__(self):
        return len(self.types)


def load_table(types=None):
    """The node table of `types` (default: every type); FFError on an unknown one."""
    ts = []
    for t in (types or ALL_TYPES):
        t = t.replace("-", "_")
        if t not in ALL_TYPES:
            raise FFError("node table: unknown node type %s" % t)
        if t not in ts:
            ts.append(t)
    ts.sort()
    return Table(tuple(ts))


def node_json(mod):
    from fleetflow.params import spec_json
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
