"""What a resumed search does with a cut-off trial (docs/tune.md, "Stopping and resuming"): Ctrl-C always
queues it again; a parameter set that crashed (or was killed) 3 times is not queued again, and the
search says so instead of dropping it silently."""

from __future__ import annotations

import optuna
import pytest

from cnnlab.experiments.study import MAX_FAILURES, NOT_REQUEUED_ATTR
from cnnlab.experiments.tune import tune
from test_tune_search import BASE, _trials, fake_train

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

SPACE = {"lr": {"grid": [0.001, 0.01, 0.1]}}
KWARGS = dict(sampler="grid", pruner="none", plots=False, log=None)


class OutOfMemory(RuntimeError):
    pass


def _run_until_done(run, tries: int = 10) -> list[str]:
    """Resume the search until it finishes; the exception class names of the stops on the way."""
    stops = []
    for _ in range(tries):
        try:
            run()
            return stops
        except (OutOfMemory, KeyboardInterrupt) as e:
            stops.append(type(e).__name__)
    raise AssertionError(f"the search never finished: {stops}")


def _study(run_dir):
    return optuna.load_study(study_name=f"cnnlab-tune-{run_dir.name}", storage=f"sqlite:///{run_dir / 'study.db'}")


def test_a_parameter_set_that_keeps_crashing_is_dropped_after_3_and_the_search_says_so(tmp_path, capfd):
    calls = {"bad": 0}

    def train(config, callbacks, run_dir):
        if config["lr"] == 0.1:  # say, a setting that runs out of memory every time
            calls["bad"] += 1
            raise OutOfMemory("CUDA out of memory")
        return fake_train(config, callbacks, run_dir)

    stops = _run_until_done(lambda: tune(BASE, SPACE, train_fn=train, project=tmp_path, name="oom", **KWARGS))
    assert stops == ["OutOfMemory"] * MAX_FAILURES and calls["bad"] == MAX_FAILURES == 3
    run_dir = tmp_path / "tune" / "oom"
    trials = _trials(run_dir)
    assert sorted(t.params["lr"] for t in trials if t.state.name == "COMPLETE") == [0.001, 0.01]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 3 and all(t.params["lr"] == 0.1 for t in failed)
    assert not [t for t in trials if t.state.name == "WAITING"]  # not queued a 4th time
    err = capfd.readouterr().err
    assert err.count("not queued again") == 1
    assert f"trial {failed[-1].number} (lr=0.1) crashed or was killed 3 times" in err
    note = _study(run_dir).user_attrs[NOT_REQUEUED_ATTR]
    assert list(note) == [str(failed[-1].number)] and "not queued again" in note[str(failed[-1].number)]
    # resuming once more runs nothing: the grid is done, the dropped point stays dropped
    again = tune(BASE, SPACE, train_fn=train, project=tmp_path, name="oom", **KWARGS)
    assert calls["bad"] == 3 and again.counts["complete"] == 2


def test_ctrl_c_never_counts_against_a_trial(tmp_path, capfd):
    """Stopping the same trial more often than MAX_FAILURES still queues it again every time."""
    stops_left = {"n": MAX_FAILURES + 2}

    def train(config, callbacks, run_dir):
        if config["lr"] == 0.01 and stops_left["n"]:
            stops_left["n"] -= 1
            raise KeyboardInterrupt
        return fake_train(config, callbacks, run_dir)

    stops = _run_until_done(lambda: tune(BASE, SPACE, train_fn=train, project=tmp_path, name="stop", **KWARGS))
    assert stops == ["KeyboardInterrupt"] * (MAX_FAILURES + 2)
    trials = _trials(tmp_path / "tune" / "stop")
    assert sorted(t.params["lr"] for t in trials if t.state.name == "COMPLETE") == [0.001, 0.01, 0.1]
    assert "not queued again" not in capfd.readouterr().err


def test_a_killed_worker_counts(tmp_path, capfd):
    """Trials left RUNNING by a killed process are failed and queued again when the search resumes,
    and those failures count like crashes."""
    from optuna.trial import TrialState

    from cnnlab.experiments.study import FAILURES_ATTR, fail_running_now, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="k", storage=storage)
    dist = {"lr": optuna.distributions.CategoricalDistribution([0.1])}
    study.enqueue_trial({"lr": 0.1})
    for attempt in range(1, MAX_FAILURES + 1):
        trial = study.ask(fixed_distributions=dist)  # takes the queued copy; its process then "dies"
        assert trial.params == {"lr": 0.1}
        queued = fail_running_now(study)
        waiting = study.get_trials(states=(TrialState.WAITING,))
        if attempt < MAX_FAILURES:
            assert queued == [trial.number] and waiting[0].system_attrs[FAILURES_ATTR] == attempt
        else:
            assert queued == [] and waiting == []
    assert "crashed or was killed 3 times" in capfd.readouterr().err


@pytest.mark.parametrize("counted", [True, False])
def test_requeue_keeps_the_parameters_and_the_grid_point(tmp_path, counted):
    from optuna.trial import TrialState

    from cnnlab.experiments.study import FAILURES_ATTR, open_storage, requeue

    study = optuna.create_study(study_name="q", storage=open_storage(f"sqlite:///{tmp_path / 'q.db'}"))
    study.enqueue_trial({"lr": 0.01}, user_attrs={"cnnlab_grid": 4})
    trial = study.ask({"lr": optuna.distributions.CategoricalDistribution([0.01])})
    study.tell(trial, state=TrialState.FAIL)
    assert requeue(study, trial._trial_id, counted=counted) is None
    (copy,) = study.get_trials(states=(TrialState.WAITING,))
    assert copy.params == {"lr": 0.01} and copy.user_attrs["cnnlab_grid"] == 4
    assert copy.system_attrs[FAILURES_ATTR] == int(counted)
    assert copy.system_attrs["retry_history"] == [trial.number]
