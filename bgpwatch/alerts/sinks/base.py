"""Sink plug-in base: a bounded queue and a worker per sink, retries, metrics, and the sink registry.

Every sink owns a bounded queue and one worker task, so a dead or slow endpoint only ever delays
its own deliveries: `submit()` is synchronous, never awaits and never raises.

A receiver that is down (connection refused, timeout, HTTP 5xx/408/425/429) is retried **until it
comes back**, with capped exponential back-off (`backoff_initial` doubling to `backoff_max`): the
worker keeps the transition at the head of the queue, so everything is delivered in submission
order once the receiver answers again.  After `max_attempts` failed attempts in a row the receiver
is reported down (`bgpwatch_sink_receiver_up{sink} 0`, one error in the log) and retries go on.
Only a permanent refusal (another HTTP 4xx: a bad request, a wrong token) gives a transition up.

Overflow policy, when `queue_size` transitions are waiting: the **oldest resolved and superseded**
transition goes first, so that what the receiver learns when it returns is still the network as it
is now:
1. a resolution followed in the queue by a later transition of the same alert (kind and labels:
   it fired again), together with the firing it ended if that is queued too;
2. else a resolution whose firing is queued too (an alert that began and ended during the
   outage: both go, it is over and kept in the store);
3. else the oldest resolution (Alertmanager also expires the alert at its endsAt);
4. only a queue holding nothing but firings loses its oldest firing.
Each one dropped is counted in `bgpwatch_sink_dropped_total{sink}`, a firing also in
`bgpwatch_sink_dropped_firing_total{sink}`.  The same counter counts transitions refused for good,
and those still queued when `close()` runs out of time (they stay undelivered in the store, and
the next start hands them to the sink again: `SinkSet.resubmit_undelivered`).

Metrics (one `SinkMetrics` per registry, shared by all sinks):
- bgpwatch_sink_deliveries_total{sink}: transitions delivered;
- bgpwatch_sink_failures_total{sink}: failed delivery attempts (each try, each failed re-send);
- bgpwatch_sink_dropped_total{sink}: transitions abandoned (overflow, permanent refusal, shutdown);
- bgpwatch_sink_dropped_firing_total{sink}: the firings among them;
- bgpwatch_sink_queue_length{sink}: transitions waiting, read at scrape time;
- bgpwatch_sink_receiver_up{sink}: 0 after `max_attempts` failures in a row, 1 again at the next
  delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import AfterValidator, Field, model_validator

# The field types (and their "expected ..." messages) are the configuration's own: a sink's schema
# is the `alerting.sinks[]` entry check-config validates.  config.py imports this package after
# defining them (and this package imports config.py first), so either import order works.
from bgpwatch.config import (
    Name,
    QueueSize,
    Seconds,
    Token,
    Url,
    _check_headers,
    _int_check,
    _Model,
    _problem,
)

log = logging.getLogger("bgpwatch.alerts.sinks")

Transition = Mapping[str, Any]
DeliveredCallback = Callable[[str, str], None]


class SinkConfigError(ValueError):
    """The alerting.sinks configuration is invalid; `.problems` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class DeliveryError(Exception):
    """One delivery attempt failed; `retry` says whether another attempt can help."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def transition_key(transition: Transition) -> str:
    """Return the stable identity of a transition (same in the store and in every sink)."""
    ident = {
        "kind": transition.get("kind"),
        "state": transition.get("state"),
        "at": transition.get("at"),
        "incident": transition.get("incident"),
        "labels": transition.get("labels") or {},
    }
    return hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _identity(transition: Transition) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Return what makes two transitions about the same alert: kind and labels."""
    labels = transition.get("labels") or {}
    return (str(transition.get("kind")), tuple(sorted((str(k), str(v)) for k, v in labels.items())))


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def json_bytes(value: Any) -> bytes:
    """Return JSON for a transition, tolerating sets, int keys and odd evidence values."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def redact_url(url: str) -> str:
    """Return scheme://host[:port] only: paths (Slack hooks) and userinfo may hold secrets."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


