"""Mutation fuzzing of the config loader: real configurations, corrupted, through `load_config`.

    python -m bench.fuzz_config [--configs 10000] [--seed 12]

The configurations are real: the shipped example (config/bgpwatch.example.yaml), the Paris
configuration (bgpwatch/data/paris.yaml) and the two lab configurations (fixtures/lab/*.config.yaml).
Each tried configuration is one of them changed by one to three mutations (`mutate`): in its data
(a value anywhere replaced by a hostile one: 2^64, -1, NaN, a 10,000-character string, a NUL, a
token, a URL with credentials, a list nested 60 deep, a date; a key dropped, a secret added as a
key, a type swapped, a list emptied or doubled) or in its text (a byte flipped, a span cut or
duplicated, the text truncated, a hostile YAML snippet inserted: an alias bomb, a recursive alias,
a 5,000-digit integer, 5,000-deep nesting, a bad date, an unknown tag, a merge key, a tab, a control
character, a shadow-file line).  One configuration in ten is written to a file and read with
`load_config` (so the byte-level decoding and file checks run too), sometimes with invalid UTF-8.

Printed (JSON): configurations tried, loaded and rejected; exceptions that escaped (anything but
ConfigError: must be 0, by type with a sample); "internal error" lines (a bug caught by the safety
net: must be 0); problem lines by kind; lines that quoted a planted secret (must be 0); problems
spread over several lines (must be 0); the slowest configuration.  Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import re
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bgpwatch.config import INTERNAL_ERROR, ConfigError, _Loader, _YamlLimit, load_config, load_config_text

ROOT = Path(__file__).resolve().parent.parent
BASE_FILES = (
    ROOT / "config" / "bgpwatch.example.yaml",
    ROOT / "bgpwatch" / "data" / "paris.yaml",
    *sorted((ROOT / "fixtures" / "lab").glob("*.config.yaml")),
)
# Planted in values and keys; no problem line may contain any of them.  The token has the '+' and '/'
# of base64: a secret that is also a valid name (a site named like a token) would be shown as a name.
SECRETS = ("Zk3s3cr3t+T0ken/Q7xZp9", "hunter2pw", "fuzzuser", "$6$saltsalt$", "BEGIN PRIVATE KEY")
CREDENTIAL_URL = f"https://{SECRETS[2]}:{SECRETS[1]}@hooks.example.net/x"

HOSTILE_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**63,
    2**64,
    2**64 - 1,
    -(2**64),
    float("nan"),
    float("inf"),
    -1e308,
    1e-320,
    "",
    " ",
    "\0",
    "\x07bell",
    "x" * 10_000,
    SECRETS[0],
    CREDENTIAL_URL,
    f"root:{SECRETS[3]}hash:19700:0:99999:7:::",
    f"-----{SECRETS[4]}-----",
    "65000",
    "192.0.2.300",
    "::1:9179",
    "[::1]:99999",
    "203.0.113.1/24",
    "managed",
    "webhook",
    [],
    {},
    [SECRETS[0]],
    {SECRETS[0]: 1},
    {"type": "webhook", "url": CREDENTIAL_URL, "token": SECRETS[0]},
    date(2026, 12, 2),
)

SNIPPETS = (
    # alias bomb (10^9 nodes once expanded)
    "".join(f"b{i}: &b{i} [" + ", ".join([f"*b{i - 1}" if i else "x"] * 10) + "]\n" for i in range(9)),
    "r: &r [1, *r]\n",
    "big: " + "9" * 5000 + "\n",
    "big: 0x" + "f" * 200 + "\n",
    "sexa: " + ":".join(["59"] * 40) + "\n",
    "deep: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "when: 2026-13-45\n",
    f"tag: !{SECRETS[0]} x\n",
    f"alias: *{SECRETS[0]}\n",
    "obj: !!python/object:os.system x\n",
    "m: &m {a: 1}\nn:\n  <<: *m\n  <<: [*m, *m]\n",
    "\tindented: with a tab\n",
    "ctl: \x07\n",
    f"root:{SECRETS[3]}hash:19700:0:99999:7:::\n",
    f"{SECRETS[0]}: {SECRETS[0]}\n",
    "? [a, b]\n: unhashable\n",
    "dup: 1\ndup: 2\n",
    "f: .nan\ng: -.inf\n",
    "bin: !!binary '@@@'\n",
    "set: !!set {a, b}\n",
    "---\nsecond: document\n",
    "%YAML 1.1\n---\n",
    "'unterminated: \n",
    '"\\q bad escape"\n',
)


def base_texts() -> list[tuple[str, str]]:
    """Return (name, text) of every real configuration the campaign starts from."""
    return [(str(path.relative_to(ROOT)), path.read_text()) for path in BASE_FILES]


# -- mutations of the data ---------------------------------------------------------------------


def all_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every node under ``data`` (mapping keys and list indexes), 30 levels deep."""
    paths = [prefix]
    if len(prefix) >= 30:  # a recursive alias (PyYAML builds the cycle) or a deep mutation
        return paths
    if isinstance(data, dict):
        for key, value in data.items():
            paths += all_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += all_paths(value, (*prefix, index))
    return paths


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for segment in path[:-1]:
        data = data[segment]
    return data


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def replace_value(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """Return ``data`` with the node at ``path`` replaced (the root itself when the path is empty)."""
    if not path:
        return value
    _parent(data, path)[path[-1]] = value
    return data


def mutate_data(rng: random.Random, data: Any) -> Any:
    """Apply one random change to parsed configuration data; return the result."""
    paths = all_paths(data)
    path = rng.choice(paths)
    op = rng.randrange(8)
    if op <= 2:
        return replace_value(data, path, copy.deepcopy(rng.choice(HOSTILE_VALUES)))
    if op == 3 and path:  # drop a key or an item
        parent = _parent(data, path)
        del parent[path[-1]]
        return data
    if op == 4:  # add a key: a secret, a plain unknown word or a known key in the wrong place
        target = _parent(data, path) if path else data
        if isinstance(target, dict):
            key = rng.choice((SECRETS[0], "colour", "sites", "token", f"root:{SECRETS[3]}x"))
            target[key] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
        return data
    if op == 5:  # swap a type
        node = _parent(data, path)[path[-1]] if path else data
        swapped = [node] if not isinstance(node, list) else {str(i): v for i, v in enumerate(node)}
        return replace_value(data, path, swapped)
    if op == 6:  # empty or double a list
        node = _parent(data, path)[path[-1]] if path else data
        if isinstance(node, list):
            return replace_value(data, path, [] if rng.random() < 0.5 else node + copy.deepcopy(node))
        return data
    return replace_value(data, path, nested(rng.choice((10, 40, 60, 70))))


# -- mutations of the text ---------------------------------------------------------------------


def mutate_text(rng: random.Random, text: str) -> str:
    """Apply one random change to configuration text; return the result."""
    if not text:
        return rng.choice(SNIPPETS)
    op = rng.randrange(6)
    at = rng.randrange(len(text))
    if op == 0:  # flip a character
        return text[:at] + chr(rng.randrange(1, 0x250)) + text[at + 1 :]
    if op == 1:  # cut a span
        return text[:at] + text[at + rng.randrange(1, 200) :]
    if op == 2:  # duplicate a span
        span = text[at : at + rng.randrange(1, 400)]
        return text[:at] + span + span + text[at:]
    if op == 3:  # truncate
        return text[:at]
    # insert a hostile snippet at the start of a line, indented like that line or not
    lines = text.splitlines(keepends=True)
    index = rng.randrange(len(lines) + 1)
    snippet = rng.choice(SNIPPETS)
    if index < len(lines) and rng.random() < 0.5:
        indent = re.match(r" *", lines[index]).group(0)  # type: ignore[union-attr]
        snippet = "".join(indent + line for line in snippet.splitlines(keepends=True))
    return "".join([*lines[:index], snippet, *lines[index:]])


def _safe_load(text: str) -> Any:
    """Parse a mutated text with bgpwatch's bounded loader: plain PyYAML would expand an alias bomb here."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def mutate(rng: random.Random, text: str) -> str:
    """Return a configuration made from ``text`` by one to three random mutations."""
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            try:
                data = _safe_load(text)
            except (yaml.YAMLError, ValueError, RecursionError, _YamlLimit):
                text = mutate_text(rng, text)
                continue
            try:
                data = mutate_data(rng, data)
                text = yaml.safe_dump(data, sort_keys=False, allow_unicode=rng.random() < 0.5)
            except (yaml.YAMLError, ValueError, RecursionError, TypeError):
                text = mutate_text(rng, text)
        else:
            text = mutate_text(rng, text)
    return text


# -- outcome -----------------------------------------------------------------------------------

KINDS: tuple[tuple[str, str], ...] = (
    (INTERNAL_ERROR, "internal_error"),
    ("maximum nesting depth", "yaml_too_deep"),  # libyaml's own bound on flow levels
    ("YAML syntax error", "yaml_syntax"),
    ("too many YAML nodes", "yaml_too_many_nodes"),
    ("nested too deep", "yaml_too_deep"),
    ("recursive alias", "yaml_recursive_alias"),
    ("integer too large", "yaml_int_too_large"),
    ("integer too long", "yaml_int_too_large"),
    ("cannot read this value", "yaml_bad_scalar"),
    ("not UTF-8", "not_utf8"),
    ("the most a configuration may be", "too_big"),
    ("duplicate key", "duplicate_key"),
    ("no settings", "empty"),
    ("expected a mapping of top-level keys", "not_a_mapping"),
    ("unknown key", "unknown_key"),
    ("unknown detector", "unknown_key"),
    ("unknown parameter", "unknown_key"),
    ("required key is missing", "missing_key"),
    ("Authorization header", "webhook_authorization"),
    ("duplicate", "cross_reference"),
    ("unknown site", "cross_reference"),
    ("no site is named", "cross_reference"),
    ("listed twice", "cross_reference"),
    ("anycast", "cross_reference"),
    ("in two sites", "cross_reference"),
    ("is already the address", "cross_reference"),
    ("host bits set", "bad_value"),
    ("detectors.", "detector_parameter"),
    ("expected", "bad_value"),
)


def kind_of(problem: str) -> str:
    """Name the kind of one problem line (for the counts)."""
    return next((kind for marker, kind in KINDS if marker in problem), "other")


def leaked(problem: str, name: str) -> str | None:
    """Return a planted secret quoted by a problem line, if any."""
    text = problem.replace(name, "")
    return next((secret for secret in SECRETS if secret in text), None)


def check_text(text: str, name: str = "fuzz.yaml") -> list[str]:
    """Validate one configuration text; return its problem lines (raises anything else)."""
    try:
        load_config_text(text, name)
    except ConfigError as exc:
        return exc.problems
    return []


def check_file(raw: bytes, directory: Path) -> tuple[list[str], str]:
    """Write ``raw`` to a file and load it as the daemon does; return its problems and the file name."""
    path = directory / "fuzz.yaml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems, str(path)
    return [], str(path)


def campaign(configs: int, seed: int, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the campaign; return its figures."""
    rng = random.Random(seed)
    bases = base_texts()
    # Warnings of configurations that load (an undeclared anycast prefix) are not what is counted.
    logging.getLogger("bgpwatch.config").setLevel(logging.ERROR)
    loaded = rejected = 0
    by_kind: Counter[str] = Counter()
    first_kind: Counter[str] = Counter()
    escaped: Counter[str] = Counter()
    samples: dict[str, str] = {}
    leaks: list[str] = []
    others: list[str] = []
    leak_count = 0
    multiline = 0
    slowest = (0.0, "")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(configs):
            if progress is not None and number % 1000 == 0:
                progress(number)
            base_name, base = bases[number % len(bases)]
            text = mutate(rng, base)
            via_file = number % 10 == 0
            began = time.perf_counter()
            try:
                if via_file:
                    raw = text.encode("utf-8", "surrogatepass")
                    if rng.random() < 0.3:
                        at = rng.randrange(len(raw) + 1)
                        raw = raw[:at] + bytes([rng.choice((0xFF, 0xC3, 0x80, 0x00))]) + raw[at:]
                    problems, name = check_file(raw, Path(tmp))
                else:
                    name = "fuzz.yaml"
                    problems = check_text(text, name)
            except Exception as exc:  # what the campaign is looking for
                kind = type(exc).__name__
                escaped[kind] += 1
                samples.setdefault(kind, f"{base_name}: " + "".join(traceback.format_exception(exc))[-2000:])
                continue
            elapsed = time.perf_counter() - began
            if elapsed > slowest[0]:
                slowest = (elapsed, base_name)
            if not problems:
                loaded += 1
                continue
            rejected += 1
            first_kind[kind_of(problems[0])] += 1
            for problem in problems:
                kind = kind_of(problem)
                by_kind[kind] += 1
                if kind == "other" and len(others) < 5:
                    others.append(problem[:300])
                multiline += "\n" in problem
                secret = leaked(problem, name)
                if secret is not None:
                    leak_count += 1
                    if len(leaks) < 10:
                        leaks.append(problem[:300])
    internal = by_kind.get("internal_error", 0)
    return {
        "configs": configs,
        "seed": seed,
        "bases": [name for name, _ in bases],
        "loaded": loaded,
        "rejected": rejected,
        "escaped": sum(escaped.values()),
        "escaped_by_type": dict(escaped),
        "escaped_samples": samples,
        "internal_errors": internal,
        "problems_by_kind": dict(by_kind.most_common()),
        "rejections_by_first_kind": dict(first_kind.most_common()),
        "other_samples": others,
        "secret_leaks": leak_count,
        "leak_samples": leaks,
        "multiline_problems": multiline,
        "slowest_seconds": round(slowest[0], 4),
        "slowest_base": slowest[1],
        "seconds": round(time.monotonic() - started, 1),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "ok": not escaped
        and not internal
        and not leak_count
        and not multiline
        and loaded + rejected == configs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    result = campaign(args.configs, args.seed, lambda n: print(f"... {n}", file=sys.stderr))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
