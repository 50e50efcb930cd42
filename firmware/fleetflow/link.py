# The MQTT link: umqtt.simple plus what a device in the field needs
# (the behaviour of peterhinch's mqtt_as, in a few lines):
#  - every socket read and write has a timeout, so a dead broker can't hang
#    the device (umqtt.simple blocks on reads and on QoS 1 publishes);
#  - OSError (or any protocol surprise) is the one "the link broke" signal:
#    the link drops the socket and reconnects later with capped exponential
#    backoff and jitter, while the caller's flows keep running;
#  - a last will marks ff/<dev>/status offline (retained);
#  - a ping goes out within the keepalive;
#  - incoming messages are only queued in the callback: nothing is published
#    from inside it (a QoS 1 publish there would re-enter wait_msg);
#  - between loop steps the device sleeps in wait(): select.poll on the
#    socket, so a message from the broker wakes it at once;
#  - poll() reads one message at a time, and the agent holds its publishes
#    while more wait (incoming()): a QoS 1 publish reads everything before
#    its PUBACK, and a burst (a program's chunks) would be in the heap at once;
#  - a message bigger than the board's `msg_max_bytes` (or than the heap can
#    hold) is never allocated: read off the socket in small pieces, dropped,
#    acked all the same, and queued as (reason, first bytes, last bytes) for
#    the agent to answer `rejected` (_TimeoutSock.read);
#  - with `mqtt.ca` in the config (the default: `fleetflow flash` writes the
#    installation's CA there) the link is MQTT over TLS: mbedtls checks the
#    broker's certificate against that CA and the host name before a byte of
#    MQTT goes out, so a fake broker never sees the password. The same
#    `ssl` module and code path on the unix port, ESP32 and RP2.
import time
import random
import select
from micropython import const
import umqtt.simple as _umqtt
from fleetflow.errors import FFError

_MAX_INBOX = const(8)
_MSG_MAX_BYTES = const(12288)  # for a board.json that predates msg_max_bytes
_PIECE = const(128)  # the piece an unwanted message is read off the socket in


class _TimeoutSock:
    # umqtt.simple calls setblocking(True) after every first byte it reads,
    # which would clear a timeout; this wrapper turns "blocking" into
    # "blocking with a timeout". Timeouts are set on the TCP socket (tcp);
    # reads and writes go through `stream`: the TLS socket once connected
    # (it reads through tcp, so the timeouts hold, and select.poll on it
    # also sees bytes mbedtls has decrypted but not yet handed out). Link.poll
    # registers both with select.poll, so they are public attributes.
    def __init__(self, sock, timeout_s):
        self.tcp = self.stream = sock
        self._t = timeout_s
        sock.settimeout(timeout_s)

    def setblocking(self, flag):
        if flag:
            self.tcp.settimeout(self._t)
        else:
            self.tcp.setblocking(False)

    def connect(self, addr):
        self.tcp.connect(addr)
        tls = _SockModule.tls
        if tls is not None:
            # umqtt.simple 1.3.4's own ssl=True does `import ussl`, which
            # MicroPython >= 1.22 no longer has, and would wrap this wrapper
            # (mbedtls needs the real socket): so the TLS is done here. A
            # wrong CA or host name raises ValueError: the link stays down.
            # (The clock it checks dates with is set first: fleetflow.net.)
            self.stream = tls[0].wrap_socket(self.tcp, server_hostname=tls[1])

    # read/write take their arguments plainly (no *a): check_msg reads one
    # byte every loop step, and a *args tuple would be garbage each time.
    def read(self, n):
        # umqtt.simple's wait_msg reads a PUBLISH whole (`sock.read(sz)`): a
        # 200 KB message failed to allocate, the link dropped before the
        # PUBACK, and the broker sent it again on every reconnect, for ever.
        # Only a PUBLISH's topic and payload are ever read more than _PIECE
        # bytes at a time (every other read of umqtt.simple 1.x is of 1 to 4
        # bytes), so here, below the unchanged wait_msg, one over the budget
        # or the heap is read off the socket in pieces and dropped; wait_msg
        # then PUBACKs it as usual (MQTT 3.1.1 section 4.3.2: it is ours, not
        # sent again) and hands the callback (reason, first bytes, last bytes)
        # for bytes.
        # A subclass copying wait_msg to do this costs twice the heap.
        if n > _PIECE:
            if n > _SockModule.max_bytes:
                return self._drop(n, "oversized: %d-byte message > %d bytes" % (n, _SockModule.max_bytes))
            try:
                r = self.stream.read(n)
            except MemoryError:  # raised before a byte is read
                return self._drop(n, "oversized: no memory for a %d-byte message" % n)
        else:
            r = self.stream.read(n)
        if r is not None and n and not r:
            raise OSError(-1)  # EOF: the broker closed the connection
        if r:
            _SockModule.last_rx = time.ticks_ms()
        return r

    def _drop(self, n, why):
        # into one small fixed buffer; the first piece and the last two are
        # kept: the command's id, and so the ack's, is in one of them (before
        # or after the program it carries)
        buf = _SockModule.buf
        head = tail = None
        while n > 0:
            k = self.stream.readinto(buf, n if n < _PIECE else _PIECE)
            if not k:
                raise OSError(-1)
            if head is None:
                head = bytes(buf[:k])
            elif n <= 2 * _PIECE:
                tail = bytes(buf[:k]) if tail is None else tail + buf[:k]
            n -= k
        _SockModule.last_rx = time.ticks_ms()
        return (why, head, tail)

    def write(self, buf, n=None):
        return self.stream.write(buf) if n is None else self.stream.write(buf, n)

    def close(self):
        self.stream.close()


