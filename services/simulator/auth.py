"""Who may trade: registered API keys and their verification on REST and WebSocket."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from shared.kalshi.signing import AuthError, Verifier, load_private_key, load_public_key
from shared.money import Micros, dollars

DEFAULT_CASH: Micros = dollars(10_000)


@dataclass(frozen=True)
class AccountSpec:
    """``KEY_ID=PUBLIC_KEY.pem[:CASH_CENTS]`` from the command line."""

    key_id: str
    public_key: rsa.RSAPublicKey
    cash: Micros = DEFAULT_CASH

    @classmethod
    def parse(cls, text: str) -> AccountSpec:
        key_id, sep, rest = text.partition("=")
        if not sep or not key_id or not rest:
            raise ValueError(f"--account wants KEY_ID=PUBLIC_KEY.pem[:CASH_CENTS], got {text!r}")
        path, _, cash = rest.partition(":")
        if cash and not cash.isdigit():
            raise ValueError(f"cash must be whole cents, got {cash!r}")
        pem = Path(path).read_bytes()
        key = _public_key_from_pem(pem)
        return cls(key_id, key, int(cash) * 10_000 if cash else DEFAULT_CASH)


def _public_key_from_pem(pem: bytes) -> rsa.RSAPublicKey:
    """Accept a public key, or a private key whose public half is taken."""
    if b"PRIVATE KEY" in pem:
        return load_private_key(pem).public_key()
    return load_public_key(pem)


class Authenticator:
    """Verifies signed requests against the registered keys."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    def register(self, key_id: str, public_key: rsa.RSAPublicKey) -> None:
        self.verifier.public_keys[key_id] = public_key

    def check(self, headers: Mapping[str, str], method: str, path: str) -> str:
        """The key id of a well-signed request; raises AuthError."""
        return self.verifier.verify(headers, method, path)


__all__ = ["AccountSpec", "AuthError", "Authenticator"]
