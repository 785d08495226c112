"""System properties: getprop output, read-only and persistent properties, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from terminal_emulator.android import Device, SecurityError
from terminal_emulator.android.properties import SystemProperties


def test_getprop_output_is_sorted_and_bracketed() -> None:
    props = SystemProperties()
    props.set("ro.product.model", "MPAC SmartPOS P1")
    props.set("debug.x", "")
    assert props.getprop_output() == "[debug.x]: []\n[ro.product.model]: [MPAC SmartPOS P1]\n"
    assert props.getprop_output("ro.product.model") == "MPAC SmartPOS P1\n"
    assert props.getprop_output("no.such") == "\n"
    assert props.get("no.such", "dflt") == "dflt"


def test_read_only_properties_are_set_once() -> None:
    props = SystemProperties()
    props.set("ro.serialno", "EMU-1")
    with pytest.raises(SecurityError, match="read-only property"):
        props.set("ro.serialno", "EMU-2")
    props.set("sys.x", "1")
    props.set("sys.x", "2")
    assert props.get("sys.x") == "2"


def test_limits() -> None:
    props = SystemProperties()
    with pytest.raises(ValueError, match="longer than 91 bytes"):
        props.set("sys.long", "x" * 92)
    props.set("ro.long", "x" * 200)  # ro.* may be long
    for name in ("", "bad name", "a..b", ".a", "a.", "semi;colon"):
        with pytest.raises(ValueError, match="invalid property name"):
            props.set(name, "v")
    with pytest.raises(ValueError, match="one line"):
        props.set("sys.x", "a\nb")


def test_persist_properties_survive(tmp_path: Path) -> None:
    path = tmp_path / "property" / "persistent_properties.json"
    first = SystemProperties(path)
    first.set("persist.sys.timezone", "UTC")
    first.set("sys.volatile", "1")
    second = SystemProperties(path)
    assert second.get("persist.sys.timezone") == "UTC"
    assert second.get("sys.volatile") == ""
    second.set_defaults({"persist.sys.timezone": "Asia/Tokyo", "ro.new": "x"})
    assert second.get("persist.sys.timezone") == "UTC"  # stored value wins over the default
    assert second.get("ro.new") == "x"


def test_device_properties(make_device: Callable[..., Device]) -> None:
    async def scenario() -> None:
        device = make_device("MPAC-0042", model="P2", extra_properties={"ro.mpac.terminal": "t-1"})
        assert device.properties.get("sys.boot_completed") == "0"
        await device.start()
        props = device.properties
        assert props.get("ro.serialno") == "MPAC-0042"
        assert props.get("ro.product.model") == "P2"
        assert props.get("ro.product.manufacturer") == "MPAC"
        assert props.get("ro.build.version.sdk") == "31"
        assert props.get("ro.mpac.terminal") == "t-1"
        assert props.get("sys.boot_completed") == "1"
        assert "[ro.serialno]: [MPAC-0042]\n" in props.getprop_output()
        await device.shutdown()

    asyncio.run(scenario())
