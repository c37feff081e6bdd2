"""Mutants of production code: each breaks one privacy-relevant point and keeps the charge unchanged.

A mutant is a context manager that patches the installed package (or, for
``opendp_gaussian_outside``, what the package calls in OpenDP) the way a bug or a tampered
dependency would. ``tests/audit/e2e/test_mutants.py`` runs, for each, the end-to-end audit or the
accounting cross-check named in :data:`MUTANTS` and asserts that it fails: a mutant that survives
is a gap in the audits. Run them with ``python -m pytest tests/audit --mutants``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np


@dataclass(frozen=True)
class Mutant:
    """One deliberate break of production code."""

    name: str
    what: str
    patch: Callable[[], contextlib.AbstractContextManager[Any]]
    audits: tuple[str, ...]
    """The audits expected to fail under this mutant (names in ``test_mutants.AUDITS``)."""


@contextlib.contextmanager
def gaussian_quarter() -> Iterator[None]:
    """``NoiseSource.gaussian`` draws σ/4 while ``gaussian_cost`` (the charge) still uses σ (AIM, MST)."""
    from synthhealth.privacy import mechanisms

    orig = mechanisms.NoiseSource.gaussian
    with mock.patch.object(mechanisms.NoiseSource, "gaussian", lambda self, counts, sigma: orig(self, counts, sigma / 4)):
        yield


@contextlib.contextmanager
def opendp_gaussian_outside() -> Iterator[None]:
    """From outside the package: OpenDP's Gaussian measurement wrapped so that its noise is quartered
    and its privacy map unchanged (a tampered or buggy dependency)."""
    from synthhealth.privacy import mechanisms

    orig = mechanisms._gaussian_measurement

    class Quartered:
        def __init__(self, meas: Any) -> None:
            self._meas = meas

        def map(self, d_in: Any) -> Any:
            return self._meas.map(d_in)

        def __call__(self, arg: list[int]) -> list[int]:
            noisy = np.asarray(self._meas(arg), dtype=float)
            exact = np.asarray(arg, dtype=float)
            return np.rint(exact + (noisy - exact) / 4).astype(np.int64).tolist()

    with mock.patch.object(mechanisms, "_gaussian_measurement", lambda sigma: Quartered(orig(sigma))):
        yield


@contextlib.contextmanager
def noisy_max_sensitivity_div10() -> Iterator[None]:
    """Selection declared (and its noise scaled) with a tenth of the scores' sensitivity (AIM's ``sens``)."""
    from synthhealth.generators import private_data

    orig = private_data.PrivateData.select

    def select(self: Any, candidates: Any, score: Any, sensitivity: float, rho: float, target: str) -> int:
        return orig(self, candidates, score, sensitivity / 10, rho, target)

    with mock.patch.object(private_data.PrivateData, "select", select):
        yield


@contextlib.contextmanager
def measurement_not_charged() -> Iterator[None]:
    """One Gaussian measurement released without its ledger entry (the first 2-way marginal)."""
    from synthhealth.generators import private_data

    orig = private_data.PrivateData._charge_gaussian
    skipped: list[str] = []

    def charge(self: Any, target: str, sigma: float) -> None:
        if "," in target and not skipped:
            skipped.append(target)
            return
        orig(self, target, sigma)

    with mock.patch.object(private_data.PrivateData, "_charge_gaussian", charge):
        yield


@contextlib.contextmanager
def dpvae_marginals_quarter() -> Iterator[None]:
    """The DPVAE's noisy marginals drawn with σ/4, charged at σ."""
    from synthhealth.generators.dpvae import fastdp

    orig = fastdp.gaussian_vector
    with mock.patch.object(fastdp, "gaussian_vector", lambda values, sigma, rnd: orig(values, sigma / 4, rnd)):
        yield


@contextlib.contextmanager
def dpsgd_multiplier_div4() -> Iterator[None]:
    """DP-SGD trains with noise multiplier σ/4 while the ledger charges σ."""
    from synthhealth.generators.dpvae import fastdp

    orig = fastdp.train_fast

    def train(module: Any, spec: Any, codes: Any, plan: Any, *args: Any, **kw: Any) -> int:
        return orig(module, spec, codes, dataclasses.replace(plan, noise_multiplier=plan.noise_multiplier / 4),
                    *args, **kw)

    with mock.patch.object(fastdp, "train_fast", train):
        yield


