"""Kalshi request signing: RSA-PSS (SHA-256, MGF1-SHA-256, salt = digest length).

The signed message is ``timestamp_ms + METHOD + path`` where ``path`` starts
at ``/trade-api/...`` and carries no query string. :class:`Signer` produces
the three ``KALSHI-ACCESS-*`` headers; :class:`Verifier` checks them (the
simulator uses it, and so can tests).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_HEADER: Final = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER: Final = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER: Final = "KALSHI-ACCESS-SIGNATURE"
DEFAULT_MAX_SKEW_MS: Final = 30_000
"""Kalshi does not publish its tolerance; 30 s either way is ours."""

_PSS: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
# Kalshi documents salt = digest length, yet clients signing with MAX_LENGTH are accepted,
# so the verifier reads the salt length from the signature.
_PSS_VERIFY: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


def signed_path(url_or_path: str) -> str:
    """The part of a URL that is signed: its path, without query string or host."""
    return urlsplit(url_or_path).path or "/"


def message(timestamp_ms: str, method: str, path: str) -> bytes:
    return f"{timestamp_ms}{method.upper()}{signed_path(path)}".encode()


def load_private_key(pem: bytes | str | Path) -> rsa.RSAPrivateKey:
    data = Path(pem).read_bytes() if isinstance(pem, Path) else pem
    key = serialization.load_pem_private_key(
        data.encode() if isinstance(data, str) else data, password=None
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("Kalshi keys are RSA keys")
    return key


def load_public_key(pem: bytes | str | Path) -> rsa.RSAPublicKey:
    data = Path(pem).read_bytes() if isinstance(pem, Path) else pem
    key = serialization.load_pem_public_key(data.encode() if isinstance(data, str) else data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Kalshi keys are RSA keys")
    return key


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Signer:
    """Signs requests for one API key."""

    key_id: str
    private_key: rsa.RSAPrivateKey
    clock_ms: Callable[[], int] = now_ms

    def sign(self, timestamp_ms: str, method: str, path: str) -> str:
        raw = self.private_key.sign(message(timestamp_ms, method, path), _PSS, hashes.SHA256())
        return base64.b64encode(raw).decode()

    def headers(self, method: str, url_or_path: str) -> dict[str, str]:
        """The three KALSHI-ACCESS-* headers for one request."""
        timestamp = str(self.clock_ms())
        return {
            KEY_HEADER: self.key_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: self.sign(timestamp, method, url_or_path),
        }


class AuthError(Exception):
    """A request whose KALSHI-ACCESS-* headers do not authenticate it."""


@dataclass
class Verifier:
    """Checks KALSHI-ACCESS-* headers against registered public keys."""

    public_keys: dict[str, rsa.RSAPublicKey]
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS
    clock_ms: Callable[[], int] = now_ms

    def verify(self, headers: Mapping[str, str], method: str, path: str) -> str:
        """Return the key id of a well-signed, fresh request; raise AuthError otherwise."""
        key_id, timestamp, signature = (
            _header(headers, KEY_HEADER),
            _header(headers, TIMESTAMP_HEADER),
            _header(headers, SIGNATURE_HEADER),
        )
        public_key = self.public_keys.get(key_id)
        if public_key is None:
            raise AuthError("unknown API key")
        if not timestamp.isdigit():
            raise AuthError("bad timestamp")
        if abs(self.clock_ms() - int(timestamp)) > self.max_skew_ms:
            raise AuthError("stale timestamp")
        try:
            raw = base64.b64decode(signature, validate=True)
            public_key.verify(raw, message(timestamp, method, path), _PSS_VERIFY, hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise AuthError("bad signature") from exc
        return key_id


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise AuthError(f"missing {name}")
    return value
