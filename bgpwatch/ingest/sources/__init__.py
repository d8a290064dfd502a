"""Input plug-ins: each source turns one feed into pipeline calls; the daemon drives them all alike.

A source is named in the config's ``inputs:`` list by its ``type`` (``exabgp``, ``bmp``), looked up in
`REGISTRY`, built with the daemon's `SourceHost` (the pipeline, the recorder) and its own config entry,
then started and stopped by the daemon.  Every source produces the same typed events
(`bgpwatch.events`) through the pipeline, and records what it received so that ``bgpwatch replay``
plays it back through the same pipeline (`bgpwatch.ingest.replay`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from bgpwatch.config import Config
    from bgpwatch.pipeline import Pipeline


class SourceHost(Protocol):
    """What a source may use of the daemon."""

    pipeline: Pipeline
    config: Config

    def record(self, line: bytes) -> None:
        """Write one input line into the recording (no-op when not recording)."""


class Source:
    """Base class of the input plug-ins: declare ``type``; implement start, stop, health, status."""

    type: ClassVar[str] = ""

    def __init__(self, host: SourceHost, params: Any) -> None:
        self.host = host
        self.params = params

    async def start(self) -> None:
        """Start receiving (listen, connect, spawn)."""

    async def stop(self) -> None:
        """Stop receiving and let what was received be applied, within a bound."""

    def health(self) -> list[str]:
        """Return what is wrong with this input now (empty: healthy)."""
        return []

    def status(self) -> dict[str, Any]:
        """Return a JSON-ready view of this input (the status API)."""
        return {"type": self.type}


REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    """Add a source class to the registry under its type (a duplicate is a bug)."""
    if not cls.type or cls.type in REGISTRY:
        raise TypeError(f"{cls.__name__}: missing or duplicate source type {cls.type!r}")
    REGISTRY[cls.type] = cls
    return cls


def _ensure_loaded() -> None:
    # The source modules register themselves on import.
    from bgpwatch.ingest.sources import bmp, exabgp, rislive  # noqa: F401


def build_sources(host: SourceHost, config: Config) -> list[Source]:
    """Return one source per entry of ``inputs:``, in config order."""
    _ensure_loaded()
    sources = [REGISTRY[item.type](host, item) for item in config.inputs]
    rpki = getattr(config, "rpki", None)
    if rpki is not None and rpki.rtr:
        from bgpwatch.rpki.rtr import RtrSource  # RPKI caches: an input of their own section

        sources.append(RtrSource(host, rpki))
    return sources


def source_types() -> list[str]:
    """Return the registered source types."""
    _ensure_loaded()
    return sorted(REGISTRY)
