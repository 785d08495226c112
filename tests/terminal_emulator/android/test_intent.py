"""Component names, intents and Android's intent-filter matching rules."""

from __future__ import annotations

import pytest

from terminal_emulator.android.bundle import Bundle
from terminal_emulator.android.intent import (
    CATEGORY_DEFAULT,
    CATEGORY_LAUNCHER,
    ComponentName,
    Intent,
    IntentFilter,
    is_valid_package_name,
    uri_scheme,
)


class TestComponentName:
    @pytest.mark.parametrize(
        ("text", "class_name"),
        [
            ("jp.mpac.creditcard/.ResultReceiver", "jp.mpac.creditcard.ResultReceiver"),
            (
                "jp.mpac.creditcard/jp.mpac.creditcard.ResultReceiver",
                "jp.mpac.creditcard.ResultReceiver",
            ),
            ("jp.mpac.creditcard/.ui.PinActivity", "jp.mpac.creditcard.ui.PinActivity"),
            ("jp.mpac.creditcard/com.vendor.Shared", "com.vendor.Shared"),
            # as on Android, a class without a dot is taken literally
            ("jp.mpac.creditcard/ResultReceiver", "ResultReceiver"),
        ],
    )
    def test_unflatten(self, text: str, class_name: str) -> None:
        component = ComponentName.unflatten(text)
        assert component.package == "jp.mpac.creditcard"
        assert component.class_name == class_name

    def test_short_and_long_forms(self) -> None:
        inside = ComponentName.of("jp.mpac.business", ".MainActivity")
        assert inside.flatten() == "jp.mpac.business/jp.mpac.business.MainActivity"
        assert inside.flatten_short() == "jp.mpac.business/.MainActivity"
        assert inside.short_class_name == ".MainActivity"
        assert str(inside) == "jp.mpac.business/.MainActivity"
        outside = ComponentName("jp.mpac.business", "com.vendor.Shared")
        assert outside.flatten_short() == "jp.mpac.business/com.vendor.Shared"

    @pytest.mark.parametrize(
        "text",
        [
            "jp.mpac.business",
            "/.Main",
            "jp.mpac.business/",
            "mpac/.Main",
            "jp.1mpac/.Main",
            "jp.mpac/.Ma in",
        ],
    )
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"component name|package name|class name"):
            ComponentName.unflatten(text)

    def test_package_rule(self) -> None:
        assert is_valid_package_name("jp.mpac.creditcard")
        assert is_valid_package_name("a.b_c1")
        assert not is_valid_package_name("android")
        assert not is_valid_package_name("jp..mpac")


class TestIntent:
    def test_short_string_like_android(self) -> None:
        intent = Intent(
            "jp.mpac.creditcard.action.PAYMENT",
            categories=["b.cat", "a.cat"],
            data="mpac://pay/1",
            component="jp.mpac.creditcard/.TransactionActivity",
            flags=0x10000020,
        )
        intent.extras.put_long("amount", 1)
        assert str(intent) == (
            "Intent { act=jp.mpac.creditcard.action.PAYMENT cat=[a.cat,b.cat] dat=mpac://pay/1 "
            "flg=0x10000020 cmp=jp.mpac.creditcard/.TransactionActivity (has extras) }"
        )
        assert (
            str(Intent("x.y.Z", package="jp.mpac.business"))
            == "Intent { act=x.y.Z pkg=jp.mpac.business }"
        )

    def test_copy_is_deep_for_extras(self) -> None:
        original = Intent("a.b.C", extras=Bundle().put_string("k", "v"))
        copy = original.copy()
        assert copy == original
        copy.extras.put_string("k", "changed")
        copy.add_category("x")
        assert original.extras.get_string("k") == "v"
        assert original.categories == set()

    def test_targets(self) -> None:
        assert Intent(component="a.b/.C").target_package == "a.b"
        assert Intent(package="a.b").target_package == "a.b"
        assert Intent().target_package is None
        assert Intent(component="a.b/.C").is_explicit

    def test_uri_scheme(self) -> None:
        assert uri_scheme("mpacqr://pay/qr_1") == "mpacqr"
        assert uri_scheme("tel:123") == "tel"
        assert uri_scheme("no scheme") is None
        assert uri_scheme(None) is None


class TestIntentFilter:
    def test_action(self) -> None:
        f = IntentFilter.create(["a.b.PAY"])
        assert f.matches(Intent("a.b.PAY"))
        assert not f.matches(Intent("a.b.REFUND"))
        assert f.matches(Intent())  # no action: passes when the filter lists any
        assert not IntentFilter.create().matches(Intent())

    def test_categories_must_all_be_listed(self) -> None:
        f = IntentFilter.create(["a.b.PAY"], categories=[CATEGORY_DEFAULT])
        assert f.matches(Intent("a.b.PAY", categories=[CATEGORY_DEFAULT]))
        assert not f.matches(Intent("a.b.PAY", categories=[CATEGORY_LAUNCHER]))
        # startActivity adds DEFAULT to implicit intents
        assert f.matches(Intent("a.b.PAY"), require_default_category=True)
        bare = IntentFilter.create(["a.b.PAY"])
        assert bare.matches(Intent("a.b.PAY"))
        assert not bare.matches(Intent("a.b.PAY"), require_default_category=True)

    def test_data_schemes(self) -> None:
        no_data = IntentFilter.create(["V"])
        with_scheme = IntentFilter.create(["V"], schemes=["mpacqr"])
        assert no_data.matches(Intent("V"))
        assert not no_data.matches(Intent("V", data="mpacqr://x"))
        assert with_scheme.matches(Intent("V", data="mpacqr://x"))
        assert not with_scheme.matches(Intent("V", data="https://x"))
        assert not with_scheme.matches(Intent("V"))
