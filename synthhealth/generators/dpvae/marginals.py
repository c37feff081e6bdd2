"""The DPVAE's noisy marginals: what is measured, its sensitivity, and fitting the decoder to them.

One Gaussian release holds the 1-way histogram of every attribute and, optionally, the 2-way
histogram of some pairs of attributes, concatenated. One patient adds 1 to exactly one cell of each
of these ``m`` histograms, so the vector has L2 sensitivity √m and a Gaussian of scale σ on it is
``m / (2σ²)``-zCDP (the DPVAE composes it with DP-SGD in the PRV accountant).

After DP-SGD, :func:`match_marginals` moves the decoder's weights so that the *model's* marginals
(expectations over the latent prior) fit the noisy ones: post-processing of DP outputs (the weights
and the noisy marginals; the data are never read again). The DP-SGD decoder is the starting point,
so what it learned about higher-order structure is kept while its 1- and 2-way marginals are pulled
to the measured ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .network import VAESpec, layer_names

__all__ = ["auto_pairs", "marginal_counts", "marginal_noise_scale", "match_marginals", "split_marginals"]

#: With ``marginal_pairs="auto"``, all pairs are measured up to this many attributes (190 pairs);
#: above it the noise on each of the d(d−1)/2 pairs grows like d and only 1-way marginals are measured.
AUTO_PAIRS_MAX_ATTRIBUTES = 20


def auto_pairs(d: int) -> list[tuple[int, int]]:
    """The pairs measured by default: all of them for ``d <= 20`` attributes, none above.

    Examples
    --------
    >>> auto_pairs(3)
    [(0, 1), (0, 2), (1, 2)]
    >>> auto_pairs(21)
    []
    """
    return list(itertools.combinations(range(d), 2)) if d <= AUTO_PAIRS_MAX_ATTRIBUTES else []


def marginal_counts(codes: np.ndarray, sizes: Sequence[int], pairs: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """The 1-way histograms of every attribute of ``codes`` (n × d), then the 2-way histograms of
    ``pairs`` (row-major), concatenated.

    One patient adds 1 to exactly one cell of each histogram: L2 sensitivity √(d + len(pairs)).

    Examples
    --------
    >>> marginal_counts(np.array([[0, 1], [2, 1]]), (3, 2)).tolist()
    [1, 0, 1, 0, 2]
    >>> marginal_counts(np.array([[0, 1], [2, 1]]), (3, 2), [(0, 1)]).tolist()[5:]
    [0, 1, 0, 0, 0, 1]
    """
    parts = [np.bincount(codes[:, j], minlength=int(k)) for j, k in enumerate(sizes)]
    for a, b in pairs:
        ka, kb = int(sizes[a]), int(sizes[b])
        parts.append(np.bincount(codes[:, a] * kb + codes[:, b], minlength=ka * kb))
    return np.concatenate(parts).astype(np.int64)


def split_marginals(vector: np.ndarray, sizes: Sequence[int],
                    pairs: Sequence[tuple[int, int]] = ()) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Inverse of the concatenation in :func:`marginal_counts`: (1-way vectors, 2-way matrices).

    Examples
    --------
    >>> one, two = split_marginals(np.arange(11.0), (3, 2), [(0, 1)])
    >>> [v.tolist() for v in one], two[0].shape
    ([[0.0, 1.0, 2.0], [3.0, 4.0]], (3, 2))
    """
    lengths = [int(k) for k in sizes] + [int(sizes[a]) * int(sizes[b]) for a, b in pairs]
    if len(vector) != sum(lengths):
        raise ValueError(f"expected {sum(lengths)} cells, got {len(vector)}")
    chunks = np.split(np.asarray(vector), np.cumsum(lengths)[:-1])
    d = len(sizes)
    return list(chunks[:d]), [c.reshape(int(sizes[a]), int(sizes[b])) for c, (a, b) in zip(chunks[d:], pairs,
                                                                                          strict=True)]


def marginal_noise_scale(m: int, share: float, rho: float) -> float:
    """Noise σ of ``m`` concatenated marginals given ``share`` of the fit's zCDP ρ.

    A Gaussian mechanism of L2 sensitivity √m and scale σ is (m / 2σ²)-zCDP, so σ = √(m / (2·share·ρ)).

    Examples
    --------
    >>> round(marginal_noise_scale(4, 0.5, 0.01), 6)
    20.0
    """
    return math.sqrt(m / (2.0 * share * rho))


