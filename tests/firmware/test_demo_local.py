"""`fleetflow demo --local`: the example flow compiled by shared_schema and
run on the simulated board under MicroPython tells its story."""

from tools.sim.demo_local import run_local_demo


def test_local_demo_tells_the_story():
    lines: list[str] = []
    assert run_local_demo(None, out=lines.append) == 0
    text = "\n".join(lines)
    assert "device: program loaded, 6 nodes" in text
    assert "31.2 °C" in text and "above 30 → relay ON, alert" in text
    assert "mqtt_out → ff/<dev>/out/alert qos=1" in text
    assert "sensor failed (read failed after 3 tries: timeout" in text
    assert "log error   n1: read failed after 3 tries" in text
    assert "Exception: checksum error" in text
    assert "exec exec-1" in text and "above 20 → relay ON" in text
    assert "done: 11 runs, 0 failed" in text
    # per-node timings and routing on every run line (the failed read stops at n1)
    assert text.count("n2 switch") == 10 and "→ port 0" in text and "→ port 1" in text
