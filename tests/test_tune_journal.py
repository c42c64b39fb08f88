"""Workers sharing one search through Optuna's journal file storage (a shared file system, no server):
two local worker processes finish exactly N trials without duplicates, a trial whose worker died is
failed and queued again, storage spellings and bad paths."""

from __future__ import annotations

import json
import time

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.errors import UserError
from cnnlab.experiments.study import (
    HEARTBEAT_ATTR,
    _fail_stale_journal,
    heartbeat,
    normalise_url,
    open_storage,
)
from cnnlab.experiments.tune import tune
from test_tune_postgres import rendezvous_train
from test_tune_search import BASE


def _trials(journal, name):
    study = optuna.load_study(study_name=f"cnnlab-tune-{name}", storage=open_storage(normalise_url(str(journal))))
    return [t for t in study.get_trials() if not t.user_attrs.get("cnnlab_surplus")]


def test_two_local_workers_on_a_journal_file_run_n_trials_once(tmp_path):
    journal = tmp_path / "shared" / "search.log"
    journal.parent.mkdir()
    space = {"lr": {"loguniform": [1e-4, 1.0]}, "optimizer": {"choice": ["sgd", "adam"]}}
    result = tune({**BASE, "room": str(tmp_path / "room")}, space, sampler="random", trials=6, pruner="none",
                  storage=f"journal://{journal}", workers=2, project=tmp_path, name="lab", train_fn=rendezvous_train,
                  plots=False, log=None)
    trials = _trials(journal, "lab")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6          # no parameter set twice
    assert len({t.user_attrs["metrics"]["pid"] for t in trials}) == 2           # both workers took trials
    assert all(HEARTBEAT_ATTR in t.system_attrs for t in trials)                 # they sent heartbeats
    assert result.counts["complete"] == 6 and result.storage == f"journal://{journal}"
    assert len((tmp_path / "tune" / "lab" / "trials.csv").read_text().splitlines()) == 7
    again = tune({**BASE, "room": str(tmp_path / "room")}, space, sampler="random", trials=6, pruner="none",
                 storage=str(journal), project=tmp_path, name="lab", train_fn=rendezvous_train, plots=False, log=None)
    assert again.counts["complete"] == 6 and len(_trials(journal, "lab")) == 6   # a path ending .log: same study


def test_a_trial_whose_worker_died_is_failed_and_queued_again(tmp_path):
    url = normalise_url(str(tmp_path / "s.log"))
    study = optuna.create_study(study_name="k", storage=open_storage(url))
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
    dead = study.ask(dist)   # its worker "dies": no more heartbeats
    alive = study.ask(dist)
    with heartbeat(study._storage, alive._trial_id, interval=0.05):
        time.sleep(0.3)
        study._storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 120)
        assert _fail_stale_journal(study, url, grace=60) == [dead.number]
        assert _fail_stale_journal(study, url, grace=60) == []   # once only
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[dead.number] == "FAIL" and states[alive.number] == "RUNNING"
    (copy,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert copy.params == dead.params and copy.system_attrs["retry_history"] == [dead.number]


def test_journal_storage_spellings_and_errors(tmp_path):
    assert normalise_url(f"journal://{tmp_path}/a.log") == f"journal://{tmp_path}/a.log"
    assert normalise_url(str(tmp_path / "b.journal")) == f"journal://{tmp_path}/b.journal"
    with pytest.raises(UserError, match="does not exist"):
        normalise_url(f"journal://{tmp_path}/missing/a.log")
    with pytest.raises(UserError, match="is a folder"):
        normalise_url(f"journal://{tmp_path}")
    with pytest.raises(UserError, match="journal:///"):
        normalise_url("search.db")
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"\x00\xffnot a journal\n")
    with pytest.raises(UserError, match="bad.log: line 1 is not an Optuna journal record"):
        open_storage(normalise_url(str(bad)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.dictionaries(st.sampled_from(["op_code", "worker_id", "study_name", "directions",
                                                                "study_id", "trial_id", "state"]),
                                               st.one_of(st.integers(-2, 12), st.text(max_size=5), st.none(),
                                                         st.lists(st.integers(0, 2), max_size=2))),
                               max_size=4).map(lambda recs: "".join(json.dumps(r) + "\n" for r in recs).encode())))
def test_any_journal_file_opens_or_is_one_user_error(tmp_path, data):
    """A journal file is untrusted input: any bytes open as a storage or raise a one-line UserError."""
    path = tmp_path / "fuzz.log"
    path.write_bytes(data)
    try:
        storage = open_storage(normalise_url(str(path)))
    except UserError as e:
        assert "\n" not in str(e)
        return
    storage.get_all_studies()
