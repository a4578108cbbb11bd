"""Exact conversion between exchange decimal text and int64 fixed point.

Exchanges send prices and sizes as decimal strings; the engine stores them as int64
``value = text * 10**decimals``.  No float is ever involved: a conversion is exact or it
fails with a clear error.

Grammar shared by :func:`to_fixed` (Python) and :func:`parse_fixed` (Numba)::

    number   := sign? mantissa exponent?
    sign     := '+' | '-'
    mantissa := digits ('.' digits?)? | '.' digits
    exponent := ('e' | 'E') sign? digits
    digits   := [0-9]+

No whitespace, underscores, "nan"/"inf", hex or non-ASCII digits.  When several errors
apply, the first of malformed, precision loss, overflow wins, in both implementations.
"""

from __future__ import annotations

import operator
import re

import numpy as np
from numba import njit

MAX_DECIMALS = 18
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

PARSE_OK = 0
PARSE_MALFORMED = 1
PARSE_PRECISION = 2
PARSE_OVERFLOW = 3

_SHOW_CHARS = 40  # error messages show at most this much of the offending text
_FAST_MAX_LEN = 40  # fast path only for short text, so int() stays cheap and bounded
_EXP_CAP = 10**15  # |exponent| saturates here; no text is long enough for it to matter
_MAX_INT_DIGITS = 19  # 10**19 > INT64_MAX: a representable integer has at most 19 digits
_MULT_MIN = -(INT64_MAX // 10)  # negative accumulator: acc * 10 cannot wrap while acc >= this
_POW10 = tuple(10**i for i in range(MAX_DECIMALS + 1))

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")

_PLUS, _MINUS, _DOT, _ZERO, _NINE, _E_LOWER, _E_UPPER = b"+-.09eE"


class FixedPointError(ValueError):
    """Text that is malformed, or not exactly representable as int64 at ``decimals``.

    ``code`` is the matching ``PARSE_*`` constant, so Python and Numba results compare.
    """

    def __init__(self, text: str | bytes, code: int, decimals: int | None = None) -> None:
        if isinstance(text, (bytearray, memoryview)):
            text = bytes(text)
        self.text, self.code, self.decimals = text, code, decimals
        shown = text
        if len(text) > _SHOW_CHARS:
            shown = text[:_SHOW_CHARS] + (b"..." if isinstance(text, bytes) else "...")
        if code == PARSE_MALFORMED:
            reason = "malformed decimal number"
        elif code == PARSE_PRECISION:
            reason = f"precision loss: needs more than {decimals} decimals"
        else:
            reason = f"overflow: outside int64 at {decimals} decimals"
        super().__init__(f"{shown!r}: {reason}")

    def __reduce__(self):
        return self.__class__, (self.text, self.code, self.decimals)


def _check_decimals(decimals: int) -> int:
    d = operator.index(decimals)
    if not 0 <= d <= MAX_DECIMALS:
        raise ValueError(f"decimals must be in 0..{MAX_DECIMALS}, got {d}")
    return d


def _as_str(text: str | bytes) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            return str(text, "ascii")
        except UnicodeDecodeError:
            raise FixedPointError(bytes(text), PARSE_MALFORMED) from None
    raise TypeError(f"expected str or bytes, got {type(text).__name__}")


def _significand(s: str, text: str | bytes) -> tuple[bool, str, int]:
    """Split text into (negative, significant digits, power of ten of the last digit).

    The digits have no leading or trailing zeros; they are "" for zero.
    """
    m = _NUMBER.fullmatch(s)
    if m is None:
        raise FixedPointError(text, PARSE_MALFORMED)
    sign, int_digits, frac_digits, exp_text = m.groups()
    frac_digits = frac_digits or ""
    if not (int_digits or frac_digits):
        raise FixedPointError(text, PARSE_MALFORMED)
    digits = (int_digits + frac_digits).lstrip("0")
    sig = digits.rstrip("0")
    if not sig:
        return False, "", 0
    exp = 0
    if exp_text:
        magnitude = exp_text.lstrip("+-").lstrip("0")
        # int() refuses > 4300 digits; anything past the cap decides the same way anyway.
        exp = int(magnitude or "0") if len(magnitude) <= 15 else _EXP_CAP
        exp = -exp if exp_text[0] == "-" else exp
    return sign == "-", sig, exp - len(frac_digits) + (len(digits) - len(sig))


def to_fixed(text: str | bytes, decimals: int) -> int:
    """Exact integer ``text * 10**decimals``; raises FixedPointError rather than round.

    Plain "123.456" with at most ``decimals`` fraction digits takes a fast path (partition,
    isdigit, int(); no Decimal, no regex); exponents and long text take the general path.
    """
    if type(decimals) is not int or not 0 <= decimals <= MAX_DECIMALS:
        decimals = _check_decimals(decimals)
    s = text if type(text) is str else _as_str(text)
    int_part, _, frac = s.partition(".")
    pad = decimals - len(frac)
    if pad >= 0 and len(s) <= _FAST_MAX_LEN and s.isascii():
        digits = int_part + frac  # ASCII here, so isdigit() means exactly [0-9]+
        if digits.isdigit() or (int_part and int_part[0] in "+-" and digits[1:].isdigit()):
            value = int(digits) * _POW10[pad]  # int() applies the sign
            if INT64_MIN <= value <= INT64_MAX:
                return value
            raise FixedPointError(text, PARSE_OVERFLOW, decimals)

    negative, sig, power = _significand(s, text)
    if not sig:
        return 0
    power += decimals
    if power < 0:
        raise FixedPointError(text, PARSE_PRECISION, decimals)
    if len(sig) + power > _MAX_INT_DIGITS:  # checked before 10**power: "1e400" stays cheap
        raise FixedPointError(text, PARSE_OVERFLOW, decimals)
    value = int(sig) * 10**power
    if negative:
        value = -value
    if not INT64_MIN <= value <= INT64_MAX:
        raise FixedPointError(text, PARSE_OVERFLOW, decimals)
    return value


def from_fixed(value: int, decimals: int) -> str:
    """Canonical minimal decimal text of ``value / 10**decimals``: "123.45", "5", "-0.1", "0".

    Inverse of :func:`to_fixed` (``to_fixed(from_fixed(v, d), d) == v`` for int64 ``v``).
    """
    decimals = _check_decimals(decimals)
    value = operator.index(value)  # Python int: negating numpy INT64_MIN would wrap
    sign = "-" if value < 0 else ""
    digits = str(abs(value))
    if decimals == 0:
        return sign + digits
    digits = digits.rjust(decimals + 1, "0")
    int_part, frac = digits[:-decimals], digits[-decimals:].rstrip("0")
    return sign + int_part + ("." + frac if frac else "")


def decimals_for(text: str | bytes) -> int:
    """Smallest ``decimals`` at which ``text`` is exact, e.g. to pick a scale from a tick size.

    "0.00010000" -> 4, "1e-8" -> 8, "10" -> 0.  The result may exceed MAX_DECIMALS.
    """
    _, sig, power = _significand(_as_str(text), text)
    return max(0, -power) if sig else 0


@njit(nogil=True, cache=True)
def parse_fixed(buf, start, end, decimals):
    """Numba twin of :func:`to_fixed` for raw frame bytes ``buf[start:end]`` (uint8 array).

    Returns ``(value, err)`` with ``err`` a ``PARSE_*`` code and value 0 unless PARSE_OK.
    Same grammar, exactness and error precedence as to_fixed; no allocation, and the
    int64 accumulation is range-checked before every step, so it never wraps.
    """
    if decimals < 0 or decimals > MAX_DECIMALS:
        raise ValueError("parse_fixed: decimals must be in 0..18")
    if start < 0 or end > len(buf) or start > end:
        raise IndexError("parse_fixed: [start, end) is outside buf")

    # Pass 1: validate, and locate the first/last non-zero mantissa digit and the exponent.
    i = start
    negative = False
    if i < end and (buf[i] == _MINUS or buf[i] == _PLUS):
        negative = buf[i] == _MINUS
        i += 1
    mantissa_start = i
    n_digits = 0
    n_int = -1  # digits before the '.', set when the '.' is seen
    first = -1
    last = -1
    while i < end:
        c = buf[i]
        if _ZERO <= c <= _NINE:
            if c != _ZERO:
                if first < 0:
                    first = n_digits
                last = n_digits
            n_digits += 1
        elif c == _DOT and n_int < 0:
            n_int = n_digits
        else:
            break
        i += 1
    if n_digits == 0:
        return 0, PARSE_MALFORMED
    if n_int < 0:
        n_int = n_digits

    exp = 0
    if i < end and (buf[i] == _E_LOWER or buf[i] == _E_UPPER):
        i += 1
        exp_negative = False
        if i < end and (buf[i] == _MINUS or buf[i] == _PLUS):
            exp_negative = buf[i] == _MINUS
            i += 1
        exp_start = i
        while i < end and _ZERO <= buf[i] <= _NINE:
            if exp < _EXP_CAP:
                exp = min(exp * 10 + (np.int64(buf[i]) - _ZERO), _EXP_CAP)
            i += 1
        if i == exp_start:
            return 0, PARSE_MALFORMED
        if exp_negative:
            exp = -exp
    if i != end:
        return 0, PARSE_MALFORMED
    if first < 0:
        return 0, PARSE_OK

    # Digit k of the mantissa has power of ten n_int - 1 - k before scaling.
    low = n_int - 1 - last + exp + decimals
    if low < 0:
        return 0, PARSE_PRECISION
    if n_int - 1 - first + exp + decimals >= _MAX_INT_DIGITS:
        return 0, PARSE_OVERFLOW

    # Pass 2: accumulate negatively (|INT64_MIN| > INT64_MAX), checking before each step.
    limit = INT64_MIN if negative else -INT64_MAX
    acc = np.int64(0)
    k = 0
    i = mantissa_start
    while k <= last:
        c = buf[i]
        i += 1
        if c == _DOT:
            continue
        if k >= first:
            d = np.int64(c) - _ZERO
            if acc < _MULT_MIN or acc * 10 < limit + d:
                return 0, PARSE_OVERFLOW
            acc = acc * 10 - d
        k += 1
    for _ in range(low):
        if acc < _MULT_MIN or acc * 10 < limit:
            return 0, PARSE_OVERFLOW
        acc *= 10
    return (acc if negative else -acc), PARSE_OK
