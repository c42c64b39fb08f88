"""Run every benchmark script in turn; each one refreshes its own section of docs/benchmarks.md.

    python benchmarks/run_all.py                 # everything (a few hours of CPU)
    python benchmarks/run_all.py classify stream_fps   # a selection, by script name
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [  # cheapest first
    "custom_dataset", "keras_import_check", "ddp", "detect_backends", "stream_fps", "deploy_eval", "train_vs_keras",
    "tune_ablate", "detect_train", "transfer", "compare_backbones", "lessons", "classify",
]


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in SCRIPTS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    failed = []
    for name in argv or SCRIPTS:
        print(f"== benchmarks/{name}.py", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f}s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
