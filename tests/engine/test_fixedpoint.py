"""Tests for engine.fixedpoint: exact decimal text <-> int64 fixed point."""

from __future__ import annotations

import pickle
import re
from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.fixedpoint import (
    INT64_MAX,
    INT64_MIN,
    PARSE_MALFORMED,
    PARSE_OK,
    PARSE_OVERFLOW,
    PARSE_PRECISION,
    FixedPointError,
    decimals_for,
    from_fixed,
    parse_fixed,
    to_fixed,
)

# Written independently of the module's regex: sign, mantissa with >= 1 digit, exponent.
_GRAMMAR = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")

decimals_st = st.integers(0, 18)
digits_st = st.text("0123456789", max_size=22)


def reference(text: str | bytes, decimals: int) -> tuple[int, int]:
    """(value, code) computed with Decimal at ample precision, i.e. exactly."""
    s = text.decode("ascii", errors="replace") if isinstance(text, bytes) else text
    if not _GRAMMAR.fullmatch(s):  # Decimal itself would accept " 1", "1_0", "nan", ...
        return 0, PARSE_MALFORMED
    with localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin = 10_000, MAX_EMAX, MIN_EMIN
        scaled = Decimal(s).scaleb(decimals)
        if scaled != scaled.to_integral_value():
            return 0, PARSE_PRECISION
        value = int(scaled)
    if not INT64_MIN <= value <= INT64_MAX:
        return 0, PARSE_OVERFLOW
    return value, PARSE_OK


def py_result(text: str | bytes, decimals: int) -> tuple[int, int]:
    try:
        return to_fixed(text, decimals), PARSE_OK
    except FixedPointError as exc:
        return 0, exc.code


def nb_result(data: bytes, decimals: int, prefix: bytes = b"", suffix: bytes = b""):
    buf = np.frombuffer(prefix + data + suffix, dtype=np.uint8)
    value, err = parse_fixed(buf, len(prefix), len(prefix) + len(data), decimals)
    return int(value), int(err)


@st.composite
def number_text(draw) -> str:
    """Grammar-shaped text (mostly valid): sign, digits, '.', fraction, exponent."""
    text = draw(st.sampled_from(["", "+", "-"])) + draw(digits_st)
    if draw(st.booleans()):
        text += "." + draw(digits_st)
    if draw(st.booleans()):
        text += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+", "-"]))
        text += "0" * draw(st.integers(0, 3)) + str(draw(st.integers(0, 45)))
    return text


@st.composite
def representable_text(draw) -> str:
    """Text of an int64 fixed-point value, often with exponent and padding zeros."""
    value = draw(st.integers(INT64_MIN, INT64_MAX) | st.integers(-(10**6), 10**6))
    shift = draw(st.integers(-25, 25))
    return f"{value}e{shift}" if draw(st.booleans()) else str(Decimal(value).scaleb(shift))


numbers_st = (
    number_text()
    | representable_text()
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
)
junk_st = st.text("0123456789.-+eE x_", max_size=14) | st.text(max_size=6)


@pytest.fixture(scope="module", autouse=True)
def _compiled_kernel():
    """Compile (or load from cache) parse_fixed up front, so hypothesis deadlines hold."""
    nb_result(b"1", 0)  # read-only buffer, as np.frombuffer gives
    parse_fixed(np.zeros(1, dtype=np.uint8), 0, 1, 0)  # writable buffer


# ---------------------------------------------------------------- properties


@given(numbers_st, decimals_st)
@example("0.000000000000000001", 18)
@example("9.223372036854775808", 18)
@example("-9.223372036854775808", 18)
def test_to_fixed_matches_decimal_reference(text, decimals):
    assert py_result(text, decimals) == reference(text, decimals)


@given(numbers_st | junk_st, decimals_st, st.binary(max_size=3), st.binary(max_size=3))
def test_parse_fixed_agrees_with_to_fixed(text, decimals, prefix, suffix):
    data = text.encode("utf-8")
    expected = py_result(text, decimals)
    assert nb_result(data, decimals, prefix, suffix) == expected
    assert py_result(data, decimals) == expected
    assert expected == reference(text, decimals)


near_limits_st = st.integers(INT64_MIN - 3, INT64_MIN + 3) | st.integers(
    INT64_MAX - 3, INT64_MAX + 3
)


@given(near_limits_st, decimals_st, st.integers(0, 3), st.booleans())
def test_int64_limits_at_every_scale(value, decimals, pad, use_exponent):
    """Values at and just past the int64 limits, written at the scale that hits them."""
    if use_exponent:
        text = f"{value}{'0' * pad}e-{decimals + pad}"
    else:
        text = str(Decimal(value).scaleb(-decimals)) if decimals else str(value)
        text += "0" * pad if "." in text else ""
    in_range = INT64_MIN <= value <= INT64_MAX
    expected = (value, PARSE_OK) if in_range else (0, PARSE_OVERFLOW)
    assert reference(text, decimals) == expected
    assert py_result(text, decimals) == expected
    assert nb_result(text.encode(), decimals) == expected


