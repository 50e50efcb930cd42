"""Webhooks: events (`deployment.<status>`, `execution.<status>`) POSTed to
subscribers, signed as Standard Webhooks (`whsec_` secrets; the sender,
cloud.webhook_sender, makes the headers), retried with backoff, and kept as
dead letters when they never get through.

`emit` is called inside the transaction that changed the state, so an event
is recorded if and only if the change is; `cloud.webhook_sender` delivers.
"""

from __future__ import annotations

import base64
import binascii
import os

from cloud import schemas
from cloud.db import for_update, get_by_pk
from cloud.engine.state import DEPLOYMENT_STATUSES
from cloud.errors import Conflict, Invalid, NotFound, Problem
from cloud.models import Delivery, Webhook
from cloud.secrets import SecretBox
from cloud.store import paging
from cloud.timefmt import iso

SECRET_PREFIX = "whsec_"  # Standard Webhooks: the prefix, then the key in base64
SECRET_BYTES = (24, 64)  # the spec's recommended key sizes
MAX_ATTEMPTS = 6
BACKOFF_S = 2.0  # then 4, 8, 16, 32 s
BACKOFF_MAX_S = 300.0
CLAIM_S = 60.0  # a delivery being sent is not due for anyone else for this long (due)


# Every event a webhook can get: family -> the statuses it is sent for.
EVENTS = {
    "deployment": DEPLOYMENT_STATUSES,
    "execution": ("completed", "failed", "cancelled", "timed_out"),
    "pipeline_run": ("completed", "failed", "cancelled"),
}


def _event_problems(patterns: list[str]) -> list[Problem]:
    """A subscription that can never match (`deployment.complete`) is a typo worth telling."""
    problems = []
    for i, pattern in enumerate(patterns):
        family, dot, status = pattern.partition(".")
        if pattern == "*" or (dot and family in EVENTS and (not status or status in EVENTS[family])):
            continue
        known = ", ".join(f"{f}.{s}" for f, statuses in EVENTS.items() for s in statuses)
        problems.append(Problem(f"/events/{i}", f"no event {pattern!r}: use '*', a prefix such as 'deployment.', "
                                                f"or one of {known}"))
    return problems


def _matches(patterns: list[str], event: str) -> bool:
    return any(p == "*" or p == event or (p.endswith(".") and event.startswith(p)) for p in patterns)


def emit(event: str, payload: dict, now: float) -> int:
    """Queue `event` for every active webhook that wants it."""
    rows = [{"webhook": w.id, "event": event, "payload": {"event": event, "at": iso(now), "data": payload},
             "next_at": now, "created_at": now}
            for w in Webhook.select().where(Webhook.active == True) if _matches(w.events, event)]  # noqa: E712
    if rows:
        Delivery.insert_many(rows).execute()
    return len(rows)


def _secret_problem(secret: str) -> str | None:
    """Why `secret` is not a Standard Webhooks secret, or None when it is."""
    if not secret.startswith(SECRET_PREFIX):
        return f"a webhook secret is {SECRET_PREFIX!r} then base64 (Standard Webhooks); leave it out to get one"
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return f"the part after {SECRET_PREFIX!r} is not base64"
    if not SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]:
        return f"the key is {len(key)} bytes; use {SECRET_BYTES[0]} to {SECRET_BYTES[1]}"
    return None


def signing_key(secret: bytes) -> bytes:
    """The HMAC key of a stored secret: the decoded key of a `whsec_` secret;
    a secret stored before Standard Webhooks (any text) signs with its bytes."""
    text = secret.decode()
    if text.startswith(SECRET_PREFIX):
        return base64.b64decode(text[len(SECRET_PREFIX):])
    return secret


def webhook_doc(w: Webhook) -> dict:
    return {"id": w.id, "url": w.url, "events": w.events, "active": w.active, "created_at": iso(w.created_at)}


def create_webhook(body: dict, box: SecretBox, now: float) -> dict:
    req = schemas.parse(schemas.WebhookCreate, body)
    problems = _event_problems(req.events)
    if req.secret is not None and (why := _secret_problem(req.secret)):
        problems.append(Problem("/secret", why))
    if problems:
        raise Invalid("the webhook has problems", problems)
    secret = req.secret or SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES[0])).decode()
    w = Webhook.create(url=req.url, events=req.events, secret_sealed=box.seal(secret.encode()), created_at=now)
    return {**webhook_doc(w), "secret": secret}


