"""Real-time pipeline vs pure inference vs the course's sequential loop, on the shared pedestrian video
with Yolo-Fastest. Writes the `stream_fps` section of docs/benchmarks.md.

    nice -n 10 .venv/bin/python benchmarks/stream_fps.py [--frames 50] [--rounds 4] [--backend opencv]

Variants (same first N frames of the video, each run ``--rounds`` times interleaved; median kept):
- inference only: ``detector.infer`` on blobs prepared in advance (the model's pure rate);
- detector call: ``detector(frame)`` on decoded frames in memory (pre + inference + post);
- pipeline: ``cnnlab.detect.pipeline.Pipeline`` on the file (capture thread, timed stages), without
  outputs, and with drawing + overlay + JSON lines (what a headless recording run does);
- course loop: read -> detect -> draw -> show -> ``waitKey(delay)`` one after another, with the
  shortest delay (1 ms) and with the "24 FPS" setting (delay 1000/24 ms), against the pipeline's
  ``--max-fps 24`` (sleeps only the rest of each period).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section  # noqa: E402


def data_root() -> Path:
    root = Path(os.environ.get("CNNLAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / "video").is_dir():
        sys.exit(f"shared data not found at {root} (set CNNLAB_DATA)")
    return root


def read_frames(video: Path, n: int):
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def bench_inference(det, blobs) -> float:
    t = time.perf_counter()
    for b in blobs:
        det.infer(b)
    return len(blobs) / (time.perf_counter() - t)


def bench_detector(det, frames) -> float:
    t = time.perf_counter()
    for f in frames:
        det(f)
    return len(frames) / (time.perf_counter() - t)


def bench_pipeline(det, video: Path, n: int, outputs: bool, max_fps: float | None = None,
                   overlap: bool = True) -> tuple[float, dict]:
    from cnnlab.detect.pipeline import CallbackSink, JsonlSink, Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        sinks = [CallbackSink(lambda r: None, needs_image=True), JsonlSink(Path(tmp) / "d.jsonl")] if outputs else []
        s = Pipeline(det, video, sinks, max_frames=n, max_fps=max_fps, overlap=overlap, log_every=None).run()
    # In-run efficiency: the share of wall time the model spent inferring (load-independent).
    return s.fps, {**s.stages_ms, "busy": s.fps * s.stages_ms["inference"] / 1000}


def bench_course_loop(det, video: Path, n: int, fps_setting: float | None) -> tuple[float, dict]:
    """The course's loop: capture -> detect -> draw -> show -> waitKey(delay), all in sequence."""
    import cv2

    from cnnlab.detect.draw import draw_detections

    delay_ms = int(1000 / fps_setting) if fps_setting else 1
    cap = cv2.VideoCapture(str(video))
    done = 0
    infer_ms = 0.0
    t = time.perf_counter()
    while done < n:
        ok, frame = cap.read()
        if not ok:
            break
        found = det(frame)
        out = draw_detections(frame, found)
        _ = out  # cv2.imshow("frame", out): headless OpenCV has no window; waitKey's delay is the cost
        time.sleep(delay_ms / 1000)
        infer_ms += found.timing["inference"]
        done += 1
    elapsed = time.perf_counter() - t
    cap.release()
    fps = done / elapsed
    return fps, {"busy": fps * infer_ms / done / 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--backend", default="opencv")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--fps-setting", type=float, default=24.0)
    args = ap.parse_args()

    from cnnlab.detect.detector import Detector

    root = data_root()
    video = root / "video" / "vtest_480x360_h264.avi"
    y = root / "yolo"
    det = Detector(cfg=y / "yolo-fastest-1.1-xl.cfg", weights=y / "yolo-fastest-1.1-xl.weights",
                   names=y / "coco.names", backend=args.backend, imgsz=args.imgsz)
    det.warmup(3)
    frames = read_frames(video, args.frames)
    blobs = [det.preprocess(f)[0] for f in frames]
    n = len(frames)
    fs = args.fps_setting
    runs: dict[str, list[float]] = {}
    stages: dict[str, list[dict]] = {}

    variants = {
        "inference only (model)": lambda: bench_inference(det, blobs),
        "detector call (pre+infer+post, frames in memory)": lambda: bench_detector(det, frames),
        "pipeline, no outputs": lambda: _keep(stages, "plain", bench_pipeline(det, video, n, False)),
        "pipeline, draw + overlay + JSONL": lambda: _keep(stages, "out", bench_pipeline(det, video, n, True)),
        "pipeline --no-overlap, draw + overlay + JSONL":
            lambda: _keep(stages, "seq", bench_pipeline(det, video, n, True, overlap=False)),
        "course loop, waitKey(1)": lambda: _keep(stages, "course", bench_course_loop(det, video, n, None)),
        f"course loop, 'FPS {fs:g}' = waitKey({int(1000 / fs)})":
            lambda: _keep(stages, "course_fs", bench_course_loop(det, video, n, fs)),
        f"pipeline --max-fps {fs:g}, draw + overlay + JSONL":
            lambda: _keep(stages, "cap", bench_pipeline(det, video, n, True, fs)),
    }
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        for name, fn in variants.items():
            fps = fn()
            runs.setdefault(name, []).append(fps)
            print(f"round {r + 1}: {name}: {fps:.2f} FPS", flush=True)

    load_after = os.getloadavg()[0]
    fps = {k: statistics.median(v) for k, v in runs.items()}
    pure = fps["inference only (model)"]
    rows = [{"variant": k, "FPS (median)": round(v, 2), "runs": ", ".join(f"{x:.1f}" for x in runs[k]),
             "vs inference only": f"{100 * (v / pure - 1):+.1f} %"} for k, v in fps.items()]
    table = markdown_table(rows)
    print(table)
    st = _median_stages(stages["out"])
    infer_seq = _median_stages(stages["seq"])["inference"]
    busy = st.pop("busy")
    busy_plain, busy_seq, busy_course, busy_course_fs, busy_cap = (
        _median_stages(stages[k])["busy"] for k in ("plain", "seq", "course", "course_fs", "cap"))
    stage_line = ", ".join(f"{k} {v:.1f}" for k, v in st.items())
    plain = fps["pipeline, no outputs"]
    out = fps["pipeline, draw + overlay + JSONL"]
    course_set = fps[f"course loop, 'FPS {fs:g}' = waitKey({int(1000 / fs)})"]
    capped = fps[f"pipeline --max-fps {fs:g}, draw + overlay + JSONL"]
    body = f"""
Yolo-Fastest 1.1 XL (`{args.backend}` backend, input {args.imgsz}x{args.imgsz}) on the first {n} frames of
`video/vtest_480x360_h264.avi` (480x360, H.264); each variant run {args.rounds}x interleaved, median shown.
The machine is shared (2 cores; load average {load_before:.1f} at the start, {load_after:.1f} at the end), so
absolute rates move between runs: the in-run figures below are the ones to trust.

{table}
- Pipeline vs the model's pure inference rate (separate runs): **{100 * (plain / pure - 1):+.1f} %** without
  outputs, **{100 * (out / pure - 1):+.1f} %** with drawing, overlay and JSON lines (aim: no worse than -5 %).
- Within the same run (robust to the machine's changing load; median over the rounds): the model was busy inferring
  **{100 * busy_plain:.1f} %** of the wall time without outputs, **{100 * busy:.1f} %** with outputs (overlapped),
  **{100 * busy_seq:.1f} %** with `--no-overlap`, and **{100 * busy_course:.1f} %** in the course's loop with
  `waitKey(1)` ({100 * busy_course_fs:.1f} % at "FPS {fs:g}", {100 * busy_cap:.1f} % with `--max-fps {fs:g}`, both of
  which sleep on purpose); the rest
  is what the loop adds around the model (100 % = the model's pure inference rate).
  Decoding and preprocessing run on the capture thread, post-processing, drawing and the sinks on the
  output thread, all overlapped with inference. On this over-subscribed CPU the overlap also slows the model
  itself (inference {st["inference"]:.1f} ms per frame overlapped vs {infer_seq:.1f} ms with `--no-overlap`),
  so its gain in frames per second is smaller than the busy share suggests. (With stages that leave the CPU
  free, tests/test_stream_pipeline.py shows the overlap taking a 40 ms + 30 ms loop from ~14 to ~25 FPS.)
- Pipeline stage means with outputs (ms, median over the rounds; work per frame, so overlapped stages may sum
  to more than 1/FPS):
  {stage_line}.
- The course's "FPS {fs:g}" setting was a fixed {int(1000 / fs)} ms delay after the work: it achieved
  **{course_set:.1f} FPS**. The pipeline's `--max-fps {fs:g}` sleeps only what is left of each period and achieved
  **{capped:.1f} FPS** (it can reach {fs:g} only when the work per frame takes less than {1000 / fs:.1f} ms).
"""
    write_section("stream_fps", "Real-time pipeline FPS (cnnlab stream)", body)


def _keep(store: dict, key: str, result: tuple[float, dict]) -> float:
    store.setdefault(key, []).append(result[1])
    return result[0]


def _median_stages(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


if __name__ == "__main__":
    main()
