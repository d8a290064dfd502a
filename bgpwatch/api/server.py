"""The HTTP API (aiohttp): /metrics, /healthz and /api/v1/... for the CLI and for scripts."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bgpwatch.rib.prefix import format_prefix, parse_address, parse_prefix

if TYPE_CHECKING:
    from bgpwatch.daemon import Daemon

MAX_LIMIT = 1_000_000
DEFAULT_LIMIT = 10_000


class BadRequest(ValueError):
    """A query parameter that cannot be used, with a message naming it."""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def route_dict(daemon: Daemon, address: str, family: int, key: int, attrs) -> dict[str, Any]:
    """Return the contract's prefix object for one route."""
    session = daemon.pipeline.sessions.get(address)
    data = {
        "prefix": format_prefix(family, key),
        "peer": session.name if session else address,
        "peer_address": address,
        "site": session.site if session else None,
        "family": f"ipv{family}",
        "origin_as": attrs.origin_as,
    }
    data.update(attrs.to_dict())
    return data


def select_routes(daemon: Daemon, query: dict[str, str]) -> list[dict[str, Any]]:
    """Apply the /api/v1/prefixes filters (peer, site, prefix, lookup, limit)."""
    allowed = {"peer", "site", "prefix", "lookup", "limit", "family"}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r} (expected one of: {', '.join(sorted(allowed))})")
    sessions = daemon.pipeline.sessions
    rib = daemon.pipeline.rib
    addresses = list(rib.peers)
    if "peer" in query:
        wanted = query["peer"]
        addresses = [
            a for a in addresses if a == wanted or (sessions.get(a) and sessions.get(a).name == wanted)
        ]
        if not addresses and not any(
            s.name == wanted or s.address == wanted for s in sessions.by_address.values()
        ):
            raise BadRequest(f"peer: no configured peer is named {wanted!r}")
    if "site" in query:
        site = query["site"]
        if site not in {s.site for s in sessions.by_address.values()}:
            raise BadRequest(f"site: no configured site is named {site!r}")
        addresses = [a for a in addresses if sessions.get(a) and sessions.get(a).site == site]
    families = (4, 6)
    if "family" in query:
        if query["family"] not in ("ipv4", "ipv6"):
            raise BadRequest(f"family: expected ipv4 or ipv6, got {query['family']!r}")
        families = (int(query["family"][-1]),)
    limit = int(query.get("limit", DEFAULT_LIMIT)) if str(query.get("limit", "1")).isdigit() else None
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {query.get('limit')!r}")
    out: list[dict[str, Any]] = []
    if "prefix" in query:
        try:
            family, key = parse_prefix(query["prefix"])
        except ValueError as exc:
            raise BadRequest(f"prefix: {exc}") from exc
        for address in addresses:
            attrs = rib.peers[address].get(family, key)
            if attrs is not None:
                out.append(route_dict(daemon, address, family, key, attrs))
        return out[:limit]
    if "lookup" in query:
        try:
            family, host = parse_address(query["lookup"])
        except ValueError as exc:
            raise BadRequest(f"lookup: expected an IP address, {exc}") from exc
        for address in addresses:
            found = rib.peers[address].lookup(family, host)
            if found is not None:
                out.append(route_dict(daemon, address, family, found[0], found[1]))
        return out[:limit]
    for address in addresses:
        for family in families:
            for key, attrs in rib.peers[address].tables[family].items():
                out.append(route_dict(daemon, address, family, key, attrs))
                if len(out) >= limit:
                    return out
    return out


MAINTENANCE_FIELDS = ("target", "duration_seconds", "reason")