class SinkMetrics:
    """The four per-sink metric families, registered once in the registry given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "bgpwatch_sink_deliveries_total",
            "Alert transitions delivered by a sink.",
            ["sink"],
            registry=registry,
        )
        self.failures = Counter(
            "bgpwatch_sink_failures_total", "Failed delivery attempts of a sink.", ["sink"], registry=registry
        )
        self.dropped = Counter(
            "bgpwatch_sink_dropped_total",
            "Alert transitions a sink abandoned: queue overflow, permanent refusal or shutdown.",
            ["sink"],
            registry=registry,
        )
        self.dropped_firing = Counter(
            "bgpwatch_sink_dropped_firing_total",
            "Firing alert transitions among those a sink abandoned.",
            ["sink"],
            registry=registry,
        )
        self.receiver_up = Gauge(
            "bgpwatch_sink_receiver_up",
            "0 while a sink's receiver has failed max_attempts attempts in a row, else 1.",
            ["sink"],
            registry=registry,
        )
        self.queue_length = Gauge(
            "bgpwatch_sink_queue_length",
            "Alert transitions waiting in a sink's queue.",
            ["sink"],
            registry=registry,
        )


# --- parameters: one pydantic model per sink type, beside its code --------------------------------------

Attempts = Annotated[int, _int_check(1, 1000, "expected a number of attempts (1-1000)")]
Headers = Annotated[dict[str, str], AfterValidator(_check_headers)]


class SinkParams(_Model):
    """What every sink takes in its `alerting.sinks[]` entry; a sink type's model adds `type` and its own."""

    type: str
    # Names key the delivery bookkeeping (no duplicate notification after a restart); default: type-N.
    name: Name | None = None
    queue_size: QueueSize = 1000  # transitions held while the destination is slow or down
    timeout_seconds: Seconds = 5.0  # per delivery attempt
    max_attempts: Attempts = 6  # failed attempts in a row before the receiver is reported down
    backoff_initial: Seconds = 0.5  # seconds before the first retry, doubling up to backoff_max
    backoff_max: Seconds = 30.0

    @model_validator(mode="after")
    def _backoff_in_order(self) -> SinkParams:
        if self.backoff_initial > self.backoff_max:
            raise _problem("backoff_initial: expected at most backoff_max")
        return self


class HttpSinkParams(SinkParams):
    """A sink that POSTs to an http(s) receiver."""

    url: Url = Field(repr=False)  # may carry basic-auth credentials, chat webhooks a secret path
    token: Token | None = None  # bearer token sent in the Authorization header
    headers: Headers = Field(default={}, repr=False)  # extra HTTP headers (API keys: never shown)

    @model_validator(mode="after")
    def _one_authorization(self) -> HttpSinkParams:
        # URL credentials, `token` and an Authorization header each set the same header: the HTTP
        # client refuses the request, every delivery fails and none is retried.  Never quote them.
        parts = urlsplit(self.url)
        sources = [
            what
            for what, present in (
                (
                    "credentials in the url (user:password@)",
                    parts.username is not None or parts.password is not None,
                ),
                ("a token", self.token is not None),
                ("an Authorization header", any(name.lower() == "authorization" for name in self.headers)),
            )
            if present
        ]
        if len(sources) > 1:
            raise _problem(
                f"{' and '.join(sources)} would each set the Authorization header; keep only one of them"
            )
        return self


# --- the base class -----------------------------------------------------------------------------------


