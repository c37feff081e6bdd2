"""The user notebooks in ``notebooks/``: each one runs top to bottom, and each is committed without outputs.

Every notebook is executed with nbclient in a fresh IPython kernel of *this* Python
(``sys.executable``, through a kernel spec written to a temporary folder, so that a ``python3``
kernel installed elsewhere on the machine cannot be picked up instead), with the working directory
and ``TMPDIR`` in pytest's temporary folder, so nothing is written into the repository. A cell that
raises fails the test (``CellExecutionError`` names the cell and shows its traceback).

Needs the ``[dev]`` extra's ``nbclient``, ``nbformat`` and ``ipykernel``: without them these tests
fail (they are not skipped, so that a broken notebook cannot hide behind a missing package).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = ["01_quickstart", "02_tabular_flchain", "03_for_privacy_officers", "04_custom_schema"]
KERNEL_NAME = "synthhealth-notebook-tests"
CELL_TIMEOUT_S = 180  # one cell; each notebook takes well under a minute in all
NOTEBOOK_BUDGET_S = 120  # a notebook slower than this has outgrown the default suite (measured ~15-40 s)


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.fail(f"the notebook tests need {module!r} ({exc}): pip install -e '.[dev]'", pytrace=False)


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kernel spec that starts an IPython kernel with this interpreter."""
    _require("ipykernel")
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "synthhealth tests (this Python)",
        "language": "python",
    }), encoding="utf-8")
    return [str(root)]


def test_the_four_notebooks_are_there() -> None:
    assert [p.stem for p in NOTEBOOKS] == EXPECTED
    readme = (NOTEBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert f"{name}.ipynb" in readme, f"notebooks/README.md does not describe {name}.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nbformat = _require("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or an execution count; strip them "
                       "(e.g. jupyter nbconvert --clear-output --inplace, or nbstripout)")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert not any("execution" in cell.get("metadata", {}) for cell in nb.cells), f"{path.name}: timing metadata"


# Warnings raised inside the kernel stay there. In this process, jupyter_client, jupyter_core and pyzmq
# have raised deprecation warnings about their own internals in some releases (none with jupyter_client
# 8.10 and pyzmq 27.3 on Linux); they are not ours, so only those are let through.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_client.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:jupyter_core.*")
@pytest.mark.filterwarnings("ignore::DeprecationWarning:zmq.*")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_dirs: list[str], tmp_path: Path) -> None:
    nbformat = _require("nbformat")
    _require("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    km = AsyncKernelManager(kernel_name=KERNEL_NAME,
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                            resources={"metadata": {"path": str(work)}})
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    t0 = time.perf_counter()
    # raises CellExecutionError on the first failing cell; cleanup_kc: shut the kernel down and close its
    # sockets even though the client does not own the kernel manager
    client.execute(env=env, cleanup_kc=True)
    elapsed = time.perf_counter() - t0

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "not every code cell ran"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s: make it faster or mark it slow"
    assert not list(work.iterdir()), f"{path.name} wrote into its working directory: {list(work.iterdir())}"
