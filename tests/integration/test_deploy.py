"""compose.yaml and deploy/: the parts that can be checked without Docker.

The compose file parses and its services agree with each other and with the README (one-shot
migration, two instances behind the proxy, Prometheus scraping both with the metrics key); the
Prometheus config and rules pass promtool (`check config`, `check rules`, `test rules`); and every
metric the rules and the Grafana dashboard query is one the service really exports (a scraped
`/metrics` of a running test service).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import SPEC_ORDER, make_client
from tests.integration.test_operator_view import promtool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
INSTANCES = ("ticker-a", "ticker-b")

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
_SUFFIXES = ("_bucket", "_sum", "_count")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords,
    label names (inside {...} or by (...)), durations or strings."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    stripped = re.sub(r"\{[^}]*\}", " ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped)
    stripped = re.sub(r"\boffset\s+\w+", " ", stripped)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", stripped):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


async def exported_names(database_url: str) -> set[str]:
    """Every metric name a running service's /metrics declares (histograms with their series)."""
    async with make_client(database_url) as c:
        assert (await c.post("/orders/place", json=SPEC_ORDER)).status_code == 201
        text = (await c.get("/metrics")).text
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(name + suffix for suffix in _SUFFIXES)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ticker-service.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_metric_name_reader_reads_promql() -> None:
    expr = 'max by (account) (account_state{state="token_expired", x=~"a|b"}) - max(x_total offset 15m) > 0'
    assert metric_names(expr) == {"account_state", "x_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))") == {"a_bucket"}


def test_compose_runs_a_migration_then_two_instances_behind_one_port() -> None:
    services = compose()["services"]
    assert {"db", "migrate", *INSTANCES, "proxy", "prometheus", "grafana"} <= set(services)
    assert services["migrate"]["command"] == ["ticker-service", "db", "upgrade"]  # as the README says
    for name in INSTANCES:
        service = services[name]
        assert service["command"] == ["ticker-service", "serve"]
        env = service["environment"]
        assert env["TICKER_MIGRATE_ON_START"] == "false"  # the one-shot migration did it
        # listening on 0.0.0.0 (the Dockerfile): without keys the service refuses to start
        assert "TICKER_API_KEYS" in env and "TICKER_METRICS_KEY" in env
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (
        services["ticker-a"]["environment"]["TICKER_INSTANCE_ID"]
        != services["ticker-b"]["environment"]["TICKER_INSTANCE_ID"]
    )
    assert services["proxy"]["ports"] == ["8080:80"]
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert all(f"{name}:8080" in caddy for name in INSTANCES) and "health_uri /health" in caddy
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "HOST=0.0.0.0" in dockerfile and 'CMD ["ticker-service", "serve"]' in dockerfile
    readme = (ROOT / "README.md").read_text()
    assert "compose.yaml" in readme and "not run by the tests" in readme


def test_prometheus_scrapes_both_instances_with_the_metrics_key_and_promtool_accepts_it(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["authorization"]["type"] == "Bearer"
    assert sorted(job["static_configs"][0]["targets"]) == [f"{name}:8080" for name in INSTANCES]
    # promtool checks that the credentials file exists: the copy points at one of the test's own
    key = tmp_path / "metrics-key"
    key.write_text("a-metrics-key-for-the-check")
    job["authorization"]["credentials_file"] = str(key)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    check = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_alert_rules_pass_promtool_and_fire_as_their_unit_tests_say() -> None:
    names = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "TickerCircuitBreakerOpen",
        "TickerDeadLettersGrowing",
        "TickerRelayLag",
        "TickerWebhookEndpointDisabled",
        "TickerTokenExpired",
    } <= names
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


async def test_rules_and_dashboard_query_only_metrics_the_service_exports(database_url: str) -> None:
    exported = await exported_names(database_url)
    for source, exprs in (("alerts.yml", rule_exprs()), ("dashboard", dashboard_exprs())):
        assert exprs, source
        unknown = {name for expr in exprs for name in metric_names(expr)} - exported
        assert unknown == set(), (source, unknown)
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ticker-service.json").read_text())
    assert dashboard["uid"] and len(dashboard["panels"]) >= 10
