"""The BMP ingest benchmark at its smoke size, so it never rots: its CLI prints sane JSON (no timing asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bmp_ingest_bench() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bmp_ingest", "--limit", "400", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["machine"]["cpus"] >= 1 and report["machine"]["python"]
    assert report["updates"] == 400 and report["peers"] > 1
    assert report["bmp_messages"] == 1 + report["peers"] + report["updates"]  # Initiation, Peer Ups, UPDATEs
    # The same UPDATEs: BMP and MRT count the same elements and make the same prefix events.
    assert report["elements"]["bmp"] == report["elements"]["mrt"] > 0
    assert report["prefix_events"]["bmp"] == report["prefix_events"]["mrt"]
    assert report["pipeline_rejected"] == 0 and report["pipeline_view_routes"] > 0
    candidates = ["bmp", "pipeline", "mrt"]
    if shutil.which("bgpdump") or Path("/usr/bin/bgpdump").exists():
        candidates.append("bgpdump")
        assert report["elements"]["bgpdump"] == report["elements"]["bmp"]
        assert report["parity"] is True
        assert report["ratios"]["bmp_vs_bgpdump"] > 0
    for name in candidates:
        assert report[name]["rate"] > 0 and report[name]["seconds"] > 0
    assert report["ratios"]["bmp_vs_mrt"] > 0 and report["ratios"]["pipeline_vs_bmp"] > 0
