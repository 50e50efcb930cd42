"""cloud/mqttio.py: paho's socket read in big pieces and written a batch at a
time, on a real socket pair (the bridge's tests run it against Mosquitto)."""

from __future__ import annotations

import socket

import aiomqtt
import paho.mqtt.client as paho
import pytest

from cloud.mqttio import BatchedClient, BufferedSocket, batched


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _drain(sock) -> bytes:
    out = b""
    while True:
        try:
            piece = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not piece:
            return out
        out += piece


def test_reads_come_from_one_big_read_and_pending_counts_them(pair):
    a, b = pair
    sock = BufferedSocket(a)
    b.sendall(b"\x40\x02\x00\x01" * 3)  # three PUBACKs in one piece
    assert sock.recv(1) == b"\x40"
    assert sock.pending() == 11  # the rest waits in the buffer, not in the kernel
    assert sock.recv(1) == b"\x02" and sock.recv(2) == b"\x00\x01"
    assert sock.recv(100) == b"\x40\x02\x00\x01" * 2  # no more than was read: a partial read, as a socket gives
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # nothing buffered and nothing sent: the socket's own answer
    b.close()
    assert sock.recv(1) == b""  # the peer closed


def test_corked_packets_go_out_in_one_send_in_order(pair):
    a, b = pair
    sock = BufferedSocket(a)
    sock.corked = True
    for i in range(50):
        assert sock.send(bytes([0x40, 2, 0, i])) == 4  # taken, not yet sent
    assert _drain(b) == b"" and sock.unsent == 200
    sock.corked = False
    sock.flush()
    assert sock.unsent == 0
    assert _drain(b) == b"".join(bytes([0x40, 2, 0, i]) for i in range(50))


def test_what_the_socket_does_not_take_waits_and_keeps_its_order(pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock = BufferedSocket(a)
    big = bytes(range(256)) * 4096  # 1 MB: more than the socket buffers
    sock.corked = True
    sock.send(big)
    sock.corked = False
    sock.flush()  # no BlockingIOError: the rest waits
    assert 0 < sock.unsent < len(big)
    assert sock.send(b"after") == 5  # queued behind, not sent ahead of what waits
    got = b""
    while sock.unsent:
        got += _drain(b)
        sock.flush()
    got += _drain(b)
    assert got == big + b"after"


def test_a_batched_client_wants_to_write_while_bytes_wait(pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client = BatchedClient(paho.CallbackAPIVersion.VERSION2)
    client._sock = BufferedSocket(a)  # what _create_socket gives on connect
    assert not client.want_write()
    client._sock.corked = True
    client._sock.send(b"x" * (1 << 20))  # one write pass's packets
    client._sock.corked = False
    client._sock.flush()
    assert client.want_write()  # so the event loop calls back to write the rest
    _drain(b)


async def test_batched_switches_an_aiomqtt_client_before_it_connects():
    client = batched(aiomqtt.Client("127.0.0.1", 1))
    assert type(client._client) is BatchedClient
    with pytest.raises(TypeError, match="expected aiomqtt to wrap"):
        batched(client)  # not twice, nor anything but paho's own client


def test_messages_reach_on_message_and_the_per_topic_callbacks():
    client = BatchedClient(paho.CallbackAPIVersion.VERSION2)
    heard = []
    client.on_message = lambda c, u, m: heard.append(("any", m.topic))
    message = paho.MQTTMessage(topic=b"ff/d1/ack")
    client._handle_on_message(message)  # no per-topic callbacks: on_message
    client.message_callback_add("ff/+/ack", lambda c, u, m: heard.append(("acks", m.topic)))
    client._handle_on_message(message)  # paho's own way: the matching callback instead
    client._handle_on_message(paho.MQTTMessage(topic=b"ff/d1/status"))
    assert heard == [("any", "ff/d1/ack"), ("acks", "ff/d1/ack"), ("any", "ff/d1/status")]


@pytest.mark.broker
async def test_a_batched_client_sends_what_waits_behind_its_window_through_a_real_broker(tmp_path):
    """50 QoS 1 messages through a 2-message window: each PUBACK lets the
    next queued one out (BatchedClient._update_inflight), in order."""
    import asyncio

    from tools.infra.broker import start_broker
    from tools.infra.tls import client_context

    with start_broker(tmp_path / "b", users={"cloud": "pw"}) as broker:
        tls = client_context(broker.tls.ca) if broker.tls else None
        listener = aiomqtt.Client(broker.host, broker.port, username="cloud", password="pw", identifier="l",
                                  tls_context=tls)
        sender = batched(aiomqtt.Client(broker.host, broker.port, username="cloud", password="pw", identifier="s",
                                        tls_context=tls, max_inflight_messages=2))
        async with listener, sender:
            await listener.subscribe("ff/x/#", qos=1)
            for i in range(50):
                sender._client.publish("ff/x/m", str(i), qos=1)  # queued beyond the window of 2
            got = []
            async with asyncio.timeout(10):
                async for message in listener.messages:
                    got.append(int(message.payload))
                    if len(got) == 50:
                        break
            assert got == list(range(50))
            async with asyncio.timeout(5):
                while sender._client._out_messages:  # until the broker has acked every one
                    await asyncio.sleep(0.01)
