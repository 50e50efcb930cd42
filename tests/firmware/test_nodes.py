"""Every node of the first catalog, under MicroPython: its behaviour, its
params' defaults and bounds, and its faults. One MicroPython process runs
all the checks of this module; each test asserts its part of the output."""

from ast import literal_eval as lit

import pytest

BODY = r'''
def passed(it, msg, now):
    # did the (only) node pass a message on
    return to_dict(it.run_from(0, msg, now))["nodes"][0]["port"] == 0

def out_of(it, msg, now):
    return to_dict(it.run_from(0, msg, now))["nodes"][0]["out"]

def run1(nodes, edges=(), msg=None, sim=None, pub=None, vars=None, now=0):
    it, hal = interp(nodes, edges, sim=sim, published=pub, vars=vars)
    rec = to_dict(it.run_from(0, msg if msg is not None else {}, now))
    return rec, it, hal

from fleetflow.records import to_dict

# -- dht: readings, retries, failure as data, dht11 whole units, profiles
pub = []
it, hal = interp([("dht", {"pin": 4, "retries": 2}), ("mqtt_out", {})], [(0, 0, 1)], published=pub,
                 sim={"dht": {"4": {"script": [[23.14, 40.06], "timeout", [24.0, 41.0],
                                                "timeout", "checksum", "timeout", [25.0, 42.0]]}}})
recs = [it.run_now(now_ms=t) for t in (0, 1, 2)]
OUT["dht"] = {
    "outs": [[n["out"] for n in r["nodes"]] for r in recs],
    "status": [r["status"] for r in recs],
    "logs": [r["logs"] for r in recs],
    "pub": pub, "reads": hal.dhts[4].reads,
}
it, hal = interp([("dht", {"pin": 4, "model": "dht11"})], sim={"dht": {"4": {"base": 21.7, "humidity": 45.4}}})
OUT["dht11"] = it.run_now(now_ms=0)["nodes"][0]["out"]
it, hal = interp([("dht", {"pin": 4, "retries": 0})], sim={"dht": {"4": {"profile": "failing"}}})
r = it.run_now(now_ms=0)
OUT["dht_failing"] = [r["status"], r["nodes"][0]["out"], r["logs"], it.errors]
it, hal = interp([("dht", {"pin": 4, "retries": 0})], sim={"dht": {"4": {"fault_rate": 0.3, "seed": 7}}})
fails = 0
for t in range(200):
    if it.run_now(now_ms=t)["nodes"][0]["port"] is None:
        fails += 1
OUT["dht_rate"] = [fails, hal.dhts[4].faults]
vals = []
it, hal = interp([("dht", {"pin": 4})], sim={"dht": {"4": {"profile": "sine", "base": 20, "amp": 5, "period": 8}}})
for t in range(8):
    vals.append(it.run_now(now_ms=t)["nodes"][0]["out"])
OUT["dht_sine"] = vals
OUT["dht_params"] = [refuse(prog([("dht", {})])), refuse(prog([("dht", {"pin": 4, "every": 1000})])),
                     refuse(prog([("dht", {"pin": 4, "retries": 6})])),
                     refuse(prog([("dht", {"pin": 4, "model": "dht33"})]))]

# -- gpio_in: edges, pull, debounce
it, hal = interp([("gpio_in", {"pin": 12, "edge": "rising", "debounce_ms": 50}), ("counter", {})], [(0, 0, 1)])
p = hal.pin(12)
seq = []
for t, level in ((0, 0), (10, 1), (20, 0), (30, 1), (100, 1), (200, 0), (300, 1)):
    p.drive(level)
    seq.append([t, it.poll(t)])
recs = it.records.take()
OUT["gpio_in"] = {"seq": seq, "outs": [r["nodes"][0]["out"] for r in recs],
                  "counts": [r["nodes"][1]["out"] for r in recs], "trig": recs[0]["trigger"] if recs else None}
it, hal = interp([("gpio_in", {"pin": 13, "pull": "up", "edge": "falling", "debounce_ms": 0})])
hal.pin(13).drive(0)
OUT["gpio_in_pull"] = [it.poll(0), it.records.take()[0]["nodes"][0]["out"]]
OUT["gpio_in_params"] = [refuse(prog([("gpio_in", {"pin": 12, "edge": "up"})])),
                         refuse(prog([("gpio_in", {"pin": 12, "debounce_ms": -1})]))]

# -- adc: scale and offset; pins that can't do ADC
it, hal = interp([("adc", {"pin": 34, "scale": 0.5, "offset": -10})])
hal.set_adc(34, 1000)
OUT["adc"] = it.run_now(now_ms=0)["nodes"][0]["out"]
OUT["adc_params"] = [refuse(prog([("adc", {"pin": 4})])), refuse(prog([("adc", {"pin": 34, "every": 5})]))]

# -- inject: constant, timestamp, boot trigger, polling
it, hal = interp([("inject", {"payload": "hello"})])
OUT["inject_boot"] = [it.start(5), it.records.take()[0]["trigger"], it.poll(10)]
it, hal = interp([("inject", {"every": 1000})])
it.start(0)
OUT["inject_poll"] = [it.poll(0), it.poll(500), it.poll(1000), it.poll(5000), it.poll(5500)]
OUT["inject_ts"] = [r["nodes"][0]["out"] for r in it.records.take()]

# -- switch: every op, between, hysteresis, non-numeric value refused
ops = []
for op, v, v2, x in (("gt", 5, 0, 6), ("gt", 5, 0, 5), ("lt", 5, 0, 4), ("ge", 5, 0, 5), ("le", 5, 0, 6),
                     ("eq", "on", 0, "on"), ("ne", "on", 0, "on"), ("between", 1, 3, 2), ("between", 1, 3, 4)):
    rec, it, hal = run1([("switch", {"op": op, "value": v, "value2": v2})], msg={"value": x})
    ops.append(rec["nodes"][0]["port"])
OUT["switch_ops"] = ops
it, hal = interp([("switch", {"op": "gt", "value": 30, "hysteresis": 2})])
OUT["switch_hyst"] = [to_dict(it.run_from(0, {"value": x}))["nodes"][0]["port"] for x in (29, 31, 29, 27.5, 29, 31)]
OUT["switch_params"] = [refuse(prog([("switch", {"op": "gt", "value": "high"})])),
                        refuse(prog([("switch", {"op": "between", "value": 5, "value2": 1})])),
                        refuse(prog([("switch", {"op": "above"})])),
                        refuse(prog([("switch", {"hysteresis": -1})]))]
rec, it, hal = run1([("switch", {"property": "temperature"})], msg={"value": 1})
OUT["switch_missing"] = [rec["status"], rec["err"], rec["nodes"][0]["err"]]

# -- change: set, scale, offset, round, rename; copies, never changes the input
msg = {"value": 21.456, "unit": "C"}
outs = []
for params in ({"action": "set", "value": 0}, {"action": "scale", "value": 2}, {"action": "offset", "value": -1.5},
               {"action": "round", "value": 1}, {"action": "rename", "to": "temp"},
               {"property": "unit", "action": "set", "value": "F"}):
    rec, it, hal = run1([("change", params)], msg=msg)
    outs.append(it.records.peek()[-1]["nodes"][0]["out"])
OUT["change"] = [outs, msg]
OUT["change_params"] = [refuse(prog([("change", {"action": "scale", "value": "x"})])),
                        refuse(prog([("change", {"action": "rename"})])),
                        refuse(prog([("change", {"action": "round", "value": 9})]))]

# -- deadband: delta, max_silence
it, hal = interp([("deadband", {"delta": 1, "max_silence": 1000})])
OUT["deadband"] = [passed(it, {"value": v}, t)
                   for v, t in ((20, 0), (20.5, 100), (21.1, 200), (21.2, 300), (21.3, 1300))]

# -- debounce: bursts
it, hal = interp([("debounce", {"window_ms": 100})])
OUT["debounce"] = [passed(it, {"value": 1}, t) for t in (0, 50, 120, 300, 350, 460)]

# -- rate_limit: per second windows
it, hal = interp([("rate_limit", {"per_s": 2})])
OUT["rate_limit"] = [passed(it, {"value": 1}, t) for t in (0, 10, 20, 999, 1000, 1001, 1002)]

# -- counter: counts, resets
it, hal = interp([("counter", {"reset_every": 1000})])
OUT["counter"] = [out_of(it, {"value": "x"}, t) for t in (0, 10, 20, 1000, 1001)]

# -- delay: tested with the guardrails (it never blocks)

# -- gpio_out: set, toggle, pulse (timer), follow; output-only pin checks
it, hal = interp([("gpio_out", {"pin": 5, "mode": "toggle"})])
OUT["toggle"] = [(it.run_now(now_ms=0), hal.pin(5).value())[1] for _ in range(3)]
it, hal = interp([("gpio_out", {"pin": 5, "mode": "pulse", "pulse_ms": 200})])
it.run_now(now_ms=1000)
pulse = [hal.pin(5).value(), it.pending()]
it.poll(1100)
pulse.append(hal.pin(5).value())
it.poll(1200)
pulse += [hal.pin(5).value(), it.pending()]
OUT["pulse"] = pulse
it, hal = interp([("gpio_out", {"pin": 5, "mode": "follow"})])
OUT["follow"] = [(it.run_from(0, {"value": v}), hal.pin(5).value())[1] for v in (1, 0, True, 23.5, None)]
OUT["gpio_out_params"] = [refuse(prog([("gpio_out", {"pin": 34})])), refuse(prog([("gpio_out", {"pin": 6})])),
                          refuse(prog([("gpio_out", {"pin": 20})])), refuse(prog([("gpio_out", {"pin": 5, "value": 2})]))]

# -- pwm: freq, duty, per-message duty
it, hal = interp([("pwm", {"pin": 18, "freq": 500, "duty": 1000})])
it.run_from(0, {})
a = [hal.pwms[18].freq(), hal.pwms[18].duty_u16()]
it.run_from(0, {"duty": 40000})
a.append(hal.pwms[18].duty_u16())
it.stop()
a.append(hal.pwms[18].active)
OUT["pwm"] = a
OUT["pwm_params"] = [refuse(prog([("pwm", {"pin": 18, "duty": 70000})])), refuse(prog([("pwm", {"pin": 36})]))]

# -- mqtt_out: topic, qos, retain; topic rules
pub = []
rec, it, hal = run1([("mqtt_out", {"topic": "alerts/temp", "qos": 1, "retain": True})], msg={"value": 31}, pub=pub)
OUT["mqtt_out"] = pub
OUT["mqtt_params"] = [refuse(prog([("mqtt_out", {"topic": "a/#"})])), refuse(prog([("mqtt_out", {"topic": "a/+/b"})])),
                      refuse(prog([("mqtt_out", {"topic": "/a"})])), refuse(prog([("mqtt_out", {"qos": 2})])),
                      refuse(prog([("mqtt_out", {"topic": ""})])), refuse(prog([("mqtt_out", {"retain": 1})]))]

# -- log: levels, {field}, filtered by the device level
rec, it, hal = run1([("log", {"level": "warning", "message": "hot: {value} C ({nope})"}),
                     ("log", {"level": "debug", "message": "hidden"})], [(0, 0, 1)], msg={"value": 31})
OUT["log"] = rec["logs"]

# -- maintenance: set_log_level, toggle_feature, clear_cache (step form: a chain)
it, hal = interp([("set_log_level", {"level": "warning"}), ("toggle_feature", {"name": "debug-overlay", "enabled": False}),
                  ("clear_cache", {}), ("log", {"level": "info", "message": "dropped by level"})],
                 [(0, 0, 1), (1, 0, 2), (2, 0, 3)])
for t in range(3):
    it.run_from(3, {}, t)       # three records buffered
before = len(it.records)
r = it.run_now(now_ms=10)
OUT["maint"] = [before, it.dev.log_level, it.dev.features, r["nodes"][2]["out"], r["logs"], it.records.dropped]
OUT["maint_params"] = [refuse(prog([("toggle_feature", {})])), refuse(prog([("set_log_level", {"level": "loud"})]))]
'''


