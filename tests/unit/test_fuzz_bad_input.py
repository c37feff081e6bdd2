"""Property-based fuzzing of every input (issue 16.4): only SynthHealthError escapes, no canary leaks.

Valid FHIR Bundles and NDJSON, tables and model folders are mutated (wrong JSON types, missing and
extra fields, extreme numbers and dates, repeated keys, encodings, truncation, compression) and
read. Properties:

- only :class:`synthhealth.SynthHealthError` subclasses escape (``FileNotFoundError`` only when a
  file was deleted on purpose);
- no error message holds a canary string planted in the patient data;
- a FHIR error names its file and line or entry (or the resource);
- the CLI writes no output file when it fails (never a partial output).

The profile (tests/conftest.py) sets the number of cases: ``ci`` (default, derandomized) or
``full`` (``pytest --full``). The terminal summary reports the case count, tracebacks, leaks and
partial outputs.
"""

from __future__ import annotations

import copy
import gzip
import json
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis (pip install -e '.[dev]')")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import synthhealth as sh
from synthhealth.cli import main

from ..fhirfactory import condition, encounter, observation, patient
from .test_flatten import SCHEMA, bp, smoking

CANARIES = ("Zqxjkv-Canary-4711", "Wbfpq-Canary-0815", "CANARYMRN99731")
STATS: Counter[str] = Counter()
N = settings().max_examples  # the profile's base count


def summary() -> str:
    return (f"fuzz: {STATS['cases']} cases ({STATS['fhir']} FHIR, {STATS['table']} tables, {STATS['model']} models, "
            f"{STATS['file']} schema/ledger files, {STATS['cli']} CLI), {STATS['ok']} read, {STATS['errors']} SynthHealthError, "
            f"{STATS['tracebacks']} tracebacks, {STATS['leaks']} canary leaks, {STATS['partial']} partial outputs")


def _check_message(exc: BaseException) -> None:
    text = str(exc) + " " + repr(exc.args)
    for c in CANARIES:
        if c in text or c.lower() in text.lower():
            STATS["leaks"] += 1
            raise AssertionError(f"canary {c!r} leaked in {type(exc).__name__}: {text[:500]}")


def _run(kind: str, call: Callable[[], Any], *, allow: tuple[type[BaseException], ...] = (),
         located: bool = False) -> Any:
    """Call, and check the properties of what escapes."""
    STATS["cases"] += 1
    STATS[kind] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call()
    except sh.SynthHealthError as exc:
        STATS["errors"] += 1
        _check_message(exc)
        if located and isinstance(exc, sh.FHIRFormatError):
            assert exc.file or exc.resource_id, f"FHIRFormatError without a location: {exc}"
            file_level = ("held no patients", "cannot read file", "they are one person")
            if exc.file and ".ndjson" in exc.file and not any(s in str(exc) for s in file_level):
                assert exc.line is not None, f"an NDJSON error without its line: {exc}"
        return exc
    except allow as exc:
        STATS["errors"] += 1
        _check_message(exc)
        return exc
    except Exception as exc:  # noqa: BLE001 - the property under test
        STATS["tracebacks"] += 1
        raise AssertionError(f"{type(exc).__name__} escaped (a traceback for the user): {exc}") from exc
    STATS["ok"] += 1
    return out


# ---------------------------------------------------------------------------------------- values
KEYS = ["coding", "code", "system", "status", "extension", "url", "valueCode", "valueQuantity", "value", "unit",
        "subject", "resourceType", "birthDate", "deceasedDateTime", "deceasedBoolean", "onsetDateTime",
        "effectiveDateTime", "period", "start", "class", "component", "valueCodeableConcept", "valueInteger",
        "identifier", "link", "other", "entry", "resource", "gender", "maritalStatus", "verificationStatus",
        "onsetPeriod", "effectivePeriod", "authoredOn", "patient", "name", "text", "valueCoding"]
DATES = ["2020-13-45", "9999-12-31", "0000-00-00", "0001-01-01", "abcd", "2020", "2020-02", "2020-02-30",
         "2019-02-29T25:61:61Z", "-2020-01-01", "1e308", "", " ", "2020-01-01T00:00:00+99:99", "20200101",
         "2020-1-1", "２０２０-01-01", "2020-01-01\u0000"]
