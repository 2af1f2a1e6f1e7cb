"""The one typed, frozen settings object, validated from a raw mapping (pure).

Reading the TOML file and the environment is settings_io's job; this module only checks
values and names the offending key on the first problem it finds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import TypeVar
from urllib.parse import urlsplit

from agent.core import catalogue
from agent.core.commands import CommandSet, check_pulse
from agent.core.errors import ConfigError
from agent.core.events import EventType
from discovery.core.model import DiscoveryConfig

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
T = TypeVar("T")


class EnvValue(str):
    """A value that came from an environment variable, still text; coerced by type."""

    __slots__ = ("var",)
    var: str

    def __new__(cls, text: str, var: str) -> EnvValue:
        obj = super().__new__(cls, text)
        obj.var = var
        return obj


@dataclass(frozen=True)
class MqttSettings:
    """Broker connection."""

    url: str
    host: str
    port: int
    tls: bool
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_s: int = 30
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    allow_insecure: bool = False
    protocol: int = 5
    session_expiry_s: int = 7 * 24 * 3600


@dataclass(frozen=True)
class SecuritySettings:
    """Who may open a drawer, how fresh an event must be, how often a drawer may open."""

    require_signed: bool = False
    max_age_s: float = 30.0
    max_clock_skew_s: float = 5.0
    max_pulses_per_minute: int = 20
    keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    public_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class MatchSettings:
    """Identity a printer is followed by when its address changes."""

    mac: str | None = None
    serial: str | None = None
    mdns_name: str | None = None


@dataclass(frozen=True)
class PrinterSettings:
    """One receipt printer with a drawer on its kick connector."""

    id: str
    host: str | None
    port: int
    command_set: CommandSet
    model: str | None
    drawer: int
    pulse_on_ms: int
    pulse_off_ms: int
    drawer_open_level: str = "low"
    realtime_pulse: bool = False
    match: MatchSettings | None = None
    confirm: bool = True


@dataclass(frozen=True)
class PolicySettings:
    """Which events open a drawer."""

    open_on: frozenset[EventType]
    sale_payment_methods: frozenset[str] | None = None


@dataclass(frozen=True)
class HttpSettings:
    """The local HTTP API."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StateSettings:
    """The SQLite ledger."""

    path: str = "drawer-agent.db"
    retention_days: int = 90


@dataclass(frozen=True)
class DispatchSettings:
    """Printer connections."""

    connect_timeout_s: float = 1.0
    write_timeout_s: float = 1.0
    queue_size: int = 1000
    grace_s: float = 3.0


@dataclass(frozen=True)
class DiscoverySettings:
    """Periodic printer discovery inside the agent."""

    enabled: bool = False
    subnets: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    snmp_community: str = field(default="public", repr=False)
    mdns: bool = True
    probe: bool = True
    identify: bool = False
    interval_s: float = 300.0
    snmp: bool = True
    snmp_version: str = "2c"
    timeout_s: float = 1.0
    concurrency: int = 256

    def to_config(self) -> DiscoveryConfig:
        """The discovery package's own config (it validates itself)."""
        return DiscoveryConfig(
            subnets=self.subnets,
            interfaces=self.interfaces,
            mdns=self.mdns,
            snmp=self.snmp and bool(self.subnets),
            probe=self.probe and bool(self.subnets),
            identify=self.identify,
            snmp_community=self.snmp_community,
            snmp_version=self.snmp_version,
            timeout_s=self.timeout_s,
            concurrency=self.concurrency,
            interval_s=self.interval_s,
        )


@dataclass(frozen=True)
class HealthSettings:
    """Printer health probes."""

    interval_s: float = 30.0
    drawer_open_alert_s: float = 120.0
    confirm_drawer: bool = True


