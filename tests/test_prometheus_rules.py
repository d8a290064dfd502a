"""Check the Prometheus rules, the Alertmanager configuration and the Grafana dashboard in config/."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import alertmanager_server

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
RULES = CONFIG / "prometheus" / "bgpwatch.rules.yml"
RULE_TESTS = CONFIG / "prometheus" / "tests" / "bgpwatch.rules.test.yml"
PROMETHEUS_CONFIG = CONFIG / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = CONFIG / "alertmanager" / "alertmanager.yml"
DASHBOARD = CONFIG / "grafana" / "bgpwatch-dashboard.json"

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

# BRIEF.md "Metrics", the contract; plus bgpwatch_sink_failures_total{sink}, which the alert-sink rule
# and panel need and which the lead has yet to add to that list.
CONTRACT_METRICS = frozenset(
    {
        "bgpwatch_build_info",
        "bgpwatch_peer_up",
        "bgpwatch_peer_routes",
        "bgpwatch_peer_last_message_age_seconds",
        "bgpwatch_announcements_total",
        "bgpwatch_withdrawals_total",
        "bgpwatch_ingest_lines_total",
        "bgpwatch_ingest_errors_total",
        "bgpwatch_exabgp_restarts_total",
        "bgpwatch_exabgp_up",
        "bgpwatch_relay_dropped_lines_total",
        "bgpwatch_last_message_timestamp_seconds",
        "bgpwatch_config_last_reload_successful",
        "bgpwatch_attribute_sets",
        "bgpwatch_site_up",
        "bgpwatch_site_visibility_ratio",
        "bgpwatch_topology_islands",
        "bgpwatch_service_reachable",
        "bgpwatch_site_stale_routes",
        "bgpwatch_alerts_firing",
        "bgpwatch_sink_failures_total",
        "bgpwatch_ingest_lag_seconds_bucket",
        # On the pipeline's clock (issue 11): the feed-silence rule and panel, replays included.
        "bgpwatch_last_message_age_seconds",
        "bgpwatch_stream_time_seconds",
        "bgpwatch_sink_queue_length",
        "bgpwatch_sink_dropped_total",
        # RPKI (issue 13): exported only when rpki.rtr caches are configured.
        "bgpwatch_rpki_usable",
    }
)
# `up` from Prometheus; process_* from prometheus_client's ProcessCollector on the daemon's registry.
GENERIC_METRICS = frozenset(
    {
        "up",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    }
)

# DESIGN.md, "Alert transitions": the kinds the daemon names.
CONTRACT_KINDS = (
    "session_down",
    "site_down",
    "stale_routes",
    "topology_split",
    "visibility_loss",
    "service_unreachable",
    "mass_withdrawal",
    "update_storm",
    "not_converged",
    "origin_change",
    "more_specific",
    "collector_degraded",
)
# The metric a Prometheus fallback of each kind must watch; None: no metric counterpart.
KIND_METRIC: dict[str, str | None] = {
    "session_down": "bgpwatch_peer_up",
    "site_down": "bgpwatch_site_up",
    "stale_routes": "bgpwatch_site_stale_routes",
    "topology_split": "bgpwatch_topology_islands",
    "visibility_loss": "bgpwatch_site_visibility_ratio",
    "service_unreachable": "bgpwatch_service_reachable",
    "mass_withdrawal": "bgpwatch_withdrawals_total",
    "update_storm": "bgpwatch_announcements_total",
    "collector_degraded": "bgpwatch_exabgp_up",
    "not_converged": None,  # End-of-RIB is not exported
    "origin_change": None,  # per-prefix finding
    "more_specific": None,  # per-prefix finding
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<expr>.*),\s*)?(?P<label>\w+)\s*\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if match.group(2) or match.group(1).lower() in _KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text())


def rules(kind: str) -> list[dict[str, Any]]:
    """Return the rules of bgpwatch.rules.yml, `alert` or `record` ones."""
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if kind in rule]


def dashboard_panels() -> list[dict[str, Any]]:
    """Return every panel of the dashboard, rows' nested panels included."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_expressions() -> list[str]:
    """Return every PromQL expression of the dashboard: panel targets and template variable queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = _LABEL_VALUES.match(query)
        assert match, f"variable {variable['name']}: unsupported query {query!r}"
        if match.group("expr"):
            exprs.append(match.group("expr"))
    return exprs


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a checker from the repository root and return its result."""
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def alertnames(matchers: list[str]) -> set[str]:
    """Return the alert names an Alertmanager matcher list selects (regex alternatives split)."""
    names: set[str] = set()
    for matcher in matchers:
        match = re.fullmatch(r'\s*alertname\s*(=~|=)\s*"([^"]*)"\s*', matcher)
        if match:
            names.update(match.group(2).split("|") if match.group(1) == "=~" else [match.group(2)])
    return names


