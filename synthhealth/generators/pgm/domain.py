"""The discrete domain of a graphical model: attribute names and their numbers of states."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...exceptions import InvalidParameterError

__all__ = ["Domain"]


@dataclass(frozen=True)
class Domain:
    """Attribute names and their numbers of states, in column order.

    Parameters
    ----------
    attrs : tuple of str
        Attribute names, unique, in column order.
    shape : tuple of int
        Number of states of each attribute (each ``>= 1``), aligned with ``attrs``.

    Examples
    --------
    >>> dom = Domain(("age", "sex", "death"), (11, 2, 2))
    >>> dom.size()
    44
    >>> dom.project(("death", "age"))
    Domain(attrs=('death', 'age'), shape=(2, 11))
    """

    attrs: tuple[str, ...]
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        attrs = tuple(self.attrs) if isinstance(self.attrs, (list, tuple)) else self.attrs
        shape = tuple(self.shape) if isinstance(self.shape, (list, tuple)) else self.shape
        if not isinstance(attrs, tuple) or not all(isinstance(a, str) and a for a in attrs):
            raise InvalidParameterError(
                f"The 'attrs' parameter of Domain must be a tuple of non-empty str. Got {self.attrs!r} instead."
            )
        if len(set(attrs)) != len(attrs):
            dup = sorted({a for a in attrs if attrs.count(a) > 1})
            raise InvalidParameterError(
                f"The 'attrs' parameter of Domain must hold unique names. Got duplicates {dup!r} instead."
            )
        if not isinstance(shape, tuple) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in shape
        ):
            raise InvalidParameterError(
                f"The 'shape' parameter of Domain must be a tuple of int >= 1. Got {self.shape!r} instead."
            )
        if len(shape) != len(attrs):
            raise InvalidParameterError(
                f"The 'shape' parameter of Domain must have one entry per attribute ({len(attrs)}). "
                f"Got {len(shape)} entries instead."
            )
        object.__setattr__(self, "attrs", attrs)
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))

    # --- lookups -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.attrs)

    def __contains__(self, attr: object) -> bool:
        return attr in self.attrs

    def index(self, attr: str) -> int:
        """Return the column position of ``attr``.

        Examples
        --------
        >>> Domain(("a", "b"), (2, 3)).index("b")
        1
        """
        try:
            return self.attrs.index(attr)
        except ValueError:
            raise InvalidParameterError(
                f"Attribute {attr!r} is not in the domain; known attributes are {list(self.attrs)!r}."
            ) from None

    def check_attrs(self, attrs: Iterable[str], name: str = "attrs") -> tuple[str, ...]:
        """Return ``attrs`` as a tuple after checking that they are unique members of the domain.

        Examples
        --------
        >>> Domain(("a", "b"), (2, 3)).check_attrs(["b"])
        ('b',)
        """
        if isinstance(attrs, str):
            raise InvalidParameterError(
                f"The {name!r} parameter must be a sequence of attribute names, not a str. Got {attrs!r} instead."
            )
        out = tuple(attrs)
        unknown = [a for a in out if a not in self.attrs]
        if unknown:
            raise InvalidParameterError(
                f"The {name!r} parameter must name attributes of the domain {list(self.attrs)!r}. "
                f"Got unknown {unknown!r} instead."
            )
        if len(set(out)) != len(out):
            raise InvalidParameterError(f"The {name!r} parameter must not repeat attributes. Got {out!r} instead.")
        return out

    def canonical(self, attrs: Iterable[str]) -> tuple[str, ...]:
        """Return the distinct ``attrs`` sorted in domain (column) order.

        Examples
        --------
        >>> Domain(("a", "b", "c"), (2, 3, 4)).canonical(["c", "a", "c"])
        ('a', 'c')
        """
        wanted = set(attrs)
        return tuple(a for a in self.attrs if a in wanted)

    # --- sizes and projections -----------------------------------------------------------------

    def size(self, attrs: Sequence[str] | None = None) -> int:
        """Return the number of cells of the domain, or of its projection onto ``attrs``.

        Examples
        --------
        >>> Domain(("a", "b", "c"), (2, 3, 4)).size(("a", "c"))
        8
        """
        if attrs is None:
            return math.prod(self.shape)
        return math.prod(self.shape[self.index(a)] for a in attrs)

    def project(self, attrs: Sequence[str]) -> Domain:
        """Return the sub-domain over ``attrs``, in the order given.

        Examples
        --------
        >>> Domain(("a", "b", "c"), (2, 3, 4)).project(("c", "a")).shape
        (4, 2)
        """
        attrs = self.check_attrs(attrs)
        return Domain(attrs, tuple(self.shape[self.index(a)] for a in attrs))

    def shape_of(self, attrs: Sequence[str]) -> tuple[int, ...]:
        """Return the numbers of states of ``attrs``, in the order given.

        Examples
        --------
        >>> Domain(("a", "b", "c"), (2, 3, 4)).shape_of(("c", "a"))
        (4, 2)
        """
        return tuple(self.shape[self.index(a)] for a in attrs)

    def to_dict(self) -> dict[str, list]:
        """Return a JSON-able description (see :meth:`from_dict`)."""
        return {"attrs": list(self.attrs), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, doc: dict) -> Domain:
        """Rebuild a domain from :meth:`to_dict` output.

        Examples
        --------
        >>> d = Domain(("a",), (3,))
        >>> Domain.from_dict(d.to_dict()) == d
        True
        """
        try:
            return cls(tuple(doc["attrs"]), tuple(doc["shape"]))
        except (KeyError, TypeError):
            raise InvalidParameterError(
                f"A domain description must be a mapping with 'attrs' and 'shape' lists. Got {doc!r} instead."
            ) from None