@pytest.fixture(scope="module")
def out(device):
    return device(BODY)


def test_dht_reads_retries_and_reports_failure_as_data(out):
    d = out["dht"]
    assert d["status"] == ["completed"] * 3
    assert lit(d["outs"][0][0]) == {"value": 23.1, "temperature": 23.1, "humidity": 40.1}
    assert "24.0" in d["outs"][1][0]                     # one timeout, then a good read
    assert d["logs"][1] == [["warning", "n1", "read failed, retry 1/2: timeout (no answer; check wiring and the pull-up)"]]
    assert d["outs"][2][0].startswith("read failed after 3 tries: timeout")  # nothing goes on
    assert [lv for lv, _, _ in d["logs"][2]] == ["warning", "warning", "error"]
    assert "checksum error" in d["logs"][2][1][2]
    assert len(d["pub"]) == 2                            # the failed read published nothing
    assert d["reads"] == 6


def test_dht11_reports_whole_units(out):
    assert lit(out["dht11"]) == {"value": 21, "temperature": 21, "humidity": 45}


def test_failing_dht_fails_no_run_and_counts_no_error(out):
    status, node_out, logs, errors = out["dht_failing"]
    assert status == "completed" and node_out.startswith("read failed after 1 tries: timeout")
    assert logs[-1][0] == "error" and errors == 0


