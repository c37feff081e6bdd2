"""Noisy marginal measurements: the input of :func:`~synthhealth.generators.pgm.estimate`."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ...exceptions import InvalidParameterError
from .domain import Domain

__all__ = ["Measurement"]


@dataclass(frozen=True, eq=False)
class Measurement:
    """A marginal over ``clique`` measured with i.i.d. Gaussian noise of standard deviation ``sigma``.

    Parameters
    ----------
    clique : tuple of str
        Attributes measured; their order is the axis order of ``values``.
    values : numpy.ndarray
        Noisy counts, with the shape of the marginal (or flattened in C order). Negative counts are
        expected with noise and are kept as they are.
    sigma : float
        Standard deviation of the noise added to each cell (``> 0``).

    Examples
    --------
    >>> import numpy as np
    >>> m = Measurement(("sex",), np.array([51.2, 48.1]), sigma=2.0)
    >>> m.values.dtype, m.sigma
    (dtype('float64'), 2.0)
    """

    clique: tuple[str, ...]
    values: np.ndarray
    sigma: float

    def __post_init__(self) -> None:
        clique = self.clique
        if isinstance(clique, str) or not isinstance(clique, (tuple, list)) or not clique:
            raise InvalidParameterError(
                f"The 'clique' parameter of Measurement must be a non-empty tuple of attribute names. "
                f"Got {clique!r} instead."
            )
        clique = tuple(clique)
        if not all(isinstance(a, str) for a in clique) or len(set(clique)) != len(clique):
            raise InvalidParameterError(
                f"The 'clique' parameter of Measurement must hold distinct str names. Got {clique!r} instead."
            )
        values = np.asarray(self.values, dtype=np.float64)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise InvalidParameterError(
                f"The 'values' parameter of Measurement for {clique!r} must be a non-empty array of finite "
                f"numbers. Got size {values.size} with non-finite entries instead."
            )
        sigma = self.sigma
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not (0 < sigma < math.inf):
            raise InvalidParameterError(
                f"The 'sigma' parameter of Measurement must be a float in (0, inf). Got {sigma!r} instead."
            )
        object.__setattr__(self, "clique", clique)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "sigma", float(sigma))

    def shaped(self, domain: Domain) -> np.ndarray:
        """Return ``values`` with the marginal's shape over ``domain``, checking the number of cells.

        Examples
        --------
        >>> import numpy as np
        >>> dom = Domain(("a", "b"), (2, 3))
        >>> Measurement(("b", "a"), np.arange(6.0), 1.0).shaped(dom).shape
        (3, 2)
        """
        domain.check_attrs(self.clique, name="clique")
        shape = domain.shape_of(self.clique)
        if self.values.size != math.prod(shape):
            raise InvalidParameterError(
                f"The 'values' parameter of Measurement for {self.clique!r} must have {math.prod(shape)} cells "
                f"(shape {shape}). Got shape {self.values.shape} instead."
            )
        if self.values.shape not in (shape, (math.prod(shape),)):
            raise InvalidParameterError(
                f"The 'values' parameter of Measurement for {self.clique!r} must have shape {shape} or be flat. "
                f"Got shape {self.values.shape} instead."
            )
        return self.values.reshape(shape)
