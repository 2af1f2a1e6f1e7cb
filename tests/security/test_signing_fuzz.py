"""Property tests for agent.signing.verify: every input ends in claims or a SignatureError.

Together these run a little over 12,000 generated cases (max_examples below) in about 10-15 s.
No deadline: a slow CI machine must not turn a correct run into a flaky one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jws_helpers import NOW, b64json, b64url, es_token, hs_token, make_keys
from jws_helpers import event as cash_event

from agent.io.signing import REASONS, SignatureError, looks_signed, verify

KEYS = make_keys()
RING = KEYS.keyring
B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


# Valid tokens to mutate, each with the claims it carries.
_TIMED = cash_event(exp=NOW + 30, iat=NOW, jti="j-1")
_REFUND = cash_event(type="refund")
_LONG = cash_event(event_id="e" * 128, meta={"till": [1, 2, {"x": None}]})
BASES: list[tuple[bytes, dict[str, object]]] = [
    (KEYS.hs(), cash_event()),
    (KEYS.hs(_TIMED), _TIMED),
    (hs_token({"alg": "HS256", "kid": "pos-2024"}, _REFUND, KEYS.hs_old), _REFUND),
    (KEYS.es(), cash_event()),
    (KEYS.es(_LONG), _LONG),
]
VALID = dict(BASES)


def check(payload: bytes) -> dict[str, object] | None:
    """Run verify; fail the test on anything but claims or a SignatureError with a known reason."""
    try:
        claims = verify(payload, RING, now=NOW)
    except SignatureError as exc:
        error = exc
    else:
        assert isinstance(claims, dict)
        assert looks_signed(payload)
        event("verified")
        return claims
    assert error.reason in REASONS, error.reason
    assert (error.reason == "unsigned") == (not looks_signed(payload))
    event(error.reason)  # hypothesis statistics: which refusals the inputs reached
    return None


# --- arbitrary input -------------------------------------------------------------------------


@fuzz(3000)
@given(st.binary(max_size=1024))
def test_arbitrary_bytes_never_escape(payload: bytes) -> None:
    assert check(payload) is None  # random bytes never carry a valid signature


jws_like = st.lists(
    st.binary(max_size=120).map(b64url) | st.text("A-_=.!{", max_size=40).map(str.encode),
    min_size=1,
    max_size=5,
).map(b".".join)


@fuzz(2000)
@given(jws_like)
def test_dotted_base64url_never_escapes(payload: bytes) -> None:
    assert check(payload) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_MISSING = object()


@st.composite
def header_values(draw: st.DrawFn) -> dict[str, Any]:
    """Random JOSE headers, mostly with an alg and a kid that exist, so verification goes deep."""
    header: dict[str, Any] = draw(
        st.dictionaries(
            st.sampled_from(["typ", "crit", "b64", "jku", "jwk", "cty", "x"]) | st.text(max_size=5),
            json_values,
            max_size=3,
        )
    )
    for name, likely in (
        ("alg", ["HS256", "ES256", "none", "HS512", "RS256", ""]),
        ("kid", ["pos-2025", "pos-2024", "pos-ec-1", "nope", ""]),
    ):
        value = draw(st.sampled_from(likely) | json_values | st.just(_MISSING))
        if value is not _MISSING:
            header[name] = value
    return header


@fuzz(1500)
@given(header=header_values(), claims=json_values, sign_with=st.sampled_from(["new", "old", "ec"]))
def test_arbitrary_headers_and_claims_with_real_signatures(
    header: dict[str, Any], claims: Any, sign_with: str
) -> None:
    if sign_with == "ec":
        token = es_token(header, claims, KEYS.ec_key)
    else:
        token = hs_token(header, claims, KEYS.hs_new if sign_with == "new" else KEYS.hs_old)
    result = check(token)
    if result is not None:
        # Only a header naming the signing key with its own algorithm can get here.
        expected = {
            "new": ("HS256", "pos-2025"),
            "old": ("HS256", "pos-2024"),
            "ec": ("ES256", "pos-ec-1"),
        }
        assert (header.get("alg"), header.get("kid")) == expected[sign_with]
        assert result == claims


@fuzz(1500)
@given(raw_claims=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_signed_arbitrary_claim_bytes_are_claims_or_bad_claims(raw_claims: bytes) -> None:
    token = hs_token({"alg": "HS256", "kid": "pos-2025"}, None, KEYS.hs_new, raw_claims=raw_claims)
    claims = check(token)
    if claims is not None:
        assert json.loads(raw_claims) == claims
    else:
        with pytest.raises(SignatureError) as info:
            verify(token, RING, now=NOW)
        assert info.value.reason in {"bad_claims", "expired", "not_yet_valid"}, info.value


# --- mutations of valid tokens ---------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes, dict[str, object]]:
    """A valid token and a version with 1-3 random edits (which may by chance undo each other)."""
    base, claims = draw(st.sampled_from(BASES))
    token = bytearray(base)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(
                ["flip", "truncate", "swap", "insert", "delete", "splice", "reheader", "strip_sig"]
            )
        )
        segments = bytes(token).split(b".")
        if op == "flip" and token:
            i = draw(st.integers(0, len(token) - 1))
            token[i] = draw(st.sampled_from(B64URL_ALPHABET) | st.integers(0, 255))
        elif op == "truncate":
            del token[draw(st.integers(0, len(token))) :]
        elif op == "swap" and len(segments) == 3:
            order = draw(st.permutations([0, 1, 2]))
            token = bytearray(b".".join(segments[i] for i in order))
        elif op == "insert":
            i = draw(st.integers(0, len(token)))
            token[i:i] = draw(
                st.binary(min_size=1, max_size=4) | st.sampled_from([b".", b"=", b" ", b"A"])
            )
        elif op == "delete" and token:
            i = draw(st.integers(0, len(token) - 1))
            del token[i : i + draw(st.integers(1, 8))]
        elif op == "splice" and len(segments) == 3:
            donor = draw(st.sampled_from(BASES))[0].split(b".")
            which = draw(st.integers(0, 2))
            segments[which] = donor[which]
            token = bytearray(b".".join(segments))
        elif op == "reheader" and len(segments) == 3:
            header = {
                "alg": draw(st.sampled_from(["none", "HS256", "ES256", "HS512", "RS256", ""])),
                "kid": draw(st.sampled_from(["pos-2025", "pos-2024", "pos-ec-1", "x"])),
            }
            segments[0] = b64json(header)
            token = bytearray(b".".join(segments))
        elif op == "strip_sig" and len(segments) == 3:
            token = bytearray(b".".join(segments[:2]) + b".")
    return base, bytes(token), claims


@fuzz(4000)
@given(mutated())
def test_mutated_tokens_verify_only_when_unchanged(
    case: tuple[bytes, bytes, dict[str, object]],
) -> None:
    base, token, claims = case
    result = check(token)
    stripped = token.strip(b" \t\r\n")
    if stripped == base:
        assert result == claims
    elif result is not None:
        # Edits can only land on another whole valid token (e.g. splicing in every segment of one).
        assert stripped in VALID, f"{token!r} verified although it is no valid token"
        assert result == VALID[stripped]
