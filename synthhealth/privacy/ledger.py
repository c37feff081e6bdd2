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
lock file, and a running fit *reserves* its planned cost in the file until it ends: a second
fit started meanwhile sees the reservation and is refused before it touches data. A
reservation records the process (pid, host) that holds it; the reservation of a process that
died mid-fit is reported as stale and still counts against the budget until it is cleared
explicitly (:meth:`PrivacyLedger.clear_stale`, ``synthhealth ledger clear-stale``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..exceptions import AccountingError, BudgetExceededError, InvalidParameterError
from .accounting import cdp_epsilon
from .budget import PrivacyBudget

__all__ = ["LedgerEntry", "PrivacyLedger", "LedgerTotal", "Reservation", "LEDGER_FORMAT_VERSION"]

LEDGER_FORMAT = "synthhealth-privacy-ledger"
"""The ``format`` field of every ledger file: :meth:`PrivacyLedger.load` refuses other files."""
LEDGER_FORMAT_VERSION = 1
"""Version of the ledger file format written and read by this release."""
_FIT_TIMES = ("started", "finished", "cleared")
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


def _day(stamp: Any) -> Any:
    """An ISO 8601 time at day resolution (``"2026-12-08"``); other values unchanged."""
    return stamp[:10] if isinstance(stamp, str) and len(stamp) >= 10 else stamp


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a Linux process; ``None`` where unknown."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text(encoding="ascii", errors="replace")
        fields = text.rpartition(")")[2].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _owner() -> dict[str, Any]:
    """Who holds a reservation: this process (pid, host, and on Linux its boot and start time)."""
    owner: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    boot, stat = _boot_id(), _proc_stat(os.getpid())
    if boot:
        owner["boot_id"] = boot
    if stat is not None:
        owner["process_start"] = stat[1]
    return owner


def _check_fit_record(fit: Any) -> None:
    """Raise TypeError unless ``fit`` has the shape of a ledger's fit record (a damaged file)."""
    if not isinstance(fit, dict):
        raise TypeError(f"a fit record must be an object, got {type(fit).__name__}")
    for k in ("fit_id", "status"):
        if not isinstance(fit.get(k), str):
            raise TypeError(f"the {k!r} of a fit record must be a string")
    for k in ("planned_rho", "epsilon", "delta"):
        v = fit.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
            raise TypeError(f"the {k!r} of a fit record must be a non-negative number")
    for k in ("accounting", "generator", "started", "finished", "cleared", "cleared_reason"):
        if fit.get(k) is not None and not isinstance(fit[k], str):
            raise TypeError(f"the {k!r} of a fit record must be a string")


def _owner_state(owner: Any) -> tuple[str, str]:
    """``("live" | "stale" | "unknown", why)`` for the process that holds a reservation.

    ``stale`` only when the process is proven gone (same host: no such pid, a zombie, another
    process now under that pid, or a reboot since); ``unknown`` when it cannot be checked.
    """
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or not owner.get("host"):
        return "unknown", "no owner recorded (written by an older release, or a copy without it)"
    pid, host = owner["pid"], str(owner["host"])
    if host != socket.gethostname():
        return "unknown", f"process {pid} on another host ({host}): cannot be checked from here"
    if os.name != "posix":  # pragma: no cover - os.kill(pid, 0) is not a probe on Windows
        return "unknown", f"process {pid} on {host}: cannot be checked on this platform"
    boot = _boot_id()
    if owner.get("boot_id") and boot and owner["boot_id"] != boot:
        return "stale", f"process {pid} on {host} ran before the machine was restarted"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "stale", f"process {pid} on {host} is gone"
    except PermissionError:
        pass  # it exists (another user's)
    except OSError as exc:  # pragma: no cover
        return "unknown", f"process {pid} on {host}: cannot be checked ({type(exc).__name__})"
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] in ("Z", "X"):
            return "stale", f"process {pid} on {host} has exited"
        if owner.get("process_start") is not None and stat[1] != owner["process_start"]:
            return "stale", f"process {pid} on {host} is gone (its pid now belongs to another process)"
    return "live", f"process {pid} on {host} is running"


