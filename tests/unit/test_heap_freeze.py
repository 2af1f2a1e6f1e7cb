"""`drawer-agent run` freezes the heap once the agent is up (cli.freeze_heap)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: gc.freeze() is process-wide and would outlive this test.
PROBE = """
import asyncio, gc, json, sys
from agent import cli
from agent.service import app

seen = {}

async def run(settings, started=None):  # the wiring seam: no broker is needed to see this
    seen["before"] = gc.get_freeze_count()
    started(object())
    seen["after"] = gc.get_freeze_count()
    return 0

app.run = run
code = cli.main(["run", "--config", sys.argv[1]])
print(json.dumps({"code": code, **seen}))
"""


def test_run_freezes_what_is_alive_once_the_agent_is_up(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(
        'shop_id = "t"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n'
        f'[state]\npath = "{tmp_path / "state.db"}"\n'
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["code"] == 0
    # Negative control: nothing is frozen before the agent is up...
    assert seen["before"] == 0
    # ...and the modules, catalogue and wired agent are once it is.
    assert seen["after"] > 10_000