class _Streaming:
    # Stands in for the socket during one publish whose payload is written
    # in pieces (fleetflow.runsmsg.RunsBody: len() and emit(write)):
    # umqtt.simple sends a payload with one sock.write(msg).
    def __init__(self, sock, body):
        self._s = sock
        self._b = body

    def write(self, buf, n=None):
        if buf is self._b:
            buf.emit(self._s.write)
            return len(buf)
        return self._s.write(buf) if n is None else self._s.write(buf, n)

    def read(self, n):
        return self._s.read(n)

    def setblocking(self, flag):
        self._s.setblocking(flag)


class _SockModule:
    # Stands in for `usocket` inside umqtt.simple so its sockets get timeouts.
    timeout_s = 5
    tls = None  # (ssl.SSLContext, server_hostname) when the link is TLS
    last_rx = 0  # when the broker last sent anything (PINGRESP included)
    max_bytes = _MSG_MAX_BYTES
    buf = bytearray(_PIECE)

    @staticmethod
    def socket(*a):
        import socket
        return _TimeoutSock(socket.socket(*a), _SockModule.timeout_s)

    @staticmethod
    def getaddrinfo(*a):
        import socket
        return socket.getaddrinfo(*a)


_umqtt.socket = _SockModule


def _tls_context(mq):
    # The CA comes in DER (config.load decodes it; PEM would need mbedtls'
    # PEM parser, which the unix port's build lacks) and is let go of once
    # parsed into the context.
    ca = mq.pop("ca", None)
    if not ca:
        return None
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=ca)
    except ValueError as e:
        raise FFError("config.json: mqtt.ca: not a CA certificate mbedtls can use: %s" % e)
    return ctx, mq["host"]


def backoff_ms(min_ms, max_ms, n):
    """min_ms doubled n times, at most max_ms, +-25% jitter so a fleet
    doesn't reconnect in lockstep (the link's retries, and fleetflow.net's)."""
    d = min_ms << min(n, 16)
    if d > max_ms:
        d = max_ms
    return d - d // 4 + random.getrandbits(16) % (d // 2 + 1)


