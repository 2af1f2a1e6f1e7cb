"""A key that cannot be used is a config error at start: exit 2 naming the key, from both
`check-config` and `run`, before anything connects."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _public_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _config(tmp_path, security: str) -> str:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""shop_id = "s1"
[mqtt]
url = "mqtt://127.0.0.1:1"
[state]
path = "{tmp_path / "ledger.db"}"
[security]
{security}
"""
    )
    return str(path)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=60
    )


BAD = {
    "garbage PEM": ('public_keys = { pos = "pos.pem" }', b"not a key at all\n", "public_keys.pos"),
    "private key given": (
        'public_keys = { pos = "pos.pem" }',
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "public_keys.pos",
    ),
    "HS256 secret that is a PEM": (
        'keys = { k1 = { file = "pos.pem" } }',
        None,  # the public key PEM, as if pasted into the wrong table
        "keys.k1",
    ),
    "short HS256 secret": ('keys = { k1 = "short" }', b"", "keys.k1"),
    "unreadable key file": ('public_keys = { pos = "missing.pem" }', b"", "public_keys.pos"),
}


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_key_is_exit_2_naming_it(tmp_path, case, command):
    security, material, key = BAD[case]
    (tmp_path / "pos.pem").write_bytes(_public_pem() if material is None else material)
    config = _config(tmp_path, security)
    argv = ["check-config", config] if command == "check-config" else ["run", "--config", config]
    done = _run(*argv)
    assert done.returncode == 2, done.stderr
    assert f"security.{key}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_good_public_key_passes_check_config(tmp_path):
    # Negative control: the same config with a real P-256 public key is accepted.
    (tmp_path / "pos.pem").write_bytes(_public_pem())
    done = _run("check-config", _config(tmp_path, 'public_keys = { pos = "pos.pem" }'))
    assert done.returncode == 0, done.stderr
