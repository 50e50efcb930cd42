# The simulated backend (unix-sim board): pins are state a test or the
# fleet simulator reads and drives; a DHT22 follows a script or a profile
# and fails at a set rate the way the real one does.
#
# sim_config (all optional):
#   {"dht": {"4": {"profile": "steady|sine|noisy|failing", "base": 21.5,
#                  "amp": 5, "period": 20, "humidity": 45,
#                  "fault_rate": 0.1, "seed": 1, "read_ms": 5,
#                  "script": [[23.1, 40.0], "timeout", "checksum", ["garbage", 40], ...]}},
#    "adc": {"34": 1234},  "pins": {"5": 1}}
# A script is played in order, then its last step repeats.
import machine
import math

_ETIMEDOUT = 110
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


class SimADC:
    def __init__(self, raw=0):
        self.raw = raw

    def read_u16(self):
        return self.raw


class SimPWM:
    def __init__(self, n, freq, duty):
        self.n = n
        self._freq = freq
        self._duty = duty
        self.active = True

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d

    def deinit(self):
        self.active = False


class SimDHT:
    def __init__(self, model="dht22", profile="steady", base=21.5, amp=5, period=20,
                 humidity=45, fault_rate=0.0, seed=1, script=None, read_ms=0):
        self.model = model
        self.profile = profile
        self.base = base
        self.amp = amp
        self.period = period or 20
        self.hum = humidity
        self.fault_rate = fault_rate
        self.script = script
        self.read_ms = read_ms      # how long a read holds the CPU (a real one: ~5 ms)
        self._seed = (seed or 1) & 0x7fffffff
        self.reads = 0
        self.faults = 0
        self._t = None
        self._h = None

    def _rand(self):
        # LCG: deterministic per seed, independent of the random module
        self._seed = (self._seed * 1103515245 + 12345) & 0x7fffffff
        return self._seed / 0x7fffffff

    def _fail(self, kind):
        self.faults += 1
        if kind == "checksum":
            raise Exception("checksum error")
        raise OSError(_ETIMEDOUT)

    def measure(self):
        n = self.reads
        self.reads += 1
        if self.read_ms:
            import time
            time.sleep_ms(self.read_ms)
        if self.script:
            step = self.script[min(n, len(self.script) - 1)]
            if type(step) is str:
                self._fail(step)
            t, h = step[0], step[1]
            if type(t) is str:
                # a driver handing over garbage (fleet "crash" fault): the
                # nodes that use the reading raise on it, every run
                self._t, self._h = t, h
                return
        else:
            if self.profile == "failing":
                self._fail("timeout")
            if self.fault_rate and self._rand() < self.fault_rate:
                self._fail("timeout" if self._rand() < 0.5 else "checksum")
            t = self.base
            h = self.hum
            if self.profile == "sine":
                t = self.base + self.amp * math.sin(2 * math.pi * n / self.period)
            elif self.profile == "noisy":
                t = self.base + (self._rand() - 0.5) * self.amp
                h = self.hum + (self._rand() - 0.5) * self.amp
        if self.model == "dht11":
            self._t, self._h = int(t), int(h)     # the DHT11 reports whole units
        else:
            self._t, self._h = round(t, 1), round(h, 1)

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h


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
            a = SimADC((self.cfg.get("adc") or {}).get(str(n), 0))
            self.adcs[n] = a
        return a

    def set_adc(self, n, raw):
        self.adc(n).raw = raw

    def pwm(self, n, freq, duty_u16):
        p = SimPWM(n, freq, duty_u16)
        self.pwms[n] = p
        return p

    def dht(self, n, model="dht22"):
        d = self.dhts.get(n)
        if d is None:
            kw = (self.cfg.get("dht") or {}).get(str(n)) or {}
            d = SimDHT(model, **kw)
            self.dhts[n] = d
        return d