class Link:
    def __init__(self, cfg, on_connect):
        mq = cfg["mqtt"]
        self.dev = cfg["device_id"]
        self.prefix = cfg["prefix"]
        self.keepalive_s = cfg["keepalive_s"]
        self._min_ms = cfg["backoff_min_ms"]
        self._max_ms = cfg["backoff_max_ms"]
        _SockModule.timeout_s = cfg["socket_timeout_s"]
        _SockModule.tls = _tls_context(mq)
        self._cl = _umqtt.MQTTClient(self.dev, mq["host"], port=mq["port"], user=mq["user"],
                                     password=mq["password"], keepalive=self.keepalive_s)
        _SockModule.max_bytes = cfg["board"].get("msg_max_bytes", _MSG_MAX_BYTES)
        self._cl.set_callback(self._on_msg)
        self._on_connect = on_connect
        self.connected = False
        self.inbox = []           # (topic, msg) queued by the callback
        self.inbox_dropped = 0
        self.failures = 0         # consecutive failed connects (backoff exponent)
        self.connects = 0
        self._retry_at = 0
        self._last_io = 0          # last ping sent
        self._poller = None        # select.poll on the TCP socket while connected
        self._tls_poller = None    # and on the TLS socket over it, for bytes mbedtls holds
        self._more = False         # the last poll left messages unread
        self.will = None

    def topic(self, suffix):
        return "%s/%s/%s" % (self.prefix, self.dev, suffix)

    def _on_msg(self, topic, msg):
        # msg: the bytes, or (reason, first bytes) for one dropped unread
        if len(self.inbox) >= _MAX_INBOX:
            self.inbox.pop(0)
            self.inbox_dropped += 1
        self.inbox.append((topic, msg))

    def drop(self, why=None):
        if self.connected:
            print("link: down:", why)
        self.connected = False
        self._poller = self._tls_poller = None
        self._more = False
        try:
            self._cl.sock.close()
        except Exception:
            pass
        self._retry_at = time.ticks_add(time.ticks_ms(), backoff_ms(self._min_ms, self._max_ms, self.failures))

    def poll(self, now):
        """Connect when due, read what arrived, ping in time. Never raises."""
        if not self.connected:
            if time.ticks_diff(now, self._retry_at) < 0:
                return
            try:
                self._cl.set_last_will(self.topic("status"), b'{"state":"offline"}', retain=True, qos=1)
                self._cl.connect(clean_session=False)
                self.connected = True
                self.failures = 0
                self.connects += 1
                self._last_io = now
                _SockModule.last_rx = now
                self._cl.subscribe(self.topic("cmd"), qos=1)
                s = self._cl.sock
                self._poller = select.poll()
                # the TCP socket: a file descriptor the kernel wakes us on
                # (MicroPython polls a TLS socket, which has none, every ms)
                self._poller.register(s.tcp, select.POLLIN)
                if s.stream is not s.tcp:
                    # what mbedtls decrypted but has not handed out yet is
                    # no longer in the kernel: asked before each sleep
                    self._tls_poller = select.poll()
                    self._tls_poller.register(s.stream, select.POLLIN)
                self._on_connect()
            except Exception as e:
                self.failures += 1
                self.connected = True  # so drop() closes the socket
                self.drop(e)
                return
        try:
            self._more = True
            for _ in range(_MAX_INBOX):
                n = len(self.inbox)
                # check_msg() returns None both for "nothing there" and after
                # delivering a message: the inbox growing tells them apart.
                if self._cl.check_msg() is None and len(self.inbox) == n:
                    self._more = False
                    break
                if len(self.inbox) > n:
                    # One message a poll: the agent handles it before the
                    # next is read, so a burst (a program's chunks, sent back
                    # to back) is never all in the heap at once (`more`).
                    break
            # A ping every half keepalive, whatever else we sent: the broker
            # answers each one, so silence for 1.5 keepalives means a
            # half-open link (MQTT 3.1.1 section 3.1.2.10 gives the broker
            # the same rule). Our publishes alone would prove nothing.
            if time.ticks_diff(now, self._last_io) >= self.keepalive_s * 500:
                self._cl.ping()
                self._last_io = now
            if time.ticks_diff(now, _SockModule.last_rx) > self.keepalive_s * 1500:
                raise OSError("no answer from the broker")
        except Exception as e:
            self.drop(e)

    def incoming(self):
        """Whether messages wait to be read or handled: in the inbox, or
        bytes on the socket. A QoS 1 publish now would read them all while
        it waits for its PUBACK (umqtt.simple), into the heap at once."""
        if not self.connected:
            return False
        if self.inbox:
            return True
        try:
            if self._tls_poller is not None:
                for _ in self._tls_poller.ipoll(0):
                    return True
            if self._poller is not None:
                for _ in self._poller.ipoll(0):  # ipoll: no list made
                    return True
        except Exception:  # the socket broke: the next poll() finds out how
            pass
        return False

    def wait(self, ms):
        """Sleep up to ms, or until the next reconnect attempt while down; a
        message from the broker ends it early. Never raises (KeyboardInterrupt
        passes)."""
        if self.inbox or self._more:
            return
        if not self.connected:
            ms = min(ms, time.ticks_diff(self._retry_at, time.ticks_ms()))
        if ms <= 0:
            return  # (a negative timeout would be no timeout at all)
        p = self._poller
        if p:
            try:
                if self._tls_poller is not None:
                    for _ in self._tls_poller.ipoll(0):
                        return
                for _ in p.ipoll(ms):  # ipoll: no list made per wake-up
                    break
                return
            except Exception:  # the socket broke: the next poll() finds out how
                self._poller = self._tls_poller = None
        time.sleep_ms(ms)

    def publish(self, suffix, payload, qos=0, retain=False):
        """True when sent; on failure the link drops and False is returned."""
        if not self.connected:
            return False
        cl = self._cl
        try:
            if hasattr(payload, "emit"):  # written onto the socket in pieces
                sock = cl.sock
                cl.sock = _Streaming(sock, payload)
                try:
                    cl.publish(self.topic(suffix), payload, retain, qos)
                finally:
                    cl.sock = sock
            else:
                cl.publish(self.topic(suffix), payload, retain, qos)
            return True
        except Exception as e:
            self.drop(e)
            return False

    def close(self):
        if self.connected:
            try:
                self._cl.disconnect()
            except Exception:
                pass
        self.connected = False
