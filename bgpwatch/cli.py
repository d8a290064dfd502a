"""The `bgpwatch` command line (click)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import click

from bgpwatch import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr (bgpwatch.logs: <N> priorities and no timestamps under systemd)."""
    from bgpwatch.logs import setup_logging as setup

    setup(level, fmt)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bgpwatch")
def main() -> None:
    """bgpwatch: BGP sessions, topology and incidents across your sites."""


def _load_or_exit(config_path: str):
    """Load a configuration, or print every problem and exit 2."""
    from bgpwatch.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_USAGE)


# -- daemon side -------------------------------------------------------------------------


@main.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML configuration."
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Overrides logging.level of the config [default: info].",
)
def run(config_path: str, log_level: str | None) -> None:
    """Run the daemon (systemd runs this)."""
    setup_logging(log_level or "info")  # until the config's logging section is read
    from bgpwatch.daemon import run as run_daemon

    sys.exit(run_daemon(config_path, log_level))


@main.command()
@click.option("--list", "as_list", is_flag=True, help="Print their paths, one per line (the default).")
@click.option(
    "--copy",
    "copy_to",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Copy them under DIR, keeping their layout (config/..., systemd/...).",
)
@click.option("--force", is_flag=True, help="With --copy: overwrite files that differ.")
def files(as_list: bool, copy_to: str | None, force: bool) -> None:
    """Print or copy the files shipped beside the code: example config, rules, dashboard, systemd unit."""
    from bgpwatch.shipped import copy_files, shipped_files

    found = shipped_files()
    if not found:
        click.echo("bgpwatch files: none found (this installation carries no data files)", err=True)
        sys.exit(EXIT_FAILURE)
    if as_list and copy_to:
        raise click.UsageError("--list and --copy exclude each other")
    if copy_to is None:
        for path in found.values():
            click.echo(str(path))
        return
    try:
        copied, kept = copy_files(found, Path(copy_to), force=force)
    except OSError as exc:
        click.echo(f"bgpwatch files: cannot copy to {copy_to}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_FAILURE)
    for path in copied:
        click.echo(f"copied {path}")
    for path in kept:
        click.echo(f"kept {path} (differs from the shipped file; --force overwrites it)", err=True)


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Exit 1 when the file is valid but has warnings.")
def check_config(path: str, strict: bool) -> None:
    """Validate a configuration file: exit 0 when valid, 2 with one line per problem.

    What is valid but probably a mistake (a passive peer with nothing listening, a local_address of the
    other family, a service prefix no site originates, a site without peers, a prefix in two sites not
    declared anycast) is printed as `warning: FILE: key.path: ...`; the exit stays 0, or 1 with --strict
    (2 stays "invalid").
    """
    import logging

    from bgpwatch.config import ConfigError, load_config

    # The loader also logs each warning (for the daemon's journal): printed once here, below.
    logging.getLogger("bgpwatch.config").addHandler(logging.NullHandler())
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_USAGE)
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    count = len(config.warnings)
    click.echo(f"{path}: OK" + (f" ({count} warning{'s' if count != 1 else ''})" if count else ""))
    if strict and count:
        sys.exit(EXIT_FAILURE)


@main.command()
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False))
@click.option("--worker", default=0, type=int, help="ExaBGP worker index (managed mode sets it).")
@click.option(
    "--socket", "socket_path", default=None, help="Daemon socket (default: <runtime_dir>/relay.sock)."
)
def relay(config_path: str, worker: int, socket_path: str | None) -> None:
    """ExaBGP's API process: forward ExaBGP's JSON lines on stdin to the daemon."""
    from bgpwatch.collector import relay as relay_module

    buffer_bytes, stall_seconds = 64 << 20, relay_module.STALL_SECONDS
    if socket_path is None and config_path is None:
        raise click.UsageError("give --config (or --socket)")
    if socket_path is None:
        from bgpwatch.daemon import relay_socket_path

        config = _load_or_exit(config_path)
        socket_path = str(relay_socket_path(config))
        buffer_bytes = config.collector.relay_buffer_bytes
        stall_seconds = config.collector.relay_stall_seconds
    sys.exit(relay_module.main(socket_path, worker, buffer_bytes, stall_seconds))


@main.command()
@click.option("--json", "as_json", is_flag=True)
def detectors(as_json: bool) -> None:
    """List the detectors and their parameters (the `detectors:` configuration section)."""
    from bgpwatch.detect.base import describe_detectors

    data = describe_detectors()
    if as_json:
        emit_json(data)
        return
    import textwrap

    from bgpwatch.tables import terminal_width

    width = terminal_width()  # COLUMNS or the terminal; a pipe gets whole lines
    for detector in data:
        click.echo(f"{detector['name']}  (alert kind: {detector['kind']})")
        for param, info in detector["params"].items():
            line = f"    {param} = {config_value(info['default'])}: {info['doc']}"
            if width is None or len(line) <= width:
                click.echo(line)
            else:  # wrapped, never cut: the doc is the point of this command
                click.echo(textwrap.fill(line, width, subsequent_indent=" " * 8, break_on_hyphens=False))


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./:-]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null"})  # quoted: YAML reads them


