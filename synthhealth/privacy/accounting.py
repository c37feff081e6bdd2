"""Zero-concentrated DP accounting: ρ of mechanisms and the tight zCDP → (ε, δ) conversion.

The conversion is Proposition 12 / Corollary 13 of Canonne, Kamath and Steinke (2020),
"The Discrete Gaussian for Differential Privacy": a ρ-zCDP mechanism is (ε, δ)-DP for

    δ(ε) = inf_{α > 1}  exp((α − 1)(αρ − ε)) / (α − 1) · (1 − 1/α)^α ,

which is tighter than the classic ε = ρ + 2·sqrt(ρ·log(1/δ)). The infimum is found by
bisection on the (convex) exponent; ε(δ) and ρ(ε, δ) invert it by bisection, always rounding
in the conservative direction (larger ε, smaller ρ).
"""

from __future__ import annotations

import math

from ..exceptions import InvalidParameterError

__all__ = [
    "cdp_delta",
    "cdp_epsilon",
    "cdp_rho",
    "gaussian_rho",
    "gaussian_sigma",
    "exponential_rho",
]

_BISECT = 200


def _check(value: float, name: str, lo: float, hi: float = math.inf, *, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidParameterError(f"The {name!r} parameter must be a real number. Got {value!r} instead.")
    bad = value <= lo if lo_open else value < lo
    if bad or value > hi:
        left = "(" if lo_open else "["
        right = "]" if hi != math.inf else ")"
        raise InvalidParameterError(
            f"The {name!r} parameter must be in {left}{lo:g}, {hi:g}{right}. Got {value!r} instead.")
    return float(value)


def _log_delta(rho: float, eps: float, alpha: float) -> float:
    return (alpha - 1.0) * (alpha * rho - eps) + alpha * math.log1p(-1.0 / alpha) - math.log(alpha - 1.0)


def cdp_delta(rho: float, epsilon: float) -> float:
    """δ such that a ρ-zCDP mechanism is (ε, δ)-DP (tight CKS 2020 conversion).

    Parameters
    ----------
    rho : float
        zCDP parameter, ≥ 0.
    epsilon : float
        Target ε, ≥ 0.

    Returns
    -------
    float
        δ in [0, 1].

    Raises
    ------
    InvalidParameterError
        If ``rho`` or ``epsilon`` is negative or not a real number.

    Examples
    --------
    >>> round(cdp_delta(0.5, 3.0), 8)
    0.00514318
    """
    rho = _check(rho, "rho", 0.0)
    epsilon = _check(epsilon, "epsilon", 0.0)
    if rho == 0.0:
        return 0.0
    # Choose α by bisection on (2α − 1)ρ − ε + log(1 − 1/α) = 0, the stationarity condition CKS 2020
    # use. The bound holds for every α > 1, so the choice of α affects tightness, never validity.
    lo, hi = 1.0 + 1e-12, max((epsilon + 1.0) / (2.0 * rho) + 2.0, 2.0)
    for _ in range(_BISECT):
        mid = (lo + hi) / 2.0
        deriv = (2.0 * mid - 1.0) * rho - epsilon + math.log1p(-1.0 / mid)
        if deriv < 0:
            lo = mid
        else:
            hi = mid
    alpha = (lo + hi) / 2.0
    try:
        log_delta = _log_delta(rho, epsilon, alpha)
    except OverflowError:  # pragma: no cover - the terms overflow only for a huge rho, where delta is 1
        return 1.0
    return 1.0 if log_delta >= 0.0 else math.exp(log_delta)


def cdp_epsilon(rho: float, delta: float) -> float:
    """Smallest ε such that ρ-zCDP implies (ε, δ)-DP (up to 1e-12, rounded up).

    Parameters
    ----------
    rho : float
        zCDP parameter, ≥ 0.
    delta : float
        Target δ, in (0, 1].

    Returns
    -------
    float
        ε ≥ 0 (0 when ``rho`` is 0 or ``delta`` is 1).

    Raises
    ------
    InvalidParameterError
        If ``rho`` is negative, ``delta`` is outside (0, 1], or either is not a real number.

    Examples
    --------
    >>> round(cdp_epsilon(0.005, 1e-6), 6)
    0.429941
    """
    rho = _check(rho, "rho", 0.0)
    delta = _check(delta, "delta", 0.0, 1.0, lo_open=True)
    if rho == 0.0 or delta >= 1.0:
        return 0.0
    lo, hi = 0.0, rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)) + 1.0
    for _ in range(_BISECT):
        mid = (lo + hi) / 2.0
        if cdp_delta(rho, mid) <= delta:
            hi = mid
        else:
            lo = mid
    return hi


