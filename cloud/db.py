"""The database: peewee on SQLite (WAL) by default, PostgreSQL by URL.

Storage functions are plain synchronous functions (easy to test, one
transaction each); `Database.run` carries them out on one worker thread so a
query never stalls the event loop, and one thread is also what SQLite wants
from its writers. `Database.query` runs those that only read on a second
thread with its own connection, so no write holds up a read.
"""

from __future__ import annotations

import asyncio
import functools
import json
import operator
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


# No statement's size grows with the fleet: lists of ids go to IN (...) in
# chunks of IN_IDS, rows to multi-row INSERTs in chunks of INSERT_ROWS
# (SQLite allows 32,766 bound variables a statement; PostgreSQL 65,535).
IN_IDS = 400
INSERT_ROWS = 100


def chunks(items: list, n: int = IN_IDS):
    """`items` in slices of at most n."""
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _real(model) -> peewee.Database:
    db = model._meta.database
    return db.obj if isinstance(db, peewee.DatabaseProxy) else db


def for_update(query, skip_locked: bool = False):
    """`query` ... FOR UPDATE where the database has it (PostgreSQL): the
    rows it reads stay locked until the transaction ends, so two replicas'
    steps on one row take turns (or, skip_locked, the second passes over the
    rows the first has). SQLite has a single writer already."""
    return query.for_update(skip_locked=skip_locked or None) if _real(query.model).for_update else query


def get_for_update(model, pk):
    """The row of `model` with primary key `pk`, locked FOR UPDATE until
    the transaction ends (`for_update`), or None."""
    return for_update(model.select().where(model._meta.primary_key == pk)).get_or_none()


def _quoted(db: peewee.Database, name: str) -> str:
    return f"{db.quote[0]}{name}{db.quote[1]}"


def insert_rows(model, rows: list[dict]) -> None:
    """Insert `rows` (dicts with the same keys) without building SQL per
    row: one prepared INSERT run for every row on SQLite (executemany),
    pages of multi-row VALUES on PostgreSQL (psycopg2's execute_values).
    peewee's insert_many costs more in SQL generation than the database
    spends storing the rows, which is what a 100,000-target rollout feels."""
    if not rows:
        return
    db = _real(model)
    given = [model._meta.fields[name] for name in rows[0]]
    # Columns left out take the model's default, as peewee would give them.
    defaults = [(f, f.default) for f in model._meta.sorted_fields if f.name not in rows[0] and f.default is not None]
    fields = given + [f for f, _ in defaults]
    extra = tuple(f.db_value(d() if callable(d) else d) for f, d in defaults)
    row_of = operator.itemgetter(*[f.name for f in given])  # a tuple per row, in C
    if len(given) == 1:
        values = [(row_of(r),) + extra for r in rows]
    else:
        values = [row_of(r) + extra for r in rows]
    convert = [(i, f.db_value) for i, f in enumerate(given) if isinstance(f, (JSONField, peewee.BooleanField))]
    if convert:
        values = [tuple(row) for row in values]
        for n, row in enumerate(values):
            row = list(row)
            for i, to_db in convert:
                row[i] = to_db(row[i])
            values[n] = tuple(row)
    names = ", ".join(_quoted(db, f.column_name) for f in fields)
    head = f"INSERT INTO {_quoted(db, model._meta.table_name)} ({names}) VALUES "
    if isinstance(db, peewee.SqliteDatabase):
        db.cursor().executemany(head + "(" + ", ".join([db.param] * len(fields)) + ")", values)
    else:
        from psycopg2.extras import execute_values

        execute_values(db.cursor(), head + "%s", values, page_size=500)


def update_rows(model, fields: tuple, rows: list[tuple]) -> None:
    """UPDATE model SET fields WHERE primary key = ?, for each row of
    (values of fields..., primary key): one prepared statement run for every
    row (executemany; execute_batch on PostgreSQL)."""
    if not rows:
        return
    db = _real(model)
    sql = (f"UPDATE {_quoted(db, model._meta.table_name)} SET "
           + ", ".join(f"{_quoted(db, model._meta.fields[f].column_name)} = {db.param}" for f in fields)
           + f" WHERE {_quoted(db, model._meta.primary_key.column_name)} = {db.param}")
    if isinstance(db, peewee.SqliteDatabase):
        db.cursor().executemany(sql, rows)
    else:
        from psycopg2.extras import execute_batch

        execute_batch(db.cursor(), sql, rows, page_size=500)


