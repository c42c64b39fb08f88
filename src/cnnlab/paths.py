"""Where data, weights and caches live: ``--data-dir`` > ``$CNNLAB_DATA`` > ``~/.cache/cnnlab``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache folder (``$XDG_CACHE_HOME/cnnlab`` or ``~/.cache/cnnlab``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnlab"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else ``$CNNLAB_DATA``, else the cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("CNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


# kind -> sub-folders of the data root searched for a bare name (after the path itself)
DATA_SUBDIRS: dict[str, tuple[str, ...]] = {
    "image": ("images",),
    "weights": ("weights", "yolo"),
    "cfg": ("yolo", "weights"),
    "names": ("yolo", "weights"),
    "video": ("video",),
}
SAMPLE_IMAGES = ("china.jpg", "flower.jpg")  # scikit-learn's bundled photos, so examples work offline


def sample_image_dir() -> Path | None:
    """scikit-learn's bundled sample photos (``china.jpg``, ``flower.jpg``), found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images"
    return folder if folder.is_dir() else None


def _sample(name: str) -> Path | None:
    key = name if name.endswith(".jpg") else f"{name}.jpg"
    folder = sample_image_dir()
    return folder / key if key in SAMPLE_IMAGES and folder is not None else None


def candidates(name: str | os.PathLike, kind: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where ``find_file`` looks for ``name``, in order: the path as given; for a bare name (no
    folder part) a bundled sample photo (images), then ``<data root>/<sub>/name`` for each of the kind's
    sub-folders (``weights/``, ``yolo/``, ``images/``...) and ``<data root>/name``."""
    if kind not in DATA_SUBDIRS:
        raise ValueError(f"unknown file kind {kind!r}")
    path = Path(name).expanduser()
    out = [path]
    if path.is_absolute() or len(path.parts) != 1:
        return out
    if kind == "image" and (sample := _sample(str(name))) is not None:
        out.append(sample)
    root = data_root(data_dir)
    out += [root / sub / path for sub in DATA_SUBDIRS[kind]] + [root / path]
    return out


def find_file(name: str | os.PathLike, kind: str, data_dir: str | os.PathLike | None = None,
              what: str | None = None) -> Path:
    """The one resolver for files named on the command line or in the API: ``name`` as a path, else
    (a bare name) a bundled sample photo or a file under the data root's ``weights/``, ``yolo/``,
    ``images/``... folder for its ``kind``. Missing: a one-line UserError saying where it looked."""
    from cnnlab.errors import UserError

    found = find_path(name, kind, data_dir)
    if found is not None:
        return found
    looked = candidates(name, kind, data_dir)
    where = ", ".join(str(p.parent) if p.name == Path(name).name else str(p) for p in looked[1:])
    hint = f" (looked in ., {where})" if where else ""
    if kind == "image" and len(looked) > 1:
        hint += f"; bundled samples: {', '.join(SAMPLE_IMAGES)}"
    if kind in ("weights", "cfg"):
        from cnnlab.data.weights import known_file

        known = known_file(Path(name).name)
        if known is not None:
            hint += (f"; get it with: cnnlab weights get {known[0].name} (or put it in "
                     f"{data_root(data_dir) / known[0].folder})")
    raise UserError(f"{what or kind + ' file'} not found: {name}{hint}")


def find_path(name: str | os.PathLike, kind: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """``find_file`` without the error: the first existing candidate (file or folder), or None."""
    for p in candidates(name, kind, data_dir):
        try:
            if p.exists():
                return p
        except (OSError, ValueError):  # a name too long for the file system
            continue
    return None


def find_data(spec: str | os.PathLike) -> Path:
    """A dataset path as given when it exists, else the same relative path under the data root
    (``membrane`` -> ``$CNNLAB_DATA/membrane``); the path as given when neither exists."""
    p = Path(spec).expanduser()
    if p.exists() or p.is_absolute():
        return p
    under = data_root() / p
    return under if under.exists() else p
