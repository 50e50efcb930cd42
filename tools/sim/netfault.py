"""A dropped network, on purpose: a TCP relay between a simulated device and the
broker that goes down for `down_s` every `up_s` seconds.

The device is configured with the relay's port instead of the broker's. While
the link is down, open connections are cut (the device sees its socket die,
the broker sees the client vanish and publishes its last will) and new ones
are refused, exactly what a Wi-Fi drop looks like from both ends. With
`down_file`, the file exists while the link is down: the simulated board's
Wi-Fi interface (firmware/fleetflow/hal/sim.py SimWLAN) reads it, so the
device sees its access point gone, as a board does, and must connect again.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path


class FlakyLink:
    def __init__(self, target_host: str, target_port: int, up_s: float = 20, down_s: float = 6,
                 down_file: Path | str | None = None):
        self.target = (target_host, target_port)
        self.down_file = Path(down_file) if down_file else None
        self.up_s, self.down_s = up_s, down_s
        self.host = "127.0.0.1"
        self.port = 0
        self.up = True
        self.drops = 0
        self._server: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "FlakyLink":
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((self.host, 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        for fn in (self._accept, self._schedule):
            t = threading.Thread(target=fn, daemon=True, name=f"flakylink-{self.port}")
            t.start()
            self._threads.append(t)
        return self

    def _schedule(self) -> None:
        while not self._stop.wait(self.up_s):
            self.drop()
            if self._stop.wait(self.down_s):
                break
            self.restore()

    def drop(self) -> None:
        """The network goes down now: cut every connection."""
        self.up = False
        self.drops += 1
        if self.down_file:
            self.down_file.touch()
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            _close(c)

    def restore(self) -> None:
        """The network is back."""
        self.up = True
        if self.down_file:
            self.down_file.unlink(missing_ok=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not self.up:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
            _close(src)
            _close(dst)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            _close(self._server)
        self.drop()
        if self.down_file:
            self.down_file.unlink(missing_ok=True)
        for t in self._threads:
            t.join(timeout=2)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass

