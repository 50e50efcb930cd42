# umqtt.simple's own wait_msg over fleetflow.link's socket, fed PUBLISH
# packets from a stream: one over the budget and one the heap "can't hold"
# (a MemoryError injected on the big read, the fault this guards against)
# are read off in pieces, PUBACKed, and handed on as (reason, first bytes);
# the packet after each is read whole, so the stream stayed in step.
# Prints one JSON line per case.
import io
import json
import umqtt.simple as umqtt
from fleetflow import link


class Stream:
    def __init__(self, data, fail_over=None):
        self.b = io.BytesIO(data)
        self.fail_over = fail_over
        self.out = bytearray()

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def read(self, n):
        if self.fail_over is not None and n > self.fail_over:
            raise MemoryError("injected: no block of %d bytes" % n)
        return self.b.read(n)

    def readinto(self, buf, n):
        return self.b.readinto(buf, n)

    def write(self, buf, n=None):
        self.out += buf if n is None else buf[:n]
        return len(buf) if n is None else n


def publish(topic, payload, pid):
    body = bytes([len(topic) >> 8, len(topic) & 0xff]) + topic + bytes([pid >> 8, pid & 0xff]) + payload
    n = len(body)
    head = bytearray(b"\x32")
    while True:
        b = n & 0x7f
        n >>= 7
        head.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes(head) + body


def case(name, payload, fail_over=None):
    topic = b"ff/dev1/cmd"
    s = Stream(publish(topic, payload, 0x1234) + publish(topic, b'{"id":"next"}', 7), fail_over)
    got = []
    cl = umqtt.MQTTClient("dev1", "localhost")
    cl.set_callback(lambda t, m: got.append(m))
    cl.sock = link._TimeoutSock(s, 5)
    cl.wait_msg()
    cl.wait_msg()
    first = got[0]
    print(json.dumps({
        "case": name,
        "first": first.decode() if type(first) is bytes else [first[0], first[1].decode()],
        "second": got[1].decode(),
        "pubacks": [bytes(s.out[i:i + 4]).hex() for i in range(0, len(s.out), 4)],
    }))


big = b'{"id":"big1","op":"deploy","prog":"' + b"A" * 13000 + b'"}'
case("over the budget", big)
case("no memory for it", b'{"id":"m1","op":"exec"}' + b" " * 5000, fail_over=1000)
case("fits", b'{"id":"ok1","op":"ping"}')
