"""deploy/grafana/drawer-fleet.json, checked statically: it parses, and every query names only
series the fleet view exports (FLEET_SERIES) with labels those series carry."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.core.fleet import FleetModel
from agent.io.metrics import FLEET_SERIES, FleetCollector

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "drawer-fleet.json"

# PromQL words that look like identifiers but name no series (Prometheus docs, "Operators").
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:$.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])(?!\s*\()")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+),\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")


def exposed_names() -> dict[str, str]:
    """{name Prometheus stores: FLEET_SERIES key}; a counter is exposed with `_total`
    (OpenMetrics, "Counter"; prometheus_client appends it)."""
    return {
        (f"{name}_total" if kind == "counter" else name): name
        for name, (kind, _doc) in FLEET_SERIES.items()
    }


def scraped_labels() -> dict[str, set[str]]:
    """Labels of every series in a scrape of a model where every series has a sample."""
    model = FleetModel()
    status = {
        "state": "online",
        "version": "1.0",
        "broker": "192.0.2.1:1883",
        "started_at": 1.0,
        "printer_ids": ["p"],
    }
    printer = {"online": True, "paper": "ok", "drawer_open": False, "last_seen": 2.0}
    model.observe("shops/s/agent/status", json.dumps(status).encode(), 3.0)
    model.observe("shops/s/printers/p/status", json.dumps(printer).encode(), 3.0)
    model.observe("shops/s/alerts", json.dumps({"kind": "drawer_left_open"}).encode(), 3.0)
    text = FleetCollector(model).render().decode()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def metrics_in(expr: str) -> tuple[set[str], list[tuple[str, set[str]]]]:
    """(every series name in a PromQL expression, [(name, labels matched on it)])."""
    bare = _STRING.sub('""', expr)
    selectors = [
        (m[1], set(_MATCHER.findall(m[2]))) for m in _SELECTOR.finditer(bare) if m[1] is not None
    ]
    rest = _SELECTOR.sub(lambda s: f" {s[1] or ''} ", bare)  # label matchers out
    rest = _GROUPING.sub(" ", re.sub(r"\[[^\]]*\]", " ", rest))  # ranges, by (...) out
    names = {n for n, _ in selectors} | {m for m in _IDENT.findall(rest) if m not in _KEYWORDS}
    return names, selectors


def queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target (rows included) and query variable."""

    def walk(panels: list[dict]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                yield f"panel {panel.get('title')!r} {target.get('refId')}", target.get("expr", "")

    yield from walk(dashboard.get("panels", []))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            if m := _LABEL_VALUES.match(q):  # Grafana's label_values(series, label)
                yield f"variable {var['name']}", f"count by ({m[2]}) ({m[1] or ''})"
            else:
                yield f"variable {var['name']}", q


def problems(dashboard: dict) -> list[str]:
    """Everything wrong with the dashboard's queries; empty when it is usable."""
    known = exposed_names()
    labels = scraped_labels()
    out = []
    for where, expr in queries(dashboard):
        if not expr.strip():
            out.append(f"{where}: empty query")
            continue
        names, selectors = metrics_in(expr)
        if not names:
            out.append(f"{where}: names no series: {expr}")
        out += [f"{where}: unknown series {n!r}" for n in sorted(names - set(known))]
        for name, matched in selectors:
            if name in known:
                extra = matched - labels.get(name, set()) - {"__name__"}
                out += [f"{where}: {name} has no label {lbl!r}" for lbl in sorted(extra)]
        carried = set().union(*(labels.get(n, set()) for n in names))
        for group in _GROUPING.findall(_STRING.sub('""', expr)):
            for lbl in filter(None, (g.strip() for g in group.split(","))):
                if lbl not in carried:
                    out.append(f"{where}: no series of the query has label {lbl!r}")
    return out


def panels_of(dashboard: dict) -> list[dict]:
    flat = []
    for panel in dashboard["panels"]:
        flat += [panel, *panel.get("panels", [])]
    return flat


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_parses_and_has_panels_with_queries(dashboard):
    panels = panels_of(dashboard)
    ids = [p["id"] for p in panels]
    assert dashboard["uid"] and dashboard["title"]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] != "row":
            assert panel.get("targets"), f"{panel['title']} has no query"
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_query_names_an_existing_series_with_existing_labels(dashboard):
    assert problems(dashboard) == []


def test_the_dashboard_shows_every_fleet_series_the_issue_names(dashboard):
    used: set[str] = set()
    for _where, expr in queries(dashboard):
        used |= metrics_in(expr)[0]
    keys = {exposed_names()[n] for n in used}
    # agent up, version, printer online, paper, drawer open, alerts, last seen (issue 13)
    wanted = {"agent_up", "agent_info", "printer_online", "printer_paper", "printer_drawer_open"}
    wanted |= {"alerts", "last_seen_timestamp_seconds", "printer_last_seen_timestamp_seconds"}
    assert {f"drawer_fleet_{w}" for w in wanted} <= keys


def test_the_exposed_names_are_the_ones_a_scrape_shows():
    """The `_total` rule above is prometheus_client's, checked against a real scrape."""
    assert set(scraped_labels()) == set(exposed_names())


def test_the_checker_extracts_series_not_functions_labels_or_ranges():
    expr = 'sum by (kind) (increase(drawer_fleet_alerts_total{shop=~"$shop"}[$__rate_interval]))'
    names, selectors = metrics_in(expr + ' or vector(0) > bool 1e3 and time() - a_b{x="y,z}"}')
    assert names == {"drawer_fleet_alerts_total", "a_b"}
    assert selectors == [("drawer_fleet_alerts_total", {"shop"}), ("a_b", {"x"})]


def _with_expr(dashboard: dict, expr: str) -> dict:
    doc = copy.deepcopy(dashboard)
    doc["panels"][0]["targets"][0]["expr"] = expr
    return doc


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("sum(drawer_fleet_agent_online)", "unknown series 'drawer_fleet_agent_online'"),
        # a counter's FLEET_SERIES key is not what Prometheus stores
        ("rate(drawer_fleet_alerts[5m])", "unknown series 'drawer_fleet_alerts'"),
        ('drawer_fleet_printer_online{printer_id="p"}', "has no label 'printer_id'"),
        ("vector(1)", "names no series"),
        ("count by (store) (drawer_fleet_agent_info)", "has label 'store'"),
        ("", "empty query"),
    ],
)
def test_negative_control_a_bad_query_fails_the_checker(dashboard, expr, complaint):
    found = problems(_with_expr(dashboard, expr))
    assert any(complaint in p for p in found), found


def test_negative_control_an_unknown_series_in_a_variable_fails_the_checker(dashboard):
    doc = copy.deepcopy(dashboard)
    var = next(v for v in doc["templating"]["list"] if v["type"] == "query")
    var["query"] = {"query": "label_values(drawer_agent_up, shop)", "refId": "x"}
    assert any("unknown series 'drawer_agent_up'" in p for p in problems(doc))
    var["query"] = {"query": "label_values(drawer_fleet_agent_up, printer)", "refId": "x"}
    assert any("has label 'printer'" in p for p in problems(doc))
