"""bgpwatch: a BGP monitor for operators running several sites."""

from __future__ import annotations

__version__ = "0.1.0"
