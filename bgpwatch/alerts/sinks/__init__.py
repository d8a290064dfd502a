"""Alert sinks: where alert transitions go (log, Alertmanager, webhook), one plug-in per module."""

from __future__ import annotations

# The sinks' parameter models use the configuration's field types, and config.py builds its sink union
# from this package's registry: loading config.py first makes both import orders work.
import bgpwatch.config  # noqa: F401  isort: skip
from bgpwatch.alerts.sinks.alertmanager import AlertmanagerSink
from bgpwatch.alerts.sinks.base import (
    SINK_TYPES,
    DeliveryError,
    HttpSink,
    Sink,
    SinkConfigError,
    SinkMetrics,
    SinkSet,
    build_sinks,
    check_sinks,
    register_sink,
    transition_key,
)
from bgpwatch.alerts.sinks.log import LogSink
from bgpwatch.alerts.sinks.webhook import WebhookSink

__all__ = [
    "SINK_TYPES",
    "AlertmanagerSink",
    "DeliveryError",
    "HttpSink",
    "LogSink",
    "Sink",
    "SinkConfigError",
    "SinkMetrics",
    "SinkSet",
    "WebhookSink",
    "build_sinks",
    "check_sinks",
    "register_sink",
    "transition_key",
]
