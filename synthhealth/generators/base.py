"""The generator contract (scikit-learn style) shared by every synthhealth generator.

``__init__`` only stores keyword-only parameters; ``fit`` validates them, checks the privacy
budget against the ledger *before touching data*, then learns; fitted attributes end in ``_``;
``sample`` before ``fit`` raises :class:`NotFittedError`. A fitted model saves to a folder of
JSON (+ ``.npz`` arrays written without pickle) holding its schema and its ledger; loading checks
the format version. Saved models never contain real records.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._validation import check_bool, check_positive_int, check_random_state
from ..exceptions import DataValidationError, InputFileError, InvalidParameterError, NotFittedError, SynthHealthError
from ..privacy import DEFAULT_DELTA, NoiseSource, PrivacyBudget, PrivacyLedger
from ..schema import PatientSchema, schema_from_dict
from ..transform.encode import Encoder
from ..transform.table import patient_ids

__all__ = ["BaseGenerator", "MODEL_FORMAT_VERSION", "MAX_SAMPLE_SIZE", "load_model"]

MODEL_FORMAT = "synthhealth-model"
MODEL_FORMAT_VERSION = 1
MAX_SAMPLE_SIZE = 10_000_000
"""Most synthetic patients one :meth:`BaseGenerator.sample` call draws (its table is held in memory:
about 8 bytes per patient and attribute while sampling). Draw more in several calls (the CLI's
FHIR output streams chunks of 50,000 and accepts the same bound)."""

_REGISTRY: dict[str, type[BaseGenerator]] = {}


class BaseGenerator:
    """Base class of DP generators. Subclasses implement ``_fit`` and ``_sample_codes``.

    Parameters common to every generator
    ------------------------------------
    epsilon : float, default 1.0
        The ε of this fit's (ε, δ)-DP guarantee, for the patient as privacy unit.
    delta : float, default 1e-6
        The δ. A fixed, documented default: a default computed from the number of patients
        would itself depend on private data.
    random_state : None, int or numpy.random.Generator, default None
        ``None`` draws DP noise from OpenDP's secure samplers (for release). A seed makes the run
        reproducible but NOT FOR RELEASE (the ledger and the report say so).
    """

    name: ClassVar[str] = "base"
    #: how the fit's cost is accounted: "zcdp" (ρ) or "approx_dp" ((ε, δ) from e.g. an RDP/PRV accountant)
    accounting: ClassVar[str] = "zcdp"
    #: where a seeded fit's DP noise comes from (named in the InsecureRandomnessWarning)
    seeded_randomness: ClassVar[str] = "a seeded numpy generator"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name != "base":
            _REGISTRY[cls.name] = cls

    def __init__(self, *, epsilon: float = 1.0, delta: float = DEFAULT_DELTA, random_state: Any = None) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.random_state = random_state

    # ---------------------------------------------------------- sklearn bits
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as given.

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn compatibility; generators hold no nested estimators, so it
            changes nothing.

        Returns
        -------
        dict
            Parameter name → value, for every keyword of the constructor.

        Examples
        --------
        >>> import synthhealth as sh
        >>> sh.MST(epsilon=2.0).get_params()["epsilon"]
        2.0
        """
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> BaseGenerator:
        """Set constructor parameters (validated at the next ``fit``).

        Parameters
        ----------
        **params
            Constructor parameters by name (see :meth:`get_params`).

        Returns
        -------
        BaseGenerator
            ``self``.

        Raises
        ------
        InvalidParameterError
            If a name is not a constructor parameter of this generator.

        Examples
        --------
        >>> import synthhealth as sh
        >>> sh.MST().set_params(epsilon=0.5).epsilon
        0.5
        """
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise InvalidParameterError(
                    f"Invalid parameter {k!r} for {type(self).__name__}: expected one of {', '.join(valid)}.")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call fit(table, schema=...) first.")

    # ---------------------------------------------------------------- fitting
    def _validate_params(self) -> PrivacyBudget:
        try:
            return PrivacyBudget(self.epsilon, self.delta)
        except InvalidParameterError as exc:
            raise InvalidParameterError(str(exc).replace("parameter must", f"parameter of {type(self).__name__} must")) from None

    def fit(
        self,
        table: pd.DataFrame,
        *,
        schema: PatientSchema,
        ledger: str | os.PathLike[str] | PrivacyLedger | None = None,
        progress: bool = False,
        one_row_per_patient: bool = False,
    ) -> BaseGenerator:
        """Fit the generator on a patient table (one row per patient) with (ε, δ)-DP.

        The guarantee protects each patient only if each patient has one row: the table's patient
        ids (its ``patient_id`` index, as :func:`synthhealth.flatten` and
        :func:`synthhealth.read_table` give it, or the schema's ``patient_id`` column) are checked
        and duplicates refused. A table without ids needs ``one_row_per_patient=True``.

        Parameters
        ----------
        table : pandas.DataFrame
            A table in schema form (from :func:`synthhealth.flatten` or :func:`synthhealth.read_table`);
            it is checked against ``schema`` (declared bounding applied, violations raised).
        schema : PatientSchema
            The public schema: the only source of the domain.
        ledger : path, PrivacyLedger or None
            Where to charge the privacy cost. A path shares a persistent ledger between fits of the
            same data: the fit is refused before any data is touched when its remaining budget is too
            small (a new file is created with this fit's budget). ``None``: a fresh in-memory ledger.
        progress : bool, default False
            Show a progress bar.
        one_row_per_patient : bool, default False
            The caller guarantees one row per patient for a table without patient ids (ids that are
            present are still checked). The ledger records the fit's ``patient_ids`` as
            ``"attested"`` (``"checked"`` when the ids were checked), and the report says that the
            guarantee rests on the caller's statement. A table read with
            ``read_table(..., one_row_per_patient=True)`` carries the statement already.

        Returns
        -------
        self

        Raises
        ------
        BudgetExceededError
            Before any data access, if the ledger cannot afford (``epsilon``, ``delta``).
        DataValidationError
            If the table does not match the schema, or holds no patients (refused after the budget
            check and before anything is measured: nothing is charged, the fit is recorded as failed).
        PatientIdError
            If the table has no patient ids and ``one_row_per_patient`` is false.
        DuplicatePatientIdError
            If a patient id appears on several rows (nothing is charged: the fit is recorded as
            failed).

        Examples
        --------
        >>> import synthhealth as sh
        >>> schema = sh.load_schema("flchain")
        >>> gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:300], schema=schema)
        >>> gen.ledger_.total(gen.fit_id_).epsilon <= 1.0 + 1e-9
        True
        """
        budget = self._validate_params()
        self._validate_extra_params()
        check_bool(progress, "progress", type(self).__name__ + ".fit")
        check_bool(one_row_per_patient, "one_row_per_patient", type(self).__name__ + ".fit")
        if not isinstance(schema, PatientSchema):
            raise InvalidParameterError(
                f"The 'schema' parameter of {type(self).__name__}.fit must be a PatientSchema (see load_schema). "
                f"Got {type(schema).__name__} instead.")
        if not isinstance(table, pd.DataFrame):
            raise InvalidParameterError(
                f"The 'table' parameter of {type(self).__name__}.fit must be a pandas DataFrame. "
                f"Got {type(table).__name__} instead.")
        noise = NoiseSource(self.random_state, seeded_source=self.seeded_randomness)
        led = self._open_ledger(ledger, budget)
        # the budget check happens here, before the table is read
        if self.accounting == "zcdp":
            fit_id = led.begin_fit(self.name, rho=budget.rho, epsilon=budget.epsilon, delta=budget.delta,
                                   schema_hash=schema.hash, seeded=noise.seeded)
        else:
            fit_id = led.begin_fit(self.name, rho=0.0, epsilon=budget.epsilon, delta=budget.delta,
                                   schema_hash=schema.hash, seeded=noise.seeded, accounting="approx_dp")
        try:
            if len(table) == 0:  # after the budget check (which never looks at the data); nothing is charged
                raise DataValidationError([
                    "the table holds no patients (0 rows; e.g. a header-only CSV or an export without Patients): "
                    "there is nothing to fit, and no budget was spent"])
            # the privacy unit: one row per patient, checked (ids) or attested by the caller
            _, basis = patient_ids(table, schema, one_row_per_patient=one_row_per_patient,
                                   caller=f"{type(self).__name__}.fit")
            led.record_patient_ids(fit_id, basis)
            self.patient_ids_ = basis
            encoder = Encoder(schema)
            codes = encoder.encode(table)
            self.schema_ = schema
            self.encoder_ = encoder
            self.ledger_ = led
            self.fit_id_ = fit_id
            self.budget_ = budget
            self._fit(codes, budget, noise, led, fit_id, progress)
        except BaseException:
            led.end_fit(fit_id, "failed")
            raise
        led.end_fit(fit_id, "done")
        self.seeded_ = noise.seeded
        self.fitted_at_ = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # scikit-learn's convention: a seeded estimator is reproducible end to end, so sample()
        # without its own random_state continues a stream derived from the constructor's seed
        self._sample_rng = (np.random.default_rng([int(self.random_state), 0x53414D50])
                            if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool)
                            else None)
        return self

    def _validate_extra_params(self) -> None:
        """Validate generator-specific parameters (subclasses)."""

    @staticmethod
    def _open_ledger(ledger: Any, budget: PrivacyBudget) -> PrivacyLedger:
        if ledger is None:
            return PrivacyLedger(budget)
        if isinstance(ledger, PrivacyLedger):
            return ledger
        if isinstance(ledger, (str, os.PathLike)):
            p = Path(ledger)
            return PrivacyLedger.open(p) if p.exists() else PrivacyLedger.open(p, budget)
        raise InvalidParameterError(
            "The 'ledger' parameter of fit must be None, a path or a PrivacyLedger. "
            f"Got {type(ledger).__name__} instead.")

    def _fit(self, codes: np.ndarray, budget: PrivacyBudget, noise: NoiseSource, ledger: PrivacyLedger,
             fit_id: str, progress: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # --------------------------------------------------------------- sampling
    def sample(self, n: int | None = None, *, random_state: Any = None) -> pd.DataFrame:
        """Draw synthetic patients (post-processing: no privacy cost).

        Parameters
        ----------
        n : int, optional
            Number of synthetic patients. Default: the model's noisy estimate of the number of
            real patients.
        random_state : None, int or Generator
            Randomness of the sampling itself. ``None``: when the generator was built with an integer
            ``random_state``, a stream derived from it (repeated runs of the same script give the same
            samples); otherwise fresh entropy.

        Returns
        -------
        pandas.DataFrame
            A table in schema form; numbers are drawn uniformly inside their synthetic bin.

        Raises
        ------
        NotFittedError
            If the generator is not fitted.
        InvalidParameterError
            If ``n`` is not an integer in [1, :data:`MAX_SAMPLE_SIZE`] (10 million).

        Examples
        --------
        >>> import synthhealth as sh
        >>> schema = sh.load_schema("flchain")
        >>> gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:300], schema=schema)
        >>> synthetic = gen.sample(50, random_state=1)
        >>> synthetic.shape == (50, len(schema.names))
        True
        """
        self._check_fitted()
        if n is None:
            n = max(1, int(round(self.total_)))
        n = check_positive_int(n, "n", f"{type(self).__name__}.sample")
        if n > MAX_SAMPLE_SIZE:
            raise InvalidParameterError(
                f"The 'n' parameter of {type(self).__name__}.sample must be an int in [1, {MAX_SAMPLE_SIZE:,}] (the "
                f"table is held in memory; draw more in several calls). Got {n!r} instead.")
        seeded_stream = getattr(self, "_sample_rng", None)
        rng = seeded_stream if random_state is None and seeded_stream is not None else check_random_state(random_state)
        codes = self._sample_codes(n, rng)
        table = self.encoder_.decode(codes, rng)
        table.attrs["synthhealth"] = {"kind": "synthetic", "generator": self.name, "schema_hash": self.schema_.hash,
                                      "fit_id": self.fit_id_, "seeded": bool(self.seeded_)}
        return table

    def _sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- saving
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Save the fitted model to a folder: ``model.json`` + ``arrays.npz`` (no pickle).

        The folder holds the public schema, the model's noisy statistics and the privacy ledger,
        never a real record. Times are kept at day resolution (the fit's date, the ledger's
        fits and entries) and the processes that ran fits are not recorded, so no fit duration can
        be read from the folder. It is written to a temporary folder and renamed at the end: a process
        killed while saving leaves the earlier model, the new one, or no folder (never part of one).

        Parameters
        ----------
        path : str or Path
            The folder to write; it must be new or empty unless ``overwrite`` is true. Missing parent
            folders are created.
        overwrite : bool, default False
            Replace an earlier synthhealth model saved at ``path``. Only a folder that holds a
            synthhealth model (its ``model.json`` carries the format marker) and nothing else is
            replaced: any other non-empty folder is refused, so nothing that synthhealth did not
            write is ever deleted.

        Returns
        -------
        Path
            The model folder (``path``).

        Raises
        ------
        NotFittedError
            If the generator is not fitted.
        InvalidParameterError
            If ``path`` is a file, or a non-empty folder and ``overwrite`` is false, or a folder
            that is not a synthhealth model folder (see :meth:`check_save_path`).

        Examples
        --------
        >>> import pathlib, tempfile, synthhealth as sh
        >>> schema = sh.load_schema("flchain")
        >>> gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:300], schema=schema)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = gen.save(pathlib.Path(tmp.name) / "model")
        >>> sorted(p.name for p in folder.iterdir())
        ['arrays.npz', 'model.json']
        >>> tmp.cleanup()
        """
        self._check_fitted()
        out = self.check_save_path(path, overwrite=overwrite)
        meta, arrays = self._state()
        params = {k: v for k, v in self.get_params().items() if k != "random_state"}
        doc = {
            "format": MODEL_FORMAT,
            "version": MODEL_FORMAT_VERSION,
            "generator": self.name,
            "synthhealth_version": version("synthhealth"),
            "params": _jsonable(params),
            "fit_id": self.fit_id_,
            # day resolution, here and in the ledger copy: fit times (which grow with the number of
            # patients) must not be readable from a shipped model
            "fitted_at": str(self.fitted_at_)[:10],
            "seeded": bool(self.seeded_),
            "patient_ids": getattr(self, "patient_ids_", None),
            "total": float(self.total_),
            "schema_hash": self.schema_.hash,
            "schema": self.schema_.to_dict(),
            "budget": self.budget_.to_dict(),
            "spent": self.ledger_.total(self.fit_id_).to_dict(),
            "ledger": self.ledger_.to_dict(times="day"),
            "model": meta,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            np.savez_compressed(tmp / "arrays.npz", **arrays)
            (tmp / "model.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
            if out.exists():
                # killed at any point, the folder holds the old model, the new one, or nothing (the old one is
                # then beside it, hidden): never half of one. Renames are atomic; the delete comes last.
                trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
                os.replace(out, trash / out.name)
                os.replace(tmp, out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    @staticmethod
    def check_save_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Check that :meth:`save` may write a model folder at ``path``, before anything is spent.

        Call it before ``fit`` when the model will be saved (the CLI does), so that a fit is not
        paid for and then refused at the end.

        Parameters
        ----------
        path : str or Path
            The model folder to write.
        overwrite : bool, default False
            Whether an earlier synthhealth model at ``path`` may be replaced.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        InvalidParameterError
            If ``path`` is a file; or a non-empty folder and ``overwrite`` is false; or, with
            ``overwrite``, a folder that holds no synthhealth model (``model.json`` with the
            format marker) or holds other files beside the model's: those would be deleted.

        Examples
        --------
        >>> import pathlib, tempfile, synthhealth as sh
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> (tmp / "train.parquet").write_text("not a model")
        11
        >>> try:
        ...     sh.MST.check_save_path(tmp, overwrite=True)
        ... except sh.InvalidParameterError as exc:
        ...     print("refused")
        refused
        """
        out = Path(path)
        if out.exists() and not out.is_dir():
            raise InvalidParameterError(f"The model folder {out} is a file: give a folder (new, or an earlier model).")
        if not out.exists() or not any(out.iterdir()):
            return out
        if not overwrite:
            raise InvalidParameterError(
                f"The model folder {out} is not empty (to replace an earlier synthhealth model saved there, pass "
                "overwrite=True, or --overwrite).")
        if not _is_model_folder(out):
            raise InvalidParameterError(
                f"{out} is not a synthhealth model folder (no model.json with the {MODEL_FORMAT!r} format marker): "
                "overwriting only replaces an earlier model, never other files. Choose a new folder.")
        others = sorted(p.name for p in out.iterdir() if p.name not in _MODEL_FILES)
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise InvalidParameterError(
                f"The model folder {out} holds files that are not part of a synthhealth model ({shown}): overwriting "
                "would delete them. Move them out, or choose a new folder.")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaseGenerator:
        """Load a model saved with :meth:`save` (format version checked, no pickle).

        Parameters
        ----------
        path : str or Path
            A model folder written by :meth:`save`.

        Returns
        -------
        BaseGenerator
            The fitted generator, ready to :meth:`sample`; an instance of the class it is called on
            (``MST.load`` returns an :class:`MST`).

        Raises
        ------
        InvalidParameterError
            If the folder holds another kind of generator than the class called (e.g. an AIM model
            read with ``MST.load``), or for the reasons of :func:`load_model`.
        FileNotFoundError
            If the folder or its files are missing.

        Examples
        --------
        >>> import pathlib, tempfile, synthhealth as sh
        >>> schema = sh.load_schema("flchain")
        >>> gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:300], schema=schema)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> loaded = sh.MST.load(gen.save(pathlib.Path(tmp.name) / "model"))
        >>> loaded.fit_id_ == gen.fit_id_
        True
        >>> tmp.cleanup()
        """
        model = load_model(path)
        if cls is not BaseGenerator and not isinstance(model, cls):
            raise InvalidParameterError(f"{path} holds a {type(model).__name__} model, not a {cls.__name__}.")
        return model


