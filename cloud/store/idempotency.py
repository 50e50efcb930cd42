"""Idempotency-Key on the creating POSTs (deployments, executions, pipeline
runs, devices), after draft-ietf-httpapi-idempotency-key-header.

Rules:
1. A creating POST that carries `Idempotency-Key: <1-255 visible ASCII
   characters>` is carried out at most once per API key and Idempotency-Key
   (the scope is the key's hash: two clients never see each other's answers).
2. The first answer (a 2xx) is recorded in the same transaction as the
   object it created: either both are stored or neither, so a retry after any
   failure finds either the first answer or nothing, never a second object.
3. A retry with the same key gets the first answer again (same status, same
   body, header `Idempotent-Replayed: true`), however often it is sent.
4. The same key on a different request (another path or body) is a 422
   naming `Idempotency-Key`; a request racing the first one with the same key
   on another process is a 409 (its transaction lost on the unique index)
   and nothing of it is kept: sent again, it gets the first answer.
5. Answers are kept TTL_S (24 h), sealed with the server secret (a device's
   first answer holds its credentials); expired ones are deleted as new ones
   are written. A request that failed (4xx/5xx) is not recorded: it may be
   sent again as it was.
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import peewee

from cloud.errors import Conflict, Invalid, Problem
from cloud.models import IdempotentAnswer
from cloud.secrets import SecretBox

TTL_S = 24 * 3600.0
HEADER = "Idempotency-Key"


class Replay(NamedTuple):
    """The first answer to a request sent again with its Idempotency-Key."""

    status: int
    text: str


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not all(" " < c <= "~" for c in key):
        raise Invalid(f"bad {HEADER}", [Problem(HEADER, "must be 1 to 255 visible ASCII characters (no spaces)")])
    return key


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


def once(scope: str, key: str, print_: str, now: float, box: SecretBox, fn, *args):
    """`fn(*args)` (a store function whose answer is a document, or a tuple
    whose first item is) in the caller's transaction, recorded under
    (scope, key); or the Replay of the answer recorded before."""
    row = IdempotentAnswer.get_or_none((IdempotentAnswer.scope == scope) & (IdempotentAnswer.key == key))
    if row is not None and row.created_at >= now - TTL_S:
        if row.fingerprint != print_:
            raise Invalid(f"this {HEADER} was used for another request", [Problem(
                HEADER, f"{key!r} was first sent with another path or body; use a new key for a new request")])
        return Replay(row.status, box.open(row.answer).decode())
    result = fn(*args)
    doc = result[0] if isinstance(result, tuple) else result
    IdempotentAnswer.delete().where(IdempotentAnswer.created_at < now - TTL_S).execute()
    try:
        with IdempotentAnswer._meta.database.atomic():  # a savepoint: the unique index decides a race
            IdempotentAnswer.create(scope=scope, key=key, fingerprint=print_, status=201,
                                    answer=box.seal(json.dumps(doc).encode()), created_at=now)
    except peewee.IntegrityError:
        raise Conflict(f"a request with this {HEADER} is being carried out; send it again for its answer") from None
    return result


def forget(scope: str, key: str) -> None:
    """Drop a recorded answer whose object was undone after all (a device the
    broker would not take)."""
    IdempotentAnswer.delete().where((IdempotentAnswer.scope == scope) & (IdempotentAnswer.key == key)).execute()