class Sink:
    """Deliver alert transitions to one destination, from a bounded queue, off the caller's path."""

    type_name: ClassVar[str] = ""
    # Its parameters, declared once: the model check-config validates an `alerting.sinks[]` entry with.
    Params: ClassVar[type[SinkParams]] = SinkParams

    def __init__(
        self,
        params: Mapping[str, Any],
        metrics: SinkMetrics,
        *,
        on_delivered: DeliveredCallback | None = None,
    ) -> None:
        self.params = dict(params)
        self.name: str = params.get("name") or self.type_name
        self.timeout: float = params.get("timeout_seconds", 5.0)
        self.max_attempts: int = params.get("max_attempts", 6)
        self.backoff_initial: float = params.get("backoff_initial", 0.5)
        self.backoff_max: float = params.get("backoff_max", 30.0)
        self.on_delivered = on_delivered
        self.queue_size: int = params.get("queue_size", 1000)
        self._pending: deque[Transition] = deque()  # oldest first; the one in flight is not in it
        self._idents: deque[tuple] = deque()  # _identity() of each of _pending, kept in step with it
        self._wakeup = asyncio.Event()  # set when something is queued
        self._idle = asyncio.Event()  # set when nothing is queued or in flight
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._in_flight = False
        self._current: Transition | None = None
        self._firings_dropped = 0  # since the last log line about it
        self._drop_logged = -60.0
        self.receiver_down_since: float | None = None  # monotonic time of the first failure in a row
        self._failed_in_a_row = 0
        self._random = random.Random()
        self._deliveries = metrics.deliveries.labels(self.name)
        self._failures = metrics.failures.labels(self.name)
        self._dropped = metrics.dropped.labels(self.name)
        self._dropped_firing = metrics.dropped_firing.labels(self.name)
        self._receiver_up = metrics.receiver_up.labels(self.name)
        self._receiver_up.set(1)
        metrics.queue_length.labels(self.name).set_function(lambda: len(self._pending))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- caller side (synchronous, never blocks) --

    def submit(self, transition: Transition) -> bool:
        """Queue a transition for delivery; return False when it was refused (sink closed)."""
        if self._closed:
            self._drop(transition)
            return False
        try:
            self.on_submit(transition)
        except Exception:  # a sink's bookkeeping bug must not reach the detector loop
            log.exception("sink %s: cannot account for a %s transition", self.name, transition.get("kind"))
        while len(self._pending) >= self.queue_size:
            self._evict()
        self._pending.append(transition)
        self._idents.append(_identity(transition))
        self._idle.clear()
        self._wakeup.set()
        return True

    def _drop(self, transition: Transition) -> None:
        self._dropped.inc()
        if transition.get("state") == "firing":
            self._dropped_firing.inc()

    def _pop(self) -> Transition:
        self._idents.popleft()
        return self._pending.popleft()

    def _evict(self) -> None:
        """Make room in a full queue: the oldest resolved and superseded transition first (see above)."""
        # one pass, O(queue_size): it runs on the caller's path, once per submit into a full queue
        pending, identities = self._pending, self._idents
        last_index = {ident: i for i, ident in enumerate(identities)}
        previous: dict[tuple, int] = {}  # identity -> index of its latest transition before i
        victims: list[int] = []
        began_and_ended: list[int] = []
        fallback: int | None = None
        for i, (transition, ident) in enumerate(zip(pending, identities, strict=True)):
            before = previous.get(ident)
            previous[ident] = i
            if transition.get("state") != "resolved":
                continue
            firing = before if before is not None and pending[before].get("state") == "firing" else None
            if last_index[ident] > i:  # superseded: the alert fired again later in the queue
                victims = [i] if firing is None else [firing, i]
                break
            if firing is not None and not began_and_ended:
                began_and_ended = [firing, i]
            if fallback is None:
                fallback = i
        if not victims:
            victims = began_and_ended or [fallback if fallback is not None else 0]
        for index in sorted(victims, reverse=True):
            dropped = pending[index]
            del pending[index]
            del identities[index]
            self._drop(dropped)
            if dropped.get("state") == "firing":
                self._firings_dropped += 1
        now = time.monotonic()
        if self._firings_dropped and now - self._drop_logged >= 60.0:  # once a minute, not per firing
            log.error(
                "sink %s: queue full (%d, nothing but firings): %d firing(s) dropped, oldest first",
                self.name,
                self.queue_size,
                self._firings_dropped,
            )
            self._drop_logged, self._firings_dropped = now, 0

    def take_over(self, old: Sink) -> int:
        """Take what `old` (this sink's predecessor at a reload) has not delivered, ahead; return how many.

        Call it with nothing submitted to this sink yet and no await until the caller routes new
        transitions here: `old` stops at once (its worker is cancelled), so a receiver that is down
        during a reload loses nothing.
        """
        held = ([old._current] if old._current is not None else []) + list(old._pending)
        old._closed = True
        if old._worker is not None:
            old._worker.cancel()  # an attempt in flight may still land: at least once, never lost
            old._worker = None
        old._pending.clear()
        old._idents.clear()
        old._current, old._in_flight = None, False
        old._idle.set()
        for transition in reversed(held):
            self._pending.appendleft(transition)
            self._idents.appendleft(_identity(transition))
        while len(self._pending) > self.queue_size:
            self._evict()
        if self._pending:
            self._idle.clear()
            self._wakeup.set()
        return len(held)

    def resume(self, transition: Transition) -> None:
        """Take back an alert still firing at the last shutdown (state only, nothing is sent)."""

    def on_submit(self, transition: Transition) -> None:
        """Update the sink's own state synchronously when a transition is submitted."""

    @property
    def queue_length(self) -> int:
        """Return the number of transitions waiting."""
        return len(self._pending)

    @property
    def receiver_up(self) -> bool:
        """Tell whether the receiver answered within the last `max_attempts` attempts."""
        return self._failed_in_a_row < self.max_attempts

    # -- lifecycle --

    async def start(self) -> None:
        """Open the sink's resources and start its worker."""
        if self._worker is not None:
            return
        await self.open()
        self._worker = asyncio.create_task(self._run(), name=f"sink-{self.name}")

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, deliver what is queued within `timeout` seconds, then release resources."""
        self._closed = True
        worker, self._worker = self._worker, None
        in_flight: Transition | None = None
        if worker is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                in_flight = self._current
                left = len(self._pending) + (1 if self._in_flight else 0)
                log.warning(
                    "sink %s: %d transition(s) not delivered at shutdown (undelivered in the store: the"
                    " next start within an hour sends them again)",
                    self.name,
                    left,
                )
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if in_flight is not None:
            self._drop(in_flight)
        while self._pending:
            self._drop(self._pop())
        self._idle.set()
        await self.release()

    async def open(self) -> None:
        """Acquire resources (HTTP session, background tasks); called by start()."""

    async def release(self) -> None:
        """Release resources; called last by close()."""

    # -- worker --

    async def deliver(self, transition: Transition) -> None:
        """Make one delivery attempt; raise DeliveryError on failure."""
        raise NotImplementedError

    def backoff(self, attempt: int) -> float:
        """Return the wait before retry number `attempt` (1-based): exponential, capped, jittered."""
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** min(attempt - 1, 60)))
        # "equal jitter": never retry immediately, yet spread a fleet's retries apart
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    async def _run(self) -> None:
        while True:
            while not self._pending:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            transition = self._pop()
            self._current, self._in_flight = transition, True
            try:
                await self._deliver_with_retry(transition)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the worker alive whatever one transition does
                log.exception("sink %s: unexpected error delivering a transition", self.name)
                self._drop(transition)
            finally:
                self._current, self._in_flight = None, False

    async def _deliver_with_retry(self, transition: Transition) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self.timeout):
                    await self.deliver(transition)
            except DeliveryError as exc:
                reason, retry = exc.reason, exc.retry
            except TimeoutError:
                reason, retry = f"no answer within {self.timeout:g} s", True
            else:
                self._deliveries.inc()
                self._receiver_back()
                self._notify_delivered(transition)
                return
            self._failures.inc()
            if not retry:
                log.error(
                    "sink %s: %s %s transition refused for good after %d attempt(s): %s",
                    self.name,
                    transition.get("kind"),
                    transition.get("state"),
                    attempt,
                    reason,
                )
                self._drop(transition)
                return
            self._receiver_failed(reason)
            delay = self.backoff(attempt)
            if self._failed_in_a_row < self.max_attempts:
                log.warning(
                    "sink %s: attempt %d failed (%s); retrying in %.1f s", self.name, attempt, reason, delay
                )
            await asyncio.sleep(delay)

    def _receiver_failed(self, reason: str) -> None:
        self._failed_in_a_row += 1
        if self.receiver_down_since is None:
            self.receiver_down_since = time.monotonic()
        if self._failed_in_a_row == self.max_attempts:
            self._receiver_up.set(0)
            log.error(
                "sink %s: receiver down (%s); %d transition(s) held, retrying every %g s at most until it is back",
                self.name,
                reason,
                len(self._pending) + 1,
                self.backoff_max,
            )

    def _receiver_back(self) -> None:
        if self.receiver_down_since is None:
            return
        if self._failed_in_a_row >= self.max_attempts:
            log.warning(
                "sink %s: receiver back after %.1f s; delivering %d held transition(s) in order",
                self.name,
                time.monotonic() - self.receiver_down_since,
                len(self._pending),
            )
        self.receiver_down_since, self._failed_in_a_row = None, 0
        self._receiver_up.set(1)

    def _notify_delivered(self, transition: Transition) -> None:
        if self.on_delivered is None:
            return
        try:
            self.on_delivered(self.name, transition_key(transition))
        except Exception:  # the store being unhappy must not undo a delivery
            log.exception("sink %s: cannot record a delivery", self.name)


class HttpSink(Sink):
    """A sink that POSTs JSON through one aiohttp ClientSession."""

    Params: ClassVar[type[SinkParams]] = HttpSinkParams

    def __init__(self, params: Mapping[str, Any], metrics: SinkMetrics, **kwargs: Any) -> None:
        super().__init__(params, metrics, **kwargs)
        self.url: str = params["url"]
        self._token: Any = params.get("token")  # a SecretStr: never shown in a repr
        self._extra_headers: dict[str, str] = dict(params.get("headers") or {})
        # header values (API keys) and URLs (Slack paths, basic auth) are secrets: keep them out of reprs
        self.params["url"] = redact_url(self.url)
        self.params["headers"] = {name: "<redacted>" for name in self._extra_headers}
        self._session: Any = None  # aiohttp.ClientSession, imported lazily

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {redact_url(self.url)}>"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "bgpwatch"}
        headers.update(self._extra_headers)
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        return headers

    async def open(self) -> None:
        """Create the HTTP session."""
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def release(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_json(self, url: str, body: bytes) -> None:
        """POST a JSON body once; raise DeliveryError saying whether a retry may help."""
        import aiohttp

        if self._session is None:
            raise DeliveryError("sink not started", retry=False)
        where = redact_url(url)
        try:
            async with self._session.post(url, data=body, headers=self._headers()) as resp:
                if 200 <= resp.status < 300:
                    await resp.read()
                    return
                # the receiver's own words help the operator; they never hold our headers
                text = (await resp.text(errors="replace"))[:200].strip()
                retry = resp.status >= 500 or resp.status in (408, 425, 429)
                raise DeliveryError(f"HTTP {resp.status} from {where}: {text}", retry=retry)
        except aiohttp.ClientConnectorError as exc:
            raise DeliveryError(f"cannot connect to {where}: {exc.os_error.strerror or 'refused'}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # str(exc) of some aiohttp errors embeds the full URL; name the class instead
            raise DeliveryError(f"{type(exc).__name__} talking to {where}") from exc


# --- registry and construction -------------------------------------------------------------------------

SINK_TYPES: dict[str, type[Sink]] = {}


def register_sink(cls: type[Sink]) -> type[Sink]:
    """Register a Sink subclass under its type_name (class decorator); its Params must name that type."""
    if not cls.type_name:
        raise ValueError(f"{cls.__name__} has no type_name")
    annotation = cls.Params.model_fields["type"].annotation
    if getattr(annotation, "__args__", None) != (cls.type_name,):
        raise ValueError(f"{cls.__name__}.Params.type must be Literal[{cls.type_name!r}]")
    if cls.type_name in SINK_TYPES and SINK_TYPES[cls.type_name] is not cls:
        raise ValueError(f"sink type {cls.type_name!r} registered twice")
    SINK_TYPES[cls.type_name] = cls
    return cls


def _entry_mapping(entry: Any) -> Mapping[str, Any] | None:
    if isinstance(entry, Mapping):
        return entry
    dump = getattr(entry, "model_dump", None)
    if callable(dump):
        # pydantic: keep SecretStr objects (no mode="json"), drop unset optional keys
        return {k: v for k, v in dump().items() if v is not None}
    return None


def check_sinks(entries: Iterable[Any], *, where: str = "alerting.sinks") -> list[str]:
    """Return every problem in the sink entries (empty when they are valid)."""
    _, problems = _validate_entries(entries, where)
    return problems


def _validate_entries(entries: Iterable[Any], where: str) -> tuple[list[tuple[type[Sink], dict]], list[str]]:
    from bgpwatch.config import sink_entry

    problems: list[str] = []
    valid: list[tuple[type[Sink], dict]] = []
    names: dict[str, str] = {}
    entries = list(entries or ())
    per_type: dict[str, int] = {}
    for entry in entries:
        raw = _entry_mapping(entry)
        if raw is not None and isinstance(raw.get("type"), str) and not raw.get("name"):
            per_type[raw["type"]] = per_type.get(raw["type"], 0) + 1
    ordinal: dict[str, int] = {}
    for index, entry in enumerate(entries):
        path = f"{where}[{index}]"
        # The same models and messages as check-config (the union config.py builds from SINK_TYPES).
        model, found = sink_entry(entry, index, where)
        problems.extend(found)
        raw = _entry_mapping(entry)
        if model is not None:
            kind, params = model.type, model.model_dump()
        elif raw is not None and raw.get("type") in SINK_TYPES and isinstance(raw.get("name"), str | None):
            kind, params = raw["type"], {"name": raw.get("name")}  # invalid, but its name is still taken
        else:
            continue
        cls = SINK_TYPES[kind]
        if not params.get("name") and per_type.get(kind, 0) > 1:
            # several unnamed sinks of one type: name them by position among that type (webhook-1, ...)
            ordinal[kind] = ordinal.get(kind, 0) + 1
            params["name"] = f"{kind}-{ordinal[kind]}"
        name = params.get("name") or cls.type_name
        if name in names:
            problems.append(
                f"{path}.name: sink name {name!r} already used by {names[name]}; give each sink a distinct `name`"
            )
        names.setdefault(name, path)
        if not found:
            valid.append((cls, params))
    return valid, problems


def build_sinks(
    entries: Iterable[Any],
    registry: CollectorRegistry,
    *,
    on_delivered: DeliveredCallback | None = None,
    source: str | None = None,
    metrics: SinkMetrics | None = None,
) -> list[Sink]:
    """Build the configured sinks (not started); raise SinkConfigError listing every problem."""
    valid, problems = _validate_entries(entries, "alerting.sinks")
    if problems:
        prefix = f"{source}: " if source else ""
        raise SinkConfigError([prefix + p for p in problems])
    metrics = metrics or SinkMetrics(registry)
    return [cls(params, metrics, on_delivered=on_delivered) for cls, params in valid]


class SinkSet:
    """Fan transitions out to several sinks; skip what a sink already delivered before a restart."""

    def __init__(self, sinks: list[Sink], *, was_delivered: Callable[[str, str], bool] | None = None) -> None:
        self.sinks = sinks
        self._was_delivered = was_delivered

    def submit(self, transition: Transition) -> None:
        """Hand a transition to every sink (synchronous, never blocks)."""
        key = transition_key(transition) if self._was_delivered else ""
        for sink in self.sinks:
            if self._was_delivered is not None and self._was_delivered(sink.name, key):
                continue
            sink.submit(transition)

    def take_over(self, old: SinkSet) -> int:
        """Move what each old sink holds to the new sink of the same name and type; return how many."""
        by_name = {(sink.name, sink.type_name): sink for sink in old.sinks}
        moved = 0
        for sink in self.sinks:
            previous = by_name.get((sink.name, sink.type_name))
            if previous is not None:
                moved += sink.take_over(previous)
        return moved

    def resume(self, active: Iterable[Transition]) -> None:
        """Give every sink the alerts still firing at the last shutdown."""
        for transition in active:
            for sink in self.sinks:
                sink.resume(transition)

    def resubmit_undelivered(self, store: Any, since: float | str | None = None) -> int:
        """Queue again what each sink had not delivered before the last shutdown; return how many."""
        count = 0
        for sink in self.sinks:
            for transition in store.undelivered(sink.name, since):
                sink.submit(transition)
                count += 1
        return count

    async def start(self) -> None:
        """Start every sink."""
        for sink in self.sinks:
            await sink.start()

    async def close(self, timeout: float = 5.0) -> None:
        """Drain and close all sinks concurrently, within one shared `timeout`."""
        started = time.monotonic()
        results = await asyncio.gather(*(s.close(timeout) for s in self.sinks), return_exceptions=True)
        for sink, result in zip(self.sinks, results, strict=True):
            if isinstance(result, BaseException):
                log.error("sink %s: error while closing: %s", sink.name, type(result).__name__)
        log.debug("sinks closed in %.2f s", time.monotonic() - started)
