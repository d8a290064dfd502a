"""Configuration: one YAML file turned into frozen, validated models.

Every problem in a file is collected and reported at once, one line each, as
``FILE: key.path: what was expected, got X``; nothing is ever reported as a traceback, and
secrets (BGP MD5 passwords, tokens, webhook URLs and headers) never appear in a message or a repr.
Things that load but are probably unintended (a prefix in two sites not declared ``anycast``) are
kept in ``Config.warnings``, one line each in the same form, and logged once at load.
``check_config`` runs exactly the code the daemon runs, so ``bgpwatch check-config`` is the real test.

Reading is bounded (``MAX_*`` below): a regular file only (never a FIFO, a device or a directory;
opened non-blocking), at most 1 MiB, at most 100,000 YAML nodes once aliases are expanded (a
"billion laughs" is refused as it is read), 64 levels deep, integers below 2^64.  A message quotes a
value from the file only when its shape makes it harmless (a number, true/false, an address or
prefix, a near miss of an expected choice) and a key only when it reads like a config key; anything
else (a token under the wrong key, the lines of a file the config is symlinked to) is described by
its key path, its line and what was expected, never quoted.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bgpwatch.rib.prefix import format_prefix, parse_prefix

log = logging.getLogger("bgpwatch.config")

__all__ = [
    "AlertingConfig",
    "AlertmanagerSink",
    "ApiConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "LogSink",
    "Peer",
    "Service",
    "Site",
    "Sink",
    "StorageConfig",
    "OutsideConfig",
    "RisLiveInput",
    "RpkiConfig",
    "RtrServer",
    "WatchedPrefix",
    "WebhookSink",
    "check_config",
    "load_config",
    "load_config_text",
]

MAX_ASN = 4_294_967_295
# Linux TCP_MD5SIG_MAXKEYLEN: the kernel refuses longer keys.
MD5_MAX_BYTES = 80
# Keys whose string values are never echoed back in an error message.
_SECRET_KEYS = frozenset({"md5_password", "token", "headers", "url"})


class ConfigError(Exception):
    """A configuration file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------------------------
# Field validators.  Each raises one of two custom errors that the reporter understands:
# "bgpwatch_expected" (it appends ", got X", unless the key is a secret) and "bgpwatch_problem"
# (a complete sentence, printed as is).  They check types themselves, so YAML's "65000" (a string)
# is not silently taken for an AS number.


def _expected(text: str) -> PydanticCustomError:
    return PydanticCustomError("bgpwatch_expected", "{expected}", {"expected": text})


def _problem(text: str) -> PydanticCustomError:
    return PydanticCustomError("bgpwatch_problem", "{problem}", {"problem": text})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_check(lo: int, hi: int, expected: str) -> BeforeValidator:
    def check(value: Any) -> int:
        if not _is_int(value) or not lo <= value <= hi:
            raise _expected(expected)
        return value

    return BeforeValidator(check)


def _check_hold_time(value: Any) -> int:
    if not _is_int(value) or not (value == 0 or 3 <= value <= 65535):
        raise _expected("expected a hold time in seconds: 0 (no keepalives) or 3-65535")
    return value


def _check_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise _expected("expected a number of seconds (> 0, at most 86400)")
    return float(value)


