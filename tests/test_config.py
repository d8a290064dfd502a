"""Configuration loading: the example file, and every kind of mistake reported as one clear line."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bgpwatch.config import (
    AlertmanagerSink,
    Config,
    ConfigError,
    LogSink,
    WebhookSink,
    check_config,
    load_config,
    load_config_text,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "bgpwatch.example.yaml"

BASE: dict[str, Any] = {
    "collector": {"local_as": 65000, "router_id": "192.0.2.254"},
    "sites": [
        {
            "name": "par1",
            "prefixes": ["203.0.113.0/26", "2001:db8:1001::/48"],
            "peers": [{"name": "par1-rr1", "address": "192.0.2.2", "peer_as": 65001}],
        },
        {
            "name": "par2",
            "prefixes": ["203.0.113.64/26"],
            "peers": [{"name": "par2-rr1", "address": "198.51.100.2", "peer_as": 65002}],
        },
    ],
    "services": [{"name": "metrics-api", "prefixes": ["203.0.113.10/32"], "required_from": ["par1", "par2"]}],
}


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in a temporary directory so that messages name the file exactly as given ("bad.yaml")."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(text: str, name: str = "bad.yaml") -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def variant(change: Callable[[dict[str, Any]], Any]) -> str:
    """Return BASE as YAML after ``change`` edited a deep copy of it."""
    data = copy.deepcopy(BASE)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def peer0(data: dict[str, Any]) -> dict[str, Any]:
    return data["sites"][0]["peers"][0]


# ---------------------------------------------------------------------------------------------
# Valid files


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert check_config(EXAMPLE) == []
    assert [site.name for site in config.sites] == ["par1", "par2", "par3"]
    assert config.source == EXAMPLE
    assert config.collector.exabgp == "managed"
    assert config.collector.runtime_dir == Path("/run/bgpwatch")
    assert config.storage.path == Path("/var/lib/bgpwatch/bgpwatch.db")
    assert (config.api.host, config.api.port) == ("127.0.0.1", 9179)
    assert [sink.type for sink in config.alerting.sinks] == ["log", "alertmanager", "webhook"]
    assert isinstance(config.alerting.sinks[1], AlertmanagerSink)
    assert isinstance(config.alerting.sinks[2], WebhookSink)
    assert config.peer_by_address["192.0.2.2"].name == "par1-rr1"
    assert config.site_of_address["2001:db8:1001::2"] == "par1"
    assert config.site_by_name["par3"].peers[0].passive is True
    assert [service.name for service in config.services] == ["metrics-api", "object-storage"]
    assert config.detectors["session_down"] == {"for": 0.5, "flap_count": 3}
    assert config.watched_prefixes[0].origins == [65001, 65002, 65003]


def test_example_uses_documentation_addresses_only() -> None:
    import ipaddress

    documentation = [
        ipaddress.ip_network(net)
        for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
    ]
    config = load_config(EXAMPLE)
    prefixes = [p for site in config.sites for p in site.prefixes] + [
        p for service in config.services for p in service.prefixes
    ]
    addresses = [peer.address for peer in config.peers] + [config.collector.router_id]
    for text in prefixes + addresses:
        network = ipaddress.ip_network(text)
        assert any(network.subnet_of(doc) for doc in documentation if doc.version == network.version), text


def test_minimal_config_defaults(in_tmp: Path) -> None:
    config = load_config(write(yaml.safe_dump(BASE), "ok.yaml"))
    assert config.collector.exabgp == "managed"
    assert config.collector.hold_time == 90
    assert config.collector.relay_buffer_bytes == 64 << 20
    assert config.recording.path is None and config.recording.keep == 48
    assert config.api.listen == "127.0.0.1:9179"
    assert config.api.token is None
    assert config.alerting.sinks == [LogSink()]
    assert config.storage.retention_days == 90
    assert config.detectors == {}
    assert config.watched_prefixes == []
    assert [peer.name for peer in config.peers] == ["par1-rr1", "par2-rr1"]
    assert config.peer_by_name["par2-rr1"].address == "198.51.100.2"
    peer = config.peers[0]
    assert (peer.passive, peer.port, peer.local_as, peer.hold_time) == (False, 179, None, None)
    assert config.local_as_for(peer) == 65000
    assert config.hold_time_for(peer) == 90


def test_canonical_forms(in_tmp: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["sites"][0]["prefixes"] = ["2001:0DB8:1001:0000::/48", "203.0.113.0/26"]
        peer0(data).update(
            address="2001:0db8:0:0::0002", local_address="2001:db8::fe", local_as=65001, hold_time=0
        )
        data["api"] = {"listen": "[0:0::1]:8080"}
        data["services"][0]["prefixes"] = ["203.0.113.10"]

    config = load_config(write(variant(change), "ok.yaml"))
    assert config.sites[0].prefixes == ["2001:db8:1001::/48", "203.0.113.0/26"]
    assert "2001:db8::2" in config.peer_by_address
    assert config.site_of_address["2001:db8::2"] == "par1"
    assert config.api.listen == "[::1]:8080"
    assert (config.api.host, config.api.port) == ("::1", 8080)
    assert config.services[0].prefixes == ["203.0.113.10/32"]
    peer = config.peer_by_name["par1-rr1"]
    assert config.local_as_for(peer) == 65001
    assert config.hold_time_for(peer) == 0


def test_empty_sections_mean_defaults(in_tmp: Path) -> None:
    text = yaml.safe_dump(BASE) + "api:\nalerting:\n  sinks:\nwatched_prefixes:\ndetectors:\n"
    config = load_config(write(text, "ok.yaml"))
    assert config.api.listen == "127.0.0.1:9179"
    assert config.alerting.sinks == [LogSink()]
    assert config.watched_prefixes == []


def test_relative_paths_are_relative_to_the_file(in_tmp: Path) -> None:
    (in_tmp / "etc").mkdir()
    data = copy.deepcopy(BASE)
    data["storage"] = {"path": "state/bgpwatch.db"}
    data["collector"]["runtime_dir"] = "run"
    config = load_config(write(yaml.safe_dump(data), "etc/ok.yaml"))
    assert config.storage.path == in_tmp / "etc" / "state" / "bgpwatch.db"
    assert config.collector.runtime_dir == in_tmp / "etc" / "run"


def test_config_is_frozen(in_tmp: Path) -> None:
    config = load_config(write(yaml.safe_dump(BASE), "ok.yaml"))
    with pytest.raises(ValidationError):
        config.collector.local_as = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.peer_by_address["192.0.2.99"] = config.peers[0]  # type: ignore[index]


def test_load_config_text_and_model_validate_agree() -> None:
    config = load_config_text(yaml.safe_dump(BASE))
    assert config.source is None
    assert Config.model_validate(BASE) == config


def test_model_validate_checks_cross_references_too() -> None:
    data = copy.deepcopy(BASE)
    data["sites"][1]["name"] = "par1"
    with pytest.raises(ValidationError, match=r"sites\[1\]\.name: duplicate site name 'par1'"):
        Config.model_validate(data)


# ---------------------------------------------------------------------------------------------
# Bad files: each gives the key path and the gist of the problem, and check_config lists it.


def _set(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: list[str | int]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _append_site(site: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["sites"].append(site)


BAD = [
    pytest.param(
        _set(["sitez"], []),
        "sitez",
        "unknown key 'sitez' (expected one of: collector, sites",
        id="unknown-top",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "md5"], "x"),
        "sites[0].peers[0].md5",
        "unknown key 'md5' (expected one of: name, address, peer_as",
        id="unknown-nested",
    ),
    pytest.param(
        _set(["collector", "hold_tme"], 9), "collector.hold_tme", "did you mean 'hold_time'?", id="typo"
    ),
    pytest.param(
        _set(["sites", 0, "prefixes", 1], "2001:db8::/129"),
        "sites[0].prefixes[1]",
        "expected a prefix such as 203.0.113.0/24 or 2001:db8::/32, got '2001:db8::/129'",
        id="invalid-prefix",
    ),
    pytest.param(
        _set(["sites", 0, "prefixes", 0], "banana"),
        "sites[0].prefixes[0]",
        "got a string (not shown, in case it is a secret)",  # a word is not known to be harmless
        id="garbage-prefix",
    ),
    pytest.param(
        _set(["sites", 0, "prefixes", 0], "203.0.113.1/24"),
        "sites[0].prefixes[0]",
        "203.0.113.1/24 has host bits set; did you mean 203.0.113.0/24?",
        id="host-bits",
    ),
    pytest.param(
        _set(["services", 0, "prefixes", 0], "2001:db8::1/32"),
        "services[0].prefixes[0]",
        "has host bits set; did you mean 2001:db8::/32?",
        id="service-host-bits",
    ),
    pytest.param(
        _set(["sites", 0, "prefixes"], "203.0.113.0/26"),
        "sites[0].prefixes",
        "expected a list",
        id="prefixes-str",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "address"], "192.0.2.300"),
        "sites[0].peers[0].address",
        "expected an IPv4 or IPv6 address, got '192.0.2.300'",
        id="invalid-address",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "address"], "192.0.2.0/24"),
        "sites[0].peers[0].address",
        "not a prefix",
        id="address-is-prefix",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "peer_as"], 0),
        "sites[0].peers[0].peer_as",
        "expected an AS number (1-4294967295), got 0",
        id="asn-0",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "peer_as"], 2**32),
        "sites[0].peers[0].peer_as",
        "expected an AS number (1-4294967295), got 4294967296",
        id="asn-2**32",
    ),
    pytest.param(
        _set(["collector", "local_as"], "65000"),
        "collector.local_as",
        "expected an AS number (1-4294967295), got '65000'",
        id="asn-string",
    ),
    pytest.param(_set(["collector", "local_as"], True), "collector.local_as", "got true", id="asn-bool"),
    pytest.param(
        _set(["sites", 0, "peers", 0, "local_as"], -1),
        "sites[0].peers[0].local_as",
        "got -1",
        id="local-as-neg",
    ),
    pytest.param(
        _delete(["collector", "local_as"]), "collector.local_as", "required key is missing", id="missing-asn"
    ),
    pytest.param(_delete(["collector"]), "collector", "required key is missing", id="missing-collector"),
    pytest.param(
        _delete(["sites", 0, "name"]), "sites[0].name", "required key is missing", id="missing-site-name"
    ),
    pytest.param(
        _delete(["sites", 1, "peers", 0, "peer_as"]),
        "sites[1].peers[0].peer_as",
        "required key is missing",
        id="missing-peer-as",
    ),
    pytest.param(_set(["sites"], []), "sites", "expected at least 1 item", id="no-sites"),
    pytest.param(_set(["sites", 0, "name"], "par 1"), "sites[0].name", "expected a name", id="bad-name"),
    pytest.param(
        _set(["sites", 1, "name"], "par1"),
        "sites[1].name",
        "duplicate site name 'par1' (also sites[0])",
        id="duplicate-site",
    ),
    pytest.param(
        _set(["sites", 1, "peers", 0, "name"], "par1-rr1"),
        "sites[1].peers[0].name",
        "duplicate peer name 'par1-rr1' (already used by sites[0].peers[0] in site 'par1')",
        id="duplicate-peer-name",
    ),
    pytest.param(
        _set(["sites", 1, "peers", 0, "address"], "192.0.2.2"),
        "sites[1].peers[0].address",
        "address 192.0.2.2 is in two sites, 'par1' (peer 'par1-rr1', sites[0].peers[0]) and 'par2'",
        id="peer-in-two-sites",
    ),
    pytest.param(
        _append_site(
            {
                "name": "par3",
                "prefixes": [],
                "peers": [
                    {"name": "a", "address": "2001:db8::1", "peer_as": 1},
                    {"name": "b", "address": "2001:0db8:0000::0001", "peer_as": 1},
                ],
            }
        ),
        "sites[2].peers[1].address",
        "address 2001:db8::1 is already the address of peer 'a'",
        id="same-address-two-spellings",
    ),
    pytest.param(
        _set(["sites", 0, "prefixes", 1], "203.0.113.0/26"),
        "sites[0].prefixes[1]",
        "203.0.113.0/26 is listed twice",
        id="duplicate-prefix",
    ),
    pytest.param(
        _set(["services", 0, "required_from"], ["par1", "par9"]),
        "services[0].required_from[1]",
        "unknown site 'par9' (sites: par1, par2)",
        id="service-unknown-site",
    ),
    pytest.param(
        _set(["services", 0, "required_from"], []),
        "services[0].required_from",
        "expected at least 1 item",
        id="service-no-site",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "hold_time"], 2),
        "sites[0].peers[0].hold_time",
        "0 (no keepalives) or 3-65535, got 2",
        id="hold-time-2",
    ),
    pytest.param(
        _set(["collector", "hold_time"], 65536), "collector.hold_time", "got 65536", id="hold-time-65536"
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "passive"], "yes"),
        "sites[0].peers[0].passive",
        "expected true or false, got 'yes'",
        id="passive-string",
    ),
    pytest.param(
        _set(["collector", "exabgp"], "maneged"),
        "collector.exabgp",
        "expected 'managed' or 'external', got 'maneged'",
        id="exabgp-mode",
    ),
    pytest.param(
        _set(["collector", "router_id"], "2001:db8::1"),
        "collector.router_id",
        "expected a non-zero IPv4 address",
        id="router-id-v6",
    ),
    pytest.param(
        _set(["sites", 0, "peers", 0, "local_address"], "2001:db8::1"),
        "sites[0].peers[0].local_address",
        "expected an IPv4 address like the peer address 192.0.2.2",
        id="local-address-family",
    ),
    pytest.param(
        _set(["api"], {"listen": "127.0.0.1:99999"}),
        "api.listen",
        "expected a port 1-65535",
        id="listen-port-high",
    ),
    pytest.param(
        _set(["api"], {"listen": "127.0.0.1:0"}), "api.listen", "expected a port 1-65535", id="listen-port-0"
    ),
    pytest.param(
        _set(["api"], {"listen": "127.0.0.1"}), "api.listen", "expected HOST:PORT", id="listen-no-port"
    ),
    pytest.param(_set(["api"], {"listen": "::1:9179"}), "api.listen", "in brackets", id="listen-v6-bare"),
    pytest.param(
        _set(["api"], {"listen": ["::1"]}), "api.listen", "YAML reads [...] as a list", id="listen-list"
    ),
    pytest.param(
        _set(["alerting"], {"sinks": [{"type": "slack", "url": "https://x.example"}]}),
        "alerting.sinks[0].type",
        "expected one of: 'log', 'alertmanager', 'webhook', got a string (not shown",
        id="sink-type",
    ),
    pytest.param(
        _set(["alerting"], {"sinks": [{"url": "https://x.example"}]}),
        "alerting.sinks[0].type",
        "required key is missing",
        id="sink-no-type",
    ),
    pytest.param(
        _set(["alerting"], {"sinks": [{"type": "log"}, {"type": "webhook"}]}),
        "alerting.sinks[1].url",
        "required key is missing",
        id="webhook-no-url",
    ),
    pytest.param(
        _set(["alerting"], {"sinks": [{"type": "alertmanager", "url": "ftp://am.example"}]}),
        "alerting.sinks[0].url",
        "expected an http:// or https:// URL",
        id="sink-url-scheme",
    ),
    pytest.param(
        _set(["alerting"], {"sinks": [{"type": "alertmanager", "url": "http://am", "timeout_seconds": 0}]}),
        "alerting.sinks[0].timeout_seconds",
        "expected a number of seconds",
        id="sink-timeout",
    ),
    pytest.param(
        _set(["alerting"], {"sinks": [{"type": "log", "colour": "red"}]}),
        "alerting.sinks[0].colour",
        "unknown key 'colour' (expected one of: type, name, queue_size, timeout_seconds, max_attempts, backoff_initial, "
        "backoff_max, format, level, evidence)",
        id="sink-unknown-key",
    ),
    pytest.param(
        _set(["storage"], {"path": ""}), "storage.path", "expected a file system path", id="storage-path"
    ),
    pytest.param(
        _set(["detectors"], {"site_down": 3}), "detectors.site_down", "expected a mapping", id="detector"
    ),
    pytest.param(
        _set(["watched_prefixes"], [{"prefix": "203.0.113.0/24", "origins": ["AS65001"]}]),
        "watched_prefixes[0].origins[0]",
        "expected an AS number",
        id="watched-origin",
    ),
]


@pytest.mark.parametrize(("change", "path", "gist"), BAD)
def test_bad_config(in_tmp: Path, change: Callable[[dict[str, Any]], None], path: str, gist: str) -> None:
    name = write(variant(change))
    problems = check_config(name)
    assert problems, "expected at least one problem"
    matching = [p for p in problems if p.startswith(f"bad.yaml: {path}: ")]
    assert matching, problems
    assert any(gist in p for p in matching), problems
    with pytest.raises(ConfigError) as caught:
        load_config(name)
    assert caught.value.problems == problems
    assert str(caught.value) == "\n".join(problems)


def test_exact_message_for_a_bad_address(in_tmp: Path) -> None:
    data = copy.deepcopy(BASE)
    data["sites"][0]["peers"].append({"name": "par1-rr2", "address": "192.0.2.300", "peer_as": 65001})
    assert check_config(write(yaml.safe_dump(data))) == [
        "bad.yaml: sites[0].peers[1].address: expected an IPv4 or IPv6 address, got '192.0.2.300'"
    ]


def test_several_problems_reported_together_in_file_order(in_tmp: Path) -> None:
    text = """\
