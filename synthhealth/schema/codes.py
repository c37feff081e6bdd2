"""Code systems: short aliases for the URIs used in schemas.

A code in a schema is written ``"ALIAS|CODE"`` (``"sct|44054006"``) or with a full
system URI (``"http://snomed.info/sct|44054006"``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SYSTEM_ALIASES", "Code", "resolve_system"]

#: Short names accepted for common code systems.
SYSTEM_ALIASES: dict[str, str] = {
    "sct": "http://snomed.info/sct",
    "snomed": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd9cm": "http://hl7.org/fhir/sid/icd-9-cm",
    "cpt": "http://www.ama-assn.org/go/cpt",
    "cvx": "http://hl7.org/fhir/sid/cvx",
    "ndc": "http://hl7.org/fhir/sid/ndc",
    "ucum": "http://unitsofmeasure.org",
    "omb": "urn:oid:2.16.840.1.113883.6.238",
    "cdcrec": "urn:oid:2.16.840.1.113883.6.238",
    "v3-actcode": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
    "v3-maritalstatus": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
}


def resolve_system(system: str) -> str:
    """Return the full URI for an alias (or the input when it is already a URI).

    Examples
    --------
    >>> resolve_system("loinc")
    'http://loinc.org'
    """
    return SYSTEM_ALIASES.get(system.lower(), system) if system else system


@dataclass(frozen=True)
class Code:
    """A coded concept: system URI, code and an optional display text.

    Examples
    --------
    >>> Code.parse("sct|44054006").system
    'http://snomed.info/sct'
    """

    system: str
    code: str
    display: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """``(system, code)``, the identity used for matching."""
        return (self.system, self.code)

    @classmethod
    def parse(cls, text: str, display: str | None = None) -> Code:
        """Parse ``"SYSTEM|CODE"``; raise ``ValueError`` without a system."""
        if "|" not in text:
            raise ValueError(f"code {text!r} has no system: write 'SYSTEM|CODE', e.g. 'sct|44054006'")
        system, code = text.rsplit("|", 1)
        if not system or not code:
            raise ValueError(f"code {text!r} must have a non-empty system and code")
        return cls(resolve_system(system), code, display)

    def __str__(self) -> str:
        return f"{self.system}|{self.code}"