def _check_stall(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 30:
        raise _expected("expected a number of seconds (0-30; 0 = never make ExaBGP wait)")
    return float(value)


def _check_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _expected("expected a non-empty string")
    return value


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise _expected(
            "expected a name of letters, digits, '-', '_' or '.' (starting with a letter or digit, "
            "at most 63 characters)"
        )
    return value


def _canonical_address(value: Any) -> str | None:
    """Return the canonical text of an IP address, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _check_address(value: Any) -> str:
    canonical = _canonical_address(value)
    if canonical is not None:
        return canonical
    if isinstance(value, str) and "/" in value:
        raise _expected("expected an IPv4 or IPv6 address (not a prefix)")
    raise _expected("expected an IPv4 or IPv6 address")


def _check_router_id(value: Any) -> str:
    canonical = _canonical_address(value)
    if canonical is None or ":" in canonical or canonical == "0.0.0.0":
        raise _expected("expected a non-zero IPv4 address (the BGP identifier), such as 192.0.2.254")
    return canonical


def _canonical_prefix(value: Any) -> str:
    """Return the canonical text of a prefix; raise a custom error when it is not one."""
    expected = "expected a prefix such as 203.0.113.0/24 or 2001:db8::/32"
    if not isinstance(value, str):
        raise _expected(expected)
    try:
        family, key = parse_prefix(value)
        # parse_prefix clears host bits as a router would; in a config they are a typo.
        _, host_key = parse_prefix(value.partition("/")[0])
    except ValueError:
        raise _expected(expected) from None
    canonical = format_prefix(family, key)
    if host_key >> 8 != key >> 8:
        raise _problem(f"{value} has host bits set; did you mean {canonical}?")
    return canonical


def _prefix_or_none(value: Any) -> str | None:
    try:
        return _canonical_prefix(value)
    except PydanticCustomError:
        return None


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_LISTEN_EXPECTED = "expected HOST:PORT or [IPV6]:PORT, such as 127.0.0.1:9179 or '[::1]:9179'"


def _split_listen(text: str) -> tuple[str, int]:
    """Split a canonical ``HOST:PORT`` or ``[V6]:PORT`` string."""
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _check_listen(value: Any) -> str:
    if isinstance(value, list):
        # An unquoted [::1]:9179 is YAML flow-list syntax.
        raise _expected(f"{_LISTEN_EXPECTED} (quote a bracketed IPv6 form: YAML reads [...] as a list)")
    if not isinstance(value, str):
        raise _expected(_LISTEN_EXPECTED)
    if value.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\]:([0-9]+)", value)
        if match is None:
            raise _expected(_LISTEN_EXPECTED)
        host_text, port_text = match.groups()
        host = _canonical_address(host_text)
        if host is None or ":" not in host:
            raise _expected(f"{_LISTEN_EXPECTED} (brackets hold an IPv6 address)")
        host = f"[{host}]"
    else:
        host_text, colon, port_text = value.rpartition(":")
        if not colon or not host_text:
            raise _expected(_LISTEN_EXPECTED)
        if ":" in host_text:
            raise _expected(f"{_LISTEN_EXPECTED} (put an IPv6 address in brackets)")
        address = _canonical_address(host_text)
        is_name = _HOSTNAME_RE.fullmatch(host_text) and not re.fullmatch(r"[0-9.]+", host_text)
        if address is None and not is_name:
            raise _expected(_LISTEN_EXPECTED)
        host = address or host_text
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _expected("expected a port 1-65535 after the last ':'")
    return f"{host}:{int(port_text)}"


def _url_check(schemes: tuple[str, ...], expected: str) -> Callable[[Any], str]:
    """Return a check of a URL with one of ``schemes`` and a host; the URL is never echoed."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _expected(expected)
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            raise _problem(f"{expected} (the URL does not parse)") from None
        if parts.scheme not in schemes:
            # The scheme is not quoted: "user:password@host" parses as the scheme "user".
            raise _problem(f"{expected}, got another scheme" if parts.scheme else expected)
        if not parts.hostname:
            raise _problem(expected)
        return value

    return check


# Webhook URLs often carry the secret in their path, RIS Live URLs a key in their query.
_check_url = _url_check(("http", "https"), "expected an http:// or https:// URL with a host")
_check_ws_url = _url_check(("ws", "wss"), "expected a ws:// or wss:// URL with a host")


def _check_ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _expected("expected a share between 0 and 1, such as 0.5")
    return float(value)


def _check_md5(value: Any) -> Any:
    expected = (
        f"expected a password of 1-{MD5_MAX_BYTES} printable ASCII characters, without quotes or backslashes"
    )
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not 1 <= len(value) <= MD5_MAX_BYTES:
        raise _problem(expected)
    if any(not 0x20 <= ord(char) <= 0x7E or char in "\"'\\" for char in value):
        raise _problem(expected)
    return value


def _check_secret(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str) or not value:
        raise _problem("expected a non-empty string")
    return value


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or any(c in text for c in "\r\n"):
            raise _problem("expected HTTP header names (letters, digits, '-') and single-line values")
    return value


def _check_path(value: Any, info: ValidationInfo) -> Path:
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _expected("expected a file system path")
    if "\0" in value:  # YAML's "\0" escape: the operating system refuses such a path later, with a traceback
        raise _problem("expected a file system path (without a NUL character)")
    path = Path(value)
    base = (info.context or {}).get("base_dir")
    # A relative path means relative to the config file, wherever the daemon was started from.
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


Asn = Annotated[int, _int_check(1, MAX_ASN, f"expected an AS number (1-{MAX_ASN})")]
Port = Annotated[int, _int_check(1, 65535, "expected a TCP port (1-65535)")]
HoldTime = Annotated[int, BeforeValidator(_check_hold_time)]
Seconds = Annotated[float, BeforeValidator(_check_seconds)]
QueueSize = Annotated[int, _int_check(1, 10_000_000, "expected a queue size (1-10000000)")]
Name = Annotated[str, BeforeValidator(_check_name)]
Text = Annotated[str, BeforeValidator(_check_text)]
Address = Annotated[str, BeforeValidator(_check_address)]
RouterId = Annotated[str, BeforeValidator(_check_router_id)]
Prefix = Annotated[str, BeforeValidator(_canonical_prefix)]
ListenAddress = Annotated[str, BeforeValidator(_check_listen)]
Url = Annotated[str, BeforeValidator(_check_url)]
WsUrl = Annotated[str, BeforeValidator(_check_ws_url)]
Md5Password = Annotated[SecretStr, BeforeValidator(_check_md5)]
Token = Annotated[SecretStr, BeforeValidator(_check_secret)]
FilePath = Annotated[Path, BeforeValidator(_check_path)]
Flag = Annotated[bool, Strict()]


# ---------------------------------------------------------------------------------------------
# Models: defaults beside types.


class _Model(BaseModel):
    """Frozen, unknown keys rejected, inputs never shown by pydantic's own messages."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section_means_default(cls, data: Any) -> Any:
        # "services:" with every item commented out is YAML null: read it as "use the default".
        if not isinstance(data, dict):
            return data
        return {
            key: value
            for key, value in data.items()
            if value is not None or not _is_optional_section(cls.model_fields.get(key))
        }


def _is_optional_section(field: Any) -> bool:
    if field is None or field.is_required():
        return False
    annotation = field.annotation
    if get_origin(annotation) in (list, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class CollectorConfig(_Model):
    local_as: Asn
    router_id: RouterId
    # managed: bgpwatch runs ExaBGP itself; external: an operator-run ExaBGP feeds `bgpwatch relay`.
    exabgp: Literal["managed", "external"] = "managed"
    runtime_dir: FilePath = Path("/run/bgpwatch")
    exabgp_workers: (
        Annotated[int, _int_check(1, 64, "expected a number of ExaBGP processes (1-64)")] | None
    ) = None
    exabgp_python: Text | None = None
    hold_time: HoldTime = 90
    # Graceful-restart time advertised to every peer (RFC 4724: a 12-bit field); 0 = not advertised.
    graceful_restart: Annotated[
        int,
        _int_check(
            0, 4095, "expected a restart time in seconds (0-4095; 0 = do not advertise graceful restart)"
        ),
    ] = 120
    listen_address: Address | None = None
    listen_port: Port = 179
    local_address: Address | None = None
    # Bytes of ExaBGP output the relay keeps while the daemon is unreachable (~620 B per UPDATE line).
    relay_buffer_bytes: Annotated[
        int, _int_check(1 << 16, 1 << 34, "expected a number of bytes (65536-17179869184)")
    ] = 64 << 20
    # Longest the relay lets ExaBGP wait for a daemon that is behind but takes nothing (back-pressure;
    # keep it under a third of the shortest hold time, 1 s suits BGP's minimum of 3 s); 0: never wait.
    relay_stall_seconds: Annotated[float, BeforeValidator(_check_stall)] = 1.0
    # Seconds an input's time may be off the receiving clock (the wall clock live, the stream in a
    # replay); a line further off is rejected (time_out_of_range) and never moves the clock.
    max_clock_skew: Annotated[int, _int_check(1, 86400, "expected a number of seconds (1-86400)")] = 300


class Peer(_Model):
    name: Name
    address: Address
    peer_as: Asn
    local_as: Asn | None = None
    local_address: Address | None = None
    md5_password: Md5Password | None = None
    passive: Flag = False
    hold_time: HoldTime | None = None
    port: Port = 179
    # The BGP identifier of the router behind this session (else learnt from its OPEN): how BMP
    # reports of other routers' sessions to it are recognised as inter-site sessions.
    router_id: RouterId | None = None


class Site(_Model):
    name: Name
    prefixes: list[Prefix]
    peers: list[Peer] = []


class Service(_Model):
    name: Name
    prefixes: list[Prefix] = Field(min_length=1)
    required_from: list[Name] = Field(min_length=1)


class ApiConfig(_Model):
    listen: ListenAddress = "127.0.0.1:9179"
    token: Token | None = None

    @property
    def host(self) -> str:
        """Return the listening host, without IPv6 brackets."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """Return the listening TCP port."""
        return _split_listen(self.listen)[1]


# Each sink declares its parameters once, as a pydantic model beside its code (`Sink.Params`); the
# union is built from the registry.  Imported here, after the field types the models use.
from bgpwatch.alerts.sinks.alertmanager import AlertmanagerSinkParams as AlertmanagerSink  # noqa: E402
from bgpwatch.alerts.sinks.base import SINK_TYPES  # noqa: E402
from bgpwatch.alerts.sinks.log import LogSinkParams as LogSink  # noqa: E402
from bgpwatch.alerts.sinks.webhook import WebhookSinkParams as WebhookSink  # noqa: E402, F401

# The built-in types first, in the order the messages have always listed them; then any other registered.
_SINK_ORDER = ("log", "alertmanager", "webhook")
Sink = Annotated[
    Union[  # noqa: UP007 - built at run time
        tuple(
            SINK_TYPES[name].Params
            for name in sorted(SINK_TYPES, key=lambda t: (_SINK_ORDER + (t,)).index(t))
        )
    ],
    Field(discriminator="type"),
]


class AlertingConfig(_Model):
    sinks: list[Sink] = [LogSink()]


class ExabgpInput(_Model):
    """BGP sessions through ExaBGP, configured by the ``collector:`` section (the default input)."""

    type: Literal["exabgp"] = "exabgp"


class BmpRouter(_Model):
    """A router that streams BMP to bgpwatch, and the site it belongs to."""

    name: Name
    site: Name
    address: Address | None = None  # matched by the address it connects from
    sys_name: Text | None = None  # or by the sysName of its Initiation message
    router_id: RouterId | None = None  # its BGP identifier, if not learnt from its Peer Up messages
    addresses: list[Address] = []  # its addresses on inter-site links (sessions of other routers to it)


class BmpInput(_Model):
    """A BMP monitoring station (RFC 7854): routers connect to it and report their own sessions."""

    type: Literal["bmp"] = "bmp"
    listen: ListenAddress = "127.0.0.1:11019"
    routers: list[BmpRouter] = []
    # A message longer than this is a framing error: the connection is closed.
    max_message_bytes: Annotated[int, _int_check(4096, 16 << 20, "expected bytes (4096-16777216)")] = 1 << 20
    # Malformed messages tolerated from one connection before it is closed (others are unaffected).
    max_errors: Annotated[int, _int_check(1, 1_000_000, "expected a count (1-1000000)")] = 100
    # Routers that connect but do not match any entry of ``routers``: accepted (their sessions are shown,
    # they count for no site) or refused.
    accept_unknown: Flag = True


class RisLiveInput(_Model):
    """RIS Live (RIPE NCC's WebSocket stream of public route collectors): the outside view of our prefixes.

    Routes heard here are public peers' routes, kept apart from bgpwatch's own vantage points
    (`bgpwatch.outside`); they never make a site down, only say what the internet sees.
    """

    type: Literal["rislive"] = "rislive"
    url: WsUrl = "wss://ris-live.ripe.net/v1/ws/?client=bgpwatch"
    # Subscribed prefixes (with their more-specifics); empty: every site prefix and watched prefix.
    prefixes: list[Prefix] = []
    more_specific: Flag = True
    # Also subscribe to every route whose origin is one of these ASes (our AS announcing what it should not).
    origins: list[Asn] = []
    # RIS route collectors to hear (rrc00, rrc21, ...); empty: all of them.
    hosts: list[Name] = []
    # Public peers kept (allow; empty: all) and dropped (deny, e.g. a stale feeder): an address or an AS number.
    peers_allow: list[Address | Asn] = []
    peers_deny: list[Address | Asn] = []
    # No frame at all (pongs included) for this long: the feed is silent, reported as the feed's
    # fault; the outside view is frozen (never read as prefixes lost) until it speaks again.
    silence: Annotated[int, _int_check(5, 3600, "expected a number of seconds (5-3600)")] = 60
    ping_every: Annotated[int, _int_check(1, 600, "expected a number of seconds (1-600)")] = 15
    # Reconnect back-off: from the first to the last, doubling, with jitter.
    reconnect_min: Annotated[int, _int_check(1, 600, "expected a number of seconds (1-600)")] = 1
    reconnect_max: Annotated[int, _int_check(1, 3600, "expected a number of seconds (1-3600)")] = 60
    max_frame_bytes: Annotated[int, _int_check(4096, 16 << 20, "expected bytes (4096-16777216)")] = 1 << 20


Input = Annotated[ExabgpInput | BmpInput | RisLiveInput, Field(discriminator="type")]


class UpstreamRule(_Model):
    """The ASes allowed as the first hop after ours (the AS just before the origin) for a site or a prefix."""

    site: Name | None = None
    prefix: Prefix | None = None
    asns: list[Asn] = Field(min_length=1)


class VisibilityRule(_Model):
    """External visibility thresholds for a site's prefixes or one prefix (overriding the detector's)."""

    site: Name | None = None
    prefix: Prefix | None = None
    # Fire when fewer public peers than this see the prefix ...
    min_peers: Annotated[int, _int_check(0, 100_000, "expected a number of peers (0-100000)")] | None = None
    # ... or when this share of the public peers that saw it no longer do (0-1).
    max_loss: Annotated[float, BeforeValidator(_check_ratio)] | None = None


class OutsideConfig(_Model):
    """What the outside view (RIS Live) is judged against."""

    upstreams: list[UpstreamRule] = []
    visibility: list[VisibilityRule] = []


class RtrServer(_Model):
    """An RPKI cache speaking RTR over plain TCP (RFC 8210, falling back to RFC 6810)."""

    address: ListenAddress  # HOST:PORT of the cache, e.g. 127.0.0.1:8282
    # Used until the cache's End of Data gives its own (RFC 8210 6): seconds.
    refresh: Annotated[int, _int_check(1, 86400, "expected a number of seconds (1-86400)")] = 3600
    retry: Annotated[int, _int_check(1, 7200, "expected a number of seconds (1-7200)")] = 600
    expire: Annotated[int, _int_check(600, 172800, "expected a number of seconds (600-172800)")] = 7200


class RpkiConfig(_Model):
    """RPKI origin validation: VRPs from RTR caches, in order of preference."""

    rtr: list[RtrServer] = []


class RecordingConfig(_Model):
    # Directory for the recorded input stream (gzip JSON lines); None: do not record.
    path: FilePath | None = None
    rotate_megabytes: Annotated[int, _int_check(1, 1 << 20, "expected megabytes (1-1048576)")] = 64
    keep: Annotated[int, _int_check(1, 100_000, "expected a number of files (1-100000)")] = 48


class StorageConfig(_Model):
    path: FilePath = Path("/var/lib/bgpwatch/bgpwatch.db")
    # None: keep the history forever.
    retention_days: Annotated[int, _int_check(1, 36500, "expected a number of days (1-36500)")] | None = 90


class LoggingConfig(_Model):
    # text: "LEVEL logger: message"; logfmt / json: one event per line, keys ts, level, logger, msg
    # and extras (bgpwatch.logs). Under systemd every line also carries its <N> syslog priority.
    format: Literal["text", "logfmt", "json"] = "text"
    # `bgpwatch run --log-level` wins over this.
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"


class WatchedPrefix(_Model):
    prefix: Prefix
    origins: list[Asn] = Field(min_length=1)
    allow_more_specifics: Flag = False


class Config(_Model):
    collector: CollectorConfig
    sites: list[Site] = Field(min_length=1)
    # Prefixes originated by several sites; each must be in the prefixes of at least two sites.
    anycast: list[Prefix] = []
    services: list[Service] = []
    api: ApiConfig = ApiConfig()
    alerting: AlertingConfig = AlertingConfig()
    storage: StorageConfig = StorageConfig()
    recording: RecordingConfig = RecordingConfig()
    logging: LoggingConfig = LoggingConfig()
    # Input plug-ins (bgpwatch.ingest.sources); without this section, ExaBGP alone.
    inputs: list[Input] = [ExabgpInput()]
    # Per-detector parameters, validated by bgpwatch.detect.
    detectors: dict[str, dict[str, Any]] = {}
    watched_prefixes: list[WatchedPrefix] = []
    outside: OutsideConfig = OutsideConfig()
    rpki: RpkiConfig = RpkiConfig()

    _source: Path | None = PrivateAttr(default=None)
    _peers: tuple[Peer, ...] = PrivateAttr()
    _peer_by_address: Mapping[str, Peer] = PrivateAttr()
    _peer_by_name: Mapping[str, Peer] = PrivateAttr()
    _site_of_address: Mapping[str, str] = PrivateAttr()
    _site_by_name: Mapping[str, Site] = PrivateAttr()
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        """Index peers and sites once; the config never changes after load."""
        self._peers = tuple(peer for site in self.sites for peer in site.peers)
        self._peer_by_address = MappingProxyType({peer.address: peer for peer in self._peers})
        self._peer_by_name = MappingProxyType({peer.name: peer for peer in self._peers})
        self._site_of_address = MappingProxyType(
            {peer.address: site.name for site in self.sites for peer in site.peers}
        )
        self._site_by_name = MappingProxyType({site.name: site for site in self.sites})
        found = sorted(_undeclared_anycast(self) + _risky(self), key=lambda item: _document_order(item[0]))
        self._warnings = tuple(f"{path}: {message}" for path, message in found)

    @model_validator(mode="after")
    def _check_cross_references(self, info: ValidationInfo) -> Config:
        # load_config checks the raw document itself, so that these problems are reported
        # together with field errors; this covers Config built directly from Python data.
        if (info.context or {}).get("cross_checked"):
            return self
        problems = _cross_problems(self.model_dump(mode="python"))
        if problems:
            raise _problem("; ".join(f"{path}: {message}" for path, message in problems))
        return self

    @property
    def warnings(self) -> tuple[str, ...]:
        """Return what loads but is probably a mistake, one line each (``FILE: key.path: ...``)."""
        return self._warnings

    @property
    def source(self) -> Path | None:
        """Return the file this configuration was loaded from."""
        return self._source

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Return every peer of every site, in file order."""
        return self._peers

    @property
    def peer_by_address(self) -> Mapping[str, Peer]:
        """Map a canonical peer address (as ExaBGP's neighbor.address.peer) to its peer."""
        return self._peer_by_address

    @property
    def peer_by_name(self) -> Mapping[str, Peer]:
        """Map a peer name to its peer."""
        return self._peer_by_name

    @property
    def site_of_address(self) -> Mapping[str, str]:
        """Map a canonical peer address to the name of the site it belongs to."""
        return self._site_of_address

    @property
    def site_by_name(self) -> Mapping[str, Site]:
        """Map a site name to its site."""
        return self._site_by_name

    @property
    def bmp(self) -> BmpInput | None:
        """Return the BMP input, if one is configured."""
        return next((item for item in self.inputs if isinstance(item, BmpInput)), None)

    @property
    def rislive(self) -> RisLiveInput | None:
        """Return the RIS Live input, if one is configured."""
        return next((item for item in self.inputs if isinstance(item, RisLiveInput)), None)

    @property
    def exabgp_enabled(self) -> bool:
        """Tell whether bgpwatch holds BGP sessions through ExaBGP (the ``exabgp`` input)."""
        return any(isinstance(item, ExabgpInput) for item in self.inputs)

    def local_as_for(self, peer: Peer) -> int:
        """Return the local AS used towards ``peer`` (its own, else the collector's)."""
        return peer.local_as if peer.local_as is not None else self.collector.local_as

    def hold_time_for(self, peer: Peer) -> int:
        """Return the hold time proposed to ``peer`` (its own, else the collector's)."""
        return peer.hold_time if peer.hold_time is not None else self.collector.hold_time


# ---------------------------------------------------------------------------------------------
# Cross-reference checks, on the raw document so that they run even when fields are invalid.


def _cross_problems(data: Any) -> list[tuple[str, str]]:
    """Return (key path, message) for duplicates and dangling references; tolerate any garbage."""
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return problems
    sites = data.get("sites")
    site_names: dict[str, int] = {}
    # With a site unnamed or misnamed, "unknown site" in services would only echo that problem.
    all_sites_named = isinstance(sites, list)
    if isinstance(sites, list):
        peer_names: dict[str, tuple[str, Any]] = {}
        peer_addresses: dict[str, tuple[str, Any, Any]] = {}
        for index, site in enumerate(sites):
            if not isinstance(site, dict):
                all_sites_named = False
                continue
            name = site.get("name")
            site_path = f"sites[{index}]"
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
                all_sites_named = False
            elif name in site_names:
                message = f"duplicate site name {name!r} (also sites[{site_names[name]}])"
                problems.append((f"{site_path}.name", message))
            else:
                site_names[name] = index
            problems += _duplicate_prefixes(site.get("prefixes"), f"{site_path}.prefixes")
            peers = site.get("peers")
            if not isinstance(peers, list):
                continue
            for position, peer in enumerate(peers):
                if isinstance(peer, dict):
                    path = f"{site_path}.peers[{position}]"
                    problems += _check_peer(peer, path, name, peer_names, peer_addresses)
    problems += _check_anycast(data.get("anycast"), sites)
    services = data.get("services")
    if isinstance(services, list):
        problems += _check_services(services, site_names if all_sites_named else None)
    problems += _check_inputs(data.get("inputs"), site_names if all_sites_named else None)
    watched = data.get("watched_prefixes")
    if isinstance(watched, list):
        seen: dict[str, int] = {}
        for index, item in enumerate(watched):
            prefix = _prefix_or_none(item.get("prefix")) if isinstance(item, dict) else None
            if prefix is None:
                continue
            if prefix in seen:
                problems.append(
                    (
                        f"watched_prefixes[{index}].prefix",
                        f"{prefix} is listed twice (also watched_prefixes[{seen[prefix]}])",
                    )
                )
            else:
                seen[prefix] = index
    return problems


def _check_inputs(inputs: Any, site_names: dict[str, int] | None) -> list[tuple[str, str]]:
    """Return problems of the inputs list: one input per type, BMP routers named once, known sites."""
    problems: list[tuple[str, str]] = []
    if not isinstance(inputs, list):
        return problems
    types: dict[str, int] = {}
    for index, item in enumerate(inputs):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        kind = item["type"]
        if kind in types:
            problems.append((f"inputs[{index}].type", f"a second {kind} input (also inputs[{types[kind]}])"))
            continue
        types[kind] = index
        routers = item.get("routers")
        if not isinstance(routers, list):
            continue
        names: dict[str, int] = {}
        matches: dict[str, str] = {}
        for position, router in enumerate(routers):
            if not isinstance(router, dict):
                continue
            path = f"inputs[{index}].routers[{position}]"
            name = router.get("name")
            if isinstance(name, str):
                if name in names:
                    problems.append((f"{path}.name", f"duplicate router name (also routers[{names[name]}])"))
                else:
                    names[name] = position
            site = router.get("site")
            if site_names is not None and isinstance(site, str) and site not in site_names:
                shown = f" {site!r}" if _NAME_RE.fullmatch(site) else " so (not shown)"
                problems.append((f"{path}.site", f"no site is named{shown}"))
            if router.get("address") is None and router.get("sys_name") is None:
                problems.append((path, "give the router's address or sys_name, to recognise its connection"))
            for key in ("address", "sys_name"):
                value = router.get(key)
                if key == "address":
                    value = _canonical_address(value)
                if not isinstance(value, str):
                    continue
                marker = f"{key}={value}"
                if marker in matches:
                    # An address is shown (canonical, harmless); a sysName may be anything: not echoed.
                    what = value if key == "address" else "this sys_name"
                    problems.append((f"{path}.{key}", f"{what} already identifies {matches[marker]}"))
                else:
                    matches[marker] = f"{path}"
    return problems


def _site_prefix_places(sites: Any) -> dict[str, list[tuple[str, Any]]]:
    """Map each canonical site prefix to where it is listed: [(key path, site name)], file order."""
    places: dict[str, list[tuple[str, Any]]] = {}
    if not isinstance(sites, list):
        return places
    for index, site in enumerate(sites):
        if not isinstance(site, dict) or not isinstance(site.get("prefixes"), list):
            continue
        name = site.get("name")
        for position, text in enumerate(site["prefixes"]):
            prefix = _prefix_or_none(text)
            if prefix is None:
                continue
            where = places.setdefault(prefix, [])
            if all(other != name for _, other in where):  # listed twice in one site: reported apart
                where.append((f"sites[{index}].prefixes[{position}]", name))
    return places


def _check_anycast(anycast: Any, sites: Any) -> list[tuple[str, str]]:
    """Check that every anycast prefix is listed once and is in the prefixes of two sites or more."""
    if not isinstance(anycast, list):
        return []
    problems = []
    places = _site_prefix_places(sites)
    seen: dict[str, int] = {}
    for index, text in enumerate(anycast):
        prefix = _prefix_or_none(text)
        if prefix is None:
            continue
        path = f"anycast[{index}]"
        if prefix in seen:
            problems.append((path, f"{prefix} is listed twice (also anycast[{seen[prefix]}])"))
            continue
        seen[prefix] = index
        where = places.get(prefix, [])
        rule = (
            "an anycast prefix must be in the prefixes of at least two sites (each site that originates it)"
        )
        if not where:
            problems.append((path, f"{prefix} is not in the prefixes of any site; {rule}"))
        elif len(where) == 1:
            site_path, name = where[0]
            # A site's name is quoted only when it is a valid one (a bad one is reported on its own).
            site = f"site {name!r}" if isinstance(name, str) and _NAME_RE.fullmatch(name) else "one site"
            problems.append((path, f"{prefix} is only in the prefixes of {site} ({site_path}); {rule}"))
    return problems


def _undeclared_anycast(config: Config) -> list[tuple[str, str]]:
    """Return (key path, message) for each prefix listed by several sites but not declared anycast."""
    raw = [{"name": site.name, "prefixes": site.prefixes} for site in config.sites]
    declared = set(config.anycast)
    warnings = []
    for prefix, where in _site_prefix_places(raw).items():
        if len(where) < 2 or prefix in declared:
            continue
        first_path, first_site = where[0]
        for path, _name in where[1:]:
            warnings.append(
                (
                    path,
                    f"{prefix} is also a prefix of site {first_site!r} ({first_path}) but not declared "
                    "under anycast; add it to anycast if both sites originate it, else remove it from one",
                )
            )
    return warnings


def _risky(config: Config) -> list[tuple[str, str]]:
    """Return (key path, message) for what is valid but probably wrong: it loads, with a warning each."""
    warnings: list[tuple[str, str]] = []
    bmp_sites = {router.site for router in config.bmp.routers} if config.bmp is not None else set()
    for i, site in enumerate(config.sites):
        if not site.peers and site.name not in bmp_sites:
            warnings.append(
                (
                    f"sites[{i}].peers",
                    f"site {site.name!r} has no peers (and no BMP router): bgpwatch has no vantage point in"
                    " it, so its state rests on the other sites' routes only",
                )
            )
        for j, peer in enumerate(site.peers):
            path = f"sites[{i}].peers[{j}]"
            if peer.passive and config.collector.listen_address is None and config.exabgp_enabled:
                warnings.append(
                    (
                        f"{path}.passive",
                        f"peer {peer.name!r} is passive (bgpwatch waits for the router to connect) but"
                        " collector.listen_address is not set: nothing listens for it, the session never comes up",
                    )
                )
    # ExaBGP sends no keepalive while it waits for the relay: a wait of hold/3 can expire a session.
    stall = config.collector.relay_stall_seconds
    short = [(config.hold_time_for(peer), peer.name) for peer in config.peers if config.hold_time_for(peer)]
    if config.exabgp_enabled and short and stall > min(short)[0] / 3:
        hold, name = min(short)
        warnings.append(
            (
                "collector.relay_stall_seconds",
                f"{stall:g} s is more than a third of peer {name!r}'s hold time ({hold} s): ExaBGP sends no"
                " keepalive while it waits for the relay, so the session could expire (keep it <= hold/3)",
            )
        )
    # A peer's own local_address of the other family is refused; the collector's is then left unused.
    shared = config.collector.local_address
    if shared is not None:
        version = ipaddress.ip_address(shared).version
        other = [
            peer.name
            for peer in config.peers
            if peer.local_address is None and ipaddress.ip_address(peer.address).version != version
        ]
        if other:
            warnings.append(
                (
                    "collector.local_address",
                    f"{shared} is an IPv{version} address, so it is not used for the IPv{10 - version} peers "
                    f"{', '.join(other)}: the system picks their source address (give them a local_address)",
                )
            )
    originated = [ipaddress.ip_network(prefix) for site in config.sites for prefix in site.prefixes]
    for i, service in enumerate(config.services):
        for k, prefix in enumerate(service.prefixes):
            network = ipaddress.ip_network(prefix)
            if any(net.version == network.version and network.subnet_of(net) for net in originated):
                continue
            warnings.append(
                (
                    f"services[{i}].prefixes[{k}]",
                    f"{prefix} of service {service.name!r} is in no site's prefixes: no site originates it,"
                    " so bgpwatch cannot tell which site's loss breaks it (list it, or a prefix covering it, in a site)",
                )
            )
    return warnings


def _duplicate_prefixes(prefixes: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(prefixes, list):
        return []
    problems = []
    seen: dict[str, int] = {}
    for index, text in enumerate(prefixes):
        prefix = _prefix_or_none(text)
        if prefix is None:
            continue
        if prefix in seen:
            problems.append((f"{path}[{index}]", f"{prefix} is listed twice (also {path}[{seen[prefix]}])"))
        else:
            seen[prefix] = index
    return problems


def _quoted_name(name: Any) -> str:
    """Quote a site or peer name from the raw document only when it is a valid name."""
    return repr(name) if isinstance(name, str) and _NAME_RE.fullmatch(name) else "(a bad name, not shown)"


def _check_peer(
    peer: dict[str, Any],
    path: str,
    site_name: Any,
    peer_names: dict[str, tuple[str, Any]],
    peer_addresses: dict[str, tuple[str, Any, Any]],
) -> list[tuple[str, str]]:
    problems = []
    name = peer.get("name")
    if isinstance(name, str) and _NAME_RE.fullmatch(name):  # else not quoted: reported as a bad name
        if name in peer_names:
            other_path, other_site = peer_names[name]
            problems.append(
                (
                    f"{path}.name",
                    f"duplicate peer name {name!r} (already used by {other_path} in site {_quoted_name(other_site)})",
                )
            )
        else:
            peer_names[name] = (path, site_name)
    address = _canonical_address(peer.get("address"))
    if address is not None:
        if address in peer_addresses:
            other_path, other_name, other_site = peer_addresses[address]
            if other_site == site_name:
                message = f"address {address} is already the address of peer {_quoted_name(other_name)} ({other_path})"
            else:
                message = (
                    f"address {address} is in two sites, {_quoted_name(other_site)} "
                    f"(peer {_quoted_name(other_name)}, {other_path}) "
                    f"and {_quoted_name(site_name)}: a peer belongs to one site"
                )
            problems.append((f"{path}.address", message))
        else:
            peer_addresses[address] = (path, name, site_name)
        local = _canonical_address(peer.get("local_address"))
        if local is not None and (":" in local) != (":" in address):
            family = "IPv6" if ":" in address else "IPv4"
            problems.append(
                (
                    f"{path}.local_address",
                    f"expected an {family} address like the peer address {address}, got {local}",
                )
            )
    return problems


def _check_services(services: list[Any], site_names: dict[str, int] | None) -> list[tuple[str, str]]:
    problems = []
    seen_names: dict[str, int] = {}
    for index, service in enumerate(services):
        if not isinstance(service, dict):
            continue
        path = f"services[{index}]"
        name = service.get("name")
        if isinstance(name, str) and _NAME_RE.fullmatch(name):
            if name in seen_names:
                problems.append(
                    (f"{path}.name", f"duplicate service name {name!r} (also services[{seen_names[name]}])")
                )
            else:
                seen_names[name] = index
        problems += _duplicate_prefixes(service.get("prefixes"), f"{path}.prefixes")
        required = service.get("required_from")
        if not isinstance(required, list):
            continue
        listed: set[str] = set()
        for position, site in enumerate(required):
            if not isinstance(site, str) or not _NAME_RE.fullmatch(site):
                continue
            where = f"{path}.required_from[{position}]"
            if site in listed:
                problems.append((where, f"site {site!r} is listed twice"))
            elif site_names is not None and site not in site_names:
                known = ", ".join(site_names) or "none"
                problems.append((where, f"unknown site {site!r} (sites: {known})"))
            listed.add(site)
    return problems


# ---------------------------------------------------------------------------------------------
# Turning pydantic errors into "key.path: what was expected, got X".


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional from a type annotation."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, UnionType):
            members = [arg for arg in get_args(tp) if arg is not NoneType]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _union_member(tp: Any, tag: str) -> Any:
    """Return the member of a discriminated union whose ``type`` literal is ``tag``."""
    if get_origin(tp) not in (Union, UnionType):
        return None
    for member in get_args(tp):
        field = getattr(member, "model_fields", {}).get("type")
        if field is not None and tag in get_args(field.annotation):
            return member
    return None


def _union_tags(tp: Any) -> list[str]:
    return [get_args(member.model_fields["type"].annotation)[0] for member in get_args(tp)]


def _walk(loc: tuple[Any, ...]) -> tuple[list[str | int], Any]:
    """Follow a pydantic error location through the models: the user's key path and the type there."""
    tp: Any = Config
    path: list[str | int] = []
    for segment in loc:
        tp = _unwrap(tp)
        member = _union_member(tp, segment) if isinstance(segment, str) else None
        if member is not None:
            tp = member  # the discriminator's tag: not a key the user wrote
            continue
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(segment))
            tp = field.annotation if field is not None else None
            path.append(str(segment))
        elif origin is list and isinstance(segment, int):
            tp = get_args(tp)[0]
            path.append(segment)
        elif origin is dict:
            tp = get_args(tp)[1]
            if segment != "[key]":
                path.append(str(segment))
        else:
            tp = None
            path.append(segment)
    return path, _unwrap(tp)


# What a message may quote from the file.  Secrets land under the wrong key (a token as api.listen, a
# webhook URL as a sink name) and a config symlinked to another file turns its lines into keys, so
# a value is shown only where its shape makes it harmless: numbers, YAML's true/false words, address-
# and prefix-like text, or a near miss of one of the expected choices; a key only when it reads like a
# config key (lowercase word, few digits).  Everything else is described, never quoted.
_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ADDRESS_LIKE_RE = re.compile(
    r"[0-9]{1,20}"  # a number written as text, such as '65000'
    r"|[0-9]{1,3}(\.[0-9]{1,4}){1,4}(/[0-9]{1,3})?(:[0-9]{1,6})?"  # IPv4 address, prefix or HOST:PORT
    r"|\[?[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,8}(\.[0-9.]{1,15})?(/[0-9]{1,3})?(\]:[0-9]{1,6})?"  # IPv6
)
_YAML_WORDS = frozenset({"yes", "no", "on", "off", "y", "n", "true", "false", "null", "~"})
NOT_SHOWN = "not shown, in case it is a secret"


def _key_shown(key: Any, known: list[str] | tuple[str, ...] = ()) -> bool:
    """Tell whether a key from the file may be quoted in a message."""
    if not isinstance(key, str):
        return isinstance(key, int | float) and not isinstance(key, bool)
    if _KEY_RE.fullmatch(key) and sum(char.isdigit() for char in key) <= 3:
        return True
    return len(key) <= 40 and bool(difflib.get_close_matches(key, known, n=1, cutoff=0.75))


def _key_text(key: Any) -> str:
    return repr(key) if _key_shown(key) else f"({NOT_SHOWN})"


def _text_shown(value: str, choices: list[str] | tuple[str, ...] = ()) -> bool:
    """Tell whether a string value from the file may be quoted in a message."""
    if len(value) > 48:
        return False
    if value.lower() in _YAML_WORDS or _ADDRESS_LIKE_RE.fullmatch(value):
        return True
    return bool(difflib.get_close_matches(value, choices, n=1, cutoff=0.75))


def _format_path(path: list[str | int]) -> str:
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif not _key_shown(segment):
            text += "[<a key not shown>]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{segment!r}]"
    return text


def _render(value: Any, choices: list[str] | tuple[str, ...] = ()) -> str:
    """Describe an input value for a message, quoting it only when its shape makes it harmless."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}" if value else "an empty list"
    if isinstance(value, str):
        if not value:
            return "an empty string"
        return repr(value) if _text_shown(value, choices) else f"a string ({NOT_SHOWN})"
    if isinstance(value, int | float):
        return repr(value)  # the loader bounds integers, so repr() stays short and cannot raise
    return f"a {type(value).__name__}"


def _harmless(value: Any) -> bool:
    """Tell whether every string and key inside ``value`` may be quoted in a message."""
    if isinstance(value, str):
        return _text_shown(value)
    if isinstance(value, dict):
        return all(_key_shown(key) and _harmless(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_harmless(item) for item in value)
    return value is None or isinstance(value, bool | int | float)


def _requote(message: str, value: Any) -> str:
    """Keep a message that quotes ``value`` only if the value is harmless; else describe the value."""
    if _harmless(value):
        return message
    head, got, _ = message.partition(", got ")
    return f"{head}, got {_render(value)}" if got else head


def _detector_problems(detectors: Any, root: yaml.Node | None) -> list[tuple[str, str]]:
    """Check the detectors section; its rules live beside the detectors, its quoting rules here."""
    # Detector parameters are declared beside the detectors themselves (bgpwatch.detect), whose
    # messages quote values with repr(): those are re-described here unless harmless.
    from bgpwatch.detect.base import detector_param_problems

    if not isinstance(detectors, Mapping):
        return [(path, _requote(message, detectors)) for path, message in detector_param_problems(detectors)]
    hidden: list[tuple[str, str]] = []
    kept: dict[Any, Any] = {}
    for name, params in detectors.items():
        if not _key_shown(name):
            hidden.append(("detectors", f"unknown detector{_where(root, ['detectors', name])} ({NOT_SHOWN})"))
            continue
        if isinstance(params, Mapping):
            for param in [param for param in params if not _key_shown(param)]:
                where = _where(root, ["detectors", name, param])
                hidden.append((f"detectors.{name}", f"unknown parameter{where} ({NOT_SHOWN})"))
            params = {param: value for param, value in params.items() if _key_shown(param)}
        kept[name] = params
    problems = []
    for path, message in detector_param_problems(kept):
        value: Any = kept
        for segment in path.split(".")[1:3]:
            value = value.get(segment) if isinstance(value, Mapping) else None
        problems.append((path, _requote(message, value)))
    return hidden + problems


def _node_at(root: yaml.Node | None, path: list[str | int]) -> yaml.Node | None:
    """Return the YAML node at a key path of the document (the key's node for the last segment)."""
    node = root
    for position, segment in enumerate(path):
        if isinstance(node, yaml.SequenceNode) and isinstance(segment, int) and segment < len(node.value):
            node = node.value[segment]
        elif isinstance(node, yaml.MappingNode):
            pairs = [
                (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(segment)
            ]
            if not pairs:
                return None
            key_node, node = pairs[-1]
            if position == len(path) - 1:
                return key_node
        else:
            return None
    return node


def _where(root: yaml.Node | None, path: list[str | int]) -> str:
    node = _node_at(root, path)
    if node is None:
        return ""
    return f" at line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


_GENERIC_EXPECTED = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "path_type": "expected a file system path",
}


def _describe(error: Mapping[str, Any], root: yaml.Node | None = None) -> tuple[str, str]:
    """Return (key path, message) for one pydantic error; ``root`` (the YAML document) gives lines."""
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        parent_path, parent = _walk(loc[:-1])
        key = str(loc[-1])
        known = (
            list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        )
        if not _key_shown(key, known):
            # Its line, not its text: the "key" may be a secret or a line of another file.
            message = f"unknown key{_where(root, [*parent_path, key])} ({NOT_SHOWN})"
            if known:
                message += f"; expected one of: {', '.join(known)}"
            return _format_path(parent_path), message
        message = f"unknown key {key!r}"
        if known:
            message += f" (expected one of: {', '.join(known)})"
            close = difflib.get_close_matches(key, known, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        return _format_path([*parent_path, key]), message
    if kind == "invalid_key" or (loc and loc[-1] == "[key]"):
        parent_path, _ = _walk(loc[:-1] if kind == "invalid_key" else loc[:-2])
        return _format_path(
            parent_path
        ), f"expected text keys, got the key {_render(loc[-2 if loc[-1] == '[key]' else -1])}"
    path, _ = _walk(loc)
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        _, union = _walk(loc)
        tags = ", ".join(repr(tag) for tag in _union_tags(union))
        if not isinstance(value, dict):
            return _format_path(path), f"expected a mapping with a 'type' key, got {_render(value)}"
        if kind == "union_tag_not_found":
            return _format_path([*path, "type"]), f"required key is missing (expected one of: {tags})"
        got = _render(value.get("type"), _union_tags(union))
        return _format_path([*path, "type"]), f"expected one of: {tags}, got {got}"
    if kind == "missing":
        return _format_path(path), "required key is missing"
    if kind == "bgpwatch_problem":
        return _format_path(path), ctx["problem"]
    if kind == "bgpwatch_expected":
        expected = ctx["expected"]
    elif kind == "literal_error":
        expected = f"expected {ctx['expected']}"
    elif kind == "too_short":
        expected = f"expected at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}"
    else:
        expected = _GENERIC_EXPECTED.get(kind, f"invalid value ({error['msg']})")
    if any(segment in _SECRET_KEYS for segment in path if isinstance(segment, str)):
        return _format_path(path), expected
    choices = re.findall(r"'([^']*)'", ctx["expected"]) if kind == "literal_error" else []
    return _format_path(path), f"{expected}, got {_render(value, choices)}"


# ---------------------------------------------------------------------------------------------
# YAML reading.


# Bounds of what a configuration file may cost to read: real configurations are a few KiB with a few
# thousand YAML nodes; these stop a file (or a symlink to /dev/zero, a FIFO, a "billion laughs") from
# costing the daemon seconds or gigabytes, at load or at a SIGHUP reload.
MAX_CONFIG_BYTES = 1 << 20
# YAML nodes after alias expansion (each use of an alias counts its whole subtree again).  Refusing a
# 1 MiB file at this bound took 2 s on the loaded 2-core VM (libyaml's parser; 6-7 s with PyYAML's
# pure-Python one): that bounds a reload's pause.  50 sites of 1,000 prefixes each are ~51k nodes.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
# Any integer bgpwatch takes fits in 64 bits; a longer one is refused before Python converts it.
MAX_YAML_INT = 1 << 64


class _YamlLimit(Exception):
    """A YAML document over one of the loader's bounds."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml
    _CParser = None

if _CParser is not None:

    class _SafeBase(
        yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver
    ):
        """libyaml's scanner and parser (iterative, ~6x faster) under PyYAML's Python composer.

        The composer stays Python so that _Loader can count and bound nodes as they are composed;
        PyYAML's own CSafeLoader composes in C, where no bound can be put.
        """

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

else:
    _SafeBase = yaml.SafeLoader  # type: ignore[assignment,misc]


class _Loader(_SafeBase):
    """SafeLoader with bounds (nodes after alias expansion, depth, integers) that records duplicate keys.

    PyYAML lets a duplicate mapping key silently override the first, expands aliases without limit
    when the result is walked, and recurses once per nesting level.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[yaml.Mark, str, yaml.Mark]] = []
        self._expanded = 0  # nodes composed so far, each alias counting the nodes it stands for
        self._depth = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, height)
        self._height = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                size = self._sizes.get(id(anchored))
                if size is None:
                    raise _YamlLimit(
                        "an alias refers to a node that contains it (a recursive alias)", event.start_mark
                    )
                self._count(size[0], event.start_mark)
                self._check_depth(self._depth + size[1], event.start_mark)
                self._height = max(self._height, size[1])
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        self._check_depth(self._depth, mark)
        before, outer_height = self._expanded, self._height
        self._height = 0
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._count(1, mark)
        self._height += 1
        self._sizes[id(node)] = (self._expanded - before, self._height)
        self._height = max(outer_height, self._height)
        return node

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._expanded += nodes
        if self._expanded > MAX_YAML_NODES:
            raise _YamlLimit(
                f"too many YAML nodes (over {MAX_YAML_NODES} once aliases are expanded); "
                "a configuration needs far fewer",
                mark,
            )

    def _check_depth(self, depth: int, mark: yaml.Mark) -> None:
        if depth > MAX_YAML_DEPTH:
            raise _YamlLimit(f"nested too deep (over {MAX_YAML_DEPTH} levels)", mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError, ArithmeticError):
            # e.g. the date 2026-13-45 (month 13): PyYAML lets datetime's ValueError escape.
            kind = node.tag.rpartition(":")[2] or "scalar"
            raise _YamlLimit(f"cannot read this value as a YAML {kind}", node.start_mark) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        # Python refuses to convert more than 4300 digits (ValueError); refuse far earlier, with a mark.
        if len(node.value) > 40:
            raise _YamlLimit(
                "integer too long (over 40 characters; bgpwatch takes integers below 2^64)", node.start_mark
            )
        value = super().construct_yaml_int(node)
        if abs(value) >= MAX_YAML_INT:
            raise _YamlLimit("integer too large (bgpwatch takes integers below 2^64)", node.start_mark)
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                self.duplicates.append((key_node.start_mark, key_node.value, seen[ident]))
            else:
                seen[ident] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


_YAML_HINTS = {
    # PyYAML's messages, then libyaml's (the parser used when PyYAML has it).
    "'\\t'": "indent with spaces, not tabs",
    "tab character": "indent with spaces, not tabs",
    "<block end>": "check the indentation",
    "did not find expected key": "check the indentation",
    "found ':'": "quote values that contain ': ' or start with '[' or '{'",
    "did not find expected node content": "quote values that contain ': ' or start with '[' or '{'",
    "mapping values are not allowed": "check the indentation, or quote a value that contains ': '",
}


def _yaml_hint(problem: str) -> str:
    hints = [hint for marker, hint in _YAML_HINTS.items() if marker in problem]
    return f"; {hints[0]}" if hints else ""


_QUOTED_RE = re.compile(r"'[^']{4,}'|\"[^\"]{4,}\"")


def _scrub(text: str) -> str:
    """Hide what PyYAML quotes from the file (a tag, an alias or anchor name); a lone character stays."""
    return _QUOTED_RE.sub("(not shown)", text)


def _tab_hint(text: str, mark: yaml.Mark | None) -> str:
    """Hint at tabs when the error is on one (libyaml's message does not name the character)."""
    if mark is None:
        return ""
    lines = text.split("\n")
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        return f"; {_YAML_HINTS['tab character']}"
    return ""


def _yaml_problem(name: str, text: str, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = _scrub(exc.problem or exc.context or "invalid YAML")
        if exc.context and exc.problem and exc.context_mark is not None:
            problem += f" ({_scrub(exc.context)} started at line {exc.context_mark.line + 1})"
        problem += _yaml_hint(exc.problem or "") or _tab_hint(text, mark)
        if mark is not None:
            return f"{name}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {problem}"
        return f"{name}: YAML syntax error: {problem}"
    if isinstance(exc, yaml.reader.ReaderError):
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return f"{name}:{line}:{column}: YAML syntax error: unacceptable character {character}"
    return f"{name}: YAML syntax error: {exc}"


def _parse(text: str, name: str, base_dir: Path | None) -> Config:
    try:
        loader = _Loader(text)  # the reader rejects control characters here already
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(name, text, exc)]) from None
    except _YamlLimit as exc:
        where = f"{name}:{exc.mark.line + 1}:{exc.mark.column + 1}" if exc.mark is not None else name
        raise ConfigError([f"{where}: {exc.message}"]) from None
    problems = [
        f"{name}:{mark.line + 1}:{mark.column + 1}: duplicate key {_key_text(key)} (first at line {first.line + 1}); "
        "the second one would silently replace the first"
        for mark, key, first in loader.duplicates
    ]
    if data is None:
        raise ConfigError(
            [f"{name}: no settings: the file is empty or holds only comments (expected collector and sites)"]
        )
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{name}: expected a mapping of top-level keys (collector, sites, ...), got {_render(data)}"]
        )
    # `x-...` top-level keys hold YAML anchors for use elsewhere (as in Compose files): never settings.
    data = {key: value for key, value in data.items() if not (isinstance(key, str) and key.startswith("x-"))}
    cross = _cross_problems(data)
    cross += _detector_problems(data.get("detectors"), root)
    try:
        config = Config.model_validate(data, context={"cross_checked": True, "base_dir": base_dir})
    except ValidationError as exc:
        # Not chained: pydantic's text could quote a secret if someone logged the traceback.
        field_problems = _once_per_anchor([_describe(error, root) for error in exc.errors()], root)
    else:
        field_problems = []
    # A value that is itself invalid is reported once, not again as a duplicate.
    bad_paths = {path for path, _ in field_problems}
    cross = [(path, message) for path, message in cross if not any(_within(path, bad) for bad in bad_paths)]
    problems += [
        f"{name}: {path}: {message}" if path else f"{name}: {message}"
        for path, message in sorted(field_problems + cross, key=lambda item: _document_order(item[0]))
    ]
    if problems:
        raise ConfigError(problems)
    config._warnings = tuple(f"{name}: {warning}" for warning in config.warnings)
    for warning in config.warnings:
        log.warning("configuration warning: %s", warning)
    return config


