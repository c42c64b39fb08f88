"""``cnnlab demo``: the embedded tour (no downloads); features register their parts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.inference import evaluate, predict
from cnnlab.tasks.classify.run import train

# -----------------------------------------------------------------------------------------------
# demo

DemoPart = Callable[[Path, Callable[[str], None]], dict[str, Any]]
DEMO_PARTS: list[tuple[str, DemoPart]] = []


def register_demo_part(title: str) -> Callable[[DemoPart], DemoPart]:
    """Add a part to ``cnnlab demo`` (later features append theirs: detection, export...)."""

    def deco(fn: DemoPart) -> DemoPart:
        DEMO_PARTS.append((title, fn))
        return fn

    return deco


@register_demo_part("Classification: train a small CNN on the bundled digits")
def _demo_classify(project: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from cnnlab.data import load_dataset

    run = train(dataset="digits", model="mnist_cnn", epochs=20, batch=32, optimizer="adam", lr=1e-3,
                schedule="cosine", seed=0, project=str(project), name="demo", verbose=2, threads=1)
    ev = evaluate(run.run_dir, json=run.run_dir / "evaluate.json")
    say(f"evaluate: test accuracy {ev['accuracy']:.4f}, top-5 {ev['top5_accuracy']:.4f} on {ev['images']} "
        f"digits ({ev['images_per_s']:.0f} images/s)")
    test = load_dataset("digits", split="test")
    images = [test.images[i].permute(1, 2, 0).numpy() for i in range(4)]
    for i, top in enumerate(predict(run.run_dir, images, topk=3)):
        say(f"predict: test image {i} (a {test.classes[int(test.labels[i])]}): "
            + ", ".join(f"{c} {p:.2f}" for c, p in top))
    say("the run folder:")
    for f in ("config.yaml", "history.csv", "metrics.json", "evaluate.json", "weights/best.pt",
              "weights/last.pt", "curves.png", "confusion.png"):
        say(f"  {run.run_dir / f}")
    say(f"next: cnnlab evaluate {run.run_dir} --per-class | cnnlab predict {run.run_dir} IMAGE.png | "
        f"cnnlab train --config {run.run_dir / 'config.yaml'} --epochs 30")
    return {"run_dir": str(run.run_dir), "test_accuracy": ev["accuracy"]}


@register_demo_part("Detection: train a small YOLO on synthetic shapes, then stream a generated clip")
def _demo_detect(project: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from cnnlab.detect.train.demo import detection_demo

    return detection_demo(project, say)


def demo(project: str | os.PathLike = "runs", parts: Sequence[str] | None = None) -> dict[str, Any]:
    """The embedded tour: needs nothing downloaded; each registered part reports where its results are."""
    from rich.console import Console

    console = Console(highlight=False)
    project = Path(project)
    results: dict[str, Any] = {}
    selected = [(t, fn) for t, fn in DEMO_PARTS if parts is None or any(p.lower() in t.lower() for p in parts)]
    if not selected:
        raise UserError(f"no demo part matches {', '.join(parts or [])}")
    for title, fn in selected:
        console.rule(f"[bold]{title}")
        start = time.perf_counter()
        results[title] = fn(project, lambda m: console.print(m, soft_wrap=True))
        console.print(f"[dim]{title}: {time.perf_counter() - start:.1f}s[/]")
    return results
