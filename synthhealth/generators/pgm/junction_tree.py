"""Triangulation and junction trees over a :class:`Domain`.

The graph has one node per attribute of the domain and an edge between any two attributes that
share a clique. It is triangulated by greedy elimination (each step eliminates the attribute whose
elimination clique has the fewest cells, ties broken by fill-in then column order), its maximal
cliques become the nodes of the junction tree, and the tree is a maximum spanning tree of the clique
graph weighted by separator size (which satisfies the running intersection property for the
maximal cliques of a chordal graph).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...exceptions import InvalidParameterError
from .domain import Domain

__all__ = [
    "JunctionTree",
    "build_junction_tree",
    "elimination_order",
    "junction_tree_size",
    "maximal_cliques",
]

Clique = tuple[str, ...]


def _check_cliques(domain: Domain, cliques: Iterable[Sequence[str]], name: str = "cliques") -> list[Clique]:
    if cliques is None or isinstance(cliques, (str, bytes)):
        raise InvalidParameterError(f"The {name!r} parameter must be a list of tuples of attribute names. "
                                    f"Got {cliques!r} instead.")
    out = []
    for cl in cliques:
        out.append(domain.canonical(domain.check_attrs(cl, name=name)))
    return out


def elimination_order(domain: Domain, cliques: Iterable[Sequence[str]]) -> tuple[list[str], list[Clique]]:
    """Greedy elimination order of the graph of ``cliques`` and the clique formed at each step.

    Each step eliminates the attribute whose clique (itself and its current neighbours) has the fewest
    cells; ties go to the smallest fill-in, then to the earliest column. Eliminating connects the
    neighbours (fill-in edges), which triangulates the graph.

    Parameters
    ----------
    domain : Domain
        All attributes of the graph (attributes in no clique are isolated nodes).
    cliques : iterable of tuple of str
        Sets of attributes that must end up together in some maximal clique.

    Returns
    -------
    order : list of str
        Attributes in elimination order.
    formed : list of tuple of str
        The elimination clique of each step, in domain order.

    Examples
    --------
    >>> dom = Domain(("a", "b", "c", "d"), (2, 2, 2, 2))
    >>> order, formed = elimination_order(dom, [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    >>> max(len(c) for c in formed)   # a 4-cycle needs a chord: triangles appear
    3
    """
    # adjacency as integer bitsets over attribute positions: the min-size / min-fill scan is the inner
    # loop of AIM's model-size checks (hundreds of calls per round on wide schemas)
    attrs = domain.attrs
    pos = {a: i for i, a in enumerate(attrs)}
    n = len(attrs)
    sizes = [int(k) for k in domain.shape]
    adj = [0] * n
    for cl in _check_cliques(domain, cliques):
        bits = 0
        for a in cl:
            bits |= 1 << pos[a]
        for a in cl:
            adj[pos[a]] |= bits & ~(1 << pos[a])
    def key(v: int) -> tuple[int, int, int]:
        nb = adj[v]
        cells, deg, inner = sizes[v], 0, 0
        m = nb
        while m:
            lb = m & -m
            u = lb.bit_length() - 1
            m ^= lb
            cells *= sizes[u]
            deg += 1
            inner += (adj[u] & nb).bit_count()
        return (cells, deg * (deg - 1) // 2 - inner // 2, v)  # (cells, fill-in, column)

    keys = {v: key(v) for v in range(n)}
    order: list[str] = []
    formed: list[Clique] = []
    while keys:
        best = min(keys.values())[2]
        nb = adj[best]
        touched = nb
        m = nb
        members = [best]
        while m:
            lb = m & -m
            u = lb.bit_length() - 1
            m ^= lb
            adj[u] = (adj[u] | nb) & ~(lb | (1 << best))
            members.append(u)
        formed.append(tuple(attrs[i] for i in sorted(members)))
        order.append(attrs[best])
        adj[best] = 0
        del keys[best]
        # only the neighbours and their neighbours can change: their neighbourhoods or the edges among them
        m = nb
        while m:
            lb = m & -m
            m ^= lb
            touched |= adj[lb.bit_length() - 1]
        while touched:
            lb = touched & -touched
            touched ^= lb
            keys[lb.bit_length() - 1] = key(lb.bit_length() - 1)
    return order, formed


def maximal_cliques(domain: Domain, cliques: Iterable[Sequence[str]]) -> list[Clique]:
    """Maximal cliques of the triangulated graph of ``cliques`` (every domain attribute is covered).

    Examples
    --------
    >>> dom = Domain(("a", "b", "c"), (2, 3, 4))
    >>> maximal_cliques(dom, [("a", "b"), ("b", "c"), ("a", "c")])
    [('a', 'b', 'c')]
    """
    _, formed = elimination_order(domain, cliques)
    sets = [frozenset(c) for c in formed]
    out: list[Clique] = []
    for i, c in enumerate(formed):
        s = sets[i]
        # keep c unless a strictly larger (or an identical, earlier) elimination clique contains it
        if any((s < t) or (s == t and j < i) for j, t in enumerate(sets) if j != i):
            continue
        out.append(c)
    pos = {a: i for i, a in enumerate(domain.attrs)}
    return sorted(out, key=lambda c: [pos[a] for a in c])


def junction_tree_size(domain: Domain, cliques: Iterable[Sequence[str]]) -> int:
    """Total number of cells over the maximal cliques of the triangulated graph built from ``cliques``.

    The graph has every attribute of ``domain`` as a node, so this is the number of parameters of the
    model that :func:`~synthhealth.generators.pgm.estimate` would fit with these cliques (8 bytes each).

    Parameters
    ----------
    domain : Domain
        The attributes and their numbers of states.
    cliques : iterable of tuple of str
        The measured (or candidate) cliques.

    Returns
    -------
    int
        Sum over the maximal cliques of the product of their attributes' numbers of states.

    Examples
    --------
    >>> dom = Domain(("a", "b", "c", "d"), (2, 3, 4, 5))
    >>> junction_tree_size(dom, [("a", "b"), ("b", "c")])   # ab + bc + d
    23
    """
    return sum(domain.size(c) for c in maximal_cliques(domain, cliques))


@dataclass(frozen=True)
class JunctionTree:
    """A rooted junction tree: maximal cliques and the parent of each (``-1`` for the root).

    Attributes
    ----------
    domain : Domain
    cliques : tuple of tuple of str
        Maximal cliques, attributes in domain order.
    parents : tuple of int
        Index of each clique's parent; exactly one ``-1`` (the root).
    order : tuple of int
        Pre-order from the root: every clique comes after its parent.
    separators : tuple of tuple of str
        Attributes each clique shares with its parent (empty for the root), in domain order.
    """

    domain: Domain
    cliques: tuple[Clique, ...]
    parents: tuple[int, ...]
    order: tuple[int, ...] = ()
    separators: tuple[Clique, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.cliques)
        if len(self.parents) != n or n == 0:
            raise InvalidParameterError(
                f"A junction tree needs one parent per clique ({n} cliques). Got {len(self.parents)} parents instead."
            )
        roots = [i for i, p in enumerate(self.parents) if p == -1]
        if len(roots) != 1 or not all(-1 <= p < n for p in self.parents):
            raise InvalidParameterError(
                f"A junction tree needs exactly one root (parent -1) and parents in [0, {n}). "
                f"Got parents {list(self.parents)!r} instead."
            )
        children: list[list[int]] = [[] for _ in range(n)]
        for i, p in enumerate(self.parents):
            if p >= 0:
                children[p].append(i)
        order, stack = [], [roots[0]]
        while stack:
            i = stack.pop()
            order.append(i)
            stack.extend(reversed(children[i]))
        if len(order) != n:
            raise InvalidParameterError(f"The parents {list(self.parents)!r} of a junction tree contain a cycle.")
        seps = tuple(
            () if p < 0 else tuple(a for a in self.cliques[i] if a in set(self.cliques[p]))
            for i, p in enumerate(self.parents)
        )
        object.__setattr__(self, "order", tuple(order))
        object.__setattr__(self, "separators", seps)
        # derived structure, read by every marginal query (not fields: no part of equality or repr)
        object.__setattr__(self, "_children", tuple(tuple(c) for c in children))
        object.__setattr__(self, "clique_sets", tuple(frozenset(c) for c in self.cliques))
        depth = [0] * n
        for i in order[1:]:
            depth[i] = depth[self.parents[i]] + 1
        object.__setattr__(self, "depth", tuple(depth))
        covered = {a for c in self.cliques for a in c}
        if covered != set(self.domain.attrs):
            raise InvalidParameterError(
                f"The cliques of a junction tree must cover every attribute of the domain; "
                f"missing {sorted(set(self.domain.attrs) - covered)!r}."
            )
        if not self.has_running_intersection():
            raise InvalidParameterError(
                "The cliques and parents given do not form a junction tree (running intersection fails)."
            )

    @property
    def root(self) -> int:
        """Index of the root clique."""
        return self.order[0]

    def children(self, i: int) -> list[int]:
        """Indices of the children of clique ``i``."""
        return list(self._children[i])  # type: ignore[attr-defined]

    def has_running_intersection(self) -> bool:
        """Whether, for every attribute, the cliques that contain it form a connected subtree."""
        for a in self.domain.attrs:
            holders = [i for i, c in enumerate(self.cliques) if a in c]
            # connected iff exactly one holder's parent does not hold a
            tops = [i for i in holders if self.parents[i] < 0 or a not in self.cliques[self.parents[i]]]
            if len(tops) != 1:
                return False
        return True

    def size(self) -> int:
        """Total number of cells over the cliques."""
        return sum(self.domain.size(c) for c in self.cliques)

    def edges(self) -> list[tuple[int, int]]:
        """``(parent, child)`` pairs."""
        return [(p, i) for i, p in enumerate(self.parents) if p >= 0]


def build_junction_tree(domain: Domain, cliques: Iterable[Sequence[str]]) -> JunctionTree:
    """Triangulate the graph of ``cliques`` and connect its maximal cliques into a junction tree.

    Every attribute of ``domain`` is a node, so isolated attributes become singleton cliques; separate
    components are joined by empty separators.

    Examples
    --------
    >>> dom = Domain(("a", "b", "c", "d"), (2, 2, 2, 2))
    >>> jt = build_junction_tree(dom, [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a")])
    >>> [len(c) for c in jt.cliques], jt.has_running_intersection()
    ([3, 3], True)
    """
    nodes = maximal_cliques(domain, cliques)
    n = len(nodes)
    sets = [set(c) for c in nodes]
    # Prim's algorithm for a maximum spanning tree on separator sizes, deterministic tie-breaks.
    parents = [-1] * n
    in_tree = [False] * n
    best = [-1] * n
    best_from = [-1] * n
    in_tree[0] = True
    for j in range(1, n):
        best[j], best_from[j] = len(sets[0] & sets[j]), 0
    for _ in range(n - 1):
        j = max((k for k in range(n) if not in_tree[k]), key=lambda k: (best[k], -k))
        in_tree[j] = True
        parents[j] = best_from[j]
        for k in range(n):
            if not in_tree[k]:
                w = len(sets[j] & sets[k])
                if w > best[k]:
                    best[k], best_from[k] = w, j
    return JunctionTree(domain, tuple(nodes), tuple(parents))
