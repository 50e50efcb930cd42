# umqtt.simple's own wait_msg over fleetflow.link's socket, fed PUBLISH
# packets from a stream: one over the budget and one the heap "can't hold"
# (a MemoryError injected on the big read, the fault this guards against)
# are read off in pieces, PUBACKed, and handed on as (reason, first bytes);
# the packet after each is read whole, so the stream stayed in step.
# Prints one JSON line per case.
import json
import umqtt.simple as umqtt
from fleetflow import link


class Stream:
    # the bytes the broker sends, in one buffer made once: the big case is
    # 13 KB, and copies of it (BytesIO's, concatenations) would test the
    # heap's fragmentation rather than the link
    def __init__(self, data, fail_over=None):
        self.mv = memoryview(data)
        self.at = 0
        self.fail_over = fail_over
        self.out = bytearray()

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def read(self, n):
        if self.fail_over is not None and n > self.fail_over:
            raise MemoryError("injected: no block of %d bytes" % n)
        n = min(n, len(self.mv) - self.at)
        self.at += n
        return bytes(self.mv[self.at - n:self.at])

    def readinto(self, buf, n):
        n = min(n, len(self.mv) - self.at)
        buf[:n] = self.mv[self.at:self.at + n]
        self.at += n
        return n

    def write(self, buf, n=None):
        self.out += buf if n is None else buf[:n]
        return len(buf) if n is None else n


def fill(payload):
    # payload: parts, each bytes or (byte, count)
    return sum(len(p) if type(p) is bytes else p[1] for p in payload)


def publish(topic, payload, pid):
    # the PUBLISH packet's parts (fixed header, topic, pid, payload parts)
    n = 2 + len(topic) + 2 + fill(payload)
    head = bytearray(b"\x32")
    while True:
        b = n & 0x7f
        n >>= 7
        head.append(b | 0x80 if n else b)
        if not n:
            break
    return [bytes(head), bytes([len(topic) >> 8, len(topic) & 0xff]), topic, bytes([pid >> 8, pid & 0xff])] + payload


def packets(*lists):
    parts = [p for ps in lists for p in ps]
    data = bytearray(fill(parts))
    at = 0
    for p in parts:
        if type(p) is bytes:
            data[at:at + len(p)] = p
            at += len(p)
        else:
            for i in range(at, at + p[1]):
                data[i] = p[0]
            at += p[1]
    return data


def case(name, payload, fail_over=None):
    topic = b"ff/dev1/cmd"
    s = Stream(packets(publish(topic, payload, 0x1234), publish(topic, [b'{"id":"next"}'], 7)), fail_over)
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
    s = got = first = cl = None


case("over the budget", [b'{"id":"big1","op":"deploy","prog":"', (ord("A"), 13000), b'"}'])
case("no memory for it", [b'{"id":"m1","op":"exec"}', (ord(" "), 5000)], fail_over=1000)
case("fits", [b'{"id":"ok1","op":"ping"}'])
