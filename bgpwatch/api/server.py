"""The HTTP API (aiohttp): /metrics, /healthz and /api/v1/... for the CLI and for scripts.

Hardened for hostile clients (issue 12):

- every query parameter of /api/v1/... is parsed strictly: ASCII digits only, bounded lengths, no
  unknown or repeated parameter; anything else is a 400 whose JSON ``error`` names the parameter.
  /metrics and /healthz ignore their query (Prometheus' ``params`` and probers may add some);
- ``Authorization`` is compared in constant time (digests of equal length), and a value that is not
  valid text (``Bearer \\xff``) is a 401 like any wrong token;
- caps: ``prefixes?limit=`` at most ``MAX_LIMIT`` (1,000,000) routes, ``transitions?limit=`` at most
  ``MAX_TRANSITIONS`` (10,000); a large prefixes answer is streamed in batches of ``STREAM_BATCH``
  routes, yielding to the event loop between batches, so /metrics stays fast while it is produced,
  and at most ``MAX_STREAMS`` answers of more than ``DEFAULT_LIMIT`` routes are produced at once;
  request bodies are at most ``MAX_BODY`` bytes, received within ``BODY_TIMEOUT`` seconds;
- `ApiServer` owns the listening sockets: at most ``max_connections`` connections (default
  ``MAX_CONNECTIONS``, 2,048, lowered to the soft RLIMIT_NOFILE less ``RESERVED_FDS``, 256: the unit
  sets LimitNOFILE=8192); a connection that sends no complete request within ``HEADER_TIMEOUT``
  (10 s), or stays idle after an answer for ``KEEPALIVE_TIMEOUT`` (30 s), is closed; when full, the connection idle the longest makes room for the new one; running out of
  file descriptors (EMFILE) closes an idle connection or backs off, so accepting never spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import itertools
import logging
import math
import re
import resource
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from bgpwatch.api.page import status_page
from bgpwatch.events import LOC_RIB, POST_POLICY, PRE_POLICY, split_view_key
from bgpwatch.rib.prefix import format_prefix, parse_address, parse_prefix
from bgpwatch.topology.model import SiteModel

if TYPE_CHECKING:
    from bgpwatch.daemon import Daemon
    from bgpwatch.rpki.state import RpkiState

log = logging.getLogger(__name__)

MAX_LIMIT = 1_000_000
DEFAULT_LIMIT = 10_000
MAX_TRANSITIONS = 10_000
# Routes per streamed batch: ~1-2 ms of work, the longest the event loop waits for a big answer.
STREAM_BATCH = 500
MAX_STREAMS = 2
STREAM_WAIT = 30.0  # seconds a large answer waits for its turn before a 503
WRITE_TIMEOUT = 30.0  # seconds a client may take to read one batch
BODY_TIMEOUT = 10.0  # seconds to receive a request body
MAX_BODY = 64 << 10  # bytes of a request body (a maintenance window is ~100)
MAX_TEXT = 256  # characters in one parameter value
MAX_CONNECTIONS = 2048
RESERVED_FDS = 256  # descriptors kept for the store, the relay socket, sinks and ExaBGP's pipes
HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 30.0
SWEEP_INTERVAL = 0.5
BACKLOG = 512
ACCEPT_BATCH = 64

_DIGITS = re.compile(r"[0-9]{1,16}", re.ASCII)
_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?", re.ASCII)
_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?", re.ASCII)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}", re.ASCII)
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class BadRequest(ValueError):
    """A query parameter that cannot be used, with a message naming it."""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _show(value: str) -> str:
    """Return a bounded repr of a client's value for an error message."""
    return repr(value) if len(value) <= 40 else repr(value[:40]) + f"... ({len(value)} characters)"


def _name(value: str) -> str:
    """Return a client's parameter or field name for an error message: bare if plain, else quoted."""
    return value if _PLAIN_NAME.fullmatch(value) else _show(value)


