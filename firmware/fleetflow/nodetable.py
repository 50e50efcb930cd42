# The compiled-in node table: type id -> node module (fleetflow/nodes/<type>.py).
#
# A board's bundle carries only the node modules its board file lists, so
# load_table(types) imports only those. dump() is the catalog in the
# format of docs/node-catalog.md (fleetflow/nodedump.py, given a Table);
# shared_schema/catalog.json is generated
# from it (`micropython -c "import fleetflow.nodetable as t; t.print_dump()"`)
# and a host test fails when the two drift.
from fleetflow.errors import FFError

# The whole first catalog; a board compiles in a subset.
ALL_TYPES = ("adc", "change", "clear_cache", "counter", "deadband", "debounce", "delay",
             "dht", "gpio_in", "gpio_out", "inject", "log", "mqtt_out", "pwm",
             "rate_limit", "set_log_level", "switch", "toggle_feature")


class Table:
    """The node table of a bundle: {type: module}, each module imported on
    first use, so RAM holds only the nodes the running flow uses."""

    def __init__(self, types):
        self.types = types
        self.mods = {}      # type -> its module, once imported (nodedump lets them go)

    def get(self, t, default=None):
        m = self.mods.get(t)
        if m is None:
            if t not in self.types:
                return default
            m = __import__("fleetflow.nodes." + t, None, None, (t,))
            if m.TYPE != t:
                raise FFError("node table: module %s declares TYPE %s" % (t, m.TYPE))
            self.mods[t] = m
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


# The catalog dump lives in fleetflow/nodedump.py, imported only when asked
# for (the host's catalog generation, the agent's hash at connect), so the
# running firmware doesn't carry it.


def _dumped(fn, types):
    # import the dump code, give it the table of `types`, let it go again
    from fleetflow import nodedump
    from fleetflow.cold import unload
    try:
        return getattr(nodedump, fn)(load_table(types))
    finally:
        unload("nodedump")


def table_hash(types=None):
    """sha256 hex of the canonical JSON of the nodes of `types`."""
    return _dumped("table_hash", types)


def dump(types=None):
    """The catalog (docs/node-catalog.md): {"format", "hash", "nodes"}."""
    return _dumped("dump", types)


def print_dump(types=None):
    """Print the catalog as canonical JSON (shared_schema/catalog.json is made from it)."""
    _dumped("print_dump", types)
