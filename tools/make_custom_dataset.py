"""Build a real custom detection dataset the way users make them, and a broken copy of it.

    python tools/make_custom_dataset.py OUT [--data $CNNLAB_DATA/coco128] [--class person] [--seed 0]

writes ``OUT/<class>/`` (coco128's images holding the class, copied into ``train/`` and ``val/`` with a
LabelImg-style Pascal VOC ``.xml`` beside each and a ``data.yaml``) and ``OUT/<class>-broken/`` (the
same with one seeded defect of each kind `cnnlab data check` must report; ``defects.json`` lists them),
then runs the check on both. OUT must lie outside the repository (it is data, not source).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="Folder to write into (outside the repository).")
    ap.add_argument("--data", type=Path, default=None, help="Source dataset (default $CNNLAB_DATA/coco128).")
    ap.add_argument("--class", dest="class_name", default="person", help="The one class to keep.")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from cnnlab.detect.check import check_detection_data
    from cnnlab.detect.labelimg import corrupt_copy, labelimg_subset
    from cnnlab.paths import data_root

    out = args.out.resolve()
    if out == REPO or REPO in out.parents:
        print(f"error: {out} is inside the repository; write datasets elsewhere", file=sys.stderr)
        return 2
    src = args.data or data_root(None) / "coco128"
    clean = out / args.class_name
    info = labelimg_subset(src, clean, args.class_name, val_fraction=args.val_fraction, seed=args.seed)
    print(f"{clean}: {info['train']} train / {info['val']} val images, boxes {info['boxes']}")
    broken = out / f"{args.class_name}-broken"
    defects = corrupt_copy(clean, broken, seed=args.seed)
    from cnnlab.io import write_json

    write_json(broken / "defects.json", defects)
    for d in defects:
        print(f"planted {d['defect']:15s} -> {os.path.relpath(d['file'], out)}")
    ok = check_detection_data(info["data_yaml"])
    bad = check_detection_data(broken / "data.yaml")
    caught = [d for d in defects if any(i.kind == d["kind"] and d["file"] in (i.file, *i.message.split())
                                        for i in bad.issues)]
    print(f"data check: clean copy {len(ok.errors)} errors / {len(ok.warnings)} warnings; broken copy "
          f"{len(bad.errors)} errors / {len(bad.warnings)} warnings; {len(caught)}/{len(defects)} defects caught")
    print(json.dumps(bad.kinds()))
    return 0 if ok.ok and len(caught) == len(defects) else 1


if __name__ == "__main__":
    sys.exit(main())
