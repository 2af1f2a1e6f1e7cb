"""Merge sightings into one record per device (issue 3 §4: MAC > serial > mDNS name > host)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from discovery.core.identity import mdns_instance, normalise_serial
from discovery.core.model import DEFAULT_PORT, PrinterRecord, Sighting

# Which source's value wins for each field: the device's own answer beats an advertisement.
_IDENTITY_PRIORITY = ("probe", "snmp", "mdns")
_MAC_PRIORITY = ("snmp", "mdns", "probe")
_PORT_PRIORITY = ("mdns", "probe", "snmp")
_NAME_PRIORITY = ("mdns", "snmp", "probe")
# A change to any of these is reported; timestamps and sources alone are not.
WATCHED_FIELDS = (
    "host",
    "port",
    "vendor",
    "model",
    "command_set",
    "mac",
    "serial",
    "name",
    "mdns_name",
)


@dataclass(frozen=True)
class Change:
    """A record that is new (`old is None`) or whose host, port or identity changed."""

    new: PrinterRecord
    old: PrinterRecord | None


@dataclass(frozen=True)
class MergeResult:
    """Records after the merge, and what changed."""

    records: tuple[PrinterRecord, ...]
    changes: tuple[Change, ...]


def conflicting_macs(sightings: Iterable[Sighting]) -> frozenset[str]:
    """MACs claimed by more than one host in one batch cannot identify anything."""
    hosts: dict[str, set[str]] = defaultdict(set)
    for s in sightings:
        if s.mac:
            hosts[s.mac].add(s.host)
    return frozenset(mac for mac, where in hosts.items() if len(where) > 1)


def merge(
    records: Sequence[PrinterRecord],
    sightings: Sequence[Sighting],
    *,
    default_port: int = DEFAULT_PORT,
) -> MergeResult:
    """Fold a batch of sightings (one sweep, or one mDNS resolution) into the records."""
    current = list(records)
    originals = {id(r): r for r in records}
    origin: dict[int, PrinterRecord | None] = {}  # index in `current` → record before the batch
    untrusted = conflicting_macs(sightings)
    for sighting in sightings:
        index = find_record(current, sighting, untrusted)
        if index is None:
            if sighting.enrich_only:
                continue
            current.append(_new_record(sighting, default_port))
            origin[len(current) - 1] = None
        else:
            origin.setdefault(index, originals.get(id(current[index])))
            current[index] = _absorb(current[index], sighting, default_port)
    changes = tuple(
        Change(current[i], old) for i, old in sorted(origin.items()) if _changed(current[i], old)
    )
    return MergeResult(tuple(current), changes)


def withdraw(
    records: Sequence[PrinterRecord], mdns_name: str
) -> tuple[tuple[PrinterRecord, ...], tuple[Change, ...]]:
    """Forget the mDNS evidence of a service that said goodbye; the device may still be there."""
    wanted = mdns_instance(mdns_name).casefold()
    result: list[PrinterRecord] = []
    changes: list[Change] = []
    for record in records:
        if record.mdns_name and mdns_instance(record.mdns_name).casefold() == wanted:
            evidence = tuple(s for s in record.evidence if s.source != "mdns")
            updated = replace(record, sources=record.sources - {"mdns"}, evidence=evidence)
            result.append(updated)
            changes.append(Change(updated, record))
        else:
            result.append(record)
    return tuple(result), tuple(changes)


def find_record(
    records: Sequence[PrinterRecord], sighting: Sighting, untrusted: frozenset[str] = frozenset()
) -> int | None:
    """Index of the record this sighting belongs to, by the strongest key both sides carry."""
    mac = sighting.mac if sighting.mac not in untrusted else None
    if mac:
        found = _best([i for i, r in enumerate(records) if r.mac == mac], records, sighting)
        if found is not None:
            return found
    candidates = [i for i, r in enumerate(records) if _compatible(r, sighting, untrusted)]
    if sighting.serial:
        serial = normalise_serial(sighting.serial)
        found = _best(
            [i for i in candidates if normalise_serial(records[i].serial or "") == serial],
            records,
            sighting,
        )
        if found is not None:
            return found
    if sighting.mdns_name:
        name = mdns_instance(sighting.mdns_name).casefold()
        found = _best(
            [
                i
                for i in candidates
                if records[i].mdns_name
                and mdns_instance(records[i].mdns_name or "").casefold() == name
            ],
            records,
            sighting,
        )
        if found is not None:
            return found
    return _best([i for i in candidates if records[i].host == sighting.host], records, sighting)


def _compatible(record: PrinterRecord, sighting: Sighting, untrusted: frozenset[str]) -> bool:
    """Two different values of a stronger key mean two different devices."""
    if (
        record.mac
        and sighting.mac
        and sighting.mac not in untrusted
        and record.mac not in untrusted
        and record.mac != sighting.mac
    ):
        return False
    if (
        record.serial
        and sighting.serial
        and normalise_serial(record.serial) != normalise_serial(sighting.serial)
    ):
        return False
    return not (
        record.mdns_name
        and sighting.mdns_name
        and mdns_instance(record.mdns_name).casefold()
        != mdns_instance(sighting.mdns_name).casefold()
    )


def _best(indices: list[int], records: Sequence[PrinterRecord], sighting: Sighting) -> int | None:
    """Prefer the record already at the sighting's address, then the most recently seen."""
    if not indices:
        return None
    return max(indices, key=lambda i: (records[i].host == sighting.host, records[i].last_seen))


