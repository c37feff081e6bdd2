"""Package basics: public API, parameter checks, exceptions, dependency pins."""

from __future__ import annotations

import numpy as np
import pytest

import synthhealth as sh
from synthhealth._validation import check_choice, check_positive_int, check_random_state
from synthhealth.exceptions import FHIRFormatError, SchemaError, SchemaProblem


def test_public_api_exports() -> None:
    for name in sh.__all__:
        assert hasattr(sh, name), name
    assert sh.__version__ and sh.__version__ != "0.0.0+unknown"


def test_exception_hierarchy() -> None:
    assert issubclass(sh.InvalidParameterError, ValueError)
    assert issubclass(sh.SchemaError, ValueError) and issubclass(sh.FHIRFormatError, ValueError)
    assert issubclass(sh.NotFittedError, AttributeError) and issubclass(sh.NotFittedError, ValueError)
    assert issubclass(sh.OptionalDependencyError, ImportError)
    for exc in (sh.InvalidParameterError, sh.SchemaError, sh.FHIRFormatError, sh.BudgetExceededError, sh.AccountingError):
        assert issubclass(exc, sh.SynthHealthError)


def test_error_formats() -> None:
    err = FHIRFormatError("bad", file="f.ndjson", line=3, resource_id="Patient/1")
    assert str(err) == "f.ndjson, line 3, Patient/1: bad"
    err2 = SchemaError([SchemaProblem("a", "x"), SchemaProblem("b", "y")], "s.yaml")
    assert str(err2) == "2 problems in schema in s.yaml:\n  - a: x\n  - b: y"


def test_check_random_state() -> None:
    a, b = check_random_state(3), check_random_state(3)
    assert a.integers(1000) == b.integers(1000)
    g = np.random.default_rng(0)
    assert check_random_state(g) is g
    assert isinstance(check_random_state(None), np.random.Generator)
    with pytest.raises(sh.InvalidParameterError, match="Got -1 instead"):
        check_random_state(-1)
    with pytest.raises(sh.InvalidParameterError, match="Got str instead"):
        check_random_state("seed")


def test_checks() -> None:
    with pytest.raises(sh.InvalidParameterError, match=r"The 'n' parameter of AIM must be an int in \[1, inf\). Got 0 instead."):
        check_positive_int(0, "n", "AIM")
    with pytest.raises(sh.InvalidParameterError, match="must be an int. Got bool True"):
        check_positive_int(True, "n")
    assert check_choice("a", "mode", ["a", "b"]) == "a"


def test_diffprivlib_imports() -> None:
    # diffprivlib 0.6.6 breaks with scikit-learn >= 1.9; pyproject pins scikit-learn < 1.9
    import diffprivlib

    assert diffprivlib.__version__