def test_dht_faults_follow_the_set_rate(out):
    fails, faults = out["dht_rate"]
    assert fails == faults
    assert 35 <= fails <= 85                             # 30% of 200, seeded


def test_dht_sine_profile_moves(out):
    vals = out["dht_sine"]
    temps = [lit(v)["temperature"] for v in vals]
    assert temps[0] == 20 and temps[2] == 25.0 and temps[6] == 15.0 and len(set(temps)) >= 4


def test_dht_params(out):
    missing, every, retries, model = out["dht_params"]
    assert "n1.pin" in missing and "required" in missing
    assert "n1.every" in every and "below min 2000" in every
    assert "n1.retries" in retries and "above max 5" in retries
    assert "n1.model" in model and "dht22|dht11" in model


def test_gpio_in_fires_on_debounced_rising_edges(out):
    g = out["gpio_in"]
    # 10: rising -> run; 20: falling within 50 ms -> ignored bounce; 30: level back to
    # the accepted 1, nothing; 200: falling accepted (no run: rising only); 300: rising -> run
    assert g["seq"] == [[0, 0], [10, 1], [20, 0], [30, 0], [100, 0], [200, 0], [300, 1]]
    assert [lit(o) for o in g["outs"]] == [{"value": 1, "pin": 12}] * 2
    assert [lit(c) for c in g["counts"]] == [{"value": 1, "count": 1, "pin": 12}, {"value": 2, "count": 2, "pin": 12}]
    assert g["trig"] == "edge:n1"


