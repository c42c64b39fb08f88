"""``cnnlab train --nproc N`` / ``--devices 0,1``: start the same command under ``torchrun``.

PyTorch's own launcher (``python -m torch.distributed.run``) starts one process per device on this
machine (``--standalone``: it picks a free rendezvous port); each process then runs the command with
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set and the engine trains data-parallel
(``cnnlab.engine.distributed``). Several machines: run ``torchrun`` yourself (docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cnnlab.errors import UserError


def parse_devices(devices: str | Sequence[int] | None) -> list[int] | None:
    """``"0,1"`` -> ``[0, 1]`` (CUDA device indices, distinct); None stays None."""
    if devices is None:
        return None
    items = [str(d).strip() for d in (devices.split(",") if isinstance(devices, str) else devices)]
    items = [d for d in items if d]
    if not items or not all(d.isdigit() for d in items):
        raise UserError(f"--devices takes CUDA device indices like 0,1 (got {devices!r})")
    out = [int(d) for d in items]
    if len(set(out)) != len(out):
        raise UserError(f"--devices lists a device twice: {devices!r}")
    return out


def plan(nproc: int | None, devices: str | Sequence[int] | None) -> tuple[int, list[int] | None]:
    """The number of processes and the CUDA devices they use (None: as the run's --device says)."""
    ids = parse_devices(devices)
    if nproc is not None and nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    if ids is not None and nproc is not None and nproc != len(ids):
        raise UserError(f"--nproc {nproc} does not match the {len(ids)} device(s) of --devices {devices}")
    return (len(ids) if ids is not None else nproc or 1), ids


def option_args(options: Mapping[str, Any]) -> list[str]:
    """Command-line flags that give a command these (already parsed) config options back."""
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif value is None:  # only `train name=null` can say this (a typed flag takes no null)
            args.append(f"{name}=null")
        elif isinstance(value, (list, tuple, dict)):
            args += [flag, json.dumps(value)]   # YAML flow syntax: the schema's coercion reads it
        else:
            args += [flag, str(value)]
    return args


def torchrun_command(args: Sequence[str], nproc: int) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m cnnlab -- <args>`` (after ``--``
    torchrun reads none of the args: ``--monitor`` would be an ambiguous prefix of its own options)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "cnnlab", "--", *args]


def launch(args: Sequence[str], nproc: int, devices: list[int] | None = None,
           env: Mapping[str, str] | None = None) -> int:
    """Run ``cnnlab <args>`` in ``nproc`` processes under torchrun; returns its exit code.

    ``devices``: the CUDA devices to use (``CUDA_VISIBLE_DEVICES``), one per process.
    """
    if os.environ.get("WORLD_SIZE") not in (None, "", "1"):
        raise UserError("already inside a distributed job (WORLD_SIZE is set): drop --nproc/--devices")
    run_env = {**os.environ, **(env or {})}
    if devices is not None:
        run_env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
    threads = max(1, (os.cpu_count() or 1) // nproc)
    run_env.setdefault("OMP_NUM_THREADS", str(threads))   # torchrun would set 1 and warn
    try:
        return subprocess.run(torchrun_command(args, nproc), env=run_env, check=False).returncode
    except KeyboardInterrupt:   # torchrun passes the signal to its workers and stops them
        return 130
