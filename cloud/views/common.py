from __future__ import annotations

from aiohttp import web

from cloud.errors import Invalid, Problem
from cloud.schemas import MAX_NUMBER


def ok(body, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def int_param(request: web.Request, name: str, where: str = "query") -> int:
    raw = request.match_info.get(name) if where == "path" else request.query.get(name)
    pointer = f"?{name}" if where == "query" else f"{{{name}}}"
    if raw is None:
        raise Invalid(f"missing {name}", [Problem(pointer, "required")])
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be a whole number", [Problem(pointer, f"{raw!r} is not a whole number")]) from None
    if not 1 <= value <= MAX_NUMBER:
        raise Invalid(f"{name} is out of range", [Problem(pointer, f"must be from 1 to {MAX_NUMBER}")])
    return value


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
