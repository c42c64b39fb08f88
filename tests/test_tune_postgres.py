"""Workers sharing one search through a real PostgreSQL server (.ci/setup-postgresql.sh starts one).

Skips cleanly when no server answers at $CNNLAB_TEST_PG
(default postgresql://cnnlab:cnnlab@127.0.0.1:5432/cnnlab_test).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from cnnlab.experiments.tune import tune
from test_tune_search import BASE, fake_train

PG = os.environ.get("CNNLAB_TEST_PG", "postgresql://cnnlab:cnnlab@127.0.0.1:5432/cnnlab_test")


@pytest.fixture
def pg():
    """Yield ``(url, new_name)``; skip when the server is unreachable; delete the studies afterwards."""
    try:
        import psycopg

        psycopg.connect(PG.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
    except Exception as e:  # no driver, no server, wrong credentials: not this test's business
        pytest.skip(f"no PostgreSQL at {PG} ({type(e).__name__}); run .ci/setup-postgresql.sh")
    names: list[str] = []

    def new_name() -> str:
        names.append(f"pytest-{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield PG, new_name
    import optuna

    from cnnlab.experiments.study import normalise_url

    for name in names:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=f"cnnlab-tune-{name}", storage=normalise_url(PG))


def rendezvous_train(config, callbacks, run_dir):
    """fake_train that first waits (up to 30 s) until two processes have joined, so both take trials."""
    room = Path(config["room"])
    room.mkdir(parents=True, exist_ok=True)
    (room / str(os.getpid())).touch()
    deadline = time.time() + 30
    while len(list(room.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    metrics = fake_train(config, callbacks, run_dir)
    return {**metrics, "pid": os.getpid()}


def _study(url, name):
    import optuna

    from cnnlab.experiments.study import normalise_url

    study = optuna.load_study(study_name=f"cnnlab-tune-{name}", storage=normalise_url(url))
    return [t for t in study.get_trials() if not t.user_attrs.get("cnnlab_surplus")]


def test_two_worker_processes_share_n_trials_without_duplicates(pg, tmp_path):
    url, new_name = pg
    name = new_name()
    space = {"lr": {"loguniform": [1e-4, 1.0]}, "optimizer": {"choice": ["sgd", "adam"]}}
    result = tune({**BASE, "room": str(tmp_path / "room")}, space, sampler="random", trials=8, pruner="none",
                  storage=url, workers=2, project=tmp_path, name=name, train_fn=rendezvous_train, plots=False,
                  log=None)
    trials = _study(url, name)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 8
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 8
    pids = {t.user_attrs["metrics"]["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids  # both spawned workers took trials
    assert result.counts["complete"] == 8 and "***" in result.storage  # password masked


def test_two_machines_cover_a_grid_once(pg, tmp_path):
    """Two independent `cnnlab tune` processes (own folders, as on two machines) share one grid."""
    url, new_name = pg
    name = new_name()
    grid = [0.0005, 0.001, 0.003, 0.01, 0.03, 0.1]
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, {tests!r})
        from test_tune_search import BASE
        from test_tune_postgres import rendezvous_train
        from cnnlab.experiments.tune import tune
        tune({{**BASE, "room": {room!r}}}, {{"lr": {{"grid": {grid!r}}}}}, sampler="grid", pruner="none",
             storage={url!r}, project=sys.argv[1], name={name!r}, train_fn=rendezvous_train, plots=False, log=None)
    """).format(tests=str(Path(__file__).parent), room=str(tmp_path / "room"), grid=grid, url=url, name=name)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"machine{i}")], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    trials = _study(url, name)
    assert sorted(t.params["lr"] for t in trials) == grid and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["metrics"]["pid"] for t in trials}) == 2
    for i in range(2):  # each machine wrote the shared study's table into its own folder
        assert len((tmp_path / f"machine{i}" / "tune" / name / "trials.csv").read_text().splitlines()) == 7
