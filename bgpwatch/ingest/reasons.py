"""Why a session went down, from ExaBGP's reason text: the one place that reads those strings.

ExaBGP 5.0.15 says (NOTES §3): ``notification received (6,2)`` (the peer closed it with a Cease),
``closing connection`` (TCP closed by the peer), ``notification sent (4,0)`` (our hold timer expired),
``stop, message [shutting down]`` (ExaBGP itself was stopped), ``... lost the helper process ...``
(its API process died).  4.x wraps the same texts in ``peer reset, message (...)``.
"""

from __future__ import annotations

COLLECTOR = "collector"
HOLD_TIMER = "hold_timer"
PEER = "peer"
OTHER = "other"


def down_cause(reason: str) -> str:
    """Return the typed cause (collector, hold_timer, peer, other) of a session-down reason."""
    text = reason.lower()
    if text.startswith("stop") or "shutting down" in text or "lost the helper process" in text:
        return COLLECTOR
    if "notification sent (4," in text or "hold timer" in text or "hold-timer" in text:
        return HOLD_TIMER
    if "notification received" in text or "closing connection" in text or "connection reset" in text:
        return PEER
    return OTHER