def test_gpio_in_pull_up_and_falling_edge(out):
    runs, node_out = out["gpio_in_pull"]
    assert runs == 1 and lit(node_out) == {"value": 0, "pin": 13}


def test_gpio_in_params(out):
    edge, deb = out["gpio_in_params"]
    assert "n1.edge" in edge and "n1.debounce_ms" in deb


def test_adc_scales_the_raw_reading(out):
    assert lit(out["adc"]) == {"value": 490.0, "raw": 1000, "pin": 34}
    no_adc, too_fast = out["adc_params"]
    assert "n1.pin" in no_adc and "can't be used as adc" in no_adc
    assert "n1.every" in too_fast


def test_inject_at_boot_and_by_poll(out):
    assert out["inject_boot"] == [1, "boot:n1", 0]
    assert out["inject_poll"] == [1, 0, 1, 1, 0]
    assert [lit(o) for o in out["inject_ts"]] == [{"value": 0, "ts": 0}, {"value": 1000, "ts": 1000},
                                                  {"value": 5000, "ts": 5000}]


def test_switch_ops(out):
    assert out["switch_ops"] == [0, 1, 0, 0, 1, 0, 1, 0, 1]


def test_switch_hysteresis_holds_until_the_band_is_left(out):
    # > 30 to turn on; stays on down to 28 (30 - 2)
    assert out["switch_hyst"] == [1, 0, 0, 1, 1, 0]


