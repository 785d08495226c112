"""Per-app storage: key-value databases, shared preferences, data directories."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from terminal_emulator.android.storage import AppStorage, KeyValueDatabase, SharedPreferences


class TestKeyValueDatabase:
    def test_put_get_delete_items(self, tmp_path: Path) -> None:
        db = KeyValueDatabase(tmp_path / "kv.db")
        db.put("request:a", "1")
        db.put("request:b", "ラーメン 🍜")
        db.put("request:a", "2")
        db.put("other", "x")
        db.put("request%_", "tricky prefix")
        assert db.get("request:a") == "2"
        assert db.get("missing") is None
        assert db.items("request:") == [("request:a", "2"), ("request:b", "ラーメン 🍜")]
        assert db.items("request%") == [("request%_", "tricky prefix")]
        assert len(db.items()) == 4
        db.delete("other")
        assert db.get("other") is None

    def test_writes_are_durable_at_once(self, tmp_path: Path) -> None:
        db = KeyValueDatabase(tmp_path / "kv.db")
        db.put("k", "v")
        # a second connection (another process after a kill) sees it without close()
        assert KeyValueDatabase(tmp_path / "kv.db").get("k") == "v"

    def test_transaction_is_all_or_nothing(self, tmp_path: Path) -> None:
        db = KeyValueDatabase(tmp_path / "kv.db")
        with db.transaction():
            db.put("a", "1")
            db.put("b", "2")

        def failing_transaction() -> None:
            with db.transaction():
                db.put("c", "3")
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            failing_transaction()
        assert db.get("c") is None
        assert db.get("b") == "2"

    def test_closed(self, tmp_path: Path) -> None:
        db = KeyValueDatabase(tmp_path / "kv.db")
        db.close()
        assert db.closed
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            db.get("k")
        db.close()


class TestSharedPreferences:
    def test_write_through_and_reload(self, tmp_path: Path) -> None:
        prefs = SharedPreferences(tmp_path / "p" / "settings.json")
        prefs.put("token", "abc")
        prefs.update({"count": 2, "list": ["x"]})
        prefs.remove("token")
        prefs.remove("absent")
        again = SharedPreferences(tmp_path / "p" / "settings.json")
        assert again.all() == {"count": 2, "list": ["x"]}
        assert again.get("token", "none") == "none"
        assert json.loads((tmp_path / "p" / "settings.json").read_text())["count"] == 2
        assert not (tmp_path / "p" / "settings.json.tmp").exists()

    def test_refuses_what_json_cannot_hold(self, tmp_path: Path) -> None:
        prefs = SharedPreferences(tmp_path / "settings.json")
        with pytest.raises(TypeError):
            prefs.put("bad", object())
        assert prefs.all() == {}


class TestAppStorage:
    def test_layout_and_clear(self, tmp_path: Path) -> None:
        storage = AppStorage(tmp_path, "jp.mpac.creditcard")
        assert (
            storage.database_path("transactions")
            == tmp_path / "jp.mpac.creditcard" / "databases" / "transactions.db"
        )
        assert storage.shared_preferences_path("s").parent.name == "shared_prefs"
        assert storage.files_dir.is_dir()
        storage.open_database("transactions").put("k", "v")
        storage.clear()
        assert not storage.data_dir.exists()

    @pytest.mark.parametrize("name", ["", "../escape", "a/b", ".."])
    def test_names_cannot_escape(self, tmp_path: Path, name: str) -> None:
        with pytest.raises(ValueError, match="invalid storage name"):
            AppStorage(tmp_path, "jp.mpac.x").database_path(name)

    def test_package_name_is_checked(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="invalid package name"):
            AppStorage(tmp_path, "../etc")