@contextlib.contextmanager
def csprng_gaussian_quarter() -> Iterator[None]:
    """The release path's CSPRNG normals scaled by 0.25 (``CsprngRandom.normal``)."""
    from synthhealth.generators.dpvae import fastdp

    orig = fastdp.CsprngRandom.normal
    with mock.patch.object(fastdp.CsprngRandom, "normal", lambda self, m, dtype: orig(self, m, dtype) * 0.25):
        yield


@contextlib.contextmanager
def clipping_skipped() -> Iterator[None]:
    """Per-sample gradients summed without clipping."""
    from synthhealth.generators.dpvae import fastdp

    orig = fastdp.clipped_grad_sum

    def unclipped(weights: Any, biases: Any, spec: Any, codes: Any, noise: Any, clip: float, *a: Any,
                  **kw: Any) -> Any:
        return orig(weights, biases, spec, codes, noise, float("inf"), *a, **kw)

    with mock.patch.object(fastdp, "clipped_grad_sum", unclipped):
        yield


@contextlib.contextmanager
def fixed_shuffled_batches() -> Iterator[None]:
    """Poisson sampling replaced by fixed-size batches of a shuffled epoch (q·n rows each)."""
    import torch

    from synthhealth.generators.dpvae import fastdp

    class Shuffled:
        def __init__(self, n: int, q: float, rnd: Any, *a: Any, **kw: Any) -> None:
            self.n, self.size = n, max(1, round(q * n))
            self.order: list[int] = []
            self.gen = torch.Generator().manual_seed(0)

        def next(self) -> Any:
            if len(self.order) < self.size:
                self.order = torch.randperm(self.n, generator=self.gen).tolist()
            batch, self.order = self.order[:self.size], self.order[self.size:]
            return torch.tensor(sorted(batch), dtype=torch.long)

    with mock.patch.object(fastdp, "PoissonBatches", Shuffled):
        yield


@contextlib.contextmanager
def flatten_one_row_per_resource() -> Iterator[None]:
    """``flatten``'s bound on a person's contribution removed: Patient resources of one person
    (shared identifier) are no longer recognised, so each becomes its own row."""
    import importlib

    module = importlib.import_module("synthhealth.transform.flatten")
    with mock.patch.object(module._Flattener, "_identity", lambda self, row, res, *a: None):
        yield


MUTANTS: tuple[Mutant, ...] = (
    Mutant("gaussian_quarter", "AIM/MST Gaussian noise sigma/4, charged at sigma", gaussian_quarter,
           ("aim_e2e", "mst_e2e", "charge_equals_noise")),
    Mutant("opendp_gaussian_outside", "OpenDP's Gaussian measurement wrapped from outside: noise/4, map unchanged",
           opendp_gaussian_outside, ("mst_e2e", "charge_equals_noise")),
    Mutant("noisy_max_sensitivity_div10", "noisy-max sensitivity / 10 (scale and charge from it)",
           noisy_max_sensitivity_div10, ("charge_equals_noise",)),
    Mutant("measurement_not_charged", "a 2-way marginal measured without a ledger entry",
           measurement_not_charged, ("charge_equals_noise",)),
    Mutant("dpvae_marginals_quarter", "DPVAE noisy marginals sigma/4, charged at sigma", dpvae_marginals_quarter,
           ("dpvae_marginals_e2e", "charge_equals_noise")),
    Mutant("dpsgd_multiplier_div4", "DP-SGD noise multiplier sigma/4, charged at sigma", dpsgd_multiplier_div4,
           ("dpsgd_e2e", "charge_equals_noise")),
    Mutant("csprng_gaussian_quarter", "release-path CSPRNG Gaussian scaled by 0.25", csprng_gaussian_quarter,
           ("dpsgd_e2e", "dpvae_marginals_e2e", "charge_equals_noise")),
    Mutant("clipping_skipped", "DP-SGD per-sample clipping skipped", clipping_skipped,
           ("dpsgd_e2e", "charge_equals_noise")),
    Mutant("fixed_shuffled_batches", "Poisson sampling replaced by fixed-size shuffled batches",
           fixed_shuffled_batches, ("charge_equals_noise",)),
    Mutant("flatten_one_row_per_resource", "flatten's one-row-per-person bound removed (shared identifiers)",
           flatten_one_row_per_resource, ("fhir_mst_e2e",)),
)
