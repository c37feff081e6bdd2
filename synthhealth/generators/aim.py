"""AIM: adaptive and iterative workload-aware marginal generator (McKenna et al., VLDB 2022).

Budget ρ (zCDP). All 1-way marginals are measured first, with half the noise of a round (see
``_ONE_WAY_NOISE``); then, round after round, a marginal
from the downward closure of the workload is chosen by noisy max (quality: weighted L1 error of
the current model on it, minus the error its measurement would have; sensitivity = the largest
weight), measured with Gaussian noise, and the model is re-estimated (warm start). Each round
spends 90 % of its share on measuring and 10 % on selecting; when a measurement barely changes
the model, the noise is halved for later rounds (annealing). The last round spends exactly what
is left. Candidates that would grow the model beyond ``max_model_size`` (scaled by the share of
budget spent) are skipped. Then (``remeasure_share``: by default 50 % of ρ when a noisy number of
patients says the data are large enough for the budget, see the class docstring) every maximal
selected clique is measured once more, all with the same noise, and the model is estimated from
all measurements. The fit spends its whole budget and never more.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .._validation import check_positive_int
from ..exceptions import InvalidParameterError
from ..privacy import NoiseSource, PrivacyBudget, PrivacyLedger
from .base import BaseGenerator
from .pgm import Domain, GraphicalModel, Measurement, estimate, junction_tree_size
from .private_data import PrivateData

__all__ = ["AIM"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
#: Noise of the initial 1-way measurements relative to a round's σ. The AIM paper uses the round's σ
#: (1 × : 5.6 % of ρ with the default ``max_rounds = 16·d``); half of it (4× the cost: 22.5 % of ρ)
#: gave better marginals on both benchmark tables, seeded means: flchain ε = 1, 10 seeds, 2-way TVD
#: 0.0562 → 0.0552 (ε = 0.5 and 4: equal; AUROC at ε = 0.5: 0.801 → 0.811, 8 seeds); Synthea
#: core-patient, 3 seeds, ε = 4: 0.126 → 0.117, ε = 10: 0.078 → 0.071.
_ONE_WAY_NOISE = 0.5
_BYTES_PER_CELL = 8
#: Default final pass (see ``remeasure_share``): this share of ρ, for schemas of at most
#: ``_SMALL_SCHEMA`` attributes whose noisy number of patients n̂ (measured with ``_COUNT_SHARE`` of
#: ρ) gives n̂·sqrt(ρ/d) ≥ ``_SIGNAL_FOR_FINAL_PASS``; else none.
_REMEASURE_SHARE = 0.5
_SMALL_SCHEMA = 15
_COUNT_SHARE = 0.01
_SIGNAL_FOR_FINAL_PASS = 200.0


class AIM(BaseGenerator):
    """Differentially private synthetic data by adaptive, workload-aware marginal selection.

    Parameters
    ----------
    epsilon : float, default 1.0
        ε of the (ε, δ)-DP guarantee (the patient is the privacy unit).
    delta : float, default 1e-6
        δ (fixed default; see :data:`synthhealth.privacy.DEFAULT_DELTA`).
    workload : list of tuples of attribute names, optional
        The marginals that matter (e.g. ``[("age", "sex", "diabetes")]``). Default: every 3-way
        marginal when the schema has at most 15 attributes, else every 2-way marginal.
    max_model_size : float, default 4
        Largest graphical model, in MB of float64 cells (the junction tree's cliques). Estimation
        holds about ten arrays of that size, so peak memory is roughly 10× this figure, and every
        estimation iteration touches every cell: at 100,000 flchain rows a 16 MB model took 324 s to
        fit (a 1.7M-cell model, 163 s in the final estimate) and 4 MB 64 s; at 5,511 rows the cap
        does not bind and both give the same result.
    max_rounds : int, optional
        Upper bound on the number of rounds used to split the budget (default ``16 × d``, the
        paper's choice; annealing usually ends much earlier).
    iters : int, default 250
        Estimation iterations of the first estimate; rounds in between use a quarter of them
        (warm-started; the model only ranks candidates there) and the final estimate 4× as many.
    remeasure_share : float, optional
        Share of ρ kept for a final pass that measures every selected clique (the largest ones)
        once more, all with the same noise, before the final estimate. The adaptive rounds measure
        their first picks with the large noise of the early rounds and seldom come back to them; the
        final pass evens that out, but takes budget from the rounds, which need enough signal to
        find the structure. Default ``None``: AIM measures the number of patients n̂ with 1 % of ρ
        and keeps 0.5 for the final pass when n̂·sqrt(ρ/d) ≥ 200 and the schema has at most 15
        attributes, else none. Chosen on the benchmark tables (n̂·sqrt(ρ/d): flchain ε = 0.5: 153,
        ε = 1: 290, ε = 4: 1,015; Synthea core-patient ε = 4 / 10 / 30: 26 / 57 / 136): flchain ε = 1,
        30 seeds: 2-way TVD 0.0549 → 0.0523, TSTR AUROC LR 0.819 → 0.823; ε = 4: AUROC 0.829 → 0.832;
        but ε = 0.5: max 2-way TVD 0.169 → 0.253 (a strong pair left unselected) and Synthea ε = 4:
        mean 0.115 → 0.145, worse. ``0`` turns it off (no count measured).
    random_state : None, int or Generator, default None
        ``None`` for a release (secure OpenDP noise); a seed is reproducible but NOT FOR RELEASE.

    Examples
    --------
    >>> import synthhealth as sh
    >>> gen = sh.AIM(epsilon=1.0, workload=[("age", "sex")])
    >>> gen.get_params()["epsilon"]
    1.0
    """

    name = "aim"

    def __init__(self, *, epsilon: float = 1.0, delta: float = 1e-6, workload: Any = None,
                 max_model_size: float = 4.0, max_rounds: int | None = None, iters: int = 250,
                 remeasure_share: float | None = None, random_state: Any = None) -> None:
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state)
        self.workload = workload
        self.max_model_size = max_model_size
        self.max_rounds = max_rounds
        self.iters = iters
        self.remeasure_share = remeasure_share

    def _validate_extra_params(self) -> None:
        if isinstance(self.max_model_size, bool) or not isinstance(self.max_model_size, (int, float)) \
                or not 0 < self.max_model_size < math.inf:
            raise InvalidParameterError(
                f"The 'max_model_size' parameter of AIM must be a float in (0, inf). Got {self.max_model_size!r} instead.")
        if self.max_rounds is not None:
            check_positive_int(self.max_rounds, "max_rounds", "AIM")
        check_positive_int(self.iters, "iters", "AIM")
        r = self.remeasure_share
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1):
            raise InvalidParameterError(
                f"The 'remeasure_share' parameter of AIM must be None or a float in [0, 1). Got {r!r} instead.")

    def _workload(self, names: tuple[str, ...]) -> list[tuple[str, ...]]:
        if self.workload is None:
            k = 3 if len(names) <= 15 else 2
            return [tuple(c) for c in itertools.combinations(names, min(k, len(names)))]
        if not isinstance(self.workload, (list, tuple)) or not self.workload:
            raise InvalidParameterError(
                "The 'workload' parameter of AIM must be a non-empty list of tuples of attribute names. "
                f"Got {self.workload!r} instead.")
        out = []
        for i, w in enumerate(self.workload):
            if isinstance(w, str) or not isinstance(w, (list, tuple)) or not w:
                raise InvalidParameterError(
                    f"The 'workload' parameter of AIM must hold tuples of attribute names; item {i} is {w!r}.")
            unknown = [a for a in w if a not in names]
            if unknown:
                raise InvalidParameterError(
                    f"The 'workload' parameter of AIM names attributes that are not in the schema: {unknown}.")
            if len(set(w)) != len(w):
                raise InvalidParameterError(f"The 'workload' parameter of AIM repeats an attribute in item {i}.")
            out.append(tuple(sorted(w, key=names.index)))
        return out

    def _fit(self, codes: np.ndarray, budget: PrivacyBudget, noise: NoiseSource, ledger: PrivacyLedger,
             fit_id: str, progress: bool) -> None:
        enc = self.encoder_
        domain = Domain(enc.names, enc.shape)
        names = domain.attrs
        d = len(names)
        rho_total = budget.rho
        data = PrivateData(codes, domain, noise, ledger, fit_id)
        rho_count = 0.0
        if self.remeasure_share is not None:
            share = float(self.remeasure_share)
        elif d > _SMALL_SCHEMA:
            share = 0.0
        else:  # decide on the final pass from a noisy number of patients (1 % of rho)
            rho_count = _COUNT_SHARE * rho_total
            n_hat = data.count(math.sqrt(1.0 / (2.0 * rho_count)))
            share = _REMEASURE_SHARE if n_hat * math.sqrt(rho_total / d) >= _SIGNAL_FOR_FINAL_PASS else 0.0
        self.remeasure_share_ = share
        rho = (1.0 - share) * (rho_total - rho_count)  # the adaptive rounds' budget
        workload = self._workload(names)
        # candidates: the downward closure of the workload, with AIM's weights
        weights: dict[tuple[str, ...], float] = {}
        for w in workload:
            for k in range(1, len(w) + 1):
                for r in itertools.combinations(w, k):
                    weights[r] = 0.0
        for r in weights:
            weights[r] = float(sum(len(set(r) & set(w)) for w in workload))
        candidates = sorted(weights, key=lambda r: (len(r), [names.index(a) for a in r]))
        max_cells = self.max_model_size * 2**20 / _BYTES_PER_CELL
        rounds = self.max_rounds or 16 * d
        sigma = math.sqrt(rounds / (2.0 * 0.9 * rho))
        eps_sel = math.sqrt(8.0 * 0.1 * rho / rounds)

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=1.0, desc="AIM (budget spent)", leave=False,
                       bar_format="{l_bar}{bar}| {n:.0%} [{elapsed}]")
        # initial 1-way measurements; cost d/(2σ0²) = 0.225·ρ when rounds = 16d
        rho_used = 0.0
        sigma0 = _ONE_WAY_NOISE * sigma
        if d / (2.0 * sigma0**2) > 0.5 * rho:  # tiny max_rounds: keep half the budget for the rounds
            sigma0 = math.sqrt(d / rho)
        measurements: list[Measurement] = [data.measure((a,), sigma0) for a in names]
        rho_used += d / (2.0 * sigma0**2)
        model = estimate(domain, measurements, iters=self.iters)
        selected: list[tuple[str, ...]] = []
        self.rounds_ = 0
        # between rounds the model only scores candidates, warm-started from the previous round:
        # a quarter of the iterations is enough for that (flchain: same 2-way TVD, fits 3.6x faster);
        # the final estimate gets 4x the full count
        round_iters = max(25, self.iters // 4)
        while rho - rho_used > rho * 1e-9:
            remaining = rho - rho_used
            cost = 1.0 / (2.0 * sigma**2) + eps_sel**2 / 8.0
            if remaining < 2.0 * cost:  # last round: spend exactly what is left
                sigma = math.sqrt(1.0 / (2.0 * 0.9 * remaining))
                eps_sel = math.sqrt(8.0 * 0.1 * remaining)
                cost = remaining
            rho_used += cost
            size_cap = (rho_used / rho) * max_cells
            allowed = _within_size(domain, list(model.cliques), candidates, size_cap)
            if not allowed:  # nothing fits: measure the smallest candidate anyway (still charged)
                allowed = [candidates[0]]
            estimates = {r: model.marginal(r) for r in allowed}
            sens = max(weights[r] for r in allowed)
            quality = _quality(estimates, weights, sigma)
            k = data.select(allowed, quality, sensitivity=sens, rho=eps_sel**2 / 8.0,
                            target="AIM round: marginal with the largest weighted error")
            r = allowed[k]
            measurements.append(data.measure(r, sigma))
            selected.append(r)
            previous = estimates[r]
            model = estimate(domain, measurements, iters=round_iters, warm_start=model)
            self.rounds_ += 1
            if bar is not None:
                bar.n = min(1.0, rho_used / rho)
                bar.refresh()
            if np.abs(model.marginal(r) - previous).sum() <= _SQRT_2_OVER_PI * sigma * previous.size:
                sigma /= 2.0
                eps_sel *= 2.0
        remeasured: list[tuple[str, ...]] = []
        if share > 0:  # final pass: every maximal selected clique again, same noise for all
            remeasured = [r for r in dict.fromkeys(selected) if len(r) > 1 and not any(set(r) < set(o) for o in selected)]
            remeasured = remeasured or [(a,) for a in names]  # nothing joint was selected: the 1-way marginals
            sigma_f = math.sqrt(len(remeasured) / (2.0 * (rho_total - rho_count - rho_used)))
            for r in remeasured:
                measurements.append(data.measure(r, sigma_f))
            if bar is not None:
                bar.n = 1.0
                bar.refresh()
        model = estimate(domain, measurements, iters=4 * self.iters, warm_start=model)
        if bar is not None:
            bar.close()
        self.model_ = model
        self.measurements_ = measurements  # DP outputs (post-processing is free); not saved
        self.selected_ = selected
        self.remeasured_ = remeasured
        self.total_ = float(max(model.total, 1.0))

    def _sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.model_.sample(n, rng, stratified=True, refine=True)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.model_.to_state()
        return ({"graphical_model": meta, "selected": [list(r) for r in self.selected_], "rounds": self.rounds_,
                 "remeasured": [list(r) for r in self.remeasured_], "remeasure_share": self.remeasure_share_},
                {f"model/{k}": v for k, v in arrays.items()})

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.model_ = GraphicalModel.from_state(
            meta["graphical_model"], {k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        self.selected_ = [tuple(r) for r in meta["selected"]]
        self.rounds_ = int(meta["rounds"])
        self.remeasured_ = [tuple(r) for r in meta.get("remeasured", [])]
        self.remeasure_share_ = float(meta.get("remeasure_share", 0.0))


def _quality(estimates: dict[tuple[str, ...], np.ndarray], weights: dict[tuple[str, ...], float],
             sigma: float) -> Any:
    """AIM's quality score: weighted L1 error of the model minus the expected error of measuring.

    Its sensitivity is the weight: one patient moves one cell of the exact marginal by one.
    """

    def quality(r: tuple[str, ...], exact: np.ndarray) -> float:
        err = float(np.abs(exact - estimates[r]).sum())
        return weights[r] * (err - _SQRT_2_OVER_PI * sigma * exact.size)

    return quality


def _within_size(domain: Domain, cliques: list[tuple[str, ...]], candidates: list[tuple[str, ...]],
                 size_cap: float) -> list[tuple[str, ...]]:
    """Candidates whose addition keeps the junction tree within ``size_cap`` cells.

    Exact shortcuts avoid re-triangulating for most candidates: a candidate inside an existing
    clique adds nothing; one whose attributes all lie in different connected components of the
    model graph joins them without creating a cycle, so the junction tree gains exactly that
    clique. Only the rest are triangulated.
    """
    parent = {a: a for a in domain.attrs}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for c in cliques:
        for a in c[1:]:
            parent[find(a)] = find(c[0])
    sets = [frozenset(c) for c in cliques]
    base = junction_tree_size(domain, cliques)
    out = []
    for r in candidates:
        rs = set(r)
        if any(rs <= c for c in sets):
            out.append(r)
            continue
        roots = [find(a) for a in r]
        if len(set(roots)) == len(roots):
            size = base + domain.size(r)
        else:
            size = junction_tree_size(domain, cliques + [r])
        if size <= size_cap:
            out.append(r)
    return out
