"""MRT under mutation: the reader yields events or raises MrtError naming the file and record, nothing else.

Seeded and bounded (hypothesis, ``derandomize=True``): real MRT files from fixtures/mrt (uncompressed
bytes, so that mutations reach the records rather than only the gzip stream) with bytes flipped, cut,
inserted or a record header rewritten.  Every event that comes out is well formed.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpwatch.events import Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.ingest.mrt import MrtError, MrtReader, MrtStats
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
