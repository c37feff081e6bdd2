"""Charge = noise used: record every sampler call of a real fit and recompute its privacy cost.

:func:`record` patches, for the duration of a fit on the release path, the points where noise is
drawn and data are measured, *around* whatever code is installed (so a mutant patched in first
is observed, not bypassed):

- AIM / MST: every ``NoiseSource.gaussian`` call (σ used and the noise actually added),
  every ``NoiseSource.noisy_max`` call (scale used), and at every ``PrivateData`` measurement and
  selection the value of the measured function on neighbours of the data (one row added, one
  row removed): the sensitivity observed;
- DPVAE: the noisy marginals (σ used, noise added, sensitivity observed on neighbours), every
  DP-SGD run (the plan it was charged for), the noise each step really added to the released
  gradient (:mod:`.whitebox`), the normals of the release sampler, every Poisson batch, and the
  clipped contribution of single patients (must not exceed the clip norm).

:func:`check` then recomputes every cost from what was used and compares it with the ledger:
one entry per sampler call, σ used = σ charged, observed sensitivity ≤ the declared one, ρ (or
ε) from (σ, sensitivity) = the entry's, the noise's empirical variance consistent with σ²
(χ² test at level 1e-6), and Poisson batch sizes consistent with Binomial(n, q).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
from scipy.stats import chi2

from .whitebox import dpsgd_residuals

LEVEL = 1e-6
"""Significance level of the statistical checks (χ² of the noise, dispersion of batch sizes)."""


@dataclass
class Record:
    """What one fit drew and measured (filled by :func:`record`)."""

    entries: list[Any] = field(default_factory=list)
    gaussian: list[tuple[float, np.ndarray, float]] = field(default_factory=list)
    """(σ used, noise added / σ, observed L2 sensitivity) per Gaussian release, in order."""
    noisy_max: list[tuple[float, float]] = field(default_factory=list)
    """(scale used, observed L∞ sensitivity of the scores) per selection, in order."""
    plans: list[Any] = field(default_factory=list)
    normals: list[np.ndarray] = field(default_factory=list)
    batches: list[tuple[int, float, list[int]]] = field(default_factory=list)
    sgd_noise: list[np.ndarray] = field(default_factory=list)
    """Per DP-SGD step: the noise really added to the released gradient, in units of the charged σC."""
    clip_excess: list[float] = field(default_factory=list)
    """Per DP-SGD chunk: the largest norm of one patient's clipped contribution divided by the clip norm."""
    by_fit: dict[str, Record] = field(default_factory=dict)
    """The same, per fit (keyed by fit id), for a record of several fits."""
    current: str | None = None

    def cur(self) -> Record:
        """Where the calls of the fit now running go."""
        if self.current is None:
            return self
        return self.by_fit.setdefault(self.current, Record())


def only_fit(rec: Record, fit_id: str) -> Record:
    """The calls of one fit of a record."""
    return rec.by_fit.get(fit_id, Record())


