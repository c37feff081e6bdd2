"""Parameter checks shared by the package (house style: name, constraint, value)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from .exceptions import InvalidParameterError

__all__ = ["check_random_state", "check_choice", "check_positive_int", "check_bool"]


def _owner(owner: str | None) -> str:
    return f" of {owner}" if owner else ""


def check_choice(value: Any, name: str, choices: Iterable[Any], owner: str | None = None) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise.

    Examples
    --------
    >>> check_choice("skip", "on_error", ("raise", "skip"))
    'skip'
    """
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(
            f"The {name!r} parameter{_owner(owner)} must be one of {allowed}. Got {value!r} instead."
        )
    return value


def check_positive_int(value: Any, name: str, owner: str | None = None, *, allow_zero: bool = False) -> int:
    """Return ``value`` as int if it is a (non-negative when ``allow_zero``) integer.

    Examples
    --------
    >>> check_positive_int(3, "n")
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(
            f"The {name!r} parameter{_owner(owner)} must be an int. Got {type(value).__name__} {value!r} instead."
        )
    lo = 0 if allow_zero else 1
    if value < lo:
        rng = "[0, inf)" if allow_zero else "[1, inf)"
        raise InvalidParameterError(
            f"The {name!r} parameter{_owner(owner)} must be an int in {rng}. Got {value!r} instead."
        )
    return int(value)


def check_bool(value: Any, name: str, owner: str | None = None) -> bool:
    """Return ``value`` if it is a bool, else raise."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The {name!r} parameter{_owner(owner)} must be a bool. Got {type(value).__name__} {value!r} instead."
        )
    return bool(value)


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """Turn ``None``, an int seed or a Generator into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    random_state : None, int, numpy.random.SeedSequence or numpy.random.Generator
        ``None`` gives fresh OS entropy; an int or SeedSequence gives a reproducible
        generator; a Generator is returned as is (shared state).

    Examples
    --------
    >>> rng = check_random_state(0)
    >>> int(rng.integers(10)) in range(10)
    True
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.SeedSequence):
        return np.random.default_rng(random_state)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise InvalidParameterError(
                f"The {name!r} parameter must be None, a non-negative int or a numpy.random.Generator. "
                f"Got {random_state!r} instead."
            )
        return np.random.default_rng(int(random_state))
    raise InvalidParameterError(
        f"The {name!r} parameter must be None, a non-negative int or a numpy.random.Generator. "
        f"Got {type(random_state).__name__} instead."
    )
