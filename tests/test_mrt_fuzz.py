"""MRT under mutation: the reader yields events or raises MrtError naming the file and record, nothing else.

Seeded and bounded (hypothesis, ``derandomize=True``): real MRT files from fixtures/mrt (uncompressed
bytes, so that mutations reach the records rather than only the gzip stream) with bytes flipped, cut,
inserted or a record header rewritten.  Every event that comes out is well formed.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpwatch.events import Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.ingest.mrt import ERROR_REASONS, MrtError, MrtReader, MrtStats
from bgpwatch.rib.attributes import AttributePool

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "mrt"
SOURCES = [
    gzip.decompress((ROOT / "bgpdump" / "updates.20020722.2238.gz").read_bytes())[:20000],
    (ROOT / "mrtparse" / "bird6-mrtdump_bgp").read_bytes(),
    (ROOT / "mrtparse" / "openbgpd_rib_table-mp").read_bytes(),
    (ROOT / "mrtparse" / "quagga_bgp").read_bytes(),
]
KINDS = (Announce, Withdraw, EndOfRib, SessionState)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("flip", "cut", "insert", "header")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif op == "header" and len(data) >= 12:
            data[8:12] = draw(st.binary(min_size=4, max_size=4))  # the first record's length
    return bytes(data)


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_mrt_never_raises_anything_but_mrt_error(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".mrt") as handle:
        handle.write(data)
        handle.flush()
        stats = MrtStats()
        events = []
        try:
            for event in MrtReader(AttributePool(), stats).read(handle.name):
                events.append(event)
        except MrtError as exc:
            assert handle.name in str(exc)  # names the file (and the record)
        for event in events:
            assert isinstance(event, KINDS)
            assert 0 <= event.at < 2**32
            if isinstance(event, Announce | Withdraw):
                assert event.family in (4, 6) and event.prefixes


# -- the malformed corpus (fixtures/malformed/mrt, provenance in fixtures/SOURCES.md) ----------------
CORPUS = ROOT.parent / "malformed" / "mrt"
# Damage after which the reader cannot find the next record: the file stops with an MrtError.
STOPS = frozenset({"truncated", "bad_record_length", "decompression"})


def test_malformed_corpus() -> None:
    files = sorted(CORPUS.glob("*--*.mrt*"))
    assert len(files) >= 15, "run fixtures/malformed/mrt/make_corpus.py"
    seen = set()
    for path in files:
        expected = path.name.split("--")[0]
        assert expected in ERROR_REASONS, path.name
        stats = MrtStats()
        events = []
        try:
            for event in MrtReader(AttributePool(), stats).read(path):
                events.append(event)
        except MrtError as exc:
            assert expected in STOPS, (path.name, str(exc))
            assert exc.reason == expected, (path.name, str(exc))
            assert str(path) in str(exc) and f"record {exc.record} at byte {exc.offset}" in str(exc)
            assert stats.records == exc.record  # the records before the damage were read
        else:
            assert expected not in STOPS, f"{path.name}: read to its end"
            assert stats.records > 0  # a skipped record does not stop the file
        assert stats.errors[expected] >= 1, (path.name, dict(stats.errors))
        assert set(stats.errors) == {expected}, (path.name, dict(stats.errors))  # broken one way only
        assert len(stats.error_samples[0]) < 1000 and "\n" not in stats.error_samples[0]
        for event in events:
            assert isinstance(event, KINDS)
            assert 0 <= event.at < 2**32
        seen.add(expected)
    assert seen == set(ERROR_REASONS) - {"io"}  # every kind of damage but an unreadable file


def test_malformed_corpus_replayed_by_the_cli_is_said_plainly() -> None:
    files = sorted(CORPUS.glob("*--*.mrt*"))
    config = ROOT.parent.parent / "bgpwatch" / "data" / "paris.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "bgpwatch", "replay", "--config", str(config), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    said = [line for line in run.stderr.splitlines() if line.startswith("bgpwatch replay: ")]
    stopped = [path for path in files if path.name.split("--")[0] in STOPS]
    assert len(said) == len(stopped) + 1  # a RIB dump without its index is not an MRT file either
    for path in stopped:
        assert any(line.startswith(f"bgpwatch replay: {path}: ") for line in said), path.name


def test_fuzz_binary_campaign_smoke() -> None:
    # A smoke size of bench/fuzz_binary.py (the longer run of this property and of the BMP one).
    from bench.fuzz_binary import campaign

    result = campaign(60, 600, seed=3)
    assert result["mrt"]["exceptions_escaped"] == 0, result["mrt"]["escaped_samples"]
    assert sum(result["mrt"]["files_by_end"].values()) == 60
    assert result["bmp"]["exceptions_escaped"] == 0, result["bmp"]["escaped_samples"]
    assert sum(result["bmp"]["outcomes"].values()) == 600
