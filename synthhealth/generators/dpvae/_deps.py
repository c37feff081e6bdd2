"""Lazy imports of the ``[dpvae]`` extra (torch, opacus, safetensors).

``import synthhealth`` never imports torch: the DP-VAE modules that need it are imported inside
:meth:`DPVAE.fit` and friends, through these helpers, which turn a missing package into an
:class:`~synthhealth.exceptions.OptionalDependencyError` that names the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ...exceptions import OptionalDependencyError

__all__ = ["INSTALL_HINT", "require"]

#: How to install the extra (CPU-only machines first install the small CPU build of torch).
INSTALL_HINT = ('pip install "synthhealth[dpvae]" (on CPU-only machines run `pip install torch==2.13.0 '
                '--index-url https://download.pytorch.org/whl/cpu` first: an unpinned torch pulls a multi-GB '
                'CUDA build)')


def require(module: str, what: str = "DPVAE") -> ModuleType:
    """Import ``module`` or raise :class:`OptionalDependencyError` naming the ``[dpvae]`` extra.

    Parameters
    ----------
    module : str
        ``"torch"``, ``"opacus"`` or ``"safetensors.numpy"``.
    what : str
        What needs it, for the message.

    Examples
    --------
    >>> require("json").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise OptionalDependencyError(
            f"{what} needs the optional dependency {top!r}, which is not installed: {INSTALL_HINT}.") from exc
