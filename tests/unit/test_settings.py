"""Settings validation: a bad or unknown key stops the agent and names the key."""

from pathlib import Path

import pytest

from agent.core.commands import CommandSet
from agent.core.errors import ConfigError
from agent.core.events import EventType
from agent.core.settings import settings_json_schema, user_tables, validate
from agent.io.settings_io import load_settings

BASE = {
    "shop_id": "salon-42",
    "printers": {"front": {"host": "127.0.0.1", "model": "epson-tm-t20iii"}},
    "terminals": {"T1": "front", "T2": "front"},
}


def check(raw, files=None):
    files = files or {}

    def read(path):
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory")
        return files[path]

    return validate(raw, read)


def with_(**changes):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for dotted, value in changes.items():
        node = raw
        *path, last = dotted.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def test_minimal_config_gets_defaults():
    s = check(BASE)
    assert s.shop_id == "salon-42"
    assert s.mqtt.client_id == "drawer-agent-salon-42"
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls) == ("127.0.0.1", 1883, False)
    assert s.security.max_age_s == 30.0
    assert s.security.max_pulses_per_minute == 20
    assert s.policy.open_on == frozenset(EventType)
    front = s.printers["front"]
    assert (front.command_set, front.drawer, front.port) == (CommandSet.ESCPOS, 1, 9100)
    assert front.realtime_pulse is True
    assert s.terminals == {"T1": "front", "T2": "front"}
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert s.state.retention_days == 90


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({**BASE, "shop_id": None}, "shop_id", "is required"),
        ({**BASE, "shop_id": "a/b"}, "shop_id", "must match"),
        ({**BASE, "shopid": "x"}, "shopid", "unknown key"),
        (with_(mqtt__urll="mqtt://x"), "mqtt.urll", "unknown key"),
        (with_(mqtt__url="http://127.0.0.1"), "mqtt.url", "scheme must be"),
        (with_(mqtt__url="mqtt://u:p@127.0.0.1"), "mqtt.url", "must not carry credentials"),
        (with_(mqtt__url="mqtt://broker.example"), "mqtt.url", "plaintext MQTT"),
        (with_(mqtt__keepalive_s="30"), "mqtt.keepalive_s", "must be an integer"),
        (with_(mqtt__keepalive_s=1), "mqtt.keepalive_s", "outside 5..3600"),
        (with_(mqtt__password="a", mqtt__password_file="p"), "mqtt.password_file", "not both"),
        (with_(mqtt__password_file="missing"), "mqtt.password_file", "cannot read missing"),
        (with_(security__max_age_s=0), "security.max_age_s", "outside"),
        (with_(security__require_signed=True), "security.require_signed", "no security.keys"),
        (with_(security__require_signed="yes"), "security.require_signed", "true or false"),
        (with_(security__keys={"k1": "short"}), "security.keys.k1", "at least 32"),
        (with_(security__keys={"k1": {"file": "nope"}}), "security.keys.k1.file", "cannot read"),
        (with_(security__keys={"k1": {"path": "x"}}), "security.keys.k1.file", "is required"),
        (
            with_(printers={"front": {"host": "h", "modle": "x", "model": "epson-tm-t20iii"}}),
            "printers.front.modle",
            "unknown key",
        ),
        (
            with_(printers={"front": {"host": "h", "model": "epson-tm-t99"}}),
            "printers.front.model",
            "not in the catalogue",
        ),
        (with_(printers={"front": {"host": "h"}}), "printers.front", "needs model or command_set"),
        (
            with_(printers={"front": {"model": "epson-tm-t20iii"}}),
            "printers.front",
            "needs host, device or match",
        ),
        # Device printers (issue 9 item 5): exactly one of host and device.
        (
            with_(
                printers={
                    "front": {"host": "h", "device": "/dev/usb/lp0", "model": "epson-tm-t20iii"}
                }
            ),
            "printers.front",
            "has both device and host",
        ),
        (
            with_(
                printers={
                    "front": {
                        "device": "/dev/ttyUSB0",
                        "match": {"mac": "x"},
                        "command_set": "escpos",
                    }
                }
            ),
            "printers.front",
            "has both device and match",
        ),
        (
            with_(printers={"front": {"device": "ttyUSB0", "command_set": "escpos"}}),
            "printers.front.device",
            "absolute path",
        ),
        (
            with_(printers={"front": {"device": "/home/x/tty", "command_set": "escpos"}}),
            "printers.front.device",
            "not under /dev",
        ),
        (
            with_(
                printers={
                    "front": {"device": "/dev/usb/lp0", "baudrate": 9600, "command_set": "escpos"}
                }
            ),
            "printers.front.baudrate",
            "usblp device",
        ),
        (
            with_(
                printers={
                    "front": {
                        "device": "/dev/receipt-printer-X1",
                        "flow_control": "rtscts",
                        "command_set": "escpos",
                    }
                }
            ),
            "printers.front.flow_control",
            "usblp device",
        ),
        (
            with_(
                printers={
                    "front": {
                        "device": "/dev/ttyUSB0",
                        "flow_control": "dtr",
                        "command_set": "escpos",
                    }
                }
            ),
            "printers.front.flow_control",
            "must be one of",
        ),
        (
            with_(
                printers={
                    "front": {"device": "/dev/ttyUSB0", "baudrate": 10, "command_set": "escpos"}
                }
            ),
            "printers.front.baudrate",
            "outside",
        ),
        (
            with_(
                printers={
                    "front": {"device": "/dev/ttyUSB0", "port": 9100, "command_set": "escpos"}
                }
            ),
            "printers.front.port",
            "a device printer has none",
        ),
        (
            with_(printers={"front": {"host": "h", "baudrate": 9600, "command_set": "escpos"}}),
            "printers.front.baudrate",
            "is for a device printer",
        ),
        (
            with_(printers={"front": {"host": "h", "command_set": "zpl"}}),
            "printers.front.command_set",
            "must be one of",
        ),
        (
            with_(
                printers={
                    "front": {"host": "h", "model": "star-tsp100iii", "command_set": "escpos"}
                }
            ),
            "printers.front.command_set",
            "speaks star-graphic",
        ),
        (
            with_(printers={"front": {"host": "h", "model": "star-mpop", "drawer": 2}}),
            "printers.front.drawer",
            "has only drawer 1",
        ),
        (
            with_(printers={"front": {"host": "h", "command_set": "escpos", "drawer": 3}}),
            "printers.front.drawer",
            "outside 1..2",
        ),
        (
            with_(printers={"front": {"host": "h", "command_set": "escpos", "pulse_on_ms": 600}}),
            "printers.front.pulse_on_ms",
            "outside 2..510",
        ),
        (
            with_(printers={"front": {"host": "h", "command_set": "escpos", "match": {}}}),
            "printers.front.match",
            "needs mac, serial or mdns_name",
        ),
        (
            with_(printers={"fr/nt": {"host": "h", "command_set": "escpos"}}),
            "printers.fr/nt",
            "printer ids",
        ),
        (with_(terminals={"T1": "back"}), "terminals.T1", "'back' is not in [printers]"),
        (with_(policy__open_on=["sale", "theft"]), "policy.open_on", "'theft' is not one of"),
        (with_(http__listen="8080"), "http.listen", "must be host:port"),
        (with_(http__token="short"), "http.token", "at least 16"),
        (with_(discovery__subnets=["192.0.2.0/33"]), "discovery.subnets", "is not a CIDR"),
        (with_(dispatch__grace_s=10), "dispatch.grace_s", "outside"),
        ({**BASE, "mqtt": "mqtt://x"}, "mqtt", "must be a table"),
    ],
)
def test_bad_config_names_the_key(raw, key, problem):
    with pytest.raises(ConfigError) as info:
        check(raw)
    assert info.value.key == key
    assert problem in info.value.problem


