"""The published contract (AsyncAPI, README) says what the code does."""

from pathlib import Path

import yaml

from agent.core.acks import AckStatus
from agent.core.events import EventType
from agent.core.topics import Topics

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
        t.request("{name}"),
        t.response("{name}"),
        t.config,
        t.inventory,
    }


def test_asyncapi_requests_and_error_codes_match_the_code():
    from agent.core.requests import ErrorCode, RequestName

    names = SPEC["channels"]["agentRequest"]["parameters"]["name"]["enum"]
    assert names == [n.value for n in RequestName]
    error = SPEC["components"]["schemas"]["Response"]["properties"]["error"]
    assert error["properties"]["code"]["enum"] == [c.value for c in ErrorCode]


def test_readme_lists_every_request():
    from agent.core.requests import RequestName

    readme = (ROOT / "README.md").read_text()
    for name in RequestName:
        assert f"| `{name.value}` |" in readme


def test_readme_lists_every_ack_status_and_event_type():
    readme = (ROOT / "README.md").read_text()
    for status in AckStatus:
        assert f"| `{status.value}` |" in readme
    for event_type in EventType:
        assert f"`{event_type.value}`" in readme


def _schema_keys(schema: object) -> set[str]:
    """Every property name anywhere in a JSON Schema."""
    if isinstance(schema, list):
        return set().union(*(_schema_keys(s) for s in schema))
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    return names.union(*(_schema_keys(v) for v in schema.values()))


def test_every_config_key_in_the_readme_is_one_the_validator_reads():
    import re

    from agent.core.settings import settings_json_schema

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for cell in re.findall(r"^\| (.+?) \|", section, flags=re.M):
        for name in re.findall(r"`([a-z_]+(?:\.<[a-z]+>)?(?:\.[a-z_*]+)*)`", cell):
            keys.add(name.rsplit(".", 1)[-1])
    keys = {k for k in keys if k != "*" and not k.startswith("<")}
    assert len(keys) > 30
    # The schema is derived from the same field table the validator reads.
    known = _schema_keys(settings_json_schema())
    missing = sorted(keys - known)
    assert not missing, f"README documents keys the validator never reads: {missing}"
