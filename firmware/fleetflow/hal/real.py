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
