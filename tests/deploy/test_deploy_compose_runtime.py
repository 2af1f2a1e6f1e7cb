"""docker/compose.yaml for real: the image built, the demo shop up, a drawer opened from a container.

A real Docker engine (Debian's docker.io; the fixture starts dockerd if none answers and stops
it again), stand-in base images built from Debian packages under the official tags (no registry
is reachable here, see docker_engine.py), the project image built with docker/Dockerfile, and
the compose file brought up under a project name, image tag and loopback port of its own.
Everything the run created (containers, networks, volumes, images) is removed at the end, also
when a test fails, and the teardown fails if anything is left.

The containers talk to each other on the project's own bridge network; the host reaches the
agent only through the port published on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import select
import sqlite3
import stat
import subprocess
import sys
import tty
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from container_checks import PROBE, Hardening, inspect_problems, probe_problems, probe_spec
from deploy_helpers import scrubbed_env
from docker_engine import (
    COMPOSE_FILE,
    COMPOSE_USB_FILE,
    DOCKER_DIR,
    LEDGER_BACKUP,
    LEDGER_RESTORE,
    EngineError,
    Project,
    build_project_image,
    compose_cli,
    docker_daemon,
    ensure_standins,
    image_ids,
    remove_images,
    run,
    wait_for,
)

from agent.io.ledger import MIGRATIONS
from tests.conftest import free_port

# Above the suite's 120 s: on a new machine the first test's set-up builds the stand-in base
# images and the project image (docker_engine bounds those steps at 600 s and 900 s).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

CONFIG = "/etc/drawer-agent/drawer-agent.toml"
AGENT_UID = 10001
DIALOUT_GID = 20  # Debian's base-passwd: group dialout owns /dev/ttyUSB*
PULSE = re.compile(r"drawer 1 pulse \d+/\d+ ms")
SECRETS = frozenset(f"/run/secrets/{n}" for n in ("mqtt_password", "pos_signing_key", "http_token"))
# docker/compose.yaml's agent service: read-only root with /tmp as tmpfs, no capabilities,
# no-new-privileges, config and secrets read-only, only the ledger volume writable.
AGENT = Hardening(
    uid=AGENT_UID,
    read_only_mounts=SECRETS | {CONFIG},
    writable=frozenset({"/var/lib/drawer-agent"}),
    tmpfs=frozenset({"/tmp"}),
)


@pytest.fixture(scope="module")
def docker() -> Iterator[str]:
    with docker_daemon() as cli:
        yield cli


@pytest.fixture(scope="module")
def shop(docker: str) -> Iterator[Project]:
    """The demo shop of docker/compose.yaml, up; removed with its image afterwards."""
    token = secrets.token_hex(4)
    keep = image_ids(docker)
    project = Project(
        docker=docker,
        compose=compose_cli(docker),
        name=f"drawer-agent-ci-{token}",
        image=f"drawer-agent:ci-{token}",
        http_port=free_port(),
    )
    try:
        ensure_standins(docker)
        build_project_image(docker, project.image)
        project.cmd("up", "-d", "--no-build")
        yield project
    finally:
        left = project.remove()
        images = remove_images(docker, keep)
        assert not left, f"compose project left behind: {left}"
        assert not images, f"images left behind: {images}"


def publish(shop: Project, event_id: str, terminal: str = "T1") -> tuple[int, dict[str, Any]]:
    """Play the POS as compose.yaml's comment says: `run --rm agent publish ...`."""
    result = shop.cmd(
        "run", "--rm", "-T", "agent", "publish", "--type", "sale", "--terminal", terminal,
        "--config", CONFIG, "--event-id", event_id, check=False, timeout=120,
    )  # fmt: skip
    start = result.stdout.find("{")
    assert start >= 0, f"no ack printed (exit {result.returncode}):\n{result.stderr}"
    return result.returncode, json.loads(result.stdout[start:])


def pulses(shop: Project) -> int:
    return len(PULSE.findall(shop.logs("printer")))


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def probe(shop: Project, service: str, want: Hardening) -> dict[str, Any]:
    result = shop.exec(shop.container(service), "python3", "-c", PROBE, probe_spec(want))
    return dict(json.loads(result.stdout))


# --- the tests ---------------------------------------------------------------------------------


