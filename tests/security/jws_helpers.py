"""Keys and hand-made tokens for the signing tests (no broker, no network).

Tokens are built here with hmac/cryptography directly, not with PyJWT, so the tests check
agent.signing against an independent implementation of RFC 7515.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from agent.io.signing import KeyRing

NOW = 1_750_000_000.0  # the injected clock of every test


def b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def b64json(obj: object) -> bytes:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def event(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "event_id": "evt-0001",
        "type": "sale",
        "terminal_id": "T1",
        "occurred_at": "2025-06-15T15:06:40+00:00",
        "amount": 12.5,
        "currency": "EUR",
        "payment_method": "cash",
    }
    claims.update(overrides)
    return claims


def hs_token(
    header: object, claims: object, secret: bytes, *, raw_claims: bytes | None = None
) -> bytes:
    signing_input = (
        b64json(header) + b"." + (b64url(raw_claims) if raw_claims is not None else b64json(claims))
    )
    return signing_input + b"." + b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())


def es_token(
    header: object, claims: object, key: ec.EllipticCurvePrivateKey, *, der: bool = False
) -> bytes:
    signing_input = b64json(header) + b"." + b64json(claims)
    der_sig = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    if der:
        return signing_input + b"." + b64url(der_sig)
    r, s = decode_dss_signature(der_sig)
    return signing_input + b"." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Keys:
    hs_old: bytes  # kid "pos-2024"
    hs_new: bytes  # kid "pos-2025"
    ec_key: ec.EllipticCurvePrivateKey  # kid "pos-ec-1"
    ec_other: ec.EllipticCurvePrivateKey  # not configured anywhere
    keyring: KeyRing

    @property
    def ec_public_pem(self) -> bytes:
        return public_pem(self.ec_key)

    def hs(self, claims: object = None, *, kid: str | None = "pos-2025", **header: object) -> bytes:
        hdr: dict[str, object] = {"alg": "HS256", "typ": "JWT"}
        if kid is not None:
            hdr["kid"] = kid
        hdr.update(header)
        return hs_token(hdr, event() if claims is None else claims, self.hs_new)

    def es(self, claims: object = None, *, kid: str | None = "pos-ec-1", **header: object) -> bytes:
        hdr: dict[str, object] = {"alg": "ES256", "typ": "JWT"}
        if kid is not None:
            hdr["kid"] = kid
        hdr.update(header)
        return es_token(hdr, event() if claims is None else claims, self.ec_key)


def make_keys() -> Keys:
    hs_old = b"o" * 16 + bytes(range(100, 132))
    hs_new = bytes(range(1, 49))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_other = ec.generate_private_key(ec.SECP256R1())
    keyring = KeyRing.build(
        {"pos-2024": hs_old, "pos-2025": hs_new}, {"pos-ec-1": public_pem(ec_key)}
    )
    return Keys(hs_old, hs_new, ec_key, ec_other, keyring)
