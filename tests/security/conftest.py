"""Session-wide keys for the signing tests; helpers live in jws_helpers.py."""

from __future__ import annotations

import pytest
from jws_helpers import Keys, make_keys


@pytest.fixture(scope="session")
def keys() -> Keys:
    return make_keys()
