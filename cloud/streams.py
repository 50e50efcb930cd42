"""Live event streams (server-sent events), as seed 002 describes them.

A stream is a key (`deployment:<id>`); `publish` fans an event out to every
subscriber without ever waiting: each subscriber has a bounded queue, and a
subscriber whose queue is full is dropped (its response ends; the client
reconnects and gets a `sync`). One slow client never holds up the others
or the rollout.

Events: `metadata` (the stream is live, with the full document), `update`
(what changed), `sync` (the full document again, sent instead of metadata
when a client reconnects with Last-Event-ID), `error`, `complete` (the
deployment finished; the stream ends).
"""

from __future__ import annotations

import asyncio
import itertools
import json

from cloud.fanout import MAX_PAYLOAD, STREAM_CHANNEL, encode, fits, split_list

QUEUE_SIZE = 256
_DROPPED = object()


class Subscriber:
    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False

    async def next(self):
        """The next (id, event, data), or None once dropped."""
        item = await self.queue.get()
        return None if item is _DROPPED else item


class Streams:
    def __init__(self):
        self._subs: dict[str, set[Subscriber]] = {}
        self._ids = itertools.count(1)
        self._fanout = None

    def replicate(self, fanout) -> None:
        """Replicas (cloud.fanout): what is published here reaches the
        watchers of every replica, and theirs reach ours. An event too big
        for one NOTIFY is split when it is an update (by targets); otherwise
        the other replicas drop their watchers of that key, who reconnect and
        get a `sync`. A LISTEN connection made again drops every watcher
        here for the same reason: events were missed."""
        self._fanout = fanout
        fanout.on(STREAM_CHANNEL, self._heard)
        fanout.on_gap.append(self.drop_all)

    def subscribe(self, key: str) -> Subscriber:
        sub = Subscriber()
        self._subs.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, key: str, sub: Subscriber) -> None:
        subs = self._subs.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[key]

    def count(self, key: str) -> int:
        return len(self._subs.get(key, ()))

    def publish(self, key: str, event: str, data: dict, replicate: bool = True) -> None:
        """Send an event to the watchers of `key`, here and on every replica
        (replicate False: here only, for what every replica hears itself)."""
        self._deliver(key, event, data)
        if self._fanout is not None and replicate:
            self._relay(key, event, data)

    def drop_all(self) -> None:
        for key, subs in list(self._subs.items()):
            for sub in list(subs):
                self._drop(key, sub)

    def _relay(self, key: str, event: str, data: dict) -> None:
        message = {"key": key, "event": event, "data": data}
        if fits(message):
            parts = [message]
        elif event == "update" and isinstance(data.get("targets"), list):
            room = MAX_PAYLOAD - len(encode({**message, "data": {}})) + 2  # what `data` may take
            parts = [{"key": key, "event": event, "data": d} for d in split_list(data, "targets", room)]
        else:
            parts = []
        if not parts:
            parts = [{"key": key, "drop": True}]
        for part in parts:
            self._fanout.send(STREAM_CHANNEL, part)

    def _heard(self, message: dict) -> None:
        key = message.get("key")
        if not isinstance(key, str):
            return
        if message.get("drop"):
            for sub in list(self._subs.get(key, ())):
                self._drop(key, sub)
        elif isinstance(message.get("event"), str) and isinstance(message.get("data"), dict):
            self._deliver(key, message["event"], message["data"])

    def _deliver(self, key: str, event: str, data: dict) -> None:
        item = (next(self._ids), event, data)
        for sub in list(self._subs.get(key, ())):
            if sub.dropped:
                continue
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                self._drop(key, sub)

    def _drop(self, key: str, sub: Subscriber) -> None:
        sub.dropped = True
        self.unsubscribe(key, sub)
        while not sub.queue.empty():  # make room for the end marker
            sub.queue.get_nowait()
        sub.queue.put_nowait(_DROPPED)


def frame(event_id: int, event: str, data) -> bytes:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
