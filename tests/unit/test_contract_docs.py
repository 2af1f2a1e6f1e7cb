"""The published contract (AsyncAPI, README) says what the code does."""

from pathlib import Path

import yaml

from agent.acks import AckStatus
from agent.events import EventType
from agent.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())


def test_asyncapi_enums_match_the_code():
    schemas = SPEC["components"]["schemas"]
    assert set(schemas["Ack"]["properties"]["status"]["enum"]) == {s.value for s in AckStatus}
    assert set(schemas["CashEvent"]["properties"]["type"]["enum"]) == {t.value for t in EventType}


def test_asyncapi_addresses_match_the_topics():
    t = Topics("{shop_id}")
    addresses = {c["address"] for c in SPEC["channels"].values()}
    assert addresses == {
        t.events,
        t.acks,
        t.agent_status,
        t.alerts,
        t.printer_status("{printer_id}"),
    }


def test_readme_lists_every_ack_status_and_event_type():
    readme = (ROOT / "README.md").read_text()
    for status in AckStatus:
        assert f"| `{status.value}` |" in readme
    for event_type in EventType:
        assert f"`{event_type.value}`" in readme