def list_webhooks(limit: int = paging.DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    got = paging.page(Webhook.select(), "webhooks", (Webhook.id,), limit, cursor)
    return [webhook_doc(w) for w in got.rows], got.cursor


def _get(webhook_id: int) -> Webhook:
    w = get_by_pk(Webhook, webhook_id)
    if w is None:
        raise NotFound(f"no webhook {webhook_id}")
    return w


def delete_webhook(webhook_id: int) -> None:
    _get(webhook_id)
    Delivery.delete().where(Delivery.webhook == webhook_id).execute()
    Webhook.delete().where(Webhook.id == webhook_id).execute()


def delivery_doc(d: Delivery) -> dict:
    return {"id": d.id, "webhook_id": d.webhook, "event": d.event, "status": d.status, "attempts": d.attempts,
            "last_error": d.last_error or None, "next_at": iso(d.next_at) if d.status == "pending" else None,
            "created_at": iso(d.created_at), "delivered_at": iso(d.delivered_at), "payload": d.payload}


def list_deliveries(webhook_id: int, status: str | None = None, limit: int = paging.DEFAULT_LIMIT,
                    cursor: str | None = None) -> tuple[list[dict], str | None]:
    """One page of a webhook's deliveries, newest first (dead letters
    included: nothing is out of reach past some count)."""
    _get(webhook_id)
    query = Delivery.select().where(Delivery.webhook == webhook_id)
    if status:
        query = query.where(Delivery.status == status)
    got = paging.page(query, "deliveries", (Delivery.id,), limit, cursor, descending=True)
    return [delivery_doc(d) for d in got.rows], got.cursor


def redeliver(webhook_id: int, delivery_id: int, now: float) -> dict:
    """Give a dead letter another round of attempts."""
    d = Delivery.get_or_none((Delivery.id == delivery_id) & (Delivery.webhook == webhook_id))
    if d is None:
        raise NotFound(f"webhook {webhook_id} has no delivery {delivery_id}")
    if d.status != "dead":
        raise Conflict(f"delivery {delivery_id} is {d.status}; only dead letters are redelivered",
                       current_status=d.status)
    d.status, d.attempts, d.next_at = "pending", 0, now  # due at once by the sender's clock
    d.save()
    return delivery_doc(d)


# -- the sender's side ------------------------------------------------------------

def due(now: float, limit: int = 50) -> list[dict]:
    """The deliveries due now, taken for sending: id, event, payload, url,
    secret_sealed. Taken: not due again for CLAIM_S (record_attempt sets
    when it is), so other senders (cloud replicas) pass over it, and a
    sender that dies mid-attempt leaves it to be sent again after CLAIM_S
    (receivers drop the repeat by its webhook-id). On PostgreSQL two
    replicas asking at once skip each other's rows (SKIP LOCKED)."""
    ids = [d for (d,) in for_update(Delivery.select(Delivery.id)
                                    .where((Delivery.status == "pending") & (Delivery.next_at <= now))
                                    .order_by(Delivery.next_at).limit(limit), skip_locked=True).tuples()]
    if not ids:
        return []
    Delivery.update(next_at=now + CLAIM_S).where(Delivery.id.in_(ids)).execute()
    return list(Delivery.select(Delivery.id, Delivery.event, Delivery.payload, Webhook.url, Webhook.secret_sealed)
                .join(Webhook, on=(Webhook.id == Delivery.webhook))
                .where(Delivery.id.in_(ids)).order_by(Delivery.next_at, Delivery.id).dicts())


def record_attempt(delivery_id: int, ok: bool, error: str, now: float,
                   backoff_s: float = BACKOFF_S, max_attempts: int = MAX_ATTEMPTS) -> str:
    d = Delivery.get_by_id(delivery_id)
    d.attempts += 1
    if ok:
        d.status, d.delivered_at, d.last_error = "delivered", now, ""
    elif d.attempts >= max_attempts:
        d.status, d.last_error = "dead", error
    else:
        d.last_error = error
        d.next_at = now + min(backoff_s * 2 ** (d.attempts - 1), BACKOFF_MAX_S)
    d.save()
    return d.status
