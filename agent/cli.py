"""Command line: `drawer-agent run|check-config|kick|publish|emulate|models|demo|fleet|discover`.

Exit codes: 0 success; 1 runtime failure (printer unreachable, broker unreachable, no ack);
2 usage or configuration error (the message names the key); 3 `publish` got an ack whose
status is not `opened`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.core import catalogue
from agent.core.commands import CommandSet, drawer_kick
from agent.core.errors import AgentError, BrokerError, ConfigError, LedgerError, PrinterUnreachable
from agent.core.events import EventType
from agent.core.settings import Settings

if TYPE_CHECKING:
    from agent.service.fleet import FleetOptions
from discovery import cli as discovery_cli

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_NOT_OPENED = 0, 1, 2, 3


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"drawer-agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (LedgerError, BrokerError, PrinterUnreachable, AgentError) as exc:
        print(f"drawer-agent: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The whole CLI."""
    parser = argparse.ArgumentParser(
        prog="drawer-agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"drawer-agent {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="log lines as text (default) or JSON",
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent")
    p.add_argument("--config", type=Path, help="TOML file (default: $DRAWER_AGENT_CONFIG)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file and print it redacted")
    p.add_argument("config", type=Path, nargs="?")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "pair", help="print a one-time code to log in to the console (valid 10 minutes)"
    )
    p.add_argument("--config", type=Path, help="TOML file (default: $DRAWER_AGENT_CONFIG)")
    p.set_defaults(func=cmd_pair)

    p = sub.add_parser("kick", help="send one test pulse to a printer")
    p.add_argument("printer_id", nargs="?", help="a printer of the config file")
    p.add_argument("--config", type=Path)
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=9100)
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--model",
        choices=catalogue.ids(),
        metavar="MODEL",
        help="catalogue id (see `drawer-agent models`)",
    )
    group.add_argument("--command-set", choices=[c.value for c in CommandSet])
    p.add_argument("--drawer", type=int, choices=(1, 2), default=None)
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(func=cmd_kick)

    p = sub.add_parser(
        "publish", help="publish one well-formed event (a POS stand-in) and print the ack"
    )
    p.add_argument("--type", required=True, choices=[t.value for t in EventType])
    p.add_argument("--terminal", required=True)
    p.add_argument("--config", type=Path)
    p.add_argument("--event-id")
    p.add_argument("--amount", type=float)
    p.add_argument("--payment-method", default="cash")
    p.add_argument("--kid", help="signing key id (default: the first configured)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("emulate", help="run a virtual receipt printer")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--command-set", choices=[c.value for c in CommandSet], default="escpos")
    p.add_argument(
        "--pty",
        action="store_true",
        help="serve on a pseudo-terminal instead of TCP; prints the tty path to configure",
    )
    p.set_defaults(func=cmd_emulate)

    p = sub.add_parser("models", help="list the printer catalogue")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="a whole shop on loopback: broker, printers, events")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "fleet", help="watch every shop over MQTT: Prometheus metrics and a live table"
    )
    p.add_argument(
        "--mqtt",
        action="append",
        required=True,
        metavar="URL",
        help="broker node, mqtt:// or mqtts:// (repeat for a cluster's nodes)",
    )
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path)
    p.add_argument("--ca-file", type=Path)
    p.add_argument("--protocol", choices=("5", "3.1.1"), default="5")
    p.add_argument("--client-id", default=None, help="default: drawer-fleet-<hostname>")
    p.add_argument("--allow-insecure", action="store_true")
    p.add_argument("--listen", default="127.0.0.1:9108", help="metrics HOST:PORT")
    p.add_argument("--shop", action="append", default=[], help="expected shop id (repeat)")
    p.add_argument("--shops-file", type=Path, help="expected shop ids, one a line")
    p.add_argument("--interval", type=float, default=2.0, help="table refresh, seconds")
    p.add_argument("--no-table", action="store_true", help="metrics only")
    p.set_defaults(func=cmd_fleet)

    p = sub.add_parser("discover", help="find receipt printers on the LAN and on this machine")
    discovery_cli.add_arguments(p)
    p.set_defaults(func=cmd_discover)
    return parser


