"""DPVAE: a tabular variational autoencoder trained with DP-SGD (patient-level (ε, δ)-DP).

The fit, in order (the ledger is charged before each release):

0. **Noisy marginals** (``marginals_share`` > 0, the default): the d attributes' 1-way histograms
   and the 2-way histograms of ``marginal_pairs`` (all pairs up to 20 attributes), concatenated,
   with Gaussian noise (L2 sensitivity √(d + pairs)), charged their own (ε_m, δ) before release.
   They give ``n̂`` (mean total) and the decoder's initial output biases. DP-SGD's σ is planned so
   that DP-SGD composed with them *in the same accountant* meets (ε, δ); the DP-SGD entry is
   charged the increase of the composition.
1. **Dataset size.** The Poisson sampling rate is ``q = batch_size / n̂``. ``n̂`` is the mean total
   of the noisy marginals, or (``marginals_share=0``) a noisy count of the patients: the discrete Laplace mechanism (OpenDP) with ε₀ = ``count_share``·ε
   (2 % by default), charged as a pure (ε₀, 0) entry, then ``n̂ = max(1, noisy count)``. With
   ``max_patients`` the count is not measured: ``n̂`` is the declared upper bound (public) and no
   budget is spent on it. The exact count never sets q, the number of steps or the averaging.
   Poisson sampling is applied to the real rows at rate q whatever n̂ is; the accountant's
   guarantee depends on (σ, q, T) only, so it holds for the q actually used even if n̂ is off.
2. **Plan.** ``T = ⌈epochs / q⌉`` steps; σ from the remaining budget (ε − ε₀, δ) with opacus's
   PRV accountant (or RDP); the accountant's ε(σ, q, T) ≤ ε − ε₀ is charged as one (ε, δ) entry
   *before training starts* (the noisy gradients are released to the model from the first step, so
   a crash mid-training leaves a ledger that covers what happened).
3. **Train** with DP-SGD: the fast path (:mod:`.fastdp`) or opacus's standard pipeline
   (:mod:`.reference`, ``engine="opacus"``), Adam on the noisy gradients.
4. **Read back** ε for the steps actually taken (≤ the charge; stored in ``privacy_``).
5. **Post-processing** of the DP outputs (weights and noisy marginals; the data are not read
   again): the decoder is fitted to the noisy 1- and 2-way marginals (``finetune_steps``, see
   :func:`.marginals.match_marginals`), then its output biases are calibrated to the noisy 1-way
   marginals (``calibrate``).

Sampling draws z ~ N(0, I), decodes per-attribute categorical distributions over the public states
and draws one state per attribute; :meth:`Encoder.decode` then draws numbers uniformly inside their
bins — the same output format as AIM and MST.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import secrets
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from ..._validation import check_bool, check_choice, check_positive_int
from ...exceptions import AccountingError, InsecureRandomnessWarning, InvalidParameterError, OptionalDependencyError
from ...privacy import DEFAULT_DELTA, LedgerEntry, NoiseSource, PrivacyBudget, PrivacyLedger
from ..base import BaseGenerator
from ._deps import require
from .marginals import auto_pairs, marginal_counts, marginal_noise_scale, match_marginals, split_marginals
from .network import VAESpec, layer_names

__all__ = ["DPVAE", "marginal_counts", "marginal_noise_scale"]

_OWNER = "DPVAE"
#: Default ``marginals_share`` with 2-way marginals (chosen on flchain at epsilon = 1: 0.3 / 0.5 / 0.7 / 0.8 / 0.9
#: gave 2-way TVD 0.105 / 0.090 / 0.085 / 0.083 / 0.080 and AUROC 0.769 / 0.774 / 0.788 / 0.790 / 0.784) and
#: with 1-way marginals only (the earlier default, from a grid over 0.1 / 0.2 / 0.3)
DEFAULT_SHARE_PAIRS = 0.7
DEFAULT_SHARE_ONE_WAY = 0.2
_WEIGHTS_KEY = "weights_safetensors"
_WEIGHTS_FORMAT = "safetensors"


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:  # pragma: no cover - depends on the environment
        return "?"


class DPVAE(BaseGenerator):
    """Differentially private synthetic patients from a tabular VAE trained with DP-SGD.

    The VAE reads the one-hot encoding of each patient's codes over the schema's public domain
    (numbers by their public bins, missing as its own state) and decodes per-attribute categorical
    distributions over the same states; nothing about the domain comes from the data. Training is
    DP-SGD with true Poisson sampling, per-patient clipping and Gaussian noise; the noise multiplier
    comes from the target (ε, δ) with opacus's PRV accountant. Needs the ``[dpvae]`` extra.

    Parameters
    ----------
    epsilon : float, default 1.0
        ε of the fit's (ε, δ)-DP guarantee (the patient is the privacy unit): the noisy count and
        DP-SGD together spend at most this.
    delta : float, default 1e-6
        δ (all of it goes to DP-SGD; the noisy count is pure DP).
    epochs : int, default 50
        Expected passes over the data: ``T = ⌈epochs / q⌉`` noisy steps.
    batch_size : int, default 2048
        Expected batch size: the sampling rate is ``q = min(1, batch_size / n̂)``.
    learning_rate : float, default 3e-2
        Adam's peak learning rate (decayed to 0 along a half cosine).
    hidden_sizes : tuple of int, default (64,)
        Hidden widths of the encoder MLP (the decoder mirrors them; ``()``: linear encoder and decoder).
    latent_size : int, default 8
        Latent dimension.
    kl_weight : float, default 0.3
        Weight β of the KL term of the loss (β < 1 keeps more information in the latent code).
    clip_norm : float, default 1.0
        ``C``: every patient's whole gradient is clipped to this L2 norm.
    max_patients : int, optional
        A declared (public) upper bound on the number of patients. When given, ``n̂`` is this bound
        and no budget is spent on a count; otherwise ``n̂`` is a noisy count (see ``count_share``).
    count_share : float, default 0.02
        Share of ε spent on the noisy count of patients (discrete Laplace, pure DP). Used only with
        ``marginals_share=0`` and no ``max_patients``.
    marginals_share : float, optional
        Default: 0.7 when 2-way marginals are measured, 0.2 when only 1-way ones are.
        Share of the budget's zCDP ρ given to the noisy marginals (the 1-way marginals of all
        attributes and the 2-way marginals of ``marginal_pairs``; Gaussian, L2 sensitivity
        √(d + number of pairs)), composed with DP-SGD in the same accountant. They set ``n̂``, the
        decoder's initial output biases and, after training, the marginals the decoder is fitted to.
        0: no marginals (then a noisy count, and no fine-tuning or calibration).
    marginal_pairs : "auto", "all", "none" or list of pairs of attribute names, default "auto"
        The 2-way marginals measured with the 1-way ones. ``"auto"``: all pairs when the schema has at
        most 20 attributes (190 pairs), none above (the noise per pair grows with their number).
        Declare the pairs that matter to your analysis as ``[("age", "diabetes"), ...]``.
    finetune_steps : int, default 300
        Adam steps fitting the trained decoder to the noisy 1- and 2-way marginals (post-processing;
        0 turns it off).
    calibrate : bool, default True
        After training (and fine-tuning), move the decoder's output biases until the model's 1-way
        marginals equal the noisy ones (post-processing).
    accountant : {"prv", "rdp"}, default "prv"
        opacus accountant used to set σ and to read back ε.
    engine : {"fast", "opacus"}, default "fast"
        ``"fast"``: on-device DP-SGD without per-sample gradients (:mod:`.fastdp`); ``"opacus"``:
        opacus's standard pipeline (slow; the reference the fast path is tested against).
    device : {"auto", "cpu", "cuda"} or "cuda:N", default "auto"
        Where to train (``"auto"``: CUDA when available).
    secure_mode : bool, optional
        Draw the DP randomness (Poisson sampling and gradient noise) from the operating system's
        CSPRNG, with opacus's secure-mode noise construction (``engine="fast"``; with
        ``engine="opacus"`` it is opacus's own secure mode, which needs ``torchcsprng``). Default:
        on for a release (``random_state=None``) with the fast engine, off otherwise. Off without a
        seed, the noise comes from torch's generator seeded with OS entropy, which is *not* a
        cryptographically secure sampler (an :class:`InsecureRandomnessWarning` says so).
    n_threads : int, optional
        Torch threads during the fit (restored afterwards). Default: ``OMP_NUM_THREADS`` when set, else
        half the usable cores, at most 8 (torch's one thread per core stalls when other work shares
        the cores: 54 s instead of 6 s for one fit on a busy 2-core machine). Not a privacy parameter.
    random_state : None, int or Generator, default None
        ``None`` for a release. A seed makes the fit reproducible (on the same device) but NOT FOR
        RELEASE (the ledger says so).

    Attributes
    ----------
    total_ : float
        ``n̂``: the noisy count (or the declared ``max_patients``); the default sample size.
    noise_multiplier_, sample_rate_, steps_ : float, float, int
        σ, q and the number of steps taken.
    epsilon_spent_ : float
        ε read back from the accountant after training (marginals and DP-SGD composed; count included).
    marginals_ : list of numpy.ndarray or None
        The noisy 1-way marginals (projected onto the simplex), one per attribute; DP output.
    pairs_ : list of tuple of str
        The pairs whose noisy 2-way marginals the decoder was fitted to.
    noisy_marginals_ : tuple of (list of numpy.ndarray, list of numpy.ndarray) or None
        The released noisy counts as drawn (1-way vectors, then the 2-way matrices of ``pairs_``), before
        any projection, and ``marginal_sigma_`` their noise scale; DP outputs kept in memory for
        diagnostics and the end-to-end privacy audits (not saved). ``None`` with ``marginals_share=0``.
    privacy_ : dict
        The whole privacy record of the fit (also saved with the model).

    Examples
    --------
    >>> import synthhealth as sh
    >>> from synthhealth.generators.dpvae import DPVAE
    >>> gen = DPVAE(epsilon=1.0, epochs=10, max_patients=10_000)
    >>> gen.get_params()["batch_size"]
    2048
    >>> schema = sh.load_schema("flchain")                            # doctest: +SKIP
    >>> table = sh.read_table(sh.datasets.load_flchain(), schema)     # doctest: +SKIP
    >>> gen.fit(table, schema=schema).sample(5).shape                 # doctest: +SKIP
    (5, 11)
    """

    name = "dpvae"
    accounting = "approx_dp"
    seeded_randomness = "torch generators seeded from a seeded numpy generator"

    def __init__(self, *, epsilon: float = 1.0, delta: float = DEFAULT_DELTA, epochs: int = 50,
                 batch_size: int = 2048, learning_rate: float = 3e-2, hidden_sizes: Any = (64,),
                 latent_size: int = 8, kl_weight: float = 0.3, clip_norm: float = 1.0, max_patients: int | None = None,
                 count_share: float = 0.02, marginals_share: float | None = None, marginal_pairs: Any = "auto",
                 finetune_steps: int = 300, calibrate: bool = True,
                 accountant: str = "prv", engine: str = "fast", device: str = "auto",
                 secure_mode: bool | None = None, n_threads: int | None = None, random_state: Any = None) -> None:
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state)
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.hidden_sizes = hidden_sizes
        self.latent_size = latent_size
        self.kl_weight = kl_weight
        self.clip_norm = clip_norm
        self.max_patients = max_patients
        self.count_share = count_share
        self.marginals_share = marginals_share
        self.marginal_pairs = marginal_pairs
        self.finetune_steps = finetune_steps
        self.calibrate = calibrate
        self.accountant = accountant
        self.engine = engine
        self.device = device
        self.secure_mode = secure_mode
        self.n_threads = n_threads

    # ------------------------------------------------------------- validation
    @staticmethod
    def _check_float(value: Any, name: str, low: float, high: float, *, low_open: bool = True,
                     high_open: bool = True) -> float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
        if ok:
            v = float(value)
            ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if not ok:
            lo, hi = "(" if low_open else "[", ")" if high_open else "]"
            raise InvalidParameterError(
                f"The {name!r} parameter of {_OWNER} must be a float in {lo}{low:g}, {high:g}{hi}. Got {value!r} instead.")
        return float(value)

    def _hidden(self) -> tuple[int, ...]:
        h = self.hidden_sizes
        if isinstance(h, (str, bytes)) or not isinstance(h, (list, tuple)) or not all(
                isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 1 for w in h):
            raise InvalidParameterError(
                f"The 'hidden_sizes' parameter of {_OWNER} must be a tuple of positive ints. Got {h!r} instead.")
        return tuple(int(w) for w in h)

    def _pairs(self, names: list[str] | None) -> list[tuple[int, int]]:
        """``marginal_pairs`` as sorted index pairs into ``names`` (``None``: check the format only)."""
        mp = self.marginal_pairs
        if isinstance(mp, str):
            check_choice(mp, "marginal_pairs", ("auto", "all", "none"), _OWNER)
            if names is None or mp == "none":
                return []
            d = len(names)
            return auto_pairs(d) if mp == "auto" else [(a, b) for a in range(d) for b in range(a + 1, d)]
        if not isinstance(mp, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(a, str) for a in p) for p in mp):
            raise InvalidParameterError(
                f"The 'marginal_pairs' parameter of {_OWNER} must be 'auto', 'all', 'none' or a list of pairs of "
                f"attribute names. Got {mp!r} instead.")
        if names is None:
            return []
        out: set[tuple[int, int]] = set()
        for a, b in mp:
            unknown = [x for x in (a, b) if x not in names]
            if unknown:
                raise InvalidParameterError(
                    f"The 'marginal_pairs' parameter of {_OWNER} names attributes that are not in the schema: {unknown}.")
            if a == b:
                raise InvalidParameterError(
                    f"The 'marginal_pairs' parameter of {_OWNER} pairs an attribute with itself: {(a, b)!r}.")
            i, j = sorted((names.index(a), names.index(b)))
            out.add((i, j))
        return sorted(out)

    def _effective_secure_mode(self) -> bool:
        if self.secure_mode is None:
            return self.random_state is None and self.engine == "fast"
        return bool(self.secure_mode)

    def _resolve_device(self) -> str:
        torch = require("torch")
        dev = self.device
        if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:")
                                                                              and dev[5:].isdigit())):
            raise InvalidParameterError(
                f"The 'device' parameter of {_OWNER} must be one of 'auto', 'cpu', 'cuda' or 'cuda:N'. Got {dev!r} instead.")
        if dev == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda"):
            if not torch.cuda.is_available():
                raise InvalidParameterError(
                    f"The 'device' parameter of {_OWNER} is {dev!r} but CUDA is not available on this machine "
                    f"(torch {torch.__version__}). Use device='cpu' or 'auto'.")
            if dev != "cuda" and int(dev[5:]) >= torch.cuda.device_count():
                raise InvalidParameterError(
                    f"The 'device' parameter of {_OWNER} is {dev!r} but only {torch.cuda.device_count()} CUDA "
                    "device(s) exist.")
        return dev

    def _validate_extra_params(self) -> None:
        check_positive_int(self.epochs, "epochs", _OWNER)
        check_positive_int(self.batch_size, "batch_size", _OWNER)
        self._check_float(self.learning_rate, "learning_rate", 0.0, math.inf)
        self._hidden()
        check_positive_int(self.latent_size, "latent_size", _OWNER)
        self._check_float(self.kl_weight, "kl_weight", 0.0, math.inf, low_open=False)
        self._check_float(self.clip_norm, "clip_norm", 0.0, math.inf)
        if self.max_patients is not None:
            check_positive_int(self.max_patients, "max_patients", _OWNER)
        if self.marginals_share is not None:
            self._check_float(self.marginals_share, "marginals_share", 0.0, 1.0, low_open=False)
        if self.max_patients is None and self.marginals_share == 0:
            self._check_float(self.count_share, "count_share", 0.0, 1.0)
        self._pairs(None)
        if isinstance(self.finetune_steps, bool) or not isinstance(self.finetune_steps, numbers.Integral) \
                or self.finetune_steps < 0:
            raise InvalidParameterError(
                f"The 'finetune_steps' parameter of {_OWNER} must be an int in [0, inf). Got {self.finetune_steps!r} instead.")
        check_bool(self.calibrate, "calibrate", _OWNER)
        check_choice(self.accountant, "accountant", ("prv", "rdp"), _OWNER)
        check_choice(self.engine, "engine", ("fast", "opacus"), _OWNER)
        if self.n_threads is not None:
            check_positive_int(self.n_threads, "n_threads", _OWNER)
        if self.secure_mode is not None:
            check_bool(self.secure_mode, "secure_mode", _OWNER)
            if self.secure_mode and self.random_state is not None:
                raise InvalidParameterError(
                    f"The 'secure_mode' parameter of {_OWNER} cannot be True with a 'random_state' (a seeded run "
                    f"is reproducible, hence not secure). Got secure_mode=True, random_state={self.random_state!r}.")
        # the optional dependencies are checked here: before the ledger is charged or the data read
        require("torch")
        require("opacus")
        require("safetensors.numpy")
        self._resolve_device()
        if self.engine == "opacus" and self._effective_secure_mode():
            try:
                import torchcsprng  # type: ignore[import-not-found]  # noqa: F401
            except ImportError as exc:
                raise OptionalDependencyError(
                    "DPVAE(engine='opacus', secure_mode=True) needs opacus's secure mode, which needs 'torchcsprng' "
                    "(not published for recent torch releases). Use engine='fast' (its secure mode reads the OS "
                    "CSPRNG) or secure_mode=False.") from exc

    # ---------------------------------------------------------------- fitting
    def _noisy_count(self, n: int, eps0: float, noise: NoiseSource, ledger: PrivacyLedger, fit_id: str) -> int:
        """Charge, then release, a discrete-Laplace count of the patients (pure ε₀-DP)."""
        scale = 1.0 / eps0
        if noise.seeded:
            cost, library, mechanism = eps0, noise.library, "geometric"
        else:
            from ...privacy.mechanisms import _opendp, opendp_version

            dp = _opendp()
            meas = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
            cost, library, mechanism = float(meas.map(1)), f"opendp {opendp_version()}", "discrete_laplace"
        ledger.charge(LedgerEntry(mechanism, "number of patients (sets the DP-SGD sampling rate)", 1.0, scale, 0.0,
                                  fit_id, library, noise.seeded, accounting="approx_dp", epsilon=cost, delta=0.0,
                                  secure=noise.secure))
        if noise.seeded:
            p = -math.expm1(-eps0)
            return int(n + noise.rng.geometric(p) - noise.rng.geometric(p))
        return int(meas(int(n)))

    def _noisy_marginals(self, codes: np.ndarray, pairs: list[tuple[int, int]], sigma: float, eps_m: float,
                         delta: float, seeded: bool, secure: bool, seed: int, ledger: PrivacyLedger,
                         fit_id: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Charge, then release, the 1-way marginals of every attribute and the 2-way marginals of
        ``pairs`` with Gaussian noise of scale σ: (1-way count vectors, 2-way count matrices).

        One patient adds 1 to one cell of each of the ``m = d + len(pairs)`` histograms: the
        concatenation has L2 sensitivity √m. The charge is the accountant's (ε, δ) of this Gaussian
        mechanism alone. The noise is a *continuous* Gaussian, the distribution the accountant
        composes, drawn from the same DP randomness as the DP-SGD noise (the OS CSPRNG in secure mode).
        """
        from .fastdp import CsprngRandom, TorchRandom, gaussian_vector

        torch = require("torch")
        sizes = self.encoder_.shape
        m = len(sizes) + len(pairs)
        counts = marginal_counts(codes, sizes, pairs)
        cpu = torch.device("cpu")
        rnd = CsprngRandom(cpu) if secure else TorchRandom(seed, cpu)
        what = f"1-way marginals of the {len(sizes)} attributes"
        if pairs:
            what += f" and 2-way marginals of {len(pairs)} pairs"
        ledger.charge(LedgerEntry(
            "gaussian", f"{what} ({counts.size} cells; L2 sensitivity sqrt({m}))",
            math.sqrt(m), sigma, 0.0, fit_id, f"torch {_version('torch')} ({_randomness(seeded, secure)}); "
            f"opacus {_version('opacus')} {self.accountant.upper()} accountant", seeded, accounting="approx_dp",
            epsilon=eps_m, delta=delta, secure=bool(secure and not seeded)))
        noisy = gaussian_vector(counts, sigma, rnd)
        return split_marginals(noisy, sizes, pairs)

    def _threads(self) -> int:
        """Torch threads for the fit: ``n_threads``, else ``OMP_NUM_THREADS``, else half the usable cores (≤ 8).

        torch's own default (one thread per core) stalls when other work shares the cores: on a busy
        2-core machine a fit took 54 s with the default and 6 s with one thread. Half the cores
        leaves room for the rest of the machine; the user's ``torch.set_num_threads`` is restored
        after the fit.
        """
        if self.n_threads is not None:
            return int(self.n_threads)
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        if env.isdigit() and int(env) > 0:
            return int(env)
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
        return max(1, min(8, cores // 2))

    def _fit(self, codes: np.ndarray, budget: PrivacyBudget, noise: NoiseSource, ledger: PrivacyLedger,
             fit_id: str, progress: bool) -> None:
        torch = require("torch")
        previous = torch.get_num_threads()
        self.threads_ = self._threads()
        torch.set_num_threads(self.threads_)
        try:
            self._fit_with_threads(codes, budget, noise, ledger, fit_id, progress)
        finally:
            torch.set_num_threads(previous)

    def _fit_with_threads(self, codes: np.ndarray, budget: PrivacyBudget, noise: NoiseSource, ledger: PrivacyLedger,
                          fit_id: str, progress: bool) -> None:
        torch = require("torch")
        from . import accounting, fastdp, network

        device = torch.device(self._resolve_device())
        secure = self._effective_secure_mode()
        if not noise.seeded and not secure:
            warnings.warn(
                "DPVAE: secure_mode is off, so the DP-SGD noise and sampling come from torch's pseudo-random generator "
                "seeded with OS entropy, which is not a cryptographically secure sampler. Use secure_mode=True for "
                "a release.", InsecureRandomnessWarning, stacklevel=3)
        if noise.seeded:
            dp_seed, aux_seed = (int(s) for s in noise.rng.integers(0, 2**63 - 1, size=2))
        else:
            dp_seed, aux_seed = secrets.randbits(63), secrets.randbits(63)
        spec = VAESpec(tuple(self.encoder_.shape), self._hidden(), int(self.latent_size), float(self.kl_weight))
        batch = int(self.batch_size)
        eps, delta = budget.epsilon, budget.delta

        eps_error = accounting.eps_error_for(eps)
        # 1. the noisy marginals (Gaussian, a share of the budget's rho), composed with DP-SGD below
        extra: list[tuple[float, float, int]] = []
        sigma_m = eps_m = 0.0
        noisy: list[np.ndarray] | None = None
        noisy2: list[np.ndarray] = []
        pairs = self._pairs(list(self.encoder_.names)) if self.marginals_share != 0 else []
        share = float(self.marginals_share) if self.marginals_share is not None else \
            DEFAULT_SHARE_PAIRS if pairs else DEFAULT_SHARE_ONE_WAY
        if share > 0:
            m = len(self.encoder_.shape) + len(pairs)
            sigma_m = marginal_noise_scale(m, share, budget.rho)
            extra = [accounting.gaussian_entry(sigma_m, math.sqrt(m))]
            eps_m = accounting.composed_epsilon(extra, delta, self.accountant, eps_error=eps_error)
            if eps_m >= eps:  # pragma: no cover - a share < 1 of the budget's rho is below epsilon
                raise InvalidParameterError(
                    f"The 'marginals_share' parameter of {_OWNER} leaves nothing for DP-SGD: the marginals alone "
                    f"spend epsilon={eps_m:.4g} of {eps:.4g}. Got {share!r}.")
            noisy, noisy2 = self._noisy_marginals(codes, pairs, sigma_m, eps_m, delta, noise.seeded, secure,
                                                  dp_seed + 2, ledger, fit_id)
        # 2. the dataset size that sets the sampling rate: declared, from the noisy marginals, or a noisy count
        eps0 = 0.0
        if self.max_patients is not None:
            n_hat, size_source = int(self.max_patients), "declared upper bound (max_patients)"
        elif noisy is not None:
            n_hat = max(1, round(float(np.mean([m.sum() for m in noisy]))))
            size_source = "mean total of the noisy 1-way marginals"
        else:
            eps0 = float(self.count_share) * eps
            n_hat = max(1, self._noisy_count(len(codes), eps0, noise, ledger, fit_id))
            size_source = f"noisy count (discrete Laplace, epsilon={eps0:.4g})"
        q = min(1.0, batch / n_hat)
        steps = math.ceil(self.epochs / q - 1e-9)
        plan_eps = eps - eps0
        # 3. the noise multiplier such that DP-SGD composed with the marginals meets the plan, and the charge
        # (before any noisy gradient exists): what the composition adds to the marginals' charge
        sigma, eps_joint = accounting.noise_multiplier(plan_eps, delta, q, steps, self.accountant, extra=extra)
        if eps_joint > plan_eps * (1 + 1e-9):  # pragma: no cover - get_noise_multiplier guarantees it
            raise AccountingError(f"the accountant's epsilon {eps_joint:.6g} exceeds the plan {plan_eps:.6g}")
        eps_sgd = max(0.0, eps_joint - eps_m)
        plan = fastdp.DPSGDPlan(sample_rate=q, noise_multiplier=sigma, clip=float(self.clip_norm), steps=steps,
                                denominator=q * n_hat, steps_per_epoch=max(1, math.ceil(1.0 / q - 1e-9)),
                                learning_rate=float(self.learning_rate))
        rng_desc = _randomness(noise.seeded, secure, self.engine)
        library = (f"torch {_version('torch')} DP-SGD ({self.engine} engine, {rng_desc}); "
                   f"opacus {_version('opacus')} {self.accountant.upper()} accountant")
        target = (f"VAE gradients: DP-SGD, {steps} steps, Poisson sampling rate q={q:.6g} (batch {batch} / "
                  f"{n_hat} patients, {size_source}), clip C={plan.clip:g}, noise multiplier sigma={sigma:.6g}")
        if extra:
            target += (f"; composed with the noisy marginals in the {self.accountant.upper()} accountant "
                       f"(joint epsilon={eps_joint:.6g} at delta={delta:.3g}): charged the increase over the marginals' "
                       "charge, delta included there")
        ledger.charge(LedgerEntry("dp_sgd_subsampled_gaussian", target, plan.clip, sigma * plan.clip, 0.0, fit_id,
                                  library, noise.seeded, accounting="approx_dp", epsilon=eps_sgd,
                                  delta=0.0 if extra else delta, secure=bool(secure and not noise.seeded)))

        # 3. train
        init = torch.Generator().manual_seed(aux_seed)
        module = network.build_module(spec, generator=init, dtype=torch.float32)
        probs: list[np.ndarray] | None = None
        if noisy is not None:  # post-processing of the noisy marginals: start from the independent model
            probs = [network.project_counts(m, n_hat) / n_hat for m in noisy]
            with torch.no_grad():
                module.decoder[-1].bias.copy_(torch.as_tensor(
                    np.concatenate([network.marginal_logits(p) for p in probs]), dtype=torch.float32))
        module = module.to(device)
        aux = torch.Generator(device=device)
        aux.manual_seed(aux_seed + 1)
        codes_t = torch.as_tensor(np.ascontiguousarray(codes), dtype=torch.long, device=device)
        # the read-back uses the numerical slack the plan used (noise_multiplier's, from the DP-SGD target)
        eps_error = accounting.eps_error_for(plan_eps)
        bar = _Progress(progress, plan, delta, self.accountant, eps0, eps_error, extra)
        try:
            if self.engine == "fast":
                rnd = fastdp.CsprngRandom(device) if secure else fastdp.TorchRandom(dp_seed, device)
                taken = fastdp.train_fast(module, spec, codes_t, plan, rnd, aux, on_step=bar.step)
            else:
                from .reference import train_opacus

                sampling = torch.Generator().manual_seed(dp_seed)
                noise_gen = torch.Generator(device=device)
                noise_gen.manual_seed(dp_seed + 1)
                taken = train_opacus(module, spec, codes_t, plan, sampling, noise_gen, aux, secure_mode=secure,
                                     on_step=bar.step)
        finally:
            bar.close()

        # 4. read back what was spent
        eps_read = accounting.dp_sgd_epsilon(sigma, q, taken, delta, self.accountant, eps_error=eps_error, extra=extra)
        if eps_read > eps_joint * (1 + 1e-9):
            raise AccountingError(f"DP-SGD spent epsilon={eps_read:.6g}, more than the {eps_joint:.6g} charged")
        self.spec_ = spec
        self.model_ = {f"{name}.{kind}": getattr(layer, kind).detach().cpu().numpy().copy()
                       for name, layer in zip(layer_names(spec), [*module.encoder, *module.decoder], strict=True)
                       for kind in ("weight", "bias")}
        # 5. post-processing of DP outputs: fit the decoder to the noisy 1- and 2-way marginals, then move its
        # output biases until the model's 1-way marginals are the (projected) noisy ones
        self.marginals_ = probs
        self.pairs_ = [(self.encoder_.names[a], self.encoder_.names[b]) for a, b in pairs]
        self.noisy_marginals_ = None if noisy is None else (noisy, noisy2)
        self.marginal_sigma_ = sigma_m
        tuned = noisy is not None and self.finetune_steps > 0
        if tuned:
            tbar = None
            if progress:
                from tqdm.auto import tqdm

                tbar = tqdm(total=int(self.finetune_steps), desc="DPVAE: decoder to the noisy marginals", unit="step",
                            leave=False)
            try:
                self.model_ = match_marginals(spec, self.model_, noisy, pairs, noisy2, float(n_hat),
                                              steps=int(self.finetune_steps), seed=aux_seed + 3, device=device,
                                              on_step=None if tbar is None else (lambda _s: tbar.update(1)))
            finally:
                if tbar is not None:
                    tbar.close()
        if probs is not None and self.calibrate:
            last = f"{layer_names(spec)[-1]}.bias"
            self.model_[last] = network.calibrate_output_bias(
                spec, self.model_, probs, np.random.default_rng(aux_seed + 2)).astype(np.float32)
        self.total_ = float(n_hat)
        self.noise_multiplier_ = sigma
        self.sample_rate_ = q
        self.steps_ = int(taken)
        self.epsilon_spent_ = eps0 + eps_read
        self.privacy_ = {
            "epsilon_target": eps, "delta": delta, "accountant": self.accountant,
            "dataset_size": {"value": n_hat, "source": ("declared" if self.max_patients is not None else
                                         "noisy_marginals" if noisy is not None else "noisy_count"),
                             "epsilon": eps0},
            "marginals": None if noisy is None else {
                "noise_scale": sigma_m, "l2_sensitivity": math.sqrt(len(noisy) + len(pairs)),
                "epsilon_charged": eps_m, "delta": delta, "share": share, "pairs": [list(p) for p in self.pairs_],
                "finetune_steps": int(self.finetune_steps) if tuned else 0, "calibrated": bool(self.calibrate),
                "probabilities": [[float(v) for v in p] for p in probs or []]},
            "dp_sgd": {"noise_multiplier": sigma, "sample_rate": q, "steps_planned": steps, "steps_taken": int(taken),
                       "clip_norm": plan.clip, "expected_batch_size": plan.denominator, "epsilon_charged": eps_sgd,
                       "epsilon_composed": eps_joint, "epsilon_spent": eps_read, "delta": delta},
            "epsilon_spent": eps0 + eps_read,
            "engine": self.engine, "device": str(device), "randomness": rng_desc, "secure_mode": secure,
            "versions": {"torch": _version("torch"), "opacus": _version("opacus")},
        }

    # --------------------------------------------------------------- sampling
    def _sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        from .network import sample_codes

        return sample_codes(self.spec_, self.model_, n, rng)

    # ---------------------------------------------------------------- saving
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        st = require("safetensors.numpy", "Saving a DPVAE model")
        blob = st.save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.model_.items()},
                       metadata={"format": "synthhealth-dpvae", "spec": str(self.spec_.to_dict())})
        meta = {"spec": self.spec_.to_dict(), "privacy": self.privacy_, "weights": {
            "format": _WEIGHTS_FORMAT, "key": _WEIGHTS_KEY, "sha256": hashlib.sha256(blob).hexdigest(),
            "tensors": {k: list(v.shape) for k, v in self.model_.items()}}}
        return meta, {_WEIGHTS_KEY: np.frombuffer(blob, dtype=np.uint8)}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        st = require("safetensors.numpy", "Loading a DPVAE model")
        info = meta.get("weights", {})
        if info.get("format") != _WEIGHTS_FORMAT or _WEIGHTS_KEY not in arrays:
            raise InvalidParameterError("the saved DPVAE model has no safetensors weights")
        blob = arrays[_WEIGHTS_KEY].tobytes()
        if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
            raise InvalidParameterError("the saved DPVAE weights do not match their hash (file altered?)")
        spec = VAESpec.from_dict(meta["spec"])
        if spec.sizes != tuple(self.encoder_.shape):
            raise InvalidParameterError("the saved DPVAE model does not match its schema's domain")
        weights = st.load(blob)
        expected = {f"{name}.{kind}": (o, i) if kind == "weight" else (o,)
                    for name, (o, i) in zip(layer_names(spec), spec.layer_shapes(), strict=True) for kind in ("weight", "bias")}
        if set(weights) != set(expected) or any(tuple(weights[k].shape) != s for k, s in expected.items()):
            raise InvalidParameterError("the saved DPVAE weights do not match the architecture in model.json")
        self.spec_ = spec
        self.model_ = weights
        self.privacy_ = meta["privacy"]
        dp = self.privacy_["dp_sgd"]
        self.noise_multiplier_ = float(dp["noise_multiplier"])
        self.sample_rate_ = float(dp["sample_rate"])
        self.steps_ = int(dp["steps_taken"])
        self.epsilon_spent_ = float(self.privacy_["epsilon_spent"])
        marg = self.privacy_.get("marginals")
        self.marginals_ = None if not marg else [np.asarray(p, dtype=np.float64) for p in marg["probabilities"]]
        self.pairs_ = [] if not marg else [(str(a), str(b)) for a, b in marg.get("pairs", [])]


