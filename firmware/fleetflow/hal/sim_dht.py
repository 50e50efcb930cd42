# A simulated DHT22/DHT11 (see fleetflow/hal/sim.py): readings from a script
# or a profile (steady, sine, noisy, failing), faults at a set rate raised
# the way the real driver raises them: OSError(ETIMEDOUT) when the sensor
# doesn't answer, Exception("checksum error") for a corrupted frame.
import math

_ETIMEDOUT = 110


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
