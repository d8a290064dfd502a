"""`bgpwatch replay` and `bgpwatch demo`: recorded input through the daemon's own pipeline.

The clock is the recording's: every event carries its own time, detectors take `now` from
it, so a replay fires the same alerts at the same (stream) times as the live run did.  Between
two events the replay ticks the engine at each time something falls due (`catch_up`, the
engine's `next_due`), as the daemon's wall-clock timer does live: a transition due at T is
emitted at T, before any later event is fed; paced, at the wall time T maps to.
Without `pace` the replay runs as fast as the machine allows; with `pace` = N it sleeps so
that N seconds of recording take one second, which lets the API (and `bgpwatch topology`)
be watched while it runs.

The input is files (`replay_files`) or any other event source (``source``: a function of the
pipeline's attribute pool and the stats, e.g. `bgpwatch.ingest.bgpstream.bgpstream_events`).
`ReplayProgress` draws a one-line progress display on a terminal (the CLI's choice).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bgpwatch.config import Config
from bgpwatch.events import Event
from bgpwatch.ingest.replay import ReplayStats, replay_files
from bgpwatch.rib.attributes import AttributePool

log = logging.getLogger("bgpwatch.replay")

DEFAULT_SETTLE = 10.0  # stream seconds run after the last event, so pending alerts fire or resolve
PROGRESS_INTERVAL = 0.25  # seconds between two redraws of the progress line
_PROGRESS_EVERY = 256  # events between two looks at the clock
# Ticks between two events at most: a day of quiet stream at one self-tick per second, and then some.
_CATCH_UP_MAX = 200_000

# Where a replay's events come from: called with the pipeline's pool and the stats to fill.
EventSource = Callable[[AttributePool, ReplayStats], Iterable[Event]]


def files_source(files: Iterable[str | Path]) -> EventSource:
    """Return the event source that reads recordings (ExaBGP JSON, RIS Live, MRT) in turn."""
    paths = list(files)

    def source(pool: AttributePool, stats: ReplayStats) -> Iterable[Event]:
        return replay_files(paths, pool, stats)

    return source


class ReplayProgress:
    """One self-overwriting status line on a terminal: file i/n, its name, the share of it read.

    The share is the compressed bytes read of the current file over its size on disk (what
    ``stats.input_bytes`` counts).  Redrawn at most every ``interval`` seconds; ``clear`` erases
    the line (before other output is printed on the same terminal, and at the end).
    """

    def __init__(
        self,
        stream: IO[str],
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.draws = 0
        self._shown = False
        self._next = 0.0
        self._label = ""
        self._size = 0
        self._base = 0

    def wrap(self, files: Iterable[str | Path]) -> EventSource:
        """Return an event source reading ``files`` like `files_source`, drawing the progress line."""
        paths = list(files)

        def source(pool: AttributePool, stats: ReplayStats) -> Iterator[Event]:
            try:
                for index, path in enumerate(paths, 1):
                    self.start_file(path, index, len(paths), stats)
                    for count, event in enumerate(replay_files([path], pool, stats), 1):
                        yield event
                        if count % _PROGRESS_EVERY == 0:
                            self.update(stats)
                    self.update(stats, force=True)
            finally:
                self.clear()

        return source

    def start_file(self, path: str | Path, index: int, count: int, stats: ReplayStats) -> None:
        """Begin showing a new file (index of count)."""
        try:
            self._size = os.path.getsize(path)
        except OSError:
            self._size = 0
        self._base = stats.input_bytes
        self._label = f"[{index}/{count}] {os.path.basename(os.fspath(path))}"
        self.update(stats, force=True)

    def update(self, stats: ReplayStats, force: bool = False) -> None:
        """Redraw the line if ``interval`` has passed (or ``force``)."""
        now = self.clock()
        if not force and now < self._next:
            return
        self._next = now + self.interval
        done = max(0, stats.input_bytes - self._base)
        share = min(1.0, done / self._size) if self._size else 1.0
        width = 20
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        line = f"\r\x1b[K{self._label} [{bar}] {share * 100:5.1f}%  {_human(done)}/{_human(self._size)}"
        line += f"  {stats.events} events"
        self.stream.write(line)
        self.stream.flush()
        self._shown = True
        self.draws += 1

    def clear(self) -> None:
        """Erase the progress line if it is shown (the next update draws it again)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
            self._next = 0.0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def replay_config(config: Config, storage_dir: Path | None) -> Config:
    """Return the configuration a replay runs with: no ExaBGP, no recording, a private store."""
    collector = config.collector.model_copy(update={"exabgp": "external"})
    update: dict[str, Any] = {
        "collector": collector,
        "recording": config.recording.model_copy(update={"path": None}),
    }
    if storage_dir is not None:
        update["storage"] = config.storage.model_copy(update={"path": storage_dir / "replay.db"})
    return config.model_copy(update=update)


