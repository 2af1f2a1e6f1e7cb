"""python-escpos capability profiles, read instead of retyped (adapter; imports escpos lazily).

python-escpos pickles its capabilities to a fresh temp directory per process and calls
logging.basicConfig() at import (LIBRARIES §4), so the cache directory is pinned and the
root logger's handlers are restored around the import.
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any


@cache
def _profiles() -> dict[str, Any]:
    cache_dir = Path(tempfile.gettempdir()) / "drawer-agent-escpos-cache"
    cache_dir.mkdir(exist_ok=True)
    os.environ.setdefault("ESCPOS_CAPABILITIES_PICKLE_DIR", str(cache_dir))
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        from escpos.capabilities import CAPABILITIES
    except ImportError:
        return {}
    finally:
        root.handlers[:] = handlers
    return dict(CAPABILITIES["profiles"])


def describe(profile: str | None) -> dict[str, object] | None:
    """Name, vendor, drawer features and paper width of a python-escpos profile."""
    if profile is None:
        return None
    data = _profiles().get(profile)
    if data is None:
        return None
    features = data.get("features", {})
    media = data.get("media", {}).get("width", {})
    return {
        "profile": profile,
        "name": data.get("name"),
        "vendor": data.get("vendor"),
        "pulse_standard": bool(features.get("pulseStandard")),
        "pulse_bel": bool(features.get("pulseBel")),
        "paper_mm": media.get("mm"),
    }
