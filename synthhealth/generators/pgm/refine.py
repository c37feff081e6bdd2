"""Bring a sample's low-order marginals closer to the model's: a local search over single values.

A sample of ``n`` rows drawn from a model carries sampling noise on top of the model: on flchain
(5,511 rows, 11 attributes) an AIM sample's 2-way marginals are 0.012 TVD away from the model's
even with balanced sampling, a quarter of its whole distance to the real data. :func:`refine_sample`
removes most of that noise (to about 0.0035) by changing one value of one row at a time, as
PrivSyn's record updating does (Zhang et al., USENIX Security 2021), but towards the *model's*
marginals (consistent, non-negative, already private) instead of noisy measurements.

It minimises the L1 distance ``sum_t ||counts_t(sample) - target_t||_1`` over the target marginals
(``n ×`` the model's 2-way marginals and its cliques). For each attribute in turn, every row gets
its best new value (the one that lowers the distance most, all targets holding that attribute
counted); moves are then accepted in batches, each move's gain re-evaluated as if every better move
in the batch were accepted before it (its rank among the moves into / out of the same cell), and a
move is kept only if that gain is still negative. Because ``|·|`` is convex, moves that are dropped
only make the kept ones better, so **the distance never increases**. No move puts a row into a
cell whose target is below half a row: the search never creates combinations that the model
(nearly) rules out. Everything here is
post-processing of the model: it never sees the private data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RefineResult", "refine_sample", "target_counts"]

#: Stop when a sweep over all attributes lowers the distance by less than this fraction (on flchain
#: the first 8 sweeps make 95 % of the TVD gain of 26).
_REL_TOL = 1e-2
#: A move may not add a row to a cell whose target count is below this: under L1, creating a row
#: the model says should (almost) not exist costs less than 1, and gains elsewhere would pay for it
#: (flchain: 50-70 of 5,511 rows landed in pair cells with expected count < 0.05 without this).
_MIN_TARGET = 0.5
#: Batches per attribute and sweep: after each, the rows whose move was held back are re-evaluated.
_PASSES = 4


@dataclass
class RefineResult:
    """What :func:`refine_sample` did.

    Attributes
    ----------
    codes : numpy.ndarray
        The refined sample (a new array).
    distances : list of float
        The L1 distance to the targets before the first sweep and after each sweep
        (non-increasing).
    moves : int
        Number of values changed.
    """

    codes: np.ndarray
    distances: list[float]
    moves: int


def _flat(codes: np.ndarray, cols: Sequence[int], dims: Sequence[int]) -> np.ndarray:
    if len(cols) == 1:
        return codes[:, cols[0]].astype(np.int64)
    return np.ravel_multi_index(tuple(codes[:, c] for c in cols), tuple(dims)).astype(np.int64)


def _ranked(cells: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rank of each entry among those with the same cell, in ``order`` (0 = first)."""
    sorted_cells = cells[order]
    idx = np.argsort(sorted_cells, kind="stable")
    sc = sorted_cells[idx]
    starts = np.r_[0, np.flatnonzero(sc[1:] != sc[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(sc)]))
    rank_sorted = np.arange(len(sc)) - group_start
    rank = np.empty(len(sc), dtype=np.int64)
    rank[order[idx]] = rank_sorted
    return rank


def _distance(codes: np.ndarray, targets: Sequence[tuple[tuple[int, ...], np.ndarray]]) -> float:
    out = 0.0
    for cols, t in targets:
        c = np.bincount(_flat(codes, cols, t.shape), minlength=t.size)
        out += float(np.abs(c - t.ravel()).sum())
    return out


