"""Fast DP-SGD for the tabular VAE: per-patient clipping without per-patient gradients.

For a linear layer ``y = x Wᵀ + b`` applied to one row per patient, the gradient of patient i's
loss is ``∂ℓᵢ/∂W = gᵢ xᵢᵀ`` and ``∂ℓᵢ/∂b = gᵢ`` where ``gᵢ = ∂ℓᵢ/∂yᵢ``. Its squared norm is
``‖gᵢ‖² (‖xᵢ‖² + 1)``: a product of two vector norms, so the per-patient norm over the whole network
is ``√Σ_layers ‖gᵢ‖²(‖xᵢ‖² + 1)``, computed from the layers' inputs and output gradients alone.
With clip factors ``cᵢ = min(1, C / (‖∇ℓᵢ‖ + 10⁻⁶))`` (opacus's formula), the clipped sum is one
matrix product per layer: ``Σᵢ cᵢ gᵢ xᵢᵀ = Gᵀ diag(c) X``. DP-SGD then costs about one
non-private step: one forward pass, one backward pass to the layer outputs, one weight-gradient
product per layer, plus O(batch × width) for the norms.

Sampling is true Poisson sampling (each patient independently with probability q), done on the
device from geometric gaps between selected rows: O(batch) work per step instead of O(n), and the
same law as a Bernoulli(q) draw per row. The Gaussian noise N(0, (σC)²) is added to the clipped sum,
which is then divided by the *expected* batch size (opacus's convention for Poisson sampling).

Randomness (:class:`TorchRandom`, :class:`CsprngRandom`): a torch generator (seeded, or seeded
from OS entropy), or — ``secure_mode`` — the operating system's CSPRNG (``os.urandom``) for both
the Poisson sampling and the Gaussian noise, with opacus's ``secure_mode`` construction (each noise
value is the sum of four Gaussian draws, halved, against floating-point attacks).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .network import CodeLayout, VAESpec, forward_codes

__all__ = [
    "CsprngRandom",
    "DPSGDPlan",
    "PoissonBatches",
    "TorchRandom",
    "clipped_grad_sum",
    "gaussian_vector",
    "make_adam",
    "onehot_weighted_sum",
    "poisson_indices",
    "train_fast",
    "train_nonprivate",
]

_EPS_CLIP = 1e-6  # opacus: clip factor = C / (norm + 1e-6)


# ----------------------------------------------------------------- randomness
class TorchRandom:
    """DP randomness from a torch generator on the training device.

    Parameters
    ----------
    seed : int
        The generator's seed (from the user's ``random_state``, or 64 bits of OS entropy on the
        release path without ``secure_mode``: *not* a cryptographically secure sampler).
    device : torch.device
    """

    secure = False

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed))

    def uniform(self, m: int) -> torch.Tensor:
        """``m`` float64 uniforms in (0, 1] on the device."""
        return 1.0 - torch.rand(m, dtype=torch.float64, device=self.device, generator=self.generator)

    def normal(self, m: int, dtype: torch.dtype) -> torch.Tensor:
        """``m`` standard normal draws on the device."""
        return torch.randn(m, dtype=dtype, device=self.device, generator=self.generator)


class CsprngRandom:
    """DP randomness from the operating system's CSPRNG (``os.urandom``), moved to the device.

    Uniforms carry 53 random bits; normals come from the Box–Muller transform in float64, and each
    returned value is the sum of four draws divided by two (the construction of opacus's
    ``secure_mode``, after Holohan and Braghin 2021), which resists floating-point attacks on the
    low-order bits of a single Gaussian draw. Slower than :class:`TorchRandom` (the OS CSPRNG
    yields a few hundred MB/s).
    """

    secure = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @staticmethod
    def _uniform_np(m: int) -> np.ndarray:
        bits = np.frombuffer(os.urandom(8 * m), dtype=np.uint64) >> np.uint64(11)
        return (bits.astype(np.float64) + 1.0) * (2.0 ** -53)  # in (0, 1]

    def uniform(self, m: int) -> torch.Tensor:
        """``m`` float64 uniforms in (0, 1] from the OS CSPRNG."""
        return torch.from_numpy(self._uniform_np(m)).to(self.device)

    def normal(self, m: int, dtype: torch.dtype) -> torch.Tensor:
        """``m`` standard normal values (each the halved sum of four Box–Muller draws)."""
        k = 4 * m
        u = self._uniform_np(k + (k & 1))
        half = len(u) // 2
        r = np.sqrt(-2.0 * np.log(u[:half]))
        theta = (2.0 * np.pi) * u[half:]
        z = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:k]
        z = z.reshape(4, m).sum(axis=0) * 0.5
        return torch.from_numpy(z).to(device=self.device, dtype=dtype)


def _gaps(m: int, log1mq: float, rnd: TorchRandom | CsprngRandom) -> torch.Tensor:
    """``m`` i.i.d. Geometric(q) gaps (support 1, 2, …) as float64, from uniforms in (0, 1]."""
    return torch.floor(torch.log(rnd.uniform(m)) / log1mq) + 1.0


def _slots(n: int, q: float) -> int:
    """Gaps drawn per round: the mean batch plus 8 standard deviations (a second round is rare)."""
    mean = n * q
    return int(mean + 8.0 * math.sqrt(mean) + 32)


def _continue(n: int, log1mq: float, start: float, rnd: TorchRandom | CsprngRandom) -> torch.Tensor:
    """Positions after ``start`` (exclusive) until past ``n - 1``: further rounds of gaps."""
    m = _slots(n, -math.expm1(log1mq))
    parts = []
    while True:
        pos = start + torch.cumsum(_gaps(m, log1mq, rnd), dim=0)
        last = float(pos[-1])
        parts.append(pos[pos < n])
        if last >= n:
            return torch.cat(parts)
        start = last


def poisson_indices(n: int, q: float, rnd: TorchRandom | CsprngRandom) -> torch.Tensor:
    """Indices of a Poisson sample of ``range(n)``: each row independently with probability ``q``.

    The gaps between consecutive selected rows are i.i.d. Geometric(q) (``⌊log U / log(1−q)⌋ + 1``
    with U uniform in (0, 1]), which is exactly the law of independent Bernoulli(q) draws per row,
    at O(n·q) cost per step. Positions are float64 (exact up to 2⁵³ rows).

    Examples
    --------
    >>> rnd = TorchRandom(0, torch.device("cpu"))
    >>> idx = poisson_indices(1000, 0.1, rnd)
    >>> bool((idx[1:] > idx[:-1]).all()) and 50 < len(idx) < 150
    True
    """
    if n <= 0:
        return torch.empty(0, dtype=torch.long, device=rnd.device)
    if q >= 1.0:
        return torch.arange(n, device=rnd.device)
    return _continue(n, math.log1p(-q), -1.0, rnd).long()


class PoissonBatches:
    """The Poisson samples of many DP-SGD steps, drawn ``chunk`` steps at a time on the device.

    Each step's sample has exactly the law of :func:`poisson_indices` (independent Bernoulli(q)
    membership of every row, independently across steps): the gaps of ``chunk`` steps are drawn in
    one ``(chunk, m)`` block, and a step whose ``m`` gaps do not reach the end of the table (the
    block holds the mean plus 8 standard deviations, so this is rare) is completed by further
    rounds. The only host–device synchronisation is one small copy of the per-step counts per
    block, so on a GPU the host runs ahead of the device instead of waiting at every step.

    Parameters
    ----------
    n : int
        Rows of the table.
    q : float
        Sampling rate in (0, 1].
    rnd : TorchRandom or CsprngRandom
        The DP randomness.
    max_elements : int, default 4_194_304
        Bound on the block's size (chunk × m float64 values).
    steps : int, optional
        Number of steps that will be asked for: blocks are not drawn beyond it (a short run does
        not pay for 256 steps of samples). More calls than this still work.

    Examples
    --------
    >>> batches = PoissonBatches(1000, 0.1, TorchRandom(0, torch.device("cpu")))
    >>> sizes = [len(batches.next()) for _ in range(50)]
    >>> 80 < sum(sizes) / 50 < 120
    True
    """

    def __init__(self, n: int, q: float, rnd: TorchRandom | CsprngRandom, max_elements: int = 1 << 22,
                 steps: int | None = None) -> None:
        self.n, self.q, self.rnd = int(n), float(q), rnd
        self.left = None if steps is None else int(steps)
        self.full = self.n <= 0 or self.q >= 1.0
        if not self.full:
            self.log1mq = math.log1p(-self.q)
            self.m = _slots(self.n, self.q)
            self.chunk = max(1, min(256, max_elements // self.m))
        self._queue: list[torch.Tensor] = []

    def _refill(self) -> None:
        k, m = self.chunk, self.m
        if self.left is not None:
            if self.left > 0:
                k = min(k, self.left)
            self.left -= k
        pos = torch.cumsum(_gaps(k * m, self.log1mq, self.rnd).view(k, m), dim=1) - 1.0
        counts = (pos < self.n).sum(dim=1)
        short = pos[:, -1] < self.n
        info = torch.stack([counts, short.long()], dim=1).cpu().tolist()  # the one synchronisation
        for i, (count, is_short) in enumerate(info):
            if is_short:  # this step's gaps stopped before the end of the table: draw more
                rest = _continue(self.n, self.log1mq, float(pos[i, -1]), self.rnd)
                self._queue.append(torch.cat([pos[i], rest]).long())
            else:
                self._queue.append(pos[i, :count].long())
        self._queue.reverse()

    def next(self) -> torch.Tensor:
        """The next step's row indices (increasing)."""
        if self.full:
            return poisson_indices(self.n, self.q, self.rnd)
        if not self._queue:
            self._refill()
        return self._queue.pop()