# -- strict parameters --------------------------------------------------------------------------
def query_params(query: Any, allowed: Iterable[str]) -> dict[str, str]:
    """Return the query as a dict; BadRequest for an unknown, repeated or overlong parameter."""
    allowed = tuple(sorted(allowed))
    out: dict[str, str] = {}
    for name, value in query.items():
        if name not in allowed:
            expected = f"expected one of: {', '.join(allowed)}" if allowed else "this endpoint takes none"
            raise BadRequest(f"{_name(name)}: unknown parameter ({expected})")
        if name in out:
            raise BadRequest(f"{name}: given more than once")
        if len(value) > MAX_TEXT:
            raise BadRequest(f"{name}: longer than {MAX_TEXT} characters")
        out[name] = value
    return out


def parse_int(name: str, value: str, low: int, high: int) -> int:
    """Return an integer parameter of ASCII digits within [low, high]; BadRequest naming it."""
    if _DIGITS.fullmatch(value) is None or not low <= int(value) <= high:
        raise BadRequest(f"{name}: expected an integer from {low} to {high}, got {_show(value)}")
    return int(value)


def parse_bool(name: str, value: str) -> bool:
    """Return a boolean parameter (1/0, true/false, yes/no); BadRequest naming it."""
    lowered = value.lower() if value.isascii() else ""
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadRequest(f"{name}: expected true or false, got {_show(value)}")


def parse_since(name: str, value: str) -> float:
    """Return epoch seconds from ASCII epoch seconds or an ISO-8601 time; BadRequest naming it."""
    expected = f"{name}: expected an ISO-8601 time or epoch seconds, got {_show(value)}"
    if not value.isascii() or len(value) > 40:
        raise BadRequest(expected)
    if _EPOCH.fullmatch(value):
        return float(value)
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    except (ValueError, OverflowError) as exc:
        raise BadRequest(expected) from exc
    if not math.isfinite(seconds):
        raise BadRequest(expected)
    return seconds


