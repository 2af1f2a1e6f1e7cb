"""docker/compose.yaml, checked statically (fast, no engine needed).

The file is parsed with PyYAML and checked in Python: every referenced file exists, names and
ports agree with the agent config and the broker config, images are pinned, and the agent runs
unprivileged. test_deploy_compose_runtime.py then runs it for real on a Docker engine.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_helpers import DOCKER, DOCKERFILE, conf_lines, parse_dockerfile
from docker_engine import LEDGER_BACKUP, LEDGER_RESTORE

COMPOSE = DOCKER / "compose.yaml"
AGENT_CONFIG = DOCKER / "drawer-agent.toml"
CONFIG_TARGET = "/etc/drawer-agent/drawer-agent.toml"
TOP_LEVEL = {"name", "services", "volumes", "secrets", "networks", "configs"}
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "user", "restart", "depends_on", "volumes",
    "secrets", "ports", "environment", "healthcheck", "read_only", "tmpfs", "cap_drop",
    "security_opt", "networks", "expose", "init", "stop_grace_period", "logging",
    "devices", "group_add",
}  # fmt: skip
# compose.yaml's variables (docker/.env and the header comment name them), with defaults.
PORT_VARIABLE = "DRAWER_AGENT_HTTP_PORT"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def agent_config() -> dict[str, Any]:
    return tomllib.loads(AGENT_CONFIG.read_text())


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def split_volume(spec: str) -> tuple[str, str, str]:
    source, target, *mode = spec.split(":")
    return source, target, mode[0] if mode else "rw"


def test_top_level_structure(compose: dict[str, Any]) -> None:
    unknown = {k for k in compose if not k.startswith("x-")} - TOP_LEVEL
    assert not unknown, unknown
    assert {"mosquitto", "agent", "printer"} <= set(compose["services"])
    assert "version" not in compose, "the version key is obsolete in the compose spec"
    for name, service in compose["services"].items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"{name}: unexpected keys {unknown}"
        assert not service.get("privileged"), name
        assert "network_mode" not in service, f"{name}: host networking is opt-in (comment)"


def test_images_are_pinned_and_builds_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: give every service an explicit image name and tag"
        repository_tag = image.split("@")[0].rsplit("/", 1)[-1]
        assert ":" in repository_tag, f"{name}: {image} has no tag (means latest)"
        assert not image.split("@")[0].endswith(":latest"), f"{name}: {image}"
        if "build" in service:
            build = service["build"]
            context = (COMPOSE.parent / build["context"]).resolve()
            assert context.is_dir(), f"{name}: build context {context} missing"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.resolve() == DOCKERFILE.resolve(), dockerfile
    # Services built from the same Dockerfile share one image name.
    built = {s["image"] for s in services.values() if "build" in s}
    assert len(built) == 1, built
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")


def test_volumes_and_secrets_are_declared_and_exist(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    declared_secrets = compose.get("secrets") or {}
    used_volumes: set[str] = set()
    used_secrets: set[str] = set()
    for name, service in services.items():
        for spec in service.get("volumes", []):
            source, target, mode = split_volume(spec)
            assert target.startswith("/"), f"{name}: {spec}"
            assert mode in {"ro", "rw"}, f"{name}: {spec}"
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared_volumes, f"{name}: volume {source} not declared"
                used_volumes.add(source)
        for secret in service.get("secrets", []):
            secret_name = secret if isinstance(secret, str) else secret["source"]
            assert secret_name in declared_secrets, f"{name}: secret {secret_name} not declared"
            used_secrets.add(secret_name)
    assert used_volumes == declared_volumes
    assert used_secrets == set(declared_secrets)
    for secret_name, secret in declared_secrets.items():
        path = COMPOSE.parent / secret["file"]
        assert path.is_file(), f"secret {secret_name}: {path} missing"
        assert path.name.endswith(".example"), "committed secrets are examples only"


def test_demo_signing_key_is_obviously_a_demo(compose: dict[str, Any]) -> None:
    key = (COMPOSE.parent / compose["secrets"]["pos_signing_key"]["file"]).read_bytes()
    assert len(key.strip()) >= 32, "HS256 keys must be at least 32 bytes"
    assert b"demo" in key.lower()


def test_agent_service(services: dict[str, dict[str, Any]], agent_config: dict[str, Any]) -> None:
    agent = services["agent"]
    user = str(agent.get("user", "")).split(":")[0]
    assert user, "the agent must run as an explicit user"
    assert user not in {"0", "root"}, "the agent must run as a non-root user"
    (dockerfile_user,) = [i.args for i in parse_dockerfile(DOCKERFILE.read_text())[-1].all("USER")]
    assert str(agent["user"]) == dockerfile_user
    assert agent.get("read_only") is True
    assert "ALL" in agent.get("cap_drop", [])

    command = command_of(agent)
    assert command[0] == "run"
    assert option(command, "--config") == CONFIG_TARGET
    mounts = {split_volume(v)[1]: split_volume(v) for v in agent["volumes"]}
    source, _, mode = mounts[CONFIG_TARGET]
    assert (COMPOSE.parent / source).resolve() == AGENT_CONFIG.resolve()
    assert mode == "ro"

    # The ledger lives on a named volume mounted where [state] path points.
    state_dir = str(Path(agent_config["state"]["path"]).parent)
    assert state_dir == "/var/lib/drawer-agent"
    assert state_dir in mounts
    assert not mounts[state_dir][0].startswith((".", "/"))

    # HTTP: published on the host's loopback, to the port the agent listens on.
    host, _, port = agent_config["http"]["listen"].rpartition(":")
    assert host == "0.0.0.0", "inside a container the API must listen on all interfaces"
    (published,) = agent["ports"]
    # The host port is a variable with a default, so that a second copy can run beside.
    assert re.fullmatch(rf"127\.0\.0\.1:\$\{{{PORT_VARIABLE}:-\d+\}}:{port}", published), published


def test_config_secrets_are_the_mounted_compose_secrets(
    services: dict[str, dict[str, Any]], agent_config: dict[str, Any]
) -> None:
    attached = set(services["agent"]["secrets"])
    referenced = set()
    for value in _walk(agent_config):
        if isinstance(value, str) and value.startswith("/run/secrets/"):
            referenced.add(value.removeprefix("/run/secrets/"))
    assert referenced, "the demo config should read its secrets from compose secrets"
    assert referenced == attached


def test_config_points_at_the_compose_services(
    services: dict[str, dict[str, Any]], agent_config: dict[str, Any]
) -> None:
    assert agent_config["security"]["require_signed"] is True

    broker = urlsplit(agent_config["mqtt"]["url"])
    assert broker.hostname in services
    assert broker.hostname == "mosquitto"
    listeners = [v for k, v in conf_lines((DOCKER / "mosquitto/mosquitto.conf").read_text())
                 if k == "listener"]  # fmt: skip
    assert [int(v.split()[0]) for v in listeners] == [broker.port]

    printer_command = command_of(services["printer"])
    assert printer_command[0] == "emulate"
    assert option(printer_command, "--host") == "0.0.0.0"
    for name, printer in agent_config["printers"].items():
        assert printer["host"] in services, f"printer {name}: {printer['host']} is no service"
        assert printer["port"] == int(option(printer_command, "--port"))
        if "command_set" in printer and "--command-set" in printer_command:
            assert printer["command_set"] == option(printer_command, "--command-set")
    for terminal, printer_id in agent_config["terminals"].items():
        assert printer_id in agent_config["printers"], terminal
    # The emulator serves no HTTP API, so the image's HEALTHCHECK must be off there.
    assert services["printer"]["healthcheck"] == {"disable": True}


def test_mosquitto_service_mounts_its_config(services: dict[str, dict[str, Any]]) -> None:
    mounts = {split_volume(v)[1]: split_volume(v) for v in services["mosquitto"]["volumes"]}
    source, _, mode = mounts["/mosquitto/config"]
    folder = (COMPOSE.parent / source).resolve()
    assert folder == (DOCKER / "mosquitto").resolve()
    assert mode == "ro"
    assert (folder / "mosquitto.conf").is_file(), "the image reads /mosquitto/config/mosquitto.conf"
    options = dict(conf_lines((folder / "mosquitto.conf").read_text()))
    for key in ("password_file", "acl_file"):
        path = options[key]
        assert path.startswith("/mosquitto/config/"), path
        assert (folder / path.removeprefix("/mosquitto/config/")).is_file(), path
    assert options["persistence_location"].rstrip("/") in mounts
    assert options["allow_anonymous"] == "false"


def test_project_name_comes_from_dot_env(compose: dict[str, Any]) -> None:
    """docker-compose v1 (Debian bookworm) rejects a top-level name; both read .env."""
    assert "name" not in compose
    env = dict(
        line.split("=", 1)
        for line in (DOCKER / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env == {"COMPOSE_PROJECT_NAME": "drawer-agent-demo"}


def test_usb_override_adds_only_the_device(services: dict[str, dict[str, Any]]) -> None:
    override = yaml.safe_load((DOCKER / "compose.usb.yaml").read_text())
    assert set(override) == {"services"}
    assert set(override["services"]) == {"agent"}
    agent = override["services"]["agent"]
    assert set(agent) == {"devices", "group_add"}
    (device,) = agent["devices"]
    source, _, target = device.rpartition(":")
    assert source.startswith("${DRAWER_AGENT_PRINTER_DEVICE:?"), "the device must be asked for"
    assert target == "/dev/drawer-printer"
    (group,) = agent["group_add"]
    assert group == "${DRAWER_AGENT_PRINTER_GID:-20}", "dialout is gid 20 on Debian"
    assert "privileged" not in agent
    assert services["agent"]["cap_drop"] == ["ALL"], "a device needs no capability"


def test_host_networking_is_documented() -> None:
    text = COMPOSE.read_text()
    assert "network_mode: host" in text
    assert "mDNS" in text


def _walk(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in _walk(value)]
    if isinstance(node, list):
        return [v for value in node for v in _walk(value)]
    return [node]


def test_deployment_doc_shows_the_ledger_backup_the_runtime_test_runs() -> None:
    """docs/deployment.md's backup and restore commands are the ones CI runs, word for word."""
    text = (DOCKER.parent / "docs" / "deployment.md").read_text()
    for code in (LEDGER_BACKUP, LEDGER_RESTORE):
        assert f'"{code}"' in text, code
    assert "run --rm --no-deps -T --entrypoint python3 agent" in text
