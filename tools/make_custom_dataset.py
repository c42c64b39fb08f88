"""Build a real custom detection dataset the way users make them, and a broken copy of it.

    python tools/make_custom_dataset.py OUT [--data $CNNLAB_DATA/coco128] [--class person] [--seed 0]

writes ``OUT/<class>/`` (coco128's images holding the class, copied into ``train/`` and ``val/`` with a
LabelImg-style Pascal VOC ``.xml`` beside each and a ``data.yaml``) and ``OUT/<class>-broken/`` (the
same with one seeded defect of each kind `cnnlab data check` must report; ``defects.json`` lists them),
then runs the check on both. OUT must lie outside the repository (it is data, not source). Exit code 0
when the clean copy has no error and every planted defect is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def build(out: Path, data: Path | None = None, class_name: str = "person", val_fraction: float = 0.2,
          seed: int = 0) -> dict[str, Any]:
    """Write the clean and the broken dataset into ``out`` and check both; returns what was found:
    ``{"info", "defects", "clean" (DataReport), "broken" (DataReport), "caught" {defect: Issue | None}}``."""
    from cnnlab.detect.check import check_detection_data
    from cnnlab.detect.labelimg import corrupt_copy, labelimg_subset
    from cnnlab.io import write_json
    from cnnlab.paths import data_root

    out = Path(out).resolve()
    if out == REPO or REPO in out.parents:
        raise SystemExit(f"error: {out} is inside the repository; write datasets elsewhere")
    src = data or data_root(None) / "coco128"
    info = labelimg_subset(src, out / class_name, class_name, val_fraction=val_fraction, seed=seed)
    broken = out / f"{class_name}-broken"
    defects = corrupt_copy(out / class_name, broken, seed=seed)
    write_json(broken / "defects.json", defects)
    clean = check_detection_data(info["data_yaml"])
    bad = check_detection_data(broken / "data.yaml")
    caught = {d["defect"]: next((i for i in bad.issues if i.kind == d["kind"] and i.file == d["file"]), None)
              for d in defects}
    return {"info": info, "defects": defects, "clean": clean, "broken": bad, "caught": caught}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="Folder to write into (outside the repository).")
    ap.add_argument("--data", type=Path, default=None, help="Source dataset (default $CNNLAB_DATA/coco128).")
    ap.add_argument("--class", dest="class_name", default="person", help="The one class to keep.")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    r = build(args.out, args.data, args.class_name, args.val_fraction, args.seed)
    info, out = r["info"], Path(args.out).resolve()
    print(f"{info['out']}: {info['train']} train / {info['val']} val images, boxes {info['boxes']}")
    for d in r["defects"]:
        print(f"planted {d['defect']:15s} -> {os.path.relpath(d['file'], out)}: "
              f"{'caught' if r['caught'][d['defect']] else 'MISSED'}")
    clean, bad = r["clean"], r["broken"]
    n_caught = sum(v is not None for v in r["caught"].values())
    print(f"data check: clean copy {len(clean.errors)} errors / {len(clean.warnings)} warnings; broken copy "
          f"{len(bad.errors)} errors / {len(bad.warnings)} warnings; {n_caught}/{len(r['defects'])} defects caught")
    print(json.dumps(bad.kinds()))
    return 0 if clean.ok and n_caught == len(r["defects"]) else 1


if __name__ == "__main__":
    sys.exit(main())
