"""TLS for the local HTTP server (the standard library's ssl, the only place it is used)."""

from __future__ import annotations

import ssl

from agent.core.errors import ConfigError


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context from PEM files; ConfigError naming the key when they cannot serve."""
    for key, path in (("http.cert_file", cert_file), ("http.key_file", key_file)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            # OpenSSL's own error does not say which file it could not open.
            raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except OSError as exc:  # ssl.SSLError is an OSError
        # OpenSSL cannot say which of the two is at fault when they do not match.
        raise ConfigError("http.cert_file", f"not a usable certificate and key: {exc}") from None
    return context
