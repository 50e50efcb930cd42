"""Routing, variables and overrides through the interpreter, under MicroPython."""

import pytest

EXAMPLE = r'''
pub = []
NODES = [("dht", {"pin": 4, "every": 2000}),
         ("switch", {"property": "temperature", "value": "$threshold"}),
         ("gpio_out", {"pin": 5}),
         ("mqtt_out", {"topic": "alert", "qos": 1}),
         ("gpio_out", {"pin": 18, "value": 1})]
EDGES = [(0, 0, 1), (1, 0, 2), (1, 0, 3), (1, 1, 4)]
it, hal = interp(NODES, EDGES, vars={"threshold": 30, "label": "hot", "armed": True}, published=pub,
                 sim={"dht": {"4": {"script": [[25.0, 40], [31.5, 41], [29.0, 42]]}}})
it.start(0)
OUT["polls"] = [it.poll(t) for t in (0, 1000, 2000, 4000)]
recs = it.records.take()
OUT["routes"] = [ports(r) for r in recs]
OUT["relay"] = [hal.pin(5).value(), hal.pin(5).writes, hal.pin(18).writes]
OUT["pub"] = list(pub)
OUT["status"] = [r["status"] for r in recs]
OUT["trig"] = [r["trigger"] for r in recs]
# overrides: a lower threshold routes 29.0 to the alert branch, a param override wins over the var
r1 = it.run_now({"vars": {"threshold": 20}}, exec_id="e1", now_ms=5000)
r2 = it.run_now({"vars": {"threshold": 20}, "params": {"n2": {"value": 40}}}, exec_id="e2", now_ms=5001)
r3 = it.run_now(None, exec_id="e3", now_ms=5002)
OUT["ov"] = [ports(r1), ports(r2), ports(r3), r1["exec"], r1["trigger"]]
bad = [it.run_now({"vars": {"nope": 1}}), it.run_now({"params": {"n9": {}}}),
       it.run_now({"params": {"n2": {"bogus": 1}}}), it.run_now({"params": {"n2": {"op": "zz"}}}),
       it.run_now({"params": {"n3": {"pin": 4}}})]
OUT["bad"] = [[b["status"], b["err"]] for b in bad]
OUT["counters"] = [it.runs, it.errors]
# a variable override must have the declared value's type (number: int/float, not bool)
typed = [it.run_now({"vars": {"threshold": v}}) for v in ("warm", True, None, [1])]
typed += [it.run_now({"vars": {"label": 5}}), it.run_now({"vars": {"armed": 1}}),
          it.run_now({"vars": {"armed": "yes"}})]
OUT["badtype"] = [[b["status"], b["err"]] for b in typed]
good = [it.run_now({"vars": {"threshold": 20.5, "label": "cold", "armed": False}}, now_ms=5003)]
OUT["goodtype"] = [[g["status"], ports(g)] for g in good]
OUT["counters2"] = [it.runs, it.errors]
'''


@pytest.fixture(scope="module")
def out(device):
    return device(EXAMPLE)


def test_switch_routes_and_untaken_branch_is_skipped(out):
    assert out["polls"] == [1, 0, 1, 1]
    assert out["routes"] == [
        [["n1", 0], ["n2", 1], ["n5", 0]],                 # 25.0 <= 30: off branch only
        [["n1", 0], ["n2", 0], ["n3", 0], ["n4", 0]],      # 31.5 > 30: relay on + alert
        [["n1", 0], ["n2", 1], ["n5", 0]],
    ]
    assert out["relay"] == [1, 1, 2]      # the alert branch ran once, the other twice
    assert out["pub"] == [["alert", {"value": 31.5, "temperature": 31.5, "humidity": 41}, 1, False]]
    assert out["status"] == ["completed"] * 3
    assert out["trig"] == ["poll:n1"] * 3


def test_overrides_apply_to_one_run_only(out):
    r1, r2, r3, exec_id, trig = out["ov"]
    assert r1 == [["n1", 0], ["n2", 0], ["n3", 0], ["n4", 0]]     # 29.0 > 20
    assert r2 == [["n1", 0], ["n2", 1], ["n5", 0]]                 # param override 40 wins
    assert r3 == [["n1", 0], ["n2", 1], ["n5", 0]]                 # back to $threshold = 30
    assert (exec_id, trig) == ("e1", "exec")


def test_bad_overrides_fail_the_run_with_a_reason(out):
    reasons = [b[1] for b in out["bad"]]
    assert all(b[0] == "failed" for b in out["bad"])
    assert "nope" in reasons[0] and "unknown variable" in reasons[0]
    assert "n9" in reasons[1]
    assert "n2.bogus" in reasons[2]
    assert "n2.op" in reasons[3]
    assert "n3.pin" in reasons[4]
    runs, errors = out["counters"]
    assert runs == 6 and errors == 0   # bad overrides are refused, not counted as flow errors


@pytest.mark.parametrize("i, var, want", [
    (0, "threshold", "number"), (1, "threshold", "number"), (2, "threshold", "number"),
    (3, "threshold", "number"), (4, "label", "str"), (5, "armed", "bool"), (6, "armed", "bool")])
def test_a_variable_override_of_the_wrong_type_is_refused(out, i, var, want):
    status, err = out["badtype"][i]
    assert status == "failed"
    assert f"overrides.vars.{var}: want a {want}" in err


def test_variable_overrides_of_the_declared_types_run(out):
    assert out["goodtype"] == [["completed", [["n1", 0], ["n2", 0], ["n3", 0], ["n4", 0]]]]  # 29.0 > 20.5
    assert out["counters2"] == [7, 0]  # the refused ones neither ran nor count as flow errors
