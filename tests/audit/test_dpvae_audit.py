"""Empirical privacy audit of DPVAE's DP-SGD: a canary patient present (D′) or absent (D).

For each run the mechanism's output is reduced to one number — the projection of the noisy
gradient sum on the canary's (clipped) gradient direction, or, end to end, the trained model's
loss on the canary — and ``epsilon_lower_bound`` turns the runs on D and D′ into a Clopper–Pearson
lower bound on ε. The correct mechanism must stay at or below its claim (the accountant's ε);
deliberately broken variants (no clipping, σ = 0) must be caught, or the audit proves nothing.

Fast subset by default (one DP-SGD step built from the fast path's own pieces: per-patient clipped
gradients from ``clipped_grad_sum``, ``poisson_indices``, the noise generator); ``pytest --full``
adds an end-to-end audit of ``train_fast``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from synthhealth.generators.dpvae import fastdp, network  # noqa: E402
from synthhealth.generators.dpvae.accounting import dp_sgd_epsilon  # noqa: E402
from synthhealth.privacy.audit import epsilon_lower_bound  # noqa: E402

DELTA = 1e-5
ALPHA = 0.01     # 99 % confidence: a correct mechanism fails the audit with probability < 1 %
SPEC = network.VAESpec((4, 3), (4,), 1)
CANARY = (3, 2)  # a combination no other patient has
CLIP = 0.1       # far below the canary's gradient norm, so clipping matters
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def population(n: int = 30) -> np.ndarray:
    """D: ``n`` patients, none with the canary's codes."""
    rng = np.random.default_rng(5)
    codes = np.column_stack([rng.integers(0, 3, n), rng.integers(0, 2, n)])
    assert not (codes == np.array(CANARY)).all(axis=1).any()
    return codes


