"""Real protocol peers on loopback for the discovery tests and benchmark.

Every address used here is inside 127.0.0.0/8; nothing leaves the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SNMP_DATA = Path(__file__).resolve().parents[1] / "data" / "snmp"
SNMPSIM = "snmpsim-command-responder"


def assert_loopback(*hosts: str) -> None:
    """Refuse to point a test peer or sweep anywhere but 127.0.0.0/8."""
    for host in hosts:
        net = ipaddress.IPv4Network(host, strict=False)
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise AssertionError(f"{host} is not loopback: tests must stay on 127.0.0.0/8")


def find_snmpsim() -> str:
    """The snmpsim responder next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / SNMPSIM
    if beside.exists():
        return str(beside)
    found = shutil.which(SNMPSIM) or shutil.which(SNMPSIM, path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(
            f"{SNMPSIM} not found beside {sys.executable} or on PATH: "
            "install the dev extra (`pip install -e .[dev]`, which pins snmpsim and pysmi)"
        )
    return found


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that is free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def snmp_get_packet(community: str, oid: str = "1.3.6.1.2.1.1.5.0", request_id: int = 1) -> bytes:
    """A BER-encoded SNMPv2c GET (RFC 3416), built by hand so readiness polling needs no loop."""

    def tlv(tag: int, body: bytes) -> bytes:
        assert len(body) < 128
        return bytes([tag, len(body)]) + body

    parts = [int(p) for p in oid.split(".")]
    encoded = bytes([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        # Base-128 with the high bit set on all but the last octet (X.690 §8.19.2).
        rest, chunk = part >> 7, [part & 0x7F]
        while rest:
            chunk.insert(0, 0x80 | (rest & 0x7F))
            rest >>= 7
        encoded += bytes(chunk)
    varbind = tlv(0x30, tlv(0x06, encoded) + b"\x05\x00")
    pdu = tlv(
        0xA0,
        tlv(0x02, request_id.to_bytes(2, "big"))
        + tlv(0x02, b"\x00")
        + tlv(0x02, b"\x00")
        + tlv(0x30, varbind),
    )
    return tlv(0x30, tlv(0x02, b"\x01") + tlv(0x04, community.encode()) + pdu)


def snmp_answers(host: str, port: int, community: str = "public", timeout: float = 0.3) -> bool:
    """True when an SNMP agent answers a GET at host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(snmp_get_packet(community), (host, port))
        try:
            s.recvfrom(4096)
        except (TimeoutError, OSError):
            return False
    return True


@dataclass
class SnmpSim:
    """One snmpsim process; one SNMP engine (own data dir) per loopback address."""

    agents: Mapping[str, str]  # address -> .snmprec file stem in tests/data/snmp
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, ready_timeout: float = 30.0) -> None:
        assert_loopback(*self.agents)
        binary = find_snmpsim()
        self.port = self.port or free_udp_port()
        cache = self.workdir / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        args = [binary, f"--cache-dir={cache}", "--logging-method=null"]
        if os.geteuid() == 0:
            # snmpsim refuses to run as root without an explicit user (LIBRARIES §3.3).
            args += ["--process-user=root", "--process-group=root"]
        for address, stem in self.agents.items():
            data = self.workdir / f"data-{address}"
            data.mkdir(parents=True, exist_ok=True)
            shutil.copy(SNMP_DATA / f"{stem}.snmprec", data / "public.snmprec")
            args += [
                "--v3-engine-id=auto",
                f"--data-dir={data}",
                f"--agent-udpv4-endpoint={address}:{self.port}",
            ]
        with (self.workdir / "snmpsim.log").open("wb") as log:
            # The child keeps its own copy of the descriptor.
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        # snmpsim has no readiness signal: poll each endpoint with a bounded deadline.
        deadline = time.monotonic() + ready_timeout
        pending = set(self.agents)
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"snmpsim exited with {self.process.returncode}: "
                    + (self.workdir / "snmpsim.log").read_text(errors="replace")[-2000:]
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"snmpsim endpoints {sorted(pending)} not ready")
            pending = {a for a in pending if not snmp_answers(a, self.port)}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def snmpsim(agents: Mapping[str, str], workdir: Path, port: int = 0) -> Iterator[SnmpSim]:
    sim = SnmpSim(agents, workdir, port)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


# --- TCP 9100 virtual printers ---------------------------------------------------------

ALLOWED_PROBE_BYTES = (b"\x10\x04\x01", b"\x1d\x49\x42", b"\x1d\x49\x43", b"\x1d\x49\x44")


@dataclass
class FakePrinter:
    """Answers DLE EOT 1 and GS I B/C/D like an Epson/Bixolon (PROTOCOLS §2.1, §2.4)."""

    maker: bytes = b"EPSON"
    model: bytes = b"TM-T20III"
    serial: bytes = b"X4FT012345"
    status: int = 0x16  # 0001 0110: fixed bits + drawer pin 3 HIGH
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        buffer = b""
        try:
            while chunk := await reader.read(64):
                self.received += chunk
                buffer += chunk
                while len(buffer) >= 3:
                    command, buffer = buffer[:3], buffer[3:]
                    reply = {
                        b"\x10\x04\x01": bytes([self.status]),
                        b"\x1d\x49\x42": b"\x5f" + self.maker + b"\x00",
                        b"\x1d\x49\x43": b"\x5f" + self.model + b"\x00",
                        b"\x1d\x49\x44": b"\x5f" + self.serial + b"\x00",
                    }.get(command, b"")
                    writer.write(reply)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


class SilentPrinter:
    """Accepts, reads, never answers (a wedged or non-ESC/POS device)."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        try:
            while chunk := await reader.read(64):
                self.received += chunk
        except ConnectionError:
            pass
        finally:
            writer.close()


class ResettingPeer:
    """Accepts, then resets the connection (SO_LINGER 0 makes close() send RST)."""

    def __init__(self) -> None:
        self.resets = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.resets += 1
        writer.transport.abort()


class ChattyPeer:
    """A non-printer service on the probed port; records every byte it was sent.

    `banner` is sent on connect (telnet, FTP, SMTP say hello first); `answer` after each
    chunk it receives (an HTTP server answers garbage with 400 and closes).
    """

    def __init__(self, *, banner: bytes = b"", answer: bytes = b"", close: bool = False) -> None:
        self.banner, self.answer, self.close = banner, answer, close
        self.received = bytearray()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.banner:
                writer.write(self.banner)
                await writer.drain()
            while chunk := await reader.read(64):
                self.received += chunk
                if self.answer:
                    writer.write(self.answer)
                    await writer.drain()
                if self.close:
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()


# A port that speaks HTTP: "R" (0x52) in the reason phrase has the DLE EOT bit pattern.
HTTP_PEER = {"answer": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "close": True}
# A telnet service: option negotiation (IAC DO TERMINAL-TYPE) and a prompt that starts with "R".
TELNET_PEER = {"banner": b"\xff\xfd\x18Ready.\r\nlogin: "}
# A Star printer in Star Line mode with automatic status on: it answers with its 9-byte ASB
# (header 0x23, PROTOCOLS §2.5), never with a DLE EOT byte.
STAR_ASB_PEER = {"answer": bytes.fromhex("23 06 00 00 00 00 00 00 00")}
# A prompt-only service whose first byte alone would pass the status pattern ("R" = 0x52).
PROMPT_PEER = {"answer": b"Ready>"}


@contextlib.asynccontextmanager
async def tcp_peers(
    handlers: Mapping[str, object], port: int
) -> AsyncIterator[list[asyncio.Server]]:
    """Serve each handler (an object with `.handle`) on address:port."""
    assert_loopback(*handlers)
    servers = []
    try:
        for address, peer in handlers.items():
            servers.append(await asyncio.start_server(peer.handle, address, port))  # type: ignore[attr-defined]
        yield servers
    finally:
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- mDNS registrations on 127.0.0.1 ----------------------------------------------------


def service_info(
    instance: str,
    address: str,
    *,
    service_type: str = "_pdl-datastream._tcp.local.",
    port: int = 9100,
    properties: dict[bytes, bytes | None] | bytes | None = None,
    server: str | None = None,
) -> object:
    """An AsyncServiceInfo for a printer advertised at `address` (any 127.x works on lo)."""
    from zeroconf.asyncio import AsyncServiceInfo

    assert_loopback(address)
    return AsyncServiceInfo(
        service_type,
        f"{instance}.{service_type}",
        port=port,
        parsed_addresses=[address],
        properties=properties if properties is not None else {},
        server=server or f"{instance.lower().replace(' ', '-')}.local.",
    )


@contextlib.asynccontextmanager
async def mdns_registrar() -> AsyncIterator[object]:
    """A zeroconf instance that only talks on 127.0.0.1 (LIBRARIES §2.3)."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncZeroconf

    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        yield zc
    finally:
        await zc.async_close()
