"""A real Alertmanager receiving bgpwatch's alerts in a lab scenario: par2 loses power, then recovers.

Alertmanager runs in the lab's collector network namespace (where bgpwatch runs, so its
127.0.0.1 is bgpwatch's), clustering off, storage in the test's temp dir; it is queried from
inside that namespace through its API v2.  site_down {site=par2} must be active there after the
power cut (and stay so through the hold timer) and no longer active after par2 is back.  The incident's timeline is printed.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse

import pytest

from tests import alertmanager_server
from tests.lab import Lab, lab_available
from tests.lab.daemon import LabDaemon
from tests.test_lab_scenarios import SERVICE, all_converged

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(lab_available() is not None, reason=str(lab_available())),
    pytest.mark.skipif(not alertmanager_server.available(), reason=alertmanager_server.MISSING),
]

PORT = 19093  # inside the lab's own namespace: nothing else listens there
FETCH = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"


def fetch(lab: Lab, url: str) -> str | None:
    """GET a URL from inside the collector namespace; None when it does not answer."""
    done = lab.collector_run([sys.executable, "-c", FETCH, url], timeout=10)
    return done.stdout if done.returncode == 0 else None


def active_alerts(lab: Lab, url: str, **filters: str) -> list[dict]:
    query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
    body = fetch(lab, f"{url}/api/v2/alerts?{query}")
    assert body is not None, "Alertmanager stopped answering"
    return [a for a in json.loads(body) if a["status"]["state"] == "active"]


def test_site_down_reaches_alertmanager_and_resolves(tmp_path):
    started = time.monotonic()
    with Lab(3) as lab:
        lab.wait_established(60)
        with alertmanager_server.running_alertmanager(
            tmp_path / "am",
            f"127.0.0.1:{PORT}",
            popen=lab.collector_exec,
            probe=lambda url: fetch(lab, url + "/-/ready") is not None,
        ) as url:
            sink = {"type": "alertmanager", "url": url, "resend_seconds": 2}
            daemon = LabDaemon(lab, tmp_path, services=[SERVICE], alerting={"sinks": [sink]})
            daemon.start()
            daemon.wait_for(lambda: all_converged(daemon), 60, "every session up with End-of-RIB")
            lab.power_off("par2")
            [alert] = daemon.wait_for(
                lambda: active_alerts(lab, url, alertname="site_down", site="par2"),
                40,
                "site_down par2 active in Alertmanager",
            )
            assert alert["labels"]["severity"] == "critical" and alert["labels"]["source"] == "bgpwatch"
            incident = alert["labels"]["incident"]
            assert any(a["kind"] == "site_down" for a in daemon.cli("alerts"))
            # Let the hold timer expire (par2's session and its stale routes go) before power returns.
            daemon.wait_for(
                lambda: any(
                    t["kind"] == "stale_routes" and t["state"] == "resolved" and t["incident"] == incident
                    for t in daemon.cli("alerts", "--transitions")
                ),
                30,
                "par2's stale routes gone",
            )
            lab.power_on("par2")
            daemon.wait_for(
                lambda: not active_alerts(lab, url, alertname="site_down", site="par2"),
                45,
                "site_down par2 resolved in Alertmanager",
            )
            daemon.wait_for(lambda: not active_alerts(lab, url, incident=incident), 20, "the incident over")
            timeline = daemon.cli("incidents", "show", incident, json_output=False)[1]
            assert daemon.stop() == 0
    assert "par2" in timeline
    print(f"\n{timeline}\n(scenario took {time.monotonic() - started:.0f} s)")
