"""Bounded JSON parsing of untrusted header text: size, nesting depth and number size are checked first.

`json.loads` alone is not safe on attacker bytes: a long integer literal raises a plain `ValueError` (Python's
integer string conversion limit, CPython >= 3.11), deep nesting raises `RecursionError`, `NaN`/`Infinity` are
accepted, and duplicate keys silently keep the last value. `load_bounded` turns every one of these into a
`MalformedPayload` with a reason, and bounds the work before the parser starts: the text length is capped, the
nesting depth is measured by a vectorised linear scan, and number literals longer
than `MAX_NUMBER_CHARS` are rejected by the parse hooks before any conversion.
"""

from __future__ import annotations

import json
import math

import numpy as np

from flchain.codec.errors import MalformedPayload

MAX_NUMBER_CHARS = 24  # an unsigned 64-bit integer has 20 digits; no header field needs more
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.array(list(b"[{"), dtype=np.uint8)
_CLOSE = np.array(list(b"]}"), dtype=np.uint8)


def nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting of JSON text `raw`, ignoring brackets inside string literals.

    Vectorised and linear: a quote is real when an even number of backslashes precedes it, a bracket counts when an
    even number of real quotes precedes it. (A regex that skips string literals is quadratic on runs of escaped
    quotes.)
    """
    text = np.frombuffer(raw, dtype=np.uint8)
    if text.size == 0:
        return 0
    positions = np.arange(text.size, dtype=np.int64)
    backslash = text == _BACKSLASH
    last_other = np.maximum.accumulate(np.where(backslash, -1, positions))
    run_before = np.empty(text.size, dtype=np.int64)
    run_before[0] = 0
    run_before[1:] = positions[:-1] - last_other[:-1]
    quote = (text == _QUOTE) & (run_before % 2 == 0)
    outside = np.cumsum(quote) % 2 == 0
    steps = np.zeros(text.size, dtype=np.int64)
    steps[outside & np.isin(text, _OPEN)] = 1
    steps[outside & np.isin(text, _CLOSE)] = -1
    return int(np.cumsum(steps).max(initial=0))


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedPayload(f"integer literal of {len(text)} characters (limit {MAX_NUMBER_CHARS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedPayload(f"number literal of {len(text)} characters (limit {MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise MalformedPayload(f"number literal {text!r} is not finite")
    return value


def _parse_constant(text: str) -> float:
    raise MalformedPayload(f"JSON constant {text!r} is not allowed")


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedPayload(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def load_bounded(raw: bytes, *, what: str, max_bytes: int, max_depth: int) -> object:
    """Parse `raw` as strict JSON within `max_bytes` and `max_depth`; raise MalformedPayload otherwise."""
    if len(raw) > max_bytes:
        raise MalformedPayload(f"{what} is {len(raw)} bytes, limit {max_bytes}")
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise MalformedPayload(f"{what} nests {depth} levels deep, limit {max_depth}")
    try:
        text = raw.decode("utf-8")
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_int=_parse_int, parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except MalformedPayload as e:
        raise MalformedPayload(f"{what}: {e}") from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise MalformedPayload(f"{what} is not valid UTF-8 JSON: {e}") from e
