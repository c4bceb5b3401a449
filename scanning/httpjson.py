"""Request bodies as JSON, for every HTTP endpoint (the results API and the local host).

``json.loads`` alone lets hostile bodies through as server errors: an integer of over 4,300
digits raises ``ValueError`` (CPython's int-conversion limit), deep nesting
``RecursionError``, and ``NaN``/``Infinity``/``1e999`` come back as floats that no field
accepts. Here each of those is a ``BadRequest`` (HTTP 400) saying what was wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any

from scanning.errors import BadRequest

# Every integer we accept fits in 64 bits (19 digits); a longer one is no count, size or time.
MAX_INTEGER_DIGITS = 19


def _integer(text: str) -> int:
    digits = len(text.removeprefix("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise BadRequest(f"the request body has a {digits}-digit integer; integers may have at "
                         f"most {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"the request body has a number out of range: {text[:40]}")
    return value


def _constant(name: str) -> Any:
    raise BadRequest(f"the request body has {name}, which is not a JSON number")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON every endpoint answers an error with."""
    return {"error": {"code": code, "message": message, **extra}}


def parse_json_body(body: bytes, what: str, *, max_bytes: int) -> Any:
    """``body`` as JSON (UTF-8, at most ``max_bytes``); BadRequest for anything else."""
    if not body:
        raise BadRequest(f"the request needs a JSON body ({what})")
    if len(body) > max_bytes:
        raise BadRequest(f"the request body is larger than {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the request body is not UTF-8: {error.reason} at byte "
                         f"{error.start}") from error
    try:
        return json.loads(text, parse_int=_integer, parse_float=_finite,
                          parse_constant=_constant)
    except json.JSONDecodeError as error:
        raise BadRequest(f"the request body is not JSON: {error}") from error
    except RecursionError as error:
        raise BadRequest("the request body is nested too deeply") from error
