"""check-config warns about risky but valid files (exit 0, 1 with --strict), x- keys hold anchors, an error
in an anchored value is one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bgpwatch.config import ConfigError, load_config, load_config_text

ROOT = Path(__file__).resolve().parent.parent
BGPWATCH = [sys.executable, "-m", "bgpwatch"]

CLEAN = """
collector: {local_as: 65000, router_id: 192.0.2.254, listen_address: 192.0.2.254}
sites:
  - name: par1
    prefixes: [203.0.113.0/26, "2001:db8:1001::/48"]
    peers:
      - {name: par1-rr1, address: 192.0.2.2, peer_as: 65001, passive: true}
  - name: par2
    prefixes: [203.0.113.64/26]
    peers: [{name: par2-rr1, address: 192.0.2.6, peer_as: 65002}]
services:
  - {name: api, prefixes: [203.0.113.10/32, "2001:db8:1001:5::/64"], required_from: [par1, par2]}
"""


def warnings_of(text: str) -> list[str]:
    return [w.removeprefix("<config>: ") for w in load_config_text(textwrap.dedent(text)).warnings]


def test_a_clean_file_has_no_warning():
    assert warnings_of(CLEAN) == []


def test_a_passive_peer_with_nothing_listening():
    found = warnings_of(CLEAN.replace(", listen_address: 192.0.2.254", ""))
    assert len(found) == 1 and found[0].startswith("sites[0].peers[0].passive: peer 'par1-rr1' is passive")
    assert "collector.listen_address is not set" in found[0]


def test_a_collector_local_address_of_the_other_family():
    text = CLEAN.replace(
        "listen_address: 192.0.2.254}", "listen_address: 192.0.2.254, local_address: 192.0.2.254}"
    )
    text = text.replace("address: 192.0.2.6,", 'address: "2001:db8::6",')
    found = warnings_of(text)
    assert len(found) == 1 and found[0].startswith("collector.local_address: 192.0.2.254 is an IPv4 address")
    assert "IPv6 peers par2-rr1" in found[0]
    # The same family everywhere: nothing to say.
    same = CLEAN.replace(
        "listen_address: 192.0.2.254}", "listen_address: 192.0.2.254, local_address: 192.0.2.254}"
    )
    assert warnings_of(same) == []


def test_a_service_prefix_no_site_originates():
    found = warnings_of(CLEAN.replace("203.0.113.10/32", "198.51.100.10/32"))
    assert len(found) == 1 and found[0].startswith(
        "services[0].prefixes[0]: 198.51.100.10/32 of service 'api'"
    )


def test_a_site_without_peers_and_without_a_bmp_router():
    text = CLEAN.replace("peers: [{name: par2-rr1, address: 192.0.2.6, peer_as: 65002}]", "peers: []")
    found = warnings_of(text)
    assert len(found) == 1 and found[0].startswith("sites[1].peers: site 'par2' has no peers")
    with_bmp = (
        text
        + "inputs:\n  - type: exabgp\n  - type: bmp\n    routers: [{name: r2, site: par2, address: 192.0.2.66}]\n"
    )
    assert warnings_of(with_bmp) == []


def test_the_same_prefix_in_two_sites_not_declared_anycast_is_still_a_warning():
    found = warnings_of(
        CLEAN.replace("prefixes: [203.0.113.64/26]", "prefixes: [203.0.113.64/26, 203.0.113.0/26]")
    )
    assert (
        len(found) == 1
        and "not declared under anycast" in found[0]
        and found[0].startswith("sites[1].prefixes[1]")
    )


def run_check(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BGPWATCH, "check-config", *extra, str(path)], capture_output=True, text=True, timeout=60
    )


def test_check_config_prints_each_warning_once_exits_0_and_1_with_strict(tmp_path):
    path = tmp_path / "risky.yaml"
    path.write_text(
        textwrap.dedent(CLEAN)
        .replace(", listen_address: 192.0.2.254", "")
        .replace("203.0.113.10/32", "198.51.100.10/32")
    )
    plain = run_check(path)
    lines = plain.stderr.splitlines()
    assert plain.returncode == 0 and plain.stdout.strip() == f"{path}: OK (2 warnings)"
    assert len(lines) == 2 and all(line.startswith(f"warning: {path}: ") for line in lines), plain.stderr
    strict = run_check(path, "--strict")
    assert strict.returncode == 1 and strict.stderr == plain.stderr
    clean = tmp_path / "clean.yaml"
    clean.write_text(textwrap.dedent(CLEAN))
    assert run_check(clean, "--strict").returncode == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text(textwrap.dedent(CLEAN).replace("peer_as: 65002", "peer_as: -1"))
    assert run_check(broken, "--strict").returncode == 2


ANCHORED = """
x-rr: &rr
  peer_as: 65001
  hold_time: {hold}
x-notes: "anything: x- keys are never read as settings"
collector: {{local_as: 65000, router_id: 192.0.2.254}}
sites:
  - name: par1
    prefixes: [203.0.113.0/26]
    peers: [{{<<: *rr, name: par1-rr1, address: 192.0.2.2}}]
  - name: par2
    prefixes: [203.0.113.64/26]
    peers: [{{<<: *rr, name: par2-rr1, address: 192.0.2.6}}]
  - name: par3
    prefixes: [203.0.113.128/26]
    peers: [{{<<: *rr, name: par3-rr1, address: 192.0.2.10}}]
"""


def test_x_keys_hold_anchors_and_the_anchored_values_are_used(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(ANCHORED.format(hold=9))
    config = load_config(path)
    assert [(p.name, p.peer_as, p.hold_time) for p in config.peers] == [
        ("par1-rr1", 65001, 9),
        ("par2-rr1", 65001, 9),
        ("par3-rr1", 65001, 9),
    ]
    assert config.warnings == ()
    # Any other unknown top-level key is still refused.
    path.write_text(ANCHORED.format(hold=9).replace("x-notes:", "notes:"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any("notes" in p and "unknown key" in p for p in caught.value.problems)


def test_an_error_in_an_anchor_used_three_times_is_one_line(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(ANCHORED.format(hold=1))
    result = run_check(path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{path}: sites[0].peers[0].hold_time: expected a hold time")
    assert "an anchored value at line 4" in lines[0]
    assert "also used at sites[1].peers[0].hold_time, sites[2].peers[0].hold_time" in lines[0]


def test_two_different_errors_at_two_places_stay_two_lines(tmp_path):
    path = tmp_path / "two.yaml"
    text = ANCHORED.format(hold=9).replace("address: 192.0.2.2}", "address: 192.0.2.2, hold_time: 1}")
    path.write_text(text.replace("address: 192.0.2.6}", "address: 192.0.2.6, hold_time: 2}"))
    result = run_check(path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 2, result.stderr


def test_the_shipped_configs_load_without_warnings():
    for path in (ROOT / "config" / "bgpwatch.example.yaml", ROOT / "bgpwatch" / "data" / "paris.yaml"):
        assert load_config(path).warnings == (), path
