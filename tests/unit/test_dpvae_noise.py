"""The DP-VAE's release-path Gaussian (issue 14.8): a correct N(0, 1), added in float64 and rounded once.

Tested as opacus tests its secure mode (the noise's mean and standard deviation over many draws),
plus the whole distribution (Kolmogorov–Smirnov, tail frequencies, fourth moment) and the
independence of successive calls. Thresholds are at 1e-6 so a correct sampler fails about once in a
million runs, and each test has a negative control that a wrong scale fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")

from synthhealth.generators.dpvae import fastdp  # noqa: E402

N = 400_000
LEVEL = 1e-6


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    return fastdp.CsprngRandom(torch.device("cpu")).normal(N, torch.float64).numpy()


def test_mean_and_standard_deviation(draws: np.ndarray) -> None:
    z = stats.norm.isf(LEVEL / 2)
    assert abs(draws.mean()) < z / math.sqrt(N)
    # the sample variance of N(0, 1) has standard deviation sqrt(2 / N)
    assert abs(draws.var() - 1.0) < z * math.sqrt(2.0 / N)
    assert abs((draws * 0.97).var() - 1.0) > z * math.sqrt(2.0 / N)  # a 3 % scale error is visible


def test_distribution_is_standard_normal(draws: np.ndarray) -> None:
    assert stats.kstest(draws, "norm").pvalue > LEVEL
    assert stats.kstest(draws * 1.02, "norm").pvalue < LEVEL
    # fourth moment (kurtosis 3) and the tails that DP's (epsilon, delta) depend on
    kurt = float(np.mean(draws**4))
    assert abs(kurt - 3.0) < stats.norm.isf(LEVEL / 2) * math.sqrt(96.0 / N)
    for t in (2.0, 3.0, 4.0):
        k = int((np.abs(draws) > t).sum())
        p = 2 * stats.norm.sf(t)
        assert stats.binomtest(k, N, p).pvalue > LEVEL, t


def test_successive_calls_are_independent() -> None:
    rnd = fastdp.CsprngRandom(torch.device("cpu"))
    a, b = rnd.normal(100_000, torch.float64).numpy(), rnd.normal(100_000, torch.float64).numpy()
    assert abs(np.corrcoef(a, b)[0, 1]) < stats.norm.isf(LEVEL / 2) / math.sqrt(100_000)
    assert not np.array_equal(a[:10], b[:10])


def test_uniforms_avoid_zero() -> None:
    u = fastdp.CsprngRandom._uniform_np(1_000_000)
    assert u.min() > 0.0 and u.max() <= 1.0  # log(u) in Box-Muller is finite
    assert u.dtype == np.float64


def test_normal_is_float64_before_any_rounding() -> None:
    out = fastdp.CsprngRandom(torch.device("cpu")).normal(1000, torch.float64)
    assert out.dtype == torch.float64
    # float64 draws carry more than float32's 24 bits
    assert (out.numpy() != out.numpy().astype(np.float32).astype(np.float64)).mean() > 0.99


def test_add_noise_computes_in_float64_and_rounds_once() -> None:
    flat = (torch.arange(1000, dtype=torch.float32) * 1e-3)
    expected = flat.double()
    z = fastdp.TorchRandom(7, torch.device("cpu")).normal(1000, torch.float64)
    expected = ((expected + 0.37 * z) * 0.125).to(torch.float32)
    got = flat.clone()
    fastdp.add_noise(got, fastdp.TorchRandom(7, torch.device("cpu")), 0.37, 0.125)
    assert torch.equal(got, expected)
    # the earlier float32 path ((flat + std * z32) then * scale, two roundings) differs in low-order bits
    z32 = z.to(torch.float32)
    two_roundings = (flat + 0.37 * z32) * 0.125
    assert not torch.equal(two_roundings, expected)


def test_add_noise_without_noise_only_scales() -> None:
    flat = torch.ones(5)
    fastdp.add_noise(flat, fastdp.TorchRandom(0, torch.device("cpu")), 0.0, 0.5)
    assert torch.equal(flat, torch.full((5,), 0.5))
