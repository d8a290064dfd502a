"""The generated ExaBGP configuration: graceful restart advertised (or not), the peer's OPEN asked for."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bgpwatch.collector.exabgp_config import plan_workers, render_worker
from bgpwatch.config import check_config, load_config_text

ROOT = Path(__file__).resolve().parent.parent
EXABGP = ROOT / ".venv" / "bin" / "exabgp"

BASE = {
    "collector": {"local_as": 65000, "router_id": "192.0.2.254"},
    "sites": [
        {
            "name": "par1",
            "prefixes": ["203.0.113.0/26"],
            "peers": [{"name": "par1-rr1", "address": "192.0.2.2", "peer_as": 65001}],
        }
    ],
}


def rendered(**collector: object) -> str:
    data = {**BASE, "collector": {**BASE["collector"], **collector}}
    config = load_config_text(yaml.safe_dump(data), "test.yaml")
    (plan,) = plan_workers(config)
    return render_worker(config, plan)


def template(text: str) -> list[str]:
    """Return the lines of the template block, stripped."""
    block = text.split("template {", 1)[1].split("\n}\n", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_graceful_restart_advertised_by_default_with_120_s() -> None:
    lines = template(rendered())
    assert "capability { graceful-restart 120; route-refresh; }" in lines
    assert "receive { parsed; update; notification; open; }" in lines
    # `negotiated;` would add a negotiated block to every UPDATE line.
    assert not any("negotiated" in line for line in lines if not line.startswith("#"))


@pytest.mark.parametrize("seconds", [1, 90, 4095])
def test_graceful_restart_time_is_the_configured_one(seconds: int) -> None:
    assert f"capability {{ graceful-restart {seconds}; route-refresh; }}" in template(
        rendered(graceful_restart=seconds)
    )


def test_graceful_restart_zero_is_not_advertised() -> None:
    text = rendered(graceful_restart=0)
    assert "capability { route-refresh; }" in template(text)
    assert "graceful-restart" not in text
    # The peer's OPEN is still wanted: whether *it* offers GR is worth knowing.
    assert "receive { parsed; update; notification; open; }" in template(text)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(4096, "4096"), (-1, "-1"), ("120", "'120'"), (True, "true"), (1.5, "1.5"), (65535, "65535")],
)
def test_check_config_rejects_out_of_range_restart_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: object, shown: str
) -> None:
    monkeypatch.chdir(tmp_path)
    data = {**BASE, "collector": {**BASE["collector"], "graceful_restart": value}}
    Path("bad.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    assert check_config("bad.yaml") == [
        "bad.yaml: collector.graceful_restart: expected a restart time in seconds "
        f"(0-4095; 0 = do not advertise graceful restart), got {shown}"
    ]


@pytest.mark.skipif(not EXABGP.exists(), reason="ExaBGP is not installed in .venv")
@pytest.mark.parametrize("seconds", [0, 120, 4095])
def test_exabgp_accepts_the_generated_file(tmp_path: Path, seconds: int) -> None:
    path = tmp_path / "exabgp.conf"
    path.write_text(rendered(graceful_restart=seconds), encoding="utf-8")
    env = {**os.environ, "exabgp.api.cli": "false"}
    result = subprocess.run(
        [str(EXABGP), "validate", str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ loading" in result.stdout + result.stderr


# -- live: the generated configuration against real routers (root, FRR, BIRD, GoBGP) ----------------


def _live_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not EXABGP.exists():
        return "ExaBGP is not installed in .venv"
    for tool in (
        "ip",
        "bird",
        "birdc",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/zebra",
        "vtysh",
        "gobgpd",
        "gobgp",
    ):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


LIVE = _live_unavailable()


@pytest.mark.lab
@pytest.mark.skipif(LIVE is not None, reason=LIVE or "")
@pytest.mark.parametrize(
    ("scenario", "offered", "eors"),
    [
        ("frr-gr", (True, 120, (4, 6)), ["ipv4 unicast", "ipv6 unicast"]),
        ("frr-gr-collector-nogr", (True, 120, (4, 6)), []),  # FRR: End-of-RIB only to GR peers
        ("bird", (True, 120, ()), ["ipv4 unicast", "ipv6 unicast"]),
        ("gobgp", (False, None, ()), []),  # GoBGP: End-of-RIB only when GR is negotiated
        ("gobgp-gr", (True, 120, (4, 6)), ["ipv4 unicast", "ipv6 unicast"]),
    ],
)
def test_live_open_and_end_of_rib(tmp_path: Path, scenario: str, offered: tuple, eors: list[str]) -> None:
    from lab import capture_open

    from bgpwatch.events import PeerOpen
    from bgpwatch.ingest import ExaBGPJsonParser
    from bgpwatch.rib import AttributePool

    (wanted,) = [s for s in capture_open.SCENARIOS if s.name == scenario]
    summary = capture_open.capture(wanted, EXABGP, tmp_path)
    assert sorted(summary["eor"]) == eors
    parser = ExaBGPJsonParser(AttributePool())
    lines = (tmp_path / f"open-{scenario}.jsonl").read_bytes().splitlines()
    opens = [e for line in lines for e in parser.parse(line) if isinstance(e, PeerOpen)]
    assert [(e.graceful_restart, e.restart_time, e.gr_families, e.families, e.peer_as) for e in opens] == [
        (*offered, (4, 6), 65001)
    ]
    assert parser.errors == {}
