"""A clone that answers DLE EOT 1 but not DLE EOT 2-4 is online with paper unknown."""

import json
import time

from agent.core.commands import CommandSet
from agent.devtools.emulator import VirtualPrinterServer
from agent.service.prober import PROBE_TIMEOUT_S, query_status
from tests.conftest import make_settings, running_agent
from tests.ops.test_ops_agent import _retained
from tests.waiting import eventually


def _probes(asked):
    """Split the DLE EOT n sequence the printer saw into one list per probe."""
    probes = []
    for n in asked:
        if n == 1:
            probes.append([])
        probes[-1].append(n)
    return probes


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

            await eventually(both_probed, what="both printers probed")
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
            # Once known, the clone is asked DLE EOT 1 alone (no wait under the printer lock),
            # while a full printer would keep getting all four (see the unit test below).
            await eventually(lambda: len(clone.printer.dle_eot_asked) >= 6, what="probes")
            first, *later = _probes(clone.printer.dle_eot_asked)
            assert first == [1, 2, 3, 4]
            assert later and all(p == [1] for p in later)


async def test_the_full_status_is_asked_again_now_and_then(tmp_path, mosquitto, monkeypatch):
    from agent.service import prober

    monkeypatch.setattr(prober, "FULL_STATUS_EVERY", 3)
    async with VirtualPrinterServer() as clone, VirtualPrinterServer() as full:
        clone.printer.answers_dle_eot = frozenset({1})
        printers = {
            pid: {"host": "127.0.0.1", "port": vp.port, "command_set": "escpos"}
            for pid, vp in (("clone", clone), ("full", full))
        }
        settings = make_settings(
            tmp_path, mosquitto.port, printers, {"T1": "clone"}, health={"interval_s": 0.2}
        )
        async with running_agent(settings):
            await eventually(lambda: len(_probes(clone.printer.dle_eot_asked)) >= 5, what="5")
            await eventually(lambda: len(_probes(full.printer.dle_eot_asked)) >= 4, what="4")
    clone_probes = [len(p) for p in _probes(clone.printer.dle_eot_asked)][:5]
    assert clone_probes == [4, 1, 1, 4, 1]  # full again every FULL_STATUS_EVERY probes
    # Negative control: a printer that answers all four is always asked all four.
    # (The last probe may have been cut short when the agent stopped: leave it out.)
    assert all(p == [1, 2, 3, 4] for p in _probes(full.printer.dle_eot_asked)[:-1])
