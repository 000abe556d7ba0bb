"""MQTT's variable byte integer, which the lean PUBLISH path and the load generator read."""

from __future__ import annotations

import pytest

from plumbing.mqtt import read_variable_int


def test_values_of_one_to_four_bytes_and_where_the_rest_starts() -> None:
    assert read_variable_int(b"\x00", 0) == (0, 1)
    assert read_variable_int(b"\x7f", 0) == (127, 1)
    assert read_variable_int(b"\x40\x80\x01rest", 1) == (128, 3)
    assert read_variable_int(b"\xff\xff\xff\x7f", 0) == (268_435_455, 4)


def test_an_unfinished_integer_is_none_and_a_fifth_byte_is_an_error() -> None:
    assert read_variable_int(b"\x80", 0) is None
    assert read_variable_int(b"\x30", 1) is None
    with pytest.raises(ValueError):
        read_variable_int(b"\xff\xff\xff\xff\x01", 0)
