"""Ancestral sampling from a calibrated junction-tree model, vectorised over rows.

The root clique's attributes are drawn from its marginal; then, in pre-order, each clique's
attributes outside its separator are drawn from their conditional given the separator values already
drawn for the row. By default every row is an independent draw from the model. With
``stratified=True`` every row still follows the model exactly, but the rows of a separator group
share one randomly rotated systematic grid of uniforms, spread evenly over the attributes drawn
earlier (see :func:`_balanced_uniforms`): the sample's marginals then match the model's to within
rounding instead of carrying multinomial noise on top of it.

The conditional draw needs no Python loop over rows or separator values: the conditional table is
laid out as one row of cumulative probabilities per separator value, row ``s`` shifted by ``s`` so
that the whole table is one sorted array, and a single ``searchsorted`` of ``s + u`` finds each
row's state.
"""

from __future__ import annotations

import math

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


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_KEY_LIMIT = 2**62


def _balanced_uniforms(rows: np.ndarray, keys: np.ndarray, rng: np.random.Generator, rows_span: int,
                       keys_span: int) -> np.ndarray:
    """One uniform per row: a randomly rotated systematic grid within each group of equal ``rows``,
    spread evenly over the rows' ``keys``.

    Within a group of ``m`` rows, the rows are put in ``keys`` order (ties in random order); the
    ``j``-th gets the rank ``r_j`` of ``frac(j * φ)`` (φ the golden ratio: a low-discrepancy
    sequence) among the group's ``m`` such numbers, and the uniform ``frac(r_j / m + U)`` with one
    ``U ~ U(0, 1)`` per group. Hence:

    - every row's uniform is exactly ``U(0, 1)`` whatever its key (the rotation ``U`` is independent
      of the ranks), so every row still follows the model's conditional;
    - the group's uniforms are a systematic grid (one in each ``[k/m, (k+1)/m)``), so the group's
      states follow the conditional to within one row per state (controlled rounding);
    - any run of consecutive rows in key order (e.g. the rows with one value of an attribute drawn
      earlier) gets well-spread uniforms, so the new states are split almost proportionally
      between the key values as well: the conditional independence that the model states is
      carried into the sample instead of being blurred by multinomial noise.

    Parameters
    ----------
    rows : ndarray of int, shape (n,)
        Group of each row (the separator value).
    keys : ndarray of int, shape (n,)
        Sort key within groups (earlier drawn attributes, combined).
    rng : numpy.random.Generator
    rows_span, keys_span : int
        Upper bounds (exclusive) of ``rows`` and ``keys``, from the domain.
    """
    n = len(rows)
    if n == 0:
        return np.empty(0)
    if rows_span * keys_span <= _KEY_LIMIT:  # one key, random ties by a stable sort of a shuffle
        perm = rng.permutation(n)
        order = perm[np.argsort((rows * keys_span + keys)[perm], kind="stable")]
    else:
        order = np.lexsort((rng.random(n), keys, rows))
    g = rows[order]
    starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    sizes = np.diff(np.concatenate([starts, [n]]))
    group_of = np.repeat(np.arange(len(starts)), sizes)
    pos = np.arange(n) - starts[group_of]
    x = np.mod(pos * _GOLDEN, 1.0)
    # sort by (group, x); the gaps between the m values of x in a group are at least ~1/(3m)
    # (three-distance theorem), so one float key group + x is exact while 3·n² < 2**52
    by_x = np.argsort(group_of + x, kind="stable") if n <= 2**24 else np.lexsort((x, group_of))
    rank = np.empty(n, dtype=np.int64)
    rank[by_x] = np.arange(n) - starts[group_of[by_x]]
    rotation = rng.random(len(starts))
    u = np.empty(n)
    u[order] = np.mod(rank / sizes[group_of] + rotation[group_of], 1.0)
    return u


def _combined_key(out: np.ndarray, columns: list[int], shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """One int64 key from ``columns`` of ``out`` (lexicographic, first column most significant),
    using as many leading columns as fit in 62 bits; and its span (the product of their sizes)."""
    key = np.zeros(len(out), dtype=np.int64)
    span = 1
    for c in columns:
        if span * shape[c] > _KEY_LIMIT:
            break
        key = key * shape[c] + out[:, c]
        span *= shape[c]
    return key, span


def sample_tree(tree: JunctionTree, beliefs: Beliefs, n: int, rng: np.random.Generator, *,
                stratified: bool = False) -> np.ndarray:
    """Draw ``n`` rows of state indices, columns in domain order.

    With ``stratified=False`` every row is an independent draw. With ``stratified=True`` the
    uniforms of the rows that share a separator value form one randomly rotated systematic grid,
    handed out in a low-discrepancy order over the attributes drawn earlier (most recent first; see
    :func:`_balanced_uniforms`): each row is still distributed as the model says, but the sample's
    counts match the model's marginals to within rounding, also for pairs of attributes in
    different cliques (on flchain at ε = 1 the mean 2-way TVD between the sample and the model's
    own marginals drops from 0.018 with per-group systematic uniforms to 0.012).

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
        Balanced (controlled-rounding) uniforms within each separator group.

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
    drawn: list[int] = []  # columns drawn so far, most recent first
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
        if stratified:
            sep_cols = {col[a] for a in sep}
            keys, span = _combined_key(out, [c for c in drawn if c not in sep_cols], dom.shape)
            u = _balanced_uniforms(rows, keys, rng, n_sep, span)
        else:
            u = rng.random(n)
        k = _draw(_cdf(table2d), rows, u)
        for a, states in zip(new, np.unravel_index(k, dom.shape_of(new)), strict=True):
            out[:, col[a]] = states
        drawn[:0] = [col[a] for a in reversed(new)]
    return out
