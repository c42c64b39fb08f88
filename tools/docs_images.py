"""Make the pictures the docs show (docs/img/): the reworked PNGs of a classification run, a sweep plot,
and headless-Chromium screenshots of an HTML report and of the live page on a short video.

    python tools/docs_images.py RUN --data DATA_ROOT [--out docs/img]

RUN is a classification run folder (the docs use LeNet-5 on MNIST: ``cnnlab train -d mnist -m lenet5
-e 4 --subset 6000 --schedule cosine``); DATA_ROOT holds ``video/vtest_480x360_h264.avi``,
``yolo/yolo-fastest-1.1-xl.{cfg,weights}``, ``yolo/coco.names`` and ``coco128/``. Needs Playwright and
Debian's ``/usr/bin/chromium`` for the screenshots (the dev extra). Screenshots are JPEGs, every file
stays well under 300 KB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]


def pictures(run: Path, out: Path) -> None:
    """Kernels, feature maps, Grad-CAM (on one of the run's own test digits), curves and confusion."""
    import torch

    from cnnlab.experiments.tables import read_history
    from cnnlab.inspect import save_features, save_gradcam, save_kernels
    from cnnlab.io import read_json
    from cnnlab.tasks.classify.metrics import plot_confusion, plot_curves

    save_kernels(run, out / "kernels.png", overwrite=True)
    save_features(run, out / "features.png", overwrite=True)
    _, res = save_gradcam(run, out / "gradcam.png", overwrite=True)
    print(f"gradcam: {res!r}")
    metrics = read_json(run / "metrics.json")
    plot_curves(read_history(run), out / "curves.png", best_epoch=metrics.get("best_epoch"),
                monitor=metrics.get("monitor", ""))
    test = metrics["test"]
    plot_confusion(torch.tensor(test["confusion_matrix"]), list(test["per_class_accuracy"]), out / "confusion.png",
                   title=f"{metrics['model']} on {metrics['dataset']} (test), accuracy {test['accuracy']:.4f}")


def sweep(data: Path, out: Path, work: Path) -> None:
    """``cnnlab sweep`` on 32 COCO128 images, its plot copied to ``out/sweep.png``."""
    yolo = data / "yolo"
    cmd = [sys.executable, "-c", "from cnnlab.cli.main import main; main()", "sweep",
           str(data / "coco128" / "images" / "train2017"), "--names", str(yolo / "coco.names"),
           "--cfg", str(yolo / "yolo-fastest-1.1-xl.cfg"), "--weights", str(yolo / "yolo-fastest-1.1-xl.weights"),
           "--backend", "opencv", "--limit", "32", "--project", str(work), "--name", "docs"]
    subprocess.run(cmd, check=True)
    shutil.copyfile(next(work.rglob("sweep.png")), out / "sweep.png")


def report_screenshot(run: Path, out: Path, work: Path, play: object) -> None:
    """The HTML report of ``run``, top of the page, as a JPEG."""
    import cnnlab

    result = cnnlab.report([run], output=work / "report", samples=16)
    browser = play.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 2100})
        page.goto(Path(result.html).resolve().as_uri())
        page.screenshot(path=str(out / "report.jpg"), type="jpeg", quality=70)
    finally:
        browser.close()


def live_screenshot(data: Path, out: Path, play: object) -> None:
    """The live page while YOLO-Fastest runs on the vtest video at 10 FPS, as a JPEG."""
    from cnnlab.detect import Detector
    from cnnlab.detect.pipeline import Pipeline, WebSink

    yolo = data / "yolo"
    det = Detector(cfg=yolo / "yolo-fastest-1.1-xl.cfg", weights=yolo / "yolo-fastest-1.1-xl.weights",
                   names=yolo / "coco.names", backend="opencv", imgsz=320, threads=1)
    web = WebSink("127.0.0.1", 0)
    pipeline = Pipeline(det, data / "video" / "vtest_480x360_h264.avi", [web], max_fps=10, log_every=None)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        while not web._started:
            time.sleep(0.05)
        browser = play.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(web.url)
            page.wait_for_function("document.getElementById('latwhat').textContent.includes('shown')",
                                   timeout=30_000)
            time.sleep(4)
            page.screenshot(path=str(out / "live.jpg"), type="jpeg", quality=70, full_page=True)
        finally:
            browser.close()
    finally:
        pipeline.stop()
        runner.join(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--skip", default="", help="comma-separated: pictures,sweep,report,live")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cnnlab-docs-") as tmp:
        work = Path(tmp)
        if "pictures" not in skip:
            pictures(args.run, args.out)
        if "sweep" not in skip:
            sweep(args.data, args.out, work / "sweep")
        if not {"report", "live"} <= skip:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as play:
                if "report" not in skip:
                    report_screenshot(args.run, args.out, work, play)
                if "live" not in skip:
                    live_screenshot(args.data, args.out, play)
    for f in sorted(args.out.iterdir()):
        print(f"{f}: {f.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