def per_patient_gradients(codes: np.ndarray, clip: float, canary_last: bool = False) -> tuple[np.ndarray, int]:
    """Each patient's clipped gradient (flattened), from ``clipped_grad_sum`` on a one-row batch.

    The reparameterisation noise is fixed per patient (the canary's is the same in every call): DP
    holds for every value of it, since it is drawn independently of the data and clipping bounds each
    patient's contribution whatever it is.
    """
    module = network.build_module(SPEC, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    layers = [*module.encoder, *module.decoder]
    w = [la.weight.detach() for la in layers]
    b = [la.bias.detach() for la in layers]
    codes_t = torch.as_tensor(codes)
    others = len(codes) - 1 if canary_last else len(codes)
    eps = torch.randn((others, SPEC.latent), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if canary_last:
        eps = torch.cat([eps, torch.full((1, SPEC.latent), 0.3, dtype=torch.float64)])
    rows = []
    for i in range(len(codes)):
        ws, bs, _ = fastdp.clipped_grad_sum(w, b, SPEC, codes_t[i:i + 1], eps[i:i + 1], clip)
        rows.append(torch.cat([t.reshape(-1) for pair in zip(ws, bs, strict=True) for t in pair]))
    return torch.stack(rows).numpy(), SPEC.n_parameters()


def one_step_runs(codes: np.ndarray, q: float, sigma: float, clip: float, runs: int, rnd: fastdp.TorchRandom,
                  direction: np.ndarray) -> np.ndarray:
    """``runs`` releases of one DP-SGD step (clipped sum of a Poisson batch + N(0, (σ·CLIP)²)), projected.

    The noise is scaled with the *claimed* clip norm CLIP whatever ``clip`` the gradients used.
    """
    grads, p = per_patient_gradients(codes, clip, canary_last=(codes[-1] == np.array(CANARY)).all())
    noise = rnd.normal(runs * p, torch.float64).numpy().reshape(runs, p) * (sigma * CLIP)
    proj = noise @ direction
    contrib = grads @ direction
    for r in range(runs):
        idx = fastdp.poisson_indices(len(codes), q, rnd).numpy()
        proj[r] += contrib[idx].sum()
    return proj


def audit_one_step(variant: str, q: float, sigma: float, runs: int) -> tuple[float, float]:
    """(empirical lower bound, claim) for one step on D vs D′ = D + canary."""
    d = population()
    dp = np.vstack([d, np.array([CANARY])])
    clip = 1e9 if variant == "no_clipping" else CLIP
    s = {"no_noise": 0.0, "quarter_noise": sigma / 4}.get(variant, sigma)
    canary_grad = per_patient_gradients(np.array([CANARY]), CLIP, canary_last=True)[0][0]
    direction = canary_grad / np.linalg.norm(canary_grad)
    out_d = one_step_runs(d, q, s, clip, runs, fastdp.TorchRandom(11, CPU), direction)
    out_dp = one_step_runs(dp, q, s, clip, runs, fastdp.TorchRandom(12, CPU), direction)
    claim = dp_sgd_epsilon(sigma, q, 1, DELTA, "prv")
    return epsilon_lower_bound(out_d, out_dp, DELTA, alpha=ALPHA).epsilon_lower_bound, claim


def test_canary_gradient_is_clipped() -> None:
    grads, _ = per_patient_gradients(np.array([CANARY]), 1e9, canary_last=True)
    assert np.linalg.norm(grads[0]) > 10 * CLIP  # so that "no clipping" is a real break


@pytest.mark.parametrize("q, sigma, runs", [(1.0, 4.0, 20_000), (1.0, 1.0, 20_000), (0.5, 2.5, 10_000)])
def test_one_step_within_claim(q: float, sigma: float, runs: int) -> None:
    """Claims of about 0.9, 4.4 and 1.0: at σ = 1 the audit's bound is about half the claim (it has power)."""
    eps, claim = audit_one_step("correct", q, sigma, runs)
    assert eps <= claim, f"lower bound {eps:.3f} > claim {claim:.3f}"


@pytest.mark.parametrize("variant, runs", [("no_clipping", 5_000), ("no_noise", 5_000), ("quarter_noise", 20_000)])
def test_broken_one_step_is_caught(variant: str, runs: int) -> None:
    """Claim ε ≈ 0.94 (σ = 4, q = 1); broken: gradients not clipped, no noise, or σ/4 (the true ε is ≈ 4.4)."""
    eps, claim = audit_one_step(variant, 1.0, 4.0, runs)
    assert eps > claim, f"the audit failed to catch '{variant}' (lower bound {eps:.3f} <= claim {claim:.3f})"


# ------------------------------------------------------------- end to end
def train_runs(codes: np.ndarray, sigma: float, clip: float, runs: int, seed: int) -> np.ndarray:
    """Loss on the canary after ``train_fast`` (a few steps, fresh model each run, fixed init)."""
    spec = SPEC
    x_c = network.one_hot(torch.as_tensor([CANARY]), torch.as_tensor(spec.offsets), spec.input_dim, torch.float32)
    plan = fastdp.DPSGDPlan(sample_rate=0.5, noise_multiplier=sigma, clip=clip, steps=3, denominator=0.5 * len(codes),
                            steps_per_epoch=2, learning_rate=0.5)
    rnd = fastdp.TorchRandom(seed, CPU)
    aux = torch.Generator().manual_seed(seed + 1)
    codes_t = torch.as_tensor(codes)
    out = np.empty(runs)
    for r in range(runs):
        module = network.build_module(spec, generator=torch.Generator().manual_seed(0))
        if sigma == 0:
            plan = fastdp.DPSGDPlan(0.5, 0.0, clip, 3, 0.5 * len(codes), 2, 0.5)
        fastdp.train_fast(module, spec, codes_t, plan, rnd, aux)
        with torch.no_grad():
            logits, mu, logvar = module(x_c, torch.zeros((1, spec.latent)))
            out[r] = float(network.per_sample_loss(logits, x_c, mu, logvar, spec.sizes))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["correct", "no_noise"])
def test_end_to_end_training(variant: str) -> None:
    d = population()
    dp = np.vstack([d, np.array([CANARY])])
    sigma = 0.0 if variant == "no_noise" else 1.5
    runs = 3000
    out_d = train_runs(d, sigma, CLIP, runs, 21)
    out_dp = train_runs(dp, sigma, CLIP, runs, 22)
    claim = dp_sgd_epsilon(1.5, 0.5, 3, DELTA, "prv")
    eps = epsilon_lower_bound(out_d, out_dp, DELTA, alpha=ALPHA).epsilon_lower_bound
    if variant == "correct":
        assert eps <= claim, f"lower bound {eps:.3f} > claim {claim:.3f}"
    else:
        assert eps > claim, f"the audit failed to catch '{variant}' (lower bound {eps:.3f} <= claim {claim:.3f})"


# --------------------------------------------------------- the noisy 1- and 2-way marginals
def audit_marginals(variant: str, runs: int) -> tuple[float, float]:
    """(empirical lower bound, claim) for the DPVAE's noisy marginals on D vs D′ = D + canary.

    The release is the concatenation of the 1-way marginals and two 2-way marginals plus Gaussian
    noise (:func:`marginal_counts`, :func:`marginal_noise_scale`, ``fastdp.gaussian_vector``: the
    generator's own pieces); each run is reduced to its projection on the direction the canary
    moves the histogram. Broken variants: noise for sensitivity 1 instead of √m, and a quarter of
    the noise.
    """
    from synthhealth.generators.dpvae.accounting import composed_epsilon, gaussian_entry
    from synthhealth.generators.dpvae.generator import marginal_counts, marginal_noise_scale

    sizes = (4, 3, 5, 2, 6)
    pairs = [(0, 1), (2, 4)]
    m = len(sizes) + len(pairs)
    rng = np.random.default_rng(0)
    table = np.stack([rng.integers(0, k, 40) for k in sizes], axis=1)
    canary = np.array([[3, 2, 4, 1, 5]])
    c_d, c_dp = marginal_counts(table, sizes, pairs), marginal_counts(np.vstack([table, canary]), sizes, pairs)
    direction = (c_dp - c_d) / np.linalg.norm(c_dp - c_d)
    rho = 0.06  # with share 0.7: sigma_m / sqrt(m) = 3.45, a claim of about 1.1
    sigma = marginal_noise_scale(m, 0.7, rho)
    claim = composed_epsilon([gaussian_entry(sigma, math.sqrt(m))], DELTA, "prv")
    used = {"sensitivity_ignored": sigma / math.sqrt(m), "quarter_noise": sigma / 4}.get(variant, sigma)
    outs = []
    for counts, seed in ((c_d, 21), (c_dp, 22)):
        noisy = fastdp.gaussian_vector(np.tile(counts, runs), used, fastdp.TorchRandom(seed, CPU))
        outs.append(noisy.reshape(runs, -1) @ direction)
    return epsilon_lower_bound(outs[0], outs[1], DELTA, alpha=ALPHA).epsilon_lower_bound, claim


def test_marginals_within_claim() -> None:
    eps, claim = audit_marginals("correct", 40_000)
    assert 0.5 < claim < 1.5
    assert eps <= claim, f"lower bound {eps:.3f} > claim {claim:.3f}"


@pytest.mark.parametrize("variant", ["sensitivity_ignored", "quarter_noise"])
def test_broken_marginals_are_caught(variant: str) -> None:
    eps, claim = audit_marginals(variant, 40_000)
    assert eps > claim, f"the audit failed to catch '{variant}' (lower bound {eps:.3f} <= claim {claim:.3f})"
