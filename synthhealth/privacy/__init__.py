"""Privacy core: budgets, zCDP accounting, vetted noise, and the privacy ledger.

Imports nothing from the data side of the package: the ledger only ever sees attribute
names, sensitivities, noise scales and costs.
"""

from .accounting import cdp_delta, cdp_epsilon, cdp_rho, exponential_rho, gaussian_rho, gaussian_sigma
from .budget import DEFAULT_DELTA, PrivacyBudget
from .ledger import LedgerEntry, LedgerTotal, PrivacyLedger, Reservation
from .mechanisms import NoiseSource, Release

__all__ = [
    "DEFAULT_DELTA",
    "LedgerEntry",
    "LedgerTotal",
    "NoiseSource",
    "PrivacyBudget",
    "PrivacyLedger",
    "Release",
    "Reservation",
    "cdp_delta",
    "cdp_epsilon",
    "cdp_rho",
    "exponential_rho",
    "gaussian_rho",
    "gaussian_sigma",
]
