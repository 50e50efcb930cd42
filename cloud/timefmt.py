"""Timestamps in API documents: RFC 3339 UTC with a Z, like seed 001."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
