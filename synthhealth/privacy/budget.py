"""Privacy budgets: (ε, δ) with the equivalent zCDP ρ."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..exceptions import InvalidParameterError
from .accounting import cdp_epsilon, cdp_rho

__all__ = ["PrivacyBudget", "DEFAULT_DELTA", "MAX_EPSILON"]

DEFAULT_DELTA = 1e-6
"""Default δ. Fixed and documented: a default computed from the number of patients (such as
1/n²) would itself depend on private data."""

MAX_EPSILON = 100.0
"""Largest ε a budget accepts. At ε = 100 the guarantee bounds how much one patient can change the
probability of any output by a factor e^100 ≈ 2.7e43: it no longer protects anyone, and every
published deployment of differential privacy stays far below (single digits to a few tens). A
bound also keeps the accounting in floating-point range: ρ overflowed above ε ≈ 1e14 and fell to
0.0 at ε = 1e308 (then divided by). For a non-private ceiling of utility, compare with the real
data instead."""


@dataclass(frozen=True)
class PrivacyBudget:
    """An (ε, δ) differential-privacy budget, with its zCDP equivalent ρ.

    Parameters
    ----------
    epsilon : float
        ε in (0, :data:`MAX_EPSILON`] = (0, 100].
    delta : float, default 1e-6
        δ in (0, 1).

    Raises
    ------
    InvalidParameterError
        If ``epsilon`` is not in (0, 100] or ``delta`` not in (0, 1) (ρ is then always > 0 and finite).

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
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps) or not 0 < eps <= MAX_EPSILON:
            raise InvalidParameterError(
                f"The 'epsilon' parameter must be a float in (0, {MAX_EPSILON:g}] (above {MAX_EPSILON:g} the guarantee "
                f"protects no one; see synthhealth.privacy.budget.MAX_EPSILON). Got {eps!r} instead.")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or math.isnan(delta) or not 0 < delta < 1:
            raise InvalidParameterError(f"The 'delta' parameter must be a float in (0, 1). Got {delta!r} instead.")
        object.__setattr__(self, "epsilon", float(eps))
        object.__setattr__(self, "delta", float(delta))
        rho = cdp_rho(float(eps), float(delta))
        if not 0.0 < rho < math.inf:  # pragma: no cover - excluded by the bound on epsilon
            raise InvalidParameterError(
                f"The budget epsilon={eps!r}, delta={delta!r} gives rho={rho!r}; rho must be > 0 and finite.")
        object.__setattr__(self, "_rho", rho)

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
