"""The committed contract schema is the one the agent's models generate, in every copy."""

import dataclasses
import json
from pathlib import Path

import pytest

from agent.core import contract
from agent.core.acks import Ack, AckStatus
from agent.core.events import EventType
from agent.core.requests import ErrorCode, RequestName

ROOT = Path(__file__).resolve().parents[2]
# Each client ships its own copy (a pip or npm package cannot reach ../schema).
COPIES = [
    ROOT / "clients" / "schema" / "contract.json",
    ROOT / "clients" / "python" / "drawer_agent_client" / "contract.json",
    ROOT / "clients" / "typescript" / "src" / "contract.json",
]


@pytest.mark.parametrize("path", COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_schema_is_the_generated_one(path):
    assert path.read_text() == contract.contract_json(), (
        f"{path} is stale: python -m agent.core.contract > it (see clients/README.md)"
    )


def test_schema_carries_the_code_enums_and_fields():
    defs = contract.contract_schema()["$defs"]
    assert defs["Ack"]["properties"]["status"]["enum"] == [s.value for s in AckStatus]
    assert defs["CashEvent"]["properties"]["type"]["enum"] == [t.value for t in EventType]
    assert set(defs["Ack"]["properties"]) == {f.name for f in dataclasses.fields(Ack)}
    codes = defs["Response"]["properties"]["error"]["properties"]["code"]["enum"]
    assert codes == [c.value for c in ErrorCode]
    assert contract.contract_schema()["requests"] == [n.value for n in RequestName]
    # Every key an ack really carries is declared.
    ack = json.loads(Ack("e", AckStatus.OPENED, drawer_open=True).to_json())
    assert set(ack) <= set(defs["Ack"]["properties"])
    assert set(defs["Ack"]["required"]) <= set(ack)


def test_a_new_ack_field_without_a_json_type_fails_the_generator(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Wider(Ack):
        pulse_ms: int = 0

    monkeypatch.setattr(contract.acks, "Ack", Wider)
    with pytest.raises(AssertionError, match="pulse_ms"):
        contract.contract_schema()


def test_a_stale_copy_is_detected(tmp_path):
    stale = json.loads(contract.contract_json())
    stale["$defs"]["Ack"]["properties"]["status"]["enum"].remove("duplicate")
    assert json.dumps(stale, indent=2) + "\n" != contract.contract_json()
