"""Strict JSON text -> value, with the line and column of what is wrong.

Python's json module accepts `NaN`, `Infinity` and `-Infinity`, which are not
JSON (RFC 8259) and which no device could encode back; they are refused here
with their position, like any syntax error.
"""

from __future__ import annotations

import json
from typing import Any

_CONSTANTS = ("-Infinity", "Infinity", "NaN")


class JSONTextError(ValueError):
    def __init__(self, message: str, line: int, column: int):
        self.message, self.line, self.column = message, line, column
        super().__init__(f"{message} at line {line}, column {column}")


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _find_constant(text: str) -> tuple[int, str]:
    """Position of the first NaN/Infinity outside a string."""
    in_str = escaped = False
    for pos, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        else:
            for word in _CONSTANTS:
                if text.startswith(word, pos):
                    return pos, word
    return 0, "NaN"


class _Constant(Exception):
    pass


def _refuse(_word: str):
    raise _Constant()


def loads(text: str | bytes) -> Any:
    """Parse strict JSON; JSONTextError with line and column on anything else."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONTextError(f"not UTF-8 text ({exc.reason})", 1, exc.start + 1) from None
    try:
        return json.loads(text, parse_constant=_refuse)
    except _Constant:
        pos, word = _find_constant(text)
        line, col = _line_col(text, pos)
        raise JSONTextError(f"{word} is not valid JSON (use a number, or null)", line, col) from None
    except json.JSONDecodeError as exc:
        raise JSONTextError(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise JSONTextError("nested too deeply", 1, 1) from None
