"""Ed25519 key files and signatures.

The private key is PKCS#8 PEM, created with mode 0600 and never overwritten.
The public key travels as base64 of its 32 raw bytes (``Key:`` in articles,
``GET /dni/v1/key`` on the listener).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from scrubber.errors import KeyFileError
from scrubber.private import check_key_file, private_dir


def encode_public(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_public(text: str) -> bytes:
    """Parse a base64 public key; raises ValueError unless it is 32 bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public key is not base64") from None
    if len(raw) != 32:
        raise ValueError("public key must be 32 bytes")
    return raw


def fingerprint(raw_public: bytes) -> str:
    """Short, stable name of a public key: hex of the first 16 bytes of SHA-256."""
    return hashlib.sha256(raw_public).hexdigest()[:32]


def verify(raw_public: bytes, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``raw_public``'s Ed25519 signature of ``data``."""
    try:
        Ed25519PublicKey.from_public_bytes(raw_public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class OperatorKey:
    """The operator's signing key."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> OperatorKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_b64(self) -> str:
        return encode_public(self.public_raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def write(self, private_path: Path, public_path: Path) -> None:
        """Write both files; refuses to replace an existing private key."""
        private_dir(private_path.parent)
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"{private_path} exists; refusing to overwrite a key") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        public_path.write_text(self.public_b64 + "\n", encoding="ascii")

    @classmethod
    def load(cls, private_path: Path) -> OperatorKey:
        check_key_file(private_path)
        try:
            pem = private_path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read key {private_path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise KeyFileError(f"{private_path} is not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{private_path} is not an Ed25519 key")
        return cls(key)


RETIRED = "retired"


def retired_directory(private_path: Path) -> Path:
    """Where rotated-out keys are kept: ``retired/`` beside the current key."""
    return private_path.parent / RETIRED


def read_public(path: Path) -> bytes:
    try:
        return decode_public(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise KeyFileError(f"cannot read the public key {path}") from None


def retired_public_keys(private_path: Path) -> list[bytes]:
    """The public halves of every key rotated out, oldest file name first."""
    directory = retired_directory(private_path)
    if not directory.is_dir():
        return []
    return [read_public(p) for p in sorted(directory.glob("*.pub"))]


def rotate(private_path: Path, public_path: Path) -> tuple[str, OperatorKey]:
    """Move the current pair to ``retired/FINGERPRINT.*`` and write a new one.

    The old private key is kept (0600), not deleted: nothing stored is lost,
    and the operator decides when to destroy it.
    """
    old = OperatorKey.load(private_path)
    directory = retired_directory(private_path)
    directory.mkdir(mode=0o700, exist_ok=True)
    retired_key = directory / f"{old.fingerprint}.key"
    if retired_key.exists():
        raise KeyFileError(f"{retired_key} exists; refusing to overwrite a key")
    (directory / f"{old.fingerprint}.pub").write_text(old.public_b64 + "\n", encoding="ascii")
    private_path.replace(retired_key)
    new = OperatorKey.generate()
    public_path.unlink(missing_ok=True)
    new.write(private_path, public_path)
    return old.fingerprint, new