def parse_prefix_param(name: str, value: str) -> tuple[int, int]:
    """Return (family, key) of a prefix parameter; BadRequest naming it."""
    if _ADDRESS_CHARS.fullmatch(value) is None:
        raise BadRequest(f"{name}: expected a prefix such as 203.0.113.0/24, got {_show(value)}")
    try:
        return parse_prefix(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from exc


def parse_address_param(name: str, value: str) -> tuple[int, int]:
    """Return (family, host key) of an address parameter; BadRequest naming it."""
    if _ADDRESS_CHARS.fullmatch(value) is None or "/" in value:
        raise BadRequest(f"{name}: expected an IP address, got {_show(value)}")
    try:
        return parse_address(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: expected an IP address, {exc}") from exc


def bearer_matches(header: str, token: str) -> bool:
    """Say whether an Authorization header carries the token, in time independent of both."""
    try:
        given = header.encode("utf-8")  # aiohttp keeps undecodable bytes as lone surrogates
    except UnicodeEncodeError:
        given = b""
    expected = b"Bearer " + token.encode("utf-8")
    # Equal-length digests: compare_digest then leaks neither the token nor its length.
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


# -- routes -------------------------------------------------------------------------------------
def route_dict(daemon: Daemon, address: str, family: int, key: int, attrs) -> dict[str, Any]:
    """Return the contract's prefix object for one route."""
    return _route(_peer_base(daemon, address, family), family, key, attrs, daemon.pipeline.rpki)


def _peer_base(daemon: Daemon, address: str, family: int) -> dict[str, Any]:
    if "|" in address:  # a BMP router's view of one of its peers (events.view_key)
        router, peer, policy = split_view_key(address)
        known = daemon.pipeline.sessions.monitors.routers.get(router)
        return {
            "peer": peer,
            "peer_address": peer,
            "router": router,
            "policy": policy,
            "site": known.site if known is not None else None,
            "family": f"ipv{family}",
        }
    session = daemon.pipeline.sessions.get(address)
    return {
        "peer": session.name if session else address,
        "peer_address": address,
        "site": session.site if session else None,
        "family": f"ipv{family}",
    }


def _route(base: dict[str, Any], family: int, key: int, attrs, rpki: RpkiState) -> dict[str, Any]:
    data = {"prefix": format_prefix(family, key), **base, "origin_as": attrs.origin_as}
    data.update(attrs.to_dict())
    if rpki.configured:  # RFC 6811 validity of the route; None while no RTR data is usable
        data["rpki"] = rpki.table.validate(family, key, attrs.origin_as) if rpki.usable else None
    return data


def _protected(daemon: Daemon) -> list[tuple[int, int]]:
    """Return the prefixes bgpwatch protects (the site model's definition)."""
    model = getattr(daemon.engine, "model", None)
    return (model if model is not None else SiteModel(daemon.config)).protected_prefixes()


def rpki_view(daemon: Daemon, prefix: str | None = None) -> dict[str, Any]:
    """Return the RPKI state and, per protected prefix, its VRPs and the validity of its routes."""
    state = daemon.pipeline.rpki
    ribs = [daemon.pipeline.rib, daemon.pipeline.outside.rib]
    result: dict[str, Any] = {**state.to_dict(), "prefixes": []}
    for family, key in _protected(daemon):
        text = format_prefix(family, key)
        if prefix is not None and text != format_prefix(*parse_prefix(prefix)):
            continue
        entry: dict[str, Any] = {"prefix": text, "vrps": [str(v) for v in state.table.covering(family, key)]}
        counts: dict[str, int] = {}
        origins: dict[str, set[int | None]] = {}
        if state.usable:
            for rib in ribs:
                for adj in rib.peers.values():
                    attrs = adj.tables[family].get(key)
                    if attrs is None:
                        continue
                    validity = state.table.validate(family, key, attrs.origin_as)
                    counts[validity] = counts.get(validity, 0) + 1
                    origins.setdefault(validity, set()).add(attrs.origin_as)
        entry["routes"] = counts
        entry["origins"] = {k: sorted(a for a in v if a is not None) for k, v in origins.items()}
        result["prefixes"].append(entry)
    return result


def bmp_routers(daemon: Daemon) -> list[dict[str, Any]]:
    """Return the BMP routers, each with its monitored sessions and their routes per policy."""
    monitors = daemon.pipeline.sessions.monitors
    counts: dict[tuple[str, str], dict[str, int]] = {}
    eors: dict[tuple[str, str], dict[str, list[str]]] = {}
    for key, table in daemon.pipeline.bmp_rib.peers.items():
        router, peer, policy = split_view_key(key)
        counts.setdefault((router, peer), {})[policy] = len(table)
        eors.setdefault((router, peer), {})[policy] = [f"ipv{f}" for f in sorted(table.eor)]
    now = time.time()
    result = []
    for router in monitors.routers.values():
        entry = monitors.to_dict(router, now)
        for session in entry["sessions"]:
            found = counts.get((router.name, session["address"]), {})
            session["routes"] = {policy: found.get(policy, 0) for policy in (PRE_POLICY, POST_POLICY)}
            ended = eors.get((router.name, session["address"]), {})
            session["end_of_rib"] = {policy: ended.get(policy, []) for policy in (PRE_POLICY, POST_POLICY)}
        entry["loc_rib_routes"] = counts.get((router.name, "0.0.0.0"), {}).get(LOC_RIB, 0)
        result.append(entry)
    return result


PREFIX_PARAMS = ("peer", "site", "prefix", "lookup", "limit", "family", "router", "policy")
POLICIES = (PRE_POLICY, POST_POLICY, LOC_RIB)


@dataclass(slots=True)
class RouteQuery:
    """A validated /api/v1/prefixes query: which peers' tables, which families, how many routes."""

    addresses: list[str]
    families: tuple[int, ...]
    limit: int
    exact: tuple[int, int] | None = None  # prefix=
    lookup: tuple[int, int] | None = None  # lookup=
    bmp: bool = False  # router=: the tables are BMP views (Pipeline.bmp_rib), not bgpwatch's sessions

    def rib(self, daemon: Daemon) -> Any:
        """Return the RIB the query reads."""
        return daemon.pipeline.bmp_rib if self.bmp else daemon.pipeline.rib

    @classmethod
    def parse(cls, daemon: Daemon, query: Any) -> RouteQuery:
        """Check every parameter (BadRequest naming the first bad one) and return the query."""
        params = query_params(query, PREFIX_PARAMS)
        if "router" in params or "policy" in params:
            return cls._parse_views(daemon, params)
        sessions = daemon.pipeline.sessions
        addresses = list(daemon.pipeline.rib.peers)
        configured = list(sessions.by_address.values())
        if "peer" in params:
            wanted = params["peer"]
            if (
                not any(s.name == wanted or s.address == wanted for s in configured)
                and wanted not in addresses
            ):
                raise BadRequest(f"peer: no configured peer is named {_show(wanted)}")
            addresses = [
                a for a in addresses if a == wanted or (sessions.get(a) and sessions.get(a).name == wanted)
            ]
        if "site" in params:
            site = params["site"]
            if site not in {s.site for s in configured}:
                raise BadRequest(f"site: no configured site is named {_show(site)}")
            addresses = [a for a in addresses if sessions.get(a) and sessions.get(a).site == site]
        return cls._finish(addresses, params)

    @classmethod
    def _finish(cls, addresses: list[str], params: dict[str, str], bmp: bool = False) -> RouteQuery:
        families: tuple[int, ...] = (4, 6)
        if "family" in params:
            if params["family"] not in ("ipv4", "ipv6"):
                raise BadRequest(f"family: expected ipv4 or ipv6, got {_show(params['family'])}")
            families = (int(params["family"][-1]),)
        limit = parse_int("limit", params["limit"], 1, MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT
        exact = parse_prefix_param("prefix", params["prefix"]) if "prefix" in params else None
        lookup = parse_address_param("lookup", params["lookup"]) if "lookup" in params else None
        return cls(addresses, families, limit, exact, lookup, bmp)

    @classmethod
    def _parse_views(cls, daemon: Daemon, params: dict[str, str]) -> RouteQuery:
        """router=R [peer=P] [policy=pre|post|loc] [site=S]: the routes BMP routers reported."""
        monitors = daemon.pipeline.sessions.monitors
        views = [(key, *split_view_key(key)) for key in daemon.pipeline.bmp_rib.peers]
        if "router" in params:
            router = params["router"]
            if router not in monitors.routers:
                raise BadRequest(f"router: no BMP router is named {_show(router)}")
            views = [v for v in views if v[1] == router]
        if "policy" in params:
            if params["policy"] not in POLICIES:
                raise BadRequest(
                    f"policy: expected one of {', '.join(POLICIES)}, got {_show(params['policy'])}"
                )
            views = [v for v in views if v[3] == params["policy"]]
        if "peer" in params:
            views = [v for v in views if v[2] == params["peer"]]
        if "site" in params:
            site = params["site"]
            views = [v for v in views if (r := monitors.routers.get(v[1])) is not None and r.site == site]
        return cls._finish([v[0] for v in views], params, bmp=True)

    @property
    def small(self) -> bool:
        """Say whether the answer holds at most one route per peer (no need to stream it)."""
        return self.exact is not None or self.lookup is not None

    def point_routes(self, daemon: Daemon) -> list[dict[str, Any]]:
        """Return the routes of a prefix= or lookup= query."""
        out: list[dict[str, Any]] = []
        peers = self.rib(daemon).peers
        for address in self.addresses:
            table = peers.get(address)
            if table is None:
                continue
            if self.exact is not None:
                family, key = self.exact
                attrs = table.get(family, key)
                if attrs is not None:
                    out.append(route_dict(daemon, address, family, key, attrs))
            elif self.lookup is not None:
                found = table.lookup(*self.lookup)
                if found is not None:
                    out.append(route_dict(daemon, address, self.lookup[0], found[0], found[1]))
        return out[: self.limit]

    def tables(self, daemon: Daemon) -> Iterable[tuple[dict[str, Any], int, dict[int, Any], list[int]]]:
        """Yield (peer fields, family, the table, a snapshot of its prefix keys), up to the limit in all."""
        left = self.limit
        for address in self.addresses:
            for family in self.families:
                if left <= 0:
                    return
                table = self.rib(daemon).peers.get(address)
                if table is None:
                    break
                # A copy of the keys only: the pipeline keeps changing the table between batches (a
                # dict cannot be iterated across them), and ints are not tracked by the garbage
                # collector, where 1M (key, attrs) tuples made gen-2 collections stall the loop.
                routes = table.tables[family]
                keys = list(itertools.islice(routes, left))
                left -= len(keys)
                yield _peer_base(daemon, address, family), family, routes, keys


def select_routes(daemon: Daemon, query: dict[str, str]) -> list[dict[str, Any]]:
    """Apply the /api/v1/prefixes filters (peer, site, prefix, lookup, limit, family) in one list."""
    parsed = RouteQuery.parse(daemon, query)
    if parsed.small:
        return parsed.point_routes(daemon)
    rpki = daemon.pipeline.rpki
    return [
        _route(base, family, key, attrs, rpki)
        for base, family, routes, keys in parsed.tables(daemon)
        for key in keys
        if (attrs := routes.get(key)) is not None
    ]


MAINTENANCE_FIELDS = ("target", "duration_seconds", "reason")


def maintenance_request(body: Any) -> tuple[str, float | None, str]:
    """Return (target, duration, reason) from a POST /api/v1/maintenance body; BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object {target, duration_seconds?, reason?}")
    unknown = sorted(set(body) - set(MAINTENANCE_FIELDS))
    if unknown:
        raise BadRequest(
            f"{_name(unknown[0])}: unknown field (expected one of: {', '.join(MAINTENANCE_FIELDS)})"
        )
    target = body.get("target")
    if not isinstance(target, str) or not target.strip() or len(target) > MAX_TEXT:
        raise BadRequest(f"target: expected a site or peer name, got {_show(repr(target))}")
    duration = body.get("duration_seconds")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration < 1e9
    ):
        raise BadRequest(
            f"duration_seconds: expected a positive number of seconds, got {_show(repr(duration))}"
        )
    reason = body.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > 500:
        raise BadRequest("reason: expected a text of at most 500 characters")
    return target.strip(), None if duration is None else float(duration), reason


# -- the application ----------------------------------------------------------------------------
def build_app(daemon: Daemon) -> web.Application:
    """Return the aiohttp application serving the daemon's state."""
    streams = asyncio.Semaphore(MAX_STREAMS)

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
        if not bearer_matches(request.headers.get("Authorization", ""), token.get_secret_value()):
            return _json({"error": "missing or wrong bearer token"}, status=401)
        return await handler(request)

    def no_params(request: web.Request) -> None:
        query_params(request.query, ())

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(daemon.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def page(request: web.Request) -> web.Response:
        no_params(request)
        return web.Response(text=status_page(daemon, bmp_routers(daemon)), content_type="text/html")

    async def healthz(_request: web.Request) -> web.Response:
        healthy, reasons = daemon.health()
        return _json({"healthy": healthy, "problems": reasons}, status=200 if healthy else 503)

    async def status(request: web.Request) -> web.Response:
        no_params(request)
        return _json(daemon.status())

    async def peers(request: web.Request) -> web.Response:
        no_params(request)
        now = daemon.stream_now()  # the pipeline's clock: a served replay's ages are the recording's
        result = []
        for session in daemon.pipeline.sessions.by_address.values():
            entry = daemon.pipeline.sessions.to_dict(session, now)
            rib = daemon.pipeline.rib.peers.get(session.address)
            entry["routes"] = len(rib) if rib else 0
            entry["routes_ipv4"] = len(rib.tables[4]) if rib else 0
            entry["routes_ipv6"] = len(rib.tables[6]) if rib else 0
            result.append(entry)
        return _json(result)

    async def routers(request: web.Request) -> web.Response:
        no_params(request)
        return _json(bmp_routers(daemon))

    async def prefixes(request: web.Request) -> web.StreamResponse:
        query = RouteQuery.parse(daemon, request.query)
        if query.small:
            return _json(query.point_routes(daemon))
        if query.limit <= DEFAULT_LIMIT:
            # Milliseconds of work: never queued behind large answers a slow client holds open.
            return await stream_routes(request, daemon, query)
        try:
            async with asyncio.timeout(STREAM_WAIT):
                await streams.acquire()
        except TimeoutError:
            return _json({"error": "too many large answers in progress; retry later"}, status=503)
        try:
            return await stream_routes(request, daemon, query)
        finally:
            streams.release()

    async def topology(request: web.Request) -> web.Response:
        no_params(request)
        return _json(daemon.topology())

    async def outside(request: web.Request) -> web.Response:
        params = query_params(request.query, ("prefix",))
        view = daemon.pipeline.outside
        prefix = params.get("prefix")
        if prefix is not None and view.prefix(prefix) is None:
            raise BadRequest(f"prefix: {_show(prefix)} is not one of our prefixes (a site or watched prefix)")
        return _json(view.to_dict(prefix))

    async def rpki(request: web.Request) -> web.Response:
        params = query_params(request.query, ("prefix",))
        prefix = params.get("prefix")
        if prefix is not None:
            try:
                wanted = parse_prefix(prefix)
            except ValueError as exc:
                raise BadRequest(f"prefix: {_show(prefix)} is not a prefix ({exc})") from None
            if wanted not in _protected(daemon):
                raise BadRequest(
                    f"prefix: {_show(prefix)} is not one of our prefixes (a site or watched prefix)"
                )
        return _json(rpki_view(daemon, prefix))

    async def topology_dot(request: web.Request) -> web.Response:
        no_params(request)
        return web.Response(text=daemon.topology_dot(), content_type="text/vnd.graphviz")

    async def alerts(request: web.Request) -> web.Response:
        params = query_params(request.query, ("all", "since"))
        include_all = parse_bool("all", params["all"]) if "all" in params else False
        since = parse_since("since", params["since"]) if "since" in params else None
        try:
            return _json(daemon.alerts(include_all=include_all, since=since))
        except (ValueError, OverflowError) as exc:
            raise BadRequest(f"since: expected an ISO-8601 time or epoch seconds, got {since!r}") from exc

    async def transitions(request: web.Request) -> web.Response:
        params = query_params(request.query, ("since", "limit"))
        since = parse_since("since", params["since"]) if "since" in params else None
        limit = (
            parse_int("limit", params["limit"], 1, MAX_TRANSITIONS) if "limit" in params else MAX_TRANSITIONS
        )
        return _json(daemon.store.transitions(since=since, limit=limit))

    async def incidents(request: web.Request) -> web.Response:
        no_params(request)
        return _json(daemon.incidents())

    async def incident(request: web.Request) -> web.Response:
        no_params(request)
        incident_id = request.match_info["incident_id"]
        found = daemon.incident(incident_id) if len(incident_id) <= MAX_TEXT else None
        if found is None:
            return _json({"error": f"no incident {_show(incident_id)}"}, status=404)
        return _json(found)

    async def maintenance_list(request: web.Request) -> web.Response:
        no_params(request)
        return _json(daemon.planned.windows(daemon.stream_now()))

    async def maintenance_start(request: web.Request) -> web.Response:
        no_params(request)
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                raw = await request.read()
        except TimeoutError as exc:
            raise BadRequest(f"body: not received within {BODY_TIMEOUT:g} s") from exc
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body: expected JSON, {exc}") from exc
        target, duration, reason = maintenance_request(body)
        try:
            window = daemon.start_maintenance(target, duration, reason)
        except ValueError as exc:
            return _json({"error": f"target: {exc}"}, status=404)
        return _json(window, status=201)

    async def maintenance_end(request: web.Request) -> web.Response:
        no_params(request)
        target = request.match_info["target"]
        if len(target) > MAX_TEXT:
            return _json({"error": "target: no site or peer of that name"}, status=404)
        window = daemon.end_maintenance(target)
        if window is not None:
            return _json(window)
        if daemon.planned.target_scope(target) is None:
            return _json({"error": f"target: no site or peer named {_show(target)}"}, status=404)
        return _json({"error": f"target: no maintenance window open on {_show(target)}"}, status=404)

    app = web.Application(middlewares=[errors, auth], client_max_size=MAX_BODY)
    app.router.add_get("/", page)  # the read-only status page, behind the same auth
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/peers", peers)
    app.router.add_get("/api/v1/prefixes", prefixes)
    app.router.add_get("/api/v1/routers", routers)
    app.router.add_get("/api/v1/topology", topology)
    app.router.add_get("/api/v1/outside", outside)
    app.router.add_get("/api/v1/rpki", rpki)
    app.router.add_get("/api/v1/topology.dot", topology_dot)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_get("/api/v1/transitions", transitions)
    app.router.add_get("/api/v1/incidents", incidents)
    # Any characters (URL-encoded or not): ids of older versions hold "/" (a prefix) and ":".
    app.router.add_get("/api/v1/incidents/{incident_id:.+}", incident)
    app.router.add_get("/api/v1/maintenance", maintenance_list)
    app.router.add_post("/api/v1/maintenance", maintenance_start)
    app.router.add_delete("/api/v1/maintenance/{target}", maintenance_end)
    return app


async def stream_routes(request: web.Request, daemon: Daemon, query: RouteQuery) -> web.StreamResponse:
    """Write the routes as one JSON array, batch by batch, yielding to the event loop in between."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    separator = b"["
    try:
        for base, family, routes, keys in query.tables(daemon):
            for start in range(0, len(keys), STREAM_BATCH):
                # Each route as it is when its batch is written; one withdrawn meanwhile is left out.
                batch = [
                    _route(base, family, key, attrs, daemon.pipeline.rpki)
                    for key in keys[start : start + STREAM_BATCH]
                    if (attrs := routes.get(key)) is not None
                ]
                if not batch:
                    continue
                chunk = orjson.dumps(batch)
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await response.write(separator + chunk[1:-1])
                separator = b","
                # write() returns at once while the socket takes the data: let /metrics and the relay in.
                await asyncio.sleep(0)
        await response.write(b"[]" if separator == b"[" else b"]")
        await response.write_eof()
    except (TimeoutError, ConnectionError):
        # A client that stopped reading (or left) gets a truncated answer, never the whole table held.
        if request.transport is not None:
            request.transport.abort()
    return response


# -- the server: connection limit, timeouts, EMFILE ---------------------------------------------
class _RateLimited(logging.Filter):
    """Let one record per message template through every `interval` seconds (clients can flood us)."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = str(record.msg)[:80]
        if now - self._last.get(key, -math.inf) < self.interval:
            return False
        if len(self._last) > 100:
            self._last.clear()
        self._last[key] = now
        return True


_http_log = logging.getLogger("bgpwatch.api.http")
_http_log.addFilter(_RateLimited())


def connection_cap(requested: int | None = None) -> int:
    """Return the connection limit: `requested` as is, or MAX_CONNECTIONS lowered to fit RLIMIT_NOFILE."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS if requested is None else requested
    if requested is not None or soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - RESERVED_FDS))


@dataclass(slots=True)
class _Connection:
    transport: asyncio.Transport
    idle_since: float  # monotonic time it was accepted or finished its last answer
    busy: int = 0  # requests being answered
    served: int = 0


class ApiServer:
    """Serve an aiohttp application on host:port with a connection limit and idle timeouts."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry | None = None,
        max_connections: int | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.max_connections = connection_cap(max_connections)
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.runner = web.AppRunner(
            app,
            access_log=None,
            # aiohttp's own idle timer only as a backstop: the sweep below decides, and counts, closes.
            keepalive_timeout=max(header_timeout, keepalive_timeout) + 5.0,
            logger=_http_log,
            handler_cancellation=True,
        )
        self.sockets: list[socket.socket] = []
        self._connections: dict[asyncio.Transport, _Connection] = {}
        self._tasks: list[asyncio.Task] = []
        self.closed = {"idle": 0, "evicted": 0, "refused": 0}
        self.accept_errors = 0
        self._last_accept_log = -math.inf
        self._backoff = 0.0
        self._pending: set[asyncio.Task] = set()
        self._metrics: tuple[Counter, Counter] | None = None
        if registry is not None:
            Gauge("bgpwatch_api_connections", "Open HTTP API connections", registry=registry).set_function(
                lambda: len(self._connections)
            )
            Gauge(
                "bgpwatch_api_max_connections", "Limit on open HTTP API connections", registry=registry
            ).set_function(lambda: self.max_connections)
            closed = Counter(
                "bgpwatch_api_connections_closed",
                "HTTP API connections bgpwatch closed itself, by reason (idle, evicted, refused)",
                ["reason"],
                registry=registry,
            )
            accept = Counter(
                "bgpwatch_api_accept_errors",
                "accept() failures on the HTTP API socket for lack of resources (EMFILE, ENFILE...)",
                registry=registry,
            )
            self._metrics = (closed, accept)

    @property
    def connections(self) -> int:
        """Return the number of open connections."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind, listen and start accepting; OSError if the address cannot be used."""
        self.app.middlewares.insert(0, self._track)
        await self.runner.setup()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _name, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(BACKLOG)
                sock.setblocking(False)
        except OSError:
            await self.cleanup()
            raise
        if self.port == 0 and self.sockets:
            self.port = self.sockets[0].getsockname()[1]
        self._tasks = [
            asyncio.create_task(self._accept_loop(sock), name="api-accept") for sock in self.sockets
        ]
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="api-sweep"))

    async def cleanup(self) -> None:
        """Stop accepting, close every connection and the application."""
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self._pending]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        await self.runner.cleanup()
        for transport in list(self._connections):
            transport.abort()
        self._connections.clear()

    @web.middleware
    async def _track(self, request: web.Request, handler):
        transport = request.transport
        if transport is None:
            return await handler(request)
        # setdefault: a request may arrive before _admit() has registered its connection.
        connection = self._connections.setdefault(transport, _Connection(transport, time.monotonic()))
        connection.busy += 1
        try:
            return await handler(request)
        finally:
            connection.busy -= 1
            connection.served += 1
            connection.idle_since = time.monotonic()
            # Most recently used last: the first idle entry is the one idle the longest.
            self._connections.pop(connection.transport, None)
            if not connection.transport.is_closing():
                self._connections[connection.transport] = connection

    def _count(self, reason: str) -> None:
        self.closed[reason] += 1
        if self._metrics is not None:
            self._metrics[0].labels(reason).inc()

    def _evict_one(self) -> bool:
        """Close the connection idle the longest; return False if every connection is busy."""
        for transport, connection in list(self._connections.items()):
            if transport.is_closing():
                del self._connections[transport]
                continue
            if connection.busy == 0:
                del self._connections[transport]
                transport.abort()
                self._count("evicted")
                return True
        return False

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _peer = await loop.sock_accept(listener)
            except OSError as exc:
                await self._accept_trouble(exc)
                continue
            self._backoff = 0.0
            self._admit(loop, sock)
            # Drain what else is queued in one go: one connection per loop turn would let a burst
            # overflow the listen backlog, and the kernel then drops SYNs (1 s client retries).
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, _peer = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    await self._accept_trouble(exc)
                    break
                self._admit(loop, sock)

    async def _accept_trouble(self, exc: OSError) -> None:
        """Handle a failed accept() without ever retrying in a tight loop."""
        if exc.errno not in _RESOURCE_ERRNOS:
            # ECONNABORTED and the like: that client gave up; the next one may be fine.
            await asyncio.sleep(0.01)
            return
        self.accept_errors += 1
        if self._metrics is not None:
            self._metrics[1].inc()
        now = time.monotonic()
        if now - self._last_accept_log >= 60.0:
            self._last_accept_log = now
            log.warning(
                "API: cannot accept a connection (%s); %d open, %d such failures so far",
                errno.errorcode.get(exc.errno or 0, exc),
                len(self._connections),
                self.accept_errors,
            )
        if self._evict_one():
            await asyncio.sleep(0.01)  # the evicted socket is closed on the next loop turn
            return
        self._backoff = min(1.0, max(0.05, self._backoff * 2))
        await asyncio.sleep(self._backoff)

    def _admit(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        if len(self._connections) + len(self._pending) >= self.max_connections and not self._evict_one():
            sock.close()
            self._count("refused")
            return
        task = loop.create_task(self._connect(loop, sock))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport, _protocol = await loop.connect_accepted_socket(self.runner.server, sock)
        except OSError:
            sock.close()
            return
        self._connections.setdefault(transport, _Connection(transport, time.monotonic()))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep()

    def sweep(self) -> None:
        """Close connections idle past their timeout and forget closed ones."""
        now = time.monotonic()
        for transport, connection in list(self._connections.items()):
            if transport.is_closing():
                del self._connections[transport]
                continue
            if connection.busy:
                continue
            limit = self.keepalive_timeout if connection.served else self.header_timeout
            if now - connection.idle_since > limit:
                del self._connections[transport]
                transport.close()
                self._count("idle")
