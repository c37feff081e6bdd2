"""A small named-axis array: the unit of variable elimination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...exceptions import InvalidParameterError
from .domain import Domain

__all__ = ["Factor"]


@dataclass(frozen=True, eq=False)
class Factor:
    """A non-negative (or log-space) table over named attributes; axis ``k`` is ``attrs[k]``.

    Operations align axes by name, so callers never track axis positions.

    Parameters
    ----------
    attrs : tuple of str
        Names of the axes, distinct.
    values : numpy.ndarray
        Array with ``len(attrs)`` axes.

    Examples
    --------
    >>> import numpy as np
    >>> f = Factor(("a", "b"), np.array([[1.0, 2.0], [3.0, 4.0]]))
    >>> g = Factor(("b",), np.array([10.0, 100.0]))
    >>> (f * g).project(("b",)).values
    array([ 40., 600.])
    """

    attrs: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        attrs = tuple(self.attrs)
        values = np.asarray(self.values)
        if values.ndim != len(attrs) or len(set(attrs)) != len(attrs):
            raise InvalidParameterError(
                f"A Factor needs one distinct name per axis: got attrs {attrs!r} for an array of shape "
                f"{values.shape}."
            )
        object.__setattr__(self, "attrs", attrs)
        object.__setattr__(self, "values", values)

    @classmethod
    def ones(cls, domain: Domain, attrs: Sequence[str]) -> Factor:
        """Return the factor of ones over ``attrs``.

        Examples
        --------
        >>> Factor.ones(Domain(("a", "b"), (2, 3)), ("b",)).values
        array([1., 1., 1.])
        """
        return cls(tuple(attrs), np.ones(domain.shape_of(attrs)))

    def transpose(self, attrs: Sequence[str]) -> Factor:
        """Return the same table with axes in the order ``attrs`` (a permutation of ``self.attrs``)."""
        attrs = tuple(attrs)
        if set(attrs) != set(self.attrs) or len(attrs) != len(self.attrs):
            raise InvalidParameterError(
                f"Factor.transpose needs a permutation of {self.attrs!r}. Got {attrs!r} instead."
            )
        if attrs == self.attrs:
            return self
        return Factor(attrs, np.transpose(self.values, [self.attrs.index(a) for a in attrs]))

    def _aligned(self, attrs: tuple[str, ...]) -> np.ndarray:
        """Values transposed and reshaped to broadcast against axes ``attrs`` (a superset)."""
        mine = [a for a in attrs if a in self.attrs]
        vals = np.transpose(self.values, [self.attrs.index(a) for a in mine])
        shape = [vals.shape[mine.index(a)] if a in self.attrs else 1 for a in attrs]
        return vals.reshape(shape)

    def __mul__(self, other: Factor) -> Factor:
        """Cell-wise product over the union of the axes (``self``'s first, then ``other``'s new ones)."""
        attrs = self.attrs + tuple(a for a in other.attrs if a not in self.attrs)
        return Factor(attrs, self._aligned(attrs) * other._aligned(attrs))

    def __add__(self, other: Factor) -> Factor:
        """Cell-wise sum over the union of the axes (for log-space tables)."""
        attrs = self.attrs + tuple(a for a in other.attrs if a not in self.attrs)
        return Factor(attrs, self._aligned(attrs) + other._aligned(attrs))

    def sum_out(self, attrs: Sequence[str]) -> Factor:
        """Return the factor with ``attrs`` summed out (names not in the factor are ignored)."""
        axes = tuple(i for i, a in enumerate(self.attrs) if a in set(attrs))
        if not axes:
            return self
        keep = tuple(a for a in self.attrs if a not in set(attrs))
        return Factor(keep, self.values.sum(axis=axes))

    def project(self, attrs: Sequence[str]) -> Factor:
        """Return the marginal over ``attrs`` (a subset of ``self.attrs``), axes in the order given."""
        attrs = tuple(attrs)
        missing = [a for a in attrs if a not in self.attrs]
        if missing:
            raise InvalidParameterError(f"Factor.project: {missing!r} are not axes of the factor {self.attrs!r}.")
        return self.sum_out([a for a in self.attrs if a not in attrs]).transpose(attrs)

    def expand(self, domain: Domain, attrs: Sequence[str]) -> Factor:
        """Return the factor broadcast (copied) over ``attrs`` (a superset of ``self.attrs``), in that order."""
        attrs = tuple(attrs)
        missing = [a for a in self.attrs if a not in attrs]
        if missing:
            raise InvalidParameterError(f"Factor.expand: target axes {attrs!r} lack {missing!r}.")
        return Factor(attrs, np.broadcast_to(self._aligned(attrs), domain.shape_of(attrs)).copy())
