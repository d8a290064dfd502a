"""Log output: journald priority prefixes (exact bytes), logfmt and JSON lines, the logging config section."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bgpwatch import logs
from bgpwatch.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
BGPWATCH = [sys.executable, "-m", "bgpwatch"]

# One logfmt pair: key=bare or key="quoted with \" escapes".
_PAIR = re.compile(r'([A-Za-z0-9_.]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def parse_logfmt(line: str) -> dict[str, str]:
    """Parse one logfmt line strictly: every byte must belong to a pair."""
    pairs, pos = {}, 0
    while pos < len(line):
        match = _PAIR.match(line, pos)
        assert match, f"not logfmt at {pos}: {line[pos:]!r}"
        key, value = match.groups()
        if value.startswith('"'):
            value = json.loads(value)  # logfmt's escapes are JSON's here (\\ \" \n \t \r)
        pairs[key] = value
        pos = match.end()
    return pairs


@pytest.fixture()
def logger():
    log = logging.getLogger("bgpwatch.test_logs")
    yield log
    root = logging.getLogger()
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None


def emit_all(log: logging.Logger) -> None:
    log.debug("d")
    log.info("peer %s up", "par1-rr1")
    log.warning("w")
    log.error("e")
    log.critical("c")


def test_priority_prefix_for_each_level_under_systemd(logger):
    out = io.StringIO()
    logs.setup_logging("debug", "text", stream=out, environ={"JOURNAL_STREAM": "8:12345"})
    emit_all(logger)
    assert out.getvalue().splitlines() == [
        "<7>DEBUG bgpwatch.test_logs: d",
        "<6>INFO bgpwatch.test_logs: peer par1-rr1 up",
        "<4>WARNING bgpwatch.test_logs: w",
        "<3>ERROR bgpwatch.test_logs: e",
        "<2>CRITICAL bgpwatch.test_logs: c",
    ]


def test_every_traceback_line_carries_the_priority(logger):
    out = io.StringIO()
    logs.setup_logging("info", "text", stream=out, environ={"INVOCATION_ID": "0123abcd"})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) > 3 and lines[0] == "<3>ERROR bgpwatch.test_logs: failed"
    assert all(line.startswith("<3>") for line in lines)
    assert "<3>ValueError: boom" in lines


def test_no_prefix_and_a_timestamp_outside_systemd(logger):
    out = io.StringIO()
    logs.setup_logging("info", "text", stream=out, environ={})
    logger.warning("w")
    line = out.getvalue().rstrip("\n")
    assert not line.startswith("<")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING bgpwatch.test_logs: w", line)


def test_logfmt_lines_parse_and_carry_the_stable_keys(logger):
    out = io.StringIO()
    logs.setup_logging("info", "logfmt", stream=out, environ={})
    logger.info('peer "par1" said: a=b \\ c\nnext', extra={"peer": "par1-rr1", "routes": 12, "tags": ["a b"]})
    logger.debug("not shown at info")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("with traceback")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # one event per line, the traceback escaped into it
    first, second = (parse_logfmt(line) for line in lines)
    assert list(first)[:4] == ["ts", "level", "logger", "msg"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["level"] == "info" and first["logger"] == "bgpwatch.test_logs"
    assert first["msg"] == 'peer "par1" said: a=b \\ c\nnext'
    assert first["peer"] == "par1-rr1" and first["routes"] == "12" and json.loads(first["tags"]) == ["a b"]
    assert second["level"] == "error" and "ZeroDivisionError" in second["exc"]


def test_json_lines_parse_and_carry_the_stable_keys(logger):
    out = io.StringIO()
    logs.setup_logging("debug", "json", stream=out, environ={})
    logger.warning("w %d", 3, extra={"alert": {"kind": "site_down"}, "msg_id": 7})
    logger.debug("d")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["level"] for e in events] == ["warning", "debug"]
    assert list(events[0])[:4] == ["ts", "level", "logger", "msg"]
    assert (
        events[0]["msg"] == "w 3" and events[0]["alert"] == {"kind": "site_down"} and events[0]["msg_id"] == 7
    )


def test_json_under_systemd_is_prefixed_then_pure_json(logger):
    out = io.StringIO()
    logs.setup_logging("info", "json", stream=out, environ={"JOURNAL_STREAM": "8:1"})
    logger.warning("w")
    line = out.getvalue().rstrip("\n")
    assert line.startswith("<4>{") and json.loads(line[3:])["level"] == "warning"


def test_an_extra_never_overwrites_a_stable_key(logger):
    out = io.StringIO()
    logs.setup_logging("info", "json", stream=out, environ={})
    logger.info("real", extra={"level": "fake", "ts": "fake"})
    event = json.loads(out.getvalue())
    assert event["level"] == "info" and event["ts"] != "fake"


def _config(tmp_path: Path, **logging_section) -> Path:
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["collector"]["exabgp"] = "external"
    # A runtime_dir under a regular file: the daemon stops at start-up with one error line, which is
    # logged after the config's logging section is applied.
    config["collector"]["runtime_dir"] = "/dev/null/bgpwatch"
    config["storage"] = {"path": str(tmp_path / "bgpwatch.db")}
    if logging_section:
        config["logging"] = logging_section
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_daemon(path: Path, journal: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
    if journal:
        env["JOURNAL_STREAM"] = "8:424242"
    return subprocess.run([*BGPWATCH, "run", "--config", str(path)], capture_output=True, env=env, timeout=30)


def test_the_daemon_writes_priority_prefixed_bytes_under_journald(tmp_path):
    done = _run_daemon(_config(tmp_path), journal=True)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines and lines[-1].startswith(b"<3>ERROR bgpwatch: cannot start: collector.runtime_dir /dev/null")
    assert all(re.match(rb"<[2-7]>", line) for line in lines), done.stderr
    plain = _run_daemon(_config(tmp_path), journal=False)
    assert plain.returncode == 2 and not any(line.startswith(b"<") for line in plain.stderr.splitlines())


def test_the_daemon_applies_the_configured_format(tmp_path):
    done = _run_daemon(_config(tmp_path, format="json"), journal=True)
    assert done.returncode == 2
    last = done.stderr.splitlines()[-1]
    assert last.startswith(b"<3>{")
    event = json.loads(last[3:])
    assert event["level"] == "error" and event["logger"] == "bgpwatch" and "runtime_dir" in event["msg"]


def test_the_logging_section_is_validated(tmp_path):
    assert load_config(_config(tmp_path, format="logfmt", level="debug")).logging.format == "logfmt"
    assert load_config(_config(tmp_path)).logging.format == "text"
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, format="xml"))
    assert any("logging.format" in problem for problem in caught.value.problems)
