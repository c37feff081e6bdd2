"""Privacy–utility sweep: fit one generator at several ε on the same data and chart the trade-off.

A sweep touches the protected data once per ε, so it **spends the sum of the budgets**: every fit is
charged to one ledger (zCDP generators compose in ρ, so the ledger's ε is a little below the plain
sum of the ε; DP-SGD fits add up their ε and δ). Call :func:`sweep_cost` first to see the cost; the
CLI prints it and asks before starting.

To choose ε *without spending budget*, sweep on data you do not need to protect: a public dataset
of the same shape, the bundled demo data, or synthetic data from an earlier release, then fit once
on the real data at the chosen ε.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_random_state
from .exceptions import InsecureRandomnessWarning, InvalidParameterError
from .generators import AIM, DPVAE, MST
from .privacy import PrivacyBudget, PrivacyLedger
from .privacy.accounting import cdp_epsilon
from .privacy.budget import MAX_EPSILON
from .schema.model import PatientSchema

__all__ = ["sweep", "sweep_cost", "split", "SweepResult", "SweepCost"]

_GENERATORS = {"aim": AIM, "mst": MST, "dpvae": DPVAE}


@dataclass(frozen=True)
class SweepCost:
    """What a sweep will spend.

    Attributes
    ----------
    epsilon_sum : float
        The plain sum of the ε of every fit.
    epsilon, delta : float
        What the ledger will record (zCDP composition, or basic composition for DP-SGD).
    rho : float
        Total ρ of zCDP fits (0 for DP-SGD).
    """

    epsilon_sum: float
    epsilon: float
    delta: float
    rho: float
    n_fits: int

    def __str__(self) -> str:
        return (f"{self.n_fits} fits: sum of epsilons {self.epsilon_sum:.4g}; the ledger records epsilon="
                f"{self.epsilon:.4g}, delta={self.delta:.3g}")


def _check_epsilons(epsilons: Any) -> list[float]:
    try:
        eps = [float(e) for e in epsilons]
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"The 'epsilons' parameter must be a sequence of positive floats. Got {epsilons!r} instead.") from None
    if not eps or any(not math.isfinite(e) or e <= 0 for e in eps):
        raise InvalidParameterError(
            f"The 'epsilons' parameter must be a non-empty sequence of positive floats. Got {epsilons!r} instead.")
    return sorted(eps)


def split(table: pd.DataFrame, holdout_frac: float = 0.2, *, random_state: Any = None
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split real patients at random into (train, holdout) before fitting.

    Fit the generator on ``train`` only; the report compares the synthetic data with ``holdout``.
    The split is independent of the data's values, so it costs no privacy budget.

    Parameters
    ----------
    table : DataFrame
        One row per patient.
    holdout_frac : float in (0, 1), default 0.2
        Share of patients held out (rounded to a whole number of patients).
    random_state : None, int or numpy Generator
        Seeds the permutation.

    Returns
    -------
    (DataFrame, DataFrame)
        ``train`` and ``holdout``, each in the original row order, with the original index (the
        ``patient_id`` of tables from :func:`synthhealth.flatten` or :func:`synthhealth.read_table`)
        and ``attrs``, so that each side still shows one row per patient.

    Raises
    ------
    InvalidParameterError
        If ``holdout_frac`` is outside (0, 1) or leaves one side empty.

    Examples
    --------
    >>> import synthhealth as sh
    >>> train, holdout = sh.split(sh.datasets.load_flchain(), 0.25, random_state=0)
    >>> len(train), len(holdout)
    (5906, 1968)
    """
    if not isinstance(table, pd.DataFrame):
        raise InvalidParameterError(f"The 'table' parameter must be a pandas DataFrame. Got {type(table).__name__} "
                                    "instead.")
    try:
        frac = float(holdout_frac)
    except (TypeError, ValueError):
        frac = float("nan")
    if not 0.0 < frac < 1.0:
        raise InvalidParameterError(f"The 'holdout_frac' parameter must be in (0, 1). Got {holdout_frac!r} instead.")
    n = len(table)
    n_hold = int(round(n * frac))
    if n_hold < 1 or n_hold >= n:
        raise InvalidParameterError(
            f"The 'holdout_frac' parameter leaves an empty side with {n} patients. Got {holdout_frac!r} instead.")
    perm = check_random_state(random_state).permutation(n)
    # the ids stay: fit() and read_table() check them again on each side
    return table.iloc[np.sort(perm[n_hold:])], table.iloc[np.sort(perm[:n_hold])]


def sweep_cost(epsilons: Sequence[float], *, generator: str = "mst", delta: float = 1e-6) -> SweepCost:
    """The privacy cost of a sweep, before it runs.

    Parameters
    ----------
    epsilons : sequence of float
        The ε of each fit of the sweep (positive, finite).
    generator : {"mst", "aim", "dpvae"}, default "mst"
        The generator the sweep fits: zCDP generators (MST, AIM) compose in ρ, DP-VAE by basic
        composition.
    delta : float, default 1e-6
        The δ of each fit, in (0, 1).

    Returns
    -------
    SweepCost
        The plain sum of the ε, the (ε, δ) the ledger will record, the total ρ (0 for DP-VAE) and
        the number of fits.

    Raises
    ------
    InvalidParameterError
        If ``epsilons`` is empty or holds a non-positive or non-finite value, ``generator`` is not
        one of the choices, or (for MST and AIM) ``delta`` is not in (0, 1), or the total ε is
        above :data:`synthhealth.privacy.budget.MAX_EPSILON` (100). For ``"dpvae"``, ``delta`` is
        not checked here (the fits check it).

    Examples
    --------
    >>> c = sweep_cost([0.5, 1.0, 2.0], generator="mst")
    >>> c.epsilon_sum, round(c.epsilon, 3) < 3.5
    (3.5, True)
    """
    eps = _check_epsilons(epsilons)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0.0 < float(delta) < 1.0:
        raise InvalidParameterError(f"The 'delta' parameter must be a float in (0, 1). Got {delta!r} instead.")
    if generator not in _GENERATORS:
        raise InvalidParameterError(
            f"The 'generator' parameter must be one of {sorted(_GENERATORS)}. Got {generator!r} instead.")
    if generator == "dpvae":
        total, rho = float(sum(eps)), 0.0
    else:
        rho = math.fsum(PrivacyBudget(e, delta).rho for e in eps)
        total = cdp_epsilon(rho, delta)
    if total > MAX_EPSILON:
        raise InvalidParameterError(
            f"The 'epsilons' parameter of the sweep must add up to a total epsilon of at most {MAX_EPSILON:g} (the "
            f"sweep is one release; see synthhealth.privacy.budget.MAX_EPSILON). Got epsilons adding up to {total:.4g} "
            "instead.")
    if generator == "dpvae":
        return SweepCost(sum(eps), total, delta * len(eps), 0.0, len(eps))
    return SweepCost(sum(eps), total, delta, rho, len(eps))


