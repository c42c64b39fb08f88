"""The lock file pins every dependency pyproject names, so `make test` installs what was tested."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_lock_pins_every_dependency_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.split(";")[0].strip().partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    assert wanted <= set(pins), sorted(wanted - set(pins))


def test_the_installed_versions_are_the_locked_ones():
    from importlib.metadata import PackageNotFoundError, version

    for name in ("torch", "typer", "click", "timm", "optuna", "onnxruntime"):
        line = next(x for x in (REPO / "requirements.lock").read_text().splitlines() if x.lower().startswith(name + "=="))
        try:
            assert version(name) == line.split("==")[1].split(";")[0].strip(), name
        except PackageNotFoundError:  # pragma: no cover
            raise AssertionError(f"{name} is locked but not installed") from None
