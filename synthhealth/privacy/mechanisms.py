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
    """Installed OpenDP version.

    Returns
    -------
    str
        The version string of the installed ``opendp`` package, e.g. ``"0.16.0"``.

    Raises
    ------
    importlib.metadata.PackageNotFoundError
        If OpenDP is not installed.
    """
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
    """The cost of one mechanism call, as charged to the ledger before the output is released.

    Attributes
    ----------
    mechanism : str
        ``"discrete_gaussian"`` or ``"noisy_max"`` (OpenDP), ``"gaussian"`` or ``"gumbel_max"`` (seeded numpy).
    sensitivity : float
        Sensitivity of the measured vector (L2 for Gaussian noise, L∞ for selection scores).
    scale : float
        Noise scale (σ of the Gaussian, scale of the selection noise).
    rho : float
        zCDP cost of the call.
    library : str
        The sampler and its version (the ``library`` of the :class:`NoiseSource`).
    """

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
    seeded_source : str, default "a seeded numpy generator"
        How the caller's seeded randomness is described in the warning (a generator whose noise
        comes from elsewhere, e.g. torch generators seeded from this one, names it).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     src = NoiseSource(0)
    >>> src.gaussian_cost(10.0).rho
    0.005
    """

    def __init__(self, random_state: Any = None, *, seeded_source: str = "a seeded numpy generator") -> None:
        self.seeded = random_state is not None
        self.rng = check_random_state(random_state)
        if self.seeded:
            warnings.warn(
                f"random_state is set: DP noise comes from {seeded_source}. The result is reproducible "
                "but NOT FOR RELEASE; leave random_state=None for a release.",
                InsecureRandomnessWarning,
                stacklevel=3,
            )
            self.library = f"numpy {np.__version__} (seeded, not for release)"
        else:
            self.library = f"opendp {opendp_version()}"

    @property
    def secure(self) -> bool:
        """Whether the samplers are cryptographically secure (OpenDP's, on the release path).

        Examples
        --------
        >>> NoiseSource().secure
        True
        """
        return not self.seeded

    # ---------------------------------------------------------------- Gaussian
    def gaussian_cost(self, sigma: float, sensitivity: int = 1) -> Release:
        """ρ of adding N(0, σ²)-scale (discrete) Gaussian noise to a vector of L2 sensitivity Δ.

        Parameters
        ----------
        sigma : float
            Noise scale σ, > 0.
        sensitivity : int, default 1
            L2 sensitivity Δ of the counts (1 for a histogram when one patient is added or removed).

        Returns
        -------
        Release
            The mechanism, sensitivity, scale, ρ (from OpenDP's privacy map on the release path,
            Δ² / (2σ²) on the seeded path) and library; charge it to the ledger before sampling.

        Raises
        ------
        InvalidParameterError
            If ``sigma`` is not a positive finite number.

        Examples
        --------
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     src = NoiseSource(0)
        >>> cost = src.gaussian_cost(10.0, sensitivity=2)
        >>> cost.mechanism, cost.rho
        ('gaussian', 0.02)
        """
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

        Parameters
        ----------
        counts : numpy.ndarray
            Integer counts (e.g. a marginal histogram), any shape.
        sigma : float
            Noise scale σ (as given to :meth:`gaussian_cost`).

        Returns
        -------
        numpy.ndarray
            Float array of the shape of ``counts``: integer-valued (exact discrete Gaussian) on the
            release path, continuous Gaussian noise on the seeded path.

        Raises
        ------
        InvalidParameterError
            If ``counts`` does not hold integers.

        Examples
        --------
        >>> import warnings
        >>> import numpy as np
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     src = NoiseSource(0)
        >>> src.gaussian(np.array([[10, 20], [30, 40]]), 1.0).shape
        (2, 2)
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
        """ρ of selecting the argmax of scores (L∞ sensitivity Δ, not monotonic) with noise of ``scale``.

        Parameters
        ----------
        scale : float
            Scale of the selection noise (see :meth:`noisy_max_scale`).
        sensitivity : float
            L∞ sensitivity Δ of the scores.

        Returns
        -------
        Release
            The mechanism, sensitivity, scale, ρ (OpenDP's privacy map on the release path,
            (2Δ / scale)² / 8 on the seeded path) and library; charge it before selecting.

        Examples
        --------
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     src = NoiseSource(0)
        >>> src.noisy_max_cost(4.0, 1.0).rho
        0.03125
        """
        if self.seeded:
            eps = 2.0 * sensitivity / scale
            rho = eps**2 / 8.0
        else:
            rho = float(_noisy_max_measurement(float(scale)).map(float(sensitivity)))
        return Release("noisy_max" if not self.seeded else "gumbel_max", float(sensitivity), float(scale), rho,
                       self.library)

    @staticmethod
    def noisy_max_scale(rho: float, sensitivity: float) -> float:
        """Noise scale that makes noisy-max selection ρ-zCDP: ε = sqrt(8ρ), scale = 2Δ/ε.

        Parameters
        ----------
        rho : float
            zCDP budget of the selection, > 0.
        sensitivity : float
            L∞ sensitivity Δ of the scores.

        Returns
        -------
        float
            The noise scale to pass to :meth:`noisy_max_cost` and :meth:`noisy_max`.

        Raises
        ------
        InvalidParameterError
            If ``rho`` is not positive.

        Examples
        --------
        >>> NoiseSource.noisy_max_scale(0.125, 1.0)
        2.0
        """
        if not rho > 0:
            raise InvalidParameterError(f"The 'rho' parameter must be a float in (0, inf). Got {rho!r} instead.")
        return 2.0 * sensitivity / math.sqrt(8.0 * rho)

    def noisy_max(self, scores: np.ndarray, scale: float) -> int:
        """Index of the (noisy) highest score. Charge :meth:`noisy_max_cost` first.

        Parameters
        ----------
        scores : numpy.ndarray
            Non-empty 1-d array of finite scores.
        scale : float
            Scale of the selection noise (as given to :meth:`noisy_max_cost`).

        Returns
        -------
        int
            Position of the selected score in ``scores``.

        Raises
        ------
        InvalidParameterError
            If ``scores`` is not a non-empty 1-d array of finite numbers.

        Examples
        --------
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     src = NoiseSource(0)
        >>> src.noisy_max([0.0, 0.0, 100.0], 1.0)
        2
        """
        s = np.asarray(scores, dtype=float)
        if s.ndim != 1 or len(s) == 0 or not np.all(np.isfinite(s)):
            raise InvalidParameterError("The 'scores' parameter must be a non-empty 1-d array of finite floats.")
        if self.seeded:
            return int(np.argmax(s + self.rng.gumbel(0.0, scale, size=s.shape)))
        return int(_noisy_max_measurement(float(scale))(s.tolist()))
