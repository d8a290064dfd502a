"""Detector plug-ins: a small base class, parameters declared beside their types, a registry by name.

A detector reads a narrow view of the engine's state (`bgpwatch.detect.context.DetectionContext`:
topology, sessions, model, clock), and states its findings into the alert book (`self.sync(...)`), which de-bounces, groups and emits.  Every
detector has the common parameters ``enabled``, ``for`` (seconds a condition must hold
before firing, default 0.5: alerts leave within ~1 s of the BGP message that caused them, while
path hunting, which settles within ~15 ms, never pages), ``keep`` (seconds it must stay clear
before resolving, default 2: a late "resolved" is cheaper than a resolve/re-fire pair that pages
twice) and ``severity``.  Parameters are numbers, booleans, strings or lists of one of those.

Configuration: ``detectors: {<name>: {<param>: value}}``; unknown names and parameters, or
values of the wrong type, are reported all at once by `validate_detector_params`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.alerts.lifecycle import AlertKey, Finding, alert_key

if TYPE_CHECKING:
    from bgpwatch.detect.context import DetectionContext
    from bgpwatch.events import Event
    from bgpwatch.monitors import MonitorChange
    from bgpwatch.rib import RouteChanges
    from bgpwatch.sessions import SessionChange

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class Param:
    """One detector parameter: its type, default and bounds."""

    kind: type  # float, int, bool, str or list (of ``item``)
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    item: Param | None = None  # for kind list: what each element must be
    validate: Callable[[Any], str | None] | None = None  # extra check of a well-typed value

    def check(self, value: Any) -> str | None:
        """Return what is wrong with ``value``, or None if it fits."""
        if self.kind is list:
            if not isinstance(value, list):
                return f"expected a list, got {value!r}"
            for index, element in enumerate(value):
                problem = self.item.check(element) if self.item is not None else None
                if problem:
                    return f"item {index}: {problem}"
            return None
        problem = self._check_scalar(value)
        if problem is None and self.validate is not None:
            problem = self.validate(value)
        return problem

    def _check_scalar(self, value: Any) -> str | None:
        if self.kind is bool:
            return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
        if self.kind is str:
            if not isinstance(value, str):
                return f"expected a string, got {value!r}"
            if self.choices and value not in self.choices:
                return f"expected one of {', '.join(self.choices)}, got {value!r}"
            return None
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (self.kind is int and not isinstance(value, int)):
            what = "an integer" if self.kind is int else "a number"
            return f"expected {what}{self._range()}, got {value!r}"
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            what = "an integer" if self.kind is int else "a number"
            return f"expected {what}{self._range()}, got {value!r}"
        return None

    def _range(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f" between {self.minimum:g} and {self.maximum:g}"
        if self.minimum is not None:
            return f" >= {self.minimum:g}"
        return ""


COMMON_PARAMS: dict[str, Param] = {
    "enabled": Param(bool, True, "run this detector"),
    "for": Param(float, 0.5, "seconds a condition must hold before it fires (ignores transients)", 0, 3600),
    "keep": Param(float, 2.0, "seconds a condition must stay clear before it resolves (hold-down)", 0, 3600),
    "severity": Param(str, "warning", "severity of its alerts", choices=SEVERITIES),
}


class Detector:
    """Base class: declare ``name``, ``kind``, ``params`` (and overrides of the common defaults)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    defaults: ClassVar[dict[str, Any]] = {}  # overrides of COMMON_PARAMS defaults
    params_only: ClassVar[bool] = False  # a settings section, not a detector (e.g. "topology")
    order: ClassVar[int] = 50  # evaluation order: causes before their consequences

    def __init__(self, ctx: DetectionContext, params: Mapping[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.p = resolve_params(type(self), params or {})
        self.enabled: bool = self.p["enabled"]

    # -- hooks ----------------------------------------------------------------------------------
    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        """See every event before the topology is updated (counting, classification)."""

    def on_session(self, change: SessionChange, now: float) -> None:
        """See every session change (up, down, converged, joined) before the topology follows it."""

    def on_monitor(self, change: MonitorChange, now: float) -> None:
        """See what a BMP router reported (its monitoring session up or lost, one of its sessions)."""

    def evaluate(self, now: float) -> None:
        """Re-derive conditions after the topology changed or the clock advanced."""

    def on_tick(self, now: float) -> None:
        """React to the clock alone (windows sliding, timeouts); default: re-evaluate."""
        self.evaluate(now)

    # -- helpers --------------------------------------------------------------------------------
    def finding(
        self,
        labels: dict[str, str],
        summary: str,
        subject: str,
        annotations: dict[str, Any] | None = None,
        cause: AlertKey | None = None,
        since: float | None = None,
        severity: str | None = None,
        kind: str | None = None,
    ) -> Finding:
        """Build a finding with this detector's kind, severity and timings."""
        return Finding(
            kind=kind or self.kind,
            labels=labels,
            severity=severity or self.p["severity"],
            summary=summary,
            subject=subject,
            annotations=annotations or {},
            cause=cause,
            for_=float(self.p["for"]),
            keep=float(self.p["keep"]),
            since=since,
        )

    def sync(self, findings: Iterable[Finding], now: float) -> None:
        """Make this detector's current conditions exactly ``findings``."""
        self.ctx.book.sync(self.kind, findings, now)

    def cause_if_active(self, kind: str, labels: dict[str, str]) -> AlertKey | None:
        """Return the key of a pending or firing alert, else None."""
        key = alert_key(kind, labels)
        return key if self.ctx.book.is_active(key) else None


REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Add a detector class to the registry under its name (a duplicate name is a bug)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} registered twice ({REGISTRY[cls.name].__name__})")
    REGISTRY[cls.name] = cls
    return cls


def all_params(cls: type[Detector]) -> dict[str, Param]:
    """Return every parameter of a detector with its effective default."""
    merged = {} if cls.params_only else dict(COMMON_PARAMS)
    for name, default in cls.defaults.items():
        base = merged[name]
        merged[name] = Param(
            base.kind, default, base.doc, base.minimum, base.maximum, base.choices, base.item, base.validate
        )
    merged.update(cls.params)
    return merged


def resolve_params(cls: type[Detector], given: Mapping[str, Any]) -> dict[str, Any]:
    """Return the defaults overlaid with valid given values (invalid ones are refused by validation)."""
    spec = all_params(cls)
    values = {name: param.default for name, param in spec.items()}
    for name, value in given.items():
        if name in spec and spec[name].check(value) is None:
            values[name] = float(value) if spec[name].kind is float else value
    return values


def _ensure_loaded() -> None:
    # The detector modules register themselves on import.
    from bgpwatch.detect import (  # noqa: F401
        churn,
        collector,
        monitors,
        origins,
        outside,
        paths,
        planned_work,
        rpki,
        sessions,
        sites,
    )


def detector_param_problems(detectors: Any) -> list[tuple[str, str]]:
    """Return (key path, what was expected) for every problem in a ``detectors`` section."""
    _ensure_loaded()
    if detectors is None:
        return []
    if not isinstance(detectors, Mapping):
        return [("detectors", f"expected a mapping of detector name to parameters, got {detectors!r}")]
    problems = []
    known = ", ".join(sorted(REGISTRY))
    for name, params in detectors.items():
        cls = REGISTRY.get(name) if isinstance(name, str) else None
        if cls is None:
            problems.append((f"detectors.{name}", f"unknown detector (expected one of: {known})"))
            continue
        if params is None:
            continue
        if not isinstance(params, Mapping):
            problems.append((f"detectors.{name}", f"expected a mapping of parameters, got {params!r}"))
            continue
        spec = all_params(cls)
        for param, value in params.items():
            if param not in spec:
                expected = ", ".join(sorted(spec))
                problems.append(
                    (f"detectors.{name}.{param}", f"unknown parameter (expected one of: {expected})")
                )
                continue
            problem = spec[param].check(value)
            if problem:
                problems.append((f"detectors.{name}.{param}", problem))
    return problems


def validate_detector_params(detectors: Any, source: str | None = None) -> list[str]:
    """Return one line per problem in a ``detectors`` section: "FILE: detectors.<name>.<param>: ..."."""
    prefix = f"{source}: " if source else ""
    return [f"{prefix}{path}: {message}" for path, message in detector_param_problems(detectors)]


def describe_detectors() -> list[dict[str, Any]]:
    """Return every detector with its parameters and defaults (for docs and `--help`-like output)."""
    _ensure_loaded()
    return [
        {
            "name": name,
            "kind": cls.kind,
            "params": {p: {"default": spec.default, "doc": spec.doc} for p, spec in all_params(cls).items()},
        }
        for name, cls in sorted(REGISTRY.items())
    ]
