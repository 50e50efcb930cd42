"""Cursor paging for every list the API serves (keyset paging).

Rules:
1. A list is read in a fixed order on a unique key (a tuple of columns,
   all ascending or all descending: `id`, `(created_at, id)`...).
2. A page is at most `limit` rows; the cursor of the next page is the key
   of the last row shown, opaque to clients (base64url of JSON naming the
   list it belongs to), and absent on the last page.
3. The next page is the rows strictly after that key (`WHERE (a, b) > (x, y)`),
   so rows inserted or deleted meanwhile never make a page repeat or skip a
   row that was there all along: a cursor stays valid for ever.
4. A cursor that is not one this list made (garbled, from another list, of
   the wrong shape) is a 422 naming `?cursor`; the statement never grows with
   the list (one `LIMIT n+1` query per page).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import NamedTuple

import peewee

from cloud.errors import Invalid, Problem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class Computed(NamedTuple):
    """A key column that is an expression (a nullable column made total with
    COALESCE): selected as `name`, checked in cursors like column `like`."""

    expr: peewee.Node
    name: str
    like: peewee.Field


class Page(NamedTuple):
    rows: list
    cursor: str | None  # of the next page; None: this page is the last


def encode(kind: str, key: tuple) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _bad(why: str) -> Invalid:
    return Invalid("bad cursor", [Problem("?cursor", f"{why}: pass back the cursor of a `next` link unchanged")])


def _kind_of(value, field) -> bool:
    if isinstance(field, Computed):
        field = field.like
    if isinstance(field, (peewee.FloatField, peewee.DoubleField)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(field, (peewee.IntegerField, peewee.AutoField)):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


def decode(kind: str, cursor: str, fields: tuple) -> tuple:
    """The key a cursor made by `encode(kind, ...)` holds; Invalid otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad("not a cursor") from None
    if not isinstance(value, list) or not value or value[0] != kind:
        raise _bad(f"not a cursor of this list ({kind})")
    key = tuple(value[1:])
    if len(key) != len(fields) or not all(_kind_of(v, f) for v, f in zip(key, fields)):
        raise _bad("a cursor of the wrong shape")
    return key


def page(query: peewee.Select, kind: str, fields: tuple, limit: int, cursor: str | None,
         descending: bool = False) -> Page:
    """One page of `query` (already filtered, not yet ordered) in the order
    of `fields` (a unique key), after `cursor`."""
    computed = [f for f in fields if isinstance(f, Computed)]
    if computed:
        query = query.select_extend(*[f.expr.alias(f.name) for f in computed])
    columns = [f.expr if isinstance(f, Computed) else f for f in fields]
    if cursor:
        key = decode(kind, cursor, fields)
        left = columns[0] if len(columns) == 1 else peewee.Tuple(*columns)
        right = key[0] if len(columns) == 1 else peewee.Tuple(*key)
        query = query.where(left < right if descending else left > right)
    order = [c.desc() for c in columns] if descending else columns
    rows = list(query.order_by(*order).limit(limit + 1))
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows, encode(kind, tuple(getattr(last, f.name) for f in fields)))
