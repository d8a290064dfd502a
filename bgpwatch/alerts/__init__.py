"""Alerting: lifecycle (firing/resolved, incidents), embedded store, timelines, delivery sinks."""
