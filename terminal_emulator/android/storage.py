"""Per-app persistent storage under the device's state directory.

Laid out like Android's ``/data/data/<package>/``: ``shared_prefs/<name>.json`` (small
settings, rewritten atomically), ``databases/<name>.db`` (SQLite key-value tables for records
that must survive a kill, committed on every write) and ``files/``. Whatever an app wrote
before ``am force-stop`` or an emulator restart is there afterwards; what it kept only in
memory is not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from terminal_emulator.android.intent import is_valid_package_name

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"invalid storage name {name!r}")
    return name


class SharedPreferences:
    """A JSON document of settings; every change is written through (temp file + rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values: dict[str, Any] = {}
        if path.exists():
            self._values = json.loads(path.read_text(encoding="utf-8"))

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def all(self) -> dict[str, Any]:
        return dict(self._values)

    def put(self, key: str, value: Any) -> None:
        self.update({key: value})

    def remove(self, key: str) -> None:
        if key in self._values:
            del self._values[key]
            self._write()

    def update(self, values: dict[str, Any]) -> None:
        """Apply several changes in one write (all or none reach the disk)."""
        merged = {**self._values, **values}
        json.dumps(merged)  # refuse what cannot be stored before anything changes
        self._values = merged
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(self._values, handle, ensure_ascii=False, sort_keys=True, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


class KeyValueDatabase:
    """A SQLite table of text keys and values, committed on every write.

    Satisfies the contract's ``KeyValueStore`` protocol, which is how the Credit Card App keeps
    its request journal.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        self._in_transaction = False

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise sqlite3.ProgrammingError(f"database {self.path.name} is closed")
        return self._connection

    @property
    def closed(self) -> bool:
        return self._connection is None

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE key = ?", (key,))

    def items(self, prefix: str = "") -> list[tuple[str, str]]:
        # Range scan instead of LIKE: prefixes may contain % and _.
        if prefix:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        else:
            rows = self._db.execute("SELECT key, value FROM kv ORDER BY key").fetchall()
        return [(str(key), str(value)) for key, value in rows]

    @contextmanager
    def transaction(self) -> Iterator[KeyValueDatabase]:
        """Several writes that land together or not at all."""
        if self._in_transaction:
            yield self
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_transaction = False

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class AppStorage:
    """One package's data directory."""

    def __init__(self, root: Path, package: str) -> None:
        if not is_valid_package_name(package):
            raise ValueError(f"invalid package name {package!r}")
        self.package = package
        self.data_dir = root / package

    @property
    def files_dir(self) -> Path:
        path = self.data_dir / "files"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def shared_preferences_path(self, name: str) -> Path:
        return self.data_dir / "shared_prefs" / f"{_check_name(name)}.json"

    def database_path(self, name: str) -> Path:
        return self.data_dir / "databases" / f"{_check_name(name)}.db"

    def open_shared_preferences(self, name: str) -> SharedPreferences:
        return SharedPreferences(self.shared_preferences_path(name))

    def open_database(self, name: str) -> KeyValueDatabase:
        return KeyValueDatabase(self.database_path(name))

    def clear(self) -> None:
        """``pm clear``: everything the app stored is gone."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