def select_in(model, columns: list, ids: list):
    """Rows (tuples of `columns`, JSON columns decoded) whose primary key is
    in `ids`, read in chunks of IN_IDS with SQL text made once per chunk size."""
    db = _real(model)
    head = (f"SELECT {', '.join(_quoted(db, c.column_name) for c in columns)} "
            f"FROM {_quoted(db, model._meta.table_name)} WHERE {_quoted(db, model._meta.primary_key.column_name)} IN (")
    decode = [(i, c.python_value) for i, c in enumerate(columns) if isinstance(c, JSONField)]
    for chunk in chunks(ids):
        for row in db.execute_sql(head + ", ".join([db.param] * len(chunk)) + ")", tuple(chunk)).fetchall():
            if decode:
                row = list(row)
                for i, from_db in decode:
                    row[i] = from_db(row[i])
            yield tuple(row)


def update_in(model, fields: dict, ids: list) -> None:
    """UPDATE model SET fields WHERE primary key IN ids, in chunks of IN_IDS,
    with SQL text made once per chunk size rather than by peewee per call."""
    if not ids:
        return
    db = _real(model)
    columns = [model._meta.fields[name] for name in fields]
    values = tuple(f.db_value(fields[f.name]) if isinstance(f, (JSONField, peewee.BooleanField)) else fields[f.name]
                   for f in columns)
    head = (f"UPDATE {_quoted(db, model._meta.table_name)} SET "
            + ", ".join(f"{_quoted(db, f.column_name)} = {db.param}" for f in columns)
            + f" WHERE {_quoted(db, model._meta.primary_key.column_name)} IN (")
    for chunk in chunks(ids):
        db.execute_sql(head + ", ".join([db.param] * len(chunk)) + ")", values + tuple(chunk))


def tag_match(column, tag: str):
    """SQL that is true when a JSON list column (stored as JSON text by
    JSONField) may hold the string `tag`: the list's text contains the tag's
    JSON text. Callers still check `tag in row.tags` exactly."""
    text = json.dumps(tag)  # as JSONField writes it (ASCII, escapes included)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return peewee.NodeList((column, peewee.SQL("LIKE"), f"%{escaped}%", peewee.SQL("ESCAPE '\\'")))


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
    """`model.get_or_none(pk == ...)` without building the query each time,
    nor the instance field by field: peewee's SQL generation and its
    per-field descriptors cost more than SQLite's answer to a point read,
    and the API's hottest path is reading one row by id."""
    key = (model, model._meta.database.param)  # the text depends on the database's parameter style
    plan = _BY_PK_SQL.get(key)
    if plan is None:
        sql = model.select().where(model._meta.primary_key == "").sql()[0]
        # Only these columns need converting from what the driver gives.
        convert = [(f.name, f.python_value) for f in model._meta.sorted_fields
                   if isinstance(f, (JSONField, peewee.BooleanField))]
        plan = _BY_PK_SQL[key] = (sql, [f.name for f in model._meta.sorted_fields], convert)
    sql, names, convert = plan
    row = model._meta.database.execute_sql(sql, (pk,)).fetchone()
    if row is None:
        return None
    data = dict(zip(names, row))
    for name, from_db in convert:
        data[name] = from_db(data[name])
    obj = model.__new__(model)  # what Model(__no_default__=1, **data) makes, without a setattr per field
    obj.__data__, obj._dirty, obj.__rel__ = data, set(data), {}
    return obj


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
        # Reads of collections run on a thread (and connection) of their own,
        # so a heavy write (a 100,000-target deployment made, a burst of run
        # reports stored) holds up no GET: SQLite in WAL mode and PostgreSQL
        # let a reader see the last commit while a writer works. An
        # in-memory SQLite database is one per connection: it reads on the
        # writer's thread.
        memory = self.inline_reads and self.peewee.database == ":memory:"
        self._reader = self._executor if memory else ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="fleetflow-db-read")

    def call(self, fn, *args, **kwargs):
        """Run `fn` in one transaction, on the calling thread."""
        with self.peewee.atomic():
            return fn(*args, **kwargs)

    async def run(self, fn, *args, **kwargs):
        """Run `fn` in one transaction on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self.call, fn, *args, **kwargs))

    async def query(self, fn, *args, **kwargs):
        """Run `fn`, which only reads, in one transaction on the reader
        thread: beside the writes `run` carries out, never behind them."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, functools.partial(self.call, fn, *args, **kwargs))

    async def read(self, fn, *args, **kwargs):
        """Run a short read (one row by id): inline on SQLite, else on the
        reader thread. Anything that reads a collection (the targets of a
        deployment, a list) goes through `query`: 10,000 rows are ~0.1 s the
        event loop, the bridge and every stream would stand still for."""
        if self.inline_reads:
            return fn(*args, **kwargs)
        return await self.query(fn, *args, **kwargs)

    def _close_thread_connection(self):
        if not self.peewee.is_closed():
            self.peewee.close()

    async def close(self):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_thread_connection)
        self._executor.shutdown(wait=True)
        if self._reader is not self._executor:
            await loop.run_in_executor(self._reader, self._close_thread_connection)
            self._reader.shutdown(wait=True)
        self._close_thread_connection()
