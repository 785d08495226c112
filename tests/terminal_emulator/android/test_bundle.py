"""Typed extras, Android's Bundle text, and ``am``'s String[] syntax."""

from __future__ import annotations

import json
import math

import pytest

from terminal_emulator.android.bundle import (
    Bundle,
    ExtraType,
    TypedValue,
    format_am_string_array,
    java_string_hash,
    parse_am_string_array,
)


class TestTypes:
    def test_typed_getters_return_the_default_for_another_type(self) -> None:
        extras = Bundle().put_long("amount", 1200).put_int("count", 3).put_string("s", "x")
        assert extras.get_long("amount") == 1200
        # Android: getIntExtra on a long returns the default (and logs a ClassCastException)
        assert extras.get_int("amount", -1) == -1
        assert extras.get_long("count") == 0
        assert extras.get_string("amount") is None
        assert extras.get_boolean("s", default=True) is True
        assert extras.get_string("missing", "dflt") == "dflt"

    def test_values_are_checked_against_their_java_type(self) -> None:
        with pytest.raises(ValueError, match="out of range for a Java int"):
            Bundle().put_int("n", 2**31)
        Bundle().put_int("n", -(2**31))
        with pytest.raises(ValueError, match="out of range for a Java long"):
            Bundle().put_long("n", 2**63)
        with pytest.raises(TypeError, match="must be an int"):
            Bundle().put_long("n", True)
        with pytest.raises(TypeError, match="must be a bool"):
            Bundle().put_boolean("b", 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be a str"):
            Bundle().put_string_array("a", ["x", 1])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="must be a sequence"):
            Bundle().put_string_array("a", "abc")
        with pytest.raises(TypeError, match="TypedValue"):
            Bundle().put("k", 1)  # type: ignore[arg-type]

    def test_null_strings_and_arrays(self) -> None:
        extras = (
            Bundle().put_string("s", None).put_string_array("a", ["x", "y"]).put_int_array("i", [1])
        )
        assert extras.get_string("s", "dflt") is None
        typed = extras.get_typed("s")
        assert typed is not None
        assert typed.type is ExtraType.NULL
        assert extras.get_string_array("a") == ("x", "y")
        assert extras.get_int_array("i") == (1,)
        assert extras.get_long_array("i") is None

    def test_equality_copy_and_order(self) -> None:
        one = Bundle().put_string("a", "1").put_long("b", 2)
        two = Bundle().put_long("b", 2).put_string("a", "1")
        assert one == two
        assert one != Bundle().put_string("a", "1").put_int("b", 2)
        copy = one.copy()
        copy.put_string("a", "changed")
        assert one.get_string("a") == "1"
        assert one.keys() == ["a", "b"]
        assert "a" in one
        assert len(one) == 2
        one.remove("a")
        assert one.keys() == ["b"]
        assert Bundle().is_empty()
        assert bool(Bundle())  # present even when empty

    def test_am_flags(self) -> None:
        assert [t.am_flag for t in ExtraType] == [
            "--es", "--ei", "--el", "--ez", "--ef", "--ed", "--esa", "--eia", "--ela", "--esn",
        ]  # fmt: skip
        assert ExtraType.from_am_flag("--el") is ExtraType.LONG
        with pytest.raises(ValueError, match="unknown am extra flag"):
            ExtraType.from_am_flag("--ex")


class TestAndroidText:
    def test_java_string_hash(self) -> None:
        assert java_string_hash("") == 0
        assert java_string_hash("a") == 97
        assert java_string_hash("hello") == 99162322
        assert java_string_hash("polygenelubricants") == -(2**31)
        assert java_string_hash("Aa") == java_string_hash("BB") == 2112
        assert java_string_hash("😀") == 55357 * 31 + 56832  # two UTF-16 code units

    def test_bundle_to_string_orders_by_hash_then_insertion(self) -> None:
        extras = Bundle().put_string("BB", "second").put_string("Aa", "first?").put_long("a", 1)
        # "a" (97) sorts before "BB"/"Aa" (2112); equal hashes keep insertion order.
        assert extras.to_android_string() == "Bundle[{a=1, BB=second, Aa=first?}]"
        assert str(extras) == extras.to_android_string()

    def test_value_formats(self) -> None:
        extras = (
            Bundle()
            .put_boolean("ok", True)
            .put_boolean("no", False)
            .put_string_array("arr", ["x", "y, z"])
            .put_null("nothing")
            .put_double("d1", 1.0)
            .put_double("d2", 1e10)
            .put_double("d3", 0.0001)
            .put_float("f", 2.5)
            .put_double("nan", math.nan)
        )
        text = extras.to_android_string()
        for part in (
            "ok=true",
            "no=false",
            "arr=[x, y, z]",
            "nothing=null",
            "d1=1.0",
            "d2=1.0E10",
            "d3=1.0E-4",
            "f=2.5",
            "nan=NaN",
        ):
            assert part in text
        assert Bundle().to_android_string() == "Bundle[{}]"

    def test_values_are_printed_raw_like_android(self) -> None:
        text = Bundle().put_string("msg", 'a "b", c=d}').to_android_string()
        assert text == 'Bundle[{msg=a "b", c=d}}]'


class TestJson:
    def test_typed_json_round_trip(self) -> None:
        extras = (
            Bundle()
            .put_string("note", 'ラーメン 🍜 "q" \\ \n')
            .put_long("amount", 2**62)
            .put_int("n", -5)
            .put_boolean("b", False)
            .put_string_array("modes", ["chip", ""])
            .put_long_array("ids", [1, 2])
            .put_null("gone")
            .put_double("inf", math.inf)
        )
        restored = Bundle.from_json(json.loads(json.dumps(extras.to_json())))
        assert restored == extras
        assert extras.to_plain()["modes"] == ["chip", ""]
        assert json.loads(extras.dumps())["amount"] == {"type": "long", "value": 2**62}

    def test_unknown_type_in_json(self) -> None:
        with pytest.raises(ValueError, match="unknown extra type"):
            TypedValue.from_json({"type": "parcelable", "value": 1})


class TestAmStringArray:
    @pytest.mark.parametrize(
        "values",
        [
            ["card", "qr"],
            ["a,b", "c"],
            ["x\\,y", "z"],
            ["trailing\\"],
            ["ラーメン", "🍜"],
            [""],
            ["", ""],
        ],
    )
    def test_round_trip(self, values: list[str]) -> None:
        assert parse_am_string_array(format_am_string_array(values)) == tuple(values)

    def test_am_reads_commas_as_separators(self) -> None:
        assert parse_am_string_array("a,b\\,c") == ("a", "b,c")

    def test_what_am_cannot_express(self) -> None:
        with pytest.raises(ValueError, match="empty String"):
            format_am_string_array([])
        with pytest.raises(ValueError, match="ending in a backslash"):
            format_am_string_array(["a\\", "b"])