@dataclass(frozen=True)
class Settings:
    """Everything the agent needs, validated once at start."""

    shop_id: str
    mqtt: MqttSettings
    security: SecuritySettings
    printers: Mapping[str, PrinterSettings]
    terminals: Mapping[str, str]
    policy: PolicySettings
    http: HttpSettings
    state: StateSettings
    dispatch: DispatchSettings
    discovery: DiscoverySettings
    health: HealthSettings
    log_format: str = "text"
    log_level: str = "INFO"

    def redacted(self) -> dict[str, object]:
        """Effective settings with every secret replaced, for logs and /api/config."""
        return {
            "shop_id": self.shop_id,
            "mqtt": {
                "url": self.mqtt.url,
                "client_id": self.mqtt.client_id,
                "username": self.mqtt.username,
                "password": "***" if self.mqtt.password else None,
                "keepalive_s": self.mqtt.keepalive_s,
                "ca_file": self.mqtt.ca_file,
                "cert_file": self.mqtt.cert_file,
                "key_file": self.mqtt.key_file,
                "allow_insecure": self.mqtt.allow_insecure,
                "protocol": self.mqtt.protocol,
            },
            "security": {
                "require_signed": self.security.require_signed,
                "max_age_s": self.security.max_age_s,
                "max_clock_skew_s": self.security.max_clock_skew_s,
                "max_pulses_per_minute": self.security.max_pulses_per_minute,
                "keys": sorted(self.security.keys),
                "public_keys": sorted(self.security.public_keys),
            },
            "printers": {
                pid: {
                    "host": p.host,
                    "port": p.port,
                    "model": p.model,
                    "command_set": str(p.command_set),
                    "drawer": p.drawer,
                    "pulse_on_ms": p.pulse_on_ms,
                    "pulse_off_ms": p.pulse_off_ms,
                    "drawer_open_level": p.drawer_open_level,
                    "confirm": p.confirm,
                    "match": None
                    if p.match is None
                    else {k: v for k, v in vars(p.match).items() if v is not None},
                }
                for pid, p in self.printers.items()
            },
            "terminals": dict(self.terminals),
            "policy": {
                "open_on": sorted(t.value for t in self.policy.open_on),
                "sale_payment_methods": None
                if self.policy.sale_payment_methods is None
                else sorted(self.policy.sale_payment_methods),
            },
            "http": {
                "listen": f"{self.http.host}:{self.http.port}",
                "token": "***" if self.http.token else None,
            },
            "state": vars(self.state).copy(),
            "dispatch": vars(self.dispatch).copy(),
            "discovery": {**vars(self.discovery), "snmp_community": "***"},
            "health": vars(self.health).copy(),
            "log_format": self.log_format,
            "log_level": self.log_level,
        }


