"""The HAL: the simulated backend nodes can't tell from the real one, and
the real backend importing nothing the unix port lacks. Under MicroPython."""

import pytest

BODY = r'''
import sys
import machine
from fleetflow.hal import get_hal
from fleetflow.hal.sim_dht import SimDHT

hal = get_hal("unix-sim", {"pins": {"12": 1}, "adc": {"34": 4095}})
pin = hal.pin_in(12, "none")
out = hal.pin_out(5)
out.value(1)
hal.pin(13)
OUT["pins"] = [isinstance(pin, machine.PinBase), pin.value(), out.value(), hal.pin(5).writes,
               hal.pin_in(14, "up").value(), hal.pin_in(15, "down").value(), hal.adc(34).read_u16()]
# a simulated pin works wherever MicroPython takes a pin, e.g. machine.Signal
sig = machine.Signal(hal.pin_out(2), invert=True)
sig.on()
OUT["signal"] = hal.pin(2).value()

def reads(d, n):
    got = []
    for _ in range(n):
        try:
            d.measure()
            got.append([d.temperature(), d.humidity()])
        except OSError as e:
            got.append("OSError %d" % e.args[0])
        except Exception as e:
            got.append(str(e))
    return got

OUT["script"] = reads(SimDHT(script=[[20.04, 50.0], "timeout", "checksum", [21.0, 51.0]]), 5)
OUT["steady"] = reads(SimDHT(), 2)
OUT["noisy_same_seed"] = reads(SimDHT(profile="noisy", seed=3), 5) == reads(SimDHT(profile="noisy", seed=3), 5)
d = SimDHT(fault_rate=0.5, seed=11)
r = reads(d, 400)
OUT["faults"] = [d.faults, sum(1 for x in r if x == "OSError 110"), sum(1 for x in r if x == "checksum error")]

# the simulated Wi-Fi station: not associated at power-up, up assoc_ms after
# connect(), down while its down_file exists, and back only by connect()
import os, time
down = "/tmp/ff_hal_wifi_%d" % time.ticks_us()
w = get_hal("unix-sim", {"wifi": {"down_file": down, "assoc_ms": 50, "rssi": -70}}).wlan()
seen = [w.isconnected()]
w.connect("ssid", "key")
seen.append(w.isconnected())
time.sleep_ms(80)
seen += [w.isconnected(), w.status("rssi")]
open(down, "w").close()
seen.append(w.isconnected())
os.remove(down)
seen.append(w.isconnected())
w.connect("ssid", "key")
time.sleep_ms(80)
seen.append(w.isconnected())
OUT["wifi"] = seen

def ntp(cfg):
    try:
        get_hal("unix-sim", cfg).ntp()
        return "ok"
    except OSError as e:
        return e.errno
OUT["ntp"] = [ntp({}), ntp({"clock": {"ntp_fail_s": -1}}), ntp({"clock": {"ntp_fail_s": 60}}),
              ntp({"clock": {"ntp_fail_s": 0}})]

# the real backend: importing it needs neither machine.Pin nor dht
real = get_hal("esp32-devkitc")
OUT["real"] = [type(real).__name__, "dht" in sys.modules]
try:
    real.pin_out(5)
except Exception as e:
    OUT["real_call"] = type(e).__name__
'''


@pytest.fixture(scope="module")
def out(device):
    return device(BODY)


def test_sim_pins_are_machine_pins_a_test_drives(out):
    assert out["pins"] == [True, 1, 1, 1, 1, 0, 4095]
    assert out["signal"] == 0


def test_sim_dht_follows_its_script_and_fails_like_the_sensor(out):
    assert out["script"] == [[20.0, 50.0], "OSError 110", "checksum error", [21.0, 51.0], [21.0, 51.0]]
    assert out["steady"] == [[21.5, 45], [21.5, 45]]
    assert out["noisy_same_seed"] is True


def test_sim_dht_fault_rate_mixes_timeouts_and_checksum_errors(out):
    faults, timeouts, checksums = out["faults"]
    assert faults == timeouts + checksums
    assert 140 <= faults <= 260 and timeouts > 40 and checksums > 40


def test_sim_wifi_drops_with_its_access_point_and_comes_back_only_by_connect(out):
    assert out["wifi"] == [False, False, True, -70, False, False, True]


def test_sim_ntp_fails_as_the_clock_fault_says(out):
    assert out["ntp"] == ["ok", 110, 110, "ok"]


def test_real_backend_imports_lazily(out):
    assert out["real"] == ["RealHal", False]
    assert out["real_call"] == "ImportError"     # the unix port has no machine.Pin: only when used
