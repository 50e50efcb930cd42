# Run records as they leave the device: the wire form of
# docs/device-protocol.md ("Run record") made from the interpreter's compact
# records (fleetflow/records.py): durations from the stored ticks, short
# summaries of the outputs. Loaded when records are first read.
import time
from micropython import const

# the compact record's layout, as fleetflow.records defines it (the same in
# fleetflow/runner.py; tests/firmware/test_layout.py holds them together):
# private consts, so this module imports nothing back from records and keeps
# no global per field
_H = const(14)
_RUN = const(-14)
_TRIG = const(-13)
_EXEC = const(-12)
_STATUS = const(-11)
_T_MS = const(-10)
_T0 = const(-9)
_T_END = const(-8)
_OUTS = const(-7)
_ERRS = const(-5)
_EXTRA = const(-4)
_LOGS = const(-3)
_ERR = const(-2)
_PROG = const(-1)

_OUT_CHARS = const(60)


def summary(out):
    if out is None:
        return None
    s = out if type(out) is str else repr(out)
    return s if len(s) <= _OUT_CHARS else s[:_OUT_CHARS - 3] + "..."


def node_rows(rec):
    """(index, us, out, port, err) per node run, in execution order, one at
    a time (a list of them would be a block that grows with the flow).

    A node's time runs from the end of the node before it (or the start of
    the run) to its own end, so it includes the hand-over; the first run of a
    fan-in node is timed that way, its repeats by themselves.
    """
    outs = rec[_OUTS]
    errs = rec[_ERRS] or {}
    prog = rec[_PROG]
    mods = prog.mods if prog else ()
    prev = rec[_T0]
    for i in range(len(rec) - _H):
        t = rec[i]
        if t is None:
            continue
        out = outs[i]
        err = errs.get(i)
        if err is not None:
            port = None
        elif mods[i].PORTS > 1:
            port = out
            out = _routed(rec, i, mods)
        else:
            port = None if out is None or type(out) is str else 0
        yield i, time.ticks_diff(t, prev), out, port, err
        prev = t
    if rec[_EXTRA]:
        yield from rec[_EXTRA]


def _hopped(prog, i):
    # did node i get its message straight from node i - 1 (the interpreter's
    # hop: i is the only target of one of i - 1's ports and has no other input)
    if i == 0 or prog.indeg[i] != 1:
        return False
    for k in range(prog.mods[i - 1].PORTS):
        t = prog.targets(i - 1, k)
        if len(t) == 1 and t[0] == i:
            return True
    return False


def _routed(rec, i, mods):
    # The message router i routed: when it came straight from node i - 1
    # (a hop), that node's output -- or, that being a router too, the message
    # it routed; otherwise the runner kept it at outs[n + i].
    prog = rec[_PROG]
    outs = rec[_OUTS]
    n = len(rec) - _H
    while True:
        if not (_hopped(prog, i) and rec[i - 1] is not None):
            return outs[n + i]
        i -= 1
        if mods[i].PORTS == 1:
            return outs[i]


def _status(rec):
    s = rec[_STATUS]
    if s is not None:
        return s
    return "failed" if rec[_ERR] is not None else "completed"


def to_dict(rec):
    """The wire form of a record (docs/device-protocol.md, "Run record").

    A compact record may be reused once it leaves the RunBuffer: convert it
    before then."""
    if type(rec) is dict:
        return rec
    prog = rec[_PROG]
    ids = prog.ids if prog else ()
    types = prog.types if prog else ()
    nodes = []
    for i, us, out, port, err in node_rows(rec):
        nodes.append({"id": ids[i], "type": types[i], "us": us, "out": summary(out),
                      "port": port, "err": err})
    logs = []
    for lv, i, text in rec[_LOGS] or ():
        logs.append([lv, ids[i] if i is not None else None, text])
    return {"run": rec[_RUN], "flow": prog.flow if prog else None, "ver": prog.ver if prog else None,
            "exec": rec[_EXEC], "trigger": rec[_TRIG], "status": _status(rec), "t_ms": rec[_T_MS],
            "us": time.ticks_diff(rec[_T_END], rec[_T0]), "nodes": nodes, "logs": logs, "err": rec[_ERR]}


def write_json(rec, write):
    """Write the wire form of a record as JSON, piece by piece, to write(str):
    what json.dumps(to_dict(rec)) says, without building the dicts first."""
    import json
    d = json.dumps
    if type(rec) is dict:
        write(d(rec))
        return
    prog = rec[_PROG]
    ids = prog.ids if prog else ()
    write('{"run":%d,"flow":' % rec[_RUN])
    write(d(prog.flow if prog else None))
    write(',"ver":')
    write(d(prog.ver if prog else None))
    write(',"exec":')
    write(d(rec[_EXEC]))
    write(',"trigger":')
    write(d(rec[_TRIG]))
    write(',"status":"%s","t_ms":' % _status(rec))
    write(d(rec[_T_MS]))
    write(',"us":%d,"nodes":[' % time.ticks_diff(rec[_T_END], rec[_T0]))
    first = True
    for i, us, out, port, err in node_rows(rec):
        write('{"id":' if first else ',{"id":')
        first = False
        write(d(ids[i]))
        write(',"type":"%s","us":%d,"out":' % (prog.mods[i].TYPE, us))
        write(d(summary(out)))
        write(',"port":')
        write(d(port))
        write(',"err":')
        write(d(err))
        write("}")
    write('],"logs":[')
    first = True
    for lv, i, text in rec[_LOGS] or ():
        write('["%s",' % lv if first else ',["%s",' % lv)
        first = False
        write(d(ids[i] if i is not None else None))
        write(",")
        write(d(text))
        write("]")
    write('],"err":')
    write(d(rec[_ERR]))
    write("}")
