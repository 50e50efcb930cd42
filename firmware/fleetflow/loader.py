# The checks behind fleetflow.program.load_program: parse, check
# everything, precompute. Imported only while a program is loaded and let
# go again, so the running firmware doesn't carry it.
import json
from micropython import const

from fleetflow.errors import FFError
from fleetflow.params import REQ, check_value, check_pin
from fleetflow.program import Program

_MAX_NODES = const(64)
_MAX_EDGES = const(256)
_MAX_ID = const(32)
_DEF_STEPS = const(256)
_DEF_RUN_MS = const(200)
_DEF_LIMIT_BYTES = const(16384)
_MAX_BACKOFF_MS = const(10000)


def _spec(mod, name):
    for s in mod.PARAMS:
        if s[0] == name:
            return s
    return None


def _norm_type(t):
    return t.replace("-", "_")


def _resolve(nid, mod, raw, vars_, board, seen=None):
    """Check every param of one node against its spec; return (values as
    written, params, cfg)."""
    p = {}
    written = []
    for spec in mod.PARAMS:
        name = spec[0]
        where = "%s.%s" % (nid, name)
        if name in raw:
            v = raw[name]
        elif spec[2] == REQ:
            raise FFError("%s: required param missing" % where)
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
                    raise FFError("%s: unknown variable %s" % (where, v))
                v = vars_[v[1:]]
        check_value(where, spec, v)
        if spec[1] == "pin":
            check_pin(where, spec, v, board)
        p[name] = v
    for name in raw:
        if _spec(mod, name) is None:
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


def _want(cond, reason):
    if not cond:
        raise FFError(reason)


def _int_in(where, v, lo, hi):
    _want(type(v) is int and lo <= v <= hi,
          "%s: want an integer %d..%d, got %r" % (where, lo, hi, v))
    return v


def load(data, table, board, limit):
    if limit is None:
        limit = (board or {}).get("program_max_bytes") or _DEF_LIMIT_BYTES
    _want(type(data) in (bytes, str, bytearray), "program: want bytes or text")
    _want(len(data) <= limit, "program: %d bytes over the limit of %d" % (len(data), limit))
    try:
        doc = json.loads(data)
    except Exception:
        raise FFError("program: malformed JSON")
    _want(type(doc) is dict, "program: want a JSON object")
    _want(doc.get("f") == 1 and type(doc.get("f")) is int,
          "program.f: unsupported format %r (want 1)" % (doc.get("f"),))
    prog = Program()
    flow = doc.get("flow")
    _want(type(flow) is str and 0 < len(flow) <= 64, "program.flow: want a flow id")
    prog.flow = flow
    prog.ver = _int_in("program.ver", doc.get("ver"), 0, 0x7fffffff)
    pb = doc.get("board")
    _want(pb is None or type(pb) is str, "program.board: want a board name")
    if board is not None and pb is not None:
        _want(pb == board.get("name"), "program.board: compiled for %s, this is %s" % (pb, board.get("name")))
    prog.board = pb
    vars_ = doc.get("vars", {})
    _want(type(vars_) is dict, "program.vars: want an object")
    for k in vars_:
        _want(0 < len(k) <= _MAX_ID, "program.vars: bad variable name %r" % k)
        _want(type(vars_[k]) in (int, float, str, bool), "program.vars.%s: want a number, string or bool" % k)
    prog.vars = vars_
    limits = doc.get("limits", {})
    _want(type(limits) is dict, "program.limits: want an object")
    for k in limits:
        _want(k in ("steps", "run_ms"), "program.limits.%s: unknown limit" % k)
    prog.steps = _int_in("program.limits.steps", limits.get("steps", _DEF_STEPS), 1, 10000)
    prog.run_ms = _int_in("program.limits.run_ms", limits.get("run_ms", _DEF_RUN_MS), 1, 60000)

    nodes = doc.get("nodes")
    _want(type(nodes) is list and 0 < len(nodes), "program.nodes: want a non-empty list")
    _want(len(nodes) <= _MAX_NODES, "program.nodes: %d nodes over the limit of %d" % (len(nodes), _MAX_NODES))
    pins = {}
    seen = {}
    for i in range(len(nodes)):
        nd = nodes[i]
        nodes[i] = None     # let each node's JSON go once it is read (peak heap)
        _want(type(nd) is dict, "program.nodes[%d]: want an object" % i)
        nid = nd.get("id")
        _want(type(nid) is str and 0 < len(nid) <= _MAX_ID, "program.nodes[%d].id: want a node id" % i)
        _want(nid not in prog.ids, "%s: duplicate node id" % nid)
        typ = nd.get("type")
        _want(type(typ) is str, "%s.type: want a type id" % nid)
        typ = _norm_type(typ)
        mod = table.get(typ)
        _want(mod is not None, "%s.type: unknown node type %s" % (nid, typ))
        for k in nd:
            _want(k in ("id", "type", "params", "on_failure", "retries", "backoff_ms"),
                  "%s.%s: unknown key" % (nid, k))
        raw = nd.get("params", {})
        _want(type(raw) is dict, "%s.params: want an object" % nid)
        of = nd.get("on_failure", "stop")
        _want(of in ("stop", "continue"), "%s.on_failure: want stop or continue" % nid)
        prog.ids.append(nid)
        prog.types.append(mod.TYPE)
        prog.mods.append(mod)
        written, p, cfg = _resolve(nid, mod, raw, vars_, board, seen)
        prog.raw.append(written)
        prog.cfgs.append(cfg)
        if mod.KIND == "source" and p.get("every"):
            prog.every[i] = p["every"]
        retries = _int_in("%s.retries" % nid, nd.get("retries", 0), 0, 5)
        backoff = _int_in("%s.backoff_ms" % nid, nd.get("backoff_ms", 0), 0, _MAX_BACKOFF_MS)
        if of == "continue" or retries:
            prog.policy.append((of == "continue", retries, backoff))
        else:
            prog.policy.append(None)
        _claim_pins(nid, mod, raw, vars_, pins)
    _want(prog.steps >= len(prog.ids), "program.limits.steps: %d is below the node count %d"
          % (prog.steps, len(prog.ids)))
    edges = doc.get("edges", [])
    doc = nodes = None
    _edges(prog, edges)
    return prog