def test_agent_becomes_healthy_and_answers_on_the_published_port(shop: Project) -> None:
    state = shop.wait_healthy("agent")
    assert state["Health"]["Log"][-1]["ExitCode"] == 0
    status, body = http_get(shop.http_port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    # The token comes from the compose secret: without it the API refuses, with it it answers.
    assert http_get(shop.http_port, "/api/printers")[0] == 401
    token = (DOCKER_DIR / "secrets" / "http_token.example").read_text().strip()
    status, body = http_get(shop.http_port, "/api/printers", token)
    assert status == 200, body
    assert b'"front"' in body
    # The installer console is served on the same port: its login page answers, and a
    # console page without a session sends the browser there (negative control).
    status, body = http_get(shop.http_port, "/login")
    assert status == 200, body
    assert b'<form method="post" action="/login">' in body
    assert b'name="secret" type="password"' in body
    with urllib.request.urlopen(f"http://127.0.0.1:{shop.http_port}/shop", timeout=5) as page:
        assert urllib.parse.urlsplit(page.geturl()).path == "/login"


def test_a_drawer_opens_from_a_container(shop: Project) -> None:
    shop.wait_healthy("agent")
    before = pulses(shop)
    code, ack = publish(shop, f"ci-open-{secrets.token_hex(4)}")
    assert (code, ack["status"]) == (0, "opened"), ack
    wait_for("the printer logs the pulse", lambda: pulses(shop) > before, 15,
             lambda: shop.logs("printer"))  # fmt: skip
    # Negative control: an unknown terminal is answered, and no drawer opens.
    code, ack = publish(shop, f"ci-unknown-{secrets.token_hex(4)}", terminal="T9")
    assert code != 0
    assert ack["status"] != "opened", ack
    assert pulses(shop) == before + 1


def test_restart_keeps_the_ledger_and_answers_duplicate(shop: Project) -> None:
    shop.wait_healthy("agent")
    event_id = f"ci-dup-{secrets.token_hex(4)}"
    code, ack = publish(shop, event_id)
    assert (code, ack["status"]) == (0, "opened"), ack
    wait_for("the pulse", lambda: pulses(shop) >= 1, 15, lambda: shop.logs("printer"))
    opened = pulses(shop)
    started = shop.inspect(shop.container("agent"))["State"]["StartedAt"]

    shop.cmd("restart", "agent")
    shop.wait_healthy("agent", not_started_at=started)
    code, ack = publish(shop, event_id)
    assert (code, ack["status"]) == (3, "duplicate"), ack
    assert pulses(shop) == opened, "a duplicate must not pulse again"


class Output:
    """A process's stdout read as it comes, unbuffered (select + os.read on the pipe)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc, self.fd, self.text = proc, proc.stdout.fileno(), ""

    def _read(self) -> None:
        if select.select([self.fd], [], [], 0.1)[0]:
            self.text += os.read(self.fd, 65536).decode(errors="replace")

    def wait(self, what: str, found: Any, timeout: float) -> None:
        """Read until ``found(text)`` is true, or fail after ``timeout`` s showing the text."""

        def done() -> bool:
            self._read()
            return bool(found(self.text))

        wait_for(what, done, timeout, lambda: self.text)


def jws_claims(text: str) -> str:
    """The claims (JSON text) of the first JWS compact token in ``text`` (RFC 7515 §7.1)."""
    for word in text.split():
        parts = word.split(".")
        if len(parts) == 3 and all(parts):
            with contextlib.suppress(ValueError):
                claims = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
                if claims.startswith(b"{"):
                    return claims.decode()
    return ""


def test_an_event_published_while_the_agent_is_down_opens_when_it_is_back(shop: Project) -> None:
    """The broker keeps the event for the agent's persistent session across a stop and start."""
    shop.wait_healthy("agent")
    before = pulses(shop)
    started = shop.inspect(shop.container("agent"))["State"]["StartedAt"]
    shop.cmd("stop", "agent")
    password = (DOCKER_DIR / "secrets" / "mqtt_password.example").read_text().strip()
    # A witness on the broker (the agent's own credentials, another client id): proof that
    # the event reached the broker while no agent was there to take it. `exec -t`: on a
    # pipe, mosquitto_sub's stdout is block-buffered and the SUBACK line would come at exit.
    witness = subprocess.Popen(
        [shop.docker, "exec", "-t", shop.container("mosquitto"), "mosquitto_sub", "-d", "-h",
         "127.0.0.1", "-u", "salon-42", "-P", password, "-i", f"ci-witness-{secrets.token_hex(4)}",
         "-t", "shops/salon-42/cash/events", "-C", "1", "-W", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    seen = Output(witness)
    event_id = f"ci-down-{secrets.token_hex(4)}"
    pos: subprocess.Popen[str] | None = None
    try:
        seen.wait("the witness subscribed", lambda text: "SUBACK" in text, 60)
        pos = subprocess.Popen(
            [*shop.compose, "-p", shop.name, "-f", str(COMPOSE_FILE), "run", "--rm", "-T",
             "agent", "publish", "--type", "sale", "--terminal", "T1", "--config", CONFIG,
             "--event-id", event_id, "--timeout", "120"],
            env=shop.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        seen.wait("the event on the broker", lambda text: event_id in jws_claims(text), 120)
        assert pos.poll() is None, "an ack came back while the agent was stopped"
        assert pulses(shop) == before

        shop.cmd("start", "agent")
        out, err = pos.communicate(timeout=150)
        assert pos.returncode == 0, err
        assert json.loads(out[out.find("{") :])["status"] == "opened"
        wait_for("the pulse", lambda: pulses(shop) == before + 1, 15, lambda: shop.logs("printer"))
        shop.wait_healthy("agent", not_started_at=started)
    finally:
        for proc in (witness, pos):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                proc.communicate()
        shop.cmd("start", "agent", check=False)  # after a failure too: the next tests need it


def test_agent_container_is_unprivileged_and_read_only(shop: Project) -> None:
    shop.wait_healthy("agent")
    info = shop.inspect(shop.container("agent"))
    assert inspect_problems(info, AGENT) == []
    assert info["Config"]["User"] == f"{AGENT_UID}:{AGENT_UID}"
    assert list(info["NetworkSettings"]["Networks"]) == [f"{shop.name}_default"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert {d for d in mounts if d.startswith("/run/secrets/")} == SECRETS
    assert mounts["/var/lib/drawer-agent"]["Type"] == "volume"
    # From inside: pid 1 (the agent) has no capabilities at all, even in its bounding set.
    assert probe_problems(probe(shop, "agent", AGENT), AGENT) == []


def test_hardening_checks_fail_on_a_container_without_that_hardening(shop: Project) -> None:
    """Negative control: the same checks on the printer, same image and user, no hardening."""
    printer = shop.container("printer")
    problems = inspect_problems(shop.inspect(printer), AGENT)
    assert any("root filesystem is writable" in p for p in problems), problems
    assert any("capabilities not all dropped" in p for p in problems), problems
    assert any("no-new-privileges missing" in p for p in problems), problems
    assert any(f"{CONFIG} is not mounted" in p for p in problems), problems
    assert not any("runs as user" in p for p in problems), problems  # it is uid 10001 too
    seen = probe(shop, "printer", Hardening(uid=AGENT_UID, read_only_mounts=frozenset()))
    problems = probe_problems(seen, AGENT)
    assert any(p.startswith("writing to / gives") for p in problems), problems
    assert any(p.startswith("pid1_cap_bnd") for p in problems), problems
    assert any(p.startswith("NoNewPrivs") for p in problems), problems
    # mosquitto has no Python; `cat` shows the default capability set of a root exec.
    status = shop.exec(shop.container("mosquitto"), "cat", "/proc/self/status").stdout
    cap_eff = re.search(r"^CapEff:\s*([0-9a-f]+)$", status, re.M)
    assert cap_eff, status
    assert int(cap_eff.group(1), 16) != 0


def in_agent_volume(shop: Project, code: str, stdin: bytes = b"") -> bytes:
    """`compose run --rm --no-deps -T --entrypoint python3 agent -c CODE`, bytes in and out."""
    result = subprocess.run(
        [*shop.compose, "-p", shop.name, "-f", str(COMPOSE_FILE), "run", "--rm", "--no-deps",
         "-T", "--entrypoint", "python3", "agent", "-c", code],
        input=stdin, capture_output=True, env=shop.env(), timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def ledger_rows(copy: bytes, folder: Path) -> tuple[int, dict[str, str]]:
    """(schema version, {event_id: status}) of a ledger file's bytes."""
    path = folder / f"ledger-{secrets.token_hex(4)}.db"
    path.write_bytes(copy)
    with contextlib.closing(sqlite3.connect(path)) as db:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        return version, dict(db.execute("SELECT event_id, status FROM events").fetchall())


def test_ledger_backup_restores_into_a_new_volume_and_container(
    shop: Project, tmp_path: Path
) -> None:
    """The upgrade path: back up, remove container and volume, restore, new container: duplicate."""
    shop.wait_healthy("agent")
    event_id = f"ci-backup-{secrets.token_hex(4)}"
    code, ack = publish(shop, event_id)
    assert (code, ack["status"]) == (0, "opened"), ack
    wait_for("the pulse", lambda: pulses(shop) >= 1, 15, lambda: shop.logs("printer"))
    opened = pulses(shop)

    backup = in_agent_volume(shop, LEDGER_BACKUP)  # while the agent runs
    assert backup.startswith(b"SQLite format 3\x00")
    version, rows = ledger_rows(backup, tmp_path)
    assert version == len(MIGRATIONS)
    assert rows[event_id] == "opened"
    assert f"ci-backup-never-{secrets.token_hex(4)}" not in rows  # negative control

    volume = f"{shop.name}_agent-state"
    shop.cmd("rm", "-s", "-f", "agent")
    run([shop.docker, "volume", "rm", volume])
    assert run([shop.docker, "volume", "inspect", volume], check=False).returncode != 0
    in_agent_volume(shop, LEDGER_RESTORE, backup)  # compose creates the volume afresh
    assert ledger_rows(in_agent_volume(shop, LEDGER_BACKUP), tmp_path)[1][event_id] == "opened"

    shop.cmd("up", "-d", "--no-build", "--no-deps", "agent")
    shop.wait_healthy("agent")
    code, ack = publish(shop, event_id)
    assert (code, ack["status"]) == (3, "duplicate"), ack
    assert pulses(shop) == opened, "a restored ledger must not pulse again"


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """A raw pty (master fd, slave path) whose slave looks like a Debian /dev/ttyUSB*.

    root:dialout (gid 20), mode 0660: the agent (uid 10001) reaches it only through the
    group that docker/compose.usb.yaml adds.
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        path = os.ttyname(slave)
        os.chown(path, 0, DIALOUT_GID)
        os.chmod(path, 0o660)
        yield master, path
    finally:
        os.close(master)
        os.close(slave)


def run_in_agent(shop: Project, code: str, *, files: tuple[Path, ...], env: dict[str, str],
                 volume: str | None = None) -> subprocess.Popen[str]:  # fmt: skip
    """`compose run --rm agent` with python3 as entrypoint, started in the background."""
    options = [a for f in files for a in ("-f", str(f))]
    mount = ["-v", volume] if volume else []
    return subprocess.Popen(
        [*shop.compose, "-p", shop.name, *options, "run", "--rm", "-T", "--no-deps", *mount,
         "--entrypoint", "python3", "agent", "-c", code],
        env=shop.env() | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip


DEVICE_PROBE = """
import errno, json, os
st = os.stat("/dev/drawer-printer")
try:
    os.close(os.open("/dev/drawer-printer", os.O_RDWR | os.O_NOCTTY))
    opened = "ok"
except OSError as exc:
    opened = errno.errorcode[exc.errno]
print(json.dumps({"mode": st.st_mode, "gid": st.st_gid, "rdev": st.st_rdev, "open": opened,
                  "groups": os.getgroups()}))
"""


def test_usb_override_passes_the_device_node(shop: Project, pty: tuple[int, str]) -> None:
    """docker/compose.usb.yaml (`devices:` + `group_add`) with a pty slave as the device.

    The container gets a node with the host's type, numbers, group and mode, and uid 10001
    gets past the permission and device-cgroup checks. A pty cannot carry bytes this way:
    the kernel answers EIO to a pty slave opened through a node outside its devpts mount,
    which is what `devices:` creates. The next test carries the bytes over a bind mount.
    """
    _, path = pty
    files = (COMPOSE_FILE, COMPOSE_USB_FILE)
    proc = run_in_agent(shop, DEVICE_PROBE, files=files, env={"DRAWER_AGENT_PRINTER_DEVICE": path})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    seen = json.loads(out)
    host = os.stat(path)
    assert stat.S_ISCHR(seen["mode"])
    assert (seen["rdev"], seen["gid"], stat.S_IMODE(seen["mode"])) == (
        host.st_rdev, DIALOUT_GID, 0o660
    )  # fmt: skip
    assert DIALOUT_GID in seen["groups"]
    assert seen["open"] == "EIO", seen  # past EACCES (group) and EPERM (device cgroup)

    # Negative control: with another group added, the same node is refused.
    env = {"DRAWER_AGENT_PRINTER_DEVICE": path, "DRAWER_AGENT_PRINTER_GID": "4242"}
    proc = run_in_agent(shop, DEVICE_PROBE, files=files, env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["open"] == "EACCES"


KICK = bytes([0x1B, 0x70, 0x00, 0x19, 0xFA])  # ESC p m t1 t2 (ESC/POS "generate pulse")


def test_a_pty_bind_mounted_carries_the_kick(shop: Project, pty: tuple[int, str]) -> None:
    """The pty slave bind-mounted where compose.usb.yaml puts the device: bytes both ways.

    A bind mount carries no group_add, so the slave is handed to the agent's uid, as it is
    when the pty's owner (an emulator, a serial-over-network bridge) runs as that user.
    """
    master, path = pty
    os.chown(path, AGENT_UID, DIALOUT_GID)
    code = (
        "import os, sys\n"
        "fd = os.open('/dev/drawer-printer', os.O_RDWR | os.O_NOCTTY)\n"
        f"os.write(fd, {KICK!r})\n"
        "sys.stdout.write(os.read(fd, 1).hex())\n"
    )
    proc = run_in_agent(shop, code, files=(COMPOSE_FILE,), env={},
                        volume=f"{path}:/dev/drawer-printer")  # fmt: skip
    received = bytearray()

    def kicked() -> bool:
        if proc.poll() is not None:
            return True
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            received.extend(os.read(master, 64))
        return KICK in received

    wait_for("the kick on the pty", kicked, 120)
    os.write(master, b"\x12")  # a status byte back from the "printer"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert bytes(received) == KICK
    assert out.strip() == "12"


def test_compose_usb_file_names_a_device_only_when_asked(shop: Project) -> None:
    """Without DRAWER_AGENT_PRINTER_DEVICE the override refuses, naming the variable."""
    result = shop.cmd("config", files=(COMPOSE_FILE, COMPOSE_USB_FILE), check=False)
    assert result.returncode != 0
    assert "DRAWER_AGENT_PRINTER_DEVICE" in result.stdout + result.stderr
    with pytest.raises(EngineError):
        shop.cmd("config", files=(COMPOSE_FILE, COMPOSE_USB_FILE))


PTY_PATH = re.compile(r"printer on (/dev/pts/\d+);")
PTY_PULSE = re.compile(r"pty: drawer 1 pulse \d+/\d+ ms")


def test_an_agent_configured_with_a_device_opens_the_pty_printer(
    shop: Project, tmp_path: Path
) -> None:
    """The agent in its container, `[printers.front] device = "/dev/drawer-printer"`.

    The printer is `drawer-agent emulate --pty` on the host (a virtual ESC/POS printer on
    the master side of a kernel pty); its slave is bind-mounted where compose.usb.yaml puts
    a real device. A pty cannot come in through `devices:` (EIO, see the test above), so
    this is the agent's device transport over the same path, not the override itself.
    """
    shop.wait_healthy("agent")
    tcp_pulses = pulses(shop)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "agent", "emulate", "--pty", "--command-set", "escpos"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=scrubbed_env(),
    )  # fmt: skip
    seen = Output(emulator)
    try:
        seen.wait("the pty printer", PTY_PATH.search, 30)
        match = PTY_PATH.search(seen.text)
        assert match
        path = match.group(1)
        os.chown(path, AGENT_UID, AGENT_UID)  # the pty's owner, as a real node's group would be
        config = (DOCKER_DIR / "drawer-agent.toml").read_text()
        tcp = 'host = "printer"\nport = 9100\n'
        assert tcp in config
        (tmp_path / "drawer-agent.toml").write_text(
            config.replace(tcp, 'device = "/dev/drawer-printer"\n')
        )
        override = tmp_path / "compose.device.yaml"
        override.write_text(
            "services:\n  agent:\n    volumes:\n"
            f'      - "{tmp_path / "drawer-agent.toml"}:{CONFIG}:ro"\n'
            f'      - "{path}:/dev/drawer-printer"\n'
        )
        started = shop.inspect(shop.container("agent"))["State"]["StartedAt"]
        shop.cmd("up", "-d", "--no-build", "--no-deps", "agent", files=(COMPOSE_FILE, override))
        shop.wait_healthy("agent", not_started_at=started)
        assert not PTY_PULSE.search(seen.text)

        code, ack = publish(shop, f"ci-device-{secrets.token_hex(4)}")
        assert (code, ack["status"]) == (0, "opened"), ack
        seen.wait("the pulse on the pty", PTY_PULSE.search, 30)
        assert len(PTY_PULSE.findall(seen.text)) == 1
        assert pulses(shop) == tcp_pulses, "the TCP printer must not pulse"
    finally:
        emulator.terminate()
        emulator.communicate(timeout=30)
        # Back to compose.yaml's agent for whatever runs next.
        shop.cmd("up", "-d", "--no-build", "--no-deps", "agent", check=False)
