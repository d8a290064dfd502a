"""Terminal output that fits: tables drawn with rich (cells cut with an ellipsis), times for people and scripts."""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Wide enough for any row: `--wide` and pipes draw every column at full width.
UNLIMITED = 1_000_000


def terminal_width(wide: bool = False) -> int | None:
    """Return the width output must fit: COLUMNS, else the terminal's; None (no limit) for --wide or a pipe."""
    if wide:
        return None
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    # Like ps(1): a pipe or a file gets whole lines, so grep and awk see every character.
    return None


GAP = 2  # spaces between two columns
FLEX_MIN = 12  # a free-text column keeps at least this much before a column is dropped


def render_table(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[str],
    width: int | None = None,
    flexible: Iterable[str] = (),
    optional: Iterable[str] = (),
    indent: int = 0,
) -> str:
    """Return rows as an aligned table within `width` columns.

    `flexible` (free-text) columns give up room first, the last named first (each down to FLEX_MIN);
    `optional` columns, in that order, are left out
    while the rest cannot fit (`--wide` shows them all); what still does not fit is cut with an ellipsis.
    """
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    flexible = [name.lower() for name in flexible]
    names = [h.lower() for h in headers]
    natural = [max([cell_len(h)] + [cell_len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    keep = list(range(len(headers)))
    widths = list(natural)
    if width is not None:
        budget = max(1, width - indent)
        shrink = {name.lower() for name in flexible}
        mins = [
            min(natural[i], max(cell_len(headers[i]), FLEX_MIN)) if names[i] in shrink else natural[i]
            for i in range(len(headers))
        ]
        for name in optional:
            if sum(mins[i] for i in keep) + GAP * (len(keep) - 1) <= budget or len(keep) == 1:
                break
            if name.lower() in names and names.index(name.lower()) in keep:
                keep.remove(names.index(name.lower()))
        # The last flexible column named gives up its room first: the first one is kept widest.
        kept = [names[i] for i in keep]
        order = [kept.index(name) for name in reversed(flexible) if name in kept]
        widths = _fit_widths(
            [natural[i] for i in keep], [mins[i] for i in keep], budget - GAP * (len(keep) - 1), order
        )
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1), header_style="", expand=False)
    for i, w in zip(keep, widths, strict=True):
        table.add_column(
            Text(headers[i].upper(), no_wrap=True, overflow="ellipsis"),
            width=max(1, w),
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in cells:
        table.add_row(*(Text(row[i], no_wrap=True, overflow="ellipsis") for i in keep))
    text = _print(table, None)
    pad = " " * indent
    return "\n".join(pad + line for line in text.splitlines())


def _fit_widths(natural: list[int], mins: list[int], room: int, order: Sequence[int] = ()) -> list[int]:
    """Return column widths summing to at most `room`.

    The columns of `order` shrink to their minimum one after the other; then the widest above its
    minimum gives first; then any column, down to one cell.
    """
    widths = list(natural)
    excess = sum(widths) - room
    for i in order:
        cut = min(excess, max(0, widths[i] - mins[i]))
        widths[i] -= cut
        excess -= cut
    for floor in (mins, [1] * len(widths)):
        while excess > 0:
            candidates = [i for i, w in enumerate(widths) if w > floor[i]]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    return widths


def fit(line: str, width: int | None) -> str:
    """Return one line cut to `width` columns with an ellipsis (unchanged when it fits or width is None)."""
    if width is None:
        return line
    text = Text(line, no_wrap=True, overflow="ellipsis")
    text.truncate(width, overflow="ellipsis")
    return text.plain


def fit_lines(text: str, width: int | None) -> str:
    """Return every line of `text` cut to `width`."""
    return "\n".join(fit(line, width) for line in text.split("\n"))


def _print(renderable: Any, width: int | None) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=UNLIMITED if width is None else width,
        color_system=None,
        highlight=False,
        emoji=False,
        markup=False,
        force_terminal=False,
        legacy_windows=False,
        soft_wrap=False,
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())


def _moment(value: Any) -> datetime | None:
    """Return a UTC datetime from epoch seconds or an ISO-8601 string; None when it is neither."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (ValueError, OverflowError, OSError):
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def human_time(value: Any) -> str:
    """Return a time for a table: `2025-03-03 14:11:03` (UTC), `-` when unknown."""
    moment = _moment(value)
    if moment is None:
        return "-" if value in (None, "") else str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def iso_time(value: float) -> str:
    """Return epoch seconds as the one --json time format: ISO 8601 UTC with milliseconds and Z."""
    from bgpwatch.alerts.lifecycle import iso_ms  # the alert transitions' format: one owner of it

    return iso_ms(float(value))


# Keys whose numeric value is an epoch time in the API's answers.
_TIME_KEYS = {"since", "until", "at", "last_message"}
# Epoch times before 1990 are durations or counts named like times.
_EPOCH_FLOOR = 631_152_000


def _is_time_key(key: str) -> bool:
    return key in _TIME_KEYS or key.endswith("_at")


def with_iso_times(data: Any) -> Any:
    """Return `data` with a `<key>_iso` (ISO 8601 UTC) beside every numeric epoch time; the epoch is kept."""
    if isinstance(data, list):
        return [with_iso_times(item) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = with_iso_times(value)
        if (
            isinstance(key, str)
            and _is_time_key(key)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and value >= _EPOCH_FLOOR
            and f"{key}_iso" not in data
        ):
            try:
                out[f"{key}_iso"] = iso_time(value)
            except (ValueError, OverflowError, OSError):
                pass  # an out-of-range epoch stays as it is, without an ISO twin
    return out
