"""The DP-VAE chooses its torch thread count deliberately and restores the caller's (issue 16.5)."""

from __future__ import annotations

import pytest

import synthhealth as sh
from synthhealth.exceptions import InvalidParameterError

torch = pytest.importorskip("torch")

SCHEMA = sh.load_schema({"synthhealth_schema": 1, "name": "t", "version": "1", "reference_date": "2020-01-01",
                         "attributes": [{"name": "a", "type": "categorical", "categories": ["x", "y"]},
                                        {"name": "b", "type": "boolean", "missing": False}]})


def _table():
    import pandas as pd

    df = pd.DataFrame({"patient_id": [f"p{i}" for i in range(40)], "a": ["x", "y"] * 20, "b": [True, False] * 20})
    return sh.read_table(df, SCHEMA)


def _fit(monkeypatch: pytest.MonkeyPatch, env: str | None, **kw: object) -> tuple[int, int]:
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    seen: list[int] = []
    from synthhealth.generators.dpvae import fastdp

    orig = fastdp.train_fast

    def spy(*a: object, **k: object) -> int:
        seen.append(torch.get_num_threads())
        return orig(*a, **k)

    monkeypatch.setattr(fastdp, "train_fast", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        gen = sh.DPVAE(epochs=1, hidden_sizes=(4,), latent_size=2, finetune_steps=0, random_state=0, **kw)
        gen.fit(_table(), schema=SCHEMA)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [gen.threads_]
    return gen.threads_, after


def test_explicit_n_threads_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fit(monkeypatch, "4", n_threads=2) == (2, 3)  # and the caller's 3 threads are restored


def test_omp_num_threads_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fit(monkeypatch, "1")[0] == 1


def test_default_is_half_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    assert _fit(monkeypatch, None)[0] == max(1, min(8, cores // 2))


def test_bad_n_threads_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="n_threads"):
        sh.DPVAE(n_threads=0).fit(_table(), schema=SCHEMA)
