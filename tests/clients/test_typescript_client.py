"""The TypeScript client end to end: `npm ci && npm test` in clients/typescript against the real
agent (signatures required), a real mosquitto and real virtual printers started here.

The Node tests (clients/typescript/test/client.test.mjs, Node's built-in runner) read the
printers' pulses and the agent's counters, and restart the broker, through a small control
endpoint on loopback served by this test. Same scenarios as test_python_client.py.
"""

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import make_settings, running_agent
from tests.waiting import eventually

pytestmark = pytest.mark.broker
PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"
SECRET = "k" * 40


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        pytest.fail("npm is not installed: run .ci/run, or apt-get install -y nodejs npm")
    return found


async def run(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=PACKAGE,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def control_app(agent, mosquitto, printers) -> web.Application:
    by_name = dict(zip(("front", "back"), printers, strict=True))

    async def state(request: web.Request) -> web.Response:
        # ?opened=N waits until the agent has counted N openings: an ack for a retry can
        # overtake the count of the first copy's outcome.
        if "opened" in request.query:
            want = int(request.query["opened"])
            await eventually(
                lambda: agent.reporter.statuses.get("opened", 0) >= want, what="the opening"
            )
        return web.json_response(
            {
                "pulses": {name: len(p.pulses) for name, p in by_name.items()},
                "opened": agent.reporter.statuses.get("opened", 0),
                "terminals": agent.mapping.current.terminal_map(),
            }
        )

    async def restart_broker(request: web.Request) -> web.Response:
        printer = by_name[request.query["printer"]]
        await printer.wait_for_pulses(int(request.query["pulses"]), timeout=30)
        mosquitto.kill()
        mosquitto.start()  # at once: neither connection has run since the kill
        return web.json_response({"restarted": True})

    app = web.Application()
    app.router.add_get("/state", state)
    app.router.add_post("/restart-broker", restart_broker)
    return app


async def test_typescript_client_scenarios(mosquitto, tmp_path, printers):
    front, back = printers
    settings = make_settings(
        tmp_path,
        mosquitto.port,
        {
            "front": {"host": "127.0.0.1", "port": front.port, "model": "epson-tm-t20iii"},
            "back": {"host": "127.0.0.1", "port": back.port, "model": "star-tsp650ii"},
        },
        {"T1": "front", "T3": "back"},
        security={"require_signed": True, "keys": {"pos-1": SECRET}},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("npm_")}
    code, out = await run(npm(), "ci", "--no-audit", "--no-fund", env=env)
    assert code == 0, out
    async with running_agent(settings) as agent:
        runner = web.AppRunner(control_app(agent, mosquitto, printers))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            env.update(
                DA_MQTT_URL=mosquitto.url,
                DA_SHOP="t",
                DA_KEY_ID="pos-1",
                DA_SECRET=SECRET,
                DA_CONTROL=f"http://127.0.0.1:{port}",
            )
            code, out = await run(npm(), "test", env=env)
        finally:
            await runner.cleanup()
    assert code == 0, out
    # Node's runner closes with its counts: every scenario ran, none failed.
    assert re.search(r"^# pass 6$", out, re.M), out
    assert re.search(r"^# fail 0$", out, re.M), out
