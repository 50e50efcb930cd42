from __future__ import annotations

import re

from aiohttp import web

from cloud.errors import Invalid, Problem
from cloud.schemas import MAX_NUMBER
from cloud.store import idempotency, paging


def now(request: web.Request) -> float:
    """The time by the app's one clock (Config.clock): what every store stamps."""
    from cloud.appkeys import CONFIG

    return request.app[CONFIG].clock()


def ok(body, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


# ASCII digits only: str.isdigit() takes '³' (which int() then refuses: a
# 500), and int() itself takes ' 7 ', '+7', '1_0' and '٧'. Nineteen digits
# hold every number up to MAX_NUMBER, and no longer text reaches int().
_DIGITS = re.compile(r"[0-9]{1,19}")


def whole_number(raw: str, pointer: str, name: str, low: int = 1, high: int = MAX_NUMBER) -> int:
    """`raw` as an int from `low` to `high`, or Invalid naming `pointer`."""
    if not _DIGITS.fullmatch(raw):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise Invalid(f"{name} must be a whole number",
                      [Problem(pointer, f"{shown!r} is not a whole number (ASCII digits 0-9)")])
    value = int(raw)
    if not low <= value <= high:
        raise Invalid(f"{name} is out of range", [Problem(pointer, f"must be from {low} to {high}")])
    return value


def int_param(request: web.Request, name: str, where: str = "query", default: int | None = None,
              high: int = MAX_NUMBER) -> int:
    raw = request.match_info.get(name) if where == "path" else request.query.get(name)
    pointer = f"?{name}" if where == "query" else f"{{{name}}}"
    if raw is None:
        if default is not None:
            return default
        raise Invalid(f"missing {name}", [Problem(pointer, "required")])
    return whole_number(raw, pointer, name, high=high)


def bool_param(request: web.Request, name: str) -> bool | None:
    """An optional true/false query parameter (1/0, yes/no too); anything else is a 422."""
    raw = request.query.get(name)
    if not raw:  # absent, or left empty by a form: not given
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise Invalid(f"{name} must be true or false", [Problem(f"?{name}", "must be true or false")])


def choice_param(request: web.Request, name: str, choices) -> str | None:
    """An optional query filter that must be one of `choices`: a misspelt
    `?status=runing` is a 422 naming the choices, not an empty list."""
    raw = request.query.get(name)
    if raw is not None and raw not in choices:
        raise Invalid(f"unknown {name}", [Problem(f"?{name}", f"{raw!r} is not one of {', '.join(choices)}")])
    return raw


def admin_only(handler):
    handler.min_role = "admin"
    return handler


def any_role(handler):
    """A change any logged-in role may make (refresh, log out): viewers too."""
    handler.min_role = "viewer"
    return handler


def page_params(request: web.Request, default: int = paging.DEFAULT_LIMIT,
                maximum: int = paging.MAX_LIMIT) -> tuple[int, str | None]:
    """`?limit=` (1 to `maximum`, else a 422 naming it) and `?cursor=` of a
    list; the cursor itself is checked by the store (cloud.store.paging)."""
    return int_param(request, "limit", default=default, high=maximum), request.query.get("cursor") or None


def paged(request: web.Request, name: str, page: tuple[list, str | None], **extra) -> web.Response:
    """A list page: `{name: [...], "next": link or null, **extra}`; the
    link is this request's with the next cursor (filters and limit kept)."""
    items, cursor = page
    link = str(request.rel_url.update_query(cursor=cursor)) if cursor else None
    return ok({**extra, name: items, "next": link})


async def run_once(request: web.Request, fn, *args):
    """`request.app[DB].run(fn, *args)` for a creating POST, carried out at
    most once per API key and `Idempotency-Key` header when it has one
    (cloud.store.idempotency); a repeat answers an `idempotency.Replay`."""
    from cloud.appkeys import BOX, CONFIG, DB
    from cloud.middleware import KEY_HASH

    raw = request.headers.get(idempotency.HEADER)
    if raw is None:
        return await request.app[DB].run(fn, *args)
    key = idempotency.check_key(raw)
    print_ = idempotency.fingerprint(request.method, request.path_qs, await request.read())
    return await request.app[DB].run(idempotency.once, request[KEY_HASH], key, print_, request.app[CONFIG].clock(),
                                     request.app[BOX], fn, *args)


def replayed(result) -> web.Response | None:
    """The first answer again, when `run_once` found one."""
    if isinstance(result, idempotency.Replay):
        return web.Response(status=result.status, text=result.text, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    return None