def config_value(value: Any) -> str:
    """Return a default as it is written in the YAML config (true, 0.5, warning, []), not a Python repr."""
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS
        return value if plain else json.dumps(value)
    return json.dumps(value)


# -- asking the running daemon -----------------------------------------------------------


_WIDE = "bgpwatch.wide"  # ctx.meta key: --wide was given (meta is shared by nested contexts)


def _set_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_WIDE] = True


def output_width() -> int | None:
    """Return the width tables must fit (COLUMNS, the terminal), or None with --wide or into a pipe."""
    from bgpwatch.tables import terminal_width

    ctx = click.get_current_context(silent=True)
    return terminal_width(bool(ctx is not None and ctx.meta.get(_WIDE)))


def client_options(func):
    func = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Machine-readable JSON; each epoch time (since, *_at) also as `<key>_iso`, ISO 8601 UTC.",
    )(func)
    func = click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=_set_wide,
        help="Every column at full width (default: fit the terminal, cutting cells with an ellipsis).",
    )(func)
    func = click.option(
        "--api",
        "api_url",
        default=None,
        help="Daemon address: HOST:PORT like api.listen (127.0.0.1:9179, '[::1]:9179') or a URL.",
    )(func)
    func = click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False))(func)
    return func


def make_client(config_path: str | None, api_url: str | None):
    from bgpwatch.api.client import Client

    token = None
    if api_url is not None:
        api_url = api_base_url(api_url)
    if api_url is None:
        config = _load_or_exit(
            config_path or os.environ.get("BGPWATCH_CONFIG") or "/etc/bgpwatch/bgpwatch.yaml"
        )
        host = config.api.host
        host = f"[{host}]" if ":" in host else host
        api_url = f"http://{host}:{config.api.port}"
        token = config.api.token.get_secret_value() if config.api.token is not None else None
    return Client(api_url, token=token)


def api_base_url(value: str) -> str:
    """Return the daemon's URL from --api: HOST:PORT (as api.listen takes it) or a URL; exit 2 otherwise."""
    if "://" in value:
        return value
    from pydantic import ValidationError

    from bgpwatch.config import ApiConfig

    try:
        api = ApiConfig(listen=value)
    except ValidationError as exc:
        message = exc.errors()[0].get("msg", "invalid").removeprefix("Value error, ")
        click.echo(f"error: --api: {value!r}: {message} (or a URL such as http://127.0.0.1:9179)", err=True)
        sys.exit(EXIT_USAGE)
    host = f"[{api.host}]" if ":" in api.host else api.host
    return f"http://{host}:{api.port}"


def fetch(
    config_path: str | None, api_url: str | None, path: str, params: dict | None = None, raw: bool = False
):
    return api_call(config_path, api_url, lambda client: client.get(path, params, raw=raw))


