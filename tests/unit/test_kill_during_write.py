"""kill -9 at any step of a model save or a FHIR write leaves the old output, the new one or none (issue 16.6).

A forked child replaces an earlier output and is killed with SIGKILL just before its k-th file-system
change (a file opened for writing, a rename, a delete: inside ``shutil.rmtree`` too), for every k
until it finishes. After each kill the folder is absent, or it is complete and is the old or the new
output, never part of one.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import synthhealth as sh

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork and SIGKILL")

MAX_STEPS = 400


def _kill_at(k: int) -> None:
    """Patch the file-system changes of this (child) process: SIGKILL before the k-th one."""
    count = [0]

    def step() -> None:
        if count[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        count[0] += 1

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            step()
            return fn(*args, **kwargs)
        return inner

    real_open = builtins.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+"):
            step()
        return real_open(file, mode, *args, **kwargs)

    builtins.open = guarded_open  # type: ignore[assignment]
    for name in ("replace", "rename", "unlink", "remove", "rmdir", "mkdir"):
        setattr(os, name, wrap(getattr(os, name)))
    Path.write_text = wrap(Path.write_text)  # type: ignore[method-assign]
    Path.write_bytes = wrap(Path.write_bytes)  # type: ignore[method-assign]


def _run_killed(k: int, job: Callable[[], None]) -> bool:
    """Run ``job`` in a forked child killed before its k-th file-system change; whether it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 1
        try:
            _kill_at(k)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                job()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the job failed in the child"
    return False


def _sweep(job: Callable[[], None], check: Callable[[int], None]) -> int:
    for k in range(MAX_STEPS):
        killed = _run_killed(k, job)
        check(k)
        if not killed:
            return k
    raise AssertionError(f"the job did not finish in {MAX_STEPS} file-system steps")


# ------------------------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def two_models() -> tuple[sh.MST, sh.MST]:
    schema = sh.load_schema("flchain")
    data = sh.datasets.load_flchain().iloc[:300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (sh.MST(epsilon=1.0, random_state=1).fit(data, schema=schema),
                sh.MST(epsilon=1.0, random_state=2).fit(data, schema=schema))


def test_kill_during_model_save(tmp_path: Path, two_models: tuple[sh.MST, sh.MST]) -> None:
    old, new = two_models
    out = tmp_path / "model"
    seen: set[str] = set()

    def reset() -> None:
        for p in tmp_path.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        old.save(out)

    def check(k: int) -> None:
        if out.exists():
            loaded = sh.load_model(out)  # complete: it loads
            assert loaded.fit_id_ in (old.fit_id_, new.fit_id_), k
            assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "model.json"], k
            seen.add("old" if loaded.fit_id_ == old.fit_id_ else "new")
        else:
            seen.add("none")
            # the old model is kept beside it (hidden), whole
            kept = [p for p in tmp_path.glob(".model.old-*/model")]
            assert len(kept) == 1 and sh.load_model(kept[0]).fit_id_ == old.fit_id_, k
        reset()

    reset()
    steps = _sweep(lambda: new.save(out, overwrite=True), check)
    assert steps >= 3 and seen >= {"old", "new"}, (steps, seen)


def test_kill_during_first_model_save(tmp_path: Path, two_models: tuple[sh.MST, sh.MST]) -> None:
    _, new = two_models
    out = tmp_path / "model"

    def check(k: int) -> None:
        if out.exists():
            assert sh.load_model(out).fit_id_ == new.fit_id_, k
        for p in tmp_path.iterdir():
            shutil.rmtree(p)

    _sweep(lambda: new.save(out), check)


# ------------------------------------------------------------------------------------------- FHIR
def _manifest_files(folder: Path) -> list[str]:
    doc = json.loads((folder / sh.fhir.MANIFEST_NAME).read_text(encoding="utf-8"))
    return sorted(Path(o["url"]).name for o in doc["output"])


def test_kill_during_fhir_write(tmp_path: Path) -> None:
    schema = sh.load_schema("core-patient")
    out = tmp_path / "fhir"
    row = {a.name: (False if a.type == "boolean" else 0 if a.type == "count" else None) for a in schema}
    old_table, new_table = pd.DataFrame([row] * 30), pd.DataFrame([row] * 60)
    seen: set[str] = set()

    def write(table: pd.DataFrame, overwrite: bool = False) -> sh.fhir.WriteReport:
        return sh.fhir.write(table, schema, out, format="ndjson", random_state=0, overwrite=overwrite)

    def reset() -> None:
        for p in tmp_path.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write(old_table)

    def check(k: int) -> None:
        if out.exists():
            files = sorted(p.name for p in out.iterdir() if p.name != sh.fhir.MANIFEST_NAME)
            assert files == _manifest_files(out), k  # complete: every file of its manifest, nothing else
            n = sum(1 for line in (out / "Patient.ndjson").read_bytes().splitlines() if line.strip())
            assert n in (30, 60), k
            seen.add("old" if n == 30 else "new")
        else:
            seen.add("none")
            kept = list(tmp_path.glob(".fhir.old-*"))
            assert len(kept) == 1 and (kept[0] / sh.fhir.MANIFEST_NAME).is_file(), k
        reset()

    reset()
    steps = _sweep(lambda: write(new_table, overwrite=True), check)
    assert steps >= 3 and seen >= {"old", "new"}, (steps, seen)
