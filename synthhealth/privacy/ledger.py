"""The privacy ledger: an append-only record of every access to private data.

Every mechanism call is *charged before its output is released*: the entry is appended
and (for a file-backed ledger) written to disk atomically before the noisy value is
computed, so a crash mid-fit leaves a valid ledger that records what was measured.

Accounting: zCDP entries compose by adding ρ; the total is converted to (ε, δ) at the
ledger's δ with the tight CKS 2020 conversion. Entries accounted in (ε, δ) directly (e.g.
DP-SGD from an RDP/PRV accountant) compose by basic composition (ε and δ add up), on top
of the zCDP part: conservative, never optimistic.

A file-backed ledger can be shared by several fits on the same data: each fit declares its
planned cost first, and the ledger refuses (``BudgetExceededError``) before any data is
touched when the remaining budget is too small. Concurrent processes are serialised with a
lock file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..exceptions import AccountingError, BudgetExceededError, InvalidParameterError
from .accounting import cdp_epsilon
from .budget import PrivacyBudget

__all__ = ["LedgerEntry", "PrivacyLedger", "LedgerTotal", "LEDGER_FORMAT_VERSION"]

LEDGER_FORMAT = "synthhealth-privacy-ledger"
"""The ``format`` field of every ledger file: :meth:`PrivacyLedger.load` refuses other files."""
LEDGER_FORMAT_VERSION = 1
"""Version of the ledger file format written and read by this release."""
_TOL = 1e-9  # relative slack for float round-off when comparing spent with budget

UNIT = "patient"
"""The privacy unit: the guarantee protects each patient (not each record)."""
NEIGHBOURING = "add or remove one patient (all of their records: one row of the patient table)"
"""The neighbouring relation under which every sensitivity and every cost is stated."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("synthhealth", "numpy", "opendp"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            pass
    return out