def gaussian_vector(values: np.ndarray, sigma: float, rnd: TorchRandom | CsprngRandom) -> np.ndarray:
    """``values`` plus independent N(0, σ²) noise per entry (float64), from the DP randomness ``rnd``.

    A continuous Gaussian mechanism (the law the accountants compose), with the same sampler as the
    DP-SGD noise: the OS CSPRNG with opacus's secure-mode construction for a release.

    Examples
    --------
    >>> out = gaussian_vector(np.zeros(4), 2.0, TorchRandom(0, torch.device("cpu")))
    >>> out.shape, out.dtype
    ((4,), dtype('float64'))
    """
    z = rnd.normal(len(values), torch.float64).cpu().numpy()
    return np.asarray(values, dtype=np.float64) + float(sigma) * z


# --------------------------------------------------------- clipped gradient sum
def clipped_grad_sum(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], spec: VAESpec,
                     codes: torch.Tensor, noise: torch.Tensor, clip: float, layout: CodeLayout | None = None
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Sum over the batch of the per-patient gradients, each clipped to L2 norm ``clip``.

    Parameters
    ----------
    weights, biases : sequences of tensors
        The linear layers' parameters (encoder first), as in :meth:`VAESpec.layer_shapes`; they
        need not (and should not) require gradients.
    spec : VAESpec
    codes : int64 tensor (B, d)
        The batch's integer codes (the model reads their one-hot encoding).
    noise : tensor (B, L)
        The reparameterisation noise of each row.
    clip : float
        ``C``: the L2 bound on each patient's whole gradient.
    layout : CodeLayout, optional
        Precomputed index tensors (built here when omitted).

    Returns
    -------
    (weight_sums, bias_sums, norms)
        Clipped sums per layer, and the unclipped per-patient gradient norms (B,).

    Examples
    --------
    >>> spec = VAESpec((3, 2), (4,), 1)
    >>> from .network import build_module
    >>> m = build_module(spec, generator=torch.Generator().manual_seed(0))
    >>> layers = [*m.encoder, *m.decoder]
    >>> w, b, norms = clipped_grad_sum([la.weight.detach() for la in layers], [la.bias.detach() for la in layers],
    ...                                spec, torch.tensor([[0, 1], [2, 0]]), torch.zeros(2, 1), clip=0.5)
    >>> [tuple(t.shape) for t in w], bool((norms > 0).all())
    ([(4, 5), (2, 4), (4, 1), (5, 4)], True)
    """
    layout = layout if layout is not None else CodeLayout(spec, codes.device)
    cols = layout.columns(codes)
    loss, inputs, outputs = forward_codes(weights, biases, spec, cols, noise, layout, track=True)
    grads = torch.autograd.grad(loss.sum(), outputs)
    with torch.no_grad():
        d = float(cols.shape[1])  # the first layer's input is one-hot per attribute: squared norm d
        sq = (grads[0] * grads[0]).sum(dim=1) * (d + 1.0)
        for a, g in zip(inputs[1:], grads[1:], strict=True):
            sq += (g * g).sum(dim=1) * ((a * a).sum(dim=1) + 1.0)
        norms = torch.sqrt(sq)
        factor = (clip / (norms + _EPS_CLIP)).clamp(max=1.0)
        gc = grads[0] * factor[:, None]
        first = onehot_weighted_sum(cols, gc, weights[0].shape[1])
        w_sums, b_sums = [first.t()], [gc.sum(dim=0)]
        for a, g in zip(inputs[1:], grads[1:], strict=True):
            gc = g * factor[:, None]
            w_sums.append(gc.t() @ a.detach())
            b_sums.append(gc.sum(dim=0))
    return w_sums, b_sums, norms


def onehot_weighted_sum(cols: torch.Tensor, rows: torch.Tensor, dim: int, one_launch: bool | None = None
                        ) -> torch.Tensor:
    """``Σᵢ xᵢ rowsᵢᵀ`` (shape ``(dim, h)``) for one-hot ``xᵢ`` with ones at ``cols[i]``: the first layer's clipped sum.

    Adds each row to the entry of every observed state. ``one_launch`` (default: on CUDA) does it
    in one ``index_add`` over a ``(B·d × h)`` repeated copy; otherwise one ``index_add`` per
    attribute, which avoids that copy (it dominated a CPU step).

    Examples
    --------
    >>> onehot_weighted_sum(torch.tensor([[0, 2], [1, 2]]), torch.tensor([[1.0], [10.0]]), 3).ravel().tolist()
    [1.0, 10.0, 11.0]
    """
    one_launch = cols.is_cuda if one_launch is None else one_launch
    out = torch.zeros((dim, rows.shape[1]), dtype=rows.dtype, device=rows.device)
    if one_launch:
        out.index_add_(0, cols.reshape(-1), rows.repeat_interleave(cols.shape[1], dim=0))
    else:
        for j in range(cols.shape[1]):
            out.index_add_(0, cols[:, j], rows)
    return out


# ------------------------------------------------------------------ training
#: Rows per clipped-sum pass on a CPU (larger Poisson batches are summed over chunks of this size).
CPU_CHUNK = 4096

@dataclass(frozen=True)
class DPSGDPlan:
    """Everything DP-SGD needs, fixed before training (and recorded in the ledger).

    Attributes
    ----------
    sample_rate : float
        q: each patient's probability of being in a batch.
    noise_multiplier : float
        σ: the noise's standard deviation is σ·C.
    clip : float
        C.
    steps : int
        Number of noisy steps.
    denominator : float
        The expected batch size q·n̂ by which the noisy sum is divided.
    steps_per_epoch : int
        Steps of one (expected) pass over the data.
    learning_rate : float
        Adam's peak learning rate.
    cosine : bool
        Decay the learning rate to 0 along a half cosine over the steps.
    ema_decay : float
        Keep an exponential moving average of the weights (0: off) and return it. Like the schedule,
        post-processing of the noisy gradients: no privacy cost.
    """

    sample_rate: float
    noise_multiplier: float
    clip: float
    steps: int
    denominator: float
    steps_per_epoch: int
    learning_rate: float
    cosine: bool = True
    ema_decay: float = 0.0


class Schedule:
    """Learning-rate schedule and weight averaging shared by both engines (post-processing)."""

    def __init__(self, plan: DPSGDPlan, opt: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> None:
        self.plan, self.opt, self.params = plan, opt, list(params)
        self.ema = [p.detach().clone() for p in self.params] if plan.ema_decay > 0 else None
        self.set_lr(0)

    def set_lr(self, step: int) -> None:
        lr = self.plan.learning_rate
        if self.plan.cosine:
            lr *= 0.5 * (1.0 + math.cos(math.pi * step / max(1, self.plan.steps)))
        for group in self.opt.param_groups:
            group["lr"] = lr

    def after_step(self, step: int) -> None:
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, [p.detach() for p in self.params], 1.0 - self.plan.ema_decay)
        self.set_lr(step + 1)

    def finish(self) -> None:
        if self.ema is not None:
            with torch.no_grad():
                for p, e in zip(self.params, self.ema, strict=True):
                    p.copy_(e)


def _params(module: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    layers = [*module.encoder, *module.decoder]
    return [la.weight for la in layers], [la.bias for la in layers]


def make_adam(params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step on CUDA (the update is the same; fewer launches)."""
    fused = all(p.device.type == "cuda" and p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params)
    return torch.optim.Adam(params, lr=lr, fused=True) if fused else torch.optim.Adam(params, lr=lr)


