"""Every table writes its numbers through :mod:`w2slab.formatting`: each format, and what it prints where a number
is undefined, pinned (the committed tables are rebuilt byte for byte from them)."""

from __future__ import annotations

import math

import pytest

from w2slab.formatting import console, markdown_cell, number, p_short, p_value, signed, with_interval


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf])
def test_an_undefined_number_is_never_printed_as_a_value(missing):
    assert number(missing) == signed(missing) == p_value(missing) == "n/a"
    assert number(missing, missing="") == signed(missing, 2, missing="") == p_short(missing) == ""
    assert console(missing) == "  nan" and len(console(missing)) == len(console(0.5))
    assert with_interval(missing, 0.1, 0.2) == "n/a"


def test_each_format():
    assert number(0.5) == "0.500" and number(0.5, 2) == "0.50" and number(2) == "2.000"
    assert signed(0.031) == "+0.031" and signed(-0.0041, 2) == "-0.00"
    assert with_interval(0.55, 0.41, math.nan) == "0.550 [0.410, n/a]"
    assert console(0.8123) == "0.812"
    assert p_value(0.0123) == "0.012" and p_value(3.21e-5) == "3.2e-05" and p_value(0.001) == "0.001"
    assert p_short(0.0123) == "0.012" and p_short(3.21e-5) == "3e-05"


def test_a_markdown_cell_cannot_break_its_table():
    assert markdown_cell("keyword=a|b\nnext\\") == "keyword=a\\|b next\\\\"
