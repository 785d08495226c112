"""This computer's ADB keys: where they live, how they are created, what a device sees."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from adb_shell.auth.keygen import keygen

from android_bridge.errors import BridgeError
from android_bridge.keys import (
    android_user_dir,
    default_key_path,
    ensure_key,
    fingerprint,
    load_host_keys,
    load_signer,
    public_key_line,
    public_key_path,
    vendor_key_paths,
)
from terminal_emulator.adb import AdbPublicKey


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_android_user_dir_follows_adb_and_the_sdk_variables(tmp_path: Path) -> None:
    assert android_user_dir({"HOME": "/home/ana"}) == Path("/home/ana/.android")
    assert android_user_dir({"HOME": "/home/ana", "ANDROID_SDK_HOME": "/sdk"}) == Path(
        "/sdk/.android"
    )
    assert android_user_dir(
        {"HOME": "/home/ana", "ANDROID_SDK_HOME": "/sdk", "ANDROID_USER_HOME": "/prefs"}
    ) == Path("/prefs")
    assert default_key_path({"ANDROID_USER_HOME": str(tmp_path)}) == tmp_path / "adbkey"


def test_a_missing_key_is_created_private_and_then_reused(tmp_path: Path) -> None:
    home = tmp_path / "user" / ".android"
    path = ensure_key(home / "adbkey")

    assert path == home / "adbkey"
    assert _mode(home) == 0o700
    assert _mode(path) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    line = public_key_path(path).read_text()
    assert AdbPublicKey.parse(line).to_line().split()[0] == line.split()[0]
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []  # no leftovers

    before = path.read_bytes(), public_key_path(path).read_bytes()
    assert ensure_key(path) == path
    assert (path.read_bytes(), public_key_path(path).read_bytes()) == before


def test_processes_racing_to_create_the_key_end_up_with_one(tmp_path: Path) -> None:
    path = tmp_path / "adbkey"
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        ensure_key(path)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    signer = load_signer(path)
    assert signer.GetPublicKey().split()[0] == public_key_line(path).split()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adbkey", "adbkey.pub"]


def test_a_key_without_its_pub_file_still_works(tmp_path: Path) -> None:
    keygen(str(tmp_path / "adbkey"))
    expected = (tmp_path / "adbkey.pub").read_text().split()[0]
    (tmp_path / "adbkey.pub").unlink()

    assert public_key_line(tmp_path / "adbkey").split()[0] == expected
    assert load_signer(tmp_path / "adbkey").GetPublicKey().split()[0] == expected
    ensure_key(tmp_path / "adbkey")  # writes the missing .pub back
    assert (tmp_path / "adbkey.pub").read_text().split()[0] == expected


def test_the_fingerprint_is_the_one_the_device_prompt_shows(tmp_path: Path) -> None:
    line = public_key_line(ensure_key(tmp_path / "adbkey"))
    shown_by_device = AdbPublicKey.parse(line).fingerprint

    assert fingerprint(line) == shown_by_device
    assert len(shown_by_device.split(":")) == 16
    assert fingerprint("not base64!") == "unknown"


def test_an_unreadable_key_is_a_bridge_error_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "adbkey").write_text("garbage")
    (tmp_path / "adbkey.pub").write_text("garbage")
    with pytest.raises(BridgeError) as raised:
        load_signer(tmp_path / "adbkey")
    assert raised.value.hint


def test_vendor_keys_are_files_and_adb_key_files_of_directories(tmp_path: Path) -> None:
    vendor_dir = tmp_path / "vendor"
    vendor_dir.mkdir()
    keygen(str(vendor_dir / "b.adb_key"))
    keygen(str(vendor_dir / "a.adb_key"))
    keygen(str(vendor_dir / "ignored"))
    single = tmp_path / "single_key"
    keygen(str(single))
    env = {"ADB_VENDOR_KEYS": os.pathsep.join([str(vendor_dir), str(single), "/nowhere"])}

    assert vendor_key_paths(env) == [vendor_dir / "a.adb_key", vendor_dir / "b.adb_key", single]
    assert vendor_key_paths({}) == []


def test_host_keys_put_the_user_key_first_and_offer_it(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor.adb_key"
    keygen(str(vendor))
    (tmp_path / "broken.adb_key").write_text("not a key")
    env = {"ADB_VENDOR_KEYS": os.pathsep.join([str(vendor), str(tmp_path / "broken.adb_key")])}

    keys = load_host_keys(tmp_path / "home" / "adbkey", environ=env)

    user_line = public_key_line(tmp_path / "home" / "adbkey")
    assert len(keys.signers) == 2  # the broken vendor key is skipped, as adb does
    assert keys.public_line == user_line
    assert keys.signers[0].GetPublicKey().strip() == user_line
    assert keys.fingerprint == fingerprint(user_line)
    assert keys.public_path == tmp_path / "home" / "adbkey.pub"
    hint = keys.allow_hint()
    assert keys.fingerprint in hint
    assert str(keys.public_path) in hint
    assert "/data/misc/adb/adb_keys" in hint