@dataclass(frozen=True)
class LedgerEntry:
    """One access to private data.

    Attributes
    ----------
    mechanism : str
        e.g. ``"discrete_gaussian"``, ``"noisy_max"``.
    target : str
        What was measured, in terms of the public schema (``"marginal(age, sex)"``): never data.
    sensitivity : float
        Sensitivity under the neighbouring relation (L2 for Gaussian, L∞ for selection scores).
    scale : float
        Noise scale (σ of the Gaussian, scale of the selection noise).
    rho : float
        zCDP cost (0 for entries accounted in (ε, δ)).
    epsilon, delta : float
        For ``accounting="approx_dp"`` entries: their (ε, δ) cost; else 0.
    accounting : str
        ``"zcdp"`` or ``"approx_dp"``.
    fit_id : str
        The fit this access belongs to (the id returned by :meth:`PrivacyLedger.begin_fit`).
    library : str
        The sampler and its version (``"opendp 0.16.0"``, or seeded numpy: not for release).
    seeded : bool
        Whether the noise came from a seeded generator (reproducible, NOT FOR RELEASE).
    secure : bool
        Whether the sampler is cryptographically secure (OpenDP's samplers, the OS CSPRNG): only
        such entries may back a release. ``False`` for seeded runs and for pseudo-random generators
        seeded from OS entropy (e.g. ``DPVAE(secure_mode=False)``). Defaults to ``False``: a caller
        must say that its sampler is secure.
    time : str
        ISO 8601 UTC.
    """

    mechanism: str
    target: str
    sensitivity: float
    scale: float
    rho: float
    fit_id: str
    library: str
    seeded: bool
    accounting: str = "zcdp"
    epsilon: float = 0.0
    delta: float = 0.0
    time: str = field(default_factory=_now)
    secure: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.secure, bool):
            raise InvalidParameterError(
                f"The 'secure' parameter of LedgerEntry must be a bool. Got {self.secure!r} instead.")
        if self.secure and self.seeded:
            raise InvalidParameterError("The 'secure' parameter of LedgerEntry cannot be True for a seeded entry.")
        if self.accounting not in ("zcdp", "approx_dp"):
            raise InvalidParameterError(
                f"The 'accounting' parameter of LedgerEntry must be 'zcdp' or 'approx_dp'. Got {self.accounting!r} instead.")
        for name in ("rho", "epsilon", "delta", "sensitivity", "scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
                raise InvalidParameterError(
                    f"The {name!r} parameter of LedgerEntry must be a float in [0, inf). Got {v!r} instead.")


@dataclass(frozen=True)
class LedgerTotal:
    """Composed privacy loss of a ledger (or of one fit).

    Returned by :meth:`PrivacyLedger.total`.

    Attributes
    ----------
    rho : float
        Sum of the ρ of the zCDP entries.
    epsilon, delta : float
        The composed (ε, δ) guarantee: zCDP part converted at the ledger's free δ, plus the
        (ε, δ) entries by basic composition.
    n_entries : int
        Number of entries (mechanism calls) counted.
    seeded : bool
        Whether any counted entry used seeded noise (NOT FOR RELEASE).
    secure : bool
        Whether every counted entry used a cryptographically secure sampler (``False`` when there
        are no entries: nothing vouches for a sampler then).
    unit : str
        The privacy unit (``"patient"``).
    neighbouring : str
        The neighbouring relation, in words.
    """

    rho: float
    epsilon: float
    delta: float
    n_entries: int
    seeded: bool
    unit: str = UNIT
    neighbouring: str = NEIGHBOURING
    secure: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form.

        Returns
        -------
        dict
            Every field by name (``rho``, ``epsilon``, ``delta``, ``n_entries``, ``seeded``,
            ``unit``, ``neighbouring``).

        Examples
        --------
        >>> LedgerTotal(0.0, 0.0, 0.0, 0, False).to_dict()["unit"]
        'patient'
        """
        return asdict(self)

    def __str__(self) -> str:
        seeded = " (SEEDED: NOT FOR RELEASE)" if self.seeded else \
            " (INSECURE SAMPLER: NOT FOR RELEASE)" if self.n_entries and not self.secure else ""
        return (f"epsilon={self.epsilon:.4g}, delta={self.delta:.3g} (rho={self.rho:.6g}, "
                f"{self.n_entries} measurements, unit: {self.unit}){seeded}")


class PrivacyLedger:
    """Append-only record of privacy spending against a budget.

    Parameters
    ----------
    budget : PrivacyBudget
        The total budget this ledger may spend (over every fit that uses it).
    path : str or Path, optional
        Where to persist it (JSON, atomic writes). ``None``: in memory only.
    dataset : str, optional
        A free-text label of the protected dataset (never data from it).

    Examples
    --------
    >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
    >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    >>> fit = ledger.begin_fit("example", rho=0.01)
    >>> ledger.charge(LedgerEntry("discrete_gaussian", "marginal(age)", 1.0, 10.0, 0.005, fit, "opendp", False))
    >>> round(ledger.total().rho, 6)
    0.005
    """

    def __init__(self, budget: PrivacyBudget, *, path: str | os.PathLike[str] | None = None,
                 dataset: str | None = None) -> None:
        if not isinstance(budget, PrivacyBudget):
            raise InvalidParameterError(
                f"The 'budget' parameter of PrivacyLedger must be a PrivacyBudget. Got {type(budget).__name__} instead.")
        self.budget = budget
        self.path = Path(path) if path is not None else None
        self.dataset = dataset
        self.created = _now()
        self.entries: list[LedgerEntry] = []
        self.fits: list[dict[str, Any]] = []

    # ------------------------------------------------------------ persistence
    @classmethod
    def open(cls, path: str | os.PathLike[str], budget: PrivacyBudget | None = None) -> PrivacyLedger:
        """Load the ledger at ``path``, or create it with ``budget`` if it does not exist.

        Parameters
        ----------
        path : str or Path
            The ledger file (JSON). A new file is written at once when it does not exist yet.
        budget : PrivacyBudget, optional
            The budget of a new ledger. For an existing file it may be omitted; when given, it must
            equal the budget recorded in the file.

        Returns
        -------
        PrivacyLedger
            The file-backed ledger (every later charge is written to ``path``).

        Raises
        ------
        InvalidParameterError
            If the file does not exist and no budget is given, or if ``budget`` differs from the
            budget recorded in the file (a ledger's budget is fixed when it is created).
        AccountingError
            If the file is not a valid ledger.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = pathlib.Path(tmp.name) / "ledger.json"
        >>> PrivacyLedger.open(path, PrivacyBudget(1.0, 1e-6)).path == path
        True
        >>> PrivacyLedger.open(path).budget.epsilon
        1.0
        >>> tmp.cleanup()
        """
        p = Path(path)
        if p.exists():
            ledger = cls.load(p)
            if budget is not None and (not math.isclose(budget.epsilon, ledger.budget.epsilon, rel_tol=1e-12)
                                       or not math.isclose(budget.delta, ledger.budget.delta, rel_tol=1e-12)):
                raise InvalidParameterError(
                    f"The ledger at {p} has a fixed budget of {ledger.budget}; it cannot be reopened with a different "
                    f"budget ({budget}). Create a new ledger for a new dataset.")
            return ledger
        if budget is None:
            raise InvalidParameterError(f"No ledger at {p}: give a budget to create one.")
        ledger = cls(budget, path=p)
        with ledger._locked():
            if p.exists():  # created concurrently
                return cls.load(p)
            ledger._write()
        return ledger

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrivacyLedger:
        """Read a ledger file (checking its format and version).

        Parameters
        ----------
        path : str or Path
            A ledger file written by this class (:meth:`open`, :meth:`save`).

        Returns
        -------
        PrivacyLedger
            The ledger, backed by ``path``.

        Raises
        ------
        AccountingError
            If the file cannot be read, is not a synthhealth privacy ledger, has another format
            version, or is damaged.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> tmp = tempfile.TemporaryDirectory()
        >>> saved = PrivacyLedger(PrivacyBudget(1.0, 1e-6)).save(pathlib.Path(tmp.name) / "ledger.json")
        >>> PrivacyLedger.load(saved).budget.epsilon
        1.0
        >>> tmp.cleanup()
        """
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AccountingError(f"cannot read the privacy ledger {p}: {type(exc).__name__}") from exc
        ledger = cls._from_doc(doc, str(p))
        ledger.path = p
        return ledger

    @classmethod
    def _from_doc(cls, doc: Any, where: str) -> PrivacyLedger:
        if not isinstance(doc, dict) or doc.get("format") != LEDGER_FORMAT:
            raise AccountingError(f"{where} is not a synthhealth privacy ledger")
        if doc.get("version") != LEDGER_FORMAT_VERSION:
            raise AccountingError(f"{where} has ledger format version {doc.get('version')!r}; this release reads "
                                  f"version {LEDGER_FORMAT_VERSION}")
        try:
            b = doc["budget"]
            ledger = cls(PrivacyBudget(b["epsilon"], b["delta"]), dataset=doc.get("dataset"))
            ledger.created = doc["created"]
            ledger.entries = [LedgerEntry(**_entry_fields(e)) for e in doc["entries"]]
            ledger.fits = list(doc["fits"])
        except (KeyError, TypeError, InvalidParameterError) as exc:
            raise AccountingError(f"{where} is a damaged privacy ledger ({type(exc).__name__}: {exc})") from exc
        return ledger

    def to_dict(self) -> dict[str, Any]:
        """The ledger document (what is written to disk).

        Returns
        -------
        dict
            JSON-serialisable: format and version, privacy unit, accounting method, dataset label,
            budget, total spent, fits and entries.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> doc = PrivacyLedger(PrivacyBudget(1.0, 1e-6)).to_dict()
        >>> doc["format"], doc["entries"]
        ('synthhealth-privacy-ledger', [])
        """
        return {
            "format": LEDGER_FORMAT,
            "version": LEDGER_FORMAT_VERSION,
            "unit": UNIT,
            "neighbouring": NEIGHBOURING,
            "accounting": "zCDP composition (sum of rho), converted to (epsilon, delta) with the tight "
                          "Canonne-Kamath-Steinke 2020 conversion; (epsilon, delta) entries add on top "
                          "(basic composition)",
            "dataset": self.dataset,
            "created": self.created,
            "budget": self.budget.to_dict(),
            "spent": self.total().to_dict(),
            "fits": self.fits,
            "entries": [asdict(e) for e in self.entries],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PrivacyLedger:
        """Rebuild an in-memory ledger from :meth:`to_dict` output.

        Parameters
        ----------
        doc : dict
            A ledger document, as returned by :meth:`to_dict` (or read from a ledger file).

        Returns
        -------
        PrivacyLedger
            An in-memory ledger (``path`` is ``None``) with the document's budget, fits and entries.

        Raises
        ------
        AccountingError
            If ``doc`` is not a ledger document of this format version, or is damaged.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> PrivacyLedger.from_dict(ledger.to_dict()).budget == ledger.budget
        True
        """
        return cls._from_doc(doc, "ledger document")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a copy of the ledger to ``path`` (atomic).

        The ledger itself stays backed by its own file (if any): later charges are not written to
        the copy.

        Parameters
        ----------
        path : str or Path
            Where to write the copy (JSON); missing parent folders are created.

        Returns
        -------
        Path
            ``path``.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> tmp = tempfile.TemporaryDirectory()
        >>> PrivacyLedger(PrivacyBudget(1.0, 1e-6)).save(pathlib.Path(tmp.name) / "copy.json").name
        'copy.json'
        >>> tmp.cleanup()
        """
        p = Path(path)
        _atomic_write(p, json.dumps(self.to_dict(), indent=1))
        return p

    def _write(self) -> None:
        if self.path is not None:
            _atomic_write(self.path, json.dumps(self.to_dict(), indent=1))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            try:
                import fcntl

                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - non-POSIX: single-process use only
                pass
            try:
                yield
            finally:
                with contextlib.suppress(ImportError, OSError):
                    import fcntl

                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Re-read the file (another process may have charged it)."""
        if self.path is not None and self.path.exists():
            other = PrivacyLedger.load(self.path)
            self.entries, self.fits, self.created = other.entries, other.fits, other.created

    # --------------------------------------------------------------- spending
    def _approx(self, fit_id: str | None = None) -> tuple[float, float]:
        entries = [e for e in self.entries if e.accounting == "approx_dp" and (fit_id is None or e.fit_id == fit_id)]
        return math.fsum(e.epsilon for e in entries), math.fsum(e.delta for e in entries)

    def total(self, fit_id: str | None = None) -> LedgerTotal:
        """Composed spending: all entries, or those of one fit.

        zCDP entries are added up in ρ and converted at the part of the ledger's δ that the
        (ε, δ) entries leave free; (ε, δ) entries add their ε and δ on top (basic composition).

        Parameters
        ----------
        fit_id : str, optional
            Only the entries of this fit (as returned by :meth:`begin_fit`). ``None``: every entry.

        Returns
        -------
        LedgerTotal
            ρ, the composed (ε, δ), the number of entries, and whether any of them was seeded.

        Raises
        ------
        AccountingError
            If the (ε, δ) entries use up the ledger's δ while zCDP entries exist.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> PrivacyLedger(PrivacyBudget(1.0, 1e-6)).total().epsilon
        0.0
        """
        entries = [e for e in self.entries if fit_id is None or e.fit_id == fit_id]
        rho = math.fsum(e.rho for e in entries if e.accounting == "zcdp")
        eps_extra, delta_extra = self._approx(fit_id)
        delta_z = self.budget.delta - self._approx()[1]
        if rho > 0 and delta_z <= 0:
            raise AccountingError("the (epsilon, delta) entries use up the ledger's delta: zCDP spending cannot be stated")
        eps = (cdp_epsilon(rho, delta_z) if rho > 0 else 0.0) + eps_extra
        delta = (delta_z if rho > 0 else 0.0) + delta_extra
        return LedgerTotal(rho, eps, delta, len(entries), any(e.seeded for e in entries),
                           secure=bool(entries) and all(e.secure for e in entries))

    def spent_rho(self) -> float:
        """Total ρ spent, with (ε, δ) entries converted conservatively (they cannot be; see remaining_rho).

        Returns
        -------
        float
            The sum of the ρ of the zCDP entries; (ε, δ) entries are not included.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> PrivacyLedger(PrivacyBudget(1.0, 1e-6)).spent_rho()
        0.0
        """
        return math.fsum(e.rho for e in self.entries if e.accounting == "zcdp")

    def remaining_rho(self) -> float:
        """ρ still available for zCDP mechanisms.

        (ε, δ) entries consume the budget by basic composition: the remaining zCDP budget is the ρ
        that fits in the (ε, δ) left after subtracting their ε and δ.

        Returns
        -------
        float
            The remaining ρ, ≥ 0.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> ledger.remaining_rho() == ledger.budget.rho
        True
        """
        eps_extra = math.fsum(e.epsilon for e in self.entries if e.accounting == "approx_dp")
        delta_extra = math.fsum(e.delta for e in self.entries if e.accounting == "approx_dp")
        if eps_extra == 0 and delta_extra == 0:
            cap = self.budget.rho
        else:
            eps_left = self.budget.epsilon - eps_extra
            delta_left = self.budget.delta - delta_extra
            if eps_left <= 0 or delta_left <= 0:
                return 0.0
            cap = PrivacyBudget(eps_left, delta_left).rho
        return max(0.0, cap - self.spent_rho())

    def remaining_epsilon(self) -> float:
        """ε still available to zCDP fits (at the ledger's δ), for people who think in ε rather than ρ.

        Returns
        -------
        float
            The ε that :meth:`remaining_rho` guarantees at the ledger's δ; 0 when nothing is left.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> round(PrivacyLedger(PrivacyBudget(2.0, 1e-6)).remaining_epsilon(), 6)
        2.0
        """
        rho = self.remaining_rho()
        return PrivacyBudget.from_rho(rho, self.budget.delta).epsilon if rho > 0 else 0.0

    def check(self, rho: float = 0.0, *, epsilon: float = 0.0, delta: float = 0.0) -> None:
        """Raise :class:`BudgetExceededError` if spending ``rho`` (zCDP) or ``(epsilon, delta)`` more
        would exceed the budget.

        Nothing is recorded: this only checks. When ``epsilon`` or ``delta`` is positive, the
        (ε, δ) cost is checked and ``rho`` is ignored.

        Parameters
        ----------
        rho : float, default 0.0
            zCDP cost to check, ≥ 0.
        epsilon, delta : float, default 0.0
            (ε, δ) cost to check (entries accounted by basic composition), ≥ 0.

        Returns
        -------
        None
            Returns normally when the spending fits in the remaining budget.

        Raises
        ------
        BudgetExceededError
            If the spending would exceed the ledger's budget (the message says what remains).
        InvalidParameterError
            If a cost is negative, infinite or not a number.

        Examples
        --------
        >>> from synthhealth.exceptions import BudgetExceededError
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> ledger.check(ledger.budget.rho / 2)
        >>> try:
        ...     ledger.check(2 * ledger.budget.rho)
        ... except BudgetExceededError:
        ...     print("refused")
        refused
        """
        for name, v in (("rho", rho), ("epsilon", epsilon), ("delta", delta)):
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise InvalidParameterError(f"The {name!r} parameter must be a float in [0, inf). Got {v!r} instead.")
        where = f" ({self.path})" if self.path else ""
        if epsilon > 0 or delta > 0:
            eps_a, delta_a = self._approx()
            delta_left = self.budget.delta - delta_a - delta
            rho_spent = self.spent_rho()
            eps_after = (cdp_epsilon(rho_spent, delta_left) if rho_spent > 0 and delta_left > 0 else 0.0) + eps_a + epsilon
            if delta_left < 0 or (rho_spent > 0 and delta_left <= 0) or eps_after > self.budget.epsilon * (1 + _TOL):
                raise BudgetExceededError(
                    f"privacy budget exceeded{where}: this needs epsilon={epsilon:.4g}, delta={delta:.3g} on top of "
                    f"what was spent, which would exceed the ledger's {self.budget}. No data was accessed.")
            return
        remaining = self.remaining_rho()
        if rho > remaining * (1 + _TOL) + 1e-15:
            left = PrivacyBudget.from_rho(remaining, self.budget.delta).epsilon if remaining > 0 else 0.0
            need = PrivacyBudget.from_rho(rho, self.budget.delta).epsilon if rho > 0 else 0.0
            raise BudgetExceededError(
                f"privacy budget exceeded{where}: this needs epsilon={need:.4g} (rho={rho:.6g}) but only "
                f"epsilon={left:.4g} (rho={remaining:.6g}) of the ledger's {self.budget} remains. "
                "No data was accessed.")

    def begin_fit(self, generator: str, *, rho: float, epsilon: float | None = None, delta: float | None = None,
                  schema_hash: str | None = None, seeded: bool = False, accounting: str = "zcdp") -> str:
        """Declare a fit and its planned cost; refuses before any data is touched if it does not fit.

        Parameters
        ----------
        generator : str
            Name of the generator (e.g. ``"mst"``), recorded with the fit.
        rho : float
            Planned zCDP cost (``accounting="zcdp"``).
        epsilon, delta : float, optional
            The fit's target; for ``accounting="approx_dp"`` (e.g. DP-SGD) the planned (ε, δ) cost.
        schema_hash : str, optional
            Hash of the public schema the fit uses (:attr:`PatientSchema.hash`), recorded with the fit.
        seeded : bool, default False
            Whether the fit draws its noise from a seeded generator (recorded: NOT FOR RELEASE).
        accounting : {"zcdp", "approx_dp"}
            How the fit's cost is accounted: in ρ (zCDP) or in (ε, δ) (basic composition).

        Returns
        -------
        str
            The fit id that every entry of this fit carries.

        Raises
        ------
        BudgetExceededError
            If the planned cost does not fit in the remaining budget (nothing is recorded).
        InvalidParameterError
            If ``accounting`` is not one of the two choices, or a cost is invalid.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> fit_id = ledger.begin_fit("mst", rho=0.01, schema_hash="abc", seeded=True)
        >>> ledger.fits[0]["status"], ledger.fits[0]["seeded"]
        ('running', True)
        """
        if accounting not in ("zcdp", "approx_dp"):
            raise InvalidParameterError(
                f"The 'accounting' parameter of begin_fit must be 'zcdp' or 'approx_dp'. Got {accounting!r} instead.")
        with self._locked():
            self._refresh()
            if accounting == "zcdp":
                self.check(rho)
            else:
                self.check(epsilon=float(epsilon or 0.0), delta=float(delta or 0.0))
            fit_id = uuid.uuid4().hex[:12]
            self.fits.append({
                "fit_id": fit_id, "generator": generator, "accounting": accounting, "planned_rho": rho,
                "epsilon": epsilon, "delta": delta, "schema_hash": schema_hash, "seeded": seeded, "started": _now(),
                "finished": None, "status": "running", "versions": _versions(),
            })
            self._write()
        return fit_id

    def charge(self, entry: LedgerEntry) -> None:
        """Record one mechanism call. Call it *before* releasing the mechanism's output.

        Parameters
        ----------
        entry : LedgerEntry
            The mechanism call; its ``fit_id`` must come from :meth:`begin_fit` on this ledger.

        Returns
        -------
        None
            The entry is appended (and, for a file-backed ledger, written to disk).

        Raises
        ------
        BudgetExceededError
            If the entry would exceed the ledger's budget or its fit's planned cost.
        AccountingError
            If ``entry.fit_id`` is not a fit of this ledger.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> fit = ledger.begin_fit("example", rho=0.01)
        >>> ledger.charge(LedgerEntry("discrete_gaussian", "marginal(age)", 1.0, 10.0, 0.005, fit, "opendp", False))
        >>> len(ledger.entries)
        1
        """
        with self._locked():
            self._refresh()
            fit = self._fit(entry.fit_id)
            if entry.accounting == "zcdp":
                self.check(entry.rho)
                used = math.fsum(e.rho for e in self.entries if e.fit_id == entry.fit_id) + entry.rho
                if used > fit["planned_rho"] * (1 + _TOL) + 1e-15:
                    raise BudgetExceededError(
                        f"fit {entry.fit_id} would spend rho={used:.6g}, more than it planned ({fit['planned_rho']:.6g})")
            else:
                self.check(epsilon=entry.epsilon, delta=entry.delta)
                eps_used, delta_used = self._approx(entry.fit_id)
                if fit.get("accounting") == "approx_dp" and (
                        eps_used + entry.epsilon > (fit["epsilon"] or 0.0) * (1 + _TOL) + 1e-15
                        or delta_used + entry.delta > (fit["delta"] or 0.0) * (1 + _TOL) + 1e-18):
                    raise BudgetExceededError(
                        f"fit {entry.fit_id} would spend more (epsilon, delta) than it planned "
                        f"({fit['epsilon']}, {fit['delta']})")
            self.entries.append(entry)
            self._write()

    def end_fit(self, fit_id: str, status: str = "done") -> None:
        """Mark a fit as finished (``"done"``) or failed.

        Parameters
        ----------
        fit_id : str
            The id returned by :meth:`begin_fit`.
        status : str, default "done"
            The fit's final status (``"done"``, or ``"failed"`` when it stopped with an error).

        Returns
        -------
        None
            The fit's status and end time are recorded (and written to disk for a file-backed ledger).

        Raises
        ------
        AccountingError
            If ``fit_id`` is not a fit of this ledger.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> fit = ledger.begin_fit("example", rho=0.01)
        >>> ledger.end_fit(fit)
        >>> ledger.fits[0]["status"]
        'done'
        """
        with self._locked():
            self._refresh()
            fit = self._fit(fit_id)
            fit["finished"] = _now()
            fit["status"] = status
            self._write()

    def record_patient_ids(self, fit_id: str, basis: str) -> None:
        """Record how the fit's table is known to hold one row per patient (the privacy unit).

        Parameters
        ----------
        fit_id : str
            The id returned by :meth:`begin_fit`.
        basis : {"checked", "attested"}
            ``"checked"``: the table's patient ids were checked to be unique. ``"attested"``: the
            table has no ids and the caller guaranteed one row per patient
            (``one_row_per_patient=True``); the guarantee rests on that statement, and the report
            says so.

        Returns
        -------
        None
            Stored as the fit's ``patient_ids`` (and written to disk for a file-backed ledger).

        Raises
        ------
        InvalidParameterError
            If ``basis`` is not one of the two choices.
        AccountingError
            If ``fit_id`` is not a fit of this ledger.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> fit = ledger.begin_fit("example", rho=0.01)
        >>> ledger.record_patient_ids(fit, "attested")
        >>> ledger.fits[0]["patient_ids"]
        'attested'
        """
        if basis not in ("checked", "attested"):
            raise InvalidParameterError(
                f"The 'basis' parameter of record_patient_ids must be 'checked' or 'attested'. Got {basis!r} instead.")
        with self._locked():
            self._refresh()
            self._fit(fit_id)["patient_ids"] = basis
            self._write()

    def _fit(self, fit_id: str) -> dict[str, Any]:
        for fit in self.fits:
            if fit["fit_id"] == fit_id:
                return fit
        raise AccountingError(f"unknown fit id {fit_id!r}: call begin_fit first")

    @property
    def seeded(self) -> bool:
        """Whether any entry used seeded (not-for-release) randomness."""
        return any(e.seeded for e in self.entries)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"PrivacyLedger(budget={self.budget}{where}, spent: {self.total()})"


def _entry_fields(e: Any) -> dict[str, Any]:
    """An entry's fields as stored; ledgers written before ``secure`` existed: only OpenDP entries were secure."""
    if not isinstance(e, dict):
        raise TypeError(f"a ledger entry must be an object, got {type(e).__name__}")
    if "secure" not in e:
        e = {**e, "secure": (not e.get("seeded", True)) and str(e.get("library", "")).startswith("opendp")}
    return e


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
