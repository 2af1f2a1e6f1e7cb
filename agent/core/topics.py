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

    def request(self, name: str) -> str:
        """The POS asks the agent (QoS 1, never retained); `name` is e.g. terminals/set."""
        return f"shops/{self.shop_id}/agent/request/{name}"

    @property
    def requests(self) -> str:
        """The agent's subscription for every request."""
        return f"shops/{self.shop_id}/agent/request/#"

    def response(self, name: str) -> str:
        """The agent answers a request here, echoing its transaction."""
        return f"shops/{self.shop_id}/agent/response/{name}"

    def request_suffix(self, topic: str) -> str | None:
        """agent/request/<name> → name; None for any other topic."""
        prefix = f"shops/{self.shop_id}/agent/request/"
        return topic[len(prefix) :] if topic.startswith(prefix) else None

    @property
    def config(self) -> str:
        """Retained effective mapping, with the revision and each entry's origin."""
        return f"shops/{self.shop_id}/agent/config"

    @property
    def inventory(self) -> str:
        """Retained list of every printer known, configured and discovered."""
        return f"shops/{self.shop_id}/agent/inventory"
