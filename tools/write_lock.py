"""Freeze a virtual environment into cnnlab's lock file: ``python tools/write_lock.py VENV OUT``.

Every installed distribution (but the editable project) pinned with ``==``; the CUDA runtime wheels
PyPI's torch brings on Linux x86_64 get an environment marker so the file also installs elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEADER = """\
# cnnlab's lock file: the exact versions `make demo` / `make test` / CI install (Python 3.11, Linux x86_64).
# Regenerate only on purpose with `make lock` (fresh venv, pyproject's ranges resolved, frozen here),
# run `make test`, and commit both: an upgrade is an explicit, tested commit.
# CUDA runtime wheels are what PyPI's torch brings on Linux x86_64; elsewhere torch brings its own.
"""
LINUX_X86 = ' ; sys_platform == "linux" and platform_machine == "x86_64"'
PLATFORM_ONLY = ("nvidia-", "cuda-", "triton")


def main(venv: str, out: str) -> None:
    frozen = subprocess.run([str(Path(venv) / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    pins = []
    for line in sorted((x for x in frozen if "==" in x and not x.startswith("-e")), key=str.lower):
        pins.append(line + (LINUX_X86 if line.lower().startswith(PLATFORM_ONLY) else ""))
    Path(out).write_text(HEADER + "\n".join(pins) + "\n")
    print(f"wrote {out}: {len(pins)} pinned distributions")


if __name__ == "__main__":
    main(*sys.argv[1:3])
