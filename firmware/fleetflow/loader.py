# The checks behind fleetflow.program.load_program: parse, check
# everything, precompute. Imported only while a program is loaded and let
# go again, so the running firmware doesn't carry it. load() fills a new
# Program, whose class the caller passes in: fleetflow.program imports this
# module (while it checks), so this one does not import it back.
import json
from micropython import const

from fleetflow.errors import FFError
from fleetflow.params import REQ, check_value, check_pin

_MAX_NODES = const(64)
_MAX_EDGES = const(256)
_MAX_ID = const(32)
_DEF_STEPS = const(256)
_DEF_RUN_MS = const(200)
_DEF_LIMIT_BYTES = const(16384)
_MAX_BACKOFF_MS = const(10000)


def param_spec(mod, name):
    for s in mod.PARAMS:
        if s[0] == name:
            return s
    return None


def _norm_type(t):
    return t.replace("-", "_")


def resolve_params(nid, mod, raw, vars_, board, seen=None):
    """Check every param of one node against its spec; return (values as
    written, params, cfg)."""
    p = {}
    written = []
    for spec in mod.PARAMS:
        name = spec[0]
        if name in raw:
            v = raw[name]
        elif spec[2] == REQ:
            raise FFError("%s.%s: required param missing" % (nid, name))
        else:
            v = spec[2]
        if seen is not None and type(v) is str:
            # JSON gives every node its own copy of "value", "gt", "$limit":
            # keep one of each (a 20-node program saves ~1.5 KB)
            v = seen.setdefault(v, v)
        written.append(v)
        if type(v) is str and v[:1] == "$":
            if v[1:2] == "$":
                v = v[1:]           # "$$x" is the literal "$x"
            else:
                if v[1:] not in vars_:
                    raise FFError("%s.%s: unknown variable %s" % (nid, name, v))
                v = vars_[v[1:]]
        check_value(nid, spec, v)
        if spec[1] == "pin":
            check_pin(nid, spec, v, board)
        p[name] = v
    for name in raw:
        if param_spec(mod, name) is None:
            raise FFError("%s.%s: unknown param of %s" % (nid, name, mod.TYPE))
    written = tuple(written)
    prep = getattr(mod, "prep", None)
    if prep is None:
        return written, p, p
    try:
        return written, p, prep(p)
    except FFError as e:
        # prep names the param ("value: ..."); add the node
        raise FFError("%s.%s" % (nid, e.args[0] if e.args else "bad params"))


def _share(seen, t):
    # nodes with the same params get the same (immutable) tuple
    if type(t) is tuple:
        try:
            return seen.setdefault(t, t)
        except TypeError:   # holds a list or dict: not hashable, keep its own
            pass
    return t


def _printable(s):
    for ch in s:
        if ch < " " or ch == "\x7f":
            return False
    return True


def _int_in(where, key, v, lo, hi):
    if type(v) is not int or not lo <= v <= hi:
        raise FFError("%s.%s: want an integer %d..%d, got %r" % (where, key, lo, hi, v))
    return v


