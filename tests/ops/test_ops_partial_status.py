"""A clone that answers DLE EOT 1 but not DLE EOT 2-4 is online with paper unknown."""

import json
import time

from agent.core.commands import CommandSet
from agent.devtools.emulator import VirtualPrinterServer
from agent.service.prober import PROBE_TIMEOUT_S, query_status
from tests.conftest import make_settings, running_agent
from tests.ops.test_ops_agent import _retained, until


async def test_query_status_of_a_dle_eot_1_only_clone():
    async with VirtualPrinterServer() as clone, VirtualPrinterServer() as full:
        clone.printer.answers_dle_eot = frozenset({1})
        started = time.monotonic()
        partial = await query_status(CommandSet.ESCPOS, "127.0.0.1", clone.port, timeout=1.0)
        waited = time.monotonic() - started
        complete = await query_status(CommandSet.ESCPOS, "127.0.0.1", full.port, timeout=1.0)
    assert (partial.online, partial.paper, partial.cover_open, partial.error) == (
        True,
        None,
        None,
        None,
    )
    assert partial.drawer_pin_high is True  # closed ESC/POS drawer: pin 3 HIGH
    # Positive control: the same printer answering all four gives a full status.
    assert (complete.online, complete.paper, complete.cover_open) == (True, "ok", False)
    assert waited < PROBE_TIMEOUT_S  # it did not wait for the whole probe timeout


async def test_agent_reports_the_clone_online_and_a_mute_printer_unreachable(tmp_path, mosquitto):
    async with VirtualPrinterServer() as clone, VirtualPrinterServer() as mute:
        clone.printer.answers_dle_eot = frozenset({1})
        mute.printer.answers_dle_eot = frozenset()  # negative control: no reply at all
        printers = {
            pid: {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}
            for pid, vp in (("clone", clone), ("mute", mute))
        }
        settings = make_settings(
            tmp_path, mosquitto.port, printers, {"T1": "clone"}, health={"interval_s": 0.5}
        )
        async with running_agent(settings) as agent:

            async def both_probed():
                h = agent.prober.health
                return all(h[p].checked_at is not None for p in ("clone", "mute"))

            await until(both_probed, what="both printers probed")
            clone_health, mute_health = agent.prober.health["clone"], agent.prober.health["mute"]
            assert (clone_health.reachable, clone_health.online, clone_health.paper) == (
                True,
                True,
                None,
            )
            assert (clone_health.drawer_open, clone_health.last_error) == (False, None)
            assert (mute_health.reachable, mute_health.online) == (False, False)
            status = json.loads(await _retained(settings, "clone"))
            assert (status["online"], status["paper"], status["last_error"]) == (True, None, None)