def match_marginals(spec: VAESpec, weights: dict[str, np.ndarray], one_way: Sequence[np.ndarray],
                    pairs: Sequence[tuple[int, int]], two_way: Sequence[np.ndarray], total: float, *,
                    steps: int = 300, learning_rate: float = 3e-3, batch: int = 4096, seed: int = 0,
                    device: Any = None, on_step: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Decoder weights whose model marginals fit noisy 1- and 2-way marginals (post-processing).

    The decoder makes the attributes independent given the latent ``z``, so with ``p_j(z)`` the
    softmax of attribute ``j``, the model's marginals are ``E[p_j(z)]`` and, for a pair,
    ``E[p_a(z) p_b(z)ᵀ]``, over ``z ~ N(0, I)``. Each Adam step estimates them on ``batch`` fresh
    latent draws (one ``D × D`` product gives every pair) and lowers the squared error to the noisy
    counts divided by ``total``: the Gaussian log-likelihood of the measurements (every cell has the
    same noise), which is what Private-PGM minimises for a graphical model. Only the decoder
    changes.

    Parameters
    ----------
    spec : VAESpec
    weights : dict of str to ndarray
        The trained VAE (encoder and decoder).
    one_way : sequence of ndarray
        Noisy counts of each attribute's states (not projected: the loss is the likelihood).
    pairs : sequence of (int, int)
        Attribute index pairs ``a < b`` of ``two_way``.
    two_way : sequence of ndarray
        Noisy ``sizes[a] × sizes[b]`` count matrices, one per pair.
    total : float
        The (noisy) number of patients that turns counts into probabilities.
    steps, learning_rate, batch : int, float, int
        Adam steps, its learning rate, and latent draws per step.
    seed : int
        Seed of the latent draws (post-processing randomness, not DP noise).
    device : torch.device, optional
        Where to compute (default CPU).
    on_step : callable, optional
        Called with the step index after each step (progress).

    Returns
    -------
    dict of str to ndarray
        A copy of ``weights`` with new decoder weights and biases (float32).

    Examples
    --------
    >>> spec = VAESpec((3, 2), (4,), 2)
    >>> rng = np.random.default_rng(0)
    >>> w = {f"{name}.{p}": rng.normal(size=(o, i) if p == "weight" else (o,)).astype(np.float32)
    ...      for name, (o, i) in zip(layer_names(spec), spec.layer_shapes()) for p in ("weight", "bias")}
    >>> one = [np.array([50.0, 30.0, 20.0]), np.array([60.0, 40.0])]
    >>> two = [np.array([[40.0, 10.0], [10.0, 20.0], [10.0, 10.0]])]
    >>> out = match_marginals(spec, w, one, [(0, 1)], two, 100.0, steps=5, batch=64)
    >>> sorted(out) == sorted(w)
    True
    """
    import torch

    device = torch.device("cpu") if device is None else device
    dtype = torch.float32
    names = layer_names(spec)[spec.n_encoder_layers:]
    params = []
    for name in names:
        for kind in ("weight", "bias"):
            params.append(torch.tensor(np.asarray(weights[f"{name}.{kind}"]), dtype=dtype, device=device,
                                       requires_grad=True))
    offsets = [int(o) for o in spec.offsets]
    sizes = [int(k) for k in spec.sizes]
    dim = sum(sizes)
    scale = 1.0 / max(float(total), 1.0)
    target1 = torch.tensor(np.concatenate([np.asarray(v, dtype=np.float64) for v in one_way]) * scale, dtype=dtype,
                           device=device)
    target2 = torch.zeros(dim, dim, dtype=dtype, device=device)
    mask = torch.zeros(dim, dim, dtype=dtype, device=device)
    for (a, b), y in zip(pairs, two_way, strict=True):
        if not a < b:
            raise ValueError(f"pairs must be (a, b) with a < b, got {(a, b)}")
        rows, cols = slice(offsets[a], offsets[a] + sizes[a]), slice(offsets[b], offsets[b] + sizes[b])
        target2[rows, cols] = torch.as_tensor(np.asarray(y, dtype=np.float64) * scale, dtype=dtype)
        mask[rows, cols] = 1.0
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    opt = torch.optim.Adam(params, lr=float(learning_rate))
    for step in range(int(steps)):
        h = torch.randn(int(batch), spec.latent, generator=gen, dtype=dtype, device=device)
        for i in range(len(names)):
            h = torch.addmm(params[2 * i + 1], h, params[2 * i].T)
            if i < len(names) - 1:
                h = torch.relu(h)
        p = torch.cat([torch.softmax(h[:, o:o + k], dim=1) for o, k in zip(offsets, sizes, strict=True)], dim=1)
        r1 = p.mean(0) - target1
        loss = (r1 * r1).sum()
        if pairs:
            r2 = (p.T @ p / p.shape[0] - target2) * mask
            loss = loss + (r2 * r2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step)
    out = dict(weights)
    for i, name in enumerate(names):
        out[f"{name}.weight"] = params[2 * i].detach().cpu().numpy().astype(np.float32)
        out[f"{name}.bias"] = params[2 * i + 1].detach().cpu().numpy().astype(np.float32)
    return out
