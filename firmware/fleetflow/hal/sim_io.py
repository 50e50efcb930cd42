# Simulated ADC and PWM (see fleetflow/hal/sim.py).


class SimADC:
    # raw: a value, or a script of values played in order (then the last repeats)
    def __init__(self, raw=0):
        self.raw = raw
        self.reads = 0

    def read_u16(self):
        raw = self.raw
        if type(raw) is list:
            n = self.reads
            self.reads = n + 1
            return raw[min(n, len(raw) - 1)] if raw else 0
        return raw


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