@dataclass(frozen=True)
class Reservation:
    """The planned cost that a running fit holds in a ledger (returned by :meth:`PrivacyLedger.reservations`).

    Attributes
    ----------
    fit_id, generator : str
        The fit holding it.
    accounting : str
        ``"zcdp"`` (the reservation is ``rho``) or ``"approx_dp"`` (``epsilon``, ``delta``).
    rho, epsilon, delta : float
        What is still reserved: the planned cost minus what the fit has charged so far.
    state : str
        ``"live"`` (its process is running), ``"stale"`` (its process is proven gone: the fit
        crashed) or ``"unknown"`` (cannot be checked from here: another host, or no owner recorded).
    reason : str
        The state, in words (process id and host).
    started : str or None
        When the fit began.
    """

    fit_id: str
    generator: str
    accounting: str
    rho: float
    epsilon: float
    delta: float
    state: str
    reason: str
    started: str | None = None

    def __str__(self) -> str:
        cost = f"rho={self.rho:.6g}" if self.accounting == "zcdp" else f"epsilon={self.epsilon:.4g}, delta={self.delta:.3g}"
        return f"fit {self.fit_id} ({self.generator}) reserves {cost}: {self.state.upper()}, {self.reason}"


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
    n_reserved : int
        Running fits counted that hold a reservation (their planned cost not charged yet).
    n_stale : int
        Of those, the reservations whose process is proven gone (the fit crashed). A stale
        reservation still counts against the budget until it is cleared
        (:meth:`PrivacyLedger.clear_stale`).
    reserved_rho : float
        ρ reserved by running zCDP fits (on top of ``rho``).
    reserved_epsilon, reserved_delta : float
        (ε, δ) reserved by running (ε, δ) fits (on top of ``epsilon`` and ``delta``).
    committed_epsilon, committed_delta : float or None
        The (ε, δ) of the entries *and* the reservations, as the budget check counts them;
        ``None`` when nothing is reserved (then it is ``epsilon``, ``delta``).

    ``rho``, ``epsilon`` and ``delta`` are what the entries spent: the privacy loss of what was
    measured. The budget check counts the reservations too.
    """

    rho: float
    epsilon: float
    delta: float
    n_entries: int
    seeded: bool
    unit: str = UNIT
    neighbouring: str = NEIGHBOURING
    secure: bool = False
    n_reserved: int = 0
    n_stale: int = 0
    reserved_rho: float = 0.0
    reserved_epsilon: float = 0.0
    reserved_delta: float = 0.0
    committed_epsilon: float | None = None
    committed_delta: float | None = None

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
        text = (f"epsilon={self.epsilon:.4g}, delta={self.delta:.3g} (rho={self.rho:.6g}, "
                f"{self.n_entries} measurements, unit: {self.unit}){seeded}")
        if self.n_reserved:
            parts = ([f"rho={self.reserved_rho:.6g}"] if self.reserved_rho else []) + (
                [f"epsilon={self.reserved_epsilon:.4g}, delta={self.reserved_delta:.3g}"]
                if self.reserved_epsilon or self.reserved_delta else [])
            text += (f"; {self.n_reserved} running fit{'s reserve' if self.n_reserved > 1 else ' reserves'} "
                     f"{' and '.join(parts) or 'nothing more'}")
            if self.committed_epsilon is not None:
                text += f" (committed: epsilon={self.committed_epsilon:.4g}, delta={self.committed_delta:.3g})"
            if self.n_stale:
                text += (f"; {self.n_stale} of them STALE (the process is gone): it counts as spent until "
                         "cleared with `synthhealth ledger clear-stale`")
        return text


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
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, or not UTF-8 text
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
            for fit in ledger.fits:
                _check_fit_record(fit)
        except (KeyError, TypeError, InvalidParameterError) as exc:
            raise AccountingError(f"{where} is a damaged privacy ledger ({type(exc).__name__}: {exc})") from exc
        return ledger

    def to_dict(self, *, times: str = "seconds") -> dict[str, Any]:
        """The ledger document (what is written to disk).

        Parameters
        ----------
        times : {"seconds", "day"}, default "seconds"
            ``"seconds"``: every time as recorded (the ledger file). ``"day"``: the copy for files
            that are shipped (``model.json``, reports): every time cut to its UTC date and the
            processes that held reservations dropped, so that no fit duration or per-measurement
            timing (which grows with the number of patients) can be read from it.

        Returns
        -------
        dict
            JSON-serialisable: format and version, privacy unit, accounting method, dataset label,
            budget, total spent, fits and entries.

        Raises
        ------
        InvalidParameterError
            If ``times`` is not one of the two choices.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> doc = PrivacyLedger(PrivacyBudget(1.0, 1e-6)).to_dict()
        >>> doc["format"], doc["entries"]
        ('synthhealth-privacy-ledger', [])
        """
        if times not in ("seconds", "day"):
            raise InvalidParameterError(
                f"The 'times' parameter of PrivacyLedger.to_dict must be 'seconds' or 'day'. Got {times!r} instead.")
        fits: list[dict[str, Any]] = self.fits
        entries = [asdict(e) for e in self.entries]
        created = self.created
        if times == "day":
            fits = [{k: (_day(v) if k in _FIT_TIMES else v) for k, v in f.items() if k != "owner"} for f in self.fits]
            entries = [{**e, "time": _day(e["time"])} for e in entries]
            created = _day(created)
        return {
            "format": LEDGER_FORMAT,
            "version": LEDGER_FORMAT_VERSION,
            "unit": UNIT,
            "neighbouring": NEIGHBOURING,
            "accounting": "zCDP composition (sum of rho), converted to (epsilon, delta) with the tight "
                          "Canonne-Kamath-Steinke 2020 conversion; (epsilon, delta) entries add on top "
                          "(basic composition)",
            "dataset": self.dataset,
            "created": created,
            "budget": self.budget.to_dict(),
            "spent": self.total().to_dict(),
            "fits": fits,
            "entries": entries,
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

    def _held(self, fit: dict[str, Any]) -> tuple[float, float, float]:
        """(ρ, ε, δ) still reserved by a running fit: its planned cost minus what it has charged."""
        if fit.get("status") != "running":
            return 0.0, 0.0, 0.0
        fid = fit.get("fit_id")
        if fit.get("accounting", "zcdp") == "approx_dp":
            eps_used, delta_used = self._approx(fid)
            return (0.0, max(0.0, float(fit.get("epsilon") or 0.0) - eps_used),
                    max(0.0, float(fit.get("delta") or 0.0) - delta_used))
        used = math.fsum(e.rho for e in self.entries if e.fit_id == fid and e.accounting == "zcdp")
        return max(0.0, float(fit.get("planned_rho") or 0.0) - used), 0.0, 0.0

    def _committed(self, exclude_fit: str | None = None) -> tuple[float, float, float]:
        """(ρ of the zCDP part, ε and δ of the (ε, δ) part) of every entry plus every reservation
        (live, stale or unknown), but the reservation of ``exclude_fit``."""
        rho, eps, delta = self.spent_rho(), *self._approx()
        for fit in self.fits:
            if fit.get("fit_id") != exclude_fit:
                r, e, d = self._held(fit)
                rho, eps, delta = rho + r, eps + e, delta + d
        return rho, eps, delta

    def reservations(self) -> list[Reservation]:
        """The planned costs held by running fits, with the state of the process that holds each.

        A fit reserves its planned cost at :meth:`begin_fit` and releases what it has not charged
        at :meth:`end_fit`. A fit whose process died (killed, crashed machine) never ends: its
        reservation is ``"stale"``, and it keeps counting against the budget until
        :meth:`clear_stale` (``synthhealth ledger clear-stale``) clears it. The measurements it
        charged before dying stay in the ledger either way.

        Returns
        -------
        list of Reservation
            One per running fit, in the order the fits began.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        >>> fit = ledger.begin_fit("example", rho=0.01)
        >>> [(r.fit_id == fit, r.rho, r.state) for r in ledger.reservations()]
        [(True, 0.01, 'live')]
        """
        out = []
        for fit in self.fits:
            if fit.get("status") != "running":
                continue
            rho, eps, delta = self._held(fit)
            state, reason = _owner_state(fit.get("owner"))
            out.append(Reservation(str(fit.get("fit_id")), str(fit.get("generator")), fit.get("accounting", "zcdp"),
                                   rho, eps, delta, state, reason, fit.get("started")))
        return out

    def stale_reservations(self) -> list[Reservation]:
        """The reservations of fits whose process is proven gone (see :meth:`reservations`).

        Returns
        -------
        list of Reservation
            Those with ``state == "stale"``.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> PrivacyLedger(PrivacyBudget(1.0, 1e-6)).stale_reservations()
        []
        """
        return [r for r in self.reservations() if r.state == "stale"]

    def clear_stale(self, fit_ids: list[str] | tuple[str, ...] | None = None) -> list[Reservation]:
        """Release the reservations of fits that will never end (the explicit recovery after a crash).

        The fits are marked ``"abandoned"``; the measurements they charged stay in the ledger and
        keep counting. Only the part of their planned cost that they never charged is released.

        Parameters
        ----------
        fit_ids : list of str, optional
            ``None``: every stale reservation (process proven gone). Given: exactly these fits,
            which may also be reservations whose process cannot be checked from here (another host,
            or a ledger written by an older release): the caller vouches that they are not running.
            A reservation whose process is running is never cleared.

        Returns
        -------
        list of Reservation
            The reservations released (as they were before).

        Raises
        ------
        InvalidParameterError
            If a given fit id is not a running fit of this ledger, or its process is running.

        Examples
        --------
        >>> from synthhealth.privacy import PrivacyBudget, PrivacyLedger
        >>> PrivacyLedger(PrivacyBudget(1.0, 1e-6)).clear_stale()
        []
        """
        with self._locked():
            self._refresh()
            held = {r.fit_id: r for r in self.reservations()}
            if fit_ids is None:
                chosen = [r for r in held.values() if r.state == "stale"]
            else:
                chosen = []
                for fid in fit_ids:
                    r = held.get(fid)
                    if r is None:
                        raise InvalidParameterError(f"fit {fid!r} holds no reservation in this ledger "
                                                    "(unknown, or not running)")
                    if r.state == "live":
                        raise InvalidParameterError(f"fit {fid!r} is still running ({r.reason}): its reservation "
                                                    "cannot be cleared")
                    chosen.append(r)
            ids = {r.fit_id for r in chosen}
            for fit in self.fits:
                if fit.get("fit_id") in ids:
                    fit["status"] = "abandoned"
                    fit["cleared"] = _now()
                    fit["cleared_reason"] = held[fit["fit_id"]].reason
            if chosen:
                self._write()
        return chosen

    def total(self, fit_id: str | None = None) -> LedgerTotal:
        """Composed spending: all entries, or those of one fit, and what running fits reserve.

        zCDP entries are added up in ρ and converted at the part of the ledger's δ that the
        (ε, δ) entries leave free; (ε, δ) entries add their ε and δ on top (basic composition).
        The reservations of running fits are reported apart (``n_reserved``, ``n_stale``,
        ``reserved_*``, ``committed_*``): they are not privacy loss yet, but the budget check
        counts them.

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
        reserved = [r for r in self.reservations() if fit_id is None or r.fit_id == fit_id]
        extra: dict[str, Any] = {}
        if reserved:
            r_rho = math.fsum(r.rho for r in reserved)
            r_eps, r_delta = math.fsum(r.epsilon for r in reserved), math.fsum(r.delta for r in reserved)
            all_delta_z = self.budget.delta - self._committed()[2]
            c_rho = rho + r_rho
            c_eps = eps_extra + r_eps + (cdp_epsilon(c_rho, all_delta_z) if c_rho > 0 and all_delta_z > 0 else
                                         math.inf if c_rho > 0 else 0.0)
            c_delta = delta_extra + r_delta + (max(all_delta_z, 0.0) if c_rho > 0 else 0.0)
            extra = {"n_reserved": len(reserved), "n_stale": sum(r.state == "stale" for r in reserved),
                     "reserved_rho": r_rho, "reserved_epsilon": r_eps, "reserved_delta": r_delta,
                     "committed_epsilon": c_eps, "committed_delta": c_delta}
        return LedgerTotal(rho, eps, delta, len(entries), any(e.seeded for e in entries),
                           secure=bool(entries) and all(e.secure for e in entries), **extra)

    def spent_rho(self) -> float:
        """Total ρ spent, with (ε, δ) entries converted conservatively (they cannot be; see remaining_rho).

        Returns
        -------
        float
            The sum of the ρ of the zCDP entries; (ε, δ) entries and reservations are not included.

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
        that fits in the (ε, δ) left after subtracting their ε and δ. The reservations of running
        fits (stale ones included, until cleared) are subtracted too.

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
        return self._remaining_rho(None)

    def _remaining_rho(self, exclude_fit: str | None) -> float:
        rho_c, eps_extra, delta_extra = self._committed(exclude_fit)
        if eps_extra == 0 and delta_extra == 0:
            cap = self.budget.rho
        else:
            eps_left = self.budget.epsilon - eps_extra
            delta_left = self.budget.delta - delta_extra
            if eps_left <= 0 or delta_left <= 0:
                return 0.0
            cap = PrivacyBudget(eps_left, delta_left).rho
        return max(0.0, cap - rho_c)

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
        (ε, δ) cost is checked and ``rho`` is ignored. What running fits reserve counts as spent.

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
        self._check(rho, epsilon, delta, None, "No data was accessed.")

    def _reserved_note(self, exclude_fit: str | None) -> str:
        held = [r for r in self.reservations() if r.fit_id != exclude_fit]
        if not held:
            return ""
        stale = [r for r in held if r.state == "stale"]
        note = (f" {len(held)} running fit{'s' if len(held) > 1 else ''} ({', '.join(r.fit_id for r in held)}) "
                f"reserve{'s' if len(held) == 1 else ''} part of it")
        if stale:
            note += (f"; {len(stale)} of them {'is' if len(stale) == 1 else 'are'} STALE (the process is gone): "
                     "run `synthhealth ledger status` and `synthhealth ledger clear-stale` on this ledger")
        return note + "."

    def _check(self, rho: float, epsilon: float, delta: float, exclude_fit: str | None,
               after: str | Callable[[], str]) -> None:
        """:meth:`check`, counting every reservation but ``exclude_fit``'s; ``after`` ends the message."""
        for name, v in (("rho", rho), ("epsilon", epsilon), ("delta", delta)):
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise InvalidParameterError(f"The {name!r} parameter must be a float in [0, inf). Got {v!r} instead.")
        where = f" ({self.path})" if self.path else ""
        if epsilon > 0 or delta > 0:
            rho_c, eps_a, delta_a = self._committed(exclude_fit)
            delta_left = self.budget.delta - delta_a - delta
            eps_after = (cdp_epsilon(rho_c, delta_left) if rho_c > 0 and delta_left > 0 else 0.0) + eps_a + epsilon
            if delta_left < 0 or (rho_c > 0 and delta_left <= 0) or eps_after > self.budget.epsilon * (1 + _TOL):
                raise BudgetExceededError(
                    f"privacy budget exceeded{where}: this needs epsilon={epsilon:.4g}, delta={delta:.3g} on top of "
                    f"what was spent or reserved, which would exceed the ledger's {self.budget}."
                    f"{self._reserved_note(exclude_fit)} {after if isinstance(after, str) else after()}")
            return
        remaining = self._remaining_rho(exclude_fit)
        if rho > remaining * (1 + _TOL) + 1e-15:
            left = PrivacyBudget.from_rho(remaining, self.budget.delta).epsilon if remaining > 0 else 0.0
            need = PrivacyBudget.from_rho(rho, self.budget.delta).epsilon if rho > 0 else 0.0
            raise BudgetExceededError(
                f"privacy budget exceeded{where}: this needs epsilon={need:.4g} (rho={rho:.6g}) but only "
                f"epsilon={left:.4g} (rho={remaining:.6g}) of the ledger's {self.budget} remains."
                f"{self._reserved_note(exclude_fit)} {after if isinstance(after, str) else after()}")

    def begin_fit(self, generator: str, *, rho: float, epsilon: float | None = None, delta: float | None = None,
                  schema_hash: str | None = None, seeded: bool = False, accounting: str = "zcdp") -> str:
        """Declare a fit and reserve its planned cost; refuses before any data is touched if it does not fit.

        The check and the reservation happen together under the ledger's lock: a fit started
        while another one runs sees that one's reservation, so concurrent fits cannot overspend.
        The reservation records this process (pid, host) so that a crashed fit can be told apart
        from a running one (:meth:`reservations`).

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
            If the planned cost does not fit in what the entries and the reservations of running
            fits leave (nothing is recorded).
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
                "finished": None, "status": "running", "versions": _versions(), "owner": _owner(),
            })
            self._write()
        return fit_id

    def _spent_note(self, fit_id: str) -> str:
        """What a fit has spent so far, for errors raised in the middle of it."""
        n = sum(e.fit_id == fit_id for e in self.entries)
        if n == 0:
            return "This fit has charged nothing yet: no data was accessed."
        t = self.total(fit_id)
        return (f"This fit (fit {fit_id}) has ALREADY SPENT epsilon={t.epsilon:.4g}, delta={t.delta:.3g} "
                f"(rho={t.rho:.6g}) in {n} measurement{'s' if n > 1 else ''}, recorded in the ledger: that spending "
                "is final even though the fit stops here; this measurement was not made.")

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
            If the entry would exceed the ledger's budget or its fit's planned cost. The message
            says what the fit has already spent (it is recorded and stays spent).
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
            fid = entry.fit_id
            fit = self._fit(fid)
            if entry.accounting == "zcdp":
                used = math.fsum(e.rho for e in self.entries if e.fit_id == fid) + entry.rho
                if used > fit["planned_rho"] * (1 + _TOL) + 1e-15:
                    raise BudgetExceededError(
                        f"fit {fid} would spend rho={used:.6g}, more than it planned ({fit['planned_rho']:.6g}). "
                        + self._spent_note(fid))
                # the fit's own reservation is what this entry spends: count everything else
                own = fid if fit.get("accounting", "zcdp") == "zcdp" else None
                self._check(entry.rho, 0.0, 0.0, own, lambda: self._spent_note(fid))
            else:
                eps_used, delta_used = self._approx(fid)
                if fit.get("accounting") == "approx_dp" and (
                        eps_used + entry.epsilon > (fit["epsilon"] or 0.0) * (1 + _TOL) + 1e-15
                        or delta_used + entry.delta > (fit["delta"] or 0.0) * (1 + _TOL) + 1e-18):
                    raise BudgetExceededError(
                        f"fit {fid} would spend more (epsilon, delta) than it planned "
                        f"({fit['epsilon']}, {fit['delta']}). " + self._spent_note(fid))
                own = fid if fit.get("accounting") == "approx_dp" else None
                self._check(0.0, entry.epsilon, entry.delta, own, lambda: self._spent_note(fid))
            self.entries.append(entry)
            self._write()

    def end_fit(self, fit_id: str, status: str = "done") -> None:
        """Mark a fit as finished (``"done"``) or failed, and release its reservation.

        What the fit planned but did not charge goes back to the ledger's remaining budget.

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
        >>> ledger.fits[0]["status"], ledger.reservations()
        ('done', [])
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
