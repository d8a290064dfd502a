"""What a restarted bgpwatch is fed, built from the real recording bgpwatch/data/paris.jsonl.gz.

Model (managed mode, the default): bgpwatch runs ExaBGP, so stopping bgpwatch stops ExaBGP and
every BGP session with it; when bgpwatch starts again, ExaBGP starts again (the supervisor says
"worker started"), the sessions that can be re-established are ("connected", "up"), each router
re-sends its whole Adj-RIB-Out, which is exactly the Adj-RIB-In bgpwatch held for it, and ends it
with End-of-RIB.  Sessions to routers that are still dead are not re-established.  After that the
network goes on with whatever happens next.

So the input after a restart, for a recording cut at line N, is:
1. the supervisor's "worker started" control lines of the recording's start;
2. for every session up at line N: its "connected" and "up" state lines, then its table as it
   stood at line N (for each prefix still held, the last UPDATE that announced it, reduced to
   that prefix), then its End-of-RIB lines;
3. the recording's lines after N (or none, when the network's later events happened while
   bgpwatch was down: then N is the end of the recording and part 2 is the whole network as it
   is at the end).
Times are rewritten: the lines keep their order and their spacing, every gap between two lines
longer than `max_gap` seconds is shortened to `max_gap` (those gaps are routers retrying dead
sessions or hold timers running; nothing else happens in them), and the whole feed is shifted to
start at a given time, so it can be written live (each line when its time comes).
"""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
CONTROL = "bgpwatch-relay"


def recording_lines(path: Path = PARIS) -> list[dict[str, Any]]:
    """Return the recording's lines, parsed."""
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines() if line.strip()]


def line_time(line: dict[str, Any]) -> float:
    """Return a line's time (ExaBGP's `time`, or a control line's)."""
    if CONTROL in line:
        return float(line[CONTROL]["collector"]["time"])
    return float(line["time"])


def set_time(line: dict[str, Any], at: float) -> dict[str, Any]:
    """Return a copy of the line stamped `at`."""
    line = copy.deepcopy(line)
    if CONTROL in line:
        line[CONTROL]["collector"]["time"] = at
    else:
        line["time"] = at
    return line


def _peer(line: dict[str, Any]) -> str | None:
    return line.get("neighbor", {}).get("address", {}).get("peer")


def _update(line: dict[str, Any]) -> dict[str, Any] | None:
    if line.get("type") != "update":
        return None
    return line["neighbor"].get("message", {}).get("update")


def table_at(lines: list[dict[str, Any]], cut: int) -> list[dict[str, Any]]:
    """Return what a restarted ExaBGP receives, in order, for the network as it is after lines[:cut].

    Collector start lines, then per session up at the cut: connected, up, its table, End-of-RIB.
    """
    state: dict[str, str] = {}
    state_lines: dict[str, dict[str, dict[str, Any]]] = {}
    eors: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    # peer -> (family, nlri) -> (index, line) of the last announcement still standing
    held: dict[str, dict[tuple[str, str], tuple[int, dict[str, Any]]]] = {}
    starts = [line for line in lines if CONTROL in line and line[CONTROL].get("collector", {}).get("up")]
    for index, line in enumerate(lines[:cut]):
        peer = _peer(line)
        if peer is None:
            continue
        if line.get("type") == "state":
            status = line["neighbor"]["state"]
            state[peer] = status
            state_lines.setdefault(peer, {})[status] = line
            if status == "down":
                held.pop(peer, None)
            continue
        update = _update(line)
        if update is None:
            eor = line["neighbor"].get("message", {}).get("eor")
            if eor is not None:
                eors.setdefault(peer, {})[(eor["afi"], eor["safi"])] = line
            continue
        table = held.setdefault(peer, {})
        for family, by_hop in (update.get("announce") or {}).items():
            for routes in by_hop.values():
                for route in routes:
                    table[(family, route["nlri"])] = (index, line)
        for family, routes in (update.get("withdraw") or {}).items():
            for route in routes:
                table.pop((family, route["nlri"]), None)
    out = list(starts)
    for peer in sorted(p for p, s in state.items() if s == "up"):
        out += [state_lines[peer]["connected"], state_lines[peer]["up"]]
        keep: dict[int, set[tuple[str, str]]] = {}
        by_index: dict[int, dict[str, Any]] = {}
        for key, (index, line) in held.get(peer, {}).items():
            keep.setdefault(index, set()).add(key)
            by_index[index] = line
        for index in sorted(by_index):
            line = copy.deepcopy(by_index[index])
            update = _update(line)
            assert update is not None
            update.pop("withdraw", None)
            announce = {}
            for family, by_hop in update["announce"].items():
                hops = {}
                for hop, routes in by_hop.items():
                    routes = [r for r in routes if (family, r["nlri"]) in keep[index]]
                    if routes:
                        hops[hop] = routes
                if hops:
                    announce[family] = hops
            update["announce"] = announce
            out.append(line)
        out += list(eors.get(peer, {}).values())
    return out


def retime(lines: list[dict[str, Any]], start: float, max_gap: float = 1.0) -> list[dict[str, Any]]:
    """Return the lines stamped from `start` on: same order and spacing, gaps capped at `max_gap` s."""
    out = []
    shift: float | None = None
    latest: float | None = None
    for line in lines:
        at = line_time(line)
        if latest is None:
            shift = start - at
        elif at - latest > max_gap:
            shift -= at - latest - max_gap
        latest = at if latest is None else max(latest, at)
        out.append(set_time(line, at + shift))
    return out


def respaced(lines: list[dict[str, Any]], start: float, step: float = 0.01) -> list[dict[str, Any]]:
    """Return the lines stamped `start`, `start + step`, ... (a table re-sent right after `up`)."""
    return [set_time(line, start + i * step) for i, line in enumerate(lines)]


def encode(line: dict[str, Any]) -> bytes:
    """Return the line as ExaBGP (or the relay) writes it."""
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


class LiveFeed:
    """A `bgpwatch relay` process whose stdin receives each line when its time comes (like ExaBGP)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE)

    def write(self, lines: list[dict[str, Any]]) -> None:
        """Write the lines, each not before its own time."""
        assert self.proc.stdin is not None
        for line in lines:
            delay = line_time(line) - time.time()
            if delay > 0:
                time.sleep(delay)
            self.proc.stdin.write(encode(line))
            self.proc.stdin.flush()

    def close(self, timeout: float = 20) -> int:
        """Close stdin (ExaBGP gone) and wait for the relay to hand everything over."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)