# ------------------------------------------------------------------------------------------ parser


def test_metric_names_sees_through_promql_syntax() -> None:
    expr = (
        'sum by (site, peer) (rate(bgpwatch_withdrawals_total{site=~"$site", x="up"}[$__rate_interval])) '
        '> 0.5 * bgpwatch_peer_routes offset 5m and on (instance) up{job="bgpwatch"} == 1e3 '
        "or absent(time()) unless label_replace(bgpwatch_site_up, 'a', '$1', 'b', '(.*)')"
    )
    assert metric_names(expr) == {
        "bgpwatch_withdrawals_total",
        "bgpwatch_peer_routes",
        "up",
        "bgpwatch_site_up",
    }
    assert metric_names("site:bgpwatch_peer_up:sum / 2") == {"site:bgpwatch_peer_up:sum"}


# ------------------------------------------------------------------------------------------ promtool


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_check_rules() -> None:
    result = run([PROMTOOL, "check", "rules", str(RULES.relative_to(ROOT))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_test_rules() -> None:
    result = run([PROMTOOL, "test", "rules", str(RULE_TESTS.relative_to(ROOT))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_check_prometheus_config() -> None:
    result = run([PROMTOOL, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT))])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    substitutions = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
    records = []
    for index, expr in enumerate(dashboard_expressions()):
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        records.append({"record": f"dashboard:expr_{index}:check", "expr": _GRAFANA_VARIABLE.sub(".*", expr)})
    rules_file = tmp_path / "dashboard.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = run([PROMTOOL, "check", "rules", str(rules_file)])
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------ rules


def test_rules_select_only_contract_metrics() -> None:
    recorded = {rule["record"] for rule in rules("record")}
    allowed = CONTRACT_METRICS | GENERIC_METRICS | recorded
    for rule in rules("record") + rules("alert"):
        unknown = metric_names(rule["expr"]) - allowed
        assert not unknown, (
            f"{rule.get('alert') or rule.get('record')}: not in the metric contract: {unknown}"
        )


def test_alerting_rules_carry_routing_labels_and_annotations() -> None:
    for rule in rules("alert"):
        name = rule["alert"]
        assert name.startswith("Bgpwatch"), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["labels"]["source"] == "prometheus", name
        assert rule["labels"].get("kind", "session_down") in CONTRACT_KINDS, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name


def test_every_kind_with_a_metric_has_a_fallback_rule() -> None:
    assert set(KIND_METRIC) == set(CONTRACT_KINDS)
    by_kind = {rule["labels"]["kind"]: rule for rule in rules("alert") if "kind" in rule["labels"]}
    for kind, metric in KIND_METRIC.items():
        if metric is None:
            assert kind not in by_kind, f"{kind} has no metric counterpart, yet a rule claims it"
            continue
        assert kind in by_kind, f"no Prometheus rule covers {kind}"
        assert metric in metric_names(by_kind[kind]["expr"]), (
            f"{by_kind[kind]['alert']} does not watch {metric}"
        )


def test_monitor_of_the_monitor_rules_exist() -> None:
    names = {rule["alert"] for rule in rules("alert")}
    assert {
        "BgpwatchAbsent",
        "BgpwatchFeedSilent",
        "BgpwatchExabgpRestarting",
        "BgpwatchIngestErrors",
        "BgpwatchConfigReloadFailed",
        "BgpwatchAlertSinkFailing",
    } <= names
    absent = next(rule for rule in rules("alert") if rule["alert"] == "BgpwatchAbsent")
    assert "absent(" in absent["expr"] and "up{" in absent["expr"]


def test_unit_tests_cover_every_rule_firing_and_not_firing() -> None:
    cases = load_yaml(RULE_TESTS)["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    tested_exprs = []
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
        tested_exprs.extend(check["expr"] for check in case.get("promql_expr_test", []))
    alerts = {rule["alert"] for rule in rules("alert")}
    assert alerts - firing == set(), "rules never tested firing"
    assert alerts - quiet == set(), "rules never tested not firing"
    recorded = {rule["record"] for rule in rules("record")}
    assert recorded - {name for expr in tested_exprs for name in metric_names(expr)} == set()


# ------------------------------------------------------------------------------------------ alertmanager


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
def test_amtool_check_config() -> None:
    result = run([AMTOOL, "check-config", str(ALERTMANAGER_CONFIG.relative_to(ROOT))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "site_down", "severity": "critical", "incident": "i", "site": "par1"}, "oncall,chat"),
        ({"alertname": "session_down", "severity": "warning", "incident": "i", "peer": "p"}, "chat"),
        ({"alertname": "BgpwatchAbsent", "severity": "critical", "source": "prometheus"}, "oncall,chat"),
        ({"alertname": "BgpwatchIngestErrors", "severity": "warning", "source": "prometheus"}, "chat"),
        # Planned work (a maintenance window, a GRACEFUL_SHUTDOWN drain) is never paged.
        (
            {
                "alertname": "site_down",
                "severity": "info",
                "incident": "i",
                "site": "p",
                "planned": "maintenance",
            },
            "chat",
        ),
        (
            {
                "alertname": "site_down",
                "severity": "critical",
                "incident": "i",
                "planned": "graceful_shutdown",
            },
            "chat",
        ),
    ],
)
def test_alertmanager_routes_critical_to_oncall(labels: dict[str, str], receivers: str) -> None:
    pairs = [f"{key}={value}" for key, value in labels.items()]
    result = run([AMTOOL, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *pairs])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def _duration(text: str) -> float:
    """Return an Alertmanager duration ("15s", "4h", "1h30m") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", text)
    assert "".join(number + unit for number, unit in parts) == text, text
    return sum(int(number) * units[unit] for number, unit in parts)


def test_alertmanager_groups_daemon_alerts_by_incident_and_pages_once() -> None:
    """The routing tree's settings behind "one page per incident" (see alertmanager.yml)."""
    config = load_yaml(ALERTMANAGER_CONFIG)
    route = config["route"]
    assert route["group_by"] == ["incident"]
    routes = route["routes"]
    prometheus, planned, pager, chat = routes
    assert prometheus["matchers"] == ['source="prometheus"'] and prometheus["group_by"] == ["alertname"]
    assert planned == {"matchers": ['planned=~".+"'], "receiver": "chat"}
    assert pager["matchers"] == ['severity="critical"'] and pager["receiver"] == "oncall"
    assert pager["continue"] is True
    # The pager's group is notified again only at a group_interval tick: hours, far longer than an
    # incident evolves, and equal to the repeat (the reminder) so nothing else re-pages before it.
    assert _duration(pager["group_interval"]) == _duration(pager["repeat_interval"]) >= 3600
    # Chat inherits the root's short interval: the incident's updates within seconds.
    assert "group_interval" not in chat and _duration(route["group_interval"]) <= 60
    assert _duration(route["group_wait"]) <= 30  # the first page waits this long at most
    [oncall] = [r for r in config["receivers"] if r["name"] == "oncall"]
    assert all(not c.get("send_resolved", True) for c in oncall["pagerduty_configs"])
    assert config["templates"] == ["bgpwatch.tmpl"]
    assert (ALERTMANAGER_CONFIG.parent / "bgpwatch.tmpl").exists()


def test_inhibit_rules_name_only_known_alerts() -> None:
    known = set(CONTRACT_KINDS) | {rule["alert"] for rule in rules("alert")}
    for rule in load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            names = alertnames(rule[side])
            assert names, f"{side} without alertname: {rule}"
            assert names <= known, f"unknown alert names {names - known}"


def test_every_fallback_rule_is_inhibited_by_its_daemon_twin() -> None:
    inhibit_rules = load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
    for rule in rules("alert"):
        kind = rule["labels"].get("kind")
        if kind is None:
            continue
        assert any(
            kind in alertnames(inhibit["source_matchers"])
            and rule["alert"] in alertnames(inhibit["target_matchers"])
            for inhibit in inhibit_rules
        ), f"{rule['alert']} would page twice with the daemon's {kind}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """Run the example Alertmanager configuration on loopback, receivers pointed at a closed port."""
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager not installed")
    # The shipped configuration, its receivers pointed at a closed port (never a real pager/chat).
    config = alertmanager_server.shipped_config("http://127.0.0.1:9", ALERTMANAGER_CONFIG)
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config_file}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("Alertmanager did not start")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_alertmanager_inhibits_and_deduplicates(alertmanager: str) -> None:
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}
    prom = {"source": "prometheus", "job": "bgpwatch"}
    sent = {
        # par1 is down: the daemon's incident.
        "site_down/par1": {
            "alertname": "site_down",
            "severity": "critical",
            "incident": "i1",
            "site": "par1",
        },
        "stale_routes/par1": {
            "alertname": "stale_routes",
            "severity": "critical",
            "incident": "i1",
            "site": "par1",
        },
        "session_down/par1": {
            "alertname": "session_down",
            "severity": "warning",
            "incident": "i1",
            "site": "par1",
            "peer": "par1-rr1",
        },
        "fallback/par1": {
            "alertname": "BgpwatchSiteDown",
            "severity": "critical",
            "kind": "site_down",
            "site": "par1",
            "instance": "a:9179",
            **prom,
        },
        # par7 is in a maintenance window: the daemon's planned site_down (chat only) still mutes
        # the Prometheus fallback, which would page.
        "planned/par7": {
            "alertname": "site_down",
            "severity": "info",
            "incident": "i7",
            "site": "par7",
            "planned": "maintenance",
        },
        "fallback/par7": {
            "alertname": "BgpwatchSiteDown",
            "severity": "critical",
            "kind": "site_down",
            "site": "par7",
            "instance": "c:9179",  # not the degraded collector a: only the planned alert mutes it
            **prom,
        },
        # Only Prometheus saw par2 go down (daemon sink broken): the fallback pages.
        "fallback/par2": {
            "alertname": "BgpwatchSiteDown",
            "severity": "critical",
            "kind": "site_down",
            "site": "par2",
            "instance": "b:9179",
            **prom,
        },
        # A split: visibility loss inside it is implied, the broken service is not.
        "split": {
            "alertname": "topology_split",
            "severity": "critical",
            "incident": "i2",
            "islands": "par1 | par2",
        },
        "visibility": {
            "alertname": "visibility_loss",
            "severity": "warning",
            "incident": "i2",
            "site": "par3",
        },
        "service": {
            "alertname": "service_unreachable",
            "severity": "critical",
            "incident": "i2",
            "service": "metrics-api",
            "site": "par2",
        },
        # Collector a is degraded: its Prometheus-side session alerts are suspect, b's are not.
        "collector/a": {
            "alertname": "BgpwatchCollectorDegraded",
            "severity": "critical",
            "instance": "a:9179",
            **prom,
        },
        "session/a": {
            "alertname": "BgpwatchSessionDown",
            "severity": "warning",
            "kind": "session_down",
            "peer": "par9-rr1",
            "site": "par9",
            "instance": "a:9179",
            **prom,
        },
        "session/b": {
            "alertname": "BgpwatchSessionDown",
            "severity": "warning",
            "kind": "session_down",
            "peer": "par8-rr1",
            "site": "par8",
            "instance": "b:9179",
            **prom,
        },
    }
    for labels in sent.values():
        labels.setdefault("source", "bgpwatch")  # the daemon's Alertmanager sink's static label
    # The HA partner sends the same incident alert: same labels, so the same alert.
    posted = [{"labels": labels, **window} for labels in sent.values()]
    posted.append({"labels": dict(sent["site_down/par1"]), **window})
    _request(f"{alertmanager}/api/v2/alerts", posted)

    inhibited_expected = {"fallback/par1", "session_down/par1", "visibility", "session/a", "fallback/par7"}
    keys = {tuple(sorted(labels.items())): key for key, labels in sent.items()}
    deadline = time.monotonic() + 10
    while True:
        alerts = _request(f"{alertmanager}/api/v2/alerts")
        inhibited = {keys[tuple(sorted(a["labels"].items()))] for a in alerts if a["status"]["inhibitedBy"]}
        if inhibited == inhibited_expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the inhibitor learns its sources asynchronously
    assert len(alerts) == len(sent)
    assert inhibited == inhibited_expected


# ------------------------------------------------------------------------------------------ grafana


def test_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    panels = dashboard_panels()
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_selects_only_contract_metrics() -> None:
    seen: set[str] = set()
    for expr in dashboard_expressions():
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= CONTRACT_METRICS | GENERIC_METRICS, f"{expr!r}: {names - CONTRACT_METRICS}"
        seen |= names
    # The panels the dashboard promises.
    assert {
        "bgpwatch_peer_up",
        "bgpwatch_peer_routes",
        "bgpwatch_site_visibility_ratio",
        "bgpwatch_topology_islands",
        "bgpwatch_alerts_firing",
        "bgpwatch_ingest_lines_total",
        "bgpwatch_ingest_errors_total",
        "bgpwatch_exabgp_restarts_total",
        "bgpwatch_sink_failures_total",
    } <= seen


def test_dashboard_visibility_matrix_pivots_sites() -> None:
    panel = next(
        panel for panel in dashboard_panels() if "bgpwatch_site_visibility_ratio" in json.dumps(panel)
    )
    pivot = next(step for step in panel["transformations"] if step["id"] == "groupingToMatrix")
    assert (pivot["options"]["rowField"], pivot["options"]["columnField"]) == ("from_site", "to_site")
