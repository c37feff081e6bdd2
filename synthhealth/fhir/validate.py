"""Strict validation of single resources with ``fhir.resources.R4B`` (messages never echo values)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["validate_resource"]

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


@lru_cache(maxsize=256)
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _sanitize(msg: str) -> str:
    # pydantic messages name constraints, not inputs; strip quoted fragments anyway so
    # that a validator that echoes its input can never leak patient data.
    msg = msg.removeprefix("Value error, ")
    return _QUOTED.sub("'…'", msg) if "Input should be" not in msg else msg


def validate_resource(resource: dict[str, Any]) -> list[str]:
    """Validate one resource against the FHIR R4B model.

    Parameters
    ----------
    resource : dict
        A parsed FHIR resource with ``resourceType``.

    Returns
    -------
    list of str
        One ``element.path: problem`` line per error; empty when valid. No value from
        the resource is echoed.

    Examples
    --------
    >>> validate_resource({"resourceType": "Patient", "gender": "female"})
    []
    >>> validate_resource({"resourceType": "Patient", "birthDate": "soon"})
    ['Patient.birthDate: Date value string does not match spec regex.']
    """
    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    try:
        model = _model(str(rtype))
    except (KeyError, ValueError):
        return [f"unknown resource type for the R4B models: {str(rtype)[:40]!r}"]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            loc = ".".join(str(p) for p in err.get("loc", ()))
            out.append(f"{rtype}.{loc}: {_sanitize(str(err.get('msg', err.get('type'))))}")
        return out
    except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
        return [f"{rtype}: {type(exc).__name__}"]
    return []
