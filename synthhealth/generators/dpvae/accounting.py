"""DP-SGD accounting with opacus's accountants (PRV by default, RDP as an option).

DP-SGD with Poisson sampling at rate q, noise multiplier σ and T steps is the T-fold composition
of the Poisson-subsampled Gaussian mechanism; its (ε, δ) depends on (σ, q, T) only — never on the
number of rows. opacus's PRV accountant (Gopi, Lee and Wutschitz 2021) returns an *upper bound*
on ε (estimate + its numerical error); the RDP accountant is looser but simple.

The planning is done before the data is touched: σ from the target (ε, δ) with
``opacus.accountants.utils.get_noise_multiplier`` (binary search; the σ returned has ε(σ) < target),
then ε(σ, q, T) read back from the same accountant is what the ledger is charged. After training,
ε is read back again for the steps actually taken.

Other Gaussian mechanisms of the same fit (the noisy 1-way marginals) are composed with DP-SGD *in
the same accountant*: each is an ``(noise_multiplier, sample_rate, steps)`` history entry (a plain
Gaussian mechanism of L2 sensitivity Δ and noise σ is ``(σ/Δ, 1.0, 1)``), passed as ``extra``, so
the composed ε is the accountant's bound on the whole sequence rather than a sum of ε's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from ...exceptions import AccountingError, InvalidParameterError

__all__ = ["ACCOUNTANTS", "History", "composed_epsilon", "dp_sgd_epsilon", "eps_error_for", "gaussian_entry",
           "noise_multiplier"]

ACCOUNTANTS = ("prv", "rdp")
_MAX_SIGMA = 1e6

#: An accountant history: ``(noise_multiplier, sample_rate, steps)`` entries, as in opacus.
History = Sequence[tuple[float, float, int]]


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


def gaussian_entry(sigma: float, sensitivity: float) -> tuple[float, float, int]:
    """The history entry of one (non-subsampled) Gaussian mechanism: noise σ on a vector of L2 sensitivity Δ.

    Examples
    --------
    >>> gaussian_entry(30.0, 3.0)
    (10.0, 1.0, 1)
    """
    if not (sigma > 0 and sensitivity > 0 and math.isfinite(sigma) and math.isfinite(sensitivity)):
        raise InvalidParameterError(
            f"A Gaussian mechanism needs a positive noise scale and sensitivity. Got sigma={sigma!r}, "
            f"sensitivity={sensitivity!r} instead.")
    return (float(sigma) / float(sensitivity), 1.0, 1)


def composed_epsilon(history: History, delta: float, accountant: str = "prv", eps_error: float = 0.01) -> float:
    """ε (at ``delta``) of the composition of every entry of ``history`` in one opacus accountant.

    Each entry is ``(noise_multiplier, sample_rate, steps)``: ``steps`` Poisson-subsampled Gaussian
    mechanisms (``sample_rate = 1``: no subsampling). For PRV this is the accountant's *upper bound*.

    Examples
    --------
    >>> e1 = composed_epsilon([(10.0, 1.0, 1)], 1e-5, "rdp")
    >>> e2 = composed_epsilon([(10.0, 1.0, 1), (1.0, 0.01, 1000)], 1e-5, "rdp")
    >>> e1 < e2 < e1 + dp_sgd_epsilon(1.0, 0.01, 1000, 1e-5, "rdp")
    True
    """
    hist = [(float(s), float(q), int(t)) for s, q, t in history if int(t) > 0]
    if not hist:
        return 0.0
    acc = _accountant(accountant)
    acc.history = hist
    desc = ", ".join(f"(sigma={s:.6g}, q={q:.6g}, steps={t})" for s, q, t in hist)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # opacus warns on optimal RDP orders at the edge of its grid
            eps = float(acc.get_epsilon(delta=float(delta), eps_error=eps_error) if accountant == "prv"
                        else acc.get_epsilon(delta=float(delta)))
    except (ValueError, RuntimeError, OverflowError) as exc:
        raise AccountingError(
            f"the {accountant.upper()} accountant failed for {desc}, delta {delta:.3g}: {exc}") from exc
    if not math.isfinite(eps) or eps < 0:
        raise AccountingError(f"the {accountant.upper()} accountant returned epsilon={eps!r} for {desc}")
    return eps


def dp_sgd_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                   accountant: str = "prv", eps_error: float = 0.01, extra: History = ()) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps at (σ, q), for ``delta``, composed with ``extra``.

    For PRV this is the accountant's *upper bound* (its estimate plus ``eps_error``, opacus's
    default 0.01); :class:`DPVAE` passes 1 % of the target ε below ε = 1. ``extra``: other
    mechanisms of the same fit (history entries, see :func:`gaussian_entry`) composed in the same
    accountant.

    Examples
    --------
    >>> round(dp_sgd_epsilon(1.0, 0.01, 1000, 1e-5, "rdp"), 2)
    2.1
    """
    return composed_epsilon([(noise_multiplier, sample_rate, steps), *extra], delta, accountant, eps_error)


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "prv",
                     rel_tol: float = 0.01, extra: History = ()) -> tuple[float, float]:
    """The noise multiplier σ for a target (ε, δ), and the accountant's ε at that σ (≤ ``epsilon``).

    With ``extra`` (other mechanisms of the fit, as history entries), σ is such that DP-SGD *composed
    with them in the same accountant* meets the target, and the ε returned is that of the composition.

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
    extra = [(float(s), float(r), int(t)) for s, r, t in extra]
    if extra:
        floor = composed_epsilon(extra, delta, accountant, eps_error=eps_error)
        if floor >= epsilon:
            raise InvalidParameterError(
                f"DP-SGD cannot reach epsilon={epsilon:.4g} (delta={delta:.3g}): the other mechanisms composed "
                f"with it already spend epsilon={floor:.4g}.")

    def eps_at(sigma: float) -> float:
        return dp_sgd_epsilon(sigma, sample_rate, steps, delta, accountant, eps_error=eps_error, extra=extra)

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
