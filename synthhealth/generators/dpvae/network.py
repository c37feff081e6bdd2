"""The tabular VAE: architecture, per-patient loss, and a numpy decoder for sampling.

Input: the one-hot encoding of a patient's integer codes over the schema's public domain (every
attribute, numbers by their public bins, missing as its own state), so the input layout is fixed by
the schema alone. Encoder: an MLP ``D → h1 → … → hk → 2L`` (ReLU) giving the mean and log-variance
of a diagonal Gaussian posterior over ``L`` latent variables. Decoder: the mirrored MLP
``L → hk → … → h1 → D`` giving, per attribute, the logits of a categorical distribution over the
same states. The per-patient loss is the negative ELBO: the sum over attributes of the
cross-entropy plus the KL divergence to N(0, I).

Every parameterised layer is an ``nn.Linear`` applied to one row per patient, which is what makes
the fast DP-SGD path possible (see :mod:`.fastdp`): the per-patient gradient of a layer is the outer
product of its output gradient and its input.

Only :class:`VAESpec` and :func:`sample_codes` are torch-free (sampling a saved model needs numpy
only); :func:`build_module` and :func:`per_sample_loss` import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CodeLayout", "VAESpec", "build_module", "calibrate_output_bias", "forward_codes", "layer_names",
           "marginal_logits", "per_sample_loss", "project_counts", "sample_codes"]


@dataclass(frozen=True)
class VAESpec:
    """Shape of a tabular VAE.

    Parameters
    ----------
    sizes : tuple of int
        Number of states of each attribute (missing state included), in column order.
    hidden : tuple of int
        Hidden layer widths of the encoder (the decoder mirrors them).
    latent : int
        Latent dimension ``L``.
    kl_weight : float, default 1.0
        Weight β of the KL term in the loss (β = 1: the ELBO).

    Examples
    --------
    >>> spec = VAESpec((3, 2), (8,), 2)
    >>> spec.input_dim, spec.n_encoder_layers, spec.layer_shapes()
    (5, 2, [(8, 5), (4, 8), (8, 2), (5, 8)])
    """

    sizes: tuple[int, ...]
    hidden: tuple[int, ...]
    latent: int
    kl_weight: float = 1.0

    @property
    def input_dim(self) -> int:
        """``D``: the length of the one-hot encoding."""
        return int(sum(self.sizes))

    @property
    def offsets(self) -> np.ndarray:
        """Start of each attribute's block in the one-hot encoding."""
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    @property
    def n_encoder_layers(self) -> int:
        """Linear layers of the encoder (the last one outputs mean and log-variance)."""
        return len(self.hidden) + 1

    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(out_features, in_features)`` of every linear layer, encoder first."""
        enc = [self.input_dim, *self.hidden]
        shapes = [(enc[i + 1], enc[i]) for i in range(len(self.hidden))] + [(2 * self.latent, enc[-1])]
        dec = [self.latent, *reversed(self.hidden), self.input_dim]
        shapes += [(dec[i + 1], dec[i]) for i in range(len(dec) - 1)]
        return shapes

    def n_parameters(self) -> int:
        """Number of trainable parameters (weights and biases)."""
        return sum(o * i + o for o, i in self.layer_shapes())

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"sizes": list(self.sizes), "hidden": list(self.hidden), "latent": self.latent,
                "kl_weight": self.kl_weight}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> VAESpec:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(int(s) for s in doc["sizes"]), tuple(int(h) for h in doc["hidden"]), int(doc["latent"]),
                   float(doc.get("kl_weight", 1.0)))


def layer_names(spec: VAESpec) -> list[str]:
    """Names of the linear layers (``encoder.0`` …, ``decoder.0`` …), as in the saved weights."""
    k = spec.n_encoder_layers
    return [f"encoder.{i}" for i in range(k)] + [f"decoder.{i}" for i in range(len(spec.layer_shapes()) - k)]


def build_module(spec: VAESpec, generator: Any = None, dtype: Any = None, device: Any = None) -> Any:
    """The VAE as a ``torch.nn.Module`` (``forward(x, noise) -> (logits, mu, logvar)``).

    Weights are initialised like ``nn.Linear`` (uniform in ±1/√fan_in), from ``generator`` so that
    a seeded fit is reproducible. Initialisation is data-independent.
    """
    import torch
    from torch import nn

    class TabularVAE(nn.Module):
        """Tabular VAE made only of ``nn.Linear`` layers and ReLUs (opacus-compatible)."""

        def __init__(self) -> None:
            super().__init__()
            shapes = spec.layer_shapes()
            k = spec.n_encoder_layers
            self.latent = spec.latent
            self.encoder = nn.ModuleList([nn.Linear(i, o) for o, i in shapes[:k]])
            self.decoder = nn.ModuleList([nn.Linear(i, o) for o, i in shapes[k:]])

        def forward(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            h = x
            for i, layer in enumerate(self.encoder):
                h = layer(h)
                if i < len(self.encoder) - 1:
                    h = torch.relu(h)
            mu, logvar = h[:, :self.latent], h[:, self.latent:]
            h = mu + torch.exp(0.5 * logvar) * noise
            for i, layer in enumerate(self.decoder):
                h = layer(h)
                if i < len(self.decoder) - 1:
                    h = torch.relu(h)
            return h, mu, logvar

    module = TabularVAE()
    with torch.no_grad():
        for layer in [*module.encoder, *module.decoder]:
            bound = 1.0 / float(np.sqrt(layer.in_features))
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    if dtype is not None or device is not None:
        module = module.to(device=device, dtype=dtype)
    return module


def per_sample_loss(logits: Any, x: Any, mu: Any, logvar: Any, sizes: tuple[int, ...], kl_weight: float = 1.0) -> Any:
    """Negative ELBO of each patient (a vector: one entry per row).

    ``Σ_attributes [logsumexp(logits of the attribute) − logit of the observed state] + β·KL(q(z|x) ‖ N(0, I))``.
    """
    import torch

    lse = torch.stack([torch.logsumexp(block, dim=1) for block in torch.split(logits, list(sizes), dim=1)], dim=1)
    rec = lse.sum(dim=1) - (logits * x).sum(dim=1)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(dim=1)
    return rec + kl_weight * kl


class CodeLayout:
    """Index tensors (on the training device) to run the VAE from integer codes, without one-hot rows.

    The first layer applied to a one-hot row is the sum of ``d`` columns of its weight (one per
    attribute): an embedding-bag lookup, ``d·h`` additions instead of ``D·h`` multiply-adds. The
    loss needs, per attribute, the logsumexp of its block of logits — computed at once on a
    ``(B, d, K_max)`` padded gather — and the logit of the observed state — a gather.
    """

    def __init__(self, spec: VAESpec, device: Any) -> None:
        import torch

        d, kmax = len(spec.sizes), max(spec.sizes)
        index = np.zeros((d, kmax), dtype=np.int64)
        pad = np.zeros((d, kmax), dtype=bool)
        for j, (off, size) in enumerate(zip(spec.offsets, spec.sizes, strict=True)):
            index[j, :size] = off + np.arange(size)
            index[j, size:] = off
            pad[j, size:] = True
        self.d, self.kmax = d, kmax
        self.offsets = torch.as_tensor(spec.offsets, device=device)
        self.pad_index = torch.as_tensor(index.reshape(-1), device=device)
        self.pad_mask = torch.as_tensor(pad, device=device)

    def columns(self, codes: Any) -> Any:
        """Column of each observed state in the one-hot layout: ``codes + offsets`` (B, d)."""
        return codes + self.offsets

    def loss(self, logits: Any, cols: Any, mu: Any, logvar: Any, kl_weight: float) -> Any:
        """:func:`per_sample_loss` from the observed columns instead of one-hot rows."""
        import torch

        padded = logits.index_select(1, self.pad_index).view(logits.shape[0], self.d, self.kmax)
        lse = torch.logsumexp(padded.masked_fill(self.pad_mask, -math.inf), dim=2).sum(dim=1)
        rec = lse - logits.gather(1, cols).sum(dim=1)
        kl = 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(dim=1)
        return rec + kl_weight * kl


def forward_codes(weights: Any, biases: Any, spec: VAESpec, cols: Any, noise: Any, layout: CodeLayout,
                  track: bool = False) -> tuple[Any, list[Any], list[Any]]:
    """Per-patient losses of the VAE evaluated from observed columns (``layout.columns(codes)``).

    Parameters
    ----------
    weights, biases : sequences of tensors
        Linear layers (encoder first). With ``track=False`` they may require gradients (ordinary
        autograd); with ``track=True`` they must not: autograd then tracks the activations only.
    track : bool
        Return every linear layer's input (``None`` for the first: an implicit one-hot row) and
        output, the outputs being differentiable (the first is made a leaf).

    Returns
    -------
    (loss, inputs, outputs)
    """
    import torch
    import torch.nn.functional as F

    k = spec.n_encoder_layers
    n_layers = len(weights)
    inputs: list[Any] = []
    outputs: list[Any] = []
    y = F.embedding_bag(cols, weights[0].t().contiguous(), mode="sum") + biases[0]  # row gathers: contiguous
    h = mu = logvar = y
    for i in range(n_layers):
        if i > 0:
            y = F.linear(h, weights[i], biases[i])
        elif track:
            y.requires_grad_(True)
        if track:
            inputs.append(None if i == 0 else h)
            outputs.append(y)
        if i == k - 1:
            mu, logvar = y[:, :spec.latent], y[:, spec.latent:]
            h = mu + torch.exp(0.5 * logvar) * noise
        elif i == n_layers - 1:
            h = y
        else:
            h = torch.relu(y)
    return layout.loss(h, cols, mu, logvar, spec.kl_weight), inputs, outputs


def one_hot(codes: Any, offsets: Any, dim: int, dtype: Any) -> Any:
    """One-hot rows (``n × D``) of integer codes (``n × d``), ``offsets`` on the same device."""
    import torch

    out = torch.zeros((codes.shape[0], dim), dtype=dtype, device=codes.device)
    out.scatter_(1, codes + offsets, 1.0)
    return out


def sample_codes(spec: VAESpec, weights: dict[str, np.ndarray], n: int, rng: np.random.Generator,
                 chunk: int = 65_536) -> np.ndarray:
    """Draw ``n`` synthetic code rows: z ~ N(0, I), decoder, one categorical draw per attribute.

    Pure numpy (no torch needed to sample a saved model); post-processing of the trained weights.

    Examples
    --------
    >>> spec = VAESpec((3, 2), (4,), 2)
    >>> rng = np.random.default_rng(0)
    >>> w = {f"{name}.{p}": rng.normal(size=(o, i) if p == "weight" else (o,))
    ...      for name, (o, i) in zip(layer_names(spec), spec.layer_shapes()) for p in ("weight", "bias")}
    >>> sample_codes(spec, w, 5, rng).shape
    (5, 2)
    """
    names = layer_names(spec)[spec.n_encoder_layers:]
    offsets = spec.offsets
    out = np.empty((n, len(spec.sizes)), dtype=np.int64)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        h = rng.standard_normal((m, spec.latent))
        for i, name in enumerate(names):
            h = h @ weights[f"{name}.weight"].astype(np.float64).T + weights[f"{name}.bias"].astype(np.float64)
            if i < len(names) - 1:
                np.maximum(h, 0.0, out=h)
        for j, (off, size) in enumerate(zip(offsets, spec.sizes, strict=True)):
            block = h[:, off:off + size]
            block = block - block.max(axis=1, keepdims=True)
            p = np.exp(block)
            cdf = np.cumsum(p, axis=1)
            u = rng.random((m, 1)) * cdf[:, -1:]
            out[start:start + m, j] = np.minimum((cdf < u).sum(axis=1), size - 1)
    return out


# ------------------------------------------------------- 1-way marginals (post-processing)
def project_counts(noisy: np.ndarray, total: float) -> np.ndarray:
    """Nearest (L2) non-negative vector summing to ``total``: ``max(noisy − τ, 0)`` for the right τ.

    The usual post-processing of a noisy histogram (it removes most of the mass that clipping
    negative counts at zero would put on empty cells). Falls back to uniform when ``total <= 0``.

    Examples
    --------
    >>> project_counts(np.array([10.0, -3.0, 1.0]), 9.0).tolist()
    [9.0, 0.0, 0.0]
    """
    x = np.asarray(noisy, dtype=np.float64)
    if total <= 0 or not np.isfinite(x).all():
        return np.full(x.shape, max(float(total), 0.0) / max(1, x.size))
    u = np.sort(x)[::-1]
    css = np.cumsum(u) - total
    k = np.nonzero(u - css / np.arange(1, x.size + 1) > 0)[0][-1]
    tau = css[k] / (k + 1)
    return np.maximum(x - tau, 0.0)


def marginal_logits(probs: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """Centred log-probabilities of one attribute, each probability floored at ``floor`` then renormalised.

    Examples
    --------
    >>> np.round(marginal_logits(np.array([0.5, 0.5, 0.0])), 2).tolist()
    [2.84, 2.84, -5.68]
    """
    p = np.maximum(np.asarray(probs, dtype=np.float64), floor)
    lp = np.log(p / p.sum())
    return lp - lp.mean()


def _decoder_features(spec: VAESpec, weights: dict[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    """Input of the decoder's last layer for latent draws ``z``."""
    names = layer_names(spec)[spec.n_encoder_layers:]
    h = z
    for name in names[:-1]:
        h = np.maximum(h @ weights[f"{name}.weight"].astype(np.float64).T + weights[f"{name}.bias"].astype(np.float64),
                       0.0)
    return h


