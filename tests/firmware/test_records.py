"""Run records and their bounded buffer, under MicroPython."""

from ast import literal_eval

import pytest

BODY = r'''
from fleetflow.records import RunBuffer, to_dict
from fleetflow.record_wire import summary

# the buffer: bounded, oldest dropped and counted, take/peek/clear
b = RunBuffer(3)
for k in range(5):
    b.append({"run": k})
OUT["bounded"] = [len(b), b.dropped, [r["run"] for r in b.peek()], [r["run"] for r in b.take(2)],
                  [r["run"] for r in b.take()], len(b)]
b.append({"run": 9})
OUT["clear"] = [b.clear(), len(b), b.dropped]

# interpreter records: fields of docs/device-protocol.md, timing, summaries
buf = RunBuffer(2)
it, hal = interp([("inject", {"payload": "x" * 100}), ("switch", {"op": "eq", "value": "no"}), ("counter", {}),
                  ("counter", {})], [(0, 0, 1), (1, 0, 2), (1, 1, 3)], records=buf)
r = it.run_now(exec_id="e9", now_ms=1234)
OUT["record"] = r
recs = []
for t in range(4):
    recs.append(it.run_now(now_ms=t))
OUT["after"] = [len(buf), buf.dropped, [x["run"] for x in buf.peek()]]
# a record taken out of the buffer is a plain dict: later runs don't change it
kept = buf.take(1)[0]
snapshot = repr(kept)
for t in range(5):
    it.run_now(now_ms=100 + t)
OUT["stable"] = repr(kept) == snapshot
OUT["summary"] = [summary(None), summary("short"), len(summary("y" * 500)), summary({"a": 1})]
# exec records of the same buffer stay in order across recycling
buf2 = RunBuffer(4)
it2, hal2 = interp([("inject", {}), ("counter", {})], [(0, 0, 1)], records=buf2)
outs = []
for t in range(10):
    it2.run_now(now_ms=t)
    if t % 3 == 2:
        outs += [x["nodes"][1]["out"] for x in buf2.take()]
OUT["recycled"] = outs + [x["nodes"][1]["out"] for x in buf2.take()]
# a router's row shows the message it routed, however it got there:
# from the inbox (n2, n3: fan-out), straight from the node before (n4 after n3,
# a router after a router), or as the run's first node (run_from)
it5, hal5 = interp([("inject", {"payload": 7}), ("switch", {"value": 5}), ("switch", {"value": 9}),
                    ("switch", {"op": "lt", "value": 9})], [(0, 0, 1), (0, 0, 2), (2, 1, 3)])
r5 = it5.run_now(now_ms=3)
r6 = to_dict(it5.run_from(1, {"value": 1}))
OUT["routed"] = [[[n["id"], n["out"], n["port"]] for n in r5["nodes"]], [[n["id"], n["out"], n["port"]] for n in r6["nodes"]]]
# ... also in a recycled record: entered from outside once, by a hop the next time
buf7 = RunBuffer(1)
it7, hal7 = interp([("inject", {"payload": 5}), ("switch", {"value": 3})], [(0, 0, 1)], records=buf7)
seen7 = []
for k in range(3):
    to_dict(it7.run_from(1, {"value": 100 + k}))
    seen7.append(buf7.peek()[0]["nodes"][0]["out"])
    it7.run_now(now_ms=k)
    seen7.append(buf7.peek()[0]["nodes"][1]["out"])
OUT["recycled_routed"] = seen7
# peek_json: the same records as JSON text, without building the dicts
buf3 = RunBuffer(4)
it3, hal3 = interp([("inject", {"payload": "q\"uote"}), ("switch", {"property": "nope"}), ("log", {"message": "x"})],
                   [(0, 0, 1), (1, 0, 2)], records=buf3)
it3.run_now(exec_id="j1", now_ms=1)
it4, hal4 = interp([("inject", {}), {"id": "n2", "type": "switch", "params": {"property": "nope"}, "on_failure": "continue"},
                    ("log", {"message": "hi {value}"})], [(0, 0, 1), (0, 0, 2)], records=buf3)
it4.run_now(now_ms=2)
buf3.append({"run": 99, "plain": True})
OUT["peek_json"] = [json.loads(buf3.peek_json()), buf3.peek(), json.loads(buf3.peek_json(1)) == buf3.peek(1)]
# RunsBody: the agent's ff/<dev>/runs body, counted then written through one small buffer
from fleetflow.runsmsg import RunsBody
buf8 = RunBuffer(8)
it8, hal8 = interp([("inject", {"payload": "caf\u00e9"}), ("counter", {})], [(0, 0, 1)], records=buf8)
for t in range(6):
    it8.run_now(now_ms=t)
want8 = buf8.peek()
msg = []
piece = bytearray(256)
for max_bytes, max_n, b in ((100000, 4, piece),     # max_n caps it
                            (1, 8, piece),          # past max_bytes after the first
                            (700, 8, piece),        # records up to ~700 bytes
                            (100000, 8, bytearray(16))):  # pieces longer than the buffer
    body = RunsBody(buf8, "d\u00e9v", b, max_bytes, max_n)
    whole = body.whole()
    msg.append([json.loads(whole), body.k, len(body) == len(whole)])
buf8.discard(3)
OUT["runs_message"] = [want8, msg, [r["run"] for r in buf8.peek()], buf8.dropped]
'''