def cdp_rho(epsilon: float, delta: float) -> float:
    """Largest ρ such that ρ-zCDP implies (ε, δ)-DP (rounded down).

    Parameters
    ----------
    epsilon : float
        Target ε, > 0.
    delta : float
        Target δ, in (0, 1).

    Returns
    -------
    float
        ρ ≥ 0.

    Raises
    ------
    InvalidParameterError
        If ``epsilon`` is not positive, ``delta`` is outside (0, 1), or either is not a real number
        (with δ = 1 every ρ would qualify).

    Examples
    --------
    >>> round(cdp_rho(1.0, 1e-6), 6)
    0.024356
    """
    epsilon = _check(epsilon, "epsilon", 0.0, lo_open=True)
    delta = _check(delta, "delta", 0.0, 1.0, lo_open=True)
    if delta >= 1.0:
        raise InvalidParameterError(f"The 'delta' parameter must be in (0, 1). Got {delta!r} instead.")
    lo, hi = 0.0, max(epsilon, 1.0) * 2.0
    while cdp_delta(hi, epsilon) <= delta:  # pragma: no cover - only for huge epsilon
        hi *= 2.0
    for _ in range(_BISECT):
        mid = (lo + hi) / 2.0
        if cdp_delta(mid, epsilon) <= delta:
            lo = mid
        else:
            hi = mid
    return lo


def gaussian_rho(sensitivity: float, sigma: float) -> float:
    """ρ of the Gaussian mechanism: Δ² / (2σ²) (continuous and discrete Gaussian alike).

    Parameters
    ----------
    sensitivity : float
        L2 sensitivity Δ of the measured vector, ≥ 0.
    sigma : float
        Noise standard deviation σ, > 0.

    Returns
    -------
    float
        ρ ≥ 0.

    Raises
    ------
    InvalidParameterError
        If ``sensitivity`` is negative, ``sigma`` is not positive, or either is not a real number.

    Examples
    --------
    >>> gaussian_rho(1.0, 10.0)
    0.005
    """
    sensitivity = _check(sensitivity, "sensitivity", 0.0)
    sigma = _check(sigma, "sigma", 0.0, lo_open=True)
    return sensitivity**2 / (2.0 * sigma**2)


def gaussian_sigma(sensitivity: float, rho: float) -> float:
    """Noise standard deviation that makes the Gaussian mechanism ρ-zCDP: Δ / sqrt(2ρ).

    Parameters
    ----------
    sensitivity : float
        L2 sensitivity Δ of the measured vector, > 0.
    rho : float
        zCDP budget of this measurement, > 0.

    Returns
    -------
    float
        σ > 0.

    Raises
    ------
    InvalidParameterError
        If ``sensitivity`` or ``rho`` is not positive or not a real number.

    Examples
    --------
    >>> gaussian_sigma(1.0, 0.005)
    10.0
    """
    sensitivity = _check(sensitivity, "sensitivity", 0.0, lo_open=True)
    rho = _check(rho, "rho", 0.0, lo_open=True)
    return sensitivity / math.sqrt(2.0 * rho)


def exponential_rho(epsilon: float) -> float:
    """ρ of an ε-DP exponential mechanism: ε²/8 (bounded range; Cesar and Rogers 2021).

    Parameters
    ----------
    epsilon : float
        ε of the exponential mechanism, ≥ 0.

    Returns
    -------
    float
        ρ ≥ 0.

    Raises
    ------
    InvalidParameterError
        If ``epsilon`` is negative or not a real number.

    Examples
    --------
    >>> exponential_rho(1.0)
    0.125
    """
    epsilon = _check(epsilon, "epsilon", 0.0)
    return epsilon**2 / 8.0
