"""The one typed, frozen settings object, validated from a raw mapping (pure).

Every key is declared once, as a field below (`setting(default, doc=..., bounds...)`); reading,
environment coercion, redaction and the JSON Schema are derived from those fields by fieldspec.
What is written by hand here are only the rules between keys (a model's defaults, URL parsing).
Reading the TOML file and the environment is settings_io's job.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import PurePath
from types import MappingProxyType
from typing import TypeVar
from urllib.parse import urlsplit

from agent.core import catalogue
from agent.core.commands import CommandSet, check_pulse
from agent.core.errors import ConfigError
from agent.core.events import EventType
from agent.core.fieldspec import (
    EnvValue,
    Section,
    json_schema,
    read_keys,
    redact,
    setting,
    table_paths,
)
from agent.core.hosts import is_loopback
from agent.core.status import open_level
from agent.core.transport import FLOW_CONTROLS, DeviceKind, check_device_path, device_kind
from discovery.core.model import DiscoveryConfig

__all__ = [
    "EnvValue",
    "Settings",
    "settings_json_schema",
    "user_tables",
    "validate",
    "validate_printer",
]

T = TypeVar("T")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAMES = {"type": "object", "propertyNames": {"pattern": _ID.pattern}}


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """Broker connection."""

    # One URL, or a cluster's nodes (or a primary and a standby) tried in order: a list in
    # TOML, comma-separated in the environment; kept comma-joined, as the env spells it.
    url: str = setting(
        "mqtt://127.0.0.1:1883",
        doc="broker URL (mqtt:// or mqtts://), or a list of nodes tried in order on failover",
        custom=True,
        schema={
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        },
    )
    client_id: str = setting(
        doc="MQTT client id (default drawer-agent-<shop_id>)", derived=True, length=(1, 128)
    )
    username: str | None = setting(None, doc="broker user name")
    password: str | None = setting(None, doc="broker password", secret=True, from_file=True)
    keepalive_s: int = setting(30, doc="MQTT keepalive in seconds", lo=5, hi=3600)
    ca_file: str | None = setting(None, doc="CA bundle that signs the broker's certificate")
    cert_file: str | None = setting(None, doc="client certificate (mutual TLS)")
    key_file: str | None = setting(None, doc="client certificate's private key")
    allow_insecure: bool = setting(False, doc="allow plaintext mqtt:// to a non-loopback host")
    protocol: int = setting(5, doc="MQTT protocol version", choices={"5": 5, "3.1.1": 4})
    session_expiry_s: int = setting(
        7 * 24 * 3600, doc="how long the broker keeps the session (MQTT 5)", lo=86400, hi=2**32 - 1
    )

    @property
    def tls(self) -> bool:
        return urlsplit(self.endpoints()[0].url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return self.endpoints()[0].host

    @property
    def port(self) -> int:
        return self.endpoints()[0].port

    def endpoints(self) -> tuple[MqttNode, ...]:
        """Every broker node, in the order they are tried (at least one)."""
        nodes = []
        for url in self.url.split(","):
            parts = urlsplit(url.strip())
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
            nodes.append(MqttNode(url.strip(), parts.hostname or "", port))
        return tuple(nodes)


@dataclass(frozen=True)
class MqttNode:
    """One broker address: a cluster node, a primary or a standby."""

    url: str
    host: str
    port: int


@dataclass(frozen=True, kw_only=True)
class SecuritySettings:
    """Who may open a drawer, how fresh an event must be, how often a drawer may open."""

    require_signed: bool = setting(False, doc="refuse events without a valid signature")
    max_age_s: float = setting(30.0, doc="events older than this never open", lo=1.0, hi=3600.0)
    max_clock_skew_s: float = setting(
        5.0, doc="how far in the future an event may be", lo=0.0, hi=300.0
    )
    max_pulses_per_minute: int = setting(
        20, doc="drawer openings per printer and minute, 0 = none", lo=0, hi=10_000
    )
    keys: Mapping[str, bytes] = setting(
        doc="HS256 secrets by kid: a string or {file = path}",
        factory=dict,
        secret=True,
        custom=True,
        schema={
            **_NAMES,
            "additionalProperties": {
                "oneOf": [
                    {"type": "string", "minLength": 32},
                    {
                        "type": "object",
                        "properties": {"file": {"type": "string"}},
                        "required": ["file"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
    )
    public_keys: Mapping[str, bytes] = setting(
        doc="PEM public key files (ES256, EdDSA) by kid",
        factory=dict,
        secret=True,
        custom=True,
        schema={**_NAMES, "additionalProperties": {"type": "string"}},
    )


@dataclass(frozen=True, kw_only=True)
class MatchSettings:
    """Identity a printer is followed by when its address changes."""

    mac: str | None = setting(None, doc="MAC address")
    serial: str | None = setting(None, doc="serial number")
    mdns_name: str | None = setting(None, doc="mDNS instance name")


@dataclass(frozen=True, kw_only=True)
class PrinterSettings:
    """One receipt printer with a drawer on its kick connector."""

    id: str
    name: str | None = setting(
        None, doc="name shown in the console (default: its id)", length=(1, 64)
    )
    host: str | None = setting(None, doc="printer address", length=(1, None))
    port: int = setting(9100, doc="raw TCP port", lo=1, hi=65535)
    # A printer has exactly one of host (TCP 9100) and device (agent.core.transport).
    device: str | None = setting(
        None,
        doc="character device of a USB, serial or Bluetooth printer (instead of host)",
        length=(1, None),
    )
    baudrate: int = setting(
        9600, doc="tty speed (serial and Bluetooth ttys only)", lo=50, hi=4_000_000
    )
    flow_control: str = setting(
        "none", doc="tty flow control (serial and Bluetooth ttys only)", choices=FLOW_CONTROLS
    )
    keep_open: bool = setting(
        False, doc="hold the device open between kicks (Bluetooth: opening connects)"
    )
    model: str | None = setting(None, doc="catalogue model id (drawer-agent models)")
    command_set: CommandSet = setting(
        doc="command set (default: the model's)", derived=True, custom=True
    )
    drawer: int = setting(1, doc="kick connector pin pair", lo=1, hi=2)
    pulse_on_ms: int = setting(100, doc="pulse on time (default: the model's)", lo=0, hi=10_000)
    pulse_off_ms: int = setting(500, doc="pulse off time (default: the model's)", lo=0, hi=10_000)
    # Unset = the command set's vendor default, resolved by agent.core.status.open_level.
    drawer_open_level: str | None = setting(
        None,
        doc="drawer sensor level that means open (default: the vendor's, from the command set)",
        choices=("low", "high"),
    )
    realtime_pulse: bool = setting(False, doc="use DLE DC4 (default: the model's; ESC/POS only)")
    match: MatchSettings | None = setting(None, doc="follow the printer by identity", custom=True)
    confirm: bool = setting(True, doc="read the drawer sensor after a kick")
    precheck: bool = setting(
        True, doc="read the real-time status before each kick; never kick an offline printer"
    )


@dataclass(frozen=True, kw_only=True)
class PolicySettings:
    """Which events open a drawer."""

    open_on: frozenset[EventType] = setting(
        doc="event types that open a drawer", factory=lambda: frozenset(EventType)
    )
    sale_payment_methods: frozenset[str] | None = setting(
        None, doc="sales open only with one of these methods (default: any)"
    )


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """The local HTTP API."""

    listen: str = setting("127.0.0.1:8080", doc="host:port of the local HTTP API")
    token: str | None = setting(
        None, doc="bearer token of the HTTP API", secret=True, from_file=True, length=(16, None)
    )
    cert_file: str | None = setting(
        None, doc="PEM certificate chain: serve the console and API over HTTPS", length=(1, None)
    )
    key_file: str | None = setting(None, doc="PEM private key of cert_file", length=(1, None))

    @property
    def tls(self) -> bool:
        """True when the console and API are served over HTTPS."""
        return self.cert_file is not None

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True, kw_only=True)
class StateSettings:
    """The SQLite ledger."""

    path: str = setting("drawer-agent.db", doc="SQLite ledger file", length=(1, None))
    retention_days: int = setting(90, doc="days finished events are kept", lo=1, hi=3650)


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    """Printer connections."""

    connect_timeout_s: float = setting(1.0, doc="TCP connect timeout", lo=0.05, hi=30.0)
    write_timeout_s: float = setting(1.0, doc="write timeout", lo=0.05, hi=30.0)
    queue_size: int = setting(1000, doc="jobs queued per printer", lo=1, hi=1_000_000)
    grace_s: float = setting(3.0, doc="time to finish sends at shutdown", lo=0.0, hi=4.5)


@dataclass(frozen=True, kw_only=True)
class DiscoverySettings(DiscoveryConfig):
    """Periodic printer discovery inside the agent: discovery's own keys plus `enabled`."""

    enabled: bool = setting(False, doc="run discovery (default: when subnets or interval_s set)")

    def to_config(self) -> DiscoveryConfig:
        """The discovery package's own config; sweeps only with subnets."""
        own = {f.name: getattr(self, f.name) for f in fields(DiscoveryConfig)}
        own.update(snmp=self.snmp and bool(self.subnets), probe=self.probe and bool(self.subnets))
        return DiscoveryConfig(**own)


