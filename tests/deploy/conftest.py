"""Fixtures for the deployment-artefact tests (docker/, deploy/, .dockerignore)."""

from __future__ import annotations

import pytest
from deploy_helpers import Certs, find_tool, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def mosquitto() -> str:
    path = find_tool("mosquitto")
    assert path, "mosquitto is required (apt-get install mosquitto mosquitto-clients)"
    return path


@pytest.fixture(scope="session")
def mosquitto_passwd() -> str:
    path = find_tool("mosquitto_passwd")
    assert path, "mosquitto_passwd is required (apt-get install mosquitto)"
    return path
