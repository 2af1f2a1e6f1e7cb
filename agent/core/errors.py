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
    """A printer refused, reset or timed out during one attempt."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"{host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class Redeliver(AgentError):
    """A message could not be taken now; reconnect so the broker delivers it again."""
