"""Print the empirical privacy audit: lower bounds on epsilon next to the claims.

Runs the same attacks as ``tests/audit/test_audit.py`` (Gaussian marginal measurement and
noisy-max selection, each on D and D' = D + one patient) for the correct mechanisms and for
deliberately broken variants, and prints the Clopper-Pearson 99 % lower bound on epsilon beside
the claimed epsilon. Correct mechanisms must stay at or below their claim; broken ones must
exceed it.

Run from the repository root::

    python bench/privacy_audit.py            # about a minute
    python bench/privacy_audit.py --runs 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synthhealth as sh  # noqa: E402
from synthhealth.privacy import NoiseSource  # noqa: E402
from tests.audit.test_audit import CLAIM, SEL_EPS, audit_gaussian, audit_selection, seeded  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=400_000, help="runs per dataset for the Gaussian audits")
    parser.add_argument("--selection-runs", type=int, default=60_000, help="runs per dataset for the selection audits")
    args = parser.parse_args()
    warnings.simplefilter("ignore", sh.InsecureRandomnessWarning)
    rows = []

    def run(name: str, claim: float, fn, expect: str) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        eps = fn()
        ok = eps <= claim if expect == "<= claim" else eps > claim
        rows.append((name, claim, eps, expect, "ok" if ok else "FAIL", time.perf_counter() - t0))

    r = args.runs
    run("Gaussian, correct, OpenDP sampler", CLAIM, lambda: audit_gaussian("correct", r, NoiseSource(), NoiseSource()),
        "<= claim")
    run("Gaussian, correct, seeded numpy", CLAIM, lambda: audit_gaussian("correct", r, seeded(0), seeded(1)), "<= claim")
    for variant in ("half_noise", "sensitivity_ignored", "uncapped"):
        run(f"Gaussian, BROKEN: {variant}", CLAIM, lambda v=variant: audit_gaussian(v, r, seeded(0), seeded(1)),
            "> claim")
    s = args.selection_runs
    run("noisy max, correct, OpenDP sampler", SEL_EPS, lambda: audit_selection(False, s, lambda _: NoiseSource()),
        "<= claim")
    run("noisy max, correct, seeded numpy", SEL_EPS, lambda: audit_selection(False, s, seeded), "<= claim")
    run("noisy max, BROKEN: noise halved", SEL_EPS, lambda: audit_selection(True, s, seeded), "> claim")

    print(f"Empirical privacy audit ({r:,} runs per dataset for Gaussian, {s:,} for selection; "
          "Clopper-Pearson 99 % lower bound)")
    print()
    print("| mechanism | claimed epsilon | empirical lower bound | expected | verdict | seconds |")
    print("|---|---|---|---|---|---|")
    for name, claim, eps, expect, verdict, secs in rows:
        print(f"| {name} | {claim:.3f} | {eps:.3f} | {expect} | {verdict} | {secs:.1f} |")
    if any(row[4] == "FAIL" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