@given(st.integers(INT64_MIN, INT64_MAX), decimals_st)
@example(INT64_MAX, 18)
@example(INT64_MIN, 18)
@example(INT64_MIN, 0)
@example(0, 7)
def test_from_fixed_round_trip(value, decimals):
    text = from_fixed(value, decimals)
    assert to_fixed(text, decimals) == value
    assert nb_result(text.encode(), decimals) == (value, PARSE_OK)
    assert Decimal(text) == Decimal(value).scaleb(-decimals)
    # canonical: no exponent, no trailing fraction zeros or '.', no "-0", no leading zeros
    assert re.fullmatch(r"0|-?[1-9][0-9]*(\.[0-9]*[1-9])?|-?0\.[0-9]*[1-9]", text), text


@given(numbers_st, decimals_st)
def test_to_fixed_then_from_fixed_is_canonical(text, decimals):
    value, err = py_result(text, decimals)
    if err == PARSE_OK:
        assert Decimal(from_fixed(value, decimals)) == Decimal(text)
        assert from_fixed(value, decimals) == from_fixed(to_fixed(text.upper(), decimals), decimals)


@given(numbers_st)
def test_decimals_for_is_smallest_exact_scale(text):
    if not _GRAMMAR.fullmatch(text):
        with pytest.raises(FixedPointError):
            decimals_for(text)
        return
    with localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin = 10_000, MAX_EMAX, MIN_EMIN
        exponent = Decimal(text).normalize().as_tuple().exponent
    expected = 0 if Decimal(text) == 0 else max(0, -exponent)
    assert decimals_for(text) == expected
    if expected <= 18:  # exact at that scale and, if possible, not one below
        assert reference(text, expected)[1] != PARSE_PRECISION
        if expected:
            assert reference(text, expected - 1)[1] == PARSE_PRECISION


# ---------------------------------------------------------------- boundaries


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        ("65432.10", 8, 6_543_210_000_000),
        ("0.00012300", 8, 12_300),
        ("0.000000000000000001", 18, 1),
        ("-0.000000000000000001", 18, -1),
        ("9223372036854775807", 0, INT64_MAX),
        ("-9223372036854775808", 0, INT64_MIN),
        ("9.223372036854775807", 18, INT64_MAX),
        ("-9.223372036854775808", 18, INT64_MIN),
        ("92233720368547758.07", 2, INT64_MAX),
        ("922337203685477580.7e1", 0, INT64_MAX),
        ("-9223372036854775808000e-3", 0, INT64_MIN),
        ("0e400", 8, 0),
        ("0e999999999999999999999999", 18, 0),
        ("-0", 4, 0),
        ("+0.0", 0, 0),
        ("0.0000", 0, 0),
        ("000123.4500", 2, 12_345),
        ("000123.4500", 4, 1_234_500),
        ("1.5E+3", 0, 1500),
        ("1.5e3", 2, 150_000),
        ("12e-2", 2, 12),
        ("1E-08", 8, 1),
        ("5.", 1, 50),
        (".5", 1, 5),
        ("+7", 3, 7000),
        ("1.2300000000000000000000000", 2, 123),  # trailing zeros past decimals are fine
        ("0" * 5000 + "1", 0, 1),
    ],
)
def test_exact_values(text, decimals, expected):
    assert to_fixed(text, decimals) == expected
    assert to_fixed(text.encode(), decimals) == expected
    assert nb_result(text.encode(), decimals) == (expected, PARSE_OK)


@pytest.mark.parametrize(
    ("text", "decimals", "code"),
    [
        ("9223372036854775808", 0, PARSE_OVERFLOW),
        ("-9223372036854775809", 0, PARSE_OVERFLOW),
        ("9.223372036854775808", 18, PARSE_OVERFLOW),
        ("-9.223372036854775809", 18, PARSE_OVERFLOW),
        ("10", 18, PARSE_OVERFLOW),
        ("99999999999999999999999", 0, PARSE_OVERFLOW),
        ("1e19", 0, PARSE_OVERFLOW),
        ("1e400", 8, PARSE_OVERFLOW),
        ("1e" + "9" * 5000, 0, PARSE_OVERFLOW),  # past int()'s digit limit
        ("1" * 5000, 0, PARSE_OVERFLOW),
        ("1e-400", 18, PARSE_PRECISION),
        ("1e-" + "9" * 5000, 18, PARSE_PRECISION),
        ("0.0000000000000000001", 18, PARSE_PRECISION),
        ("0." + "0" * 5000 + "1", 18, PARSE_PRECISION),
        ("65432.101", 2, PARSE_PRECISION),
        ("12e-2", 1, PARSE_PRECISION),
        (".5", 0, PARSE_PRECISION),
        ("99999999999999999999.5", 0, PARSE_PRECISION),  # precision beats overflow
    ],
)
def test_inexact_or_out_of_range(text, decimals, code):
    with pytest.raises(FixedPointError) as info:
        to_fixed(text, decimals)
    assert info.value.code == code
    assert text[:40] in str(info.value)
    assert ("precision" if code == PARSE_PRECISION else "overflow") in str(info.value)
    assert nb_result(text.encode(), decimals) == (0, code)


