"""paho-mqtt's socket I/O, read and written in bulk (for the bridge and the
rollout bench's simulated fleet: the clients that carry a whole fleet).

paho reads a packet's header a byte per `recv` and writes each packet with
its own `send`: over TLS that is one SSL call, and on the way out one TLS
record and one system call, per PUBACK. At a 100,000-device rollout (a
command out and three acks in per device, each with its PUBACK) that was the
biggest share of the cloud's CPU (docs/BENCHMARKS.md). Here:

- reads come from a buffer filled 64 KB at a time (`pending()` counts it, so
  aiomqtt's reader keeps going while whole packets wait in it);
- the packets queued by the time paho writes (at most WRITE_DELAY_S after
  the first: a batch of commands, the PUBACKs of a burst of messages) go
  out in one `send`; what the socket doesn't take now waits in order, and paho is told
  there is more to write (`want_write`) so the loop calls back when it can.

`batched(client)` switches an aiomqtt client's paho client to this before
it connects. Nothing else in paho changes: the packets, their order, the
acks and the in-flight window are paho's own.
"""

from __future__ import annotations

import asyncio
import ssl

import paho.mqtt.client as paho

READ_SIZE = 65536
WRITE_DELAY_S = 0.002  # packets queued within this go out in one write pass (batched)
RETRY_LATER = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class BufferedSocket:
    """paho's socket (plain or TLS), read in big pieces and written a batch at a time."""

    def __init__(self, sock):
        self.sock = sock
        self._in = b""
        self._at = 0
        self._out = bytearray()  # bytes paho was told are sent, not yet taken by the socket
        self.corked = False

    # -- what paho and aiomqtt call --

    def recv(self, n: int) -> bytes:
        if self._at >= len(self._in):
            data = self.sock.recv(max(n, READ_SIZE))  # raises as the socket would (nothing there yet)
            if not data:
                return data  # the peer closed
            self._in, self._at = data, 0
        piece = self._in[self._at:self._at + n]
        self._at += len(piece)
        return piece

    def pending(self) -> int:
        """Bytes that can be read without waiting for the socket."""
        inner = self.sock.pending() if hasattr(self.sock, "pending") else 0
        return len(self._in) - self._at + inner

    def send(self, data) -> int:
        if self.corked or self._out:
            self._out += data  # after what waits, in order
            if not self.corked:
                self.flush()
            return len(data)
        return self.sock.send(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def settimeout(self, value) -> None:
        self.sock.settimeout(value)

    def close(self) -> None:
        if self._out:  # a DISCONNECT written last: one try, the link is going anyway
            try:
                self.flush()
            except OSError:
                pass
        self.sock.close()

    def __getattr__(self, name):  # anything else paho may ask of a socket
        return getattr(self.sock, name)

    # -- the batching --

    @property
    def unsent(self) -> int:
        return len(self._out)

    def flush(self) -> None:
        """Hand the socket what waits, as much as it takes now (OSError: the link is lost)."""
        while self._out:
            try:
                n = self.sock.send(self._out)
            except RETRY_LATER:
                return
            del self._out[:n]


class BatchedClient(paho.Client):
    """paho's client with a BufferedSocket, flushed once per write pass."""

    def _create_socket(self):
        return BufferedSocket(super()._create_socket())

    def want_write(self) -> bool:
        sock = self._sock
        return super().want_write() or (isinstance(sock, BufferedSocket) and sock.unsent > 0)

    def _update_inflight(self) -> paho.MQTTErrorCode:
        # On every PUBACK paho walks all messages out for one still queued
        # behind the in-flight window; when every one is in flight (the
        # count says so: paho keeps only QoS > 0 messages there, and counts
        # those not queued) there is none to find.
        if len(self._out_messages) <= self._inflight_messages:
            return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._update_inflight()

    def _handle_on_message(self, message) -> None:
        # paho matches every message against the per-topic callbacks
        # (message_callback_add) even when there are none: a generator and a
        # walk of the empty tree per message. With none, straight to on_message.
        if self._on_message_filtered._root._children:  # noqa: SLF001
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise

    def _packet_write(self) -> paho.MQTTErrorCode:
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return super()._packet_write()
        sock.corked = True
        try:
            rc = super()._packet_write()
        finally:
            sock.corked = False
        if self._sock is sock:  # not closed by a DISCONNECT meanwhile
            try:
                sock.flush()
            except OSError as err:
                self._easy_log(paho.MQTT_LOG_ERR, "failed to send on socket: %s", err)
                return paho.MQTTErrorCode.MQTT_ERR_CONN_LOST
        return rc


def batched(client, write_delay_s: float = WRITE_DELAY_S):
    """Give an aiomqtt.Client (not yet connected) the batched socket I/O; returns it.

    A write pass starts `write_delay_s` after the first packet queued since
    the last one (aiomqtt would start it on the loop's next turn, which at
    thousands of messages a second is a pass, a TLS record and a system
    call for every packet or two): what is queued meanwhile goes out with
    it. Nothing waits longer than that for the socket."""
    inner = client._client  # noqa: SLF001 - aiomqtt's paho client (aiomqtt 2.x)
    if type(inner) is not paho.Client:
        raise TypeError(f"expected aiomqtt to wrap a paho.mqtt.client.Client, got {type(inner).__name__}")
    inner.__class__ = BatchedClient
    register = inner.on_socket_register_write  # aiomqtt's: adds the socket's writer to its loop
    loop = client._loop  # noqa: SLF001

    def register_later(c, userdata, sock):
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if not here or write_delay_s <= 0:  # paho connects on an executor thread: as aiomqtt would
            register(c, userdata, sock)
            return

        def now():
            if c._sock is sock and sock.fileno() >= 0:  # noqa: SLF001 - not closed meanwhile
                register(c, userdata, sock)
        loop.call_later(write_delay_s, now)
    inner.on_socket_register_write = register_later
    return client