def _claim_pins(nid, mod, raw, vars_, pins):
    # Two nodes on one GPIO would fight over it; outputs may share (an "on"
    # and an "off" gpio_out driving the same relay is the usual pattern).
    for spec in mod.PARAMS:
        if spec[1] != "pin":
            continue
        pin = raw.get(spec[0], spec[2])
        if type(pin) is str and pin[:1] == "$":
            pin = vars_.get(pin[1:])
        prev = pins.get(pin)
        if prev is not None and not (prev[1] == "out" and spec[5] == "out"):
            raise FFError("%s.%s: GPIO %s already used by %s" % (nid, spec[0], pin, prev[0]))
        pins[pin] = (nid, spec[5])


def _edges(prog, edges):
    # checked first, then turned into per-node tuples of targets per port
    # (built without intermediate lists: this runs at the load's heap peak)
    n = len(prog.ids)
    _want(type(edges) is list, "program.edges: want a list")
    _want(len(edges) <= _MAX_EDGES, "program.edges: %d edges over the limit of %d" % (len(edges), _MAX_EDGES))
    indeg = [0] * n
    for k in range(len(edges)):
        e = edges[k]
        where = "program.edges[%d]" % k
        _want(type(e) is list and len(e) == 3 and type(e[0]) is int and type(e[1]) is int
              and type(e[2]) is int, "%s: want [from, port, to]" % where)
        a, port, b = e
        _want(0 <= a < n and 0 <= b < n, "%s: node index out of range" % where)
        _want(a < b, "%s: %s -> %s goes backward (a cycle or not in execution order)" % (
            where, prog.ids[a], prog.ids[b]))
        _want(0 <= port < prog.mods[a].PORTS, "%s: %s (%s) has no output port %d" % (
            where, prog.ids[a], prog.types[a], port))
        _want(prog.mods[b].KIND != "source", "%s: %s (%s) is a source and takes no input" % (
            where, prog.ids[b], prog.types[b]))
        indeg[b] += 1
    succ = []
    for a in range(n):
        ports = ()
        for port in range(prog.mods[a].PORTS):
            t = ()
            for k in range(len(edges)):
                e = edges[k]
                if e[0] == a and e[1] == port:
                    _want(e[2] not in t, "program.edges[%d]: duplicate edge" % k)
                    t += (e[2],)
            ports += (t,)
        succ.append(ports)
    prog.succ = succ
    prog.indeg = indeg
