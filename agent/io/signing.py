"""Signed cash events: JWS compact tokens (RFC 7515/7519) checked with keys fixed to one algorithm.

This is the only module that imports PyJWT; its exceptions become `SignatureError` here.

Rules (docs/security.md explains why):
* The header ``kid`` selects the key and the key's type fixes the algorithm: an ``hs256`` kid only
  verifies HS256, an ``es256`` kid only ES256. ``alg: none``, an unknown algorithm and HS/ES
  confusion (the classic "HMAC with the public key as secret") are refused before any crypto runs.
* The header is parsed here (strictly: canonical base64url, unique JSON names, a JSON object) only
  to choose the key; PyJWT then verifies the signature with exactly one allowed algorithm.
* Claims are parsed only after the signature holds. ``exp``/``nbf``/``iat`` are checked here
  against the injected ``now`` (PyJWT reads the wall clock itself), with ``leeway_s``.
* Replays are not refused here: a replayed token carries the same ``event_id``, which the ledger
  answers with ``duplicate``; ``max_age_s`` is applied by the intake to ``occurred_at``.
"""

from __future__ import annotations

import binascii
import json
import math
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)
from jwt.algorithms import HMACAlgorithm

from agent.core.errors import AgentError
from agent.core.events import InvalidEvent, decode_json_object

__all__ = [
    "MIN_SECRET_BYTES",
    "REASONS",
    "KeyRing",
    "SignatureError",
    "looks_signed",
    "sign_es256",
    "sign_hs256",
    "unverified_claims",
    "verified_identity",
    "verify",
]

MIN_SECRET_BYTES: Final = 32  # RFC 7518 §3.2: an HS256 key must be at least as long as the hash.

REASONS: Final = frozenset(
    {
        "unsigned",
        "malformed",
        "unknown_kid",
        "missing_kid",
        "bad_algorithm",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "bad_claims",
    }
)

_HS256: Final = "HS256"
_ES256: Final = "ES256"
_B64URL: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_WHITESPACE: Final = b" \t\r\n"
_DETAIL_ECHO: Final = 40  # characters of an attacker-chosen value echoed back in a detail

# One verifier that knows only the two algorithms we use, and refuses short HMAC keys outright.
_HMAC: Final = HMACAlgorithm(HMACAlgorithm.SHA256)
_JWS: Final = jwt.PyJWS(algorithms=[_HS256, _ES256], options={"enforce_minimum_key_length": True})


