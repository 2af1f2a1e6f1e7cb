"""The shipped example configs validate with the agent's own validator.

docker/drawer-agent.toml (compose demo) and deploy/drawer-agent.toml (systemd example)
refer to secrets by absolute paths that exist only in a container or under systemd
(/run/secrets/..., /run/credentials/drawer-agent.service/...). Each config is copied with
those paths pointed at temporary files, and nothing else changed: the docker demo gets
the committed demo secrets from docker/secrets/*.example, the systemd example gets
generated secrets and a real CA certificate. Then ``agent.io.settings_io.load_settings``
and ``drawer-agent check-config`` must both accept it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, DOCKER, REPO, Certs, scrubbed_env

from agent.core.errors import ConfigError
from agent.io.settings_io import load_settings

DOCKER_CONFIG = DOCKER / "drawer-agent.toml"
DEPLOY_CONFIG = DEPLOY / "drawer-agent.toml"
CONFIGS = {"docker": DOCKER_CONFIG, "deploy": DEPLOY_CONFIG}
QUOTED_ABSOLUTE = re.compile(r'"(/[^"]*)"')
CREDENTIALS = "/run/credentials/drawer-agent.service/"
GENERATED_SECRETS = {
    "mqtt_password": b"generated-mqtt-password-0123456789",
    "pos_signing_key": b"generated-hs256-key-that-is-longer-than-32-bytes",
    "http_token": b"generated-http-token-0123456789abcdef",
}


def materialise(config: Path, tmp_path: Path, certs: Certs) -> Path:
    """Copy ``config`` into tmp_path with every absolute path pointed at a real file."""
    state = tmp_path / "state"
    state.mkdir()

    def target(path: str) -> Path:
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/run/secrets/"):
            source = DOCKER / "secrets" / f"{name}.example"
            assert source.is_file(), f"{path}: no {source} to stand in for the compose secret"
            return source
        if path.startswith(CREDENTIALS):
            assert name in GENERATED_SECRETS, f"{path}: unknown credential"
            file = tmp_path / name
            file.write_bytes(GENERATED_SECRETS[name])
            return file
        if path == "/etc/drawer-agent/ca.crt":
            return certs.ca
        if path.startswith("/var/lib/drawer-agent/"):
            return state / name
        raise AssertionError(f"{config.name}: no test stand-in for {path}")

    text = config.read_text()
    active = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    for path in set(QUOTED_ABSOLUTE.findall(active)):
        text = text.replace(f'"{path}"', f'"{target(path)}"')
    copy = tmp_path / config.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_example_config_validates(name: str, tmp_path: Path, certs: Certs) -> None:
    settings = load_settings(materialise(CONFIGS[name], tmp_path, certs), env={})
    assert settings.security.require_signed is True
    assert settings.security.keys, "require_signed needs at least one key"
    assert all(len(key) >= 32 for key in settings.security.keys.values())
    assert settings.printers
    assert set(settings.terminals.values()) <= set(settings.printers)
    assert settings.http.token, "the examples protect the HTTP API with a token"
    assert settings.state.path.endswith("/drawer-agent.db")


def test_docker_config_fits_the_container(tmp_path: Path, certs: Certs) -> None:
    settings = load_settings(materialise(DOCKER_CONFIG, tmp_path, certs), env={})
    assert settings.http.host == "0.0.0.0"
    assert settings.mqtt.host == "mosquitto"
    assert settings.mqtt.allow_insecure is True, "plain MQTT to the compose broker"
    raw = tomllib.loads(DOCKER_CONFIG.read_text())
    assert raw["state"]["path"] == "/var/lib/drawer-agent/drawer-agent.db"
    # The demo password in the config's secret is the one the demo broker knows.
    password = (DOCKER / "secrets" / "mqtt_password.example").read_text().strip()
    assert settings.mqtt.password == password


def test_deploy_config_is_production_grade(tmp_path: Path, certs: Certs) -> None:
    settings = load_settings(materialise(DEPLOY_CONFIG, tmp_path, certs), env={})
    assert settings.mqtt.tls is True
    assert settings.mqtt.port == 8883
    assert settings.mqtt.allow_insecure is False
    assert settings.mqtt.ca_file == str(certs.ca)
    assert settings.mqtt.username == settings.shop_id, "the fleet ACL keys on username = shop_id"
    assert settings.http.host == "127.0.0.1"
    raw = tomllib.loads(DEPLOY_CONFIG.read_text())
    for key in ("password", "token"):
        assert key not in raw["mqtt"], "secrets belong in files"
        assert key not in raw["http"], "secrets belong in files"
    assert raw["state"]["path"].startswith("/var/lib/drawer-agent/"), "StateDirectory="


def test_validator_rejects_a_broken_copy(tmp_path: Path, certs: Certs) -> None:
    """Negative control: the same path through the validator fails on real mistakes."""
    good = materialise(DOCKER_CONFIG, tmp_path, certs)
    typo = tmp_path / "typo.toml"
    typo.write_text(good.read_text().replace("keepalive_s =", "keep_alive_s ="))
    with pytest.raises(ConfigError, match="keep_alive_s"):
        load_settings(typo, env={})
    short_key = tmp_path / "short.key"
    short_key.write_bytes(b"too-short")
    weak = tmp_path / "weak.toml"
    demo_key = str(DOCKER / "secrets" / "pos_signing_key.example")
    weak.write_text(good.read_text().replace(demo_key, str(short_key)))
    with pytest.raises(ConfigError):
        load_settings(weak, env={})


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_check_config_cli(name: str, tmp_path: Path, certs: Certs) -> None:
    """``drawer-agent check-config`` (the unit's ExecStartPre) accepts the examples."""
    config = materialise(CONFIGS[name], tmp_path, certs)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=scrubbed_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text(config.read_text() + "\n[bogus_section]\nx = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(broken)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=scrubbed_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "bogus_section" in result.stdout + result.stderr
