"""``KillMidEpoch``: the callback the resume tests use to stop a run in the middle of an epoch."""

from __future__ import annotations

from collections.abc import Callable

from cnnlab.engine.callbacks import Callback


def _interrupt() -> None:
    raise KeyboardInterrupt


class KillMidEpoch(Callback):
    """Stops training at batch ``batch`` of epoch ``epoch`` (1-based) by calling ``kill`` before that
    batch's loss: by default a KeyboardInterrupt, as Ctrl-C would; a test of a hard kill passes one that
    sends SIGKILL. Only the last completed epoch's checkpoint survives."""

    def __init__(self, epoch: int, batch: int, kill: Callable[[], None] = _interrupt) -> None:
        self.epoch, self.batch, self.kill = epoch, batch, kill

    def on_train_begin(self, trainer) -> None:
        loss = trainer.task.loss

        def killing_loss(model, batch, engine):
            if engine.epoch + 1 == self.epoch and engine.batch_index == self.batch:
                self.kill()
            return loss(model, batch, engine)

        trainer.task.loss = killing_loss
