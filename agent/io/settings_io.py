"""Read the TOML config file and DRAWER_AGENT_* environment overrides, then validate."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from agent.core.errors import ConfigError
from agent.core.fieldspec import EnvValue
from agent.core.settings import Settings, user_tables, validate
from agent.io.tls import server_context

ENV_PREFIX = "DRAWER_AGENT_"
# Not settings: the path of the file itself.
ENV_RESERVED = frozenset({"DRAWER_AGENT_CONFIG"})
# Tables whose keys are names chosen by the user (printer ids, terminals, kids).
_DYNAMIC = user_tables()


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Load `path` (None = embedded defaults only), apply env overrides, validate."""
    raw: dict[str, object] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"is not valid TOML: {exc}") from None
    apply_env(raw, env or {})
    base = path.parent if path is not None else Path.cwd()
    settings = validate(raw, lambda p: (base / p).read_bytes(), check_keys=_check_keys)
    http = settings.http
    if http.cert_file is not None and http.key_file is not None:
        # Relative to the config file, like every other file it names; loaded once here so
        # a bad certificate stops check-config and run with exit 2.
        cert, key = str(base / http.cert_file), str(base / http.key_file)
        server_context(cert, key)
        http = replace(http, cert_file=cert, key_file=key)
        settings = replace(settings, http=http)
    return settings


def _check_keys(hs256: Mapping[str, bytes], es256: Mapping[str, bytes]) -> object:
    """Build the key ring the agent will verify with; ValueError names the key at fault."""
    from agent.io import signing  # PyJWT and cryptography: only when keys are configured

    if not hs256 and not es256:
        return None
    return signing.KeyRing.build(hs256, es256)


def apply_env(raw: dict[str, object], env: Mapping[str, str]) -> None:
    """Overlay DRAWER_AGENT_SECTION__KEY=value onto `raw`; unknown names fail in validate."""
    for var, value in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or var in ENV_RESERVED:
            continue
        parts = var[len(ENV_PREFIX) :].split("__")
        if not all(parts):
            raise ConfigError(var, "empty name segment (use __ between levels)")
        node: dict[str, object] = raw
        trail: list[str] = []
        for i, part in enumerate(parts):
            name = part if tuple(trail) in _DYNAMIC else part.lower()
            if tuple(trail) in _DYNAMIC:
                name = next((k for k in node if k.lower() == part.lower()), part)
            trail.append(name)
            if i == len(parts) - 1:
                node[name] = EnvValue(value, var)
            else:
                child = node.setdefault(name, {})
                if not isinstance(child, dict):
                    raise ConfigError(var, f"{'.'.join(trail)} is not a table")
                node = child
