"""The agent's exception hierarchy; library exceptions are translated into these at adapters."""


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration key is missing, unknown or invalid."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class LedgerError(AgentError):
    """The SQLite ledger is unreadable, corrupt or unwritable."""


class BrokerError(AgentError):
    """The MQTT broker connection failed or was lost."""


class PrinterUnreachable(AgentError):
    """A printer refused, reset or timed out during one attempt.

    `host` is the device path and `port` 0 for a printer on a character device.
    """

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"{self.where}: {reason}")

    @property
    def where(self) -> str:
        """host:port, or the device path."""
        return f"{self.host}:{self.port}" if self.port else self.host


class Redeliver(AgentError):
    """A message could not be taken now; reconnect so the broker delivers it again."""