class _Section:
    """Typed reads from one table; whatever was not read is an unknown key."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path or "<root>", "must be a table")
        self.raw: Mapping[str, object] = raw
        self.path = path
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        value = self.raw.get(name)
        where = f"{self.path}.{name}" if self.path else name
        if isinstance(value, EnvValue):
            return f"{where} (from {value.var})"
        return where

    def get(self, name: str) -> object:
        self.seen.add(name)
        return self.raw.get(name)

    def has(self, name: str) -> bool:
        return name in self.raw

    def text(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
    ) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "is required")
            return default
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"must be a string, not {_tname(value)}")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(self.key(name), f"{value!r} must match {pattern.pattern}")
        if choices and value not in choices:
            raise ConfigError(self.key(name), f"{value!r} must be one of {', '.join(choices)}")
        return str(value)

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(self.key(name), f"{value!r} is not an integer") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer, not {_tname(value)}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(name), f"{value} is outside {lo}..{hi}")
        return value

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(self.key(name), f"{value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number, not {_tname(value)}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(name), f"{value} is outside {lo:g}..{hi:g}")
        return float(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            lowered = value.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ConfigError(self.key(name), f"{value!r} is not true or false")
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, not {_tname(value)}")
        return value

    def texts(self, name: str, default: tuple[str, ...] | None) -> tuple[str, ...] | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, EnvValue):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key(name), "must be a list of strings")
        return tuple(value)

    def table(self, name: str) -> _Section:
        self.seen.add(name)
        where = f"{self.path}.{name}" if self.path else name
        return _Section(self.raw.get(name, {}), where)

    def done(self) -> None:
        for name in self.raw:
            if name not in self.seen:
                raise ConfigError(self.key(name), "unknown key")


def validate(raw: Mapping[str, object], read_file: Callable[[str], bytes]) -> Settings:
    """Validate a raw config mapping; `read_file` reads secret and key files."""
    root = _Section(raw, "")
    shop_id = root.text("shop_id", required=True, pattern=_ID)
    assert shop_id is not None
    log_format = root.text("log_format", "text", choices=("text", "json")) or "text"
    log_level = (
        root.text("log_level", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")) or "INFO"
    )
    mqtt = _mqtt(root.table("mqtt"), shop_id, read_file)
    security = _security(root.table("security"), read_file)
    printers = _printers(root.table("printers"))
    terminals = _terminals(root.table("terminals"), printers)
    policy = _policy(root.table("policy"))
    http = _http(root.table("http"), read_file)
    state = _state(root.table("state"))
    dispatch = _dispatch(root.table("dispatch"))
    discovery = _discovery(root.table("discovery"))
    health = _health(root.table("health"))
    root.done()
    return Settings(
        shop_id=shop_id,
        mqtt=mqtt,
        security=security,
        printers=MappingProxyType(printers),
        terminals=MappingProxyType(terminals),
        policy=policy,
        http=http,
        state=state,
        dispatch=dispatch,
        discovery=discovery,
        health=health,
        log_format=log_format,
        log_level=log_level,
    )


def _mqtt(sec: _Section, shop_id: str, read_file: Callable[[str], bytes]) -> MqttSettings:
    with _closing(sec):
        url = sec.text("url", "mqtt://127.0.0.1:1883") or ""
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
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(sec.key("url"), f"{url!r} has an invalid port") from None
        client_id = sec.text("client_id", f"drawer-agent-{shop_id}") or ""
        if not 1 <= len(client_id) <= 128:
            raise ConfigError(sec.key("client_id"), "must be 1..128 characters")
        username = sec.text("username")
        password = _secret(sec, "password", read_file)
        allow_insecure = sec.flag("allow_insecure", False)
        if not tls and not allow_insecure and not _is_loopback(parts.hostname):
            raise ConfigError(
                sec.key("url"),
                f"plaintext MQTT to {parts.hostname} would send events and credentials in "
                "the clear; use mqtts:// or set mqtt.allow_insecure = true",
            )
        return MqttSettings(
            url=url,
            host=parts.hostname,
            port=port,
            tls=tls,
            client_id=client_id,
            username=username,
            password=password,
            keepalive_s=sec.integer("keepalive_s", 30, 5, 3600),
            ca_file=_existing_path(sec, "ca_file"),
            cert_file=_existing_path(sec, "cert_file"),
            key_file=_existing_path(sec, "key_file"),
            allow_insecure=allow_insecure,
            protocol=_protocol(sec),
            session_expiry_s=sec.integer("session_expiry_s", 7 * 24 * 3600, 86400, 2**32 - 1),
        )


def _protocol(sec: _Section) -> int:
    value = sec.text("protocol", "5", choices=("5", "3.1.1"))
    return 5 if value == "5" else 4


def _security(sec: _Section, read_file: Callable[[str], bytes]) -> SecuritySettings:
    with _closing(sec):
        keys: dict[str, bytes] = {}
        keys_sec = sec.table("keys")
        for kid in list(keys_sec.raw):
            keys[kid] = _key_material(keys_sec, kid, read_file)
        keys_sec.seen.update(keys_sec.raw)
        public: dict[str, bytes] = {}
        pub_sec = sec.table("public_keys")
        for kid in list(pub_sec.raw):
            path = pub_sec.text(kid, required=True)
            assert path is not None
            public[kid] = _read(pub_sec, kid, path, read_file)
        for kid, secret in keys.items():
            if len(secret) < 32:
                raise ConfigError(
                    keys_sec.key(kid), f"secret is {len(secret)} bytes; at least 32 are required"
                )
            if kid in public:
                raise ConfigError(pub_sec.key(kid), "kid is also in security.keys")
        require_signed = sec.flag("require_signed", False)
        if require_signed and not keys and not public:
            raise ConfigError(
                sec.key("require_signed"),
                "is true but no security.keys or security.public_keys are set",
            )
        return SecuritySettings(
            require_signed=require_signed,
            max_age_s=sec.number("max_age_s", 30.0, 1.0, 3600.0),
            max_clock_skew_s=sec.number("max_clock_skew_s", 5.0, 0.0, 300.0),
            max_pulses_per_minute=sec.integer("max_pulses_per_minute", 20, 0, 10_000),
            keys=MappingProxyType(keys),
            public_keys=MappingProxyType(public),
        )


def _key_material(sec: _Section, kid: str, read_file: Callable[[str], bytes]) -> bytes:
    value = sec.raw[kid]
    if isinstance(value, str):
        return value.encode()
    inner = _Section(value, f"{sec.path}.{kid}")
    path = inner.text("file", required=True)
    inner.done()
    assert path is not None
    return _read(inner, "file", path, read_file).strip()


def _printers(sec: _Section) -> dict[str, PrinterSettings]:
    printers: dict[str, PrinterSettings] = {}
    for pid in list(sec.raw):
        if not _ID.match(pid):
            raise ConfigError(sec.key(pid), "printer ids are 1..64 of A-Z a-z 0-9 _ -")
        printers[pid] = _printer(sec.table(pid), pid)
    return printers


def _printer(sec: _Section, pid: str) -> PrinterSettings:
    with _closing(sec):
        host = sec.text("host")
        if host is not None and not host:
            raise ConfigError(sec.key("host"), "must not be empty")
        port = sec.integer("port", 9100, 1, 65535)
        model_id = sec.text("model")
        model = None
        if model_id is not None:
            model = catalogue.get(model_id)
            if model is None:
                raise ConfigError(
                    sec.key("model"), f"{model_id!r} is not in the catalogue (drawer-agent models)"
                )
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
        drawer = sec.integer("drawer", 1, 1, 2)
        if model is not None and drawer > model.drawers:
            raise ConfigError(sec.key("drawer"), f"{model.name} has only drawer 1")
        on_ms = sec.integer("pulse_on_ms", model.pulse_on_ms if model else 100, 0, 10_000)
        off_ms = sec.integer("pulse_off_ms", model.pulse_off_ms if model else 500, 0, 10_000)
        problem = check_pulse(command_set, on_ms, off_ms)
        if problem:
            raise ConfigError(f"printers.{pid}.pulse_on_ms", problem)
        level = sec.text("drawer_open_level", "low", choices=("low", "high")) or "low"
        match = None
        if sec.has("match"):
            m = sec.table("match")
            with _closing(m):
                match = MatchSettings(
                    mac=m.text("mac"), serial=m.text("serial"), mdns_name=m.text("mdns_name")
                )
            if match == MatchSettings():
                raise ConfigError(m.path, "needs mac, serial or mdns_name")
        if host is None and match is None:
            raise ConfigError(f"printers.{pid}", "needs host or match")
        realtime = sec.flag("realtime_pulse", model.realtime_pulse if model else False)
        confirm = sec.flag("confirm", True)
        return PrinterSettings(
            id=pid,
            host=host,
            port=port,
            command_set=command_set,
            model=model.id if model else None,
            drawer=drawer,
            pulse_on_ms=on_ms,
            pulse_off_ms=off_ms,
            drawer_open_level=level,
            realtime_pulse=realtime and command_set is CommandSet.ESCPOS,
            match=match,
            confirm=confirm,
        )


def _terminals(sec: _Section, printers: Mapping[str, PrinterSettings]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tid in list(sec.raw):
        pid = sec.text(tid, required=True)
        assert pid is not None
        if pid not in printers:
            raise ConfigError(sec.key(tid), f"printer {pid!r} is not in [printers]")
        out[tid] = pid
    return out


def _policy(sec: _Section) -> PolicySettings:
    with _closing(sec):
        names = sec.texts("open_on", tuple(t.value for t in EventType)) or ()
        for name in names:
            if name not in EventType.__members__.values():
                allowed = ", ".join(t.value for t in EventType)
                raise ConfigError(sec.key("open_on"), f"{name!r} is not one of {allowed}")
        methods = sec.texts("sale_payment_methods", None)
        return PolicySettings(
            open_on=frozenset(EventType(n) for n in names),
            sale_payment_methods=None if methods is None else frozenset(methods),
        )


def _http(sec: _Section, read_file: Callable[[str], bytes]) -> HttpSettings:
    with _closing(sec):
        listen = sec.text("listen", "127.0.0.1:8080") or ""
        host, sep, port_text = listen.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
            raise ConfigError(sec.key("listen"), f"{listen!r} must be host:port")
        token = _secret(sec, "token", read_file)
        if token is not None and len(token) < 16:
            raise ConfigError(sec.key("token"), "must be at least 16 characters")
        return HttpSettings(host=host, port=int(port_text), token=token)


def _state(sec: _Section) -> StateSettings:
    with _closing(sec):
        path = sec.text("path", "drawer-agent.db") or ""
        if not path:
            raise ConfigError(sec.key("path"), "must not be empty")
        return StateSettings(path=path, retention_days=sec.integer("retention_days", 90, 1, 3650))


def _dispatch(sec: _Section) -> DispatchSettings:
    with _closing(sec):
        return DispatchSettings(
            connect_timeout_s=sec.number("connect_timeout_s", 1.0, 0.05, 30.0),
            write_timeout_s=sec.number("write_timeout_s", 1.0, 0.05, 30.0),
            queue_size=sec.integer("queue_size", 1000, 1, 1_000_000),
            grace_s=sec.number("grace_s", 3.0, 0.0, 4.5),
        )


def _discovery(sec: _Section) -> DiscoverySettings:
    with _closing(sec):
        subnets = sec.texts("subnets", ()) or ()
        for cidr in subnets:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(sec.key("subnets"), f"{cidr!r} is not a CIDR") from None
        interfaces = sec.texts("interfaces", ()) or ()
        for addr in interfaces:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise ConfigError(
                    sec.key("interfaces"), f"{addr!r} is not an interface address"
                ) from None
        settings = DiscoverySettings(
            enabled=sec.flag("enabled", bool(subnets) or sec.has("interval_s")),
            subnets=subnets,
            interfaces=interfaces,
            snmp_community=sec.text("snmp_community", "public") or "public",
            mdns=sec.flag("mdns", True),
            probe=sec.flag("probe", True),
            identify=sec.flag("identify", False),
            # 0 turns periodic sweeps off (mDNS keeps watching).
            interval_s=sec.number("interval_s", 300.0, 0.0, 86400.0),
            snmp=sec.flag("snmp", True),
            snmp_version=sec.text("snmp_version", "2c", choices=("1", "2c")) or "2c",
            timeout_s=sec.number("timeout_s", 1.0, 0.05, 30.0),
            concurrency=sec.integer("concurrency", 256, 1, 1024),
        )
        try:
            settings.to_config()
        except ValueError as exc:
            raise ConfigError(sec.path, str(exc)) from None
        return settings


def _health(sec: _Section) -> HealthSettings:
    with _closing(sec):
        return HealthSettings(
            interval_s=sec.number("interval_s", 30.0, 0.2, 3600.0),
            drawer_open_alert_s=sec.number("drawer_open_alert_s", 120.0, 1.0, 86400.0),
            confirm_drawer=sec.flag("confirm_drawer", True),
        )


@contextmanager
def _closing(sec: _Section) -> Iterator[None]:
    yield
    sec.done()


def _secret(sec: _Section, name: str, read_file: Callable[[str], bytes]) -> str | None:
    inline = sec.text(name)
    path = sec.text(f"{name}_file")
    if inline is not None and path is not None:
        raise ConfigError(sec.key(f"{name}_file"), f"set {name} or {name}_file, not both")
    if path is None:
        return inline
    data = _read(sec, f"{name}_file", path, read_file)
    try:
        return data.decode().strip()
    except UnicodeDecodeError:
        raise ConfigError(sec.key(f"{name}_file"), f"{path} is not UTF-8 text") from None


def _existing_path(sec: _Section, name: str) -> str | None:
    path = sec.text(name)
    if path is not None and not PurePath(path).name:
        raise ConfigError(sec.key(name), f"{path!r} is not a file path")
    return path


def _read(sec: _Section, name: str, path: str, read_file: Callable[[str], bytes]) -> bytes:
    try:
        return read_file(path)
    except OSError as exc:
        raise ConfigError(sec.key(name), f"cannot read {path}: {exc.strerror or exc}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tname(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