@pytest.mark.parametrize(
    ("printer", "expected"),
    [
        ({"device": "/dev/usb/lp0"}, ("/dev/usb/lp0", None, 9600, "none", False)),
        (
            {
                "device": "/dev/rfcomm0",
                "baudrate": 115200,
                "flow_control": "rtscts",
                "keep_open": True,
            },
            ("/dev/rfcomm0", None, 115200, "rtscts", True),
        ),
        (
            {"device": "/dev/serial/by-id/usb-x-if00"},
            ("/dev/serial/by-id/usb-x-if00", None, 9600, "none", False),
        ),
    ],
)
def test_device_printers(printer, expected):
    s = check(with_(printers={"front": {**printer, "model": "star-mpop"}}))
    p = s.printers["front"]
    assert (p.device, p.host, p.baudrate, p.flow_control, p.keep_open) == expected
    assert p.precheck is True


def test_star_line_model_may_run_in_escpos_emulation():
    s = check(
        with_(printers={"front": {"host": "h", "model": "star-tsp650ii", "command_set": "escpos"}})
    )
    assert s.printers["front"].command_set is CommandSet.ESCPOS


def test_secret_files_are_read_and_stripped():
    files = {"pw": b"s3cret\n", "k": b"k" * 40 + b"\n"}
    s = check(
        with_(
            mqtt__password_file="pw",
            security__keys={"pos": {"file": "k"}},
            security__require_signed=True,
        ),
        files,
    )
    assert s.mqtt.password == "s3cret"
    assert s.security.keys["pos"] == b"k" * 40
    assert "s3cret" not in repr(s)
    redacted = s.redacted()
    assert redacted["mqtt"]["password"] == "***"
    assert redacted["security"]["keys"] == ["pos"]


