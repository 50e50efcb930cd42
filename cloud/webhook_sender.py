"""Delivers queued webhook events (cloud.store.webhooks) as the Standard
Webhooks spec (standardwebhooks.com) says: a POST with `webhook-id` (the
delivery's id, the same on every retry, so a receiver can drop duplicates),
`webhook-timestamp` (this attempt, Unix seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, made by the
`standardwebhooks` package with the webhook's secret). A 2xx is delivered;
anything else is retried with backoff, then kept as a dead letter."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import aiohttp
from standardwebhooks import Webhook as Signer

from cloud.store import webhooks as store

log = logging.getLogger("fleetflow.webhooks")
TIMEOUT_S = 5.0


def signed_headers(secret: bytes, delivery_id: int, body: bytes, now: float) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt at a delivery."""
    msg_id = f"msg_{delivery_id}"
    at = datetime.fromtimestamp(int(now), tz=timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now)),
            "webhook-signature": Signer(secret).sign(msg_id, at, body.decode())}


class Sender:
    def __init__(self, db, box, clock, poll_s: float = 1.0, backoff_s: float = store.BACKOFF_S,
                 max_attempts: int = store.MAX_ATTEMPTS):
        self.db, self.box, self.clock = db, box, clock
        self.poll_s, self.backoff_s, self.max_attempts = poll_s, backoff_s, max_attempts

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    batch = await self.db.run(store.due, self.clock())
                    await asyncio.gather(*(self._deliver(http, d) for d in batch))
                except asyncio.CancelledError:
                    raise
                except Exception:  # the sender keeps going whatever one delivery does
                    log.exception("webhook delivery round failed")
                await asyncio.sleep(self.poll_s)

    async def _deliver(self, http: aiohttp.ClientSession, d: dict) -> None:
        body = json.dumps(d["payload"], separators=(",", ":")).encode()
        secret = store.signing_key(self.box.open(d["secret_sealed"]))
        headers = {"Content-Type": "application/json", "X-Fleetflow-Event": d["event"],
                   **signed_headers(secret, d["id"], body, self.clock())}
        ok, error = False, ""
        try:
            async with http.post(d["url"], data=body, headers=headers) as resp:
                ok = 200 <= resp.status < 300
                error = "" if ok else f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        status = await self.db.run(store.record_attempt, d["id"], ok, error, self.clock(), self.backoff_s,
                                   self.max_attempts)
        if status == "dead":
            log.warning("webhook delivery %s is a dead letter: %s", d["id"], error)