def load(cls, data, table, board, limit):
    # cls: fleetflow.program.Program
    # small functions on purpose: each one's bytecode is one heap block,
    # and a big block may not be free when a device loads a new flow
    if limit is None:
        limit = (board or {}).get("program_max_bytes") or _DEF_LIMIT_BYTES
    # data: the bytes or text, or a file open at the program (a staged slot,
    # whose size the envelope check bounded): parsed as it is read then
    stream = hasattr(data, "readinto")
    if not stream:
        if type(data) not in (bytes, str, bytearray, memoryview):
            raise FFError("program: want bytes or text")
        if len(data) > limit:
            raise FFError("program: %d bytes over the limit of %d" % (len(data), limit))
    try:
        doc = json.load(data) if stream else json.loads(data)
    except MemoryError:
        raise FFError("program: out of memory parsing %s" % ("it" if stream else "%d bytes" % len(data)))
    except Exception:
        raise FFError("program: malformed JSON")
    if type(doc) is not dict:
        raise FFError("program: want a JSON object")
    if not (doc.get("f") == 1 and type(doc.get("f")) is int):
        raise FFError("program.f: unsupported format %r (want 1)" % (doc.get("f"),))
    prog = cls()
    vars_ = _header(doc, board, prog)
    nodes = doc.get("nodes")
    if not (type(nodes) is list and 0 < len(nodes)):
        raise FFError("program.nodes: want a non-empty list")
    if len(nodes) > _MAX_NODES:
        raise FFError("program.nodes: %d nodes over the limit of %d" % (len(nodes), _MAX_NODES))
    pins = {}
    seen = {}
    n = len(nodes)
    # every per-node list made at its final size now, before the heap
    # fragments: growing lists need ever bigger contiguous blocks
    ids = [None] * n
    prog.mods = [None] * n
    prog.raws = [None] * n
    prog.cfgs = [None] * n
    prog.policy = [None] * n
    for i in range(n):
        nd = nodes[i]
        nodes[i] = None     # let each node's JSON go once it is read (peak heap)
        _node(prog, i, nd, table, board, vars_, pins, seen, ids)
    prog.n = n
    prog.idtext = "\n".join(ids)
    ids = None
    if prog.steps < prog.n:
        raise FFError("program.limits.steps: %d is below the node count %d" % (prog.steps, prog.n))
    edges = doc.get("edges", [])
    doc = nodes = None
    _edges(prog, edges)
    return prog


def _header(doc, board, prog):
    # the program's own fields: format, flow, board, vars, limits
    flow = doc.get("flow")
    if not (type(flow) is str and 0 < len(flow) <= 64):
        raise FFError("program.flow: want a flow id")
    prog.flow = flow
    prog.ver = _int_in("program", "ver", doc.get("ver"), 0, 0x7fffffff)
    pb = doc.get("board")
    if not (pb is None or type(pb) is str):
        raise FFError("program.board: want a board name")
    if board is not None and pb is not None:
        if pb != board.get("name"):
            raise FFError("program.board: compiled for %s, this is %s" % (pb, board.get("name")))
    prog.board = pb
    vars_ = doc.get("vars", {})
    if type(vars_) is not dict:
        raise FFError("program.vars: want an object")
    for k in vars_:
        if not (0 < len(k) <= _MAX_ID):
            raise FFError("program.vars: bad variable name %r" % k)
        if type(vars_[k]) not in (int, float, str, bool):
            raise FFError("program.vars.%s: want a number, string or bool" % k)
    prog.vars = vars_
    limits = doc.get("limits", {})
    if type(limits) is not dict:
        raise FFError("program.limits: want an object")
    for k in limits:
        if k not in ("steps", "run_ms"):
            raise FFError("program.limits.%s: unknown limit" % k)
    prog.steps = _int_in("program.limits", "steps", limits.get("steps", _DEF_STEPS), 1, 10000)
    prog.run_ms = _int_in("program.limits", "run_ms", limits.get("run_ms", _DEF_RUN_MS), 1, 60000)
    return vars_


