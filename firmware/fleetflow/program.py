# The device program: what the interpreter runs.
#
# load_program(data, table, board=None) turns the bytes of a device program
# (docs/program-format.md) into a Program, or refuses it with FFError whose
# reason names the node and the param at fault. It never raises anything
# else, whatever the bytes: a bad program must not crash a board. The checks
# live in fleetflow/loader.py, loaded only while they run.
from micropython import const

from fleetflow.cold import unload
from fleetflow.errors import FFError

_DEF_STEPS = const(256)
_DEF_RUN_MS = const(200)


def _checked(mod, *args):
    # run the checking code's entry point -- mod "loader": load(), mod
    # "overrides": cfgs_for() -- then let that code go again
    import sys
    had = "fleetflow.loader" in sys.modules
    # a load is the firmware's biggest moment on the heap: start it clean
    import gc
    gc.collect()
    try:
        if mod == "loader":
            from fleetflow.loader import load as check
        else:
            from fleetflow.overrides import cfgs_for as check
        return check(*args)
    except FFError:
        raise
    except Exception as e:  # defence in depth: a reason, never a crash
        raise FFError("bad program: %s %s" % (type(e).__name__, e))
    finally:
        if not had:
            unload(*_CHECKING)


# the checking code: loaded only while it runs (fleetflow.cold)
_CHECKING = ("overrides", "loader", "params")


def prime():
    # Called once from fleetflow/__init__.py, i.e. at the first import of the
    # package, while the heap is young: import the checking code and let it
    # go. The names it interns stay interned (MicroPython never frees them),
    # so the interning -- which grows the name pool by one big block -- happens
    # now, not at the first program load on a full, fragmented heap; and the
    # space the code took is freed early, where later modules fill it.
    from fleetflow import loader  # noqa: F401
    from fleetflow import overrides  # noqa: F401
    unload(*_CHECKING)


def load_program(data, table, board=None, limit=None):
    """Check a device program and return a Program; FFError on anything bad."""
    return _checked("loader", Program, data, table, board, limit)


class Program:
    """A checked program. Per-node data is indexed by position (execution order).

    Kept compact (this stays in RAM while the flow runs): the node ids are one
    string, nodes with the same params share their tuples, and a node's
    successors are an int when they are a single node on port 0.
    """

    def __init__(self):
        self.flow = None
        self.ver = 0
        self.board = None
        self.vars = {}
        self.steps = _DEF_STEPS
        self.run_ms = _DEF_RUN_MS
        self.n = 0
        self.idtext = ""     # the node ids joined by "\n"
        self.mods = []
        self.raws = []       # per node: param values as written, PARAMS order (may be "$var")
        self.cfgs = []       # params resolved, checked and digested by the node's prep()
        self.every = {}      # node index -> poll interval (ms) of a source that polls
        self.policy = []     # None (stop on error, no retry) or (continue, retries, backoff_ms)
        self.succ = []       # None, a node index (port 0 only), or a tuple per port of indexes
        self.indeg = []

    @property
    def ids(self):
        return self.idtext.split("\n")

    @property
    def types(self):
        return [m.TYPE for m in self.mods]

    def raw(self, i):
        return self.raws[i]

    def targets(self, i, port):
        """The nodes that node i's output port feeds."""
        s = self.succ[i]
        if s is None:
            return ()
        if type(s) is int:
            return (s,) if port == 0 else ()
        return s[port]

    def continue_on(self, i):
        pol = self.policy[i]
        return pol is not None and pol[0]

    def index(self, node_id):
        try:
            return self.ids.index(node_id)
        except ValueError:
            return -1

    def cfgs_for(self, overrides):
        """The cfgs of one run with {"vars": {...}, "params": {id: {...}}} applied.

        Returns a new list (the program's own is untouched); FFError when an
        override names an unknown variable, node or param, or has a bad value.
        """
        if not overrides:
            return self.cfgs
        return _checked("overrides", self, overrides)
