"""The monitoring files in deploy/ (issue 14): the Grafana dashboard and the alert rules speak
only the metric catalogue, promtool accepts the rules and the Prometheus configuration and
passes the rules' unit tests, and Prometheus scrapes every long-running lms service of
docker-compose.yml."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.processes import ROOT
from tests.support.promtool import ensure_promtool

DEPLOY = ROOT / "deploy"
# The shared catalogue (BRIEF.md of issue 14): every name the metrics helper exports.
CATALOGUE = {
    "lms_smtp_connections_total",
    "lms_smtp_mails_accepted_total",
    "lms_smtp_mails_refused_total",
    "lms_smtp_received_bytes_total",
    "lms_smtp_accept_seconds",
    "lms_imap_mails_taken_total",
    "lms_imap_errors_total",
    "lms_imap_last_success_timestamp_seconds",
    "lms_inbound_total",
    "lms_leads_created_total",
    "lms_lead_routed_seconds",
    "lms_autoresponse_relayed_seconds",
    "lms_outbound_total",
    "lms_relay_replies_total",
    "lms_dead_letters_total",
    "lms_escalations_fired_total",
    "lms_scheduler_pass_seconds",
    "lms_scheduler_lag_seconds",
    "lms_scheduler_last_pass_timestamp_seconds",
    "lms_queue_depth",
    "lms_queue_oldest_pending_seconds",
    "lms_webhook_deliveries_total",
    "lms_probe_seconds",
    "lms_probe_success",
    "lms_probe_last_run_timestamp_seconds",
}
HISTOGRAMS = {"lms_smtp_accept_seconds", "lms_lead_routed_seconds", "lms_autoresponse_relayed_seconds"}
HISTOGRAMS |= {"lms_scheduler_pass_seconds"}
NAME = re.compile(r"\blms_[a-z0-9_]+")


def metric_names(text: str) -> set[str]:
    """The catalogue names an expression uses (a histogram's _bucket/_sum/_count as itself)."""
    names = set()
    for name in NAME.findall(text):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        names.add(base if base in HISTOGRAMS else name)
    return names


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_dashboard_parses_and_shows_only_catalogue_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "lms.json").read_text())
    exprs = [node["expr"] for node in _walk(dashboard) if isinstance(node.get("expr"), str)]
    assert len(exprs) >= 20
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= CATALOGUE, used - CATALOGUE
    assert used == CATALOGUE, CATALOGUE - used  # and every figure of the catalogue is shown
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_the_alert_rules_use_only_catalogue_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= CATALOGUE, used - CATALOGUE
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"LmsImapMailboxSilent", "LmsMailStopped", "LmsRelayFailures", "LmsDeadLetters"} <= names
    assert {
        "LmsOldestPendingTooOld",
        "LmsSchedulerLagging",
        "LmsSchedulerStopped",
        "LmsProbeFailing",
    } <= names


def test_prometheus_scrapes_every_long_running_lms_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    ours = {n for n, s in services.items() if s.get("image", "").startswith("lms") and n != "migrate"}
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "lms"]
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {f"{name}:9100" for name in ours}
    assert compose["x-lms"]["environment"]["LMS_METRICS_LISTEN"] == "0.0.0.0:9100"
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus")
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]


@pytest.fixture(scope="module")
def promtool() -> str:
    return ensure_promtool()


def _run(promtool: str, *args: str) -> None:
    result = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_promtool_accepts_the_rules_and_the_configuration(promtool: str) -> None:
    _run(promtool, "check", "rules", "alerts.yml")
    _run(promtool, "check", "config", "prometheus.yml")


def test_the_alerts_fire_as_their_unit_tests_say(promtool: str) -> None:
    # Each alert the issue names has a case that must fire and one that must not.
    cases = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())["tests"]
    tested = {
        check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]
    }
    quiet = {
        check["alertname"] for case in cases for check in case["alert_rule_test"] if not check["exp_alerts"]
    }
    wanted = {
        "LmsDeadLetters",
        "LmsImapMailboxSilent",
        "LmsProbeFailing",
        "LmsRelayFailures",
        "LmsMailStopped",
        "LmsSchedulerStopped",
    }
    assert wanted <= tested and wanted <= quiet
    _run(promtool, "test", "rules", "alerts_test.yml")


def test_the_files_are_where_the_compose_file_mounts_them() -> None:
    for path in ("grafana/lms.json", "prometheus/prometheus.yml", "prometheus/alerts.yml"):
        assert (DEPLOY / path).is_file(), path
    assert (DEPLOY / "prometheus" / "alerts_test.yml").is_file()
