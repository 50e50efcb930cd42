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

    def publish(self, key: str, event: str, data: dict) -> None:
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
