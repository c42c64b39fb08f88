"""The detection part of ``cnnlab demo``: synthetic shapes -> train a small YOLO -> mAP -> live pipeline FPS.

Nothing is downloaded: the scenes and the clip are generated. About two to three minutes of CPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the quick tour's detection part (cnnlab demo; --full uses detection_demo's defaults): about a minute
# and a half on 2 idle cores. 96 scenes x 8 epochs (96 steps) never left the 100-step warm-up of the
# detection recipe: mAP50 0.07, a detector nobody would keep
QUICK: dict[str, Any] = {"n_train": 240, "n_val": 60, "epochs": 15, "frames": 45}
DEMO_TRAIN = {"model": "yolov3-tiny", "width_mult": 0.5, "imgsz": 128, "epochs": 30, "batch": 8,
              "optimizer": "adam", "lr": 3e-3, "mosaic": 0.5, "anchors": "auto", "warmup_epochs": 1.0, "seed": 0}


def detection_demo(project: str | os.PathLike = "runs", say: Callable[[str], None] | None = None,
                   n_train: int = 240, n_val: int = 60, epochs: int | None = None, frames: int = 90
                   ) -> dict[str, Any]:
    """Generate a shapes dataset and a clip, train a small YOLOv3-tiny, evaluate it, stream the clip.

    Returns ``run_dir``, ``mAP50``, ``mAP50_95``, ``train_seconds``, ``fps`` and the files written.
    """
    from cnnlab.detect.detector import Detector
    from cnnlab.detect.pipeline import run_pipeline
    from cnnlab.detect.train.scenes import write_scene_clip, write_scene_dataset
    from cnnlab.tasks.detect.run import train_detector

    say = say or print
    project = Path(project)
    data_dir = project / "demo-data" / "shapes"
    t0 = time.perf_counter()
    data_yaml = write_scene_dataset(data_dir, n_train=n_train, n_val=n_val, size=128, seed=0)
    clip = write_scene_clip(data_dir / "clip.avi", frames=frames, height=240, width=320, seed=1)
    say(f"data: {n_train} train / {n_val} val synthetic scenes (circle, square, triangle) with exact boxes "
        f"and a {frames}-frame clip in {data_dir} ({time.perf_counter() - t0:.1f}s)")
    options = {**DEMO_TRAIN, **({"epochs": int(epochs)} if epochs is not None else {})}
    result = train_detector(data_yaml, project=str(project), name="demo-shapes", verbose=2, log=say, **options)
    m = result.metrics
    say(f"trained in {m['train_seconds']:.0f}s: best epoch {m['best_epoch']}, validation mAP@0.5 "
        f"{m['mAP50']:.3f}, mAP@0.5:0.95 {m['mAP50_95']:.3f}")
    detector = Detector(model=result.run_dir, imgsz=options["imgsz"], conf=0.25)
    annotated = result.run_dir / "stream.avi"
    summary = run_pipeline(clip, detector, save=annotated, log_every=None, handle_sigint=False)
    say(f"real-time pipeline on the clip: {summary.describe()}")
    say(f"the run folder {result.run_dir}: weights/best.pt (+ best.cfg/best.weights), results.png, "
        f"val_samples.jpg, history.csv; annotated clip {annotated}")
    say(f"next: cnnlab detect {clip} --model {result.run_dir} | cnnlab detect-eval {data_yaml} --model "
        f"{result.run_dir} | cnnlab export-detector --cfg "
        f"{result.run_dir / 'weights' / 'best.cfg'} --weights {result.run_dir / 'weights' / 'best.weights'}")
    return {"run_dir": str(result.run_dir), "data": str(data_yaml), "clip": str(clip),
            "mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"], "train_seconds": m["train_seconds"],
            "fps": summary.fps, "frames": summary.frames, "stream_video": str(annotated)}
