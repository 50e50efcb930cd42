"""Timestamps in API documents: RFC 3339 UTC with a Z, like seed 001."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache


@lru_cache(maxsize=4096)  # the same stored times are shown again and again (a flow read a thousand times a second)
def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
