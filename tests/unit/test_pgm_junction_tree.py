"""pgm engine: domains, triangulation, junction trees and their sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthhealth.exceptions import InvalidParameterError
from synthhealth.generators.pgm import (
    Domain,
    JunctionTree,
    build_junction_tree,
    junction_tree_size,
    maximal_cliques,
)
from synthhealth.generators.pgm.junction_tree import elimination_order


def _edges(cliques: list[tuple[str, ...]]) -> set[frozenset[str]]:
    return {frozenset(p) for c in cliques for p in itertools.combinations(c, 2)}


def _path(tree: JunctionTree, i: int, j: int) -> list[int]:
    def up(k: int) -> list[int]:
        out = [k]
        while tree.parents[out[-1]] >= 0:
            out.append(tree.parents[out[-1]])
        return out

    a, b = up(i), up(j)
    common = next(k for k in a if k in b)
    return a[: a.index(common) + 1] + b[: b.index(common)][::-1]


def _check_junction_tree(tree: JunctionTree, cliques: list[tuple[str, ...]]) -> None:
    """Independent check: a tree, covering every clique, running intersection on every path."""
    n = len(tree.cliques)
    assert sum(p >= 0 for p in tree.parents) == n - 1
    assert sorted(tree.order) == list(range(n))
    for c in cliques:
        assert any(set(c) <= set(m) for m in tree.cliques), c
    for i, j in itertools.combinations(range(n), 2):
        shared = set(tree.cliques[i]) & set(tree.cliques[j])
        for k in _path(tree, i, j):
            assert shared <= set(tree.cliques[k])
    assert tree.has_running_intersection()


def test_domain_basics_and_errors() -> None:
    dom = Domain(("a", "b", "c"), (2, 3, 4))
    assert dom.size() == 24 and dom.size(("c", "a")) == 8
    assert dom.project(("c", "a")) == Domain(("c", "a"), (4, 2))
    assert dom.canonical(("c", "a")) == ("a", "c") and len(dom) == 3 and "b" in dom
    assert Domain.from_dict(dom.to_dict()) == dom
    with pytest.raises(InvalidParameterError, match="unique names"):
        Domain(("a", "a"), (2, 2))
    with pytest.raises(InvalidParameterError, match="'shape' parameter of Domain must be a tuple of int >= 1"):
        Domain(("a",), (0,))
    with pytest.raises(InvalidParameterError, match="one entry per attribute"):
        Domain(("a", "b"), (2,))
    with pytest.raises(InvalidParameterError, match="unknown \\['z'\\]"):
        dom.project(("z",))


def test_cycle_gets_a_chord() -> None:
    dom = Domain(("a", "b", "c", "d"), (2, 2, 2, 2))
    cycle = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")]
    cliques = maximal_cliques(dom, cycle)
    added = _edges(cliques) - _edges(cycle)
    assert len(added) == 1 and added <= {frozenset("ac"), frozenset("bd")}
    assert all(len(c) == 3 for c in cliques) and len(cliques) == 2
    five = Domain(tuple("abcde"), (2,) * 5)
    ring = [(x, y) for x, y in zip("abcde", "bcdea", strict=True)]
    assert len(_edges(maximal_cliques(five, ring)) - _edges(ring)) == 2  # a 5-cycle needs n - 3 chords


def test_chordal_graph_is_left_alone() -> None:
    dom = Domain(tuple("abcde"), (3, 2, 4, 2, 5))
    tree_graph = [("a", "b"), ("a", "c"), ("c", "d"), ("c", "e")]
    assert sorted(maximal_cliques(dom, tree_graph)) == sorted(tree_graph)
    order, formed = elimination_order(dom, tree_graph)
    assert sorted(order) == sorted(dom.attrs) and max(len(c) for c in formed) == 2


@pytest.mark.parametrize(
    ("shape", "cliques", "expected"),
    [
        ((2, 3, 4, 5), [("a", "b"), ("b", "c")], 2 * 3 + 3 * 4 + 5),  # chain + isolated d
        ((2, 3, 4, 5), [("a", "b"), ("b", "c"), ("a", "c")], 2 * 3 * 4 + 5),  # triangle -> one clique
        # 4-cycle: eliminating b (3 * 2 * 4 = 24 cells) is cheapest, chord a-c, then a-c-d (40)
        ((2, 3, 4, 5), [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")], 24 + 40),
        ((2, 3, 4, 5), [], 2 + 3 + 4 + 5),
        ((2, 3, 4, 5), [("a", "b", "c", "d")], 120),
    ],
)
def test_junction_tree_size_by_hand(shape: tuple[int, ...], cliques: list, expected: int) -> None:
    dom = Domain(("a", "b", "c", "d"), shape)
    assert junction_tree_size(dom, cliques) == expected
    assert build_junction_tree(dom, cliques).size() == expected


def test_running_intersection_on_random_graphs() -> None:
    rng = np.random.default_rng(0)
    names = tuple(f"x{i}" for i in range(9))
    for _ in range(40):
        dom = Domain(names, tuple(int(s) for s in rng.integers(2, 6, size=len(names))))
        cliques = []
        for _ in range(int(rng.integers(1, 9))):
            k = int(rng.integers(2, 4))
            cliques.append(tuple(rng.choice(names, size=k, replace=False)))
        tree = build_junction_tree(dom, cliques)
        _check_junction_tree(tree, cliques + [(a,) for a in names])
        # the triangulated graph is chordal: eliminating in the found order adds no edge
        order, formed = elimination_order(dom, tree.cliques)
        assert _edges(formed) <= _edges(list(tree.cliques))


def test_junction_tree_validates_parents() -> None:
    dom = Domain(("a", "b", "c"), (2, 2, 2))
    with pytest.raises(InvalidParameterError, match="exactly one root"):
        JunctionTree(dom, (("a", "b"), ("b", "c")), (-1, -1))
    with pytest.raises(InvalidParameterError, match="running intersection"):
        JunctionTree(dom, (("a", "b"), ("c",), ("b", "c")), (-1, 0, 1))
    with pytest.raises(InvalidParameterError, match="cover every attribute"):
        JunctionTree(dom, (("a", "b"),), (-1,))