def add_noise(flat: torch.Tensor, rnd: TorchRandom | CsprngRandom, std: float, scale: float) -> None:
    """``flat ← (flat + std·z) · scale`` in place, z ~ N(0, I), computed in float64 and rounded once.

    The clipped sum is widened to float64, the float64 normals are added there and the result is
    scaled, then rounded to ``flat``'s dtype a single time: the noise never passes through the
    model's float32 on its own (where rounding a small σ·z would bias its low-order bits), and
    the sum is not rounded twice. ``std = 0`` only scales.

    Examples
    --------
    >>> flat = torch.zeros(4, dtype=torch.float32)
    >>> add_noise(flat, TorchRandom(0, torch.device("cpu")), 1.0, 0.5)
    >>> flat.dtype, bool((flat != 0).all())
    (torch.float32, True)
    """
    if std > 0:
        noisy = flat.to(torch.float64).add_(rnd.normal(flat.numel(), torch.float64), alpha=float(std))
        flat.copy_(noisy.mul_(float(scale)))
    else:
        flat.mul_(scale)


def train_fast(module: torch.nn.Module, spec: VAESpec, codes: torch.Tensor, plan: DPSGDPlan,
               rnd: TorchRandom | CsprngRandom, aux: torch.Generator,
               on_step: Callable[[int, int], None] | None = None) -> int:
    """Train ``module`` in place with DP-SGD (Adam on the noisy gradients); returns the steps taken.

    Parameters
    ----------
    module : the VAE from :func:`.network.build_module`, on the training device.
    codes : int64 tensor (n, d) on the same device: the private patient table, encoded.
    plan : DPSGDPlan
    rnd : DP randomness (Poisson sampling and gradient noise).
    aux : torch.Generator for the reparameterisation noise (not a privacy mechanism).
    on_step : called as ``on_step(step, batch_size)`` after each step (progress).

    Notes
    -----
    Each step: the Poisson sample (:class:`PoissonBatches`), the clipped sum
    (:func:`clipped_grad_sum`; on a CPU over chunks of :data:`CPU_CHUNK` patients), one Gaussian
    draw for all parameters at once, ``(sum + σC·z) / q·n̂`` in float64 (:func:`add_noise`)
    written into a single flat gradient buffer that the parameters' ``.grad`` views, and Adam (fused
    on CUDA). Nothing waits for the device except one small copy per block of Poisson samples.
    """
    weights, biases = _params(module)
    params = [p for pair in zip(weights, biases, strict=True) for p in pair]
    opt = make_adam(params, plan.learning_rate)
    schedule = Schedule(plan, opt, params)
    layout = CodeLayout(spec, codes.device)
    dtype = weights[0].dtype
    device = codes.device
    n = codes.shape[0]
    std = plan.noise_multiplier * plan.clip
    sizes = [p.numel() for p in params]
    total = sum(sizes)
    flat = torch.zeros(total, dtype=dtype, device=device)
    for p, view in zip(params, torch.split(flat, sizes), strict=True):
        p.grad = view.view_as(p)
    batches = PoissonBatches(n, plan.sample_rate, rnd, steps=plan.steps)
    scale = 1.0 / plan.denominator
    chunk = CPU_CHUNK if device.type == "cpu" else max(n, 1)
    detached_w, detached_b = [w.detach() for w in weights], [c.detach() for c in biases]
    for step in range(plan.steps):
        idx = batches.next()
        b = int(idx.numel())
        if b:
            # the clipped sum is a sum over patients: on a CPU it is taken over chunks whose
            # intermediates stay in cache (one pass over 16,384 rows was 30 % slower per row)
            eps = torch.randn((b, spec.latent), dtype=dtype, device=device, generator=aux)
            for start in range(0, b, chunk):
                sub = idx[start:start + chunk]
                w_sums, b_sums, _ = clipped_grad_sum(detached_w, detached_b, spec, codes[sub],
                                                     eps[start:start + chunk], plan.clip, layout)
                parts = [t.reshape(-1) for pair in zip(w_sums, b_sums, strict=True) for t in pair]
                if start == 0:
                    torch.cat(parts, out=flat)
                else:
                    flat.add_(torch.cat(parts))
        else:
            flat.zero_()
        add_noise(flat, rnd, std, scale)
        opt.step()
        schedule.after_step(step)
        if on_step is not None:
            on_step(step, b)
    schedule.finish()
    for p in params:
        p.grad = None
    return plan.steps


def train_nonprivate(module: torch.nn.Module, spec: VAESpec, codes: torch.Tensor, batch_size: int, epochs: int,
                     learning_rate: float, aux: torch.Generator) -> None:
    """Plain (non-private) training of the same model, for benchmarks: shuffled batches, Adam.

    The same forward pass as the fast path (:func:`.network.forward_codes`), with ordinary autograd
    to the parameters. Not differentially private: never used by :class:`DPVAE`.
    """
    weights, biases = _params(module)
    opt = make_adam(list(module.parameters()), learning_rate)
    layout = CodeLayout(spec, codes.device)
    dtype = weights[0].dtype
    n = codes.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, device=codes.device, generator=aux)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            eps = torch.randn((len(idx), spec.latent), dtype=dtype, device=codes.device, generator=aux)
            loss, _, _ = forward_codes(weights, biases, spec, layout.columns(codes[idx]), eps, layout)
            opt.zero_grad(set_to_none=True)
            (loss.sum() / batch_size).backward()
            opt.step()
