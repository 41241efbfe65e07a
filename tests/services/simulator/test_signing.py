"""RSA-PSS request signing and its verification."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from shared.kalshi.signing import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AuthError,
    Signer,
    Verifier,
    generate_private_key,
    load_private_key,
    load_public_key,
    message,
    private_pem,
    public_pem,
)

KEY = generate_private_key()
NOW = 1_703_123_456_789


def make_signer(key_id: str = "key-1") -> Signer:
    return Signer(key_id, KEY, clock_ms=lambda: NOW)


def make_verifier() -> Verifier:
    return Verifier({"key-1": KEY.public_key()}, clock_ms=lambda: NOW)


def test_message_drops_query_and_host() -> None:
    got = message("1703123456789", "get", "https://h.example/trade-api/v2/portfolio/orders?limit=5")
    assert got == b"1703123456789GET/trade-api/v2/portfolio/orders"


def test_good_signature_verifies() -> None:
    headers = make_signer().headers("GET", "/trade-api/v2/portfolio/balance")
    assert headers[TIMESTAMP_HEADER] == str(NOW)
    assert make_verifier().verify(headers, "GET", "/trade-api/v2/portfolio/balance") == "key-1"


def test_signature_is_pss_sha256_digest_salt() -> None:
    headers = make_signer().headers("POST", "/trade-api/v2/portfolio/orders")
    raw = base64.b64decode(headers[SIGNATURE_HEADER])
    KEY.public_key().verify(
        raw,
        b"%dPOST/trade-api/v2/portfolio/orders" % NOW,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda h: {**h, SIGNATURE_HEADER: base64.b64encode(b"x" * 256).decode()}, "bad signature"),
        (lambda h: {**h, SIGNATURE_HEADER: "!!notbase64"}, "bad signature"),
        (lambda h: {**h, KEY_HEADER: "other"}, "unknown API key"),
        (lambda h: {k: v for k, v in h.items() if k != TIMESTAMP_HEADER}, "missing"),
        (lambda h: {**h, TIMESTAMP_HEADER: str(NOW + 1)}, "bad signature"),
    ],
)
def test_bad_headers_rejected(mutate, why: str) -> None:
    headers = mutate(make_signer().headers("GET", "/trade-api/v2/portfolio/balance"))
    with pytest.raises(AuthError, match=why):
        make_verifier().verify(headers, "GET", "/trade-api/v2/portfolio/balance")


def test_wrong_path_or_method_rejected() -> None:
    headers = make_signer().headers("GET", "/trade-api/v2/portfolio/balance")
    with pytest.raises(AuthError):
        make_verifier().verify(headers, "GET", "/trade-api/v2/portfolio/positions")
    with pytest.raises(AuthError):
        make_verifier().verify(headers, "DELETE", "/trade-api/v2/portfolio/balance")


def test_stale_timestamp_rejected() -> None:
    old = Signer("key-1", KEY, clock_ms=lambda: NOW - 60_000)
    with pytest.raises(AuthError, match="stale"):
        make_verifier().verify(old.headers("GET", "/x"), "GET", "/x")


def test_pem_round_trip() -> None:
    assert load_private_key(private_pem(KEY)).private_numbers() == KEY.private_numbers()
    assert load_public_key(public_pem(KEY)).public_numbers() == KEY.public_key().public_numbers()
