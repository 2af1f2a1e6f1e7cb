"""`drawer-agent discover` / `python -m discovery`: one sweep, a table and config snippets.

The sweep and the interface list (zeroconf, pysnmp, ifaddr) are imported when `run` runs:
the agent's CLI builds this parser for every command, `--help` included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

from discovery.core import subnets
from discovery.core.local import LocalPrinter, identified, render_blocks
from discovery.core.model import DiscoveryConfig, PrinterRecord

TABLE_COLUMNS = ("host", "vendor", "model", "command set", "MAC", "serial", "sources")
JSON_KEYS = ("host", "port", "vendor", "model", "command_set", "mac", "serial", "name", "sources")
_BAR_WIDTH = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `discover` options to a parser (shared with the agent's CLI)."""
    parser.add_argument(
        "--subnet",
        action="append",
        default=[],
        metavar="CIDR",
        help="sweep this subnet with SNMP and TCP 9100 (repeatable); without it only mDNS runs",
    )
    parser.add_argument(
        "--interface",
        action="append",
        default=[],
        metavar="ADDR",
        help="IPv4 address of an interface for mDNS (repeatable; default: all)",
    )
    parser.add_argument("--timeout", type=float, default=1.0, metavar="S", help="per-host timeout")
    parser.add_argument("--community", default="public", metavar="C", help="SNMP v2c community")
    parser.add_argument(
        "--identify",
        action="store_true",
        help="ask open 9100 ports for maker/model (GS I, DLE EOT only; never prints)",
    )
    parser.add_argument("--no-mdns", action="store_true", help="skip mDNS")
    parser.add_argument("--no-snmp", action="store_true", help="skip SNMP")
    parser.add_argument("--no-probe", action="store_true", help="skip the TCP 9100 probe")
    parser.add_argument(
        "--no-local",
        action="store_true",
        help="skip this machine's USB printers and serial/Bluetooth ports",
    )
    parser.add_argument("--json", action="store_true", help="print only a JSON array on stdout")
    parser.add_argument("--sys-root", default="/sys", help=argparse.SUPPRESS)
    parser.add_argument("--dev-root", default="/dev", help=argparse.SUPPRESS)
    parser.add_argument("--snmp-port", type=int, default=161, help=argparse.SUPPRESS)
    parser.add_argument("--probe-port", type=int, default=9100, help=argparse.SUPPRESS)
    parser.add_argument("--mdns-seconds", type=float, default=3.0, help=argparse.SUPPRESS)


# Asks a serial/Bluetooth port what is attached: (vendor, model, command set) or None.
IdentifyDevice = Callable[[str], Awaitable[tuple[str | None, str | None, str | None] | None]]


def local_printers(
    args: argparse.Namespace, identify_device: IdentifyDevice | None = None
) -> list[LocalPrinter]:
    """This machine's USB printers and, as candidates, its serial and Bluetooth ports.

    Ports are written to only with `--identify` (status requests that print nothing).
    """
    from discovery.io import local

    if args.no_local:
        return []
    found = local.usb_printers(args.sys_root) + local.serial_ports(args.dev_root)
    if not (args.identify and identify_device):
        return found

    async def ask_all() -> list[LocalPrinter]:
        out = []
        for p in found:
            answer = None if p.kind == "usb" else await identify_device(p.at)
            out.append(identified(p, *answer) if answer else p)
        return out

    return asyncio.run(ask_all())


