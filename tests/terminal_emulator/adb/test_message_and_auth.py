"""Message encoding against adb-shell's encoder, and the key format and signatures against
the keys and signatures adb-shell makes (the format the adb binary writes too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from adb_shell.adb_message import AdbMessage
from adb_shell.auth.keygen import encode_pubkey
from cryptography.hazmat.primitives.asymmetric import rsa

from terminal_emulator.adb.auth import (
    AdbKeyStore,
    AdbPublicKey,
    KeyFormatError,
    decode_android_pubkey,
    encode_android_pubkey,
)
from terminal_emulator.adb.constants import Command
from terminal_emulator.adb.message import (
    Message,
    ProtocolError,
    checksum_required,
    decode_header,
    verify_payload,
)
from tests.terminal_emulator.adb.conftest import HostKey


def test_messages_encode_exactly_like_adb_shell() -> None:
    payload = "host::features=shell_v2\0 ünï".encode()
    ours = Message(Command.CNXN, 0x01000000, 4096, payload).encode(with_checksum=True)
    assert ours == AdbMessage(b"CNXN", 0x01000000, 4096, payload).pack() + payload

    without = Message(Command.WRTE, 1, 2, b"abc").encode(with_checksum=False)
    assert without[16:20] == bytes(4)  # checksum field 0 from version 0x01000001 on


def test_header_decoding_checks_magic_command_and_size() -> None:
    good = AdbMessage(b"OKAY", 3, 4).pack()
    assert decode_header(good, max_payload=4096).command is Command.OKAY

    with pytest.raises(ProtocolError, match="magic"):
        decode_header(good[:20] + bytes(4), max_payload=4096)
    bad = (
        b"NOPE"
        + good[4:20]
        + (int.from_bytes(b"NOPE", "little") ^ 0xFFFFFFFF).to_bytes(4, "little")
    )
    with pytest.raises(ProtocolError, match="unknown command"):
        decode_header(bad, max_payload=4096)
    big = AdbMessage(b"WRTE", 1, 2, bytes(5000)).pack()
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_header(big, max_payload=4096)


def test_checksums_are_required_only_before_version_0x01000001() -> None:
    assert checksum_required(0x01000000)
    assert not checksum_required(0x01000001)
    header = decode_header(AdbMessage(b"WRTE", 1, 2, b"data").pack(), max_payload=4096)
    assert verify_payload(header, b"data", with_checksum=True).payload == b"data"
    with pytest.raises(ProtocolError, match="checksum"):
        verify_payload(header, b"dat4", with_checksum=True)
    assert verify_payload(header, b"dat4", with_checksum=False).payload == b"dat4"


def test_public_keys_round_trip_with_adb_shells_format(host_key: HostKey) -> None:
    line = host_key.path.with_name("adbkey.pub").read_text()
    key = AdbPublicKey.parse(line)

    # Same struct bytes (n0inv and rr included) as adb-shell's encoder, which follows AOSP.
    assert key.encode() == encode_pubkey(str(host_key.path))
    assert key.to_line() == line.strip()
    assert key.comment == line.split()[1]
    assert AdbPublicKey.parse(line.encode() + b"\0") == key  # as an AUTH payload carries it
    assert len(key.fingerprint.split(":")) == 16


def test_struct_rejects_wrong_sizes() -> None:
    # A 3072-bit key is fine RSA but not an ADB key.
    large = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()
    with pytest.raises(KeyFormatError, match="2048"):
        encode_android_pubkey(large)
    with pytest.raises(KeyFormatError):
        decode_android_pubkey(bytes(100))
    with pytest.raises(KeyFormatError, match="base64"):
        AdbPublicKey.parse("not*base64 user@host")
    blob = bytearray(encode_android_pubkey(rsa.generate_private_key(65537, 2048).public_key()))
    blob[0] = 96  # modulus_size_words of a 3072-bit key
    with pytest.raises(KeyFormatError, match="words"):
        decode_android_pubkey(bytes(blob))


def test_signatures_verify_only_for_the_signing_key(
    host_key: HostKey, stranger_key: HostKey
) -> None:
    token = bytes(range(20))
    signature = host_key.signer.Sign(token)

    assert host_key.public.verify(token, signature)
    assert not stranger_key.public.verify(token, signature)
    assert not host_key.public.verify(bytes(20), signature)
    assert not host_key.public.verify(token, b"short")


def test_keystore_file_persists_allowed_keys_and_skips_bad_lines(
    tmp_path: Path, host_key: HostKey, stranger_key: HostKey, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "misc" / "adb" / "adb_keys"
    store = AdbKeyStore.load(path)
    assert store.keys == ()

    store.allow(host_key.public)
    store.allow(host_key.public)  # once is enough
    path.write_text(path.read_text() + "# a comment\ngarbage line\n\n")
    store = AdbKeyStore.load(path)
    store.allow(stranger_key.public)

    reloaded = AdbKeyStore.load(path)
    assert reloaded.keys == (host_key.public, stranger_key.public)
    assert "ignoring ADB key" in caplog.text
    token = bytes(20)
    assert reloaded.find_signer(token, stranger_key.signer.Sign(token)) == stranger_key.public
    assert (
        AdbKeyStore([host_key.public]).find_signer(token, stranger_key.signer.Sign(token)) is None
    )
