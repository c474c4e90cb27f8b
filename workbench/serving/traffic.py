"""Traffic-weight arithmetic for routing between model versions: pure Python, no Ray.

Everything the router and the rollout strategies decide about *which version
answers a request* lives here, so it can be property-tested without a cluster:

- :func:`normalize` validates a ``{version: weight}`` mapping and scales it to sum to 1;
- :func:`choose` turns a uniform number ``u`` in ``[0, 1)`` into a version, by a
  cumulative pick over the versions in ascending order;
- :func:`sticky_choice` does the same with ``u`` derived from a SHA-256 of a key,
  so one user/session always lands on the same version while weights hold;
- :func:`route` is the router's per-request decision (sticky when a key comes, else a draw);
- :func:`canary_schedule` lists the weight steps of a canary rollout.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from numbers import Real

from workbench.exceptions import ConfigError

__all__ = [
    "normalize",
    "choose",
    "sticky_choice",
    "key_to_unit",
    "route",
    "canary_schedule",
    "main_version",
]


def _as_version(key: object) -> int:
    if isinstance(key, bool):
        raise ConfigError(f"traffic weights are keyed by model version numbers; got {key!r}.")
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.strip().isdigit():
        return int(key)
    raise ConfigError(
        f"traffic weights are keyed by model version numbers (e.g. {{1: 0.9, 2: 0.1}}); got key {key!r}."
    )


def normalize(weights: Mapping[int, float]) -> dict[int, float]:
    """Validate ``{version: weight}`` and scale the weights so they sum to 1.

    Versions may be ints or digit strings (``"2"``, as they come back from
    JSON). Weights must be finite and non-negative and at least one must be
    positive. A zero weight is kept: the version stays loaded but gets no
    traffic (a warm standby for an instant rollback).

    Parameters
    ----------
    weights : mapping of int to float
        Relative weights, e.g. ``{1: 9, 2: 1}``.

    Returns
    -------
    dict of int to float
        Same versions in ascending order, weights summing to 1.

    Raises
    ------
    ConfigError
        On an empty mapping, a non-numeric, negative, NaN or infinite weight,
        all-zero weights, or a key that is not a version number.

    Examples
    --------
    >>> normalize({2: 1, 1: 3})
    {1: 0.75, 2: 0.25}
    >>> normalize({1: 1.0, 2: 0})
    {1: 1.0, 2: 0.0}
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(
            "traffic weights must be a non-empty mapping {version: weight}, e.g. {1: 0.9, 2: 0.1}."
        )
    clean: dict[int, float] = {}
    for key, value in weights.items():
        version = _as_version(key)
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ConfigError(f"weight of version {version} must be a number, got {value!r}.")
        w = float(value)
        if not math.isfinite(w) or w < 0:
            raise ConfigError(
                f"weight of version {version} must be finite and >= 0, got {value!r}; "
                "use 0 to keep a version loaded without traffic."
            )
        if version in clean:
            raise ConfigError(f"version {version} appears twice in the traffic weights ({key!r}).")
        clean[version] = w
    try:
        total = math.fsum(clean.values())
    except OverflowError:
        total = math.inf
    if total <= 0:
        raise ConfigError(
            f"at least one version needs a positive weight; got {dict(sorted(clean.items()))}."
        )
    if not math.isfinite(total):
        raise ConfigError(
            "traffic weights are too large to add up; scale them down (e.g. to fractions)."
        )
    norm = {v: clean[v] / total for v in sorted(clean)}
    for v, w in norm.items():
        if w == 0 and clean[v] > 0:
            raise ConfigError(
                f"weight of version {v} ({clean[v]!r}) is too small next to the others to get any traffic; "
                "give it 0 or a larger weight."
            )
    return norm


def choose(weights: Mapping[int, float], u: float) -> int:
    """Pick a version for a uniform draw ``u`` in ``[0, 1)``.

    Versions are laid out in ascending order on ``[0, 1)``, each taking an
    interval as long as its normalised weight; the version whose interval holds
    ``u`` is returned. Zero-weight versions are never chosen. The layout makes
    sticky routing monotone: when a higher version's weight grows at the
    expense of a lower one, no key moves from the higher version back down.

    Parameters
    ----------
    weights : mapping of int to float
        Weights as accepted by :func:`normalize`.
    u : float
        A number in ``[0, 1)``, e.g. ``random.random()``.

    Returns
    -------
    int
        The chosen version.

    Examples
    --------
    >>> choose({1: 0.9, 2: 0.1}, 0.5)
    1
    >>> choose({1: 0.9, 2: 0.1}, 0.95)
    2
    """
    if isinstance(u, bool) or not isinstance(u, Real) or not (0.0 <= float(u) < 1.0):
        raise ConfigError(f"u must be a number in [0, 1), got {u!r}.")
    norm = normalize(weights)
    cumulative = 0.0
    last_positive = None
    for version, w in norm.items():
        if w <= 0:
            continue
        last_positive = version
        cumulative += w
        if u < cumulative:
            return version
    # Rounding can leave the cumulative sum a hair under 1.
    assert last_positive is not None  # normalize guarantees a positive weight
    return last_positive


