"""A real Debian prometheus-alertmanager for tests: started on a loopback port, stopped afterwards.

`running_alertmanager` starts it with a null receiver (or the given configuration), no clustering
and its storage in a temporary directory.  ``popen`` lets a caller start it elsewhere (e.g. a lab's
collector network namespace through `Lab.collector_exec`), and ``probe`` how readiness is checked
from there.

`shipped_config` is config/alertmanager/alertmanager.yml with only its receivers' destinations
changed (to `<url>/<receiver name>`, e.g. a `NotificationRecorder`) and its template paths made
absolute: its routes, timers, templates and inhibition rules are the shipped ones.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AMTOOL = "/usr/bin/amtool"
MISSING = f"{ALERTMANAGER} not installed (Debian package prometheus-alertmanager)"

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "alertmanager" / "alertmanager.yml"

# As the shipped configuration groups the daemon's alerts: one group per incident.
CONFIG = """\
route:
  receiver: "null"
  group_by: [incident]
  group_wait: 0s
receivers:
  - name: "null"
"""


def available() -> bool:
    """Tell whether the Alertmanager binary is installed."""
    return Path(ALERTMANAGER).exists()


def http_ready(url: str) -> bool:
    """Return whether Alertmanager at `url` answers /-/ready with 200."""
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_alertmanager(
    work: Path,
    listen: str,
    *,
    popen: Callable[..., subprocess.Popen[Any]] = subprocess.Popen,
    probe: Callable[[str], bool] = http_ready,
    timeout: float = 15.0,
    config: str = CONFIG,
) -> Iterator[str]:
    """Run Alertmanager listening on `listen` (host:port); yield its base URL."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "am.yml").write_text(config)
    url = f"http://{listen}"
    log_path = work / "am.log"
    with log_path.open("wb") as log:
        proc = popen(
            [
                ALERTMANAGER,
                f"--config.file={work / 'am.yml'}",
                f"--web.listen-address={listen}",
                "--cluster.listen-address=",
                f"--storage.path={work / 'data'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while not probe(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("alertmanager did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def query(url: str, path: str = "/api/v2/alerts", **filters: str) -> list[dict]:
    """GET an Alertmanager API v2 list, with label-equality filters."""
    params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=5) as resp:
        return json.loads(resp.read())


def shipped_config(receivers_url: str, path: Path = SHIPPED) -> dict[str, Any]:
    """Return the shipped configuration, every receiver sending to `receivers_url`/<its name>."""
    config = yaml.safe_load(path.read_text())
    config["templates"] = [str(path.parent / name) for name in config.get("templates", [])]
    for receiver in config["receivers"]:
        url = f"{receivers_url}/{receiver['name']}"
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = url
        for slack in receiver.get("slack_configs", []):
            slack.pop("api_url_file", None)
            slack["api_url"] = url
        for pager in receiver.get("pagerduty_configs", []):
            pager.pop("routing_key_file", None)
            pager["routing_key"] = "test-routing-key"  # not a secret: the recorder is the "pager"
            pager["url"] = url
    return config


@dataclass(frozen=True)
class Notification:
    """One notification a receiver got, whatever its integration (PagerDuty, Slack, webhook)."""

    receiver: str
    status: str  # "firing" or "resolved"
    title: str
    text: str
    group: str  # the incident, or what else the group is keyed on
    body: dict[str, Any]


def _footer_group(footer: str) -> str:
    """Return the group bgpwatch.tmpl's footer names: "incident <id> · ..." or "<alertname> · ..."."""
    return footer.split(" · ", 1)[0].removeprefix("incident ")


def notification(receiver: str, body: dict[str, Any]) -> Notification:
    """Return the notification an integration's request body carries."""
    if "event_action" in body:  # PagerDuty Events API v2; details.status is bgpwatch.footer
        details = body.get("payload", {}).get("custom_details", {})
        return Notification(
            receiver,
            "resolved" if body["event_action"] == "resolve" else "firing",
            body.get("payload", {}).get("summary", ""),
            details.get("text", ""),
            _footer_group(details.get("status", "")) or body.get("dedup_key", ""),
            body,
        )
    if "attachments" in body:  # Slack; the footer is bgpwatch.footer
        [attachment] = body["attachments"]
        footer = attachment.get("footer", "")
        return Notification(
            receiver,
            footer.split(" · ")[1] if footer.count(" · ") >= 1 else "",
            attachment.get("title", ""),
            attachment.get("text", ""),
            _footer_group(footer),
            body,
        )
    labels = body.get("groupLabels", {})  # Alertmanager's webhook JSON
    return Notification(
        receiver, body.get("status", ""), "", "", labels.get("incident") or json.dumps(labels), body
    )


class NotificationRecorder:
    """An HTTP server on 127.0.0.1 standing in for every receiver: it keeps what it is sent."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with recorder._lock:
                    recorder.notifications.append(notification(self.path.strip("/"), body))
                reply = b'{"status": "success", "message": "Event processed", "dedup_key": "x"}'
                self.send_response(202 if "event_action" in body else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                """Keep the test's output clean."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> NotificationRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def got(self, receiver: str | None = None, group: str | None = None) -> list[Notification]:
        """Return the notifications so far, of one receiver and one group if given."""
        with self._lock:
            return [
                n
                for n in self.notifications
                if (receiver is None or n.receiver == receiver) and (group is None or n.group == group)
            ]
