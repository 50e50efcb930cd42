# The real backend: machine.Pin / ADC / PWM and the dht driver, for ESP32
# and RP2040. `machine` and `dht` are imported lazily, inside the calls, so
# importing this module never needs them (the unix port has neither).


class RealHal:
    def __init__(self, board_name):
        self.board = board_name

    def pin_in(self, n, pull="none"):
        from machine import Pin
        p = {"up": Pin.PULL_UP, "down": Pin.PULL_DOWN}.get(pull)
        return Pin(n, Pin.IN, p) if p is not None else Pin(n, Pin.IN)

    def pin_out(self, n):
        from machine import Pin
        return Pin(n, Pin.OUT, value=0)

    def adc(self, n):
        from machine import ADC, Pin
        a = ADC(Pin(n))
        # ESP32: full 0..3.3 V range needs 11 dB attenuation (RP2040 has none)
        if hasattr(a, "atten") and hasattr(ADC, "ATTN_11DB"):
            a.atten(ADC.ATTN_11DB)
        return a

    def pwm(self, n, freq, duty_u16):
        from machine import PWM, Pin
        return PWM(Pin(n), freq=freq, duty_u16=duty_u16)

    def dht(self, n, model="dht22"):
        import dht
        from machine import Pin
        cls = dht.DHT11 if model == "dht11" else dht.DHT22
        return cls(Pin(n))

    def watchdog(self, timeout_ms):
        # Fed by the agent's loop only, never from a timer or an interrupt:
        # those go on running in a hung loop, and the board would never reset.
        from machine import WDT
        return WDT(timeout=timeout_ms)

    def wlan(self):
        # the station interface; fleetflow.net connects it and keeps it up
        import network
        w = network.WLAN(network.STA_IF)
        w.active(True)
        return w

    def ntp(self):
        # one try, blocking at most ntptime.timeout (1 s); sets the RTC in UTC
        import ntptime
        ntptime.settime()

    def reset_cause(self):
        # machine.PWRON_RESET .. SOFT_RESET are 1..5 on the ESP32 and RP2 ports
        import machine
        c = machine.reset_cause()
        return ("power", "hard", "watchdog", "deepsleep", "soft")[c - 1] if 0 < c < 6 else str(c)