def _randomness(seeded: bool, secure: bool, engine: str = "fast") -> str:
    """Where the DP randomness comes from, in words (ledger and privacy record)."""
    if seeded:
        return "seeded torch generator (not for release)"
    if secure:
        return "OS CSPRNG, opacus secure-mode construction" if engine == "fast" else "torchcsprng (opacus secure mode)"
    return "torch generator seeded from OS entropy: not a cryptographically secure sampler, not for release"


class _Progress:
    """tqdm bar over the DP-SGD steps, showing the ε spent so far (the accountant's, count included).

    The training loss is *not* shown: it is a function of the private data without noise.
    """

    def __init__(self, enabled: bool, plan: Any, delta: float, accountant: str, eps0: float, eps_error: float,
                 extra: Any = ()) -> None:
        self.bar = None
        self.extra = list(extra)
        if not enabled:
            return
        from tqdm.auto import tqdm

        self.plan, self.delta, self.accountant, self.eps0, self.eps_error = plan, delta, accountant, eps0, eps_error
        # the accountant takes ~0.1 s (PRV): refresh epsilon about 10 times, and at the end
        self.every = max(plan.steps_per_epoch, math.ceil(plan.steps / 10))
        self.bar = tqdm(total=plan.steps, desc="DPVAE", unit="step", leave=False)

    def step(self, step: int, batch: int) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        done = step + 1
        if done % self.every == 0 or done == self.plan.steps:
            from .accounting import dp_sgd_epsilon

            eps = self.eps0 + dp_sgd_epsilon(self.plan.noise_multiplier, self.plan.sample_rate, done, self.delta,
                                             self.accountant, eps_error=self.eps_error, extra=self.extra)
            self.bar.set_postfix_str(f"epoch {done / self.plan.steps_per_epoch:.1f}, epsilon={eps:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
