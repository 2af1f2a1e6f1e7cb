"""`drawer-agent demo`: a whole shop on loopback with no config and no installed broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.core.commands import CommandSet
from agent.core.settings import Settings, validate
from agent.core.topics import Topics
from agent.devtools.embedded_broker import EmbeddedBroker
from agent.devtools.emulator import VirtualPrinterServer
from agent.io.mqtt_link import PosClient

SHOP = "demo-salon"


def demo_settings(broker_port: int, front_port: int, back_port: int, db: Path) -> Settings:
    """Embedded defaults: two printers, three tills."""
    return validate(
        {
            "shop_id": SHOP,
            "mqtt": {"url": f"mqtt://127.0.0.1:{broker_port}", "protocol": "3.1.1"},
            "printers": {
                "front": {"host": "127.0.0.1", "port": front_port, "model": "epson-tm-t20iii"},
                "back": {"host": "127.0.0.1", "port": back_port, "model": "star-tsp650ii"},
            },
            "terminals": {"T1": "front", "T2": "front", "T3": "back"},
            "http": {"listen": "127.0.0.1:0"},
            "state": {"path": str(db)},
        },
        lambda p: Path(p).read_bytes(),
    )


def event(
    type_: str,
    terminal: str,
    *,
    age_s: float = 0.0,
    event_id: str | None = None,
) -> dict[str, object]:
    """A well-formed cash event."""
    occurred = datetime.fromtimestamp(time.time() - age_s, UTC)
    return {
        "event_id": event_id or f"demo-{uuid.uuid4().hex[:12]}",
        "type": type_,
        "terminal_id": terminal,
        "occurred_at": occurred.isoformat(timespec="milliseconds"),
        "amount": 42.5,
        "currency": "EUR",
        "payment_method": "cash",
    }


RunAgent = Callable[..., Coroutine[Any, Any, int]]


async def run_demo(run_agent: RunAgent) -> int:
    """Run the demo with `run_agent` (the wiring's `run`, given by the CLI); 0 when all is as
    expected."""
    logging.getLogger("agent").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="drawer-agent-demo-") as tmp:
        async with (
            EmbeddedBroker() as broker,
            VirtualPrinterServer(command_set=CommandSet.ESCPOS, name="front") as front,
            VirtualPrinterServer(command_set=CommandSet.STAR_LINE, name="back") as back,
        ):
            settings = demo_settings(broker.port, front.port, back.port, Path(tmp) / "ledger.db")
            started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            agent_task = asyncio.create_task(
                run_agent(settings, install_signals=False, started=started.set_result)
            )
            agent = await asyncio.wait_for(started, 10)
            await asyncio.wait_for(agent.link.connected.wait(), 10)
            ok = await _exercise(settings, front, back)
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
    return 0 if ok else 1


async def _exercise(
    settings: Settings, front: VirtualPrinterServer, back: VirtualPrinterServer
) -> bool:
    topics = Topics(settings.shop_id)
    plan: list[tuple[str, dict[str, object] | bytes, str]] = []
    for type_, till in (
        ("sale", "T1"),
        ("refund", "T2"),
        ("session_open", "T3"),
        ("session_close", "T1"),
        ("cash_deposit", "T2"),
        ("cash_withdrawal", "T3"),
    ):
        plan.append((type_, event(type_, till), "opened"))
    sale = plan[0][1]
    assert isinstance(sale, dict)
    plan.append(("sale (same event_id again)", dict(sale), "duplicate"))
    plan.append(("sale, 10 minutes old", event("sale", "T1", age_s=600), "expired"))
    plan.append(("sale on unknown till T9", event("sale", "T9"), "unmapped"))
    plan.append(("not JSON", b"\xff{oops", "rejected"))
    client_id = f"demo-pos-{uuid.uuid4().hex[:6]}"
    async with PosClient(settings.mqtt, topics.acks, client_id=client_id) as pos:
        rows = []
        for label, body, expected in plan:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            event_id = body.get("event_id") if isinstance(body, dict) else None
            if label.startswith("sale (same"):
                await pos.wait_ack(str(event_id), timeout=10)
            sent = time.perf_counter()
            await pos.publish(topics.events, payload)
            count = 2 if label.startswith("sale (same") else 1
            try:
                acks = await pos.wait_ack(
                    event_id if isinstance(event_id, str) else None, timeout=10, count=count
                )
                ack = acks[-1]
            except TimeoutError:
                ack = {
                    "status": "no ack",
                    "printer_id": None,
                    "attempts": 0,
                    "latency_ms": None,
                    "detail": "",
                }
            rows.append((label, expected, ack, (time.perf_counter() - sent) * 1000))
    print(
        f"\n{'event':<30} {'expected':<10} {'ack':<10} {'printer':<8} {'tries':>5} "
        f"{'agent ms':>9} {'ack ms':>7} {'drawer':>7}  detail"
    )
    ok = True
    for label, expected, ack, rtt in rows:
        good = ack["status"] == expected
        ok &= good
        latency = "" if ack.get("latency_ms") is None else f"{ack['latency_ms']:.2f}"
        state = ack.get("drawer_open")
        drawer = "" if state is None else ("open" if state else "closed")
        print(
            f"{label:<30} {expected:<10} {ack['status']:<10} {ack.get('printer_id') or '-':<8} "
            f"{ack.get('attempts', 0):>5} {latency:>9} {rtt:>7.0f} {drawer:>7}  "
            f"{'' if good else 'UNEXPECTED '}{ack.get('detail', '')[:60]}"
        )
    print(f"\nfront (ESC/POS) pulses: {len(front.pulses)}   back (Star) pulses: {len(back.pulses)}")
    print("agent ms: receipt to kick bytes written; ack ms: publish to ack, including the drawer")
    print("sensor read ~0.4 s after the pulse (health.confirm_drawer)")
    pulses_ok = len(front.pulses) == 4 and len(back.pulses) == 2
    ok &= pulses_ok
    print("demo OK: every outcome as expected" if ok else "demo FAILED: see the rows above")
    return ok
