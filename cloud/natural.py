"""Natural order of ids ("node-2" before "node-10"), as a text key a
database sorts with a plain index, so lists page by it (cloud.store.paging).

Rules:
1. Letters are compared without case; other characters as they are.
2. A run of digits is compared as a number: leading zeros dropped, then
   written as its length (two digits) and its digits, so a shorter number
   sorts first ("2" -> "012", "10" -> "0210").
3. Ties ("node-007" and "node-7") are broken by the id itself, which the
   lists put after this key.
Ids are at most 64 characters, so a key is at most 128.
"""

from __future__ import annotations

import re

MAX_KEY = 128
_DIGITS = re.compile(r"[0-9]+")


def _number(match: re.Match) -> str:
    digits = match.group().lstrip("0") or "0"
    return f"{len(digits):02d}{digits}"


def natural_key(text: str) -> str:
    return _DIGITS.sub(_number, text.lower())
