"""The retained `agent/inventory`: every printer known, for the POS's printer list (pure).

Configured printers (the effective mapping) come first, each with its health and the tills it
serves; then printers discovery saw that no configured printer is at, so a POS can offer them
for `printers/set`. A discovered record is the configured printer's when it sits at the
address that printer resolves to, or when its identity is the one the printer follows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from agent.core import catalogue
from agent.core.health import PrinterHealth
from agent.core.mapping import RuntimeMapping

Address = tuple[str, int]


def build_inventory(
    mapping: RuntimeMapping,
    health: Mapping[str, PrinterHealth],
    discovered: Sequence[Mapping[str, object]],
    resolve: Callable[[str], Address | None],
) -> dict[str, object]:
    """The inventory payload: `{"revision", "printers": [...]}`, configured first."""
    claimed: set[int] = set()
    printers: list[dict[str, object]] = []
    for pid, entry in sorted(mapping.printers.items()):
        s = entry.settings
        model = catalogue.get(s.model) if s.model else None
        found = resolve(pid)
        record_index = _find_record(discovered, found, s.match)
        record = discovered[record_index] if record_index is not None else None
        if record_index is not None:
            claimed.add(record_index)
        h = health.get(pid)
        printers.append(
            {
                "printer_id": pid,
                "name": entry.display_name,
                "configured": True,
                "origin": entry.origin,
                "revision": entry.revision,
                "brand": model.vendor if model else _text(record, "vendor"),
                "model": s.model,
                "model_name": model.name if model else _text(record, "model"),
                "command_set": str(s.command_set),
                "connections": list(model.connections) if model else [],
                "address": None if found is None else f"{found[0]}:{found[1]}",
                "device": s.device,
                "identity": _identity(record, s.match),
                "online": None if h is None or h.checked_at is None else h.online,
                "drawer_open": None if h is None else h.drawer_open,
                "tills": list(mapping.tills_of(pid)),
            }
        )
    for i, record in enumerate(discovered):
        if i in claimed:
            continue
        reported = catalogue.for_reported(_text(record, "vendor"), _text(record, "model"))
        printers.append(
            {
                "printer_id": None,
                "name": _text(record, "name"),
                "configured": False,
                "origin": "discovered",
                "revision": None,
                "brand": _text(record, "vendor"),
                "model": reported.id if reported else None,
                "model_name": _text(record, "model"),
                "command_set": _text(record, "command_set"),
                "connections": list(reported.connections) if reported else [],
                "address": f"{record.get('host')}:{record.get('port')}",
                "device": None,
                "identity": _identity(record, None),
                # Seen by discovery within its staleness window: it answered.
                "online": True,
                "drawer_open": None,
                "tills": [],
            }
        )
    return {"revision": mapping.revision, "printers": printers}


def _find_record(
    discovered: Sequence[Mapping[str, object]], found: Address | None, match: object
) -> int | None:
    for i, record in enumerate(discovered):
        if found is not None and (record.get("host"), record.get("port")) == found:
            return i
        if match is not None:
            for key in ("mac", "serial", "mdns_name"):
                want = getattr(match, key, None)
                if want is not None and record.get(key) == want:
                    return i
    return None


def _identity(record: Mapping[str, object] | None, match: object) -> dict[str, object]:
    identity: dict[str, object] = {}
    for key in ("mac", "serial", "mdns_name"):
        value = (record or {}).get(key) or getattr(match, key, None)
        if value is not None:
            identity[key] = value
    return identity


def _text(record: Mapping[str, object] | None, key: str) -> str | None:
    value = (record or {}).get(key)
    return value if isinstance(value, str) else None
