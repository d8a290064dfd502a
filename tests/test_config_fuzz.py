"""Property: mutated real configurations load or raise ConfigError, never anything else (issue 12, item 6).

Seeded (derandomized) and bounded so the suite stays fast; the 10,000-configuration campaign is
`python -m bench.fuzz_config` (its figures in bench/README.md).  The bases are the real
configurations the campaign uses (the shipped example, Paris, the two lab configurations).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench.fuzz_config import (
    HOSTILE_VALUES,
    SECRETS,
    SNIPPETS,
    all_paths,
    base_texts,
    check_text,
    replace_value,
)
from bgpwatch.config import INTERNAL_ERROR

BASES = base_texts()
NAME = "fuzz.yaml"
KEYS = ("name", "type", "url", "token", "prefixes", "peers", "sites", "listen", "path", SECRETS[0], "x" * 50)

SETTINGS = settings(
    max_examples=60,
    derandomize=True,  # seeded: the same examples on every run
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1))
    | st.sampled_from(HOSTILE_VALUES).map(copy.deepcopy)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=10) | st.sampled_from(KEYS), children, max_size=3)
    ),
    max_leaves=8,
)


def assert_clean(problems: list[str]) -> None:
    """Each problem: one line, naming the file, no internal error, no planted secret."""
    for problem in problems:
        assert "\n" not in problem, problem
        assert problem.startswith(NAME), problem
        assert INTERNAL_ERROR not in problem, problem
        for secret in SECRETS:
            assert secret not in problem, problem


@SETTINGS
@given(
    base=st.integers(0, len(BASES) - 1),
    changes=st.lists(st.tuples(st.integers(0, 10**6), values), min_size=1, max_size=3),
)
def test_values_replaced_anywhere_give_config_errors_only(base: int, changes: list[tuple[int, Any]]) -> None:
    data = yaml.safe_load(BASES[base][1])
    for selector, value in changes:
        paths = all_paths(data)
        data = replace_value(data, paths[selector % len(paths)], value)
    try:
        text = yaml.safe_dump(data, sort_keys=False)
    except yaml.YAMLError:
        assume(False)
    assert_clean(check_text(text, NAME))  # anything but ConfigError fails the test


def _apply(text: str, op: str, at: int, size: int, char: str, snippet: str) -> str:
    at = at % (len(text) + 1)
    if op == "flip":
        return text[:at] + char + text[at + 1 :]
    if op == "cut":
        return text[:at] + text[at + size :]
    if op == "dup":
        return text[:at] + text[at : at + size] * 2 + text[at:]
    if op == "truncate":
        return text[:at]
    start = text.rfind("\n", 0, at) + 1  # insert at the start of a line
    return text[:start] + snippet + text[start:]


@SETTINGS
@given(
    base=st.integers(0, len(BASES) - 1),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "dup", "truncate", "insert"]),
            st.integers(0, 10**6),
            st.integers(1, 400),
            st.characters(codec="utf-8"),
            st.sampled_from(SNIPPETS),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_text_mutations_give_config_errors_only(base: int, ops: list[tuple[str, int, int, str, str]]) -> None:
    text = BASES[base][1]
    for op in ops:
        text = _apply(text, *op)
    assert_clean(check_text(text, NAME))


@pytest.mark.parametrize("snippet", SNIPPETS, ids=range(len(SNIPPETS)))
def test_every_hostile_snippet_in_every_base_is_a_config_error(snippet: str) -> None:
    # The corpus itself, deterministically: each snippet appended to each real configuration.
    for _name, text in BASES:
        problems = check_text(text + "\n" + snippet, NAME)
        assert problems, snippet
        assert_clean(problems)


def test_the_campaign_script_runs_and_counts_add_up() -> None:
    # A smoke size of bench/fuzz_config.py, so the documented campaign never rots.
    from bench.fuzz_config import campaign

    result = campaign(40, seed=3)
    assert result["loaded"] + result["rejected"] == 40
    assert result["escaped"] == 0 and result["internal_errors"] == 0, result["escaped_samples"]
    assert result["secret_leaks"] == 0, result["leak_samples"]
    assert result["ok"] is True
    assert sum(result["rejections_by_first_kind"].values()) == result["rejected"]