def load_model(path: str | os.PathLike[str]) -> BaseGenerator:
    """Load any saved synthhealth model (the generator class is read from the file).

    Parameters
    ----------
    path : str or Path
        A model folder written by :meth:`BaseGenerator.save` (``model.json`` + ``arrays.npz``).

    Returns
    -------
    BaseGenerator
        The fitted generator (an :class:`AIM`, :class:`MST` or :class:`DPVAE`, as saved), with its
        schema, its privacy ledger and its fitted state; ready to ``sample``. The constructor's
        ``random_state`` is not saved: it is ``None`` on the loaded model.

    Raises
    ------
    FileNotFoundError
        If the folder or its files are missing.
    InvalidParameterError
        If the folder is not a synthhealth model or its format version is not supported.
    InputFileError
        If ``model.json`` or ``arrays.npz`` cannot be read: not JSON (the line and column are
        named), a missing field (such as ``fit_id``), a parameter the generator does not take, a
        field of the wrong type, an object array (never unpickled) or a truncated archive.

    Examples
    --------
    >>> import pathlib, tempfile, synthhealth as sh
    >>> schema = sh.load_schema("flchain")
    >>> gen = sh.MST(epsilon=1.0, random_state=0).fit(sh.datasets.load_flchain().iloc[:300], schema=schema)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> model = sh.load_model(gen.save(pathlib.Path(tmp.name) / "model"))
    >>> type(model).__name__, model.sample(5).shape[0]
    ('MST', 5)
    >>> tmp.cleanup()
    """
    p = Path(path)
    meta_file = p / "model.json"
    if not meta_file.exists():
        raise FileNotFoundError(f"no synthhealth model at {p} (model.json missing)")
    doc = _read_model_json(meta_file)
    if doc.get("format") != MODEL_FORMAT:
        raise InvalidParameterError(f"{p} is not a synthhealth model folder")
    if doc.get("version") != MODEL_FORMAT_VERSION:
        raise InvalidParameterError(f"{p} has model format version {_shown(doc.get('version'))}; this release reads "
                                    f"version {MODEL_FORMAT_VERSION}")
    cls = _REGISTRY.get(doc.get("generator", "")) if isinstance(doc.get("generator", ""), str) else None
    if cls is None:
        raise InvalidParameterError(f"{p} holds an unknown generator {_shown(doc.get('generator'))}")
    arrays = _read_arrays(p / "arrays.npz")
    try:
        params = doc["params"]
        if not isinstance(params, dict):
            raise InputFileError(f"the field 'params' must be an object. Got {type(params).__name__} instead.",
                                 file=meta_file)
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(str(k) for k in params if k not in known)
        if unknown:
            raise InputFileError(
                f"'params' holds parameter(s) {', '.join(map(repr, unknown))} that {cls.__name__} does not take "
                "(a model saved by another release, or an edited file)", file=meta_file)
        gen = cls(**params)
        schema = schema_from_dict(doc["schema"])
        if schema.hash != doc["schema_hash"]:
            raise InvalidParameterError(f"{p}: the stored schema does not match its hash (file altered?)")
        gen.schema_ = schema
        gen.encoder_ = Encoder(schema)
        gen.ledger_ = PrivacyLedger.from_dict(doc["ledger"])
        gen.fit_id_ = doc["fit_id"]
        if not isinstance(gen.fit_id_, str) or not gen.fit_id_:
            raise InputFileError(f"the field 'fit_id' must be a non-empty string. Got {gen.fit_id_!r} instead.",
                                 file=meta_file)
        gen.budget_ = PrivacyBudget(doc["budget"]["epsilon"], doc["budget"]["delta"])
        gen.seeded_ = bool(doc["seeded"])
        gen.patient_ids_ = doc.get("patient_ids")
        gen.fitted_at_ = doc["fitted_at"]
        gen.total_ = float(doc["total"])
        gen._set_state(doc["model"], arrays)
        # an edited or corrupt state (NaN or mis-shaped arrays) fails here, named, rather than in sample()
        with np.errstate(all="ignore"):
            gen.sample(2, random_state=np.random.default_rng(0))
    except SynthHealthError:
        raise
    except KeyError as exc:
        raise InputFileError(f"a required field or array is missing: {exc.args[0]!r} (a truncated or edited model)",
                             file=meta_file) from None
    except (TypeError, ValueError, AttributeError, IndexError, ArithmeticError) as exc:
        raise InputFileError(f"a field or array has the wrong type or shape ({type(exc).__name__}; a model saved by "
                             "another release, or an edited file)", file=meta_file) from None
    return gen


