"""agent.io.signing: which tokens open a drawer and which are refused, with which reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jws_helpers import (
    NOW,
    Keys,
    b64json,
    b64url,
    es_token,
    event,
    hs_token,
    private_pem,
    public_pem,
)

from agent.core.errors import AgentError
from agent.io.signing import (
    REASONS,
    KeyRing,
    SignatureError,
    looks_signed,
    sign_es256,
    sign_hs256,
    verify,
)

HS = {"alg": "HS256", "typ": "JWT", "kid": "pos-2025"}


def _reason(token: bytes, keyring: KeyRing, *, now: float = NOW, leeway_s: float = 5.0) -> str:
    with pytest.raises(SignatureError) as info:
        verify(token, keyring, now=now, leeway_s=leeway_s)
    assert info.value.reason in REASONS
    return info.value.reason


def _flip_char(segment: bytes, index: int) -> bytes:
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    old = segment[index]
    new = alphabet[(alphabet.index(old) + 17) % 64]
    return segment[:index] + bytes([new]) + segment[index + 1 :]


def _segments(token: bytes) -> list[bytes]:
    return token.split(b".")


def _swap_payload(k: Keys) -> bytes:
    h, _, s = _segments(k.hs())
    return h + b"." + b64json(event(amount=999.0)) + b"." + s


def _tamper_signature(k: Keys) -> bytes:
    h, p, s = _segments(k.hs())
    return h + b"." + p + b"." + _flip_char(s, 10)


def _non_canonical_header(k: Keys) -> bytes:
    h, p, s = _segments(k.hs())
    assert len(h) % 4 != 0  # the last character carries unused bits
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(h[-1]) ^ 1]  # same data bits, different padding bit
    return h[:-1] + bytes([last]) + b"." + p + b"." + s


def _raw_header(header: bytes, k: Keys) -> bytes:
    signing_input = b64url(header) + b"." + b64json(event())
    return signing_input + b"." + b64url(hmac.new(k.hs_new, signing_input, hashlib.sha256).digest())


def _signed_raw_claims(raw: bytes) -> Callable[[Keys], bytes]:
    return lambda k: hs_token(HS, None, k.hs_new, raw_claims=raw)


def _alg_none(alg: str, *, with_sig: bool = False) -> Callable[[Keys], bytes]:
    def build(k: Keys) -> bytes:
        signing_input = b64json({"alg": alg, "kid": "pos-2025"}) + b"." + b64json(event())
        sig = hmac.new(k.hs_new, signing_input, hashlib.sha256).digest() if with_sig else b""
        return signing_input + b"." + b64url(sig)

    return build


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


VALID: list[tuple[str, Callable[[Keys], bytes], dict[str, object]]] = [
    ("hs256", lambda k: k.hs(), event()),
    ("es256", lambda k: k.es(), event()),
    ("hs256-old-kid", lambda k: hs_token({**HS, "kid": "pos-2024"}, event(), k.hs_old), event()),
    (
        "no-typ-header",
        lambda k: hs_token({"alg": "HS256", "kid": "pos-2025"}, event(), k.hs_new),
        event(),
    ),
    ("whitespace-around", lambda k: b"  " + k.hs() + b"\r\n", event()),
    ("exp-future", lambda k: k.hs(event(exp=NOW + 60)), event(exp=NOW + 60)),
    ("exp-within-leeway", lambda k: k.hs(event(exp=NOW - 3)), event(exp=NOW - 3)),
    ("iat-past", lambda k: k.hs(event(iat=NOW - 10)), event(iat=NOW - 10)),
    ("iat-within-leeway", lambda k: k.es(event(iat=NOW + 3)), event(iat=NOW + 3)),
    (
        "jti-and-extra-claims",
        lambda k: k.hs(event(jti="j1", iss="pos")),
        event(jti="j1", iss="pos"),
    ),
]


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_tokens_return_their_claims(
    keys: Keys, build: Callable[[Keys], bytes], expected: dict[str, object]
) -> None:
    token = build(keys)
    assert looks_signed(token)
    assert verify(token, keys.keyring, now=NOW) == expected


REFUSED: list[tuple[str, Callable[[Keys], bytes], str]] = [
    # forgery and tampering
    ("tampered-payload", _swap_payload, "bad_signature"),
    ("tampered-signature", _tamper_signature, "bad_signature"),
    ("wrong-secret", lambda k: hs_token(HS, event(), b"w" * 32), "bad_signature"),
    (
        "old-kid-new-secret",
        lambda k: hs_token({**HS, "kid": "pos-2024"}, event(), k.hs_new),
        "bad_signature",
    ),
    (
        "es256-other-key",
        lambda k: es_token({"alg": "ES256", "kid": "pos-ec-1"}, event(), k.ec_other),
        "bad_signature",
    ),
    (
        "es256-der-signature",
        lambda k: es_token({"alg": "ES256", "kid": "pos-ec-1"}, event(), k.ec_key, der=True),
        "bad_signature",
    ),
    (
        "es256-zero-signature",
        lambda k: b".".join(_segments(k.es())[:2]) + b"." + b64url(bytes(64)),
        "bad_signature",
    ),
    ("hs256-empty-signature", lambda k: b".".join(_segments(k.hs())[:2]) + b".", "bad_signature"),
    # key selection
    ("unknown-kid", lambda k: k.hs(kid="pos-2023"), "unknown_kid"),
    ("missing-kid", lambda k: k.hs(kid=None), "missing_kid"),
    ("empty-kid", lambda k: k.hs(kid=""), "missing_kid"),
    (
        "kid-not-a-string",
        lambda k: hs_token({"alg": "HS256", "kid": 2025}, event(), k.hs_new),
        "malformed",
    ),
    # algorithm fixed by the key
    ("alg-none", _alg_none("none"), "bad_algorithm"),
    ("alg-None", _alg_none("None"), "bad_algorithm"),
    ("alg-NONE-with-signature", _alg_none("NONE", with_sig=True), "bad_algorithm"),
    ("alg-missing", lambda k: hs_token({"kid": "pos-2025"}, event(), k.hs_new), "bad_algorithm"),
    ("alg-hs384", lambda k: k.hs(alg="HS384"), "bad_algorithm"),
    ("alg-rs256", lambda k: k.hs(alg="RS256"), "bad_algorithm"),
    ("alg-not-a-string", lambda k: k.hs(alg=["HS256"]), "bad_algorithm"),
    (
        "hs256-with-public-pem-as-secret",
        lambda k: hs_token({**HS, "kid": "pos-ec-1"}, event(), k.ec_public_pem),
        "bad_algorithm",
    ),
    ("es256-token-to-hs-kid", lambda k: k.es(kid="pos-2025"), "bad_algorithm"),
    ("es384-claimed-on-es-kid", lambda k: k.es(alg="ES384"), "bad_algorithm"),
    # time, against the injected clock
    ("exp-past", lambda k: k.hs(event(exp=NOW - 60)), "expired"),
    ("exp-past-es256", lambda k: k.es(event(exp=NOW - 6)), "expired"),
    ("iat-future", lambda k: k.hs(event(iat=NOW + 60)), "not_yet_valid"),
    ("nbf-future", lambda k: k.hs(event(nbf=NOW + 60)), "not_yet_valid"),
    ("exp-string", lambda k: k.hs(event(exp=str(NOW + 60))), "bad_claims"),
    ("exp-bool", lambda k: k.hs(event(exp=True)), "bad_claims"),
    ("exp-null", lambda k: k.hs(event(exp=None)), "bad_claims"),
    ("exp-overflow-to-inf", _signed_raw_claims(b'{"event_id":"e","exp":1e999}'), "bad_claims"),
    # shape: not a JWS compact token at all
    ("plain-json-event", lambda k: json.dumps(event()).encode(), "unsigned"),
    ("json-array", lambda k: b'["a.b.c"]', "unsigned"),
    ("empty", lambda k: b"", "unsigned"),
    ("whitespace-only", lambda k: b" \r\n", "unsigned"),
    ("non-ascii", lambda k: k.hs()[:20] + "é".encode() + k.hs()[20:], "unsigned"),
    ("non-utf8", lambda k: b"\xff\xfe" + k.hs(), "unsigned"),
    ("two-segments", lambda k: b".".join(_segments(k.hs())[:2]), "unsigned"),
    ("four-segments", lambda k: k.hs() + b".AAAA", "unsigned"),
    ("quoted-token", lambda k: b'"' + k.hs() + b'"', "unsigned"),
    ("padded-base64", lambda k: b".".join(s + b"=" for s in _segments(k.hs())), "unsigned"),
    ("bad-base64-character", lambda k: k.hs().replace(b".", b"!.", 1), "unsigned"),
    ("empty-header-segment", lambda k: b"." + b".".join(_segments(k.hs())[1:]), "unsigned"),
    # shape right, content broken
    (
        "impossible-base64-length",
        lambda k: b"eyJhb." + _segments(k.hs())[1] + b".AAAA",
        "malformed",
    ),
    ("non-canonical-base64", _non_canonical_header, "malformed"),
    ("impossible-signature-length", lambda k: k.hs()[:-2], "malformed"),
    ("header-not-json", lambda k: _raw_header(b"not json", k), "malformed"),
    ("header-json-array", lambda k: _raw_header(b'["HS256"]', k), "malformed"),
    ("header-not-utf8", lambda k: _raw_header(b'{"alg":"HS256","kid":"\xff"}', k), "malformed"),
    (
        "header-duplicate-kid",
        lambda k: _raw_header(b'{"alg":"HS256","kid":"nope","kid":"pos-2025"}', k),
        "malformed",
    ),
    (
        "header-deeply-nested",
        lambda k: _raw_header(b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}", k),
        "malformed",
    ),
    ("crit-unknown-extension", lambda k: k.hs(crit=["exp"]), "malformed"),
    ("b64-false", lambda k: k.hs(b64=False, crit=["b64"]), "malformed"),
    # signed, but the claims are not a usable JSON object
    ("claims-json-array", lambda k: k.hs([event()]), "bad_claims"),
    ("claims-json-string", lambda k: k.hs("sale"), "bad_claims"),
    ("claims-not-json", _signed_raw_claims(b"event_id=1"), "bad_claims"),
    ("claims-not-utf8", _signed_raw_claims(b'{"event_id":"\xff"}'), "bad_claims"),
    ("claims-duplicate-type", _signed_raw_claims(b'{"type":"refund","type":"sale"}'), "bad_claims"),
    (
        "claims-lone-surrogate",
        _signed_raw_claims(b'{"event_id":"e","meta":{"x":"\\ud800"}}'),
        "bad_claims",
    ),
    ("claims-nan", _signed_raw_claims(b'{"event_id":"e","amount":NaN}'), "bad_claims"),
    ("claims-deeply-nested", lambda k: k.hs(event(meta={"a": _nested(12)})), "bad_claims"),
]


@pytest.mark.parametrize(("build", "reason"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_tokens_say_why(keys: Keys, build: Callable[[Keys], bytes], reason: str) -> None:
    token = build(keys)
    assert _reason(token, keys.keyring) == reason
    # 'unsigned' is exactly 'not looks_signed', so the intake can tell the two apart cheaply.
    assert looks_signed(token) == (reason != "unsigned")


def test_every_reason_is_reachable() -> None:
    assert {reason for _, _, reason in REFUSED} == REASONS


def test_two_kids_verify_at_once_and_removing_one_refuses_only_it(keys: Keys) -> None:
    old = hs_token({**HS, "kid": "pos-2024"}, event(event_id="old"), keys.hs_old)
    new = keys.hs(event(event_id="new"))
    assert verify(old, keys.keyring, now=NOW)["event_id"] == "old"
    assert verify(new, keys.keyring, now=NOW)["event_id"] == "new"
    after = KeyRing.build({"pos-2025": keys.hs_new}, {})
    assert _reason(old, after) == "unknown_kid"
    assert verify(new, after, now=NOW)["event_id"] == "new"


def test_the_injected_clock_governs_not_the_wall_clock(keys: Keys) -> None:
    # NOW is in 2025: if the wall clock were consulted, exp = NOW + 10 would already have passed.
    token = keys.hs(event(exp=NOW + 10, iat=NOW))
    assert verify(token, keys.keyring, now=NOW)["exp"] == NOW + 10
    assert _reason(token, keys.keyring, now=NOW + 100) == "expired"
    assert _reason(token, keys.keyring, now=NOW - 100) == "not_yet_valid"  # iat ahead of now


@pytest.mark.parametrize(
    ("exp_offset", "leeway", "ok"),
    [(-3, 5.0, True), (-3, 0.0, False), (0, 0.0, False), (0.5, 0.0, True), (-5, 5.0, False)],
)
def test_exp_leeway_boundaries(keys: Keys, exp_offset: float, leeway: float, ok: bool) -> None:
    token = keys.hs(event(exp=NOW + exp_offset))
    if ok:
        assert verify(token, keys.keyring, now=NOW, leeway_s=leeway)["exp"] == NOW + exp_offset
    else:
        assert _reason(token, keys.keyring, leeway_s=leeway) == "expired"


def test_an_empty_keyring_refuses_everything(keys: Keys) -> None:
    empty = KeyRing.build({}, {})
    assert not empty
    assert keys.keyring
    assert _reason(keys.hs(), empty) == "unknown_kid"
    assert _reason(keys.es(), empty) == "unknown_kid"


def test_details_echo_attacker_values_only_briefly(keys: Keys) -> None:
    with pytest.raises(SignatureError) as info:
        verify(keys.hs(kid="k" * 5000), keys.keyring, now=NOW)
    assert info.value.reason == "unknown_kid"
    assert len(info.value.detail) < 120
    assert isinstance(info.value, AgentError)


# --- KeyRing.build ---------------------------------------------------------------------------


def _p384_pem() -> bytes:
    return public_pem(ec.generate_private_key(ec.SECP384R1()))


def _rsa_pem() -> bytes:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


BAD_KEYRINGS: list[tuple[str, Callable[[Keys], KeyRing], str]] = [
    ("short-secret", lambda k: KeyRing.build({"k": b"s" * 31}, {}),
     "security.keys.k: secret is 31 bytes; at least 32 are required"),
    ("empty-secret", lambda k: KeyRing.build({"k": b""}, {}),
     "security.keys.k: secret is 0 bytes; at least 32 are required"),
    ("secret-is-a-str", lambda k: KeyRing.build({"k": "s" * 40}, {}),  # type: ignore[dict-item]
     "security.keys.k: secret must be bytes"),
    ("secret-is-a-pem", lambda k: KeyRing.build({"k": k.ec_public_pem}, {}),
     "security.keys.k: this looks like a PEM or SSH key"),
    ("kid-in-both-maps", lambda k: KeyRing.build({"k": k.hs_new}, {"k": k.ec_public_pem}),
     "security.keys.k: the kid is also in security.public_keys"),
    ("empty-kid", lambda k: KeyRing.build({"": k.hs_new}, {}),
     "security.keys.: a kid must be a non-empty string"),
    ("not-a-pem", lambda k: KeyRing.build({}, {"e": b"hello"}),
     "security.public_keys.e: not an EC P-256 public key PEM"),
    ("rsa-public-key", lambda k: KeyRing.build({}, {"e": _rsa_pem()}),
     "security.public_keys.e: not an EC P-256 public key PEM"),
    ("p384-public-key", lambda k: KeyRing.build({}, {"e": _p384_pem()}),
     "security.public_keys.e: not an EC P-256 public key PEM"),
    ("private-key-given", lambda k: KeyRing.build({}, {"e": private_pem(k.ec_key)}),
     "security.public_keys.e: not an EC P-256 public key PEM (this is a private key"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"), [c[1:] for c in BAD_KEYRINGS], ids=[c[0] for c in BAD_KEYRINGS]
)
def test_bad_keys_are_refused_at_start(
    keys: Keys, build: Callable[[Keys], KeyRing], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        build(keys)
    assert str(info.value).startswith(message)


def test_a_32_byte_secret_is_enough() -> None:
    ring = KeyRing.build({"k": b"s" * 32}, {})
    token = hs_token({"alg": "HS256", "kid": "k"}, event(), b"s" * 32)
    assert verify(token, ring, now=NOW) == event()


def test_keyring_copies_its_input_and_never_shows_secrets(keys: Keys) -> None:
    source = {"k": b"S3cr3t" * 8}
    ring = KeyRing.build(source, {"e": keys.ec_public_pem})
    source["k"] = b"x" * 32
    source["other"] = b"y" * 32
    assert dict(ring.hs256) == {"k": b"S3cr3t" * 8}
    assert ring.algorithm_for("k") == "HS256"
    assert ring.algorithm_for("e") == "ES256"
    assert ring.algorithm_for("other") is None
    assert "S3cr3t" not in repr(ring)
    assert repr(ring) == "KeyRing(hs256=['k'], es256=['e'])"
    assert ring == KeyRing.build({"k": b"S3cr3t" * 8}, {"e": keys.ec_public_pem})


# --- signing ---------------------------------------------------------------------------------


def test_sign_hs256_round_trips_with_kid_and_alg(keys: Keys) -> None:
    token = sign_hs256(event(exp=NOW + 30), "pos-2025", keys.hs_new)
    header = json.loads(b64_decode(token.split(".")[0]))
    assert header["alg"] == "HS256"
    assert header["kid"] == "pos-2025"
    assert verify(token.encode(), keys.keyring, now=NOW) == event(exp=NOW + 30)


def test_sign_es256_round_trips_with_kid_and_alg(keys: Keys) -> None:
    token = sign_es256(event(), "pos-ec-1", private_pem(keys.ec_key))
    header = json.loads(b64_decode(token.split(".")[0]))
    assert (header["alg"], header["kid"]) == ("ES256", "pos-ec-1")
    assert verify(token.encode(), keys.keyring, now=NOW) == event()


@pytest.mark.parametrize(
    "call",
    [
        lambda k: sign_hs256(event(), "pos-2025", b"short"),
        lambda k: sign_hs256(event(), "", k.hs_new),
        lambda k: sign_es256(event(), "pos-ec-1", k.ec_public_pem),
        lambda k: sign_es256(
            event(), "pos-ec-1", private_pem(ec.generate_private_key(ec.SECP384R1()))
        ),
        lambda k: sign_es256(event(), "pos-ec-1", b"not a key"),
    ],
    ids=["short-secret", "empty-kid", "public-pem", "p384-key", "garbage"],
)
def test_signing_refuses_bad_keys(keys: Keys, call: Callable[[Keys], str]) -> None:
    with pytest.raises(ValueError):
        call(keys)


def b64_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