def test_insecure_is_allowed_only_explicitly_and_tls_is_fine():
    assert (
        check(with_(mqtt__url="mqtt://broker.lan", mqtt__allow_insecure=True)).mqtt.host
        == "broker.lan"
    )
    s = check(with_(mqtt__url="mqtts://broker.example"))
    assert (s.mqtt.tls, s.mqtt.port) == (True, 8883)


def test_env_overrides_toml(tmp_path: Path):
    path = tmp_path / "a.toml"
    path.write_text(
        'shop_id = "s1"\n[printers.front]\nhost = "127.0.0.1"\ncommand_set = "escpos"\n'
        '[terminals]\nT1 = "front"\n'
    )
    s = load_settings(
        path,
        {
            "DRAWER_AGENT_MQTT__KEEPALIVE_S": "45",
            "DRAWER_AGENT_PRINTERS__FRONT__PORT": "9101",
            "DRAWER_AGENT_TERMINALS__T2": "front",
            "DRAWER_AGENT_POLICY__OPEN_ON": "sale,refund",
            "DRAWER_AGENT_SECURITY__REQUIRE_SIGNED": "false",
            "DRAWER_AGENT_CONFIG": "ignored",
            "OTHER": "ignored",
        },
    )
    assert s.mqtt.keepalive_s == 45
    assert s.printers["front"].port == 9101
    assert s.terminals == {"T1": "front", "T2": "front"}
    assert s.policy.open_on == {EventType.SALE, EventType.REFUND}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DRAWER_AGENT_MQTT__KEEPALIVE": "45"},
            "mqtt.keepalive (from DRAWER_AGENT_MQTT__KEEPALIVE): unknown key",
        ),
        ({"DRAWER_AGENT_MQTT__KEEPALIVE_S": "soon"}, "'soon' is not an integer"),
        ({"DRAWER_AGENT_SECURITY__REQUIRE_SIGNED": "maybe"}, "'maybe' is not true or false"),
        ({"DRAWER_AGENT_MQTT____URL": "x"}, "empty name segment"),
    ],
)
def test_env_mistakes_name_the_variable(env, message, tmp_path: Path):
    path = tmp_path / "a.toml"
    path.write_text('shop_id = "s1"\n')
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(path, env)