NUMBERS = [0, -1, 1e308, -1e308, 5e-324, 2**63 - 1, -(2**63), 2**64 - 1, 10**30, 1.5, -0.0, 123456789.123456789]
STRINGS = st.one_of(st.sampled_from(CANARIES), st.sampled_from(DATES), st.text(max_size=12),
                    st.sampled_from(["female", "male", "F", "final", "entered-in-error", "refuted", "IMP",
                                     "http://loinc.org", "8302-2", "cm", "Patient/p", "urn:uuid:p", "Patient"]))
SCALARS = st.one_of(st.none(), st.booleans(), st.sampled_from(NUMBERS), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False), STRINGS)
VALUES = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=3),
                                                    st.dictionaries(st.sampled_from(KEYS), c, max_size=3)),
                      max_leaves=6)
# values shown in messages by design (resource ids, references, identifier systems) get no canary
NO_CANARY = {"id", "fullUrl", "reference", "system"}


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _no_canary(value: Any) -> Any:
    if isinstance(value, str) and any(c in value for c in CANARIES):
        return "x"
    if isinstance(value, list):
        return [_no_canary(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_canary(v) for k, v in value.items()}
    return value


def _mutate_tree(data: st.DataObject, doc: Any, n: int) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(n):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths[1:] or paths), label="path")
        op = data.draw(st.sampled_from(["set", "set", "delete", "add", "date", "number"]), label="op")
        if not path:
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "delete" and isinstance(parent, dict):
            del parent[key]
            continue
        if op == "add":
            target = _get(doc, path)
            if isinstance(target, dict):
                k = data.draw(st.sampled_from(KEYS), label="key")
                v = data.draw(VALUES, label="value")
                target[k] = _no_canary(v) if k in NO_CANARY else v
                continue
        value = {"date": st.sampled_from(DATES), "number": st.sampled_from(NUMBERS)}.get(op, VALUES)
        v = data.draw(value, label="value")
        parent[key] = _no_canary(v) if key in NO_CANARY else v
    return doc


# ---------------------------------------------------------------------------------------- FHIR
def _people() -> list[dict[str, Any]]:
    s = "urn:uuid:p"
    canary_data = {
        "name": [{"family": CANARIES[0], "given": [CANARIES[1]]}],
        "address": [{"line": [CANARIES[1]], "city": CANARIES[0]}],
        "telecom": [{"system": "phone", "value": CANARIES[2]}],
        "identifier": [{"system": "urn:oid:1.2.3", "value": CANARIES[2]}],
        "text": {"status": "generated", "div": f"<div>{CANARIES[0]}</div>"},
    }
    p = patient("p", birth="1950-06-15", maritalStatus={"coding": [{"system": "x", "code": "S"}]},
                extension=[{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                            "valueCode": "F"},
                           {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
                               {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                                      "code": "2106-3", "display": CANARIES[0]}}]}],
                deceasedDateTime="2019-01-01", **canary_data)
    c = condition("c1", s, "38341003", "2010-01-01")
    c["code"]["coding"][0]["display"] = CANARIES[1]
    c["note"] = [{"text": CANARIES[0]}]
    o = observation("o1", s, "8302-2", 170, "cm", "2019-05-01")
    o["note"] = [{"text": CANARIES[1]}]
    q = [patient("q", identifier=[{"system": "urn:oid:1.2.3", "value": CANARIES[1]}]),
         condition("cq", "urn:uuid:q", "38341003"), encounter("eq", "urn:uuid:q", "2018-05-01", cls="IMP")]
    return [p, c, o, bp("o2", s, 130, "2019-05-01"), smoking("o3", s, "266919005", "2019-05-01"),
            encounter("e1", s, "2018-05-01", cls="IMP"), *q]


def _duplicate_key(data: st.DataObject, raw: bytes, canary: bool = True) -> bytes:
    """Insert a repeated key before an existing key of a random object."""
    starts = [i for i in range(len(raw) - 1) if raw[i:i + 2] == b'{"']
    if not starts:
        return raw
    i = data.draw(st.sampled_from(starts), label="object")
    end = raw.index(b'"', i + 2)
    key = raw[i + 1:end + 1]
    value = data.draw(st.sampled_from([b'"Observation"', b'1', b'null', b'{}', b'"' + CANARIES[0].encode() + b'"']
                                      if canary else [b'"Observation"', b'1', b'null', b'{}']), label="dup value")
    return raw[:i + 1] + key + b":" + value + b"," + raw[i + 1:]


