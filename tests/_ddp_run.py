"""Worker of tests/test_distributed.py, started by torchrun: ``_ddp_run.py TASK OPTIONS_JSON [KILL]``.

TASK is classify or detect; OPTIONS_JSON the run's options (``resume`` continues a run folder);
KILL ``epoch,batch``: rank 0 kills itself (SIGKILL, no clean-up) at that batch, as a crash would.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from _kill import KillMidEpoch


def _sigkill() -> None:
    """Rank 0 dies at once (callbacks run on rank 0 only): no handler, no checkpoint of the epoch."""
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    task, options = sys.argv[1], json.loads(sys.argv[2])
    callbacks = [KillMidEpoch(*map(int, sys.argv[3].split(",")), kill=_sigkill)] if len(sys.argv) > 3 else []
    resume = options.pop("resume", None)
    if task == "classify":
        import cnnlab

        train = cnnlab.train
    else:
        from cnnlab.tasks.detect.run import train_detector as train
    result = train(resume=resume, callbacks=callbacks, **options) if resume else train(callbacks=callbacks,
                                                                                       **options)
    from cnnlab.engine.distributed import cleanup, world

    print(f"rank {world().rank} done: {result.run_dir}", flush=True)
    cleanup()


if __name__ == "__main__":
    main()
