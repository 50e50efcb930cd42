"""A validation problem: where (a JSON pointer into the submitted body) and what."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    pointer: str  # RFC 6901, e.g. "/definition/nodes/1/config/pin"; "" is the whole body
    message: str  # what is wrong and what would be right

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        # "" is the whole body; "/" would be a pointer to the key "" (RFC 6901)
        return f"{self.pointer or '(the whole flow)'}: {self.message}"


def pointer(*parts: str | int) -> str:
    """Join path parts into a JSON pointer, escaping `~` and `/` (RFC 6901)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def join(base: str, *parts: str | int) -> str:
    return base + pointer(*parts)


def suggest(word: str, choices) -> str:
    """` (did you mean 'x'?)` when a close match exists, else ``."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def describe(value) -> str:
    """A short, type-revealing rendering of a JSON value for messages."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    if value is None:
        return "null"
    text = repr(value) if not isinstance(value, (list, dict)) else kind[type(value)]
    if isinstance(value, (list, dict)):
        return text
    return f"{kind.get(type(value), type(value).__name__)} {text[:40]}"