@dataclass
class SweepResult:
    """The outcome of :func:`sweep`: one row per ε.

    Attributes
    ----------
    table : DataFrame
        Columns ``epsilon``, ``spent_epsilon`` (of that fit), ``fit_s``, ``tvd1`` (mean 1-way TVD vs
        holdout), ``tvd2`` (mean 2-way TVD), ``tstr_auroc`` (train on synthetic, test on holdout),
        ``trtr_auroc`` (train on real; the reference), ``dcr_auc`` (distance-to-closest-record
        membership attack; 0.5 = chance).
    cost : SweepCost
    ledger : PrivacyLedger
    references : dict
        ``tvd1``/``tvd2`` between the training and holdout data (the sampling-noise floor).
    """

    generator: str
    table: pd.DataFrame
    cost: SweepCost
    ledger: PrivacyLedger
    references: dict[str, float] = field(default_factory=dict)

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """A two-panel chart (fidelity and TSTR AUROC against ε); saved to ``path`` when given.

        Returns the matplotlib Figure.

        Parameters
        ----------
        path : str or Path, optional
            Where to save the chart; the format follows the extension (``.png``, ``.svg``, ``.pdf``).
            ``None``: not saved.

        Returns
        -------
        matplotlib.figure.Figure
            Left: mean 1-way and 2-way TVD against ε (with the real-vs-real 2-way TVD as reference);
            right: TSTR AUROC against ε, with train-on-real and chance (or a note when the schema
            declares no outcome).
        """
        from matplotlib.figure import Figure

        t = self.table
        fig = Figure(figsize=(9, 3.6), dpi=100)
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(t["epsilon"], t["tvd2"], "o-", color="#0072B2", label="mean 2-way TVD")
        ax1.plot(t["epsilon"], t["tvd1"], "s--", color="#E69F00", label="mean 1-way TVD")
        if "tvd2" in self.references:
            ax1.axhline(self.references["tvd2"], color="#0072B2", lw=0.8, ls=":", label="2-way, real vs real")
        ax1.set_xscale("log")
        ax1.set_xlabel("ε (log scale)")
        ax1.set_ylabel("total variation distance (lower is better)")
        ax1.legend(fontsize=8)
        ax1.set_title(f"{self.generator.upper()}: fidelity")
        if t["tstr_auroc"].notna().any():
            ax2.plot(t["epsilon"], t["tstr_auroc"], "o-", color="#009E73", label="train synthetic, test real")
            ax2.axhline(float(t["trtr_auroc"].dropna().iloc[0]) if t["trtr_auroc"].notna().any() else np.nan,
                        color="#555555", ls="--", lw=1, label="train real, test real")
            ax2.axhline(0.5, color="#999999", ls=":", lw=1, label="chance")
            ax2.set_ylabel("AUROC (higher is better)")
            ax2.legend(fontsize=8)
        else:
            ax2.text(0.5, 0.5, "no outcome declared in the schema", ha="center", va="center",
                     transform=ax2.transAxes)
        ax2.set_xscale("log")
        ax2.set_xlabel("ε (log scale)")
        ax2.set_title("clinical utility (TSTR)")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no real records: only aggregate metrics and the ledger totals).

        Returns
        -------
        dict
            ``generator``, ``rows`` (one dict per ε), ``cost``, ``ledger_total``, ``references``.
        """
        from .report.model import jsonable

        return jsonable({"generator": self.generator, "rows": self.table.to_dict(orient="records"),
                         "cost": vars(self.cost), "ledger_total": self.ledger.total().to_dict(),
                         "references": self.references})


def sweep(
    real: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    schema: PatientSchema,
    generator: str = "mst",
    epsilons: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    delta: float = 1e-6,
    ledger: PrivacyLedger | str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    n_synthetic: int | None = None,
    random_state: Any = None,
    progress: bool = True,
    one_row_per_patient: bool = False,
) -> SweepResult:
    """Fit ``generator`` at each ε on ``real`` and measure utility against ``holdout``.

    Parameters
    ----------
    real : DataFrame
        The (training) patients; every fit touches them, so the sweep spends the sum of the budgets.
    holdout : DataFrame
        Patients kept out of fitting, the utility reference.
    schema : PatientSchema
    generator : {"mst", "aim", "dpvae"}, default "mst"
    epsilons : sequence of float
    delta : float, default 1e-6
    ledger : PrivacyLedger, path or None
        Where every fit is charged. A path to an existing ledger must have room for the whole sweep
        (checked before any data is touched); a new path, or ``None``, creates a ledger whose budget
        is exactly the sweep's cost.
    params : mapping, optional
        Other constructor parameters of the generator (e.g. ``{"epochs": 10}`` for DP-VAE).
    n_synthetic : int, optional
        Synthetic patients per fit (default: as many as ``real``).
    random_state : None, int or Generator
        Seeds the fits' noise (NOT for release: use it only on stand-in data) and the metrics.
    progress : bool, default True
    one_row_per_patient : bool, default False
        The caller guarantees one row per patient in ``real``, which has no patient ids (passed to
        every fit; the ledger records the guarantee as the caller's). Tables with ids are checked.

    Returns
    -------
    SweepResult

    Raises
    ------
    BudgetExceededError
        Before any data access, if the ledger cannot afford the sweep.

    Examples
    --------
    >>> import synthhealth as sh
    >>> t = sh.datasets.load_flchain().sample(1000, random_state=0).reset_index(drop=True)
    >>> res = sh.sweep(t.iloc[:700], t.iloc[700:], schema=sh.load_schema("flchain"), epsilons=[1, 4],
    ...                random_state=0, progress=False)
    >>> list(res.table["epsilon"])
    [1.0, 4.0]
    """
    from .report.attacks.distance import dcr_attack
    from .report.data import ReportData
    from .report.utility import one_way_tvds, pairwise_tvd_matrix, tstr

    eps = _check_epsilons(epsilons)
    cost = sweep_cost(eps, generator=generator, delta=delta)
    if not isinstance(schema, PatientSchema):
        raise InvalidParameterError(f"The 'schema' parameter must be a PatientSchema. Got {type(schema).__name__} "
                                    "instead.")
    cls = _GENERATORS[generator]
    need = PrivacyBudget(cost.epsilon, cost.delta)
    if ledger is None:
        led = PrivacyLedger(need)
    elif isinstance(ledger, PrivacyLedger):
        led = ledger
    else:
        p = Path(ledger)
        led = PrivacyLedger.load(p) if p.exists() else PrivacyLedger.open(p, need)
    # the whole sweep must fit before the first fit touches the data
    if generator == "dpvae":
        led.check(epsilon=cost.epsilon, delta=cost.delta)
    else:
        led.check(cost.rho)
    rng = check_random_state(random_state)
    n_syn = int(n_synthetic) if n_synthetic is not None else len(real)
    base = ReportData.from_tables(schema, real, holdout, holdout.iloc[:1])
    hold_codes = base.codes("holdout")
    iu = np.triu_indices(len(base.names), 1)
    refs = {"tvd1": float(one_way_tvds(hold_codes, base.codes("train"), base.sizes).mean()),
            "tvd2": float(pairwise_tvd_matrix(hold_codes, base.codes("train"), base.sizes)[iu].mean())
            if len(base.names) > 1 else float("nan")}
    if progress:
        from tqdm.auto import tqdm
    else:  # tqdm.auto warns in Jupyter without ipywidgets even when disabled
        from tqdm import tqdm

    rows = []
    for e in tqdm(eps, desc=f"sweep {generator}", unit="fit", disable=not progress):
        seed = None if random_state is None else int(rng.integers(2**31 - 1))
        gen = cls(**{**dict(params or {}), "epsilon": e, "delta": delta, "random_state": seed})
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRandomnessWarning)
            gen.fit(real, schema=schema, ledger=led, progress=False, one_row_per_patient=one_row_per_patient)
        fit_s = time.perf_counter() - t0
        syn = gen.sample(n_syn, random_state=None if seed is None else seed + 1)
        data = ReportData.from_tables(schema, real, holdout, syn)
        sc = data.codes("synthetic")
        row: dict[str, Any] = {
            "epsilon": e, "spent_epsilon": gen.ledger_.total(gen.fit_id_).epsilon, "fit_s": round(fit_s, 3),
            "tvd1": float(one_way_tvds(hold_codes, sc, data.sizes).mean()),
            "tvd2": float(pairwise_tvd_matrix(hold_codes, sc, data.sizes)[iu].mean()) if len(iu[0]) else np.nan,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ms, _ = tstr(data, random_state=int(rng.integers(2**31 - 1)), n_boot=20)
            dm, _ = dcr_attack(data, random_state=int(rng.integers(2**31 - 1)), n_boot=20, delta=delta)
        by = {m.key: m for m in ms}
        auroc = by.get("utility.tstr.auroc")
        row["tstr_auroc"] = auroc.value if auroc is not None else np.nan
        row["trtr_auroc"] = auroc.reference if auroc is not None else np.nan
        row["dcr_auc"] = next((m.value for m in dm if m.key == "attacks.dcr.auc"), np.nan)
        rows.append(row)
    table = pd.DataFrame(rows).astype({"tstr_auroc": float, "trtr_auroc": float, "dcr_auc": float})
    return SweepResult(generator, table, cost, led, refs)
