"""Core conventions: atomic writes, safe loads, run folders, CLI error handling."""

from __future__ import annotations

import pytest

from cnnlab.errors import UserError
from cnnlab.io import atomic_path, atomic_write_text, read_yaml, torch_load_safe, torch_save_atomic
from cnnlab.paths import data_root
from cnnlab.runs import new_run_dir, resolve_run


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    f = tmp_path / "keep.txt"
    atomic_write_text(f, "old")
    with pytest.raises(RuntimeError), atomic_path(f) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert f.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_run_dirs_increment(tmp_path):
    a = new_run_dir(tmp_path, "classify", "exp")
    b = new_run_dir(tmp_path, "classify", "exp")
    c = new_run_dir(tmp_path, "classify", "exp")
    assert [a.name, b.name, c.name] == ["exp", "exp2", "exp3"]
    with pytest.raises(UserError, match="not a cnnlab run folder"):
        resolve_run(a)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("CNNLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "cache" / "cnnlab" / "data"


def test_torch_load_refuses_code(tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(UserError, match="refused to load"):
        torch_load_safe(bad)
    good = tmp_path / "good.pt"
    torch_save_atomic({"w": torch.ones(2), "epoch": 3}, good)
    assert torch_load_safe(good)["epoch"] == 3


def test_yaml_error_is_user_error(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="invalid YAML"):
        read_yaml(f)


def test_cli_version_and_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and "cnnlab" in out


def test_cli_import_is_light():
    import subprocess
    import sys

    code = "import sys, cnnlab.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "cnnlab --help must not import torch"


def test_atomic_files_get_normal_permissions(tmp_path):
    import os
    import stat

    f = atomic_write_text(tmp_path / "plain.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask
