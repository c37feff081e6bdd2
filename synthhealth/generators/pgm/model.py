"""The fitted graphical model: marginals, sampling and a pickle-free saved state."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ...exceptions import InvalidParameterError
from .domain import Domain
from .inference import BeliefPropagation, Beliefs, query_marginal
from .junction_tree import JunctionTree
from .refine import RefineResult, refine_sample, target_counts
from .sampling import sample_tree

__all__ = ["FitInfo", "GraphicalModel"]

_FORMAT = "synthhealth.pgm.GraphicalModel"
_VERSION = 1


#: Most work per sweep (rows × Σ over attributes of states × target marginals holding it) that
#: ``sample(..., refine=True)`` takes on: about 6 s in all. flchain (11 attributes): samples up to
#: ~25,000 rows are refined; the 51-attribute core-patient schema: up to ~2,300 rows.
REFINE_MAX_WORK = 3e7


@dataclass(frozen=True)
class FitInfo:
    """How the estimation ended.

    Attributes
    ----------
    n_iter : int
        Iterations run (each evaluates the model once; rejected line-search steps count).
    loss : float
        Final value of ``sum_i ||P_i(mu) - y_i||^2 / sigma_i^2``.
    initial_loss : float
        The loss at the starting point (zero potentials, or the warm start).
    converged : bool
        Whether the stopping rule (``tol``) was met before ``iters`` ran out.
    """

    n_iter: int
    loss: float
    initial_loss: float
    converged: bool


class GraphicalModel:
    """A distribution ``p(x) ∝ exp(sum_C theta_C(x_C))`` on a junction tree, scaled to ``total`` records.

    Usually made by :func:`~synthhealth.generators.pgm.estimate`.

    Parameters
    ----------
    tree : JunctionTree
        The maximal cliques and how they connect.
    potentials : sequence of numpy.ndarray
        Log-potential of each clique of ``tree`` (axes in the clique's attribute order).
    total : float
        Estimated number of records (``> 0``).
    fit_info : FitInfo, optional
        How the estimation ended.

    Attributes
    ----------
    domain : Domain
    cliques : list of tuple of str
        Maximal cliques of the junction tree.
    total : float

    Examples
    --------
    >>> import numpy as np
    >>> from synthhealth.generators.pgm import Domain, Measurement, estimate
    >>> dom = Domain(("a", "b"), (2, 2))
    >>> m = Measurement(("a", "b"), np.array([[40.0, 10.0], [10.0, 40.0]]), sigma=1e-3)
    >>> model = estimate(dom, [m], iters=300)
    >>> np.round(model.marginal(("b",)), 3)
    array([50., 50.])
    >>> model.sample(3, np.random.default_rng(0)).shape
    (3, 2)
    """

    def __init__(
        self,
        tree: JunctionTree,
        potentials: Sequence[np.ndarray],
        total: float,
        fit_info: FitInfo | None = None,
        *,
        _beliefs: Beliefs | None = None,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, numbers.Real) or not (0 < total < math.inf):
            raise InvalidParameterError(
                f"The 'total' parameter of GraphicalModel must be a float in (0, inf). Got {total!r} instead."
            )
        self.tree = tree
        self.domain: Domain = tree.domain
        self.total = float(total)
        self.potentials = [np.asarray(p, dtype=np.float64) for p in potentials]
        self.fit_info = fit_info
        self._bp = BeliefPropagation(tree)
        self._beliefs = _beliefs if _beliefs is not None else self._bp.calibrate(self.potentials)

    @property
    def cliques(self) -> list[tuple[str, ...]]:
        """Maximal cliques of the junction tree, attributes in domain order."""
        return list(self.tree.cliques)

    def __repr__(self) -> str:
        return (
            f"GraphicalModel(attrs={len(self.domain)}, cliques={len(self.tree.cliques)}, "
            f"cells={self.tree.size()}, total={self.total:.6g})"
        )

    # --- queries ---------------------------------------------------------------------------------

    def probabilities(self, attrs: Sequence[str]) -> np.ndarray:
        """Model probabilities over ``attrs`` (axes in the order given); they sum to 1.

        Examples
        --------
        >>> import numpy as np
        >>> from synthhealth.generators.pgm import Domain, estimate
        >>> model = estimate(Domain(("a", "b"), (2, 5)), [], total=10.0)
        >>> model.probabilities(("b",))
        array([0.2, 0.2, 0.2, 0.2, 0.2])
        """
        attrs = self.domain.check_attrs(attrs)
        return query_marginal(self.tree, self._beliefs, attrs)

    def marginal(self, attrs: Sequence[str]) -> np.ndarray:
        """Estimated counts over ``attrs`` (axes in the order given); they sum to ``total``.

        Attributes may lie in different cliques; the answer is then computed by variable
        elimination on the junction tree.

        Examples
        --------
        >>> from synthhealth.generators.pgm import Domain, estimate
        >>> model = estimate(Domain(("a", "b"), (2, 5)), [], total=10.0)
        >>> model.marginal(("b", "a")).shape
        (5, 2)
        """
        return self.total * self.probabilities(attrs)

    def clique_marginals(self) -> list[np.ndarray]:
        """Probability table of each clique of :attr:`cliques` (read-only views)."""
        out = []
        for m in self._beliefs.marginals:
            v = m.view()
            v.flags.writeable = False
            out.append(v)
        return out

    def sample(self, n: int, rng: np.random.Generator, *, stratified: bool = False,
               refine: bool = False) -> np.ndarray:
        """Draw ``n`` records (state indices), columns in domain order.

        Parameters
        ----------
        n : int
            Number of records (``>= 0``).
        rng : numpy.random.Generator
            The only source of randomness; the same seed gives the same rows.
        stratified : bool, default False
            Balanced draws (see :mod:`.sampling`): each row still follows the model, the sample's
            clique marginals carry (almost) no multinomial noise. ``False``: independent rows.
        refine : bool, default False
            Then run :meth:`refine` on the sample when its work per sweep is at most
            ``REFINE_MAX_WORK`` (flchain: up to ~25,000 rows): its 2-way marginals move closer to
            the model's. Larger samples are not refined: their sampling noise is small anyway (it
            shrinks as ``1/sqrt(n)``) and the refinement's cost grows with ``n``.

        Returns
        -------
        numpy.ndarray
            ``int64`` array of shape ``(n, len(domain.attrs))``.

        Examples
        --------
        >>> import numpy as np
        >>> from synthhealth.generators.pgm import Domain, estimate
        >>> model = estimate(Domain(("a", "b"), (2, 5)), [], total=10.0)
        >>> model.sample(4, np.random.default_rng(1)).shape
        (4, 2)
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise InvalidParameterError(f"The 'n' parameter of GraphicalModel.sample must be an int in [0, inf). "
                                        f"Got {n!r} instead.")
        if not isinstance(rng, np.random.Generator):
            raise InvalidParameterError(
                f"The 'rng' parameter of GraphicalModel.sample must be a numpy.random.Generator. "
                f"Got {type(rng).__name__} instead."
            )
        codes = sample_tree(self.tree, self._beliefs, int(n), rng, stratified=stratified)
        if refine and 0 < n and n * self._refine_work_per_row() <= REFINE_MAX_WORK:
            codes = self.refine(codes, rng).codes
        return codes

    def _refine_work_per_row(self) -> int:
        """Σ over attributes of (states × number of refinement targets holding the attribute)."""
        d = len(self.domain.attrs)
        big = [set(c) for c in self.cliques if len(c) >= 3]
        return sum(k * (d - 1 + sum(a in c for c in big)) for a, k in zip(self.domain.attrs, self.domain.shape,
                                                                         strict=True))

    def refine(self, codes: np.ndarray, rng: np.random.Generator, *, max_sweeps: int = 20) -> RefineResult:
        """Move a sample's 2-way marginals (and its marginals on this model's larger cliques) towards the model's.

        Post-processing of the model only (see :mod:`.refine`): the L1 distance between the
        sample's counts and ``len(codes) ×`` the model's probabilities, over every pair of
        attributes and every clique of three or more, never increases.

        Parameters
        ----------
        codes : numpy.ndarray of int, shape (n, d)
            A sample over this model's domain (e.g. from :meth:`sample`); not modified.
        rng : numpy.random.Generator
        max_sweeps : int, default 20

        Returns
        -------
        RefineResult
            ``codes`` is the refined sample; ``distances`` the L1 distance after each sweep.

        Examples
        --------
        >>> import numpy as np
        >>> from synthhealth.generators.pgm import Domain, Measurement, estimate
        >>> ms = [Measurement(("a", "b"), np.array([[40.0, 10.0], [10.0, 40.0]]), sigma=1e-3)]
        >>> model = estimate(Domain(("a", "b"), (2, 2)), ms)
        >>> codes = model.sample(100, np.random.default_rng(0))
        >>> res = model.refine(codes, np.random.default_rng(1))
        >>> res.distances[-1] <= res.distances[0]
        True
        """
        codes = np.asarray(codes)
        attrs = self.domain.attrs
        if codes.ndim != 2 or codes.shape[1] != len(attrs):
            raise InvalidParameterError(
                f"The 'codes' parameter of GraphicalModel.refine must have shape (n, {len(attrs)}). "
                f"Got {codes.shape} instead.")
        n = len(codes)
        index = {a: i for i, a in enumerate(attrs)}
        targets = [((i, j), target_counts(n, self.probabilities((attrs[i], attrs[j]))))
                   for i in range(len(attrs)) for j in range(i + 1, len(attrs))]
        for clique in self.cliques:
            if len(clique) >= 3:
                targets.append((tuple(index[a] for a in clique), target_counts(n, self.probabilities(clique))))
        return refine_sample(codes, self.domain.shape, targets, rng, max_sweeps=max_sweeps)

    # --- persistence -----------------------------------------------------------------------------

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able metadata and named float arrays that rebuild this model with :meth:`from_state`.

        The arrays can be saved with ``np.savez`` and read back with ``np.load(..., allow_pickle=False)``.

        Examples
        --------
        >>> import json
        >>> from synthhealth.generators.pgm import Domain, GraphicalModel, estimate
        >>> model = estimate(Domain(("a", "b"), (2, 5)), [], total=10.0)
        >>> meta, arrays = model.to_state()
        >>> again = GraphicalModel.from_state(json.loads(json.dumps(meta)), arrays)
        >>> again.total
        10.0
        """
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "domain": self.domain.to_dict(),
            "cliques": [list(c) for c in self.tree.cliques],
            "parents": list(self.tree.parents),
            "total": self.total,
            "fit_info": None if self.fit_info is None else asdict(self.fit_info),
        }
        arrays = {f"potential_{i}": np.ascontiguousarray(p) for i, p in enumerate(self.potentials)}
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> GraphicalModel:
        """Rebuild a model from :meth:`to_state` output, checking format, version and shapes."""
        if not isinstance(meta, Mapping) or meta.get("format") != _FORMAT:
            got = meta.get("format") if isinstance(meta, Mapping) else type(meta).__name__
            raise InvalidParameterError(
                f"The 'meta' parameter of GraphicalModel.from_state must describe a {_FORMAT!r}. Got {got!r} instead."
            )
        if meta.get("version") != _VERSION:
            raise InvalidParameterError(
                f"The 'meta' parameter of GraphicalModel.from_state has version {meta.get('version')!r}; "
                f"this synthhealth reads version {_VERSION}."
            )
        try:
            domain = Domain.from_dict(meta["domain"])
            cliques = tuple(tuple(c) for c in meta["cliques"])
            parents = tuple(int(p) for p in meta["parents"])
            total = float(meta["total"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidParameterError(
                f"The 'meta' parameter of GraphicalModel.from_state is incomplete or malformed: {exc}."
            ) from None
        for c in cliques:
            if domain.canonical(domain.check_attrs(c, name="cliques")) != c:
                raise InvalidParameterError(f"Clique {c!r} in the saved state is not in domain order.")
        tree = JunctionTree(domain, cliques, parents)
        potentials = []
        for i, c in enumerate(cliques):
            key = f"potential_{i}"
            if key not in arrays:
                raise InvalidParameterError(f"The 'arrays' parameter of GraphicalModel.from_state lacks {key!r}.")
            arr = np.asarray(arrays[key])
            if arr.shape != domain.shape_of(c) or arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
                raise InvalidParameterError(
                    f"The array {key!r} must be finite floats of shape {domain.shape_of(c)}. "
                    f"Got {arr.dtype} of shape {arr.shape} instead."
                )
            potentials.append(arr.astype(np.float64))
        info = meta.get("fit_info")
        try:
            fit_info = FitInfo(**info) if isinstance(info, Mapping) else None
        except TypeError:
            raise InvalidParameterError(f"The saved 'fit_info' {info!r} does not match this version.") from None
        return cls(tree, potentials, total, fit_info)
