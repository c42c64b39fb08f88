"""Known pretrained weights by name, downloaded only when asked (``cnnlab weights get NAME``), checked by
sha256, written atomically under the data root (``<root>/yolo/`` for Darknet files, ``<root>/weights/``
for cnnlab's own recipes, where ``cnnlab.paths.find_file`` finds them by bare name).

cnnlab's own recipes (``cifar10-fast``, ``mnist-fast``, ``fashion-mnist-fast``) are published as one
inference checkpoint each (``<recipe>.pt``: the EMA weights, config, classes and preprocessing, no
optimizer state), made by :func:`pack_weights` (``cnnlab weights pack RUN``) from a run of the recipe,
uploaded to :data:`RELEASES` and pinned here by sha256. Once present, the recipe's name is a model
source: ``cnnlab predict cifar10-fast img.png``, ``cnnlab.load("mnist-fast")``.

A file whose checksum cannot be pinned here (it could not be verified offline when the catalogue was
written) downloads only with ``trust_new=True`` (``--trust-new``): its sha256 is then recorded in
``<folder>/SHA256SUMS`` and every later download or check must match it (trust on first use).
Mirrors: ``$CNNLAB_DATA_MIRRORS`` (``<base>/<folder>/<file>``) are tried first, as for datasets.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import DataError, UserError

SUMS = "SHA256SUMS"
_PJ = "https://raw.githubusercontent.com/pjreddie/darknet/f86901f6177dfc6116360a13cc06ab680e0c86b0"
_FASTEST = "https://github.com/dog-qiuqiu/Yolo-Fastest/raw/{commit}/ModelZoo/yolo-fastest-1.1_coco"
_F11, _FXL = "99d03d0f26e2555275bdb30f43479d47cc19311f", "9c62b1c50e024fb73d29a651133b1d63548e63a1"
# where cnnlab's own recipe weights are published (release assets); mirrors are tried first
RELEASES = "https://github.com/cnnlab/cnnlab/releases/download/weights-v1"
_COCO_NAMES_SHA = "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"


@dataclass(frozen=True)
class KnownFile:
    """One file of a known model: where it comes from and its sha256 (None: not pinned, see module doc)."""

    name: str
    url: str
    sha256: str | None


@dataclass(frozen=True)
class KnownWeights:
    """A model people use, by name: its files (cfg, weights, class names) and the data-root folder they go to."""

    name: str
    description: str
    files: tuple[KnownFile, ...]
    folder: str = "yolo"


def _coco_names() -> KnownFile:
    return KnownFile("coco.names", f"{_PJ}/data/coco.names", _COCO_NAMES_SHA)


KNOWN: dict[str, KnownWeights] = {w.name: w for w in (
    KnownWeights("yolo-fastest-1.1", "Yolo-Fastest 1.1, COCO, 320x320, 0.35 M parameters (dog-qiuqiu)", (
        KnownFile("yolo-fastest-1.1.cfg", f"{_FASTEST.format(commit=_F11)}/yolo-fastest-1.1.cfg",
                  "f6df5775c1e862998cf69046eba9265be3ae84dfe8b2caab7529823f0795bf70"),
        KnownFile("yolo-fastest-1.1.weights", f"{_FASTEST.format(commit=_F11)}/yolo-fastest-1.1.weights",
                  "1c445c42bbd6df63edea2cc69f99667b5650d663ca11e34b116240740cd42890"),
        _coco_names())),
    KnownWeights("yolo-fastest-1.1-xl", "Yolo-Fastest 1.1 XL, COCO, 320x320, 0.92 M parameters (dog-qiuqiu)", (
        KnownFile("yolo-fastest-1.1-xl.cfg", f"{_FASTEST.format(commit=_FXL)}/yolo-fastest-1.1-xl.cfg",
                  "c458427acc4fbeabceff4528ef7b65b066c0308ce599460f8ba299eba63abad3"),
        KnownFile("yolo-fastest-1.1-xl.weights", f"{_FASTEST.format(commit=_FXL)}/yolo-fastest-1.1-xl.weights",
                  "fac5fb41786c1f38f04972a658443b189f48720d7d117f9a044100e98a35b0c5"),
        _coco_names())),
    KnownWeights("yolov3-tiny", "YOLOv3-tiny, COCO, 416x416, 8.9 M parameters (pjreddie)", (
        KnownFile("yolov3-tiny.cfg", f"{_PJ}/cfg/yolov3-tiny.cfg",
                  "84eb7a675ef87c906019ff5a6e0effe275d175adb75100dcb47f0727917dc2c7"),
        KnownFile("yolov3-tiny.weights", "https://pjreddie.com/media/files/yolov3-tiny.weights",  # 35,434,956 bytes
                  "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"),
        _coco_names())),
    KnownWeights("yolov4-tiny", "YOLOv4-tiny, COCO, 416x416, 6.1 M parameters (AlexeyAB)", (
        KnownFile("yolov4-tiny.cfg", "https://raw.githubusercontent.com/AlexeyAB/darknet/"
                  "a298f94255a20a3198d80ea512755d9e5dddbf02/cfg/yolov4-tiny.cfg",  # its last change (2020-12-15)
                  "f858e3724962eedf3ac44e3b6cb3f0c3d9ed067c306bb831f539c578b924c90e"),
        KnownFile("yolov4-tiny.weights",
                  "https://github.com/AlexeyAB/darknet/releases/download/darknet_yolo_v4_pre/yolov4-tiny.weights",
                  "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87"),
        _coco_names())),
)}


def _recipe(name: str, description: str, sha256: str | None) -> KnownWeights:
    """The weights of one of cnnlab's recipes: a single inference checkpoint ``<name>.pt``."""
    return KnownWeights(name, description, (KnownFile(f"{name}.pt", f"{RELEASES}/{name}.pt", sha256),),
                        folder="weights")