def catch_up(pipeline: Any, engine: Any, until: float) -> Iterator[float]:
    """Yield each stream time before ``until`` at which the engine is due; the caller ticks it there.

    ``until`` is the next event's time (or the end of the settle period).  Yielding instead of
    ticking lets a paced replay sleep until each due time first.  Nothing is bridged when ``until``
    lies beyond the stream clock's skew: the pipeline may reject that event as a stray time (or
    confirm a jump), and the engine's clock must never have run ahead to it.
    """
    clock = pipeline.clock
    if engine.now is None or clock.latest is None or until > clock.latest + clock.skew:
        return
    for _ in range(_CATCH_UP_MAX):
        due = engine.next_due()
        if due >= until:
            return
        yield due


def replay(
    config: Config,
    files: Iterable[str | Path],
    on_transition: Callable[[dict[str, Any]], None],
    settle: float = DEFAULT_SETTLE,
    source: EventSource | None = None,
) -> tuple[ReplayStats, Any]:
    """Replay files (or ``source``) as fast as possible; return the stats and the engine (for its final views)."""
    from bgpwatch.detect.engine import DetectionEngine
    from bgpwatch.pipeline import Pipeline

    pipeline = Pipeline(config)
    engine = DetectionEngine.for_pipeline(pipeline, on_transition)
    stats = ReplayStats()
    feed = pipeline.feed_event
    last_at: float | None = None
    if source is None:
        source = files_source(files)
    for event in source(pipeline.pool, stats):
        # What falls due before this event is emitted at its own time, as the live timer would
        # (nothing can fall due between events of one time: MRT's are whole seconds).
        if last_at is not None and event.at > last_at:
            for due in catch_up(pipeline, engine, event.at):
                engine.tick(due)
        feed(event)
        last_at = event.at
    if last_at is not None:
        for due in catch_up(pipeline, engine, last_at + settle):
            engine.tick(due)
        engine.finish(last_at, horizon=settle)
    return stats, engine


async def replay_serving(
    daemon: Any,
    files: Iterable[str | Path],
    pace: float | None,
    settle: float = DEFAULT_SETTLE,
    linger: float = 0.0,
    before_stop: Callable[[Any], None] | None = None,
    source: EventSource | None = None,
) -> ReplayStats:
    """Replay files (or ``source``) through a full `Daemon` (API, store, sinks up) at `pace` x real time."""
    stats = ReplayStats()
    await daemon.start_services(live=False)  # the recording is the only clock: no wall-clock tick
    pipeline = daemon.pipeline
    engine = daemon.engine
    feed = pipeline.feed_event
    first_at: float | None = None
    last_at: float | None = None
    wall_start = time.monotonic()
    since_yield = 0

    async def wait_until(at: float) -> bool:
        """Sleep until the paced wall time of stream time ``at``; return whether it slept."""
        assert first_at is not None and pace
        delay = (at - first_at) / pace - (time.monotonic() - wall_start)
        if delay > 0:
            await asyncio.sleep(delay)
            return True
        return False

    try:
        if source is None:
            source = files_source(files)
        for event in source(pipeline.pool, stats):
            if first_at is None:
                first_at = event.at
            if engine is not None and last_at is not None and event.at > last_at:
                # The engine advances with the (paced) stream clock: a transition due between two
                # events is emitted (printed, served, sent) at its own time, not with the next event.
                for due in catch_up(pipeline, engine, event.at):
                    if pace and await wait_until(due):
                        since_yield = 0
                    engine.tick(due)
            if pace and await wait_until(event.at):
                since_yield = 0
            feed(event)
            last_at = event.at
            since_yield += 1
            if since_yield >= 2000:  # keep the API answering during a fast replay
                await asyncio.sleep(0)
                since_yield = 0
        if last_at is not None and engine is not None:
            # Paced, the settle period runs in paced time too (at most 5 s of wall time), then flat out.
            end = last_at + (min(settle, 5.0 * pace) if pace else settle)
            for due in catch_up(pipeline, engine, end):
                if pace:
                    await wait_until(due)
                engine.tick(due)
            engine.finish(last_at, horizon=settle)
        if before_stop is not None:
            before_stop(daemon)
        if linger > 0:
            log.info("replay finished; API still up for %.0f s (Ctrl-C to stop)", linger)
            try:
                await asyncio.wait_for(daemon.stop_event.wait(), timeout=linger)
            except TimeoutError:
                pass
    finally:
        await daemon.stop_services()
    return stats
