"""Privacy budgets: (ε, δ) with the equivalent zCDP ρ."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import InvalidParameterError
from .accounting import cdp_epsilon, cdp_rho

__all__ = ["PrivacyBudget", "DEFAULT_DELTA"]

DEFAULT_DELTA = 1e-6
"""Default δ. Fixed and documented: a default computed from the number of patients (such as
1/n²) would itself depend on private data."""


@dataclass(frozen=True)
class PrivacyBudget:
    """An (ε, δ) differential-privacy budget, with its zCDP equivalent ρ.

    Parameters
    ----------
    epsilon : float
        ε > 0.
    delta : float, default 1e-6
        δ in (0, 1).

    Examples
    --------
    >>> b = PrivacyBudget(1.0, 1e-6)
    >>> round(b.rho, 6)
    0.024356
    >>> PrivacyBudget.from_rho(b.rho, 1e-6).epsilon <= 1.0 + 1e-9
    True
    """

    epsilon: float
    delta: float = DEFAULT_DELTA

    def __post_init__(self) -> None:
        eps, delta = self.epsilon, self.delta
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps) or not 0 < eps < math.inf:
            raise InvalidParameterError(f"The 'epsilon' parameter must be a float in (0, inf). Got {eps!r} instead.")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or math.isnan(delta) or not 0 < delta < 1:
            raise InvalidParameterError(f"The 'delta' parameter must be a float in (0, 1). Got {delta!r} instead.")
        object.__setattr__(self, "epsilon", float(eps))
        object.__setattr__(self, "delta", float(delta))
        object.__setattr__(self, "_rho", cdp_rho(float(eps), float(delta)))

    @property
    def rho(self) -> float:
        """The largest ρ such that ρ-zCDP implies this (ε, δ) (tight CKS 2020 conversion)."""
        return self._rho  # type: ignore[attr-defined,no-any-return]

    @classmethod
    def from_rho(cls, rho: float, delta: float = DEFAULT_DELTA) -> PrivacyBudget:
        """The (ε, δ) guaranteed by ρ-zCDP at the given δ.

        Parameters
        ----------
        rho : float
            zCDP parameter, > 0 (ρ = 0 gives ε = 0, which is not a valid budget).
        delta : float, default 1e-6
            δ in (0, 1).

        Returns
        -------
        PrivacyBudget
            The budget with the smallest ε that ρ-zCDP implies at ``delta``.

        Raises
        ------
        InvalidParameterError
            If ``rho`` is not positive or ``delta`` is not in (0, 1).

        Examples
        --------
        >>> round(PrivacyBudget.from_rho(0.005, 1e-6).epsilon, 6)
        0.429941
        """
        return cls(cdp_epsilon(rho, delta), delta)

    def to_dict(self) -> dict[str, float]:
        """``{"epsilon", "delta", "rho"}``.

        Returns
        -------
        dict of str to float
            The budget's ε, δ and equivalent ρ.

        Examples
        --------
        >>> PrivacyBudget(1.0, 1e-6).to_dict()["epsilon"]
        1.0
        """
        return {"epsilon": self.epsilon, "delta": self.delta, "rho": self.rho}

    def __str__(self) -> str:
        return f"epsilon={self.epsilon:g}, delta={self.delta:g} (rho={self.rho:.6g})"
