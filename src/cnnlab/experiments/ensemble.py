"""Ensembles of trained classifiers: ``cnnlab ensemble RUN RUN ... [--weights 1,1,2]``.

    result = cnnlab.ensemble(["runs/classify/exp", "runs/classify/exp2", "runs/classify/exp3"])
    result.metrics["gain_over_best"]      # accuracy of the averaged probabilities - best member's

Every member (a run folder, a checkpoint or an ``.onnx`` file of the same classes) is evaluated on the
same split (default: the test split of the dataset the first member was trained on), each with its own
preprocessing. The ensemble predicts with

- **averaged probabilities**: the weighted mean of the members' softmax outputs (``weights``, default
  equal, normalised to sum 1);
- **majority vote**: the class most members predict (weighted votes; ties go to the class with the
  higher averaged probability).

``gain_over_best`` = ensemble accuracy (averaged probabilities) - accuracy of the best member.
:class:`EnsembleModel` is the averaged-probability ensemble as one ``nn.Module`` (input: the first
member's preprocessing; each member re-normalises it to its own; output: log of the averaged
probabilities, so softmax gives them back) and :func:`ensemble` exports it to ONNX as one model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.errors import UserError


class EnsembleModel(nn.Module):
    """Weighted average of the members' probabilities; returns its log (logits of the ensemble).

    ``means``/``stds``: each member's input normalisation; the ensemble takes inputs normalised with
    ``means[0]``/``stds[0]`` and maps them to every other member's (a fixed per-channel affine map).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], means: Sequence[Sequence[float]],
                 stds: Sequence[Sequence[float]]) -> None:
        super().__init__()
        if not members:
            raise UserError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        w = torch.tensor([float(v) for v in weights], dtype=torch.float32)
        self.register_buffer("weights", w / w.sum())
        m0, s0 = torch.tensor(means[0], dtype=torch.float32), torch.tensor(stds[0], dtype=torch.float32)
        scales, shifts = [], []
        for m, s in zip(means, stds, strict=True):
            mi, si = torch.tensor(m, dtype=torch.float32), torch.tensor(s, dtype=torch.float32)
            scales.append(s0 / si)            # x_i = (x0 * s0 + m0 - m_i) / s_i
            shifts.append((m0 - mi) / si)
        self.register_buffer("scales", torch.stack(scales).view(len(members), 1, -1, 1, 1))
        self.register_buffer("shifts", torch.stack(shifts).view(len(members), 1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = None
        for i, member in enumerate(self.members):
            p = member(x * self.scales[i] + self.shifts[i]).float().softmax(1) * self.weights[i]
            probs = p if probs is None else probs + p
        assert probs is not None
        return probs.clamp_min(1e-12).log()


@dataclass
class EnsembleResult:
    """Per-member and ensemble metrics, the files written and the ONNX export (if asked)."""

    metrics: dict[str, Any]
    members: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    model: EnsembleModel | None = None


def parse_weights(weights: Sequence[float] | str | None, n: int) -> list[float]:
    """Member weights: None (equal), a list, or a string ``"1,1,2"``; n values, each >= 0, not all 0."""
    if weights is None:
        return [1.0] * n
    if isinstance(weights, str):
        try:
            values = [float(v) for v in weights.replace(" ", "").split(",") if v]
        except ValueError:
            raise UserError(f"--weights must be numbers separated by commas, got {weights!r}") from None
    else:
        values = [float(v) for v in weights]
    if len(values) != n:
        raise UserError(f"{len(values)} weights for {n} members")
    if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise UserError("weights must be finite, >= 0 and not all 0")
    return values


def ensemble(sources: Sequence[str | os.PathLike], weights: Sequence[float] | str | None = None, *,
             dataset: str | None = None, split: str = "test", data_dir: str | None = None, batch: int = 256,
             device: str = "auto", output: str | os.PathLike | None = None,
             onnx: str | os.PathLike | None = None, log: Any = None) -> EnsembleResult:
    """Evaluate ``sources`` and their ensemble (averaged probabilities, majority vote) on one split.

    ``output``: a folder for ``ensemble.json`` and ``ensemble.md``; ``onnx``: export the ensemble as one
    ONNX model there (with the first member's preprocessing and the class names as metadata).
    """
    from cnnlab.data import make_loader
    from cnnlab.devices import resolve_device
    from cnnlab.inference import _eval_split, load
    from cnnlab.tasks.classify.data import _labels, _shape

    say = log or (lambda _m: None)
    sources = [str(s) for s in sources]
    if len(sources) < 2:
        raise UserError("an ensemble needs at least 2 members")
    if batch < 1:
        raise UserError(f"batch must be >= 1, got {batch}")
    w = parse_weights(weights, len(sources))
    members = [load(s, device="cpu") for s in sources]
    if onnx is not None and any(m.runtime != "torch" for m in members):
        raise UserError("only PyTorch members (run folders, checkpoints) can be exported as one model")
    first = members[0]
    for s, m in zip(sources, members, strict=True):
        if list(m.classes) != list(first.classes):
            raise UserError(f"{s} predicts other classes than {sources[0]}; members must share their classes")
        if m.in_chans != first.in_chans or m.img_size != first.img_size:
            raise UserError(f"{s} takes {m.in_chans}x{m.img_size} inputs, {sources[0]} takes "
                            f"{first.in_chans}x{first.img_size}")
    name = dataset or first.config.get("dataset")
    if not name:
        raise UserError(f"{sources[0]}: say which dataset to evaluate on (--dataset NAME)")
    trained_on = first.config.get("dataset")
    opts = dict(first.config.get("dataset_options") or {}) if name == trained_on else {}
    data_dir = data_dir or (first.config.get("data_dir") if name == trained_on else None)
    ds, split = _eval_split(name, split, data_dir, opts, first.config if name == trained_on else {})
    in_chans, img_size = _shape(ds)
    if in_chans != first.in_chans or (first.img_size and img_size != first.img_size):
        raise UserError(f"{name} images are {in_chans}x{img_size}x{img_size}, the members take "
                        f"{first.in_chans}x{first.img_size}x{first.img_size}")
    if len(ds.classes) != len(first.classes):
        raise UserError(f"{name} has {len(ds.classes)} classes, the members predict {len(first.classes)}")
    labels = torch.as_tensor(_labels(ds))
    dev = resolve_device(device)
    probs = []
    for s, m in zip(sources, members, strict=True):
        say(f"evaluating {s} on {name} {split} ({len(labels)} images)")
        loader = make_loader(ds, batch, shuffle=False, device="cpu", num_classes=len(ds.classes), mean=m.mean,
                             std=m.std)
        if m.runtime == "torch":
            m.model.to(dev)
        out = []
        with torch.no_grad():
            for x, _ in loader:
                out.append(m.probabilities(x if m.runtime != "torch" else x.to(dev)).float().cpu())
        probs.append(torch.cat(out))
    p = torch.stack(probs)                                    # (members, N, classes)
    wt = torch.tensor(w, dtype=torch.float32)
    wt = wt / wt.sum()
    avg = (p * wt.view(-1, 1, 1)).sum(0)
    member_pred = p.argmax(2)                                 # (members, N)
    votes = torch.zeros_like(avg)
    votes.scatter_add_(1, member_pred.t(), wt.view(1, -1).expand(len(labels), -1).contiguous())
    vote_pred = (votes + 1e-6 * avg).argmax(1)                # ties: the higher averaged probability
    rows = []
    for s, m, pm, wi in zip(sources, members, p, w, strict=True):
        acc = float((pm.argmax(1) == labels).float().mean())
        nll = float(nn.functional.nll_loss(pm.clamp_min(1e-12).log(), labels))
        rows.append({"member": s, "model": m.name, "weight": wi, "accuracy": acc, "loss": nll})
    best = max(rows, key=lambda r: r["accuracy"])
    acc_avg = float((avg.argmax(1) == labels).float().mean())
    acc_vote = float((vote_pred == labels).float().mean())
    agree = float((member_pred == member_pred[0]).all(0).float().mean())
    metrics = {
        "dataset": name, "split": split, "images": len(labels), "members": len(sources), "weights": w,
        "accuracy": acc_avg, "loss": float(nn.functional.nll_loss(avg.clamp_min(1e-12).log(), labels)),
        "vote_accuracy": acc_vote, "best_member": best["member"], "best_member_accuracy": best["accuracy"],
        "mean_member_accuracy": float(np.mean([r["accuracy"] for r in rows])),
        "gain_over_best": acc_avg - best["accuracy"], "vote_gain_over_best": acc_vote - best["accuracy"],
        "all_agree": agree,
    }
    result = EnsembleResult(metrics, rows)
    if output is not None:
        _write(Path(output), result)
    if onnx is not None:
        if any(m.runtime != "torch" for m in members):
            raise UserError("only PyTorch members (run folders, checkpoints) can be exported as one model")
        result.model = EnsembleModel([m.model.cpu() for m in members], w, [m.mean for m in members],
                                     [m.std for m in members])
        from cnnlab.deploy.export import export

        exported = export(result.model, "onnx", onnx, classes=list(first.classes), mean=list(first.mean),
                          std=list(first.std), img_size=first.img_size, in_chans=first.in_chans)
        result.files["onnx"] = Path(exported.path)
    return result


def _write(folder: Path, result: EnsembleResult) -> None:
    from cnnlab.io import atomic_write_text, write_json

    folder.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    result.files["json"] = write_json(folder / "ensemble.json", {**m, "member_results": result.members})
    lines = [f"# Ensemble of {m['members']} models on {m['dataset']} ({m['split']}, {m['images']} images)", "",
             "| member | model | weight | accuracy | loss |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['member']} | {r['model']} | {r['weight']:g} | {r['accuracy']:.4f} | {r['loss']:.4f} |"
              for r in result.members]
    lines += [f"| **ensemble (averaged probabilities)** | | | **{m['accuracy']:.4f}** | {m['loss']:.4f} |",
              f"| **ensemble (majority vote)** | | | **{m['vote_accuracy']:.4f}** | |", "",
              f"Gain over the best member ({m['best_member_accuracy']:.4f}): {m['gain_over_best']:+.4f} "
              f"(averaged probabilities), {m['vote_gain_over_best']:+.4f} (majority vote). "
              f"All members agree on {m['all_agree']:.1%} of the images.", ""]
    result.files["md"] = atomic_write_text(folder / "ensemble.md", "\n".join(lines))
