# The simulated backend (unix-sim board): pins are state a test or the
# fleet simulator reads and drives; a DHT22 follows a script or a profile
# and fails at a set rate the way the real one does.
#
# sim_config (all optional):
#   {"dht": {"4": {"profile": "steady|sine|noisy|failing", "base": 21.5,
#                  "amp": 5, "period": 20, "humidity": 45,
#                  "fault_rate": 0.1, "seed": 1, "read_ms": 5,
#                  "script": [[23.1, 40.0], "timeout", "checksum", ["garbage", 40], ...]}},
#    "adc": {"34": 1234},  "pins": {"5": 1},
#    "wdt_ms": 3000}       # the watchdog's timeout, instead of the board file's
# The reset cause is what the simulator says it was (FF_RESET: it powers the
# device up again after the watchdog ended it, tools/simdevice.py).
# A script is played in order, then its last step repeats. The ADC/PWM and
# DHT parts live in sim_io.py and sim_dht.py, imported when first used.
import machine
import os
import time

_EIO = 5


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
    # os._exit or kill. tools/simdevice.py powers the device up again with
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
        while True:
            time.sleep_ms(self.wdt_ms >> 3)
            late = time.ticks_diff(time.ticks_ms(), self.fed)
            if late > self.wdt_ms:
                print("wdt: not fed for %d ms: reset" % late)
                os.system("kill -s USR1 $PPID")

    def reset_cause(self):
        return os.getenv("FF_RESET") or "power"
