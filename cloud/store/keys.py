"""API keys: random tokens with a role, stored as sha256 hashes."""

from __future__ import annotations

import time

from cloud import secrets
from cloud.errors import Invalid, NotFound, Problem
from cloud.models import ApiKey
from cloud.store import paging
from cloud.timefmt import iso

ROLES = ("admin", "operator", "viewer")
PREFIX = "ffk_"


def create_key(role: str, name: str = "", now: float | None = None) -> dict:
    """A new key; the token is in the answer, and nowhere else ever again.
    The API passes its clock; a key made offline (`fleetflow keys create`,
    the tools' own stacks) is stamped with the wall clock."""
    if role not in ROLES:
        raise Invalid("unknown role", [Problem("/role", f"must be one of {', '.join(ROLES)}")])
    token = secrets.new_token(PREFIX)
    row = ApiKey.create(key_hash=secrets.hash_token(token), prefix=token[:10], name=name, role=role,
                        created_at=time.time() if now is None else now)
    return {**key_doc(row), "key": token}


def key_doc(row: ApiKey) -> dict:
    return {"id": row.id, "name": row.name, "role": row.role, "prefix": row.prefix,
            "created_at": iso(row.created_at), "revoked": row.revoked}


def role_of(token: str) -> str | None:
    found = key_of(token)
    return None if found is None else found[2]


def key_of(token: str) -> tuple[int, str, str] | None:
    """(id, name, role) of a working key, None for an unknown or revoked one."""
    row = ApiKey.get_or_none(ApiKey.key_hash == secrets.hash_token(token))
    return None if row is None or row.revoked else (row.id, row.name, row.role)


def list_keys(limit: int = paging.DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[dict], str | None]:
    got = paging.page(ApiKey.select(), "keys", (ApiKey.id,), limit, cursor)
    return [key_doc(r) for r in got.rows], got.cursor


def revoke_key(key_id: int) -> dict:
    row = ApiKey.get_or_none(ApiKey.id == key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    row.revoked = True
    row.save()
    return key_doc(row)