collector:
  local_as: 0
  router_id: 192.0.2.254
  colour: blue
sites:
  - name: par1
    prefixes: [203.0.113.1/26]
    peers:
      - {name: rr1, address: 192.0.2.300, peer_as: 65001}
  - name: par1
    prefixes: []
services:
  - {name: api, prefixes: [203.0.113.10/32], required_from: [par7]}
api:
  listen: 127.0.0.1:70000
"""
    problems = check_config(write(text))
    assert [p.split(": ")[1] for p in problems] == [
        "collector.local_as",
        "collector.colour",
        "sites[0].prefixes[0]",
        "sites[0].peers[0].address",
        "sites[1].name",
        "services[0].required_from[0]",
        "api.listen",
    ]


def test_a_misnamed_site_does_not_cascade_into_unknown_site(in_tmp: Path) -> None:
    data = copy.deepcopy(BASE)
    data["sites"][1]["name"] = "par 2"
    problems = check_config(write(yaml.safe_dump(data)))
    assert len(problems) == 1
    assert problems[0].startswith("bad.yaml: sites[1].name: expected a name")


def test_empty_file(in_tmp: Path) -> None:
    problems = check_config(write(""))
    assert problems == [
        "bad.yaml: no settings: the file is empty or holds only comments (expected collector and sites)"
    ]


def test_file_of_only_comments(in_tmp: Path) -> None:
    problems = check_config(write("# nothing here yet\n\n   # still nothing\n"))
    assert len(problems) == 1
    assert problems[0].startswith("bad.yaml: no settings")


def test_top_level_list(in_tmp: Path) -> None:
    assert check_config(write("- collector\n- sites\n")) == [
        "bad.yaml: expected a mapping of top-level keys (collector, sites, ...), got a list of 2 items"
    ]


def test_top_level_scalar(in_tmp: Path) -> None:
    assert check_config(write("hello\n")) == [
        "bad.yaml: expected a mapping of top-level keys (collector, sites, ...), got a string "
        "(not shown, in case it is a secret)"
    ]


def test_yaml_syntax_error_has_line_and_column(in_tmp: Path) -> None:
    text = "collector:\n  local_as: 65000\n router_id: 192.0.2.254\n"
    problems = check_config(write(text))
    assert len(problems) == 1
    assert problems[0].startswith("bad.yaml:3:2: YAML syntax error: ")
    assert "indentation" in problems[0]


def test_yaml_unquoted_bracketed_ipv6(in_tmp: Path) -> None:
    text = yaml.safe_dump(BASE) + "api:\n  listen: [::1]:9179\n"
    problems = check_config(write(text))
    assert len(problems) == 1
    assert problems[0].startswith("bad.yaml:")
    assert ": YAML syntax error: " in problems[0] and "quote" in problems[0]


def test_yaml_tab_indentation(in_tmp: Path) -> None:
    problems = check_config(write("collector:\n\tlocal_as: 1\n"))
    assert problems[0].startswith("bad.yaml:2:1: YAML syntax error: ")
    assert "tabs" in problems[0]


def test_duplicate_yaml_keys_are_reported(in_tmp: Path) -> None:
    text = yaml.safe_dump(BASE) + "collector: {local_as: 1, router_id: 192.0.2.1}\n"
    problems = check_config(write(text))
    assert len(problems) == 1
    assert problems[0].startswith("bad.yaml:")
    assert "duplicate key 'collector' (first at line 1)" in problems[0]


def test_yaml_merge_keys_are_not_duplicates(in_tmp: Path) -> None:
    text = """\
