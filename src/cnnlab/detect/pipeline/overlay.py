"""The live-figures overlay: real FPS (moving average), configured vs achieved rate, stage times."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.detect.pipeline.timing import format_stages


def overlay_lines(stats: dict[str, Any]) -> list[str]:
    """The text lines shown on the frame for the live ``stats`` of the pipeline."""
    fps = float(stats.get("fps", 0.0))
    first = f"FPS {fps:.1f}"
    if stats.get("max_fps"):
        first += f"  (max {stats['max_fps']:g}, achieved {float(stats.get('mean_fps', 0.0)):.1f})"
    if stats.get("dropped"):
        first += f"  dropped {stats['dropped']}"
    lines = [first]
    if stats.get("stages_ms"):
        lines.append(format_stages(stats["stages_ms"]))
    return lines


def draw_overlay(image: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """Write the overlay onto ``image`` (in place, top-left, white on a dark band) and return it."""
    import cv2

    lines = overlay_lines(stats)
    h, w = image.shape[:2]
    scale = max(0.35, min(0.6, w / 1100))
    thick = 1
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    step = th + base + 4
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t in lines) + 10
    band = image[0:min(h, step * len(lines) + 4), 0:min(w, width)]
    band[:] = (band * 0.35).astype(np.uint8)   # darken behind the text so it stays readable
    for i, text in enumerate(lines):
        y = 4 + th + i * step
        cv2.putText(image, text, (5, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image