def test_switch_params(out):
    word, between, op, hyst = out["switch_params"]
    assert "n1.value" in word and "number" in word
    assert "n1.value2" in between
    assert "n1.op" in op and "gt|lt|ge|le|eq|ne|between" in op
    assert "n1.hysteresis" in hyst


def test_switch_on_a_missing_field_fails_the_run(out):
    status, err, node_err = out["switch_missing"]
    assert status == "failed" and err.startswith("n1: KeyError") and node_err.startswith("KeyError")


def test_change_actions_copy_the_message(out):
    outs, original = out["change"]
    assert [lit(o) for o in outs] == [{"value": 0, "unit": "C"}, {"value": 42.912, "unit": "C"},
                                      {"value": 19.956, "unit": "C"}, {"value": 21.5, "unit": "C"},
                                      {"unit": "C", "temp": 21.456}, {"value": 21.456, "unit": "F"}]
    assert original == {"value": 21.456, "unit": "C"}


def test_change_params(out):
    scale, rename, rnd = out["change_params"]
    assert "n1.value" in scale and "n1.to" in rename and "n1.value" in rnd


def test_deadband_passes_on_delta_or_after_silence(out):
    assert out["deadband"] == [True, False, True, False, True]


def test_debounce_suppresses_bursts(out):
    assert out["debounce"] == [True, False, False, True, False, True]


def test_rate_limit_per_second(out):
    assert out["rate_limit"] == [True, True, False, False, True, True, False]


def test_counter_counts_and_resets(out):
    assert [lit(o)["count"] for o in out["counter"]] == [1, 2, 3, 1, 2]


def test_gpio_out_toggle_pulse_follow(out):
    assert out["toggle"] == [1, 0, 1]
    # pulse: on at once, a timer pending; still on at +100 ms; off at +200 ms, no timer left
    assert out["pulse"] == [1, 1, 1, 0, 0]
    assert out["follow"] == [1, 0, 1, 1, 0]


def test_gpio_out_pins_checked_against_the_board(out):
    input_only, flash, missing, value = out["gpio_out_params"]
    assert "n1.pin" in input_only and "GPIO 34 can't be used as out" in input_only
    assert "n1.pin" in flash and "reserved" in flash and "SPI flash" in flash
    assert "n1.pin" in missing and "no GPIO 20" in missing
    assert "n1.value" in value


def test_pwm(out):
    assert out["pwm"] == [500, 1000, 40000, False]
    duty, pin = out["pwm_params"]
    assert "n1.duty" in duty and "n1.pin" in pin


def test_mqtt_out_publishes_json(out):
    assert out["mqtt_out"] == [["alerts/temp", {"value": 31}, 1, True]]


def test_mqtt_out_topic_rules(out):
    hash_, plus, slash, qos, empty, retain = out["mqtt_params"]
    for reason in (hash_, plus, slash, empty):
        assert "n1.topic" in reason
    assert "n1.qos" in qos and "n1.retain" in retain


def test_log_fills_fields_and_respects_level(out):
    assert out["log"] == [["warning", "n1", "hot: 31 C ({nope})"]]


def test_maintenance_nodes_act_on_the_device(out):
    before, level, features, cleared, logs, dropped = out["maint"]
    assert before == 3 and level == "warning" and features == {"debug-overlay": False}
    assert lit(cleared) == {"cleared": 3} and logs == [] and dropped == 3
    name, lvl = out["maint_params"]
    assert "n1.name" in name and "n1.level" in lvl