def api_call(config_path: str | None, api_url: str | None, action):
    """Run `action(client)` against the daemon; one line and exit 1 (unreachable) or 2 (refused)."""
    from bgpwatch.api.client import ApiError, DaemonUnreachable

    try:
        return action(make_client(config_path, api_url))
    except DaemonUnreachable as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_FAILURE)
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def table(
    rows: list[list[Any]], headers: list[str], flexible: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> str:
    """Return rows as a table fitting the output width: `flexible` columns cut first, `optional` left out."""
    from bgpwatch.tables import render_table

    return render_table(rows, headers, output_width(), flexible=flexible, optional=optional)


def echo_fit(line: str = "") -> None:
    """Print one line cut to the output width."""
    from bgpwatch.tables import fit

    click.echo(fit(line, output_width()))


def when(value: Any) -> str:
    """Return a time (epoch or ISO-8601) for a table: `2025-03-03 14:11:03`, UTC."""
    from bgpwatch.tables import human_time

    return human_time(value)


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def emit_json(data: Any) -> None:
    """Print JSON; every numeric epoch time (`since`, `*_at`...) gets an ISO 8601 UTC `<key>_iso` twin."""
    from bgpwatch.tables import with_iso_times

    # The epoch values stay: `peers --json` and others are contracts that scripts read as numbers.
    data = with_iso_times(data)
    click.echo(json.dumps(data, indent=None if isinstance(data, list) else 2))


@main.command()
@client_options
def status(config_path, api_url, as_json) -> None:
    """Show the daemon's state: sessions, routes, ExaBGP workers, alerts."""
    data = fetch(config_path, api_url, "/api/v1/status")
    if as_json:
        emit_json(data)
        return
    pipe = data["pipeline"]
    echo_fit(f"bgpwatch {data['version']}  up {ago(data['uptime_seconds'])}  config {data['config']}")
    echo_fit(
        f"sessions {data['peers_up']}/{data['peers']} up  routes {pipe['routes']}  "
        f"attribute sets {pipe['attribute_sets']}  alerts firing {data['alerts_firing']}"
    )
    rejected = ", ".join(f"{reason} {count}" for reason, count in sorted(pipe["rejected"].items()))
    echo_fit(
        f"input: {pipe['lines']} lines, {pipe['events']} events, rejected {sum(pipe['rejected'].values())}"
        f"{f' ({rejected})' if rejected else ''}, lost in relay {pipe['lost_lines']}"
        + (f", last event {when(pipe['last_event_at'])}" if pipe.get("last_event_at") else "")
    )
    for w in data["workers"]:
        state = f"pid {w['pid']}" if w["up"] else f"DOWN ({w['last_exit']})"
        echo_fit(
            f"ExaBGP worker {w['worker']}: {state}, restarts {w['restarts']}, peers {', '.join(w['peers'])}"
        )
    for w in data.get("maintenance", []):
        echo_fit(f"maintenance: {_window_line(w)}")
    for d in data.get("draining", []):
        echo_fit(f"planned: {d['peer']} ({d['site']}) {d['state']} since {d['since']} (GRACEFUL_SHUTDOWN)")
    if not data["config_reload_ok"]:
        echo_fit("WARNING: the last configuration reload was refused; the previous one is running")


def _window_line(w: dict) -> str:
    until = f"until {w['until']}" if w.get("until") else "until ended"
    return f"{w['target']} ({w['scope']}) since {w['since']} {until}: {w['reason']} [by {w['by']}]"


@main.group()
def maintenance() -> None:
    """Maintenance windows on a site or session: their alerts are planned work, kept, not paged."""


@maintenance.command("start")
@click.argument("target")
@click.option(
    "--for", "duration", default=None, metavar="DURATION", help="30m, 2h, 90s (default: until ended)."
)
@click.option("--reason", default="", help="Why (shown with the alerts it covers).")
@client_options
def maintenance_start(target, duration, reason, config_path, api_url, as_json) -> None:
    """Open a maintenance window on TARGET (a site or a peer name)."""
    from bgpwatch.planned import parse_duration

    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            click.echo(f"error: --for: {exc}", err=True)
            sys.exit(EXIT_USAGE)
    body: dict[str, Any] = {"target": target, "reason": reason}
    if seconds is not None:
        body["duration_seconds"] = seconds
    window = api_call(config_path, api_url, lambda client: client.post("/api/v1/maintenance", body))
    if as_json:
        emit_json(window)
        return
    click.echo(f"maintenance window opened: {_window_line(window)}")


@maintenance.command("end")
@click.argument("target")
@client_options
def maintenance_end(target, config_path, api_url, as_json) -> None:
    """End the maintenance window on TARGET."""
    from urllib.parse import quote

    path = f"/api/v1/maintenance/{quote(target, safe='')}"
    window = api_call(config_path, api_url, lambda client: client.delete(path))
    if as_json:
        emit_json(window)
        return
    click.echo(f"maintenance window on {window['target']} ended at {window['until']}")


@maintenance.command("list")
@client_options
def maintenance_list(config_path, api_url, as_json) -> None:
    """List the open maintenance windows."""
    data = fetch(config_path, api_url, "/api/v1/maintenance")
    if as_json:
        emit_json(data)
        return
    if not data:
        click.echo("no maintenance window open")
        return
    rows = [
        [
            w["target"],
            w["scope"],
            w["site"],
            when(w["since"]),
            when(w["until"]) if w["until"] else "(until ended)",
            w["by"],
            w["reason"],
        ]
        for w in data
    ]
    headers = ["target", "scope", "site", "since", "until", "by", "reason"]
    click.echo(table(rows, headers, ("reason", "by"), optional=("by", "scope")))


@main.command()
@client_options
@click.option("--bmp", "bmp_only", is_flag=True, help="Only the BMP routers and the sessions they report.")
def peers(config_path, api_url, as_json, bmp_only) -> None:
    """List the BGP sessions (vantage points) and the BMP routers' own sessions."""
    if bmp_only:
        routers = fetch(config_path, api_url, "/api/v1/routers")
        if as_json:
            emit_json(routers)
        else:
            click.echo(bmp_table(routers) if routers else "no BMP router known")
        return
    data = fetch(config_path, api_url, "/api/v1/peers")
    if as_json:
        emit_json(data)
        return
    routers = fetch(config_path, api_url, "/api/v1/routers")
    now = _stream_now(data)
    rows = [
        [
            p["site"],
            p["name"],
            p["address"],
            p["peer_as"],
            p["state"],
            when(p.get("since")),
            ago(None if p.get("since") is None else max(0.0, now - p["since"])),
            ago(p["seconds_since_last_message"]),
            f"{p['routes_ipv4']}/{p['routes_ipv6']}",
            ",".join(p["end_of_rib"]) or (p.get("converged_by") or "-"),
            p["flaps"],
            _last_down(p),
        ]
        for p in data
    ]
    headers = ["site", "peer", "address", "as", "state", "since", "for", "last msg", "v4/v6", "eor"]
    headers += ["flaps", "last down"]
    dropped = ("address", "last msg", "eor", "flaps", "as", "since")  # at 80 columns: who, state, how long
    click.echo(table(rows, headers, ("last down",), optional=dropped))
    if routers:
        click.echo("")
        click.echo(bmp_table(routers))


def _stream_now(peers: list[dict]) -> float:
    """Return the daemon's clock (a served replay's is the recording's) from its peers' message ages."""
    for p in peers:
        if p.get("last_message") is not None and p.get("seconds_since_last_message") is not None:
            return p["last_message"] + p["seconds_since_last_message"]
    return time.time()


def _last_down(peer: dict) -> str:
    """Return why a session is down, or why it last went down while it is up again."""
    if peer["state"] != "up" and peer.get("reason"):
        return peer["reason"]
    reason = peer.get("last_down_reason") or ""
    if reason and peer.get("last_down_at") is not None:
        return f"{reason} ({when(peer['last_down_at'])})"
    return reason


def bmp_table(routers: list[dict]) -> str:
    """Return the BMP routers and their monitored sessions (like birdc show protocols, per router)."""
    blocks = []
    for router in routers:
        head = (
            f"BMP router {router['name']} (site {router['site'] or '?'}, {router['address'] or '?'}"
            f"{', ' + router['sys_name'] if router['sys_name'] else ''}): {router['state']}"
            f" since {when(router['since'])}"
            + (f", {router['reason']}" if router["state"] != "up" and router.get("reason") else "")
        )
        rows = [
            [
                s["address"],
                s["peer_as"],
                s["kind"] + (f" ({s['site']})" if s["site"] else ""),
                s["state"],
                when(s["since"]),
                s.get("routes", {}).get("pre", 0),
                s.get("routes", {}).get("post", 0),
                (s["last_down_reason"] or "") if s["state"] != "up" else "",
            ]
            for s in router["sessions"]
        ]
        headers = ["peer", "as", "kind", "state", "since", "pre", "post", "last down"]
        from bgpwatch.tables import fit

        body = (
            table(rows, headers, ("last down", "kind"), ("as", "pre")) if rows else "  (no session reported)"
        )
        blocks.append(fit(head, output_width()) + "\n" + body)
    return "\n\n".join(blocks)


@main.command()
@client_options
@click.option("--peer", default=None, help="Peer name or address.")
@click.option("--site", default=None)
@click.option("--prefix", default=None, help="Exact prefix.")
@click.option("--lookup", default=None, metavar="ADDR", help="Longest-prefix match of an address.")
@click.option("--limit", default=1000, type=click.IntRange(1, 1_000_000), show_default=True)
@click.option(
    "--router", default=None, help="A BMP router: the routes it reported (with --peer: from that peer)."
)
@click.option(
    "--policy",
    default=None,
    type=click.Choice(["pre", "post", "loc"]),
    help="BMP view: pre-policy or post-policy Adj-RIB-In, or the router's Loc-RIB.",
)
def prefixes(config_path, api_url, as_json, peer, site, prefix, lookup, limit, router, policy) -> None:
    """List routes in the Adj-RIBs-In (bgpwatch's sessions, or with --router a BMP router's views)."""
    params = {"peer": peer, "site": site, "prefix": prefix, "lookup": lookup, "limit": limit}
    params.update({"router": router, "policy": policy})
    data = fetch(config_path, api_url, "/api/v1/prefixes", params)
    if as_json:
        emit_json(data)
        return
    rows = [
        [
            r["prefix"],
            r["site"],
            r["peer"] if "router" not in r else f"{r['router']}<-{r['peer']} {r['policy']}",
            r["next_hop"],
            " ".join(map(str, r["as_path"])) or "(local)",
            r.get("origin", ""),
            " ".join(r.get("communities", [])),
        ]
        for r in data
    ]
    headers = ["prefix", "site", "peer", "next hop", "as path", "origin", "communities"]
    if any("rpki" in r for r in data):  # RPKI configured: each route's validity (RFC 6811)
        for row, r in zip(rows, data, strict=True):
            row.insert(6, (r.get("rpki") or "-").replace("_", " "))
        headers.insert(6, "rpki")
    click.echo(
        table(rows, headers, ("communities", "as path", "next hop"), optional=("origin", "communities"))
    )
    if len(data) >= limit:
        click.echo(f"(first {limit}; use --limit)", err=True)


@main.command()
@client_options
@click.option("--all", "include_all", is_flag=True, help="Every transition, not only what is firing.")
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only alerts resolved at or after WHEN: a duration ago (10m, 2h, 1h30m), ISO-8601 or epoch seconds.",
)
@click.option("--transitions", is_flag=True, help="Every firing/resolved transition, in order.")
def alerts(config_path, api_url, as_json, include_all, since, transitions) -> None:
    """Show firing alerts (--all: also resolved ones; --transitions: every transition)."""
    since = _since_option(since)
    if transitions:
        data = fetch(config_path, api_url, "/api/v1/transitions", {"since": since})
    else:
        params = {"all": "true" if include_all else None, "since": since}
        data = fetch(config_path, api_url, "/api/v1/alerts", params)
    if as_json:
        emit_json(data)
        return
    if not data:
        click.echo("no alerts firing" if not include_all else "no alert transitions")
        return
    rows = [
        [
            # A firing alert's view has no transition time: it fired at fired_at (pending: started).
            when(a.get("at") or a.get("fired_at") or a.get("started_at")),
            a.get("state"),
            a.get("severity"),
            a.get("kind"),
            " ".join(f"{k}={v}" for k, v in sorted(a.get("labels", {}).items())),
            a.get("summary"),
        ]
        for a in data
    ]
    headers = ["at", "state", "severity", "kind", "labels", "summary"]
    click.echo(table(rows, headers, ("summary", "labels"), optional=("severity", "labels")))


