# Board I/O behind one small interface, with two backends nodes can't tell
# apart: real (machine.Pin / ADC / PWM, dht) and simulated (unix-sim).
#
#   hal.pin_in(n, pull)        -> object with value()          pull: up|down|none
#   hal.pin_out(n)             -> object with value([v])
#   hal.adc(n)                 -> object with read_u16()
#   hal.pwm(n, freq, duty_u16) -> object with freq([f]), duty_u16([d]), deinit()
#   hal.dht(n, model)          -> object with measure(), temperature(), humidity()
#   hal.watchdog(timeout_ms)   -> an armed watchdog, with feed()
#   hal.wlan()                 -> the Wi-Fi station: isconnected(), connect(ssid, key), status("rssi")
#   hal.ntp()                  -> sets the clock by NTP, once; OSError when no answer
#   hal.reset_cause()          -> why the device last started: power|watchdog|hard|soft|deepsleep
# Failures look like the hardware's: a DHT that doesn't answer raises
# OSError(ETIMEDOUT), a corrupted frame Exception("checksum error").


def get_hal(board_name, sim_config=None):
    if board_name == "unix-sim" or sim_config is not None:
        from fleetflow.hal.sim import SimHal
        return SimHal(sim_config)
    from fleetflow.hal.real import RealHal
    return RealHal(board_name)
