"""The only door to the private patient codes inside a generator.

Every release of information goes through :class:`PrivateData`, which charges the ledger
*before* computing the noisy output:

- :meth:`measure` — a marginal (histogram) with Gaussian noise. Under add/remove-one-patient a
  patient is one row, so one cell changes by 1: L2 sensitivity 1.
- :meth:`count` — the number of patients with Gaussian noise (sensitivity 1).
- :meth:`select` — private selection (noisy max) among candidates whose scores have a declared
  L∞ sensitivity.

Keeping data access in one small class makes the privacy argument auditable: the generators
above only see noisy outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..exceptions import InvalidParameterError
from ..privacy import LedgerEntry, NoiseSource, PrivacyLedger
from .pgm import Domain, Measurement

__all__ = ["PrivateData", "marginal_counts"]


def marginal_counts(codes: np.ndarray, domain: Domain, clique: Sequence[str]) -> np.ndarray:
    """Exact histogram of ``codes`` over ``clique`` (shape: the clique's state counts).

    Only :class:`PrivateData` calls this on private data.
    """
    idx = [domain.attrs.index(a) for a in clique]
    shape = tuple(domain.shape[i] for i in idx)
    if not idx:
        return np.array(float(len(codes)))
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in idx), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)


class PrivateData:
    """Private encoded table + noise source + ledger: measure and select, charged first.

    Parameters
    ----------
    codes : ndarray of int, shape (n_patients, n_attributes)
        One row per patient (the privacy unit), every code inside the public domain.
    domain : Domain
        The public domain (from the schema).
    noise : NoiseSource
    ledger : PrivacyLedger
    fit_id : str
    """

    def __init__(self, codes: np.ndarray, domain: Domain, noise: NoiseSource, ledger: PrivacyLedger,
                 fit_id: str) -> None:
        if codes.ndim != 2 or codes.shape[1] != len(domain.attrs):
            raise InvalidParameterError(
                f"The 'codes' parameter must have shape (n, {len(domain.attrs)}). Got {codes.shape} instead.")
        self._codes = codes
        self.domain = domain
        self.noise = noise
        self.ledger = ledger
        self.fit_id = fit_id
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def _exact(self, clique: tuple[str, ...]) -> np.ndarray:
        if clique not in self._cache:
            self._cache[clique] = marginal_counts(self._codes, self.domain, clique)
        return self._cache[clique]

    def _charge_gaussian(self, target: str, sigma: float) -> None:
        """Charge the ledger for a sensitivity-1 Gaussian release of scale σ (before it is computed)."""
        cost = self.noise.gaussian_cost(sigma, sensitivity=1)
        self.ledger.charge(LedgerEntry(
            mechanism=cost.mechanism, target=target, sensitivity=cost.sensitivity, scale=cost.scale, rho=cost.rho,
            fit_id=self.fit_id, library=cost.library, seeded=self.noise.seeded, secure=self.noise.secure))

    def measure(self, clique: Sequence[str], sigma: float) -> Measurement:
        """Noisy marginal over ``clique`` with Gaussian noise σ (charged before release)."""
        clique = tuple(clique)
        self._charge_gaussian(f"marginal({', '.join(clique)})", sigma)
        noisy = self.noise.gaussian(self._exact(clique), sigma)
        return Measurement(clique, noisy, float(sigma))

    def count(self, sigma: float) -> float:
        """Noisy number of patients with Gaussian noise σ (sensitivity 1; charged before release)."""
        self._charge_gaussian("count(patients)", sigma)
        return float(self.noise.gaussian(np.array([len(self._codes)], dtype=np.int64), sigma)[0])

    def select(
        self,
        candidates: Sequence[tuple[str, ...]],
        score: Callable[[tuple[str, ...], np.ndarray], float],
        sensitivity: float,
        rho: float,
        target: str,
    ) -> int:
        """Privately pick a candidate with the highest ``score(candidate, exact_marginal)``.

        Parameters
        ----------
        candidates : sequence of attribute tuples
        score : callable
            Gets each candidate and its exact marginal; its L∞ sensitivity (over add/remove one
            patient) must be at most ``sensitivity``.
        sensitivity : float
        rho : float
            zCDP cost of this selection.
        target : str
            What is being selected (for the ledger).

        Returns
        -------
        int
            Index into ``candidates``.
        """
        if not candidates:
            raise InvalidParameterError("The 'candidates' parameter of select must not be empty.")
        scale = self.noise.noisy_max_scale(rho, sensitivity)
        cost = self.noise.noisy_max_cost(scale, sensitivity)
        self.ledger.charge(LedgerEntry(
            mechanism=cost.mechanism, target=target, sensitivity=cost.sensitivity, scale=cost.scale, rho=cost.rho,
            fit_id=self.fit_id, library=cost.library, seeded=self.noise.seeded, secure=self.noise.secure))
        scores = np.array([score(c, self._exact(c)) for c in candidates], dtype=float)
        return self.noise.noisy_max(scores, scale)