def test_bad_toml_and_missing_file(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("shop_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "none.toml")


def test_secret_file_paths_are_relative_to_the_config(tmp_path: Path):
    (tmp_path / "pw.txt").write_text("hunter2hunter2\n")
    path = tmp_path / "a.toml"
    path.write_text('shop_id = "s1"\n[mqtt]\npassword_file = "pw.txt"\n')
    assert load_settings(path).mqtt.password == "hunter2hunter2"


def test_discovery_keys_reach_the_discovery_config():
    s = check(
        with_(
            discovery__subnets=["127.0.3.0/24"],
            discovery__snmp_version="1",
            discovery__timeout_s=0.5,
            discovery__concurrency=64,
            discovery__interval_s=0,
            discovery__snmp=False,
        )
    )
    config = s.discovery.to_config()
    assert s.discovery.enabled
    assert (config.snmp_version, config.timeout_s, config.concurrency, config.interval_s) == (
        "1",
        0.5,
        64,
        0.0,
    )
    assert config.snmp is False
    assert config.probe is True
    with pytest.raises(ConfigError) as info:
        check(with_(discovery__subnets=["127.0.0.0/8"]))  # more than a sweep may touch
    assert info.value.key == "discovery"


# --- one field table: redaction, schema and bounds are derived from it -------------------------

RICH = with_(
    mqtt__password="hunter2-hunter2",
    http__token="0123456789abcdef",
    security__keys={"pos": "k" * 40},
    security__public_keys={"pos2": "pub.pem"},
    discovery__snmp_community="private-community",
)


def _walk(node, trail=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*trail, key), value
            yield from _walk(value, (*trail, key))


def test_redaction_shows_every_key_and_no_secret():
    import json

    s = check(RICH, {"pub.pem": b"pem"})
    redacted = s.redacted()
    text = json.dumps(redacted)
    for secret in ("hunter2-hunter2", "0123456789abcdef", "k" * 40, "private-community"):
        assert secret not in text
    # Keys the old hand-kept list forgot are there now.
    assert redacted["mqtt"]["session_expiry_s"] == 7 * 24 * 3600
    assert redacted["printers"]["front"]["realtime_pulse"] is True
    assert redacted["discovery"]["snmp_community"] == "***"
    schema = settings_json_schema()
    sections = {k for k, v in schema["properties"].items() if "properties" in v}
    for section in sections:
        props = schema["properties"][section]["properties"]
        # `<secret>_file` is the other spelling of `<secret>`, not a separate value.
        declared = {k for k in props if k.removesuffix("_file") == k or k[:-5] not in props}
        assert set(redacted[section]) == declared, section


def test_every_secret_field_is_redacted():
    from dataclasses import fields, is_dataclass

    s = check(RICH, {"pub.pem": b"pem"})
    redacted = s.redacted()
    checked = []
    for section in fields(s):
        value = getattr(s, section.name)
        if not is_dataclass(value):
            continue
        for f in fields(value):
            if f.metadata.get("secret"):
                shown = redacted[section.name][f.name]
                assert shown in ("***", ["pos"], ["pos2"]), (section.name, f.name, shown)
                checked.append(f"{section.name}.{f.name}")
    assert len(checked) >= 5, checked  # password, token, keys, public_keys, snmp_community


def test_schema_defaults_are_the_validated_defaults():
    s = check(BASE)
    redacted = s.redacted()
    schema = settings_json_schema()
    compared = 0
    for section, spec in schema["properties"].items():
        for key, prop in spec.get("properties", {}).items():
            if "default" in prop and section in redacted and key in redacted[section]:
                if prop.get("writeOnly"):
                    continue
                assert redacted[section][key] == prop["default"], (section, key)
                compared += 1
    assert compared > 25
    assert schema["required"] == ["shop_id"]
    assert "required" not in schema["properties"]["mqtt"]  # client_id derives from shop_id
    assert schema["properties"]["mqtt"]["properties"]["keepalive_s"]["minimum"] == 5
    assert schema["properties"]["mqtt"]["properties"]["password"]["writeOnly"] is True
    printer = schema["properties"]["printers"]["additionalProperties"]
    assert printer["additionalProperties"] is False
    assert "id" not in printer["properties"]  # the table key, not a setting


def test_discovery_bounds_are_the_discovery_packages_bounds():
    from dataclasses import fields

    from discovery import DiscoveryConfig

    hi = {f.name: f.metadata for f in fields(DiscoveryConfig)}["concurrency"]["hi"]
    with pytest.raises(ConfigError, match=f"outside 1..{hi}"):
        check(with_(discovery__concurrency=hi + 1))
    with pytest.raises(ValueError, match="concurrency"):
        DiscoveryConfig(concurrency=hi + 1)
    assert check(with_(discovery__concurrency=hi)).discovery.to_config().concurrency == hi
    assert DiscoveryConfig(concurrency=hi).concurrency == hi


def test_user_tables_come_from_the_mapping_fields():
    assert user_tables() == {
        ("printers",),
        ("terminals",),
        ("security", "keys"),
        ("security", "public_keys"),
    }