class SignatureError(AgentError):
    """An event token that must not open a drawer."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_Verifier = tuple[str, bytes | ec.EllipticCurvePublicKey]


@dataclass(frozen=True)
class KeyRing:
    """The verification keys, by kid; each kid is bound to exactly one algorithm."""

    hs256: Mapping[str, bytes] = field(repr=False)
    es256: Mapping[str, bytes] = field(repr=False)
    _verifiers: Mapping[str, _Verifier] = field(init=False, repr=False, compare=False)

    @classmethod
    def build(cls, hs256: Mapping[str, bytes], es256: Mapping[str, bytes]) -> KeyRing:
        """Validate and freeze the keys; raise ValueError naming the config key at fault."""
        return cls(hs256, es256)

    def __post_init__(self) -> None:
        verifiers: dict[str, _Verifier] = {}
        hs_copy: dict[str, bytes] = {}
        es_copy: dict[str, bytes] = {}
        for kid, given in self.hs256.items():
            where = f"security.keys.{kid}"
            _check_kid(kid, where)
            if not isinstance(given, bytes | bytearray):
                # ValueError throughout: the settings loader turns it into a config error.
                raise ValueError(f"{where}: secret must be bytes, not {type(given).__name__}")  # noqa: TRY004
            secret = bytes(given)
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"{where}: secret is {len(secret)} bytes; "
                    f"at least {MIN_SECRET_BYTES} are required"
                )
            try:
                _HMAC.prepare_key(secret)  # PyJWT refuses PEM/SSH-looking HMAC keys at use
            except jwt.InvalidKeyError as exc:
                raise ValueError(
                    f"{where}: this looks like a PEM or SSH key, not a shared secret"
                ) from exc
            hs_copy[kid] = secret
            verifiers[kid] = (_HS256, secret)
        for kid, pem in self.es256.items():
            where = f"security.public_keys.{kid}"
            _check_kid(kid, where)
            if kid in verifiers:
                raise ValueError(
                    f"security.keys.{kid}: the kid is also in security.public_keys; "
                    "a kid must name exactly one key"
                )
            public_key = _load_p256_public_key(pem, where)
            es_copy[kid] = bytes(pem)
            verifiers[kid] = (_ES256, public_key)
        object.__setattr__(self, "hs256", MappingProxyType(hs_copy))
        object.__setattr__(self, "es256", MappingProxyType(es_copy))
        object.__setattr__(self, "_verifiers", MappingProxyType(verifiers))

    def __bool__(self) -> bool:
        return bool(self._verifiers)

    def __repr__(self) -> str:
        # Never the secrets: settings objects get logged.
        return f"KeyRing(hs256={sorted(self.hs256)!r}, es256={sorted(self.es256)!r})"

    def algorithm_for(self, kid: str) -> str | None:
        """The algorithm bound to ``kid``, or None if the kid is unknown."""
        entry = self._verifiers.get(kid)
        return entry[0] if entry else None


def looks_signed(payload: bytes) -> bool:
    """True when the payload has the JWS compact shape: three base64url segments, a header first."""
    return _shape_problem(payload.strip(_WHITESPACE)) is None


def verify(
    token: bytes, keyring: KeyRing, *, now: float, leeway_s: float = 5.0
) -> dict[str, object]:
    """Check ``token`` and return its claims, or raise SignatureError with a stable reason."""
    token = token.strip(_WHITESPACE)
    problem = _shape_problem(token)
    if problem is not None:
        raise SignatureError("unsigned", problem)
    header_segment, payload_segment, signature_segment = token.split(b".")

    header = _parse_header(_b64url_decode(header_segment, "header"))
    if "kid" not in header:
        raise SignatureError("missing_kid", "the header has no kid")
    kid = header["kid"]
    if not isinstance(kid, str):
        raise SignatureError("malformed", "the header kid is not a string")
    if not kid:
        raise SignatureError("missing_kid", "the header kid is empty")
    entry = keyring._verifiers.get(kid)
    if entry is None:
        raise SignatureError("unknown_kid", f"kid {_echo(kid)} is not configured")
    algorithm, key = entry
    alg = header.get("alg")
    if alg != algorithm:
        raise SignatureError(
            "bad_algorithm", f"kid {_echo(kid)} takes {algorithm}, the token says {_echo(alg)}"
        )
    # Decoded here too so that a bad signature segment reads as malformed, not as a forgery.
    _b64url_decode(signature_segment, "signature")

    try:
        decoded = _JWS.decode_complete(token, key, algorithms=[algorithm])
    except jwt.InvalidSignatureError as exc:
        raise SignatureError("bad_signature", "signature verification failed") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise SignatureError("bad_algorithm", str(exc)) from exc
    except jwt.PyJWTError as exc:
        raise SignatureError("malformed", str(exc)[:120]) from exc

    payload = decoded["payload"]
    if not isinstance(payload, bytes):  # pragma: no cover - PyJWS always returns bytes
        raise SignatureError("malformed", "no payload")
    # Same bytes PyJWT just verified; decoded again to check canonical base64url.
    if _b64url_decode(payload_segment, "payload") != payload:  # pragma: no cover - defensive
        raise SignatureError("malformed", "payload segment mismatch")
    claims = _parse_claims(payload)
    _check_times(claims, now=now, leeway_s=leeway_s)
    return claims


def verified_identity(token: bytes) -> tuple[str, bytes]:
    """The kid and raw signature of a token `verify` accepted (for audit and replay memory)."""
    header_segment, _payload, signature_segment = token.strip(_WHITESPACE).split(b".")
    kid = _parse_header(_b64url_decode(header_segment, "header"))["kid"]
    assert isinstance(kid, str)
    return kid, _b64url_decode(signature_segment, "signature")


def unverified_claims(token: bytes) -> dict[str, object] | None:
    """The claims of a token that failed `verify`, to echo a correlation id only; never trusted."""
    token = token.strip(_WHITESPACE)
    if _shape_problem(token) is not None:
        return None
    try:
        return _parse_claims(_b64url_decode(token.split(b".")[1], "payload"))
    except SignatureError:
        return None


def sign_hs256(claims: Mapping[str, object], kid: str, secret: bytes) -> str:
    """Sign ``claims`` as an HS256 JWS compact token with ``kid`` in the header."""
    _check_kid(kid, "kid")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"secret is {len(secret)} bytes; at least {MIN_SECRET_BYTES} are required")
    return jwt.encode(dict(claims), bytes(secret), algorithm=_HS256, headers={"kid": kid})


def sign_es256(claims: Mapping[str, object], kid: str, private_key_pem: bytes) -> str:
    """Sign ``claims`` as an ES256 JWS compact token with ``kid`` in the header."""
    _check_kid(kid, "kid")
    try:
        private_key = load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not an unencrypted EC P-256 private key PEM") from exc
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise ValueError("not an EC P-256 private key")  # noqa: TRY004 - a bad value, not a bad type
    return jwt.encode(dict(claims), private_key, algorithm=_ES256, headers={"kid": kid})


# --- helpers ---------------------------------------------------------------------------------


def _check_kid(kid: object, where: str) -> None:
    if not isinstance(kid, str) or not kid:
        raise ValueError(f"{where}: a kid must be a non-empty string")


def _load_p256_public_key(pem: object, where: str) -> ec.EllipticCurvePublicKey:
    message = f"{where}: not an EC P-256 public key PEM"
    if not isinstance(pem, bytes | bytearray):
        raise ValueError(message)  # noqa: TRY004 - a config error, like the others
    if b"PRIVATE KEY" in pem:
        raise ValueError(f"{message} (this is a private key: give the agent the public key only)")
    try:
        key = load_pem_public_key(bytes(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(message) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(message)  # noqa: TRY004 - an RSA or P-384 key is a bad value
    return key


def _shape_problem(token: bytes) -> str | None:
    """Why ``token`` is not JWS compact serialization (RFC 7515 §7.1), or None if it is."""
    if not token:
        return "the payload is empty"
    if token[:1] in (b"{", b"["):
        return "the payload is JSON, not a JWS compact token"
    if not token.isascii():
        return "the payload is not ASCII, so not a JWS compact token"
    segments = token.split(b".")
    if len(segments) != 3:
        return f"a JWS compact token has 3 dot-separated segments, this has {len(segments)}"
    for name, segment in zip(("header", "payload", "signature"), segments, strict=True):
        if name == "header" and not segment:
            return "the header segment is empty"
        if not _B64URL.issuperset(segment):
            return f"the {name} segment is not base64url"
    return None


def _b64url_decode(segment: bytes, name: str) -> bytes:
    """Strict base64url (RFC 7515 §2): no padding, canonical trailing bits."""
    if len(segment) % 4 == 1:
        raise SignatureError("malformed", f"the {name} segment has an impossible length")
    try:
        raw = urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - alphabet checked before
        raise SignatureError("malformed", f"the {name} segment is not base64url") from exc
    if urlsafe_b64encode(raw).rstrip(b"=") != segment:
        raise SignatureError("malformed", f"the {name} segment is not canonical base64url")
    return raw


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate name {_echo(name)}")
        result[name] = value
    return result


def _parse_header(raw: bytes) -> dict[str, object]:
    """A UTF-8 JSON object with unique names (RFC 7515 §4); parsed before any signature check."""
    try:
        value: object = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_object)
    except (ValueError, RecursionError) as exc:
        # UnicodeError and JSONDecodeError are ValueErrors; a '[[[[...' header hits recursion.
        raise SignatureError("malformed", f"the header is not JSON: {_echo(str(exc))}") from exc
    if not isinstance(value, dict):
        raise SignatureError("malformed", "the header is not a JSON object")
    return value


def _parse_claims(payload: bytes) -> dict[str, object]:
    """Claims follow the unsigned-event JSON rules (events.decode_json_object), plus UTF-8-safe."""
    try:
        claims = decode_json_object(payload)
    except InvalidEvent as exc:
        raise SignatureError("bad_claims", f"claims: {exc.reason}") from exc
    try:
        # \ud800 decodes, but cannot be stored or re-encoded as UTF-8; 1e999 decodes to inf.
        json.dumps(claims, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:
        raise SignatureError("bad_claims", f"claims: {_echo(str(exc))}") from exc
    return claims


def _numeric_date(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None and name not in claims:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SignatureError("bad_claims", f"{name} must be a number of seconds since the epoch")
    return float(value)


def _check_times(claims: Mapping[str, object], *, now: float, leeway_s: float) -> None:
    """RFC 7519 §4.1.4-6 against the injected clock."""
    exp = _numeric_date(claims, "exp")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    if exp is not None and now >= exp + leeway_s:
        raise SignatureError("expired", f"exp passed {now - exp:.0f} s ago")
    if nbf is not None and nbf > now + leeway_s:
        raise SignatureError("not_yet_valid", f"nbf is {nbf - now:.0f} s in the future")
    if iat is not None and iat > now + leeway_s:
        raise SignatureError("not_yet_valid", f"iat is {iat - now:.0f} s in the future")


def _echo(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _DETAIL_ECHO else text[: _DETAIL_ECHO - 3] + "..."