_SEGMENT_RE = re.compile(r"\[(\d+)\]|\[('[^']*'|\"[^\"]*\")\]|\.?([^.\[]+)")


def _document_order(path: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting key paths in the order the file declares them (fields in model order)."""
    key: list[tuple[int, int | str]] = []
    tp: Any = Config
    for index, quoted, name in _SEGMENT_RE.findall(path):
        tp = _unwrap(tp)
        if index:
            key.append((0, int(index)))
            tp = get_args(tp)[0] if get_origin(tp) is list else None
            continue
        name = name or quoted
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = list(tp.model_fields)
            key.append((0, fields.index(name)) if name in fields else (1, name))
            tp = tp.model_fields[name].annotation if name in fields else None
        else:
            key.append((1, name))
            tp = get_args(tp)[1] if get_origin(tp) is dict else None
    return tuple(key)


def _path_segments(path: str) -> list[str | int]:
    """Split a key path (`sites[0].peers[1].name`) into its segments."""
    return [
        int(index) if index else (name or quoted[1:-1]) for index, quoted, name in _SEGMENT_RE.findall(path)
    ]


def _once_per_anchor(problems: list[tuple[str, str]], root: yaml.Node | None) -> list[tuple[str, str]]:
    """Report a bad value reached through several YAML aliases once: at its first use, naming the others."""
    if root is None:
        return problems
    first: dict[tuple[int, str], int] = {}
    kept: list[tuple[str, str, list[str]]] = []
    for path, message in problems:
        node = _node_at(root, _path_segments(path))
        # An alias (or a `<<:` merge) is the anchored node itself: the same node under several paths.
        key = (id(node), message) if node is not None else None
        if key is not None and key in first:
            kept[first[key]][2].append(path)
            continue
        if key is not None:
            first[key] = len(kept)
        kept.append((path, message, []))
    return [
        (
            path,
            message
            if not also
            else f"{message} (an anchored value{_where(root, _path_segments(path))},"
            f" also used at {', '.join(also)})",
        )
        for path, message, also in kept
    ]


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith((f"{parent}.", f"{parent}["))


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(name: str, mode: int) -> ConfigError | None:
    if stat.S_ISREG(mode):
        return None
    kind = next((text for test, text in _FILE_KINDS if test(mode)), "not a regular file")
    return ConfigError([f"{name}: cannot read the file: it is {kind}; expected a regular YAML file"])


def _read_config_bytes(source: Path, name: str) -> bytes:
    """Read a configuration file: a regular file of at most MAX_CONFIG_BYTES, never blocking."""
    too_big = f"{name}: the file is over {MAX_CONFIG_BYTES} bytes (1 MiB), the most a configuration may be"
    try:
        # stat first: merely opening some devices has effects; O_NONBLOCK: a FIFO swapped in meanwhile
        # must not hang the open; fstat then says what was really opened.
        refused = _not_regular(name, os.stat(source).st_mode)
        if refused is not None:
            raise refused
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read the file: {exc.strerror or type(exc).__name__}"]) from None
    try:
        info = os.fstat(fd)
        refused = _not_regular(name, info.st_mode)
        if refused is not None:
            raise refused
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError([too_big])
        chunks = []
        total = 0
        while total <= MAX_CONFIG_BYTES:  # st_size can lie (files in /proc say 0) or grow meanwhile
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_CONFIG_BYTES:
            raise ConfigError([too_big])
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read the file: {exc.strerror or type(exc).__name__}"]) from None
    finally:
        os.close(fd)


def _parse_guarded(text: str, name: str, base_dir: Path | None) -> Config:
    """Run ``_parse``; any other exception becomes one ConfigError line, never a traceback."""
    try:
        return _parse(text, name, base_dir)
    except ConfigError:
        raise
    except Exception as exc:
        # A bug here, not a problem of the file: say so without the exception's text (it could
        # quote the file).  bench/fuzz_config.py counts these; the suite expects none.
        raise ConfigError(
            [f"{name}: {INTERNAL_ERROR} ({type(exc).__name__}) while validating; please report it"]
        ) from None


INTERNAL_ERROR = "internal error"


def load_config(path: str | Path) -> Config:
    """Load and validate the YAML file ``path``; raise ConfigError listing every problem."""
    source = Path(path)
    name = str(path)
    raw = _read_config_bytes(source, name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text (invalid byte at offset {exc.start})"]) from None
    config = _parse_guarded(text, name, source.absolute().parent)
    config._source = source
    return config


def load_config_text(text: str, name: str = "<config>") -> Config:
    """Validate configuration given as YAML text (tests, API); relative paths stay relative."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [f"{name}: over {MAX_CONFIG_BYTES} characters (1 MiB), the most a configuration may be"]
        )
    return _parse_guarded(text, name, None)


def check_config(path: str | Path) -> list[str]:
    """Return every problem of the file ``path``, one line each; an empty list means valid."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def sink_entry(entry: Any, index: int, where: str = "alerting.sinks") -> tuple[Any, list[str]]:
    """Validate one `alerting.sinks` entry with its sink's model: (model, []) or (None, problems as check-config says them)."""
    try:
        alerting = AlertingConfig.model_validate({"sinks": [entry]})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            if len(loc) >= 2 and loc[0] == "sinks":
                loc[1] = index
            path, message = _describe({**error, "loc": ("alerting", *loc)})
            path = where + path.removeprefix("alerting.sinks") if path.startswith("alerting.sinks") else path
            problems.append(f"{path}: {message}" if path else message)
        return None, problems
    return alerting.sinks[0], []
