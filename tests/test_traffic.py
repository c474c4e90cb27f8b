"""Property tests for the pure traffic-weight arithmetic (no Ray)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from workbench.exceptions import ConfigError
from workbench.serving.traffic import (
    canary_schedule,
    choose,
    key_to_unit,
    main_version,
    normalize,
    sticky_choice,
)

versions = st.integers(min_value=1, max_value=50)
# Zero (a loaded version without traffic) or a weight in a sane range; subnormal weights are rejected
# by normalize (tested below), since they would silently get no traffic.
weight_values = st.just(0.0) | st.floats(min_value=1e-6, max_value=1e6)
weight_maps = st.dictionaries(versions, weight_values, min_size=1, max_size=6).filter(
    lambda d: any(w > 0 for w in d.values())
)
units = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)


@given(weight_maps)
def test_normalize_sums_to_one_and_keeps_proportions(weights):
    norm = normalize(weights)
    assert list(norm) == sorted(weights)
    assert math.isclose(math.fsum(norm.values()), 1.0, rel_tol=0, abs_tol=1e-9)
    assert all(w >= 0 for w in norm.values())
    total = math.fsum(weights.values())
    for v, w in weights.items():
        assert math.isclose(norm[v], w / total, rel_tol=1e-9, abs_tol=1e-12)
        assert (norm[v] == 0) == (w == 0)


@given(weight_maps, st.floats(min_value=1e-3, max_value=1e3))
def test_normalize_is_scale_invariant(weights, scale):
    a, b = normalize(weights), normalize({v: w * scale for v, w in weights.items()})
    assert a.keys() == b.keys()
    for v in a:
        assert math.isclose(a[v], b[v], rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({}, "non-empty"),
        ({1: 0, 2: 0.0}, "positive weight"),
        ({1: -0.1, 2: 1}, ">= 0"),
        ({1: float("nan")}, "finite"),
        ({1: float("inf"), 2: 1}, "finite"),
        ({1: "0.5"}, "must be a number"),
        ({1: True}, "must be a number"),
        ({"v1": 1.0}, "version numbers"),
        ({1: 1.0, "1": 1.0}, "twice"),
        ([(1, 1.0)], "mapping"),
    ],
)
def test_normalize_rejects_bad_weights_with_clear_message(bad, needle):
    with pytest.raises(ConfigError, match=needle):
        normalize(bad)


def test_normalize_rejects_a_positive_weight_that_would_get_no_traffic():
    with pytest.raises(ConfigError, match="too small"):
        normalize({1: 2.0, 2: 5e-324})


def test_normalize_accepts_digit_string_keys_from_json():
    assert normalize({"2": 1, "1": 1}) == {1: 0.5, 2: 0.5}


@given(weight_maps, units)
def test_choose_returns_a_positive_weight_version(weights, u):
    v = choose(weights, u)
    assert weights[v] > 0


@settings(max_examples=30, deadline=None)
@given(weight_maps, st.integers(min_value=0, max_value=2**32 - 1))
def test_choose_frequencies_match_weights(weights, seed):
    # Many uniform draws: each version's share is within 5 binomial standard deviations.
    rng = random.Random(seed)
    n = 20_000
    counts: dict[int, int] = {}
    for _ in range(n):
        v = choose(weights, rng.random())
        counts[v] = counts.get(v, 0) + 1
    for v, p in normalize(weights).items():
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts.get(v, 0) - n * p) <= 5 * sd + 1, (v, p, counts)


@settings(deadline=None)  # exact arithmetic; a loaded machine once took >200 ms for one example
@given(weight_maps)
def test_choose_is_exact_on_a_fine_grid(weights):
    # Deterministic check of the cumulative layout: the share of a fine grid of u's is the weight.
    norm = normalize(weights)
    grid = 4096
    counts: dict[int, int] = {}
    for i in range(grid):
        v = choose(weights, i / grid)
        counts[v] = counts.get(v, 0) + 1
    for v, p in norm.items():
        assert abs(counts.get(v, 0) / grid - p) <= len(norm) / grid + 1e-9


def test_choose_layout_is_ascending_by_version():
    assert choose({2: 0.5, 1: 0.5}, 0.0) == 1
    assert choose({2: 0.5, 1: 0.5}, 0.49) == 1
    assert choose({2: 0.5, 1: 0.5}, 0.5) == 2
    assert choose({1: 0.0, 2: 1.0}, 0.0) == 2


@pytest.mark.parametrize("u", [-0.1, 1.0, 1.5, float("nan"), "0.3", None])
def test_choose_rejects_u_outside_unit_interval(u):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        choose({1: 1.0}, u)


@given(weight_maps, st.text(max_size=40))
def test_sticky_choice_is_stable_and_consistent_with_choose(weights, key):
    first = sticky_choice(weights, key)
    assert sticky_choice(dict(reversed(list(weights.items()))), key) == first
    assert first == choose(weights, key_to_unit(key))
    assert 0.0 <= key_to_unit(key) < 1.0


def test_sticky_choice_known_value_is_fixed_across_processes():
    # The SHA-256 of "user-42" starts with 0x2a...; pins the hash so a salted hash() can't sneak in.
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"user-42").digest()[:8], "big") / 2**64
    assert key_to_unit("user-42") == expected


def test_sticky_choice_spreads_keys_by_weight():
    weights = {1: 0.7, 2: 0.3}
    n = 5000
    on_two = sum(sticky_choice(weights, f"user-{i}") == 2 for i in range(n))
    sd = math.sqrt(n * 0.3 * 0.7)
    assert abs(on_two - 0.3 * n) < 5 * sd


@given(st.text(max_size=40), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_sticky_keys_never_move_back_to_the_champion_as_the_challenger_grows(key, a, b):
    lo, hi = sorted((a, b))
    assume(hi > 0 and lo < 1)
    before = sticky_choice({1: 1 - lo, 2: lo}, key) if lo > 0 else 1
    after = sticky_choice({1: 1 - hi, 2: hi}, key)
    if before == 2:
        assert after == 2


@given(
    st.integers(1, 20),
    st.integers(1, 20),
    st.lists(st.floats(0.01, 0.99), min_size=0, max_size=5, unique=True),
)
def test_canary_schedule_is_monotone_and_ends_on_the_challenger(champion, challenger, middle):
    assume(champion != challenger)
    steps = (*sorted(middle), 1.0)
    schedule = canary_schedule(champion, challenger, steps=steps)
    assert len(schedule) == len(steps)
    shares = [s[challenger] for s in schedule]
    assert all(b > a for a, b in zip(shares, shares[1:], strict=False))
    assert schedule[-1] == {champion: 0.0, challenger: 1.0}
    for step in schedule:
        assert set(step) == {champion, challenger}
        assert math.isclose(sum(step.values()), 1.0)
        assert normalize(step) == {k: step[k] for k in sorted(step)}


@pytest.mark.parametrize(
    "champion, challenger, steps, needle",
    [
        (1, 1, (0.1, 1.0), "different"),
        (1, 2, (), "at least one"),
        (1, 2, (0.5, 0.1, 1.0), "increase"),
        (1, 2, (0.1, 0.5), "last canary step"),
        (1, 2, (0.0, 1.0), r"\(0, 1\]"),
        (1, 2, (0.5, 1.5), r"\(0, 1\]"),
    ],
)
def test_canary_schedule_rejects_bad_steps(champion, challenger, steps, needle):
    with pytest.raises(ConfigError, match=needle):
        canary_schedule(champion, challenger, steps=steps)


def test_main_version_prefers_weight_then_lower_version():
    assert main_version({1: 0.2, 2: 0.8}) == 2
    assert main_version({3: 0.5, 2: 0.5}) == 2
    assert main_version({1: 0.0, 5: 1.0}) == 5
