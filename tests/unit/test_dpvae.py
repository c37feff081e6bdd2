"""DPVAE: the generator contract, the fast DP-SGD path against opacus, Poisson sampling, accounting, saving."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.generators.dpvae import DPVAE
from synthhealth.privacy import PrivacyBudget, PrivacyLedger
from synthhealth.schema import schema_from_dict
from synthhealth.transform.encode import Encoder

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from synthhealth.generators.dpvae import accounting, fastdp, network  # noqa: E402
from synthhealth.generators.dpvae.reference import opacus_clipped_grad_sum  # noqa: E402

SMALL = schema_from_dict({
    "synthhealth_schema": 1, "name": "small-vae", "version": "1", "reference_date": "2020-01-01",
    "attributes": [
        {"name": "sex", "type": "categorical", "categories": ["F", "M", "other"], "other": "other"},
        {"name": "age", "type": "numeric", "bounds": [0, 100], "bins": {"width": 20}, "integer": True},
        {"name": "dm", "type": "boolean", "missing": False},
        {"name": "visits", "type": "count", "cap": 4, "missing": False},
        {"name": "bmi", "type": "numeric", "bounds": [10, 60], "bins": [10, 18.5, 25, 30, 60]},
    ],
})
# small and quick; RDP because PRV takes seconds at the large sampling rates of small tables (PRV is
# exercised by the `fitted` fixture and the accountant tests)
FAST = {"epochs": 2, "batch_size": 128, "hidden_sizes": (16,), "latent_size": 2, "accountant": "rdp"}


def small_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(0, 100, n)
    dm = rng.random(n) < 0.05 + 0.5 * (age > 60)
    bmi = np.where(rng.random(n) < 0.2, np.nan, rng.normal(27, 5, n).clip(10, 60))
    return pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": age, "dm": dm,
                         "visits": rng.integers(0, 5, n), "bmi": bmi}).rename_axis("patient_id")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """These models are tiny: one thread avoids thread-pool stalls when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return small_table()


@pytest.fixture(scope="module")
def fitted(table: pd.DataFrame) -> DPVAE:
    return DPVAE(epsilon=2.0, delta=1e-6, random_state=0, **{**FAST, "accountant": "prv"}).fit(table, schema=SMALL)


