"""HTTP API: /metrics, /healthz and the JSON API the CLI talks to."""
