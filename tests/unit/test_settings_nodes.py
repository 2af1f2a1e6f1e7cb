"""mqtt.url as a list of broker nodes (cluster members, or a primary and a standby)."""

import pytest

from agent.core.errors import ConfigError
from agent.core.settings import EnvValue, MqttNode, validate
from agent.io.settings_io import apply_env

BASE = {
    "shop_id": "salon-42",
    "printers": {"front": {"host": "127.0.0.1", "model": "epson-tm-t20iii"}},
    "terminals": {"T1": "front"},
}


def mqtt(url, **more):
    return validate({**BASE, "mqtt": {"url": url, **more}}, lambda p: b"").mqtt


def test_a_list_keeps_its_order_and_the_first_node_is_the_default():
    s = mqtt(["mqtts://a.example:8883", "mqtts://b.example", "mqtts://c.example:9883"])
    assert s.endpoints() == (
        MqttNode("mqtts://a.example:8883", "a.example", 8883),
        MqttNode("mqtts://b.example", "b.example", 8883),
        MqttNode("mqtts://c.example:9883", "c.example", 9883),
    )
    assert (s.host, s.port, s.tls) == ("a.example", 8883, True)


def test_a_single_url_and_a_one_element_list_are_the_same_settings():
    assert mqtt("mqtt://127.0.0.1:1884") == mqtt(["mqtt://127.0.0.1:1884"])
    assert mqtt("mqtt://127.0.0.1:1884").endpoints() == (
        MqttNode("mqtt://127.0.0.1:1884", "127.0.0.1", 1884),
    )


def test_env_override_is_comma_separated():
    raw = {**BASE, "mqtt": {"url": "mqtt://127.0.0.1"}}
    apply_env(raw, {"DRAWER_AGENT_MQTT__URL": "mqtt://127.0.0.1:1, mqtt://127.0.0.2:2"})
    s = validate(raw, lambda p: b"")
    assert [(n.host, n.port) for n in s.mqtt.endpoints()] == [("127.0.0.1", 1), ("127.0.0.2", 2)]
    one = validate({**BASE, "mqtt": {"url": EnvValue("mqtt://127.0.0.3", "V")}}, lambda p: b"")
    assert one.mqtt.endpoints()[0].host == "127.0.0.3"


def test_redacted_shows_every_node_as_the_environment_spells_them():
    s = validate(
        {**BASE, "mqtt": {"url": ["mqtt://127.0.0.1:1", "mqtt://127.0.0.1:2"]}}, str.encode
    )
    assert s.redacted()["mqtt"]["url"] == "mqtt://127.0.0.1:1,mqtt://127.0.0.1:2"
    # ... which reads back as the same settings.
    again = validate({**BASE, "mqtt": {"url": s.redacted()["mqtt"]["url"]}}, str.encode)
    assert again.mqtt == s.mqtt


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ([], "at least one broker"),
        ([1], "list of strings"),
        (["mqtt://127.0.0.1", "http://127.0.0.1"], "scheme must be"),
        (["mqtts://a.example", "mqtt://127.0.0.1"], "mixes mqtt:// and mqtts://"),
        (["mqtt://127.0.0.1:1", "mqtt://127.0.0.1:1"], "same broker twice"),
        (["mqtt://127.0.0.1", "mqtt://broker.example"], "plaintext MQTT to broker.example"),
        (["mqtt://127.0.0.1", "mqtt://u:p@127.0.0.1:2"], "must not carry credentials"),
        (["mqtt://127.0.0.1", "mqtt://127.0.0.1:99999"], "invalid port"),
        (7, "must be a string"),
    ],
)
def test_bad_node_lists_name_the_key(url, problem):
    with pytest.raises(ConfigError) as err:
        mqtt(url)
    assert err.value.key == "mqtt.url"
    assert problem in str(err.value)
