"""Small bundled demo data (synthetic patients) and example tables.

See ``SOURCE.md`` in this folder for origin and licenses.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from ..exceptions import OptionalDependencyError

__all__ = ["demo_fhir_path", "demo_ndjson_path", "load_demo_fhir", "load_flchain"]


def _here() -> Path:
    return Path(str(resources.files("synthhealth") / "datasets"))


def demo_fhir_path() -> Path:
    """Folder of the 150 bundled Synthea R4 patient Bundles (``.json.xz``).

    Examples
    --------
    >>> len(list(demo_fhir_path().glob("*.json.xz")))
    150
    """
    return _here() / "demo_fhir"


def demo_ndjson_path() -> Path:
    """Folder of the bundled 13-patient Bulk-Data NDJSON sample (``.ndjson.xz``)."""
    return _here() / "demo_ndjson"


def load_demo_fhir(*, strict: bool = False, progress: bool = False):  # type: ignore[no-untyped-def]
    """Open the bundled demo FHIR data with :func:`synthhealth.fhir.read`.

    Parameters
    ----------
    strict : bool, default False
        Validate every resource with ``fhir.resources.R4B``.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    synthhealth.fhir.FHIRReader
        Iterate it for one :class:`~synthhealth.fhir.PatientRecord` per patient.

    Examples
    --------
    >>> reader = load_demo_fhir()
    >>> sum(1 for _ in reader)
    150
    """
    from ..fhir import read

    return read(demo_fhir_path(), strict=strict, progress=progress)


def load_flchain() -> pd.DataFrame:
    """The Mayo Clinic serum free light chain cohort (7,874 patients) as one table.

    Loaded from scikit-survival's bundled copy (no download): an ``id`` column (the patient id,
    1 to 7,874 in the order of the original data; the schema declares it as ``patient_id``), the
    columns of ``sksurv.datasets.load_flchain()``, plus ``futime`` (days) and ``death`` (bool).
    Read it with ``synthhealth.read_table(df, load_schema("flchain"))``: the result is indexed by
    ``patient_id``.

    Raises
    ------
    OptionalDependencyError
        If scikit-survival is not installed (``pip install "synthhealth[examples]"``).

    Examples
    --------
    >>> df = load_flchain()  # doctest: +SKIP
    >>> df.shape  # doctest: +SKIP
    (7874, 12)
    """
    try:
        from sksurv.datasets import load_flchain as _load
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OptionalDependencyError(
            "load_flchain needs scikit-survival, which ships the flchain data: "
            'pip install "synthhealth[examples]"'
        ) from exc
    X, y = _load()
    df = X.copy()
    df["futime"] = y["futime"].astype(float)
    df["death"] = y["death"].astype(bool)
    df = df.reset_index(drop=True)
    df.insert(0, "id", range(1, len(df) + 1))
    return df
