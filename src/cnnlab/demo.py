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

QUICK_DETECT_SECONDS, FULL_DETECT_SECONDS = 60.0, 120.0  # the detection part on 2 idle cores (measured: 55 s quick)
DemoPart = Callable[..., dict[str, Any]]   # fn(project, say, full=False) -> results
DEMO_PARTS: list[tuple[str, DemoPart]] = []
# seconds each part takes on 2 idle cores (quick tour, --full): the tour's overall ETA
DEMO_SECONDS: dict[str, tuple[float, float]] = {}


def register_demo_part(title: str, seconds: tuple[float, float] = (30.0, 30.0)) -> Callable[[DemoPart], DemoPart]:
    """Add a part to ``cnnlab demo`` (later features append theirs: detection, export...). ``seconds``:
    its expected duration on 2 idle cores, quick and full, for the tour's ETA."""

    def deco(fn: DemoPart) -> DemoPart:
        DEMO_PARTS.append((title, fn))
        DEMO_SECONDS[title] = seconds
        return fn

    return deco


@register_demo_part("Classification: train a small CNN on the bundled digits", seconds=(10.0, 10.0))
def _demo_classify(project: Path, say: Callable[[str], None], full: bool = False) -> dict[str, Any]:
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


@register_demo_part("Detection: train a small YOLO on synthetic shapes, then stream a generated clip",
                    seconds=(QUICK_DETECT_SECONDS, FULL_DETECT_SECONDS))
def _demo_detect(project: Path, say: Callable[[str], None], full: bool = False) -> dict[str, Any]:
    from cnnlab.detect.train.demo import QUICK, detection_demo

    if not full:
        say(f"quick tour: {QUICK['epochs']} epochs on {QUICK['n_train']} scenes; cnnlab demo --full trains "
            f"for 30 (about {FULL_DETECT_SECONDS / 60:.0f} minutes)")
    return detection_demo(project, say, **({} if full else QUICK))


def demo(project: str | os.PathLike = "runs", parts: Sequence[str] | None = None, full: bool = False) -> dict[str, Any]:
    """The embedded tour: needs nothing downloaded; each registered part reports where its results are.

    The quick tour (default) takes about a minute on 2 idle cores (63 s measured; its detector reached
    mAP50 0.55 on the synthetic scenes); ``full`` trains the detection part for 30 epochs (about 2
    minutes for that part). An overall ETA is printed before each part.
    """
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    project = Path(project)
    results: dict[str, Any] = {}
    selected = [(t, fn) for t, fn in DEMO_PARTS if parts is None or any(p.lower() in t.lower() for p in parts)]
    if not selected:
        raise UserError(f"no demo part matches {', '.join(parts or [])}")
    expected = [DEMO_SECONDS.get(t, (30.0, 30.0))[1 if full else 0] for t, _ in selected]
    begin, pace = time.perf_counter(), 1.0
    console.print(f"tour: {len(selected)} part(s), about {_span(sum(expected))} on 2 idle cores"
                  + ("" if full else " (cnnlab demo --full: the full detection tour)"))
    for i, (title, fn) in enumerate(selected):
        console.rule(f"[bold]{title}")
        left = pace * sum(expected[i:])
        console.print(f"[dim]part {i + 1}/{len(selected)}, tour about {_span(left)} left[/]")
        start = time.perf_counter()
        results[title] = fn(project, lambda m: console.print(m, soft_wrap=True, markup=False), full=full)
        took = time.perf_counter() - start
        pace = (time.perf_counter() - begin) / max(sum(expected[:i + 1]), 1e-9)  # this machine vs 2 idle cores
        console.print(f"[dim]{title}: {took:.1f}s[/]")
    console.print(f"tour done in {_span(time.perf_counter() - begin)}")
    return results


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"

