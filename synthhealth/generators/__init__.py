"""Differentially private generators (patient-level): AIM and MST marginal methods.

Every generator follows the scikit-learn contract (see :mod:`.base`), charges every data access
to a :class:`synthhealth.privacy.PrivacyLedger`, and saves to JSON + ``.npz`` (no pickle).
"""

from .aim import AIM
from .base import BaseGenerator, load_model
from .mst import MST

__all__ = ["AIM", "MST", "BaseGenerator", "load_model"]
