"""Singling-out, linkability and inference risks of a synthetic table (anonymeter-style).

The three attacks of Giomi et al., "A Unified Framework for Quantifying Privacy Risk in Synthetic
Data" (PETS 2023; the method behind the ``anonymeter`` package), re-implemented on the report's
common views (:class:`synthhealth.report.data.ReportData`). They measure the three criteria of the
Article 29 Working Party's Opinion 05/2014 on anonymisation techniques:

- **singling out**: can an attacker write a predicate (``age >= 95 and sex == F and kappa <= 0.5``)
  that isolates exactly one real patient?
- **linkability**: can an attacker holding two partial records of the same patient (two data sets
  with different attributes) link them through the synthetic data?
- **inference**: can an attacker who knows some attributes of a patient deduce a hidden one?

Each attack is run three times: against the training records (the *main* attack: patients whose data
the generator saw), against the holdout records (the *control* attack: patients it did not see, so
any success there comes from population-level patterns, which synthetic data is meant to share) and
as a *baseline* attacker who does not use the synthetic data at all. The privacy risk is the main
attack's excess success over the control attack, normalised by the room for improvement::

    risk = (r_main - r_control) / (1 - r_control)

with each rate ``r`` the Wilson score estimate of a binomial proportion; its 95% confidence interval
propagates the two rates' Wilson half-widths to first order (the delta method), as anonymeter does.
When the main attack does no better than the baseline, the result says nothing (``meaningful`` is
False in the details).

Differences from anonymeter 1.1.0, all deliberate:

- attributes are compared at the resolution of the *public schema*: predicates are evaluated on the
  integer codes (numbers in their public bins, missing a state of its own) and an inferred number is
  right when it falls in the secret's bin. Released numbers are drawn inside their bins, so finer
  values carry no information about the real data;
- the singling-out baseline draws its values from the schema's domain, not from the synthetic data;
- tables are not de-duplicated: a predicate that matches two identical patients singles out neither;
- singling-out rates are divided by the number of predicates actually found (anonymeter 1.1.0 divides
  by the number requested, which under-states the rate when the synthetic data yields fewer);
- nearest neighbours use the report's Gower embedding (numbers scaled by their declared range) and
  break ties at random (one random order of the synthetic records per call).

Everything is vectorised: predicates are evaluated as bitset intersections (one bitset per attribute
state and per numeric threshold), nearest neighbours with matrix products on chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from ..._validation import check_choice, check_positive_int, check_random_state
from ...exceptions import InvalidParameterError
from ..data import ReportData
from ..model import Figure, Metric

__all__ = [
    "singling_out_risk",
    "linkability_risk",
    "inference_risk",
    "anonymeter_risks",
    "wilson_rate",
    "residual_risk",
    "default_link_split",
]

_CONFIDENCE = 0.95
_BATCH = 1000                    # multivariate predicates drawn per batch
_MAX_ATTEMPTS_PER_ATTACK = 400   # cap on predicates drawn per requested attack (anonymeter: 10^7 in all)
_NN_BLOCK = 4_000_000            # distance-matrix entries per chunk
_BITS_BLOCK = 2_000_000          # 64-bit words gathered per chunk of predicates

#: Attribute names (or FHIR ``Patient`` paths) treated as demographics by :func:`default_link_split`.
DEMOGRAPHICS = ("age", "sex", "gender", "race", "ethnicity", "birth_year", "birth_sex", "marital_status")

_A29 = ("Article 29 Working Party, Opinion 05/2014 on anonymisation techniques: ")

# predicate operators on integer codes
_EQ, _NE, _LE, _GE, _LT, _GT, _NULL, _NOTNULL = range(8)


# ---------------------------------------------------------------------------------------- statistics
def wilson_rate(n_success: float, n_total: int, confidence: float = _CONFIDENCE) -> tuple[float, float]:
    """Wilson score estimate of a success rate: its centre and the half-width of its interval.

    Parameters
    ----------
    n_success : float
        Number of successes (may be fractional after anonymeter's size correction).
    n_total : int
        Number of trials (at least 1).
    confidence : float, default 0.95
        Confidence level of the interval.

    Returns
    -------
    (float, float)
        ``(centre, half_width)``: the Wilson interval is ``centre ± half_width``.

    Examples
    --------
    >>> c, h = wilson_rate(0, 10)
    >>> round(c - h, 6), round(c + h, 4)
    (0.0, 0.2775)
    """
    n_total = check_positive_int(n_total, "n_total", "wilson_rate")
    if not (0.0 <= float(n_success) <= n_total):
        raise InvalidParameterError(
            f"The 'n_success' parameter of wilson_rate must be in [0, n_total={n_total}]. Got {n_success!r} instead.")
    if not (0.0 < confidence < 1.0):
        raise InvalidParameterError(
            f"The 'confidence' parameter of wilson_rate must be in (0, 1). Got {confidence!r} instead.")
    z = NormalDist().inv_cdf(0.5 * (1.0 + confidence))
    k, n, z2 = float(n_success), float(n_total), z * z
    centre = (k + 0.5 * z2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + 0.25 * z2)
    return centre, half


def residual_risk(main: tuple[float, float], control: tuple[float, float]
                  ) -> tuple[float | None, tuple[float, float] | None, float | None]:
    """Excess success of the main attack over the control attack, with its confidence interval.

    ``risk = (r_main - r_control) / (1 - r_control)``; the error is propagated to first order,
    ``err = sqrt((e_main / (1 - r_control))^2 + (e_control (1 - r_main) / (1 - r_control)^2)^2)``, and the
    value and interval ``risk ± err`` are clipped to [0, 1].

    Parameters
    ----------
    main, control : (float, float)
        ``(rate, half_width)`` of each attack (see :func:`wilson_rate`).

    Returns
    -------
    (float or None, (float, float) or None, float or None)
        Clipped risk, clipped interval and the unclipped residual; ``None`` when the control attack
        always succeeds (no room to measure an excess).

    Examples
    --------
    >>> risk, ci, raw = residual_risk((0.6, 0.0), (0.2, 0.0))
    >>> round(risk, 6), round(raw, 6)
    (0.5, 0.5)
    """
    (a, ea), (c, ec) = main, control
    if c >= 1.0:
        return None, None, None
    raw = (a - c) / (1.0 - c)
    err = math.sqrt((ea / (1.0 - c)) ** 2 + (ec * (a - 1.0) / (1.0 - c) ** 2) ** 2)

    def clip(x: float) -> float:
        return min(max(x, 0.0), 1.0)

    return clip(raw), (clip(raw - err), clip(raw + err)), raw


# ---------------------------------------------------------------------------------------- the domain
@dataclass(frozen=True)
class _Domain:
    names: tuple[str, ...]
    types: tuple[str, ...]
    n_values: np.ndarray     # states without the missing state
    sizes: np.ndarray        # states with the missing state
    has_missing: np.ndarray
    ordered: np.ndarray      # numeric and count attributes: thresholds make sense
    emb_cols: tuple[np.ndarray, ...]   # embedding columns of each attribute
    emb_binary: tuple[np.ndarray, ...]  # per attribute: True for 0/c indicator columns, False for scaled numbers
    emb_scale: tuple[np.ndarray, ...]   # per attribute: the indicator value c (1/2 one-hot, 1 missing flag)

    @property
    def d(self) -> int:
        return len(self.names)


def _domain(data: ReportData) -> _Domain:
    specs = data.encoder.specs
    types = tuple(s.attr.type for s in specs)
    cols, binary, scales, start = [], [], [], 0
    for s in specs:
        a = s.attr
        if a.type in ("categorical", "boolean"):  # one-hot (missing included) scaled by 1/2
            w = len(a.categories) + 1 if a.type == "categorical" else 3
            kind, scale = np.ones(w, dtype=bool), np.full(w, 0.5)
        else:  # scaled value, then missing indicator
            w = 2
            kind, scale = np.array([False, True]), np.array([1.0, 1.0])
        cols.append(np.arange(start, start + w))
        binary.append(kind)
        scales.append(scale)
        start += w
    width = data.embedding("synthetic").shape[1]
    if start != width:  # pragma: no cover - guards against a change of ReportData's embedding layout
        raise RuntimeError(f"embedding layout changed: expected {start} columns, found {width}")
    return _Domain(
        names=tuple(s.attr.name for s in specs), types=types,
        n_values=np.array([s.n_values for s in specs], dtype=np.int64),
        sizes=np.array([s.size for s in specs], dtype=np.int64),
        has_missing=np.array([s.has_missing for s in specs], dtype=bool),
        ordered=np.array([t in ("numeric", "count") for t in types], dtype=bool),
        emb_cols=tuple(cols), emb_binary=tuple(binary), emb_scale=tuple(scales))


# ---------------------------------------------------------------------------------------- predicates
if hasattr(np, "bitwise_count"):
    def _popcount_rows(words: np.ndarray) -> np.ndarray:
        return np.bitwise_count(words).sum(axis=-1, dtype=np.int64)
else:  # pragma: no cover - numpy < 2.0
    _LUT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount_rows(words: np.ndarray) -> np.ndarray:
        b = np.ascontiguousarray(words).view(np.uint8).reshape(*words.shape[:-1], -1)
        return _LUT[b].sum(axis=-1, dtype=np.int64)


class _Layout:
    """Where each atom's bitset lives in a :class:`_Bits` table (identical for every table of a domain)."""

    def __init__(self, dom: _Domain) -> None:
        self.dom = dom
        off = 2  # 0: no rows, 1: every row
        eq, le = np.zeros(dom.d, np.int64), np.full(dom.d, -1, np.int64)
        for j in range(dom.d):
            eq[j] = off
            off += int(dom.sizes[j])
            if dom.ordered[j]:
                le[j] = off
                off += int(dom.n_values[j])
        self.eq_off, self.le_off, self.n_rows = eq, le, off

    def atoms(self, attr: np.ndarray, op: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bitset rows ``(pos, neg)`` so that an atom's rows are ``bits[pos] & ~bits[neg]``."""
        attr, op, val = np.asarray(attr), np.asarray(op), np.asarray(val)
        dom = self.dom
        eq = self.eq_off[attr]
        le = self.le_off[attr]
        nv = dom.n_values[attr]
        miss = eq + nv  # the missing state's bitset (its code is n_values)
        le_all = le + nv - 1  # every non-missing value
        pos = np.select(
            [op == _EQ, op == _NE, op == _LE, op == _GE, op == _LT, op == _GT, op == _NULL, op == _NOTNULL],
            [eq + val, np.ones_like(val), le + val, le_all, np.where(val > 0, le + val - 1, 0), le_all, miss,
             np.ones_like(val)])
        neg = np.select(
            [op == _NE, op == _GE, op == _GT, op == _NOTNULL],
            [eq + val, np.where(val > 0, le + val - 1, 0), le + val, miss], default=0)
        return pos.astype(np.int64), neg.astype(np.int64)


class _Bits:
    """Bitsets of one table's rows: each attribute state, and ``code <= v`` for ordered attributes."""

    def __init__(self, codes: np.ndarray, layout: _Layout) -> None:
        n = codes.shape[0]
        self.n = n
        self.words = max(1, -(-n // 64))
        table = np.zeros((layout.n_rows, self.words), dtype=np.uint64)
        table[1] = self._pack(np.ones((1, n), dtype=bool))[0]
        dom = layout.dom
        for j in range(dom.d):
            onehot = codes[:, j][None, :] == np.arange(dom.sizes[j])[:, None]
            e = layout.eq_off[j]
            table[e:e + dom.sizes[j]] = self._pack(onehot)
            if dom.ordered[j]:
                nv = int(dom.n_values[j])
                le = np.logical_or.accumulate(onehot[:nv], axis=0)
                table[layout.le_off[j]:layout.le_off[j] + nv] = self._pack(le)
        self.table = table

    def _pack(self, rows: np.ndarray) -> np.ndarray:
        packed = np.packbits(rows, axis=1, bitorder="little")
        out = np.zeros((rows.shape[0], self.words * 8), dtype=np.uint8)
        out[:, :packed.shape[1]] = packed
        return out.view(np.uint64)

    def _match(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        t = self.table
        acc = t[pos[:, 0]] & ~t[neg[:, 0]]
        for i in range(1, pos.shape[1]):
            acc &= t[pos[:, i]] & ~t[neg[:, i]]
        return acc

    def count(self, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        """Number of rows matching each predicate (``pos``, ``neg``: predicates × atoms)."""
        q, m = pos.shape
        out = np.zeros(q, dtype=np.int64)
        step = max(1, _BITS_BLOCK // (max(m, 1) * self.words))
        for a in range(0, q, step):
            out[a:a + step] = _popcount_rows(self._match(pos[a:a + step], neg[a:a + step]))
        return out


@dataclass
class _Queries:
    attr: np.ndarray   # (q, m)
    op: np.ndarray
    val: np.ndarray

    def __len__(self) -> int:
        return int(self.attr.shape[0])


def _keys(attr: np.ndarray, op: np.ndarray, val: np.ndarray) -> list[bytes]:
    packed = np.stack([attr, op, val], axis=2).astype(np.int64)
    return [row.tobytes() for row in packed]


def _univariate_queries(codes: np.ndarray, bits: _Bits, layout: _Layout, n_attacks: int,
                        rng: np.random.Generator) -> tuple[_Queries, int]:
    """Rare values, one missing value and the extreme thresholds of the synthetic data (anonymeter)."""
    dom = layout.dom
    cand: list[tuple[int, int, int]] = []
    for j in range(dom.d):
        cnt = np.bincount(codes[:, j], minlength=int(dom.sizes[j]))
        nv = int(dom.n_values[j])
        if dom.has_missing[j] and cnt[nv] == 1:
            cand.append((j, _NULL, nv))
        present = np.flatnonzero(cnt[:nv] > 0)
        if dom.ordered[j] and present.size:
            cand.append((j, _LE, int(present[0])))
            cand.append((j, _GE, int(present[-1])))
        cand.extend((j, _EQ, int(s)) for s in np.flatnonzero(cnt[:nv] == 1))
    if not cand:
        return _Queries(*(np.zeros((0, 1), np.int64) for _ in range(3))), 0
    arr = np.array(cand, dtype=np.int64)[rng.permutation(len(cand))]
    attr, op, val = arr[:, :1], arr[:, 1:2], arr[:, 2:3]
    pos, neg = layout.atoms(attr, op, val)
    keep = np.flatnonzero(bits.count(pos, neg) == 1)[:n_attacks]
    return _Queries(attr[keep], op[keep], val[keep]), len(cand)


def _multivariate_queries(codes: np.ndarray, bits: _Bits, layout: _Layout, n_attacks: int, n_cols: int,
                          rng: np.random.Generator) -> tuple[_Queries, int]:
    """Conjunctions over ``n_cols`` random attributes of a random synthetic record (anonymeter).

    Categories and missing values give equalities; a number above the synthetic median gives
    ``>=`` its bin, otherwise ``<=`` (the more extreme side, as anonymeter does).
    """
    dom = layout.dom
    n, d = codes.shape
    med = np.full(d, np.inf)
    for j in np.flatnonzero(dom.ordered):
        present = codes[:, j][codes[:, j] < dom.n_values[j]]
        if present.size:
            med[j] = np.median(present)
    found: dict[bytes, int] = {}
    rows_attr, rows_op, rows_val = [], [], []
    attempts, max_attempts = 0, _MAX_ATTEMPTS_PER_ATTACK * n_attacks
    while len(found) < n_attacks and attempts < max_attempts:
        b = min(_BATCH, max_attempts - attempts)
        rec = rng.integers(0, n, size=b)
        attr = np.sort(np.argsort(rng.random((b, d)), axis=1)[:, :n_cols], axis=1)
        val = codes[rec[:, None], attr]
        missing = dom.has_missing[attr] & (val == dom.n_values[attr])
        op = np.where(missing, _NULL, np.where(dom.ordered[attr], np.where(val > med[attr], _GE, _LE), _EQ))
        pos, neg = layout.atoms(attr, op, val)
        ok = np.flatnonzero(bits.count(pos, neg) == 1)
        for i, key in zip(ok, _keys(attr[ok], op[ok], val[ok]), strict=True):
            if key not in found and len(found) < n_attacks:
                found[key] = len(found)
                rows_attr.append(attr[i])
                rows_op.append(op[i])
                rows_val.append(val[i])
        attempts += b
    if not found:
        return _Queries(*(np.zeros((0, n_cols), np.int64) for _ in range(3))), attempts
    return _Queries(np.array(rows_attr), np.array(rows_op), np.array(rows_val)), attempts


def _baseline_queries(dom: _Domain, n_queries: int, n_cols: int, rng: np.random.Generator) -> _Queries:
    """Random predicates from the public domain: random attributes, states and operators, no synthetic data."""
    attr = np.sort(np.argsort(rng.random((n_queries, dom.d)), axis=1)[:, :n_cols], axis=1)
    val = np.floor(rng.random(attr.shape) * dom.sizes[attr]).astype(np.int64)
    missing = dom.has_missing[attr] & (val == dom.n_values[attr])
    pick = rng.random(attr.shape)
    num_ops = np.array([_EQ, _NE, _GT, _LT, _GE, _LE])
    op = np.where(missing, np.where(pick < 0.5, _NULL, _NOTNULL),
                  np.where(dom.ordered[attr], num_ops[np.minimum((pick * 6).astype(np.int64), 5)],
                           np.where(pick < 0.5, _EQ, _NE)))
    return _Queries(attr, op, val)


def _control_at_size(counts: np.ndarray, n_control: int, n_target: int) -> tuple[float, dict[str, Any]]:
    """Expected number of predicates singling out in a control set of ``n_target`` records.

    A predicate singles out more or less often in a larger table, so when the sizes differ the
    control count is brought to the training set's size before the two rates are compared
    (``counts``: each predicate's matches in the whole control set):

    - control larger than the training set: the exact expectation over random subsets of
      ``n_target`` control records, ``sum_q P(Hypergeometric(n_control, k_q, n_target) = 1)``;
    - control smaller: the singling-out model of Cohen & Nissim (2020) that anonymeter uses, a
      predicate of weight ``w`` singling out one of ``n`` records with probability
      ``P(w, n) = n w (1 - w)^(n - 1)``, with the predicates' weights drawn from a Beta(a, b) fitted
      to the control counts by maximum likelihood (beta-binomial) and each predicate's weight taken
      from its posterior ``Beta(a + k_q, b + n_control - k_q)``; the observed count is multiplied by
      ``E[sum_q P(w_q, n_target)] / E[sum_q P(w_q, n_control)]``.
    """
    observed = float(np.sum(counts == 1))
    if n_control >= n_target:
        from scipy.stats import hypergeom

        expected = float(np.sum(hypergeom.pmf(1, n_control, counts, n_target)))
        return expected, {"method": "subsample (exact hypergeometric expectation)", "n_target": int(n_target)}
    info: dict[str, Any] = {"method": "beta-binomial singling-out model", "n_target": int(n_target)}
    if observed == 0:
        return 0.0, info
    from scipy.optimize import minimize
    from scipy.special import betaln

    k = counts.astype(float)
    nc = float(n_control)

    def nll(theta: np.ndarray) -> float:
        a, b = np.exp(theta)
        return float(-np.sum(betaln(k + a, nc - k + b) - betaln(a, b)))

    opt = minimize(nll, x0=np.array([0.0, math.log(nc)]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
    a, b = (float(v) for v in np.exp(opt.x))

    def expected(n: float) -> float:
        al, be = a + k, b + nc - k
        return float(np.sum(np.exp(math.log(n) + betaln(al + 1.0, be + n - 1.0) - betaln(al, be))))

    at_c, at_t = expected(nc), expected(float(n_target))
    info.update(a=a, b=b)
    if not (at_c > 0 and math.isfinite(at_t)):
        info["failed"] = "degenerate fit: control count left uncorrected"
        return observed, info
    info["factor"] = at_t / at_c
    return observed * at_t / at_c, info


# ---------------------------------------------------------------------------------------- neighbours
class _Nearest:
    """Brute-force nearest synthetic records in the Gower embedding restricted to some attributes.

    The L1 distance is split into indicator columns (one-hot categories scaled by 1/2, missing flags),
    where ``|a - b| = a + b - 2ab/c`` for values in ``{0, c}`` (a matrix product, exact in floating
    point), and scaled numbers, ``|x - y|`` column by column. The synthetic records are searched in the
    order ``perm`` and ties go to the first in that order, so a random ``perm`` breaks ties at random.
    """

    def __init__(self, data: ReportData, dom: _Domain, attrs: Sequence[int], perm: np.ndarray) -> None:
        self.bcols = np.concatenate([dom.emb_cols[j][dom.emb_binary[j]] for j in attrs]).astype(np.int64)
        self.ncols = np.concatenate([dom.emb_cols[j][~dom.emb_binary[j]] for j in attrs]).astype(np.int64)
        scale = np.concatenate([dom.emb_scale[j][dom.emb_binary[j]] for j in attrs])
        s = data.embedding("synthetic")[perm]
        self.n = s.shape[0]
        self.perm = perm
        sb = s[:, self.bcols]
        # float32 halves the memory traffic; indicator sums stay exact (small integers and halves)
        self.sb_t = np.ascontiguousarray((sb / scale).T, dtype=np.float32)   # 0/1 indicators, columns = records
        self.sb_sum = sb.sum(axis=1).astype(np.float32)
        self.sn_t = np.ascontiguousarray(s[:, self.ncols].T, dtype=np.float32)

    def query(self, emb: np.ndarray, k: int) -> np.ndarray:
        """Indices (into the synthetic table) of the ``k`` nearest records of each row of ``emb``."""
        qb = emb[:, self.bcols].astype(np.float32)
        qn = emb[:, self.ncols].astype(np.float32)
        qsum = qb.sum(axis=1)
        out = np.empty((emb.shape[0], k), dtype=np.int64)
        step = max(1, _NN_BLOCK // max(self.n, 1))
        tmp = np.empty((min(step, emb.shape[0]), self.n), dtype=np.float32)
        for a in range(0, emb.shape[0], step):
            sl = slice(a, a + step)
            dist = (-2.0 * qb[sl]) @ self.sb_t
            dist += qsum[sl, None]
            dist += self.sb_sum[None, :]
            t = tmp[:dist.shape[0]]
            for c in range(qn.shape[1]):
                np.subtract(qn[sl, c][:, None], self.sn_t[c][None, :], out=t)
                np.abs(t, out=t)
                dist += t
            out[sl] = self.perm[_k_smallest(dist, k)]
        return out


def _k_smallest(dist: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` smallest entries of each row, ties to the leftmost."""
    if k == 1:
        return np.argmin(dist, axis=1)[:, None]
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(dist, part, axis=1).max(axis=1)[:, None]
    less = dist < kth
    tie = dist == kth
    need = k - less.sum(axis=1)
    chosen = less | (tie & (np.cumsum(tie, axis=1) <= need[:, None]))
    return np.nonzero(chosen)[1].reshape(dist.shape[0], k)


# ---------------------------------------------------------------------------------------- results
def _check_data(data: Any, owner: str) -> ReportData:
    if not isinstance(data, ReportData):
        raise InvalidParameterError(
            f"The 'data' parameter of {owner} must be a ReportData. Got {type(data).__name__} instead.")
    return data


def _attr_list(value: Any, name: str, owner: str, names: Sequence[str]) -> list[int]:
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray) or len(value) == 0:
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be a non-empty sequence of attribute names. "
            f"Got {type(value).__name__} instead.")
    out = []
    for v in value:
        if v not in names:
            raise InvalidParameterError(
                f"The {name!r} parameter of {owner} must name attributes of the schema. Got {v!r} instead.")
        out.append(names.index(v))
    if len(set(out)) != len(out):
        raise InvalidParameterError(f"The {name!r} parameter of {owner} must not repeat an attribute.")
    return out


def _rates(n_main: float, t_main: int, n_ctrl: float, t_ctrl: int, n_base: float, t_base: int
           ) -> dict[str, Any]:
    main, ctrl, base = wilson_rate(n_main, t_main), wilson_rate(n_ctrl, t_ctrl), wilson_rate(n_base, t_base)
    risk, ci_first_order, raw = residual_risk(main, ctrl)
    ci = ci_first_order
    if risk is not None:
        # the judged interval: (a − c)/(1 − c) rises with a and falls with c, so Wilson bounds at 97.5 % on each
        # rate give a conservative 95 % interval. The first-order propagation (anonymeter's) is far too narrow
        # when the control rate is high and the control small (e.g. a secret implied by other attributes)
        (ca, ha), (cc, hc) = wilson_rate(n_main, t_main, 0.975), wilson_rate(n_ctrl, t_ctrl, 0.975)
        a_lo, a_hi = max(ca - ha, 0.0), min(ca + ha, 1.0)
        c_lo, c_hi = max(cc - hc, 0.0), min(cc + hc, 1.0)
        lo = 0.0 if c_hi >= 1.0 else (a_lo - c_hi) / (1.0 - c_hi)
        hi = 1.0 if c_lo >= 1.0 else (a_hi - c_lo) / (1.0 - c_lo)
        ci = (min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0))
    meaningful = main[0] > base[0]
    out: dict[str, Any] = {
        "risk": risk, "ci": ci, "ci_first_order": ci_first_order, "residual_unclipped": raw,
        "ci_method": "monotone: Wilson 97.5% bounds of the main and control rates",
        "main": {"n_success": n_main, "n_attacks": t_main, "rate": main[0],
                 "ci": (max(main[0] - main[1], 0.0), min(main[0] + main[1], 1.0))},
        "control": {"n_success": n_ctrl, "n_attacks": t_ctrl, "rate": ctrl[0],
                    "ci": (max(ctrl[0] - ctrl[1], 0.0), min(ctrl[0] + ctrl[1], 1.0))},
        "baseline": {"n_success": n_base, "n_attacks": t_base, "rate": base[0],
                     "ci": (max(base[0] - base[1], 0.0), min(base[0] + base[1], 1.0))},
        "better_than_baseline": bool(meaningful),
    }
    warn = []
    if not meaningful:
        warn.append("the attack does no better than the baseline attacker: the risk estimate cannot be trusted")
    if risk is None:
        warn.append("the control attack always succeeds: no excess risk can be measured")
    if warn:
        out["warning"] = "; ".join(warn)
    return out


def _metrics(key: str, title: str, what: str, formula: str, res: dict[str, Any], extra: dict[str, Any]
             ) -> list[Metric]:
    details = {k: v for k, v in res.items() if k not in ("risk", "ci")}
    details.update(extra)
    if res["risk"] is None and "reason" not in details:
        details["reason"] = res.get("warning", "not computable")
    risk = Metric(
        key=f"{key}.risk", name=f"{title} risk", value=res["risk"], goal="minimize", range=(0.0, 1.0),
        reference=0.0, ci=res["ci"],
        description=(f"{what} 0 means the synthetic data helps the attacker no more against the patients it was "
                     "made from than against similar patients it never saw; 1 means every attack succeeds "
                     "that did not already succeed on unseen patients. Read the confidence interval: a "
                     "lower bound above 0 is evidence of a leak."),
        formula=("risk = (r_train - r_holdout) / (1 - r_holdout), rates r as Wilson score estimates over the "
                 "attacks; 95% CI = risk ± sqrt((e_train/(1-r_holdout))^2 + (e_holdout (1-r_train)/"
                 "(1-r_holdout)^2)^2), e = Wilson half-widths; value and CI clipped to [0, 1]. " + formula),
        real_data=True, details=details)
    main = res["main"]
    rate = Metric(
        key=f"{key}.success_rate", name=f"{title} success rate", value=main["rate"], goal="minimize",
        range=(0.0, 1.0), reference=res["control"]["rate"], ci=tuple(main["ci"]),
        description=(f"Share of successful {title.lower()} attacks against the training patients. Compare it "
                     "with the same attack against unseen holdout patients (the reference: what population "
                     "patterns alone give) and with a baseline attacker who ignores the synthetic data "
                     "(details)."),
        formula="Wilson score estimate of n_success / n_attacks, 95% Wilson interval. " + formula,
        real_data=True,
        details={"control": res["control"], "baseline": res["baseline"],
                 "better_than_baseline": res["better_than_baseline"], **extra})
    return [risk, rate]


def _sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, size=min(k, n), replace=False)


# ---------------------------------------------------------------------------------------- singling out
def singling_out_risk(data: ReportData, *, mode: str = "univariate", n_attacks: int = 500, n_cols: int = 3,
                      random_state: Any = None) -> list[Metric]:
    """Singling-out risk: can predicates learnt from the synthetic data isolate one real patient?

    The attacker writes predicates that single out exactly one *synthetic* record: in
    ``"univariate"`` mode a rare value, the only missing value or the most extreme bin of one
    attribute; in ``"multivariate"`` mode the conjunction of the values of ``n_cols`` random
    attributes of a random synthetic record (``>=``/``<=`` its bin for numbers, on the side away
    from the median). An attack succeeds when its predicate matches exactly one training record.
    The control attack evaluates the same predicates on the holdout (its count corrected to the
    training set's size as anonymeter does when the sizes differ); the baseline attacker draws
    ``n_attacks`` predicates with random attributes, operators and values of the public domain.

    Parameters
    ----------
    data : ReportData
    mode : {"univariate", "multivariate"}, default "univariate"
    n_attacks : int, default 500
        Number of predicates wanted (fewer when the synthetic data does not yield that many; the
        rates divide by the number found).
    n_cols : int, default 3
        Attributes per predicate in multivariate mode (ignored in univariate mode).
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    list of Metric
        ``attacks.singling_out.<mode>.risk`` and ``attacks.singling_out.<mode>.success_rate``.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(400)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:200], t.iloc[200:], t.iloc[:200])
    >>> m = singling_out_risk(d, mode="multivariate", n_attacks=50, random_state=0)
    >>> [x.key for x in m]
    ['attacks.singling_out.multivariate.risk', 'attacks.singling_out.multivariate.success_rate']
    """
    owner = "singling_out_risk"
    data = _check_data(data, owner)
    mode = check_choice(mode, "mode", ("univariate", "multivariate"), owner)
    n_attacks = check_positive_int(n_attacks, "n_attacks", owner)
    n_cols = check_positive_int(n_cols, "n_cols", owner)
    if mode == "multivariate" and n_cols > len(data.names):
        raise InvalidParameterError(
            f"The 'n_cols' parameter of {owner} must be at most the number of attributes ({len(data.names)}). "
            f"Got {n_cols!r} instead.")
    rng = check_random_state(random_state)
    dom = _domain(data)
    layout = _Layout(dom)
    syn_codes = data.codes("synthetic")
    syn_bits = _Bits(syn_codes, layout)
    if mode == "univariate":
        q, attempts = _univariate_queries(syn_codes, syn_bits, layout, n_attacks, rng)
        m = 1
    else:
        q, attempts = _multivariate_queries(syn_codes, syn_bits, layout, n_attacks, n_cols, rng)
        m = n_cols
    train_bits = _Bits(data.codes("train"), layout)
    hold_bits = _Bits(data.codes("holdout"), layout)
    base = _baseline_queries(dom, n_attacks, m, rng)
    bpos, bneg = layout.atoms(base.attr, base.op, base.val)
    n_base = int(np.sum(train_bits.count(bpos, bneg) == 1))
    extra: dict[str, Any] = {"mode": mode, "n_requested": n_attacks, "n_found": len(q),
                             "attempts": int(attempts), "n_train": train_bits.n, "n_holdout": hold_bits.n,
                             "n_synthetic": syn_bits.n, "article29": "singling out"}
    if mode == "multivariate":
        extra["n_cols"] = n_cols
    key = f"attacks.singling_out.{mode}"
    title = f"Singling-out ({mode})"
    what = (_A29 + "singling out, the possibility to isolate some or all records identifying an individual. "
            "The attacker learns from the synthetic data predicates that match exactly one synthetic "
            "record and checks whether each matches exactly one real patient.")
    formula = ("Success: the predicate matches exactly one record. Baseline: random predicates over the "
               "public domain.")
    if len(q) == 0:  # no attack can start: the attacker singles out nobody
        reason = ("the synthetic data yields no predicate that singles out one of its records (no rare state, "
                  "no unique extreme bin, no unique combination found): the attacker cannot single anyone out")
        base_rate = wilson_rate(n_base, n_attacks)[0]
        details = {**extra, "reason": reason, "better_than_baseline": False,
                   "main": {"n_success": 0, "n_attacks": 0, "rate": None},
                   "control": {"n_success": 0, "n_attacks": 0, "rate": None},
                   "baseline": {"n_success": n_base, "n_attacks": n_attacks, "rate": base_rate}}
        return [Metric(key=f"{key}.risk", name=f"{title} risk", value=0.0, goal="minimize", range=(0.0, 1.0),
                       reference=0.0, description=what + " " + reason + ".", formula=formula, real_data=True,
                       details=details),
                Metric(key=f"{key}.success_rate", name=f"{title} success rate", value=None, goal="minimize",
                       range=(0.0, 1.0), description=what, formula=formula, real_data=True, details=details)]
    pos, neg = layout.atoms(q.attr, q.op, q.val)
    n_main = int(np.sum(train_bits.count(pos, neg) == 1))
    hold_counts = hold_bits.count(pos, neg)
    n_ctrl: float = float(np.sum(hold_counts == 1))
    if hold_bits.n != train_bits.n:
        corrected, info = _control_at_size(hold_counts, hold_bits.n, train_bits.n)
        extra["size_correction"] = {"n_control_raw": n_ctrl, **info}
        n_ctrl = min(max(corrected, 0.0), float(len(q)))
    res = _rates(n_main, len(q), n_ctrl, len(q), n_base, n_attacks)
    return _metrics(key, title, what, formula, res, extra)


# ---------------------------------------------------------------------------------------- linkability
def default_link_split(data: ReportData, random_state: Any = None) -> tuple[list[str], list[str]]:
    """The attacker's two partial records when none are given.

    When the schema has demographic attributes (``age``, ``sex``, ... or FHIR ``Patient``
    demographics), the first part holds them, filled up to half of the attributes with randomly
    chosen others, and the second part the remaining (clinical) attributes: one data set looks like
    a registry extract, the other like a clinical data set. Otherwise the attributes are split at
    random into two halves.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(40)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t, t, t)
    >>> a, b = default_link_split(d, random_state=0)
    >>> "age" in a and "sex" in a and len(a) + len(b) == 11
    True
    """
    data = _check_data(data, "default_link_split")
    rng = check_random_state(random_state)
    names = list(data.names)
    if len(names) < 2:
        raise InvalidParameterError(
            f"The 'data' parameter of default_link_split must have at least 2 attributes. Got {len(names)} instead.")
    demo = [a.name for a in data.schema.attributes
            if a.name in DEMOGRAPHICS or (a.fhir is not None and a.fhir.resource == "Patient"
                                          and a.fhir.path in DEMOGRAPHICS)]
    half = len(names) // 2
    if demo and ("age" in demo or "sex" in demo) and len(demo) < len(names):
        others = [n for n in names if n not in demo]
        fill = [others[i] for i in rng.permutation(len(others))[:max(0, half - len(demo))]]
        first = set(demo) | set(fill)
    else:
        first = {names[i] for i in rng.permutation(len(names))[:half]}
    return [n for n in names if n in first], [n for n in names if n not in first]


def linkability_risk(data: ReportData, *, aux_cols: tuple[Sequence[str], Sequence[str]] | None = None,
                     n_attacks: int = 500, n_neighbors: int = 1, random_state: Any = None) -> list[Metric]:
    """Linkability risk: can the synthetic data link two partial records of the same patient?

    For each of ``n_attacks`` training patients the attacker holds two partial records (the
    attributes of ``aux_cols[0]`` and of ``aux_cols[1]``), finds the ``n_neighbors`` nearest
    synthetic records of each (Gower distance on those attributes) and links the two when the two
    neighbour sets share a record. The control attack does the same for holdout patients; the
    baseline attacker picks the neighbours at random.

    Parameters
    ----------
    data : ReportData
    aux_cols : (sequence of str, sequence of str), optional
        The two partial records. Default: :func:`default_link_split`.
    n_attacks : int, default 500
        Patients attacked (at most the size of each table).
    n_neighbors : int, default 1
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    list of Metric
        ``attacks.linkability.risk`` and ``attacks.linkability.success_rate``.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(400)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:200], t.iloc[200:], t.iloc[:200])
    >>> risk = linkability_risk(d, n_attacks=100, random_state=0)[0]
    >>> risk.key, risk.value > 0.5
    ('attacks.linkability.risk', True)
    """
    owner = "linkability_risk"
    data = _check_data(data, owner)
    n_attacks = check_positive_int(n_attacks, "n_attacks", owner)
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors", owner)
    rng = check_random_state(random_state)
    names = list(data.names)
    if aux_cols is None:
        aux_cols = default_link_split(data, rng)
        chosen = "default"
    else:
        chosen = "given"
    if isinstance(aux_cols, str) or not isinstance(aux_cols, Sequence) or len(aux_cols) != 2:
        raise InvalidParameterError(
            f"The 'aux_cols' parameter of {owner} must be a pair of attribute-name sequences. "
            f"Got {type(aux_cols).__name__} instead.")
    part_a = _attr_list(aux_cols[0], "aux_cols", owner, names)
    part_b = _attr_list(aux_cols[1], "aux_cols", owner, names)
    n_syn = len(data.synthetic)
    if n_neighbors > n_syn:
        raise InvalidParameterError(
            f"The 'n_neighbors' parameter of {owner} must be at most the number of synthetic records ({n_syn}). "
            f"Got {n_neighbors!r} instead.")
    dom = _domain(data)
    perm = rng.permutation(n_syn)  # one random order for both halves: consistent tie-breaking
    nn_a = _Nearest(data, dom, part_a, perm)
    nn_b = _Nearest(data, dom, part_b, perm)

    def attack(which: str) -> tuple[int, int]:
        emb = data.embedding(which)
        idx = _sample(len(emb), n_attacks, rng)
        ia, ib = nn_a.query(emb[idx], n_neighbors), nn_b.query(emb[idx], n_neighbors)
        return int(np.sum((ia[:, :, None] == ib[:, None, :]).any(axis=(1, 2)))), len(idx)

    n_main, t_main = attack("train")
    n_ctrl, t_ctrl = attack("holdout")
    ra = np.stack([rng.choice(n_syn, n_neighbors, replace=False) for _ in range(t_main)])
    rb = np.stack([rng.choice(n_syn, n_neighbors, replace=False) for _ in range(t_main)])
    n_base = int(np.sum((ra[:, :, None] == rb[:, None, :]).any(axis=(1, 2))))
    res = _rates(n_main, t_main, n_ctrl, t_ctrl, n_base, t_main)
    extra = {"aux_cols": ([names[j] for j in part_a], [names[j] for j in part_b]), "aux_cols_source": chosen,
             "n_neighbors": n_neighbors, "n_synthetic": n_syn, "article29": "linkability"}
    what = (_A29 + "linkability, the ability to link at least two records concerning the same individual. "
            "The attacker holds two partial records of a patient (two data sets with different attributes) "
            "and links them when both point to the same synthetic record(s).")
    formula = ("Success: the n_neighbors nearest synthetic records (Gower distance) of the two partial "
               "records share a record. Baseline: random synthetic records.")
    return _metrics("attacks.linkability", "Linkability", what, formula, res, extra)


# ---------------------------------------------------------------------------------------- inference
def inference_risk(data: ReportData, *, secret: str | None = None, aux_cols: Sequence[str] | None = None,
                   n_attacks: int = 500, random_state: Any = None) -> list[Metric]:
    """Inference risk: can the synthetic data reveal a hidden attribute of a patient?

    For each of ``n_attacks`` training patients the attacker knows the attributes ``aux_cols``,
    finds the nearest synthetic record on them (Gower distance) and guesses its ``secret``. A
    guess is right when it equals the patient's value; numbers are right when they fall in the
    same public bin. The control attack targets holdout patients; the baseline attacker guesses
    the secret of a random synthetic record.

    Parameters
    ----------
    data : ReportData
    secret : str, optional
        Default: the schema's outcome (:attr:`ReportData.outcome`), else the last attribute.
    aux_cols : sequence of str, optional
        Default: every other attribute.
    n_attacks : int, default 500
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    list of Metric
        ``attacks.inference.risk`` and ``attacks.inference.success_rate`` (the secret in details).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(400)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:200], t.iloc[200:], t.iloc[:200])
    >>> m = inference_risk(d, secret="flc_grp", n_attacks=100, random_state=0)
    >>> m[0].details["secret"]
    'flc_grp'
    """
    owner = "inference_risk"
    data = _check_data(data, owner)
    n_attacks = check_positive_int(n_attacks, "n_attacks", owner)
    rng = check_random_state(random_state)
    names = list(data.names)
    if len(names) < 2:
        raise InvalidParameterError(
            f"The 'data' parameter of {owner} must have at least 2 attributes. Got {len(names)} instead.")
    if secret is None:
        secret = data.outcome if data.outcome is not None else names[-1]
    if secret not in names:
        raise InvalidParameterError(
            f"The 'secret' parameter of {owner} must name an attribute of the schema. Got {secret!r} instead.")
    js = names.index(secret)
    aux = [j for j in range(len(names)) if j != js] if aux_cols is None else \
        _attr_list(aux_cols, "aux_cols", owner, names)
    if js in aux:
        raise InvalidParameterError(
            f"The 'aux_cols' parameter of {owner} must not contain the secret. Got {secret!r} in it.")
    dom = _domain(data)
    nn = _Nearest(data, dom, aux, rng.permutation(len(data.synthetic)))
    syn_secret = data.codes("synthetic")[:, js]

    def attack(which: str) -> tuple[int, int]:
        idx = _sample(len(data.table(which)), n_attacks, rng)
        guess = syn_secret[nn.query(data.embedding(which)[idx], 1)[:, 0]]
        return int(np.sum(guess == data.codes(which)[idx, js])), len(idx)

    n_main, t_main = attack("train")
    n_ctrl, t_ctrl = attack("holdout")
    targets = _sample(len(data.train), n_attacks, rng)
    n_syn = len(syn_secret)
    guesses = syn_secret[rng.choice(n_syn, size=len(targets), replace=len(targets) > n_syn)]
    n_base = int(np.sum(guesses == data.codes("train")[targets, js]))
    res = _rates(n_main, t_main, n_ctrl, t_ctrl, n_base, len(targets))
    extra = {"secret": secret, "aux_cols": [names[j] for j in aux], "secret_type": dom.types[js],
             "n_synthetic": n_syn, "article29": "inference"}
    what = (_A29 + f"inference, the possibility to deduce the value of an attribute (here {secret!r}) from "
            "the values of others. The attacker knows the other attributes of a patient and reads the "
            "secret off the closest synthetic record.")
    formula = ("Success: the guess equals the secret (numbers: the same public bin). Baseline: the secret "
               "of a random synthetic record.")
    return _metrics("attacks.inference", "Inference", what, formula, res, extra)


# ---------------------------------------------------------------------------------------- all three
def anonymeter_risks(data: ReportData, *, n_attacks: int = 500, random_state: Any = None
                     ) -> tuple[list[Metric], Figure]:
    """The three Article 29 risks: univariate and multivariate singling out, linkability, inference.

    Parameters
    ----------
    data : ReportData
    n_attacks : int, default 500
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    (list of Metric, Figure)
        The metrics of :func:`singling_out_risk` (both modes), :func:`linkability_risk` and
        :func:`inference_risk` (defaults), and a ``"bars"`` figure ``attacks.anonymeter.risks`` of
        the four risks with their confidence bounds.

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.report.data import ReportData
    >>> t = sh.datasets.load_flchain().head(400)
    >>> d = ReportData.from_tables(sh.load_schema("flchain"), t.iloc[:200], t.iloc[200:], t.iloc[200:])
    >>> metrics, fig = anonymeter_risks(d, n_attacks=50, random_state=0)
    >>> fig.key, len(fig.data["categories"])
    ('attacks.anonymeter.risks', 4)
    """
    owner = "anonymeter_risks"
    data = _check_data(data, owner)
    n_attacks = check_positive_int(n_attacks, "n_attacks", owner)
    rng = check_random_state(random_state)
    metrics = (singling_out_risk(data, mode="univariate", n_attacks=n_attacks, random_state=rng)
               + singling_out_risk(data, mode="multivariate", n_attacks=n_attacks,
                                   n_cols=min(3, len(data.names)), random_state=rng)
               + linkability_risk(data, n_attacks=n_attacks, random_state=rng)
               + inference_risk(data, n_attacks=n_attacks, random_state=rng))
    risks = [m for m in metrics if m.key.endswith(".risk")]
    labels = ["singling out (univariate)", "singling out (multivariate)", "linkability",
              f"inference ({risks[3].details.get('secret')})"]
    lo = [m.ci[0] if m.ci else None for m in risks]
    hi = [m.ci[1] if m.ci else None for m in risks]
    fig = Figure(
        key="attacks.anonymeter.risks", title="Singling-out, linkability and inference risks", kind="bars",
        data={"categories": labels,
              "series": {"risk": [m.value for m in risks]},
              "errors": {"risk": [[a, b] if a is not None and b is not None else None for a, b in zip(lo, hi,
                                                                                                   strict=True)]},
              "ci": [m.ci for m in risks], "ylabel": "risk (0 = no excess over unseen patients)"},
        caption=("Excess success of each attack against the training patients over the same attack against "
                 "unseen holdout patients (0 = none, 1 = maximal), with 95% confidence bounds. The three "
                 "criteria of the Article 29 Working Party's Opinion 05/2014 on anonymisation."),
        real_data=True)
    return metrics, fig
