# The simulated backend (unix-sim board): pins are state a test or the
# fleet simulator reads and drives; a DHT22 follows a script or a profile
# and fails at a set rate the way the real one does.
#
# sim_config (all optional):
#   {"dht": {"4": {"profile": "steady|sine|noisy|failing", "base": 21.5,
#                  "amp": 5, "period": 20, "humidity": 45,
#                  "fault_rate": 0.1, "seed": 1, "read_ms": 5,
#                  "script": [[23.1, 40.0], "timeout", "checksum", ["garbage", 40], ...]}},
#    "adc": {"34": 1234 or [1234, 2000, ...]},  "pins": {"5": 1},
#    "wdt_ms": 3000,       # the watchdog's timeout, instead of the board file's
#    "wifi": {...}, "clock": {...}}   # Wi-Fi and NTP faults: SimWLAN below
# The reset cause is what the simulator says it was (FF_RESET: it powers the
# device up again after the watchdog ended it, tools/sim/simdevice.py).
# A script is played in order, then its last step repeats. The ADC/PWM and
# DHT parts live in sim_io.py and sim_dht.py, imported when first used.
import machine
import os
import time

_EIO = 5
_ETIMEDOUT = 110
_T0 = time.ticks_ms()  # power-up


class SimPin(machine.PinBase):
    """A GPIO as plain state: value() reads it, drive() sets an input.

    fail_writes = k makes the next k writes raise OSError(EIO), the way a
    flaky driver or I/O expander does (fault injection for tests)."""

    def __init__(self, n, mode, level=0):
        self.n = n
        self.mode = mode
        self.level = level
        self.writes = 0
        self.fail_writes = 0

    def value(self, v=None):
        if v is None:
            return self.level
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError(_EIO)
        self.level = 1 if v else 0
        self.writes += 1

    def drive(self, level):
        self.level = 1 if level else 0


class SimHal:
    def __init__(self, sim_config=None):
        cfg = sim_config or {}
        self.cfg = cfg
        self.pins = {}
        self.adcs = {}
        self.pwms = {}
        self.dhts = {}

    def pin(self, n):
        """The simulated pin n (made on first use), to read or drive()."""
        p = self.pins.get(n)
        if p is None:
            p = SimPin(n, "in", (self.cfg.get("pins") or {}).get(str(n), 0))
            self.pins[n] = p
        return p

    def pin_in(self, n, pull="none"):
        p = self.pin(n)
        p.mode = "in"
        if pull == "up" and str(n) not in (self.cfg.get("pins") or {}):
            p.level = 1
        return p

    def pin_out(self, n):
        p = self.pin(n)
        p.mode = "out"
        return p

    def adc(self, n):
        a = self.adcs.get(n)
        if a is None:
            from fleetflow.hal.sim_io import SimADC
            a = SimADC((self.cfg.get("adc") or {}).get(str(n), 0))
            self.adcs[n] = a
        return a

    def set_adc(self, n, raw):
        self.adc(n).raw = raw

    def pwm(self, n, freq, duty_u16):
        from fleetflow.hal.sim_io import SimPWM
        p = SimPWM(n, freq, duty_u16)
        self.pwms[n] = p
        return p

    def dht(self, n, model="dht22"):
        d = self.dhts.get(n)
        if d is None:
            from fleetflow.hal.sim_dht import SimDHT
            kw = (self.cfg.get("dht") or {}).get(str(n)) or {}
            d = SimDHT(model, **kw)
            self.dhts[n] = d
        return d

    # The simulated machine.WDT: armed once, never stopped; if feed() is not
    # called for its timeout the device resets, whatever the loop is stuck
    # in (a Python loop, a blocking call, a driver that never answers). A
    # board's WDT is hardware beside the CPU; here it is a thread beside the
    # loop, and the reset is the process ending by SIGUSR1 -- a way out no
    # other end of the simulated device takes (a clean stop exits 0, a power
    # cut is SIGKILL) -- sent by a shell, since the unix port has no
    # os._exit or kill. tools/sim/simdevice.py powers the device up again with
    # reset cause "watchdog". (Methods of the HAL, not a module or a class
    # of its own: ~500 B less heap on the unix port.)
    def watchdog(self, timeout_ms):
        import _thread
        self.wdt_ms = self.cfg.get("wdt_ms") or timeout_ms
        self.feed()
        _thread.start_new_thread(self._wdt, ())
        return self

    def feed(self):
        self.fed = time.ticks_ms()

    def _wdt(self):
        # time.sleep, not sleep_ms: the unix port's sleep_ms waits in 1 ms
        # slices (about 2 % of a core for a thread that checks once a
        # second; fleetflow bench fleet), sleep blocks in one system call
        s = self.wdt_ms / 8000
        while True:
            time.sleep(s)
            late = time.ticks_diff(time.ticks_ms(), self.fed)
            if late > self.wdt_ms:
                print("wdt: not fed for %d ms: reset" % late)
                os.system("kill -s USR1 $PPID")

    def wlan(self):
        return SimWLAN(self.cfg.get("wifi") or {})

    def ntp(self):
        # NTP, as the "clock" fault says (below)
        n = (self.cfg.get("clock") or {}).get("ntp_fail_s", 0)
        if n < 0 or time.ticks_diff(time.ticks_ms(), _T0) < n * 1000:
            raise OSError(_ETIMEDOUT)  # as ntptime's socket times out

    def reset_cause(self):
        return os.getenv("FF_RESET") or "power"


# The simulated board's network: a Wi-Fi station interface with
# the calls of network.WLAN the agent uses, and NTP. The unix port is on the
# host's network and clock, so what these emulate is how they fail:
#   "wifi": {"down_file": PATH, "rssi": -61, "assoc_ms": 300}
#     the access point is out of reach while PATH exists (tools/sim/netfault.py's
#     FlakyLink makes it during a net_drop outage, when it cuts the TCP path
#     to the broker too); the station then loses its association and gets
#     it back only through connect(), assoc_ms later (association and DHCP),
#     as a board does; at power-up it is not associated
#   "clock": {"ntp_fail_s": N}
#     NTP answers nothing for the first N s after boot (-1: never): the
#     device starts with a clock it can't trust
class SimWLAN:
    def __init__(self, cfg):
        self.down_file = cfg.get("down_file")
        self.cfg = cfg
        self.up = False
        self.assoc_at = None

    def isconnected(self):
        try:
            if self.down_file:
                os.stat(self.down_file)  # there: the access point is out of reach
                self.up = False
                self.assoc_at = None
                return False
        except OSError:
            pass
        if self.assoc_at is not None and time.ticks_diff(time.ticks_ms(), self.assoc_at) >= 0:
            self.up = True
            self.assoc_at = None
        return self.up

    def connect(self, ssid=None, key=None):
        self.up = False
        self.assoc_at = time.ticks_add(time.ticks_ms(), self.cfg.get("assoc_ms", 300))

    def status(self, what=None):
        return self.cfg.get("rssi", -61)
