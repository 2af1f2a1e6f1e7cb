"""docs/examples/sign_event.py must produce tokens the agent accepts (so the doc cannot rot)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jws_helpers import private_pem, public_pem

from agent.core.events import EventType, validate_event
from agent.io.signing import KeyRing, SignatureError, verify

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "sign_event.py"
SECRET = b"docs-example-secret-0123456789-abcdefghijklmnop"  # 47 bytes, no trailing newline


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hs256_example_token_verifies_and_is_a_valid_event(tmp_path: Path) -> None:
    secret_file = tmp_path / "pos-2025.secret"
    secret_file.write_bytes(SECRET)
    before = time.time()
    done = _run(
        "--kid", "pos-2025", "--secret-file", str(secret_file), "--type", "sale",
        "--terminal", "T1", "--amount", "12.50", "--currency", "EUR", "--payment-method", "cash",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().encode()
    claims = verify(token, KeyRing.build({"pos-2025": SECRET}, {}), now=time.time())
    event = validate_event(claims)
    assert event.type is EventType.SALE
    assert (event.terminal_id, event.amount, event.currency) == ("T1", 12.5, "EUR")
    assert before - 1 <= event.occurred_at <= time.time() + 1
    assert claims["exp"] == claims["iat"] + 30  # type: ignore[operator]
    # and it is really signed: another secret refuses it
    with pytest.raises(SignatureError) as info:
        verify(token, KeyRing.build({"pos-2025": b"x" * 32}, {}), now=time.time())
    assert info.value.reason == "bad_signature"


def test_es256_example_token_verifies(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "pos-ec-1.key.pem"
    key_file.write_bytes(private_pem(key))
    done = _run(
        "--kid", "pos-ec-1", "--es256-key", str(key_file), "--type", "refund", "--terminal", "T2"
    )
    assert done.returncode == 0, done.stderr
    ring = KeyRing.build({}, {"pos-ec-1": public_pem(key)})
    claims = verify(done.stdout.strip().encode(), ring, now=time.time())
    assert validate_event(claims).type is EventType.REFUND


def test_example_refuses_a_short_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "short.secret"
    secret_file.write_bytes(b"too-short")
    done = _run(
        "--kid", "k", "--secret-file", str(secret_file), "--type", "sale", "--terminal", "T1"
    )
    assert done.returncode == 2
    assert "at least 32" in done.stderr
