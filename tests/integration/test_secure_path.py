"""Only the POS can open a drawer: TLS + password + ACL broker, signed events, end to end."""

import asyncio
import json
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.core.settings import validate
from agent.core.topics import Topics
from agent.devtools.emulator import VirtualPrinterServer
from agent.io import signing
from agent.io.mqtt_link import PosClient
from agent.service import app
from tests.conftest import Mosquitto, make_settings, mosquitto_binary, running_agent
from tests.deploy.deploy_helpers import make_certs
from tests.security.jws_helpers import b64json, b64url, es_token, hs_token, make_keys, private_pem
from tests.waiting import eventually

pytestmark = pytest.mark.broker
TOPICS = Topics("t")
HS_KID, HS_SECRET = "pos-2026", b"s" * 40


class SecureBroker(Mosquitto):
    """mosquitto with only a TLS listener, a password file and per-shop ACL pattern lines."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.certs = make_certs(workdir / "certs")
        passwd = workdir / "passwd"
        tool = str(Path(mosquitto_binary()).with_name("mosquitto_passwd"))
        tool = tool if Path(tool).exists() else "mosquitto_passwd"
        subprocess.run([tool, "-c", "-b", str(passwd), "t", "agent-pw"], check=True)
        subprocess.run([tool, "-b", str(passwd), "pos-backend", "pos-pw"], check=True)
        acl = workdir / "acl"
        acl.write_text(
            "pattern read shops/%u/cash/events\n"
            "pattern write shops/%u/cash/acks\n"
            "pattern write shops/%u/agent/status\n"
            "pattern write shops/%u/printers/+/status\n"
            "pattern write shops/%u/alerts\n"
            "user pos-backend\ntopic readwrite shops/#\n"
        )
        text = self.conf.read_text().replace("allow_anonymous true", "allow_anonymous false")
        text = text.replace(f"listener {self.port} 127.0.0.1\n", "")
        self.conf.write_text(
            text + f"password_file {passwd}\nacl_file {acl}\n"
            f"listener {self.port} 127.0.0.1\ncafile {self.certs.ca}\n"
            f"certfile {self.certs.server_cert}\nkeyfile {self.certs.server_key}\n"
            "tls_version tlsv1.2\n"
        )


@pytest.fixture
def secure_broker(tmp_path):
    broker = SecureBroker(tmp_path / "secure")
    broker.start()
    yield broker
    broker.stop()


def claims(age=0.0, **extra):
    return {
        "event_id": f"s-{uuid.uuid4().hex[:10]}",
        "type": "sale",
        "terminal_id": "T1",
        "occurred_at": datetime.fromtimestamp(time.time() - age, UTC).isoformat(),
        **extra,
    }


def pos_settings(broker, user="pos-backend", password="pos-pw", ca=None):
    return validate(
        {
            "shop_id": "t",
            "mqtt": {
                "url": f"mqtts://127.0.0.1:{broker.port}",
                "username": user,
                "password": password,
                "ca_file": str(ca or broker.certs.ca),
            },
        },
        lambda p: Path(p).read_bytes(),
    ).mqtt


async def test_signed_events_over_tls_only_the_pos_opens(secure_broker, tmp_path):
    keys = make_keys()
    (tmp_path / "agent-pw").write_text("agent-pw\n")
    (tmp_path / "ec.pem").write_bytes(keys.ec_public_pem)
    async with VirtualPrinterServer() as vp:
        settings = make_settings(
            tmp_path,
            secure_broker.port,
            {"front": {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}},
            {"T1": "front"},
            mqtt={
                "url": f"mqtts://127.0.0.1:{secure_broker.port}",
                "username": "t",
                "password_file": str(tmp_path / "agent-pw"),
                "ca_file": str(secure_broker.certs.ca),
            },
            security={
                "require_signed": True,
                "keys": {HS_KID: HS_SECRET.decode()},
                "public_keys": {"pos-ec-1": str(tmp_path / "ec.pem")},
            },
        )
        good_hs = claims()
        good_es = claims()
        stale = claims(age=120)
        with_exp = claims(exp=int(time.time()) - 60)
        tokens = {
            "hs": signing.sign_hs256(good_hs, HS_KID, HS_SECRET).encode(),
            "es": signing.sign_es256(good_es, "pos-ec-1", private_pem(keys.ec_key)).encode(),
            "forged": hs_token({"alg": "HS256", "kid": HS_KID}, claims(), b"x" * 40),
            "unknown_kid": hs_token({"alg": "HS256", "kid": "nope"}, claims(), HS_SECRET),
            "none": b64json({"alg": "none", "kid": HS_KID}) + b"." + b64json(claims()) + b".",
            "confused": hs_token({"alg": "HS256", "kid": "pos-ec-1"}, claims(), keys.ec_public_pem),
            "other_ec": es_token({"alg": "ES256", "kid": "pos-ec-1"}, claims(), keys.ec_other),
            "stale": signing.sign_hs256(stale, HS_KID, HS_SECRET).encode(),
            "exp": signing.sign_hs256(with_exp, HS_KID, HS_SECRET).encode(),
        }
        hs = tokens["hs"].split(b".")
        tokens["tampered"] = (
            hs[0]
            + b"."
            + b64url(json.dumps({**good_hs, "terminal_id": "T2"}).encode())
            + b"."
            + hs[2]
        )
        async with (
            PosClient(pos_settings(secure_broker), TOPICS.acks, client_id="pos") as pos,
            running_agent(settings) as agent,
        ):
            for name in (
                "hs",
                "es",
                "forged",
                "unknown_kid",
                "none",
                "confused",
                "other_ec",
                "tampered",
                "stale",
                "exp",
            ):
                await pos.publish(TOPICS.events, tokens[name])
            await pos.publish(TOPICS.events, json.dumps(claims()).encode())  # unsigned
            await pos.publish(TOPICS.events, tokens["hs"])  # a replay
            await pos.wait_for(lambda: sum(len(a) for a in pos.acks.values()) >= 12, timeout=15)
            assert agent.link.connected.is_set()
    acks = [a for group in pos.acks.values() for a in group]
    by_id = {eid: [a["status"] for a in group] for eid, group in pos.acks.items()}
    assert sorted(by_id[good_hs["event_id"]]) == ["duplicate", "opened"]  # replay: duplicate
    assert by_id[good_es["event_id"]] == ["opened"]
    assert by_id[stale["event_id"]] == ["expired"]
    rejected = sorted(a["detail"].split(" ")[1] for a in acks if a["status"] == "rejected")
    assert rejected == sorted(
        [
            "bad_signature",
            "unknown_kid",
            "bad_algorithm",
            "bad_algorithm",
            "bad_signature",
            "bad_signature",
            "expired",
            "unsigned",
        ]
    )
    # A refused token never echoes the event_id it claims: a forger cannot fake acks.
    assert all(a["event_id"] is None for a in acks if a["status"] == "rejected")
    assert len(vp.pulses) == 2


async def test_wrong_ca_or_password_never_connects_and_never_crashes(secure_broker, tmp_path):
    other = make_certs(tmp_path / "other-ca")
    bad = [
        {"username": "t", "password": "wrong", "ca_file": str(secure_broker.certs.ca)},
        {"username": "t", "password": "agent-pw", "ca_file": str(other.ca)},
    ]
    for i, mqtt in enumerate(bad):
        settings = make_settings(
            tmp_path / f"run{i}",
            secure_broker.port,
            {"front": {"host": "127.0.0.1", "port": 9, "command_set": "escpos"}},
            {"T1": "front"},
            mqtt={"url": f"mqtts://127.0.0.1:{secure_broker.port}", **mqtt},
        )
        started = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            app.run(settings, install_signals=False, started=started.set_result)
        )
        agent = await asyncio.wait_for(started, 10)
        await eventually(
            lambda: agent.link.connects or task.done() or agent.link._quiet._seen,
            10,
            "the first connect to fail",
        )
        assert not agent.link.connected.is_set()
        assert not agent.ready()[0]
        assert not task.done()  # still running, retrying with backoff
        agent.stopping.set()
        assert await asyncio.wait_for(task, 10) == 0


async def test_acl_keeps_a_shop_out_of_another_shops_events(secure_broker, tmp_path):
    async with VirtualPrinterServer() as vp:
        (tmp_path / "pw").write_text("agent-pw")
        settings = make_settings(
            tmp_path,
            secure_broker.port,
            {"front": {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}},
            {"T1": "front"},
            mqtt={
                "url": f"mqtts://127.0.0.1:{secure_broker.port}",
                "username": "t",
                "password_file": str(tmp_path / "pw"),
                "ca_file": str(secure_broker.certs.ca),
            },
        )
        async with (
            running_agent(settings),
            PosClient(
                pos_settings(secure_broker, user="t", password="agent-pw"),
                TOPICS.acks,
                client_id="impostor",
            ) as impostor,
            PosClient(pos_settings(secure_broker), TOPICS.acks, client_id="pos") as pos,
        ):
            # The shop's own credentials cannot inject events (write on events is not granted).
            forged = claims()
            await impostor.publish(TOPICS.events, json.dumps(forged).encode())
            real = claims()
            await pos.publish(TOPICS.events, json.dumps(real).encode())
            assert (await pos.wait_ack(real["event_id"]))[0]["status"] == "opened"
        assert forged["event_id"] not in pos.acks
        assert len(vp.pulses) == 1
