"""Distributed data-parallel training on PyTorch's own machinery (``torchrun`` + DDP).

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` reads them and joins the process group
(NCCL for CUDA tensors, gloo for CPU ones). Without those variables everything here is a no-op, so a
single-process run is unchanged.

The rules every distributed run follows:

- ``batch`` is the global batch: the loaders cut each global batch (a pure function of seed and
  epoch, as in one process) into per-rank slices (``loader.shard(rank, world)``);
- only rank 0 writes the run folder, logs, progress and checkpoints, validates and runs callbacks;
  its validation metrics and its ``stop_training`` are broadcast so every rank takes the same steps;
- :func:`on_main` runs a step on rank 0 only and gives every rank its result (or its one-line error).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from cnnlab.errors import PeerFailed, UserError

T = TypeVar("T")
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place in the job (``size`` 1, ``rank`` 0 outside torchrun)."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` torchrun set (a one-line error when malformed)."""
    values = {}
    for key, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)):
        raw = os.environ.get(key, "")
        try:
            values[key] = int(raw) if raw.strip() else default
        except ValueError:
            raise UserError(f"environment variable {key}={raw!r} is not an integer (set by torchrun)") from None
    w = World(values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"])
    if w.size < 1 or not 0 <= w.rank < w.size or w.local_rank < 0:
        raise UserError(f"inconsistent torchrun environment: WORLD_SIZE={w.size} RANK={w.rank} "
                        f"LOCAL_RANK={w.local_rank}")
    return w


def is_main() -> bool:
    """True on rank 0 (and in every single-process run)."""
    return world().main


def initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def setup() -> World:
    """Join the process group once (idempotent); NCCL for CUDA tensors and gloo for CPU tensors when
    CUDA is present, gloo alone otherwise. Returns :func:`world`."""
    w = world()
    if not w.distributed or initialized():
        return w
    if not torch.distributed.is_available():  # pragma: no cover - every official build has it
        raise UserError("this PyTorch build has no torch.distributed: distributed training is unavailable")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(w.local_rank % max(1, torch.cuda.device_count()))
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    torch.distributed.init_process_group(backend=backend, timeout=TIMEOUT)
    return w


def local_device(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` when training on CUDA in a distributed job."""
    w = world()
    if w.distributed and device.type == "cuda":
        index = w.local_rank % max(1, torch.cuda.device_count())
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def cleanup() -> None:
    """Leave the process group (at the end of a distributed run), once every rank got here: a rank that
    tears its connections down while another still receives makes gloo abort the process."""
    if initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


# -- collectives ------------------------------------------------------------------------------------

def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (plain Python data; identity in one process)."""
    if not initialized():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]


def all_reduce_sums(sums: dict[str, torch.Tensor], seen: int, device: torch.device
                    ) -> tuple[dict[str, torch.Tensor], int]:
    """The per-epoch sums and image count of every rank added up (one all_reduce)."""
    if not initialized():
        return sums, seen
    keys = sorted(sums)
    flat = torch.stack([sums[k].detach().float().reshape(()).to(device) for k in keys]
                       + [torch.tensor(float(seen), device=device)])
    torch.distributed.all_reduce(flat)
    return {k: flat[i] for i, k in enumerate(keys)}, int(round(float(flat[-1])))


def global_count(n: int, device: torch.device) -> torch.Tensor:
    """The images of this step over all ranks, as a tensor (no host sync on CUDA)."""
    t = torch.tensor(float(n), device=device)
    if initialized():
        torch.distributed.all_reduce(t)
    return t


def barrier() -> None:
    if initialized():
        torch.distributed.barrier()


def on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank. A UserError on rank 0 is raised
    there and, as :class:`PeerFailed` with the same message, on the others (so none waits forever)."""
    if not initialized():
        return fn()
    outcome: tuple[bool, Any] = (True, None)
    error: BaseException | None = None
    if is_main():
        try:
            outcome = (True, fn())
        except BaseException as e:
            error = e
            outcome = (False, str(e) if isinstance(e, UserError) else f"rank 0 failed: {type(e).__name__}: {e}")
    ok, value = broadcast(outcome)
    if error is not None:
        raise error
    if not ok:
        raise PeerFailed(value)
    return value


@contextmanager
def local_main_first() -> Iterator[None]:
    """Local rank 0 of each node runs the block first (say, a dataset download), then the others."""
    w = world()
    if not initialized():
        yield
        return
    if w.local_rank != 0:
        _agree(ok=True)
    try:
        yield
    except BaseException:
        if w.local_rank == 0:
            _agree(ok=False)
        raise
    if w.local_rank == 0:
        _agree(ok=True)


def _agree(ok: bool) -> None:
    """A barrier that also tells every rank whether one of the local-rank-0 processes failed."""
    flag = torch.tensor([0.0 if ok else 1.0])
    torch.distributed.all_reduce(flag)
    if float(flag) > 0 and ok:
        raise PeerFailed("another process of this distributed run failed while setting up (see its message)")


# -- models -----------------------------------------------------------------------------------------

class ForwardAs(nn.Module):
    """A module whose ``forward`` is another method of ``inner`` (``forward_raw`` of a detector), so DDP
    sees the training forward pass through its own ``forward``."""

    def __init__(self, inner: nn.Module, method: str) -> None:
        super().__init__()
        self.inner = inner
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, self.method)(*args, **kwargs)


def wrap_for_training(model: nn.Module, method: str, device: torch.device) -> nn.Module:
    """What the engine calls in training steps: ``model`` itself, its ``method`` as ``forward``, and in
    a distributed job that inside ``DistributedDataParallel`` (gradients averaged over ranks)."""
    target = model if method == "forward" else ForwardAs(model, method)
    if not initialized():
        return target
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(target, device_ids=ids, output_device=device.index if ids else None)


def convert_sync_bn(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers that normalise with the statistics of the global batch (CUDA only)."""
    if device.type != "cuda":
        raise UserError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU); "
                        "drop --sync-bn")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def shard_rows(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s rows of a global batch of ``n`` rows: every ``size``-th, from ``rank``."""
    return slice(rank, n, size)


def sharded_len(n_items: int, batch: int, drop_last: bool, size: int) -> int:
    """Global batches of an epoch; in a distributed job a last batch with fewer images than processes
    is left out (every process needs at least one image per step)."""
    full, rest = divmod(n_items, batch)
    if drop_last or rest == 0:
        return full
    return full + (1 if rest >= size else 0)


def check_resume_world(ckpt_world: Any, path: str, now: int | None = None) -> None:
    """A run resumes on as many processes as it was trained on (what makes the resume exact); ``now``:
    the processes it is about to get (default: this job's)."""
    saved = ckpt_world if isinstance(ckpt_world, int) and not isinstance(ckpt_world, bool) else 1
    now = world().size if now is None else now
    if saved != now:
        how = "in one process (no torchrun, no --nproc)" if saved == 1 else f"with --nproc {saved}"
        raise UserError(f"{path} was trained on {saved} process(es), not {now}: resume it {how} "
                        "(the same number keeps the resume exact)")