collector: {local_as: 65000, router_id: 192.0.2.254}
sites:
  - name: par1
    prefixes: []
    peers:
      - &rr {name: par1-rr1, address: 192.0.2.2, peer_as: 65001, hold_time: 9}
      - {<<: *rr, name: par1-rr2, address: 192.0.2.3}
"""
    config = load_config(write(text, "ok.yaml"))
    assert [(peer.name, peer.hold_time) for peer in config.peers] == [("par1-rr1", 9), ("par1-rr2", 9)]


def test_control_character(in_tmp: Path) -> None:
    assert check_config(write("collector:\n  local_as: \x07\n")) == [
        "bad.yaml:2:13: YAML syntax error: unacceptable character #x0007"
    ]


def test_non_existent_file(in_tmp: Path) -> None:
    problems = check_config("missing.yaml")
    assert problems == ["missing.yaml: cannot read the file: No such file or directory"]


def test_directory_instead_of_file(in_tmp: Path) -> None:
    (in_tmp / "conf.d").mkdir()
    assert check_config("conf.d") == [
        "conf.d: cannot read the file: it is a directory; expected a regular YAML file"
    ]


def test_not_utf8(in_tmp: Path) -> None:
    Path("bad.yaml").write_bytes(b"collector: \xff\n")
    assert check_config("bad.yaml") == ["bad.yaml: not UTF-8 text (invalid byte at offset 11)"]


@pytest.mark.parametrize(
    "text",
    [
        "sites: 5\ncollector: []\n",
        "sites: [[1], 2, null]\ncollector: {local_as: 1, router_id: 192.0.2.1}\n",
        "1: 2\nnull: 3\n",
        "collector: {local_as: 1.5, router_id: 3}\nsites: [{name: 7, prefixes: [7], peers: {a: 1}}]\n",
        "alerting: {sinks: {a: 1}}\ndetectors: [1]\nstorage: 5\napi: {listen: 5, token: [1]}\n",
        "alerting: {sinks: [5, [1], {type: [1]}, {type: webhook, url: 5, headers: [1]}]}\n",
        "services: [{name: s, prefixes: [], required_from: [1, null]}]\nsites: {}\n",
        "watched_prefixes: [{prefix: 1, origins: 5}, 7]\ndetectors: {1: {}}\n",
        "sites: [{name: a, prefixes: [2001:db8::/32], peers: [{address: [1]}, {address: 2001:db8::1}]}]\n",
    ],
)
def test_garbage_never_raises_unexpectedly(in_tmp: Path, text: str) -> None:
    problems = check_config(write(text))
    assert problems
    assert all(isinstance(p, str) and p.startswith("bad.yaml: ") and "\n" not in p for p in problems), (
        problems
    )


# ---------------------------------------------------------------------------------------------
# Secrets


SECRET = "s3cr3t-md5-Zq9"
TOKEN = "tok-Wx7-very-secret"
HOOK = "https://hooks.example.net/services/T000/B000/hookSECRETpath"


def _secret_config() -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    peer0(data)["md5_password"] = SECRET
    data["api"] = {"token": TOKEN}
    data["alerting"] = {
        "sinks": [
            {"type": "webhook", "url": HOOK, "token": TOKEN, "headers": {"X-Key": TOKEN}, "slack": True}
        ]
    }
    return data


def _assert_no_secret(text: str) -> None:
    for secret in (SECRET, TOKEN, "hookSECRETpath"):
        assert secret not in text


def test_secrets_absent_from_repr_and_dumps(in_tmp: Path) -> None:
    config = load_config(write(yaml.safe_dump(_secret_config()), "ok.yaml"))
    assert config.peers[0].md5_password is not None
    assert config.peers[0].md5_password.get_secret_value() == SECRET
    assert config.api.token is not None and config.api.token.get_secret_value() == TOKEN
    sink = config.alerting.sinks[0]
    assert isinstance(sink, WebhookSink) and sink.url == HOOK and sink.headers == {"X-Key": TOKEN}
    for text in (
        repr(config),
        str(config),
        repr(config.peers[0]),
        repr(config.peer_by_address),
        config.model_dump_json(),
    ):
        assert SECRET not in text
    _assert_no_secret(repr(config))
    _assert_no_secret(str(config.alerting))


def test_example_md5_password_not_in_repr() -> None:
    config = load_config(EXAMPLE)
    password = config.peers[0].md5_password
    assert password is not None
    assert password.get_secret_value() not in repr(config)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_set(["sites", 0, "peers", 0, "md5_password"], SECRET * 10), id="md5-too-long"),
        pytest.param(_set(["sites", 0, "peers", 0, "md5_password"], SECRET + '"'), id="md5-quote"),
        pytest.param(_set(["sites", 0, "peers", 0, "peer_as"], "bad"), id="other-field-of-the-peer"),
        pytest.param(_set(["sites", 0, "peers", 0], [SECRET]), id="peer-as-list"),
        pytest.param(_set(["sites", 0, "peers", 0, "md5_passwd"], SECRET), id="md5-typo"),
        pytest.param(_set(["api", "token"], ""), id="token-empty"),
        pytest.param(_set(["alerting", "sinks", 0, "url"], "ftp://x/hookSECRETpath"), id="hook-url-scheme"),
        pytest.param(_set(["alerting", "sinks", 0, "url"], "hookSECRETpath"), id="hook-url-relative"),
        pytest.param(_set(["alerting", "sinks", 0, "headers"], {"X-Key": [TOKEN]}), id="header-not-str"),
        pytest.param(
            _set(["alerting", "sinks", 0, "headers"], {"X-Key": TOKEN + "\nX: y"}), id="header-newline"
        ),
        pytest.param(_set(["alerting", "sinks", 0], [TOKEN]), id="sink-as-list"),
        pytest.param(_set(["sites", 0, "peers", 0, "md5_password"], {"x": SECRET}), id="md5-mapping"),
    ],
)
def test_secrets_never_in_problems(in_tmp: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = _secret_config()
    change(data)
    name = write(yaml.safe_dump(data))
    problems = check_config(name)
    assert problems
    _assert_no_secret("\n".join(problems))
    with pytest.raises(ConfigError) as caught:
        load_config(name)
    _assert_no_secret(str(caught.value) + repr(caught.value))
    # Not chained to pydantic's error, whose text could quote the secret in a logged traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_md5_problem_names_the_key(in_tmp: Path) -> None:
    data = _secret_config()
    peer0(data)["md5_password"] = SECRET * 10
    problems = check_config(write(yaml.safe_dump(data)))
    assert problems == [
        "bad.yaml: sites[0].peers[0].md5_password: expected a password of 1-80 printable ASCII characters, "
        "without quotes or backslashes"
    ]


def test_secret_not_in_validation_error_from_python(in_tmp: Path) -> None:
    data = _secret_config()
    peer0(data)["md5_password"] = SECRET + "'"
    peer0(data)["peer_as"] = SECRET
    with pytest.raises(ValidationError) as caught:
        Config.model_validate(data)
    _assert_no_secret(str(caught.value))


def test_detector_parameters_are_checked_with_the_rest(tmp_path):
    example = (Path(__file__).parent.parent / "config" / "bgpwatch.example.yaml").read_text()
    path = tmp_path / "bad.yaml"
    path.write_text(example + "\ndetectors:\n  site_down: {for: -1}\n  no_such_detector: {}\n")
    problems = check_config(path)
    assert any("detectors.no_such_detector" in p and "unknown detector" in p for p in problems), problems
    assert any(p.startswith(f"{path}: detectors.site_down.for") for p in problems), problems
