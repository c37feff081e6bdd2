"""DPVAE: a tabular VAE trained with DP-SGD (the ``[dpvae]`` extra: torch, opacus, safetensors).

Importing this package does not import torch: :class:`DPVAE` imports it when it is fitted, and
raises :class:`~synthhealth.exceptions.OptionalDependencyError` naming the extra when it is missing.

Modules: :mod:`.generator` (the estimator), :mod:`.network` (architecture, loss, numpy sampler),
:mod:`.fastdp` (the fast DP-SGD path), :mod:`.reference` (opacus's standard pipeline, the reference),
:mod:`.accounting` (PRV/RDP accounting through opacus).
"""

from .generator import DPVAE

__all__ = ["DPVAE"]
