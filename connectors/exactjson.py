"""JSON decoding that keeps numbers exact, for venues that send prices and sizes as JSON
numbers: a float would round them before the fixed-point parser sees them."""

from __future__ import annotations

import json


class Num(str):
    """The source text of a JSON number; a subclass of str so that code can tell a
    number from a string that happens to hold digits."""

    __slots__ = ()


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def loads_exact(text: bytes | str):
    """Numbers come back as their exact text (str); NaN and Infinity are rejected."""
    return json.loads(text, parse_float=str, parse_int=str, parse_constant=_reject_constant)


def loads_typed(text: bytes | str):
    """As loads_exact, but numbers come back as ``Num`` (still exact text)."""
    return json.loads(text, parse_float=Num, parse_int=Num, parse_constant=_reject_constant)
