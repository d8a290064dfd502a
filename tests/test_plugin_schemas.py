"""One schema per sink: the model beside the sink's code is what check-config and build_sinks both apply."""

from __future__ import annotations

import textwrap
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry

from bgpwatch.alerts.sinks import SINK_TYPES, build_sinks, check_sinks
from bgpwatch.alerts.sinks.base import HttpSinkParams, Sink, SinkParams, register_sink
from bgpwatch.config import AlertingConfig, ConfigError, load_config_text

BASE = """
collector: {local_as: 65000, router_id: 192.0.2.254}
sites:
  - name: par1
    prefixes: [203.0.113.0/26]
    peers: [{name: par1-rr1, address: 192.0.2.2, peer_as: 65001}]
"""


def config_with_sinks(sinks: str):
    return load_config_text(BASE + "alerting:\n  sinks:\n" + textwrap.indent(textwrap.dedent(sinks), "    "))


def test_keys_the_sinks_implement_are_accepted_by_the_config_and_reach_the_sinks():
    config = config_with_sinks(
        """
        - {type: log, format: json, evidence: true, max_attempts: 2}
        - {type: alertmanager, url: "http://127.0.0.1:9093", instance: bgpwatch-a, max_attempts: 3,
           generator_url: "http://bgpwatch-a.example.net:9179/", backoff_initial: 1, backoff_max: 10}
        - {type: webhook, url: "https://chat.example.net/hooks/noc", backoff_max: 5, queue_size: 50}
        """
    )
    log_sink, am, hook = build_sinks(config.alerting.sinks, CollectorRegistry())
    assert (log_sink.format, log_sink.evidence, log_sink.max_attempts) == ("json", True, 2)
    assert (am.instance, am.max_attempts, am.backoff_initial, am.backoff_max) == ("bgpwatch-a", 3, 1.0, 10.0)
    assert am.generator_url == "http://bgpwatch-a.example.net:9179/"
    assert (hook.backoff_max, hook.queue_size) == (5.0, 50)


def test_every_registered_sink_declares_its_model_and_the_union_is_built_from_them():
    union = AlertingConfig.model_fields["sinks"].annotation.__args__[0]
    members = set(union.__origin__.__args__) if hasattr(union, "__origin__") else set()
    assert members == {cls.Params for cls in SINK_TYPES.values()}
    for name, cls in SINK_TYPES.items():
        assert issubclass(cls.Params, SinkParams) and cls.Params.model_fields["type"].default == name
        # The code reads what the model declares: every field has a default or is required, no PARAMS left.
        assert not hasattr(cls, "PARAMS")


def test_config_and_build_sinks_say_the_same_thing():
    entry = {"type": "webhook", "url": "ftp://x.example", "backoff_initial": 9, "backoff_max": 3}
    with pytest.raises(ConfigError) as caught:
        config_with_sinks('- {type: webhook, url: "ftp://x.example", backoff_initial: 9, backoff_max: 3}')
    from_file = [p.split(": ", 1)[1] for p in caught.value.problems]
    assert from_file == check_sinks([entry])
    assert from_file[0].startswith("alerting.sinks[0].url: expected an http:// or https:// URL")


def test_backoff_order_and_authorization_sources_are_checked_for_every_http_sink():
    problems = check_sinks(
        [
            {"type": "log", "backoff_initial": 60, "backoff_max": 30},
            {"type": "alertmanager", "url": "http://u:p@127.0.0.1:9093", "token": "s3cret-token-value"},
        ]
    )
    assert problems[0] == "alerting.sinks[0]: backoff_initial: expected at most backoff_max"
    assert problems[1].startswith("alerting.sinks[1]: ") and "Authorization header" in problems[1]
    assert all("s3cret" not in p and "u:p@" not in p for p in problems)


def test_unknown_key_lists_what_that_sink_takes():
    problems = check_sinks([{"type": "log", "url": "http://x"}])
    assert problems == [
        "alerting.sinks[0].url: unknown key 'url' (expected one of: type, name, queue_size, timeout_seconds,"
        " max_attempts, backoff_initial, backoff_max, format, level, evidence)"
    ]


def test_a_sink_params_model_must_name_its_type():
    class Params(HttpSinkParams):
        type: Literal["other"] = "other"

    class Pager(Sink):
        type_name = "pager"

    Pager.Params = Params
    with pytest.raises(ValueError, match="Literal\\['pager'\\]"):
        register_sink(Pager)
    assert "pager" not in SINK_TYPES


@pytest.mark.parametrize(
    "module",
    ["bgpwatch.config", "bgpwatch.alerts.sinks", "bgpwatch.alerts.sinks.base", "bgpwatch.alerts.sinks.log"],
)
def test_config_and_sinks_import_in_either_order(module):
    import subprocess
    import sys

    code = f"import {module}\nfrom bgpwatch.config import Sink, AlertingConfig\nprint(AlertingConfig().sinks[0].type)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "log", result.stderr