def _since_option(text: str | None) -> str | None:
    """Return --since as epoch seconds (text): a duration ago, ISO-8601 or epoch; one line and exit 2 if not."""
    if text is None:
        return None
    from bgpwatch.planned import parse_duration

    value = text.strip()
    try:
        return f"{float(value):.3f}"
    except ValueError:
        pass
    if value[:1].isdigit() and value[-1:].isalpha() and "-" not in value:
        try:
            return f"{time.time() - parse_duration(value):.3f}"
        except ValueError:
            pass
    try:
        return f"{_epoch(value, '--since'):.3f}"
    except click.BadParameter:
        click.echo(
            f"error: --since: expected a duration (10m, 2h, 1h30m), an ISO-8601 time (2025-03-03T14:11:03Z)"
            f" or epoch seconds, got {text!r}",
            err=True,
        )
        sys.exit(EXIT_USAGE)


@main.command()
@client_options
@click.option("--dot", is_flag=True, help="Graphviz DOT of the site graph.")
def topology(config_path, api_url, as_json, dot) -> None:
    """Show the sites, who sees whom (visibility matrix), the islands, stale and unconverged peers."""
    if dot:
        click.echo(fetch(config_path, api_url, "/api/v1/topology.dot", raw=True).rstrip("\n"))
        return
    data = fetch(config_path, api_url, "/api/v1/topology")
    if as_json:
        emit_json(data)
        return
    from bgpwatch.topology.render import render_text

    click.echo(render_text(data, width=output_width()))


