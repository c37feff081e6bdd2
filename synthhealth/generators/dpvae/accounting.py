"""DP-SGD accounting with opacus's accountants (PRV by default, RDP as an option).

DP-SGD with Poisson sampling at rate q, noise multiplier σ and T steps is the T-fold composition
of the Poisson-subsampled Gaussian mechanism; its (ε, δ) depends on (σ, q, T) only — never on the
number of rows. opacus's PRV accountant (Gopi, Lee and Wutschitz 2021) returns an *upper bound*
on ε (estimate + its numerical error); the RDP accountant is looser but simple.

The planning is done before the data is touched: σ from the target (ε, δ) with
``opacus.accountants.utils.get_noise_multiplier`` (binary search; the σ returned has ε(σ) < target),
then ε(σ, q, T) read back from the same accountant is what the ledger is charged. After training,
ε is read back again for the steps actually taken.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ...exceptions import AccountingError, InvalidParameterError

__all__ = ["ACCOUNTANTS", "dp_sgd_epsilon", "eps_error_for", "noise_multiplier"]

ACCOUNTANTS = ("prv", "rdp")
_MAX_SIGMA = 1e6


def _accountant(name: str) -> Any:
    from opacus.accountants import PRVAccountant, RDPAccountant

    if name == "prv":
        return PRVAccountant()
    if name == "rdp":
        return RDPAccountant()
    raise InvalidParameterError(f"The 'accountant' parameter must be one of 'prv', 'rdp'. Got {name!r} instead.")


def eps_error_for(epsilon: float) -> float:
    """PRV's numerical slack on ε: opacus's 0.01, or 1 % of ε below ε = 1 (PRV adds it to its bound)."""
    return 0.01 * min(1.0, float(epsilon))


def dp_sgd_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                   accountant: str = "prv", eps_error: float = 0.01) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps at (σ, q), for ``delta``.

    For PRV this is the accountant's *upper bound* (its estimate plus ``eps_error``, opacus's
    default 0.01); :class:`DPVAE` passes 1 % of the target ε below ε = 1.

    Examples
    --------
    >>> round(dp_sgd_epsilon(1.0, 0.01, 1000, 1e-5, "rdp"), 2)
    2.1
    """
    if steps <= 0:
        return 0.0
    acc = _accountant(accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # opacus warns on optimal RDP orders at the edge of its grid
            eps = float(acc.get_epsilon(delta=float(delta), eps_error=eps_error) if accountant == "prv"
                        else acc.get_epsilon(delta=float(delta)))
    except (ValueError, RuntimeError, OverflowError) as exc:
        raise AccountingError(
            f"the {accountant.upper()} accountant failed for noise multiplier {noise_multiplier:.6g}, sample rate "
            f"{sample_rate:.6g}, {steps} steps, delta {delta:.3g}: {exc}") from exc
    if not math.isfinite(eps) or eps < 0:
        raise AccountingError(f"the {accountant.upper()} accountant returned epsilon={eps!r}")
    return eps


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "prv",
                     rel_tol: float = 0.01) -> tuple[float, float]:
    """The noise multiplier σ for a target (ε, δ), and the accountant's ε at that σ (≤ ``epsilon``).

    The search of ``opacus.accountants.utils.get_noise_multiplier`` (σ such that the accountant's ε
    is below the target by less than a tolerance, here relative: ``rel_tol·ε``), with fewer
    accountant calls: the bracket starts at the σ that RDP needs (for PRV: RDP's ε bounds PRV's from
    above, so PRV needs at most that σ), and the bracket is narrowed by interpolating ε linearly in
    1/σ (regula falsi) rather than by bisection.

    Returns
    -------
    (sigma, epsilon_at_sigma)
        ``epsilon_at_sigma <= epsilon``: what the ledger is charged.

    Raises
    ------
    InvalidParameterError
        If no σ up to 10⁶ reaches ``epsilon`` (the budget is too small for the plan).

    Examples
    --------
    >>> s, e = noise_multiplier(1.0, 1e-5, 0.01, 1000, "rdp")
    >>> 0.99 <= e <= 1.0 and round(s, 2)
    1.52
    """
    if not epsilon > 0:
        raise InvalidParameterError(f"DP-SGD needs a positive epsilon. Got {epsilon!r} instead.")

    eps_error = eps_error_for(epsilon)

    def eps_at(sigma: float) -> float:
        return dp_sgd_epsilon(sigma, sample_rate, steps, delta, accountant, eps_error=eps_error)

    hi = 10.0  # opacus's starting point (RDP is slow to evaluate at small σ and large q)
    if accountant == "prv":
        from opacus.accountants.utils import get_noise_multiplier

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hi = float(get_noise_multiplier(target_epsilon=float(epsilon), target_delta=float(delta),
                                                sample_rate=float(sample_rate), steps=int(steps), accountant="rdp",
                                                epsilon_tolerance=rel_tol * epsilon / 4))
        except ValueError:  # RDP's ε has a floor (largest order 63): below it, search from σ = 10
            hi = 10.0
    e_hi = eps_at(hi)
    lo, e_lo = 0.0, math.inf
    while e_hi > epsilon:
        if hi >= _MAX_SIGMA:
            raise InvalidParameterError(
                f"DP-SGD cannot reach epsilon={epsilon:.4g} (delta={delta:.3g}) with {steps} steps at sample rate "
                f"{sample_rate:.4g}, even with noise multiplier {_MAX_SIGMA:g}: lower 'epochs' or raise 'epsilon'.")
        lo, e_lo = hi, e_hi
        hi = min(2.0 * hi, _MAX_SIGMA)
        e_hi = eps_at(hi)
    if lo == 0.0:
        lo = 0.8 * hi
        for _ in range(200):
            e_lo = eps_at(lo)
            if e_lo > epsilon:
                break
            hi, e_hi, lo = lo, e_lo, 0.5 * lo
    # ε is close to linear in 1/σ: interpolate there (regula falsi, Illinois variant), aiming just
    # below the target; fall back to bisection when interpolation stalls
    aim = epsilon * (1.0 - rel_tol / 2)
    w_lo = w_hi = 1.0
    for it in range(60):
        if epsilon - e_hi <= rel_tol * epsilon or hi - lo <= 1e-9 * hi:
            break
        x_lo, x_hi = 1.0 / lo, 1.0 / hi
        f_lo, f_hi = w_lo * (e_lo - aim), w_hi * (e_hi - aim)
        x = x_hi + (x_lo - x_hi) * (-f_hi) / (f_lo - f_hi) if it < 30 and f_lo != f_hi else 0.5 * (x_lo + x_hi)
        mid = min(max(1.0 / x, lo), hi) if x > 0 else 0.5 * (lo + hi)
        e_mid = eps_at(mid)
        if e_mid <= epsilon:
            hi, e_hi = mid, e_mid
            w_lo, w_hi = w_lo * 0.5, 1.0
        else:
            lo, e_lo = mid, e_mid
            w_lo, w_hi = 1.0, w_hi * 0.5
    return hi, e_hi
