"""Worker of tests/test_distributed.py, started by torchrun: ``_ddp_run.py TASK OPTIONS_JSON [KILL]``.

TASK is classify or detect; OPTIONS_JSON the run's options (``resume`` continues a run folder);
KILL ``epoch,batch``: rank 0 kills itself (SIGKILL, no clean-up) at that batch, as a crash would.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from cnnlab.engine.callbacks import Callback


class KillAt(Callback):
    """Rank 0 dies with SIGKILL at batch ``batch`` of epoch ``epoch`` (callbacks run on rank 0 only)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_begin(self, trainer):
        loss = trainer.task.loss

        def killing_loss(model, batch, engine):
            if engine.epoch + 1 == self.epoch and engine.batch_index == self.batch:
                os.kill(os.getpid(), signal.SIGKILL)
            return loss(model, batch, engine)

        trainer.task.loss = killing_loss


def main() -> None:
    task, options = sys.argv[1], json.loads(sys.argv[2])
    callbacks = [KillAt(*map(int, sys.argv[3].split(",")))] if len(sys.argv) > 3 else []
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