@main.command()
@client_options
@click.argument("prefix", required=False)
def outside(config_path, api_url, as_json, prefix) -> None:
    """Show what the internet sees of our prefixes (RIS Live): public peers, upstreams, origins, losses."""
    from urllib.parse import quote

    path = "/api/v1/outside" + (f"?prefix={quote(prefix, safe='')}" if prefix else "")
    data = fetch(config_path, api_url, path)
    if as_json:
        emit_json(data)
        return
    feed = data.get("feed") or {}
    if not feed.get("configured"):
        click.echo("no outside view: add an input of type rislive (see config/bgpwatch.example.yaml)")
    state = "up" if feed.get("up") else "down"
    click.echo(
        f"RIS Live feed {state} since {when(feed.get('since'))}: {feed.get('reason')}; "
        f"{feed.get('frames', 0)} frames, {feed.get('public_peers', 0)} public peers"
    )
    rows = []
    for item in data.get("prefixes") or []:
        upstreams = ", ".join(f"AS{a} ({n})" for a, n in list(item["upstreams"].items())[:4]) or "-"
        foreign = [o for o in item["origins"] if int(o) not in item["expected_origins"]]
        rows.append(
            [
                item["prefix"],
                ",".join(item["sites"]) or "watched",
                f"{item['public_peers']}/{item['public_peers_seen']}",
                item["lost"],
                upstreams,
                ", ".join(f"AS{o}" for o in foreign) or "-",
                len(item["more_specifics"]),
            ]
        )
    headers = ["prefix", "site", "peers now/seen", "lost", "upstreams", "foreign origins", "more-specifics"]
    click.echo(table(rows, headers, ("upstreams",), optional=("more-specifics",)))


@main.command()
@client_options
@click.argument("prefix", required=False)
def rpki(config_path, api_url, as_json, prefix) -> None:
    """Show RPKI origin validation: the RTR data in use, and per own prefix its VRPs and routes' validity."""
    from urllib.parse import quote

    path = "/api/v1/rpki" + (f"?prefix={quote(prefix, safe='')}" if prefix else "")
    data = fetch(config_path, api_url, path)
    if as_json:
        emit_json(data)
        return
    if not data.get("configured"):
        click.echo("no RPKI data: add rpki.rtr caches (see config/bgpwatch.example.yaml)")
    elif data.get("usable"):
        click.echo(
            f"RPKI usable since {when(data.get('since'))}: {data.get('vrps', 0)} VRPs from {data.get('origin')}, "
            f"last End of Data {when(data.get('updated_at'))}"
        )
    else:
        click.echo(f"RPKI not usable since {when(data.get('since'))}: {data.get('reason')}")
    rows = []
    for item in data.get("prefixes") or []:
        routes = item.get("routes") or {}
        invalid = item.get("origins", {}).get("invalid") or []
        rows.append(
            [
                item["prefix"],
                ", ".join(item["vrps"][:3]) + (" ..." if len(item["vrps"]) > 3 else "")
                or "(none: NOT FOUND)",
                routes.get("valid", 0),
                routes.get("invalid", 0),
                routes.get("not_found", 0),
                ", ".join(f"AS{a}" for a in invalid) or "-",
            ]
        )
    headers = ["prefix", "VRPs", "valid", "invalid", "not found", "invalid origins"]
    click.echo(table(rows, headers, ("VRPs",), optional=("invalid origins",)))


