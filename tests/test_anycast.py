"""Anycast: a prefix originated by several sites, declared, credited to each, held while one origin lives."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpwatch.config import ConfigError, load_config, load_config_text
from bgpwatch.rib.prefix import parse_prefix
from bgpwatch.topology import SiteModel
from tests.test_detect_scenarios import LAB_CONFIG, run_scenario

ANYCAST = "203.0.113.250/32"
P1 = ["203.0.113.0/27", "203.0.113.32/27", "2001:db8:1001::/48", "2001:db8:2001::/48"]
P3 = ["203.0.113.128/27", "203.0.113.160/27", "2001:db8:1003::/48", "2001:db8:2003::/48"]


def lab_data(anycast: list[str] | None = None) -> dict[str, Any]:
    """Return the lab config with ANYCAST originated by par1 and par3 and a service on it for par2."""
    data = yaml.safe_load(LAB_CONFIG.read_text())
    data["sites"][0]["prefixes"].append(ANYCAST)
    data["sites"][2]["prefixes"].append(ANYCAST)
    if anycast is not None:
        data["anycast"] = anycast
    data["services"] = [{"name": "dns", "prefixes": [ANYCAST], "required_from": ["par2"]}]
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- configuration ------------------------------------------------------------------------------


def test_declared_anycast_loads_without_warning(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, lab_data([ANYCAST])))
    assert config.anycast == [ANYCAST]
    assert config.warnings == ()


def test_anycast_in_one_site_only_is_an_error_naming_the_key(tmp_path: Path) -> None:
    data = lab_data([ANYCAST, "203.0.113.0/27", "198.51.100.0/24"])
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        f"{path}: anycast[1]: 203.0.113.0/27 is only in the prefixes of site 'par1'"
    )
    assert "sites[0].prefixes[0]" in problems[0] and "at least two sites" in problems[0]
    assert problems[1].startswith(f"{path}: anycast[2]: 198.51.100.0/24 is not in the prefixes of any site")


def test_anycast_listed_twice_and_bad_prefix(tmp_path: Path) -> None:
    path = write(tmp_path, lab_data([ANYCAST, "203.0.113.250/32", "203.0.113.251/24"]))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert any(
        p.startswith(f"{path}: anycast[1]: ") and "listed twice (also anycast[0])" in p for p in problems
    )
    assert any(p.startswith(f"{path}: anycast[2]: ") and "host bits" in p for p in problems), problems
    assert len(problems) == 2, problems


def test_undeclared_prefix_in_two_sites_loads_with_a_warning(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, lab_data(None))
    with caplog.at_level(logging.WARNING, logger="bgpwatch.config"):
        config = load_config(path)
    assert len(config.warnings) == 1, config.warnings
    warning = config.warnings[0]
    assert warning.startswith(f"{path}: sites[2].prefixes[4]: {ANYCAST} is also a prefix of site 'par1'")
    assert "sites[0].prefixes[4]" in warning and "anycast" in warning
    assert [r.getMessage() for r in caplog.records] == [f"configuration warning: {warning}"]
    # Still modelled as originated by both sites.
    model = SiteModel(config)
    assert model.owners_of(*parse_prefix(ANYCAST)) == ("par1", "par3")


def test_config_built_in_python_is_checked_too() -> None:
    data = lab_data(["203.0.113.0/27"])
    text = yaml.safe_dump(data)
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "inline")
    assert caught.value.problems[0].startswith("inline: anycast[0]: 203.0.113.0/27 is only in")
    from bgpwatch.config import Config

    with pytest.raises(Exception, match=r"anycast\[0\]: 203.0.113.0/27 is only in"):
        Config.model_validate(data)


def test_example_declares_its_anycast_prefix() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "config" / "bgpwatch.example.yaml")
    assert config.warnings == ()
    model = SiteModel(config)
    prefix = parse_prefix(config.anycast[0])
    assert model.is_anycast(*prefix) and len(model.owners_of(*prefix)) == 2


# -- model ------------------------------------------------------------------------------------


def test_model_owners(tmp_path: Path) -> None:
    model = SiteModel(load_config(write(tmp_path, lab_data([ANYCAST]))))
    anycast = parse_prefix(ANYCAST)
    unicast = parse_prefix(P3[0])
    assert model.owners_of(*anycast) == ("par1", "par3")
    assert model.owner_of(*anycast) == "par1"  # old callers get the first owner
    assert model.is_anycast(*anycast) and not model.is_anycast(*unicast)
    assert model.owners_of(*unicast) == ("par3",)
    assert anycast in model.expected["par1"] and anycast in model.expected["par3"]
    assert anycast not in model.expected["par2"]
    assert model.anycast_prefixes() == [anycast]
    assert model.site_prefix(*anycast) == anycast[1]
    assert model.describe()["sites"][2]["anycast"] == [ANYCAST]


# -- engine ------------------------------------------------------------------------------------

# par3's router dies (session closed, the others withdraw its unicast prefixes; par2 falls back to
# par1's instance of the anycast /32); at +20 s par1 dies too.
PAR3_DIES = [
    {"t": 0.011, "peer": "par3-rr1", "down": "closing connection"},
    {"t": 0.020, "peer": "par1-rr1", "withdraw": P3},
    {"t": 0.038, "peer": "par2-rr1", "withdraw": P3},
    {"t": 0.039, "peer": "par2-rr1", "announce": [ANYCAST], "path": [65001]},
]
PAR1_DIES = [
    {"t": 20.011, "peer": "par1-rr1", "down": "closing connection"},
    {"t": 20.038, "peer": "par2-rr1", "withdraw": [*P1, ANYCAST]},
]


def fired(emitted: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    return [(t["kind"], t["state"], t["labels"]) for t in emitted]


@pytest.fixture
def config(tmp_path: Path):
    return load_config(write(tmp_path, lab_data([ANYCAST])))


def test_converged_anycast_is_credited_to_both_origins(config) -> None:
    # par2 hears the /32 last from par3 (origin AS65003), par1 from itself: neither is an origin change.
    emitted, engine = run_scenario({"start": "converged", "events": [], "until": 5}, config)
    assert emitted == []
    topology = engine.topology
    assert topology.visibility("par2", "par1") == 1.0
    assert topology.visibility("par2", "par3") == 1.0  # 5 of 5: the anycast counts for par3 too
    assert topology.vis_count["par2"]["par3"] == 5
    assert topology.service_reach == {("dns", "par2"): True}


def test_one_origin_dies_the_anycast_prefix_stays_up(config) -> None:
    emitted, engine = run_scenario({"start": "converged", "events": PAR3_DIES, "until": 15}, config)
    assert fired(emitted) == [
        ("site_down", "firing", {"site": "par3"}),
        ("session_down", "firing", {"peer": "par3-rr1", "site": "par3"}),
        ("visibility_loss", "firing", {"site": "par3"}),
    ]
    loss = emitted[2]
    assert ANYCAST not in loss["annotations"]["missing"]  # reachable via par1: not missing
    assert sorted(loss["annotations"]["missing"]) == sorted(P3)
    topology = engine.topology
    assert topology.states["par3"].state == "down"
    assert topology.stale == {}  # par2 and par1 hold the /32 through par1: not stale
    assert topology.service_reach == {("dns", "par2"): True}
    assert topology.vis_count["par2"]["par1"] == 5  # par1's visibility still counts the /32
    assert topology.visibility("par2", "par1") == 1.0
    assert topology.vis_count["par2"]["par3"] == 1  # par3 keeps the credit of what stays reachable
    assert not any(t["kind"] == "service_unreachable" for t in emitted)


def test_both_origins_die_the_service_is_unreachable(config) -> None:
    emitted, engine = run_scenario(
        {"start": "converged", "events": PAR3_DIES + PAR1_DIES, "until": 35}, config
    )
    kinds = fired(emitted)
    assert kinds[:3] == [
        ("site_down", "firing", {"site": "par3"}),
        ("session_down", "firing", {"peer": "par3-rr1", "site": "par3"}),
        ("visibility_loss", "firing", {"site": "par3"}),
    ]
    assert ("site_down", "firing", {"site": "par1"}) in kinds[3:]
    assert ("service_unreachable", "firing", {"service": "dns", "site": "par2"}) in kinds[3:]
    assert not any(kind == "stale_routes" for kind, _, _ in kinds)
    unreachable = next(t for t in emitted if t["kind"] == "service_unreachable")
    assert unreachable["at"] >= "2026-11-26T11:08:40"  # only once the second origin is gone
    assert engine.topology.service_reach == {("dns", "par2"): False}


def test_a_dead_origin_still_held_by_its_partner_only_is_stale(config) -> None:
    # par3 dies but par2 keeps its route through par3 (path 65003) and par1 stops originating the
    # /32 itself: nobody live announces it, so what par2 holds is stale.
    events = [
        {"t": 0.011, "peer": "par3-rr1", "down": "closing connection"},
        {"t": 0.015, "peer": "par1-rr1", "withdraw": [ANYCAST]},
        {"t": 0.020, "peer": "par1-rr1", "withdraw": P3},
        {"t": 0.038, "peer": "par2-rr1", "withdraw": P3},
    ]
    emitted, engine = run_scenario({"start": "converged", "events": events, "until": 15}, config)
    assert engine.topology.stale == {"par3": {"par2-rr1": 1}}
    assert ("stale_routes", "firing", {"site": "par3"}) in fired(emitted)


def test_anycast_origins_are_every_owner(config) -> None:
    # Both owners' ASes are expected origins; any other AS is an origin change.
    events = [
        {"t": 1.0, "peer": "par2-rr1", "announce": [ANYCAST], "path": [65001]},
        {"t": 2.0, "peer": "par2-rr1", "announce": [ANYCAST], "path": [65003]},
        {"t": 3.0, "peer": "par2-rr1", "announce": [ANYCAST], "path": [65001, 65099]},
    ]
    emitted, _ = run_scenario({"start": "converged", "events": events, "until": 8}, config)
    changes = [t for t in emitted if t["kind"] == "origin_change"]
    assert [t["state"] for t in changes] == ["firing"]
    assert changes[0]["at"] >= "2026-11-26T11:08:23"
    assert changes[0]["annotations"]["expected_origins"] == [65001, 65003]
    assert "anycast prefix (sites par1, par3)" in changes[0]["summary"]