def fleet_options(args: argparse.Namespace) -> FleetOptions:
    """The fleet view's options; bad ones are ConfigErrors naming the flag."""
    import socket

    from agent.core.settings import validate
    from agent.service.fleet import FleetOptions

    flags = {"mqtt.url": "--mqtt", "mqtt.client_id": "--client-id", "mqtt.ca_file": "--ca-file"}
    mqtt: dict[str, object] = {
        "url": list(args.mqtt),
        "protocol": args.protocol,
        "client_id": args.client_id or f"drawer-fleet-{socket.gethostname()}"[:128],
        "allow_insecure": args.allow_insecure,
    }
    if args.username:
        mqtt["username"] = args.username
    if args.password_file:
        mqtt["password_file"] = str(args.password_file)
    if args.ca_file:
        mqtt["ca_file"] = str(args.ca_file)
    try:
        settings = validate({"shop_id": "fleet", "mqtt": mqtt}, lambda p: Path(p).read_bytes())
    except ConfigError as exc:
        raise ConfigError(flags.get(exc.key, exc.key), exc.problem) from None
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError("--listen", f"{args.listen!r} is not HOST:PORT")
    shops = list(args.shop)
    if args.shops_file:
        try:
            text = args.shops_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("--shops-file", f"cannot read: {exc.strerror or exc}") from None
        shops += [line.strip() for line in text.splitlines() if line.strip()]
    for shop in shops:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", shop):
            raise ConfigError("--shop", f"{shop!r} is not a shop id")
    if args.interval <= 0:
        raise ConfigError("--interval", "must be > 0")
    return FleetOptions(
        mqtt=settings.mqtt,
        listen_host=host.strip("[]"),
        listen_port=int(port),
        shops=tuple(dict.fromkeys(shops)),
        table=not args.no_table,
        interval_s=args.interval,
    )


