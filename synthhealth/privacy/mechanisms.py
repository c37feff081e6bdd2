"""Noise from vetted samplers: OpenDP's exact discrete Gaussian and noisy-max selection.

Release path (``random_state=None``): OpenDP 0.16 (``make_gaussian`` on integer counts, the
exact discrete Gaussian; ``make_noisy_max`` for selection), whose own privacy maps give the ρ
that is charged. Seeded path (``random_state`` given, for tests and reproducibility): numpy
draws with the same scales and the same ρ; every ledger entry then says ``seeded: true`` and the
run is NOT FOR RELEASE.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .._validation import check_random_state
from ..exceptions import InsecureRandomnessWarning, InvalidParameterError
from .accounting import gaussian_rho

__all__ = ["NoiseSource", "Release"]


@lru_cache(maxsize=1)
def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def opendp_version() -> str:
    """Installed OpenDP version."""
    from importlib.metadata import version

    return version("opendp")


@lru_cache(maxsize=64)
def _gaussian_measurement(sigma: float) -> Any:
    dp = _opendp()
    return dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int), scale=sigma)


@lru_cache(maxsize=64)
def _noisy_max_measurement(scale: float) -> Any:
    dp = _opendp()
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.linf_distance(T=float, monotonic=False)
    return dp.m.make_noisy_max(*space, dp.zero_concentrated_divergence(), scale=scale)


@dataclass(frozen=True)
class Release:
    """The cost of one mechanism call, as charged to the ledger before the output is released."""

    mechanism: str
    sensitivity: float
    scale: float
    rho: float
    library: str


class NoiseSource:
    """Source of DP noise for one fit.

    Parameters
    ----------
    random_state : None, int or numpy.random.Generator
        ``None`` (default): OpenDP's secure samplers, fit for release. Otherwise a seeded numpy
        Generator is used (reproducible, NOT for release; warns :class:`InsecureRandomnessWarning`).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     src = NoiseSource(0)
    >>> src.gaussian_cost(10.0).rho
    0.005
    """

    def __init__(self, random_state: Any = None) -> None:
        self.seeded = random_state is not None
        self.rng = check_random_state(random_state)
        if self.seeded:
            warnings.warn(
                "random_state is set: DP noise comes from a seeded numpy generator. The result is reproducible "
                "but NOT FOR RELEASE; leave random_state=None for a release.",
                InsecureRandomnessWarning,
                stacklevel=3,
            )
            self.library = f"numpy {np.__version__} (seeded, not for release)"
        else:
            self.library = f"opendp {opendp_version()}"

    # ---------------------------------------------------------------- Gaussian
    def gaussian_cost(self, sigma: float, sensitivity: int = 1) -> Release:
        """ρ of adding N(0, σ²)-scale (discrete) Gaussian noise to a vector of L2 sensitivity Δ."""
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise InvalidParameterError(f"The 'sigma' parameter must be a float in (0, inf). Got {sigma!r} instead.")
        if self.seeded:
            rho = gaussian_rho(sensitivity, sigma)
        else:
            rho = float(_gaussian_measurement(float(sigma)).map(int(sensitivity)))
        return Release("discrete_gaussian" if not self.seeded else "gaussian", float(sensitivity), float(sigma), rho,
                       self.library)

    def gaussian(self, counts: np.ndarray, sigma: float) -> np.ndarray:
        """Noisy copy of integer ``counts`` (any shape) with Gaussian noise of scale σ.

        Charge :meth:`gaussian_cost` to the ledger *before* calling this.
        """
        arr = np.asarray(counts)
        if not np.issubdtype(arr.dtype, np.integer):
            raise InvalidParameterError(
                f"The 'counts' parameter must hold integers (histogram counts). Got dtype {arr.dtype} instead.")
        if self.seeded:
            return arr.astype(float) + self.rng.normal(0.0, sigma, size=arr.shape)
        noisy = _gaussian_measurement(float(sigma))(arr.ravel().astype(np.int64).tolist())
        return np.asarray(noisy, dtype=float).reshape(arr.shape)

    # --------------------------------------------------------------- selection
    def noisy_max_cost(self, scale: float, sensitivity: float) -> Release:
        """ρ of selecting the argmax of scores (L∞ sensitivity Δ, not monotonic) with noise of ``scale``."""
        if self.seeded:
            eps = 2.0 * sensitivity / scale
            rho = eps**2 / 8.0
        else:
            rho = float(_noisy_max_measurement(float(scale)).map(float(sensitivity)))
        return Release("noisy_max" if not self.seeded else "gumbel_max", float(sensitivity), float(scale), rho,
                       self.library)

    @staticmethod
    def noisy_max_scale(rho: float, sensitivity: float) -> float:
        """Noise scale that makes noisy-max selection ρ-zCDP: ε = sqrt(8ρ), scale = 2Δ/ε."""
        if not rho > 0:
            raise InvalidParameterError(f"The 'rho' parameter must be a float in (0, inf). Got {rho!r} instead.")
        return 2.0 * sensitivity / math.sqrt(8.0 * rho)

    def noisy_max(self, scores: np.ndarray, scale: float) -> int:
        """Index of the (noisy) highest score. Charge :meth:`noisy_max_cost` first."""
        s = np.asarray(scores, dtype=float)
        if s.ndim != 1 or len(s) == 0 or not np.all(np.isfinite(s)):
            raise InvalidParameterError("The 'scores' parameter must be a non-empty 1-d array of finite floats.")
        if self.seeded:
            return int(np.argmax(s + self.rng.gumbel(0.0, scale, size=s.shape)))
        return int(_noisy_max_measurement(float(scale))(s.tolist()))
