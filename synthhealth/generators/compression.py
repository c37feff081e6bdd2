"""Domain compression: merge states whose *noisy* count is small (post-processing).

Used by MST: after the 1-way marginals are measured, the states of an attribute whose noisy
count is below a threshold (3σ) are merged into one state, so that later measurements spend
their budget on populated cells. The decision uses only noisy counts: it costs no privacy.
Sampling maps a merged state back to one of its original states in proportion to their
(clipped) noisy counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .pgm import Domain, Measurement

__all__ = ["Compression"]


@dataclass
class Compression:
    """Per-attribute maps from original to compressed states.

    Attributes
    ----------
    original : Domain
    domain : Domain
        The compressed domain.
    maps : dict of str to ndarray
        For each compressed attribute, ``maps[a][old_state] = new_state``.
    weights : dict of str to ndarray
        For each compressed attribute, the (normalised) weight of every original state inside the
        merged state (0 for the kept states).
    """

    original: Domain
    domain: Domain
    maps: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]

    @classmethod
    def identity(cls, domain: Domain) -> Compression:
        """No merging."""
        return cls(domain, domain, {}, {})

    @classmethod
    def from_measurements(cls, domain: Domain, one_way: list[Measurement], threshold: float) -> Compression:
        """Merge, per attribute, the states whose noisy count is below ``threshold``.

        Nothing is merged for an attribute with fewer than two such states.
        """
        maps: dict[str, np.ndarray] = {}
        weights: dict[str, np.ndarray] = {}
        shape = list(domain.shape)
        for m in one_way:
            (a,) = m.clique
            y = np.asarray(m.values, dtype=float).ravel()
            small = y < threshold
            if small.sum() < 2:
                continue
            new = np.empty(len(y), dtype=np.int64)
            kept = np.flatnonzero(~small)
            new[kept] = np.arange(len(kept))
            new[small] = len(kept)
            maps[a] = new
            w = np.where(small, np.maximum(y, 0.0), 0.0)
            w = w / w.sum() if w.sum() > 0 else small / small.sum()
            weights[a] = w
            shape[domain.attrs.index(a)] = len(kept) + 1
        return cls(domain, Domain(domain.attrs, tuple(shape)), maps, weights)

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """Original codes → compressed codes."""
        out = codes.copy()
        for a, m in self.maps.items():
            j = self.original.attrs.index(a)
            out[:, j] = m[codes[:, j]]
        return out

    def transform_measurements(self, one_way: list[Measurement]) -> list[Measurement]:
        """1-way measurements on the compressed domain (merged cells are summed).

        A merged cell is the sum of ``k`` noisy cells (noise standard deviation σ·sqrt(k)); it keeps
        the measurement's σ, which only changes how much the estimation trusts that one cell.
        """
        out = []
        for m in one_way:
            (a,) = m.clique
            if a not in self.maps:
                out.append(m)
                continue
            y = np.asarray(m.values, dtype=float).ravel()
            new = np.zeros(self.domain.shape[self.domain.attrs.index(a)])
            np.add.at(new, self.maps[a], y)
            out.append(Measurement(m.clique, new, m.sigma))
        return out

    def inverse(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Compressed codes → original codes (merged states drawn by their noisy weights)."""
        out = codes.copy()
        for a, m in self.maps.items():
            j = self.original.attrs.index(a)
            merged_state = int(m.max())
            kept = np.flatnonzero(m != merged_state)
            back = np.empty(merged_state + 1, dtype=np.int64)
            back[:merged_state] = kept
            col = codes[:, j]
            res = back[np.minimum(col, merged_state)]
            rows = np.flatnonzero(col == merged_state)
            if len(rows):
                res[rows] = rng.choice(len(m), size=len(rows), p=self.weights[a])
            out[:, j] = res
        return out

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON metadata + arrays."""
        meta = {"attrs": list(self.maps), "original_shape": list(self.original.shape),
                "shape": list(self.domain.shape), "names": list(self.original.attrs)}
        arrays = {f"map/{a}": m for a, m in self.maps.items()}
        arrays.update({f"weight/{a}": w for a, w in self.weights.items()})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Compression:
        """Inverse of :meth:`to_state`."""
        names = tuple(meta["names"])
        original = Domain(names, tuple(meta["original_shape"]))
        domain = Domain(names, tuple(meta["shape"]))
        maps = {a: arrays[f"map/{a}"] for a in meta["attrs"]}
        weights = {a: arrays[f"weight/{a}"] for a in meta["attrs"]}
        for a in meta["attrs"]:  # a corrupt state must fail here, not when a merged state is first sampled
            m, w = maps[a], weights[a]
            j = names.index(a)
            if (m.ndim != 1 or w.ndim != 1 or len(m) != len(w) or len(m) != original.shape[j]
                    or not np.issubdtype(m.dtype, np.integer) or not np.issubdtype(w.dtype, np.floating)
                    or (len(m) and (m.min() < 0 or m.max() >= domain.shape[j]))
                    or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.isclose(w.sum(), 1.0)):
                raise ValueError(f"the compression state of attribute {a!r} is inconsistent")
        return cls(original, domain, maps, weights)
