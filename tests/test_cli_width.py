"""Every CLI table fits 80 and 120 columns, against a real daemon fed the Paris recording up to the split.

The daemon runs in external mode (no ExaBGP); the first 66 lines of the recording are relayed: par2 has
lost power, par1 and par3 are split, alerts are firing, par2-rr1 is down.  The commands run in-process
(click's runner) with COLUMNS set, against `--api HOST:PORT`.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.cells import cell_len

from bgpwatch.cli import bmp_table, main
from bgpwatch.tables import render_table, with_iso_times

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
BGPWATCH = [sys.executable, "-m", "bgpwatch"]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
HUMAN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
SPLIT_LINES = 66  # up to the par1-par3 cut while par2 is dark (13:28:53 in the recording)

COMMANDS = [
    ["status"],
    ["peers"],
    ["prefixes"],
    ["topology"],
    ["alerts"],
    ["alerts", "--all"],
    ["alerts", "--transitions"],
    ["incidents"],
    ["maintenance", "list"],
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("width")
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    listen = f"127.0.0.1:{_free_port()}"
    config["collector"]["exabgp"] = "external"
    config["collector"]["runtime_dir"] = str(tmp / "run")
    config["api"] = {"listen": listen}
    config["storage"] = {"path": str(tmp / "state" / "bgpwatch.db")}
    path = tmp / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp / "daemon.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([*BGPWATCH, "run", "--config", str(path)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{listen}/healthz", timeout=1)
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        lines = gzip.decompress(PARIS.read_bytes()).splitlines(keepends=True)[:SPLIT_LINES]
        relay = subprocess.run(
            [*BGPWATCH, "relay", "--config", str(path)],
            input=b"".join(lines),
            capture_output=True,
            timeout=60,
        )
        assert relay.returncode == 0, relay.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://{listen}/api/v1/alerts", timeout=5) as answer:
                if any(a["kind"] == "topology_split" for a in json.loads(answer.read())):
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the split never fired")
        reason = "par2's power feed, replaced by the facilities team after the 3 March incident review"
        opened = run(listen, ["maintenance", "start", "par2", "--for", "2h", "--reason", reason])
        assert opened.exit_code == 0, opened.output
        yield listen
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run(listen: str, args: list[str], columns: int | None = None):
    env = {"COLUMNS": str(columns)} if columns else {"COLUMNS": ""}
    return CliRunner().invoke(main, [*args, "--api", listen], env=env, catch_exceptions=False)


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_every_table_fits_the_width(api, args, columns):
    result = run(api, args, columns)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines, "no output"
    too_wide = [line for line in lines if cell_len(line) > columns]
    assert not too_wide, "\n".join(too_wide)


def test_wide_shows_whole_cells_and_a_pipe_is_not_cut(api):
    narrow = run(api, ["alerts", "--transitions"], 80).stdout
    wide = run(api, ["alerts", "--transitions", "--wide"], 80).stdout
    piped = run(api, ["alerts", "--transitions"]).stdout  # no COLUMNS, not a terminal
    assert "…" in narrow and "…" not in wide and wide == piped
    assert max(map(cell_len, wide.splitlines())) > 120
    assert "SEVERITY" in wide.splitlines()[0] and "SEVERITY" not in narrow.splitlines()[0]


def test_alerts_at_column_is_filled_with_a_human_time(api):
    for args in (["alerts"], ["alerts", "--transitions"]):
        rows = run(api, args, 120).stdout.splitlines()[1:]
        assert rows and all(HUMAN.match(row) for row in rows), rows
    firing = run(api, ["alerts", "--wide"]).stdout
    assert "topology_split" in firing


def test_peers_show_since_uptime_and_why_the_session_went_down(api):
    text = run(api, ["peers", "--wide"]).stdout.splitlines()
    header = text[0].split()
    assert {"SINCE", "FOR", "LAST"} <= set(header)
    par2 = next(line for line in text if line.startswith("par2"))
    assert " down " in par2 and HUMAN.search(par2)
    peers = {p["name"]: p for p in json.loads(run(api, ["peers", "--json"]).stdout)}
    assert peers["par2-rr1"]["last_down_reason"] and peers["par2-rr1"]["reason"] in par2
    # At 80 columns: who, the state and how long are kept; lesser columns are left out.
    narrow = run(api, ["peers"], 80).stdout.splitlines()
    assert {"SITE", "PEER", "STATE", "FOR", "LAST"} <= set(narrow[0].split()) and "ADDRESS" not in narrow[0]


def test_json_keeps_epoch_contract_keys_and_adds_iso(api):
    peers = json.loads(run(api, ["peers", "--json"]).stdout)
    assert all({"name", "address", "site", "state", "routes"} <= set(p) for p in peers)
    for peer in peers:
        assert isinstance(peer["since"], float) and ISO.fullmatch(peer["since_iso"])
        assert isinstance(peer["last_message"], float) and ISO.fullmatch(peer["last_message_iso"])
    status = json.loads(run(api, ["status", "--json"]).stdout)
    assert ISO.fullmatch(status["started_at_iso"]) and ISO.fullmatch(status["pipeline"]["last_event_at_iso"])
    routes = json.loads(run(api, ["prefixes", "--json"]).stdout)
    assert routes and all(isinstance(r["as_path"], list) and r["next_hop"] for r in routes)
    for alert in json.loads(run(api, ["alerts", "--all", "--json"]).stdout):
        assert ISO.fullmatch(alert["at"])


def test_api_takes_host_port_like_api_listen_and_refuses_a_bad_port(api):
    host, port = api.rsplit(":", 1)
    assert run(api, ["status"]).exit_code == 0  # HOST:PORT (every test uses it)
    assert CliRunner().invoke(main, ["status", "--api", f"http://{api}"]).exit_code == 0
    bad = CliRunner().invoke(main, ["status", "--api", f"{host}:99999"])
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "--api" in bad.stderr


@pytest.mark.parametrize("since", ["10m", "2h", "1h30m", "2026-11-26T13:28:30Z", "1795699710"])
def test_since_takes_durations_and_times(api, since):
    everything = json.loads(run(api, ["alerts", "--transitions", "--json"]).stdout)
    before = time.time()
    result = run(api, ["alerts", "--transitions", "--since", since, "--json"])
    assert result.exit_code == 0, result.output
    duration = since[-1] in "mh"
    if duration:
        hours = {"10m": 1 / 6, "2h": 2, "1h30m": 1.5}[since]
        start = before - hours * 3600
    elif since.isdigit():
        start = float(since)
    else:
        start = datetime.fromisoformat(since).timestamp()
    at = [datetime.fromisoformat(t["at"]).timestamp() for t in everything]
    # Loose by a second at the edge: the CLI read its clock a moment after `before`.
    expected = [t for t, ts in zip(everything, at, strict=True) if ts >= start + 1]
    got = json.loads(result.stdout)
    assert all(t in got for t in expected) and len(got) <= len([ts for ts in at if ts >= start - 1])
    assert len(got) < len(everything) or duration


@pytest.mark.parametrize("since", ["5x", "yesterday", "2026-13-40"])
def test_a_bad_since_fails_with_one_line(api, since):
    result = run(api, ["alerts", "--since", since])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--since" in result.stderr and repr(since) in result.stderr


def test_topology_prints_no_python_reprs_and_keeps_columns_aligned(api):
    for columns in (80, 120, None):
        text = run(api, ["topology"], columns).stdout
        assert "{'" not in text and "['" not in text and "None" not in text
        lines = text.splitlines()
        head = next(i for i, line in enumerate(lines) if line.startswith("SITE"))
        column = lines[head].index("STATE")
        rows = lines[head + 1 : head + 4]
        assert [r.split()[0] for r in rows] == ["par1", "par2", "par3"]
        assert all(r[column - 2 : column] == "  " and r[column] != " " for r in rows), rows
        assert "SPLIT" in lines[0]
        matrix = lines[lines.index(next(x for x in lines if x.startswith("visibility"))) + 1 :][:4]
        ends = {len(line) for line in matrix}
        assert len(ends) == 1, matrix  # right-aligned percentages end in the same column


def test_render_table_cuts_free_text_first_and_leaves_out_optional_columns():
    rows = [["par1", "up", "x" * 200, "ipv4,ipv6"]]
    text = render_table(
        rows, ["site", "state", "summary", "eor"], 30, flexible=("summary",), optional=("eor",)
    )
    assert max(map(cell_len, text.splitlines())) <= 30 and "EOR" not in text and text.count("…") == 1
    whole = render_table(rows, ["site", "state", "summary", "eor"], None, flexible=("summary",))
    assert "x" * 200 in whole and "EOR" in whole


def test_bmp_block_fits(monkeypatch):
    routers = [
        {
            "name": "par1-edge1",
            "site": "par1",
            "address": "192.0.2.2",
            "sys_name": "par1-edge1.example.net running a long software version string",
            "state": "up",
            "since": 1795699704.2,
            "reason": "",
            "sessions": [
                {
                    "address": "2001:db8:ffff:ffff:ffff:ffff:ffff:1",
                    "peer_as": 4200000001,
                    "kind": "inter-site",
                    "site": "par3",
                    "state": "down",
                    "since": 1795699716.0,
                    "routes": {"pre": 12, "post": 11},
                    "last_down_reason": "hold timer expired: the peer's last keepalive was 180 s before",
                }
            ],
        }
    ]
    for columns in (80, 120):
        monkeypatch.setenv("COLUMNS", str(columns))
        text = bmp_table(routers)
        assert max(map(cell_len, text.splitlines())) <= columns, text
        assert "hold timer" in text and "BMP router par1-edge1" in text and HUMAN.search(text)


def test_replay_of_a_file_that_is_no_recording_or_is_damaged_fails_with_the_reason(tmp_path):
    config = ROOT / "bgpwatch" / "data" / "paris.yaml"
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes, not a recording\n")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(PARIS.read_bytes()[:-300])
    for path, code, words in ((text, 2, "not a recording"), (cut, 1, "damaged (decompression)")):
        proc = subprocess.run(
            [*BGPWATCH, "replay", "--config", str(config), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == code, proc.stderr
        reason = [line for line in proc.stderr.splitlines() if line.startswith("bgpwatch replay:")]
        assert len(reason) == 1 and str(path) in reason[0] and words in reason[0], proc.stderr
    whole = subprocess.run(
        [*BGPWATCH, "replay", "--config", str(config), str(PARIS)], capture_output=True, text=True, timeout=60
    )
    assert whole.returncode == 0 and "bgpwatch replay:" not in whole.stderr


def test_with_iso_times_adds_twins_and_leaves_the_rest():
    data = {"since": 1795699704.5, "until": None, "at": "2025-03-03T14:11:03.120Z", "flaps": 3, "x_at": 12}
    out = with_iso_times([data])[0]
    assert out["since"] == 1795699704.5 and out["since_iso"] == "2026-11-26T13:28:24.500Z"
    assert "until_iso" not in out and "at_iso" not in out and "x_at_iso" not in out and out["flaps"] == 3


@pytest.mark.parametrize("columns", [80, 120])
def test_detectors_fits_the_width_wraps_docs_whole_and_shows_yaml_values(columns):
    result = CliRunner().invoke(main, ["detectors"], env={"COLUMNS": str(columns)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines and not [line for line in lines if cell_len(line) > columns]
    piped = CliRunner().invoke(main, ["detectors"], env={"COLUMNS": ""}).stdout  # a pipe: whole lines
    assert " ".join(result.stdout.split()) == " ".join(piped.split())  # wrapped, nothing cut or lost
    assert "    enabled = true: run this detector" in piped  # as in the YAML config, no Python reprs
    assert "    severity = warning: " in piped and "    ignore_prefixes = []: " in piped
    assert not re.search(r" = (True|False|None|'[^']*')[:,]", piped), piped


def test_config_value_writes_defaults_as_yaml():
    from bgpwatch.cli import config_value

    given = (True, 0.5, 3, [], ["a b"], "warning", "", "yes", None)
    wanted = ("true", "0.5", "3", "[]", '["a b"]', "warning", '""', '"yes"', "null")
    assert tuple(map(config_value, given)) == wanted


def test_incidents_show_fits_the_width_and_wide_or_a_pipe_shows_whole_lines(api):
    incidents = json.loads(run(api, ["incidents", "--json"]).stdout)
    assert incidents
    for incident in incidents:
        args = ["incidents", "show", incident["id"]]
        piped = run(api, args).stdout  # no COLUMNS, not a terminal
        assert run(api, [*args, "--wide"], 80).stdout == piped
        assert max(map(cell_len, piped.splitlines())) > 80  # the site_down title and its timeline
        for columns in (80, 120):
            lines = run(api, args, columns).stdout.splitlines()
            assert lines and not [line for line in lines if cell_len(line) > columns], lines
            whole = piped.splitlines()  # each line cut at most, none reordered or dropped
            assert len(lines) == len(whole), lines
            assert all(w.startswith(c.rstrip("…")) for w, c in zip(whole, lines, strict=True)), lines
        # Markdown is pasted elsewhere: whole, whatever the terminal.
        assert run(api, [*args, "--markdown"], 80).stdout == run(api, [*args, "--markdown"]).stdout