@main.group(invoke_without_command=True)
@client_options
@click.pass_context
def incidents(ctx, config_path, api_url, as_json) -> None:
    """List incidents (and `incidents show ID` for one timeline)."""
    ctx.obj = (config_path, api_url)
    if ctx.invoked_subcommand is not None:
        return
    data = fetch(config_path, api_url, "/api/v1/incidents")
    if as_json:
        emit_json(data)
        return
    if not data:
        click.echo("no incidents")
        return
    rows = [
        [i.get("id"), i.get("status"), when(i.get("opened_at")), when(i.get("closed_at")), i.get("summary")]
        for i in data
    ]
    headers = ["incident", "status", "opened", "closed", "summary"]
    click.echo(table(rows, headers, ("summary",), optional=("closed", "status")))


@incidents.command("show")
@click.argument("incident_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--markdown", is_flag=True, help="A timeline to paste into a post-mortem (never cut).")
@click.option(
    "--wide",
    is_flag=True,
    expose_value=False,
    callback=_set_wide,
    help="Whole lines (default: fit the terminal, cutting long lines with an ellipsis).",
)
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False))
@click.option("--api", "api_url", default=None)
@click.pass_context
def incidents_show(ctx, incident_id, as_json, markdown, config_path, api_url) -> None:
    """Show one incident's timeline."""
    parent_config, parent_api = ctx.obj or (None, None)
    from urllib.parse import quote

    # Quoted whole: an id of an older bgpwatch may hold "/" (a prefix) or ":" (its time); one path segment.
    path = "/api/v1/incidents/" + quote(incident_id, safe="")
    data = fetch(config_path or parent_config, api_url or parent_api, path)
    if as_json:
        emit_json(data)
        return
    from bgpwatch.alerts.timeline import render_markdown, render_text
    from bgpwatch.tables import fit_lines

    # The text fits the terminal like every table; Markdown is pasted elsewhere, whole.
    click.echo(render_markdown(data) if markdown else fit_lines(render_text(data), output_width()))


# -- recorded input ----------------------------------------------------------------------


