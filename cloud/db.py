"""The database: peewee on SQLite (WAL) by default, PostgreSQL by URL.

Storage functions are plain synchronous functions (easy to test, one
transaction each); `Database.run` carries them out on one worker thread so a
query never stalls the event loop, and one thread is also what SQLite wants
from its writers.
"""

from __future__ import annotations

import asyncio
import functools
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as connect_url

from cloud.errors import NotFound
from cloud.private import touch_private

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",  # safe with WAL: a power cut loses at most the last commits, never the file
    "foreign_keys": 1,
    "busy_timeout": 5000,
}


class JSONField(peewee.TextField):
    """JSON in a text column: portable across SQLite and PostgreSQL."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))

    def python_value(self, value):
        return None if value is None else json.loads(value)


def open_database(url: str) -> peewee.Database:
    """`sqlite:///path/to.db` (relative), `sqlite:////abs/path.db`, a bare
    path, `sqlite:///:memory:`, or `postgresql://user:pw@host/db`."""
    if "://" not in url:
        url = "sqlite:///" + url
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            touch_private(path)  # before SQLite creates it 0644 (and its -wal and -shm like it)
        return peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    return connect_url(url)


_BY_PK_SQL: dict = {}


def get_by_pk(model, pk):
    """`model.get_or_none(pk == ...)` without building the query each time:
    peewee's SQL generation costs more than SQLite's answer to a point read,
    and the API's hottest path is reading one row by id."""
    key = (model, model._meta.database.param)  # the text depends on the database's parameter style
    sql = _BY_PK_SQL.get(key)
    if sql is None:
        sql = model.select().where(model._meta.primary_key == "").sql()[0]
        _BY_PK_SQL[key] = sql
    row = model._meta.database.execute_sql(sql, (pk,)).fetchone()
    if row is None:
        return None
    fields = model._meta.sorted_fields
    return model(__no_default__=1, **{f.name: f.python_value(v) for f, v in zip(fields, row)})


def get_or_404(model, pk, noun: str):
    """`get_by_pk`, or the API's 404 naming what was not found."""
    row = get_by_pk(model, pk)
    if row is None:
        raise NotFound(f"no {noun} {pk!r}")
    return row


class Database:
    def __init__(self, url: str):
        self.url = url
        self.peewee = open_database(url)
        # SQLite answers a point read in tens of microseconds from its page
        # cache: cheaper on the loop thread than the hop to the database
        # thread (WAL lets that reader run beside the writer). A networked
        # database (PostgreSQL) is always read on the database thread.
        self.inline_reads = isinstance(self.peewee, peewee.SqliteDatabase)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetflow-db")

    def call(self, fn, *args, **kwargs):
        """Run `fn` in one transaction, on the calling thread."""
        with self.peewee.atomic():
            return fn(*args, **kwargs)

    async def run(self, fn, *args, **kwargs):
        """Run `fn` in one transaction on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self.call, fn, *args, **kwargs))

    async def read(self, fn, *args, **kwargs):
        """Run a short read (one row by id): inline on SQLite, else on the
        database thread. Anything that reads a collection (the targets of a
        deployment, a list) goes through `run`: 10,000 rows are ~0.1 s the
        event loop, the bridge and every stream would stand still for."""
        if self.inline_reads:
            return fn(*args, **kwargs)
        return await self.run(fn, *args, **kwargs)

    def _close_thread_connection(self):
        if not self.peewee.is_closed():
            self.peewee.close()

    async def close(self):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_thread_connection)
        self._executor.shutdown(wait=True)
        self._close_thread_connection()
