"""Run folders read back: config.yaml and metrics.json that are not what a run writes are one UserError line."""

from __future__ import annotations

import pytest

from cnnlab.errors import UserError
from cnnlab.runs import read_run_config, read_run_metrics, write_run_config, write_run_metrics


@pytest.fixture
def run(tmp_path):
    d = tmp_path / "runs" / "classify" / "exp"
    write_run_config(d, {"dataset": "digits", "model": "lenet5", "epochs": 2})
    write_run_metrics(d, {"test_accuracy": 0.9, "test": {"per_class_accuracy": {"0": 1.0}}})
    return d


def test_round_trip(run):
    assert read_run_config(run)["model"] == "lenet5" and read_run_metrics(run)["test_accuracy"] == 0.9
    (run / "config.yaml").write_text("")
    assert read_run_config(run) == {}  # an empty file is an empty config
    (run / "metrics.json").unlink()
    assert read_run_metrics(run) == {}  # no metrics yet
    (run / "config.yaml").write_text("x: &v [1, 2]\ny: [*v, *v]\n")  # plain aliases are fine
    assert read_run_config(run) == {"x": [1, 2], "y": [[1, 2], [1, 2]]}


LAUGHS = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))


@pytest.mark.parametrize("text, match", [
    ("- a\n- b\n", r"expected run options \(name: value\), found a list"),
    ("just a string\n", r"expected run options \(name: value\), found a string"),
    ("42\n", r"found a number"),
    ("1: a\n", r"found a key that is a number"),
    ("null: a\n", r"found a key that is null"),
    ("a: 1\n~: 2\n", r"found a key that is null"),
    ("a: [\n", r"invalid YAML"),
    ("a: !!python/object:os.system {}\n", r"invalid YAML \(could not determine a constructor"),
    ("a: &x [*x]\n", r"a value contains itself"),
    ("a: &x {b: *x}\n", r"a value contains itself"),
    ("a: " + "[" * 80 + "]" * 80 + "\n", r"nested more than 64 levels deep"),
    (LAUGHS, r"expands to more than 1,000,000 values"),
    ("a: " + "9" * 5000 + "\n", r"invalid YAML \(Exceeds the limit"),
])
def test_bad_config_yaml(run, text, match):
    (run / "config.yaml").write_text(text)
    with pytest.raises(UserError, match=match) as e:
        read_run_config(run)
    assert str(e.value).startswith(str(run / "config.yaml")) and "\n" not in str(e.value)


@pytest.mark.parametrize("raw, match", [
    (b"not json", r"invalid JSON \(Expecting value"),
    (b"[1, 2]", r"expected a JSON object of metrics, found a list"),
    (b'"0.9"', r"found a string"),
    (b"null", None),
    (b"\xff\xfe{}", r"not a UTF-8 text file \(byte 0"),
    (b"[" * 100000, r"invalid JSON"),
    (b'{"a": ' + b"9" * 5000 + b"}", r"invalid JSON \(Exceeds the limit"),
])
def test_bad_metrics_json(run, raw, match):
    (run / "metrics.json").write_bytes(raw)
    if match is None:
        assert read_run_metrics(run) == {}
        return
    with pytest.raises(UserError, match=match) as e:
        read_run_metrics(run)
    assert str(e.value).startswith(str(run / "metrics.json")) and "\n" not in str(e.value)


def test_non_utf8_config_and_folder_in_place_of_file(run):
    (run / "config.yaml").write_bytes(b"model: lenet5\nname: \xe9t\xe9\n")  # latin-1, not UTF-8
    with pytest.raises(UserError, match=r"config.yaml: not a UTF-8 text file \(byte 20"):
        read_run_config(run)
    (run / "config.yaml").unlink()
    (run / "config.yaml").mkdir()
    with pytest.raises(UserError, match="not a cnnlab run folder"):
        read_run_config(run)


def test_cli_commands_reading_a_broken_run_say_one_line(run, cli):
    (run / "config.yaml").write_text("- not\n- a mapping\n")
    code, _, err = cli("report", str(run))
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "config.yaml: expected run options (name: value), found a list" in err
