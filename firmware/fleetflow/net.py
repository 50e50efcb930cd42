# The network from the Wi-Fi interface up, minded from the agent's loop
# (docs/device-protocol.md "Wi-Fi and time"). Rules:
#  1. up(now) runs every step. Wi-Fi down: the agent drops the MQTT link at
#     once (its socket would take 1.5 keepalives to notice) and tries no
#     broker; flows run on and their records wait in the bounded buffer.
#  2. While down, connect() is called again with capped exponential backoff
#     and +-25% jitter (fleetflow.link.backoff_ms), the second try
#     _WIFI_MIN_MS on at least: an association takes seconds, and a new
#     connect() would start it over. Each return after a loss is counted
#     (`wifi_reconnects` in health; the first connect at boot is none).
#  3. Once Wi-Fi is up the clock is set by NTP (hal.ntp: ntptime on a board,
#     one blocking try of at most ntptime's 1 s timeout, within the loop's
#     1 s budget), then daily; a failed try is retried with the backoff. A
#     clock once set stays `synced` through a failed daily try.
#  4. With TLS the broker is not tried before the clock is set: mbedtls
#     checks the certificate's dates against it, and a board starts in 2000.
#     The log says so at each failed NTP try; `why` is the link's reason.
import time
from micropython import const
from fleetflow.link import backoff_ms

_DAY_MS = const(86400000)
_WIFI_MIN_MS = const(4000)
_EPOCH_2000 = const(946684800)  # 2000-01-01 in Unix time: where a board's clock may count from


class Net:
    def __init__(self, hal, cfg):
        self.hal = hal
        self.cfg = cfg
        self.w = hal.wlan()
        self.tls = bool(cfg["mqtt"].get("ca"))  # before the link takes the CA
        self.on = False
        self.reconnects = -1
        self.tries = 0         # Wi-Fi connects since it was last up
        self.wifi_at = 0
        self.synced = False
        self.ntp_tries = 0
        self.ntp_at = 0
        self.why = None

    def up(self, now):
        """True when the broker may be tried (rules 1-4)."""
        w = self.w
        cfg = self.cfg
        if not w.isconnected():
            if self.on:
                self.on = False
                print("net: wifi down")
            if time.ticks_diff(now, self.wifi_at) >= 0:
                self.tries += 1
                wc = cfg.get("wifi") or {}
                try:
                    w.connect(wc.get("ssid", ""), wc.get("password", ""))
                except OSError as e:  # e.g. a connect already under way (ESP32)
                    print("net: wifi:", e)
                self.wifi_at = time.ticks_add(now, backoff_ms(max(_WIFI_MIN_MS, cfg["backoff_min_ms"]),
                                                              cfg["backoff_max_ms"], self.tries - 1))
            self.why = "wifi down"
            return False
        if not self.on:
            self.on = True
            self.tries = 0
            self.reconnects += 1
            print("net: wifi up")
        if time.ticks_diff(now, self.ntp_at) >= 0:
            # the next try is set first: whatever ntp() raises, it is not
            # tried again at every step
            self.ntp_tries += 1
            self.ntp_at = time.ticks_add(now, backoff_ms(cfg["backoff_min_ms"], cfg["backoff_max_ms"],
                                                         self.ntp_tries))
            try:
                self.hal.ntp()
                self.synced = True
                self.ntp_tries = 0
                self.ntp_at = time.ticks_add(now, _DAY_MS)
            except (OSError, ImportError) as e:  # no answer, no DNS, no ntptime module
                print("net: ntp:", e, "(TLS waits)" if self.tls and not self.synced else "")
        if self.tls and not self.synced:
            self.why = "no NTP time: TLS waits"
            return False
        return True

    def time(self):
        """Unix time in seconds, or None while the clock was never synced."""
        if not self.synced:
            return None
        t = int(time.time())
        return t + _EPOCH_2000 if time.gmtime(0)[0] == 2000 else t

    def report(self, d):
        """d with the clock and Wi-Fi fields of status and health."""
        d["synced"] = self.synced
        d["time"] = self.time()
        d["wifi_reconnects"] = max(0, self.reconnects)
        d["rssi"] = None
        if self.on:
            try:
                d["rssi"] = self.w.status("rssi")
            except OSError:  # lost since the last step
                pass
        return d

    def stamp(self, now):
        """The clock fields of a runs message: records' t_ms are ticks; with
        `time` and this `t_ms` the cloud dates them (null: not synced)."""
        t = self.time()
        return '"synced":%s,"time":%s,"t_ms":%d,' % ("true" if self.synced else "false",
                                                     "null" if t is None else t, now)
