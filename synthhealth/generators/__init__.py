"""Differentially private generators (patient-level): AIM and MST marginal methods, DP-SGD VAE.

Every generator follows the scikit-learn contract (see :mod:`.base`), charges every data access
to a :class:`synthhealth.privacy.PrivacyLedger`, and saves to JSON + ``.npz`` (no pickle).
"""

from .aim import AIM
from .base import MAX_SAMPLE_SIZE, BaseGenerator, load_model
from .dpvae import DPVAE  # torch/opacus are imported only when a DPVAE is fitted or loaded
from .mst import MST

__all__ = ["AIM", "DPVAE", "MST", "MAX_SAMPLE_SIZE", "BaseGenerator", "load_model"]