def run(args: argparse.Namespace, identify_device: IdentifyDevice | None = None) -> int:
    """Run one discovery and print the result; 2 on a configuration error."""
    from discovery.service import sweep

    try:
        config = DiscoveryConfig(
            subnets=tuple(args.subnet),
            interfaces=tuple(args.interface),
            mdns=not args.no_mdns,
            snmp=not args.no_snmp,
            probe=not args.no_probe,
            identify=args.identify,
            snmp_community=args.community,
            snmp_port=args.snmp_port,
            probe_port=args.probe_port,
            timeout_s=args.timeout,
        )
    except ValueError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 2
    err = sys.stderr
    if not config.subnets:
        _suggest(err)
    bar = _ProgressBar(err) if not args.json and err.isatty() else None
    records = asyncio.run(
        sweep(config, mdns_seconds=args.mdns_seconds, progress=bar.update if bar else None)
    )
    if bar is not None:
        bar.finish()
    local = local_printers(args, identify_device)
    if args.json:
        rows = [{k: r.to_json()[k] for k in JSON_KEYS} for r in records]
        print(json.dumps(rows + [p.to_json() for p in local], indent=2))
        return 0
    print(render_table(records))
    if local:
        print("\n" + render_local_table(local))
    used: set[str] = set()
    snippets = "\n\n".join(
        s for s in (render_snippets(records, used), render_blocks(local, used)) if s
    )
    if snippets:
        print("\n# Paste into the agent's config and adjust the drawer number:\n")
        print(snippets)
    return 0


LOCAL_COLUMNS = ("device", "kind", "vendor", "model", "command set", "serial", "now at")


def render_local_table(printers: Sequence[LocalPrinter]) -> str:
    """A plain-text table of this machine's printers and ports."""
    rows = [
        (
            p.path,
            p.kind,
            p.vendor or "?",
            p.model or "?",
            p.command_set or "?",
            p.serial or "-",
            p.node,
        )
        for p in printers
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(LOCAL_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(LOCAL_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m discovery`."""
    parser = argparse.ArgumentParser(
        prog="discover", description="Find receipt printers on the LAN (mDNS, SNMP, TCP 9100)."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def render_table(records: Sequence[PrinterRecord]) -> str:
    """A plain-text table of the printers found."""
    if not records:
        return "No printers found."
    rows = [
        (
            f"{r.host}:{r.port}",
            r.vendor or "?",
            r.model or "?",
            r.command_set or "?",
            r.mac or "-",
            r.serial or "-",
            ",".join(sorted(r.sources)),
        )
        for r in records
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(TABLE_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(TABLE_COLUMNS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def render_snippets(records: Sequence[PrinterRecord], used: set[str] | None = None) -> str:
    """Ready-to-paste `[printers.<id>]` TOML tables, one per printer."""
    used = set() if used is None else used
    blocks = []
    for record in records:
        printer_id = _unique(_slug(record), used)
        lines = [
            f"[printers.{printer_id}]",
            f"host = {_toml(record.host)}",
            f"port = {record.port}",
        ]
        if record.command_set:
            lines.append(f"command_set = {_toml(record.command_set)}")
        elif record.model:
            lines.append(f"model = {_toml(record.model)}")
        else:
            lines.append('# command_set = "escpos"  # unknown: set escpos, star-line, ...')
        lines.append("drawer = 1")
        if record.mac:
            lines.append(f"match = {{ mac = {_toml(record.mac)} }}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _slug(record: PrinterRecord) -> str:
    base = " ".join(p for p in (record.vendor, record.model) if p) or "printer"
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "printer"
    return slug[:40]


def _unique(slug: str, used: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in used:
        candidate, n = f"{slug}-{n}", n + 1
    used.add(candidate)
    return candidate


def _toml(value: str) -> str:
    """A TOML basic string; json's escaping is a valid subset for these values."""
    return json.dumps(value, ensure_ascii=False)


def _suggest(err: TextIO) -> None:
    from discovery.io import netinfo

    suggestions = subnets.suggest(netinfo.interface_addresses())
    print(
        "No --subnet given: only mDNS runs (SNMP and 9100 sweeps need an explicit subnet).",
        file=err,
    )
    if suggestions:
        flags = " ".join(f"--subnet {s}" for s in suggestions)
        print(f"To sweep this host's LAN, re-run with: {flags}", file=err)


class _ProgressBar:
    """A one-line bar on stderr, redrawn in place."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        filled = _BAR_WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        self._stream.write(f"\rsweeping [{bar}] {done}/{total}")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
