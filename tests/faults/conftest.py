"""Fixtures for the fault-injection tests (the broker fixture comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.harness import AgentProcess


@pytest.fixture
async def agent_proc(tmp_path: Path) -> AsyncIterator[list[AgentProcess]]:
    """Agent subprocesses a test starts; whatever is still running is stopped afterwards."""
    procs: list[AgentProcess] = []
    yield procs
    for proc in procs:
        await proc.stop()
