"""White-box view of DP-SGD inside a real ``DPVAE.fit``: the noise each step really added.

:func:`dpsgd_residuals` patches the DP-SGD trainer around whatever is installed (so a mutant
patched in first is observed, not bypassed). At every step, just before the optimizer moves,
it recomputes the clipped gradient sum of the step's Poisson batch with the production code
(:func:`~synthhealth.generators.dpvae.fastdp.clipped_grad_sum`, the step's weights and its
reparameterisation draws, regenerated from the auxiliary generator's state), subtracts it from
the released noisy gradient, and hands the residual — the noise actually added, in units of the
*charged* standard deviation σC — to a callback. With correct code it is N(0, I) at every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock


@dataclass
class Step:
    """One DP-SGD step as the auditor sees it."""

    residual: Any
    """Released noisy gradient sum minus the recomputed clipped sum, divided by the charged σC (float64)."""
    weights: list[Any]
    biases: list[Any]
    spec: Any
    layout: Any
    codes: Any
    batch: Any
    eps: Any
    plan: Any
    """The plan the fit was charged for (seen outside any patch of the trainer)."""


def _flat(parts: Any) -> Any:
    import torch

    return torch.cat([t.reshape(-1) for t in parts]).double()


def flat_sums(weights: Any, biases: Any) -> Any:
    """Per-layer sums flattened in the order of the training buffer (w0, b0, w1, b1, ...)."""
    return _flat([t for pair in zip(weights, biases, strict=True) for t in pair])


@contextlib.contextmanager
def dpsgd_residuals(callback: Callable[[Step], None]) -> Iterator[None]:
    """Call ``callback`` with every DP-SGD step of the fits run inside the block."""
    import torch

    from synthhealth.generators.dpvae import fastdp

    orig_train, orig_adam, orig_batches = fastdp.train_fast, fastdp.make_adam, fastdp.PoissonBatches

    def train(module: Any, spec: Any, codes: Any, plan: Any, rnd: Any, aux: Any, *args: Any, **kw: Any) -> int:
        charged = plan
        layout = fastdp.CodeLayout(spec, codes.device)
        weights, biases = fastdp._params(module)
        params = [t for pair in zip(weights, biases, strict=True) for t in pair]
        state = {"aux": aux.get_state(), "batch": None}

        class Batches:
            def __init__(self, *a: Any, **k: Any) -> None:
                self._inner = orig_batches(*a, **k)

            def next(self) -> Any:
                state["batch"] = self._inner.next()
                return state["batch"]

        class Watched:
            def __init__(self, opt: Any) -> None:
                self.opt = opt

            def step(self) -> None:
                idx = state["batch"]
                b = int(idx.numel())
                gen = torch.Generator(device=codes.device)
                gen.set_state(state["aux"])
                eps = torch.randn((b, spec.latent), dtype=weights[0].dtype, device=codes.device, generator=gen)
                ws, bs = [w.detach() for w in weights], [c.detach() for c in biases]
                released = _flat([q.grad for q in params]) * charged.denominator
                if b:
                    w, c, _ = fastdp.clipped_grad_sum(ws, bs, spec, codes[idx], eps, charged.clip, layout)
                    released = released - flat_sums(w, c)
                callback(Step(released / (charged.noise_multiplier * charged.clip), ws, bs, spec, layout, codes, idx,
                              eps, charged))
                self.opt.step()
                state["aux"] = aux.get_state()

            def __getattr__(self, name: str) -> Any:
                return getattr(self.opt, name)

        with mock.patch.object(fastdp, "make_adam", lambda ps, lr: Watched(orig_adam(ps, lr))), \
                mock.patch.object(fastdp, "PoissonBatches", Batches):
            return orig_train(module, spec, codes, plan, rnd, aux, *args, **kw)

    with mock.patch.object(fastdp, "train_fast", train):
        yield