def _epoch(text: str | None, name: str) -> float | None:
    """Return epoch seconds from ISO-8601 (naive = UTC) or epoch text; a usage error otherwise."""
    if text is None:
        return None
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: ISO-8601 (2024-10-01T00:55:00Z) or epoch seconds expected", param_hint=name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _check_replay_input(
    files, bgpstream, collectors, start, end, prefixes, record_type, broker=None, stream_file=None
) -> None:
    """Refuse contradictory or incomplete input options with a usage error (exit 2)."""
    if stream_file:
        bgpstream = True  # --bgpstream-file is BGPStream input; --bgpstream may be given or not
    if bgpstream and files:
        raise click.UsageError("FILE arguments and --bgpstream are mutually exclusive")
    if not bgpstream and broker:
        raise click.UsageError("--bgpstream-broker only goes with --bgpstream")
    if stream_file:
        # One local file: no collector to ask, no broker; the window is optional but whole.
        if collectors or broker:
            used = ", ".join(n for n, v in (("--collector", collectors), ("--bgpstream-broker", broker)) if v)
            raise click.UsageError(f"{used} and --bgpstream-file are mutually exclusive")
        if bool(start) != bool(end):
            raise click.UsageError("--bgpstream-file takes both --start and --end, or neither")
    if not bgpstream:
        if not files:
            raise click.UsageError(
                "give FILE... to replay, or --bgpstream with --collector, --start and --end"
            )
        used = [
            name
            for name, value in (
                ("--collector", collectors),
                ("--start", start),
                ("--end", end),
                ("--prefix", prefixes),
                ("--type", record_type),
            )
            if value
        ]
        if used:
            raise click.UsageError(f"{', '.join(used)} only go with --bgpstream")
        return
    missing = [
        name
        for name, value in (("--collector", collectors), ("--start", start), ("--end", end))
        if not value and not stream_file
    ]
    if missing:
        raise click.UsageError(f"--bgpstream needs {', '.join(missing)}")
    from bgpwatch.rib.prefix import parse_prefix

    for prefix in prefixes:
        try:
            parse_prefix(prefix)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--prefix") from None


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.argument("files", nargs=-1, required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--json", "as_json", is_flag=True, help="Print every alert transition as one JSON line on stdout."
)
@click.option(
    "--stats", "with_stats", is_flag=True, help="Print counts as one JSON object on stderr at the end."
)
@click.option(
    "--pace", type=float, default=None, help="Play N seconds of recording per second (default: flat out)."
)
@click.option("--serve", is_flag=True, help="Serve the HTTP API (api.listen) while replaying.")
@click.option(
    "--settle", type=float, default=10.0, show_default=True, help="Stream seconds run after the last event."
)
@click.option("--log-level", default="warning", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--bgpstream",
    is_flag=True,
    help="Read public collectors through CAIDA BGPStream (needs pybgpstream) instead of FILEs.",
)
@click.option(
    "--collector", "collectors", multiple=True, help="BGPStream collector, e.g. rrc00 (repeatable)."
)
@click.option("--start", help="BGPStream window start: ISO-8601 (UTC if no offset) or epoch seconds.")
@click.option("--end", help="BGPStream window end: ISO-8601 (UTC if no offset) or epoch seconds.")
@click.option(
    "--prefix", "prefixes", multiple=True, help="Only this prefix and its more-specifics (repeatable)."
)
@click.option(
    "--type", "record_type", type=click.Choice(["updates", "ribs"]), help="BGPStream data [default: updates]."
)
@click.option(
    "--bgpstream-broker", "broker", metavar="URL", help="BGPStream broker URL (libbgpstream's default)."
)
@click.option(
    "--bgpstream-file",
    "stream_file",
    metavar="PATH",
    type=click.Path(exists=True, dir_okay=False),
    help="Read one local MRT file through pybgpstream's singlefile interface (--type ribs for a RIB).",
)
@click.option("--no-progress", is_flag=True, help="No progress line on the terminal (stderr).")
def replay(
    config_path,
    files,
    as_json,
    with_stats,
    pace,
    serve,
    settle,
    log_level,
    bgpstream,
    collectors,
    start,
    end,
    prefixes,
    record_type,
    broker,
    stream_file,
    no_progress,
) -> None:
    """Feed recorded input (ExaBGP JSON lines, bgpwatch recordings, RIS Live, MRT) through the pipeline.

    With --bgpstream, the input is public collectors' data (RIPE RIS, RouteViews) read through CAIDA
    BGPStream for --collector(s) between --start and --end, optionally only about --prefix(es);
    --bgpstream-file reads one local MRT file through pybgpstream instead of a broker.
    A progress line is drawn on stderr while FILEs are read, only when stderr is a terminal.
    """
    import tempfile

    from bgpwatch import playback

    _check_replay_input(files, bgpstream, collectors, start, end, prefixes, record_type, broker, stream_file)
    bgpstream = bgpstream or bool(stream_file)
    start_at, end_at = _epoch(start, "--start"), _epoch(end, "--end")
    if start_at is not None and end_at is not None and end_at < start_at:
        raise click.BadParameter("the window ends before it starts", param_hint="--end")
    setup_logging(log_level)
    if pace is not None and pace <= 0:
        raise click.BadParameter("expected a positive number", param_hint="--pace")
    progress = None
    problems: list[tuple[int, str]] = []  # (exit code, reason) per file not replayed whole
    if bgpstream:
        from bgpwatch.ingest import bgpstream as bs

        try:
            bs.require_pybgpstream()
        except bs.BGPStreamUnavailable as exc:
            hint = bs.FILE_HINT.format(path=stream_file) if stream_file else str(exc)
            click.echo(f"bgpwatch replay: {hint}", err=True)
            sys.exit(EXIT_USAGE)
        try:  # started now: a broker that cannot be reached is one line, before any replay
            elements = bs.open_bgpstream(
                collectors, start_at, end_at, prefixes, record_type or "updates", broker, stream_file
            )
        except bs.BGPStreamError as exc:
            click.echo(f"bgpwatch replay: {exc}", err=True)
            sys.exit(EXIT_FAILURE)

        def source(pool, stats):
            yield from bs.stream_events(elements, pool=pool, stats=stats)
            if stats.errors.get("bgpstream_read"):
                problems.append(
                    (EXIT_FAILURE, "bgpstream: the stream broke off; the events before it replayed")
                )

    elif not no_progress and sys.stderr.isatty():
        # Only on a terminal: pipes, files and tests get nothing.  The line is erased before each
        # transition is printed (stdout is often the same terminal) and at the end.
        progress = playback.ReplayProgress(sys.stderr)
        source = _checked_files(files, problems, progress)
    else:
        source = _checked_files(files, problems)
    config = _load_or_exit(config_path)
    setup_logging(log_level, config.logging.format)  # the config's format; the level is the command line's

    clear_first = progress is not None and sys.stdout.isatty()

    def on_transition(transition: dict) -> None:
        if clear_first:
            progress.clear()  # stdout is a terminal too: never print over the progress line
        if as_json:
            click.echo(json.dumps(transition, separators=(",", ":")))
        else:
            labels = " ".join(f"{k}={v}" for k, v in sorted(transition.get("labels", {}).items()))
            click.echo(
                f"{transition['at']}  {transition['state']:8}  {transition['kind']:20} {labels}  {transition['summary']}"
            )

    if serve or pace:
        with tempfile.TemporaryDirectory(prefix="bgpwatch-replay-") as tmp:
            served = playback.replay_config(config, Path(tmp))
            stats = _replay_served(served, files, pace, settle, on_transition, source=source)
    else:
        stats, _engine = playback.replay(
            playback.replay_config(config, None), files, on_transition, settle=settle, source=source
        )
    for _code, reason in problems:
        click.echo(f"bgpwatch replay: {reason}", err=True)
    if with_stats:  # the last line on stderr (DESIGN.md)
        click.echo(json.dumps(stats.to_dict()), err=True)
    code = max([code for code, _ in problems] + [EXIT_FAILURE if stats.errors.get("io") else EXIT_OK])
    sys.exit(code)


