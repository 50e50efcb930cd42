"""Interpreter.idle_ms: how long the device loop may sleep before the flow
has something due (issue 9: the loop sleeps until then instead of ticking
every 5 ms). Under MicroPython."""

import pytest

BODY = r'''
# a 5 Hz poll: due at once after start, then every 200 ms, whatever the cap
it, hal = interp([("inject", {"payload": 1, "every": 200}), ("counter", {})], [(0, 0, 1)])
it.start(0)
before = it.idle_ms(0, 1000)
runs = it.poll(0)
OUT["poll"] = [before, runs, it.idle_ms(0, 1000), it.idle_ms(150, 1000), it.idle_ms(150, 30),
               it.idle_ms(260, 1000), it.poll(199), it.poll(200), it.idle_ms(200, 1000)]

# GPIO edges are sampled: never more than 5 ms, and an edge is seen on the next poll
it, hal = interp([("gpio_in", {"pin": 12, "edge": "rising", "debounce_ms": 0}), ("counter", {})], [(0, 0, 1)])
it.start(0)
first = it.idle_ms(0, 1000)
hal.pin(12).drive(1)
OUT["edge"] = [first, it.poll(first), it.idle_ms(first, 3)]

# a delay's continuation: the sleep ends when it is due
it, hal = interp([("inject", {"payload": 1}), ("delay", {"ms": 300}), ("counter", {})], [(0, 0, 1), (1, 0, 2)])
it.run_now(now_ms=0)
OUT["delay"] = [it.pending(), it.idle_ms(0, 1000), it.idle_ms(299, 1000), it.poll(300), it.pending(),
                it.idle_ms(300, 1000)]

# a stopped flow has nothing due
it, hal = interp([("inject", {"every": 100})])
it.start(0)
it.stop()
OUT["stopped"] = it.idle_ms(0, 700)
'''


@pytest.fixture(scope="module")
def out(device):
    return device(BODY)


def test_a_polled_source_is_due_at_its_interval(out):
    before, runs, after, later, capped, late, early, on_time, next_ = out["poll"]
    assert (before, runs) == (0, 1)          # due at start
    assert (after, later, capped, late) == (200, 50, 30, 0)
    assert (early, on_time, next_) == (0, 1, 200)  # not a ms early, then 5 Hz on


def test_gpio_edges_keep_the_loop_sampling(out):
    first, runs, capped = out["edge"]
    assert first == 5 and runs == 1 and capped == 3


def test_a_delay_ends_the_sleep_when_its_continuation_is_due(out):
    assert out["delay"] == [1, 300, 1, 1, 0, 1000]


def test_a_stopped_flow_has_nothing_due(out):
    assert out["stopped"] == 700
