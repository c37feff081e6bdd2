"""MST: the maximum-spanning-tree marginal generator (McKenna, Miklau and Sheldon 2021).

The budget ρ (zCDP) is split in three equal parts:

1. every 1-way marginal, measured with Gaussian noise;
2. a private maximum spanning tree over attribute pairs, built by ``d − 1`` noisy-max selections
   whose score is the L1 distance between the pair's true 2-way marginal and the estimate under
   independence (sensitivity 1: one patient moves one cell by one);
3. the ``d − 1`` selected 2-way marginals, measured with Gaussian noise.

A graphical model consistent with the noisy marginals is estimated (post-processing) and sampled.
States whose noisy 1-way count is below 3σ are merged before steps 2-3 (post-processing of
step 1), which concentrates the budget on populated cells.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..privacy import NoiseSource, PrivacyBudget, PrivacyLedger
from .base import BaseGenerator
from .compression import Compression
from .pgm import Domain, GraphicalModel, estimate
from .private_data import PrivateData

__all__ = ["MST"]


class MST(BaseGenerator):
    """Differentially private synthetic data from a maximum spanning tree of 2-way marginals.

    Parameters
    ----------
    epsilon : float, default 1.0
        ε of the (ε, δ)-DP guarantee (the patient is the privacy unit).
    delta : float, default 1e-6
        δ (fixed default; see :data:`synthhealth.privacy.DEFAULT_DELTA`).
    compress : bool, default True
        Merge states whose noisy count is below 3σ (post-processing).
    iters : int, default 1000
        Iterations of the graphical-model estimation.
    random_state : None, int or Generator, default None
        ``None`` for a release (secure OpenDP noise); a seed is reproducible but NOT FOR RELEASE.

    Examples
    --------
    >>> import warnings, synthhealth as sh
    >>> schema = sh.load_schema("flchain")
    >>> table = sh.read_table(sh.datasets.load_flchain(), schema)  # doctest: +SKIP
    >>> with warnings.catch_warnings():                               # doctest: +SKIP
    ...     warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)
    ...     gen = sh.MST(epsilon=1.0, random_state=0).fit(table, schema=schema)
    >>> gen.sample(5).shape                                           # doctest: +SKIP
    (5, 11)
    """

    name = "mst"

    def __init__(self, *, epsilon: float = 1.0, delta: float = 1e-6, compress: bool = True, iters: int = 1000,
                 random_state: Any = None) -> None:
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state)
        self.compress = compress
        self.iters = iters

    def _validate_extra_params(self) -> None:
        from .._validation import check_bool, check_positive_int

        check_bool(self.compress, "compress", "MST")
        check_positive_int(self.iters, "iters", "MST")

    def _fit(self, codes: np.ndarray, budget: PrivacyBudget, noise: NoiseSource, ledger: PrivacyLedger,
             fit_id: str, progress: bool) -> None:
        enc = self.encoder_
        domain = Domain(enc.names, enc.shape)
        d = len(domain.attrs)
        rho = budget.rho
        rho1 = rho / 3.0 if d > 1 else rho
        bar = _bar(progress, total=3 + max(d - 1, 0), desc="MST")
        # 1. one-way marginals
        data = PrivateData(codes, domain, noise, ledger, fit_id)
        sigma1 = math.sqrt(d / (2.0 * rho1))
        one_way = [data.measure((a,), sigma1) for a in domain.attrs]
        _tick(bar)
        comp = Compression.from_measurements(domain, one_way, threshold=3.0 * sigma1) if self.compress \
            else Compression.identity(domain)
        cdomain = comp.domain
        ccodes = comp.transform(codes)
        cdata = PrivateData(ccodes, cdomain, noise, ledger, fit_id)
        measurements = comp.transform_measurements(one_way)
        if d > 1:
            # 2. private maximum spanning tree
            indep = estimate(cdomain, measurements, iters=min(self.iters, 200))
            total = max(indep.total, 1.0)
            probs = {a: np.maximum(indep.marginal((a,)), 0) / total for a in cdomain.attrs}
            rho_sel = rho / 3.0 / (d - 1)
            parent = {a: a for a in cdomain.attrs}

            def find(a: str) -> str:
                while parent[a] != a:
                    parent[a] = parent[parent[a]]
                    a = parent[a]
                return a

            pairs = [(a, b) for i, a in enumerate(cdomain.attrs) for b in cdomain.attrs[i + 1:]]

            def l1_from_independence(pair: tuple[str, ...], exact: np.ndarray) -> float:
                expected = np.outer(probs[pair[0]], probs[pair[1]]) * total
                return float(np.abs(exact - expected).sum())

            tree: list[tuple[str, str]] = []
            for _ in range(d - 1):
                cand = [p for p in pairs if find(p[0]) != find(p[1])]
                k = cdata.select(cand, l1_from_independence, sensitivity=1.0, rho=rho_sel,
                                 target="spanning-tree edge: L1 distance of a 2-way marginal from independence")
                a, b = cand[k]
                parent[find(a)] = find(b)
                tree.append((a, b))
                _tick(bar)
            # 3. the tree's 2-way marginals
            sigma2 = math.sqrt((d - 1) / (2.0 * (rho / 3.0)))
            measurements += [cdata.measure(edge, sigma2) for edge in tree]
            _tick(bar)
            self.tree_ = tree
        else:
            self.tree_ = []
        model = estimate(cdomain, measurements, iters=self.iters)
        _tick(bar)
        if bar is not None:
            bar.close()
        self.model_ = model
        self.measurements_ = measurements  # DP outputs on the compressed domain; not saved
        self.compression_ = comp
        self.total_ = float(max(model.total, 1.0))

    def _sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.compression_.inverse(self.model_.sample(n, rng, stratified=True, refine=True), rng)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.model_.to_state()
        cmeta, carrays = self.compression_.to_state()
        return ({"graphical_model": meta, "compression": cmeta, "tree": [list(e) for e in self.tree_]},
                {**{f"model/{k}": v for k, v in arrays.items()}, **{f"compression/{k}": v for k, v in carrays.items()}})

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.model_ = GraphicalModel.from_state(
            meta["graphical_model"], {k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        self.compression_ = Compression.from_state(
            meta["compression"], {k[12:]: v for k, v in arrays.items() if k.startswith("compression/")})
        self.tree_ = [tuple(e) for e in meta["tree"]]


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _tick(bar: Any) -> None:
    if bar is not None:
        bar.update(1)


