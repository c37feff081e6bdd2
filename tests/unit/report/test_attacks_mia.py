"""Membership-inference attacks on flchain: a copying "generator" must be caught, an independent one not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import synthhealth as sh
from synthhealth.exceptions import InvalidParameterError
from synthhealth.report.attacks.density import KernelDensity, density_attack, density_ratio_scores
from synthhealth.report.attacks.distance import dcr_attack, nearest_distances
from synthhealth.report.attacks.shadow import isolated_records, shadow_attack
from synthhealth.report.data import ReportData
from synthhealth.transform.encode import Encoder


@pytest.fixture(scope="module")
def split() -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    schema = sh.load_schema("flchain")
    t = sh.read_table(sh.datasets.load_flchain(), schema).sample(frac=1.0, random_state=0).reset_index(drop=True)
    half = len(t) // 2
    return schema, t.iloc[:half].reset_index(drop=True), t.iloc[half:].reset_index(drop=True)


def independent(holdout: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Each column sampled independently from the holdout: no link to any training record."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: holdout[c].to_numpy()[rng.integers(0, len(holdout), n)] for c in holdout.columns})


@pytest.fixture(scope="module")
def copy_data(split) -> ReportData:
    schema, train, holdout = split
    return ReportData.from_tables(schema, train, holdout, train)


@pytest.fixture(scope="module")
def indep_data(split) -> ReportData:
    schema, train, holdout = split
    return ReportData.from_tables(schema, train, holdout, independent(holdout, len(train), 1))


def by_key(metrics) -> dict:
    return {m.key: m for m in metrics}


# ---------------------------------------------------------------------------- nearest neighbours
@pytest.mark.parametrize("expand", [2_000_000, 7])  # 7: exercise the batched expansion
def test_nearest_distances_match_brute_force(expand: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import synthhealth.report.attacks.distance as distance

    monkeypatch.setattr(distance, "_EXPAND", expand)
    rng = np.random.default_rng(0)
    pts, q = rng.integers(0, 3, (300, 6)) * 0.5, rng.random((40, 6))
    brute = np.sort(np.abs(q[:, None, :] - pts[None, :, :]).sum(-1), axis=1)[:, :3]
    assert np.allclose(nearest_distances(q, pts, k=3), brute)
    for _ in range(10):  # mixed: binary columns (0 or 0.5 / 0 or 1) and continuous ones, like the embedding
        n, p = int(rng.integers(1, 200)), int(rng.integers(1, 7))
        k = int(rng.integers(1, min(n, 4) + 1))
        scale = rng.choice([0.5, 1.0], p)
        cont = rng.random(p) < 0.4

        def draw(rows: int, scale: np.ndarray = scale, cont: np.ndarray = cont) -> np.ndarray:
            return np.where(cont, rng.random((rows, len(scale))), rng.integers(0, 2, (rows, len(scale))) * scale)

        pts, q = draw(n), draw(15)
        brute = np.sort(np.abs(q[:, None, :] - pts[None, :, :]).sum(-1), axis=1)[:, :k]
        assert np.allclose(nearest_distances(q, pts, k=k), brute)
    with pytest.raises(InvalidParameterError, match="same number of columns"):
        nearest_distances(q, pts[:, :3])


# ---------------------------------------------------------------------------- DCR
def test_dcr_copy_generator_is_caught(copy_data: ReportData) -> None:
    metrics, figures = dcr_attack(copy_data, max_targets=1000, random_state=0, n_boot=50)
    m = by_key(metrics)
    assert m["attacks.dcr.auc"].value >= 0.9
    assert m["attacks.dcr.exact_match_train"].value >= 0.99
    assert m["attacks.dcr.exact_match_holdout"].value < 0.05
    assert m["attacks.dcr.share_closer_to_train"].value >= 0.9
    assert m["attacks.dcr.tpr_at_fpr_1pct"].value >= 0.9
    assert m["attacks.dcr.epsilon_lower_bound"].value > 3
    assert m["attacks.dcr.auc"].details["median_dcr_train"] == 0.0
    assert m["attacks.dcr.auc"].details["median_dcr_holdout"] > 0
    assert all(x.real_data for x in metrics) and all(f.real_data for f in figures)
    roc, hist = figures
    assert roc.key == "attacks.dcr.roc" and hist.key == "attacks.dcr.hist" and hist.kind == "hist"
    assert len(hist.data["edges"]) == len(next(iter(hist.data["series"].values()))) + 1
    assert [sum(v) for v in hist.data["series"].values()] == [1000, 1000]
    # a copy puts every member at distance 0: the first bin holds all training targets
    assert list(hist.data["series"].values())[0][0] == 1000


def test_dcr_independent_generator_is_not(indep_data: ReportData) -> None:
    metrics, _ = dcr_attack(indep_data, max_targets=1000, random_state=0, n_boot=100)
    m = by_key(metrics)
    auc = m["attacks.dcr.auc"]
    assert auc.ci[0] <= 0.5 <= auc.ci[1] and abs(auc.value - 0.5) < 0.05
    assert abs(m["attacks.dcr.share_closer_to_train"].value - 0.5) < 0.05
    assert m["attacks.dcr.exact_match_train"].value < 0.02
    assert m["attacks.dcr.epsilon_lower_bound"].value < 0.5


def test_dcr_is_seeded_and_uses_equal_target_counts(split) -> None:
    schema, train, holdout = split
    small = ReportData.from_tables(schema, train.iloc[:150], holdout.iloc[:90], independent(holdout, 300, 2))
    a, _ = dcr_attack(small, random_state=3, n_boot=20)
    b, _ = dcr_attack(small, random_state=3, n_boot=20)
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    m = by_key(a)
    assert m["attacks.dcr.auc"].details["n_members"] == m["attacks.dcr.auc"].details["n_nonmembers"] == 90
    with pytest.raises(InvalidParameterError, match="'max_targets'"):
        dcr_attack(small, max_targets=0)
    with pytest.raises(InvalidParameterError, match="'data'"):
        dcr_attack(train)


def test_dcr_ties_count_one_half(split) -> None:
    # train, holdout and synthetic are the same records: every distance is 0 on both sides
    schema, train, _ = split
    same = train.iloc[:200]
    metrics, _ = dcr_attack(ReportData.from_tables(schema, same, same, same), random_state=0, n_boot=20)
    m = by_key(metrics)
    assert m["attacks.dcr.share_closer_to_train"].value == 0.5
    assert m["attacks.dcr.auc"].value == 0.5
    assert m["attacks.dcr.tpr_at_fpr_1pct"].value == 0.0  # flagging the tied group costs FPR 1
    assert m["attacks.dcr.epsilon_lower_bound"].value == 0.0
    assert m["attacks.dcr.exact_match_train"].value == m["attacks.dcr.exact_match_holdout"].value == 1.0


# ---------------------------------------------------------------------------- density (DOMIAS-style)
def test_kernel_density_matches_direct_product_kernel(split) -> None:
    schema, train, _ = split
    pts, qs = train.iloc[:40], train.iloc[100:105]
    h, lam = 0.7, 0.25
    kde = KernelDensity(schema, bandwidth=h, smoothing=lam).fit(pts)
    enc = Encoder(schema)
    cp, cq = enc.encode(pts), enc.encode(qs)
    expected = []
    for i in range(len(qs)):
        logk = np.zeros(len(pts))
        for j, a in enumerate(schema.attributes):
            k = enc.shape[j]
            if a.type in ("categorical", "boolean"):
                logk += np.where(cp[:, j] == cq[i, j], np.log(1 - lam), np.log(lam / (k - 1)))
            else:
                edges = np.asarray(a.bins, dtype=float)

                def coord(v: np.ndarray, edges: np.ndarray = edges) -> np.ndarray:
                    b = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
                    return b + np.clip((v - edges[b]) / (edges[b + 1] - edges[b]), 0, 1)

                vp = pts[a.name].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
                vq = float(qs[a.name].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[i])
                both = ~np.isnan(vp) & (not np.isnan(vq))
                if a.missing:  # missing vs present: two-state Aitchison–Aitken factor
                    logk += np.where(np.isnan(vp) == np.isnan(vq), np.log(1 - lam), np.log(lam))
                up = coord(np.nan_to_num(vp))
                uq = coord(np.array([np.nan_to_num(vq)]))
                logk += np.where(both, -((up - uq) ** 2) / (2 * h * h), 0.0)
        expected.append(np.log(np.exp(logk).mean()))
    got = kde.log_density(qs, precise=True, chunk=2, point_chunk=7)  # exercise the streaming log-sum-exp
    assert np.allclose(got, expected, rtol=0, atol=1e-9)
    assert np.allclose(kde.log_density(qs), expected, rtol=0, atol=1e-3)  # the float32 default


def test_density_ratio_divides_by_the_reference_density(split) -> None:
    schema, train, holdout = split
    targets, syn, ref = train.iloc[:30], holdout.iloc[:500], holdout.iloc[500:900]
    kde = KernelDensity(schema)
    expected = kde.fit(syn).log_density(targets) - kde.fit(ref).log_density(targets)
    assert np.allclose(density_ratio_scores(schema, targets, syn, ref), expected)
    # a target that the reference covers densely is *less* suspicious: adding 20 copies of it to the reference
    # lowers its score; the others' rise at most by log(420/400) (the reference grew, their density did not)
    ref2 = pd.concat([ref] + [targets.iloc[[0]]] * 20, ignore_index=True)
    s1, s2 = density_ratio_scores(schema, targets, syn, ref), density_ratio_scores(schema, targets, syn, ref2)
    assert s2[0] < s1[0] - 2 and np.all(s2[1:] <= s1[1:] + np.log(420 / 400) + 1e-6)


def test_density_copy_generator_is_caught(copy_data: ReportData) -> None:
    metrics, figures = density_attack(copy_data, max_targets=1000, random_state=0, n_boot=50)
    auc = by_key(metrics)["attacks.density.auc"]
    assert auc.value > 0.75 and auc.ci[0] > 0.7
    assert [f.key for f in figures] == ["attacks.density.roc"]
    assert auc.details["n_members"] == auc.details["n_nonmembers"] == 1000
    assert auc.details["n_reference"] == len(copy_data.holdout) - len(copy_data.holdout) // 2


def test_density_independent_generator_is_not(indep_data: ReportData) -> None:
    metrics, _ = density_attack(indep_data, max_targets=1000, random_state=0, n_boot=100)
    auc = by_key(metrics)["attacks.density.auc"]
    assert auc.ci[0] <= 0.5 <= auc.ci[1] and abs(auc.value - 0.5) < 0.05


# ---------------------------------------------------------------------------- shadow models (TAPAS-style)
def test_isolated_records_hand_example() -> None:
    e = np.array([[0.0, 0.0], [0.0, 0.5], [3.0, 3.0], [0.5, 0.0], [1.0, 1.0]])
    idx, dist = isolated_records(e, 2, random_state=0)
    assert idx.tolist() == [2, 4] and dist.tolist() == [4.0, 1.5]


@pytest.fixture(scope="module")
def small_split(split) -> tuple[sh.PatientSchema, pd.DataFrame, pd.DataFrame]:
    schema, train, holdout = split
    return schema, train.iloc[:800].reset_index(drop=True), holdout.iloc[:1600].reset_index(drop=True)


def test_shadow_leaky_generator_is_caught(small_split) -> None:
    schema, train, holdout = small_split
    calls: list[int] = []

    def leaky(ref: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        calls.append(len(ref))
        return ref.sample(frac=1.0, random_state=rng).reset_index(drop=True)  # publishes its input

    data = ReportData.from_tables(schema, train, holdout, train)
    metrics, figures = shadow_attack(data, leaky, n_targets=3, n_shadows=20, random_state=0, n_boot=100)
    m = by_key(metrics)
    assert len(calls) == 60 and set(calls) == {800}  # min(|train|, |holdout| − 1)
    assert m["attacks.shadow.auc"].value >= 0.9 and m["attacks.shadow.auc"].ci[0] >= 0.8
    assert m["attacks.shadow.release_score"].value > 0.6  # the targets are in the (copied) release
    assert m["attacks.shadow.auc"].details["n_test_runs"] == 18
    assert figures[0].key == "attacks.shadow.roc"
    assert all(x.real_data for x in metrics)


def test_shadow_generator_ignoring_its_input_is_not(small_split) -> None:
    schema, train, holdout = small_split
    pool = holdout.iloc[800:].reset_index(drop=True)

    def ignores(ref: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return pool.iloc[rng.integers(0, len(pool), len(ref))].reset_index(drop=True)

    data = ReportData.from_tables(schema, train, holdout, independent(pool, 800, 3))
    metrics, _ = shadow_attack(data, ignores, n_targets=3, n_shadows=30, random_state=1, n_boot=100)
    auc = by_key(metrics)["attacks.shadow.auc"]
    assert auc.ci[0] <= 0.5 <= auc.ci[1] and abs(auc.value - 0.5) < 0.25
    assert not math.isnan(by_key(metrics)["attacks.shadow.release_score"].value)


def test_shadow_rejects_bad_parameters(copy_data: ReportData) -> None:
    with pytest.raises(InvalidParameterError, match="'fit_sample'"):
        shadow_attack(copy_data, "not callable")
    with pytest.raises(InvalidParameterError, match="'n_shadows'"):
        shadow_attack(copy_data, lambda r, g: r, n_shadows=3)
