"""MQTT topic names of the contract (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic of one shop."""

    shop_id: str

    @property
    def events(self) -> str:
        """The POS publishes cash events here (QoS 1, never retained)."""
        return f"shops/{self.shop_id}/cash/events"

    @property
    def acks(self) -> str:
        """One acknowledgement per received event (QoS 1)."""
        return f"shops/{self.shop_id}/cash/acks"

    @property
    def agent_status(self) -> str:
        """Retained agent state; the last will says offline."""
        return f"shops/{self.shop_id}/agent/status"

    @property
    def alerts(self) -> str:
        """Drawer left open and similar alerts."""
        return f"shops/{self.shop_id}/alerts"

    def printer_status(self, printer_id: str) -> str:
        """Retained health of one printer."""
        return f"shops/{self.shop_id}/printers/{printer_id}/status"
