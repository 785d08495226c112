"""This computer's ADB keys, kept where and how the ``adb`` command keeps them.

A device lets a host in when the host signs its challenge with a private key whose public
half is in the device's ``adb_keys`` (or when someone taps "Allow" on the device's prompt).
The bridge uses the same key pair as ``adb``, so a device that already trusts this computer's
``adb`` trusts the bridge too:

* the user key ``<android user dir>/adbkey`` (PKCS#8 PEM) and ``adbkey.pub`` (base64 of
  Android's ``RSAPublicKey`` struct, a space, ``user@host``), created on first use (directory
  0700, private key 0600) with adb-shell's ``keygen``;
* the android user dir: ``$ANDROID_USER_HOME`` when set (the SDK tools' variable), else
  ``$ANDROID_SDK_HOME/.android`` (what older adb releases read), else ``$HOME/.android``
  (what current adb reads: ``adb_get_android_dir_path`` in AOSP's ``adb_utils.cpp``). A host
  that sets ``ANDROID_USER_HOME`` somewhere else than ``~/.android`` has two key pairs, one
  for ``adb`` and one for the bridge: point both at the same place;
* ``ADB_VENDOR_KEYS``: more private keys, as adb reads it (a ``:``-separated list of files and
  directories; in a directory, the files named ``*.adb_key``). They are tried after the user
  key; the key offered for the "Allow" prompt is always the user key, as with adb.

The fingerprint is the one Android's "Allow USB debugging?" prompt shows (MD5 of the public
key blob, upper-case hex pairs joined by ``:``), so a user can match the two.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from adb_shell.auth.keygen import encode_pubkey, get_user_info, keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

from android_bridge.errors import BridgeError

USER_KEY_NAME = "adbkey"
VENDOR_KEY_SUFFIX = ".adb_key"
#: Where a device keeps the keys it trusts (what a user appends the ``.pub`` line to).
DEVICE_ADB_KEYS = "/data/misc/adb/adb_keys"

_log = logging.getLogger(__name__)


def android_user_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory adb keeps its keys in (see the module doc for the order)."""
    env = os.environ if environ is None else environ
    if env.get("ANDROID_USER_HOME"):
        return Path(env["ANDROID_USER_HOME"])
    if env.get("ANDROID_SDK_HOME"):
        return Path(env["ANDROID_SDK_HOME"]) / ".android"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".android"


def default_key_path(environ: Mapping[str, str] | None = None) -> Path:
    return android_user_dir(environ) / USER_KEY_NAME


def public_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


def ensure_key(key_path: Path | None = None) -> Path:
    """``key_path`` (default: the user key), generated first if it does not exist yet.

    A new key is written to a private temporary name and linked into place, so two processes
    starting at once never read a half-written key, and the one that loses the race uses the
    winner's key.
    """
    path = key_path or default_key_path()
    if path.exists():
        if not public_key_path(path).exists():
            _write_public_key(path)
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    staging_pub = public_key_path(staging)
    try:
        # Created 0600 before keygen writes into it: the key is never readable by others.
        os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        keygen(str(staging))
        try:
            os.link(staging, path)  # fails if another process got there first: keep theirs
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: last writer wins
            os.replace(staging, path)
            os.replace(staging_pub, public_key_path(path))
        else:
            os.replace(staging_pub, public_key_path(path))
    finally:
        for leftover in (staging, staging_pub):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    if not public_key_path(path).exists():
        _write_public_key(path)
    return path


def _write_public_key(key_path: Path) -> None:
    public_key_path(key_path).write_text(_public_line_from_private(key_path))


def _public_line_from_private(key_path: Path) -> str:
    blob = encode_pubkey(str(key_path))
    return base64.b64encode(blob).decode("ascii") + get_user_info()


def public_key_line(key_path: Path) -> str:
    """The line to append to a device's ``adb_keys`` for ``key_path`` (its ``.pub`` file, or
    computed from the private key when there is none)."""
    pub = public_key_path(key_path)
    if pub.exists():
        return pub.read_text().strip()
    return _public_line_from_private(key_path)


def fingerprint(public_line: str) -> str:
    """MD5 of the public key blob as Android's "Allow USB debugging?" prompt shows it
    (``AB:CD:...``)."""
    encoded = public_line.split()[0] if public_line.split() else ""
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "unknown"
    return ":".join(f"{byte:02X}" for byte in hashlib.md5(blob, usedforsecurity=False).digest())


def load_signer(key_path: Path) -> PythonRSASigner:
    """A signer for the private key at ``key_path`` (public half from ``.pub`` or computed)."""
    try:
        private = key_path.read_text()
        return PythonRSASigner(public_key_line(key_path), private)
    except (OSError, ValueError) as error:
        raise BridgeError(
            f"cannot load the ADB key {key_path}: {error}",
            hint="remove it to have a new one generated, or fix its permissions",
        ) from error


def vendor_key_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The private keys ``ADB_VENDOR_KEYS`` names (missing entries are skipped, as adb does)."""
    env = os.environ if environ is None else environ
    paths: list[Path] = []
    for entry in env.get("ADB_VENDOR_KEYS", "").split(os.pathsep):
        if not entry:
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            paths.extend(
                sorted(
                    child
                    for child in path.iterdir()
                    if child.name.endswith(VENDOR_KEY_SUFFIX) and child.is_file()
                )
            )
        elif path.is_file():
            paths.append(path)
    return paths


@dataclass(frozen=True)
class HostKeys:
    """The signers a host tries, in order, and what identifies the first (the user key)."""

    signers: tuple[PythonRSASigner, ...]
    public_line: str  # offered for the "Allow" prompt
    public_path: Path | None  # where that line is kept, for hints
    fingerprint: str

    @classmethod
    def from_signers(cls, signers: Sequence[PythonRSASigner]) -> HostKeys:
        if not signers:
            return cls((), "", None, "none")
        line = str(signers[0].GetPublicKey() or "").strip()
        return cls(tuple(signers), line, None, fingerprint(line))

    def allow_hint(self) -> str:
        where = str(self.public_path) if self.public_path else "this computer's adbkey.pub"
        return (
            f"tap Allow on the device's 'Allow USB debugging?' prompt (key fingerprint "
            f"{self.fingerprint}), or append {where} to the device's adb_keys "
            f"({DEVICE_ADB_KEYS})"
        )


def load_host_keys(
    key_path: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> HostKeys:
    """The user key (created when missing) followed by the ``ADB_VENDOR_KEYS`` keys."""
    user_key = ensure_key(key_path or default_key_path(environ))
    signers = [load_signer(user_key)]
    for path in vendor_key_paths(environ):
        if path.resolve() == user_key.resolve():
            continue
        try:
            signers.append(load_signer(path))
        except BridgeError as error:  # adb skips a vendor key it cannot read, so do we
            _log.warning("ADB_VENDOR_KEYS: skipping %s", error)
    line = public_key_line(user_key)
    return HostKeys(tuple(signers), line, public_key_path(user_key), fingerprint(line))