def _new_record(sighting: Sighting, default_port: int) -> PrinterRecord:
    base = PrinterRecord(
        host=sighting.host,
        port=default_port,
        vendor=None,
        model=None,
        command_set=None,
        mac=None,
        serial=None,
        name=None,
        sources=frozenset(),
        first_seen=sighting.seen_at,
        last_seen=sighting.seen_at,
    )
    return _absorb(base, sighting, default_port)


def _absorb(record: PrinterRecord, sighting: Sighting, default_port: int) -> PrinterRecord:
    """Replace this source's evidence and re-resolve every field by source priority."""
    evidence = (*(s for s in record.evidence if s.source != sighting.source), sighting)

    def pick(attr: str, order: tuple[str, ...]) -> str | None:
        for source in order:
            for s in evidence:
                value = getattr(s, attr)
                if s.source == source and value is not None:
                    return str(value)
        # Evidence is not persisted: keep what the store remembered until a source says otherwise.
        value = getattr(record, attr)
        return str(value) if value is not None else None

    port = next(
        (s.port for src in _PORT_PRIORITY for s in evidence if s.source == src and s.port),
        None,
    )
    mdns_name = pick("mdns_name", ("mdns",))
    return replace(
        record,
        # The newest sighting says where the device is now (a moved device keeps its identity).
        host=sighting.host
        if sighting.seen_at >= record.last_seen or not record.sources
        else record.host,
        port=port or record.port or default_port,
        vendor=pick("vendor", _IDENTITY_PRIORITY),
        model=pick("model", _IDENTITY_PRIORITY),
        command_set=pick("command_set", _IDENTITY_PRIORITY),
        mac=pick("mac", _MAC_PRIORITY),
        serial=pick("serial", _IDENTITY_PRIORITY),
        mdns_name=mdns_name,
        name=mdns_name or pick("name", _NAME_PRIORITY),
        sources=record.sources | {sighting.source},
        first_seen=min(record.first_seen, sighting.seen_at),
        last_seen=max(record.last_seen, sighting.seen_at),
        evidence=evidence,
    )


def _changed(new: PrinterRecord, old: PrinterRecord | None) -> bool:
    return old is None or any(getattr(new, f) != getattr(old, f) for f in WATCHED_FIELDS)
