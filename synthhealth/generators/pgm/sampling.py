"""Ancestral sampling from a calibrated junction-tree model, vectorised over rows.

The root clique's attributes are drawn from its marginal; then, in pre-order, each clique's
attributes outside its separator are drawn from their conditional given the separator values already
drawn for the row. Every row is an independent draw from the model: there is no rounding and no
grouping that could correlate rows or columns.

The conditional draw needs no Python loop over rows or separator values: the conditional table is
laid out as one row of cumulative probabilities per separator value, row ``s`` shifted by ``s`` so
that the whole table is one sorted array, and a single ``searchsorted`` of ``s + u`` finds each
row's state.
"""

from __future__ import annotations

import numpy as np

from .inference import Beliefs
from .junction_tree import JunctionTree

__all__ = ["sample_tree"]


def _draw(cdf_rows: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index ``k`` per draw with ``cdf[rows, k-1] <= u < cdf[rows, k]``; ``cdf_rows`` is (n_rows, k)."""
    n_rows, width = cdf_rows.shape
    flat = (cdf_rows + np.arange(n_rows, dtype=np.float64)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + u, side="right") - rows * width
    return np.clip(idx, 0, width - 1)


def _cdf(table2d: np.ndarray) -> np.ndarray:
    """Cumulative sums along rows, each row ending at exactly 1 (rows of zeros become uniform)."""
    cdf = np.cumsum(table2d, axis=1)
    last = cdf[:, -1:]
    width = table2d.shape[1]
    empty = ~(last > 0)
    if np.any(empty):  # cannot happen for a calibrated model; kept so a draw never indexes past the end
        cdf = np.where(empty, np.arange(1, width + 1) / width, cdf)
        last = np.where(empty, 1.0, last)
    cdf = cdf / last
    cdf[:, -1] = 1.0
    return cdf


def _stratified_uniforms(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniform per row, *systematic within each group of equal ``rows``*: the m rows of a group get
    (r + v) / m for r = 0..m−1 in a random order, with one v ~ U(0, 1) per group.

    Each row's uniform is still exactly U(0, 1) and the rows of a group are exchangeable, but the
    group's states then follow the conditional distribution to within one row per state (controlled
    rounding), so the sample's marginals carry almost no multinomial noise on top of the model's.
    """
    n = len(rows)
    perm = rng.permutation(n)
    g = rows[perm]
    order = np.argsort(g, kind="stable")
    gs = g[order]
    starts = np.flatnonzero(np.concatenate([[True], gs[1:] != gs[:-1]]))
    sizes = np.diff(np.concatenate([starts, [n]]))
    group_of = np.repeat(np.arange(len(starts)), sizes)
    rank = np.arange(n) - starts[group_of]
    v = rng.random(len(starts))
    u = np.empty(n)
    u[perm[order]] = (rank + v[group_of]) / sizes[group_of]
    return u


def sample_tree(tree: JunctionTree, beliefs: Beliefs, n: int, rng: np.random.Generator, *,
                stratified: bool = False) -> np.ndarray:
    """Draw ``n`` rows of state indices, columns in domain order.

    With ``stratified=False`` every row is an independent draw. With ``stratified=True`` the
    uniforms are systematic within each group of rows sharing a separator value (see
    :func:`_stratified_uniforms`): each row is still distributed as the model says, but the
    sample's counts match the model's marginals to within rounding.

    Parameters
    ----------
    tree : JunctionTree
    beliefs : Beliefs
        Calibrated beliefs of the model on ``tree``.
    n : int
        Number of rows.
    rng : numpy.random.Generator
        Source of all randomness.
    stratified : bool, default False
        Systematic (controlled-rounding) uniforms within each separator group.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of shape ``(n, number of attributes)``.

    Examples
    --------
    >>> import numpy as np
    >>> from synthhealth.generators.pgm.domain import Domain
    >>> from synthhealth.generators.pgm.junction_tree import build_junction_tree
    >>> from synthhealth.generators.pgm.inference import BeliefPropagation
    >>> tree = build_junction_tree(Domain(("a", "b"), (2, 3)), [("a", "b")])
    >>> bp = BeliefPropagation(tree)
    >>> rows = sample_tree(tree, bp.calibrate([np.zeros((2, 3))]), 5, np.random.default_rng(0))
    >>> rows.shape, rows.dtype
    ((5, 2), dtype('int64'))
    """
    dom = tree.domain
    col = {a: k for k, a in enumerate(dom.attrs)}
    out = np.zeros((n, len(dom.attrs)), dtype=np.int64)
    if n == 0:
        return out
    for i in tree.order:
        clique = tree.cliques[i]
        sep = tree.separators[i]
        new = tuple(a for a in clique if a not in set(sep))
        table = beliefs.conditionals[i]
        perm = [clique.index(a) for a in sep + new]
        n_sep, n_new = dom.size(sep), dom.size(new)
        table2d = np.transpose(table, perm).reshape(n_sep, n_new)
        if sep:
            rows = np.ravel_multi_index(tuple(out[:, col[a]] for a in sep), dom.shape_of(sep))
        else:
            rows = np.zeros(n, dtype=np.int64)
        u = _stratified_uniforms(rows, rng) if stratified else rng.random(n)
        k = _draw(_cdf(table2d), rows, u)
        for a, states in zip(new, np.unravel_index(k, dom.shape_of(new)), strict=True):
            out[:, col[a]] = states
    return out
