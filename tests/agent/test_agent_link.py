"""A dead broker can't hang the device: socket timeouts, then capped backoff with jitter."""

from __future__ import annotations

import socket
import threading
import time

from agent_flows import DEV, KEY
from tools.simdevice import SimDevice


class Blackhole:
    """Accepts TCP connections and never answers (a broker that hangs)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self.conns = []
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(time.monotonic())
            self.conns.append(c)

    def close(self):
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


def test_dead_broker_times_out_and_retries_with_capped_backoff(tmp_path):
    hole = Blackhole()
    dev = SimDevice(tmp_path, DEV, KEY, "127.0.0.1", hole.port, "pw",
                    settings={"socket_timeout_s": 0.5, "backoff_min_ms": 100, "backoff_max_ms": 400})
    try:
        dev.start()
        deadline = time.monotonic() + 15
        while len(hole.accepted) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dev.running, dev.log()
        # It gave up on each silent broker after the 0.5 s timeout and came back.
        assert len(hole.accepted) >= 5, f"only {len(hole.accepted)} connects; log:\n{dev.log()}"
        gaps = [b - a for a, b in zip(hole.accepted, hole.accepted[1:])]
        # each gap = 0.5 s timeout + backoff (capped at 400 ms + 25 % jitter)
        assert all(0.45 < g < 0.5 + 0.5 + 0.4 for g in gaps), gaps
    finally:
        dev.kill()
        hole.close()
