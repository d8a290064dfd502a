"""`bgpwatch replay` and `bgpwatch demo`: recorded input through the daemon's own pipeline.

The clock is the recording's: every event carries its own time, detectors take `now` from
it, so a replay fires the same alerts at the same (stream) times as the live run did.
Without `pace` the replay runs as fast as the machine allows; with `pace` = N it sleeps so
that N seconds of recording take one second, which lets the API (and `bgpwatch topology`)
be watched while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bgpwatch.config import Config
from bgpwatch.ingest.replay import ReplayStats, replay_files

log = logging.getLogger("bgpwatch.replay")

DEFAULT_SETTLE = 10.0  # stream seconds run after the last event, so pending alerts fire or resolve


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


def replay(
    config: Config,
    files: Iterable[str | Path],
    on_transition: Callable[[dict[str, Any]], None],
    settle: float = DEFAULT_SETTLE,
) -> tuple[ReplayStats, Any]:
    """Replay files as fast as possible; return the stats and the engine (for its final views)."""
    from bgpwatch.detect.engine import DetectionEngine
    from bgpwatch.pipeline import Pipeline

    pipeline = Pipeline(config)
    engine = DetectionEngine(config, pipeline.rib, on_transition)
    pipeline.consumer = engine
    stats = ReplayStats()
    feed = pipeline.feed_event
    last_at: float | None = None
    for event in replay_files(files, pipeline.pool, stats):
        feed(event)
        last_at = event.at
    if last_at is not None:
        engine.finish(last_at, horizon=settle)
    return stats, engine


async def replay_serving(
    daemon: Any,
    files: Iterable[str | Path],
    pace: float | None,
    settle: float = DEFAULT_SETTLE,
    linger: float = 0.0,
    before_stop: Callable[[Any], None] | None = None,
) -> ReplayStats:
    """Replay through a full `Daemon` (API, store, sinks up) at `pace` x real time."""
    stats = ReplayStats()
    await daemon.start_services()
    feed = daemon.pipeline.feed_event
    first_at: float | None = None
    last_at: float | None = None
    wall_start = time.monotonic()
    since_yield = 0
    try:
        for event in replay_files(files, daemon.pipeline.pool, stats):
            if first_at is None:
                first_at = event.at
            if pace:
                delay = (event.at - first_at) / pace - (time.monotonic() - wall_start)
                if delay > 0:
                    await asyncio.sleep(delay)
                    since_yield = 0
            feed(event)
            last_at = event.at
            since_yield += 1
            if since_yield >= 2000:  # keep the API answering during a fast replay
                await asyncio.sleep(0)
                since_yield = 0
        if last_at is not None and daemon.engine is not None:
            if pace:
                await asyncio.sleep(min(settle / pace, 5.0))
            daemon.engine.finish(last_at, horizon=settle)
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