@pytest.fixture(scope="module")
def out(device):
    return device(BODY)


def test_buffer_is_bounded_and_counts_drops(out):
    assert out["bounded"] == [3, 2, [2, 3, 4], [2, 3], [4], 0]
    assert out["clear"] == [1, 0, 3]


def test_record_has_the_protocol_fields(out):
    r = out["record"]
    assert set(r) == {"run", "flow", "ver", "exec", "trigger", "status", "t_ms", "us", "nodes", "logs", "err"}
    assert (r["flow"], r["ver"], r["exec"], r["trigger"], r["status"], r["t_ms"], r["err"]) == \
        ("t", 1, "e9", "exec", "completed", 1234, None)
    assert [n["id"] for n in r["nodes"]] == ["n1", "n2", "n4"]       # n3 (port 0) skipped
    for n in r["nodes"]:
        assert set(n) == {"id", "type", "us", "out", "port", "err"}
        assert isinstance(n["us"], int) and n["us"] >= 0
    assert [n["port"] for n in r["nodes"]] == [0, 1, 0]
    assert len(r["nodes"][0]["out"]) == 60 and r["nodes"][0]["out"].endswith("...")
    assert r["us"] >= sum(n["us"] for n in r["nodes"])


def test_interpreter_records_go_to_the_bounded_buffer(out):
    length, dropped, runs = out["after"]
    assert length == 2 and dropped == 3 and runs == [4, 5]


def test_taken_records_are_not_changed_by_later_runs(out):
    assert out["stable"] is True


def test_summaries(out):
    assert out["summary"] == [None, "short", 60, "{'a': 1}"]


def test_router_rows_show_the_message_they_routed(out):
    fanout, first = out["routed"]
    msg = {"value": 7, "ts": 3}
    assert [[i, literal_eval(o), p] for i, o, p in fanout] == [
        ["n1", msg, 0], ["n2", msg, 0], ["n3", msg, 1], ["n4", msg, 0]]
    assert first == [["n2", "{'value': 1}", 1]]


def test_router_rows_stay_right_in_recycled_records(out):
    outs = [literal_eval(o) for o in out["recycled_routed"]]
    assert outs == [{"value": 100}, {"value": 5, "ts": 0}, {"value": 101}, {"value": 5, "ts": 1},
                    {"value": 102}, {"value": 5, "ts": 2}]


def test_peek_json_is_peek_as_json(out):
    as_json, as_dicts, first_only = out["peek_json"]
    assert as_json == as_dicts and first_only
    assert as_json[0]["status"] == "failed" and 'q"uote' in as_json[0]["nodes"][0]["out"]
    assert as_json[1]["status"] == "completed"
    assert [lv for lv, node, text in as_json[1]["logs"]] == ["info"] and as_json[1]["logs"][0][1] == "n3"
    assert as_json[1]["logs"][0][2].startswith("hi ")
    assert as_json[2] == {"run": 99, "plain": True}


def test_recycled_records_keep_their_own_outputs(out):
    counts = [literal_eval(o)["count"] for o in out["recycled"]]
    assert counts == list(range(1, 11))


def test_runs_body_is_the_oldest_records_counted_then_written_in_pieces(out):
    want, msgs, left, dropped = out["runs_message"]
    capped, first_only, fitted, small_buffer = msgs
    assert all(m[2] for m in msgs)  # len() is the byte count of what emit() writes (UTF-8 included)
    assert capped[0] == {"dev": "d\u00e9v", "runs": want[:4], "dropped": 0} and capped[1] == 4
    assert first_only[0]["runs"] == want[:1] and first_only[1] == 1
    k = fitted[1]
    assert 1 < k < 6 and fitted[0]["runs"] == want[:k] and fitted[0]["dropped"] == 0
    assert small_buffer[0]["runs"] == want and small_buffer[1] == 6
    # shipped records leave without counting as dropped
    assert left == [r["run"] for r in want[3:]] and dropped == 0



def _consts(name):
    """NAME -> value of the `NAME = const(value)` lines of a firmware module."""
    import ast
    from pathlib import Path
    src = Path(__file__).resolve().parents[2] / "firmware" / "fleetflow" / name
    found = {}
    for node in ast.parse(src.read_text()).body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "const"):
            found[node.targets[0].id] = ast.literal_eval(node.value.args[0])
    return found


@pytest.mark.parametrize("module", ["runner.py", "record_wire.py"])
def test_the_record_layout_is_the_same_where_it_is_copied(module):
    # runner and record_wire keep the header indexes as private consts (no
    # import back into records, no global per field): they must say what records says
    layout = _consts("records.py")
    copies = {k[1:]: v for k, v in _consts(module).items() if k[1:] in layout}
    assert len(copies) >= 13, f"{module}: only {sorted(copies)} of the record layout found"
    assert copies == {k: layout[k] for k in copies}