# ------------------------------------------------------------------ contract
def test_import_does_not_need_torch() -> None:
    code = ("import sys, synthhealth, synthhealth.generators.dpvae as d; "
            "print(sorted(m for m in ('torch', 'opacus', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_raises_optional_dependency_error(monkeypatch: pytest.MonkeyPatch, table: pd.DataFrame) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)  # makes `import opacus` raise ImportError
    ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    with pytest.raises(sh.OptionalDependencyError, match=r"'opacus'.*pip install \"synthhealth\[dpvae\]\""):
        DPVAE(random_state=0).fit(table, schema=SMALL, ledger=ledger)
    assert ledger.fits == [] and ledger.entries == []  # refused before the ledger or the data


def test_contract_and_validation(table: pd.DataFrame) -> None:
    gen = DPVAE(epsilon=-1)
    assert gen.get_params()["epsilon"] == -1 and gen.get_params()["engine"] == "fast"
    with pytest.raises(sh.NotFittedError, match="not fitted yet"):
        gen.sample(3)
    with pytest.raises(sh.InvalidParameterError,
                       match=r"The 'epsilon' parameter of DPVAE must be a float in \(0, 100\] .*Got -1 instead."):
        gen.fit(table, schema=SMALL)
    cases = [
        ({"batch_size": 0}, r"The 'batch_size' parameter of DPVAE must be an int in \[1, inf\). Got 0 instead."),
        ({"epochs": 1.5}, r"The 'epochs' parameter of DPVAE must be an int. Got float 1.5 instead."),
        ({"learning_rate": 0}, r"The 'learning_rate' parameter of DPVAE must be a float in \(0, inf\). Got 0"),
        ({"hidden_sizes": (8, 0)}, r"The 'hidden_sizes' parameter of DPVAE must be a tuple of positive ints. Got"),
        ({"hidden_sizes": "64"}, r"The 'hidden_sizes' parameter of DPVAE must be a tuple of positive ints. Got '64'"),
        ({"clip_norm": math.inf}, r"The 'clip_norm' parameter of DPVAE must be a float in \(0, inf\). Got inf"),
        ({"count_share": 1.0, "marginals_share": 0}, r"The 'count_share' parameter of DPVAE must be a float in \(0, 1\)"),
        ({"marginals_share": 1.0}, r"The 'marginals_share' parameter of DPVAE must be a float in \[0, 1\). Got 1.0"),
        ({"calibrate": 1}, r"The 'calibrate' parameter of DPVAE must be"),
        ({"finetune_steps": -1}, r"The 'finetune_steps' parameter of DPVAE must be an int in \[0, inf\). Got -1"),
        ({"finetune_steps": 2.5}, r"The 'finetune_steps' parameter of DPVAE must be an int"),
        ({"accountant": "gdp"}, r"The 'accountant' parameter of DPVAE must be one of 'prv', 'rdp'. Got 'gdp'"),
        ({"engine": "jax"}, r"The 'engine' parameter of DPVAE must be one of 'fast', 'opacus'. Got 'jax'"),
        ({"device": "tpu"}, r"The 'device' parameter of DPVAE must be one of 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ({"secure_mode": True, "random_state": 0}, r"'secure_mode' parameter of DPVAE cannot be True with a"),
    ]
    for params, msg in cases:
        with pytest.raises(sh.InvalidParameterError, match=msg):
            DPVAE(**{"random_state": 0, **params}).fit(table, schema=SMALL)
    assert repr(DPVAE(epsilon=2.0)).startswith("DPVAE(epsilon=2.0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda(table: pd.DataFrame) -> None:
    with pytest.raises(sh.InvalidParameterError, match="'cuda' but CUDA is not available"):
        DPVAE(device="cuda", random_state=0).fit(table, schema=SMALL)


def test_opacus_secure_mode_needs_torchcsprng(table: pd.DataFrame) -> None:
    try:
        import torchcsprng  # type: ignore[import-not-found]  # noqa: F401
        pytest.skip("torchcsprng is installed")
    except ImportError:
        pass
    ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    with pytest.raises(sh.OptionalDependencyError, match="torchcsprng"):
        DPVAE(engine="opacus", secure_mode=True).fit(table, schema=SMALL, ledger=ledger)
    assert ledger.entries == []


# ------------------------------------------------- fast path against opacus
def _batch(spec: network.VAESpec, n: int, dtype: torch.dtype, seed: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes, their one-hot rows, and reparameterisation noise."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, s, (n,), generator=g) for s in spec.sizes], dim=1)
    x = network.one_hot(codes, torch.as_tensor(spec.offsets), spec.input_dim, dtype)
    return codes, x, torch.randn((n, spec.latent), generator=g, dtype=dtype)


@pytest.mark.parametrize("dtype, clip, rtol", [(torch.float32, 1.0, 1e-5), (torch.float32, 4.0, 1e-5),
                                               (torch.float64, 1.0, 1e-10), (torch.float64, 4.0, 1e-10)])
def test_fast_clipped_sum_equals_opacus(dtype: torch.dtype, clip: float, rtol: float) -> None:
    """Same batch, same parameters, same reparameterisation noise: the clipped sums agree.

    opacus runs the ``nn.Module`` on one-hot rows with per-sample gradients; the fast path runs from
    the codes (embedding-bag first layer, gathered loss) without them. clip=1 clips every patient;
    clip=4 leaves some unclipped (norms here are ~3-6).
    """
    spec = network.VAESpec(Encoder(SMALL).shape, (32, 16), 3, kl_weight=0.5)
    module = network.build_module(spec, generator=torch.Generator().manual_seed(1), dtype=dtype)
    codes, x, noise = _batch(spec, 300, dtype, seed=2)
    layers = [*module.encoder, *module.decoder]
    w_sums, b_sums, norms = fastdp.clipped_grad_sum([la.weight.detach() for la in layers],
                                                    [la.bias.detach() for la in layers], spec, codes, noise, clip)
    ref = opacus_clipped_grad_sum(module, spec, x, noise, clip)
    ours = [t for pair in zip(w_sums, b_sums, strict=True) for t in pair]
    assert len(ours) == len(ref) == 2 * len(layers)
    if clip == 4.0:
        assert 0 < int((norms < clip).sum()) < len(norms)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        rel = float((a - b).norm() / b.norm())
        assert rel <= rtol, rel


def test_fast_norms_equal_explicit_per_sample_gradients() -> None:
    spec = network.VAESpec((3, 4), (5,), 2)
    module = network.build_module(spec, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    codes, x, noise = _batch(spec, 7, torch.float64, seed=3)
    layers = [*module.encoder, *module.decoder]
    _, _, norms = fastdp.clipped_grad_sum([la.weight.detach() for la in layers], [la.bias.detach() for la in layers],
                                          spec, codes, noise, 1.0)
    for i in range(7):
        module.zero_grad()
        logits, mu, logvar = module(x[i:i + 1], noise[i:i + 1])
        network.per_sample_loss(logits, x[i:i + 1], mu, logvar, spec.sizes).sum().backward()
        explicit = math.sqrt(sum(float((p.grad ** 2).sum()) for p in module.parameters()))
        assert norms[i].item() == pytest.approx(explicit, rel=1e-12)


# ------------------------------------------------------------ Poisson sampling
@pytest.mark.parametrize(("rnd", "sampler"), [("torch", "single"), ("csprng", "single"), ("torch", "batches"),
                                             ("csprng", "batches"), ("torch", "batches-short"),
                                             ("torch", "batches-steps")])
def test_poisson_sampling_batch_sizes_are_binomial(rnd: str, sampler: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch sizes follow Binomial(n, q); rows are included uniformly and independently.

    ``batches``: the block sampler of the training loop; ``batches-short``: the same with blocks too
    small to reach the end of the table, so that every step goes through the completion rounds;
    ``batches-steps``: told to expect 7 steps (a block of 7), then asked for many more.
    """
    from scipy import stats

    n, q, runs = 400, 0.05, 2500
    source = fastdp.TorchRandom(123, torch.device("cpu")) if rnd == "torch" else fastdp.CsprngRandom(torch.device("cpu"))
    if sampler == "batches-short":
        monkeypatch.setattr(fastdp, "_slots", lambda n, q: 7)
    if sampler == "single":
        def draw() -> torch.Tensor:
            return fastdp.poisson_indices(n, q, source)
    else:
        batches = fastdp.PoissonBatches(n, q, source, max_elements=2_000,
                                        steps=7 if sampler == "batches-steps" else None)
        draw = batches.next
    sizes = np.empty(runs, dtype=int)
    counts = np.zeros(n)
    pairs = 0
    for r in range(runs):
        idx = draw().numpy()
        assert np.all(np.diff(idx) > 0) and (len(idx) == 0 or (idx[0] >= 0 and idx[-1] < n))
        sizes[r] = len(idx)
        counts[idx] += 1
        pairs += int(np.isin(idx + 1, idx).sum())
    # batch sizes: chi-square goodness of fit to Binomial(n, q) on pooled cells
    edges = np.arange(9, 33)
    observed = np.array([(sizes < 10).sum()] + [(sizes == k).sum() for k in edges[1:-1]] + [(sizes >= 32).sum()])
    pmf = np.array([stats.binom.cdf(9, n, q)] + [stats.binom.pmf(k, n, q) for k in edges[1:-1]]
                   + [stats.binom.sf(31, n, q)])
    assert stats.chisquare(observed, pmf * runs).pvalue > 1e-3
    assert sizes.var() == pytest.approx(n * q * (1 - q), rel=0.15)
    # every row has the same inclusion probability, and neighbours are independent
    assert stats.chisquare(counts).pvalue > 1e-3
    assert pairs / (runs * (n - 1)) == pytest.approx(q * q, rel=0.15)


def test_poisson_sampling_edge_cases() -> None:
    cpu = fastdp.TorchRandom(0, torch.device("cpu"))
    assert fastdp.poisson_indices(0, 0.5, cpu).numel() == 0
    assert fastdp.poisson_indices(5, 1.0, cpu).tolist() == [0, 1, 2, 3, 4]
    big = fastdp.poisson_indices(3_000_000, 0.001, cpu)  # several rounds of gaps
    assert 2700 < big.numel() < 3300 and int(big.max()) < 3_000_000
    assert fastdp.PoissonBatches(5, 1.0, cpu).next().tolist() == [0, 1, 2, 3, 4]
    assert fastdp.PoissonBatches(0, 0.5, cpu).next().numel() == 0
    blocks = fastdp.PoissonBatches(100_000, 0.01, cpu)
    assert blocks.chunk * blocks.m <= 1 << 22 and blocks.chunk > 1
    # a short run draws only the steps it needs
    short = fastdp.PoissonBatches(100_000, 0.01, cpu, steps=3)
    short.next()
    assert len(short._queue) == 2
    for _ in range(5):  # asking for more than announced still works
        assert 800 < short.next().numel() < 1200


def test_cpu_chunks_give_the_same_training(monkeypatch: pytest.MonkeyPatch) -> None:
    # the clipped sum is a sum over patients: chunking it (CPU) must not change the step
    spec = network.VAESpec((3, 4, 2), (8,), 2)
    codes = torch.as_tensor(np.random.default_rng(0).integers(0, 2, (300, 3)))
    plan = fastdp.DPSGDPlan(sample_rate=0.5, noise_multiplier=1.0, clip=0.5, steps=6, denominator=150.0,
                            steps_per_epoch=2, learning_rate=0.01)
    out = []
    for chunk in (10**9, 7):
        monkeypatch.setattr(fastdp, "CPU_CHUNK", chunk)
        module = network.build_module(spec, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        aux = torch.Generator().manual_seed(1)
        fastdp.train_fast(module, spec, codes, plan, fastdp.TorchRandom(5, torch.device("cpu")), aux)
        out.append(torch.cat([p.detach().reshape(-1) for p in module.parameters()]))
    torch.testing.assert_close(out[0], out[1], rtol=1e-9, atol=1e-12)
    start = network.build_module(spec, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert not torch.allclose(out[0], torch.cat([p.detach().reshape(-1) for p in start.parameters()]))


# ----------------------------------------------------------------- accounting
def _pld_epsilon(sigma: float, q: float, steps: int, delta: float, gaussian: float | None = None) -> float:
    """Google's PLD accountant; ``gaussian``: the noise multiplier of one more (not subsampled) Gaussian."""
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    acc = pld_privacy_accountant.PLDAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    if gaussian is not None:
        acc.compose(dp_accounting.GaussianDpEvent(gaussian))
    return float(acc.get_epsilon(delta))


def _gaussian_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of the Gaussian mechanism with sensitivity / sigma = mu (Balle and Wang 2018), by bisection."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    def excess(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return float(brentq(excess, 0.0, 100.0))


@pytest.mark.parametrize("mus", [(0.3,), (0.3, 0.5), (0.1, 0.2, 0.4)])
def test_composed_gaussians_match_the_analytic_epsilon(mus: tuple[float, ...]) -> None:
    """Gaussian mechanisms compose into a Gaussian of mu = sqrt(sum mu_i^2): PRV is within its slack above it."""
    hist = [accounting.gaussian_entry(10.0, 10.0 * m) for m in mus]
    assert hist[0] == (pytest.approx(1 / mus[0]), 1.0, 1)
    exact = _gaussian_epsilon(math.sqrt(sum(m * m for m in mus)), 1e-5)
    prv = accounting.composed_epsilon(hist, 1e-5, "prv", eps_error=0.01)
    assert exact - 1e-6 <= prv <= exact + 0.011, (prv, exact)
    assert accounting.composed_epsilon(hist, 1e-5, "rdp") >= prv  # RDP is the looser bound


def test_dp_sgd_composed_with_the_marginals_matches_google_pld() -> None:
    pytest.importorskip("dp_accounting")
    extra = [accounting.gaussian_entry(60.0, math.sqrt(11))]
    sigma, eps = accounting.noise_multiplier(1.0, 1e-5, 0.186, 270, "prv", extra=extra)
    assert 0.98 <= eps <= 1.0
    pld = _pld_epsilon(sigma, 0.186, 270, 1e-5, gaussian=extra[0][0])
    assert abs(eps - pld) <= 0.01 + 0.01 * pld, (eps, pld)
    # composing costs noise: more than DP-SGD alone needs, and more than either mechanism alone spends
    alone, _ = accounting.noise_multiplier(1.0, 1e-5, 0.186, 270, "prv")
    assert sigma > alone
    assert eps > accounting.dp_sgd_epsilon(sigma, 0.186, 270, 1e-5, "prv")
    assert eps > accounting.composed_epsilon(extra, 1e-5, "prv")
    with pytest.raises(sh.InvalidParameterError, match="already spend epsilon"):
        accounting.noise_multiplier(0.05, 1e-5, 0.186, 270, "rdp", extra=extra)
    with pytest.raises(sh.InvalidParameterError, match="positive noise scale"):
        accounting.gaussian_entry(0.0, 1.0)


@pytest.mark.parametrize("target, q, steps", [
    (1.0, 0.186, 270), pytest.param(4.0, 0.26, 77, marks=pytest.mark.slow),
    pytest.param(0.3, 0.5, 20, marks=pytest.mark.slow)])
def test_noise_multiplier_meets_the_target_and_matches_google_pld(target: float, q: float, steps: int) -> None:
    """PRV (opacus) against Google's PLD accountant (dp-accounting): within 0.01 + 1 % of ε."""
    pytest.importorskip("dp_accounting")
    sigma, eps = accounting.noise_multiplier(target, 1e-5, q, steps, "prv")
    assert 0.98 * target <= eps <= target
    pld = _pld_epsilon(sigma, q, steps, 1e-5)
    assert abs(eps - pld) <= 0.01 + 0.01 * pld, (eps, pld)
    assert accounting.dp_sgd_epsilon(sigma, q, steps, 1e-5, "rdp") >= eps - 1e-9  # RDP is the looser bound
    # opacus's own search gives the same sigma to its tolerance (0.01 on epsilon); below epsilon = 1 our
    # PRV slack is smaller (1 % of epsilon), so our sigma may be smaller, never larger
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = get_noise_multiplier(target_epsilon=target, target_delta=1e-5, sample_rate=q, steps=steps,
                                      accountant="prv")
    assert 0.95 * theirs <= sigma <= 1.02 * theirs


def test_budget_too_small_for_the_plan() -> None:
    with pytest.raises(sh.InvalidParameterError, match="cannot reach epsilon"):
        accounting.noise_multiplier(1e-9, 1e-5, 1.0, 10, "rdp")


def test_fit_spends_at_most_the_budget_and_records_it(fitted: DPVAE) -> None:
    led = fitted.ledger_
    marg, sgd = led.entries
    d = len(SMALL.names)
    m = d + d * (d - 1) // 2  # the 1-way marginals and (default "auto", d <= 20) every 2-way marginal
    # the marginals: Gaussian, L2 sensitivity sqrt(m), noise from a share of the budget's rho, charged their own
    # (epsilon, delta) alone; DP-SGD: what composing it with them (same PRV accountant) adds, delta already charged
    sigma_m = math.sqrt(m / (2 * 0.7 * PrivacyBudget(2.0, 1e-6).rho))
    assert marg.mechanism == "gaussian" and marg.delta == 1e-6 and marg.sensitivity == pytest.approx(math.sqrt(m))
    assert marg.scale == pytest.approx(sigma_m)
    assert marg.epsilon == pytest.approx(_gaussian_epsilon(math.sqrt(m) / sigma_m, 1e-6), abs=0.011)
    assert sgd.mechanism == "dp_sgd_subsampled_gaussian" and sgd.delta == 0.0
    assert sgd.scale == pytest.approx(fitted.noise_multiplier_ * 1.0) and sgd.sensitivity == 1.0
    total = led.total(fitted.fit_id_)
    assert 0.97 * 2.0 <= total.epsilon <= 2.0 and total.delta == 1e-6 and total.seeded
    assert fitted.epsilon_spent_ == pytest.approx(total.epsilon)
    p = fitted.privacy_
    assert p["dp_sgd"]["steps_taken"] == p["dp_sgd"]["steps_planned"] == fitted.steps_
    assert p["dataset_size"]["source"] == "noisy_marginals" and p["dataset_size"]["epsilon"] == 0.0
    n_hat = p["dataset_size"]["value"]
    # n_hat is the mean total of the d noisy marginals: noise sd sigma_m * sqrt(D) / d
    sd = sigma_m * math.sqrt(sum(Encoder(SMALL).shape)) / d
    assert abs(n_hat - 1500) < 5 * sd and fitted.sample_rate_ == pytest.approx(128 / n_hat)
    assert fitted.steps_ == math.ceil(2 / fitted.sample_rate_)
    # read back independently (Google's PLD accountant): the total is the composed epsilon of both mechanisms
    pytest.importorskip("dp_accounting")
    pld = _pld_epsilon(fitted.noise_multiplier_, fitted.sample_rate_, fitted.steps_, 1e-6,
                       gaussian=sigma_m / math.sqrt(m))
    assert abs(total.epsilon - pld) <= 0.011 + 0.01 * pld, (total.epsilon, pld)
    assert "1-way marginals" in marg.target and "2-way marginals of 10 pairs" in marg.target
    assert str(n_hat) in sgd.target and "composed" in sgd.target
    assert len(fitted.pairs_) == 10 and p["marginals"]["pairs"] == [list(q) for q in fitted.pairs_]
    assert p["marginals"]["finetune_steps"] == 300 and p["marginals"]["l2_sensitivity"] == pytest.approx(math.sqrt(m))
    assert led.fits[0]["status"] == "done" and led.fits[0]["accounting"] == "approx_dp"
    assert [len(m) for m in fitted.marginals_] == list(Encoder(SMALL).shape)
    assert all(abs(m.sum() - 1) < 1e-9 and (m >= 0).all() for m in fitted.marginals_)


def test_noisy_count_when_the_marginals_are_off(table: pd.DataFrame) -> None:
    gen = DPVAE(epsilon=2.0, delta=1e-6, marginals_share=0.0, random_state=0, **FAST).fit(table, schema=SMALL)
    count, sgd = gen.ledger_.entries
    assert count.mechanism == "geometric" and count.delta == 0 and count.epsilon == pytest.approx(0.04)
    assert sgd.mechanism == "dp_sgd_subsampled_gaussian" and sgd.delta == 1e-6
    assert gen.privacy_["dataset_size"]["source"] == "noisy_count" and gen.marginals_ is None
    assert abs(gen.total_ - 1500) < 400 and "number of patients" in count.target
    eps = accounting.dp_sgd_epsilon(gen.noise_multiplier_, gen.sample_rate_, gen.steps_, 1e-6, "rdp")
    assert sgd.epsilon == pytest.approx(eps)
    assert 0.97 * 2.0 <= gen.ledger_.total().epsilon <= 2.0


def test_declared_dataset_size_spends_nothing_on_a_count(table: pd.DataFrame) -> None:
    gen = DPVAE(epsilon=1.0, max_patients=5000, marginals_share=0.0, random_state=0, **FAST).fit(table, schema=SMALL)
    (sgd,) = gen.ledger_.entries
    assert sgd.mechanism == "dp_sgd_subsampled_gaussian" and 0.98 <= sgd.epsilon <= 1.0
    assert gen.sample_rate_ == pytest.approx(128 / 5000) and gen.total_ == 5000
    assert gen.privacy_["dataset_size"] == {"value": 5000, "source": "declared", "epsilon": 0.0}
    assert "RDP accountant" in sgd.library
    # with the marginals: still declared (the marginals' totals are not used), composed in the RDP accountant
    gen = DPVAE(epsilon=1.0, max_patients=5000, random_state=0, **FAST).fit(table, schema=SMALL)
    marg, sgd = gen.ledger_.entries
    assert gen.total_ == 5000 and gen.privacy_["dataset_size"]["source"] == "declared"
    sigma_m = gen.privacy_["marginals"]["noise_scale"]
    joint = accounting.dp_sgd_epsilon(gen.noise_multiplier_, 128 / 5000, gen.steps_, 1e-6, "rdp",
                                      extra=[(sigma_m / math.sqrt(15), 1.0, 1)])
    assert marg.epsilon + sgd.epsilon == pytest.approx(joint) and 0.98 <= joint <= 1.0


def test_charged_before_training_so_a_crash_leaves_a_valid_ledger(
        table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("power cut")

    monkeypatch.setattr(fastdp, "train_fast", crash)
    path = tmp_path / "ledger.json"
    with pytest.raises(RuntimeError, match="power cut"):
        DPVAE(epsilon=1.0, random_state=0, **FAST).fit(table, schema=SMALL, ledger=path)
    led = PrivacyLedger.load(path)
    assert led.fits[0]["status"] == "failed"
    assert [e.mechanism for e in led.entries] == ["gaussian", "dp_sgd_subsampled_gaussian"]
    assert 0.97 <= led.total().epsilon <= 1.0


def test_marginals_charged_before_release_with_sensitivity_sqrt_m(
        table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    real_gaussian = fastdp.gaussian_vector

    def spy(counts, sigma, rnd):  # type: ignore[no-untyped-def]
        seen["entries"] = [e.mechanism for e in ledger.entries]
        seen["counts"], seen["sigma"] = np.asarray(counts).copy(), sigma
        return real_gaussian(counts, sigma, rnd)

    monkeypatch.setattr(fastdp, "gaussian_vector", spy)
    ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    pairs = [("age", "sex"), ("dm", "bmi")]
    gen = DPVAE(epsilon=1.0, random_state=0, marginal_pairs=pairs, **FAST).fit(table, schema=SMALL, ledger=ledger)
    assert seen["entries"] == ["gaussian"]  # charged, then released
    shape = Encoder(SMALL).shape
    names = list(SMALL.names)
    counts, d = seen["counts"], len(shape)
    idx = [tuple(sorted((names.index(x), names.index(y)))) for x, y in pairs]
    assert gen.pairs_ == [(names[a], names[b]) for a, b in sorted(idx)]
    # the released vector: the d 1-way marginals then the 2 pair marginals, each summing to n
    pair_cells = [shape[a] * shape[b] for a, b in sorted(idx)]
    assert counts.shape == (sum(shape) + sum(pair_cells),)
    parts = np.split(counts, np.cumsum(list(shape) + pair_cells)[:-1])
    assert [int(c.sum()) for c in parts] == [len(table)] * (d + 2)
    # one patient changes one cell of each of the m = d + 2 marginals by 1: L2 = sqrt(m), computed independently
    codes = Encoder(SMALL).encode(table)
    rest = codes[1:]
    one = np.concatenate([np.bincount(rest[:, j], minlength=k) for j, k in enumerate(shape)]
                         + [np.bincount(rest[:, a] * shape[b] + rest[:, b], minlength=shape[a] * shape[b])
                            for a, b in sorted(idx)])
    assert np.linalg.norm(counts - one) == pytest.approx(math.sqrt(d + 2))
    assert ledger.entries[0].sensitivity == pytest.approx(math.sqrt(d + 2)) and ledger.entries[0].scale == seen["sigma"]
    assert gen.privacy_["marginals"]["noise_scale"] == seen["sigma"]


def test_marginal_pairs_none_measures_only_the_one_way_marginals(table: pd.DataFrame) -> None:
    gen = DPVAE(epsilon=1.0, random_state=0, marginal_pairs="none", **FAST).fit(table, schema=SMALL)
    marg = gen.ledger_.entries[0]
    assert marg.sensitivity == pytest.approx(math.sqrt(5)) and gen.pairs_ == []
    assert "2-way" not in marg.target and gen.privacy_["marginals"]["finetune_steps"] == 300
    # without pairs the default share is the 1-way one (0.2), with pairs 0.7
    assert gen.privacy_["marginals"]["share"] == 0.2
    assert marg.scale == pytest.approx(math.sqrt(5 / (2 * 0.2 * PrivacyBudget(1.0, 1e-6).rho)))


@pytest.mark.parametrize(("pairs", "message"), [
    ("some", r"The 'marginal_pairs' parameter of DPVAE must be one of"),
    ([("a",)], r"The 'marginal_pairs' parameter of DPVAE must be 'auto', 'all', 'none' or a list of pairs"),
    ([("age", "zz")], r"names attributes that are not in the schema: \['zz'\]"),
    ([("age", "age")], r"pairs an attribute with itself"),
])
def test_marginal_pairs_validation(table: pd.DataFrame, pairs: Any, message: str) -> None:
    with pytest.raises(sh.InvalidParameterError, match=message):
        DPVAE(epsilon=1.0, random_state=0, marginal_pairs=pairs, **FAST).fit(table, schema=SMALL)


def test_decoder_starts_at_the_noisy_marginals(table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(module, spec, codes, plan, rnd, aux, on_step=None):  # type: ignore[no-untyped-def]
        return plan.steps

    monkeypatch.setattr(fastdp, "train_fast", no_training)
    gen = DPVAE(epsilon=1.0, calibrate=False, finetune_steps=0, random_state=0, **FAST).fit(table, schema=SMALL)
    bias = gen.model_[f"{network.layer_names(gen.spec_)[-1]}.bias"]
    expected = np.concatenate([network.marginal_logits(p) for p in gen.marginals_])
    np.testing.assert_allclose(bias, expected, rtol=1e-6, atol=1e-6)
    # calibrated: the model's 1-way marginals are the noisy ones (up to the calibration's Monte Carlo error)
    cal = DPVAE(epsilon=1.0, random_state=0, **FAST).fit(table, schema=SMALL)
    codes = cal._sample_codes(40_000, np.random.default_rng(1))
    for j, p in enumerate(cal.marginals_):
        freq = np.bincount(codes[:, j], minlength=len(p)) / len(codes)
        np.testing.assert_allclose(freq, np.maximum(p, 1e-4) / np.maximum(p, 1e-4).sum(), atol=0.012)


def test_calibrate_output_bias_matches_targets() -> None:
    spec = network.VAESpec((3, 5, 2), (8,), 2)
    rng = np.random.default_rng(0)
    w = {f"{name}.{k}": rng.normal(size=(o, i) if k == "weight" else (o,))
         for name, (o, i) in zip(network.layer_names(spec), spec.layer_shapes(), strict=True) for k in ("weight", "bias")}
    targets = [np.array([0.7, 0.2, 0.1]), np.array([0.05, 0.05, 0.3, 0.3, 0.3]), np.array([0.9, 0.1])]
    before = network.sample_codes(spec, w, 20_000, np.random.default_rng(2))
    w[f"{network.layer_names(spec)[-1]}.bias"] = network.calibrate_output_bias(spec, w, targets,
                                                                                np.random.default_rng(1))
    after = network.sample_codes(spec, w, 60_000, np.random.default_rng(3))
    far = 0.0
    for j, t in enumerate(targets):
        far = max(far, np.abs(np.bincount(before[:, j], minlength=len(t)) / 20_000 - t).max())
        # sampling error of 60,000 draws: sd <= 0.002
        np.testing.assert_allclose(np.bincount(after[:, j], minlength=len(t)) / 60_000, t, atol=0.012)
    assert far > 0.05  # the test can fail: the uncalibrated model is off


def test_project_counts() -> None:
    x = np.array([50.0, -20.0, 3.0, 30.0])
    p = network.project_counts(x, 70.0)
    assert p.sum() == pytest.approx(70.0) and (p >= 0).all() and p[1] == 0
    np.testing.assert_allclose(p[[0, 3]] - p[[0, 3]].mean(), x[[0, 3]] - x[[0, 3]].mean())  # shifted, not scaled
    assert network.project_counts(x, 0.0).tolist() == [0.0] * 4


def test_shared_ledger_refuses_before_the_data(table: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    PrivacyLedger.open(path, PrivacyBudget(1.5, 1e-6))
    DPVAE(epsilon=1.0, random_state=0, **FAST).fit(table, schema=SMALL, ledger=path)
    with pytest.raises(sh.BudgetExceededError, match="No data was accessed"):
        DPVAE(epsilon=1.0, random_state=1, **FAST).fit(table, schema=SMALL, ledger=path)
    assert len(PrivacyLedger.load(path).fits) == 1


# ------------------------------------------------------------ fit and sample
def test_sample_format_matches_the_marginal_generators(fitted: DPVAE) -> None:
    syn = fitted.sample(3000, random_state=1)
    assert list(syn.columns) == SMALL.names and len(syn) == 3000
    assert set(syn["sex"].dropna().astype(str)) <= {"F", "M", "other"}
    assert syn["age"].dropna().between(0, 100).all() and ((syn["visits"] >= 0) & (syn["visits"] <= 4)).all()
    assert syn.attrs["synthhealth"]["generator"] == "dpvae"
    default = fitted.sample(random_state=0)
    assert len(default) == round(fitted.total_)
    codes = Encoder(SMALL).encode(syn)
    assert codes.shape == (3000, 5)


def test_seeded_fit_is_reproducible(table: pd.DataFrame) -> None:
    a, b, c = (DPVAE(epsilon=1.0, max_patients=2000, random_state=s, **FAST).fit(table, schema=SMALL)
               for s in (7, 7, 8))
    for k, v in a.model_.items():
        np.testing.assert_array_equal(v, b.model_[k])
    assert any(not np.array_equal(v, c.model_[k]) for k, v in a.model_.items())


def test_save_load_round_trip_safetensors_no_pickle(fitted: DPVAE, tmp_path: Path) -> None:
    out = fitted.save(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "model.json"]
    with np.load(out / "arrays.npz", allow_pickle=False) as npz:
        assert npz.files == ["weights_safetensors"] and npz["weights_safetensors"].dtype == np.uint8
        blob = npz["weights_safetensors"].tobytes()
    from safetensors.numpy import load

    weights = load(blob)  # a plain safetensors document
    assert set(weights) == set(fitted.model_)
    doc = json.loads((out / "model.json").read_text())
    assert doc["generator"] == "dpvae" and doc["model"]["weights"]["format"] == "safetensors"
    assert doc["model"]["spec"]["hidden"] == [16] and doc["params"]["hidden_sizes"] == [16]
    back = sh.load_model(out)
    assert type(back) is DPVAE and back.noise_multiplier_ == fitted.noise_multiplier_
    pd.testing.assert_frame_equal(back.sample(200, random_state=3), fitted.sample(200, random_state=3))
    assert DPVAE.load(out).steps_ == fitted.steps_
    # a tampered weight file is refused
    arr = np.frombuffer(blob, dtype=np.uint8).copy()
    arr[-1] ^= 1
    np.savez_compressed(out / "arrays.npz", weights_safetensors=arr)
    with pytest.raises(sh.InvalidParameterError, match="do not match their hash"):
        sh.load_model(out)


def test_no_data_in_the_saved_model(tmp_path: Path) -> None:
    t = small_table(600)
    t["age"] = t["age"].astype(float)
    t.loc[0, "sex"] = "SENTINEL-CATEGORY"
    t.loc[1, "age"] = 987.654321
    gen = DPVAE(epsilon=1.0, random_state=0, **FAST).fit(t, schema=SMALL)
    out = gen.save(tmp_path / "m")
    for f in out.iterdir():
        for needle in (b"SENTINEL", b"987.65"):
            assert needle not in f.read_bytes()
    assert gen.spec_.sizes == Encoder(SMALL).shape  # the domain is the schema's


def test_opacus_engine_fits_and_is_accounted_the_same(table: pd.DataFrame) -> None:
    gen = DPVAE(epsilon=1.0, engine="opacus", random_state=0, **FAST).fit(table, schema=SMALL)
    assert gen.steps_ == math.ceil(2 / gen.sample_rate_)
    assert "opacus engine" in gen.ledger_.entries[-1].library
    assert 0.97 <= gen.ledger_.total().epsilon <= 1.0
    assert gen.sample(10, random_state=0).shape == (10, 5)


def test_release_path_uses_the_os_csprng(table: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", sh.InsecureRandomnessWarning)
        gen = DPVAE(epsilon=1.0, **FAST).fit(table, schema=SMALL)
    assert gen.privacy_["secure_mode"] and not gen.ledger_.seeded
    assert gen.ledger_.entries[0].mechanism == "gaussian"  # continuous: the law the accountant composes
    assert "OS CSPRNG" in gen.ledger_.entries[0].library
    assert "OS CSPRNG" in gen.ledger_.entries[1].library
    with pytest.warns(sh.InsecureRandomnessWarning, match="not a cryptographically secure sampler"):
        DPVAE(epsilon=1.0, secure_mode=False, **FAST).fit(table, schema=SMALL)


def test_progress_bar_shows_epsilon(table: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    DPVAE(epsilon=1.0, random_state=0, **FAST).fit(table, schema=SMALL, progress=True)
    err = capsys.readouterr().err
    assert "DPVAE" in err and "epsilon=" in err
    assert "decoder to the noisy marginals" in err  # the fine-tuning has its own bar


def test_numpy_sampler_matches_the_torch_decoder() -> None:
    spec = network.VAESpec((3, 4, 2), (6,), 2)
    module = network.build_module(spec, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights = {f"{name}.{k}": getattr(la, k).detach().numpy()
               for name, la in zip(network.layer_names(spec), [*module.encoder, *module.decoder], strict=True)
               for k in ("weight", "bias")}
    z = torch.zeros((1, 2), dtype=torch.float64)
    h = z
    for i, la in enumerate(module.decoder):
        h = la(h) if i == len(module.decoder) - 1 else torch.relu(la(h))
    probs = [torch.softmax(b, dim=1)[0].detach().numpy() for b in torch.split(h, [3, 4, 2], dim=1)]
    # with z fixed at 0 the sampler's frequencies follow the decoder's softmax
    rng = np.random.default_rng(0)

    class ZeroLatent:
        def standard_normal(self, shape):  # type: ignore[no-untyped-def]
            return np.zeros(shape)

        def random(self, shape):  # type: ignore[no-untyped-def]
            return rng.random(shape)

    codes = network.sample_codes(spec, weights, 20000, ZeroLatent())  # type: ignore[arg-type]
    for j, p in enumerate(probs):
        freq = np.bincount(codes[:, j], minlength=len(p)) / 20000
        np.testing.assert_allclose(freq, p, atol=0.015)


@pytest.mark.parametrize("rnd", ["torch", "csprng"])
def test_gaussian_vector_has_the_declared_scale(rnd: str) -> None:
    from scipy import stats

    source = fastdp.TorchRandom(5, torch.device("cpu")) if rnd == "torch" else fastdp.CsprngRandom(torch.device("cpu"))
    values = np.arange(20_000) % 7
    out = fastdp.gaussian_vector(values, 3.0, source)
    assert stats.kstest((out - values) / 3.0, "norm").pvalue > 1e-3
    assert stats.kstest((out - values) / 1.5, "norm").pvalue < 1e-6  # a wrong scale is detected


def test_onehot_weighted_sum_both_ways_equal_the_dense_product() -> None:
    gen = torch.Generator().manual_seed(3)
    sizes = (3, 5, 2, 4)
    offsets = torch.tensor([0, 3, 8, 10])
    codes = torch.stack([torch.randint(0, k, (50,), generator=gen) for k in sizes], dim=1)
    rows = torch.randn(50, 6, generator=gen, dtype=torch.float64)
    dense = network.one_hot(codes, offsets, sum(sizes), torch.float64).t() @ rows
    for one_launch in (True, False):
        got = fastdp.onehot_weighted_sum(codes + offsets, rows, sum(sizes), one_launch=one_launch)
        torch.testing.assert_close(got, dense, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------- fitting the decoder to noisy marginals
def _model_marginals(spec: network.VAESpec, w: dict[str, np.ndarray], n: int = 200_000) -> tuple[list[np.ndarray], np.ndarray]:
    """The model's 1-way marginals and its full D x D second-moment matrix, by Monte Carlo in float64."""
    names = network.layer_names(spec)[spec.n_encoder_layers:]
    h = np.random.default_rng(99).standard_normal((n, spec.latent))
    for i, name in enumerate(names):
        h = h @ w[f"{name}.weight"].astype(np.float64).T + w[f"{name}.bias"].astype(np.float64)
        if i < len(names) - 1:
            h = np.maximum(h, 0.0)
    blocks = []
    for off, k in zip(spec.offsets, spec.sizes, strict=True):
        e = np.exp(h[:, off:off + k] - h[:, off:off + k].max(axis=1, keepdims=True))
        blocks.append(e / e.sum(axis=1, keepdims=True))
    p = np.concatenate(blocks, axis=1)
    return [b.mean(0) for b in blocks], p.T @ p / n


def test_match_marginals_fits_the_targets_and_only_moves_the_decoder() -> None:
    from synthhealth.generators.dpvae.marginals import match_marginals

    spec = network.VAESpec((3, 4, 2), (8,), 2)
    rng = np.random.default_rng(0)
    w = {f"{name}.{k}": (0.3 * rng.normal(size=(o, i) if k == "weight" else (o,))).astype(np.float32)
         for name, (o, i) in zip(network.layer_names(spec), spec.layer_shapes(), strict=True) for k in ("weight", "bias")}
    # targets: a table with strong pair structure (b follows a, c follows b), as exact counts
    n = 10_000
    a = rng.choice(3, n, p=[0.6, 0.3, 0.1])
    b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 4, n))
    c = np.where(rng.random(n) < 0.8, (b >= 2).astype(int), rng.integers(0, 2, n))
    codes = np.stack([a, b, c], axis=1)
    from synthhealth.generators.dpvae.marginals import marginal_counts, split_marginals

    pairs = [(0, 1), (0, 2), (1, 2)]
    one, two = split_marginals(marginal_counts(codes, spec.sizes, pairs).astype(float), spec.sizes, pairs)

    def error(weights: dict[str, np.ndarray]) -> float:
        m1, mm = _model_marginals(spec, weights)
        off = spec.offsets
        e = max(np.abs(m1[j] - one[j] / n).max() for j in range(3))
        for (i, j), t in zip(pairs, two, strict=True):
            e = max(e, np.abs(mm[off[i]:off[i] + spec.sizes[i], off[j]:off[j] + spec.sizes[j]] - t / n).max())
        return float(e)

    before = error(w)
    torch.manual_seed(0)
    calls: list[int] = []
    out = match_marginals(spec, w, one, pairs, two, float(n), steps=600, learning_rate=0.02, batch=4096, seed=1,
                          on_step=calls.append)
    assert calls == list(range(600))
    after = error(out)
    assert before > 0.2  # the test can fail: the random decoder is far from the targets
    assert after < 0.03, (before, after)
    for name in network.layer_names(spec)[:spec.n_encoder_layers]:  # the encoder is untouched
        np.testing.assert_array_equal(out[f"{name}.weight"], w[f"{name}.weight"])
    assert all(out[k].dtype == np.float32 and out[k].shape == w[k].shape for k in w)


def test_marginal_counts_with_pairs_has_sensitivity_sqrt_m() -> None:
    from synthhealth.generators.dpvae.marginals import marginal_counts, split_marginals

    rng = np.random.default_rng(4)
    sizes = (3, 5, 2, 4)
    codes = np.stack([rng.integers(0, k, 200) for k in sizes], axis=1)
    pairs = [(0, 1), (1, 3), (2, 3)]
    full = marginal_counts(codes, sizes, pairs)
    for row in range(5):  # removing any one patient moves the vector by exactly sqrt(d + pairs)
        rest = marginal_counts(np.delete(codes, row, axis=0), sizes, pairs)
        assert np.linalg.norm(full - rest) == pytest.approx(math.sqrt(len(sizes) + len(pairs)))
    one, two = split_marginals(full, sizes, pairs)
    assert [len(v) for v in one] == list(sizes) and [t.shape for t in two] == [(3, 5), (5, 4), (2, 4)]
    expected = np.zeros((5, 4), dtype=np.int64)
    np.add.at(expected, (codes[:, 1], codes[:, 3]), 1)
    np.testing.assert_array_equal(two[1], expected)
    with pytest.raises(ValueError, match="expected"):
        split_marginals(full[:-1], sizes, pairs)
