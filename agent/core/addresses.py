"""Where each configured printer is now: its configured host, or where discovery saw it (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.core.settings import PrinterSettings
from discovery.core.identity import matches
from discovery.core.model import PrinterRecord

Address = tuple[str, int]


@dataclass(frozen=True)
class Move:
    """A printer followed to a new address."""

    printer_id: str
    old: Address | None
    new: Address

    def describe(self) -> str:
        """One line for the log and the audit trail."""
        old = f"{self.old[0]}:{self.old[1]}" if self.old else "unknown"
        return f"printer {self.printer_id} moved from {old} to {self.new[0]}:{self.new[1]}"


class AddressBook:
    """Current address per printer id; `observe()` follows printers that carry a `match`."""

    def __init__(self, printers: Mapping[str, PrinterSettings]) -> None:
        self.printers = printers
        self._current: dict[str, Address] = {
            pid: (p.host, p.port) for pid, p in printers.items() if p.host is not None
        }

    def update(self, printers: Mapping[str, PrinterSettings]) -> None:
        """A mapping change: fixed hosts as configured; a followed printer keeps where it was
        seen while its identity `match` is unchanged."""
        current: dict[str, Address] = {}
        for pid, p in printers.items():
            old = self.printers.get(pid)
            seen = self._current.get(pid)
            if p.match is not None and old is not None and old.match == p.match and seen:
                current[pid] = seen
            elif p.host is not None:
                current[pid] = (p.host, p.port)
        self.printers = printers
        self._current = current

    def address(self, printer_id: str) -> Address | None:
        """Where to send pulses for this printer now; None until a match-only one is found."""
        return self._current.get(printer_id)

    def observe(self, record: PrinterRecord) -> list[Move]:
        """Apply a discovered record; return the printers it moved."""
        moves = []
        for pid, printer in self.printers.items():
            m = printer.match
            if m is None or not matches(record, mac=m.mac, serial=m.serial, mdns_name=m.mdns_name):
                continue
            # mDNS and SNMP report the device's raw port; a printer configured with an
            # explicit port keeps it unless discovery saw the device elsewhere.
            new = (record.host, record.port or printer.port)
            old = self._current.get(pid)
            if new != old:
                self._current[pid] = new
                moves.append(Move(pid, old, new))
        return moves

    def printer_at(self, host: str, port: int) -> str | None:
        """The configured printer currently at host:port, if any."""
        for pid, address in self._current.items():
            if address == (host, port):
                return pid
        return None