def cmd_fleet(args: argparse.Namespace) -> int:
    """The fleet view until SIGTERM/SIGINT."""
    from agent.io import logs
    from agent.service.fleet import run_fleet

    options = fleet_options(args)
    # The table owns stdout; logs go to stderr.
    logs.configure(args.log_format or "text", "WARNING" if options.table else "INFO")
    try:
        return asyncio.run(run_fleet(options))
    except OSError as exc:
        print(f"drawer-agent: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def load(path: Path | None) -> Settings:
    """Settings from a file (or $DRAWER_AGENT_CONFIG) plus the environment."""
    from agent.io.settings_io import load_settings

    if path is None and os.environ.get("DRAWER_AGENT_CONFIG"):
        path = Path(os.environ["DRAWER_AGENT_CONFIG"])
    if path is None:
        raise ConfigError("--config", "no config file given (or set DRAWER_AGENT_CONFIG)")
    return load_settings(path, os.environ)


def freeze_heap() -> None:
    """Leave what is alive once the agent is up out of every later garbage collection.

    Modules, the model catalogue, settings and the wired agent live as long as the process,
    yet each full collection walks all of them: 39-49 ms with the loop stopped in the running
    agent, enough to hold an event past 20 ms. Frozen (gc.freeze), 0.8 ms
    (bench/bench_gc.py, bench/results/gc.md).
    """
    gc.collect()
    gc.freeze()


def cmd_run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM."""
    from agent.io import logs
    from agent.service import app

    settings = load(args.config)
    logs.configure(args.log_format or settings.log_format, settings.log_level)
    try:
        return asyncio.run(app.run(settings, started=lambda _agent: freeze_heap()))
    except OSError as exc:
        print(f"drawer-agent: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate and print the effective settings, secrets redacted."""
    settings = load(args.config)
    shown = {**settings.redacted(), "mapping": _effective_mapping(settings)}
    print(json.dumps(shown, indent=2, default=str))
    return EXIT_OK


def _effective_mapping(settings: Settings) -> dict[str, object]:
    """The file's printers and tills with the overrides stored in the agent's SQLite file.

    The file is opened read-only and only when it exists; an unreadable file is reported on
    stderr and the file's layer is shown alone.
    """
    from agent.core.mapping import RuntimeMapping
    from agent.io.mapping_store import MappingStore

    try:
        store = MappingStore.read_only(settings.state.path)
    except LedgerError as exc:
        print(f"drawer-agent: mapping store not read: {exc}", file=sys.stderr)
        store = None
    if store is None:
        return RuntimeMapping.build(settings.printers, settings.terminals).to_json()
    with store:
        try:
            return store.load(settings.printers, settings.terminals).to_json()
        except LedgerError as exc:
            print(f"drawer-agent: mapping store not read: {exc}", file=sys.stderr)
            return RuntimeMapping.build(settings.printers, settings.terminals).to_json()


def cmd_pair(args: argparse.Namespace) -> int:
    """A console pairing code: its hash goes into the agent's SQLite file, the code to stdout."""
    import secrets

    from agent.core.console_model import PAIRING_DIGITS, PAIRING_TTL_S, code_hash, spelled_code
    from agent.io.mapping_store import MappingStore

    settings = load(args.config)
    code = "".join(secrets.choice("0123456789") for _ in range(PAIRING_DIGITS))
    now = time.time()
    with MappingStore.open(settings.state.path) as store:
        store.add_pairing(code_hash(code), now + PAIRING_TTL_S, now)
    print(f"Console pairing code: {spelled_code(code)} (works once, for 10 minutes)")
    print(f"Open http://{settings.http.listen}/ and type it on the login page.")
    return EXIT_OK


def cmd_kick(args: argparse.Namespace) -> int:
    """One test pulse; with a config, through the agent's admission path and audit trail."""
    if args.printer_id:
        return _kick_configured(args)
    from agent.io import printer_link

    if not args.host or not (args.model or args.command_set):
        raise ConfigError("kick", "give PRINTER_ID, or --host with --model or --command-set")
    model = catalogue.get(args.model) if args.model else None
    cs = model.command_set if model else CommandSet(args.command_set)
    host, port, drawer = args.host, args.port, args.drawer or 1
    on_ms = model.pulse_on_ms if model else 100
    off_ms = model.pulse_off_ms if model else 500
    payload = drawer_kick(cs, drawer, on_ms, off_ms)
    started = time.time()
    sent = asyncio.run(
        printer_link.send(
            host, port, payload, connect_timeout=args.timeout, write_timeout=args.timeout
        )
    )
    print(
        f"pulsed drawer {drawer} on {host}:{port} ({cs}): {payload.hex(' ')} "
        f"in {(sent.written_at - started) * 1000:.1f} ms"
    )
    return EXIT_OK


def _kick_configured(args: argparse.Namespace) -> int:
    from agent.core.admission import Refused
    from agent.core.kick import Outcome
    from agent.service.control import kick_once

    settings = load(args.config)
    printer = settings.printers.get(args.printer_id)
    if printer is None:
        raise ConfigError(f"printers.{args.printer_id}", "no such printer in the config")
    if printer.host is None and printer.device is None:
        raise ConfigError(
            f"printers.{args.printer_id}.host",
            "not set; the printer is found by discovery while the agent runs",
        )
    result = asyncio.run(
        kick_once(settings, args.printer_id, drawer=args.drawer, timeout=args.timeout)
    )
    if not isinstance(result, Outcome):
        why = result.reason if isinstance(result, Refused) else result.detail
        print(f"drawer-agent: not sent: {why}", file=sys.stderr)
        return EXIT_FAILURE
    where = printer.device or f"{printer.host}:{printer.port}"
    if result.status.value != "opened":
        print(f"drawer-agent: {result.status.value} on {where}: {result.detail}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"pulsed drawer {args.drawer or printer.drawer} on {where} ({printer.command_set}) "
        f"in {result.latency_ms or 0:.1f} ms"
    )
    return EXIT_OK


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish one event as the POS would, and print the ack."""
    from agent.core.topics import Topics
    from agent.io import signing
    from agent.io.mqtt_link import PosClient

    settings = (
        load(args.config)
        if (args.config or os.environ.get("DRAWER_AGENT_CONFIG"))
        else _local_settings()
    )
    event: dict[str, object] = {
        "event_id": args.event_id or f"cli-{uuid.uuid4()}",
        "type": args.type,
        "terminal_id": args.terminal,
        "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "payment_method": args.payment_method,
    }
    if args.amount is not None:
        event.update(amount=args.amount, currency="EUR")
    keys = settings.security.keys
    if keys:
        kid = args.kid or next(iter(keys))
        if kid not in keys:
            raise ConfigError(f"security.keys.{kid}", "no such key")
        payload = signing.sign_hs256(event, kid, keys[kid]).encode()
    elif settings.security.require_signed:
        raise ConfigError(
            "security.keys",
            "require_signed is true but only public keys are "
            "configured; the agent cannot sign (use the POS signing key)",
        )
    else:
        payload = json.dumps(event).encode()
    topics = Topics(settings.shop_id)

    async def go() -> dict[str, object] | None:
        async with PosClient(
            settings.mqtt, topics.acks, client_id=f"drawer-agent-publish-{uuid.uuid4().hex[:8]}"
        ) as pos:
            await pos.publish(topics.events, payload)
            try:
                return (await pos.wait_ack(str(event["event_id"]), timeout=args.timeout))[0]
            except TimeoutError:
                return None

    ack = asyncio.run(go())
    if ack is None:
        print(
            f"drawer-agent: no ack for {event['event_id']} within {args.timeout:g} s "
            "(is the agent running for this shop?)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(json.dumps(ack, indent=2))
    return EXIT_OK if ack.get("status") == "opened" else EXIT_NOT_OPENED


def _local_settings() -> Settings:
    from agent.core.settings import validate

    return validate(
        {"shop_id": os.environ.get("DRAWER_AGENT_SHOP_ID", "salon-42")},
        lambda p: Path(p).read_bytes(),
    )


def cmd_emulate(args: argparse.Namespace) -> int:
    """Run a virtual printer until Ctrl-C."""
    from agent.devtools import emulator
    from agent.io import logs

    logs.configure(args.log_format or "text", "INFO")
    if args.pty:
        asyncio.run(emulator.serve_pty_forever(CommandSet(args.command_set)))
        return EXIT_OK
    try:
        asyncio.run(emulator.serve_forever(args.host, args.port, CommandSet(args.command_set)))
    except OSError as exc:
        print(f"drawer-agent: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    """Print the catalogue."""
    from agent.io import escpos_profiles

    rows = [
        m.to_json() | {"profile": escpos_profiles.describe(m.escpos_profile)}
        for m in catalogue.MODELS
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(
        f"{'id':<22} {'vendor':<8} {'model':<26} {'command set':<13} {'drawers':>7}  "
        f"{'connections':<34} notes"
    )
    for m in catalogue.MODELS:
        flags = []
        if m.raster_only:
            flags.append("raster-only")
        if m.integrated_drawer:
            flags.append("integrated drawer")
        if m.realtime_pulse:
            flags.append("real-time pulse")
        print(
            f"{m.id:<22} {m.vendor:<8} {m.name:<26} {m.command_set!s:<13} {m.drawers:>7}  "
            f"{','.join(m.connections):<34} {', '.join(flags)}"
        )
    return EXIT_OK


def cmd_discover(args: argparse.Namespace) -> int:
    """`discover`: LAN sweep, local USB printers, serial/Bluetooth ports (asked with --identify)."""
    return discovery_cli.run(args, identify_device=identify_device)


async def identify_device(path: str) -> tuple[str | None, str | None, str | None] | None:
    """Ask a serial/Bluetooth port what is attached: (vendor, model, command set) or None.

    Only requests that print nothing and never pulse: `DLE EOT 1`, and `GS I` for maker and
    model once the port proved ESC/POS with a lone well-formed status byte (PROTOCOLS §2.1,
    §2.4), as the LAN probe does.
    """
    from agent.io import printer_link
    from agent.io.device_link import DeviceLink
    from discovery.core import probe_parse
    from discovery.core.identify import Clues, identify

    link = DeviceLink(path)

    async def gs_i(reader: asyncio.StreamReader) -> bytes:
        return await reader.readuntil(b"\x00")

    try:
        status = await link.exchange(
            probe_parse.DLE_EOT_PRINTER_STATUS, printer_link.read_up_to(8, 0.2), timeout=1.0
        )
    except PrinterUnreachable:
        return None
    if probe_parse.find_status(status) is None:
        return None
    texts: list[str | None] = []
    for query in (probe_parse.GS_I_MAKER, probe_parse.GS_I_MODEL):
        try:
            text, _ = probe_parse.extract_gs_i(await link.exchange(query, gs_i, timeout=1.0))
        except PrinterUnreachable:
            text = None  # an ESC/POS clone without GS I: still ESC/POS
        texts.append(text)
    found = identify(Clues(mfg=texts[0], mdl=texts[1]))
    return found.vendor, found.model, "escpos"


def cmd_demo(_args: argparse.Namespace) -> int:
    """Run the self-contained demo."""
    from agent.devtools import demo
    from agent.io import logs
    from agent.service import app

    logs.configure("text", "WARNING")
    return asyncio.run(demo.run_demo(app.run))
