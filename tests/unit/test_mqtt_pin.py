"""The MQTT adapter's paho shim is written for one aiomqtt release: any other fails loudly.

agent/io/mqtt_link.py replaces aiomqtt's private `Client._loop` (to drop stale fd
registrations) and wraps the paho callbacks of `Client._client`. A new aiomqtt may move
either without an error, and the agent would then hijack printer sockets after a broker
loss again. Bumping aiomqtt means re-reading the shim, then changing SHIMMED_AIOMQTT.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib import metadata
from pathlib import Path

import aiomqtt
import paho.mqtt.client

from agent.io import mqtt_link

ROOT = Path(__file__).resolve().parents[2]


def lock_pin(text: str, name: str) -> str | None:
    """The version `name==X` pins in requirements.lock text."""
    found = re.search(rf"^{re.escape(name)}==(\S+)\s*$", text, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else None


def pin_problems(
    shimmed: str, installed: str, locked: str | None, declared: str | None
) -> list[str]:
    """Why the installed and pinned aiomqtt are not the one the shim was written for."""
    problems = []
    for what, version in (
        ("installed", installed),
        ("requirements.lock", locked),
        ("pyproject.toml", declared),
    ):
        if version != shimmed:
            problems.append(
                f"aiomqtt {what} is {version}, but agent/io/mqtt_link.py's paho shim was "
                f"written for {shimmed} (SHIMMED_AIOMQTT): re-check _GuardedLoop and "
                "_make_client against the new release before changing it"
            )
    return problems


def declared_pin() -> str | None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next((d.split("==", 1)[1] for d in deps if d.startswith("aiomqtt==")), None)


def test_the_shimmed_aiomqtt_is_the_installed_and_pinned_one():
    problems = pin_problems(
        mqtt_link.SHIMMED_AIOMQTT,
        metadata.version("aiomqtt"),
        lock_pin((ROOT / "requirements.lock").read_text(), "aiomqtt"),
        declared_pin(),
    )
    assert not problems, "\n".join(problems)


async def test_the_private_parts_the_shim_uses_are_where_it_expects():
    """What _GuardedLoop intercepts: fd registrations deferred through Client._loop."""
    client = aiomqtt.Client("127.0.0.1", 1)
    assert isinstance(client._client, paho.mqtt.client.Client)
    assert client._loop is not None
    for callback in ("_on_socket_open", "_on_socket_register_write"):
        source = inspect.getsource(getattr(aiomqtt.Client, callback))
        assert "self._loop.call_soon_threadsafe(self._loop.add_" in source, callback
    assert hasattr(client, "pending_calls_threshold")


def test_a_different_version_anywhere_fails_loudly():
    """Negative control: each place a version can differ is named."""
    assert pin_problems("2.5.1", "2.5.1", "2.5.1", "2.5.1") == []
    problems = pin_problems("2.5.1", "2.6.0", "2.5.1", None)
    assert len(problems) == 2
    assert "installed is 2.6.0" in problems[0]
    assert "pyproject.toml is None" in problems[1]
    assert lock_pin("aiohttp==3.14.5\naiomqtt==9.9\n", "aiomqtt") == "9.9"
    assert lock_pin("aiomqtt-extra==1.0\n", "aiomqtt") is None
