# Wi-Fi up from config.json before the agent starts; never raises.
def _wifi():
    try:
        import json
        import network
        import time
        with open("config.json") as f:
            w = json.load(f).get("wifi") or {}
        if not w.get("ssid"):
            return
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        if not sta.isconnected():
            sta.connect(w["ssid"], w.get("password", ""))
            for _ in range(100):  # up to 10 s, then let the agent carry on
                if sta.isconnected():
                    break
                time.sleep_ms(100)
    except Exception as e:  # no network module (unix port), no config
        print("boot: wifi:", e)


_wifi()