def _bytes_mutation(data: st.DataObject, raw: bytes) -> tuple[bytes, str]:
    op = data.draw(st.sampled_from(["none", "none", "dupkey", "dupkey", "truncate", "latin1", "utf16", "bom",
                                    "invalid-utf8", "empty", "nul", "nan"]), label="bytes op")
    if op == "dupkey":
        return _duplicate_key(data, raw), op
    if op == "truncate" and raw:
        return raw[:data.draw(st.integers(0, len(raw) - 1), label="cut")], op
    if op == "latin1":
        return raw.decode("utf-8").replace("a", "\xe9").encode("latin-1", errors="replace"), op
    if op == "utf16":
        return raw.decode("utf-8").encode("utf-16"), op
    if op == "bom":
        return b"\xef\xbb\xbf" + raw, op
    if op == "invalid-utf8" and raw:
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        return raw[:i] + b"\xff\xfe" + raw[i:], op
    if op == "empty":
        return b"", op
    if op == "nul" and raw:
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        return raw[:i] + b"\x00" + raw[i:], op
    if op == "nan":
        return raw.replace(b"170", b"NaN").replace(b"130", b"Infinity"), op
    return raw, op


def _bundle(resources: list[Any]) -> dict[str, Any]:
    """A Bundle of (possibly mutated) resources: fullUrl from each id where there is one."""
    entries = []
    for r in resources:
        e: dict[str, Any] = {"resource": r}
        if isinstance(r, dict) and isinstance(r.get("id"), str):
            e["fullUrl"] = f"urn:uuid:{r['id']}"
        entries.append(e)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


