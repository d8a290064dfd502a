"""Log sink: one structured line per alert transition, through the `logging` module.

Logger "bgpwatch.alerts".  `format: logfmt` (default) writes key=value pairs that journald,
Loki or grep read as they are; `format: json` writes the transition as one JSON object.
Firing critical alerts log at ERROR, other firing alerts at WARNING, resolutions at INFO, so
journald priorities follow the alert's weight.  The transition also travels as
`extra={"alert": ...}` for handlers that want the structure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import orjson

from bgpwatch.alerts.sinks.base import Sink, SinkParams, Transition, register_sink
from bgpwatch.config import Flag

alert_log = logging.getLogger("bgpwatch.alerts")

_ORDER = ("state", "kind", "severity", "at", "incident")


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if text and not any(c in text for c in ' "=\\\n\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_logfmt(transition: Mapping[str, Any]) -> str:
    """Return a transition as one logfmt line: alert state=... kind=... labels.site=... summary=..."""
    parts = ["alert"]
    for key in _ORDER:
        if key in transition:
            parts.append(f"{key}={_logfmt_value(transition[key])}")
    for name, value in sorted((transition.get("labels") or {}).items()):
        parts.append(f"labels.{name}={_logfmt_value(value)}")
    if "started_at" in transition:
        parts.append(f"started_at={_logfmt_value(transition['started_at'])}")
    if "duration_seconds" in transition:
        parts.append(f"duration_seconds={float(transition['duration_seconds']):.3f}")
    if "summary" in transition:
        parts.append(f"summary={_logfmt_value(transition['summary'])}")
    return " ".join(parts)


def level_of(transition: Mapping[str, Any]) -> int:
    """Return the logging level for a transition."""
    if transition.get("state") != "firing":
        return logging.INFO
    return logging.ERROR if transition.get("severity") == "critical" else logging.WARNING


class LogSinkParams(SinkParams):
    """`{type: log}`: one structured line per transition in bgpwatch's log."""

    type: Literal["log"] = "log"
    format: Literal["logfmt", "json"] = "logfmt"
    # None: log each transition at the level its state and severity suggest.
    level: Literal["debug", "info", "warning", "error", "critical"] | None = None
    evidence: Flag = False  # include the evidence in json lines


@register_sink
class LogSink(Sink):
    """Write each transition as one log line."""

    type_name: ClassVar[str] = "log"
    Params: ClassVar[type[SinkParams]] = LogSinkParams

    def __init__(self, params: Mapping[str, Any], metrics: Any, **kwargs: Any) -> None:
        super().__init__(params, metrics, **kwargs)
        self.format: str = params.get("format", "logfmt")
        self.evidence: bool = params.get("evidence", False)
        level = params.get("level")
        self.level: int | None = logging.getLevelName(level.upper()) if level else None

    def render(self, transition: Transition) -> str:
        """Return the log line for a transition."""
        if self.format == "logfmt":
            return format_logfmt(transition)
        body = dict(transition)
        if not self.evidence:
            body.pop("evidence", None)
        return orjson.dumps(body).decode()

    async def deliver(self, transition: Transition) -> None:
        """Log the transition."""
        level = self.level if self.level is not None else level_of(transition)
        alert_log.log(level, "%s", self.render(transition), extra={"alert": dict(transition)})
