"""A tiny public schema (a: 3 categories × b: boolean) and random patient tables in it, for tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import synthhealth as sh


def tiny_schema_doc(name: str = "tiny") -> dict[str, Any]:
    """The schema document (a: x/y/z, b: boolean; no missing states)."""
    return {
        "synthhealth_schema": 1, "name": name, "version": "1", "reference_date": "2020-01-01",
        "attributes": [{"name": "a", "type": "categorical", "categories": ["x", "y", "z"], "missing": False},
                       {"name": "b", "type": "boolean", "missing": False}],
    }


def tiny_table(schema: sh.PatientSchema, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` random patients (ids ``p0``…) read through :func:`synthhealth.read_table`."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], n), "b": rng.integers(0, 2, n).astype(bool)},
                      index=pd.Index([f"p{i}" for i in range(n)], name="patient_id"))
    return sh.read_table(df, schema)