def key_to_unit(key: str) -> float:
    """Map a string to a stable number in ``[0, 1)`` (first 64 bits of its SHA-256).

    Examples
    --------
    >>> key_to_unit("user-42") == key_to_unit("user-42")
    True
    """
    if not isinstance(key, str):
        raise ConfigError(f"a sticky routing key must be a string, got {type(key).__name__}.")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def sticky_choice(weights: Mapping[int, float], key: str) -> int:
    """Pick a version for ``key`` so the same key always gets the same version.

    The choice is stable across processes and restarts (it hashes the key with
    SHA-256, not Python's salted ``hash``) and changes only when the weights do.

    Examples
    --------
    >>> sticky_choice({1: 0.5, 2: 0.5}, "user-42") == sticky_choice({1: 0.5, 2: 0.5}, "user-42")
    True
    """
    return choose(weights, key_to_unit(key))


def route(
    weights: Mapping[int, float],
    key: str | None = None,
    *,
    rand: Callable[[], float] = random.random,
) -> int:
    """The router's decision for one request: sticky by ``key`` when there is one, else a weighted draw.

    This is the exact code path the Serve router runs per request, so tests of
    the split (e.g. 10,000 draws at 10%) exercise what production does.

    Parameters
    ----------
    weights : mapping of int to float
        Current weights (as :func:`normalize` accepts).
    key : str, optional
        A user or session id; the same key gets the same version while the
        weights hold (:func:`sticky_choice`).
    rand : callable
        Source of uniform numbers in ``[0, 1)``; ``random.random`` by default.

    Examples
    --------
    >>> route({1: 1.0, 2: 0.0})
    1
    >>> route({1: 0.5, 2: 0.5}, "user-42") == sticky_choice({1: 0.5, 2: 0.5}, "user-42")
    True
    """
    if key is not None:
        return sticky_choice(weights, key)
    return choose(weights, rand())


def canary_schedule(
    champion: int, challenger: int, steps: Sequence[float] = (0.1, 0.5, 1.0)
) -> list[dict[int, float]]:
    """Weights for each step of a canary rollout from ``champion`` to ``challenger``.

    Parameters
    ----------
    champion, challenger : int
        Model version numbers; they must differ.
    steps : sequence of float
        The challenger's share at each step: strictly increasing, in ``(0, 1]``,
        ending at ``1.0``.

    Returns
    -------
    list of dict
        One ``{champion: 1 - s, challenger: s}`` per step. The champion keeps a
        zero weight at the last step so it stays loaded for a rollback.

    Examples
    --------
    >>> canary_schedule(1, 2, steps=(0.25, 1.0))
    [{1: 0.75, 2: 0.25}, {1: 0.0, 2: 1.0}]
    """
    champion, challenger = _as_version(champion), _as_version(challenger)
    if champion == challenger:
        raise ConfigError(
            f"champion and challenger are both version {champion}; pick two different versions."
        )
    shares = [float(s) for s in steps]
    if not shares:
        raise ConfigError("a canary needs at least one step, e.g. steps=(0.1, 0.5, 1.0).")
    for s in shares:
        if not math.isfinite(s) or not 0 < s <= 1:
            raise ConfigError(f"canary steps are the challenger's share in (0, 1]; got {s!r}.")
    if any(b <= a for a, b in zip(shares, shares[1:], strict=False)):
        raise ConfigError(f"canary steps must strictly increase; got {tuple(shares)}.")
    if shares[-1] != 1.0:
        raise ConfigError(
            f"the last canary step must send all traffic to the challenger (1.0); got {shares[-1]}. "
            f"Append 1.0, e.g. steps={(*shares, 1.0)}."
        )
    return [{champion: 1.0 - s, challenger: s} for s in shares]


def main_version(weights: Mapping[int, float]) -> int:
    """The version with the largest weight (the lower version on a tie).

    Examples
    --------
    >>> main_version({1: 0.5, 2: 0.5})
    1
    >>> main_version({"1": 0.1, "2": 0.9})
    2
    """
    norm = normalize(weights)
    return min(norm, key=lambda v: (-norm[v], v))