# Errors after which the rest of a file cannot be read: the file is damaged (truncated, corrupt).
_FILE_BROKEN = ("io", "decompression", "truncated", "bad_record_length")


def _checked_files(files, problems: list[tuple[int, str]], progress=None):
    """Return an event source reading `files` in turn that says which were no recording, or damaged.

    A file that yields no event and has errors is not a recording (exit 2); one that breaks off is
    damaged (exit 1, the events before the damage replayed); bad lines among good ones are counted only.
    """
    from bgpwatch.ingest.replay import replay_files

    paths = list(files)

    def source(pool, stats):
        try:
            for index, path in enumerate(paths, 1):
                if progress is not None:
                    progress.start_file(path, index, len(paths), stats)
                events, errors, samples = stats.events, dict(stats.errors), len(stats.error_samples)
                for count, event in enumerate(replay_files([path], pool, stats), 1):
                    yield event
                    if progress is not None and count % 256 == 0:
                        progress.update(stats)
                if progress is not None:
                    progress.update(stats, force=True)
                new = {k: n - errors.get(k, 0) for k, n in stats.errors.items() if n > errors.get(k, 0)}
                if not new:
                    continue
                sample = stats.error_samples[samples : samples + 1]
                detail = sample[0].removeprefix(f"{path}: ") if sample else ", ".join(sorted(new))
                if stats.events == events:
                    what = "not a recording (ExaBGP JSON lines, bgpwatch recording, RIS Live or MRT)"
                    problems.append((EXIT_USAGE, f"{path}: {what}: {detail}"))
                elif broken := sorted(k for k in new if k in _FILE_BROKEN):
                    what = f"damaged ({', '.join(broken)}), replayed up to the damage"
                    problems.append((EXIT_FAILURE, f"{path}: {what}: {detail}"))
        finally:
            if progress is not None:
                progress.clear()

    return source


def _replay_served(config, files, pace, settle, on_transition, linger: float = 0.0, after=None, source=None):
    """Replay through a whole daemon (API, store, sinks) and return the stats."""
    import asyncio

    from bgpwatch import playback
    from bgpwatch.daemon import Daemon

    daemon = Daemon(config)
    daemon.listeners.append(on_transition)

    return asyncio.run(
        playback.replay_serving(
            daemon, files, pace, settle=settle, linger=linger, before_stop=after, source=source
        )
    )


@main.command()
@click.option(
    "--pace", type=float, default=2.0, show_default=True, help="Seconds of recording played per second."
)
@click.option(
    "--api", "api_listen", default="127.0.0.1:9179", show_default=True, help="Where the API listens."
)
@click.option("--linger", type=float, default=0.0, help="Keep the API up this many seconds after the replay.")
def demo(pace: float, api_listen: str, linger: float) -> None:
    """Replay the bundled Paris-like incident (a site's power cut, a split, recovery) through bgpwatch."""
    import tempfile
    from importlib import resources

    from bgpwatch import playback
    from bgpwatch.alerts.timeline import render_text
    from bgpwatch.config import load_config

    setup_logging("warning")
    data = resources.files("bgpwatch") / "data"
    with (
        resources.as_file(data / "paris.yaml") as config_file,
        resources.as_file(data / "paris.jsonl.gz") as rec,
    ):
        config = load_config(config_file)
        config = config.model_copy(
            update={
                "api": config.api.model_copy(update={"listen": api_listen}),
                "alerting": config.alerting.model_copy(update={"sinks": []}),  # printed here instead
            }
        )
        host, port = config.api.host, config.api.port
        click.echo(
            "bgpwatch demo: 3 sites (par1, par2, par3) and their BIRD routers, recorded in bgpwatch's lab."
        )
        click.echo(
            "par2 loses power (silently: its routes linger until hold timers expire), then the par1-par3"
        )
        click.echo("link is cut while par2 is dark, so the survivors split; then everything recovers.")
        click.echo(f"Meanwhile, in another terminal:  bgpwatch topology --api http://{host}:{port}")
        click.echo(f"                                 bgpwatch peers --api http://{host}:{port}\n")

        def show(t: dict) -> None:
            mark = "FIRING  " if t["state"] == "firing" else "resolved"
            click.echo(f"{t['at'][11:23]}  {mark}  {t['severity']:8}  {t['kind']:19}  {t['summary']}")

        def timeline(daemon) -> None:
            for incident in daemon.store.incidents(limit=10):
                found = daemon.store.incident(incident["id"])
                if found:
                    click.echo("\n" + render_text(found))

        with tempfile.TemporaryDirectory(prefix="bgpwatch-demo-") as tmp:
            served = playback.replay_config(config, Path(tmp))
            try:
                _replay_served(served, [str(rec)], pace, 10.0, show, linger=linger, after=timeline)
            except OSError as exc:
                click.echo(f"cannot serve the API on {api_listen}: {exc} (use --api HOST:PORT)", err=True)
                sys.exit(EXIT_FAILURE)
