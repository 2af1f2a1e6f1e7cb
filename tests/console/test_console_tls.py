"""The console and API over HTTPS (http.cert_file/key_file): served by the running agent,
the session cookie marked Secure; a certificate that cannot serve stops the agent at start."""

from __future__ import annotations

import ssl
import subprocess
import sys

import aiohttp
import pytest

from tests.conftest import make_settings, running_agent

TOKEN = "t" * 32


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_console_over_https_sets_secure_cookies(tmp_path, mosquitto):
    cert, key = _self_signed(tmp_path)
    settings = make_settings(
        tmp_path,
        mosquitto.port,
        {},
        {},
        http={
            "listen": "127.0.0.1:0",
            "token": TOKEN,
            "cert_file": str(cert),
            "key_file": str(key),
        },
    )
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with running_agent(settings) as agent, aiohttp.ClientSession() as http:
        base = f"https://127.0.0.1:{agent.http_port}"
        async with http.get(f"{base}/login", ssl=client_tls) as r:
            assert r.status == 200
            cookies = r.headers.getall("Set-Cookie", [])
        assert cookies and all("Secure" in c and "HttpOnly" in c for c in cookies), cookies
        async with http.get(
            f"{base}/api/config", ssl=client_tls, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status == 200
        # Negative control: plain HTTP on the same port gets no answer.
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{agent.http_port}/login") as r:
                await r.read()


def _check_config(tmp_path, http_table: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text(f'shop_id = "s1"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n[http]\n{http_table}\n')
    return subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('cert_file = "cert.pem"', "http.key_file"),
        ('cert_file = "cert.pem"\nkey_file = "missing.pem"', "http.key_file"),
        ('cert_file = "garbage.pem"\nkey_file = "key.pem"', "http.cert_file"),
    ],
    ids=["cert without key", "unreadable key", "garbage certificate"],
)
def test_a_certificate_that_cannot_serve_is_exit_2_naming_the_key(tmp_path, table, key):
    _self_signed(tmp_path)
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    done = _check_config(tmp_path, table)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr


def test_a_good_certificate_passes_check_config(tmp_path):
    # Negative control for the cases above: relative paths resolve beside the config file.
    _self_signed(tmp_path)
    done = _check_config(tmp_path, 'cert_file = "cert.pem"\nkey_file = "key.pem"')
    assert done.returncode == 0, done.stderr
