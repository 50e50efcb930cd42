"""Messages between cloud replicas over PostgreSQL LISTEN/NOTIFY
(docs/decisions.md, "Replicas"): the events one replica's driver emits reach
the stream clients of every replica, and an ack heard by one replica reaches
the replica that holds the lease of its deployment or execution.

Rules:
1. One connection LISTENs (autocommit; the event loop reads it when its
   socket is readable, psycopg2's `poll()`, never blocking); another, on a
   thread of its own, sends (`pg_notify`). Neither is the database thread's:
   a NOTIFY never waits behind a big step.
2. A message is JSON with the sender's name (`from`); a replica hears its
   own on a channel everyone listens to and drops it (it handled it when it
   sent it).
3. PostgreSQL's payload limit is 8000 bytes: the caller splits what can be
   split (`fits`); what still does not fit is not sent, and the caller says
   so another way (cloud.streams drops the remote watchers, who reconnect).
4. A lost LISTEN connection is made again with backoff; what was sent in
   between is lost, so `on_gap` callbacks run (cloud.streams drops every
   watcher: each reconnects and gets a `sync`). Sends that fail are dropped
   and logged: an event stream is a view, and an ack is sent again by the
   device when its command is (cloud/driver.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("fleetflow.fanout")
NOTIFY_LIMIT = 8000  # bytes: PostgreSQL refuses a NOTIFY payload this long or longer
MAX_PAYLOAD = 7900  # what a caller's message may take; the rest is for the sender's name
RECONNECT_S = 0.5
MAX_BACKOFF_S = 10.0
STREAM_CHANNEL = "ff_stream"


def ack_channel(replica: str) -> str:
    """The channel a replica hears forwarded acks on."""
    return f"ff_acks_{replica}"


def fits(message: dict) -> bool:
    return len(encode(message)) <= MAX_PAYLOAD


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"))  # ASCII: its length is its size in bytes


def split_list(message: dict, field: str, room: int = MAX_PAYLOAD) -> list[dict]:
    """`message` as several, each with a slice of its list `field` and at
    most `room` bytes of JSON; an item too big alone is left out, and so is
    everything when the rest of the message is too big by itself ([])."""
    items = message.get(field) or []
    head = len(encode({**message, field: []}))
    if head > room:
        return []
    out, part, size = [], [], head
    for item in items:
        n = len(encode(item)) + 1
        if head + n > room:
            continue
        if part and size + n > room:
            out.append({**message, field: part})
            part, size = [], head
        part.append(item)
        size += n
    if part or not out:
        out.append({**message, field: part})
    return out


class Fanout:
    def __init__(self, db_url: str, replica: str):
        self.dsn = db_url
        self.replica = replica
        self._handlers: dict[str, list] = {}  # channel -> [fn(message dict)]
        self.on_gap: list = []  # fn(): the LISTEN connection was lost and made again
        self._outbox: asyncio.Queue | None = None
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetflow-notify")
        self._send_conn = None
        self.ready = asyncio.Event()  # listening
        self.sent = self.heard = 0

    def on(self, channel: str, fn) -> None:
        """Call fn(message) for each message on `channel` from another replica."""
        self._handlers.setdefault(channel, []).append(fn)

    def send(self, channel: str, message: dict) -> bool:
        """Queue `message` for every replica listening on `channel`; False
        (nothing sent) when it is over the size limit (rule 3)."""
        text = encode({**message, "from": self.replica})
        if len(text.encode()) >= NOTIFY_LIMIT:
            return False
        if self._outbox is None:
            self._outbox = asyncio.Queue()
        self._outbox.put_nowait((channel, text))
        return True

    # -- the tasks --------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen (and reconnect) and send, until cancelled."""
        if self._outbox is None:
            self._outbox = asyncio.Queue()
        sending = asyncio.create_task(self._send_loop(), name="fleetflow-notify")
        try:
            await self._listen_loop()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._sender, self._close_send_conn)
        self._sender.shutdown(wait=True)

    async def _listen_loop(self) -> None:
        import psycopg2

        loop = asyncio.get_running_loop()
        backoff = RECONNECT_S
        first = True
        while True:
            conn, fd = None, None
            lost = asyncio.Event()
            try:
                conn = await loop.run_in_executor(None, self._listen_conn, list(self._handlers))
                fd = conn.fileno()  # a broken connection has none to give any more
                loop.add_reader(fd, self._readable, conn, lost)
                self.ready.set()
                if not first:
                    log.warning("listening again on PostgreSQL: what was sent meanwhile is lost")
                    for fn in self.on_gap:
                        fn()
                first, backoff = False, RECONNECT_S
                await lost.wait()
            except (psycopg2.Error, OSError) as exc:
                log.warning("cannot LISTEN on PostgreSQL (%s); retrying in %.1fs", exc, backoff)
            finally:
                self.ready.clear()
                if fd is not None:
                    loop.remove_reader(fd)
                if conn is not None:
                    conn.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _listen_conn(self, channels: list[str]):
        import psycopg2

        conn = psycopg2.connect(self.dsn, keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                keepalives_count=3)
        conn.autocommit = True
        with conn.cursor() as cur:
            for channel in channels:
                cur.execute(f'LISTEN "{channel}"')
        return conn

    def _readable(self, conn, lost: asyncio.Event) -> None:
        import psycopg2

        try:
            conn.poll()
        except psycopg2.Error as exc:
            log.warning("the LISTEN connection broke: %s", exc)
            lost.set()
            return
        while conn.notifies:
            note = conn.notifies.pop(0)
            try:
                message = json.loads(note.payload)
            except ValueError:
                log.warning("not JSON on %s: %.80r", note.channel, note.payload)
                continue
            if message.get("from") == self.replica:
                continue  # our own (rule 2)
            self.heard += 1
            for fn in self._handlers.get(note.channel, ()):
                try:
                    fn(message)
                except Exception:  # one bad handler must not stop the others, nor the reader
                    log.exception("handling a message on %s failed", note.channel)

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            await loop.run_in_executor(self._sender, self._send_batch, batch)

    def _send_batch(self, batch: list[tuple[str, str]]) -> None:
        import psycopg2

        for attempt in (1, 2):
            try:
                if self._send_conn is None or self._send_conn.closed:
                    self._send_conn = psycopg2.connect(self.dsn)
                    self._send_conn.autocommit = True
                with self._send_conn.cursor() as cur:
                    for channel, text in batch:
                        cur.execute("SELECT pg_notify(%s, %s)", (channel, text))
                self.sent += len(batch)
                return
            except psycopg2.Error as exc:
                self._close_send_conn()
                if attempt == 2:
                    log.warning("could not NOTIFY %d messages (%s): dropped", len(batch), exc)

    def _close_send_conn(self) -> None:
        if self._send_conn is not None and not self._send_conn.closed:
            self._send_conn.close()
        self._send_conn = None
