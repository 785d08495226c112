"""Installing packages, resolving intents to components, ``pm`` output."""

from __future__ import annotations

import pytest

from terminal_emulator.android import (
    ACTION_MAIN,
    CATEGORY_DEFAULT,
    CATEGORY_LAUNCHER,
    Activity,
    ActivityDeclaration,
    BroadcastReceiver,
    ComponentName,
    Intent,
    IntentFilter,
    PackageManager,
    PackageManifest,
    PackageNotFoundError,
    ReceiverDeclaration,
)

PAY = "jp.mpac.test.PAY"


def _manifest(
    package: str, *, priority: int = 0, system: bool = False, version: int = 1
) -> PackageManifest:
    return PackageManifest(
        package=package,
        version_code=version,
        system=system,
        label="Pay App",
        activities=(
            ActivityDeclaration(
                ".Main",
                Activity,
                intent_filters=(
                    IntentFilter.create([ACTION_MAIN], categories=[CATEGORY_LAUNCHER]),
                ),
            ),
            ActivityDeclaration(
                ".Pay",
                Activity,
                intent_filters=(
                    IntentFilter.create([PAY], categories=[CATEGORY_DEFAULT], priority=priority),
                ),
            ),
            ActivityDeclaration(".Hidden", Activity),
        ),
        receivers=(
            ReceiverDeclaration(
                ".Receiver", BroadcastReceiver, intent_filters=(IntentFilter.create([PAY]),)
            ),
        ),
    )


class TestInstall:
    def test_uids_are_assigned_and_kept(self) -> None:
        pm = PackageManager()
        first = pm.install(_manifest("jp.mpac.one"))
        second = pm.install(_manifest("jp.mpac.two"))
        assert (first.uid, second.uid) == (10000, 10001)
        pm.uninstall("jp.mpac.one")
        assert pm.install(_manifest("jp.mpac.one", version=2)).uid == 10000
        assert pm.get_package("jp.mpac.one").manifest.version_code == 2

    def test_exported_defaults_to_having_filters(self) -> None:
        pm = PackageManager()
        pm.install(_manifest("jp.mpac.one"))
        pay = pm.activity_info(ComponentName.of("jp.mpac.one", ".Pay"))
        hidden = pm.activity_info(ComponentName.of("jp.mpac.one", ".Hidden"))
        assert pay is not None
        assert hidden is not None
        assert pay.exported
        assert not hidden.exported

    def test_unknown_and_invalid(self) -> None:
        pm = PackageManager()
        with pytest.raises(PackageNotFoundError, match=r"Unknown package: jp\.mpac\.none"):
            pm.get_package("jp.mpac.none")
        with pytest.raises(PackageNotFoundError):
            pm.uninstall("jp.mpac.none")
        with pytest.raises(ValueError, match="invalid package name"):
            PackageManifest(package="nodots")
        with pytest.raises(ValueError, match="share a class name"):
            PackageManifest(
                package="jp.mpac.dup",
                activities=(ActivityDeclaration(".X", Activity),),
                receivers=(ReceiverDeclaration("jp.mpac.dup.X", BroadcastReceiver),),
            )


class TestResolution:
    def test_explicit(self) -> None:
        pm = PackageManager()
        pm.install(_manifest("jp.mpac.one"))
        found = pm.query_intent_activities(Intent(component="jp.mpac.one/.Hidden"))
        assert [r.component.flatten_short() for r in found] == ["jp.mpac.one/.Hidden"]
        assert found[0].intent_filter is None
        assert pm.query_intent_activities(Intent(component="jp.mpac.one/.Missing")) == []

    def test_implicit_needs_default_category_and_orders_by_priority(self) -> None:
        pm = PackageManager()
        pm.install(_manifest("jp.mpac.low"))
        pm.install(_manifest("jp.mpac.high", priority=10))
        found = pm.query_intent_activities(Intent(PAY))
        assert [r.component.package for r in found] == ["jp.mpac.high", "jp.mpac.low"]
        # MAIN/LAUNCHER lacks DEFAULT: not startable implicitly by action alone
        assert pm.query_intent_activities(Intent(ACTION_MAIN)) == []
        launcher = pm.query_intent_activities(Intent(ACTION_MAIN, categories=[CATEGORY_LAUNCHER]))
        assert launcher == []  # Android requires DEFAULT for implicit starts
        resolved = pm.resolve_activity(Intent(PAY, package="jp.mpac.low"))
        assert resolved is not None
        assert resolved.component.package == "jp.mpac.low"

    def test_receivers(self) -> None:
        pm = PackageManager()
        pm.install(_manifest("jp.mpac.one"))
        assert [r.component.flatten_short() for r in pm.query_broadcast_receivers(Intent(PAY))] == [
            "jp.mpac.one/.Receiver"
        ]
        assert pm.query_broadcast_receivers(Intent("other")) == []
        assert len(pm.query_broadcast_receivers(Intent(component="jp.mpac.one/.Receiver"))) == 1

    def test_stopped_state(self) -> None:
        pm = PackageManager()
        pm.install(_manifest("jp.mpac.one"))
        assert not pm.is_stopped("jp.mpac.one")
        pm.set_stopped("jp.mpac.one", True)
        assert pm.is_stopped("jp.mpac.one")


class TestPmOutput:
    def test_list_packages(self) -> None:
        pm = PackageManager()
        pm.install(_manifest("jp.mpac.creditcard", system=True, version=7))
        pm.install(_manifest("jp.mpac.business"))
        assert pm.list_packages() == ["package:jp.mpac.business", "package:jp.mpac.creditcard"]
        assert pm.list_packages("credit") == ["package:jp.mpac.creditcard"]
        assert pm.list_packages(system_only=True) == ["package:jp.mpac.creditcard"]
        assert pm.list_packages(third_party_only=True) == ["package:jp.mpac.business"]
        assert pm.list_packages(show_path=True) == [
            "package:/data/app/jp.mpac.business-1/base.apk=jp.mpac.business",
            "package:/system/priv-app/PayApp/PayApp.apk=jp.mpac.creditcard",
        ]
        assert pm.list_packages("credit", show_version_code=True, show_uid=True) == [
            "package:jp.mpac.creditcard versionCode:7 uid:10000"
        ]
        assert pm.path_lines("jp.mpac.business") == [
            "package:/data/app/jp.mpac.business-1/base.apk"
        ]
