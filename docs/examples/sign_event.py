"""Sign one drawer-agent cash event as a JWS compact token and print it (POS backend side).

Needs only the standard library and PyJWT (`pip install "PyJWT[crypto]"`; [crypto] for ES256).

    # HS256: a shared secret, at least 32 bytes, the same bytes as [security.keys] on the agent
    python sign_event.py --kid pos-2025 --secret-file pos-2025.secret --type sale --terminal T1

    # ES256: the POS keeps the private key; the agent gets the public key ([security.public_keys])
    python sign_event.py --kid pos-ec-1 --es256-key pos-ec-1.key.pem --type refund --terminal T2

    # publish it: QoS 1, never retained
    mosquitto_pub -h broker -t shops/salon-42/cash/events -q 1 -m "$(python sign_event.py ...)"
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jwt

EVENT_TYPES = ("sale", "refund", "session_open", "session_close", "cash_deposit", "cash_withdrawal")


def build_claims(args: argparse.Namespace, now: float) -> dict[str, object]:
    claims: dict[str, object] = {
        # The idempotency key: reuse the SAME event_id when you retry a publish.
        "event_id": args.event_id or str(uuid.uuid4()),
        "type": args.type,
        "terminal_id": args.terminal,
        # RFC 3339 with an offset; the agent refuses events older than max_age_s (default 30 s).
        "occurred_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "iat": int(now),
        "exp": int(now) + args.ttl,
    }
    if args.amount is not None:
        claims["amount"] = args.amount
    if args.currency:
        claims["currency"] = args.currency
    if args.payment_method:
        claims["payment_method"] = args.payment_method
    if args.operator:
        claims["operator"] = args.operator
    return claims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kid", required=True, help="key id, as configured on the agent")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--secret-file", type=Path, help="HS256: file holding the shared secret")
    key.add_argument(
        "--secret-env", metavar="VAR", help="HS256: environment variable holding the secret"
    )
    key.add_argument("--es256-key", type=Path, help="ES256: P-256 private key PEM (PKCS#8)")
    parser.add_argument("--type", required=True, choices=EVENT_TYPES)
    parser.add_argument("--terminal", required=True, help="terminal_id, e.g. T1")
    parser.add_argument("--event-id", help="default: a new UUID")
    parser.add_argument("--amount", type=float)
    parser.add_argument("--currency", help="ISO 4217, e.g. EUR")
    parser.add_argument("--payment-method", help="e.g. cash")
    parser.add_argument("--operator")
    parser.add_argument("--ttl", type=int, default=30, help="seconds until exp (default 30)")
    args = parser.parse_args(argv)

    claims = build_claims(args, time.time())
    headers = {"kid": args.kid}
    if args.es256_key:
        token = jwt.encode(claims, args.es256_key.read_bytes(), algorithm="ES256", headers=headers)
    else:
        if args.secret_file:
            secret = args.secret_file.read_bytes()
        else:
            secret = os.environ.get(args.secret_env, "").encode("utf-8")
        if len(secret) < 32:
            parser.error(f"the secret is {len(secret)} bytes; the agent requires at least 32")
        token = jwt.encode(claims, secret, algorithm="HS256", headers=headers)
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