@settings(max_examples=3 * N)
@given(data=st.data())
def test_fuzz_fhir(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("fhir")
    _write_fhir(data, folder)
    on_error = data.draw(st.sampled_from(["raise", "skip"]), label="on_error")
    merge = data.draw(st.sampled_from(["raise", "merge"]), label="duplicate_patients")
    out = _run("fhir", lambda: sh.flatten(folder, SCHEMA, on_error=on_error, duplicate_patients=merge), located=True)
    if isinstance(out, pd.DataFrame):
        assert len(out) >= 1 and out.index.is_unique
        rep = sh.report_of(out)
        assert rep is not None
        _check_message(Exception(rep.summary() + json.dumps(rep.to_dict(), default=str)))
    if data.draw(st.booleans(), label="grouping"):
        _run("fhir", lambda: [len(r) for r in sh.fhir.read(folder, on_error=on_error)],
             allow=(sh.InvalidParameterError,), located=True)


def _write_fhir(data: st.DataObject, folder: Path) -> None:
    """A mutated FHIR input in ``folder``."""
    resources = _mutate_tree(data, _people(), data.draw(st.integers(0, 4), label="n mutations"))
    layout = data.draw(st.sampled_from(["bundle", "ndjson", "ndjson-by-type", "bundle-in-ndjson", "ndjson-as-json",
                                        "resource-json", "nested-bundle"]), label="layout")
    files: dict[str, bytes] = {}
    if layout == "bundle":
        doc = _bundle(resources)
        doc = _mutate_tree(data, doc, data.draw(st.integers(0, 2), label="bundle mutations"))
        files["b.json"] = _dumps(doc)
    elif layout == "ndjson":
        files["all.ndjson"] = b"\n".join(_dumps(r) for r in resources) + b"\n"
    elif layout == "ndjson-by-type":
        by: dict[str, list[bytes]] = {}
        for r in resources:
            t = r.get("resourceType") if isinstance(r, dict) and isinstance(r.get("resourceType"), str) else "X"
            by.setdefault(t if t.isalpha() else "X", []).append(_dumps(r))
        for t, lines in by.items():
            files[f"{t}.ndjson"] = b"\n".join(lines) + b"\n"
    elif layout == "bundle-in-ndjson":
        files["Patient.ndjson"] = _dumps(_bundle(resources)) + b"\n"
    elif layout == "ndjson-as-json":
        files["export.json"] = b"\n".join(_dumps(r) for r in resources)
    elif layout == "resource-json":
        files["p.json"] = _dumps(resources[0] if resources else {})
    else:
        outer = _bundle(resources[6:])
        outer["entry"].append({"resource": _bundle(resources[:6])})
        files["b.json"] = _dumps(outer)
    name = data.draw(st.sampled_from(sorted(files)), label="file to spoil")
    files[name], _op = _bytes_mutation(data, files[name])
    if data.draw(st.booleans(), label="gzip"):
        gz = gzip.compress(files.pop(name))
        if data.draw(st.booleans(), label="truncate gz"):
            gz = gz[: max(1, len(gz) // 2)]
        files[name + ".gz"] = gz
    for n, content in files.items():
        (folder / n).write_bytes(content)


# ---------------------------------------------------------------------------------------- tables
@pytest.fixture(scope="module")
def flchain() -> pd.DataFrame:
    t = sh.datasets.load_flchain().iloc[:40].copy()
    t["note"] = CANARIES[0]
    return t


CELLS = st.one_of(st.sampled_from(CANARIES), st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e309", "-0", "1,5",
                                                              "0x10", "True", "None", "null", " 61 ", "٣", "1e-400"]),
                  st.text(max_size=10), st.integers().map(str), st.floats().map(str))


def _spoil_table(data: st.DataObject, table: pd.DataFrame) -> pd.DataFrame:
    t = table.astype(object).copy()
    for _ in range(data.draw(st.integers(0, 4), label="n cell edits")):
        op = data.draw(st.sampled_from(["cell", "cell", "drop col", "dup col", "rename", "drop rows", "dup id"]),
                       label="table op")
        if op == "cell" and len(t):
            r = data.draw(st.integers(0, len(t) - 1), label="row")
            c = data.draw(st.sampled_from(list(t.columns)), label="col")
            t.iat[r, list(t.columns).index(c)] = data.draw(CELLS, label="cell")
        elif op == "drop col" and len(t.columns) > 1:
            t = t.drop(columns=[data.draw(st.sampled_from(list(t.columns)), label="col")])
        elif op == "dup col":
            c = data.draw(st.sampled_from(list(t.columns)), label="col")
            t = pd.concat([t, t[[c]]], axis=1)
        elif op == "rename":
            c = data.draw(st.sampled_from(list(t.columns)), label="col")
            t = t.rename(columns={c: data.draw(st.sampled_from([CANARIES[1], "", "id", "age", "sex"]), label="new")})
        elif op == "drop rows":
            t = t.iloc[: data.draw(st.integers(0, len(t)), label="rows")]
        elif op == "dup id" and len(t) > 1 and "id" in t.columns:
            t.iloc[1, list(t.columns).index("id")] = t.iloc[0, list(t.columns).index("id")]
    return t


def _write_table_file(data: st.DataObject, t: pd.DataFrame, folder: Path) -> Path:
    fmt = data.draw(st.sampled_from(["csv", "csv", "parquet", "csv-as-parquet", "csv.gz", "bytes-csv"]), label="fmt")
    if fmt == "parquet":
        path = folder / "t.parquet"
        try:
            t.astype(str).to_parquet(path)
        except Exception:  # noqa: BLE001 - a table pyarrow cannot write (duplicate column names): write CSV
            path = folder / "t.csv"
            t.to_csv(path, index=False)
        raw = path.read_bytes()
    else:
        raw = t.to_csv(index=False).encode("utf-8")
        path = folder / {"csv": "t.csv", "csv-as-parquet": "t.parquet", "csv.gz": "t.csv.gz", "bytes-csv": "t.csv"}[fmt]
    op = data.draw(st.sampled_from(["none", "none", "truncate", "latin1", "ragged", "empty", "header", "nul",
                                    "quote", "utf16"]), label="bytes op")
    if op == "truncate" and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")]
    elif op == "latin1":
        raw = raw.replace(b"a", b"\xe9")
    elif op == "ragged":
        lines = raw.split(b"\n")
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        lines[i] += b"," + CANARIES[0].encode() + b",x"
        raw = b"\n".join(lines)
    elif op == "empty":
        raw = b""
    elif op == "header":
        raw = raw.split(b"\n", 1)[0] + b"\n"
    elif op == "nul" and raw:
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw = raw[:i] + b"\x00" + raw[i:]
    elif op == "quote" and raw:
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw = raw[:i] + b'"' + raw[i:]
    elif op == "utf16":
        raw = raw.decode("utf-8", errors="replace").encode("utf-16")
    if fmt == "csv.gz":
        raw = gzip.compress(raw)
        if data.draw(st.booleans(), label="truncate gz"):
            raw = raw[: max(1, len(raw) // 2)]
    path.write_bytes(raw)
    return path


@settings(max_examples=2 * N)
@given(data=st.data())
def test_fuzz_tables(tmp_path_factory: pytest.TempPathFactory, flchain: pd.DataFrame, data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("table")
    path = _write_table_file(data, _spoil_table(data, flchain), folder)
    schema = sh.load_schema("flchain")
    coerce = data.draw(st.sampled_from(["raise", "coerce"]), label="on_violation")
    out = _run("table", lambda: sh.read_table(path, schema, on_violation=coerce))
    if isinstance(out, pd.DataFrame):
        _check_message(Exception(sh.report_of(out).summary() if sh.report_of(out) else ""))


# ---------------------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:200],
                                                       schema=sh.load_schema("flchain"))
    return gen.save(tmp_path_factory.mktemp("model") / "model")


def _spoil_model(data: st.DataObject, src: Path, dst: Path) -> bool:
    """Copy a model folder and spoil it; whether a file was deleted."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    op = data.draw(st.sampled_from(["json", "json", "json", "truncate json", "truncate npz", "arrays", "delete",
                                    "npz garbage", "json dupkey"]), label="model op")
    if op == "json":
        # a model folder holds no patient data (the public schema, DP statistics, the ledger): its errors may
        # quote a value, so no canary is planted in it
        doc = json.loads((dst / "model.json").read_text(encoding="utf-8"))
        doc = _no_canary(_mutate_tree(data, doc, data.draw(st.integers(1, 3), label="n")))
        (dst / "model.json").write_text(json.dumps(doc), encoding="utf-8")
    elif op == "json dupkey":
        (dst / "model.json").write_bytes(_duplicate_key(data, (dst / "model.json").read_bytes(), canary=False))
    elif op == "truncate json":
        raw = (dst / "model.json").read_bytes()
        (dst / "model.json").write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
    elif op == "truncate npz":
        raw = (dst / "arrays.npz").read_bytes()
        (dst / "arrays.npz").write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")])
    elif op == "npz garbage":
        (dst / "arrays.npz").write_bytes(data.draw(st.binary(max_size=64), label="bytes"))
    elif op == "arrays":
        with np.load(dst / "arrays.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        if arrays:
            k = data.draw(st.sampled_from(sorted(arrays)), label="array")
            how = data.draw(st.sampled_from(["object", "drop", "shape", "dtype", "nan", "negative"]), label="how")
            if how == "object":
                arrays[k] = np.array([{"a": 1}], dtype=object)
            elif how == "drop":
                del arrays[k]
            elif how == "shape":
                arrays[k] = arrays[k].ravel()[:1]
            elif how == "dtype":
                arrays[k] = arrays[k].astype(str)
            elif how == "nan":
                arrays[k] = np.full(arrays[k].shape, np.nan)
            else:
                arrays[k] = -np.abs(arrays[k].astype(float)) - 1
        np.savez(dst / "arrays.npz", **arrays)
    else:
        (dst / data.draw(st.sampled_from(["model.json", "arrays.npz"]), label="file")).unlink()
        return True
    return False


@settings(max_examples=max(10, N // 2))
@given(data=st.data())
def test_fuzz_model_folders(tmp_path_factory: pytest.TempPathFactory, model_folder: Path, data: st.DataObject) -> None:
    dst = tmp_path_factory.mktemp("spoilt") / "m"
    deleted = _spoil_model(data, model_folder, dst)
    allow: tuple[type[BaseException], ...] = (FileNotFoundError,) if deleted else ()

    def load_and_sample() -> pd.DataFrame:
        return sh.load_model(dst).sample(5, random_state=1)

    _run("model", load_and_sample, allow=allow)


# ---------------------------------------------------------------------------------------- schema and ledger files
@pytest.fixture(scope="module")
def ledger_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("ledger") / "ledger.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sh.MST(epsilon=0.5, random_state=0).fit(sh.datasets.load_flchain().iloc[:100], schema=sh.load_schema("flchain"),
                                                ledger=path)
    return json.loads(path.read_text(encoding="utf-8"))


@settings(max_examples=max(10, N // 2))
@given(data=st.data())
def test_fuzz_schema_and_ledger_files(tmp_path_factory: pytest.TempPathFactory, ledger_doc: dict[str, Any],
                                      data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("files")
    # neither file holds patient data (a public schema; budgets and fit records): no canary is planted
    if data.draw(st.booleans(), label="schema or ledger"):
        doc = _no_canary(_mutate_tree(data, sh.load_schema(data.draw(st.sampled_from(["flchain", "core-patient"]),
                                                                    label="schema")).to_dict(),
                                      data.draw(st.integers(0, 4), label="n")))
        raw, _op = _bytes_mutation(data, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8"))
        (folder / "s.yaml").write_bytes(raw.replace(CANARIES[0].encode(), b"x"))
        _run("file", lambda: sh.load_schema(folder / "s.yaml"))
    else:
        doc = _no_canary(_mutate_tree(data, ledger_doc, data.draw(st.integers(0, 4), label="n")))
        raw, _op = _bytes_mutation(data, _dumps(doc))
        (folder / "ledger.json").write_bytes(raw.replace(CANARIES[0].encode(), b"x"))

        def use() -> Any:
            led = sh.PrivacyLedger.load(folder / "ledger.json")
            return led.total(), led.remaining_rho(), led.to_dict()

        _run("file", use)


# ---------------------------------------------------------------------------------------- CLI
@settings(max_examples=max(10, N // 2))
@given(data=st.data())
def test_fuzz_cli_never_leaves_partial_output(tmp_path_factory: pytest.TempPathFactory, flchain: pd.DataFrame,
                                              model_folder: Path, data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("cli")
    what = data.draw(st.sampled_from(["table", "model", "fhir"]), label="input")
    if what == "fhir":
        schema_file = folder / "schema.yaml"
        schema_file.write_text(yaml.safe_dump(SCHEMA.to_dict(), sort_keys=False), encoding="utf-8")
        (folder / "in").mkdir()
        _write_fhir(data, folder / "in")
        outs = [folder / data.draw(st.sampled_from(["flat.parquet", "flat.csv"]), label="output")]
        args = ["flatten", "-s", str(schema_file), "-i", str(folder / "in"), "-o", str(outs[0]), "-q",
                "--on-error", data.draw(st.sampled_from(["raise", "skip"]), label="on_error")]
    elif what == "table":
        path = _write_table_file(data, _spoil_table(data, flchain), folder)
        outs = [folder / "train.csv", folder / "holdout.parquet"]
        args = ["split", "-s", "flchain", "-d", str(path), "--train-out", str(outs[0]), "--holdout-out", str(outs[1]),
                "-q", "--seed", "0"]
    else:
        dst = folder / "m"
        _spoil_model(data, model_folder, dst)
        outs = [folder / "synthetic.csv"]
        args = ["sample", str(dst), "-n", "10", "-o", str(outs[0]), "-q"]

    def invoke() -> Any:
        result = CliRunner().invoke(main, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if result.exit_code != 0:
            assert result.output.startswith("error: ") and "Traceback" not in result.output, result.output
            for c in CANARIES:
                if c in result.output:
                    STATS["leaks"] += 1
                    raise AssertionError(f"canary leaked on the command line: {result.output}")
            if any(o.exists() for o in outs):
                STATS["partial"] += 1
                raise AssertionError(f"a failed command left output: {[o.name for o in outs if o.exists()]}")
        return result

    _run("cli", invoke)


def test_fuzz_summary_line() -> None:
    """The counters the terminal summary prints (the cases above have run, in file order)."""
    if STATS["cases"]:
        assert STATS["tracebacks"] == 0 and STATS["leaks"] == 0 and STATS["partial"] == 0, summary()
