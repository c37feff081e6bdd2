"""Exact inference on a junction tree: sum-product calibration and marginal queries.

Cliques keep their attributes in domain order, so a separator's axes appear in the same relative
order in a clique and in its parent: messages move between them with a reshape, never a transpose.

Calibration works in two passes. Upward (leaves to root), each clique combines its log-potential
with its children's log-messages into ``u``; the log-sum-exp of ``u`` over the attributes it does not
share with its parent is the message sent up, and ``exp(u - message)`` is the exact conditional
distribution of those attributes given the separator. Downward, each clique's marginal is its
conditional times its parent's marginal on the separator. Everything after the upward pass is a
product of probabilities: no division by a marginal that may be zero, no ``log(0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...exceptions import InvalidParameterError
from .factor import Factor
from .junction_tree import JunctionTree

__all__ = ["Beliefs", "BeliefPropagation", "query_marginal"]


@dataclass(frozen=True, eq=False)
class Beliefs:
    """Calibrated clique marginals of a junction-tree model.

    Attributes
    ----------
    marginals : list of numpy.ndarray
        Probability table of each clique (sums to 1), axes in the clique's attribute order.
    conditionals : list of numpy.ndarray
        For each clique, the distribution of its attributes outside the separator given the separator
        (sums to 1 over those axes); for the root, its marginal.
    log_partition : float
        Log normaliser of ``exp(sum of potentials)``.
    """

    marginals: list[np.ndarray]
    conditionals: list[np.ndarray]
    log_partition: float


class BeliefPropagation:
    """Message-passing plan for one junction tree (axes and shapes precomputed once).

    Parameters
    ----------
    tree : JunctionTree
        The tree; potentials passed to :meth:`calibrate` are aligned with ``tree.cliques``.

    Examples
    --------
    >>> import numpy as np
    >>> from synthhealth.generators.pgm.domain import Domain
    >>> from synthhealth.generators.pgm.junction_tree import build_junction_tree
    >>> tree = build_junction_tree(Domain(("a", "b", "c"), (2, 3, 2)), [("a", "b"), ("b", "c")])
    >>> bp = BeliefPropagation(tree)
    >>> beliefs = bp.calibrate([np.zeros(bp.shapes[i]) for i in range(len(tree.cliques))])
    >>> round(float(beliefs.marginals[0].sum()), 12), beliefs.marginals[0].shape
    (1.0, (2, 3))
    """

    def __init__(self, tree: JunctionTree) -> None:
        self.tree = tree
        dom = tree.domain
        self.shapes: list[tuple[int, ...]] = [dom.shape_of(c) for c in tree.cliques]
        self.post_order: tuple[int, ...] = tuple(reversed(tree.order))
        self.children: list[list[int]] = [tree.children(i) for i in range(len(tree.cliques))]
        self.out_axes: list[tuple[int, ...]] = []  # axes of clique i not in its separator
        self.sep_shape: list[tuple[int, ...]] = []  # separator broadcast shape in clique i's layout
        self.up_shape: list[tuple[int, ...]] = []  # separator broadcast shape in the parent's layout
        self.parent_out_axes: list[tuple[int, ...]] = []  # parent's axes not in clique i's separator
        for i, clique in enumerate(tree.cliques):
            sep = set(tree.separators[i])
            self.out_axes.append(tuple(k for k, a in enumerate(clique) if a not in sep))
            self.sep_shape.append(tuple(s if a in sep else 1 for a, s in zip(clique, self.shapes[i], strict=True)))
            p = tree.parents[i]
            if p < 0:
                self.up_shape.append(())
                self.parent_out_axes.append(())
            else:
                pc = tree.cliques[p]
                self.up_shape.append(tuple(s if a in sep else 1 for a, s in zip(pc, self.shapes[p], strict=True)))
                self.parent_out_axes.append(tuple(k for k, a in enumerate(pc) if a not in sep))

    def _check(self, potentials: Sequence[np.ndarray]) -> None:
        if len(potentials) != len(self.shapes) or any(
            p.shape != s for p, s in zip(potentials, self.shapes, strict=True)
        ):
            got = [getattr(p, "shape", None) for p in potentials]
            raise InvalidParameterError(f"Potentials must have shapes {self.shapes!r}. Got {got!r} instead.")

    def calibrate(self, potentials: Sequence[np.ndarray]) -> Beliefs:
        """Return the clique marginals of the model ``p(x) ∝ exp(sum_C potentials[C](x_C))``."""
        self._check(potentials)
        n = len(self.shapes)
        up: list[np.ndarray | None] = [None] * n
        cond: list[np.ndarray] = [np.empty(0)] * n
        log_z = 0.0
        for i in self.post_order:
            u = potentials[i]
            for c in self.children[i]:
                u = u + up[c]
                up[c] = None
            axes = self.out_axes[i]
            mx = np.maximum.reduce(u, axis=axes, keepdims=True)
            e = u - mx
            np.exp(e, out=e)
            s = np.add.reduce(e, axis=axes, keepdims=True)
            e /= s
            cond[i] = e
            msg = np.log(s)
            msg += mx
            if self.tree.parents[i] < 0:
                log_z = float(msg.reshape(()))
            else:
                up[i] = msg.reshape(self.up_shape[i])
        mu: list[np.ndarray] = [np.empty(0)] * n
        for i in self.tree.order:
            p = self.tree.parents[i]
            if p < 0:
                mu[i] = cond[i]
            else:
                sep = np.add.reduce(mu[p], axis=self.parent_out_axes[i], keepdims=True).reshape(self.sep_shape[i])
                mu[i] = cond[i] * sep
        return Beliefs(mu, cond, log_z)


def _contract(operands: list[Factor], keep: set[str]) -> Factor:
    """Product of ``operands`` with every attribute not in ``keep`` summed out, in one ``einsum``.

    The product over the union of the axes is never materialised: ``einsum`` (with its contraction
    order optimised) multiplies and sums in one pass, which is what makes marginal queries across
    cliques cheap (AIM scores every candidate marginal every round).
    """
    attrs: list[str] = []
    for f in operands:
        attrs += [a for a in f.attrs if a not in attrs]
    out = tuple(a for a in attrs if a in keep)
    if len(operands) == 1:
        return operands[0].sum_out([a for a in operands[0].attrs if a not in keep])
    if len(attrs) > 52:  # einsum's label limit; the plain product is still correct
        f = operands[0]
        for g in operands[1:]:
            f = f * g
        return f.sum_out([a for a in f.attrs if a not in keep])
    label = {a: k for k, a in enumerate(attrs)}
    args: list[object] = []
    for f in operands:
        args += [f.values, [label[a] for a in f.attrs]]
    args.append([label[a] for a in out])
    key = (tuple(tuple(f.attrs) for f in operands), tuple(f.values.shape for f in operands), out)
    path = _PATHS.get(key)
    if path is None:  # the contraction order depends on labels and shapes only: find it once
        path = np.einsum_path(*args, optimize="greedy")[0]
        if len(_PATHS) >= _MAX_PATHS:
            _PATHS.clear()
        _PATHS[key] = path
    values = np.einsum(*args, optimize=path)
    return Factor(out, np.asarray(values))


#: Contraction orders found by ``np.einsum_path``, by (operand attributes, shapes, output attributes).
_PATHS: dict[tuple[object, ...], list[object]] = {}
_MAX_PATHS = 100_000


def query_marginal(tree: JunctionTree, beliefs: Beliefs, attrs: Sequence[str]) -> np.ndarray:
    """Probability table over ``attrs`` (axes in the order given) by variable elimination on the tree.

    Attributes in one clique are read from its marginal. Otherwise the smallest subtree that holds
    them is kept (leaves whose attributes outside the separator are not queried are pruned); its
    distribution is the top clique's marginal times the other cliques' conditionals, and attributes
    not queried are summed out from the leaves up, so intermediate tables stay small.

    Examples
    --------
    >>> import numpy as np
    >>> from synthhealth.generators.pgm.domain import Domain
    >>> from synthhealth.generators.pgm.junction_tree import build_junction_tree
    >>> tree = build_junction_tree(Domain(("a", "b", "c"), (2, 3, 2)), [("a", "b"), ("b", "c")])
    >>> bp = BeliefPropagation(tree)
    >>> beliefs = bp.calibrate([np.zeros(s) for s in bp.shapes])
    >>> query_marginal(tree, beliefs, ("c", "a"))
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    attrs = tuple(attrs)
    want = set(attrs)
    sets: tuple[frozenset[str], ...] = tree.clique_sets  # type: ignore[attr-defined]
    # one clique holds everything: the common, cheap case
    holders = [i for i, c in enumerate(sets) if want <= c]
    if holders:
        i = min(holders, key=lambda k: beliefs.marginals[k].size)
        return Factor(tree.cliques[i], beliefs.marginals[i]).project(attrs).values
    n = len(tree.cliques)
    alive = set(range(n))
    nbrs: dict[int, set[int]] = {i: set(tree.children(i)) for i in range(n)}
    for i, p in enumerate(tree.parents):
        if p >= 0:
            nbrs[i].add(p)
    changed = True
    while changed and len(alive) > 1:
        changed = False
        for i in sorted(alive):
            live = nbrs[i] & alive
            if len(live) != 1:
                continue
            (j,) = live
            if not ((sets[i] - sets[j]) & want):
                alive.discard(i)
                changed = True
    depth = tree.depth  # type: ignore[attr-defined]
    top = min(alive, key=lambda k: depth[k])
    # leaves-up elimination inside the kept subtree
    pending: dict[int, Factor] = {}
    for i in reversed(tree.order):
        if i not in alive:
            continue
        table = beliefs.marginals[i] if i == top else beliefs.conditionals[i]
        operands = [Factor(tree.cliques[i], table)] + [pending.pop(c) for c in tree.children(i) if c in pending]
        keep = want | (set() if i == top else set(tree.separators[i]))
        f = _contract(operands, keep)
        if i == top:
            return f.project(attrs).values
        pending[i] = f
    raise AssertionError("unreachable: the top clique is always visited")  # pragma: no cover