def calibrate_output_bias(spec: VAESpec, weights: dict[str, np.ndarray], targets: list[np.ndarray],
                          rng: np.random.Generator, n: int = 20_000, iterations: int = 20,
                          floor: float = 1e-4) -> np.ndarray:
    """Output biases of the decoder with which the model's 1-way marginals match ``targets``.

    Iterative proportional fitting on the biases of the decoder's last layer: the model's marginal
    of attribute j is the average of the decoder's softmax over ``n`` latent draws, and its biases
    move by ``log(target / model)`` until they agree. Post-processing of the weights and of DP
    marginals (no data); the result is still a VAE decoder (only its output biases change).

    Parameters
    ----------
    targets : list of arrays
        One probability vector per attribute (e.g. noisy 1-way marginals), floored at ``floor``.

    Returns
    -------
    numpy.ndarray
        The new bias vector of the last decoder layer (length ``D``).
    """
    last = layer_names(spec)[-1]
    w = weights[f"{last}.weight"].astype(np.float64)
    b = weights[f"{last}.bias"].astype(np.float64).copy()
    base = _decoder_features(spec, weights, rng.standard_normal((n, spec.latent))) @ w.T
    offsets = spec.offsets
    logt = []
    for t, _size in zip(targets, spec.sizes, strict=True):
        p = np.maximum(np.asarray(t, dtype=np.float64), floor)
        logt.append(np.log(p / p.sum()))
    for _ in range(iterations):
        for j, (off, size) in enumerate(zip(offsets, spec.sizes, strict=True)):
            block = base[:, off:off + size] + b[off:off + size]
            block = block - block.max(axis=1, keepdims=True)
            e = np.exp(block)
            model = (e / e.sum(axis=1, keepdims=True)).mean(axis=0)
            b[off:off + size] += np.clip(logt[j] - np.log(np.maximum(model, 1e-300)), -5.0, 5.0)
    return b