def maintenance_request(body: Any) -> tuple[str, float | None, str]:
    """Return (target, duration, reason) from a POST /api/v1/maintenance body; BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object {target, duration_seconds?, reason?}")
    unknown = sorted(set(body) - set(MAINTENANCE_FIELDS))
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field (expected one of: {', '.join(MAINTENANCE_FIELDS)})")
    target = body.get("target")
    if not isinstance(target, str) or not target.strip():
        raise BadRequest(f"target: expected a site or peer name, got {target!r}")
    duration = body.get("duration_seconds")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration < 1e9
    ):
        raise BadRequest(f"duration_seconds: expected a positive number of seconds, got {duration!r}")
    reason = body.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > 500:
        raise BadRequest("reason: expected a text of at most 500 characters")
    return target.strip(), None if duration is None else float(duration), reason


def build_app(daemon: Daemon) -> web.Application:
    """Return the aiohttp application serving the daemon's state."""

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except BadRequest as exc:
            return _json({"error": str(exc)}, status=400)

    @web.middleware
    async def auth(request: web.Request, handler):
        token = daemon.config.api.token
        if token is None or request.path in ("/metrics", "/healthz"):
            return await handler(request)
        given = request.headers.get("Authorization", "")
        expected = "Bearer " + token.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _json({"error": "missing or wrong bearer token"}, status=401)
        return await handler(request)

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(daemon.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        healthy, reasons = daemon.health()
        return _json({"healthy": healthy, "problems": reasons}, status=200 if healthy else 503)

    async def status(_request: web.Request) -> web.Response:
        return _json(daemon.status())

    async def peers(_request: web.Request) -> web.Response:
        now = time.time()
        result = []
        for session in daemon.pipeline.sessions.by_address.values():
            entry = daemon.pipeline.sessions.to_dict(session, now)
            rib = daemon.pipeline.rib.peers.get(session.address)
            entry["routes"] = len(rib) if rib else 0
            entry["routes_ipv4"] = len(rib.tables[4]) if rib else 0
            entry["routes_ipv6"] = len(rib.tables[6]) if rib else 0
            result.append(entry)
        return _json(result)

    async def prefixes(request: web.Request) -> web.Response:
        return _json(select_routes(daemon, dict(request.query)))

    async def topology(_request: web.Request) -> web.Response:
        return _json(daemon.topology())

    async def topology_dot(_request: web.Request) -> web.Response:
        return web.Response(text=daemon.topology_dot(), content_type="text/vnd.graphviz")

    async def alerts(request: web.Request) -> web.Response:
        include_all = request.query.get("all", "false").lower() in ("1", "true", "yes")
        since = request.query.get("since")
        try:
            return _json(daemon.alerts(include_all=include_all, since=since))
        except ValueError as exc:
            raise BadRequest(f"since: expected an ISO-8601 time or epoch seconds, got {since!r}") from exc

    async def transitions(request: web.Request) -> web.Response:
        since: str | float | None = request.query.get("since")
        if isinstance(since, str) and since.replace(".", "", 1).isdigit():
            since = float(since)
        try:
            return _json(daemon.store.transitions(since=since))
        except ValueError as exc:
            raise BadRequest(f"since: expected an ISO-8601 time or epoch seconds, got {since!r}") from exc

    async def incidents(_request: web.Request) -> web.Response:
        return _json(daemon.incidents())

    async def incident(request: web.Request) -> web.Response:
        found = daemon.incident(request.match_info["incident_id"])
        if found is None:
            return _json({"error": f"no incident {request.match_info['incident_id']!r}"}, status=404)
        return _json(found)

    async def maintenance_list(_request: web.Request) -> web.Response:
        return _json(daemon.planned.windows(daemon.stream_now()))

    async def maintenance_start(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body: expected JSON, {exc}") from exc
        target, duration, reason = maintenance_request(body)
        try:
            window = daemon.start_maintenance(target, duration, reason)
        except ValueError as exc:
            return _json({"error": f"target: {exc}"}, status=404)
        return _json(window, status=201)

    async def maintenance_end(request: web.Request) -> web.Response:
        target = request.match_info["target"]
        window = daemon.end_maintenance(target)
        if window is not None:
            return _json(window)
        if daemon.planned.target_scope(target) is None:
            return _json({"error": f"target: no site or peer named {target!r}"}, status=404)
        return _json({"error": f"target: no maintenance window open on {target!r}"}, status=404)

    app = web.Application(middlewares=[errors, auth])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/peers", peers)
    app.router.add_get("/api/v1/prefixes", prefixes)
    app.router.add_get("/api/v1/topology", topology)
    app.router.add_get("/api/v1/topology.dot", topology_dot)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_get("/api/v1/transitions", transitions)
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_get("/api/v1/incidents/{incident_id}", incident)
    app.router.add_get("/api/v1/maintenance", maintenance_list)
    app.router.add_post("/api/v1/maintenance", maintenance_start)
    app.router.add_delete("/api/v1/maintenance/{target}", maintenance_end)
    return app