def _node(prog, i, nd, table, board, vars_, pins, seen, ids):
    # one node of the program: checked, resolved, stored at index i
    if type(nd) is not dict:
        raise FFError("program.nodes[%d]: want an object" % i)
    nid = nd.get("id")
    if not (type(nid) is str and 0 < len(nid) <= _MAX_ID and _printable(nid)):
        raise FFError("program.nodes[%d].id: want a node id (1..32 printable characters)" % i)
    if nid in ids:
        raise FFError("%s: duplicate node id" % nid)
    typ = nd.get("type")
    if type(typ) is not str:
        raise FFError("%s.type: want a type id" % nid)
    typ = _norm_type(typ)
    mod = table.get(typ)
    if mod is None:
        raise FFError("%s.type: unknown node type %s" % (nid, typ))
    for k in nd:
        if k not in ("id", "type", "params", "on_failure", "retries", "backoff_ms"):
            raise FFError("%s.%s: unknown key" % (nid, k))
    raw = nd.get("params", {})
    if type(raw) is not dict:
        raise FFError("%s.params: want an object" % nid)
    of = nd.get("on_failure", "stop")
    if of not in ("stop", "continue"):
        raise FFError("%s.on_failure: want stop or continue" % nid)
    ids[i] = nid
    prog.mods[i] = mod
    written, p, cfg = resolve_params(nid, mod, raw, vars_, board, seen)
    prog.raws[i] = _share(seen, written)
    prog.cfgs[i] = _share(seen, cfg)
    if mod.KIND == "source" and p.get("every"):
        prog.every[i] = p["every"]
    retries = _int_in(nid, "retries", nd.get("retries", 0), 0, 5)
    backoff = _int_in(nid, "backoff_ms", nd.get("backoff_ms", 0), 0, _MAX_BACKOFF_MS)
    if of == "continue" or retries:
        prog.policy[i] = (of == "continue", retries, backoff)
    _claim_pins(nid, mod, raw, vars_, pins)


def _claim_pins(nid, mod, raw, vars_, pins):
    # one GPIO belongs to one node: two would fight over it (the host's
    # validator refuses the same; this is the device's own check)
    for spec in mod.PARAMS:
        if spec[1] != "pin":
            continue
        pin = raw.get(spec[0], spec[2])
        if type(pin) is str and pin[:1] == "$":
            pin = vars_.get(pin[1:])
        prev = pins.get(pin)
        if prev is not None:
            raise FFError("%s.%s: GPIO %s already used by %s" % (nid, spec[0], pin, prev))
        pins[pin] = nid


def _bad_edge(prog, k, a, port, b):
    ids = prog.ids
    where = "program.edges[%d]" % k
    if a >= b:
        raise FFError("%s: %s -> %s goes backward (a cycle or not in execution order)" % (where, ids[a], ids[b]))
    if not 0 <= port < prog.mods[a].PORTS:
        raise FFError("%s: %s (%s) has no output port %d" % (where, ids[a], prog.mods[a].TYPE, port))
    raise FFError("%s: %s (%s) is a source and takes no input" % (where, ids[b], prog.mods[b].TYPE))


def _edges(prog, edges):
    # checked first, then turned into per-node tuples of targets per port
    # (built without intermediate lists: this runs at the load's heap peak)
    n = prog.n
    if type(edges) is not list:
        raise FFError("program.edges: want a list")
    if len(edges) > _MAX_EDGES:
        raise FFError("program.edges: %d edges over the limit of %d" % (len(edges), _MAX_EDGES))
    indeg = [0] * n
    for k in range(len(edges)):
        e = edges[k]
        if (type(e) is not list or len(e) != 3 or type(e[0]) is not int
                or type(e[1]) is not int or type(e[2]) is not int):
            raise FFError("program.edges[%d]: want [from, port, to]" % k)
        a, port, b = e
        if not (0 <= a < n and 0 <= b < n):
            raise FFError("program.edges[%d]: node index out of range" % k)
        if a >= b or not 0 <= port < prog.mods[a].PORTS or prog.mods[b].KIND == "source":
            _bad_edge(prog, k, a, port, b)
        indeg[b] += 1
    succ = [None] * n
    for a in range(n):
        ports = ()
        for port in range(prog.mods[a].PORTS):
            t = ()
            for k in range(len(edges)):
                e = edges[k]
                if e[0] == a and e[1] == port:
                    if e[2] in t:
                        raise FFError("program.edges[%d]: duplicate edge" % k)
                    t += (e[2],)
            ports += (t,)
        if ports == ((),):
            ports = None            # a sink at the end: nothing to keep
        elif len(ports) == 1 and len(ports[0]) == 1:
            ports = ports[0][0]     # one node on port 0: an int costs no heap
        succ[a] = ports
    prog.succ = succ
    prog.indeg = indeg