def _shown(value: Any) -> str:
    """A value of model.json as shown in an error: short version-like names only, else its type."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, str) and len(value) <= 20 and value.replace("-", "").replace(".", "").replace("_", "").isalnum() \
            and value == value.lower():
        return repr(value)
    return f"(a {type(value).__name__})"


def _read_model_json(meta_file: Path) -> dict[str, Any]:
    """``model.json`` as a dict, or an :class:`InputFileError` naming the file (and the line of a JSON error)."""
    try:
        text = meta_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError("not UTF-8 text", file=meta_file) from None
    if not text.strip():
        raise InputFileError("the file is empty (0 bytes): the model was not saved completely", file=meta_file)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}; a truncated or "
                             "edited model)", file=meta_file) from None
    except RecursionError:
        raise InputFileError("JSON nested too deeply", file=meta_file) from None
    if not isinstance(doc, dict):
        raise InputFileError(f"a model file holds a JSON object. Got {type(doc).__name__} instead.", file=meta_file)
    return doc


def _read_arrays(npz_file: Path) -> dict[str, np.ndarray]:
    """The arrays of ``arrays.npz`` (never unpickled), or an :class:`InputFileError` naming the file."""
    if not npz_file.exists():
        raise FileNotFoundError(f"{npz_file} is missing: the model folder is incomplete")
    import zipfile

    try:
        with open(npz_file, "rb") as fh:  # our handle: numpy leaves its own open when the zip is corrupt
            loaded = np.load(fh, allow_pickle=False)
            if not hasattr(loaded, "files"):
                raise InputFileError("not an .npz archive of arrays (a single .npy array)", file=npz_file)
            with loaded as npz:
                arrays = {k: npz[k] for k in npz.files}
        for k, a in arrays.items():  # a model's arrays are numbers: no text, no NaN
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
                raise InputFileError(f"the array {k!r} holds {a.dtype.kind!r}-kind data, not numbers (an edited or "
                                     "foreign file)", file=npz_file)
            if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
                raise InputFileError(f"the array {k!r} holds NaN (an edited or corrupt file)", file=npz_file)
        return arrays
    except InputFileError:
        raise
    except ValueError as exc:
        if "object arrays" in str(exc).lower():
            raise InputFileError("holds an object (pickled) array; synthhealth models never do, and pickles are "
                                 "never loaded (an edited or foreign file)", file=npz_file) from None
        raise InputFileError(f"not a readable .npz archive ({type(exc).__name__}; not a zip of .npy arrays, and "
                             "pickles are never loaded)", file=npz_file) from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise InputFileError(f"not a readable .npz archive ({type(exc).__name__}; truncated or corrupt)",
                             file=npz_file) from None


_MODEL_FILES = frozenset({"model.json", "arrays.npz"})


def _is_model_folder(path: Path) -> bool:
    """Whether ``path/model.json`` is a synthhealth model file (its format marker)."""
    try:
        doc = json.loads((path / "model.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == MODEL_FORMAT


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj
