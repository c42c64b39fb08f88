"""A real custom dataset made the way users make them, and `cnnlab data check` on a broken copy of it.

    python benchmarks/custom_dataset.py [--out DIR] [--class person] [--seed 0]

Builds coco128's images holding a person as a LabelImg dataset (``train/`` and ``val/``, a VOC ``.xml``
beside each copied image, a ``data.yaml``) with ``tools/make_custom_dataset.py`` (into a temporary
folder unless ``--out``), plants one seeded defect of each kind in a copy, runs ``data check`` on both
and writes the table of defects and findings into its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tools"))

from _report import markdown_table, write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="Keep the datasets here (default: a temp folder).")
    ap.add_argument("--class", dest="class_name", default="person")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-report", action="store_true", help="Do not write docs/benchmarks.md.")
    args = ap.parse_args(argv)
    from make_custom_dataset import build

    with tempfile.TemporaryDirectory(prefix="cnnlab-custom-") as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        r = build(out, class_name=args.class_name, seed=args.seed)
        seconds = time.perf_counter() - start
        info, clean, bad = r["info"], r["clean"], r["broken"]
        rows = []
        for d in r["defects"]:
            issue = r["caught"][d["defect"]]
            rows.append({"defect": d["defect"], "planted in": f"`{os.path.relpath(d['file'], out)}`",
                         "kind": d["kind"], "reported as": issue.severity if issue else "**missed**",
                         "message": (f"`{issue.message.replace(str(out) + os.sep, '').replace('|', '/')}`"
                                     if issue else "")})
    n_caught = sum(v is not None for v in r["caught"].values())
    extra = len(bad.issues) - n_caught
    others = "and nothing else reported" if extra == 0 else f"and {extra} other issue(s) reported"
    per_split = ", ".join(f"{s} {c['boxes']}" for s, c in clean.counts.items())
    body = (
        f"coco128's images holding a **{info['class']}**, written the way LabelImg users make a dataset: "
        f"`train/` ({info['train']} images, {info['boxes']['train']} boxes) and `val/` ({info['val']} images, "
        f"{info['boxes']['val']} boxes), each image copied with its Pascal VOC `.xml` beside it, and a "
        "`data.yaml` (`train: train`, `val: val`, `names: [person]`). Every command reads it through the "
        "same reader (layout detected: "
        f"{', '.join(f'{s} {k}' for s, k in clean.layouts.items())}).\n\n"
        f"`cnnlab data check` on it: {len(clean.errors)} errors, {len(clean.warnings)} warnings "
        f"(boxes per split: {per_split}). On a copy with one "
        f"seeded defect (seed {args.seed}) in each of {len(r['defects'])} files: {len(bad.errors)} errors, "
        f"{len(bad.warnings)} warnings, **{n_caught}/{len(r['defects'])} defects caught**, each in its file "
        f"{others} (exit code 1):\n\n"
        + markdown_table(rows)
        + f"\n\nBuilding both copies and checking them (decoding every image) took {seconds:.1f} s on a shared "
        "machine (not a speed figure). Build it yourself: `python tools/make_custom_dataset.py OUT`.\n"
    )
    print(body)
    if not args.no_report:
        write_section("custom-dataset", "A custom LabelImg dataset and `data check` (coco128 subset)", body)
    return 0 if clean.ok and n_caught == len(r["defects"]) else 1


if __name__ == "__main__":
    sys.exit(main())
