"""A small synchronous client of the daemon's HTTP API, for the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class DaemonUnreachable(RuntimeError):
    """The daemon is not running or not listening where the configuration says."""


class ApiError(RuntimeError):
    """The daemon answered with an error (bad parameter, unknown id...)."""


class Client:
    """Talk JSON to a running bgpwatch."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, params: dict[str, Any] | None = None, raw: bool = False) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._send(urllib.request.Request(url), raw)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body and return the JSON answer."""
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        return self._send(request)

    def delete(self, path: str) -> Any:
        """DELETE a resource and return the JSON answer."""
        return self._send(urllib.request.Request(self.base_url + path, method="DELETE"))

    def _send(self, request: urllib.request.Request, raw: bool = False) -> Any:
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise ApiError(f"{message} (HTTP {exc.code})") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnreachable(f"bgpwatch is not running at {self.base_url} ({reason})") from exc
        return body.decode() if raw else json.loads(body)
