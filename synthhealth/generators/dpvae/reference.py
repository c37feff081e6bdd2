"""The opacus reference path: per-sample gradients from ``GradSampleModule``, ``DPOptimizer``.

This is opacus's standard machinery (what ``PrivacyEngine.make_private`` assembles): a
``DPDataLoader`` with Poisson sampling over a ``TensorDataset``, per-sample gradients
materialised by ``GradSampleModule``, clipping, noise and averaging by ``DPOptimizer``. The pieces
are built by hand only so that the sampling rate and the averaging denominator come from the
*declared or noisy* dataset size (``make_private`` takes both from ``len(dataset)``, the exact
private count). It is slow (per-row Python work in the data loader, per-sample gradient tensors)
and is kept as the reference the fast path is tested against, and as ``engine="opacus"``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator

import torch

from .fastdp import DPSGDPlan, Schedule
from .network import VAESpec, one_hot, per_sample_loss

__all__ = ["opacus_clipped_grad_sum", "train_opacus"]


@contextlib.contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Silence known notices: opacus's about its secure mode (the ledger records the sampler used), and
    torch's about opacus's backward hook on the first layer, whose input (the data) needs no gradient."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with "
                                "respect to module outputs since no inputs require gradients", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*[Ss]ecure.*RNG.*")
        warnings.filterwarnings("ignore", message=".*[Ss]ecure mode.*")
        yield


def opacus_clipped_grad_sum(module: torch.nn.Module, spec: VAESpec, x: torch.Tensor, noise: torch.Tensor,
                            clip: float) -> list[torch.Tensor]:
    """Clipped per-sample gradient sum of one batch, computed by opacus (no noise).

    ``GradSampleModule`` materialises every per-sample gradient, then ``DPOptimizer.clip_and_accumulate``
    clips and sums them: the reference for :func:`.fastdp.clipped_grad_sum`. Works on a copy of
    ``module``. Returns the sums in parameter order (weight, bias of each layer, encoder first).
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    with _quiet_opacus():
        gsm = GradSampleModule(copy.deepcopy(module), loss_reduction="sum")
        opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=0.0), noise_multiplier=0.0, max_grad_norm=clip,
                          expected_batch_size=x.shape[0], loss_reduction="sum")
        logits, mu, logvar = gsm(x, noise)
        per_sample_loss(logits, x, mu, logvar, spec.sizes, spec.kl_weight).sum().backward()
        opt.clip_and_accumulate()
        out = [p.summed_grad.detach().clone() for p in opt.params]
        gsm.to_standard_module()  # removes the hooks and per-sample state
        return out


def train_opacus(module: torch.nn.Module, spec: VAESpec, codes: torch.Tensor, plan: DPSGDPlan,
                 sampling: torch.Generator | None, noise: torch.Generator | None, aux: torch.Generator,
                 secure_mode: bool = False, on_step: Callable[[int, int], None] | None = None) -> int:
    """Train ``module`` in place with opacus's standard pipeline; returns the number of steps taken.

    ``sampling`` (a CPU generator) drives the Poisson sampling and ``noise`` (on the parameters'
    device) the Gaussian noise; with ``secure_mode=True`` both are replaced by a ``torchcsprng``
    generator reading ``/dev/urandom`` and opacus's secure noise construction (as ``make_private``
    does in secure mode).
    """
    from opacus import GradSampleModule
    from opacus.data_loader import DPDataLoader
    from opacus.optimizers import DPOptimizer
    from torch.utils.data import TensorDataset

    if secure_mode:  # DPVAE checks that torchcsprng imports before touching the data
        import torchcsprng  # type: ignore[import-not-found]

        sampling = noise = torchcsprng.create_random_device_generator("/dev/urandom")
    with _quiet_opacus():
        gsm = GradSampleModule(module, loss_reduction="mean")
        base = torch.optim.Adam(gsm.parameters(), lr=plan.learning_rate)
        opt = DPOptimizer(base, noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.clip,
                          expected_batch_size=plan.denominator, loss_reduction="mean",
                          generator=noise, secure_mode=secure_mode)
        schedule = Schedule(plan, base, list(module.parameters()))
        dataset = TensorDataset(codes.cpu())
        loader = DPDataLoader(dataset, sample_rate=plan.sample_rate, generator=sampling)
        offsets = torch.as_tensor(spec.offsets, device=codes.device)
        dtype = next(module.parameters()).dtype
        step = 0
        while step < plan.steps:
            for (batch,) in loader:
                if step >= plan.steps:
                    break
                batch = batch.to(codes.device)
                x = one_hot(batch, offsets, spec.input_dim, dtype)
                eps = torch.randn((batch.shape[0], spec.latent), dtype=dtype, device=codes.device, generator=aux)
                opt.zero_grad(set_to_none=True)
                logits, mu, logvar = gsm(x, eps)
                loss = per_sample_loss(logits, x, mu, logvar, spec.sizes, spec.kl_weight)
                # opacus's "mean" convention: the loss is averaged over the actual batch, the
                # per-sample gradients are rescaled back, and the noisy sum is divided by the
                # expected batch size
                (loss.mean() if batch.shape[0] else loss.sum()).backward()
                opt.step()
                schedule.after_step(step)
                if on_step is not None:
                    on_step(step, int(batch.shape[0]))
                step += 1
        schedule.finish()
        gsm.to_standard_module()  # removes the hooks and per-sample state
        return step
