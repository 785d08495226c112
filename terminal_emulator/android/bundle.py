"""Typed extras (Android's ``Bundle``) and the text forms Android gives them.

An Intent's extras are typed on Android: ``getLongExtra("amount", 0)`` returns the default when
the caller put an ``int``, which is the classic way a payment of 1200 arrives as 0. The emulator
keeps the Java type of every value so that the same mistake shows up here, and so that the ADB
bridge can choose the right ``am`` flag (``--es``, ``--ei``, ``--el``, ``--ez``, ``--esa``…).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class ExtraType(Enum):
    """The Java types an extra can have, with their name and their ``am`` command-line flag."""

    STRING = ("String", "--es")
    INT = ("int", "--ei")
    LONG = ("long", "--el")
    BOOLEAN = ("boolean", "--ez")
    FLOAT = ("float", "--ef")
    DOUBLE = ("double", "--ed")
    STRING_ARRAY = ("String[]", "--esa")
    INT_ARRAY = ("int[]", "--eia")
    LONG_ARRAY = ("long[]", "--ela")
    NULL = ("null", "--esn")

    def __init__(self, java_name: str, am_flag: str) -> None:
        self.java_name = java_name
        self.am_flag = am_flag

    @classmethod
    def from_am_flag(cls, flag: str) -> ExtraType:
        for member in cls:
            if member.am_flag == flag:
                return member
        raise ValueError(f"unknown am extra flag {flag!r}")

    @classmethod
    def from_json_name(cls, name: str) -> ExtraType:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown extra type {name!r}") from None

    @property
    def json_name(self) -> str:
        return self.name.lower()


def _check_int(value: object, low: int, high: int, type_name: str) -> int:
    # bool is an int in Python but a separate type in Java: refuse it.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{type_name} extra must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range for a Java {type_name}")
    return value


def _check_float(value: object, type_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{type_name} extra must be a number, got {type(value).__name__}")
    return float(value)


def _check_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"String extra must be a str, got {type(value).__name__}")
    return value


def _normalise(extra_type: ExtraType, value: object) -> Any:
    if extra_type is ExtraType.STRING:
        return _check_str(value)
    if extra_type is ExtraType.INT:
        return _check_int(value, INT_MIN, INT_MAX, "int")
    if extra_type is ExtraType.LONG:
        return _check_int(value, LONG_MIN, LONG_MAX, "long")
    if extra_type is ExtraType.BOOLEAN:
        if not isinstance(value, bool):
            raise TypeError(f"boolean extra must be a bool, got {type(value).__name__}")
        return value
    if extra_type in (ExtraType.FLOAT, ExtraType.DOUBLE):
        return _check_float(value, extra_type.java_name)
    if extra_type is ExtraType.NULL:
        if value is not None:
            raise TypeError("null extra must be None")
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{extra_type.java_name} extra must be a sequence")
    items = tuple(value)
    if extra_type is ExtraType.STRING_ARRAY:
        return tuple(_check_str(item) for item in items)
    if extra_type is ExtraType.INT_ARRAY:
        return tuple(_check_int(item, INT_MIN, INT_MAX, "int") for item in items)
    return tuple(_check_int(item, LONG_MIN, LONG_MAX, "long") for item in items)


@dataclass(frozen=True)
class TypedValue:
    """One extra: its Java type and its value (arrays as tuples, so values are hashable)."""

    type: ExtraType
    value: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _normalise(self.type, self.value))

    def java_string(self) -> str:
        """The value as Java's ``String.valueOf`` / ``Arrays.toString`` prints it."""
        return _java_value_string(self.type, self.value)

    def to_json(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = repr(value)  # JSON has no NaN/Infinity; keep them as text
        return {"type": self.type.json_name, "value": value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TypedValue:
        extra_type = ExtraType.from_json_name(str(data["type"]))
        value = data.get("value")
        if extra_type in (ExtraType.FLOAT, ExtraType.DOUBLE) and isinstance(value, str):
            value = float(value)
        return cls(extra_type, value)


def _java_float_string(value: float) -> str:
    """Java's ``Double.toString``: shortest digits, plain between 1e-3 and 1e7, else ``1.0E10``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa_digits = "".join(str(d) for d in digits)
    point_exponent = exponent + len(mantissa_digits) - 1
    fraction = mantissa_digits[1:] or "0"
    return f"{'-' if sign else ''}{mantissa_digits[0]}.{fraction}E{point_exponent}"


def _java_value_string(extra_type: ExtraType, value: Any) -> str:
    if value is None:
        return "null"
    if extra_type is ExtraType.BOOLEAN:
        return "true" if value else "false"
    if extra_type in (ExtraType.FLOAT, ExtraType.DOUBLE):
        return _java_float_string(value)
    if isinstance(value, tuple):
        return "[" + ", ".join("null" if item is None else str(item) for item in value) + "]"
    return str(value)


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()`` (over UTF-16 code units, 32-bit signed)."""
    code_units = text.encode("utf-16-be", "surrogatepass")
    result = 0
    for index in range(0, len(code_units), 2):
        unit = (code_units[index] << 8) | code_units[index + 1]
        result = (31 * result + unit) & 0xFFFFFFFF
    return result - (1 << 32) if result >= (1 << 31) else result


class Bundle:
    """An ordered map of typed extras with Android's typed accessors.

    Typed getters behave like Android's: a value of another type yields the default (Android
    logs a ClassCastException warning and carries on), so callers that need to tell "missing"
    from "wrong type" use :meth:`get_typed`.
    """

    def __init__(self, values: Mapping[str, TypedValue] | None = None) -> None:
        self._values: dict[str, TypedValue] = {}
        # Insertion counter: Android's ArrayMap orders equal hashes by insertion.
        self._order: dict[str, int] = {}
        self._counter = 0
        for key, value in (values or {}).items():
            self.put(key, value)

    # -- writing ------------------------------------------------------------------------------

    def put(self, key: str, value: TypedValue) -> Bundle:
        if not isinstance(key, str):
            raise TypeError("extra keys are strings")
        if not isinstance(value, TypedValue):
            raise TypeError("Bundle.put takes a TypedValue; use put_string, put_long, …")
        if key not in self._values:
            self._order[key] = self._counter
            self._counter += 1
        self._values[key] = value
        return self

    def put_string(self, key: str, value: str | None) -> Bundle:
        return self.put(
            key, TypedValue(ExtraType.NULL if value is None else ExtraType.STRING, value)
        )

    def put_int(self, key: str, value: int) -> Bundle:
        return self.put(key, TypedValue(ExtraType.INT, value))

    def put_long(self, key: str, value: int) -> Bundle:
        return self.put(key, TypedValue(ExtraType.LONG, value))

    def put_boolean(self, key: str, value: bool) -> Bundle:
        return self.put(key, TypedValue(ExtraType.BOOLEAN, value))

    def put_float(self, key: str, value: float) -> Bundle:
        return self.put(key, TypedValue(ExtraType.FLOAT, value))

    def put_double(self, key: str, value: float) -> Bundle:
        return self.put(key, TypedValue(ExtraType.DOUBLE, value))

    def put_string_array(self, key: str, value: Iterable[str]) -> Bundle:
        return self.put(key, TypedValue(ExtraType.STRING_ARRAY, value))

    def put_int_array(self, key: str, value: Iterable[int]) -> Bundle:
        return self.put(key, TypedValue(ExtraType.INT_ARRAY, value))

    def put_long_array(self, key: str, value: Iterable[int]) -> Bundle:
        return self.put(key, TypedValue(ExtraType.LONG_ARRAY, value))

    def put_null(self, key: str) -> Bundle:
        return self.put(key, TypedValue(ExtraType.NULL, None))

    def put_all(self, other: Bundle) -> Bundle:
        for key, value in other.items():
            self.put(key, value)
        return self

    def remove(self, key: str) -> None:
        self._values.pop(key, None)
        self._order.pop(key, None)

    def clear(self) -> None:
        self._values.clear()
        self._order.clear()

    # -- reading ------------------------------------------------------------------------------

    def get_typed(self, key: str) -> TypedValue | None:
        return self._values.get(key)

    def _get(self, key: str, extra_type: ExtraType, default: Any) -> Any:
        typed = self._values.get(key)
        if typed is None or typed.type is not extra_type:
            return default
        return typed.value

    def get_string(self, key: str, default: str | None = None) -> str | None:
        typed = self._values.get(key)
        if typed is not None and typed.type is ExtraType.NULL:
            return None
        result: str | None = self._get(key, ExtraType.STRING, default)
        return result

    def get_int(self, key: str, default: int = 0) -> int:
        result: int = self._get(key, ExtraType.INT, default)
        return result

    def get_long(self, key: str, default: int = 0) -> int:
        result: int = self._get(key, ExtraType.LONG, default)
        return result

    def get_boolean(self, key: str, default: bool = False) -> bool:
        result: bool = self._get(key, ExtraType.BOOLEAN, default)
        return result

    def get_float(self, key: str, default: float = 0.0) -> float:
        result: float = self._get(key, ExtraType.FLOAT, default)
        return result

    def get_double(self, key: str, default: float = 0.0) -> float:
        result: float = self._get(key, ExtraType.DOUBLE, default)
        return result

    def get_string_array(self, key: str) -> tuple[str, ...] | None:
        result: tuple[str, ...] | None = self._get(key, ExtraType.STRING_ARRAY, None)
        return result

    def get_int_array(self, key: str) -> tuple[int, ...] | None:
        result: tuple[int, ...] | None = self._get(key, ExtraType.INT_ARRAY, None)
        return result

    def get_long_array(self, key: str) -> tuple[int, ...] | None:
        result: tuple[int, ...] | None = self._get(key, ExtraType.LONG_ARRAY, None)
        return result

    def keys(self) -> list[str]:
        return list(self._values)

    def items(self) -> list[tuple[str, TypedValue]]:
        return list(self._values.items())

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        # An empty Bundle is still a Bundle (``(has extras)`` is about presence, not size).
        return True

    def is_empty(self) -> bool:
        return not self._values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bundle):
            return NotImplemented
        return self._values == other._values

    def __hash__(self) -> int:  # mutable container
        raise TypeError("Bundle is unhashable")

    def copy(self) -> Bundle:
        clone = Bundle()
        for key in self.keys():
            clone.put(key, self._values[key])
        return clone

    # -- text forms ---------------------------------------------------------------------------

    def android_order(self) -> list[str]:
        """Keys in the order Android's ``ArrayMap`` keeps them: by ``hashCode``, then insertion."""
        return sorted(self._values, key=lambda k: (java_string_hash(k), self._order[k]))

    def to_android_string(self) -> str:
        """What ``Bundle.toString()`` prints for an unparcelled Bundle: ``Bundle[{k=v, …}]``.

        Values are printed raw, without quoting or escaping, exactly as Android does: a value
        containing ``", "`` makes the text ambiguous, which is why the contract also carries
        its results as JSON (see ``terminal_emulator.contract``).
        """
        body = ", ".join(f"{key}={self._values[key].java_string()}" for key in self.android_order())
        return "Bundle[{" + body + "}]"

    def __str__(self) -> str:
        return self.to_android_string()

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{key!r}: {value.type.java_name} {value.value!r}" for key, value in self.items()
        )
        return f"Bundle({{{inner}}})"

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Typed JSON (for storage and transport): ``{"amount": {"type": "long", "value": 1}}``."""
        return {key: value.to_json() for key, value in self.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, Any]]) -> Bundle:
        bundle = cls()
        for key, value in data.items():
            bundle.put(key, TypedValue.from_json(value))
        return bundle

    def to_plain(self) -> dict[str, Any]:
        """Untyped values (arrays as lists), for JSON documents people read."""
        return {
            key: list(value.value) if isinstance(value.value, tuple) else value.value
            for key, value in self.items()
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True)


# ``am`` splits ``--esa`` values on commas not preceded by a backslash, then turns ``\,`` into
# ``,`` (ActivityManagerShellCommand: ``value.split("(?<!\\\\),")``).
_ESA_SPLIT = re.compile(r"(?<!\\),")


def format_am_string_array(values: Iterable[str]) -> str:
    """One ``--esa`` argument for ``values``; raises when ``am`` could not read it back.

    Two cases cannot be written: an empty array (``am`` reads ``""`` as one empty string) and
    an element ending in a backslash (its backslash would escape the separating comma).
    """
    items = list(values)
    if not items:
        raise ValueError("am cannot pass an empty String[] extra")
    for item in items[:-1]:
        if item.endswith("\\"):
            raise ValueError("am cannot pass a String[] element ending in a backslash")
    return ",".join(item.replace(",", "\\,") for item in items)


def parse_am_string_array(text: str) -> tuple[str, ...]:
    """The String[] that ``am`` builds from one ``--esa`` argument."""
    return tuple(part.replace("\\,", ",") for part in _ESA_SPLIT.split(text))
