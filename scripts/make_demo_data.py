"""Rebuild the bundled demo data from ../shared/data/fhir (run from the repository root).

Copies a seeded random subset of 150 Synthea R4 patient Bundles (renamed patient-NNN so no
file name carries a (synthetic) patient name) and the 10-patient Bulk-Data NDJSON sample,
byte for byte, into synthhealth/datasets/, with a manifest of original names and hashes.
"""

from __future__ import annotations

import hashlib
import lzma
import random
import shutil
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fhir"
OUT = Path(__file__).resolve().parents[1] / "synthhealth" / "datasets"
N_PATIENTS = 150
SEED = 2026


def main() -> None:
    src = SHARED / "synthea-smart-r4" / "bundles"
    patients = sorted(p for p in src.glob("*.json.xz") if not p.name.startswith(("hospital", "practitioner")))
    chosen = sorted(random.Random(SEED).sample(patients, N_PATIENTS))
    dest = OUT / "demo_fhir"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    lines = ["file\toriginal_stored_path\toriginal_sha256"]
    for i, p in enumerate(chosen, start=1):
        name = f"patient-{i:03d}.json.xz"
        shutil.copyfile(p, dest / name)
        sha = hashlib.sha256(lzma.open(p).read()).hexdigest()
        lines.append(f"{name}\tsynthea-smart-r4/bundles/{p.name}\t{sha}")
    (dest / "MANIFEST.tsv").write_text("\n".join(lines) + "\n")
    nd_src = SHARED / "bulk-ndjson-sample" / "10-patients"
    nd_dest = OUT / "demo_ndjson"
    shutil.rmtree(nd_dest, ignore_errors=True)
    nd_dest.mkdir(parents=True)
    for p in sorted(nd_src.glob("*.ndjson.xz")):
        shutil.copyfile(p, nd_dest / p.name)
    print(f"copied {len(chosen)} bundles to {dest} and {len(list(nd_dest.glob('*.xz')))} NDJSON files to {nd_dest}")


if __name__ == "__main__":
    main()
