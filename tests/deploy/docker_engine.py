"""A real Docker engine for the runtime tests and the docker benchmark.

No image registry is reachable from these machines, so the base images that docker/Dockerfile
and docker/compose.yaml name are built here from Debian packages (mmdebstrap + docker import)
under the same tags, and the project image is built with the real Dockerfile from a wheelhouse
made on the host. Stand-ins are cached between runs by tag and recipe label; an image under
those tags that is not ours (a real pulled image) is used as it is and never replaced.

Traffic: the docker CLI talks to the local daemon's unix socket; containers talk to each other
on the compose project's own bridge network, and to the host only through ports published on
127.0.0.1. Image builds run with ``--network none``; mmdebstrap reads the host's own Debian
mirror (a package registry).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
COMPOSE_USB_FILE = DOCKER_DIR / "compose.usb.yaml"
WHEELHOUSE = DOCKER_DIR / "wheelhouse"
STANDIN_LABEL = "org.drawer-agent.standin"
DAEMON_START_S = 60.0
HEALTHY_S = 120.0  # the image's HEALTHCHECK runs first after --interval=30s
POLL_S = 0.25


class EngineError(AssertionError):
    """A docker or compose command failed; the message carries its output."""


def run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 600.0,
    cwd: Path | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, and fail with both streams if it fails."""
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
        cwd=cwd,
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise EngineError(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def wait_for(what: str, predicate: Any, timeout: float, detail: Any = lambda: "") -> Any:
    """Poll ``predicate()`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise EngineError(f"{what}: not within {timeout:g} s\n{detail()}")
        time.sleep(POLL_S)


# docs/deployment.md's backup and restore of the ledger, word for word (a static test checks
# that the page still shows these). Python's sqlite3 backup API takes a consistent copy while
# the agent writes (sqlite.org/backup.html); the image has no sqlite3 CLI. Run as the agent's
# uid in its container, so no file in the volume ends up owned by root.
LEDGER_BACKUP = (
    "import pathlib, sqlite3, sys; "
    "sqlite3.connect('/var/lib/drawer-agent/drawer-agent.db').backup(sqlite3.connect('/tmp/l.db')); "
    "sys.stdout.buffer.write(pathlib.Path('/tmp/l.db').read_bytes())"
)
LEDGER_RESTORE = (
    "import pathlib, sqlite3, sys; "
    "pathlib.Path('/tmp/l.db').write_bytes(sys.stdin.buffer.read()); "
    "sqlite3.connect('/tmp/l.db').backup(sqlite3.connect('/var/lib/drawer-agent/drawer-agent.db'))"
)


# --- the daemon --------------------------------------------------------------------------------


def docker_cli() -> str:
    found = shutil.which("docker")
    assert found, "docker CLI missing: .ci/run installs docker.io"
    return found


def daemon_answers(docker: str) -> bool:
    return run([docker, "info", "--format", "{{.ServerVersion}}"], check=False).returncode == 0


@contextlib.contextmanager
def docker_daemon() -> Iterator[str]:
    """The docker CLI path, with a daemon answering; starts dockerd (and stops it) if needed."""
    docker = docker_cli()
    if daemon_answers(docker):
        yield docker
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    assert Path(dockerd).exists(), "dockerd missing: .ci/run installs docker.io"
    with tempfile.TemporaryDirectory(prefix="dockerd-") as folder:
        log = Path(folder) / "dockerd.log"
        with log.open("wb") as sink:
            # Its own pid file: a stale /var/run/docker.pid from a killed run would stop it.
            proc = subprocess.Popen(
                [dockerd, "--pidfile", str(Path(folder) / "dockerd.pid")],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for(
                "dockerd answering",
                lambda: proc.poll() is not None or daemon_answers(docker),
                DAEMON_START_S,
                log.read_text,
            )
            if proc.poll() is not None:
                raise EngineError(f"dockerd exited {proc.returncode}\n{log.read_text()}")
            yield docker
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def compose_cli(docker: str) -> list[str]:
    """``docker compose`` (v2 plugin) if present, else Debian bookworm's ``docker-compose`` v1."""
    if run([docker, "compose", "version"], check=False).returncode == 0:
        return [docker, "compose"]
    v1 = shutil.which("docker-compose")
    assert v1, "no compose: .ci/run installs docker-compose"
    return [v1]


# --- stand-in base images ----------------------------------------------------------------------


@dataclass(frozen=True)
class StandIn:
    """A base image built from Debian packages under the tag the project files name."""

    tag: str
    variant: str
    include: tuple[str, ...]
    hooks: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()

    def recipe(self, mirrors: Sequence[str]) -> str:
        text = json.dumps([self.tag, self.variant, self.include, self.hooks, self.changes])
        return hashlib.sha256((text + "\n".join(mirrors)).encode()).hexdigest()[:16]


# Like the official slim images: no manuals, docs or translations (dpkg path excludes).
_SLIM = (
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
_NO_APT_LISTS = 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*'

# python:3.11-slim-bookworm: Debian bookworm's python3 is 3.11 (in /usr/bin, where the
# official image has /usr/local/bin). python3-venv brings ensurepip for `python3 -m venv`;
# passwd brings groupadd/useradd, which the Dockerfile uses and the official image has.
PYTHON = StandIn(
    tag="python:3.11-slim-bookworm",
    variant="apt",
    include=("python3", "python3-venv", "passwd", "ca-certificates", "netbase", "tzdata"),
    hooks=(_NO_APT_LISTS,),
    changes=("ENV LANG=C.UTF-8", 'CMD ["python3"]'),
)
# eclipse-mosquitto:2.0.20: the official image reads /mosquitto/config/mosquitto.conf and
# keeps /mosquitto/data and /mosquitto/log owned by the mosquitto user, which the broker
# drops to when started as root (its default `user mosquitto`), and ships mosquitto_sub and
# mosquitto_pub (Debian's mosquitto-clients). Debian ships 2.0.11.
MOSQUITTO = StandIn(
    tag="eclipse-mosquitto:2.0.20",
    variant="essential",
    include=("mosquitto", "mosquitto-clients"),
    hooks=(
        'mkdir -p "$1"/mosquitto/config "$1"/mosquitto/data "$1"/mosquitto/log'
        ' && chroot "$1" chown mosquitto:mosquitto /mosquitto/data /mosquitto/log',
        _NO_APT_LISTS,
    ),
    changes=(
        'CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]',
        "EXPOSE 1883",
    ),
)
STANDINS = (PYTHON, MOSQUITTO)


def debian_mirrors(apt_dir: Path = Path("/etc/apt")) -> list[str]:
    """bookworm sources on the host's own Debian mirrors (one-line and deb822 files)."""
    uris: list[str] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not line.startswith((" ", "#")):
                        fields[key.strip()] = value.strip()
                if "deb" in fields.get("Types", "").split():
                    uris += fields.get("URIs", "").split()
        else:
            for line in text.splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb":
                    uris.append(words[1])
    mirrors: list[str] = []
    for uri in dict.fromkeys(u.rstrip("/") for u in uris):
        if uri.endswith("/debian-security"):
            mirrors.append(f"deb {uri} bookworm-security main")
        elif uri.endswith("/debian"):
            mirrors += [f"deb {uri} bookworm main", f"deb {uri} bookworm-updates main"]
    return mirrors or ["deb http://deb.debian.org/debian bookworm main"]


def image_labels(docker: str, tag: str) -> dict[str, str] | None:
    """The labels of an image, {} if it has none, None if there is no such image."""
    result = run([docker, "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
                 check=False)  # fmt: skip
    if result.returncode != 0:
        return None
    return json.loads(result.stdout) or {}


def ensure_standins(docker: str, standins: Sequence[StandIn] = STANDINS) -> dict[str, str]:
    """Build the stand-ins that are missing or stale, in parallel; {tag: "cached"|"built"|"real"}."""
    mirrors = debian_mirrors()
    state: dict[str, str] = {}
    todo: list[StandIn] = []
    for standin in standins:
        labels = image_labels(docker, standin.tag)
        if labels is None or (
            STANDIN_LABEL in labels and labels[STANDIN_LABEL] != standin.recipe(mirrors)
        ):
            todo.append(standin)
        else:
            state[standin.tag] = "cached" if STANDIN_LABEL in labels else "real"
    if not todo:
        return state
    mmdebstrap = shutil.which("mmdebstrap")
    assert mmdebstrap, "mmdebstrap missing: .ci/run installs it"
    with tempfile.TemporaryDirectory(prefix="standin-") as folder:
        procs = []
        for n, standin in enumerate(todo):
            tar = Path(folder) / f"{n}.tar"
            log = (Path(folder) / f"{n}.log").open("wb")
            args = [mmdebstrap, f"--variant={standin.variant}",
                    f"--include={','.join(standin.include)}", *_SLIM]  # fmt: skip
            args += [f"--customize-hook={hook}" for hook in standin.hooks]
            args += ["bookworm", str(tar), *mirrors]
            procs.append((standin, tar, log, subprocess.Popen(args, stdout=log, stderr=log)))
        for standin, tar, log, proc in procs:
            code = proc.wait(timeout=600)
            log.close()
            if code != 0:
                raise EngineError(f"mmdebstrap for {standin.tag} exited {code}\n"
                                  f"{Path(log.name).read_text()[-4000:]}")  # fmt: skip
            changes = [*standin.changes, f"LABEL {STANDIN_LABEL}={standin.recipe(mirrors)}"]
            run([docker, "import", *(f"--change={c}" for c in changes), str(tar), standin.tag])
            state[standin.tag] = "built"
    return state


# --- the project image -------------------------------------------------------------------------


def image_ids(docker: str) -> set[str]:
    """Every top-level image id, dangling ones included."""
    out = run([docker, "images", "--all", "--quiet", "--no-trunc"]).stdout
    return set(out.split())


@contextlib.contextmanager
def wheelhouse() -> Iterator[Path]:
    """docker/wheelhouse filled with the locked wheels (and the build backend); emptied after."""
    before = set(WHEELHOUSE.glob("*.whl"))
    try:
        run([sys.executable, "-m", "pip", "wheel", "-q", "-c", str(REPO / "requirements.lock"),
             "-w", str(WHEELHOUSE), str(REPO), "setuptools", "wheel"], timeout=600)  # fmt: skip
        # The image builds the project from its sources; its own wheel is not an input.
        for own in WHEELHOUSE.glob("drawer_agent-*.whl"):
            own.unlink()
        yield WHEELHOUSE
    finally:
        for wheel in set(WHEELHOUSE.glob("*.whl")) - before:
            wheel.unlink(missing_ok=True)


def build_project_image(docker: str, tag: str) -> float:
    """docker/Dockerfile built offline by the classic builder; returns seconds taken."""
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    started = time.monotonic()
    with wheelhouse():
        run([docker, "build", "--network", "none", "--build-arg", "PIP_NO_INDEX=1",
             "-f", str(DOCKER_DIR / "Dockerfile"), "-t", tag, str(REPO)],
            env=env, timeout=900)  # fmt: skip
    return time.monotonic() - started


# --- a compose project -------------------------------------------------------------------------


@dataclass
class Project:
    """One compose project of docker/compose.yaml under its own name, image tag and port."""

    docker: str
    compose: list[str]
    name: str
    image: str
    http_port: int
    files: tuple[Path, ...] = (COMPOSE_FILE,)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("DRAWER_AGENT_")}
        return (
            keep
            | self.extra_env
            | {
                "DRAWER_AGENT_IMAGE": self.image,
                "DRAWER_AGENT_HTTP_PORT": str(self.http_port),
            }
        )

    def cmd(self, *args: str, files: Sequence[Path] | None = None, check: bool = True,
            timeout: float = 300.0, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        chosen = self.files if files is None else tuple(files)
        options = [a for f in chosen for a in ("-f", str(f))]
        return run([*self.compose, "-p", self.name, *options, *args],
                   env=self.env() | (env or {}), check=check, timeout=timeout)  # fmt: skip

    def container(self, service: str) -> str:
        cid = self.cmd("ps", "-q", service).stdout.strip()
        assert cid, f"no container for {service}\n{self.cmd('ps', check=False).stdout}"
        return cid

    def inspect(self, cid: str) -> dict[str, Any]:
        data = json.loads(run([self.docker, "inspect", cid]).stdout)
        assert len(data) == 1, data
        return dict(data[0])

    def logs(self, *services: str) -> str:
        result = self.cmd("logs", "--no-color", *services, check=False)
        return result.stdout + result.stderr

    def exec(self, cid: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([self.docker, "exec", cid, *args], check=check)

    def wait_healthy(self, service: str, *, not_started_at: str | None = None,
                     timeout: float = HEALTHY_S) -> dict[str, Any]:  # fmt: skip
        """Poll ``docker inspect`` until the service's HEALTHCHECK says healthy.

        ``not_started_at``: a previous ``State.StartedAt``; the container must have
        started again since (so a restart cannot be mistaken for the old healthy state).
        """
        cid = self.container(service)

        def state() -> dict[str, Any] | None:
            current: dict[str, Any] = self.inspect(cid)["State"]
            if current["Status"] in {"exited", "dead"} or (
                current.get("Health", {}).get("Status") == "unhealthy"
            ):
                raise EngineError(f"{service} is {current}\n{self.logs(service)}")
            if not_started_at is not None and current["StartedAt"] == not_started_at:
                return None
            return current if current.get("Health", {}).get("Status") == "healthy" else None

        result: dict[str, Any] = wait_for(
            f"{service} healthy", state, timeout, lambda: self.logs(service)
        )
        return result

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes still labelled with this project's name."""
        label = f"label=com.docker.compose.project={self.name}"
        found = {}
        for kind, listing in (
            ("container", ["ps", "-a", "-q", "--filter", label]),
            ("network", ["network", "ls", "-q", "--filter", label]),
            ("volume", ["volume", "ls", "-q", "--filter", label]),
        ):
            found[kind] = run([self.docker, *listing]).stdout.split()
        return found

    def remove(self) -> dict[str, list[str]]:
        """``down -v`` and then force-remove anything that survived; returns what is left."""
        self.cmd("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=180)
        for kind, ids in self.leftovers().items():
            if ids:
                verb = ["rm", "-f", "-v"] if kind == "container" else [kind, "rm"]
                run([self.docker, *verb, *ids], check=False)
        return {k: v for k, v in self.leftovers().items() if v}


def remove_images(docker: str, keep: set[str]) -> list[str]:
    """Remove every image not in ``keep`` (ids) nor a stand-in; returns the ids still present."""
    standins = {
        run([docker, "image", "inspect", "-f", "{{.Id}}", s.tag], check=False).stdout.strip()
        for s in STANDINS
    }
    # A builder stage's image can be the parent of another: a second pass removes it.
    for _ in range(3):
        extra = image_ids(docker) - keep - standins
        if not extra:
            return []
        for image in extra:
            run([docker, "rmi", "-f", image], check=False)
    return sorted(image_ids(docker) - keep - standins)
