"""`drawer-agent pair` writes a one-time code the console accepts, into the agent's own file."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.console.conftest import csrf_of


async def test_a_printed_code_logs_in_once(shop, tmp_path):
    config = tmp_path / "shop.toml"
    config.write_text(
        'shop_id = "salon-42"\n'
        '[printers.front]\nhost = "127.0.0.1"\nmodel = "epson-tm-t20iii"\n'
        f'[state]\npath = "{shop.db}"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "agent", "pair", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    spelled = re.search(r"code: (\d{4}-\d{4})", out).group(1)
    page = await shop.client.get("/login")
    r = await shop.client.post(
        "/login",
        data={"csrf": csrf_of(await page.text()), "secret": spelled},
        allow_redirects=False,
    )
    assert r.status == 303
    # Used up: the same code is refused afterwards (negative control of the login above).
    shop.client.session.cookie_jar.clear()
    page = await shop.client.get("/login")
    r = await shop.client.post(
        "/login",
        data={"csrf": csrf_of(await page.text()), "secret": spelled},
        allow_redirects=False,
    )
    assert r.status == 401


def test_pair_without_a_config_exits_2(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "agent", "pair"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert "--config" in r.stderr
