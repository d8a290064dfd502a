"""The inputs section: ExaBGP by default, a BMP station with routers per site, every mistake named."""

from __future__ import annotations

from pathlib import Path

from bgpwatch.config import BmpInput, ExabgpInput, check_config, load_config
from bgpwatch.ingest.sources import REGISTRY, source_types

BASE = """
collector: {local_as: 65000, router_id: 192.0.2.254}
sites:
  - name: par1
    prefixes: [203.0.113.0/26]
    peers: [{name: par1-rr1, address: 192.0.2.2, peer_as: 65001, router_id: 10.0.0.1}]
  - name: par2
    prefixes: [203.0.113.64/26]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(BASE + text)
    return path


def test_without_inputs_exabgp_alone(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.inputs == [ExabgpInput()] and config.exabgp_enabled and config.bmp is None
    assert config.peers[0].router_id == "10.0.0.1"


def test_a_bmp_station_with_routers(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
inputs:
  - type: bmp
    listen: "0.0.0.0:11019"
    routers:
      - {name: par1-r1, site: par1, address: "2001:db8::0001"}
      - {name: par2-r1, site: par2, sys_name: par2.example.net, router_id: 10.0.0.2, addresses: [198.51.100.1]}
""",
        )
    )
    assert not config.exabgp_enabled  # BMP only: no ExaBGP is started
    bmp = config.bmp
    assert isinstance(bmp, BmpInput) and bmp.listen == "0.0.0.0:11019"
    assert bmp.routers[0].address == "2001:db8::1"  # canonical
    assert bmp.max_message_bytes == 1 << 20 and bmp.max_errors == 100 and bmp.accept_unknown
    assert set(source_types()) == {"bmp", "exabgp", "rislive"} and set(REGISTRY) == {
        "bmp",
        "exabgp",
        "rislive",
    }


def test_every_mistake_is_named(tmp_path: Path) -> None:
    problems = check_config(
        write(
            tmp_path,
            """
inputs:
  - type: exabgp
  - type: bmp
    listen: "nowhere"
    max_errors: 0
    routers:
      - {name: r1, site: parx, address: 192.0.2.9}
      - {name: r1, site: par2}
      - {name: r3, site: par1, address: 192.0.2.9}
      - {name: r4, site: "Secret Token 1234", sys_name: x}
  - type: bmp
  - type: kafka
""",
        )
    )
    text = "\n".join(problems)
    assert "inputs[1].listen" in text
    assert "inputs[1].max_errors: expected a count (1-1000000)" in text
    assert "inputs[1].routers[0].site: no site is named 'parx'" in text
    assert "inputs[1].routers[1]: give the router's address or sys_name" in text
    assert "inputs[1].routers[1].name: duplicate router name (also routers[0])" in text
    assert "inputs[1].routers[2].address: 192.0.2.9 already identifies inputs[1].routers[0]" in text
    assert "inputs[2].type: a second bmp input (also inputs[1])" in text
    assert "inputs[3]" in text  # an unknown input type
    assert "Secret Token" not in text  # a value that is no valid name is never echoed
