"""Webhook sink: POST each transition, as the contract JSON or as a Slack-compatible message.

One transition per request.  The body is the transition exactly as the lifecycle produced it (the
alert transition contract of DESIGN.md), or, with `slack: true`, {"text": "..."} which Slack,
Mattermost and Rocket.Chat incoming webhooks accept.  `token` goes into an
`Authorization: Bearer` header; neither it nor the URL path (Slack hook URLs are secrets) is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from bgpwatch.alerts.sinks.base import (
    HttpSink,
    HttpSinkParams,
    SinkParams,
    Transition,
    json_bytes,
    register_sink,
)
from bgpwatch.alerts.timeline import format_duration
from bgpwatch.config import Flag


def chat_text(transition: Mapping[str, Any]) -> str:
    """Return a one-line chat message for a transition."""
    state = str(transition.get("state", "?")).upper()
    severity = transition.get("severity", "")
    kind = transition.get("kind", "alert")
    summary = transition.get("summary") or kind
    text = f"[{state}] {severity} {kind}: {summary}" if severity else f"[{state}] {kind}: {summary}"
    if transition.get("state") == "resolved" and "duration_seconds" in transition:
        text += f" (after {format_duration(float(transition['duration_seconds']))})"
    if transition.get("incident"):
        text += f" - incident {transition['incident']}"
    return text


class WebhookSinkParams(HttpSinkParams):
    """`{type: webhook, url: ...}`: POST each transition (or a chat line) to a URL."""

    type: Literal["webhook"] = "webhook"
    slack: Flag = False  # send {"text": ...} instead of the transition JSON


@register_sink
class WebhookSink(HttpSink):
    """POST transitions to an HTTP endpoint."""

    type_name: ClassVar[str] = "webhook"
    Params: ClassVar[type[SinkParams]] = WebhookSinkParams

    def __init__(self, params: Mapping[str, Any], metrics: Any, **kwargs: Any) -> None:
        super().__init__(params, metrics, **kwargs)
        self.slack: bool = params.get("slack", False)

    def body_for(self, transition: Transition) -> bytes:
        """Return the request body for a transition."""
        if self.slack:
            return json_bytes({"text": chat_text(transition)})
        return json_bytes(dict(transition))

    async def deliver(self, transition: Transition) -> None:
        """POST one transition."""
        await self.post_json(self.url, self.body_for(transition))