MALFORMED = (
    "", ".", "-", "+", "1..2", "1.2.3", "1e", "1e+", "e5", ".e1", "-.e1", "1e5.0", "abc", "1,5",
    " 1", "1 ", "nan", "NaN", "inf", "-Infinity", "0x10", "1_000", "--1", "+-1", "1e--2", "1.5f",
    "\u0661", "\xb2", "1\n",
)  # fmt: skip


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed(text):
    for arg in (text, text.encode()):
        with pytest.raises(FixedPointError) as info:
            to_fixed(arg, 8)
        assert info.value.code == PARSE_MALFORMED
        assert "malformed" in str(info.value)
        assert repr(arg) in str(info.value)
        with pytest.raises(FixedPointError):
            decimals_for(arg)
    assert nb_result(text.encode(), 8) == (0, PARSE_MALFORMED)


def test_error_message_truncates_long_text():
    text = "1" * 30 + "x" * 100
    with pytest.raises(FixedPointError) as info:
        to_fixed(text, 2)
    assert repr(text[:40] + "...") in str(info.value)
    assert text[:41] not in str(info.value)
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.text, clone.code, str(clone)) == (text, PARSE_MALFORMED, str(info.value))


def test_bytes_like_input_matches_str():
    for text in ("65432.10", "-1.5E+3", "0.00012300"):
        expected = to_fixed(text, 8)
        for arg in (text.encode(), bytearray(text.encode()), memoryview(text.encode())):
            assert to_fixed(arg, 8) == expected
        assert decimals_for(text.encode()) == decimals_for(text)
    with pytest.raises(FixedPointError):
        to_fixed(b"\xff1", 2)
    with pytest.raises(FixedPointError, match=re.escape(repr(b"1..2"))):
        to_fixed(memoryview(b"1..2"), 2)
    with pytest.raises(TypeError):
        to_fixed(1.5, 2)  # floats are refused, never converted


def test_decimals_argument_checked():
    for bad in (-1, 19):
        with pytest.raises(ValueError, match="decimals"):
            to_fixed("1", bad)
        with pytest.raises(ValueError, match="decimals"):
            from_fixed(1, bad)
        with pytest.raises(ValueError, match="decimals"):
            parse_fixed(np.frombuffer(b"1", dtype=np.uint8), 0, 1, bad)
    assert to_fixed("1.5", np.int64(2)) == 150
    with pytest.raises(TypeError):
        to_fixed("1.5", 2.0)


def test_parse_fixed_bounds_checked():
    buf = np.frombuffer(b"12", dtype=np.uint8)
    for start, end in ((-1, 2), (0, 3), (2, 1)):
        with pytest.raises(IndexError):
            parse_fixed(buf, start, end, 0)
    assert parse_fixed(buf, 1, 1, 0) == (0, PARSE_MALFORMED)  # empty slice


def test_parse_fixed_slices_a_frame():
    frame = b'{"p":"65432.10","q":"0.00012300","x":"1e-9"}'
    buf = np.frombuffer(frame, dtype=np.uint8)
    spans = [(m.start(1), m.end(1)) for m in re.finditer(rb':"([^"]*)"', frame)]
    assert [tuple(parse_fixed(buf, s, e, 8)) for s, e in spans] == [
        (6_543_210_000_000, PARSE_OK),
        (12_300, PARSE_OK),
        (0, PARSE_PRECISION),
    ]


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (123450, 3, "123.45"),
        (5000, 3, "5"),
        (0, 3, "0"),
        (0, 0, "0"),
        (-1, 18, "-0.000000000000000001"),
        (-120, 2, "-1.2"),
        (INT64_MIN, 0, "-9223372036854775808"),
        (INT64_MIN, 18, "-9.223372036854775808"),
        (np.int64(INT64_MIN), 2, "-92233720368547758.08"),  # no numpy wrap on negation
        (10, 1, "1"),
    ],
)
def test_from_fixed_examples(value, decimals, text):
    assert from_fixed(value, decimals) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.00010000", 4),
        ("1e-8", 8),
        ("10", 0),
        ("0.5", 1),
        ("1E+2", 0),
        ("0", 0),
        ("-0.0000", 0),
        ("0.01", 2),
        ("1.25e-1", 3),
        ("1e-30", 30),
        ("0e-50", 0),
    ],
)
def test_decimals_for_examples(text, expected):
    assert decimals_for(text) == expected