RECIPE_WEIGHTS = ("cifar10-fast", "mnist-fast", "fashion-mnist-fast")
KNOWN.update({w.name: w for w in (
    _recipe("cifar10-fast", "cnnlab recipe cifar10-fast (airbench-style net, CIFAR-10, 32x32, test 91.85 %)",
            "c60f17c4a8865f88eb8e5da8bcdd761dde16aeee57eb657bda2b4a6ebb79dab2"),    # 2,299,438 bytes
    _recipe("mnist-fast", "cnnlab recipe mnist-fast (airbench-style net, MNIST, 28x28, test 99.68 %)",
            "92be6eadd926177b3c9148fa869824c87f2308ff3d09422fe07609c1c1512bfd"),    # 1,179,758 bytes
    _recipe("fashion-mnist-fast", "cnnlab recipe fashion-mnist-fast (airbench-style net, Fashion-MNIST, 28x28, "
            "test 94.77 %)", "36173855ee445fc1538c14b0825b83e4a61c068720f347d47c8a48c60d724033"),  # 4,630,638 bytes
)})


def recipe_checkpoint(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The downloaded checkpoint of cnnlab recipe ``name`` (``<data root>/weights/<name>.pt``); absent:
    one line naming the command that gets it and where the file goes."""
    from cnnlab.paths import data_root, find_path

    w = KNOWN[name]
    found = find_path(w.files[0].name, "weights", data_dir)
    if found is not None and found.is_file():
        return found
    folder = data_root(data_dir) / w.folder
    raise UserError(f"{name}: its pretrained weights are not here; get them with: cnnlab weights get {name} "
                    f"(or put {w.files[0].name} in {folder})")


def pack_weights(run: str | os.PathLike, output: str | os.PathLike = ".", name: str | None = None,
                 use_ema: bool = True) -> dict[str, object]:
    """Write a run's best checkpoint as a slim inference checkpoint ``<output>/<name>.pt`` (the EMA weights
    as the model when ``use_ema`` and the run kept them; optimizer, scheduler and RNG state dropped) and
    return ``{"path", "sha256", "bytes"}``: the file to publish and the checksum to pin in :data:`KNOWN`."""
    from cnnlab.engine.checkpoint import check_checkpoint
    from cnnlab.io import torch_load_safe, torch_save_atomic
    from cnnlab.sources.kinds import identify

    loc = identify(run)
    if loc.kind not in ("classify-run", "detect-run", "classify-checkpoint", "detect-checkpoint"):
        raise UserError(f"{run}: not a cnnlab run folder or checkpoint ({loc.describe()})")
    ckpt = torch_load_safe(loc.path)
    check_checkpoint(ckpt, loc.path)
    slim = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "rng", "scaler", "ema")}
    if use_ema and isinstance(ckpt.get("ema"), dict):
        slim["model"] = ckpt["ema"]
    slim["ema"] = None
    check_checkpoint(slim, loc.path)
    stem = name or (loc.run_dir.name if loc.run_dir is not None else Path(loc.path).stem)
    if not stem or any(ch in stem for ch in "/\\") or stem.startswith("."):
        raise UserError(f"bad weights name {stem!r} (a plain file name without folders)")
    target = Path(output) / f"{stem}.pt"
    torch_save_atomic(slim, target)
    return {"path": target, "sha256": sha256_of(target), "bytes": target.stat().st_size}


def known_weights(name: str) -> KnownWeights:
    """The catalogue entry for ``name`` (a model name, or one of its file names); unknown: one line."""
    key = name.removesuffix(".weights").removesuffix(".cfg")
    if key in KNOWN:
        return KNOWN[key]
    if (found := known_file(name)) is not None:
        return found[0]
    import difflib

    close = difflib.get_close_matches(key, list(KNOWN), n=3)
    raise UserError(f"unknown weights {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
                    + f" (known: {', '.join(KNOWN)})")


def known_file(file_name: str) -> tuple[KnownWeights, KnownFile] | None:
    """The known model and file named ``file_name`` (``yolov4-tiny.weights``...), or None."""
    for w in KNOWN.values():
        for f in w.files:
            if f.name == file_name and f.name != "coco.names":
                return w, f
    return None


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def recorded_sums(folder: Path) -> dict[str, str]:
    """``name -> sha256`` recorded on first download (``<folder>/SHA256SUMS``, sha256sum's format)."""
    path = folder / SUMS
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def _record(folder: Path, name: str, digest: str) -> None:
    from cnnlab.io import atomic_write_text

    sums = {**recorded_sums(folder), name: digest}
    atomic_write_text(folder / SUMS, "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def expected_sha256(folder: Path, f: KnownFile) -> tuple[str | None, str]:
    """``(sha256, where it comes from)``: pinned in the catalogue, recorded on first use, or unknown."""
    if f.sha256:
        return f.sha256, "pinned"
    recorded = recorded_sums(folder).get(f.name)
    return (recorded, "recorded on first download") if recorded else (None, "unknown")


def weights_status(name: str, data_dir: str | os.PathLike | None = None) -> list[dict[str, object]]:
    """Per file: path, present, and whether its checksum is pinned, recorded or unknown (no network)."""
    from cnnlab.paths import data_root

    w = known_weights(name)
    folder = data_root(data_dir) / w.folder
    rows = []
    for f in w.files:
        digest, how = expected_sha256(folder, f)
        rows.append({"file": f.name, "path": str(folder / f.name), "present": (folder / f.name).is_file(),
                     "sha256": digest, "checksum": how, "url": f.url})
    return rows


def get_weights(name: str, data_dir: str | os.PathLike | None = None, trust_new: bool = False,
                force: bool = False, quiet: bool = False) -> list[Path]:
    """Download the files of known model ``name`` into ``<data root>/<folder>/`` (opt-in, never implicit).

    Present files are checked against their sha256 (a mismatch is a one-line error unless ``force``
    downloads again). Every download is atomic and verified: a checksum mismatch or a truncated body
    leaves nothing behind. A file without a pinned or recorded checksum needs ``trust_new`` (its
    sha256 is then recorded). Offline: one line naming the file, the URL and where to put it.
    """
    from cnnlab.data.download import DownloadFailed, RemoteFile, candidate_urls, download_file
    from cnnlab.paths import data_root

    w = known_weights(name)
    folder = data_root(data_dir) / w.folder
    plan = []
    for f in w.files:
        dest = folder / f.name
        digest, how = expected_sha256(folder, f)
        if dest.is_file() and not force:
            if digest and sha256_of(dest) != digest:
                raise DataError(f"{dest}: sha256 differs from the {how} one ({digest[:12]}...); "
                                "get it again with --force")
            continue
        if digest is None and not trust_new:
            raise UserError(f"{f.name}: no pinned checksum (it could not be verified when cnnlab's list was "
                            f"written); download it anyway and record its sha256 with --trust-new, or put the "
                            f"file at {dest} (from {f.url})")
        plan.append((f, dest, digest))
    for f, dest, digest in plan:
        urls = candidate_urls(RemoteFile(f.name, "", (f.url,)), w.folder)
        try:
            download_file(urls, dest, None, sha256=digest, quiet=quiet)
        except DownloadFailed as e:
            raise DownloadFailed(f"cannot download {f.name} ({_reason(str(e), urls)}); put the file at {dest} "
                                 f"(from {f.url})") from None
        if digest is None:
            _record(folder, f.name, sha256_of(dest))
    return [folder / f.name for f in w.files]


def _reason(text: str, urls: list[str]) -> str:
    """The reason the official address failed (the last one tried), without the address itself."""
    for url in urls:
        text = text.replace(f"{url}: ", "")
    return text.split("; ")[-1][:160]