@dataclass(frozen=True, kw_only=True)
class HealthSettings:
    """Printer health probes."""

    interval_s: float = setting(30.0, doc="seconds between status probes", lo=0.2, hi=3600.0)
    drawer_open_alert_s: float = setting(
        120.0, doc="alert when a drawer stays open longer", lo=1.0, hi=86400.0
    )
    confirm_drawer: bool = setting(True, doc="probe the drawer sensor after each kick")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the agent needs, validated once at start."""

    shop_id: str = setting(doc="shop identifier, part of every topic", pattern=_ID)
    mqtt: MqttSettings = setting(doc="broker connection", custom=True)
    security: SecuritySettings = setting(doc="signatures, freshness, rate", custom=True)
    printers: Mapping[str, PrinterSettings] = setting(
        doc="printers by id", factory=dict, custom=True, schema={**_NAMES}
    )
    terminals: Mapping[str, str] = setting(
        doc="printer id by POS terminal id",
        factory=dict,
        custom=True,
        schema={"type": "object", "additionalProperties": {"type": "string"}},
    )
    policy: PolicySettings = setting(doc="which events open a drawer", custom=True)
    http: HttpSettings = setting(doc="local HTTP API", custom=True)
    state: StateSettings = setting(doc="SQLite ledger", custom=True)
    dispatch: DispatchSettings = setting(doc="printer connections", custom=True)
    discovery: DiscoverySettings = setting(doc="printer discovery", custom=True)
    health: HealthSettings = setting(doc="printer health probes", custom=True)
    log_format: str = setting("text", doc="log line format", choices=("text", "json"))
    log_level: str = setting(
        "INFO", doc="lowest level logged", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )

    def redacted(self) -> dict[str, object]:
        """Effective settings with every secret replaced, for logs and /api/config."""
        return redact(self)


def settings_json_schema() -> dict[str, object]:
    """JSON Schema of the config file, derived from the same fields as validation."""
    schema = json_schema(Settings)
    props = schema["properties"]
    assert isinstance(props, dict)
    props["printers"]["additionalProperties"] = json_schema(PrinterSettings)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "drawer-agent",
        **schema,
    }


def user_tables() -> frozenset[tuple[str, ...]]:
    """Paths of tables whose keys are names chosen by the user (printer ids, terminals, kids)."""
    return frozenset(table_paths(Settings))


# Parses every verification key (security.keys, security.public_keys) the way the agent
# will use it; raises ValueError("security.<table>.<kid>: problem"). Given by the I/O shell
# (agent.io.signing), since parsing a PEM needs the cryptography library.
KeyCheck = Callable[[Mapping[str, bytes], Mapping[str, bytes]], object]


def validate(
    raw: Mapping[str, object],
    read_file: Callable[[str], bytes],
    check_keys: KeyCheck | None = None,
) -> Settings:
    """Validate a raw config mapping; `read_file` reads secret and key files.

    With `check_keys`, a key that would fail at use (a bad PEM, a PEM-looking HS256
    secret) fails here, naming its key, so `check-config` and `run` both exit 2.
    """
    settings = _validate(raw, read_file)
    if check_keys is not None:
        try:
            check_keys(settings.security.keys, settings.security.public_keys)
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            raise ConfigError(key, problem or str(exc)) from None
    return settings


def _validate(raw: Mapping[str, object], read_file: Callable[[str], bytes]) -> Settings:
    with Section(raw, "", read_file).closing() as root:
        top = read_keys(root, Settings)
        shop_id = top["shop_id"]
        assert isinstance(shop_id, str)
        printers = _printers(root.table("printers"))
        return Settings(
            **top,
            mqtt=_mqtt(root.table("mqtt"), shop_id),
            security=_security(root.table("security")),
            printers=MappingProxyType(printers),
            terminals=MappingProxyType(_terminals(root.table("terminals"), printers)),
            policy=_simple(root.table("policy"), PolicySettings),
            http=_http(root.table("http")),
            state=_simple(root.table("state"), StateSettings),
            dispatch=_simple(root.table("dispatch"), DispatchSettings),
            discovery=_discovery(root.table("discovery")),
            health=_simple(root.table("health"), HealthSettings),
        )


def _simple(sec: Section, cls: type[T]) -> T:
    with sec.closing():
        return cls(**read_keys(sec, cls))


def _mqtt(sec: Section, shop_id: str) -> MqttSettings:
    with sec.closing():
        values = read_keys(sec, MqttSettings, {"client_id": f"drawer-agent-{shop_id}"})
        raw = sec.get("url")
        if isinstance(raw, list):
            urls = sec.texts("url", None) or ()
        elif isinstance(raw, str):
            urls = tuple(part.strip() for part in raw.split(",") if part.strip())
        elif raw is None:
            urls = ("mqtt://127.0.0.1:1883",)
        else:
            raise ConfigError(sec.key("url"), "must be a string or a list of strings")
        if not urls:
            raise ConfigError(sec.key("url"), "must name at least one broker")
        settings = MqttSettings(**values, url=",".join(urls))
        for url in urls:
            _mqtt_url(sec, url, settings.allow_insecure)
        nodes = settings.endpoints()
        if len({urlsplit(n.url).scheme for n in nodes}) > 1:
            raise ConfigError(sec.key("url"), "mixes mqtt:// and mqtts://; use one scheme")
        if len({(n.host, n.port) for n in nodes}) < len(nodes):
            raise ConfigError(sec.key("url"), "names the same broker twice")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(settings, name)
            if path is not None and not PurePath(path).name:
                raise ConfigError(sec.key(name), f"{path!r} is not a file path")
        return settings


def _mqtt_url(sec: Section, url: str, allow_insecure: bool) -> None:
    """One broker URL: scheme, no credentials, a host, a valid port, plaintext only locally."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(sec.key("url"), f"scheme must be mqtt:// or mqtts://, not {url!r}")
    if parts.username or parts.password:
        raise ConfigError(
            sec.key("url"),
            "must not carry credentials; use mqtt.username and mqtt.password_file",
        )
    if not parts.hostname:
        raise ConfigError(sec.key("url"), f"{url!r} has no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ConfigError(sec.key("url"), f"{url!r} has an invalid port") from None
    if parts.scheme == "mqtt" and not allow_insecure and not is_loopback(parts.hostname):
        raise ConfigError(
            sec.key("url"),
            f"plaintext MQTT to {parts.hostname} would send events and credentials in "
            "the clear; use mqtts:// or set mqtt.allow_insecure = true",
        )


def _security(sec: Section) -> SecuritySettings:
    with sec.closing():
        values = read_keys(sec, SecuritySettings)
        keys_sec = sec.table("keys")
        keys = {kid: _key_material(keys_sec, kid) for kid in list(keys_sec.raw)}
        keys_sec.seen.update(keys_sec.raw)
        pub_sec = sec.table("public_keys")
        public: dict[str, bytes] = {}
        for kid in list(pub_sec.raw):
            path = pub_sec.text(kid, required=True)
            assert path is not None
            public[kid] = pub_sec.file(kid, path)
        for kid, secret in keys.items():
            if len(secret) < 32:
                raise ConfigError(
                    keys_sec.key(kid), f"secret is {len(secret)} bytes; at least 32 are required"
                )
            if kid in public:
                raise ConfigError(pub_sec.key(kid), "kid is also in security.keys")
        if values["require_signed"] and not keys and not public:
            raise ConfigError(
                sec.key("require_signed"),
                "is true but no security.keys or security.public_keys are set",
            )
        return SecuritySettings(
            **values,
            keys=MappingProxyType(keys),
            public_keys=MappingProxyType(public),
        )


def _key_material(sec: Section, kid: str) -> bytes:
    value = sec.raw[kid]
    if isinstance(value, str):
        return value.encode()
    with Section(value, f"{sec.path}.{kid}", sec.read_file).closing() as inner:
        path = inner.text("file", required=True)
        assert path is not None
        return inner.file("file", path).strip()


def validate_printer(pid: str, table: Mapping[str, object]) -> PrinterSettings:
    """One `[printers.<pid>]` table, by the same rules as the file (the console's and API's)."""

    def no_files(path: str) -> bytes:
        raise OSError(f"a printer table reads no file ({path})")

    root = Section({pid: table}, "printers", no_files)
    return _printers(root)[pid]


def _printers(sec: Section) -> dict[str, PrinterSettings]:
    printers: dict[str, PrinterSettings] = {}
    for pid in list(sec.raw):
        if not _ID.match(pid):
            raise ConfigError(sec.key(pid), "printer ids are 1..64 of A-Z a-z 0-9 _ -")
        printers[pid] = _printer(sec.table(pid), pid)
    return printers


def _printer(sec: Section, pid: str) -> PrinterSettings:
    with sec.closing():
        model_id = sec.text("model")
        model = None if model_id is None else catalogue.get(model_id)
        if model_id is not None and model is None:
            raise ConfigError(
                sec.key("model"), f"{model_id!r} is not in the catalogue (drawer-agent models)"
            )
        defaults: dict[str, object] = {}
        if model is not None:
            defaults.update(
                pulse_on_ms=model.pulse_on_ms,
                pulse_off_ms=model.pulse_off_ms,
                realtime_pulse=model.realtime_pulse,
            )
        values = read_keys(sec, PrinterSettings, defaults)
        raw_cs = sec.text("command_set", choices=tuple(c.value for c in CommandSet))
        if raw_cs is None and model is None:
            raise ConfigError(f"printers.{pid}", "needs model or command_set")
        command_set = CommandSet(raw_cs) if raw_cs else model.command_set  # type: ignore[union-attr]
        # Star TSP650II/700II/800II can be switched to ESC/POS emulation (PROTOCOLS §1.4).
        if (
            model is not None
            and raw_cs is not None
            and CommandSet(raw_cs) != model.command_set
            and not (model.command_set is CommandSet.STAR_LINE and raw_cs == "escpos")
        ):
            raise ConfigError(
                sec.key("command_set"), f"{model.id} speaks {model.command_set}, not {raw_cs}"
            )
        if model is not None and values["drawer"] > model.drawers:
            has = "no drawer kick connector" if not model.drawers else "only drawer 1"
            raise ConfigError(sec.key("drawer"), f"{model.name} has {has}")
        problem = check_pulse(command_set, values["pulse_on_ms"], values["pulse_off_ms"])
        if problem:
            raise ConfigError(f"printers.{pid}.pulse_on_ms", problem)
        match = None
        if sec.has("match"):
            with sec.table("match").closing() as m:
                match = MatchSettings(**read_keys(m, MatchSettings))
            if match == MatchSettings():
                raise ConfigError(m.path, "needs mac, serial or mdns_name")
        _transport(sec, pid, values, match)
        values["realtime_pulse"] = values["realtime_pulse"] and command_set is CommandSet.ESCPOS
        # Unset polarity becomes the vendor's default, so check-config shows what is used.
        values["drawer_open_level"] = open_level(values["drawer_open_level"], command_set)
        return PrinterSettings(
            id=pid,
            command_set=command_set,
            match=match,
            **values,
        )


def _transport(
    sec: Section, pid: str, values: dict[str, object], match: MatchSettings | None
) -> None:
    """Exactly one of host (or match) and device; tty keys only on a tty (PROTOCOLS §3)."""
    device = values["device"]
    if device is None:
        if values["host"] is None and match is None:
            raise ConfigError(f"printers.{pid}", "needs host, device or match")
        for key in ("baudrate", "flow_control", "keep_open"):
            if sec.has(key):
                raise ConfigError(sec.key(key), "is for a device printer; this one has a host")
        return
    assert isinstance(device, str)
    if values["host"] is not None or match is not None:
        raise ConfigError(
            f"printers.{pid}",
            "has both device and "
            + ("host" if values["host"] is not None else "match")
            + "; give exactly one",
        )
    if sec.has("port"):
        raise ConfigError(sec.key("port"), "is the TCP port; a device printer has none")
    problem = check_device_path(device)
    if problem:
        raise ConfigError(sec.key("device"), problem)
    if device_kind(device) is DeviceKind.USBLP:
        for key in ("baudrate", "flow_control"):
            if sec.has(key):
                raise ConfigError(sec.key(key), f"is for ttys; {device} is a usblp device")


def _terminals(sec: Section, printers: Mapping[str, PrinterSettings]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tid in list(sec.raw):
        pid = sec.text(tid, required=True)
        assert pid is not None
        if pid not in printers:
            raise ConfigError(sec.key(tid), f"printer {pid!r} is not in [printers]")
        out[tid] = pid
    return out


def _http(sec: Section) -> HttpSettings:
    with sec.closing():
        settings = HttpSettings(**read_keys(sec, HttpSettings))
        host, sep, port_text = settings.listen.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
            raise ConfigError(sec.key("listen"), f"{settings.listen!r} must be host:port")
        if (settings.cert_file is None) != (settings.key_file is None):
            missing = "key_file" if settings.key_file is None else "cert_file"
            raise ConfigError(sec.key(missing), "set both cert_file and key_file, or neither")
        return settings


def _discovery(sec: Section) -> DiscoverySettings:
    with sec.closing():
        subnets = sec.texts("subnets", ()) or ()
        for cidr in subnets:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(sec.key("subnets"), f"{cidr!r} is not a CIDR") from None
        for addr in sec.texts("interfaces", ()) or ():
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise ConfigError(
                    sec.key("interfaces"), f"{addr!r} is not an interface address"
                ) from None
        enabled = bool(subnets) or sec.has("interval_s")
        values = read_keys(sec, DiscoverySettings, {"enabled": enabled})
        try:
            return DiscoverySettings(**values)
        except ValueError as exc:
            raise ConfigError(sec.path, str(exc)) from None
