"""The dashboards: they render, the committed JSON is current, every query is PromQL that Prometheus parses,
and the provisioning references what the dashboards use. (Real data: test_grafana_data.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from netobs_grafana import names
from netobs_grafana.__main__ import main as grafana_cli
from netobs_grafana.check import PanelQuery, expand, panel_queries
from netobs_grafana.dashboards import DASHBOARDS, RENDERED_DIR, render_all

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "grafana" / "provisioning"


def _rendered() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in render_all().items()}


def test_every_dashboard_renders_and_the_committed_json_is_current() -> None:
    rendered = render_all()
    assert sorted(rendered) == sorted(f"{name}.json" for name in DASHBOARDS)
    committed = {p.name: p.read_text() for p in RENDERED_DIR.glob("*.json")}
    stale = [name for name in rendered if committed.get(name) != rendered[name]]
    extra = sorted(set(committed) - set(rendered))
    assert not stale and not extra, (
        f"grafana/dashboards is out of date (stale {stale}, extra {extra}); "
        "run: PYTHONPATH=grafana python -m netobs_grafana render"
    )


def test_render_command_writes_what_is_committed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert grafana_cli(["render", "--out", str(tmp_path / "out")]) == 0
    written = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.json")}
    assert written == {p.name: p.read_text() for p in RENDERED_DIR.glob("*.json")}
    assert len(capsys.readouterr().out.splitlines()) == len(DASHBOARDS)


@pytest.mark.parametrize("file_name", sorted(f"{name}.json" for name in DASHBOARDS))
def test_dashboard_shape(file_name: str) -> None:
    board = _rendered()[file_name]
    assert board["uid"].startswith("netobs-") and board["title"].startswith("netobs / ")
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 5
    for panel in panels:
        assert panel["title"] and panel.get("description"), panel
        assert panel["datasource"] == {"type": "prometheus", "uid": names.PROMETHEUS_UID}
        assert panel["targets"], f"{panel['title']} has no query"
        assert {"w", "h"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == names.PROMETHEUS_UID
    ids = [p["id"] for p in board["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    # Refs are unique within a panel (Grafana drops duplicates).
    for panel in panels:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_uids_are_unique_and_links_point_at_dashboards_that_exist() -> None:
    boards = _rendered().values()
    uids = [b["uid"] for b in boards]
    assert len(uids) == len(set(uids))
    linked = {
        link["url"].split("/d/")[1].split("?")[0]
        for b in boards
        for panel in b["panels"]
        for link in (panel.get("fieldConfig", {}).get("defaults", {}).get("links") or [])
        if link["url"].startswith("/d/")
    }
    assert linked and linked <= set(uids)


def test_check_detail_asks_for_exemplars_and_the_path_and_traces_link_to_jaeger() -> None:
    boards = {b["uid"]: b for b in _rendered().values()}
    percentiles = next(p for p in boards["netobs-check"]["panels"] if p["title"] == "Duration percentiles")
    assert all(t.get("exemplar") is True for t in percentiles["targets"])
    for uid, title in (("netobs-path", "Current paths"), ("netobs-check", "Recent traces")):
        panel = next(p for p in boards[uid]["panels"] if p["title"] == title)
        urls = [link["url"] for link in panel["fieldConfig"]["defaults"]["links"]]
        assert any(names.JAEGER_UID in u and "/explore?" in u and "%22search%22" in u for u in urls), urls


def test_provisioned_datasources_match_the_dashboards() -> None:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "netobs.yaml").read_text())
    by_uid = {d["uid"]: d for d in doc["datasources"]}
    assert by_uid[names.PROMETHEUS_UID]["type"] == "prometheus"
    assert by_uid[names.JAEGER_UID]["type"] == "jaeger"
    destinations = by_uid[names.PROMETHEUS_UID]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations == [{"name": "trace_id", "datasourceUid": names.JAEGER_UID}]
    t2m = by_uid[names.JAEGER_UID]["jsonData"]["tracesToMetrics"]
    assert t2m["datasourceUid"] == names.PROMETHEUS_UID
    assert {t["value"] for t in t2m["tags"]} == {names.CHECK, names.TARGET}
    used = {panel["datasource"]["uid"] for b in _rendered().values() for panel in b["panels"] if panel["type"] != "row"}
    assert used <= set(by_uid)
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "netobs.yaml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"].startswith("/var/lib/grafana")


def _all_queries() -> list[PanelQuery]:
    return [pq for board in _rendered().values() for pq in panel_queries(board)]


def traces_to_metrics_queries(tags: str = 'check="web",target="https://example.test/"') -> list[str]:
    """The Jaeger datasource's span -> metrics queries, with $__tags expanded (as Grafana does) to ``tags``."""
    doc = yaml.safe_load((PROVISIONING / "datasources" / "netobs.yaml").read_text())
    jaeger = next(d for d in doc["datasources"] if d["uid"] == names.JAEGER_UID)
    return [q["query"].replace("$$__tags", tags) for q in jaeger["jsonData"]["tracesToMetrics"]["queries"]]


@pytest.mark.real
def test_every_query_is_promql_that_promtool_accepts(tmp_path: Path) -> None:
    queries = [expand(pq.expr) for pq in _all_queries()] + traces_to_metrics_queries()
    assert len(queries) >= 40
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"netobs:dashboard_query_{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(queries)} rules found" in proc.stdout


@pytest.mark.real
def test_promtool_check_catches_a_broken_query(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (pop (up)"}]}]})
    )
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ('rate(x{pop=~"$pop"}[$__rate_interval])', {"$pop": ".*", "$__rate_interval": "1m"}, 'rate(x{pop=~".*"}[1m])'),
        ("increase(x[$__range])", {"$__range": "300s", "$__rate_interval": "1m"}, "increase(x[300s])"),
        ('x{check=~"$check"}', {"$check": "(web|dns)"}, 'x{check=~"(web|dns)"}'),
    ],
)
def test_expand(expr: str, values: dict[str, str], expected: str) -> None:
    assert expand(expr, values) == expected


def test_expand_refuses_unknown_variables() -> None:
    with pytest.raises(ValueError, match=r"\$region"):
        expand('x{region=~"$region"}', {"$pop": ".*"})


@pytest.mark.real
def test_grafana_package_passes_ruff_and_mypy() -> None:
    """scripts/test lints agent/ tests/ bench/; the dashboards' Python is held to the same standard here."""
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "grafana"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert ruff.returncode == 0, ruff.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "grafana"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "-p", "netobs_grafana"],
        cwd=ROOT,
        env={"MYPYPATH": str(ROOT / "grafana"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert mypy.returncode == 0, mypy.stdout