def _move_attribute(x: np.ndarray, j: int, kj: int, shape: Sequence[int],
                    targets: Sequence[tuple[tuple[int, ...], np.ndarray]], rows: np.ndarray,
                    rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """One batch of moves of attribute ``j`` among ``rows`` (in place); returns (moves, held-back rows)."""
    m = len(rows)
    delta = np.zeros((m, kj))
    prep = []
    xj = x[rows, j]
    xo = x[rows]
    for cols, t in targets:
        pos = cols.index(j)
        c = np.bincount(_flat(x, cols, t.shape), minlength=t.size).reshape(t.shape).astype(np.float64)
        cl = np.moveaxis(c, pos, -1).reshape(-1, kj)
        tl = np.moveaxis(t, pos, -1).reshape(-1, kj)
        err = np.abs(cl - tl)
        dadd = np.abs(cl + 1.0 - tl) - err
        dadd[tl < _MIN_TARGET] = np.inf  # never move a row into a cell the model (nearly) rules out
        drem = np.abs(cl - 1.0 - tl) - err
        others = [cc for cc in cols if cc != j]
        oflat = _flat(xo, others, [int(shape[cc]) for cc in others]) if others else np.zeros(m, np.int64)
        delta += dadd[oflat]
        delta += drem[oflat, xj][:, None]
        prep.append((cl.ravel(), tl.ravel(), oflat))
    delta[np.arange(m), xj] = 0.0
    best = delta.argmin(axis=1)
    gain = delta[np.arange(m), best]
    cand = np.flatnonzero(gain < -1e-9)  # (a forbidden cell makes the gain +inf, never a candidate)
    if len(cand) == 0:
        return 0, cand
    # priority: best gain first, ties in random order; each move's gain is re-evaluated as if every
    # move ahead of it were made (its rank among the moves into / out of the same cell)
    order = np.lexsort((rng.random(len(cand)), gain[cand]))
    adjusted = np.zeros(len(cand))
    for cl, tl, oflat in prep:
        o = oflat[cand] * kj
        add_cell = o + best[cand]
        rem_cell = o + xj[cand]
        ra = _ranked(add_cell, order)
        rr = _ranked(rem_cell, order)
        ca, ta = cl[add_cell], tl[add_cell]
        cr, tr = cl[rem_cell], tl[rem_cell]
        adjusted += np.abs(ca + ra + 1.0 - ta) - np.abs(ca + ra - ta)
        adjusted += np.abs(cr - rr - 1.0 - tr) - np.abs(cr - rr - tr)
    ok = adjusted < -1e-9
    keep = cand[ok]
    x[rows[keep], j] = best[keep]
    return len(keep), rows[cand[~ok]]


def refine_sample(codes: np.ndarray, shape: Sequence[int], targets: Sequence[tuple[Sequence[int], np.ndarray]],
                  rng: np.random.Generator, *, max_sweeps: int = 20) -> RefineResult:
    """Change single values of ``codes`` so that its marginals on ``targets`` approach the target counts.

    Parameters
    ----------
    codes : numpy.ndarray of int, shape (n, d)
        The sample (state indices); not modified.
    shape : sequence of int
        Number of states of each column.
    targets : sequence of (columns, counts)
        Each: distinct column indices and an array of target counts over them (axes in that order;
        real-valued, summing to about ``n``).
    rng : numpy.random.Generator
        Order of the attributes in each sweep and tie-breaking between equally good moves.
    max_sweeps : int, default 20
        Most sweeps over all attributes; a sweep that lowers the distance by less than 1 % ends it.

    Returns
    -------
    RefineResult

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.array([[0, 0], [0, 0], [1, 1], [1, 0]])
    >>> target = np.array([[1.0, 1.0], [1.0, 1.0]])   # the (a, b) counts wanted
    >>> res = refine_sample(codes, (2, 2), [((0, 1), target)], np.random.default_rng(0))
    >>> res.distances[0], res.distances[-1]
    (2.0, 0.0)
    """
    x = np.array(codes, dtype=np.int64, copy=True)
    n, d = x.shape
    tgs = [(tuple(int(c) for c in cols), np.asarray(t, dtype=np.float64)) for cols, t in targets]
    distances = [_distance(x, tgs)]
    moves = 0
    if n == 0 or not tgs:
        return RefineResult(x, distances, moves)
    by_attr = {j: [tgs[k] for k, (cols, _) in enumerate(tgs) if j in cols] for j in range(d)}
    for _ in range(max_sweeps):
        for j in rng.permutation(d):
            mine = by_attr[int(j)]
            if not mine:
                continue
            rows = np.arange(n)
            for _ in range(_PASSES):  # moves held back by a crowded cell get another chance
                moved, rows = _move_attribute(x, int(j), int(shape[j]), shape, mine, rows, rng)
                moves += moved
                if moved == 0 or len(rows) == 0:
                    break
        distances.append(_distance(x, tgs))
        if distances[-2] - distances[-1] <= _REL_TOL * max(distances[-2], 1.0):
            break
    return RefineResult(x, distances, moves)


def target_counts(n: int, probabilities: np.ndarray) -> np.ndarray:
    """``n`` times a probability table (normalised first), as float counts."""
    p = np.asarray(probabilities, dtype=np.float64)
    s = float(p.sum())
    return n * p / s if s > 0 and math.isfinite(s) else np.full(p.shape, n / p.size)