def _neighbour_codes(codes: np.ndarray) -> list[np.ndarray]:
    """Neighbours of an encoded table: each of a few rows added again (a new patient with those
    values), and the first and last rows removed."""
    picks = sorted({0, len(codes) // 2, len(codes) - 1})
    out = [np.vstack([codes, codes[i:i + 1]]) for i in picks]
    out += [codes[1:], codes[:-1]]
    return out


@contextlib.contextmanager
def record() -> Iterator[Record]:
    """Record the sampler calls and observed sensitivities of the fits run inside the block."""
    from synthhealth.generators import private_data
    from synthhealth.generators.dpvae import fastdp
    from synthhealth.generators.dpvae import generator as dpgen
    from synthhealth.privacy import ledger as ledger_mod
    from synthhealth.privacy import mechanisms

    rec = Record()
    pd_cls = private_data.PrivateData
    orig_charge = ledger_mod.PrivacyLedger.charge
    orig_gauss = mechanisms.NoiseSource.gaussian
    orig_max = mechanisms.NoiseSource.noisy_max
    orig_measure, orig_count, orig_select = pd_cls.measure, pd_cls.count, pd_cls.select
    orig_vector = fastdp.gaussian_vector
    orig_train = fastdp.train_fast
    orig_normal = fastdp.CsprngRandom.normal
    orig_batches = fastdp.PoissonBatches
    orig_clip = fastdp.clipped_grad_sum
    orig_counts = dpgen.marginal_counts
    pending: list[float] = []  # observed sensitivity of the release being made

    orig_begin = ledger_mod.PrivacyLedger.begin_fit

    def begin_fit(self: Any, *a: Any, **kw: Any) -> str:
        fit_id = orig_begin(self, *a, **kw)
        rec.current = fit_id
        return fit_id

    def charge(self: Any, entry: Any) -> None:
        rec.cur().entries.append(entry)
        return orig_charge(self, entry)

    def gaussian(self: Any, counts: np.ndarray, sigma: float) -> np.ndarray:
        out = orig_gauss(self, counts, sigma)
        sens = pending.pop() if pending else float("nan")
        rec.cur().gaussian.append((float(sigma), (np.asarray(out, float) - np.asarray(counts, float)).ravel() / sigma, sens))
        return out

    def noisy_max(self: Any, scores: np.ndarray, scale: float) -> int:
        sens = pending.pop() if pending else float("nan")
        rec.cur().noisy_max.append((float(scale), sens))
        return orig_max(self, scores, scale)

    def marginal_sens(self: Any, clique: tuple[str, ...] | None) -> float:
        def value(codes: np.ndarray) -> np.ndarray:
            if clique is None:
                return np.array([len(codes)], dtype=float)
            return private_data.marginal_counts(codes, self.domain, clique).astype(float)

        base = value(self._codes)
        return max(float(np.linalg.norm(value(c) - base)) for c in _neighbour_codes(self._codes))

    def measure(self: Any, clique: Any, sigma: float) -> Any:
        pending.append(marginal_sens(self, tuple(clique)))
        return orig_measure(self, clique, sigma)

    def count(self: Any, sigma: float) -> float:
        pending.append(marginal_sens(self, None))
        return orig_count(self, sigma)

    def select(self: Any, candidates: Any, score: Any, sensitivity: float, rho: float, target: str) -> int:
        def scores(codes: np.ndarray) -> np.ndarray:
            return np.array([score(c, private_data.marginal_counts(codes, self.domain, c)) for c in candidates])

        base = scores(self._codes)
        pending.append(max(float(np.max(np.abs(scores(c) - base))) for c in _neighbour_codes(self._codes)))
        return orig_select(self, candidates, score, sensitivity, rho, target)

    last_counts: list[float] = []

    def counts_spy(codes: np.ndarray, sizes: Any, pairs: Any = ()) -> np.ndarray:
        base = orig_counts(codes, sizes, pairs)
        last_counts[:] = [max(float(np.linalg.norm(orig_counts(c, sizes, pairs) - base)) for c in _neighbour_codes(codes))]
        return base

    def vector(values: np.ndarray, sigma: float, rnd: Any) -> np.ndarray:
        out = orig_vector(values, sigma, rnd)
        sens = last_counts.pop() if last_counts else float("nan")
        rec.cur().gaussian.append((float(sigma), (np.asarray(out, float) - np.asarray(values, float)).ravel() / sigma, sens))
        return out

    def train(module: Any, spec: Any, codes: Any, plan: Any, *args: Any, **kw: Any) -> int:
        rec.cur().plans.append(plan)
        return orig_train(module, spec, codes, plan, *args, **kw)

    def normal(self: Any, m: int, dtype: Any) -> Any:
        out = orig_normal(self, m, dtype)
        rec.cur().normals.append(out.detach().cpu().double().numpy().copy())
        return out

    class Batches:
        def __init__(self, n: int, q: float, rnd: Any, *a: Any, **kw: Any) -> None:
            self._inner = orig_batches(n, q, rnd, *a, **kw)
            self._sizes: list[int] = []
            rec.cur().batches.append((int(n), float(q), self._sizes))

        def next(self) -> Any:
            idx = self._inner.next()
            self._sizes.append(int(idx.numel()))
            return idx

    def clipped(weights: Any, biases: Any, spec: Any, codes: Any, noise: Any, clip: float, *a: Any, **kw: Any) -> Any:
        out = orig_clip(weights, biases, spec, codes, noise, clip, *a, **kw)
        worst = 0.0
        for i in range(min(int(codes.shape[0]), 8)):  # single patients' contributions, through the same code
            w, b, _ = orig_clip(weights, biases, spec, codes[i:i + 1], noise[i:i + 1], clip, *a, **kw)
            norm = math.sqrt(sum(float((t.double() ** 2).sum()) for t in [*w, *b]))
            worst = max(worst, norm / clip)
        rec.cur().clip_excess.append(worst)
        return out

    patches = [
        mock.patch.object(ledger_mod.PrivacyLedger, "begin_fit", begin_fit),
        mock.patch.object(ledger_mod.PrivacyLedger, "charge", charge),
        mock.patch.object(mechanisms.NoiseSource, "gaussian", gaussian),
        mock.patch.object(mechanisms.NoiseSource, "noisy_max", noisy_max),
        mock.patch.object(pd_cls, "measure", measure),
        mock.patch.object(pd_cls, "count", count),
        mock.patch.object(pd_cls, "select", select),
        mock.patch.object(dpgen, "marginal_counts", counts_spy),
        mock.patch.object(fastdp, "gaussian_vector", vector),
        mock.patch.object(fastdp, "train_fast", train),
        mock.patch.object(fastdp.CsprngRandom, "normal", normal),
        mock.patch.object(fastdp, "PoissonBatches", Batches),
        mock.patch.object(fastdp, "clipped_grad_sum", clipped),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        stack.enter_context(dpsgd_residuals(lambda step: rec.cur().sgd_noise.append(step.residual.numpy().copy())))
        yield rec


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def check(rec: Record, fit_id: str) -> list[str]:
    """Every disagreement between what the fit used and what the ledger charged (empty: consistent)."""
    from synthhealth.privacy.accounting import gaussian_rho

    problems: list[str] = []
    entries = [e for e in rec.entries if e.fit_id == fit_id]
    gauss_entries = [e for e in entries if e.mechanism in ("discrete_gaussian", "gaussian")]
    max_entries = [e for e in entries if e.mechanism in ("noisy_max", "gumbel_max")]
    sgd_entries = [e for e in entries if e.mechanism == "dp_sgd_subsampled_gaussian"]
    if len(gauss_entries) != len(rec.gaussian):
        problems.append(f"{len(rec.gaussian)} Gaussian releases drawn, {len(gauss_entries)} charged")
    if len(max_entries) != len(rec.noisy_max):
        problems.append(f"{len(rec.noisy_max)} selections drawn, {len(max_entries)} charged")
    for e, (sigma, _, sens) in zip(gauss_entries, rec.gaussian, strict=False):
        if not _close(sigma, e.scale):
            problems.append(f"{e.target}: noise sigma {sigma:.6g} drawn, {e.scale:.6g} charged")
        if not sens <= e.sensitivity * (1 + 1e-9):
            problems.append(f"{e.target}: sensitivity {sens:.6g} observed, {e.sensitivity:.6g} declared")
        if e.accounting == "zcdp" and not _close(e.rho, gaussian_rho(e.sensitivity, e.scale), 1e-6):
            problems.append(f"{e.target}: rho {e.rho:.6g} charged, {gaussian_rho(e.sensitivity, e.scale):.6g} "
                            "from its sigma and sensitivity")
    for e, (scale, sens) in zip(max_entries, rec.noisy_max, strict=False):
        if not _close(scale, e.scale):
            problems.append(f"{e.target}: selection scale {scale:.6g} used, {e.scale:.6g} charged")
        if not sens <= e.sensitivity * (1 + 1e-9):
            problems.append(f"{e.target}: score sensitivity {sens:.6g} observed, {e.sensitivity:.6g} declared")
        if not _close(e.rho, (2 * e.sensitivity / e.scale) ** 2 / 8, 1e-6):
            problems.append(f"{e.target}: rho {e.rho:.6g} charged for scale {e.scale:.6g}")
    if rec.clip_excess and max(rec.clip_excess) > 1 + 1e-4:
        problems.append(f"clipping: one patient's contribution reached {max(rec.clip_excess):.4g} x the clip norm")
    for e, plan in zip(sgd_entries, rec.plans, strict=False):
        used = plan.noise_multiplier * plan.clip
        if not _close(used, e.scale, 1e-9) or not _close(plan.clip, e.sensitivity, 1e-9):
            problems.append(f"DP-SGD: noise std {used:.6g} with clip {plan.clip:.6g} used, "
                            f"{e.scale:.6g} / {e.sensitivity:.6g} charged")
    if len(sgd_entries) != len(rec.plans):
        problems.append(f"{len(rec.plans)} DP-SGD runs, {len(sgd_entries)} charged")
    return problems


def check_noise(rec: Record) -> list[str]:
    """The statistical checks, pooled over every fit of the record: the noise really added has the
    charged variance (χ²), the release sampler's normals have variance 1, and Poisson batch sizes
    are Binomial(n, q) (dispersion), each at level :data:`LEVEL`."""
    parts = list(rec.by_fit.values()) or [rec]
    pooled = Record(gaussian=[g for r in parts for g in r.gaussian], sgd_noise=[w for r in parts for w in r.sgd_noise],
                    normals=[w for r in parts for w in r.normals], batches=[b for r in parts for b in r.batches])
    return _noise_problems(pooled)


def _chi2_p(values: list[np.ndarray]) -> tuple[float, int, float]:
    """(sum of squares, count, two-sided p) of values that should be independent N(0, 1)."""
    w = np.concatenate(values)
    q = float((w**2).sum())
    return q, len(w), float(min(chi2.cdf(q, len(w)), chi2.sf(q, len(w))))


def _noise_problems(rec: Record) -> list[str]:
    problems: list[str] = []
    # the noise actually added: its sum of squares over sigma^2 is chi-square with one degree per cell
    if rec.gaussian:
        q, k, p = _chi2_p([g[1] for g in rec.gaussian])
        if p < LEVEL / 2:
            problems.append(f"Gaussian noise: sum of squares {q:.4g} over {k} cells at the charged sigma "
                            f"(expected {k}; p = {p:.2g})")
    if rec.sgd_noise:
        q, k, p = _chi2_p(rec.sgd_noise)
        if p < LEVEL / 2:
            problems.append(f"DP-SGD noise: mean square {q / k:.4g} of the released gradients' noise over "
                            f"{k} coordinates, in units of the charged sigma*C (expected 1; p = {p:.2g})")
    if rec.normals:
        q, k, p = _chi2_p(rec.normals)
        if p < LEVEL / 2:
            problems.append(f"release sampler normals: mean square {q / k:.4g} over {k} draws (expected 1)")
    for n, qrate, sizes in rec.batches:
        if qrate >= 1.0 or len(sizes) < 10:
            continue
        var = n * qrate * (1 - qrate)
        s2 = float(np.var(sizes, ddof=1)) * (len(sizes) - 1) / var
        p = min(chi2.cdf(s2, len(sizes) - 1), chi2.sf(s2, len(sizes) - 1))
        mean_ok = abs(np.mean(sizes) - n * qrate) <= 6 * math.sqrt(var / len(sizes))
        if p < LEVEL / 2 or not mean_ok:
            problems.append(f"Poisson sampling: batch sizes mean {np.mean(sizes):.4g}, variance {np.var(sizes, ddof=1):.4g} "
                            f"over {len(sizes)} steps; Binomial({n}, {qrate:.4g}) has {n * qrate:.4g} and {var:.4g}")
    return problems


def dpsgd_epsilon_recomputed(gen: Any, rec: Record) -> float:
    """ε of the DPVAE fit recomputed from what it used: the marginals' (σ, √m) and DP-SGD's (σ, q, T)."""
    from synthhealth.generators.dpvae import accounting

    hist = []
    for sigma, _, sens in rec.gaussian:
        hist.append(accounting.gaussian_entry(sigma, sens))
    for plan in rec.plans:
        hist.append((plan.noise_multiplier, plan.sample_rate, plan.steps))
    return accounting.composed_epsilon(hist, gen.budget_.delta, gen.accountant,
                                       eps_error=accounting.eps_error_for(gen.budget_.epsilon))
